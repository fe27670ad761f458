"""The FastAPI application: routers, error handling and request middleware."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp

from workspace_server import (
    activity,
    bots,
    canopy_admin,
    channels,
    directory,
    emoji,
    events,
    files,
    health_report,
    hooks,
    licence,
    metrics,
    post_actions,
    posts,
    preferences,
    reactions,
    realtime,
    search,
    statuses,
    system,
    teams,
    tokens,
    users,
    websocket,
)
from workspace_server.post_writer import PostWriter
from workspace_server.settings import Settings
from workspace_server.web import JSONResponse, RequestContextMiddleware, install_error_handlers


def create_app(settings: Settings, engine: AsyncEngine, request_metrics: metrics.RequestMetrics) -> ASGIApp:
    """The ASGI app serving ``settings``' workspace from ``engine``'s database (which the caller disposes of),
    counting its requests in ``request_metrics``."""
    hub = events.Hub(engine, settings.team_name, settings.redis_url)
    post_writer = PostWriter(settings.database_url.get_secret_value())
    used = activity.Activity()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await hub.start()
        events.set_hub(hub)
        try:
            async with (
                activity.flushing(used, engine, settings.activity_flush_seconds),
                health_report.reporting(settings, engine),
            ):
                yield
        finally:
            await post_writer.close()
            events.set_hub(None)
            await hub.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Canopy workspace server",
        default_response_class=JSONResponse,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # FastAPI's built-in OpenTelemetry spans cost time on every request; off until we export them.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.hub = hub
    app.state.post_writer = post_writer
    app.state.activity = used
    app.state.metrics = request_metrics
    # Order matters where paths overlap: /users/username/{name} before /users/{user_id}/teams.
    # /users/tokens/... before /users/{user_id}. Routes are matched in this order on every request: posts, the
    # busiest, go first (none of their paths overlaps those of the modules they pass).
    for module in (
        posts,
        system,
        realtime,
        tokens,
        bots,
        users,
        teams,
        channels,
        directory,
        post_actions,
        reactions,
        search,
        files,
        hooks,
        canopy_admin,
        preferences,
        statuses,
        licence,
        emoji,
        metrics,
        websocket,
    ):
        app.include_router(module.router)
    install_error_handlers(app)
    # Around the framework: the fast path for new posts runs inside the request context (ids, headers, paths).
    fast_posts = posts.CreatePostFastPath(app, engine=engine, writer=post_writer)
    served = activity.ActivityMiddleware(websocket.RawSendMiddleware(RequestContextMiddleware(fast_posts)), used)
    return metrics.MetricsMiddleware(served, request_metrics)
