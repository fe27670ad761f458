"""The one source of time, so that tests and simulations can move it.

Every process reads the time through :func:`utcnow`. In dev mode, ``CANOPY_CLOCK_FILE`` may name a file holding
an offset in seconds (written by ``canopy clock advance``) that every process of the deployment adds to the real
time: a test walks a workspace through a 14-day trial and months of billing in seconds, with the API, the workers
and the billing jobs all agreeing on the date. Time only moves forward. Outside dev mode the setting is refused.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

CLOCK_FILE_VARIABLE = "CANOPY_CLOCK_FILE"

_cached: tuple[str, int, timedelta] | None = None


def utcnow() -> datetime:
    """Current time, timezone-aware UTC (plus the travelled offset, in dev mode)."""
    return datetime.now(UTC) + offset()


def offset() -> timedelta:
    """How far the clock has been moved forward (zero unless ``CANOPY_CLOCK_FILE`` names a file)."""
    global _cached
    path = os.environ.get(CLOCK_FILE_VARIABLE)
    if not path:
        return timedelta(0)
    try:
        mtime = os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return timedelta(0)
    if _cached is not None and _cached[:2] == (path, mtime):
        return _cached[2]
    travelled = timedelta(seconds=float(Path(path).read_text().strip() or 0))
    _cached = (path, mtime, travelled)
    return travelled


def advance(path: Path, by: timedelta) -> timedelta:
    """Move the clock of every process reading ``path`` forward by ``by``; returns the new offset."""
    if by < timedelta(0):
        raise ValueError("the clock only moves forward")
    current = float(path.read_text().strip() or 0) if path.exists() else 0.0
    new = timedelta(seconds=current) + by
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(f"{new.total_seconds()}\n")
    os.replace(temporary, path)  # atomic: a reader sees the old offset or the new one
    return new
