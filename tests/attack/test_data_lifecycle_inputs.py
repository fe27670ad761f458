"""Bad input swept through the data-lifecycle API (backups, restores, drills, exports, delayed deletion): every
answer a 4xx RFC 9457 problem, never a 5xx, another organization's things a 404, and nothing changed, lost or
leaked (no secret in an answer, an audit entry or a worker's log)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from control_plane.audit.models import AuditEntry
from control_plane.core import db as core_db
from control_plane.core.authz import Role
from control_plane.credentials import service as credentials
from control_plane.credentials.models import Purpose
from tests.backups.conftest import BackupPlane
from tests.reconciler.conftest import ROOT

NOT_IDS = ["not-a-uuid", "1", "%00", "' OR 1=1 --", "0" * 500, "ffffffff-ffff-ffff-ffff-fffffffffffffff"]
BAD_LIMITS = ["-1", "0", "101", "99999999999999999999999", "abc", "1.5", ""]


def problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    """The answer's problem body, once it is one with ``status``."""
    assert answer.status_code == status, (answer.request.method, answer.request.url, answer.text[:500])
    assert answer.headers["content-type"].startswith("application/problem+json"), answer.headers
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["title"], body
    return body


def audit_rows() -> list[tuple[str, str]]:
    with core_db.session_scope() as session:
        return [
            (a, str(b) + str(c))
            for a, b, c in session.execute(select(AuditEntry.action, AuditEntry.before, AuditEntry.after))
        ]


