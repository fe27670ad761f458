"""Professional backups end to end on the moto + Kubernetes harness: two workspaces provisioned by real workers with
the aws provider, their servers run as their Pods would (:mod:`tests.aws_backups.pod`), posts and files written with
``mattermostdriver``, a backup through the workspace's provider set, more posts, then a restore into the second
workspace (a clone) and in place: each server answers exactly the backup's posts and files, byte for byte.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from mattermostdriver import Driver

from control_plane.core.settings import get_settings
from control_plane.kube.client import KubeClient
from control_plane.providers.aws.backups import PooledBackups
from control_plane.providers.factory import get_providers
from control_plane.providers.workspace_client import admin_username
from control_plane.reconciler import records
from control_plane.reconciler.queue import Cause, defer_reconcile
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from infra.conventions import workspace_names
from tests.aws.test_backups_pooled import ensure_backup_bucket
from tests.aws_backups.pod import hand_over_admin, start_pod
from tests.backups.test_restore import _file, _fill, _posts
from tests.harness.moto import MotoServer
from tests.provisioning.conftest import new_workspace
from tests.reconciler.conftest import PASSWORD, Plane
from tests.workspace_server.conftest import ServerProcess

pytestmark = pytest.mark.slow


def _driver(server: ServerProcess, email: str) -> Driver:
    driver = Driver(
        {"url": "127.0.0.1", "port": server.port, "scheme": "http", "login_id": email, "password": PASSWORD}
    )
    driver.login()
    return driver


def test_pooled_backup_restores_posts_and_files_into_a_clone_and_in_place(
    plane: Plane, kube: KubeClient, moto_server: MotoServer, tmp_path: Path
) -> None:
    slugs = {name: f"bk{name}{uuid.uuid4().hex[:6]}" for name in ("a", "b")}
    ids = {name: new_workspace(plane, slug, Tier.professional) for name, slug in slugs.items()}
    if not plane.workers:
        plane.start_worker()
    for ws_id in ids.values():
        defer_reconcile(ws_id, Cause.signup)
    for ws_id in ids.values():
        plane.wait_state(ws_id, Lifecycle.trialing, timeout=120)
    email = f"{slugs['a']}.admin@example.com"
    servers: dict[str, ServerProcess] = {}

    def run(name: str) -> ServerProcess:
        namespace = workspace_names("test", ids[name]).namespace
        servers[name] = start_pod(kube, namespace, moto_server, tmp_path / f"{name}-{len(servers)}")
        return servers[name]

    try:
        server = run("a")
        hand_over_admin(server, email, admin_username(email))
        driver = _driver(server, email)
        files = _fill(driver, slugs["a"], "before", posts=10, files=3)
        posts = _posts(driver, slugs["a"])

        snapshots = {name: records.load(ws_id) for name, ws_id in ids.items()}
        assert snapshots["a"] is not None and snapshots["b"] is not None
        backup = get_providers(get_settings(), "professional").backup
        assert isinstance(backup, PooledBackups)
        ensure_backup_bucket(backup)
        backup_id = uuid.uuid4()
        a = snapshots["a"]
        parts = [
            backup.back_up_database(a.spec, a.outputs, backup_id),
            backup.back_up_files(a.spec, a.outputs, backup_id),
        ]
        assert parts[1].count == 3

        _fill(driver, slugs["a"], "after", posts=2, files=1)
        assert len(_posts(driver, slugs["a"])) > len(posts)

        for name in ("b", "a"):  # into the clone (whose server never ran), then in place (its server stopped)
            if name in servers:
                servers.pop(name).stop()
            target = snapshots[name]
            assert target is not None
            backup.restore_database(target.spec, target.outputs, parts[0])
            backup.restore_files(target.spec, target.outputs, parts[1])
            restored = _driver(run(name), email)  # the backup's users: a's admin
            assert _posts(restored, slugs["a"]) == posts
            assert {file_id: _file(restored, file_id) for file_id in files} == files
        for part in parts:
            assert backup.verify(part) is None
            backup.discard(part)
    finally:
        for server in servers.values():
            server.stop()
