"""The slow full re-verification, spread evenly: each converged workspace's plan runs again once per period, at
its own phase (``workspaces.verify_phase``, uniform in [0, 1)), so each resync takes an equal slice of the fleet."""

from __future__ import annotations

from datetime import datetime, timedelta

REVERIFY_CURSOR = "reverify"


def phase_of(moment: datetime, period: float) -> float:
    """Where ``moment`` falls in the repeating period, as a fraction in [0, 1)."""
    return (moment.timestamp() % period) / period


def verification_window(last: datetime | None, now: datetime, period: float, tick: float) -> tuple[float, float] | None:
    """The phases due between the last tick (``tick`` seconds ago when unknown) and ``now``: [start, end), where
    start > end wraps around the period's end; the whole period once a period or more passed; None when no time
    passed."""
    since = last if last is not None else now - timedelta(seconds=tick)
    elapsed = (now - since).total_seconds()
    if elapsed <= 0:
        return None
    if elapsed >= period:
        return (0.0, 1.0)
    return (phase_of(since, period), phase_of(now, period))
