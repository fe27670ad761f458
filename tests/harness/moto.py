"""A moto server in a process of its own: boto3 talks to it over HTTP, nothing in the tests' process is patched.

Use the ``moto_server`` fixture (import it into a conftest.py)::

    from tests.harness.moto import moto_server  # noqa: F401

It starts ``moto_server`` (:mod:`tests.harness.moto_main`: each EKS cluster gets an OIDC issuer of its own, as
in AWS) once per session on a free loopback port and points boto3 at it through
the standard environment (``AWS_ENDPOINT_URL``, fake credentials, ``AWS_DEFAULT_REGION``). State
is shared by the whole session: name things uniquely, or call :meth:`MotoServer.reset` (about 1 s)
where a test needs an empty account. Emulator traps are listed in shared/design.md section 8.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REGION = "eu-west-1"
ACCOUNT_ID = "123456789012"  # moto's default account


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class MotoServer:
    """A running ``moto_server`` subprocess."""

    endpoint: str
    process: subprocess.Popen[bytes]
    region: str = REGION

    def client_env(self) -> dict[str, str]:
        """What boto3 needs to reach this server and nothing else."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
        }

    def reset(self) -> None:
        """Forget every resource of every service."""
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30):
            pass

    def stop(self) -> None:
        """Stop the server."""
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_moto_server(timeout: float = 30.0) -> MotoServer:
    """Start ``moto_server`` on 127.0.0.1 and wait until it answers."""
    port = _free_port()
    # EKS node roles attach AWS policies; ACM certificates stay PENDING_VALIDATION for a second, then are ISSUED
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "MOTO_ACM_VALIDATION_WAIT": "1"}
    process = subprocess.Popen(
        [sys.executable, "-P", str(Path(__file__).with_name("moto_main.py")), "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = MotoServer(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1):
                return server
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"moto_server did not answer within {timeout:g}s")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """The session's moto server, with the process environment pointing boto3 at it (undone afterwards)."""
    server = start_moto_server()
    patch = pytest.MonkeyPatch()
    for key, value in server.client_env().items():
        patch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        patch.delenv(key, raising=False)
    try:
        yield server
    finally:
        patch.undo()
        server.stop()
