"""A fleet upgrade through Canopy against the raw rate of the same Deployments, on the moto + test-cluster harness.

On the harness of ``bench/harness.py`` (moto, the Kubernetes test cluster with its test kubelet in no-container
mode, the moto cell registered with room for the fleet), N Professional workspaces are provisioned as signups make
them by W ``canopy worker`` processes of concurrency C, and the control-plane API runs as ``canopy api``. Then, in
the same run:

1. **raw**: every workspace's Deployment gets a new image, patched bare (the ``kubernetes`` client, a strategic
   merge patch under Canopy's field manager, so that drift detection leaves it alone), K at a time (K, by default,
   is what the plan lets the engine run at once: ``max_per_cell`` x the cells), each waited for until its rollout
   is complete (``kubectl rollout status`` semantics: ``tests/harness/rollout.py``); workspaces per second. The
   Deployments are then patched back to their image the same way (timed too, not used).
2. **Canopy**: a release with another image is published, and a rollout of it over the same workspaces is started
   (``POST /api/v1/rollouts``) with the default plan but its soak times at zero (one canary, waves of 10 growing
   by 2 up to 500, ``max_per_cell`` 20), and waited for until ``completed``: workspaces per second, its ratio to the
   raw rate (target >= 0.5), the control plane's CPU (the API's and the workers' user + system time from /proc)
   per workspace, the time for the whole fleet, and the waves' times.

    .venv/bin/python bench/rollout.py [--workspaces 1000] [--workers 2] [--concurrency 8] [--max-per-cell 20]
        [--raw-concurrency K] [--rollout-seconds 2] [--json FILE]

Prints a table and the figures as JSON. Everything started is stopped and the databases dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Harness, counters, cpu_seconds, production_defaults, provision, real_plane, wait_for  # noqa: E402

if TYPE_CHECKING:
    import kubernetes.client

    from tests.reconciler.conftest import Plane

TARGET_RATIO = 0.5
RELEASE = "0.2.0"
RAW_SUFFIX = "-raw"


@dataclass(frozen=True)
class Figures:
    """What the bench measured (printed as JSON too)."""

    workspaces: int
    cells: int
    workers: str
    rollout_seconds: int
    plan: dict[str, Any]
    provisioning_seconds: float
    raw_concurrency: int
    raw_seconds: float
    raw_rate: float
    raw_back_seconds: float
    canopy_seconds: float
    canopy_rate: float
    ratio: float
    cpu_ms_per_workspace: float
    api_cpu_seconds: float
    workers_cpu_seconds: float
    waves: list[dict[str, Any]]
    reconciles: dict[str, float]
    aws_calls: dict[str, float]
    kube_calls: dict[str, float]
    outcomes: dict[str, int]


def apps_api(kubeconfig: Path, pool: int) -> kubernetes.client.AppsV1Api:
    """The ``kubernetes`` client's AppsV1Api on the test cluster, with a connection per thread."""
    import kubernetes.client
    import kubernetes.config

    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(kubeconfig), client_configuration=configuration)  # type: ignore[no-untyped-call]
    configuration.connection_pool_maxsize = pool
    return kubernetes.client.AppsV1Api(kubernetes.client.ApiClient(configuration))


def namespaces(plane: Plane, ids: list[uuid.UUID]) -> list[str]:
    """The workspaces' namespaces (from their recorded outputs)."""
    return [str(plane.row(ws_id).outputs["namespace"]) for ws_id in ids]


def container(apps: kubernetes.client.AppsV1Api, namespace: str) -> kubernetes.client.V1Container:
    """The workspace Deployment's (only) container."""
    from control_plane.kube.render import APP_NAME

    pod = apps.read_namespaced_deployment(APP_NAME, namespace).spec.template.spec
    assert pod is not None
    return pod.containers[0]


def patch_and_wait(apps: kubernetes.client.AppsV1Api, namespace: str, image: str) -> None:
    """Set the Deployment's image bare, then poll until its rollout is complete (kubectl rollout status)."""
    from control_plane.kube.render import APP_NAME
    from infra.conventions import FIELD_MANAGER
    from tests.harness.rollout import wait_for_rollout

    name = container(apps, namespace).name
    body = {"spec": {"template": {"spec": {"containers": [{"name": name, "image": image}]}}}}
    apps.patch_namespaced_deployment(APP_NAME, namespace, body, field_manager=FIELD_MANAGER)
    wait_for_rollout(apps, namespace, APP_NAME, timeout=600, interval=0.2)


def raw_rollout(apps: kubernetes.client.AppsV1Api, spaces: list[str], image: str, concurrency: int) -> float:
    """Seconds to roll every namespace's Deployment to ``image``, ``concurrency`` at a time."""
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="raw") as pool:
        list(pool.map(lambda namespace: patch_and_wait(apps, namespace, image), spaces))
    return time.monotonic() - began


