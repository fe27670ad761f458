"""The harness reports build and start failures clearly and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.kubernetes import ClusterError, TestCluster, build_binaries


def test_a_failing_build_raises_with_the_scripts_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANOPY_CACHE_DIR", "/proc/canopy-cannot-create-this")
    with pytest.raises(ClusterError, match=r"build_kubernetes\.sh failed \(exit 1\)"):
        build_binaries()


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="kube-apiserver missing"):
        TestCluster(tmp_path).start()


def test_a_crashing_apiserver_is_reported_with_its_log_and_cleaned_up(tmp_path: Path) -> None:
    for name in ("kube-apiserver", "kube-controller-manager"):
        fake = tmp_path / name
        fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
        fake.chmod(0o755)
    cluster = TestCluster(tmp_path, start_timeout=20)
    with pytest.raises(ClusterError, match=r"(?s)kube-apiserver exited with 3.*boom: cannot start"):
        cluster.start()
    assert not cluster.workdir.exists() and not cluster.etcd_dir.exists()
    assert cluster.procs == {}
