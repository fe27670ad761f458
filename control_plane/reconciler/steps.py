"""The local provisioning plan as data (each step ensures one thing and knows how to undo it), and what every
plan shares: the reconcile :class:`Context` and :class:`Step`. The aws plans are in :mod:`.plans`.

Steps run in order to converge and in reverse to tear down. Every ``ensure`` is idempotent, so a
reconcile can be re-run at any point (after a crash, a retry, or a periodic resync).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from control_plane.backups.restoring import ensure_restored
from control_plane.core.settings import Settings
from control_plane.credentials.models import Purpose
from control_plane.credentials.service import workspace_secret
from control_plane.providers.base import (
    Ensured,
    HealthReporting,
    Observed,
    ProviderError,
    Providers,
    RunRelease,
    ServerConfig,
    WorkspaceSpec,
)
from control_plane.providers.workspace_client import control_url, ping, put_initial_admin, put_plan


@dataclass
class Context:
    """What one reconcile run knows; ``outputs`` accumulates as steps complete."""

    spec: WorkspaceSpec
    providers: Providers
    settings: Settings
    outputs: dict[str, Any] = field(default_factory=dict)
    admin_email: str | None = None
    admin_password_hash: str | None = None
    forget_admin_hash: Callable[[uuid.UUID], None] | None = None
    read_plan: Callable[[uuid.UUID], dict[str, object]] | None = None
    release: RunRelease | None = None
    record_observed: Callable[[uuid.UUID, Observed], None] | None = None

    def secrets(self) -> list[str]:
        """Credentials that must never reach ``last_error`` (those that can be read now; this must never fail)."""
        found: list[str] = []
        with contextlib.suppress(Exception):  # e.g. the credential store is what failed
            found.append(control_token(self.spec))
        with contextlib.suppress(Exception):  # e.g. a silo database not made yet has no password to hide
            url = self.providers.database.connection_url(self.spec)
            password = conninfo_to_dict(url).get("password")
            found += [url, *([str(password)] if password else [])]
        return found


@dataclass(frozen=True)
class Step:
    """One resource: how to ensure it, how to remove it, which condition reports it."""

    name: str
    condition: str | None
    ensure: Callable[[Context], Ensured]
    teardown: Callable[[Context], None] | None = None


def control_token(spec: WorkspaceSpec) -> str:
    """Bearer token the control plane uses on the workspace server's control endpoints (random, stored)."""
    return workspace_secret(spec.id, Purpose.control)


def ensure_database(ctx: Context) -> Ensured:
    return ctx.providers.database.ensure(ctx.spec)


def teardown_database(ctx: Context) -> None:
    ctx.providers.database.teardown(ctx.spec)


def ensure_storage(ctx: Context) -> Ensured:
    return ctx.providers.storage.ensure(ctx.spec)


def teardown_storage(ctx: Context) -> None:
    ctx.providers.storage.teardown(ctx.spec)


def ensure_restore(ctx: Context) -> Ensured:
    """Restore the backup a clone was made from, before its server first starts (nothing when none is pending)."""
    return ensure_restored(ctx.spec, ctx.providers, ctx.outputs)


RESTORE = Step("restore", None, ensure_restore)


def server_config(ctx: Context) -> ServerConfig:
    spec = ctx.spec
    return ServerConfig(
        database_url=ctx.providers.database.connection_url(spec),
        files_dir=str(ctx.outputs["files_dir"]),
        public_url=ctx.providers.dns.endpoint_url(spec),
        control_token=control_token(spec),
        site_name=spec.display_name,
        team_name=spec.slug,
        team_display_name=spec.display_name,
        health=health_reporting(ctx, ctx.settings.public_url),
        release=ctx.release,
    )


def health_reporting(ctx: Context, control_plane_url: str) -> HealthReporting | None:
    """How the server reports its health to the control plane at ``control_plane_url`` (None: it does not)."""
    if not control_plane_url:
        return None
    return HealthReporting(ctx.spec.id, control_plane_url, ctx.settings.health_report_seconds)


def ensure_compute(ctx: Context) -> Ensured:
    return ctx.providers.compute.ensure(ctx.spec, server_config(ctx))


def teardown_compute(ctx: Context) -> None:
    ctx.providers.compute.teardown(ctx.spec)


def ensure_dns(ctx: Context) -> Ensured:
    return ctx.providers.dns.ensure(ctx.spec, ctx.outputs)


def teardown_dns(ctx: Context) -> None:
    ctx.providers.dns.teardown(ctx.spec)


def ensure_initial_admin(ctx: Context) -> Ensured:
    """Hand the signup's admin to the workspace once, then forget the password hash."""
    if not (ctx.admin_email and ctx.admin_password_hash):
        return Ensured()
    put_initial_admin(
        str(ctx.outputs["internal_url"]), control_token(ctx.spec), ctx.admin_email, ctx.admin_password_hash
    )
    if ctx.forget_admin_hash is not None:
        ctx.forget_admin_hash(ctx.spec.id)
    ctx.admin_password_hash = None
    return Ensured(created=("initial_admin",))


def ensure_available(ctx: Context) -> Ensured:
    if not ping(str(ctx.outputs["internal_url"])):
        raise ProviderError("workspace server does not answer its ping")
    return Ensured()


def ensure_plan(ctx: Context) -> Ensured:
    """Tell the server its billing plan (trial end, suspension) where the control plane reaches it."""
    if ctx.read_plan is None:
        return Ensured()
    url = control_url(ctx.settings.provider, ctx.outputs, ctx.providers.dns.endpoint_url(ctx.spec))
    if url is None:
        raise ProviderError("no address to tell the workspace server its plan")
    put_plan(url, control_token(ctx.spec), ctx.read_plan(ctx.spec.id))
    return Ensured()


def ensure_retired(ctx: Context) -> Ensured:
    """Stop the previous server of a release switch, now that the outputs naming the new one are recorded."""
    ctx.providers.compute.retire(ctx.spec)
    return Ensured()


def ensure_observed(ctx: Context) -> Ensured:
    """Read back which release runs (the server's report; on Kubernetes also the Pods' images) and record it."""
    observed = ctx.providers.compute.observe(ctx.spec, ctx.outputs)
    if ctx.record_observed is not None:
        ctx.record_observed(ctx.spec.id, observed)
    return Ensured()


OBSERVE = Step("observe", None, ensure_observed)

STEPS: tuple[Step, ...] = (
    Step("database", "DatabaseReady", ensure_database, teardown_database),
    Step("storage", "StorageReady", ensure_storage, teardown_storage),
    RESTORE,
    Step("compute", "ComputeReady", ensure_compute, teardown_compute),
    Step("dns", "DnsReady", ensure_dns, teardown_dns),
    Step("initial_admin", None, ensure_initial_admin),
    Step("available", "Available", ensure_available),
    Step("retire", None, ensure_retired),
    OBSERVE,
    Step("plan", None, ensure_plan),
)
