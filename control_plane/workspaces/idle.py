"""Idle hibernation: a workspace nobody has used for ``hibernate_idle_seconds`` hibernates (its data stays; the next
request wakes it, see :mod:`control_plane.workspaces.waking`).

A periodic task (:mod:`control_plane.workspaces.tasks`) reads the last use of every running workspace's server in
bulk (``GET /api/v4/canopy/activity``, several at once, with each workspace's control token) and hibernates through
the lifecycle table (:func:`service.transition`, actor ``idle``) those whose last use is older than the idle period,
then defers their reconciles (which stop the servers). Only the states hibernation may pause are read
(:data:`HIBERNATABLE_STATES`: trialing, active, past due, suspended), and a workspace whose lifecycle changed within
the idle period (one just woken, above all) is not: it gets the whole period again. A server that cannot be read is
left alone.

Use is measured on the wall clock, on which the servers stamp it; the lifecycle's own times are on the deployment's
clock (:func:`control_plane.core.clock.utcnow`, which dev-mode tests move forward).
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import httpx
from sqlalchemy import select

from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import Settings, get_settings
from control_plane.credentials.models import Purpose
from control_plane.credentials.service import reveal
from control_plane.providers.base import ProviderError
from control_plane.providers.workspace_client import control_url, get_activity, shared_client
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces import repository, service
from control_plane.workspaces.lifecycle import HIBERNATABLE_STATES, Lifecycle
from control_plane.workspaces.models import Workspace

logger = logging.getLogger(__name__)

ACTOR: Final = "idle"
READ_CONCURRENCY: Final = 16


@dataclass(frozen=True)
class Candidate:
    """A running workspace whose lifecycle has not changed for an idle period, and where to read its last use."""

    workspace_id: uuid.UUID
    generation: int
    url: str
    token: str


def enabled(settings: Settings) -> bool:
    """Whether idle workspaces hibernate: a period is set, and a request can wake them (always on the local runtime;
    on Kubernetes only with a wake backend for their Ingresses)."""
    return settings.hibernate_idle_seconds > 0 and (settings.provider == "local" or bool(settings.kube_wake_backend))


def check_seconds(idle_seconds: float) -> float:
    """How often to look for idle workspaces: a tenth of the period, between 1 s and 5 minutes."""
    return max(1.0, min(300.0, idle_seconds / 10))


def hibernate_idle(settings: Settings) -> list[uuid.UUID]:
    """Hibernate every workspace idle for ``settings.hibernate_idle_seconds`` (committed, reconciles deferred);
    returns their ids."""
    idle = settings.hibernate_idle_seconds
    candidates = _candidates(idle)
    if not candidates:
        return []
    client = shared_client()
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
        uses = list(pool.map(lambda candidate: _last_use_ms(client, candidate), candidates))
    cutoff_ms = (time.time() - idle) * 1000
    idle_ones = [c for c, used in zip(candidates, uses, strict=True) if used is not None and used < cutoff_ms]
    hibernated = [c.workspace_id for c in idle_ones if _hibernate(c, idle)]
    for workspace_id in hibernated:
        defer_reconcile(workspace_id, Cause.lifecycle)
    return hibernated


def _candidates(idle_seconds: int) -> list[Candidate]:
    settled_before = utcnow() - timedelta(seconds=idle_seconds)
    query = select(Workspace).where(
        Workspace.lifecycle_state.in_(list(HIBERNATABLE_STATES)), Workspace.updated_at <= settled_before
    )
    found = []
    with session_scope() as session:
        for ws in session.scalars(query):
            url = control_url(get_settings().provider, ws.outputs or {}, ws.endpoint_url)
            token = reveal(session, ws.id, Purpose.control)
            if url and token:
                found.append(Candidate(ws.id, ws.generation, url, token))
    return found


def _last_use_ms(client: httpx.Client, candidate: Candidate) -> int | None:
    try:
        return get_activity(client, candidate.url, candidate.token)
    except ProviderError as exc:
        logger.warning("workspace %s: last use not read: %s", candidate.workspace_id, exc)
        return None


def _hibernate(candidate: Candidate, idle_seconds: int) -> bool:
    """Hibernate one workspace unless its lifecycle changed since it was read (then it is left for next time)."""
    with session_scope() as session:
        ws = repository.get(session, candidate.workspace_id, for_update=True)
        if ws is None or ws.generation != candidate.generation or ws.lifecycle_state not in HIBERNATABLE_STATES:
            return False
        service.transition(session, ws, Lifecycle.hibernated, ACTOR)
    logger.info("workspace %s: hibernated after %d s without a request", candidate.workspace_id, idle_seconds)
    return True
