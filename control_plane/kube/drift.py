"""Drift on a Kubernetes cluster, found per change: one watch per kind over every Canopy-labelled object.

Each detection resumes each kind's watch from the resource version the last one reached (kept in the drift
cursors, so any worker carries on where another stopped) and gathers its events for a second: a quiet cluster
costs one call per kind and period, whatever its number of workspaces. A workspace has drifted when one of its
objects was deleted, or changed by a field manager other than Canopy's or the cluster's own controllers after its
plan last ran. The first detection on a cluster, and one whose resource version the server no longer keeps (410
Gone), lists each kind once instead and reports every watched workspace that lacks an object it always has.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from control_plane.kube.client import JSON, KubeClient, WatchExpired
from control_plane.kube.render import ApiVersions
from control_plane.providers.base import Cursors, Drift, Watched
from infra.conventions import FIELD_MANAGER

SELECTOR = "canopy/workspace"
SOURCE = "kubernetes"
WATCH_SECONDS = 1
PLATFORM_MANAGERS = frozenset({FIELD_MANAGER, "kube-controller-manager", "kube-scheduler", "kubelet"})
"""Field managers whose writes are not drift: Canopy's own applies and the cluster's controllers (status, the
Deployment's revision annotation, an HPA's replicas)."""
OWN_FIELDS = frozenset({"f:status"})


def watched_kinds(versions: ApiVersions) -> list[tuple[str, str, bool]]:
    """(apiVersion, kind, every workspace has one) of the objects watched for drift."""
    return [
        ("v1", "Namespace", True),
        ("networking.k8s.io/v1", "NetworkPolicy", False),
        ("v1", "ServiceAccount", True),
        ("v1", "Secret", True),
        ("v1", "ConfigMap", True),
        ("apps/v1", "Deployment", True),
        ("v1", "Service", True),
        (versions.ingress, "Ingress", True),
    ]


def kind_drift(
    client: KubeClient,
    cluster: str,
    kind: tuple[str, str, bool],
    watched: Mapping[uuid.UUID, Watched],
    cursors: Cursors,
) -> list[Drift]:
    """Drift of one kind on one cluster since the last detection (its cursor moves on)."""
    api_version, name, always = kind
    key = f"kube/{cluster}/{api_version}/{name}"
    position = cursors.get(key)
    events = None if position is None else _events_since(client, api_version, name, position)
    if position is None or events is None:
        items, version = client.list_with_version(api_version, name, SELECTOR)
        cursors.put(key, version)
        return _missing(name, items, watched) if always else []
    found = []
    for event in events:
        obj = event["object"]
        position = str(obj["metadata"]["resourceVersion"])
        if event["type"] == "BOOKMARK":
            continue
        ws_id = _workspace_of(obj)
        reason = _changed(event["type"], obj, watched.get(ws_id))
        if reason:
            found.append(Drift(ws_id, SOURCE, f"{name} {_where(obj)} {reason}"))
    cursors.put(key, position)
    return found


def _events_since(client: KubeClient, api_version: str, kind: str, position: str) -> list[JSON] | None:
    try:
        return client.watch(api_version, kind, position, SELECTOR, WATCH_SECONDS)
    except WatchExpired:
        return None


def _workspace_of(obj: JSON) -> uuid.UUID:
    try:
        return uuid.UUID(str(obj["metadata"].get("labels", {}).get(SELECTOR)))
    except ValueError:
        return uuid.UUID(int=0)


def _where(obj: JSON) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else str(meta["name"])


def _missing(kind: str, items: list[JSON], watched: Mapping[uuid.UUID, Watched]) -> list[Drift]:
    present = {_workspace_of(obj) for obj in items}
    return [Drift(ws_id, SOURCE, f"its {kind} is missing") for ws_id in watched if ws_id not in present]


def _changed(event: str, obj: JSON, item: Watched | None) -> str | None:
    """Why this event is drift of a watched workspace (None: not watched, or not drift)."""
    if item is None:
        return None
    if event == "DELETED":
        return "was deleted"
    since = item.verified_at.replace(microsecond=0)  # managedFields times have whole seconds
    for entry in obj["metadata"].get("managedFields") or []:
        manager = str(entry.get("manager", ""))
        if manager in PLATFORM_MANAGERS or not _touches_spec(entry.get("fieldsV1") or {}):
            continue
        if _parse_time(entry.get("time")) >= since:
            return f"was changed by {manager or 'an unnamed client'}"
    return None


def _touches_spec(fields: Mapping[str, Any]) -> bool:
    return any(name not in OWN_FIELDS for name in fields)


def _parse_time(value: Any) -> datetime:
    if not value:
        return datetime.min.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
