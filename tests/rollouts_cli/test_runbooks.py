"""The release and rollout runbooks, command by command (runbooks/start-a-rollout.md, rollout-paused.md,
roll-back-a-rollout.md, pin-a-workspace.md, revoke-a-release.md): each command runs as written, placeholders
filled, and does what the runbook says it does to the control plane's database and queue."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from tests.rollouts_cli.conftest import VERSION, Console, runbook_commands
from tests.waiting import wait_until


def queued(task: str, **args: str) -> int:
    """How many ``task`` jobs with these arguments wait in the task queue."""
    from control_plane.core.db import session_scope

    with session_scope() as session:
        query = text("SELECT args FROM procrastinate_jobs WHERE task_name = :task AND status = 'todo'")
        rows = session.execute(query, {"task": task}).scalars()
        return sum(1 for row in rows if all(str(row.get(k)) == v for k, v in args.items()))


def started(console: Console, *workspace_ids: uuid.UUID) -> str:
    """A rollout of VERSION over these workspaces (the engine's first pass run: the canary upgrading)."""
    from control_plane.rollouts import engine

    flags = " ".join(f"--workspace {w}" for w in workspace_ids)
    rollout = console.json(f"canopy rollouts start {VERSION} {flags} --canaries 1 --first-wave 10")
    engine.advance(uuid.UUID(rollout["id"]))
    return str(rollout["id"])


def test_start_a_rollout(console: Console) -> None:
    publish, promote, fleet, start, show, targets = runbook_commands("start-a-rollout.md")
    workspaces = console.workspaces(12)
    console.workspaces(2, tier="enterprise")  # not selected by --tier professional

    release = console.json(publish, version=VERSION, image="canopy/ws:0.2.0", schema="1", notes="faster search")
    assert (release["version"], release["state"], release["created_by"]) == (VERSION, "candidate", "cli")
    assert console.refused(publish, version=VERSION, image="canopy/ws:0.2.0", schema="1", notes="again")[
        "type"
    ].endswith("release-exists")
    assert console.json(promote, version=VERSION)["state"] == "stable"
    counts = {(c["desired_release"], c["tier"]): c["count"] for c in console.json(fleet)}
    assert counts == {("0.1.0", "professional"): 12, ("0.1.0", "enterprise"): 2}

    rollout = console.json(start, version=VERSION)
    assert (rollout["state"], rollout["targets"], rollout["release"]) == ("running", 12, VERSION)
    assert [(w["wave"], w["size"]) for w in rollout["waves"]] == [(0, 1), (1, 10), (2, 1)]
    assert queued("advance_rollout", rollout_id=rollout["id"]) == 1
    shown = console.json(show, rollout_id=rollout["id"])
    assert shown["waves"][0]["states"] == {"pending": 1}
    rows = console.json(targets, rollout_id=rollout["id"])
    assert {r["workspace_id"] for r in rows} == {str(w) for w in workspaces}
    assert {r["from_release"] for r in rows} == {"0.1.0"}
    assert console.refused(start, version=VERSION)["type"].endswith("nothing-to-roll-out")
    assert console.run(f"canopy rollouts start {VERSION} --plan '{{\"canaries\": -1}}'").returncode == 2
    assert console.run(f"canopy rollouts start {VERSION} --plan 'not json'").returncode == 2


def paused_by_the_engine(console: Console, *workspace_ids: uuid.UUID) -> str:
    """A rollout of VERSION whose canary never serves it (no server behind the rows): the engine's passes send the
    canary back once its 1 s upgrade deadline passes, and pause the rollout (the canary wave has no budget)."""
    from control_plane.core.db import session_scope
    from control_plane.rollouts import engine, repository
    from control_plane.rollouts.models import RolloutState

    flags = " ".join(f"--workspace {w}" for w in workspace_ids)
    rollout_id = console.json(f"canopy rollouts start {VERSION} {flags} --canaries 1 --upgrade-timeout-seconds 1")["id"]

    def paused() -> bool:
        engine.advance(uuid.UUID(rollout_id))
        with session_scope() as session:
            rollout = repository.get(session, uuid.UUID(rollout_id))
            return rollout is not None and rollout.state == RolloutState.paused

    wait_until("the engine to pause the rollout", paused, timeout=60)
    return str(rollout_id)


def test_a_paused_rollout_is_read_then_resumed_or_aborted(console: Console) -> None:
    show, targets, status, resume, abort = runbook_commands("rollout-paused.md")
    console.published()
    rollout_id = paused_by_the_engine(console, *console.workspaces(3))

    shown = console.json(show, rollout_id=rollout_id)
    assert shown["reason"].startswith("the canary wave: 1 of 1 upgrades failed, over its budget of 0")
    [failure] = shown["waves"][0]["failures"]
    assert failure["reason"] == f"not serving {VERSION} within 1 s"
    back = [t for t in console.json(targets, rollout_id=rollout_id) if t["state"] == "rolling_back"]
    assert [t["workspace_id"] for t in back] == [failure["workspace_id"]] and back[0]["wave"] == 0
    ws = console.json(status, workspace_id=failure["workspace_id"])
    assert (ws["desired_release"], ws["observed_release"]) == ("0.1.0", "0.1.0")
    assert "last_error" in ws["reconcile"]

    resumed = console.json(resume, rollout_id=rollout_id, why="canary fine, its host was down")
    assert resumed["state"] == "running"
    aborted = console.json(abort, rollout_id=rollout_id, why="search is slower")
    assert aborted["state"] == "aborted"
    states = {t["state"] for t in console.json(targets, rollout_id=rollout_id) if t["wave"] > 0}
    assert states == {"skipped"}
    assert console.refused(resume, rollout_id=rollout_id, why="again")["type"].endswith("rollout-state")


def test_roll_back_a_rollout(console: Console) -> None:
    listing, targets, rollback = runbook_commands("roll-back-a-rollout.md")
    console.published()
    canary, *others = console.workspaces(3)
    rollout_id = started(console, canary, *others)

    assert [r["id"] for r in console.json(listing)] == [rollout_id]
    touched = [t["workspace_id"] for t in console.json(targets, rollout_id=rollout_id) if t["state"] == "upgrading"]
    rolled = console.json(rollback, rollout_id=rollout_id, why="bad release")
    assert (rolled["state"], rolled["reason"]) == ("rolled_back", "bad release")
    after = {t["workspace_id"]: t["state"] for t in console.json(targets, rollout_id=rollout_id)}
    assert [w for w, s in after.items() if s == "rolling_back"] == touched
    assert {s for w, s in after.items() if w not in touched} == {"skipped"}
    [workspace_id] = touched
    assert console.workspace(uuid.UUID(workspace_id))["desired_release"] == "0.1.0"
    assert queued("reconcile_workspace", workspace_id=workspace_id) == 1


def test_roll_back_is_refused_when_a_workspace_cannot_run_its_previous_release(console: Console) -> None:
    rollback = runbook_commands("roll-back-a-rollout.md")[-1]
    console.json("canopy releases publish --version 0.1.5 --image canopy/ws:0.1.5 --schema-min 1 --schema-max 5")
    console.published()
    [workspace_id] = console.workspaces(1)
    on_release(workspace_id, "0.1.5", schema=3)
    rollout_id = started(console, workspace_id)
    on_release(workspace_id, VERSION, schema=9)  # the new release migrated its database past 0.1.5's range

    problem = console.refused(rollback, rollout_id=rollout_id, why="bad release")
    assert problem["type"].endswith("rollback-refused")
    assert [r["workspace_id"] for r in problem["refusals"]] == [str(workspace_id)]
    assert "schema revisions 1 to 5" in problem["refusals"][0]["reason"]
    assert console.json("canopy rollouts show <rollout id>", rollout_id=rollout_id)["state"] == "running"


def on_release(workspace_id: uuid.UUID, release: str, schema: int) -> None:
    """The workspace runs ``release`` with its database at ``schema`` (what the reconciler's observe step records)."""
    from control_plane.core.db import session_scope
    from control_plane.workspaces.models import Workspace

    with session_scope() as session:
        ws = session.get(Workspace, workspace_id)
        assert ws is not None
        ws.schema_revision, ws.desired_release, ws.observed_release = schema, release, release
        session.commit()


def test_pin_a_workspace(console: Console) -> None:
    pin, status, unpin = runbook_commands("pin-a-workspace.md")
    console.published()
    pinned, free = console.workspaces(2)

    shown = console.json(pin, workspace_id=str(pinned), version=VERSION, why="customer acceptance test")
    assert (shown["desired_release"], shown["release_pin_reason"]) == (VERSION, "customer acceptance test")
    assert queued("reconcile_workspace", workspace_id=str(pinned)) == 1
    assert console.json(status, workspace_id=str(pinned))["release_pin_reason"] == "customer acceptance test"
    console.json("canopy releases publish --version 0.3.0 --image canopy/ws:0.3.0 --schema-min 1")
    rollout = console.json("canopy rollouts start 0.3.0 --canaries 0")
    assert [
        t["workspace_id"] for t in console.json("canopy rollouts targets <rollout id>", rollout_id=rollout["id"])
    ] == [str(free)]
    assert console.json(unpin, workspace_id=str(pinned))["release_pin_reason"] is None
    assert console.refused(pin, workspace_id=str(uuid.uuid4()), version=VERSION, why="nobody")["status"] == 404


def test_revoke_a_release(console: Console) -> None:
    revoke, fleet, listing, rollback = runbook_commands("revoke-a-release.md")
    console.published()
    canary, *others = console.workspaces(3)
    rollout_id = started(console, canary, *others)

    revoked = console.json(revoke, version=VERSION)
    assert (revoked["state"], revoked["rollouts_aborted"]) == ("revoked", 1)
    targets = console.json("canopy rollouts targets <rollout id>", rollout_id=rollout_id)
    assert {t["reason"] for t in targets if t["state"] == "skipped"} == {"rollout aborted"}
    assert console.refused(f"canopy rollouts start {VERSION}")["type"].endswith("release-revoked")
    pin = f"canopy releases pin {others[0]} {VERSION} --reason 'try it'"
    assert console.refused(pin)["type"].endswith("release-revoked")
    assert console.refused("canopy releases promote <version>", version=VERSION)["type"].endswith("release-state")

    counts = {c["desired_release"]: c["count"] for c in console.json(fleet)}
    assert counts == {VERSION: 1, "0.1.0": 2}
    assert [r["state"] for r in console.json(listing)] == ["aborted"]
    assert console.json(rollback, rollout_id=rollout_id, version=VERSION)["state"] == "rolled_back"
    assert console.workspace(canary)["desired_release"] == "0.1.0"
