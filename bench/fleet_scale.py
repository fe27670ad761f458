"""The control plane at fleet size, in sections (``--only`` runs some of them).

Section ``api``: list and filter latency through the real HTTP API. A fresh database on the machine's PostgreSQL,
migrated to head, is filled by bulk SQL (``INSERT ... SELECT generate_series``, ``tests/fleet_rows.py``; not
timed): W workspaces across W/100 organizations, 9 cells, the lifecycle states, two tiers and six releases, and A
audit entries. The control-plane API (``canopy api``: the app under uvicorn, no worker) serves it on loopback; an
operator token (``canopy create-account --role operator``) and an owner token of one organization (100
workspaces) make the requests. Each query runs once untimed, then R times in sequence over one keep-alive
connection, timed from request to parsed answer: the first page, each filter, a deep cursor page (the middle of
the list), slug prefix and substring searches, the owner's view, and the audit list with each filter. A baseline
row (one workspace by id, no list) shows what any request costs.

    .venv/bin/python bench/fleet_scale.py [--only api] [--workspaces 100000] [--audit 1000000] [--requests 200]

Prints p50/p99 per query and whether p99 <= 50 ms (the target). The database is dropped at the end.

Section ``drift``: what a converged fleet costs at rest, and how fast drift is repaired, on the moto + test-cluster
harness of ``tests/drift`` (started here outside pytest: a moto server, the Kubernetes test cluster with its test
kubelet, the moto cell registered with room for the fleet, an ingress controller). A fresh database gets W bulk
workspaces and A audit entries as in ``api`` (``fill(..., inert=True)``): rows with nothing behind them, so none is
live — the 9 % deleted stay deleted and every other one is ``hibernated`` (resuming the state it had) — and no
worker ever acts on them (never converged, never due; scheduled backups and drills are off in this section, they
would pick hibernated rows). Then N real Professional workspaces are made as signups make them
(``tests/provisioning/conftest.py::new_workspace``, reconcile cause ``signup``) and provisioned through the
product path by 2 ``canopy worker`` processes of concurrency 8 (timed). The plane runs with detection every D
seconds, re-verification and resync at their defaults (``CANOPY_REVERIFY_SECONDS`` 21600, resync 30 s), worker
heartbeats at theirs, and counters of its own (a unique ``CANOPY_AWS_ENVIRONMENT``, its Redis keys — counters,
AWS call budgets — deleted at the end). After the first detection (which lists each kind once per cluster):

1. idle: over S seconds, the workers' CPU (user + system from /proc) per idle workspace per hour, AWS and
   Kubernetes calls per idle workspace per hour (counter deltas), reconciles by cause and detections run;
2. repair: the Deployment of K workspaces is deleted, one at a time, each timed until a new Deployment has rolled
   out (``rollout_status(...).done``); the bound is about D s (the next detection) + the watch's second + one
   reconcile. The i-th delete waits i/K of D after the previous repair, so the deletes fall at phases spread over
   the detection period (back to back, each would land just after a detection and wait about all of D);
3. a signup on the idle fleet, timed until ``trialing``; then ``canopy workspaces reverify`` (all N queued at the
   lowest priority) and at once a second signup, timed the same, with how many re-verifications were still queued
   when it was ready; then how long the whole re-verification took.

    .venv/bin/python bench/fleet_scale.py --only drift [--workspaces 100000] [--audit 1000000] [--real 1000]
        [--idle-seconds 300] [--drift-seconds 30] [--repairs 5]

Prints each phase's figures and a summary block. Everything started is stopped and the database (with the real
workspaces' databases and roles) dropped at the end.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    ADMIN_URL,
    Counters,
    admin,
    counters,
    cpu_seconds,
    production_defaults,
    provision,
    real_plane,
    wait_for,
)
from bench.time_to_workspace import free_port, percentile, wait_ready  # noqa: E402
from tests.fleet_rows import CANARY, NEW_CELL, Fleet, fill  # noqa: E402

if TYPE_CHECKING:
    from control_plane.kube.client import KubeClient
    from tests.reconciler.conftest import Plane

TARGET_P99_MS = 50.0


@dataclass(frozen=True)
class Query:
    """One timed request: a label, the path, its parameters and whose token."""

    label: str
    path: str
    params: dict[str, Any]
    owner: bool = False


def api_queries(url: str, fleet: Fleet) -> list[Query]:
    """The list and filter queries an operator and an owner make."""
    from control_plane.workspaces.models import Workspace
    from control_plane.workspaces.service import encode_cursor

    with psycopg.connect(url) as conn:
        middle = conn.execute(
            "SELECT created_at, id FROM workspaces ORDER BY created_at, id OFFSET %s LIMIT 1", [fleet.workspaces // 2]
        ).fetchone()
        target = conn.execute("SELECT target_id FROM audit_entries ORDER BY id DESC LIMIT 1").fetchone()
    assert middle is not None and target is not None
    deep = encode_cursor(Workspace(created_at=middle[0], id=middle[1]))
    now = datetime.now(UTC)
    span = timedelta(seconds=5 * fleet.audit_entries)  # the audit entries are 5 s apart, the newest now
    ws, audit = "/api/v1/workspaces", "/api/v1/audit"
    return [
        Query("baseline: one workspace by id (no list)", f"{ws}/{middle[1]}", {}),
        Query("workspaces: first page", ws, {}),
        Query("workspaces: deep page (cursor)", ws, {"cursor": deep}),
        Query("workspaces: organization", ws, {"organization_id": fleet.sample_organization_id}),
        Query("workspaces: state=active", ws, {"state": "active"}),
        Query("workspaces: state=suspended", ws, {"state": "suspended"}),
        Query("workspaces: state=suspended, deep", ws, {"state": "suspended", "cursor": deep}),
        Query("workspaces: tier=enterprise", ws, {"tier": "enterprise"}),
        Query("workspaces: cell=cell-3", ws, {"cell": "cell-3"}),
        Query(f"workspaces: cell={NEW_CELL}", ws, {"cell": NEW_CELL}),
        Query("workspaces: desired_release=10.7.0", ws, {"desired_release": "10.7.0"}),
        Query(f"workspaces: desired_release={CANARY}", ws, {"desired_release": CANARY}),
        Query(f"workspaces: observed_release={CANARY}", ws, {"observed_release": CANARY}),
        Query("workspaces: cell + state + tier", ws, {"cell": "cell-5", "state": "active", "tier": "professional"}),
        Query("workspaces: slug_prefix=oak-12", ws, {"slug_prefix": "oak-12"}),
        Query("workspaces: slug_prefix=r", ws, {"slug_prefix": "r"}),
        Query("workspaces: slug_contains=1234", ws, {"slug_contains": "1234"}),
        Query("workspaces: slug_contains=ven-9", ws, {"slug_contains": "ven-9"}),
        Query("owner: workspaces", ws, {}, owner=True),
        Query("owner: workspaces, state=hibernated", ws, {"state": "hibernated"}, owner=True),
        Query("audit: newest", audit, {}),
        Query("audit: deep page (before_id)", audit, {"before_id": fleet.audit_entries // 2}),
        Query("audit: organization", audit, {"organization_id": fleet.sample_organization_id}),
        Query("audit: target", audit, {"target_id": target[0]}),
        Query("audit: action=cell.register", audit, {"action": "cell.register"}),
        Query("audit: action=workspace.create", audit, {"action": "workspace.create"}),
        Query("audit: actor=system:billing", audit, {"actor": "system:billing"}),
        Query("audit: actor=<one member>", audit, {"actor": "account:c4ca4238-a0b9-2382-0dcc-509a6f75849b"}),
        Query("audit: since 1 h ago", audit, {"since": (now - timedelta(hours=1)).isoformat()}),
        Query(
            "audit: a 2 h window, half way back",
            audit,
            {"since": (now - span / 2).isoformat(), "until": (now - span / 2 + timedelta(hours=2)).isoformat()},
        ),
        Query("audit: until 3/4 of the way back", audit, {"until": (now - span * 3 / 4).isoformat()}),
        Query(
            "audit: organization + action",
            audit,
            {"organization_id": fleet.sample_organization_id, "action": "workspace.hibernated"},
        ),
        Query("owner: audit", audit, {}, owner=True),
    ]


def owner_token(url: str, organization_id: str) -> str:
    """A token of a new owner of ``organization_id`` (written as ``canopy`` would: account, membership, token)."""
    from control_plane.accounts.models import Account, Membership
    from control_plane.core.authz import Role
    from control_plane.core.clock import utcnow
    from control_plane.core.db import reset_engine, session_scope
    from control_plane.core.security import hash_password
    from control_plane.core.settings import get_settings
    from control_plane.tokens import service as tokens

    os.environ["CANOPY_DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engine()
    org = uuid.UUID(organization_id)
    with session_scope() as session:
        account = Account(
            email=f"owner-{os.urandom(3).hex()}@bench.example.com",
            password_hash=hash_password(os.urandom(12).hex()),
            email_verified_at=utcnow(),
        )
        session.add(account)
        session.flush()
        session.add(Membership(organization_id=org, account_id=account.id, role=Role.owner))
        _, secret = tokens.issue(
            session, account_id=account.id, role=Role.owner, organization_id=org, name="bench", actor="bench"
        )
    return secret


def timed(client: httpx.Client, query: Query, headers: dict[str, str], requests: int) -> tuple[list[float], int]:
    """``requests`` timings (ms) of ``query`` after one untimed, and how many items a page held."""
    first = client.get(query.path, params=query.params, headers=headers)
    if first.status_code != 200:
        raise SystemExit(f"{query.label}: {first.status_code} {first.text[:300]}")
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(query.path, params=query.params, headers=headers)
        response.json()
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times, len(first.json().get("items", [None]))


def api_section(args: argparse.Namespace) -> bool:
    """Fill a database, serve it, time the queries; whether every p99 met the target."""
    database = f"bench_fleet_{os.urandom(3).hex()}"
    url = f"{ADMIN_URL.rpartition('/')[0]}/{database}"
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    state = Path(tempfile.mkdtemp(prefix="canopy-fleet-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        from control_plane.core.migrate import upgrade

        upgrade(url)
        started = time.perf_counter()
        organizations = max(1, args.workspaces // 100)
        fleet = fill(url, organizations=organizations, workspaces=args.workspaces, audit_entries=args.audit)
        print(
            f"filled {fleet.workspaces} workspaces in {organizations} organizations and {fleet.audit_entries} audit"
            f" entries in {time.perf_counter() - started:.0f} s (bulk SQL, ANALYZE)"
        )
        port = free_port()
        env = {**os.environ, "CANOPY_DATABASE_URL": url, "CANOPY_STATE_DIR": str(state), "CANOPY_DEV_MODE": "true"}
        cli = [sys.executable, "-m", "control_plane.cli"]
        operator = subprocess.run(
            [*cli, "create-account", "--email", "operator@bench.example.com", "--role", "operator"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        owner = owner_token(url, fleet.sample_organization_id)
        with open(state / "api.log", "wb") as log:
            server = subprocess.Popen([*cli, "api", "--port", str(port)], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, time.monotonic() + 60)
        rows = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for query in api_queries(url, fleet):
                token = owner if query.owner else operator
                times, items = timed(client, query, {"Authorization": f"Bearer {token}"}, args.requests)
                rows.append((query.label, items, percentile(times, 0.5), percentile(times, 0.99)))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    width = max(len(label) for label, *_ in rows)
    print(f"\n{'query':<{width}}  items  p50 ms  p99 ms  p99 <= {TARGET_P99_MS:.0f} ms")
    for label, items, p50, p99 in rows:
        print(f"{label:<{width}}  {items:>5}  {p50:>6.1f}  {p99:>6.1f}  {'yes' if p99 <= TARGET_P99_MS else 'NO'}")
    met = all(p99 <= TARGET_P99_MS for *_, p99 in rows)
    print(f"\nevery p99 <= {TARGET_P99_MS:.0f} ms: {'yes' if met else 'no'} ({args.requests} requests per query)")
    return met


# -- drift ----------------------------------------------------------------------------------------------------------


def delta(before: Counters, after: Counters, name: str) -> dict[tuple[str, ...], float]:
    """What each counter of ``name`` (by labels) grew by."""
    keys = {key for key in (*before, *after) if key[0] == name}
    return {key[1:]: after.get(key, 0.0) - before.get(key, 0.0) for key in keys if after.get(key) != before.get(key)}


def by_label(grown: dict[tuple[str, ...], float], index: int) -> dict[str, float]:
    """The counts summed by one label (e.g. AWS calls by service, Kubernetes calls by verb)."""
    summed: dict[str, float] = {}
    for labels, value in grown.items():
        summed[labels[index]] = summed.get(labels[index], 0.0) + value
    return dict(sorted(summed.items()))


def shown(counts: dict[str, float]) -> str:
    """``label count, ...`` (or none)."""
    return ", ".join(f"{label} {value:g}" for label, value in counts.items()) or "none"


def detections() -> float:
    return counters().get(("drift_detections",), 0.0)


def wait_for_detections(n: int, drift_seconds: int) -> None:
    """Until ``n`` more drift detections have run over the fleet."""
    target = detections() + n
    wait_for(f"{n} drift detections", lambda: detections() >= target, timeout=120 + 3 * drift_seconds * n)


def waiting_verifications(plane: Plane) -> int:
    with plane.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND args->>'cause' = 'verify'"
        ).fetchone()
    return int(row[0]) if row else 0


def rolled_out_anew(kube: KubeClient, namespace: str, uid: str) -> bool:
    """Whether the workspace's Deployment is a new one (not ``uid``) whose rollout is complete."""
    from control_plane.kube.render import APP_NAME
    from control_plane.kube.rollout import rollout_status

    deployment = kube.get("apps/v1", "Deployment", APP_NAME, namespace)
    return deployment is not None and deployment["metadata"]["uid"] != uid and rollout_status(deployment).done


