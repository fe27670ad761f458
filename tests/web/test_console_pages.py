"""The operator console's release and rollout pages without a browser: an operator sees the catalogue, the fleet by
release and a rollout's progress (as pages and as their live JSON), pauses, resumes, aborts and rolls it back with
reasons (audited); a forged form, a refused move (409), a too long reason (422) are the page with its reason;
support reads without buttons and is refused a change; owners and strangers learn nothing."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.web.conftest import Server
from tests.web.console import Fleet, fleet_with_rollout, rollout_state, staff
from tests.web.pages import Page, new_client, post_login

RELEASES = "/operations/releases"
ROLLOUTS = "/operations/rollouts"


@pytest.fixture(scope="module")
def fleet(server: Server) -> Fleet:
    """One rollout the tests of this module share (each test acts on a fresh one where it changes it)."""
    return fleet_with_rollout(server)


def _signed_in(server: Server, email: str) -> httpx.Client:
    client = new_client(server.loopback)
    assert post_login(client, email).status_code == 303
    return client


def _page(server: Server, rollout_id: str) -> str:
    return f"{ROLLOUTS}/{rollout_id}"


def _offered(html: str) -> list[str]:
    """The actions whose forms the page shows (the others are there, hidden, for the live refresh)."""
    return re.findall(r'id="form-(\w+)"(?! hidden)', html)


def test_an_operator_sees_releases_fleet_and_the_rollout(server: Server, fleet: Fleet) -> None:
    operator = _signed_in(server, fleet.operator_email)
    shown = operator.get(RELEASES)
    assert shown.status_code == 200, shown.text
    page = Page(shown.text)
    assert fleet.release in page.said("releases") and "0.1.0" in page.said("releases")
    assert "enterprise" in page.said("fleet") and "professional" in page.said("fleet")

    live = operator.get(f"{RELEASES}/live")
    assert live.status_code == 200 and live.headers["cache-control"] == "no-store"
    body = live.json()
    assert {r["version"] for r in body["releases"]} >= {fleet.release, "0.1.0"}
    assert sum(row["count"] for row in body["fleet"] if row["tier"] == "enterprise") >= 1

    listing = Page(operator.get(ROLLOUTS).text)
    assert _page(server, fleet.rollout_id) in listing.links
    rollout = Page(operator.get(_page(server, fleet.rollout_id)).text)
    assert rollout.said("rollout-targets") == "1"
    assert "Canaries" in rollout.said("waves")
    view = operator.get(f"{_page(server, fleet.rollout_id)}/live").json()
    assert view["release"] == fleet.release and view["waves"][0]["size"] == 1


def test_an_operator_pauses_resumes_aborts_and_rolls_back(server: Server) -> None:
    fleet = fleet_with_rollout(server)
    operator = _signed_in(server, fleet.operator_email)
    path = _page(server, fleet.rollout_id)
    shown = operator.get(path).text
    token = Page(shown).value("csrf_token")
    assert _offered(shown) == ["pause", "abort", "rollback"]

    refused = operator.post(f"{path}/resume", data={"csrf_token": token, "reason": "go"})
    assert refused.status_code == 409, refused.text
    assert "cannot be running" in Page(refused.text).said("rollout-alert")

    for action, state in (
        ("pause", "paused"),
        ("resume", "running"),
        ("abort", "aborted"),
        ("rollback", "rolled_back"),
    ):
        done = operator.post(f"{path}/{action}", data={"csrf_token": token, "reason": f"console {action}"})
        assert done.status_code == 303 and done.headers["location"] == path, done.text
        assert rollout_state(server, fleet.rollout_id) == state
        assert operator.get(f"{path}/live").json()["state"] == state
    audited = server.query("SELECT action, actor FROM audit_entries WHERE target_id = %s ORDER BY id", fleet.rollout_id)
    assert [a for a, _ in audited] == [
        "rollout.start", "rollout.pause", "rollout.resume", "rollout.abort", "rollout.rollback",
    ]  # fmt: skip
    assert all("(operator)" in actor for _, actor in audited[1:])
    [(reason,)] = server.query("SELECT reason FROM rollouts WHERE id = %s", uuid.UUID(fleet.rollout_id))
    assert reason == "console rollback"
    assert _offered(operator.get(path).text) == []  # nothing left to do


def test_forged_refused_and_too_long_are_the_page_with_its_reason(server: Server, fleet: Fleet) -> None:
    operator = _signed_in(server, fleet.operator_email)
    path = _page(server, fleet.rollout_id)
    token = Page(operator.get(path).text).value("csrf_token")
    before = rollout_state(server, fleet.rollout_id)

    forged = operator.post(f"{path}/abort", data={"csrf_token": "1.forged", "reason": "x"})
    assert forged.status_code == 403 and "expired" in Page(forged.text).said("rollout-alert")
    missing = operator.post(f"{path}/abort", data={"reason": "x"})
    assert missing.status_code == 403
    too_long = operator.post(f"{path}/abort", data={"csrf_token": token, "reason": "x" * 501})
    assert too_long.status_code == 422 and "500 characters" in Page(too_long.text).said("rollout-alert")
    assert operator.post(f"{path}/explode", data={"csrf_token": token}).status_code == 404
    assert operator.post(f"{ROLLOUTS}/not-an-id/abort", data={"csrf_token": token}).status_code == 404
    assert operator.post(f"{ROLLOUTS}/{uuid.uuid4()}/abort", data={"csrf_token": token}).status_code == 404
    assert operator.get(f"{ROLLOUTS}/{uuid.uuid4()}").status_code == 404
    assert operator.get(f"{ROLLOUTS}/{uuid.uuid4()}/live").status_code == 404
    assert rollout_state(server, fleet.rollout_id) == before


def test_support_reads_without_buttons_and_may_not_act(server: Server, fleet: Fleet) -> None:
    support_email, _ = staff(server, "support")
    support = _signed_in(server, support_email)
    path = _page(server, fleet.rollout_id)
    shown = support.get(path)
    assert shown.status_code == 200
    page = Page(shown.text)
    assert "rollout-actions" not in page.text and _offered(shown.text) == [] and page.said("rollout-state") != ""
    assert support.get(f"{path}/live").json()["actions"] == []
    assert support.get(RELEASES).status_code == 200
    before = rollout_state(server, fleet.rollout_id)
    refused = support.post(f"{path}/abort", data={"csrf_token": page.value("csrf_token"), "reason": "x"})
    assert refused.status_code == 403 and "support role may not" in Page(refused.text).said("rollout-alert")
    assert rollout_state(server, fleet.rollout_id) == before


def test_owners_and_strangers_learn_nothing(server: Server, fleet: Fleet) -> None:
    path = _page(server, fleet.rollout_id)
    for url in (RELEASES, ROLLOUTS, path):
        assert fleet.owner.get(url).status_code == 404
    for url in (f"{RELEASES}/live", f"{path}/live"):
        assert fleet.owner.get(url).status_code == 404
    token = Page(fleet.owner.get("/workspaces").text).value("csrf_token")
    assert fleet.owner.post(f"{path}/abort", data={"csrf_token": token, "reason": "x"}).status_code == 404

    stranger = new_client(server.loopback)
    for url in (RELEASES, ROLLOUTS, path):
        answer = stranger.get(url)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=")
    assert stranger.get(f"{path}/live").status_code == 401
    assert stranger.post(f"{path}/abort", data={"reason": "x"}).status_code == 303
    assert rollout_state(server, fleet.rollout_id) in ("running", "paused")
