"""Wake latency on the embedded default: from the first request for a hibernated workspace to its first answer.

Starts the embedded PostgreSQL and `canopy run` (one worker, local workspace runtime, the API with its proxy) in a
temporary state directory, signs up N workspaces (POST /api/v1/signup, confirmed with the link from the outbox),
waits until they serve, hibernates them all (POST /api/v1/workspaces/{id}/hibernate as an operator) and waits until
no server runs. Then, one workspace at a time, it times `GET /w/<slug>/api/v4/config/client?format=old` (what a
client asks first) through the proxy: the request wakes the workspace and is held until it serves. Finally it wakes
them again all at once (one request each, at the same moment).

    .venv/bin/python bench/data_lifecycle.py [--count 20]

Prints p50 and p95 seconds (target, one at a time: p50 <= 1 s, p95 <= 1.5 s on a 2-core machine) and where the
time goes: the reconcile's steps as the worker logged them (medians), and the rest (the wake's transaction, the
job's pickup, the proxy's polling and the request itself).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.time_to_workspace import canopy_env, free_port, percentile, verification_token  # noqa: E402
from control_plane.embedded import start_postgres  # noqa: E402

PASSWORD = "bench password 1234"
STEP_LINE = re.compile(r"workspace ([0-9a-f-]{36}): (\w+) ensured in ([0-9.]+) s")
JOB_LINE = re.compile(r"Job reconcile_workspace\[\d+\]\(workspace_id='([0-9a-f-]{36})'\) ended .* lasted ([0-9.]+) s")


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def states(db_url: str) -> dict[str, tuple[str, str, bool]]:
    """slug -> (id, lifecycle state, Available) of every workspace."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT slug, id::text, lifecycle_state::text, "
            'coalesce(conditions @> \'[{"type": "Available", "status": "True"}]\', false) FROM workspaces'
        ).fetchall()
    return {slug: (ws_id, state, available) for slug, ws_id, state, available in rows}


def figures(label: str, times: list[float]) -> None:
    print(
        f"{label}: p50 {percentile(times, 0.50):.2f} s   p95 {percentile(times, 0.95):.2f} s   "
        f"min {min(times):.2f} s   max {max(times):.2f} s   mean {statistics.mean(times):.2f} s"
    )


def wake_one(client: httpx.Client, slug: str) -> float:
    started = time.perf_counter()
    response = client.get(f"/w/{slug}/api/v4/config/client", params={"format": "old"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{slug}: {response.status_code} {response.text[:300]}")
    return elapsed


def hibernate_all(base: str, env: dict[str, str], db_url: str, slugs: list[str]) -> None:
    email = f"op-{os.urandom(3).hex()}@bench.example.com"
    token = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "create-account", "--email", email, "--role", "operator"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    found = states(db_url)
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        for slug in slugs:
            client.post(f"/api/v1/workspaces/{found[slug][0]}/hibernate").raise_for_status()
    wait_for(
        "every server to stop",
        lambda: all(state == "hibernated" and not up for state, up in (states(db_url)[s][1:] for s in slugs)),
        300,
    )


def breakdown(log: str, ids: set[str], since: int) -> None:
    """Medians of the wake reconciles (the first of each of ``ids`` after byte ``since`` of the log) and their
    steps, as the worker logged them."""
    steps: dict[str, list[float]] = defaultdict(list)
    jobs: list[float] = []
    done: set[str] = set()
    for line in log[since:].splitlines():
        if (step := STEP_LINE.search(line)) and step.group(1) in ids - done:
            steps[step.group(2)].append(float(step.group(3)))
        elif (job := JOB_LINE.search(line)) and job.group(1) in ids - done:
            jobs.append(float(job.group(2)))
            done.add(job.group(1))
    if jobs:
        print(f"  the wake's reconcile (median): {statistics.median(jobs):.3f} s, of which")
    for name, durations in steps.items():
        print(f"    {name:<14} {statistics.median(durations):.3f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    state = Path(tempfile.mkdtemp(prefix="canopy-bench-"))
    db_url = start_postgres(state)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = canopy_env(state, db_url, port)
    log_path = state / "canopy.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "control_plane.cli", "run", "--port", str(port)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "wb"),  # noqa: SIM115
    )
    try:
        wait_for("the control plane", lambda: httpx.get(f"{base}/readyz", timeout=1).status_code == 200, 60)
        run_id = os.urandom(3).hex()
        slugs = [f"wake-{run_id}-{i}" for i in range(args.count)]
        with httpx.Client(base_url=base, timeout=60) as client:
            for slug in slugs:
                email = f"owner@{slug}.example.com"
                client.post("/api/v1/signup", json={"email": email, "workspace": slug, "password": PASSWORD})
                client.post("/api/v1/signup/verify", json={"token": verification_token(db_url, email)})
            wait_for("every workspace to serve", lambda: all(states(db_url)[s][2] for s in slugs), 300)
            hibernate_all(base, env, db_url, slugs)
            ids = {states(db_url)[s][0] for s in slugs}
            since = log_path.stat().st_size
            one_at_a_time = [wake_one(client, slug) for slug in slugs]
            log = log_path.read_text(errors="replace")
            hibernate_all(base, env, db_url, slugs)
            with ThreadPoolExecutor(max_workers=len(slugs)) as pool:
                at_once = list(pool.map(lambda slug: wake_one(client, slug), slugs))
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # `canopy run` stops its workspace servers on exit
        server.wait(60)
    print(f"wake latency over {len(slugs)} hibernated workspaces (embedded default, first request to first answer):")
    figures("  one at a time", one_at_a_time)
    print("  target: p50 <= 1 s, p95 <= 1.5 s")
    breakdown(log, ids, since)
    figures(f"  all {len(slugs)} at once", at_once)
    return 0


if __name__ == "__main__":
    sys.exit(main())
