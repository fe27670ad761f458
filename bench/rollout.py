"""A fleet upgrade through Canopy against the raw rate of the same Deployments, on the moto + test-cluster harness.

On the harness of ``bench/harness.py`` (moto, the Kubernetes test cluster with its test kubelet in no-container
mode, moto cells registered with room for the fleet), N Professional workspaces are provisioned across the cells
as signups make them by W ``canopy worker`` processes of concurrency C, and the control-plane API runs as
``canopy api``. Then, in the same run:

1. **raw**: every workspace's Deployment gets a new image, patched bare (the ``kubernetes`` client, a strategic
   merge patch under Canopy's field manager, so that drift detection leaves it alone), K at a time (K, by default,
   is what the default plan lets the engine run at once: ``max_per_cell`` x the cells), each waited for until its
   rollout is complete (``kubectl rollout status`` semantics: ``tests/harness/rollout.py``); then back to their
   image the same way. The raw rate is the faster of the two (the machine is shared: the ratio errs low).
2. **Canopy**: the workers are started anew (W x C, the engine's pass every ``--rollout-seconds``), a release with
   another image is published, and a rollout of it over the same workspaces is started (``POST /api/v1/rollouts``)
   with the default plan but its soak times at zero (one canary, waves of 10 growing by 2 up to 500,
   ``max_per_cell`` 20), and waited for until ``completed``: workspaces per second, its ratio to the raw rate
   (target >= 0.5), the control plane's CPU (the API's and the workers' user + system time from /proc) per
   workspace, the time for the whole fleet (request to completion), the upgrades in flight on average and, per
   wave, its time and the p50 of an upgrade split into the reconcile (queue wait included) and the gates (the
   engine's passes). With ``--tuned``, a second release is then rolled the same way by workers whose slots cover
   the cap, the engine passing every second.

    .venv/bin/python bench/rollout.py [--workspaces 1000] [--cells 2] [--workers 2] [--concurrency 8]
        [--raw-concurrency K] [--rollout-seconds 2] [--tuned] [--json FILE] [--logs DIR]

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
from control_plane.rollouts.schemas import Plan  # noqa: E402

if TYPE_CHECKING:
    import kubernetes.client

    from tests.reconciler.conftest import Plane

TARGET_RATIO = 0.5
RAW_SUFFIX = "-raw"


@dataclass(frozen=True)
class Run:
    """One rollout through Canopy over the whole fleet, and what it cost."""

    label: str
    release: str
    workers: str
    rollout_seconds: int
    plan: dict[str, Any]
    seconds: float
    rate: float
    ratio: float
    cpu_ms_per_workspace: float
    api_cpu_seconds: float
    workers_cpu_seconds: float
    in_flight_mean: float
    waves: list[dict[str, Any]]
    reconciles: dict[str, float]
    aws_calls: dict[str, float]
    kube_calls: dict[str, float]
    outcomes: dict[str, int]


@dataclass(frozen=True)
class Figures:
    """What the bench measured (printed as JSON too)."""

    workspaces: int
    cells: int
    provisioning_seconds: float
    raw_concurrency: int
    raw_seconds: float
    raw_rate: float
    raw_back_seconds: float
    runs: list[Run]


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


def publish(api: httpx.Client, version: str, image: str) -> None:
    """Publish ``version`` with ``image``, at the bundled release's schema level."""
    from control_plane.core.settings import get_settings

    bundled = api.get(f"/api/v1/releases/{get_settings().default_release}")
    bundled.raise_for_status()
    body = {"version": version, "image": image, "schema_min": bundled.json()["schema_min"], "notes": "bench"}
    api.post("/api/v1/releases", json=body).raise_for_status()


