"""Process entry point (``python -m workspace_server``, ``canopy-workspace-server``): lock the runtime directory,
migrate the database (in a forked child: the serving process never loads Alembic), bind the socket, serve until
SIGTERM.

With ``WS_WORKERS`` > 1 the process migrates, binds, then forks that many worker processes that serve the same
socket (each with its own connection pool and WebSocket hub; events cross them through Redis, as between
replicas). It publishes the port once every worker serves, forwards SIGTERM/SIGINT to them, and exits 1 if a worker
dies on its own (the others are stopped)."""

# ruff: noqa: E402 - see the line before uvicorn's import

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType

# uvicorn imports watchfiles, for a --reload this server never does, whenever it is installed (uvicorn[standard]
# brings it): 0.7 MB resident for nothing. With this, importing it fails and uvicorn does without.
sys.modules.setdefault("watchfiles", None)  # type: ignore[arg-type]

import psycopg
import uvicorn
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from workspace_server.app import create_app
from workspace_server.db import CONNECT_TIMEOUT_SECONDS, create_engine
from workspace_server.http_protocol import HttpProtocol
from workspace_server.metrics import RequestMetrics
from workspace_server.migrate import migrate_and_bootstrap, schema_is_current, upgrade_schema
from workspace_server.runtime import AlreadyRunning, RuntimeDir
from workspace_server.settings import Settings
from workspace_server.ws_protocol import WebSocketProtocol

log = logging.getLogger("workspace_server")

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_ALREADY_RUNNING = 3
GRACEFUL_SHUTDOWN_SECONDS = 10


WORKER_READY_TIMEOUT_SECONDS = 60


class _Server(uvicorn.Server):
    """A uvicorn server that says when it accepts connections (publishing the port, or telling the parent)."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, on_ready: Callable[[int], None]) -> None:
        super().__init__(config)
        self._sock = sock
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then call ``on_ready`` with the port."""
        await super().startup(sockets=sockets)
        if not self.started:
            return
        host, port = self._sock.getsockname()[:2]
        self._on_ready(port)
        log.info("serving on %s:%d", host, port)


def _bind(host: str, port: int) -> socket.socket:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return socket.create_server(address, family=family)


def _publish_port(runtime: RuntimeDir | None) -> Callable[[int], None]:
    def publish(port: int) -> None:
        if runtime is not None:
            runtime.publish_port(port)

    return publish


async def _serve(settings: Settings, engine: AsyncEngine, config: uvicorn.Config, runtime: RuntimeDir | None) -> None:
    """Migrate, bind and serve until SIGTERM (one process: ``WS_WORKERS`` 1)."""
    try:
        await migrate_and_bootstrap(engine, settings)
        sock = _bind(settings.listen_host, settings.listen_port)
        await _Server(config, sock, _publish_port(runtime)).serve(sockets=[sock])
    finally:
        await engine.dispose()


