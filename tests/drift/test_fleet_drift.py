"""Drift detection at 200 converged workspaces on the moto + test-cluster harness (199 pooled in one cell, one silo).

A converged fleet costs no plan: over several detections no workspace is reconciled and the cloud and Kubernetes
calls per detection do not grow with the fleet. Three changes made behind Canopy's back (a Deployment deleted, a silo
bucket's encryption changed, a database role dropped) are found by the watch, the AWS Config read and the cell
database's listing, and repaired, and only those three workspaces are reconciled. A signup made while the whole
fleet is queued for re-verification gets its workspace before that re-verification is over.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import boto3
import psycopg
import pytest
from psycopg import sql

from control_plane.core import fleet_counters
from control_plane.core.settings import get_settings
from control_plane.kube.client import KubeClient
from control_plane.kube.render import APP_NAME
from control_plane.kube.rollout import rollout_status
from control_plane.reconciler import records
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from tests.aws.conftest import CloudCell
from tests.harness.kubernetes import TestCluster
from tests.provisioning.conftest import aws_plane, new_workspace
from tests.reconciler.conftest import Plane
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

FLEET = 200
DETECT_SECONDS = 2
PROVISION_TIMEOUT = 900.0
Counters = dict[tuple[str, ...], float]


@dataclass(frozen=True)
class Fleet:
    plane: Plane
    pooled: list[uuid.UUID]
    silo: uuid.UUID

    @property
    def ids(self) -> list[uuid.UUID]:
        return [*self.pooled, self.silo]


@pytest.fixture(scope="module")
def fleet_plane(
    create_database: Callable[[str], str],
    tmp_path_factory: pytest.TempPathFactory,
    kube_cluster: TestCluster,
    aws_cell: CloudCell,
) -> Iterator[Plane]:
    """An aws plane with its own counters, a cell for the fleet, detection every 2 s and re-verification so slow
    (a period of decades) that none falls due during the module: a full plan runs only when drift is found."""
    environment = f"dr{uuid.uuid4().hex[:6]}"
    env = {
        "CANOPY_AWS_ENVIRONMENT": environment,
        "CANOPY_DRIFT_SECONDS": str(DETECT_SECONDS),
        "CANOPY_REVERIFY_SECONDS": str(10**9),
    }
    with aws_plane(create_database, tmp_path_factory, kube_cluster, aws_cell, "drift", FLEET + 10, **env) as plane:
        try:
            yield plane
        finally:
            fleet_counters.connection(get_settings().redis_url).delete(fleet_counters.key(environment))


@pytest.fixture(scope="module")
def fleet(fleet_plane: Plane, kube: KubeClient) -> Iterator[Fleet]:
    """199 pooled workspaces and one silo, provisioned by two workers as signups are; their namespaces are deleted
    afterwards (the test cluster is shared with later modules)."""
    plane = fleet_plane
    tag = uuid.uuid4().hex[:5]
    pooled = [new_workspace(plane, f"d{tag}{i:03d}", Tier.professional) for i in range(FLEET - 1)]
    silo = new_workspace(plane, f"d{tag}silo", Tier.enterprise)
    for ws_id in [*pooled, silo]:
        defer_reconcile(ws_id, Cause.signup)
    for _ in range(2):
        plane.start_worker(concurrency=8)
    started = time.monotonic()
    wait_until(
        lambda: f"{len(records.converged_ids())} of {FLEET} converged\n{plane.worker_logs()}",
        lambda: len(records.converged_ids()) == FLEET,
        timeout=PROVISION_TIMEOUT,
    )
    print(f"{FLEET} workspaces converged in {time.monotonic() - started:.1f} s")
    yield Fleet(plane, pooled, silo)
    for ws_id in [*pooled, silo]:
        namespace = plane.row(ws_id).outputs.get("namespace")
        if namespace:
            kube.delete({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


def verified(plane: Plane, ids: list[uuid.UUID]) -> dict[uuid.UUID, datetime | None]:
    """When each workspace's plan last ran to the end."""
    with plane.admin() as conn:
        rows = conn.execute("SELECT id, last_reconciled_at FROM workspaces WHERE id = ANY(%s)", [ids]).fetchall()
    return dict(rows)


def counters() -> Counters:
    return fleet_counters.read()


def delta(before: Counters, after: Counters, name: str) -> dict[tuple[str, ...], float]:
    """What each counter of ``name`` (by labels) grew by."""
    keys = {key for key in (*before, *after) if key[0] == name}
    return {key[1:]: after.get(key, 0.0) - before.get(key, 0.0) for key in keys if after.get(key) != before.get(key)}


def detections(count: Counters) -> float:
    return count.get(("drift_detections",), 0.0)


def wait_for_detections(n: int) -> None:
    """Until ``n`` more drift detections have run over the fleet."""
    target = detections(counters()) + n
    wait_until(f"{n} drift detections", lambda: detections(counters()) >= target, timeout=60 * n)


