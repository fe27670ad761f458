"""Workspace servers' health reports: kept in Redis (one hash per environment: workspace id -> when and what it
last reported) and read by a drift probe in one call per detection and cell.

A workspace has drifted when its last report names a problem, or when its reports stopped: its last one is more
than :data:`MISSED_HEARTBEATS` heartbeats older than the newest report of the group (measured against the newest,
not the clock, so an outage of the control plane's API, which stops every report, does not look like a fleet of
silent servers). A workspace that never reported (a server without reporting, or one the control plane cannot
be reached from) is left to the other probes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence

import redis

from control_plane.core import fleet_counters
from control_plane.core.settings import Settings
from control_plane.providers.base import Cursors, Drift, Watched

MISSED_HEARTBEATS = 3
SOURCE = "health-report"


def key(environment: str) -> str:
    """The hash of ``environment``'s health reports."""
    return f"canopy:{environment}:health"


def record(settings: Settings, workspace_id: uuid.UUID, problems: list[str]) -> None:
    """Keep a workspace's report (the time is the control plane's; without Redis, nothing is kept)."""
    if not settings.redis_url:
        return
    report = json.dumps({"at": time.time(), "problems": problems})
    fleet_counters.connection(settings.redis_url).hset(key(settings.aws_environment), str(workspace_id), report)


class HealthReports:
    """The drift probe over the servers' reports (nothing to read without Redis)."""

    def __init__(self, settings: Settings) -> None:
        self._url = settings.redis_url
        self._key = key(settings.aws_environment)
        self._stale_after = MISSED_HEARTBEATS * settings.health_report_seconds

    def find_drift(self, watched: Sequence[Watched], cursors: Cursors) -> list[Drift]:
        """One read of the group's last reports: a problem reported, or reports that stopped."""
        if not self._url or not watched:
            return []
        try:
            raw = fleet_counters.connection(self._url).hmget(self._key, [str(item.spec.id) for item in watched])
        except redis.RedisError:
            return []
        reports = {item.spec.id: json.loads(value) for item, value in zip(watched, raw, strict=True) if value}
        newest = max((report["at"] for report in reports.values()), default=0.0)
        found = []
        for ws_id, report in reports.items():
            if report["problems"]:
                found.append(Drift(ws_id, SOURCE, "its server reports: " + "; ".join(report["problems"])))
            elif newest - report["at"] > self._stale_after:
                found.append(Drift(ws_id, SOURCE, "its server stopped reporting its health"))
        return found
