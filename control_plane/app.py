"""The control-plane ASGI application."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from control_plane.accounts.api import router as signup_router
from control_plane.audit.api import router as audit_router
from control_plane.backups.api import router as backups_router
from control_plane.backups.drill_api import router as drills_router
from control_plane.cells.api import router as cells_router
from control_plane.contracts.api import router as contracts_router
from control_plane.core.body_limit import BodyLimitMiddleware
from control_plane.core.db import database_url, session_scope
from control_plane.core.deps import refuse_unstorable_text
from control_plane.core.health import MetricsMiddleware
from control_plane.core.health import router as health_router
from control_plane.core.migrate import require_migrated
from control_plane.core.problems import install_problem_handlers, problem_responses
from control_plane.core.request_context import RequestIdMiddleware
from control_plane.core.settings import get_settings
from control_plane.drift.api import router as workspace_health_router
from control_plane.exports.api import router as exports_router
from control_plane.moves.api import router as moves_router
from control_plane.organizations.api import router as organizations_router
from control_plane.proxy import WorkspaceProxy
from control_plane.releases import service as releases
from control_plane.releases.api import router as releases_router
from control_plane.rollouts.api import router as rollouts_router
from control_plane.sales.api import router as sales_router
from control_plane.subscriptions.api import router as billing_router
from control_plane.subscriptions.webhook_api import router as stripe_webhook_router
from control_plane.tokens.api import router as tokens_router
from control_plane.web import web_router
from control_plane.workspaces.api import router as workspaces_router
from control_plane.workspaces.api import wake_router
from control_plane.workspaces.waking import Waker


def create_app(*, check_migrations: bool = True) -> FastAPI:
    """Build the app; refuses to start on a database that is not migrated."""
    settings = get_settings()
    if check_migrations:
        require_migrated(database_url())
        with session_scope() as session:
            releases.ensure_bundled(session, settings)
            session.commit()
    app = FastAPI(
        title="Canopy control plane",
        version="0.1.0",
        description="Provisioning and tenant management for hosted team messaging.",
        dependencies=[Depends(refuse_unstorable_text)],
        responses=problem_responses(400, 422),
    )
    install_problem_handlers(app)
    app.state.waker = Waker(settings.wake_timeout_seconds)
    for router in (
        health_router,
        signup_router,
        organizations_router,
        moves_router,
        workspaces_router,
        workspace_health_router,
        exports_router,
        backups_router,
        drills_router,
        tokens_router,
        audit_router,
        cells_router,
        releases_router,
        rollouts_router,
        sales_router,
        billing_router,
        contracts_router,
        stripe_webhook_router,
        wake_router,
    ):
        app.include_router(router)
    app.include_router(web_router)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(RequestIdMiddleware)
    if settings.provider == "local":
        app.add_middleware(WorkspaceProxy, base_domain=settings.base_domain, waker=app.state.waker)
    return app
