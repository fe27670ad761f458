"""Workspace credentials: a random secret per workspace and purpose, created once, stored encrypted.

Reconcile steps call :func:`workspace_secret` (get-or-create, so every run and every retry sees the same
secret, and two concurrent runs agree on the first one stored). Nothing here logs or returns a secret
except to the caller that provisions with it.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
from control_plane.audit import service as audit
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.credentials import repository
from control_plane.credentials.keys import Keyring, keyring
from control_plane.credentials.models import Purpose

WorkspaceSecrets = Callable[[uuid.UUID, Purpose], str]
"""Where providers and steps get a workspace's secret for a purpose (:func:`workspace_secret` in production)."""

ROTATION_BATCH = 500


def _keyring() -> Keyring:
    return keyring(get_settings())


def ensure(session: Session, workspace_id: uuid.UUID, purpose: Purpose) -> str:
    """The workspace's secret for ``purpose``; a new random one (stored encrypted) the first time."""
    ring = _keyring()
    found = repository.get(session, workspace_id, purpose)
    if found is None:
        ciphertext = ring.encrypt(secrets.token_urlsafe(32))
        repository.insert_if_absent(session, workspace_id, purpose, ciphertext, ring.newest_id)
        found = repository.get(session, workspace_id, purpose)
        assert found is not None, "inserted or found a concurrent insert"
    return ring.decrypt(found.ciphertext)


def reveal(session: Session, workspace_id: uuid.UUID, purpose: Purpose) -> str | None:
    """The workspace's secret for ``purpose``, or None if it has none yet."""
    found = repository.get(session, workspace_id, purpose)
    return None if found is None else _keyring().decrypt(found.ciphertext)


def workspace_secret(workspace_id: uuid.UUID, purpose: Purpose) -> str:
    """:func:`ensure` in a transaction of its own (committed before the secret is used anywhere)."""
    with session_scope() as session:
        return ensure(session, workspace_id, purpose)


@dataclass(frozen=True)
class Rotation:
    """What a key rotation did: credentials re-encrypted under ``key_id``, and how many each key holds afterwards."""

    key_id: str
    reencrypted: int
    by_key: dict[str, int]


def _rotate_batch(ring: Keyring, batch_size: int) -> int:
    with session_scope() as session:
        batch = repository.not_under_key(session, ring.newest_id, batch_size)
        now = utcnow()
        for credential in batch:
            credential.ciphertext = ring.reencrypt(credential.ciphertext)
            credential.key_id = ring.newest_id
            credential.rotated_at = now
        return len(batch)


def rotate_keys(actor: str, batch_size: int = ROTATION_BATCH) -> Rotation:
    """Re-encrypt every credential under the newest key, one committed batch at a time (idempotent; resumable
    after a crash), then audit how many moved. Raises UndecryptableCredential if no configured key opens one."""
    ring = _keyring()
    reencrypted = 0
    while moved := _rotate_batch(ring, batch_size):
        reencrypted += moved
    with session_scope() as session:
        by_key = repository.count_by_key(session)
        audit.record(
            session,
            actor=actor,
            action="credential_keys.rotated",
            target_type="credential_key",
            target_id=ring.newest_id,
            after={"reencrypted": reencrypted, "credentials_by_key": by_key},
        )
    return Rotation(ring.newest_id, reencrypted, by_key)
