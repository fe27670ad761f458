"""All control-plane configuration, read from the environment in one place."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Control-plane settings; every field maps to a ``CANOPY_*`` environment variable."""

    model_config = SettingsConfigDict(env_prefix="CANOPY_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="libpq URL of the control-plane database; unset = embedded PostgreSQL (dev only).",
    )
    state_dir: Path = Field(default=Path(".canopy"), description="Embedded PostgreSQL data, workspace files.")
    secret_key: SecretStr = Field(
        default=SecretStr("dev-insecure-secret-change-me"),
        description="Signs CSRF tokens and derives per-workspace credentials.",
    )
    dev_mode: bool = Field(default=False, description="Enables /dev/mail and insecure defaults.")
    public_url: str = "http://localhost:8000"
    base_domain: str = Field(default="localhost", description="Workspaces live at <slug>.<base_domain>.")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    provider: Literal["local"] = "local"
    default_region: str = "local"
    trial_days: int = 14
    default_release: str = Field(default="0.1.0", description="Workspace-server release of new workspaces.")

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "Canopy <no-reply@canopy.localhost>"

    signup_rate_limit: int = Field(default=10, description="Signups per client address per window.")
    signup_rate_window_seconds: int = 600

    reconcile_resync_seconds: int = Field(default=30, description="Periodic resync period.")
    stalled_worker_seconds: float = Field(
        default=30.0, description="Heartbeat age after which a job is stalled."
    )
    worker_heartbeat_seconds: float = 5.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    workspace_ready_timeout_seconds: float = 60.0
    fault_pause_after_step: str | None = Field(
        default=None,
        description="Crash tests only: the reconciler sleeps for an hour right after this step completes.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
