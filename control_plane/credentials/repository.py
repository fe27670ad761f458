"""SQL for workspace credentials."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from control_plane.credentials.models import Purpose, WorkspaceCredential


def get(session: Session, workspace_id: uuid.UUID, purpose: Purpose) -> WorkspaceCredential | None:
    """The workspace's credential for ``purpose``, as committed now."""
    query = select(WorkspaceCredential).where(
        WorkspaceCredential.workspace_id == workspace_id, WorkspaceCredential.purpose == purpose.value
    )
    return session.scalars(query.execution_options(populate_existing=True)).one_or_none()


def insert_if_absent(
    session: Session, workspace_id: uuid.UUID, purpose: Purpose, ciphertext: bytes, key_id: str
) -> None:
    """Store a credential unless one exists (a concurrent insert wins; the caller re-reads)."""
    statement = insert(WorkspaceCredential).values(
        workspace_id=workspace_id, purpose=purpose.value, ciphertext=ciphertext, key_id=key_id
    )
    session.execute(statement.on_conflict_do_nothing(index_elements=["workspace_id", "purpose"]))


def not_under_key(session: Session, key_id: str, limit: int) -> Sequence[WorkspaceCredential]:
    """Up to ``limit`` credentials made with another key, locked (skipping ones another rotation holds)."""
    query = (
        select(WorkspaceCredential)
        .where(WorkspaceCredential.key_id != key_id)
        .order_by(WorkspaceCredential.workspace_id, WorkspaceCredential.purpose)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def count_by_key(session: Session) -> dict[str, int]:
    """How many credentials each key made."""
    query = select(WorkspaceCredential.key_id, func.count()).group_by(WorkspaceCredential.key_id)
    return {key_id: count for key_id, count in session.execute(query).tuples()}
