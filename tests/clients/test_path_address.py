"""Every client reaches a workspace of the embedded default at ``http://<control plane>/w/<slug>``: a real
``canopy run`` (API with its proxy, worker, workspace servers), a workspace signed up and provisioned through the
pages, then the unmodified ``mattermostdriver`` (Python) and ``@mattermost/client`` (Node) log in, post and get
WebSocket events at that address; odd ``/w/...`` paths answer a 404 problem.

No name outside ``localhost`` is resolved: clients that cannot resolve ``<slug>.localhost`` (glibc does not map
it) work all the same."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets
from mattermostdriver import Driver
from starlette.requests import Request

from control_plane.proxy import forwarded_headers, returned_headers
from tests.clients.test_mattermost_client_js import HERE, install_node_packages
from tests.waiting import wait_until
from tests.web.conftest import Server, start_server, stop_server
from tests.web.pages import PASSWORD, Page, new_client, post_signup, sign_up_and_verify
from workspace_server.auth import cookie_path

pytestmark = pytest.mark.slow

READY_TIMEOUT = 180.0
EVENT_TIMEOUT = 20.0
PROBLEM = "application/problem+json"


@dataclass
class Provisioned:
    """A running control plane and one ready workspace of it, signed up through the pages."""

    server: Server
    workspace_id: str
    slug: str
    email: str
    browser: httpx.Client  # signed in to the control plane (canopy_session)

    @property
    def address(self) -> str:
        """The every-client address, as the loopback IP (no name to resolve)."""
        return f"{self.server.loopback}/w/{self.slug}"


def wait_until_ready(client: httpx.Client, workspace_id: str) -> None:
    """Poll the progress status the page polls until the workspace is ready."""
    status = f"/signup/workspaces/{workspace_id}/status"
    wait_until(lambda: f"ready: {client.get(status).json()}", lambda: client.get(status).json()["ready"], READY_TIMEOUT)


@pytest.fixture(scope="module")
def plane(
    create_database: Callable[[str], str], admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Provisioned]:
    server = start_server(
        create_database("path_address"),
        tmp_path_factory.mktemp("path-address") / "state",
        CANOPY_SIGNUP_RATE_LIMIT="100",
    )
    try:
        slug = f"path-{uuid.uuid4().hex[:6]}"
        email = f"owner@{slug}.example.com"
        with new_client(server.loopback) as browser:
            progress = sign_up_and_verify(browser, email, slug)
            workspace_id = progress.split("/")[-2]
            wait_until_ready(browser, workspace_id)
            yield Provisioned(server, workspace_id, slug, email, browser)
    finally:
        stop_server(server, admin_url)


def driver_for(plane: Provisioned, login_id: str, password: str = PASSWORD) -> Driver:
    """``mattermostdriver`` configured with the path address: host, port and ``basepath`` under the prefix."""
    return Driver(
        {
            "url": "127.0.0.1",
            "port": plane.server.port,
            "scheme": "http",
            "basepath": f"/w/{plane.slug}/api/v4",
            "login_id": login_id,
            "password": password,
            "timeout": 10,
        }
    )


class DriverSocket:
    """The driver's own WebSocket client (``init_websocket``) on a thread with an event loop of its own."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.events: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self.driver.init_websocket(self._on_event)
        finally:  # the driver leaves its connection's tasks behind
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _on_event(self, message: str) -> None:
        self.events.append(json.loads(message))

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + EVENT_TIMEOUT
        while True:
            found = [event for event in self.events if predicate(event)]
            if found:
                return found[0]
            assert time.monotonic() < deadline, f"no matching event in {EVENT_TIMEOUT:g}s: {self.events}"
            time.sleep(0.05)

    def close(self, channel_id: str) -> None:
        """Stop the driver's loop: it looks at its flag after each event, so post one more."""
        self.driver.websocket.disconnect()
        self.driver.posts.create_post({"channel_id": channel_id, "message": "bye"})
        self.thread.join(EVENT_TIMEOUT)


def test_the_ready_page_and_the_api_show_the_path_address(plane: Provisioned) -> None:
    expected = f"http://localhost:{plane.server.port}/w/{plane.slug}"
    page = Page(plane.browser.get(f"/signup/workspaces/{plane.workspace_id}/ready").text)
    assert page.said("workspace-url") == expected and expected in page.links
    assert page.said("workspace-browser-url") == f"http://{plane.slug}.localhost:{plane.server.port}"

    with new_client(plane.server.loopback) as api:
        token = api.post("/api/v1/auth/token", json={"email": plane.email, "password": PASSWORD})
        assert token.status_code == 201, token.text
        headers = {"Authorization": f"Bearer {token.json()['token']}"}
        workspace = api.get(f"/api/v1/workspaces/{plane.workspace_id}", headers=headers)
    assert workspace.status_code == 200 and workspace.json()["url"] == expected

    # The workspace server knows its address: clients read it as the SiteURL.
    config = httpx.get(f"{plane.address}/api/v4/config/client", params={"format": "old"}, timeout=10)
    assert config.status_code == 200 and config.json()["SiteURL"] == expected


