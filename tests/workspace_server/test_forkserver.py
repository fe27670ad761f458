"""The fork server (``python -m workspace_server.forkserver <root>``): it starts workspace servers by forking itself,
refuses a directory outside its root and bad requests, and exits when its stdin closes while the servers it
started keep serving, each holding its ``server.lock`` open (how the control plane knows it)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.providers.local import holds_open, process_gone
from tests.waiting import wait_until
from tests.workspace_server.conftest import server_env


@pytest.fixture
def fork_server(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "workspace_server.forkserver", str(tmp_path / "root")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    yield process
    if process.poll() is None:
        process.kill()
        process.wait()


def ask(process: subprocess.Popen[str], request: Any) -> dict[str, Any]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(request) + "\n")
    process.stdin.flush()
    answer: dict[str, Any] = json.loads(process.stdout.readline())
    return answer


def test_servers_are_forked_and_outlive_the_fork_server(
    fork_server: subprocess.Popen[str], tmp_path: Path, create_database: Callable[[str], str]
) -> None:
    runtime = tmp_path / "root" / "ws" / "runtime"
    runtime.mkdir(parents=True)
    env = server_env(create_database("forked"), runtime, tmp_path / "files")
    refused = ask(fork_server, {"env": env, "cwd": str(tmp_path), "log": str(tmp_path / "log")})
    assert refused == {"error": f"ValueError: {tmp_path} is not under {tmp_path / 'root'}"}
    assert "error" in ask(fork_server, {"env": {"A": 1}, "cwd": str(runtime), "log": str(tmp_path / "log")})
    assert "error" in ask(fork_server, ["not", "a", "request"])

    pid = ask(fork_server, {"env": env, "cwd": str(runtime), "log": str(runtime / "server.log")})["pid"]
    try:
        wait_until("the forked server's port", lambda: (runtime / "server.port").exists(), timeout=60)
        port = int((runtime / "server.port").read_text())
        assert httpx.get(f"http://127.0.0.1:{port}/api/v4/system/ping", timeout=10).status_code == 200
        assert holds_open(pid, runtime / "server.lock") and not holds_open(fork_server.pid, runtime / "server.lock")
        assert os.getsid(pid) == pid, "a session of its own"
        assert "serving on 127.0.0.1" in (runtime / "server.log").read_text()

        assert fork_server.stdin is not None
        fork_server.stdin.close()
        assert fork_server.wait(30) == 0
        assert httpx.get(f"http://127.0.0.1:{port}/api/v4/system/ping", timeout=10).status_code == 200
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until("the server to stop", lambda: process_gone(pid), timeout=30)
    assert not (runtime / "server.port").exists()
