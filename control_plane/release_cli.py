"""The ``canopy releases`` and ``canopy rollouts`` verbs: an operator at the console acts on the database through
the same services and commands as the API (audit actor ``cli``), JSON out.

Exit codes: 0 done, 1 refused (the problem document on stderr), 2 bad usage (argparse's, and a bad ``--plan`` or
``--local-command``)."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

ACTOR = "cli"
PLAN_FLAGS = (
    ("canaries", int),
    ("canary_soak_seconds", float),
    ("first_wave", int),
    ("growth", float),
    ("max_wave", int),
    ("soak_seconds", float),
    ("max_per_cell", int),
    ("failure_budget", float),
    ("upgrade_timeout_seconds", float),
    ("max_error_rate", float),
    ("max_p99_seconds", float),
)
"""The plan's fields, each a flag of ``canopy rollouts start`` (over ``--plan``)."""


class Usage(Exception):
    """Input the command line cannot take (exit 2)."""


def _print(shown: Any) -> None:
    print(json.dumps(shown, indent=2))


def _run(args: argparse.Namespace, act: Callable[[Session], Any]) -> int:
    """Run ``act`` in a session and print what it returns as JSON; a refusal prints its problem document."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.db import session_scope
    from control_plane.core.problems import Problem

    try:
        with session_scope() as session:
            shown = act(session)
    except Problem as exc:
        print(json.dumps(exc.body(f"canopy {args.command} {args.verb}")), file=sys.stderr)
        return 1
    except Usage as exc:
        print(f"canopy {args.command} {args.verb}: {exc}", file=sys.stderr)
        return 2
    _print(shown)
    return 0


def _validated(model: Any, data: dict[str, Any], flag: str) -> Any:
    """``data`` as ``model``, or :class:`Usage` naming the fields that are wrong."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(map(str, e['loc'])) or flag}: {e['msg']}" for e in exc.errors())
        raise Usage(fields) from None


