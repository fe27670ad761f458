"""The data page's forms without a browser: the CSRF token is required, a refused action says why on the page, a
restore into a new workspace from the page makes that workspace with the backup's content, and another
organization's page and forms are 404s that change nothing."""

from __future__ import annotations

import uuid

import httpx

from tests.waiting import wait_until
from tests.web.conftest import Server
from tests.web.pages import PASSWORD, Page, new_client, path_of, sign_up_and_verify

TIMEOUT = 120.0


def _ready(server: Server, slug: str) -> tuple[httpx.Client, str]:
    """A signed-in client of a new workspace's owner, once the workspace serves; and the workspace id."""
    client = new_client(server.loopback)
    progress = sign_up_and_verify(client, f"owner@{slug}.example.com", slug)
    workspace_id = progress.split("/")[-2]
    wait_until(
        f"{slug} ready",
        lambda: bool(client.get(f"/signup/workspaces/{workspace_id}/status").json()["ready"]),
        timeout=TIMEOUT,
    )
    return client, workspace_id


def _token(client: httpx.Client, workspace_id: str) -> str:
    response = client.get(f"/workspaces/{workspace_id}/data")
    assert response.status_code == 200, response.text
    return Page(response.text).value("csrf_token")


def _backups(server: Server, workspace_id: str) -> list[tuple[str, str]]:
    rows = server.query(
        "SELECT id::text, state FROM workspace_backups WHERE workspace_id = %s ORDER BY created_at", workspace_id
    )
    return [(str(i), str(state)) for i, state in rows]


def test_the_data_page_forms(server: Server) -> None:
    slug = f"forms-{uuid.uuid4().hex[:6]}"
    client, workspace_id = _ready(server, slug)
    page = f"/workspaces/{workspace_id}/data"

    refused = client.post(f"{page}/backups", data={"csrf_token": "forged"})
    assert refused.status_code == 403 and "expired" in Page(refused.text).said("data-alert")
    assert _backups(server, workspace_id) == []

    done = client.post(f"{page}/backups", data={"csrf_token": _token(client, workspace_id)})
    assert done.status_code == 303 and done.headers["location"] == page
    wait_until("the backup", lambda: [s for _, s in _backups(server, workspace_id)] == ["completed"], TIMEOUT)
    ((backup_id, _),) = _backups(server, workspace_id)

    wrong = client.post(
        f"{page}/backups/{backup_id}/restore",
        data={"csrf_token": _token(client, workspace_id), "confirm": "someone-else.localhost"},
    )
    assert wrong.status_code == 409 and "address" in Page(wrong.text).said("data-alert")
    empty = client.post(
        f"{page}/backups/{backup_id}/restore", data={"csrf_token": _token(client, workspace_id), "target": " "}
    )
    assert empty.status_code == 422 and Page(empty.text).said("data-alert")

    clone = f"{slug}-copy"
    restored = client.post(
        f"{page}/backups/{backup_id}/restore",
        data={"csrf_token": _token(client, workspace_id), "target": f"{clone}.localhost"},
    )
    assert restored.status_code == 303, restored.text

    def clone_restored() -> bool:
        rows = server.query(
            "SELECT r.state, w.lifecycle_state FROM workspace_restores r JOIN workspaces w"
            " ON w.id = r.target_workspace_id WHERE w.slug = %s",
            clone,
        )
        return rows == [("completed", "trialing")]

    wait_until(f"{clone} restored", clone_restored, TIMEOUT)
    listed = client.get("/workspaces")
    assert f"Backups and exports of {clone}.localhost" in listed.text

    stranger = new_client(server.loopback)  # an owner of another organization
    sign_up_and_verify(stranger, f"x@{slug}-else.example.com", f"{slug}-else")
    assert stranger.get(page).status_code == 404
    token = Page(stranger.get("/workspaces").text).value("csrf_token")
    assert stranger.post(f"{page}/backups", data={"csrf_token": token}).status_code == 404
    assert len(_backups(server, workspace_id)) == 1


def test_a_billing_member_sees_no_backups_and_may_not_back_up(server: Server) -> None:
    slug = f"roles-{uuid.uuid4().hex[:6]}"
    owner = new_client(server.loopback)
    sign_up_and_verify(owner, f"owner@{slug}.example.com", slug)
    token = owner.post("/api/v1/auth/token", json={"email": f"owner@{slug}.example.com", "password": PASSWORD})
    assert token.status_code == 201, token.text
    organization_id, headers = token.json()["organization_id"], {"Authorization": f"Bearer {token.json()['token']}"}
    ((workspace_id,),) = server.query("SELECT id::text FROM workspaces WHERE slug = %s", slug)
    member_email = f"billing@{slug}.example.com"
    invited = owner.post(
        f"/api/v1/organizations/{organization_id}/invitations",
        json={"email": member_email, "role": "billing"},
        headers=headers,
    )
    assert invited.status_code == 201, invited.text
    links = [
        link for link in Page(owner.get("/dev/mail", params={"to": member_email}).text).links if "/invitations/" in link
    ]
    member = new_client(server.loopback)
    link = path_of(links[0])
    joined = member.post(
        link, data={"password": PASSWORD, "csrf_token": Page(member.get(link).text).value("csrf_token")}
    )
    assert joined.status_code == 303, joined.text

    page = member.get(f"/workspaces/{workspace_id}/data")
    assert page.status_code == 200
    shown = Page(page.text)
    assert "back-up-now" not in shown.text and "export-now" not in shown.text
    refused = member.post(f"/workspaces/{workspace_id}/data/backups", data={"csrf_token": shown.value("csrf_token")})
    assert refused.status_code == 403 and "may not back up workspace" in Page(refused.text).said("data-alert")
    assert _backups(server, workspace_id) == []
