"""The pure parts of drift detection: re-verification windows, and what counts as drift in a bucket's AWS Config
item, an RDS instance's listing and a Kubernetes watch event."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from control_plane.drift.schedule import phase_of, verification_window
from control_plane.kube.drift import kind_drift
from control_plane.providers.aws.rds import instance_drift
from control_plane.providers.aws.s3 import bucket_drift
from control_plane.providers.base import Drift, Watched, WorkspaceSpec
from infra.conventions import FIELD_MANAGER, RDS

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_windows_tile_the_period_without_gaps_or_overlaps() -> None:
    period, tick = 3600.0, 30.0
    phases = [i / 997 for i in range(997)]  # a fleet spread over the period
    moments = [NOW + timedelta(seconds=tick * i) for i in range(int(period / tick) + 1)]
    due = [0] * len(phases)
    for last, now in itertools.pairwise(moments):
        window = verification_window(last, now, period, tick)
        assert window is not None
        start, end = window
        for i, phase in enumerate(phases):
            due[i] += (start <= phase < end) if start <= end else (phase >= start or phase < end)
    assert due == [1] * len(phases), "each workspace falls due exactly once per period"


def test_a_window_after_a_long_pause_is_the_whole_period_and_none_without_time() -> None:
    assert verification_window(NOW - timedelta(hours=7), NOW, 21600, 30) == (0.0, 1.0)
    assert verification_window(NOW, NOW, 21600, 30) is None
    start, end = verification_window(None, NOW, 21600, 30) or (0.0, 0.0)
    assert end == phase_of(NOW, 21600) and (end - start) % 1 == pytest.approx(30 / 21600)


def _bucket(encryption: str | None, blocked: bool = True) -> dict[str, object]:
    extra: dict[str, str] = {
        "PublicAccessBlockConfiguration": json.dumps(
            dict.fromkeys(
                ("blockPublicAcls", "ignorePublicAcls", "blockPublicPolicy", "restrictPublicBuckets"), blocked
            )
        )
    }
    if encryption:
        rule = {"applyServerSideEncryptionByDefault": {"sseAlgorithm": encryption}}
        extra["ServerSideEncryptionConfiguration"] = json.dumps({"rules": [rule]})
    return {"configurationItemStatus": "OK", "supplementaryConfiguration": extra}


def test_bucket_drift_from_its_config_item() -> None:
    assert bucket_drift(_bucket("aws:kms")) is None
    assert bucket_drift(None) == "is gone"
    assert bucket_drift({**_bucket("aws:kms"), "configurationItemStatus": "ResourceDeleted"}) == "is gone"
    assert bucket_drift(_bucket("AES256")) == "is not encrypted with aws:kms"
    assert bucket_drift(_bucket(None)) == "is not encrypted with aws:kms"
    assert bucket_drift(_bucket("aws:kms", blocked=False)) == "allows public access"


def test_instance_drift_from_the_listing() -> None:
    good = {
        "DBInstanceStatus": "available",
        "StorageEncrypted": True,
        "DeletionProtection": True,
        "BackupRetentionPeriod": RDS.backup_retention_days,
    }
    assert instance_drift(good) is None
    assert instance_drift(None) == "is gone"
    assert instance_drift({**good, "DBInstanceStatus": "deleting"}) == "is deleting"
    assert instance_drift({**good, "StorageEncrypted": False}) == "is not encrypted"
    assert instance_drift({**good, "DeletionProtection": False}) == "lost its deletion protection"


class MemoryCursors(dict[str, str]):
    def put(self, source: str, position: str) -> None:
        self[source] = position


class FakeWatch:
    """Answers a watch with fixed events and a list with fixed items (the kube client's two reads)."""

    def __init__(self, events: list[dict[str, object]], items: list[dict[str, object]]) -> None:
        self.events, self.items = events, items

    def watch(self, api_version: str, kind: str, position: str, selector: str, seconds: int) -> list[dict[str, object]]:
        return self.events

    def list_with_version(self, api_version: str, kind: str, selector: str) -> tuple[list[dict[str, object]], str]:
        return self.items, "100"


def _object(ws_id: uuid.UUID, version: str, managers: list[tuple[str, datetime, str]]) -> dict[str, object]:
    fields = [
        {"manager": name, "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "fieldsV1": {top: {}}}
        for name, at, top in managers
    ]
    metadata = {"name": "x", "namespace": "ns", "resourceVersion": version, "labels": {"canopy/workspace": str(ws_id)}}
    return {"metadata": {**metadata, "managedFields": fields}}


def _spec(ws_id: uuid.UUID) -> WorkspaceSpec:
    return WorkspaceSpec(
        id=ws_id, slug="s", organization_id=uuid.uuid4(), tier="professional", region="r", display_name="S"
    )


def test_watch_events_are_drift_only_when_someone_else_changed_a_watched_workspace() -> None:
    mine, other, gone, stranger = (uuid.uuid4() for _ in range(4))
    verified = NOW - timedelta(minutes=5)
    watched = {ws: Watched(_spec(ws), verified) for ws in (mine, other, gone)}
    events = [
        {"type": "MODIFIED", "object": _object(mine, "5", [(FIELD_MANAGER, NOW, "f:spec")])},
        {"type": "MODIFIED", "object": _object(mine, "6", [("kube-controller-manager", NOW, "f:status")])},
        {"type": "MODIFIED", "object": _object(other, "7", [("kubectl-edit", NOW, "f:spec")])},
        {"type": "MODIFIED", "object": _object(mine, "8", [("kubectl-edit", verified - timedelta(hours=1), "f:spec")])},
        {"type": "DELETED", "object": _object(gone, "9", [])},
        {"type": "DELETED", "object": _object(stranger, "10", [])},
        {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "11"}}},
    ]
    cursors = MemoryCursors({"kube/c/apps/v1/Deployment": "4"})
    found = kind_drift(FakeWatch(events, []), "c", ("apps/v1", "Deployment", True), watched, cursors)  # type: ignore[arg-type]
    assert found == [
        Drift(other, "kubernetes", "Deployment ns/x was changed by kubectl-edit"),
        Drift(gone, "kubernetes", "Deployment ns/x was deleted"),
    ]
    assert cursors["kube/c/apps/v1/Deployment"] == "11"


def test_the_first_watch_lists_and_reports_what_is_missing() -> None:
    present, missing = uuid.uuid4(), uuid.uuid4()
    watched = {ws: Watched(_spec(ws), NOW) for ws in (present, missing)}
    cursors = MemoryCursors()
    found = kind_drift(FakeWatch([], [_object(present, "3", [])]), "c", ("v1", "Service", True), watched, cursors)  # type: ignore[arg-type]
    assert found == [Drift(missing, "kubernetes", "its Service is missing")]
    assert cursors["kube/c/v1/Service"] == "100"
