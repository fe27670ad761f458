"""All control-plane configuration, read from the environment in one place."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_AWS_BUDGET_RATES = {
    "ec2": 20.0,
    "eks": 10.0,
    "iam": 10.0,
    "kms": 50.0,
    "rds": 10.0,
    "resourcegroupstaggingapi": 5.0,
    "route53": 5.0,
    "s3": 100.0,
    "secretsmanager": 50.0,
    "sts": 20.0,
}
"""AWS calls per second per cell, by service: a share of AWS's own per-account limits (route53 and the tagging API
allow 5/s per account; EC2 and RDS describes refill about 20/s)."""
DEFAULT_SECRET_KEY = "dev-insecure-secret-change-me"
"""Public, so refused outside dev mode (``canopy run`` keeps a random key in its state dir instead)."""


class Settings(BaseSettings):
    """Control-plane settings; every field maps to a ``CANOPY_*`` environment variable."""

    model_config = SettingsConfigDict(env_prefix="CANOPY_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="libpq URL of the control-plane database; unset = embedded PostgreSQL (dev only).",
    )
    state_dir: Path = Field(default=Path(".canopy"), description="Embedded PostgreSQL data, workspace files.")
    secret_key: SecretStr = Field(
        default=SecretStr(DEFAULT_SECRET_KEY),
        description="Signs CSRF tokens; the default is refused outside dev mode.",
    )
    credential_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Fernet keys of workspace credentials (JSON list, newest first); required outside dev mode.",
    )
    dev_mode: bool = Field(default=False, description="Enables /dev/mail and insecure defaults.")
    public_url: str = "http://localhost:8000"
    base_domain: str = Field(default="localhost", description="Workspaces live at <slug>.<base_domain>.")
    listen_host: str = "127.0.0.1"
    listen_port: int = 8000
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses/CIDRs (JSON list) whose X-Forwarded-For/-Proto are believed; empty = none.",
    )
    provider: Literal["local", "aws"] = Field(
        default="local", description="local = embedded default; aws = silos and cells on AWS and Kubernetes."
    )
    default_region: str = "local"
    trial_days: int = 14
    default_release: str = Field(default="0.1.0", description="Workspace-server release of new workspaces.")
    kubeconfig_overrides: dict[str, str] = Field(
        default_factory=dict,
        description='Kubeconfig per EKS cluster name, JSON {"<cluster or *>": "/path/to/kubeconfig"} (wins over EKS).',
    )

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    mail_from: str = "Canopy <no-reply@canopy.localhost>"

    signup_rate_limit: int = Field(default=10, description="Signups per client address per window.")
    signup_rate_window_seconds: int = 600

    reconcile_resync_seconds: int = Field(
        default=30, description="Periodic resync period: workspaces not converged, due retries, re-verifications."
    )
    drift_seconds: int = Field(
        default=30, ge=1, description="Drift detection period (Kubernetes watches, batched cloud reads, local servers)."
    )
    rollout_seconds: int = Field(
        default=2, ge=1, description="How often active rollouts are advanced (gates checked, upgrades started)."
    )
    background_reconcile_limit: int = Field(
        default=8,
        ge=1,
        description="Background reconciles (resync, re-verification) running at once across all workers; the other "
        "worker slots stay free for customer-facing work.",
    )
    health_report_seconds: int = Field(
        default=600,
        ge=1,
        description="Workspace servers report their health when it changes and at least this often (a heartbeat).",
    )
    kube_control_plane_url: str = Field(
        default="",
        description="Where workspace servers on Kubernetes reach the control plane's API for their health reports "
        "(empty: they send none).",
    )
    reverify_seconds: int = Field(
        default=21600,
        ge=1,
        description="Each converged workspace's full plan runs again once per this period, spread evenly over it.",
    )
    stalled_worker_seconds: float = Field(default=30.0, description="Heartbeat age after which a job is stalled.")
    worker_heartbeat_seconds: float = 5.0
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    workspace_ready_timeout_seconds: float = 60.0
    hibernate_idle_seconds: int = Field(
        default=86400,
        ge=0,
        description="A workspace with no request for this long hibernates (0 = never; on aws needs kube_wake_backend).",
    )
    wake_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long a request to a hibernated workspace is held while it wakes (then 503).",
    )
    deletion_grace_days: int = Field(
        default=30, ge=0, description="Days a deleted workspace stays pending (cancellable) before it is purged."
    )
    trial_deletion_grace_days: int = Field(
        default=7, ge=0, description="The same for a workspace deleted during its trial."
    )
    aws_environment: str = Field(default="dev", description="Names AWS resources canopy-<environment>-<id>.")
    aws_region: str | None = Field(
        default=None, description="Region of silo resources; unset = boto3's default (AWS_DEFAULT_REGION)."
    )
    aws_private_subnet_ids: list[str] = Field(
        default_factory=list, description="Private subnets of silo databases and clusters (JSON list)."
    )
    aws_db_subnet_group_name: str | None = Field(
        default=None, description="Existing DB subnet group for silo databases (instead of one per silo)."
    )
    aws_zone_id: str | None = Field(default=None, description="Route53 hosted zone of silo workspace names.")
    aws_zone_domain: str | None = Field(default=None, description="Domain of aws_zone_id (<slug>.<domain>).")
    aws_silo_node_count: int = Field(default=2, description="Nodes of a silo's EKS nodegroup (scales to twice).")
    aws_wait_timeout_seconds: float = Field(
        default=1800.0, description="How long an ensure waits for AWS (RDS, EKS) before a retry."
    )
    aws_poll_seconds: float = 10.0
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="Redis of the AWS call budget and the workers' counters (/metrics); empty: neither.",
    )
    aws_budget_rates: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_AWS_BUDGET_RATES),
        description="AWS calls per second per cell, by service (JSON object; others: aws_budget_default_rate).",
    )
    aws_budget_default_rate: float = Field(default=20.0, gt=0, description="Calls per second of other services.")
    aws_budget_burst_seconds: float = Field(
        default=1.0, gt=0, description="A bucket holds this many seconds of its rate (at least one call)."
    )
    aws_budget_max_wait_seconds: float = Field(
        default=30.0, ge=0, description="How long a call waits for its budget before a ProviderError (retried)."
    )
    cell_postgres_sslmode: str = Field(default="require", description="libpq sslmode towards cell databases.")
    cell_database_connection_limit: int = Field(default=20, description="Connections per pooled workspace role.")
    cell_ingress_label: str = Field(
        default="ingress", description="Pooled names point at <label>.<cell domain> (the cell's shared ingress)."
    )
    aws_probe_http: bool = Field(
        default=True, description="Available also needs the workspace's ping through its public URL (aws provider)."
    )
    kube_workspace_image: str = Field(
        default="ghcr.io/canopy/workspace-server:0.1.0", description="Image of the workspace server on Kubernetes."
    )
    kube_ingress_class: str = "nginx"
    kube_database_cidrs: list[str] = Field(
        default_factory=list, description="Where pooled namespaces may reach PostgreSQL (JSON list of CIDRs)."
    )
    kube_s3_cidrs: list[str] = Field(default_factory=list, description="Where pooled namespaces may reach S3 (443).")
    kube_extra_env: dict[str, str] = Field(
        default_factory=dict, description="More workspace-server environment (JSON), e.g. WS_REDIS_URL."
    )
    kube_wake_backend: str | None = Field(
        default=None,
        description="host[:port] where the clusters' ingress controllers reach the control plane's API: a sleeping "
        "workspace's Ingress sends its requests there (/wake/<slug>/...); unset = no idle hibernation on aws.",
    )
    kube_rollout_timeout_seconds: float = Field(
        default=600.0, description="How long a compute step waits for a rollout (and an ingress address)."
    )
    clock_file: Path | None = Field(
        default=None,
        description="Dev mode only: a file of seconds added to the clock of every process (`canopy clock advance`).",
    )

    stripe_api_key: SecretStr | None = Field(
        default=None, description="Stripe secret key; unset = no payments (Professional trials never end)."
    )
    stripe_api_base: str | None = Field(default=None, description="Stripe API address (localstripe in tests).")
    stripe_dialect: Literal["stripe", "localstripe"] = Field(
        default="stripe", description="localstripe lacks Prices and draft invoices; the gateway adapts (tests)."
    )
    stripe_publishable_key: str = Field(default="", description="Stripe publishable key of the billing page.")
    stripe_js_url: str = Field(
        default="https://js.stripe.com/v3/", description="Where the billing page loads Stripe.js."
    )
    stripe_webhook_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Webhook signing secrets (JSON list; several during a rotation); empty = the route refuses.",
    )
    billing_run_seconds: int = Field(
        default=300, description="Period of the billing run (trials, invoices, dunning); 0 = only `canopy billing run`."
    )
    billing_seat_collection_seconds: int = Field(
        default=3600, description="Period of the seat collection; 0 = only `canopy billing collect-seats`."
    )
    billing_dunning_retry_days: list[int] = Field(
        default_factory=lambda: [2, 5, 7], description="Charge retries, days after the first failure (JSON list)."
    )
    billing_hibernate_after_days: int = Field(default=30, description="Days suspended by billing before hibernation.")
    billing_collection_concurrency: int = Field(default=16, description="Workspace servers read at once for seats.")

    export_link_seconds: int = Field(
        default=86400, ge=60, description="How long a workspace export's download link works, in seconds."
    )
    export_keep_days: int = Field(
        default=7, ge=1, description="Days an export's archive is kept after it completed (then removed: expired)."
    )

    backup_schedule_seconds: int = Field(
        default=86400, ge=0, description="Each workspace with data gets a scheduled backup this often (0 = none)."
    )
    backup_keep_professional_daily: int = Field(default=7, ge=1, description="Daily backups a Professional keeps.")
    backup_keep_enterprise_daily: int = Field(default=30, ge=1, description="Daily backups an Enterprise keeps.")
    backup_keep_enterprise_monthly: int = Field(
        default=12, ge=0, description="Monthly backups (a month's newest) an Enterprise keeps beyond its daily ones."
    )
    backup_keep_manual_days: int = Field(default=30, ge=1, description="Days an on-demand backup is kept.")
    backup_keep_final_days: int = Field(
        default=90, ge=1, description="Days a deleted workspace's final backup is kept."
    )
    backup_drill_seconds: int = Field(
        default=86400, ge=0, description="Period of the restore drills (0 = only `canopy backups drill`)."
    )
    backup_drill_sample: int = Field(default=3, ge=1, description="Backups restored and checked by each drill run.")
    backup_drill_recent_days: int = Field(
        default=7, ge=0, description="A backup drilled within this many days is not picked again."
    )

    fault_pause_after_step: str | None = Field(
        default=None,
        description="Crash tests only: the reconciler sleeps for an hour right after this step completes.",
    )

    @field_validator("kube_wake_backend")
    @classmethod
    def _host_and_port(cls, value: str | None) -> str | None:
        if value:
            host, colon, port = value.rpartition(":")
            if not (host if colon else value) or (colon and not (port.isdigit() and 0 < int(port) < 65536)):
                raise ValueError("must be host or host:port")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses_or_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # a ValueError names the bad entry
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
