"""Mail outbox table (every message sent; the dev page reads it)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Identity, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from control_plane.core.db import Base
from control_plane.core.types import OptionalTimestamp, Timestamp


class OutboxMail(Base):
    """A message handed to the mail interface."""

    __tablename__ = "mail_outbox"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[Timestamp]
    sent_at: Mapped[OptionalTimestamp]
