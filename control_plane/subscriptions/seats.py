"""Seat collection: one snapshot of each billed workspace's activated users per day, and at billing events
(billed: a Professional workspace of a subscribed organization, an Enterprise one of an organization with a contract).

A periodic task reads the workspace servers in bulk (``GET /api/v4/canopy/usage``, several at once) and inserts
the snapshots in one statement; nothing on a request path ever calls a workspace server for seats. A workspace
that is being deleted counts zero from then on.
"""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import Select, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from control_plane.contracts.models import Contract
from control_plane.core.clock import utcnow
from control_plane.core.db import session_scope
from control_plane.core.settings import get_settings
from control_plane.credentials.models import Purpose
from control_plane.credentials.service import reveal
from control_plane.providers.base import ProviderError
from control_plane.providers.workspace_client import control_url, get_activated_users, shared_client
from control_plane.subscriptions.models import SeatSnapshot, SnapshotReason, Subscription
from control_plane.workspaces.lifecycle import RUNNING_STATES, Lifecycle
from control_plane.workspaces.models import Tier, Workspace

logger = logging.getLogger(__name__)

GONE_STATES = frozenset({Lifecycle.pending_deletion, Lifecycle.deleted})


@dataclass(frozen=True)
class Target:
    """A workspace server to read."""

    workspace_id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    token: str


@dataclass
class CollectionOutcome:
    """How a collection went: snapshots recorded, servers that could not be read."""

    recorded: int = 0
    failed: int = 0


def collect(
    now: datetime | None = None,
    organization_id: uuid.UUID | None = None,
    reason: SnapshotReason = SnapshotReason.daily,
) -> CollectionOutcome:
    """Snapshot the seats of every billed workspace (of one organization, if given) that has none today for a
    daily collection, or all of them at a billing event."""
    now = now or utcnow()
    settings = get_settings()
    with session_scope() as session:
        targets = _targets(session, now, organization_id, reason)
        zeroes = _gone_since_last_snapshot(session, organization_id)
    counts: list[tuple[Target, int | None]] = []
    if targets:
        client = shared_client()
        with ThreadPoolExecutor(max_workers=settings.billing_collection_concurrency) as pool:
            counts = list(pool.map(lambda target: (target, _read(client, target)), targets))
    rows = [_row(t.workspace_id, t.organization_id, seats, now, reason) for t, seats in counts if seats is not None]
    rows += [_row(ws_id, org_id, 0, now, SnapshotReason.billing_event) for ws_id, org_id in zeroes]
    if rows:
        with session_scope() as session:
            session.execute(insert(SeatSnapshot).values(rows).on_conflict_do_nothing())
    return CollectionOutcome(recorded=len(rows), failed=sum(1 for _, seats in counts if seats is None))


def _billed_workspaces(organization_id: uuid.UUID | None) -> Select[Any]:
    """Professional workspaces of organizations with a subscription, Enterprise ones of organizations with a
    contract (whose true-forward counts their seats)."""
    professional = select(Subscription.organization_id).where(Subscription.organization_id == Workspace.organization_id)
    enterprise = select(Contract.organization_id).where(Contract.organization_id == Workspace.organization_id)
    query = select(Workspace).where(
        ((Workspace.tier == Tier.professional) & professional.exists())
        | ((Workspace.tier == Tier.enterprise) & enterprise.exists())
    )
    return query if organization_id is None else query.where(Workspace.organization_id == organization_id)


def _targets(
    session: Session, now: datetime, organization_id: uuid.UUID | None, reason: SnapshotReason
) -> list[Target]:
    query = _billed_workspaces(organization_id).where(Workspace.lifecycle_state.in_(RUNNING_STATES))
    if reason is SnapshotReason.daily:
        taken_today = exists().where(
            SeatSnapshot.workspace_id == Workspace.id,
            SeatSnapshot.day == now.date(),
            SeatSnapshot.reason == SnapshotReason.daily,
        )
        query = query.where(~taken_today)
    targets = []
    for ws in session.scalars(query):
        url = control_url(get_settings().provider, ws.outputs or {}, ws.endpoint_url)
        token = reveal(session, ws.id, Purpose.control)
        if url and token:
            targets.append(Target(ws.id, ws.organization_id, url, token))
    return targets


def _gone_since_last_snapshot(session: Session, organization_id: uuid.UUID | None) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Workspaces being deleted whose latest snapshot still counts seats."""
    latest = (
        select(SeatSnapshot.seats)
        .where(SeatSnapshot.workspace_id == Workspace.id)
        .order_by(SeatSnapshot.taken_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = _billed_workspaces(organization_id).where(Workspace.lifecycle_state.in_(GONE_STATES), latest > 0)
    return [(ws.id, ws.organization_id) for ws in session.scalars(query)]


def _read(client: httpx.Client, target: Target) -> int | None:
    try:
        return get_activated_users(client, target.url, target.token)
    except ProviderError as exc:
        logger.warning("workspace %s: seats not collected: %s", target.workspace_id, exc)
        return None


def _row(
    workspace_id: uuid.UUID, organization_id: uuid.UUID, seats: int, now: datetime, reason: SnapshotReason
) -> dict[str, object]:
    return {
        "workspace_id": workspace_id,
        "organization_id": organization_id,
        "taken_at": now,
        "day": now.date(),
        "seats": seats,
        "reason": reason,
    }
