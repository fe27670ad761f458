"""Rollout routes under /api/v1 (operators and admins change them; support may read)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from control_plane.core.deps import DbSession, IdempotencyKey
from control_plane.core.idempotency import run_once
from control_plane.core.problems import problem_responses
from control_plane.releases.auth import ReleaseManager, ReleaseReader
from control_plane.rollouts import commands, repository, service
from control_plane.rollouts.commands import Action
from control_plane.rollouts.schemas import RolloutAction, RolloutCreate, RolloutOut, RolloutTargetOut
from control_plane.rollouts.tasks import defer_advance

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"], responses=problem_responses(401, 403))


@router.post("", status_code=201, response_model=RolloutOut, responses=problem_responses(404, 409))
def start_rollout(
    body: RolloutCreate, session: DbSession, principal: ReleaseManager, key: IdempotencyKey
) -> JSONResponse:
    """Start rolling a release over the selected workspaces: canaries, then waves, behind health gates."""
    payload = body.model_dump(mode="json")

    def create() -> tuple[int, object]:
        rollout = service.create(session, body, principal.actor)
        return 201, service.rollout_out(session, rollout).model_dump(mode="json")

    outcome = run_once(session, f"rollouts:{principal.account_id}", key, payload, create)
    if outcome.status_code == 201:
        defer_advance(uuid.UUID(str(outcome.body["id"])))
    return JSONResponse(outcome.body, status_code=outcome.status_code)


@router.get("", response_model=list[RolloutOut])
def list_rollouts(
    session: DbSession, principal: ReleaseReader, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[RolloutOut]:
    """The newest rollouts first, with their progress."""
    return [service.rollout_out(session, r) for r in repository.recent(session, limit)]


@router.get("/{rollout_id}", response_model=RolloutOut, responses=problem_responses(404))
def get_rollout(rollout_id: uuid.UUID, session: DbSession, principal: ReleaseReader) -> RolloutOut:
    """One rollout's progress wave by wave, with its failures and their reasons."""
    return service.rollout_out(session, service.get(session, rollout_id))


@router.get("/{rollout_id}/targets", response_model=list[RolloutTargetOut], responses=problem_responses(404))
def rollout_targets(rollout_id: uuid.UUID, session: DbSession, principal: ReleaseReader) -> list[RolloutTargetOut]:
    """Every workspace of a rollout: its wave, state, timing and, when it failed, why."""
    return service.target_rows(session, rollout_id)


@router.post("/{rollout_id}/{action}", response_model=RolloutOut, responses=problem_responses(404, 409))
def act_on_rollout(
    rollout_id: uuid.UUID, action: Action, body: RolloutAction, session: DbSession, principal: ReleaseManager
) -> RolloutOut:
    """``pause``: start no more upgrades (those in flight finish their gates); ``resume``: carry on, the failures so
    far accepted; ``abort``: end it, upgraded workspaces keep the release; ``rollback``: return every workspace it
    touched to its previous release (409, changing nothing, when one cannot run it on its schema)."""
    rollout = commands.act(session, rollout_id, action, body.reason, principal.actor)
    return service.rollout_out(session, rollout)
