"""Attacks on the owners' data-lifecycle forms (data page, delete and cancel-deletion): every form refuses a forged
token, no form answers GET, another organization's forms are the 404 page, and bad input (an id that is no id, an
address far too long) is the page with its reason, never a bare JSON error; nothing changes meanwhile."""

from __future__ import annotations

import uuid

from tests.waiting import wait_until
from tests.web.conftest import Server
from tests.web.pages import Page, new_client, sign_up_and_verify

TIMEOUT = 120.0


def test_the_owners_forms_refuse_forgery_strangers_and_garbage(server: Server) -> None:
    slug = f"atk-{uuid.uuid4().hex[:6]}"
    owner = new_client(server.loopback)
    workspace_id = sign_up_and_verify(owner, f"owner@{slug}.example.com", slug).split("/")[-2]
    wait_until(
        f"{slug} ready",
        lambda: bool(owner.get(f"/signup/workspaces/{workspace_id}/status").json()["ready"]),
        timeout=TIMEOUT,
    )
    page = f"/workspaces/{workspace_id}/data"
    token = Page(owner.get(page).text).value("csrf_token")
    assert owner.post(f"{page}/backups", data={"csrf_token": token}).status_code == 303

    def backups() -> list[tuple[str, str]]:
        rows = server.query("SELECT id::text, state::text FROM workspace_backups WHERE workspace_id = %s", workspace_id)
        return [(str(i), str(s)) for i, s in rows]

    wait_until("the backup", lambda: [s for _, s in backups()] == ["completed"], TIMEOUT)
    [(backup_id, _)] = backups()

    def unchanged() -> None:
        assert [s for _, s in backups()] == ["completed"]
        assert server.query("SELECT count(*) FROM workspace_restores WHERE source_workspace_id = %s", workspace_id) == [
            (0,)
        ]
        assert server.query("SELECT count(*) FROM workspace_exports WHERE workspace_id = %s", workspace_id) == [(0,)]
        assert server.query("SELECT lifecycle_state::text FROM workspaces WHERE id = %s", workspace_id) == [
            ("trialing",)
        ]

    forms = [
        (f"{page}/backups", {}),
        (f"{page}/exports", {}),
        (f"{page}/backups/{backup_id}/restore", {"target": f"{slug}-copy"}),
        (f"{page}/backups/{backup_id}/restore", {"confirm": f"{slug}.localhost"}),
        (f"/workspaces/{workspace_id}/delete", {"confirm_address": f"{slug}.localhost"}),
        (f"/workspaces/{workspace_id}/cancel-deletion", {}),
    ]
    for path, data in forms:
        for forged in ("", "forged", "1.forged", f"{'9' * 10}.{'0' * 64}"):
            refused = owner.post(path, data={**data, "csrf_token": forged})
            assert refused.status_code == 403, (path, refused.status_code, refused.text[:300])
            assert "expired" in refused.text and refused.headers["content-type"].startswith("text/html")
        assert owner.get(path).status_code == 405, path  # no form mutates on GET
    unchanged()

    stranger = new_client(server.loopback)  # an owner of another organization, with a valid token of their own
    sign_up_and_verify(stranger, f"x@{slug}-else.example.com", f"{slug}-else")
    their_token = Page(stranger.get("/workspaces").text).value("csrf_token")
    assert stranger.get(page).status_code == 404
    for path, data in forms:
        refused = stranger.post(path, data={**data, "csrf_token": their_token})
        assert refused.status_code == 404 and refused.headers["content-type"].startswith("text/html"), path
    unchanged()

    # Garbage from the owner: the page with its reason.
    token = Page(owner.get(page).text).value("csrf_token")
    for bad_id in ("not-a-uuid", "1", "' OR 1=1 --", str(uuid.uuid4())):
        answer = owner.post(f"{page}/backups/{bad_id}/restore", data={"csrf_token": token, "target": f"{slug}-x"})
        assert answer.status_code == 404 and Page(answer.text).said("data-alert"), (bad_id, answer.text[:300])
    for data in ({"target": "a" * 5000}, {"confirm": "a" * 5000}, {"target": "héllo"}, {"target": "www"}):
        answer = owner.post(f"{page}/backups/{backup_id}/restore", data={**data, "csrf_token": token})
        assert answer.status_code in (409, 422) and Page(answer.text).said("data-alert"), (data, answer.text[:300])
    unchanged()
    for typed in ("a" * 5000, f"{slug.upper()}.LOCALHOST.", f"{slug}\x07.localhost"):
        answer = owner.post(f"/workspaces/{workspace_id}/delete", data={"confirm_address": typed, "csrf_token": token})
        assert answer.status_code == 422 and Page(answer.text).said("workspaces-alert"), (typed[:20], answer.text[:300])
    unchanged()
