"""Creating POSTs commit here: ``Idempotency-Key`` replays, and races on unique columns answer 409.

Keys are scoped per caller (the ``scope`` argument). The request digest covers the body the caller
passes, which must leave secrets out: a digest of a password could be brute-forced. A request's secret
(a signup's password) is kept as an argon2 hash instead, so a replay with another secret is refused too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg.errors import UniqueViolation
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from control_plane.core.models import IdempotencyRecord
from control_plane.core.problems import Conflict, Problem
from control_plane.core.security import hash_password, verify_password

# What a lost race on a unique constraint means to the caller (others get a generic 409).
_TAKEN_BY_CONSTRAINT = {
    "uq_workspaces_live_slug": ("slug-taken", "This workspace address was just taken by another request"),
    "uq_accounts_email": ("email-taken", "An account with this email already exists; sign in instead"),
    "uq_workspace_exports_open": ("export-in-progress", "An export of this workspace is already queued or running"),
}


class IdempotencyKeyReused(Problem):
    """The key was used before with a different request body."""

    def __init__(self) -> None:
        super().__init__(
            422,
            "idempotency-key-reused",
            "Idempotency key reused",
            "This Idempotency-Key was already used with a different request body",
        )


@dataclass(frozen=True)
class Outcome:
    """What a creating request answered, and whether this call replayed it."""

    status_code: int
    body: Any
    replayed: bool


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _replay(record: IdempotencyRecord, digest: str, secret: str | None) -> Outcome:
    same_secret = record.secret_hash is None or (secret is not None and verify_password(record.secret_hash, secret))
    if record.request_digest != digest or not same_secret:
        raise IdempotencyKeyReused()
    return Outcome(record.status_code, record.response_body, replayed=True)


def lost_race(violation: UniqueViolation) -> Conflict:
    """The 409 for a unique violation: another request created the same thing first."""
    constraint = violation.diag.constraint_name or ""
    slug, detail = _TAKEN_BY_CONSTRAINT.get(constraint, ("conflict", "A concurrent request created the same thing"))
    return Conflict(slug, detail)


def run_once(
    session: Session,
    scope: str,
    key: str | None,
    payload: Any,
    create: Callable[[], tuple[int, Any]],
    *,
    secret: str | None = None,
) -> Outcome:
    """Run ``create`` and commit its writes together with the key's record.

    ``create`` must not commit. If two requests race, the loser fails (a unique constraint at flush or
    commit, or a service check that sees the winner's rows) and its writes roll back; with the same key
    it replays the winner's answer, otherwise it gets a 409 problem. ``secret`` (left out of ``payload``)
    must match too for a replay; only its argon2 hash is kept.
    """
    digest = _digest(payload) if key is not None else ""
    existing = session.get(IdempotencyRecord, (scope, key)) if key is not None else None
    if existing is not None:
        return _replay(existing, digest, secret)
    try:
        status, body = create()
        if key is not None:
            secret_hash = hash_password(secret) if secret is not None else None
            record = IdempotencyRecord(
                scope=scope,
                key=key,
                request_digest=digest,
                secret_hash=secret_hash,
                status_code=status,
                response_body=body,
            )
            session.add(record)
        session.commit()
    except (IntegrityError, Problem) as exc:
        # A concurrent request with the same key may have won while this one ran (its row made this
        # one's checks or inserts fail): then this one is a retry and gets the winner's answer.
        session.rollback()
        winner = session.get(IdempotencyRecord, (scope, key)) if key is not None else None
        if winner is not None:
            return _replay(winner, digest, secret)
        if isinstance(exc, IntegrityError) and isinstance(exc.orig, UniqueViolation):
            raise lost_race(exc.orig) from None
        raise
    return Outcome(status, body, replayed=False)
