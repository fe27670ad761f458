"""One drift detection over the converged fleet: every provider set's probes and the servers' health reports, per
cell, then a reconcile (cause ``drift``) of each workspace found changed. Probes cost per change or per cell and
service (watches, listings, batched reads), never a cloud call per workspace; the full plan runs only for what they
found."""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable

from control_plane.core import fleet_counters
from control_plane.core.settings import Settings
from control_plane.drift.health import HealthReports
from control_plane.drift.repository import StoredCursors
from control_plane.providers.base import Cursors, Drift, Watched
from control_plane.providers.factory import get_providers
from control_plane.providers.scope import about_cell
from control_plane.reconciler import records
from control_plane.reconciler.queue import Cause, defer_reconcile

logger = logging.getLogger(__name__)

DRIFT_FOUND = "drift_found"
"""Counter of workspaces found drifted (label: source), read by ``/metrics``."""
DETECTIONS = "drift_detections"
"""Counter of drift detections run over the fleet, read by ``/metrics``."""
PROBE_FAILED = "drift_probe_failed"
"""Counter of probe runs that failed (label: probe), read by ``/metrics``."""
SILOS = "silos"
"""The budget cell of the reads about workspaces in no cell (silos, and the local runtime's); pooled ones are read
about their own cell."""


def _groups(watched: Iterable[Watched]) -> dict[tuple[str, str], list[Watched]]:
    """Converged workspaces by (tier, cell): each group's probes run about its cell."""
    groups: dict[tuple[str, str], list[Watched]] = defaultdict(list)
    for item in watched:
        groups[item.spec.tier, item.spec.cell or SILOS].append(item)
    return groups


def _probe(group: list[Watched], settings: Settings, tier: str, cursors: Cursors) -> list[Drift]:
    found: list[Drift] = []
    for probe in (*get_providers(settings, tier).drift, HealthReports(settings)):
        name = type(probe).__name__
        try:
            found += probe.find_drift(group, cursors)
        except Exception:
            logger.warning("drift probe %s failed", name, exc_info=True)
            fleet_counters.add(PROBE_FAILED, name)
    return found


def detect(settings: Settings, cursors: Cursors | None = None) -> list[Drift]:
    """Find drift across the converged fleet and defer a reconcile of each drifted workspace (once each)."""
    cursors = cursors or StoredCursors()
    watched = records.converged_workspaces()
    found: dict[uuid.UUID, Drift] = {}
    for (tier, cell), group in _groups(watched).items():
        with about_cell(cell):
            for drift in _probe(group, settings, tier, cursors):
                found.setdefault(drift.workspace_id, drift)
    fleet_counters.add(DETECTIONS)
    for drift in found.values():
        logger.info("workspace %s drifted (%s): %s", drift.workspace_id, drift.source, drift.reason)
        fleet_counters.add(DRIFT_FOUND, drift.source)
        defer_reconcile(drift.workspace_id, Cause.drift)
    return list(found.values())
