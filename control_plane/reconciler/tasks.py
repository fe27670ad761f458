"""procrastinate tasks: the level-triggered workspace reconciler and its periodic companions.

``reconcile_workspace`` reads the row, derives what should exist from the lifecycle state, and
makes it so (see :data:`ACTIONS`). It never raises for an infrastructure failure: the failure is
recorded on the row (attempts, last error, next attempt) and a retry is deferred at the backoff
time. Two periodic tasks keep everything moving:

- ``resync_workspaces`` defers a reconcile for every live workspace not converged yet, every deletion not yet
  stopped or due for its purge, every due retry, and the slice of converged workspaces whose slow re-verification
  falls due (:mod:`control_plane.drift.schedule`); a converged workspace otherwise runs again only when drift is
  found (:mod:`control_plane.drift.tasks`);
- ``recover_stalled_jobs`` retries the jobs of workers that stopped sending heartbeats (a worker
  killed mid-reconcile), then prunes those workers.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from procrastinate import jobs
from procrastinate.exceptions import ConnectorException, UniqueViolation

from control_plane.backups import restoring
from control_plane.backups.models import BackupState
from control_plane.backups.service import BACKUP_STATES, ensure_final_backup
from control_plane.core import fleet_counters
from control_plane.core.clock import utcnow
from control_plane.core.faults import fault_pause
from control_plane.core.settings import get_settings
from control_plane.core.task_queue import app, every
from control_plane.drift.repository import StoredCursors
from control_plane.drift.schedule import REVERIFY_CURSOR, verification_window
from control_plane.exports import service as exports
from control_plane.providers.base import ProviderError
from control_plane.providers.factory import get_providers, warm_up_providers
from control_plane.providers.scope import about_cell
from control_plane.reconciler import records
from control_plane.reconciler.plans import plan_for, release_plan_for
from control_plane.reconciler.queue import (
    BACKGROUND,
    RECONCILE_TASK,
    RECONCILES,
    Cause,
    background_running,
    defer_reconcile,
    running_reconciles,
)
from control_plane.reconciler.status import short_error
from control_plane.reconciler.steps import Context, Step
from control_plane.rollouts.tasks import nudge_rollout_of
from control_plane.workspaces.lifecycle import RUNNING_STATES, Lifecycle

logger = logging.getLogger(__name__)

RESYNC_TASK = "resync_workspaces"
BACKGROUND_WAIT_SECONDS = 2.0
RECOVER_TASK = "recover_stalled_jobs"


def stalled_check_seconds(stalled_worker_seconds: float) -> float:
    """How often to look for stalled jobs: a few times per stall timeout, at most every 5 s."""
    return max(1.0, min(5.0, stalled_worker_seconds / 3))


# --------------------------------------------------------------------------------------------
# Reconcile


def _context(snap: records.Snapshot) -> Context:
    return Context(
        spec=snap.spec,
        providers=get_providers(get_settings(), snap.spec.tier),
        settings=get_settings(),
        outputs=dict(snap.outputs),
        admin_email=snap.admin_email,
        admin_password_hash=snap.admin_password_hash,
        forget_admin_hash=records.forget_admin_hash,
        read_plan=records.workspace_plan,
        release=snap.release,
        record_observed=records.record_observed,
    )


def _fail(ctx: Context, where: str, condition: str | None, exc: BaseException) -> str:
    """Record a failed step and defer the retry at the backoff time."""
    error = short_error(where, exc, ctx.secrets())
    logger.warning("workspace %s: %s", ctx.spec.id, error, exc_info=not isinstance(exc, ProviderError))
    next_at = records.record_failure(ctx.spec.id, condition, error, ctx.settings)
    defer_reconcile(ctx.spec.id, Cause.retry, schedule_at=next_at)
    return f"failed at {where}"


def _ensure_step(ctx: Context, step: Step) -> bool:
    started = time.monotonic()
    try:
        result = step.ensure(ctx)
    except Exception as exc:
        _fail(ctx, step.name, step.condition, exc)
        return False
    logger.info("workspace %s: %s ensured in %.3f s", ctx.spec.id, step.name, time.monotonic() - started)
    ctx.outputs.update(result.outputs)
    records.record_step(ctx.spec.id, step.condition, result)
    fault_pause(step.name)
    return True


def converge(snap: records.Snapshot, steps: Callable[[str, str], tuple[Step, ...]] = plan_for) -> str:
    """Ensure every step of the plan (``steps``) in order; finish provisioning when all are ready."""
    ctx = _context(snap)
    for step in steps(ctx.settings.provider, ctx.spec.tier):
        if not _ensure_step(ctx, step):
            return f"failed at {step.name}"
    state = records.record_converged(snap.spec.id, snap.generation, ctx.settings)
    return f"converged ({state.value})"


def _teardown_step(ctx: Context, step: Step) -> bool:
    if step.teardown is None:
        return True
    try:
        step.teardown(ctx)
    except Exception as exc:
        _fail(ctx, f"teardown {step.name}", step.condition, exc)
        return False
    records.record_torn_down(ctx.spec.id, step.condition)
    fault_pause(f"teardown:{step.name}")
    return True


def _final_backup(ctx: Context, since: datetime | None) -> bool:
    """The workspace's final backup exists: one taken ``since`` the deletion was requested (taken now if there is
    none, once, through the backups domain; kept 90 days)."""
    try:
        outcome = ensure_final_backup(ctx.spec.id, since)
        if outcome.state is not BackupState.completed:
            raise ProviderError(outcome.error or f"the final backup is {outcome.state.value}")
    except Exception as exc:
        _fail(ctx, "final backup", None, exc)
        return False
    return True


def delete(snap: records.Snapshot) -> str:
    """A workspace pending deletion: its server stopped (its data stays) and, if it had data, its final backup
    taken; then nothing until its purge date. Once that has passed, remove its exports' archives, tear every step
    down in reverse, check nothing is left (the leak sweep), then mark the workspace deleted."""
    ctx = _context(snap)
    try:
        ctx.providers.compute.stop(ctx.spec)
    except Exception as exc:
        return _fail(ctx, "stop", "ComputeReady", exc)
    if snap.resume_state in BACKUP_STATES and not _final_backup(ctx, snap.deletion_requested_at):
        return "failed at final backup"
    if not records.purge_due(snap.spec.id, snap.generation):
        return "pending deletion: waiting for the purge date"
    try:
        exports.expire_of_workspace(snap.spec.id, exports.WORKER_ACTOR)
    except Exception as exc:
        return _fail(ctx, "exports", None, exc)
    for step in reversed(plan_for(ctx.settings.provider, ctx.spec.tier)):
        if not _teardown_step(ctx, step):
            return f"failed at teardown {step.name}"
    leftovers = ctx.providers.leftovers(ctx.spec, ctx.outputs)
    if leftovers:
        return _fail(ctx, "leak sweep", None, ProviderError("left behind: " + ", ".join(leftovers)))
    records.record_deleted(snap.spec.id, snap.generation)
    return "deleted"


def hibernate(snap: records.Snapshot) -> str:
    """Stop the workspace server, keep its database and files."""
    ctx = _context(snap)
    try:
        ctx.providers.compute.stop(ctx.spec)
    except Exception as exc:
        return _fail(ctx, "hibernate", "ComputeReady", exc)
    records.record_hibernated(snap.spec.id, snap.generation)
    return "hibernated"


def restore_in_place(snap: records.Snapshot) -> str:
    """Stop the server, put the pending restore's database and files back (:mod:`control_plane.backups.restoring`),
    then resume the state the workspace left and defer the reconcile that starts its server again."""
    ctx = _context(snap)
    try:
        ctx.providers.compute.stop(ctx.spec)
        restoring.restore_in_place(ctx.spec, ctx.providers, ctx.outputs)
    except Exception as exc:
        return _fail(ctx, "restore", None, exc)
    records.record_restored(snap.spec.id, snap.generation)
    defer_reconcile(snap.spec.id, Cause.restore)
    return "restored"


def nothing(snap: records.Snapshot) -> str:
    return f"nothing to do in {snap.state.value}"


ACTIONS: dict[Lifecycle, Callable[[records.Snapshot], str]] = {
    **dict.fromkeys(RUNNING_STATES, converge),
    Lifecycle.pending_deletion: delete,
    Lifecycle.hibernated: hibernate,
    Lifecycle.restoring: restore_in_place,
    Lifecycle.pending_verification: nothing,
    Lifecycle.deleted: nothing,
}


def warm_up() -> None:
    """Build what reconciles use before the worker takes its first job: the provider sets (imports, AWS clients),
    the ORM and the pool's first connection."""
    warm_up_providers(get_settings())
    records.warm_up()


