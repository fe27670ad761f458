"""A stand-in for a workspace's Pod: ``python -m workspace_server`` on this machine with the environment of the
workspace's rendered Secret and ConfigMap (what the Deployment feeds its container), listening on a free loopback
port; boto3 in the server reaches the moto server as the Pod's would reach S3."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import httpx

from control_plane.kube.client import KubeClient
from tests.harness.moto import MotoServer
from tests.reconciler.conftest import password_hash
from tests.workspace_server.conftest import ServerProcess


def pod_env(kube: KubeClient, namespace: str) -> dict[str, str]:
    """The server's environment as its Pod gets it: the Secret's and the ConfigMap's keys."""
    secret = kube.get("v1", "Secret", "workspace-server-secrets", namespace)
    config = kube.get("v1", "ConfigMap", "workspace-server-config", namespace)
    assert secret is not None and config is not None
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} | dict(config["data"])


def start_pod(kube: KubeClient, namespace: str, moto: MotoServer, base_dir: Path) -> ServerProcess:
    """Run the workspace's server as its Pod would (local directories and port instead of the container's)."""
    runtime_dir, files_dir = base_dir / "run", base_dir / "files"
    runtime_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WS_", "CANOPY_"))}
    env |= pod_env(kube, namespace) | moto.client_env()
    env |= {"WS_LISTEN_HOST": "127.0.0.1", "WS_LISTEN_PORT": "0", "WS_FILES_DIR": str(files_dir)}
    env["WS_RUNTIME_DIR"] = str(runtime_dir)
    log_path = base_dir / "server.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "workspace_server"], env=env, stdout=log, stderr=log)
    server = ServerProcess(proc, runtime_dir, log_path, env["WS_DATABASE_URL"], files_dir, env=env)
    server.control_token = env["WS_CONTROL_TOKEN"]
    server.wait_ready(60)
    return server


def hand_over_admin(server: ServerProcess, email: str, username: str) -> None:
    """What the server does at its first start from ``WS_INITIAL_ADMIN_*`` (which the stand-in starts too late to
    see): the same code, through the control endpoint, with an argon2 hash of the test password."""
    response = httpx.put(
        f"{server.base_url}/api/v4/canopy/initial_admin",
        headers={"Authorization": f"Bearer {server.control_token}"},
        json={"email": email, "username": username, "password_hash": password_hash()},
        timeout=30,
    )
    assert response.status_code == 200, response.text