def _uvicorn_config(settings: Settings, engine: AsyncEngine, metrics: RequestMetrics) -> uvicorn.Config:
    """uvicorn's configuration; on SIGTERM uvicorn drains: it closes the listening socket, lets the requests in
    flight finish (for up to GRACEFUL_SHUTDOWN_SECONDS), closes idle keep-alive connections and WebSockets (1001)."""
    return uvicorn.Config(
        create_app(settings, engine, metrics),
        lifespan="on",
        http=HttpProtocol,
        ws=WebSocketProtocol,
        # Events are serialised once for all connections; per-connection compression would undo that.
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


async def _migrate(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await migrate_and_bootstrap(engine, settings)
    finally:
        await engine.dispose()


async def _upgrade_schema(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await upgrade_schema(engine)
    finally:
        await engine.dispose()


def upgrade_in_child(settings: Settings) -> None:
    """Apply pending migrations, if any, in a forked child and wait for it, so that Alembic (about 9 MB that would
    stay resident) is never imported by the process that serves. Exits like the server would if they fail."""
    if schema_is_current(settings.database_url.get_secret_value(), CONNECT_TIMEOUT_SECONDS):
        return
    pid = os.fork()
    if pid == 0:
        status = EXIT_FAILED
        try:
            asyncio.run(_upgrade_schema(settings))
            status = 0
        except (OSError, DBAPIError) as exc:
            log.error("cannot migrate: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        except BaseException:
            log.exception("cannot migrate")
        finally:
            logging.shutdown()
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(EXIT_FAILED)


def _run_worker(settings: Settings, sock: socket.socket, ready_fd: int, metrics: RequestMetrics, index: int) -> int:
    """Worker ``index``'s life (after the fork): serve ``sock`` until SIGTERM; answers the exit status."""
    metrics.use_row(index)

    def ready(port: int) -> None:
        with contextlib.suppress(OSError):  # the parent stopped before this worker was ready: SIGTERM follows
            os.write(ready_fd, b"r")
        os.close(ready_fd)

    try:
        engine = create_engine(settings)
        config = _uvicorn_config(settings, engine, metrics)

        async def serve() -> None:
            try:
                await _Server(config, sock, ready).serve(sockets=[sock])
            finally:
                await engine.dispose()

        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(serve())
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 0
    except BaseException:
        log.exception("worker %d failed", os.getpid())
        return EXIT_FAILED
    return 0


def _serve_workers(settings: Settings, runtime: RuntimeDir | None) -> None:
    """Migrate, bind, fork ``settings.workers`` workers on the socket, publish the port when they all serve, and
    wait for them (see the module docstring)."""
    asyncio.run(_migrate(settings))
    sock = _bind(settings.listen_host, settings.listen_port)
    metrics = RequestMetrics(settings.workers)
    ready_r, ready_w = os.pipe()
    workers: list[int] = []
    try:
        for index in range(settings.workers):
            pid = os.fork()
            if pid == 0:  # the worker
                os.close(ready_r)
                status = EXIT_FAILED
                try:
                    status = _run_worker(settings, sock, ready_w, metrics, index)
                finally:
                    logging.shutdown()
                    os._exit(status)
            workers.append(pid)
        os.close(ready_w)
        ready, deadline = 0, time.monotonic() + WORKER_READY_TIMEOUT_SECONDS
        while ready < len(workers):
            readable, _, _ = select.select([ready_r], [], [], max(0.0, deadline - time.monotonic()))
            got = os.read(ready_r, 64) if readable else b""
            if not got:
                log.error("cannot serve: %d of %d workers started", ready, len(workers))
                sys.exit(EXIT_FAILED)
            ready += len(got)
        host, port = sock.getsockname()[:2]
        if runtime is not None:
            runtime.publish_port(port)
        log.info("serving on %s:%d with %d workers", host, port, len(workers))
        pid, status = os.wait()
        workers.remove(pid)
        log.error("worker %d exited (status %d); stopping", pid, status)
        sys.exit(EXIT_FAILED)
    finally:
        # Closed first: once the workers close theirs, the socket is gone and new connections are refused (were it
        # still open here, the kernel would queue them for nobody).
        sock.close()
        os.close(ready_r)
        _stop_workers(workers)


def _stop_workers(workers: list[int]) -> None:
    """SIGTERM the workers and wait for them (SIGKILL those still running after the graceful shutdown time)."""
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + GRACEFUL_SHUTDOWN_SECONDS + 5
    while workers:
        for pid in list(workers):
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
            workers.remove(pid)
        if workers and time.monotonic() > deadline:
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        if workers:
            time.sleep(0.05)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGINT outside uvicorn's own handling (and re-raised by uvicorn after its graceful shutdown):
    unwind normally so that the runtime files are cleaned up, and exit 0."""
    log.info("stopping on %s", signal.Signals(signum).name)
    raise SystemExit(0)


def _load_settings() -> Settings:
    try:
        return Settings.from_environment()
    except ValidationError as exc:
        # Report field and reason only: the rejected values may be secrets.
        for error in exc.errors():
            field = "WS_" + "_".join(str(part) for part in error["loc"]).upper()
            log.error("invalid configuration: %s: %s", field, error["msg"])
        sys.exit(EXIT_BAD_CONFIG)


def main() -> None:
    """Run one workspace server until SIGTERM."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    settings = _load_settings()
    runtime = RuntimeDir(settings.runtime_dir) if settings.runtime_dir is not None else None
    if runtime is not None:
        try:
            runtime.acquire()
        except AlreadyRunning:
            log.error("another workspace server already runs for this workspace (%s is locked)", runtime.path)
            sys.exit(EXIT_ALREADY_RUNNING)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_signal)
    try:
        settings.files_dir.mkdir(parents=True, exist_ok=True)
        upgrade_in_child(settings)
        if settings.workers > 1:
            _serve_workers(settings, runtime)
            return
        engine = create_engine(settings)
        config = _uvicorn_config(settings, engine, RequestMetrics(1))
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve(settings, engine, config, runtime))
    except (OSError, DBAPIError, psycopg.Error) as exc:
        log.error("cannot serve: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        sys.exit(EXIT_FAILED)
    finally:
        if runtime is not None:
            runtime.release()
    log.info("stopped")


if __name__ == "__main__":
    main()
