"""The workspace's billing plan, as the Canopy control plane sets it (``PUT /api/v4/canopy/plan``), and the rule it
imposes here: a suspended workspace is read-only.

Read-only: nobody, system admins included, creates, edits, pins or reacts to posts or uploads files; signing in,
reading, searching, preferences, statuses, the WebSocket and file downloads keep working, and so does deleting a post
(taking content down stays a person's decision). The refusal is Mattermost's permission error (:func:`suspended_error`).

The state is read from the database by every write, never cached, so a suspension or a reactivation holds from the
next request on in every server process. The rule is :data:`REFUSES_WRITES`, applied in two places: the post
statement of :mod:`post_writer` (every new post, however it arrives, at no extra round trip on the busiest path) and
:data:`WritingSession` (the other writes). A workspace without a plan row is not restricted and reports
:data:`NO_PLAN`.
"""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any, Final, Literal

from fastapi import Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import RowMapping, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, Session
from workspace_server.db import Conn
from workspace_server.ids import new_id
from workspace_server.schema import workspace_plan
from workspace_server.web import INT_MAX, AppError, permission_error

BILLING_URL_MAX_CHARS: Final = 2048
REFUSES_WRITES: Final = "EXISTS (SELECT 1 FROM workspace_plan WHERE state = 'suspended')"
"""SQL: whether the workspace refuses writes (its plan is suspended)."""
SUSPENDED_DETAIL: Final = "The workspace is suspended: it is read-only until its billing is settled."

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


class Plan(BaseModel):
    """The plan, as the control plane sends it and this server answers it: ``state``; ``trial_end_at`` and
    ``delinquent_since`` in ms since the epoch (0: no trial, not delinquent); ``billing_url``, where the
    organization's owner manages billing (empty: none). Strict: exact types, no other field."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    state: Literal["trialing", "active", "past_due", "suspended"]
    trial_end_at: Millis
    delinquent_since: Millis
    billing_url: str = Field(max_length=BILLING_URL_MAX_CHARS)

    @field_validator("billing_url")
    @classmethod
    def _absolute_http_url(cls, value: str) -> str:
        if value and not _is_absolute_http_url(value):
            raise ValueError("must be an absolute http(s) URL, or empty")
        return value


NO_PLAN: Final = Plan(state="active", trial_end_at=0, delinquent_since=0, billing_url="")
"""What a workspace without a plan reports: active, no trial, not delinquent."""

_PLAN_FIELDS: Final = tuple(Plan.model_fields)


async def stored_plan(conn: AsyncConnection) -> RowMapping | None:
    """The plan row (its :class:`Plan` fields and ``subscription_id``), or ``None`` when the control plane never
    set one."""
    row: RowMapping | None = (await conn.execute(select(workspace_plan))).mappings().first()
    return row


def plan_json(row: RowMapping | None) -> dict[str, Any]:
    """The plan of ``row`` (:data:`NO_PLAN` for none) as JSON."""
    return NO_PLAN.model_dump() if row is None else {name: row[name] for name in _PLAN_FIELDS}


async def store_plan(conn: AsyncConnection, plan: Plan) -> None:
    """Make ``plan`` the workspace's (the caller commits): one statement, which writes nothing when the stored plan
    is already that one (the control plane sends it on every reconcile)."""
    values = plan.model_dump()
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


def suspended_error() -> AppError:
    """403 for a write to a suspended workspace: Mattermost's permission error, which it answers wherever a role
    lacks ``create_post``, ``edit_post``, ``add_reaction`` or ``upload_file`` (its read-only channels), with the
    reason in ``detailed_error``."""
    error = permission_error()
    error.detailed_error = SUSPENDED_DETAIL
    return error


async def ensure_writable(conn: AsyncConnection) -> None:
    """:func:`suspended_error` if the workspace is suspended (one read of the plan row)."""
    if await conn.scalar(text(f"SELECT {REFUSES_WRITES}")):
        raise suspended_error()


async def _writing_session(conn: Conn, session: CurrentSession) -> Session:
    await ensure_writable(conn)
    return session


WritingSession = Annotated[Session, Depends(_writing_session)]
"""The caller's session (401 without one) for a write that a suspended workspace refuses (403, see
:func:`suspended_error`); checked in the request's own connection."""