def test_bad_input_is_refused_with_problems_and_changes_nothing(backing: BackupPlane) -> None:
    api = backing.plane.api
    slug = f"sweep-{uuid.uuid4().hex[:6]}"
    a_id = backing.workspace(slug)
    backup = backing.back_up(a_id)
    backing.plane.stop_workers()  # from here nothing may act on what the requests would have changed
    owner = backing.plane.owner_headers[a_id]
    b_id = backing.plane.create_workspace(f"sweepb-{uuid.uuid4().hex[:6]}")  # another organization, provisioning
    stranger = backing.plane.owner_headers[b_id]
    operator = backing.plane.staff_headers(Role.operator)
    base = f"/api/v1/workspaces/{a_id}"
    backup_path = f"{base}/backups/{backup['id']}"
    audited_before = len(audit_rows())

    # Ids that are not UUIDs, in every route: 422 problems.
    for bad in NOT_IDS:
        for method, path in (
            ("GET", f"/api/v1/workspaces/{bad}/backups"),
            ("POST", f"/api/v1/workspaces/{bad}/backups"),
            ("GET", f"{base}/backups/{bad}"),
            ("POST", f"{base}/backups/{bad}/restore"),
            ("GET", f"{base}/backups/{bad}/restore"),
            ("GET", f"/api/v1/backups/{bad}/drills"),
            ("POST", f"/api/v1/backups/{bad}/drills"),
            ("GET", f"/api/v1/workspaces/{bad}/exports"),
            ("GET", f"{base}/exports/{bad}"),
            ("GET", f"/api/v1/exports/{bad}/download?token=x"),
            ("DELETE", f"/api/v1/workspaces/{bad}"),
            ("POST", f"/api/v1/workspaces/{bad}/cancel-deletion"),
            ("POST", f"/api/v1/workspaces/{bad}/purge"),
        ):
            headers = operator if "drills" in path or "purge" in path else owner
            answer = api.request(method, path, headers=headers, json={"mode": "clone", "slug": "x", "reason": "r"})
            assert answer.status_code in (404, 422), (method, path, answer.status_code, answer.text[:300])
            problem(answer, answer.status_code)

    # Export links: a token that is garbage, missing or far too long; Idempotency-Keys out of bounds.
    download = f"/api/v1/exports/{uuid.uuid4()}/download"
    problem(api.get(download, params={"token": "garbage"}), 404)
    for params in ({}, {"token": ""}, {"token": "t" * 201}):
        problem(api.get(download, params=params), 422)
    for key in ("", "k" * 10_000):
        problem(api.post(f"{base}/backups", headers={**owner, "Idempotency-Key": key}), 422)

    # Limits out of range or not numbers: 422.
    for limit in BAD_LIMITS:
        for path in (f"{base}/backups", f"{base}/exports"):
            problem(api.get(path, params={"limit": limit}, headers=owner), 422)
    # Cursor garbage on the workspaces listing: 422.
    for cursor in ("!!!", "eA", "x" * 5000, "MjAyMC0wMS0wMXxub3Bl", "8J-YgA", "%ff%fe"):
        problem(api.get("/api/v1/workspaces", params={"cursor": cursor}, headers=owner), 422)

    # Restore bodies that are not a restore: 422; a confirmation that is not the slug exactly: 409.
    restore = f"{backup_path}/restore"
    for body in (
        None,
        "clone",
        42,
        [],
        {},
        {"mode": None},
        {"mode": "CLONE", "slug": "abc-copy"},
        {"mode": "sideways", "slug": "abc-copy"},
        {"mode": "clone", "slug": ""},
        {"mode": "clone", "slug": "x" * 101},
        {"mode": "clone", "slug": "a" * 100},
        {"mode": "clone", "slug": "api"},
        {"mode": "clone", "slug": "www"},
        {"mode": "clone", "slug": "ab--cd"},
        {"mode": "clone", "slug": "-abc"},
        {"mode": "clone", "slug": "héllo"},
        {"mode": "clone", "slug": "😀😀😀"},
        {"mode": "clone", "slug": "a.b"},
        {"mode": "clone", "slug": 12345},
        {"mode": "clone", "slug": ["abc"]},
        {"mode": "clone", "slug": "abc-copy", "display_name": "d" * 201},
        {"mode": "clone", "slug": "abc-copy", "extra": True},
        {"mode": "clone", "slug": "abc-copy", "confirm": slug},
        {"mode": "in_place"},
        {"mode": "in_place", "confirm": ""},
        {"mode": "in_place", "confirm": "c" * 101},
        {"mode": "in_place", "confirm": slug, "slug": "abc-copy"},
        {"mode": "in_place", "confirm": None},
        {"mode": "clone", "slug": "abc-copy", "nested": {"a": [{"b": [1] * 1000}] * 50}},
    ):
        problem(api.post(restore, json=body, headers=owner), 422)
    problem(api.post(restore, content=b"{not json", headers={**owner, "content-type": "application/json"}), 422)
    problem(api.post(restore, content=b"[" * 50000, headers={**owner, "content-type": "application/json"}), 400)
    huge = {"mode": "clone", "slug": "abc-copy", "display_name": "z" * 2_000_000}
    problem(api.post(restore, json=huge, headers=owner), 413)
    taken = problem(api.post(restore, json={"mode": "clone", "slug": slug.upper()}, headers=owner), 409)
    assert "taken" in taken["detail"] or taken["type"].endswith("taken"), taken
    for confirm in (
        slug.upper(),
        f" {slug}",
        f"{slug} ",
        f"{slug}\n",
        f"{slug}.canopy.test",
        slug[:-1],
        "\uff53" + slug[1:],  # a fullwidth s
    ):
        refused = problem(api.post(restore, json={"mode": "in_place", "confirm": confirm}, headers=owner), 409)
        assert refused["type"].endswith("/confirmation-mismatch"), refused

    # Another organization's workspace, backup, restore, drills and exports: 404, whoever asks; a backup of A under
    # B's path: 404; B restoring A's backup into a clone of its own: 404.
    b_base = f"/api/v1/workspaces/{b_id}"
    for method, path, body in (
        ("GET", f"{base}/backups", None),
        ("POST", f"{base}/backups", None),
        ("GET", backup_path, None),
        ("GET", restore, None),
        ("POST", restore, {"mode": "clone", "slug": f"stolen-{uuid.uuid4().hex[:6]}"}),
        ("POST", restore, {"mode": "in_place", "confirm": slug}),
        ("GET", f"{base}/exports", None),
        ("POST", f"{base}/exports", None),
        ("GET", f"{base}/exports/{uuid.uuid4()}", None),
        ("DELETE", base, None),
        ("POST", f"{base}/cancel-deletion", None),
        ("GET", f"{b_base}/backups/{backup['id']}", None),
        ("GET", f"{b_base}/backups/{backup['id']}/restore", None),
        ("POST", f"{b_base}/backups/{backup['id']}/restore", {"mode": "clone", "slug": f"st-{uuid.uuid4().hex[:6]}"}),
    ):
        problem(api.request(method, path, json=body, headers=stranger), 404)
    # Staff and members whose role may not act: 403 whether or not the thing exists (their role, not the thing).
    for role in (Role.support, Role.sales):
        headers = backing.plane.staff_headers(role)
        problem(api.post(f"{base}/backups", headers=headers), 403)
        problem(api.post(f"{base}/backups", headers=headers), 403)
        problem(api.post(restore, json={"mode": "in_place", "confirm": slug}, headers=headers), 403)
        problem(api.post(f"/api/v1/backups/{backup['id']}/drills", headers=headers), 403)
        problem(api.post(f"{base}/purge", json={"reason": "because"}, headers=headers), 403)
        problem(api.delete(base, headers=headers), 403)
    billing = backing.plane.member_headers(a_id, Role.billing)
    for method, path in (("POST", f"{base}/backups"), ("POST", restore), ("DELETE", base), ("POST", f"{base}/purge")):
        problem(
            api.request(method, path, json={"mode": "in_place", "confirm": slug, "reason": "r"}, headers=billing), 403
        )
    for who in (owner, stranger):  # owners neither drill nor purge, their own or anyone's
        problem(api.post(f"/api/v1/backups/{backup['id']}/drills", headers=who), 403)
        problem(api.post(f"{base}/purge", json={"reason": "because"}, headers=who), 403)

    # Purge reasons that say nothing: 422, and the workspace pending deletion keeps its date.
    assert api.delete(b_base, headers=stranger).status_code == 202
    purge_after = backing.plane.row(b_id).purge_after
    for reason in (
        "",
        " ",
        "\t\n ",
        "r" * 1001,
        "r" * 10_000,
        "\x00why",
        "\x07\x1b[2J",
        "\x1b[31mred\x1b[0m",
        "\u200b",
        None,
        42,
        ["why"],
    ):
        problem(api.post(f"{b_base}/purge", json={"reason": reason}, headers=operator), 422)
    problem(api.post(f"{b_base}/purge", json={"reason": "ok", "extra": 1}, headers=operator), 422)
    problem(api.post(f"{b_base}/purge", json={}, headers=operator), 422)
    assert backing.plane.row(b_id).purge_after == purge_after
    assert api.post(f"{b_base}/cancel-deletion", headers=stranger).status_code == 202

    # Nothing changed: A still trialing with its one backup and no restore; the only audit entries since are B's
    # deletion and its cancellation.
    assert backing.plane.row(a_id).lifecycle_state.value == "trialing"
    assert [b["id"] for b in api.get(f"{base}/backups", headers=owner).json()["items"]] == [backup["id"]]
    problem(api.get(restore, headers=owner), 404)
    actions = [action for action, _ in audit_rows()[audited_before:] if action != "token.create"]  # the test's
    assert actions == ["workspace.pending_deletion", "workspace.deletion_cancelled"], actions


