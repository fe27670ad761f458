"""The few calls the control plane makes to a workspace server."""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx

from control_plane.providers.base import Observed, ProviderError

USERNAME_MIN, USERNAME_MAX = 3, 22
RESERVED_USERNAMES = frozenset({"all", "channel", "here", "matterbot", "system", "surveybot", "playbooks"})

_shared: httpx.Client | None = None
_shared_lock = threading.Lock()


def shared_client() -> httpx.Client:
    """The process's client for calls to workspace servers (thread-safe; it keeps connections alive). Making a client
    costs tens of milliseconds (its TLS context), several times per reconcile and so per wake if each call made one."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = httpx.Client()
        return _shared


def ping(base_url: str, timeout: float = 2.0) -> bool:
    """Whether the workspace server at ``base_url`` answers its ping with 200."""
    return server_status(base_url, timeout) is not None


def server_status(base_url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The server's ping answer (its release and schema revision among it), or None when it does not answer 200."""
    try:
        response = shared_client().get(f"{base_url}/api/v4/system/ping", timeout=timeout)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def observed_from_ping(base_url: str) -> Observed:
    """The release and schema revision the server at ``base_url`` reports (nothing when it does not answer)."""
    status = server_status(base_url) or {}
    release, schema = status.get("CanopyRelease"), status.get("CanopySchema")
    return Observed(
        release=str(release) if release else None,
        schema=schema if isinstance(schema, int) and not isinstance(schema, bool) else None,
    )


def admin_username(email: str) -> str:
    """A Mattermost-valid username from the email's local part.

    Lowercase, starts with a letter, 3-22 characters of ``a-z0-9.-_``, not a reserved name.
    """
    local = email.split("@", 1)[0].split("+", 1)[0].lower()  # without a +subaddress
    name = re.sub(r"[^a-z0-9._-]", "", local)
    name = re.sub(r"^[^a-z]+", "", name)[:USERNAME_MAX]
    if not name:
        name = "admin"
    if len(name) < USERNAME_MIN or name in RESERVED_USERNAMES:
        name = f"{name}-admin"[:USERNAME_MAX]
    return name


def _control_call(
    method: str,
    base_url: str,
    control_token: str,
    path: str,
    what: str,
    body: object = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """``method`` on a control endpoint (``/api/v4/canopy/<path>``); a :class:`ProviderError` naming ``what``
    unless it answers 2xx."""
    try:
        response = (client or shared_client()).request(
            method,
            f"{base_url}/api/v4/canopy/{path}",
            json=body,
            headers={"Authorization": f"Bearer {control_token}"},
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        raise ProviderError(f"{what} request failed: {type(exc).__name__}") from exc
    if not response.is_success:
        raise ProviderError(f"{what} request answered {response.status_code}")
    return response


def put_initial_admin(base_url: str, control_token: str, email: str, password_hash: str) -> None:
    """Create (or confirm) the workspace's first admin; idempotent on the server side."""
    body = {"email": email, "username": admin_username(email), "password_hash": password_hash}
    _control_call("PUT", base_url, control_token, "initial_admin", "initial admin", body)


def control_url(provider: str, outputs: dict[str, object], endpoint_url: str | None) -> str | None:
    """Where the control plane calls a workspace's server: on the local runtime its internal address; elsewhere its
    public one (a Kubernetes Service address is inside the cluster; the control endpoints need the workspace's
    control token either way)."""
    if provider == "local":
        internal = outputs.get("internal_url")
        return str(internal) if internal else None
    return endpoint_url


def get_activated_users(client: httpx.Client, base_url: str, control_token: str) -> int:
    """The server's seat count: activated, non-bot users (``GET /api/v4/canopy/usage``)."""
    response = _control_call("GET", base_url, control_token, "usage", "usage", client=client)
    count = response.json().get("activated_users")
    if not isinstance(count, int) or count < 0:
        raise ProviderError("usage answer has no activated_users count")
    return count


def get_activity(client: httpx.Client, base_url: str, control_token: str) -> int:
    """The server's last use, in ms since the epoch (``GET /api/v4/canopy/activity``; pings and control calls do not
    count, an open WebSocket does)."""
    response = _control_call("GET", base_url, control_token, "activity", "activity", client=client)
    try:
        last = response.json()["last_request_at"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ProviderError("activity answer has no last_request_at") from exc
    if not isinstance(last, int) or last < 0:
        raise ProviderError("activity answer has no last_request_at")
    return last


def put_plan(base_url: str, control_token: str, plan: dict[str, object]) -> None:
    """Tell the server its billing plan state (``PUT /api/v4/canopy/plan``; idempotent)."""
    _control_call("PUT", base_url, control_token, "plan", "plan", plan)
