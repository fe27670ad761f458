"""Workspace exports end to end on the local runtime: an owner asks, a worker pulls the archive from the workspace
server, the signed link downloads it, and the archive is what Mattermost's bulk import reads (checked by
:mod:`tests.mattermost_import`) holding every post and file the test wrote."""

from __future__ import annotations

import hashlib
import random
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from control_plane.core.authz import Role
from control_plane.core.clock import advance
from control_plane.exports import service as export_service
from control_plane.workspaces.lifecycle import Lifecycle
from tests.exports.conftest import ExportPlane
from tests.mattermost_import import check_archive
from tests.reconciler.conftest import ROOT
from tests.waiting import wait_until

POSTS = 10_000  # every post the test writes: roots, replies, posts with a file, direct posts
FILES = 50
REPLIES = 500
DIRECT = 20
REACTED = 100
THREADS = 16


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


def _fill(client: httpx.Client, slug: str) -> dict[str, Any]:
    """Write :data:`POSTS` posts (with replies, reactions, :data:`FILES` files and a direct channel) through the
    workspace's API, many at once; answers the files' bytes by the message of their post."""
    me = _ok(client.get("/users/me"))
    team = _ok(client.get(f"/teams/name/{slug}"))
    town = _ok(client.get(f"/teams/{team['id']}/channels/name/town-square"))["id"]
    body = {"team_id": team["id"], "name": "launch", "display_name": "Launch", "type": "O"}
    launch = _ok(client.post("/channels", json=body), 201)["id"]
    account = {"email": "bob@example.com", "username": "bob", "password": "bob-pass-1"}
    bob = _ok(client.post("/users", json=account), 201)
    _ok(client.post(f"/teams/{team['id']}/members", json={"team_id": team["id"], "user_id": bob["id"]}), 201)
    _ok(client.post(f"/channels/{launch}/members", json={"user_id": bob["id"]}), 201)
    as_bob = httpx.Client(base_url=client.base_url, timeout=30)
    login = as_bob.post("/users/login", json={"login_id": "bob", "password": "bob-pass-1"})
    as_bob.headers["Authorization"] = f"Bearer {login.headers['Token']}"
    direct = _ok(client.post("/channels/direct", json=[me["id"], bob["id"]]), 201)["id"]

    def post(who: httpx.Client, channel_id: str, message: str, **extra: Any) -> str:
        return str(_ok(who.post("/posts", json={"channel_id": channel_id, "message": message, **extra}), 201)["id"])

    def post_file(index: int) -> None:
        content = random.Random(index).randbytes(random.Random(-index).randint(1, 150_000))
        files[f"file-{index}"] = content
        upload = {"files": (f"report-{index}.bin", content, "application/octet-stream")}
        file_id = _ok(client.post("/files", data={"channel_id": launch}, files=upload), 201)["file_infos"][0]["id"]
        post(client, launch, f"file-{index}", file_ids=[file_id])

    files: dict[str, bytes] = {}
    plain = POSTS - FILES - REPLIES - DIRECT
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(post_file, range(FILES)))
        roots = list(pool.map(lambda i: post(client, (town, launch)[i % 2], f"msg-{i}"), range(plain)))
        list(pool.map(lambda i: post(as_bob, (town, launch)[i % 2], f"reply-{i}", root_id=roots[i]), range(REPLIES)))
        list(pool.map(lambda i: post((client, as_bob)[i % 2], direct, f"direct-{i}"), range(DIRECT)))
        reaction = {"user_id": bob["id"], "emoji_name": "+1"}
        list(pool.map(lambda i: _ok(as_bob.post("/reactions", json={**reaction, "post_id": roots[i]})), range(REACTED)))
    as_bob.close()
    return {"files": files, "owner": me["username"]}


