"""The one place that picks the provider set of this deployment."""

from __future__ import annotations

from control_plane.core.db import database_url
from control_plane.core.settings import Settings
from control_plane.providers.base import Providers


def get_providers(settings: Settings) -> Providers:
    """Providers for ``settings.provider`` ("local" today; "aws" later)."""
    if settings.provider == "local":
        from control_plane.providers import local

        return Providers(
            database=local.LocalDatabase(database_url()),
            storage=local.LocalStorage(settings.state_dir),
            compute=local.LocalCompute(settings.state_dir, settings.workspace_ready_timeout_seconds),
            dns=local.LocalDns(settings.base_domain, settings.public_url),
        )
    raise ValueError(f"unknown provider {settings.provider!r}")
