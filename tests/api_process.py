"""``canopy api`` as the product starts it, on a loopback port, for tests that need a real listening API."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.waiting import wait_until

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    """A loopback port free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ready(url: str) -> bool:
    """Whether the API at ``url`` answers ``/readyz``."""
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    return False


@contextlib.contextmanager
def canopy_api(env: Mapping[str, str], port: int, log: Path) -> Iterator[str]:
    """``canopy api`` on ``port`` with exactly ``env``, its output in ``log``; yields its URL once it is ready, and
    stops it at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_plane.cli", "api", "--port", str(port)],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            return ready(url)

        wait_until(lambda: f"the API\n{log.read_text()}", up, STARTUP_TIMEOUT)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(15)
