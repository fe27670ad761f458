"""The ``canopy organizations move-to-enterprise`` and ``canopy organizations enterprise-move`` verbs: sales at the
console moves a Professional workspace to an Enterprise silo through the same service as the API (audit actor
``cli``), JSON out.

Exit codes: 0 done (with ``--wait``: the move is done), 1 refused (the problem document on stderr) or the move
failed or is still going after ``--timeout``, 2 bad usage."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from datetime import datetime
from typing import Any

ACTOR = "cli"
POLL_SECONDS = 1.0


def _aware(text: str) -> datetime:
    """An ISO 8601 time with its offset (``now`` for the current time)."""
    from control_plane.core.clock import utcnow

    if text == "now":
        return utcnow()
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise argparse.ArgumentTypeError("give the offset, e.g. 2026-12-24T22:00:00+00:00")
    return at


def _schedule(args: argparse.Namespace) -> dict[str, Any]:
    from control_plane.core.db import session_scope
    from control_plane.core.problems import NotFound
    from control_plane.moves import service
    from control_plane.moves.schemas import MoveRequest, move_out
    from control_plane.moves.tasks import defer_move
    from control_plane.organizations import repository as organizations

    body = MoveRequest(
        workspace_id=args.workspace_id,
        downtime_start=args.downtime_start,
        downtime_minutes=args.downtime_minutes,
        region=args.region,
    )
    with session_scope() as session:
        if organizations.get(session, args.organization_id) is None:
            raise NotFound("Organization")
        move = service.schedule(session, args.organization_id, body, ACTOR)
        defer_move(move.id, move.source_workspace_id, move.downtime_start)
        return move_out(move).model_dump(mode="json")


def _newest(organization_id: uuid.UUID) -> dict[str, Any] | None:
    from control_plane.core.db import session_scope
    from control_plane.moves import repository
    from control_plane.moves.schemas import move_out

    with session_scope() as session:
        move = repository.newest_of(session, organization_id)
        return None if move is None else move_out(move).model_dump(mode="json")


def _wait(organization_id: uuid.UUID, timeout: float) -> dict[str, Any] | None:
    """The newest move once it is done or failed; None after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() <= deadline:
        shown = _newest(organization_id)
        if shown is not None and shown["state"] in ("done", "failed"):
            return shown
        time.sleep(POLL_SECONDS)
    return None


def cmd_move(args: argparse.Namespace) -> int:
    """Schedule the move (and with ``--wait``, wait until it is done or failed), printing the move."""
    from pydantic import ValidationError

    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)
    from control_plane.core.problems import Problem

    try:
        shown = _schedule(args)
    except Problem as exc:
        print(json.dumps(exc.body("canopy organizations move-to-enterprise")), file=sys.stderr)
        return 1
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"canopy organizations move-to-enterprise: {problems}", file=sys.stderr)
        return 2
    if args.wait:
        waited = _wait(args.organization_id, args.timeout)
        if waited is None:
            print(f"the move is still {_newest(args.organization_id) or shown} after {args.timeout} s", file=sys.stderr)
            return 1
        shown = waited
    print(json.dumps(shown, indent=2))
    return 0 if shown["state"] != "failed" else 1


def cmd_show(args: argparse.Namespace) -> int:
    """Print the organization's newest move."""
    import control_plane.core.all_models  # noqa: F401  (every table, so foreign keys resolve)

    shown = _newest(args.organization_id)
    if shown is None:
        print(f"organization {args.organization_id} has no enterprise move", file=sys.stderr)
        return 1
    print(json.dumps(shown, indent=2))
    return 0


def add_parsers(sub: Any) -> None:
    """``canopy organizations ...``."""
    verbs = sub.add_parser("organizations", help="customer organizations").add_subparsers(
        dest="organizations_command", required=True
    )
    move = verbs.add_parser(
        "move-to-enterprise", help="move a Professional workspace into a new Enterprise silo at a downtime window"
    )
    move.add_argument("organization_id", type=uuid.UUID)
    move.add_argument("--workspace-id", type=uuid.UUID, required=True)
    move.add_argument("--downtime-start", type=_aware, required=True, help="ISO 8601 with offset, or 'now'")
    move.add_argument("--downtime-minutes", type=int, required=True, help="5 to 1440 (announced to the owners)")
    move.add_argument("--region", help="the silo's region (default: the workspace's)")
    move.add_argument("--wait", action="store_true", help="wait until the move is done or failed")
    move.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default 3600)")
    move.set_defaults(func=cmd_move)
    show = verbs.add_parser("enterprise-move", help="show the organization's newest enterprise move")
    show.add_argument("organization_id", type=uuid.UUID)
    show.set_defaults(func=cmd_show)
