"""The drift cursors in PostgreSQL (:class:`~control_plane.providers.base.Cursors`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.drift.models import DriftCursor


class StoredCursors:
    """Each read and write in its own short transaction (sources run in threads)."""

    def get(self, source: str) -> str | None:
        with session_scope() as session:
            return session.scalar(select(DriftCursor.position).where(DriftCursor.source == source))

    def put(self, source: str, position: str) -> None:
        now = utcnow()
        statement = insert(DriftCursor).values(source=source, position=position, updated_at=now)
        statement = statement.on_conflict_do_update(
            index_elements=[DriftCursor.source], set_={"position": position, "updated_at": now}
        )
        with session_scope() as session:
            session.execute(statement)
