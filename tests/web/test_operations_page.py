"""The operators' data page without a browser: an operator signs in with the ordinary form, sees workspaces pending
deletion with their final backup, purges one with a reason (refused without one; audited with it) and cancels
another; a forged form is refused; owners, support staff and anonymous browsers learn nothing."""

from __future__ import annotations

import uuid

from tests.waiting import wait_until
from tests.web.conftest import Server
from tests.web.operations import TIMEOUT, final_backup, lifecycle, pending_deletion, staff_account
from tests.web.pages import Page, new_client, post_login

PAGE = "/operations/data"


def _audit(server: Server, workspace_id: str, action: str) -> list[tuple[str, object]]:
    rows = server.query(
        "SELECT actor, after -> 'reason' FROM audit_entries WHERE target_id = %s AND action = %s ORDER BY id",
        workspace_id,
        action,
    )
    return [(str(actor), reason) for actor, reason in rows]


def test_an_operator_purges_with_a_reason_and_cancels_another(server: Server) -> None:
    doomed_slug, kept_slug = f"doomed-{uuid.uuid4().hex[:6]}", f"kept-{uuid.uuid4().hex[:6]}"
    _, doomed = pending_deletion(server, doomed_slug)
    _, kept = pending_deletion(server, kept_slug)

    operator = new_client(server.loopback)
    email = staff_account(server, "operator")
    signed_in = post_login(operator, email, next_path=PAGE)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == PAGE
    response = operator.get(PAGE)
    assert response.status_code == 200, response.text
    shown = Page(response.text)
    assert shown.said("nav-operations") == "Operations"
    assert shown.said(f"pending-{doomed_slug}-final-backup") == "Final backup completed"
    assert f"Purge {doomed_slug}.localhost now" in shown.said(f"pending-{doomed_slug}")
    token = shown.value("csrf_token")

    blank = operator.post(f"{PAGE}/workspaces/{doomed}/purge", data={"csrf_token": token, "reason": "  "})
    assert blank.status_code == 422 and "Say why" in Page(blank.text).said("operations-alert")
    assert _audit(server, doomed, "workspace.purge") == []

    reason = "customer asked for erasure (ticket 4711)"
    purged = operator.post(f"{PAGE}/workspaces/{doomed}/purge", data={"csrf_token": token, "reason": reason})
    assert purged.status_code == 303 and purged.headers["location"] == PAGE
    [(actor, audited_reason)] = _audit(server, doomed, "workspace.purge")
    assert "(operator)" in actor and audited_reason == reason
    wait_until("the purge", lambda: lifecycle(server, doomed) == ("deleted", True), TIMEOUT)
    assert final_backup(server, doomed) == "completed"  # kept for its 90 days

    cancelled = operator.post(f"{PAGE}/workspaces/{kept}/cancel-deletion", data={"csrf_token": token})
    assert cancelled.status_code == 303
    assert [a for a, _ in _audit(server, kept, "workspace.deletion_cancelled")] == [actor]
    wait_until("the cancelled one serves again", lambda: lifecycle(server, kept) == ("trialing", True), TIMEOUT)
    after = Page(operator.get(PAGE).text)
    assert f"pending-{doomed_slug}" not in after.text and f"pending-{kept_slug}" not in after.text


def test_a_forged_form_is_refused(server: Server) -> None:
    slug = f"forged-{uuid.uuid4().hex[:6]}"
    _, workspace_id = pending_deletion(server, slug)
    operator = new_client(server.loopback)
    assert post_login(operator, staff_account(server, "operator")).status_code == 303
    operator.get(PAGE)  # the CSRF cookie is set; the token is not sent along
    for action, data in (("purge", {"reason": "forged"}), ("cancel-deletion", {})):
        refused = operator.post(f"{PAGE}/workspaces/{workspace_id}/{action}", data={**data, "csrf_token": "1.forged"})
        assert refused.status_code == 403 and "expired" in Page(refused.text).said("operations-alert")
    assert _audit(server, workspace_id, "workspace.purge") == []
    assert lifecycle(server, workspace_id)[0] == "pending_deletion"


def test_owners_support_and_strangers_get_nothing(server: Server) -> None:
    slug = f"private-{uuid.uuid4().hex[:6]}"
    owner, workspace_id = pending_deletion(server, slug)
    support = new_client(server.loopback)
    assert post_login(support, staff_account(server, "support")).status_code == 303
    for client in (owner, support):
        page = client.get(PAGE)
        assert page.status_code == 404 and slug not in page.text
        shown = Page(page.text)
        assert "nav-operations" not in shown.text
        token = shown.value("csrf_token")
        refused = client.post(f"{PAGE}/workspaces/{workspace_id}/purge", data={"csrf_token": token, "reason": "x"})
        assert refused.status_code == 404
    anonymous = new_client(server.loopback).get(PAGE)
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/operations/data"
    assert _audit(server, workspace_id, "workspace.purge") == []
    assert lifecycle(server, workspace_id)[0] == "pending_deletion"


def test_drill_now_drills_the_final_backup(server: Server) -> None:
    slug = f"drilled-{uuid.uuid4().hex[:6]}"
    _, workspace_id = pending_deletion(server, slug)
    [(backup_id,)] = server.query(
        "SELECT id::text FROM workspace_backups WHERE workspace_id = %s AND kind = 'final'", uuid.UUID(workspace_id)
    )
    operator = new_client(server.loopback)
    assert post_login(operator, staff_account(server, "operator")).status_code == 303
    token = Page(operator.get(PAGE).text).value("csrf_token")
    drilled = operator.post(f"{PAGE}/backups/{backup_id}/drill", data={"csrf_token": token})
    assert drilled.status_code == 303 and drilled.headers["location"] == PAGE

    def outcomes() -> list[str]:
        rows = server.query("SELECT outcome::text FROM backup_drills WHERE backup_id = %s", uuid.UUID(backup_id))
        return [str(outcome) for (outcome,) in rows]

    wait_until("the drill", lambda: outcomes() == ["ok"], TIMEOUT)
    shown = Page(operator.get(PAGE).text)
    listed = [shown.said(key) for key in shown.text if key.startswith("drill-") and slug in shown.said(key)]
    assert listed and all("Ok" in text for text in listed)
    missing = operator.post(f"{PAGE}/backups/{uuid.uuid4()}/drill", data={"csrf_token": token})
    assert missing.status_code == 404 and Page(missing.text).said("operations-alert")
