"""Maintenance windows: whether a workspace's weekly window is open at a given time."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from control_plane.workspaces.schemas import MaintenanceWindow


def is_open(window: dict[str, Any] | None, at: datetime) -> bool:
    """Whether rollouts may restart the workspace at ``at`` (no window: any time). A window that starts late on
    one of its days runs on past midnight."""
    if window is None:
        return True
    parsed = MaintenanceWindow.model_validate(window)
    local = at.astimezone(ZoneInfo(parsed.timezone))
    hour, minute = (int(part) for part in parsed.start.split(":"))
    for days_back in (0, 1):
        day = local - timedelta(days=days_back)
        if day.weekday() not in parsed.days:
            continue
        start = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if start <= local < start + timedelta(minutes=parsed.duration_minutes):
            return True
    return False
