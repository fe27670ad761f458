"""Crash-test hook: a process stalls at a named point so that a test can SIGKILL it exactly there."""

from __future__ import annotations

import logging
import time

from control_plane.core.settings import get_settings

logger = logging.getLogger(__name__)

FAULT_PAUSE_SECONDS = 3600.0


def fault_pause(point: str) -> None:
    """Sleep for an hour if ``CANOPY_FAULT_PAUSE_AFTER_STEP`` names ``point`` (crash tests only)."""
    if get_settings().fault_pause_after_step == point:
        logger.warning("fault injection: pausing after %s", point)
        time.sleep(FAULT_PAUSE_SECONDS)
