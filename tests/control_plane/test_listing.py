"""The workspace and audit lists' filters through the API: what each returns, an owner's view, and bad values."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from control_plane.core.settings import get_settings
from tests.control_plane.conftest import Owner, staff_token

PROBLEM = "application/problem+json"


def slugs(client: TestClient, headers: dict[str, str], **params: object) -> list[str]:
    """Every slug the list returns for ``params``, following the cursor one item at a time."""
    found: list[str] = []
    cursor = None
    while True:
        page = client.get(
            "/api/v1/workspaces",
            params={**params, "limit": 1} | ({"cursor": cursor} if cursor else {}),
            headers=headers,
        )
        assert page.status_code == 200, page.text
        found += [ws["slug"] for ws in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            return found


def test_workspace_filters_combine_and_owners_see_only_their_own(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    first, second, third = sign_up("lst-alpha-1"), sign_up("lst-alpha-2"), sign_up("lst-beta-1")
    staff = {"Authorization": f"Bearer {staff_token('lister@canopy.example', 'operator')}"}
    release = get_settings().default_release
    assert slugs(client, staff, slug_prefix="lst-") == ["lst-alpha-1", "lst-alpha-2", "lst-beta-1"]
    assert slugs(client, staff, slug_prefix="LST-ALPHA") == ["lst-alpha-1", "lst-alpha-2"]
    assert slugs(client, staff, slug_contains="beta") == ["lst-beta-1"]
    assert slugs(client, staff, slug_contains="ha-2", state="provisioning", tier="professional") == ["lst-alpha-2"]
    assert slugs(client, staff, slug_prefix="lst-", desired_release=release) == [
        "lst-alpha-1",
        "lst-alpha-2",
        "lst-beta-1",
    ]
    assert slugs(client, staff, slug_prefix="lst-", desired_release="0.0.0-none") == []
    assert slugs(client, staff, slug_prefix="lst-", observed_release=release) == []  # no worker ran them
    assert slugs(client, staff, slug_prefix="lst-", cell="cell-none") == []
    assert slugs(client, staff, slug_prefix="lst-", state="active") == []
    assert slugs(client, staff, organization_id=second.organization_id) == ["lst-alpha-2"]
    # An owner's list is its organization's, whatever it asks.
    assert slugs(client, first.headers, slug_prefix="lst-") == ["lst-alpha-1"]
    assert slugs(client, first.headers, organization_id=third.organization_id) == []
    assert slugs(client, third.headers, slug_contains="alpha") == []


def test_audit_filters_narrow_the_log_and_owners_see_only_their_own(
    client: TestClient, sign_up: Callable[[str], Owner]
) -> None:
    before = datetime.now(UTC)  # entries take their transaction's start time (PostgreSQL's now(), the same clock)
    mine, theirs = sign_up("aud-mine"), sign_up("aud-theirs")
    staff = {"Authorization": f"Bearer {staff_token('auditor@canopy.example', 'support')}"}
    mine_id, theirs_id = (
        client.get("/api/v1/workspaces", headers=o.headers).json()["items"][0]["id"] for o in (mine, theirs)
    )

    def audit(headers: dict[str, str], **params: object) -> list[dict[str, object]]:
        r = client.get("/api/v1/audit", params=params, headers=headers)
        assert r.status_code == 200, r.text
        items: list[dict[str, object]] = r.json()["items"]
        return items

    created = audit(staff, action="workspace.create", since=before.isoformat())
    assert {e["organization_id"] for e in created} == {mine.organization_id, theirs.organization_id}
    theirs_only = audit(staff, action="workspace.create", organization_id=theirs.organization_id)
    assert [e["target_id"] for e in theirs_only] == [theirs_id]
    earlier = (before - timedelta(hours=1)).replace(tzinfo=None).isoformat()  # no zone: UTC
    window = audit(staff, action="workspace.create", since=earlier, until=before.isoformat(), limit=500)
    assert not {e["target_id"] for e in window} & {mine_id, theirs_id}
    assert audit(staff, target_type="workspace", target_id=mine_id, action="workspace.create")
    by_actor = audit(staff, actor=created[0]["actor"], since=before.isoformat())
    assert by_actor and all(e["actor"] == created[0]["actor"] for e in by_actor)
    # An owner's log is its organization's, whatever it asks.
    own = audit(mine.headers, action="workspace.create")
    assert [e["organization_id"] for e in own] == [mine.organization_id]
    assert audit(mine.headers, organization_id=theirs.organization_id) == []
    page = audit(staff, since=before.isoformat(), limit=1)
    assert audit(staff, since=before.isoformat(), before_id=page[0]["id"], limit=1)[0]["id"] < page[0]["id"]  # type: ignore[operator]


def test_bad_filter_values_are_422_problems(client: TestClient) -> None:
    staff = {"Authorization": f"Bearer {staff_token('bad-filters@canopy.example', 'operator')}"}
    bad_workspace_params = [
        {"state": "sleeping"},
        {"tier": "gold"},
        {"organization_id": "not-a-uuid"},
        {"cell": ""},
        {"cell": "c" * 101},
        {"desired_release": "r" * 51},
        {"slug_prefix": "ab%"},
        {"slug_prefix": ""},
        {"slug_contains": "ab"},
        {"slug_contains": "a_b"},
        {"slug_contains": "x" * 64},
        {"cursor": "garbage!"},
        {"limit": 0},
        {"limit": 201},
    ]
    for params in bad_workspace_params:
        r = client.get("/api/v1/workspaces", params=params, headers=staff)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (params, r.text)
    now = datetime.now(UTC)
    bad_audit_params = [
        {"since": "yesterday"},
        {"until": "2026-13-01"},
        {"since": now.isoformat(), "until": (now - timedelta(hours=1)).isoformat()},
        {"since": now.isoformat(), "until": now.isoformat()},
        {"organization_id": "x"},
        {"actor": "a" * 201},
        {"action": ""},
        {"target_type": "t" * 51},
        {"before_id": 0},
        {"limit": 501},
    ]
    for params in bad_audit_params:
        r = client.get("/api/v1/audit", params=params, headers=staff)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (params, r.text)
