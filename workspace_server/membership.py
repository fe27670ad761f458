"""Team and channel memberships: the rows that decide who may see what."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy import RowMapping, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server import events
from workspace_server.auth import Session
from workspace_server.ids import now_ms
from workspace_server.schema import channel_members, channels, team_members
from workspace_server.web import AppError, invalid_body_param

# Mattermost's defaults (model.GetDefaultChannelNotifyProps); stored values override them.
DEFAULT_CHANNEL_NOTIFY_PROPS = {
    "channel_auto_follow_threads": "off",
    "desktop": "default",
    "desktop_threads": "all",
    "email": "default",
    "ignore_channel_mentions": "default",
    "mark_unread": "all",
    "push": "default",
    "push_threads": "all",
}


def _roles(base: str, admin_role: str, member: RowMapping) -> str:
    roles = [base, admin_role] if member["scheme_admin"] else [base]
    return " ".join([*roles, *member["explicit_roles"].split()])


def team_member_json(member: RowMapping) -> dict[str, Any]:
    """A team member in Mattermost's ``TeamMember`` shape."""
    return {
        "team_id": member["team_id"],
        "user_id": member["user_id"],
        "roles": _roles("team_user", "team_admin", member),
        "delete_at": member["delete_at"],
        "scheme_guest": False,
        "scheme_user": True,
        "scheme_admin": member["scheme_admin"],
        "explicit_roles": member["explicit_roles"],
        "create_at": member["create_at"],
    }


def channel_member_json(member: RowMapping) -> dict[str, Any]:
    """A channel member in Mattermost's ``ChannelMember`` shape."""
    return {
        "channel_id": member["channel_id"],
        "user_id": member["user_id"],
        "roles": _roles("channel_user", "channel_admin", member),
        "last_viewed_at": member["last_viewed_at"],
        "msg_count": member["msg_count"],
        "mention_count": member["mention_count"],
        "mention_count_root": member["mention_count_root"],
        "urgent_mention_count": 0,
        "msg_count_root": member["msg_count_root"],
        "notify_props": {**DEFAULT_CHANNEL_NOTIFY_PROPS, **member["notify_props"]},
        "last_update_at": member["last_update_at"],
        "scheme_guest": False,
        "scheme_user": True,
        "scheme_admin": member["scheme_admin"],
        "explicit_roles": member["explicit_roles"],
    }


def team_member_not_found() -> AppError:
    """404 for a user who is not in the team."""
    return AppError(404, "app.team.get_member.missing.app_error", "No team member found for that user ID and team ID.")


async def get_team_member(conn: AsyncConnection, team_id: str, user_id: str) -> RowMapping | None:
    """The active membership of ``user_id`` in ``team_id``, if any."""
    query = select(team_members).where(
        team_members.c.team_id == team_id, team_members.c.user_id == user_id, team_members.c.delete_at == 0
    )
    return (await conn.execute(query)).mappings().first()


async def manages_team(conn: AsyncConnection, session: Session, team_id: str) -> bool:
    """Whether the caller is a system admin or an admin of the team."""
    if session.is_system_admin:
        return True
    member = await get_team_member(conn, team_id, session.user_id)
    return bool(member is not None and member["scheme_admin"])


async def manages_channel(conn: AsyncConnection, session: Session, channel: RowMapping) -> bool:
    """Whether the caller is a system admin, an admin of ``channel`` or of its team: Mattermost's default roles
    let them change the channel's member roles and delete others' posts."""
    if session.is_system_admin:
        return True
    member = await get_channel_member(conn, channel["id"], session.user_id)
    if member is not None and member["scheme_admin"]:
        return True
    return bool(channel["team_id"]) and await manages_team(conn, session, channel["team_id"])


def admin_in_roles(roles: str, user_role: str, admin_role: str, param: str) -> bool:
    """Whether the space-separated member ``roles`` make an admin: they hold ``user_role``, perhaps ``admin_role``,
    and nothing else (no guests here, and other roles are not member roles); else 400 naming ``param``."""
    names = set(roles.split())
    if user_role not in names or not names <= {user_role, admin_role}:
        raise invalid_body_param(param)
    return admin_role in names


class SchemeRolesBody(BaseModel):
    """``PUT .../members/{user_id}/schemeRoles``, for team and channel members alike."""

    scheme_admin: bool = False
    scheme_user: bool = False
    scheme_guest: bool = False

    def admin(self) -> bool:
        """Whether the member is to be an admin; 400 unless they stay a plain member (there are no guests here)."""
        if not self.scheme_user or self.scheme_guest:
            raise invalid_body_param("scheme_roles")
        return self.scheme_admin


async def add_team_member(conn: AsyncConnection, team_id: str, user_id: str, *, admin: bool) -> RowMapping:
    """Make ``user_id`` an active member of ``team_id`` (kept as is if already one; the caller commits, and the
    ``added_to_team`` event goes out once it has)."""
    stmt = insert(team_members).values(team_id=team_id, user_id=user_id, scheme_admin=admin, create_at=now_ms())
    stmt = stmt.on_conflict_do_update(
        index_elements=[team_members.c.team_id, team_members.c.user_id],
        set_={"delete_at": 0, "scheme_admin": team_members.c.scheme_admin | stmt.excluded.scheme_admin},
    )
    member: RowMapping = (await conn.execute(stmt.returning(team_members))).mappings().one()
    events.defer(conn, "added_to_team", {"team_id": team_id, "user_id": user_id}, events.Broadcast(user_id=user_id))
    return member


async def get_channel_member(conn: AsyncConnection, channel_id: str, user_id: str) -> RowMapping | None:
    """The membership of ``user_id`` in ``channel_id``, if any."""
    query = select(channel_members).where(
        channel_members.c.channel_id == channel_id, channel_members.c.user_id == user_id
    )
    return (await conn.execute(query)).mappings().first()


async def add_channel_member(conn: AsyncConnection, channel_id: str, user_id: str, *, admin: bool) -> RowMapping:
    """Make ``user_id`` a member of ``channel_id`` (kept as is if already one; the caller commits, and a new
    member's ``user_added`` event goes out once it has)."""
    stmt = insert(channel_members).values(
        channel_id=channel_id, user_id=user_id, scheme_admin=admin, last_update_at=now_ms()
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[channel_members.c.channel_id, channel_members.c.user_id],
        set_={"scheme_admin": channel_members.c.scheme_admin | stmt.excluded.scheme_admin},
    )
    team_id = select(channels.c.team_id).where(channels.c.id == channel_id).scalar_subquery()
    # xmax is 0 for a row this statement inserted: only a new member is announced.
    returning = stmt.returning(channel_members, team_id.label("team_id"), literal_column("xmax = 0").label("added"))
    member: RowMapping = (await conn.execute(returning)).mappings().one()
    if member["added"]:
        data = {"team_id": member["team_id"], "user_id": user_id}
        events.defer(conn, "user_added", data, events.Broadcast(channel_id=channel_id))
    return member