def run_rollout(api: httpx.Client, release: str, plan: dict[str, Any], timeout: float) -> tuple[dict[str, Any], float]:
    """Start a rollout of ``release`` over every Professional workspace and wait until it completes; returns the
    rollout and the seconds from the request to the completion seen (polled each 0.5 s)."""
    began = time.monotonic()
    answer = api.post(
        "/api/v1/rollouts", json={"release": release, "selector": {"tiers": ["professional"]}, "plan": plan}
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
    """Each wave's size and seconds from its first start to its last finish, and the p50 of its targets' upgrade
    (start to finish), of its reconcile (start to the workspace's plan run to the end: queue wait included) and of
    the gates (that end to the finish: the engine's passes), from the targets' and workspaces' own times."""
    with plane.admin() as conn:
        rows = conn.execute(
            "SELECT wave, count(*), min(t.started_at), max(t.finished_at),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.finished_at - t.started_at)),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM w.last_reconciled_at - t.started_at)),"
            " percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t.finished_at - w.last_reconciled_at))"
            " FROM rollout_targets t JOIN workspaces w ON w.id = t.workspace_id"
            " WHERE t.rollout_id = %s GROUP BY wave ORDER BY wave",
            [rollout_id],
        ).fetchall()
    return [
        {
            "wave": wave,
            "size": size,
            "seconds": round((last - first).total_seconds(), 2),
            "upgrade_p50_seconds": round(float(upgrade), 2),
            "reconcile_p50_seconds": round(float(reconcile), 2),
            "gates_p50_seconds": round(float(gates), 2),
        }
        for wave, size, first, last, upgrade, reconcile, gates in rows
    ]


def busy_slots(plane: Plane, rollout_id: str) -> float:
    """Upgrades in flight on average over the rollout (the sum of the targets' upgrade times over its duration)."""
    with plane.admin() as conn:
        row = conn.execute(
            "SELECT sum(extract(epoch FROM finished_at - started_at)) / extract(epoch FROM max(finished_at) -"
            " min(started_at)) FROM rollout_targets WHERE rollout_id = %s",
            [rollout_id],
        ).fetchone()
    return round(float(row[0]), 1) if row and row[0] is not None else 0.0


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


def registered_after(plane: Plane, worker_id: int) -> tuple[int, int]:
    """How many workers registered with the queue after ``worker_id`` (they take jobs), and the last id."""
    with plane.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE id > %s), coalesce(max(id), 0) FROM procrastinate_workers", [worker_id]
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class Setting:
    """How the plane runs a rollout: its label, the workers (processes x concurrency), the engine's pass interval."""

    label: str
    workers: int
    concurrency: int
    rollout_seconds: int


def canopy_run(
    harness: Harness, api: httpx.Client, api_pid: int, setting: Setting, release: str, image: str, raw_rate: float
) -> Run:
    """Publish ``release``, roll it over every Professional workspace with the default plan (soaks at zero), and
    measure it; the workers are started anew with ``setting``."""
    plane, count = harness.plane, len(harness.plane.workspace_ids)
    plane.stop_workers()
    for log in plane.log_dir.glob("worker-*.log"):  # the new workers' logs take these names
        log.rename(log.with_name(f"before-{release}-{log.name}"))
    last = registered_after(plane, 0)[1]
    for _ in range(setting.workers):
        plane.start_worker(setting.concurrency, CANOPY_ROLLOUT_SECONDS=str(setting.rollout_seconds))
    wait_for("the workers to take jobs", lambda: registered_after(plane, last)[0] == setting.workers, timeout=120)
    publish(api, release, image)
    plan = {"canary_soak_seconds": 0, "soak_seconds": 0}
    pids = [worker.pid for worker in plane.workers]
    start, api_cpu, workers_cpu = counters(), cpu_seconds([api_pid]), cpu_seconds(pids)
    rollout, seconds = run_rollout(api, release, plan, timeout=600 + 5 * count)
    api_cpu, workers_cpu = cpu_seconds([api_pid]) - api_cpu, cpu_seconds(pids) - workers_cpu
    end = counters()
    outcomes: dict[str, int] = {}
    for wave in rollout["waves"]:
        for state, n in wave["states"].items():
            outcomes[state] = outcomes.get(state, 0) + n
    rate = count / seconds
    return Run(
        label=setting.label,
        release=release,
        workers=f"{setting.workers} x {setting.concurrency}",
        rollout_seconds=setting.rollout_seconds,
        plan=rollout["plan"],
        seconds=round(seconds, 1),
        rate=round(rate, 2),
        ratio=round(rate / raw_rate, 3),
        cpu_ms_per_workspace=round(1000 * (api_cpu + workers_cpu) / count, 1),
        api_cpu_seconds=round(api_cpu, 1),
        workers_cpu_seconds=round(workers_cpu, 1),
        in_flight_mean=busy_slots(plane, rollout["id"]),
        waves=wave_times(plane, rollout["id"]),
        reconciles=grown(start, end, "reconciles", 0),
        aws_calls=grown(start, end, "aws_calls", 1),
        kube_calls=grown(start, end, "kube_calls", 1),
        outcomes=outcomes,
    )


