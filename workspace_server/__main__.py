"""Process entry point (``python -m workspace_server``, ``canopy-workspace-server``): lock the runtime directory,
migrate the database, bind the socket, serve until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from types import FrameType

import uvicorn
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from workspace_server.app import create_app
from workspace_server.db import create_engine
from workspace_server.migrate import migrate_and_bootstrap
from workspace_server.runtime import AlreadyRunning, RuntimeDir
from workspace_server.settings import Settings

log = logging.getLogger("workspace_server")

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_ALREADY_RUNNING = 3
GRACEFUL_SHUTDOWN_SECONDS = 10


class _Server(uvicorn.Server):
    """A uvicorn server that publishes its port once it accepts connections."""

    def __init__(self, config: uvicorn.Config, sock: socket.socket, runtime: RuntimeDir | None) -> None:
        super().__init__(config)
        self._sock = sock
        self._runtime = runtime

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start serving, then write the port file."""
        await super().startup(sockets=sockets)
        if not self.started:
            return
        host, port = self._sock.getsockname()[:2]
        if self._runtime is not None:
            self._runtime.publish_port(port)
        log.info("serving on %s:%d", host, port)


def _bind(host: str, port: int) -> socket.socket:
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    return socket.create_server(address, family=family)


async def _serve(settings: Settings, engine: AsyncEngine, config: uvicorn.Config, runtime: RuntimeDir | None) -> None:
    try:
        await migrate_and_bootstrap(engine, settings)
        sock = _bind(settings.listen_host, settings.listen_port)
        await _Server(config, sock, runtime).serve(sockets=[sock])
    finally:
        await engine.dispose()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """SIGTERM/SIGINT outside uvicorn's own handling (and re-raised by uvicorn after its graceful shutdown):
    unwind normally so that the runtime files are cleaned up, and exit 0."""
    log.info("stopping on %s", signal.Signals(signum).name)
    raise SystemExit(0)


def _load_settings() -> Settings:
    try:
        return Settings()
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
        engine = create_engine(settings)
        config = uvicorn.Config(
            create_app(settings, engine),
            lifespan="on",
            ws="websockets-sansio",
            # Events are serialised once for all connections; per-connection compression would undo that.
            ws_per_message_deflate=False,
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(_serve(settings, engine, config, runtime))
    except (OSError, DBAPIError) as exc:
        log.error("cannot serve: %s: %s", type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")
        sys.exit(EXIT_FAILED)
    finally:
        if runtime is not None:
            runtime.release()
    log.info("stopped")


if __name__ == "__main__":
    main()