def _memory(pid: int) -> str:
    """The workspace server's resident and peak memory, as the kernel counts it."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return f"server RSS {status['VmRSS'].strip()}, peak {status['VmHWM'].strip()}"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()  # type: ignore[no-any-return]


def test_an_owner_exports_ten_thousand_posts_and_fifty_files(exporting: ExportPlane) -> None:
    plane = exporting.plane
    slug = "exported"
    workspace_id, client = exporting.workspace(slug)
    pid = plane.row(workspace_id).outputs["pid"]
    started = time.monotonic()
    written = _fill(client, slug)
    print(f"wrote {POSTS} posts and {FILES} files in {time.monotonic() - started:.1f}s; {_memory(pid)}")

    started = time.monotonic()
    queued = _ok(exporting.exports(workspace_id, method="POST"), 202)
    assert queued["state"] == "queued" and queued["download_url"] is None
    export = exporting.wait_finished(workspace_id, queued["id"])
    states = [(seen["state"], seen["bytes_written"], seen["posts_exported"]) for seen in exporting.seen]
    print(f"exported in {time.monotonic() - started:.1f}s: {export['size_bytes']} bytes, {states}, {_memory(pid)}")
    assert export["state"] == "completed", export
    assert export["bytes_written"] == export["size_bytes"] > 0 and export["attempts"] == 1
    assert export["download_url"].startswith(f"http://localhost:8000/api/v1/exports/{export['id']}/download?token=")

    started = time.monotonic()
    download = plane.api.get(export["download_url"])
    assert download.status_code == 200, download.text
    assert download.headers["content-type"] == "application/zip"
    assert download.headers["content-disposition"].startswith(f'attachment; filename="{slug}-export-')
    assert int(download.headers["content-length"]) == len(download.content) == export["size_bytes"]
    assert hashlib.sha256(download.content).hexdigest() == export["sha256"]
    archive = check_archive(download.content)
    print(f"downloaded and checked in {time.monotonic() - started:.1f}s: {dict(archive.counts)}")

    roots, direct = archive.of_type("post"), archive.of_type("direct_post")
    assert export["posts_exported"] == len(roots) + len(direct), "the progress counts the post lines"
    messages = [p["message"] for p in roots] + [r["message"] for p in roots for r in p.get("replies", [])]
    messages += [p["message"] for p in direct]
    ours = [m for m in messages if m.split("-")[0] in ("msg", "reply", "file", "direct")]
    assert len(ours) == len(set(ours)) == POSTS
    assert [line["name"] for line in archive.of_type("team")] == [slug]
    assert {written["owner"], "bob"} <= {line["username"] for line in archive.of_type("user")}
    with_files = {p["message"]: p for p in roots if p["message"].startswith("file-")}
    assert {m: archive.attachment(p["attachments"][0]["path"]) for m, p in with_files.items()} == written["files"]
    reacted = [p for p in roots if p.get("reactions")]
    assert len(reacted) == REACTED and all(p["reactions"][0]["user"] == "bob" for p in reacted)
    assert len(direct) == DIRECT and all(p["channel_members"] == sorted([written["owner"], "bob"]) for p in direct)

    # The link is the only credential, and only for its export and its time.
    url, token = export["download_url"].split("?token=")
    forged = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert _problem(plane.api.get(f"{url}?token={forged}"), 404)["type"].endswith("/not-found")
    assert _problem(plane.api.get(f"/api/v1/exports/{uuid.uuid4()}/download?token={token}"), 404)
    assert _problem(plane.api.get(f"{url}?token=garbage"), 404)
    advance(exporting.clock_file, timedelta(hours=25))
    assert _problem(plane.api.get(export["download_url"]), 410)["type"].endswith("/link-expired")
    fresh = _ok(exporting.exports(workspace_id, f"/{export['id']}"))["download_url"]
    assert fresh != export["download_url"] and plane.api.get(fresh).status_code == 200

    # Another organization sees nothing; a billing member may not export; an operator may.
    owner = plane.owner_headers[workspace_id]
    other_id = plane.create_workspace("elsewhere")
    other = plane.owner_headers[other_id]
    assert _problem(exporting.exports(workspace_id, headers=other), 404)
    assert _problem(exporting.exports(workspace_id, f"/{export['id']}", headers=other), 404)
    assert _problem(exporting.exports(workspace_id, method="POST", headers=other), 404)
    assert _problem(exporting.exports(other_id, f"/{export['id']}", headers=other), 404)
    billing = plane.member_headers(workspace_id, Role.billing)
    assert _problem(exporting.exports(workspace_id, method="POST", headers=billing), 403)
    assert _problem(exporting.exports(workspace_id, headers=billing), 403)
    operator = plane.staff_headers(Role.operator)
    listed = _ok(exporting.exports(workspace_id, headers=operator))["items"]
    assert [item["id"] for item in listed] == [export["id"]] and listed[0]["download_url"]
    assert _problem(exporting.exports(workspace_id, f"/{uuid.uuid4()}"), 404)
    assert _problem(exporting.exports(workspace_id, "/not-a-uuid"), 422)

    audit = _ok(plane.api.get("/api/v1/audit", params={"target_id": export["id"]}, headers=owner))
    actions = sorted(entry["action"] for entry in audit["items"])
    assert actions == [
        "workspace_export.complete",
        "workspace_export.create",
        "workspace_export.download",
        "workspace_export.download",
    ]


def test_a_worker_killed_mid_export_leaves_it_to_the_next(exporting: ExportPlane) -> None:
    """The stalled-job recovery runs the export again from the start; nothing half-written is ever served."""
    plane = exporting.plane
    workspace_id, client = exporting.workspace("crashco")
    channel = _town_square(client, "crashco")
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        body = {"channel_id": channel, "message": "x" * 2000}
        list(pool.map(lambda _: _ok(client.post("/posts", json=body), 201), range(3000)))
    queued = _ok(exporting.exports(workspace_id, method="POST"), 202)

    def running() -> bool:
        return bool(_ok(exporting.exports(workspace_id, f"/{queued['id']}"))["state"] == "running")

    wait_until("the export to run", running)
    (worker,) = plane.workers
    worker.kill()
    worker.wait()
    plane.workers.clear()
    plane.start_worker()
    export = exporting.wait_finished(workspace_id, queued["id"])
    assert export["state"] == "completed" and export["attempts"] == 2, export
    download = plane.api.get(export["download_url"])
    assert hashlib.sha256(download.content).hexdigest() == export["sha256"]
    assert check_archive(download.content).counts["post"] >= 3000
    kept = plane.state_dir.resolve() / "exports" / str(workspace_id)
    assert [path.name for path in kept.iterdir()] == [f"{export['id']}.zip"], "no partial archive is left"


def test_one_export_at_a_time_then_the_cli_and_never_from_a_sleeping_workspace(exporting: ExportPlane) -> None:
    plane = exporting.plane
    workspace_id, client = exporting.workspace("smallco")
    _ok(client.post("/posts", json={"channel_id": _town_square(client, "smallco"), "message": "just one"}), 201)
    plane.stop_workers()

    owner = plane.owner_headers[workspace_id]
    first = _ok(exporting.exports(workspace_id, method="POST", headers={**owner, "Idempotency-Key": "k1"}), 202)
    again = _ok(exporting.exports(workspace_id, method="POST", headers={**owner, "Idempotency-Key": "k1"}), 202)
    assert again["id"] == first["id"]
    busy = _problem(exporting.exports(workspace_id, method="POST"), 409)
    assert busy["type"].endswith("/export-in-progress") and busy["export_id"] == first["id"]
    assert _ok(exporting.exports(workspace_id, f"/{first['id']}"))["state"] == "queued"
    plane.start_worker()
    assert exporting.wait_finished(workspace_id, first["id"])["state"] == "completed"

    cli = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "workspaces", "export", str(workspace_id)],
        env=plane.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    queued, path, link = cli.stdout.splitlines()
    export_id = queued.split()[1]
    export = _ok(exporting.exports(workspace_id, f"/{export_id}"))
    assert export["state"] == "completed" and export["requested_by"] == "cli"
    archive = Path(path)
    assert archive == plane.state_dir.resolve() / "exports" / str(workspace_id) / f"{export_id}.zip"
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == export["sha256"]
    download = plane.api.get(link.split()[0])
    assert download.status_code == 200 and download.content == archive.read_bytes()
    assert "just one" in [p["message"] for p in check_archive(download.content).of_type("post")]
    listed = _ok(exporting.exports(workspace_id))["items"]
    assert [item["id"] for item in listed] == [export_id, first["id"]], "newest first"

    assert plane.as_operator("POST", f"/api/v1/workspaces/{workspace_id}/hibernate").status_code == 202
    plane.wait_state(workspace_id, Lifecycle.hibernated)
    asleep = _problem(exporting.exports(workspace_id, method="POST"), 409)
    assert asleep["type"].endswith("/workspace-not-running")

    # Archives are kept export_keep_days (7) after they completed; then the hourly retention removes them.
    # (Other tests' exports on this plane's clock may expire on the way: only this workspace's are checked.)
    mine = {export_id, first["id"]}
    advance(exporting.clock_file, timedelta(days=7, hours=-1))
    assert mine.isdisjoint(map(str, export_service.apply_retention()))
    fresh_link = _ok(exporting.exports(workspace_id, f"/{export_id}"))["download_url"]  # valid for a day
    advance(exporting.clock_file, timedelta(hours=2))
    assert mine <= set(map(str, export_service.apply_retention()))
    assert not archive.exists()
    assert [item["state"] for item in _ok(exporting.exports(workspace_id))["items"]] == ["expired", "expired"]
    assert _problem(plane.api.get(fresh_link), 410)["type"].endswith("/export-expired")
    audit = _ok(plane.api.get("/api/v1/audit", params={"target_id": export_id}, headers=owner))
    assert "workspace_export.expire" in [entry["action"] for entry in audit["items"]]


def _town_square(client: httpx.Client, slug: str) -> str:
    team = _ok(client.get(f"/teams/name/{slug}"))
    return str(_ok(client.get(f"/teams/{team['id']}/channels/name/town-square"))["id"])