def test_no_secret_in_answers_audit_or_logs(backing: BackupPlane) -> None:
    workspace_id = backing.workspace(f"secret-{uuid.uuid4().hex[:6]}")
    backup = backing.back_up(workspace_id)
    with core_db.session_scope() as session:
        secrets = [credentials.reveal(session, workspace_id, purpose) for purpose in Purpose]
    assert all(secrets)
    api, owner = backing.plane.api, backing.plane.owner_headers[workspace_id]
    answers = [
        api.get(f"/api/v1/workspaces/{workspace_id}", headers=owner).text,
        api.get(f"/api/v1/workspaces/{workspace_id}/backups", headers=owner).text,
        api.get(f"/api/v1/workspaces/{workspace_id}/backups/{backup['id']}", headers=owner).text,
        api.get(f"/api/v1/backups/{backup['id']}/drills", headers=backing.plane.staff_headers(Role.operator)).text,
    ]
    shown = " ".join([*answers, *(text for _, text in audit_rows()), backing.plane.worker_logs(tail=100_000)])
    for secret in secrets:
        assert secret and secret not in shown
    for word in ("location", "wrapped", "data_key", "password"):
        assert all(word not in answer for answer in answers), word


def test_the_cli_refuses_an_empty_or_escaped_purge_reason(backing: BackupPlane) -> None:
    workspace_id = backing.plane.create_workspace(f"clip-{uuid.uuid4().hex[:6]}")  # provisioning, no worker
    api, owner = backing.plane.api, backing.plane.owner_headers[workspace_id]
    assert api.delete(f"/api/v1/workspaces/{workspace_id}", headers=owner).status_code == 202
    purge_after = backing.plane.row(workspace_id).purge_after

    def purge(reason: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "control_plane.cli", "workspaces", "purge", str(workspace_id), "--reason", reason]
        return subprocess.run(argv, env=backing.plane.env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    for reason in ("", "   ", "\x1b[2J\x07", "\u200b"):
        refused = purge(reason)
        assert refused.returncode == 1 and "reason" not in refused.stdout, (reason, refused.stdout, refused.stderr)
        assert "Traceback" not in refused.stderr, refused.stderr
    assert backing.plane.row(workspace_id).purge_after == purge_after
    assert api.post(f"/api/v1/workspaces/{workspace_id}/cancel-deletion", headers=owner).status_code == 202


def test_the_backups_cli_refuses_bad_input_without_a_traceback(backing: BackupPlane) -> None:
    workspace_id = backing.plane.create_workspace(f"clib-{uuid.uuid4().hex[:6]}")  # provisioning, no worker

    def canopy(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "control_plane.cli", "backups", *args]
        return subprocess.run(argv, env=backing.plane.env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    some_backup = str(uuid.uuid4())
    for args in (
        ("list", str(workspace_id), "--limit", "-5"),
        ("list", str(workspace_id), "--limit", "0"),
        ("list", str(workspace_id), "--limit", "100000"),
        ("list", str(workspace_id), "--limit", "lots"),
        ("list", "not-a-uuid"),
        ("restore", some_backup, "--in-place"),
        ("restore", some_backup, "--in-place", "--confirm", ""),
        ("restore", some_backup, "--clone", ""),
        ("restore", some_backup, "--clone", "x" * 101),
        ("restore", some_backup, "--clone", "fine-slug", "--display-name", "d" * 201),
        ("restore", some_backup, "--clone", "a", "--in-place"),
        ("restore", some_backup, "--clone", "fine-slug"),  # no such backup
        ("create", str(workspace_id)),  # no data yet
    ):
        refused = canopy(*args)
        assert refused.returncode in (1, 2) and refused.stdout == "", (args, refused.stdout, refused.stderr)
        assert "Traceback" not in refused.stderr, (args, refused.stderr)
    assert canopy("list", str(workspace_id), "--limit", "100").stdout.strip() == "[]"
