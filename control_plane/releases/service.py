"""Release actions: publish, promote or revoke, pin a workspace, and which release a workspace runs.

The bundled release (``CANOPY_DEFAULT_RELEASE``, this code's workspace server, ``CANOPY_KUBE_WORKSPACE_IMAGE``)
is always in the catalogue: :func:`ensure_bundled` adds it at start when it is missing.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from control_plane.audit import service as audit
from control_plane.core.clock import utcnow
from control_plane.core.problems import Conflict, NotFound
from control_plane.core.settings import Settings, get_settings
from control_plane.providers.base import Observed, ProviderError, RunRelease
from control_plane.releases import repository
from control_plane.releases.models import Release, ReleaseState
from control_plane.releases.schemas import FleetCount, ReleaseOut, ReleasePublish
from control_plane.workspaces import repository as workspaces
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Workspace
from workspace_server.release import SCHEMA_REVISION

BUNDLED_BY = "canopy (bundled release)"
STATE_MOVES: dict[ReleaseState, frozenset[ReleaseState]] = {
    ReleaseState.candidate: frozenset({ReleaseState.stable, ReleaseState.revoked}),
    ReleaseState.stable: frozenset({ReleaseState.revoked}),
    ReleaseState.revoked: frozenset(),
}


def bundled(settings: Settings) -> RunRelease:
    """What runs for the bundled release."""
    return RunRelease(settings.default_release, settings.kube_workspace_image, None)


def runnable(session: Session, version: str, settings: Settings) -> RunRelease:
    """What the runtimes run for ``version`` (the bundled release even before it is in the catalogue)."""
    release = repository.by_version(session, version)
    if release is None:
        if version == settings.default_release:
            return bundled(settings)
        raise ProviderError(f"release {version} is not in the catalogue")
    command = tuple(release.local_command) if release.local_command else None
    return RunRelease(release.version, release.image, command)


def observed_release(session: Session, observed: Observed, desired: str) -> str | None:
    """The release a runtime's report names: the server's own word, else the one release whose image every ready
    Pod runs (the desired release first when several share that image); None when nothing says."""
    if observed.release:
        return observed.release
    if len(set(observed.images)) != 1:
        return None
    image = observed.images[0]
    wanted = repository.by_version(session, desired)
    if (wanted.image if wanted else get_settings().kube_workspace_image) == image:
        return desired
    return repository.version_of_image(session, image)


def observed_schema(session: Session, observed: Observed, release: str | None, current: int | None) -> int | None:
    """The schema revision a workspace's database is at: the server's own word, else (no report, e.g. a deployment
    that cannot call its servers) at least the ``schema_min`` of the release read back from what runs, since a
    release migrates its database there when it starts; ``current`` when nothing says."""
    if observed.schema is not None:
        return observed.schema
    running = repository.by_version(session, release) if release else None
    if running is None:
        return current
    return max(current or 0, running.schema_min)


def snapshot(release: Release) -> dict[str, Any]:
    """The audited fields of a release."""
    return {
        "version": release.version,
        "image": release.image,
        "local_command": release.local_command,
        "schema_min": release.schema_min,
        "schema_max": release.schema_max,
        "state": release.state.value,
        "notes": release.notes,
    }


def ensure_bundled(session: Session, settings: Settings) -> None:
    """Add the bundled release to the catalogue if it is not there (stable; committed by the caller)."""
    values = {
        "id": uuid.uuid4(),
        "version": settings.default_release,
        "image": settings.kube_workspace_image,
        "local_command": None,
        "schema_min": SCHEMA_REVISION,
        "schema_max": None,
        "notes": "The workspace server bundled with this control plane.",
        "state": ReleaseState.stable,
        "created_by": BUNDLED_BY,
    }
    session.execute(insert(Release).values(**values).on_conflict_do_nothing(index_elements=["version"]))


def publish(session: Session, body: ReleasePublish, actor: str) -> Release:
    """Add a candidate release (not committed); 409 if the version exists (releases are immutable)."""
    if repository.by_version(session, body.version) is not None:
        raise Conflict("release-exists", f"Release {body.version} exists; releases are immutable", version=body.version)
    release = Release(**body.model_dump(), state=ReleaseState.candidate, created_by=actor)
    session.add(release)
    session.flush()
    audit.record(
        session, actor=actor, action="release.publish", target_type="release", target_id=release.id,
        after=snapshot(release),
    )  # fmt: skip
    return release


def get(session: Session, version: str, *, for_update: bool = False) -> Release:
    """A release by version, or 404."""
    release = repository.by_version(session, version, for_update=for_update)
    if release is None:
        raise NotFound(f"Release {version}")
    return release


def change(session: Session, version: str, state: ReleaseState | None, notes: str | None, actor: str) -> Release:
    """Promote or revoke a release and/or amend its notes (not committed); 409 names a refused state move."""
    release = get(session, version, for_update=True)
    before = snapshot(release)
    if state is not None and state != release.state:
        if state not in STATE_MOVES[release.state]:
            raise Conflict(
                "release-state", f"A {release.state.value} release cannot become {state.value}", version=version
            )
        release.state = state
    if notes is not None:
        release.notes = notes
    release.updated_at = utcnow()
    audit.record(
        session, actor=actor, action="release.change", target_type="release", target_id=release.id,
        before=before, after=snapshot(release),
    )  # fmt: skip
    return release


def refusal(release: Release, schema: int | None) -> str | None:
    """Why ``release`` cannot run on a database at ``schema`` (None when it can)."""
    if release.runs_on(schema):
        return None
    return (
        f"release {release.version} runs on schema revisions {release.schema_min} to {release.schema_max}, "
        f"and the database is at {schema}"
    )


def require_runnable(release: Release, ws: Workspace) -> None:
    """409 unless ``release`` may be put on ``ws``: not revoked, and able to run on its database's schema."""
    if release.state == ReleaseState.revoked:
        raise Conflict("release-revoked", f"Release {release.version} is revoked", version=release.version)
    reason = refusal(release, ws.schema_revision)
    if reason is not None:
        raise Conflict("schema-incompatible", f"Workspace {ws.slug}: {reason}", workspace_id=str(ws.id))