def budget_cell(snap: records.Snapshot) -> str:
    """Whose AWS call budget a reconcile takes from: its cell (pooled), or its own silo (enterprise)."""
    return snap.spec.cell or f"silo-{snap.spec.id}"


def reconcile(workspace_id: uuid.UUID, cause: Cause | None = None) -> str:
    """Converge one workspace to what its lifecycle state asks for; returns what happened.

    A rollout's upgrade (``cause`` upgrade) of a workspace whose only change is its release runs the release's steps
    only (:func:`release_plan_for`: the rest of the plan is what it was); anything else runs the whole plan. Once an
    upgrade converged, the rollout's next pass is asked for at once.
    """
    snap = records.load(workspace_id)
    if snap is None:
        return "no such workspace"
    with about_cell(budget_cell(snap)):
        if cause == Cause.upgrade and snap.only_release_changed:
            outcome = converge(snap, release_plan_for)
        else:
            outcome = ACTIONS[snap.state](snap)
    logger.info("workspace %s (%s): %s", workspace_id, snap.state.value, outcome)
    if cause == Cause.upgrade:
        nudge_rollout_of(workspace_id)
    return outcome


@app.task(name=RECONCILE_TASK)
def reconcile_workspace(workspace_id: str, cause: str = "unknown") -> str:
    """procrastinate entry point (always deferred through :func:`defer_reconcile`; jobs deferred before causes
    were recorded count as ``unknown``). A background reconcile over the fleet-wide limit (its own job counted) waits
    :data:`BACKGROUND_WAIT_SECONDS` and tries again, so that a fleet-wide resync or re-verification never takes every
    worker slot from signups, wakes and restores."""
    if cause in BACKGROUND and background_running() > get_settings().background_reconcile_limit:
        later = datetime.now(UTC) + timedelta(seconds=BACKGROUND_WAIT_SECONDS)  # the queue's clock, not a test clock
        defer_reconcile(uuid.UUID(workspace_id), Cause(cause), schedule_at=later)
        return "postponed: background reconciles at their limit"
    fleet_counters.add(RECONCILES, cause)
    return reconcile(uuid.UUID(workspace_id), Cause(cause) if cause in Cause.__members__ else None)


