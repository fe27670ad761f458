"""Professional workspaces provisioned per second with the aws provider, against the emulators, and the ratio to
the emulators' raw create rate.

Starts a moto server and the Kubernetes test cluster (tests/harness), a control-plane database on the machine's
PostgreSQL with the moto cell registered, and W worker processes (``CANOPY_PROVIDER=aws``). Then, R rounds of:

1. provisioned: N professional workspaces are created (placed in the cell), their reconciles deferred at once,
   and timed until every one is ``trialing`` (database, storage, compute rolled out, DNS, available);
2. raw: the same N sets of bare creates, straight to the same emulators with W threads and no control-plane logic
   (the workers are idle: nothing is queued): CREATE ROLE and CREATE DATABASE on PostgreSQL, IAM
   ``create_policy``, a Route53 UPSERT, and the server-side applies of the same Kubernetes objects.

Rounds alternate which of the two goes first, so that a slow moment of the shared machine (a PostgreSQL
checkpoint after many CREATE DATABASEs, say) does not always land on the same side; the rates are over all rounds.
CPU: the worker processes' CPU time (user + system, from /proc) during (1), per workspace; and the emulators'
(moto and the cluster's processes; PostgreSQL is the machine's, shared, and not counted).

    .venv/bin/python bench/provisioning.py [--count 40] [--rounds 3] [--workers 4] [--concurrency 4]

Target: provisioned / raw >= 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import boto3
import psycopg
from botocore.parsers import ResponseParserError
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Nothing below reads the control-plane settings at import: they are read once the environment is set.
from control_plane.core.db import reset_engine  # noqa: E402
from control_plane.core.migrate import upgrade  # noqa: E402
from control_plane.core.settings import get_settings  # noqa: E402
from control_plane.core.task_queue import close_sync_app  # noqa: E402
from control_plane.kube.client import KubeClient  # noqa: E402
from control_plane.kube.render import KubeServerConfig, S3Config, choose_api_versions, render_workspace  # noqa: E402
from control_plane.providers.aws.fleet import deploy_settings  # noqa: E402
from control_plane.providers.base import WorkspaceSpec  # noqa: E402
from control_plane.reconciler.queue import Cause, defer_reconcile  # noqa: E402
from control_plane.workspaces.models import Tier  # noqa: E402
from infra.conventions import (  # noqa: E402
    WORKSPACE_SERVICE_ACCOUNT,
    prefix_policy,
    tag_list,
    web_identity_trust_policy,
    workspace_tags,
)
from tests.aws.conftest import CloudCell, make_cloud_cell  # noqa: E402
from tests.harness.kubernetes import TestCluster, binaries_present, build_binaries, default_bin_dir  # noqa: E402
from tests.harness.moto import REGION, start_moto_server  # noqa: E402
from tests.provisioning.conftest import AWS_ENV, create_workspace, register_cell  # noqa: E402
from tests.reconciler.conftest import FAST_ENV, secret_env  # noqa: E402

ADMIN_URL = os.environ.get("CANOPY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TICKS = os.sysconf("SC_CLK_TCK")


def admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


def control_env(database: str, cell: CloudCell, kubeconfig: Path, state_dir: str) -> dict[str, str]:
    """What the workers and this process are configured with (the provisioning tests' settings)."""
    return {
        **FAST_ENV,
        **AWS_ENV,
        "CANOPY_DATABASE_URL": f"{ADMIN_URL.rpartition('/')[0]}/{database}",
        "CANOPY_STATE_DIR": state_dir,
        **secret_env(),
        "CANOPY_AWS_PRIVATE_SUBNET_IDS": json.dumps(list(cell.outputs.private_subnet_ids)),
        "CANOPY_AWS_ZONE_ID": cell.silo_zone_id,
        "CANOPY_KUBECONFIG_OVERRIDES": json.dumps({"*": str(kubeconfig)}),
        "CANOPY_RECONCILE_RESYNC_SECONDS": "3600",  # a periodic resync of every workspace would only add noise
    }


def start_workers(count: int, concurrency: int, log_dir: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for i in range(count):
        command = ["-m", "control_plane.reconciler.worker", "--name", f"bench-{i}", "--concurrency", str(concurrency)]
        with open(log_dir / f"worker-{i}.log", "wb") as log:
            workers.append(
                subprocess.Popen(
                    [sys.executable, *command],
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        worker.wait(30)


def wait_workers(database_url: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()
        if row and row[0] >= count:
            return
        time.sleep(0.2)
    raise SystemExit(f"{count} workers did not start")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def provision(ids: list[uuid.UUID], database_url: str, timeout: float) -> float:
    """Defer every reconcile, then wait until all are trialing; the elapsed seconds."""
    started = time.monotonic()
    for ws_id in ids:
        defer_reconcile(ws_id, Cause.signup)
    while time.monotonic() - started < timeout:
        with psycopg.connect(database_url) as conn:
            query = "SELECT count(*) FROM workspaces WHERE id = ANY(%s) AND lifecycle_state = 'trialing'"
            row = conn.execute(query, [ids]).fetchone()
        if row and row[0] == len(ids):
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit(f"not every workspace was provisioned within {timeout:g}s")


def again_on_emulator_race(call: Callable[[], object], attempts: int = 3) -> None:
    """``call()``, repeated when moto answers 500: its IAM is not thread-safe (an attach iterating the policies
    while another thread creates one fails with "dictionary changed size during iteration"). The providers'
    step fails then and the reconciler retries it; a bare call is simply made again."""
    for attempt in range(attempts):
        try:
            call()
            return
        except ResponseParserError:
            if attempt == attempts - 1:
                raise


def raw_creates(cell: CloudCell, kubeconfig: Path, count: int, threads: int) -> tuple[float, list[str]]:
    """The bare creates of ``count`` workspaces with ``threads`` threads; elapsed seconds and the roles made."""
    deploy = deploy_settings(get_settings())
    kube = KubeClient.from_kubeconfig(kubeconfig)
    versions = choose_api_versions(kube.served_versions)
    iam, route53 = boto3.client("iam"), boto3.client("route53")
    out = cell.outputs
    roles: list[str] = []

    def one(_: int) -> None:
        ws_id = uuid.uuid4()
        spec = WorkspaceSpec(ws_id, f"raw{ws_id.hex[:8]}", uuid.uuid4(), "professional", REGION, "Raw", out.name)
        name, tags = f"ws_{spec.short_id}", workspace_tags(ws_id, spec.organization_id, "professional", out.name)
        roles.append(name)
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'x' CONNECTION LIMIT 20").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(name)))
        prefix = f"workspaces/{spec.short_id}/"
        document = prefix_policy(f"arn:aws:s3:::{out.bucket_name}", prefix, out.kms_key_arn)
        policy = iam.create_policy(
            PolicyName=f"raw-{spec.short_id}", Path="/canopy/", PolicyDocument=json.dumps(document), Tags=tag_list(tags)
        )
        namespace = f"raw-{spec.short_id}"
        trust = web_identity_trust_policy(out.oidc_provider_arn, namespace, WORKSPACE_SERVICE_ACCOUNT)
        role = f"raw-{spec.short_id}-app"
        iam.create_role(RoleName=role, Path="/canopy/", AssumeRolePolicyDocument=json.dumps(trust), Tags=tag_list(tags))
        again_on_emulator_race(lambda: iam.attach_role_policy(RoleName=role, PolicyArn=policy["Policy"]["Arn"]))
        host = f"{spec.slug}.{out.domain}"
        record = {"Name": host, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": f"ingress.{out.domain}"}]}
        route53.change_resource_record_sets(
            HostedZoneId=out.zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}
        )
        config = KubeServerConfig(
            database_url=f"postgresql://{name}:x@{out.postgres_host}:5432/{name}",
            files_dir="",
            public_url=f"https://{host}",
            control_token="x",
            site_name="Raw",
            team_name=spec.slug,
            team_display_name="Raw",
            s3=S3Config(out.bucket_name, prefix, out.kms_key_arn, REGION),
        )
        for obj in render_workspace(spec, config, replace(deploy, domain=out.domain), versions, 1):
            kube.apply(obj)

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    elapsed = time.monotonic() - started
    kube.close()
    return elapsed, roles


def drop_roles(names: list[str]) -> None:
    for name in names:
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


@dataclass
class Totals:
    """Seconds and CPU seconds summed over the rounds."""

    provisioned: float = 0.0
    raw: float = 0.0
    control_cpu: float = 0.0
    emulators_provisioned: float = 0.0
    emulators_raw: float = 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=40, help="workspaces per round and side (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--workers", type=int, default=4, help="worker processes (default 4)")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs per worker process (default 4)")
    args = parser.parse_args()

    bin_dir = default_bin_dir() if binaries_present(default_bin_dir()) else build_binaries()
    moto = start_moto_server()
    os.environ.update(moto.client_env())
    cluster = TestCluster(bin_dir)
    cluster.start()
    database = f"bench_prov_{os.getpid()}"
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    workers: list[subprocess.Popen[bytes]] = []
    made: list[str] = []
    work = Path(tempfile.mkdtemp(prefix="canopy-bench-"))
    try:
        cell = make_cloud_cell(ADMIN_URL)
        room = 2 * args.count * args.rounds  # the test cell's limits would stop the bench, not the control plane
        cell = replace(cell, outputs=replace(cell.outputs, max_workspaces=room, max_databases=room))
        os.environ.update(control_env(database, cell, cluster.kubeconfig, str(work)))
        database_url = os.environ["CANOPY_DATABASE_URL"]
        upgrade(database_url)
        register_cell(cell)
        workers = start_workers(args.workers, args.concurrency, work)
        wait_workers(database_url, args.workers)
        pids = [w.pid for w in workers]
        emulators = [moto.process.pid, *(proc.pid for proc in cluster.procs.values())]
        totals = Totals()
        print(
            f"workspaces: {args.count} professional per round and side, {args.rounds} rounds,"
            f" {args.workers} worker processes x {args.concurrency} jobs, raw with {args.workers} threads"
        )

        def provisioned(round_: int) -> float:
            ids = [
                create_workspace(f"b{round_}x{i:03d}{uuid.uuid4().hex[:6]}", Tier.professional)
                for i in range(args.count)
            ]
            made.extend(f"ws_{ws_id.hex[:12]}" for ws_id in ids)
            cpu, emulated = cpu_seconds(pids), cpu_seconds(emulators)
            elapsed = provision(ids, database_url, timeout=30 + 10 * args.count)
            totals.control_cpu += cpu_seconds(pids) - cpu
            totals.emulators_provisioned += cpu_seconds(emulators) - emulated
            totals.provisioned += elapsed
            return elapsed

        def raw() -> float:
            emulated = cpu_seconds(emulators)
            elapsed, roles = raw_creates(cell, cluster.kubeconfig, args.count, args.workers)
            made.extend(roles)
            totals.emulators_raw += cpu_seconds(emulators) - emulated
            totals.raw += elapsed
            return elapsed

        for round_ in range(args.rounds):
            if round_ % 2:
                raw_elapsed, elapsed = raw(), provisioned(round_)
            else:
                elapsed, raw_elapsed = provisioned(round_), raw()
            print(
                f"round {round_ + 1}: provisioned {args.count / elapsed:.2f}/s, raw {args.count / raw_elapsed:.2f}/s,"
                f" ratio {raw_elapsed / elapsed:.2f}"
            )
        total = args.count * args.rounds
        rate, raw_rate = total / totals.provisioned, total / totals.raw
        print(f"provisioned: {rate:.2f} workspaces/s ({total} in {totals.provisioned:.1f} s)")
        print(f"raw creates: {raw_rate:.2f} workspaces/s ({total} in {totals.raw:.1f} s)")
        print(f"ratio: {rate / raw_rate:.2f} (target >= 0.5)")
        print(
            f"control-plane CPU: {1000 * totals.control_cpu / total:.0f} ms per workspace"
            f" (workers, {totals.control_cpu:.1f} s in all)"
        )
        print(
            "emulators' CPU (moto, etcd, apiserver, controllers, test kubelet):"
            f" {1000 * totals.emulators_provisioned / total:.0f} ms per provisioned workspace,"
            f" {1000 * totals.emulators_raw / total:.0f} ms per raw one"
        )
    finally:
        stop_workers(workers)
        drop_roles(made)
        close_sync_app()
        reset_engine()
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
        cluster.stop()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