def settings(args: argparse.Namespace, cells: int) -> list[Setting]:
    """The default setting, and with ``--tuned`` one whose worker slots cover the per-cell cap and whose engine
    passes every second."""
    chosen = [Setting("default plan, soaks 0", args.workers, args.concurrency, args.rollout_seconds)]
    if args.tuned:
        cap = Plan.model_fields["max_per_cell"].default * cells
        concurrency = max(args.concurrency, -(-(cap + 4) // args.workers))  # room for the periodic tasks too
        chosen.append(Setting("same, tuned plane", args.workers, concurrency, 1))
    return chosen


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
    concurrency = args.raw_concurrency or Plan.model_fields["max_per_cell"].default * cells
    apps = apps_api(harness.cluster.kubeconfig, concurrency)
    image = str(container(apps, spaces[0]).image)

    raw = raw_rollout(apps, spaces, image + RAW_SUFFIX, concurrency)
    print(f"raw: {len(spaces)} Deployments to a new image, {concurrency} at a time, in {raw:.1f} s", flush=True)
    back = raw_rollout(apps, spaces, image, concurrency)
    print(f"raw: and back in {back:.1f} s", flush=True)

    runs = []
    with httpx.Client(base_url=api_url, headers=plane.staff_headers(Role.operator), timeout=30) as api:
        for n, setting in enumerate(settings(args, cells), start=2):
            release = f"0.{n}.0"
            rate = len(ids) / min(raw, back)  # the faster of two equal rollouts: the ratio errs low, not high
            runs.append(canopy_run(harness, api, api_pid, setting, release, f"{image}-{release}", rate))
            print(f"Canopy ({setting.label}): {runs[-1].seconds:.1f} s", flush=True)
    return Figures(
        workspaces=len(ids),
        cells=cells,
        provisioning_seconds=round(provisioned, 1),
        raw_concurrency=concurrency,
        raw_seconds=round(raw, 1),
        raw_rate=round(len(ids) / min(raw, back), 2),
        raw_back_seconds=round(back, 1),
        runs=runs,
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


def run_rows(r: Run, cells: int) -> list[tuple[str, str]]:
    """One Canopy rollout's rows of the table."""
    slots = r.workers.split(" x ")
    rows = [
        (f"Canopy: {r.label}", f"{r.seconds:.1f} s, {r.rate:.2f} workspaces/s"),
        (
            "  ratio Canopy / raw",
            f"{r.ratio:.3f} (target >= {TARGET_RATIO}: {'met' if r.ratio >= TARGET_RATIO else 'NOT met'})",
        ),
        (
            "  control-plane CPU",
            f"{r.cpu_ms_per_workspace:.1f} ms per workspace (API {r.api_cpu_seconds:.1f} s, workers"
            f" {r.workers_cpu_seconds:.1f} s)",
        ),
        (
            "  upgrades in flight",
            f"{r.in_flight_mean:g} on average; bounds: cap {r.plan['max_per_cell']} x {cells} cell(s), worker slots"
            f" {int(slots[0]) * int(slots[1])} ({r.workers}), engine pass every {r.rollout_seconds} s",
        ),
        ("  outcomes", ", ".join(f"{k} {v}" for k, v in sorted(r.outcomes.items()))),
        ("  reconciles", ", ".join(f"{k} {v:g}" for k, v in r.reconciles.items())),
        ("  AWS calls", ", ".join(f"{k} {v:g}" for k, v in r.aws_calls.items()) or "none"),
        ("  Kubernetes calls", ", ".join(f"{k} {v:g}" for k, v in r.kube_calls.items()) or "none"),
    ]
    return rows + [
        (
            f"  wave {w['wave']}",
            f"{w['size']} workspaces, {w['seconds']:.1f} s; p50 per upgrade {w['upgrade_p50_seconds']:.1f} s ="
            f" reconcile {w['reconcile_p50_seconds']:.1f} s + gates {w['gates_p50_seconds']:.1f} s",
        )
        for w in r.waves
    ]


def table(f: Figures) -> str:
    """The figures as a short table."""
    rows: list[tuple[str, str]] = [
        ("workspaces (Professional)", f"{f.workspaces} in {f.cells} cell(s)"),
        ("provisioning", f"{f.provisioning_seconds:.0f} s"),
        (
            "raw: patch + rollout status",
            f"{f.raw_seconds:.1f} s there, {f.raw_back_seconds:.1f} s back ({f.raw_concurrency} at a time): the faster,"
            f" {f.raw_rate:.2f} workspaces/s",
        ),
    ]
    for r in f.runs:
        rows += run_rows(r, f.cells)
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)


def main() -> int:
    from control_plane.core.settings import Settings
    from tests.api_process import canopy_api, free_port

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--cells", type=int, default=2, help="cells the workspaces are placed in")
    parser.add_argument("--workers", type=int, default=2, help="canopy worker processes")
    parser.add_argument("--concurrency", type=int, default=8, help="each worker's concurrency")
    parser.add_argument(
        "--raw-concurrency", type=int, default=0, help="raw patches at once (0: the plan's max_per_cell x cells)"
    )
    parser.add_argument("--rollout-seconds", type=int, default=Settings.model_fields["rollout_seconds"].default)
    parser.add_argument("--tuned", action="store_true", help="then a second rollout: slots >= the cap, passes each 1 s")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--logs", type=Path, help="copy the API's and workers' logs here at the end")
    args = parser.parse_args()
    env = {
        **production_defaults("drift_seconds"),
        "CANOPY_BACKUP_SCHEDULE_SECONDS": "0",
        "CANOPY_BACKUP_DRILL_SECONDS": "0",
    }
    capacity = -(-args.workspaces // args.cells) + 10
    with real_plane("rollout", capacity, args.cells, **env) as harness:
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