# --------------------------------------------------------------------------------------------
# Periodic tasks

_settings_at_import = get_settings()


def _verification_window(now: datetime) -> tuple[float, float] | None:
    """The re-verification phases due since the last resync (remembered in the drift cursors)."""
    settings = get_settings()
    cursors = StoredCursors()
    last = cursors.get(REVERIFY_CURSOR)
    cursors.put(REVERIFY_CURSOR, now.isoformat())
    since = datetime.fromisoformat(last) if last else None
    return verification_window(since, now, settings.reverify_seconds, settings.reconcile_resync_seconds)


@app.periodic(cron=every(_settings_at_import.reconcile_resync_seconds), periodic_id="resync")
@app.task(name=RESYNC_TASK, lock=RESYNC_TASK, queueing_lock=RESYNC_TASK)
def resync_workspaces(timestamp: int) -> int:
    """Defer a reconcile of every workspace that needs one, and of those due for re-verification (deduplicated per
    workspace); returns how many."""
    now = utcnow()
    running = running_reconciles()  # a reconcile in progress converges, or defers its own retry
    ids = [workspace_id for workspace_id in records.workspaces_to_resync(now) if workspace_id not in running]
    for workspace_id in ids:
        defer_reconcile(workspace_id, Cause.resync)
    window = _verification_window(now)
    due = records.workspaces_to_verify(window) if window else []
    for workspace_id in due:
        defer_reconcile(workspace_id, Cause.verify)
    return len(ids) + len(due)


async def _retry_stalled(job: jobs.Job) -> None:
    assert job.id is not None
    try:
        await app.job_manager.retry_job(job)
    except UniqueViolation:
        # A newer reconcile of the same workspace is already waiting: it supersedes this one,
        # but the stalled job must leave ``doing`` or its lock would block that newer job.
        await app.job_manager.finish_job_by_id_async(job.id, jobs.Status.FAILED, delete_job=False)
    logger.warning("retried stalled job %s (%s %s)", job.id, job.task_name, job.task_kwargs)


@app.periodic(cron=every(stalled_check_seconds(_settings_at_import.stalled_worker_seconds)), periodic_id="recover")
@app.task(name=RECOVER_TASK, queueing_lock=RECOVER_TASK)
async def recover_stalled_jobs(timestamp: int) -> int:
    """Retry the jobs of workers whose heartbeat is older than ``stalled_worker_seconds``.

    Deliberately without a procrastinate ``lock``: a recovery job held by a dead worker would keep
    that lock and block every later recovery. Two recoveries racing are harmless (the loser's retry
    finds the job no longer ``doing`` and is logged).
    """
    seconds = get_settings().stalled_worker_seconds
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds))
    for job in stalled:
        try:
            await _retry_stalled(job)
        except ConnectorException:
            logger.exception("could not retry stalled job %s", job.id)
    await app.job_manager.prune_stalled_workers(seconds)
    return len(stalled)
