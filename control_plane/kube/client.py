"""A small typed adapter over ``kubernetes.client.ApiClient``: the only module that touches the untyped client.

Objects are plain dicts in the API's JSON shape. Writes are server-side apply (one field manager); REST paths
come from discovery (cached per client); read-modify-write updates retry on 409 Conflict.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import kubernetes.client
import kubernetes.config

from control_plane.providers.base import ProviderError
from infra.conventions import FIELD_MANAGER

JSON = dict[str, Any]
_k8s: Any = kubernetes  # the client is (mostly) untyped: reach it through one Any
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is valid YAML: the body is sent as JSON
REQUEST_TIMEOUT = (5.0, 30.0)  # connect, read (seconds)
CONFLICT_ATTEMPTS = 5


class WatchExpired(ProviderError):
    """The resource version a watch resumed from is older than the server keeps (410 Gone): list again."""


class KubeApiError(ProviderError):
    """A non-2xx answer of the API server (``status`` is the HTTP status, ``reason`` the Status reason)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"Kubernetes API {status} {reason}: {message}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Resource:
    """Where a kind lives: ``/api/v1`` or ``/apis/<group>/<version>``, its plural name, and its scope."""

    base: str
    plural: str
    namespaced: bool

    def path(self, namespace: str | None = None, name: str | None = None) -> str:
        """The collection path (all namespaces when ``namespace`` is None), or the object's with ``name``."""
        scope = f"/namespaces/{namespace}" if self.namespaced and namespace else ""
        return f"{self.base}{scope}/{self.plural}" + (f"/{name}" if name else "")


@dataclass(frozen=True)
class Applied:
    """The object as the server stored it, and whether this apply created it (HTTP 201)."""

    obj: JSON
    created: bool


def _base(api_version: str) -> str:
    return f"/apis/{api_version}" if "/" in api_version else f"/api/{api_version}"


def _api_error(status: int, data: JSON) -> KubeApiError:
    return KubeApiError(status, str(data.get("reason", "")), str(data.get("message", "")))


def ref(obj: JSON) -> str:
    """``kind namespace/name`` (or ``kind name``) of an object, for messages and leak-sweep lines."""
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['kind'].lower()} {where}{meta['name']}"