def publish(api: httpx.Client, image: str) -> None:
    """Publish ``RELEASE`` with ``image``, at the bundled release's schema level."""
    from control_plane.core.settings import get_settings

    bundled = api.get(f"/api/v1/releases/{get_settings().default_release}")
    bundled.raise_for_status()
    body = {"version": RELEASE, "image": image, "schema_min": bundled.json()["schema_min"], "notes": "bench"}
    api.post("/api/v1/releases", json=body).raise_for_status()


def run_rollout(api: httpx.Client, plan: dict[str, Any], timeout: float) -> tuple[dict[str, Any], float]:
    """Start a rollout of ``RELEASE`` over every Professional workspace and wait until it completes; returns the
    rollout and the seconds from the request to the completion seen (polled each 0.5 s)."""
    began = time.monotonic()
    answer = api.post(
        "/api/v1/rollouts", json={"release": RELEASE, "selector": {"tiers": ["professional"]}, "plan": plan}
    )
    answer.raise_for_status()
    path = f"/api/v1/rollouts/{answer.json()['id']}"
    seen: dict[str, Any] = answer.json()

    def completed() -> bool:
        nonlocal seen
        seen = api.get(path).raise_for_status().json()
        assert seen["state"] in ("running", "completed"), seen
        return bool(seen["state"] == "completed")

    wait_for(lambda: f"the rollout to complete: {json.dumps(seen['waves'])}", completed, timeout, interval=0.5)
    return seen, time.monotonic() - began


def wave_times(plane: Plane, rollout_id: str) -> list[dict[str, Any]]:
    """Each wave's size, cells, and seconds from its first start to its last finish (the targets' own times)."""
    with plane.admin() as conn:
        rows = conn.execute(
            "SELECT wave, count(*), count(DISTINCT cell), min(started_at), max(finished_at),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - started_at))"
            " FROM rollout_targets WHERE rollout_id = %s GROUP BY wave ORDER BY wave",
            [rollout_id],
        ).fetchall()
    return [
        {
            "wave": wave,
            "size": size,
            "cells": cells,
            "seconds": round((last - first).total_seconds(), 2),
            "upgrade_p50_seconds": round(float(p50), 2),
        }
        for wave, size, cells, first, last, p50 in rows
    ]


def grown(
    before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float], name: str, index: int
) -> dict[str, float]:
    """How much each counter of ``name`` grew, summed by its ``index``-th label."""
    summed: dict[str, float] = {}
    for key in {*before, *after}:
        if key[0] == name and after.get(key, 0.0) != before.get(key, 0.0):
            label = key[1 + index]
            summed[label] = summed.get(label, 0.0) + after.get(key, 0.0) - before.get(key, 0.0)
    return dict(sorted(summed.items()))


def measure(args: argparse.Namespace, harness: Harness, api_url: str, api_pid: int) -> Figures:
    """Provision, then the raw rollout and back, then Canopy's (see the module's docstring)."""
    from control_plane.core.authz import Role

    plane = harness.plane
    ids, provisioned = provision(plane, args.workspaces, args.workers, args.concurrency)
    print(f"{len(ids)} workspaces provisioned in {provisioned:.0f} s ({len(ids) / provisioned:.2f}/s)", flush=True)
    spaces = namespaces(plane, ids)
    with plane.admin() as conn:
        row = conn.execute("SELECT count(DISTINCT cell) FROM workspaces WHERE id = ANY(%s)", [ids]).fetchone()
    cells = int(row[0]) if row else 1
    plan = {"canary_soak_seconds": 0, "soak_seconds": 0, "max_per_cell": args.max_per_cell}
    concurrency = args.raw_concurrency or args.max_per_cell * cells
    apps = apps_api(harness.cluster.kubeconfig, concurrency)
    image = str(container(apps, spaces[0]).image)

    raw = raw_rollout(apps, spaces, image + RAW_SUFFIX, concurrency)
    print(f"raw: {len(spaces)} Deployments to a new image, {concurrency} at a time, in {raw:.1f} s", flush=True)
    back = raw_rollout(apps, spaces, image, concurrency)
    print(f"raw: and back in {back:.1f} s", flush=True)

    with httpx.Client(base_url=api_url, headers=plane.staff_headers(Role.operator), timeout=30) as api:
        publish(api, image + "-" + RELEASE)
        pids = [worker.pid for worker in plane.workers]
        start, api_cpu, workers_cpu = counters(), cpu_seconds([api_pid]), cpu_seconds(pids)
        rollout, seconds = run_rollout(api, plan, timeout=600 + 5 * len(ids))
        api_cpu, workers_cpu = cpu_seconds([api_pid]) - api_cpu, cpu_seconds(pids) - workers_cpu
        end = counters()
    rate, raw_rate = len(ids) / seconds, len(ids) / raw
    outcomes: dict[str, int] = {}
    for wave in rollout["waves"]:
        for state, count in wave["states"].items():
            outcomes[state] = outcomes.get(state, 0) + count
    return Figures(
        workspaces=len(ids),
        cells=cells,
        workers=f"{args.workers} x {args.concurrency}",
        rollout_seconds=args.rollout_seconds,
        plan=rollout["plan"],
        provisioning_seconds=round(provisioned, 1),
        raw_concurrency=concurrency,
        raw_seconds=round(raw, 1),
        raw_rate=round(raw_rate, 2),
        raw_back_seconds=round(back, 1),
        canopy_seconds=round(seconds, 1),
        canopy_rate=round(rate, 2),
        ratio=round(rate / raw_rate, 3),
        cpu_ms_per_workspace=round(1000 * (api_cpu + workers_cpu) / len(ids), 1),
        api_cpu_seconds=round(api_cpu, 1),
        workers_cpu_seconds=round(workers_cpu, 1),
        waves=wave_times(plane, rollout["id"]),
        reconciles=grown(start, end, "reconciles", 0),
        aws_calls=grown(start, end, "aws_calls", 1),
        kube_calls=grown(start, end, "kube_calls", 1),
        outcomes=outcomes,
    )


