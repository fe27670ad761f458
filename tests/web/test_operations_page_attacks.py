"""Garbage on the operators' page: ids that are no ids and reasons that say nothing (empty, 10 KB, control
characters) are the page with its reason (never a bare JSON error, never a purge); owners and support sending the
same get the 404 page."""

from __future__ import annotations

import uuid

from tests.web.conftest import Server
from tests.web.operations import lifecycle, pending_deletion, staff_account
from tests.web.pages import Page, new_client, post_login

PAGE = "/operations/data"


def test_garbage_is_the_page_with_its_reason(server: Server) -> None:
    slug = f"garbage-{uuid.uuid4().hex[:6]}"
    owner, workspace_id = pending_deletion(server, slug)
    operator = new_client(server.loopback)
    assert post_login(operator, staff_account(server, "operator")).status_code == 303
    token = Page(operator.get(PAGE).text).value("csrf_token")

    for bad_id in ("not-a-uuid", "1", "' OR 1=1 --", "0" * 300):
        for path in (f"workspaces/{bad_id}/purge", f"workspaces/{bad_id}/cancel-deletion", f"backups/{bad_id}/drill"):
            answer = operator.post(f"{PAGE}/{path}", data={"csrf_token": token, "reason": "a real reason"})
            assert answer.status_code == 404, (path, answer.text[:300])
            assert Page(answer.text).said("operations-alert"), path
    for reason in ("", "   ", "r" * 10_000, "\x07\x1b[2J", "\x1b[31mred\x1b[0m", "\u200b"):
        answer = operator.post(f"{PAGE}/workspaces/{workspace_id}/purge", data={"csrf_token": token, "reason": reason})
        assert answer.status_code == 422, (reason[:20], answer.text[:300])
        assert Page(answer.text).said("operations-alert"), reason[:20]
    assert server.query(
        "SELECT count(*) FROM audit_entries WHERE target_id = %s AND action = 'workspace.purge'", workspace_id
    ) == [(0,)]
    assert lifecycle(server, workspace_id)[0] == "pending_deletion"

    their_token = Page(owner.get("/workspaces").text).value("csrf_token")
    for path in ("workspaces/not-a-uuid/purge", f"workspaces/{workspace_id}/purge", "backups/nope/drill"):
        refused = owner.post(f"{PAGE}/{path}", data={"csrf_token": their_token, "reason": "r" * 10_000})
        assert refused.status_code == 404 and refused.headers["content-type"].startswith("text/html"), path
