"""Rate limits count in fixed windows: a test that needs several hits counted together starts early in one."""

from __future__ import annotations

import time


def within_one_window(window_seconds: int, seconds_needed: float = 60) -> None:
    """Wait for the next window to begin if this one ends within ``seconds_needed`` (counts restart there)."""
    left = window_seconds - time.time() % window_seconds
    if left < seconds_needed:
        time.sleep(left + 0.5)