def api_pid(port: int) -> int:
    """The process id of the ``canopy api`` this bench started on ``port`` (found by its command line)."""
    wanted = ["control_plane.cli", "api", "--port", str(port)]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
            except OSError:
                continue
            if argv[2:6] == wanted:
                return int(proc.name)
    raise LookupError(f"no canopy api process on port {port}")


def table(f: Figures) -> str:
    """The figures as a short table."""
    rows: list[tuple[str, str]] = [
        ("workspaces (Professional)", f"{f.workspaces} in {f.cells} cell(s); workers {f.workers}"),
        ("provisioning", f"{f.provisioning_seconds:.0f} s"),
        (
            "raw: patch + rollout status",
            f"{f.raw_seconds:.1f} s, {f.raw_rate:.2f} workspaces/s ({f.raw_concurrency} at a time)",
        ),
        ("Canopy: default plan, soaks 0", f"{f.canopy_seconds:.1f} s, {f.canopy_rate:.2f} workspaces/s"),
        (
            "ratio Canopy / raw",
            f"{f.ratio:.3f} (target >= {TARGET_RATIO}: {'met' if f.ratio >= TARGET_RATIO else 'NOT met'})",
        ),
        (
            "control-plane CPU",
            f"{f.cpu_ms_per_workspace:.1f} ms per workspace"
            f" (API {f.api_cpu_seconds:.1f} s, workers {f.workers_cpu_seconds:.1f} s)",
        ),
        ("engine pass interval", f"{f.rollout_seconds:g} s (CANOPY_ROLLOUT_SECONDS)"),
        ("outcomes", ", ".join(f"{k} {v}" for k, v in sorted(f.outcomes.items()))),
        ("reconciles", ", ".join(f"{k} {v:g}" for k, v in f.reconciles.items())),
        ("AWS calls", ", ".join(f"{k} {v:g}" for k, v in f.aws_calls.items()) or "none"),
        ("Kubernetes calls", ", ".join(f"{k} {v:g}" for k, v in f.kube_calls.items()) or "none"),
    ]
    rows += [
        (
            f"  wave {w['wave']}",
            f"{w['size']} workspaces, {w['seconds']:.1f} s (an upgrade's p50 {w['upgrade_p50_seconds']:.1f} s)",
        )
        for w in f.waves
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def main() -> int:
    from control_plane.core.settings import Settings
    from control_plane.rollouts.schemas import Plan
    from tests.api_process import canopy_api, free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="canopy worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="each worker's concurrency")
    parser.add_argument("--max-per-cell", type=int, default=Plan.model_fields["max_per_cell"].default)
    parser.add_argument("--raw-concurrency", type=int, default=0, help="raw patches at once (0: max-per-cell x cells)")
    parser.add_argument("--rollout-seconds", type=int, default=Settings.model_fields["rollout_seconds"].default)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--logs", type=Path, help="copy the API's and workers' logs here at the end")
    args = parser.parse_args()
    env = {
        **production_defaults("drift_seconds"),
        "CANOPY_ROLLOUT_SECONDS": f"{args.rollout_seconds:g}",
        "CANOPY_BACKUP_SCHEDULE_SECONDS": "0",
        "CANOPY_BACKUP_DRILL_SECONDS": "0",
    }
    with real_plane("rollout", args.workspaces + 10, **env) as harness:
        plane = harness.plane
        port = free_port()
        with canopy_api(plane.env, port, plane.log_dir / "api.log") as api_url:
            try:
                figures = measure(args, harness, api_url, api_pid(port))
            finally:
                if args.logs:
                    shutil.copytree(plane.log_dir, args.logs, dirs_exist_ok=True)
        print(table(figures))
        print(json.dumps(asdict(figures), indent=2), flush=True)
        if args.json:
            args.json.write_text(json.dumps(asdict(figures), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
