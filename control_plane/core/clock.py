"""The one source of time, so that tests and simulations can move it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)
