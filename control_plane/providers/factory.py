"""The one place that picks the provider set of this deployment and a workspace's tier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from control_plane.core.db import database_url
from control_plane.core.settings import Settings
from control_plane.providers.base import Providers
from infra.conventions import TIER_PROFESSIONAL

if TYPE_CHECKING:
    from control_plane.credentials.service import WorkspaceSecrets


def get_providers(settings: Settings, tier: str, secrets: WorkspaceSecrets | None = None) -> Providers:
    """Providers for ``settings.provider``: "local" (one set for every tier) or "aws" (silo or pooled by tier).

    ``secrets`` replaces the stored workspace credentials (a restore drill's scratch database, which has no
    workspace row): on the local runtime and a pooled cell (a silo keeps its credentials in Secrets Manager).
    """
    if settings.provider == "local":
        from control_plane.credentials.keys import keyring
        from control_plane.credentials.service import workspace_secret
        from control_plane.providers import local
        from control_plane.providers.local_backup import LocalBackup

        database = local.LocalDatabase(database_url(), secrets or workspace_secret)
        storage = local.LocalStorage(settings.state_dir)
        compute = local.LocalCompute(settings.state_dir, settings.workspace_ready_timeout_seconds)
        return Providers(
            database=database,
            storage=storage,
            compute=compute,
            dns=local.LocalDns(settings.base_domain, settings.public_url),
            backup=LocalBackup(settings.state_dir, database, storage, keyring(settings)),
            drift=(compute,),
        )
    if settings.provider == "aws":
        from control_plane.providers.aws.fleet import aws_providers

        return aws_providers(settings, tier, secrets)
    raise ValueError(f"unknown provider {settings.provider!r}")


def reaches_workspaces_over_http(settings: Settings) -> bool:
    """Whether this deployment can call its workspace servers at their public URLs: always on the local runtime;
    on aws as ``aws_probe_http`` says (off where nothing answers HTTP, e.g. a cluster without an ingress)."""
    return settings.provider != "aws" or settings.aws_probe_http


def warm_up_providers(settings: Settings) -> None:
    """Import and build what the reconciler's jobs use (provider sets, AWS clients, the local fork server), before a
    worker takes jobs."""
    if settings.provider == "aws":
        from control_plane.providers.aws.fleet import fleet_of

        fleet_of(settings).warm(settings)
    else:
        from control_plane.providers.local import fork_server

        get_providers(settings, TIER_PROFESSIONAL)
        # The fork server imports the workspace server now, not when the first server starts.
        fork_server(settings.state_dir, settings.workspace_ready_timeout_seconds).start()
