"""Wake on request: a request for a sleeping workspace wakes it and is held until the workspace serves.

Used by the local runtime's proxy (:mod:`control_plane.proxy`, which then forwards the request) and by the wake
endpoint a sleeping workspace's Ingress falls back to on Kubernetes (``/wake/<slug>/...``, which then sends the
client back to the workspace's address).

- :func:`claim` (one short transaction, the row locked): a hibernated workspace is woken into the state it was
  hibernated from (:func:`service.wake_row`, audited ``workspace.wake`` by ``request``), never any other, and its
  reconcile is deferred before every other waiting job (cause ``wake``, first in
  :data:`~control_plane.reconciler.queue.PRIORITIES`). Requests racing in several API processes are serialised by
  the row lock: the first wakes it, the others find it awake and wait for the same generation.
- :func:`serving`: the workspace's address once the reconcile of that generation has converged (its server up, its
  billing plan told), so the first request is answered exactly as every later one (a suspended workspace is
  read-only from it on).
- :class:`Waker`: one wake per address and process however many requests wait (they share one task), polling
  :func:`serving` every :data:`POLL_SECONDS` until ``wake_timeout_seconds`` (then :class:`WakeFailed`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select

from control_plane.core.db import session_scope
from control_plane.core.problems import Problem
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces import repository, service
from control_plane.workspaces.lifecycle import RUNNING_STATES, Lifecycle
from control_plane.workspaces.models import Workspace

ACTOR: Final = "request"
POLL_SECONDS: Final = 0.05
WAKEABLE_STATES: Final = (RUNNING_STATES - {Lifecycle.provisioning}) | {Lifecycle.hibernated}
"""What a request may wait for: asleep, or running with its server (re)starting."""


@dataclass(frozen=True)
class Claim:
    """What a waiting request waits for: the reconcile of this generation of the workspace."""

    workspace_id: uuid.UUID
    generation: int


@dataclass(frozen=True)
class Serving:
    """Where a woken workspace answers: its server's local port (local runtime) and its public address; ``waited``
    says whether it was not serving yet when asked."""

    port: int | None
    endpoint_url: str | None
    waited: bool = True


RETRY_AFTER_SECONDS: Final = 5


class WakeFailed(Exception):
    """The workspace did not come up within the wake timeout (or stopped being wanted up meanwhile)."""


def still_waking() -> Problem:
    """What a request that waited the whole wake timeout gets: ``503 workspace-waking`` with ``Retry-After``."""
    problem = Problem(503, "workspace-waking", "Service unavailable", "The workspace is still waking up; try again")
    problem.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return problem


class BeingRestored(WakeFailed):
    """The workspace is being restored in place: nothing to wait for (it comes back when the restore ends)."""


def being_restored() -> Problem:
    """What a request for a workspace being restored in place gets at once: ``503 workspace-restoring`` with
    ``Retry-After`` (it comes back with the backup's content)."""
    problem = Problem(503, "workspace-restoring", "Service unavailable", "The workspace is being restored; try again")
    problem.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return problem


def claim(slug: str) -> Claim | None:
    """Wake the workspace at ``slug`` if it sleeps (committed, then its reconcile deferred); None when no workspace
    there can serve (unknown, provisioning, being deleted); :class:`BeingRestored` while it is restored in place."""
    with session_scope() as session:
        ws = repository.live_by_slug(session, slug, for_update=True)
        if ws is not None and ws.lifecycle_state == Lifecycle.restoring:
            raise BeingRestored("the workspace is being restored")
        if ws is None or ws.lifecycle_state not in WAKEABLE_STATES:
            return None
        woken = ws.lifecycle_state == Lifecycle.hibernated
        if woken:
            service.wake_row(session, ws, ACTOR)
        claimed = Claim(ws.id, ws.generation)
    if woken:
        defer_reconcile(claimed.workspace_id, Cause.wake)
    return claimed


def serving(claimed: Claim) -> Serving | None:
    """Where the workspace answers once the reconcile of the claimed generation converged; None until then."""
    with session_scope() as session:
        row = session.execute(
            select(
                Workspace.lifecycle_state,
                Workspace.observed_generation,
                Workspace.conditions,
                Workspace.outputs,
                Workspace.endpoint_url,
            ).where(Workspace.id == claimed.workspace_id)
        ).one_or_none()
    if row is None or row.lifecycle_state not in RUNNING_STATES:
        raise WakeFailed("the workspace is no longer wanted up")
    available = any(c.get("type") == "Available" and c.get("status") == "True" for c in row.conditions or [])
    if row.observed_generation < claimed.generation or not available:
        return None
    port = (row.outputs or {}).get("port")
    return Serving(int(port) if port else None, row.endpoint_url)


class Waker:
    """Wakes workspaces for waiting requests, one wake per address at a time in this process."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._waking: dict[str, asyncio.Task[Serving | None]] = {}

    async def wake(self, slug: str) -> Serving | None:
        """Where the workspace at ``slug`` serves once awake; None when there is none to wake (:func:`claim`).
        Raises :class:`WakeFailed` after the wake timeout."""
        task = self._waking.get(slug)
        if task is None or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.create_task(self._wake(slug))
            self._waking[slug] = task
            task.add_done_callback(lambda done: self._forget(slug, done))
        # A waiting client that leaves must not cancel the wake the others wait for.
        return await asyncio.shield(task)

    def _forget(self, slug: str, done: asyncio.Task[Serving | None]) -> None:
        if self._waking.get(slug) is done:
            del self._waking[slug]

    async def _wake(self, slug: str) -> Serving | None:
        claimed = await asyncio.to_thread(claim, slug)
        if claimed is None:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        ready = await asyncio.to_thread(serving, claimed)
        if ready is not None:
            return dataclasses.replace(ready, waited=False)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            ready = await asyncio.to_thread(serving, claimed)
            if ready is not None:
                return ready
            if loop.time() >= deadline:
                raise WakeFailed(f"not serving after {self._timeout:g}s")
