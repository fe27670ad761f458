"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import logging
import time

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_plane.backups import drills
from control_plane.core.db import get_engine, session_scope
from control_plane.core.fleet_metrics import CountersCollector, QueueCollector
from control_plane.subscriptions import reconciliation

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)

REQUESTS = Counter("canopy_http_requests_total", "HTTP requests served", ["method", "status"])
LATENCY = Histogram("canopy_http_request_seconds", "HTTP request latency", ["method"])
BILLING_DRIFT = Gauge("canopy_billing_drift", "Drift items found by the latest billing reconciliation")
BILLING_RECONCILED = Gauge(
    "canopy_billing_reconciliation_timestamp_seconds", "When the latest billing reconciliation ran (Unix time)"
)
STRIPE_EVENTS_UNPROCESSED = Gauge("canopy_stripe_events_unprocessed", "Stripe webhook events stored, not applied yet")
BACKUP_DRILLS = Gauge(
    "canopy_backup_drills_latest", "Backups whose newest restore drill had this outcome (ok, corrupt)", ["outcome"]
)

REGISTRY.register(QueueCollector())
REGISTRY.register(CountersCollector())
"""The fleet's series (queue, reconciles by cause, AWS calls and budget): :mod:`control_plane.core.fleet_metrics`."""


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(response: Response) -> dict[str, str]:
    """The process can reach its database."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        response.status_code = 503
        return {"status": "unavailable", "database": "unreachable"}
    return {"status": "ok", "database": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics() -> Response:
    """Prometheus metrics (the billing, drill and fleet figures are read from the database and Redis at each
    scrape)."""
    _read_billing_gauges()
    _read_drill_gauges()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def _read_billing_gauges() -> None:
    """Set the billing gauges from the database; they keep their last values while it cannot be read."""
    try:
        with session_scope() as session:
            figures = reconciliation.figures(session)
    except SQLAlchemyError as e:
        log.warning("metrics: billing figures unavailable: %s", type(e).__name__)
        return
    BILLING_DRIFT.set(figures.drift)
    BILLING_RECONCILED.set(figures.reconciled_at.timestamp() if figures.reconciled_at is not None else 0)
    STRIPE_EVENTS_UNPROCESSED.set(figures.unprocessed_events)


def _read_drill_gauges() -> None:
    """Set the drill gauges from the database; they keep their last values while it cannot be read."""
    try:
        with session_scope() as session:
            outcomes = drills.latest_outcomes(session)
    except SQLAlchemyError as e:
        log.warning("metrics: drill outcomes unavailable: %s", type(e).__name__)
        return
    for outcome, count in outcomes.items():
        BACKUP_DRILLS.labels(outcome.value).set(count)


class MetricsMiddleware:
    """Counts and times HTTP requests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            REQUESTS.labels(scope["method"], str(status)).inc()
            LATENCY.labels(scope["method"]).observe(time.perf_counter() - started)