class KubeClient:
    """One cluster's API: apply, get, delete, list, update, and discovery."""

    def __init__(self, api: Any, on_request: Callable[[str], None] | None = None) -> None:
        self._api = api
        self._on_request = on_request
        self._served: dict[str, list[str]] = {}
        self._resources: dict[str, dict[str, Resource]] = {}

    @classmethod
    def from_kubeconfig(cls, path: str | Path, on_request: Callable[[str], None] | None = None) -> KubeClient:
        """A client for the current context of a kubeconfig file (``on_request(verb)`` is told of every request)."""
        return cls(_k8s.config.new_client_from_config(config_file=str(path)), on_request)

    @classmethod
    def from_token(
        cls, endpoint: str, ca_pem: bytes, token: Callable[[], str], on_request: Callable[[str], None] | None = None
    ) -> KubeClient:
        """A client for ``endpoint`` trusting ``ca_pem``; ``token()`` is asked for the bearer token per request."""
        config = _k8s.client.Configuration(host=endpoint, ca_cert_data=ca_pem.decode())
        config.api_key = {"authorization": token()}  # the hook below runs only once a key is present
        config.api_key_prefix = {"authorization": "Bearer"}

        def refresh(cfg: Any) -> None:
            cfg.api_key["authorization"] = token()

        config.refresh_api_key_hook = refresh
        return cls(_k8s.client.ApiClient(config), on_request)

    def close(self) -> None:
        self._api.close()

    # --- HTTP ------------------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, query: Iterable[tuple[str, str]] = (), body: Any = None, content_type: str = ""
    ) -> tuple[int, bytes]:
        if self._on_request is not None:
            self._on_request(method)
        headers = {"Accept": "application/json", "Content-Type": content_type or "application/json"}
        method, url, headers, body, _ = self._api.param_serialize(
            method, path, query_params=list(query), header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = self._api.call_api(method, url, header_params=headers, body=body, _request_timeout=REQUEST_TIMEOUT)
        return int(response.status), response.read() or b"{}"

    def _request(
        self, method: str, path: str, query: Iterable[tuple[str, str]] = (), body: Any = None, content_type: str = ""
    ) -> tuple[int, JSON]:
        status, raw = self._send(method, path, query, body, content_type)
        data = json.loads(raw)
        if not 200 <= status < 300:
            raise _api_error(status, data)
        return status, cast(JSON, data)

    # --- discovery -------------------------------------------------------------------------------

    def served_versions(self, group: str) -> list[str]:
        """Versions the server serves for API ``group`` (``""`` is the core group), preferred first."""
        if not self._served:
            self._served[""] = list(self._request("GET", "/api")[1]["versions"])
            for item in self._request("GET", "/apis")[1]["groups"]:
                self._served[item["name"]] = [v["version"] for v in item["versions"]]
        return list(self._served.get(group, []))

    def resource(self, api_version: str, kind: str) -> Resource:
        """The REST location of ``kind`` in ``api_version``, from the server's resource list (cached)."""
        if api_version not in self._resources:
            base = _base(api_version)
            listing = self._request("GET", base)[1]["resources"]
            self._resources[api_version] = {
                r["kind"]: Resource(base, r["name"], bool(r["namespaced"])) for r in listing if "/" not in r["name"]
            }
        try:
            return self._resources[api_version][kind]
        except KeyError:
            raise ProviderError(f"the cluster does not serve {kind} in {api_version}") from None

    def _object_path(self, obj: JSON) -> str:
        meta = obj["metadata"]
        return self.resource(obj["apiVersion"], obj["kind"]).path(meta.get("namespace"), meta["name"])

    # --- verbs -----------------------------------------------------------------------------------

    def apply(self, obj: JSON) -> Applied:
        """Server-side apply ``obj`` (``fieldManager`` = :data:`FIELD_MANAGER`, ``force=true``)."""
        query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
        status, stored = self._request("PATCH", self._object_path(obj), query, obj, APPLY_CONTENT_TYPE)
        return Applied(stored, status == 201)

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> JSON | None:
        """The object, or None when it does not exist."""
        path = self.resource(api_version, kind).path(namespace, name)
        try:
            return self._request("GET", path)[1]
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, obj: JSON, propagation: str = "Background") -> bool:
        """Delete ``obj`` (``Foreground`` waits for dependents); False when it was already gone."""
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
        try:
            self._request("DELETE", self._object_path(obj), body=body)
        except KubeApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_kind(self, api_version: str, kind: str, namespace: str | None = None, selector: str = "") -> list[JSON]:
        """Objects of one kind (in every namespace when ``namespace`` is None), each with apiVersion and kind."""
        query = [("labelSelector", selector)] if selector else []
        items = self._request("GET", self.resource(api_version, kind).path(namespace), query)[1].get("items") or []
        return [{"apiVersion": api_version, "kind": kind, **item} for item in items]

    def list_with_version(self, api_version: str, kind: str, selector: str = "") -> tuple[list[JSON], str]:
        """:meth:`list_kind` over every namespace, and the list's resource version (where a watch resumes)."""
        query = [("labelSelector", selector)] if selector else []
        listing = self._request("GET", self.resource(api_version, kind).path(None), query)[1]
        items = [{"apiVersion": api_version, "kind": kind, **item} for item in listing.get("items") or []]
        return items, str(listing["metadata"]["resourceVersion"])

    def watch(
        self, api_version: str, kind: str, resource_version: str, selector: str = "", seconds: int = 1
    ) -> list[JSON]:
        """The events (``ADDED``, ``MODIFIED``, ``DELETED``, ``BOOKMARK``) on ``kind`` objects in every namespace since
        ``resource_version``, gathered for ``seconds``; :class:`WatchExpired` when that version is too old."""
        query = [
            ("watch", "1"),
            ("resourceVersion", resource_version),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(max(1, seconds))),
        ]
        query += [("labelSelector", selector)] if selector else []
        status, raw = self._send("GET", self.resource(api_version, kind).path(None), query)
        if status == 410:
            raise WatchExpired(f"{kind} watch from {resource_version} expired")
        if not 200 <= status < 300:
            raise _api_error(status, json.loads(raw))
        events = [cast(JSON, json.loads(line)) for line in raw.splitlines() if line.strip()]
        for event in events:
            if event.get("type") == "ERROR" or "object" not in event:  # an error event, or a bare Status
                error = event.get("object") or event
                if error.get("code") == 410:
                    raise WatchExpired(f"{kind} watch from {resource_version} expired")
                raise _api_error(int(error.get("code") or 500), error)
        return events

    def list_by_labels(self, selector: str, kinds: Iterable[tuple[str, str]]) -> list[JSON]:
        """Objects matching ``selector`` across ``kinds`` ((apiVersion, kind) pairs) in every namespace."""
        return [obj for api_version, kind in kinds for obj in self.list_kind(api_version, kind, selector=selector)]

    def update(
        self, obj: JSON, mutate: Callable[[JSON], None], subresource: str = "", attempts: int = CONFLICT_ATTEMPTS
    ) -> JSON:
        """Read, ``mutate`` in place, write back (optimistic concurrency); re-read and retry on 409 Conflict."""
        path = self._object_path(obj) + (f"/{subresource}" if subresource else "")
        attempt = 1
        while True:
            current = self._request("GET", path)[1]
            mutate(current)
            try:
                return self._request("PUT", path, [("fieldManager", FIELD_MANAGER)], current)[1]
            except KubeApiError as exc:
                if exc.status != 409 or attempt >= attempts:
                    raise
            time.sleep(0.05 * attempt)
            attempt += 1