def test_mattermostdriver_logs_in_posts_and_gets_the_websocket_event(plane: Provisioned) -> None:
    driver = driver_for(plane, plane.email)
    driver.login()
    [team] = driver.teams.get_user_teams("me")
    channel = driver.channels.get_channel_by_name(team["id"], "town-square")
    socket = DriverSocket(driver)
    try:
        socket.wait_for(lambda event: event.get("event") == "hello")
        message = f"hello at the path address {uuid.uuid4().hex[:6]}"
        post = driver.posts.create_post({"channel_id": channel["id"], "message": message})
        event = socket.wait_for(
            lambda e: e.get("event") == "posted" and json.loads(e["data"]["post"])["id"] == post["id"]
        )
        assert json.loads(event["data"]["post"])["message"] == message
    finally:
        socket.close(channel["id"])
        driver.logout()
    assert not socket.thread.is_alive()


def test_mattermost_client_in_node_works_at_the_path_address(plane: Provisioned) -> None:
    install_node_packages()
    node = shutil.which("node")
    assert node is not None, "node (20+) is needed for the JavaScript client tests"
    admin = driver_for(plane, plane.email)
    admin.login()
    [team] = admin.teams.get_user_teams("me")
    for name in ("patha", "pathb"):
        user = admin.users.create_user(
            {"email": f"{name}@{plane.slug}.example.com", "username": name, "password": PASSWORD}
        )
        admin.teams.add_user_to_team(team["id"], {"team_id": team["id"], "user_id": user["id"]})
    admin.logout()
    env = os.environ | {
        "CANOPY_URL": plane.address,
        "CANOPY_TEAM": team["name"],
        "CANOPY_USER_A": "patha",
        "CANOPY_PASSWORD_A": PASSWORD,
        "CANOPY_USER_B": "pathb",
        "CANOPY_PASSWORD_B": PASSWORD,
    }
    script = HERE / "mattermost_client_acceptance.mjs"
    done = subprocess.run([node, str(script)], cwd=HERE, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "fatal" not in result, result["fatal"]
    for step in ("login", "websocket_connect", "create_channel", "post", "thread_reply", "file_upload", "ping"):
        assert result["steps"][step]["ok"], (step, result["steps"][step], done.stderr[-3000:])
    assert result["steps"]["post"]["value"]["sender"] == "@patha"
    for label, socket in result["sockets"].items():
        assert socket["hellos"] == 1 and socket["reconnects"] == 0 and socket["counts"]["posted"] >= 2, (label, socket)


def test_login_cookies_are_scoped_to_the_workspace_path_and_responses_sandboxed(plane: Provisioned) -> None:
    login = httpx.post(
        f"{plane.address}/api/v4/users/login", json={"login_id": plane.email, "password": PASSWORD}, timeout=10
    )
    assert login.status_code == 200, login.text
    cookies = login.headers.get_list("set-cookie")
    assert {c.split("=", 1)[0] for c in cookies} == {"MMAUTHTOKEN", "MMUSERID", "MMCSRF"}
    assert all(f"Path=/w/{plane.slug}" in c for c in cookies), cookies
    assert login.headers["content-security-policy"] == "sandbox"
    # The same server by its browser-only host form keeps cookies at / (that host is the workspace's alone).
    by_host = httpx.post(
        f"{plane.server.loopback}/api/v4/users/login",
        json={"login_id": plane.email, "password": PASSWORD},
        headers={"Host": f"{plane.slug}.localhost:{plane.server.port}", "X-Forwarded-Prefix": "/w/other"},
        timeout=10,
    )
    assert by_host.status_code == 200, by_host.text
    assert all("Path=/;" in c or c.endswith("Path=/") for c in by_host.headers.get_list("set-cookie"))
    # A redirect of the workspace server (a trailing slash) stays under the prefix.
    redirect = httpx.get(f"{plane.address}/api/v4/users/me/", timeout=10)
    assert redirect.status_code == 307 and redirect.headers["location"] == f"/w/{plane.slug}/api/v4/users/me"
    # The cookies authenticate requests under the prefix.
    token = login.cookies["MMAUTHTOKEN"]
    me = httpx.get(f"{plane.address}/api/v4/users/me", cookies={"MMAUTHTOKEN": token}, timeout=10)
    assert me.status_code == 200 and me.json()["email"] == plane.email


def raw_get(port: int, path: str) -> tuple[int, str, str]:
    """GET ``path`` byte for byte (http.client neither normalizes dot segments nor decodes escapes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("content-type") or "", response.read().decode()
    finally:
        conn.close()


def test_the_path_route_reaches_only_running_workspaces_and_refuses_odd_paths(plane: Provisioned) -> None:
    port, slug = plane.server.port, plane.slug
    assert raw_get(port, f"/w/{slug}/api/v4/system/ping")[0] == 200
    unverified = f"wait-{uuid.uuid4().hex[:6]}"
    with new_client(plane.server.loopback) as other:
        assert post_signup(other, f"owner@{unverified}.example.com", unverified).status_code == 303
    refused = [
        "/w",
        "/w/",
        "/w/no-such-workspace/api/v4/system/ping",
        f"/w/{unverified}/api/v4/system/ping",  # known, but not running
        f"/w/{slug.upper()}/api/v4/system/ping",
        "/w/../api/v1/workspaces",
        "/w/%2e%2e/api/v1/workspaces",
        f"/w/{slug}/../../api/v1/workspaces",
        f"/w/{slug}/api/v4/../../../api/v1/workspaces",
        f"/w/{slug}/%2e%2e/%2e%2e/api/v1/workspaces",
        f"/w/{slug}/api%2Fv4/system/ping",
        f"/w/{slug}%2f..%2fother/api/v4/system/ping",
        f"/w/{slug}/api/v4/system\\ping",
        f"/w/{slug}/./api/v4/system/ping",
    ]
    for path in refused:
        status, content_type, body = raw_get(port, path)
        assert (status, content_type) == (404, PROBLEM), (path, status, body)
        assert json.loads(body)["status"] == 404
    # The WebSocket route is refused the same way.
    with pytest.raises(websockets.InvalidStatus):
        asyncio.run(_open_websocket(f"ws://127.0.0.1:{port}/w/no-such-workspace/api/v4/websocket"))


async def _open_websocket(url: str) -> None:
    async with websockets.connect(url, open_timeout=10):
        pass


def test_the_control_planes_cookies_never_cross_the_proxy() -> None:
    cookie = b"canopy_session=secret; MMAUTHTOKEN=tok; __Host-canopy_csrf=n; canopy_csrf=m; MMCSRF=c"
    request = [
        (b"host", b"localhost:8000"),
        (b"cookie", cookie),
        (b"x-forwarded-prefix", b"/w/someone-else"),
        (b"connection", b"keep-alive"),
    ]
    assert forwarded_headers(request, "/w/acme") == [
        (b"cookie", b"MMAUTHTOKEN=tok; MMCSRF=c"),
        (b"x-forwarded-prefix", b"/w/acme"),
    ]
    assert forwarded_headers([(b"cookie", b"canopy_session=secret")], "") == []
    response = [
        (b"set-cookie", b"canopy_session=fixed; Path=/"),
        (b"set-cookie", b"MMAUTHTOKEN=tok; Path=/w/acme"),
        (b"content-type", b"application/json"),
    ]
    assert returned_headers(response, "/w/acme", "http://127.0.0.1:5000") == [
        (b"set-cookie", b"MMAUTHTOKEN=tok; Path=/w/acme"),
        (b"content-type", b"application/json"),
        (b"content-security-policy", b"sandbox"),
    ]
    assert returned_headers(response, "", "http://127.0.0.1:5000") == response[1:]


def test_redirects_of_a_workspace_server_stay_at_the_address_the_client_used() -> None:
    def location(value: bytes, prefix: str) -> bytes:
        [(_, out), *_] = returned_headers([(b"location", value)], prefix, "http://127.0.0.1:5000")
        return out

    assert location(b"http://127.0.0.1:5000/api/v4/users/me", "/w/acme") == b"/w/acme/api/v4/users/me"
    assert location(b"http://127.0.0.1:5000", "/w/acme") == b"/w/acme/"
    assert location(b"/api/v4/users/me?x=1", "/w/acme") == b"/w/acme/api/v4/users/me?x=1"
    assert location(b"http://127.0.0.1:5000/api/v4/users/me", "") == b"/api/v4/users/me"
    assert location(b"http://127.0.0.1:50000/elsewhere", "/w/acme") == b"http://127.0.0.1:50000/elsewhere"
    assert location(b"https://example.com/x", "/w/acme") == b"https://example.com/x"
    assert location(b"//example.com/x", "/w/acme") == b"//example.com/x"


@pytest.mark.parametrize(
    ("prefix", "path"),
    [
        ("/w/acme", "/w/acme"),
        ("/team/chat-1", "/team/chat-1"),
        ("", "/"),
        ("/", "/"),
        ("/w/acme/", "/"),
        ("/w/..", "/"),
        ("/w/acme; Domain=evil.example", "/"),
        ("//evil.example", "/"),
        ("w/acme", "/"),
        ("/w/acme\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_the_workspace_server_scopes_cookies_only_to_a_clean_prefix(prefix: str, path: str) -> None:
    headers = [(b"x-forwarded-prefix", prefix.encode())] if prefix else []
    assert cookie_path(Request({"type": "http", "headers": headers})) == path