def drift_section(args: argparse.Namespace) -> bool:
    """Start the harness and a plane on a fresh database, and measure (see the module's docstring)."""
    env = {
        **production_defaults(),  # idle cost is measured with them
        "CANOPY_DRIFT_SECONDS": str(args.drift_seconds),
        "CANOPY_BACKUP_SCHEDULE_SECONDS": "0",
        "CANOPY_BACKUP_DRILL_SECONDS": "0",
    }
    with real_plane("drift", args.real + 10, **env) as harness:
        drift_figures(args, harness.plane, harness.kube)
    return True


def drift_figures(args: argparse.Namespace, plane: Plane, kube: KubeClient) -> None:
    """Fill, provision, then the idle window, the repairs and the signups; print each and a summary."""
    from control_plane.core.settings import get_settings
    from control_plane.kube.render import APP_NAME
    from control_plane.reconciler.queue import Cause, defer_reconcile
    from control_plane.workspaces.lifecycle import Lifecycle
    from control_plane.workspaces.models import Tier
    from tests.provisioning.conftest import new_workspace

    summary: list[str] = []
    started = time.perf_counter()
    organizations = max(1, args.workspaces // 100)
    fill(plane.url, organizations=organizations, workspaces=args.workspaces, audit_entries=args.audit, inert=True)
    print(
        f"filled {args.workspaces} bulk workspaces (inert: hibernated or deleted) in {organizations} organizations and"
        f" {args.audit} audit entries in {time.perf_counter() - started:.0f} s"
    )

    real = args.real
    ids, provisioned = provision(plane, real, workers=2, concurrency=8)
    print(f"{real} workspaces provisioned by 2 workers x 8 in {provisioned:.0f} s ({real / provisioned:.2f}/s)")
    summary.append(f"provisioning: {real} workspaces in {provisioned:.0f} s ({real / provisioned:.2f}/s)")

    # 1. idle cost
    wait_for_detections(1, args.drift_seconds)  # the first detection on the cluster lists each kind once
    pids = [worker.pid for worker in plane.workers]
    start, cpu, begin = counters(), cpu_seconds(pids), time.monotonic()
    time.sleep(args.idle_seconds)  # the measured window
    end, cpu, seconds = counters(), cpu_seconds(pids) - cpu, time.monotonic() - begin
    runs = end.get(("drift_detections",), 0.0) - start.get(("drift_detections",), 0.0)
    aws, kube_calls = delta(start, end, "aws_calls"), delta(start, end, "kube_calls")
    reconciles = by_label(delta(start, end, "reconciles"), 0)
    found = by_label(delta(start, end, "drift_found"), 0)
    per_hour = 3600 / seconds / real
    aws_hour, kube_hour = sum(aws.values()) * per_hour, sum(kube_calls.values()) * per_hour
    print(
        f"\nidle {seconds:.0f} s, {real} workspaces, detection every {args.drift_seconds} s, re-verification every"
        f" {get_settings().reverify_seconds} s:\n"
        f"  detections run: {runs:g}; drift found: {shown(found)}\n"
        f"  reconciles by cause: {shown(reconciles)}\n"
        f"  worker CPU: {cpu:.1f} s ({100 * cpu / seconds:.1f} % of a core) = {1000 * cpu * per_hour:.1f} ms per idle"
        f" workspace per hour\n"
        f"  AWS calls: {sum(aws.values()):g} ({shown(by_label(aws, 1))}) = {aws_hour:.3f} per idle workspace per hour\n"
        f"  Kubernetes calls: {sum(kube_calls.values()):g} ({shown(by_label(kube_calls, 1))}) = {kube_hour:.3f} per"
        f" idle workspace per hour"
    )
    summary += [
        f"idle worker CPU: {1000 * cpu * per_hour:.1f} ms per workspace-hour ({100 * cpu / seconds:.1f} % of a core"
        f" for {real})",
        f"idle AWS calls: {aws_hour:.3f} per workspace-hour; Kubernetes calls: {kube_hour:.3f} per workspace-hour",
        f"idle reconciles in {seconds:.0f} s: {shown(reconciles)}; detections: {runs:g}",
    ]

    # 2. repair of a deleted Deployment
    print(f"\nrepair of a deleted Deployment (detection every {args.drift_seconds} s):")
    repairs = []
    for i, ws_id in enumerate(ids[:: max(1, real // args.repairs)][: args.repairs]):
        # A repair ends just after a detection: the next delete waits i/K of a period, so that the deletes fall at
        # phases spread over the detection period (back to back, each would wait a whole period).
        time.sleep(i * args.drift_seconds / args.repairs)
        namespace = str(plane.row(ws_id).outputs["namespace"])
        deployment = kube.get("apps/v1", "Deployment", APP_NAME, namespace)
        assert deployment is not None, namespace
        uid = str(deployment["metadata"]["uid"])
        changed = time.monotonic()
        kube.delete(deployment)
        wait_for(
            f"the Deployment of {namespace} to be repaired",
            functools.partial(rolled_out_anew, kube, namespace, uid),
            timeout=120 + 4 * args.drift_seconds,
            interval=0.1,
        )
        repairs.append(time.monotonic() - changed)
        print(f"  {namespace}: rolled out again {repairs[-1]:.1f} s after the delete")
    bound = f"bound ~ {args.drift_seconds} s to the next detection + 1 s watch + one reconcile"
    print(f"  p50 {percentile(repairs, 0.5):.1f} s, max {max(repairs):.1f} s ({bound})")
    summary.append(
        f"repair: p50 {percentile(repairs, 0.5):.1f} s, max {max(repairs):.1f} s over {len(repairs)} ({bound})"
    )

    # 3. a signup, then a signup during a fleet-wide re-verification
    def signup(prefix: str) -> float:
        ws_id = new_workspace(plane, f"{prefix}{uuid.uuid4().hex[:6]}", Tier.professional)
        defer_reconcile(ws_id, Cause.signup)
        began = time.monotonic()
        plane.wait_state(ws_id, Lifecycle.trialing, timeout=600)
        return time.monotonic() - began

    idle_signup = signup("idle")
    print(f"\nsignup on the idle fleet: trialing after {idle_signup:.1f} s")
    command = [sys.executable, "-m", "control_plane.cli", "workspaces", "reverify"]
    began = time.monotonic()
    answer = subprocess.run(command, env=plane.env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    queued = int(answer.stdout.split()[0])
    print(f"canopy workspaces reverify: {answer.stdout.strip()} in {time.monotonic() - began:.1f} s")
    busy_signup = signup("late")
    left = waiting_verifications(plane)
    print(f"signup during the re-verification: trialing after {busy_signup:.1f} s, {left} of {queued} still queued")
    wait_for(
        lambda: f"the re-verification ({waiting_verifications(plane)} left)",
        lambda: waiting_verifications(plane) == 0,
        timeout=600 + 10 * queued,
        interval=2.0,
    )
    reverified = time.monotonic() - began
    print(f"the whole re-verification of {queued} took {reverified:.0f} s ({queued / reverified:.2f}/s)")
    summary += [
        f"signup: {idle_signup:.1f} s idle, {busy_signup:.1f} s during a re-verification of {queued}"
        f" ({left} still queued when it was ready)",
        f"fleet-wide re-verification: {queued} in {reverified:.0f} s ({queued / reverified:.2f}/s)",
    ]
    print(
        "\nsummary (" + f"{args.workspaces} bulk + {real} real workspaces, 2 workers x 8, detection every"
        f" {args.drift_seconds} s)"
    )
    for line in summary:
        print(f"  {line}")


SECTIONS: dict[str, Callable[[argparse.Namespace], bool]] = {"api": api_section, "drift": drift_section}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only this section (repeatable)")
    parser.add_argument("--workspaces", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=1_000_000, help="audit entries")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    parser.add_argument("--real", type=int, default=1000, help="drift: real workspaces provisioned")
    parser.add_argument("--idle-seconds", type=int, default=300, help="drift: the measured idle window")
    parser.add_argument("--drift-seconds", type=int, default=30, help="drift: detection period")
    parser.add_argument("--repairs", type=int, default=5, help="drift: Deployments deleted and timed to repair")
    args = parser.parse_args()
    for name in args.only or list(SECTIONS):
        print(f"== {name} ==")
        SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
