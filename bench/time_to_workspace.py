"""Time from signup to the first successful authenticated workspace API call, on the embedded default.

Starts the embedded PostgreSQL and `canopy run` (one worker, local workspace runtime) in a temporary
state directory, then for each of N workspaces: POST /api/v1/signup, confirm the email with the link
from the outbox, and poll the workspace through the control plane's `<slug>.localhost` proxy until
`POST /api/v4/users/login` with the signup credentials and `GET /api/v4/users/me` succeed.

    .venv/bin/python bench/time_to_workspace.py [--count 20]

Prints p50 and p95 seconds (target: p50 <= 3 s, p95 <= 5 s on a 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from control_plane.embedded import start_postgres  # noqa: E402

PASSWORD = "bench password 1234"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("control plane did not become ready")


def verification_token(db_url: str, email: str) -> str:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT body FROM mail_outbox WHERE to_address = %s ORDER BY id DESC LIMIT 1", (email,)
        ).fetchone()
    assert row, f"no mail for {email}"
    match = re.search(r"token=([A-Za-z0-9_\-]+)", row[0])
    assert match
    return match.group(1)


def first_authenticated_call(client: httpx.Client, host: str, email: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            login = client.post(
                "/api/v4/users/login", json={"login_id": email, "password": PASSWORD}, headers={"Host": host}
            )
            if login.status_code == 200:
                me = client.get(
                    "/api/v4/users/me", headers={"Host": host, "Authorization": f"Bearer {login.headers['Token']}"}
                )
                if me.status_code == 200 and me.json()["email"] == email:
                    return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise SystemExit(f"workspace of {email} not reachable within {timeout}s")


def one_workspace(client: httpx.Client, db_url: str, port: int, index: int, run_id: str) -> float:
    slug = f"bench-{run_id}-{index}"
    email = f"owner{index}@{slug}.example.com"
    started = time.perf_counter()
    r = client.post("/api/v1/signup", json={"email": email, "workspace": slug, "password": PASSWORD})
    r.raise_for_status()
    client.post("/api/v1/signup/verify", json={"token": verification_token(db_url, email)}).raise_for_status()
    first_authenticated_call(client, f"{slug}.localhost:{port}", email, timeout=60)
    return time.perf_counter() - started


def canopy_env(state: Path, db_url: str, port: int) -> dict[str, str]:
    """The environment of a dev-mode control plane on ``db_url`` serving ``port`` (signups not rate limited)."""
    return {
        **os.environ,
        "CANOPY_DATABASE_URL": db_url,
        "CANOPY_STATE_DIR": str(state),
        "CANOPY_DEV_MODE": "true",
        "CANOPY_PUBLIC_URL": f"http://localhost:{port}",
        "CANOPY_SIGNUP_RATE_LIMIT": "100000",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="canopy-bench-"))
    db_url = start_postgres(state)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = canopy_env(state, db_url, port)
    server = subprocess.Popen(
        [sys.executable, "-m", "control_plane.cli", "run", "--port", str(port)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(state / "canopy.log", "wb"),  # noqa: SIM115
    )
    try:
        wait_ready(base, time.monotonic() + 60)
        run_id = os.urandom(3).hex()
        with httpx.Client(base_url=base, timeout=10) as client:
            times = [one_workspace(client, db_url, port, i, run_id) for i in range(args.count)]
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # `canopy run` stops its workspace servers on exit
        server.wait(60)
    print(f"time to workspace over {len(times)} workspaces (embedded default, sequential signups):")
    print(
        f"  p50 {percentile(times, 0.50):.2f} s   p95 {percentile(times, 0.95):.2f} s   "
        f"min {min(times):.2f} s   max {max(times):.2f} s   mean {statistics.mean(times):.2f} s"
    )
    print("  target: p50 <= 3 s, p95 <= 5 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
