"""The workspace's billing plan, as the Canopy control plane sets it (``PUT /api/v4/canopy/plan``), and the rule it
imposes here: a suspended workspace is read-only, and so is an Enterprise workspace whose licence says so
(``licence.read_only``: the control plane decides it by its own clock, once the contract's grace period is over).

Read-only: nobody, system admins included, creates, edits, pins or reacts to posts or uploads files; signing in,
reading, searching, preferences, statuses, the WebSocket and file downloads keep working, and so does deleting a post
(taking content down stays a person's decision). Nothing is deleted. The refusal is Mattermost's permission error
(:func:`read_only_error`), saying why.

The state is read from the database by every write, never cached, so a suspension, an expiry or a reactivation
holds from the next request on in every server process. The rule is :data:`WRITE_REFUSAL`, applied in two places:
the post statement of :mod:`post_writer` (every new post, however it arrives, at no extra round trip on the busiest
path) and :data:`WritingSession` (the other writes). A workspace without a plan row is not restricted and reports
:data:`NO_PLAN`.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Final, Literal

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import RowMapping, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, Session
from workspace_server.db import Conn
from workspace_server.ids import new_id
from workspace_server.schema import workspace_plan
from workspace_server.web import INT_MAX, AppError, permission_error

BILLING_URL_MAX_CHARS: Final = 2048
COMPANY_MAX_CHARS: Final = 256
LICENSED_USERS_MAX: Final = 2**31 - 1
WRITE_REFUSAL: Final = (
    "(SELECT CASE WHEN state = 'suspended' THEN 'suspended' WHEN licence_read_only THEN 'licence_expired' END"
    " FROM workspace_plan)"
)
"""SQL: why the workspace refuses writes (``'suspended'``, ``'licence_expired'``), NULL when it takes them."""
READ_ONLY_DETAILS: Final = {
    "suspended": "The workspace is suspended: it is read-only until its billing is settled.",
    "licence_expired": "The workspace's Enterprise licence has expired: it is read-only until the contract is renewed.",
}

Millis = Annotated[int, Field(ge=0, le=INT_MAX)]


def _is_absolute_http_url(value: str) -> bool:
    """Whether ``value`` is an absolute http(s) URL with a host, without credentials, spaces or control characters."""
    if any(c.isspace() or not c.isprintable() for c in value):
        return False
    try:
        parts = urllib.parse.urlsplit(value)
        port = parts.port  # ValueError for a port that is not a number or out of range
    except ValueError:
        return False
    credentials = parts.username or parts.password
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0 and not credentials


class Licence(BaseModel):
    """The Enterprise licence of the organization's contract: ``sku``; ``company``, the customer (its organization's
    name as the control plane has it: any text, shown as it is); ``users``, the seats purchased; ``starts_at``,
    ``expires_at`` (the contract's end) and ``grace_ends_at`` (ten days later), ms since the epoch, in that order;
    ``read_only``, set by the control plane from the grace's end until renewal. Strict: exact types, no other
    field."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sku: Literal["enterprise"]
    company: str = Field(min_length=1, max_length=COMPANY_MAX_CHARS)
    users: int = Field(ge=1, le=LICENSED_USERS_MAX)
    starts_at: Millis
    expires_at: Millis
    grace_ends_at: Millis
    read_only: bool

    @model_validator(mode="after")
    def _dates_in_order(self) -> Licence:
        if not self.starts_at < self.expires_at <= self.grace_ends_at:
            raise ValueError("starts_at < expires_at <= grace_ends_at must hold")
        return self


class Plan(BaseModel):
    """The plan, as the control plane sends it and this server answers it: ``state``; ``trial_end_at`` and
    ``delinquent_since`` in ms since the epoch (0: no trial, not delinquent); ``billing_url``, where the
    organization's owner manages billing (empty: none); ``licence``, an Enterprise workspace's (:class:`Licence`;
    absent or null: none). Strict: exact types, no other field."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    state: Literal["trialing", "active", "past_due", "suspended"]
    trial_end_at: Millis
    delinquent_since: Millis
    billing_url: str = Field(max_length=BILLING_URL_MAX_CHARS)
    licence: Licence | None = None

    @field_validator("billing_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        if value and not _is_absolute_http_url(value):
            raise ValueError("must be an absolute http(s) URL, or empty")
        return value


NO_PLAN: Final = Plan(state="active", trial_end_at=0, delinquent_since=0, billing_url="")
"""What a workspace without a plan reports: active, no trial, not delinquent."""

_LICENCE_FIELDS: Final = tuple(Licence.model_fields)


def _columns(plan: Plan) -> dict[str, Any]:
    """The ``workspace_plan`` columns of ``plan``: its own fields, and its licence's as ``licence_*`` (NULL for
    none)."""
    licence = plan.licence.model_dump() if plan.licence else dict.fromkeys(_LICENCE_FIELDS)
    return plan.model_dump(exclude={"licence"}) | {f"licence_{name}": value for name, value in licence.items()}


def answer(plan: Plan) -> dict[str, Any]:
    """``plan`` as the control endpoints answer it: its fields, ``licence`` only when it has one."""
    return plan.model_dump(exclude=None if plan.licence else {"licence"})


async def stored_plan(conn: AsyncConnection) -> RowMapping | None:
    """The plan row (the columns of :func:`_columns` and ``subscription_id``), or ``None`` when the control plane
    never set one."""
    row: RowMapping | None = (await conn.execute(select(workspace_plan))).mappings().first()
    return row


def stored_licence(row: RowMapping | None) -> Licence | None:
    """The licence of plan row ``row``, if it has one."""
    if row is None or row["licence_sku"] is None:
        return None
    return Licence.model_construct(**{name: row[f"licence_{name}"] for name in _LICENCE_FIELDS})


def plan_of(row: RowMapping | None) -> Plan:
    """The plan of row ``row`` (:data:`NO_PLAN` for none)."""
    if row is None:
        return NO_PLAN
    fields = {name: row[name] for name in ("state", "trial_end_at", "delinquent_since", "billing_url")}
    return Plan.model_construct(**fields, licence=stored_licence(row))


async def store_plan(conn: AsyncConnection, plan: Plan) -> None:
    """Make ``plan`` the workspace's (the caller commits): one statement, which writes nothing when the stored plan
    is already that one (the control plane sends it on every reconcile)."""
    values = _columns(plan)
    stmt = insert(workspace_plan).values(id=True, subscription_id=new_id(), **values)
    stored = tuple_(*(workspace_plan.c[name] for name in values))
    sent = tuple_(*(stmt.excluded[name] for name in values))
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[workspace_plan.c.id],
            set_={name: stmt.excluded[name] for name in values},
            where=stored.is_distinct_from(sent),
        )
    )


def read_only_error(reason: str) -> AppError:
    """403 for a write to a read-only workspace (``reason``: a :data:`WRITE_REFUSAL` value): Mattermost's
    permission error, which it answers wherever a role lacks ``create_post``, ``edit_post``, ``add_reaction`` or
    ``upload_file`` (its read-only channels), with the reason in ``detailed_error``."""
    error = permission_error()
    error.detailed_error = READ_ONLY_DETAILS[reason]
    return error


async def ensure_writable(conn: AsyncConnection) -> None:
    """:func:`read_only_error` if the workspace refuses writes (one read of the plan row)."""
    reason: str | None = await conn.scalar(text(f"SELECT {WRITE_REFUSAL}"))
    if reason is not None:
        raise read_only_error(reason)


async def _writing_session(conn: Conn, session: CurrentSession) -> Session:
    await ensure_writable(conn)
    return session


WritingSession = Annotated[Session, Depends(_writing_session)]
"""The caller's session (401 without one) for a write that a read-only workspace refuses (403, see
:func:`read_only_error`); checked in the request's own connection."""
