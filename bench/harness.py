"""The moto + Kubernetes test-cluster harness for benches, started outside pytest (``bench/fleet_scale.py --only
drift``, ``bench/rollout.py``).

:func:`real_plane` starts a moto server, the Kubernetes test cluster with its test kubelet (no-container mode),
registers moto cells with room for the fleet, and yields an aws :class:`~tests.reconciler.conftest.Plane` on a
fresh database (with an ingress controller), its own counters (a unique ``CANOPY_AWS_ENVIRONMENT`` whose Redis keys
are deleted at the end) and an admin client of the cluster. :func:`provision` makes real Professional workspaces as
signups make them and waits until the workers have converged them all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from control_plane.kube.client import KubeClient
    from tests.harness.kubernetes import TestCluster
    from tests.reconciler.conftest import Plane

ADMIN_URL = os.environ.get("CANOPY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TICKS = os.sysconf("SC_CLK_TCK")
Counters = dict[tuple[str, ...], float]


PRODUCTION_DEFAULTS = (
    "reverify_seconds",
    "reconcile_resync_seconds",
    "worker_heartbeat_seconds",
    "stalled_worker_seconds",
)
"""Settings the test harness shortens (``tests/reconciler/conftest.py::FAST_ENV``) that benches run at their
defaults."""


def production_defaults(*names: str) -> dict[str, str]:
    """The environment setting :data:`PRODUCTION_DEFAULTS` (and ``names``) back to their defaults."""
    from control_plane.core.settings import Settings

    return {
        f"CANOPY_{name.upper()}": str(Settings.model_fields[name].default) for name in (*PRODUCTION_DEFAULTS, *names)
    }


def admin(statement: sql.Composed) -> None:
    """Run one statement on the machine's PostgreSQL as its admin (autocommit)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


class ScratchDirs:
    """New directories under one root: what :func:`tests.provisioning.conftest.aws_plane` takes of pytest's
    ``tmp_path_factory``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, basename: str) -> Path:
        """A new directory named after ``basename``."""
        return Path(tempfile.mkdtemp(prefix=f"{basename}-", dir=self.root))


@dataclass(frozen=True)
class Harness:
    """A started harness: the plane, an admin client of the test cluster, the cluster itself."""

    plane: Plane
    kube: KubeClient
    cluster: TestCluster


def wait_for(what: str | Callable[[], str], check: Callable[[], bool], timeout: float, interval: float = 0.5) -> None:
    """Poll ``check()`` until it holds; stop the bench after ``timeout`` naming ``what`` (or what it returns)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of the processes so far (/proc/<pid>/stat fields 14 and 15)."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS


def counters() -> Counters:
    """The plane's fleet counters now (Redis)."""
    from control_plane.core import fleet_counters

    return fleet_counters.read()


@contextlib.contextmanager
def real_plane(label: str, capacity: int, cells: int = 1, **env: str) -> Iterator[Harness]:
    """The harness with a plane of the aws provider on a fresh database (``env`` on top of the test settings) and
    ``cells`` cells registered (``cell-a``, ``cell-b``, ...), each with room for ``capacity`` workspaces; everything
    started is stopped, and the databases (with the workspaces' databases and roles) dropped, at the
    end. The workers' logs are kept (their directory is printed) when the block fails."""
    import pytest

    from control_plane.core import fleet_counters
    from control_plane.core.settings import get_settings
    from control_plane.kube.client import KubeClient
    from tests.aws.conftest import make_cloud_cell
    from tests.harness.kubernetes import TestCluster, binaries_present, build_binaries, default_bin_dir
    from tests.harness.moto import start_moto_server
    from tests.provisioning.conftest import aws_plane, register_cell

    environment = f"{label[:2]}{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix=f"canopy-bench-{label}-"))
    with contextlib.ExitStack() as stack:
        bin_dir = default_bin_dir() if binaries_present(default_bin_dir()) else build_binaries()
        moto = start_moto_server()
        stack.callback(moto.stop)
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        for key, value in moto.client_env().items():
            patch.setenv(key, value)
        for key in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            patch.delenv(key, raising=False)
        cluster = stack.enter_context(TestCluster(bin_dir))
        cell = make_cloud_cell(ADMIN_URL)

        def create_database(name: str) -> str:
            database = f"bench_{name}_{os.urandom(3).hex()}"
            admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            stack.callback(admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
            return f"{ADMIN_URL.rpartition('/')[0]}/{database}"

        plane = stack.enter_context(
            aws_plane(
                create_database, ScratchDirs(work), cluster, cell, label, capacity,
                CANOPY_AWS_ENVIRONMENT=environment, **env,
            )
        )  # fmt: skip
        for index in range(1, cells):
            register_cell(make_cloud_cell(ADMIN_URL, f"cell-{chr(ord('a') + index)}"), capacity)
        redis = fleet_counters.connection(get_settings().redis_url)

        def forget() -> None:
            plane.stop_workers()  # first: they write budget keys till they stop
            for key in redis.scan_iter(f"canopy:{environment}:*"):
                redis.delete(key)

        stack.callback(forget)
        kube = KubeClient.from_kubeconfig(cluster.kubeconfig)
        stack.callback(kube.close)
        try:
            yield Harness(plane, kube, cluster)
        except BaseException:
            print(f"(the workers' logs are kept in {plane.log_dir})")
            raise
    shutil.rmtree(work, ignore_errors=True)


def provision(plane: Plane, count: int, workers: int, concurrency: int) -> tuple[list[uuid.UUID], float]:
    """``count`` Professional workspaces made as signups make them (``tests/provisioning/conftest.py::
    new_workspace``, reconcile cause ``signup``), provisioned by ``workers`` new ``canopy worker`` processes of
    ``concurrency``; returns their ids and the seconds from the first reconcile deferred to the last converged."""
    from control_plane.reconciler import records
    from control_plane.reconciler.queue import Cause, defer_reconcile
    from control_plane.workspaces.models import Tier
    from tests.provisioning.conftest import new_workspace

    tag = uuid.uuid4().hex[:5]
    ids = [new_workspace(plane, f"r{tag}{i:05d}", Tier.professional) for i in range(count)]
    for ws_id in ids:
        defer_reconcile(ws_id, Cause.signup)
    began = time.monotonic()
    for _ in range(workers):
        plane.start_worker(concurrency=concurrency)
    wait_for(
        lambda: f"{len(records.converged_ids())} of {count} converged\n{plane.worker_logs()}",
        lambda: len(records.converged_ids()) >= count,
        timeout=300 + 10 * count,
        interval=2.0,
    )
    return ids, time.monotonic() - began
