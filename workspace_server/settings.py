"""Process configuration, read from ``WS_*`` environment variables only."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr, field_validator, model_validator

_TEAM_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_PG_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")


def sqlalchemy_url(libpq_url: str) -> str:
    """A libpq ``postgresql://`` URL rewritten for SQLAlchemy's psycopg 3 dialect (query parameters such as
    ``?host=/socket/dir`` pass through to libpq)."""
    return "postgresql+psycopg://" + libpq_url.partition("://")[2]


class Settings(BaseModel):
    """Everything the workspace server needs to know about its deployment (see :meth:`from_environment`)."""

    model_config = ConfigDict(extra="forbid")

    database_url: SecretStr
    control_token: SecretStr
    public_url: str = "http://localhost:8000"
    site_name: str = "Canopy"
    team_name: str = "main"
    team_display_name: str = ""
    files_dir: Path = Path("files")
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    runtime_dir: Path | None = None
    enable_open_server: bool = False
    # Redis for sharing WebSocket events between replicas of the workspace (redis://host:port/db); unset keeps
    # events within the process.
    redis_url: str = ""
    # Server processes sharing the listening socket (each one a replica as far as events go, so more than one
    # needs redis_url).
    workers: int = 1
    # Database connections each process keeps open (more are opened for bursts, and closed after them: keep this
    # at the concurrency the process usually sees, since opening a connection costs PostgreSQL a new backend).
    db_pool_size: int = 20
    # Uploads: the largest file accepted, in bytes (Mattermost's FileSettings.MaxFileSize).
    max_file_size: int = 100 * 1024 * 1024
    # Files go to this S3 bucket (under the prefix, encrypted with this KMS key) when it is set, else to
    # files_dir. The endpoint comes from boto3's own configuration (AWS_ENDPOINT_URL, AWS_REGION, ...).
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_kms_key_id: str = ""
    # Whether incoming webhooks may set the name and icon their posts show (Mattermost's
    # EnablePostUsernameOverride and EnablePostIconOverride, off by default).
    enable_post_username_override: bool = False
    enable_post_icon_override: bool = False
    # The first system admin, created at start if absent: how the control plane hands it over where it cannot call
    # the server (Kubernetes). The password comes as its argon2 hash only; all three or none.
    initial_admin_email: str = ""
    initial_admin_username: str = ""
    initial_admin_password_hash: SecretStr = SecretStr("")
    # How often each process shares its last use with the others through the database (see activity.py).
    activity_flush_seconds: float = 30.0
    # Health reports to the control plane (health_report.py): its URL and this workspace's id (off unless both);
    # checked every health_check_seconds, sent when they change and at least every health_report_seconds.
    control_plane_url: str = ""
    workspace_id: str = ""
    health_check_seconds: float = 30.0
    health_report_seconds: float = 600.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings given as ``WS_<FIELD>`` variables (names in any case), defaults for the rest.

        Plain pydantic rather than pydantic-settings, whose sources would cost every idle server about 5 MB.
        """
        given = {key.upper(): value for key, value in (os.environ if environ is None else environ).items()}
        fields = {name: given[f"WS_{name.upper()}"] for name in cls.model_fields if f"WS_{name.upper()}" in given}
        return cls.model_validate(fields)

    @field_validator("team_name")
    @classmethod
    def _valid_team_name(cls, value: str) -> str:
        if not 2 <= len(value) <= 64 or not _TEAM_NAME.match(value):
            raise ValueError("must be 2-64 lowercase letters, digits or '-', not starting or ending with '-'")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value().partition("://")[0] not in _PG_SCHEMES:
            raise ValueError("must be a postgresql://user:password@host:port/database URL")
        return value

    @field_validator("workers", "db_pool_size")
    @classmethod
    def _count_in_range(cls, value: int) -> int:
        if not 1 <= value <= 64:
            raise ValueError("must be between 1 and 64")
        return value

    @model_validator(mode="after")
    def _workers_need_redis(self) -> Settings:
        if self.workers > 1 and not self.redis_url:
            raise ValueError("WS_REDIS_URL must be set when WS_WORKERS > 1: events cross processes through Redis")
        return self

    @field_validator("activity_flush_seconds")
    @classmethod
    def _positive_period(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be a positive number of seconds")
        return value

    @field_validator("max_file_size")
    @classmethod
    def _positive_size(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be a positive number of bytes")
        return value

    @model_validator(mode="after")
    def _s3_needs_a_kms_key(self) -> Settings:
        if self.s3_bucket and not self.s3_kms_key_id:
            raise ValueError("WS_S3_KMS_KEY_ID must be set with WS_S3_BUCKET: every object is encrypted with it")
        return self

    @model_validator(mode="after")
    def _initial_admin_complete(self) -> Settings:
        given = [bool(v) for v in (self.initial_admin_email, self.initial_admin_username, self.initial_admin_hash)]
        if any(given) and not all(given):
            raise ValueError("WS_INITIAL_ADMIN_EMAIL, _USERNAME and _PASSWORD_HASH must be set together")
        return self

    @field_validator("control_token")
    @classmethod
    def _non_empty_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value

    @property
    def initial_admin_hash(self) -> str:
        """The initial admin's argon2 password hash ("" when there is none)."""
        return self.initial_admin_password_hash.get_secret_value()

    @property
    def team_title(self) -> str:
        """The first team's display name (defaults to its slug)."""
        return self.team_display_name or self.team_name

    def sqlalchemy_url(self) -> str:
        """``WS_DATABASE_URL`` rewritten for SQLAlchemy's psycopg 3 dialect."""
        return sqlalchemy_url(self.database_url.get_secret_value())