def test_a_converged_fleet_runs_no_plan_and_its_calls_do_not_grow_with_it(fleet: Fleet) -> None:
    plane = fleet.plane
    wait_for_detections(1)  # the first detection on each cluster lists once: take the steady state
    before, start, begin = verified(plane, fleet.ids), counters(), time.monotonic()
    wait_for_detections(3)
    after, end, seconds = verified(plane, fleet.ids), counters(), time.monotonic() - begin

    assert after == before, "no converged workspace's plan ran"
    assert delta(start, end, "reconciles") == {}
    runs = detections(end) - detections(start)
    aws = delta(start, end, "aws_calls")
    kube_calls = delta(start, end, "kube_calls")
    aws_per_run, kube_per_run = sum(aws.values()) / runs, sum(kube_calls.values()) / runs
    # Per detection: a listing or batched read per cell and service, one quiet watch per cluster and kind.
    clusters = {labels[0] for labels in kube_calls}
    assert clusters, "the watches ran"
    # A detection counts when it ends, so the next one may have begun its watches before the last snapshot: the
    # window holds `runs` detections and at most one watch of each kind per cluster more.
    assert sum(kube_calls.values()) <= (8 * len(clusters) + 2) * runs + 8 * len(clusters), kube_calls
    assert aws_per_run <= 12, aws
    budget = get_settings().aws_budget_rates
    for (cell, service), calls in aws.items():
        rate = budget.get(service, get_settings().aws_budget_default_rate)
        assert calls / seconds <= rate, f"{cell} {service}: {calls} calls in {seconds:.1f} s"
    per_hour = 3600 / seconds / FLEET
    print(
        f"{runs:g} detections in {seconds:.1f} s: {aws_per_run:.1f} AWS calls and {kube_per_run:.1f} Kubernetes calls"
        f" per detection; per idle workspace per hour: {sum(aws.values()) * per_hour:.2f} AWS calls,"
        f" {sum(kube_calls.values()) * per_hour:.2f} Kubernetes calls"
    )


def _drop_role(name: str) -> None:
    """Drop a pooled workspace's login role behind Canopy's back (its database goes to the admin first)."""
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        role = sql.Identifier(name)
        conn.execute(sql.SQL("REASSIGN OWNED BY {} TO postgres").format(role))
        conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
        conn.execute(sql.SQL("DROP ROLE {}").format(role))


def _role_owns_database(name: str) -> bool:
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT pg_get_userbyid(datdba) = %s FROM pg_database WHERE datname = %s", [name, name]
        ).fetchone()
    return bool(row and row[0])


def _sse_algorithm(bucket: str) -> str:
    rules = boto3.client("s3").get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    return str(rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"])


def _rolled_out(kube: KubeClient, namespace: str) -> bool:
    deployment = kube.get("apps/v1", "Deployment", APP_NAME, namespace)
    return deployment is not None and rollout_status(deployment).done


def test_drift_behind_canopys_back_is_repaired_and_only_there(fleet: Fleet, kube: KubeClient) -> None:
    plane = fleet.plane
    deleted, dropped = fleet.pooled[0], fleet.pooled[1]
    namespace = str(plane.row(deleted).outputs["namespace"])
    bucket = str(plane.row(fleet.silo).outputs["bucket"])
    role = str(plane.row(dropped).outputs["database_role"])
    wait_for_detections(1)
    before, start = verified(plane, fleet.ids), counters()

    changed = time.monotonic()
    kube.delete({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": APP_NAME, "namespace": namespace}})
    aes = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
    boto3.client("s3").put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=aes)
    _drop_role(role)

    repairs = {
        "deployment": lambda: _rolled_out(kube, namespace),
        "bucket encryption": lambda: _sse_algorithm(bucket) == "aws:kms",
        "database role": lambda: _role_owns_database(role),
    }
    for what, repaired in repairs.items():
        wait_until(f"the {what} to be repaired", repaired, timeout=120)
        print(f"{what} repaired {time.monotonic() - changed:.1f} s after the change")

    wait_until(
        "the three reconciles recorded",
        lambda: all(verified(plane, [ws])[ws] != before[ws] for ws in (deleted, dropped, fleet.silo)),
        timeout=60,
    )
    wait_for_detections(2)  # and nothing else follows
    after, end = verified(plane, fleet.ids), counters()
    assert {ws for ws in fleet.ids if after[ws] != before[ws]} == {deleted, dropped, fleet.silo}
    reconciles = delta(start, end, "reconciles")
    assert set(reconciles) == {("drift",)} and reconciles["drift",] >= 3, reconciles
    assert {labels[0] for labels in delta(start, end, "drift_found")} == {"kubernetes", "s3", "postgresql"}
    for ws_id in (deleted, dropped, fleet.silo):
        ws = plane.row(ws_id)
        assert ws.lifecycle_state is Lifecycle.trialing or ws.lifecycle_state is Lifecycle.active
        assert {c["status"] for c in ws.conditions} == {"True"}, ws.conditions


def _waiting_verifications(plane: Plane) -> int:
    with plane.admin() as conn:
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') AND args->>'cause' = 'verify'"
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_signup_goes_before_a_fleet_wide_reverification(fleet: Fleet) -> None:
    plane = fleet.plane
    before = verified(plane, fleet.ids)
    created = {ws_id: plane.row(ws_id).outputs["created"] for ws_id in fleet.ids}
    command = [sys.executable, "-m", "control_plane.cli", "workspaces", "reverify"]
    answer = subprocess.run(command, env=plane.env, capture_output=True, text=True, timeout=120, check=True)
    assert answer.stdout.strip() == f"{FLEET} workspaces queued for re-verification", answer.stdout + answer.stderr

    newcomer = new_workspace(plane, f"late{uuid.uuid4().hex[:6]}", Tier.professional)
    defer_reconcile(newcomer, Cause.signup)
    signed_up = time.monotonic()
    plane.wait_state(newcomer, Lifecycle.trialing, timeout=300)
    left = _waiting_verifications(plane)
    print(f"signup ready after {time.monotonic() - signed_up:.1f} s, {left} of {FLEET} re-verifications still queued")
    assert left > 0, "the signup waited for the whole re-verification"

    wait_until(
        lambda: f"{_waiting_verifications(plane)} re-verifications left",
        lambda: all(at != before[ws] for ws, at in verified(plane, fleet.ids).items()),
        timeout=600,
    )
    assert {ws_id: plane.row(ws_id).outputs["created"] for ws_id in fleet.ids} == created, "it created nothing"