def _json_arg(text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise Usage(f"{flag}: not JSON") from None


def cmd_releases(args: argparse.Namespace) -> int:
    """Publish, list, show, promote and revoke releases; the fleet by release; pin and unpin workspaces."""
    from control_plane.releases import commands, service
    from control_plane.releases.models import ReleaseState
    from control_plane.releases.schemas import ReleasePin, ReleasePublish
    from control_plane.workspaces.schemas import workspace_out

    def publish(session: Session) -> Any:
        body = {
            "version": args.version,
            "image": args.image,
            "local_command": _json_arg(args.local_command, "--local-command"),
            "schema_min": args.schema_min,
            "schema_max": args.schema_max,
            "notes": args.notes,
        }
        release = service.publish(session, _validated(ReleasePublish, body, "release"), ACTOR)
        session.commit()
        return service.one(session, release.version).model_dump(mode="json")

    def move(state: ReleaseState) -> Callable[[Session], Any]:
        def moved(session: Session) -> Any:
            aborted = commands.change(session, args.release, state, None, ACTOR)
            return service.one(session, args.release).model_dump(mode="json") | {"rollouts_aborted": aborted}

        return moved

    def pin(session: Session) -> Any:
        body = _validated(ReleasePin, {"version": args.release, "reason": args.reason}, "pin")
        return workspace_out(commands.pin(session, args.workspace_id, body.version, body.reason, ACTOR)).model_dump(
            mode="json"
        )

    verbs: dict[str, Callable[[Session], Any]] = {
        "publish": publish,
        "list": lambda session: [r.model_dump(mode="json") for r in service.listing(session)],
        "show": lambda session: service.one(session, args.release).model_dump(mode="json"),
        "promote": move(ReleaseState.stable),
        "revoke": move(ReleaseState.revoked),
        "fleet": lambda session: [c.model_dump(mode="json") for c in service.fleet(session)],
        "pin": pin,
        "unpin": lambda session: workspace_out(commands.unpin(session, args.workspace_id, ACTOR)).model_dump(
            mode="json"
        ),
    }
    return _run(args, verbs[args.verb])


def _rollout_body(args: argparse.Namespace) -> dict[str, Any]:
    plan = _json_arg(args.plan, "--plan") or {}
    if not isinstance(plan, dict):
        raise Usage("--plan: a JSON object")
    plan |= {name: getattr(args, name) for name, _ in PLAN_FLAGS if getattr(args, name) is not None}
    selector = {
        "tiers": args.tier,
        "cells": args.cell,
        "organizations": args.org,
        "workspaces": args.workspace,
        "percent": args.percent,
    }
    return {"release": args.release, "selector": selector, "plan": plan}


def cmd_rollouts(args: argparse.Namespace) -> int:
    """Start, list, show rollouts and their targets; pause, resume, abort or roll one back."""
    from control_plane.rollouts import commands, repository, service
    from control_plane.rollouts.schemas import RolloutCreate

    def start(session: Session) -> Any:
        body = _validated(RolloutCreate, _rollout_body(args), "rollout")
        return service.rollout_out(session, commands.start(session, body, ACTOR)).model_dump(mode="json")

    def act(session: Session) -> Any:
        rollout = commands.act(session, args.rollout_id, commands.Action(args.verb), args.reason, ACTOR)
        return service.rollout_out(session, rollout).model_dump(mode="json")

    verbs: dict[str, Callable[[Session], Any]] = {
        "start": start,
        "list": lambda session: [
            service.rollout_out(session, r).model_dump(mode="json") for r in repository.recent(session, args.limit)
        ],
        "show": lambda session: service.rollout_out(session, service.get(session, args.rollout_id)).model_dump(
            mode="json"
        ),
        "targets": lambda session: [t.model_dump(mode="json") for t in service.target_rows(session, args.rollout_id)],
    }
    return _run(args, verbs.get(args.verb, act))


def _limit(text: str) -> int:
    """An argparse type: how many rollouts to list, 1 to 100."""
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise argparse.ArgumentTypeError("must be 1 to 100")
    return int(text)


def add_parsers(sub: Any) -> None:
    """Add ``releases`` and ``rollouts`` to the ``canopy`` grammar."""
    _add_releases(sub.add_parser("releases", help="the workspace-server release catalogue (JSON out)"))
    _add_rollouts(sub.add_parser("rollouts", help="roll releases across the fleet (JSON out)"))


def _add_releases(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True)
    publish = verbs.add_parser("publish", help="publish a candidate release (releases are immutable)")
    publish.add_argument("--version", required=True, help="MAJOR.MINOR.PATCH[-suffix]")
    publish.add_argument("--image", required=True, help="the container image Kubernetes runs")
    publish.add_argument("--local-command", metavar="JSON", help='the local runtime\'s argv, e.g. ["/opt/ws", "run"]')
    publish.add_argument("--schema-min", type=int, required=True, help="the schema revision it migrates to")
    publish.add_argument("--schema-max", type=int, help="the newest schema revision it runs on (default: any)")
    publish.add_argument("--notes", default="")
    verbs.add_parser("list", help="every release with how many workspaces want and run it")
    for verb, help_text in (
        ("show", "one release with its fleet counts"),
        ("promote", "make a candidate stable"),
        ("revoke", "revoke a release (aborts its active rollouts; refused to new rollouts and pins)"),
    ):
        verbs.add_parser(verb, help=help_text).add_argument("release", metavar="VERSION")
    verbs.add_parser("fleet", help="live workspaces by desired and observed release, tier, cell and state")
    pin = verbs.add_parser("pin", help="pin a workspace to a release (rollouts leave it alone)")
    pin.add_argument("workspace_id", type=uuid.UUID)
    pin.add_argument("release", metavar="VERSION")
    pin.add_argument("--reason", required=True, help="why (kept on the workspace and in the audit log)")
    unpin = verbs.add_parser("unpin", help="let rollouts take a pinned workspace again")
    unpin.add_argument("workspace_id", type=uuid.UUID)
    parser.set_defaults(func=cmd_releases)


def _add_rollouts(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="verb", required=True)
    start = verbs.add_parser("start", help="roll a release over the selected workspaces (canaries, then waves)")
    start.add_argument("release", metavar="RELEASE")
    start.add_argument("--tier", action="append", default=[], choices=["professional", "enterprise"])
    start.add_argument("--cell", action="append", default=[], help="repeatable")
    start.add_argument("--org", action="append", default=[], metavar="ORGANIZATION_ID", help="repeatable")
    start.add_argument("--workspace", action="append", default=[], metavar="WORKSPACE_ID", help="repeatable")
    start.add_argument("--percent", type=int, default=100, help="a stable share of the selected workspaces")
    start.add_argument("--plan", metavar="JSON", help="the plan as JSON; the flags below override its fields")
    for name, kind in PLAN_FLAGS:
        start.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    listing = verbs.add_parser("list", help="the newest rollouts with their progress")
    listing.add_argument("--limit", type=_limit, default=20, help="1 to 100 (default 20)")
    for verb, help_text in (
        ("show", "one rollout's progress wave by wave, with failures and their reasons"),
        ("targets", "every workspace of a rollout: wave, state, timing, why it failed"),
    ):
        verbs.add_parser(verb, help=help_text).add_argument("rollout_id", type=uuid.UUID)
    for verb, help_text in (
        ("pause", "start no more upgrades (those in flight finish their gates)"),
        ("resume", "carry on; the failures so far are accepted"),
        ("abort", "end the rollout; upgraded workspaces keep the release"),
        ("rollback", "return every workspace the rollout touched to its previous release"),
    ):
        action = verbs.add_parser(verb, help=help_text)
        action.add_argument("rollout_id", type=uuid.UUID)
        action.add_argument("--reason", default="", help="kept on the rollout and in the audit log")
    parser.set_defaults(func=cmd_rollouts)