def set_desired(ws: Workspace, version: str) -> bool:
    """Ask for ``version`` on ``ws`` (a new generation for the reconciler); False when it is asked for already."""
    if ws.desired_release == version:
        return False
    ws.desired_release = version
    ws.generation += 1
    ws.updated_at = utcnow()
    return True


def pin(session: Session, workspace_id: uuid.UUID, version: str, reason: str, actor: str) -> Workspace:
    """Pin a workspace to a release for ``reason`` (not committed): rollouts leave it alone until unpinned."""
    ws = _live_workspace(session, workspace_id)
    release = get(session, version)
    require_runnable(release, ws)
    before = _release_fields(ws)
    set_desired(ws, version)
    ws.release_pin_reason = reason
    audit.record(
        session, actor=actor, action="workspace.pin_release", target_type="workspace", target_id=ws.id,
        organization_id=ws.organization_id, before=before, after=_release_fields(ws),
    )  # fmt: skip
    return ws


def unpin(session: Session, workspace_id: uuid.UUID, actor: str) -> Workspace:
    """Let rollouts take the workspace again (its desired release stays until one does; not committed)."""
    ws = _live_workspace(session, workspace_id)
    before = _release_fields(ws)
    ws.release_pin_reason = None
    ws.updated_at = utcnow()
    audit.record(
        session, actor=actor, action="workspace.unpin_release", target_type="workspace", target_id=ws.id,
        organization_id=ws.organization_id, before=before, after=_release_fields(ws),
    )  # fmt: skip
    return ws


def _live_workspace(session: Session, workspace_id: uuid.UUID) -> Workspace:
    ws = workspaces.get(session, workspace_id, for_update=True)
    if ws is None or ws.lifecycle_state == Lifecycle.deleted:
        raise NotFound(f"Workspace {workspace_id}")
    return ws


def _release_fields(ws: Workspace) -> dict[str, Any]:
    return {
        "desired_release": ws.desired_release,
        "observed_release": ws.observed_release,
        "release_pin_reason": ws.release_pin_reason,
    }


def release_out(release: Release, desired: dict[str, int], observed: dict[str, int]) -> ReleaseOut:
    """The API view of a release with its fleet counts."""
    return ReleaseOut(
        **snapshot(release) | {"state": release.state},
        id=release.id,
        created_by=release.created_by,
        created_at=release.created_at,
        desired=desired.get(release.version, 0),
        observed=observed.get(release.version, 0),
    )


def listing(session: Session) -> list[ReleaseOut]:
    """Every release, newest first, with fleet counts."""
    desired = repository.counts_by(session, Workspace.desired_release)
    observed = repository.counts_by(session, Workspace.observed_release)
    return [release_out(r, desired, observed) for r in repository.all_releases(session)]


def one(session: Session, version: str) -> ReleaseOut:
    """One release with its fleet counts."""
    release = get(session, version)
    desired = repository.counts_by(session, Workspace.desired_release)
    observed = repository.counts_by(session, Workspace.observed_release)
    return release_out(release, desired, observed)


def fleet(session: Session) -> list[FleetCount]:
    """The live fleet counted by desired and observed release, tier, cell and state."""
    keys = ("desired_release", "observed_release", "tier", "cell", "lifecycle_state", "count")
    return [FleetCount(**dict(zip(keys, row, strict=True))) for row in repository.fleet(session)]
