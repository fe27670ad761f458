"""Channels and channel membership (``/api/v4/channels`` and the channel routes under teams and users)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel
from sqlalchemy import RowMapping, and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server import events
from workspace_server.auth import CurrentSession, Session
from workspace_server.db import Conn
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.membership import (
    SchemeRolesBody,
    add_channel_member,
    admin_in_roles,
    channel_member_json,
    get_channel_member,
    get_team_member,
    manages_channel,
    team_member_not_found,
)
from workspace_server.schema import channel_members, channels, team_members, teams, users
from workspace_server.users import RolesBody, get_user, resolve_user_id, user_not_found
from workspace_server.web import (
    AppError,
    JSONResponse,
    MillisQuery,
    PageQuery,
    PerPageQuery,
    invalid_body_param,
    invalid_url_param,
    permission_error,
    status_ok,
)

router = APIRouter(prefix="/api/v4")

OPEN: Final = "O"
PRIVATE: Final = "P"
DIRECT: Final = "D"
GROUP: Final = "G"
# Mattermost's group message sizes, the caller included.
GROUP_MIN_USERS = 3
GROUP_MAX_USERS = 8
PER_PAGE_MAX = 200
# The channels Mattermost creates with every team and puts every team member in.
DEFAULT_CHANNELS = (("town-square", "Town Square"), ("off-topic", "Off-Topic"))
_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def channel_json(channel: RowMapping) -> dict[str, Any]:
    """A channel in Mattermost's ``Channel`` shape."""
    return {
        "id": channel["id"],
        "create_at": channel["create_at"],
        "update_at": channel["update_at"],
        "delete_at": channel["delete_at"],
        "team_id": channel["team_id"] or "",
        "type": channel["type"],
        "display_name": channel["display_name"],
        "name": channel["name"],
        "header": channel["header"],
        "purpose": channel["purpose"],
        "last_post_at": channel["last_post_at"],
        "total_msg_count": channel["total_msg_count"],
        "extra_update_at": 0,
        "creator_id": channel["creator_id"],
        "scheme_id": None,
        "props": None,
        "group_constrained": None,
        "shared": None,
        "total_msg_count_root": channel["total_msg_count_root"],
        "policy_id": None,
        "last_root_post_at": channel["last_root_post_at"],
    }


def channel_not_found() -> AppError:
    """404 for a channel id that matches nothing."""
    return AppError(404, "app.channel.get.existing.app_error", "Unable to find the existing channel.")


def channel_name_not_found() -> AppError:
    """404 for a channel name that matches nothing the caller may see."""
    return AppError(404, "app.channel.get_by_name.missing.app_error", "Channel does not exist.")


async def create_default_channels(conn: AsyncConnection, team_id: str) -> None:
    """Create the team's default open channels where missing (the caller commits)."""
    now = now_ms()
    rows = [
        {"id": new_id(), "create_at": now, "update_at": now, "team_id": team_id, "type": OPEN}
        | {"name": name, "display_name": display_name}
        for name, display_name in DEFAULT_CHANNELS
    ]
    await conn.execute(insert(channels).values(rows).on_conflict_do_nothing())


async def join_default_channels(conn: AsyncConnection, team_id: str, user_id: str) -> None:
    """Add ``user_id`` to the team's default channels, as Mattermost does on joining a team (the caller commits)."""
    query = select(channels.c.id).where(
        channels.c.team_id == team_id,
        channels.c.name.in_([name for name, _ in DEFAULT_CHANNELS]),
        channels.c.delete_at == 0,
    )
    for channel_id in (await conn.execute(query)).scalars():
        await add_channel_member(conn, channel_id, user_id, admin=False)


@dataclass(frozen=True, slots=True)
class ChannelAccess:
    """A channel and the caller's standing in it."""

    channel: RowMapping
    is_member: bool
    in_team: bool
    is_system_admin: bool

    @property
    def can_read(self) -> bool:
        """Mattermost's rule: members and system admins; for open channels, every member of the team too."""
        return self.is_member or self.is_system_admin or (self.channel["type"] == OPEN and self.in_team)

    @property
    def can_post(self) -> bool:
        """Members and system admins."""
        return self.is_member or self.is_system_admin


async def channel_access(conn: AsyncConnection, session: Session, *conditions: Any) -> ChannelAccess | None:
    """The channel matching ``conditions`` (on ``channels`` or its team) and the caller's standing in it."""
    query = (
        select(
            channels,
            channel_members.c.user_id.is_not(None).label("is_member"),
            team_members.c.user_id.is_not(None).label("in_team"),
        )
        .outerjoin(teams, teams.c.id == channels.c.team_id)
        .outerjoin(
            channel_members,
            and_(channel_members.c.channel_id == channels.c.id, channel_members.c.user_id == session.user_id),
        )
        .outerjoin(
            team_members,
            and_(
                team_members.c.team_id == channels.c.team_id,
                team_members.c.user_id == session.user_id,
                team_members.c.delete_at == 0,
            ),
        )
        .where(*conditions)
    )
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    return ChannelAccess(row, row["is_member"], row["in_team"], session.is_system_admin)


async def readable_channel(conn: AsyncConnection, channel_id: str, session: Session) -> RowMapping:
    """The channel ``channel_id`` if the caller may read it: 404 if there is none, 403 if they may not."""
    if not is_valid_id(channel_id):
        raise invalid_url_param("channel_id")
    access = await channel_access(conn, session, channels.c.id == channel_id)
    if access is None:
        raise channel_not_found()
    if not access.can_read:
        raise permission_error()
    return access.channel


async def _channel_by_name(conn: AsyncConnection, session: Session, *conditions: Any) -> JSONResponse:
    access = await channel_access(conn, session, channels.c.delete_at == 0, *conditions)
    if access is None:
        raise channel_name_not_found()
    if not access.can_read:
        # A private channel the caller is not in does not exist for them.
        if access.channel["type"] == PRIVATE:
            raise channel_name_not_found()
        raise permission_error()
    return JSONResponse(channel_json(access.channel))


class ChannelCreateBody(BaseModel):
    """``POST /channels``."""

    team_id: str
    name: str
    display_name: str
    type: Literal["O", "P"] = OPEN
    purpose: str = ""
    header: str = ""


class ChannelMemberBody(BaseModel):
    """``POST /channels/{channel_id}/members``."""

    user_id: str


@router.post("/channels", status_code=201)
async def create_channel(body: ChannelCreateBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Create an open or private channel in a team the caller belongs to; the caller becomes its admin."""
    if not is_valid_id(body.team_id):
        raise invalid_body_param("team_id")
    if not _CHANNEL_NAME.match(body.name) or "__" in body.name:
        raise AppError(400, "model.channel.is_valid.name.app_error", "Invalid channel name.")
    if not body.display_name.strip() or len(body.display_name) > 64:
        raise AppError(400, "model.channel.is_valid.display_name.app_error", "Invalid display name.")
    if len(body.purpose) > 250 or len(body.header) > 1024:
        raise invalid_body_param("purpose" if len(body.purpose) > 250 else "header")
    if await get_team_member(conn, body.team_id, session.user_id) is None and not session.is_system_admin:
        raise permission_error()
    now = now_ms()
    stmt = (
        insert(channels)
        .values(
            id=new_id(),
            create_at=now,
            update_at=now,
            team_id=body.team_id,
            type=body.type,
            name=body.name,
            display_name=body.display_name.strip(),
            purpose=body.purpose,
            header=body.header,
            creator_id=session.user_id,
        )
        .on_conflict_do_nothing()
        .returning(channels)
    )
    channel = (await conn.execute(stmt)).mappings().first()
    if channel is None:
        raise AppError(
            400,
            "store.sql_channel.save_channel.exists.app_error",
            "A channel with that name already exists on the same team.",
        )
    await add_channel_member(conn, channel["id"], session.user_id, admin=True)
    await conn.commit()
    return JSONResponse(channel_json(channel), status_code=201)


@router.get("/channels/{channel_id}")
async def get_channel(channel_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The channel ``channel_id``."""
    return JSONResponse(channel_json(await readable_channel(conn, channel_id, session)))


@router.get("/teams/{team_id}/channels/name/{channel_name}")
async def get_channel_by_name(team_id: str, channel_name: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The channel called ``channel_name`` in team ``team_id``."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    return await _channel_by_name(conn, session, channels.c.team_id == team_id, channels.c.name == channel_name)


@router.get("/teams/name/{team_name}/channels/name/{channel_name}")
async def get_channel_by_team_and_name(
    team_name: str, channel_name: str, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """The channel called ``channel_name`` in the team called ``team_name``."""
    return await _channel_by_name(conn, session, teams.c.name == team_name, channels.c.name == channel_name)


@router.get("/users/{user_id}/teams/{team_id}/channels")
async def get_user_team_channels(user_id: str, team_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The channels of team ``team_id`` that the user is in (the caller or, for admins, anyone), with their direct
    and group message channels, which belong to every team."""
    target = resolve_user_id(user_id, session)
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    if await get_team_member(conn, team_id, session.user_id) is None and not session.is_system_admin:
        raise permission_error()
    query = (
        select(channels)
        .join(channel_members, channel_members.c.channel_id == channels.c.id)
        .where(
            channel_members.c.user_id == target,
            or_(channels.c.team_id == team_id, channels.c.team_id.is_(None)),
            channels.c.delete_at == 0,
        )
        .order_by(channels.c.display_name, channels.c.id)
    )
    return JSONResponse([channel_json(c) for c in (await conn.execute(query)).mappings()])


@router.post("/channels/{channel_id}/members", status_code=201)
async def add_member(channel_id: str, body: ChannelMemberBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Add a team member to the channel: anyone may join an open channel of their team, members may add others,
    and only members (or admins) may add to a private channel."""
    if not is_valid_id(body.user_id):
        raise invalid_body_param("user_id")
    if not is_valid_id(channel_id):
        raise invalid_url_param("channel_id")
    access = await channel_access(conn, session, channels.c.id == channel_id, channels.c.delete_at == 0)
    if access is None:
        raise channel_not_found()
    channel = access.channel
    if channel["type"] in (DIRECT, GROUP):
        raise AppError(400, "api.channel.add_user_to_channel.type.app_error", "Can not add user to this channel type.")
    joining_open = channel["type"] == OPEN and body.user_id == session.user_id and access.in_team
    if not (access.can_post or joining_open):
        raise permission_error()
    user = await get_user(conn, body.user_id)
    if user is None or user["delete_at"]:
        raise user_not_found()
    if await get_team_member(conn, channel["team_id"], body.user_id) is None:
        raise team_member_not_found()
    member = await add_channel_member(conn, channel_id, body.user_id, admin=False)
    await conn.commit()
    return JSONResponse(channel_member_json(member), status_code=201)


@router.get("/channels/{channel_id}/members/{user_id}")
async def get_member(channel_id: str, user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The membership of ``user_id`` in the channel."""
    channel = await readable_channel(conn, channel_id, session)
    member = await get_channel_member(conn, channel["id"], resolve_user_id(user_id, session))
    if member is None:
        raise member_not_found()
    return JSONResponse(channel_member_json(member))


def member_not_found() -> AppError:
    """404 for a user who is not in the channel."""
    return AppError(
        404, "app.channel.get_member.missing.app_error", "No channel member found for that user ID and channel ID."
    )


async def _member_and_channel(
    conn: AsyncConnection, session: Session, channel_id: str, user_id: str
) -> tuple[str, ChannelAccess]:
    """The user id a ``/channels/{channel_id}/members/{user_id}`` path names (``me`` resolved), and the caller's
    access to that channel: 400 for a malformed channel id, 404 for a channel the caller cannot see."""
    if not is_valid_id(channel_id):
        raise invalid_url_param("channel_id")
    target = resolve_user_id(user_id, session)
    access = await channel_access(conn, session, channels.c.id == channel_id)
    if access is None:
        raise channel_not_found()
    return target, access


@router.delete("/channels/{channel_id}/members/{user_id}")
async def remove_member(channel_id: str, user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Leave a channel, or remove someone from it: as Mattermost's default roles allow, any member of an open or
    private channel may remove others (and system admins anyone). Nobody leaves a team's default channel,
    nor a direct or group message channel."""
    target, access = await _member_and_channel(conn, session, channel_id, user_id)
    channel = access.channel
    if target != session.user_id and not access.can_post:
        raise permission_error()
    if channel["type"] in (DIRECT, GROUP):
        raise AppError(400, "api.channel.remove_channel_member.type.app_error", "Unable to remove user from a channel.")
    if channel["name"] == DEFAULT_CHANNELS[0][0]:
        raise AppError(
            400,
            "api.channel.remove.default.app_error",
            f"Unable to remove user from the default channel {channel['display_name']}.",
        )
    removed = (
        delete(channel_members)
        .where(channel_members.c.channel_id == channel_id, channel_members.c.user_id == target)
        .returning(channel_members.c.user_id)
    )
    if (await conn.execute(removed)).first() is None:
        raise member_not_found()
    await conn.commit()
    await events.publish_user_removed(channel_id, target, session.user_id)
    return status_ok()


async def _set_channel_admin(
    conn: AsyncConnection, session: Session, channel_id: str, user_id: str, admin: bool
) -> None:
    """Make a member of an open or private channel its admin or a plain member (system admins, the team's admins
    and the channel's may: Mattermost's ``manage_channel_roles``), then tell them with ``channel_member_updated``."""
    target, access = await _member_and_channel(conn, session, channel_id, user_id)
    # Those who can see a direct or group channel learn it has no roles; others only that they may not.
    if access.channel["type"] in (DIRECT, GROUP) and access.can_read:
        raise AppError(
            400,
            "api.channel.update_channel_member_roles.channel_type.app_error",
            "Members of direct and group message channels have no roles to change.",
        )
    if not await manages_channel(conn, session, access.channel):
        raise permission_error()
    stmt = (
        update(channel_members)
        .where(channel_members.c.channel_id == channel_id, channel_members.c.user_id == target)
        .values(scheme_admin=admin, last_update_at=now_ms())
        .returning(channel_members)
    )
    member = (await conn.execute(stmt)).mappings().first()
    if member is None:
        raise member_not_found()
    await conn.commit()
    data = {"channelMember": events.dumps(channel_member_json(member))}
    await events.publish("channel_member_updated", data, events.Broadcast(user_id=target))


@router.put("/channels/{channel_id}/members/{user_id}/roles")
async def update_member_roles(
    channel_id: str, user_id: str, body: RolesBody, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """Set a channel member's roles: ``channel_user``, or ``channel_user channel_admin``."""
    admin = admin_in_roles(body.roles, "channel_user", "channel_admin", "roles")
    await _set_channel_admin(conn, session, channel_id, user_id, admin)
    return status_ok()


@router.put("/channels/{channel_id}/members/{user_id}/schemeRoles")
async def update_member_scheme_roles(
    channel_id: str, user_id: str, body: SchemeRolesBody, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """Set a channel member's scheme roles: ``scheme_admin`` on or off (a member stays a user, never a guest)."""
    await _set_channel_admin(conn, session, channel_id, user_id, body.admin())
    return status_ok()


@router.get("/channels/{channel_id}/members")
async def get_members(
    channel_id: str,
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
) -> JSONResponse:
    """A page of the channel's members."""
    channel = await readable_channel(conn, channel_id, session)
    per_page = min(per_page, PER_PAGE_MAX)
    query = (
        select(channel_members)
        .where(channel_members.c.channel_id == channel["id"])
        .order_by(channel_members.c.user_id)
        .offset(page * per_page)
        .limit(per_page)
    )
    return JSONResponse([channel_member_json(m) for m in (await conn.execute(query)).mappings()])


def _own_listing(user_id: str, session: Session) -> str:
    target = resolve_user_id(user_id, session)
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    return target


@router.get("/users/{user_id}/teams/{team_id}/channels/members")
async def get_user_team_channel_members(
    user_id: str, team_id: str, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """The user's memberships in the channels of a team and in their direct and group message channels."""
    target = _own_listing(user_id, session)
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    query = (
        select(channel_members)
        .join(channels, channels.c.id == channel_members.c.channel_id)
        .where(
            channel_members.c.user_id == target,
            or_(channels.c.team_id == team_id, channels.c.team_id.is_(None)),
            channels.c.delete_at == 0,
        )
        .order_by(channel_members.c.channel_id)
    )
    return JSONResponse([channel_member_json(m) for m in (await conn.execute(query)).mappings()])


@router.get("/users/{user_id}/channels")
async def get_user_channels(
    user_id: str, conn: Conn, session: CurrentSession, include_deleted: bool = False, last_delete_at: MillisQuery = 0
) -> JSONResponse:
    """Every channel the user is in, across teams (Mattermost 6.1's ``GET /users/{user_id}/channels``)."""
    target = _own_listing(user_id, session)
    query = (
        select(channels)
        .join(channel_members, channel_members.c.channel_id == channels.c.id)
        .where(channel_members.c.user_id == target)
        .order_by(channels.c.display_name, channels.c.id)
    )
    if not include_deleted:
        query = query.where(channels.c.delete_at == 0)
    elif last_delete_at:
        query = query.where(or_(channels.c.delete_at == 0, channels.c.delete_at > last_delete_at))
    return JSONResponse([channel_json(c) for c in (await conn.execute(query)).mappings()])


def direct_channel_name(user_a: str, user_b: str) -> str:
    """Mattermost's name for the direct channel of two users: their ids, sorted, joined by ``__``."""
    return "__".join(sorted((user_a, user_b)))


def group_channel_name(user_ids: list[str]) -> str:
    """Mattermost's name for a group channel: the SHA-1 hex digest of its sorted member ids, concatenated."""
    return hashlib.sha1("".join(sorted(user_ids)).encode(), usedforsecurity=False).hexdigest()


async def _active_users(conn: AsyncConnection, user_ids: list[str]) -> dict[str, RowMapping]:
    query = select(users).where(users.c.id.in_(user_ids))
    found = {u["id"]: u for u in (await conn.execute(query)).mappings()}
    if set(found) != set(user_ids):
        raise user_not_found()
    if any(u["delete_at"] for u in found.values()):
        raise AppError(
            400, "api.channel.create_channel.direct_channel.inactive_user.app_error", "A user is deactivated."
        )
    return found


async def get_or_create_teamless(
    conn: AsyncConnection, session: Session, kind: str, name: str, display_name: str, members: list[str]
) -> tuple[RowMapping, bool]:
    """The direct or group channel called ``name``, created with ``members`` if missing; whether it was."""
    now = now_ms()
    stmt = (
        insert(channels)
        .values(
            id=new_id(),
            create_at=now,
            update_at=now,
            team_id=None,
            type=kind,
            name=name,
            display_name=display_name,
            creator_id=session.user_id,
        )
        .on_conflict_do_nothing(index_elements=[channels.c.name], index_where=channels.c.team_id.is_(None))
        .returning(channels)
    )
    channel = (await conn.execute(stmt)).mappings().first()
    if channel is not None:
        for member in dict.fromkeys(members):
            await add_channel_member(conn, channel["id"], member, admin=False)
        return channel, True
    query = select(channels).where(channels.c.team_id.is_(None), channels.c.name == name)
    return (await conn.execute(query)).mappings().one(), False


@router.post("/channels/direct", status_code=201)
async def create_direct_channel(
    user_ids: Annotated[list[str], Body()], conn: Conn, session: CurrentSession
) -> JSONResponse:
    """The direct message channel of two users (one of them the caller, unless a system admin asks), created if
    missing; a user may also have one with themselves."""
    if len(user_ids) != 2 or not all(map(is_valid_id, user_ids)):
        raise invalid_body_param("user_ids")
    if session.user_id not in user_ids and not session.is_system_admin:
        raise permission_error()
    user_a, user_b = user_ids
    existing_name = direct_channel_name(user_a, user_b)
    existing = (
        (await conn.execute(select(channels).where(channels.c.team_id.is_(None), channels.c.name == existing_name)))
        .mappings()
        .first()
    )
    if existing is not None:
        return JSONResponse(channel_json(existing), status_code=201)
    await _active_users(conn, list({user_a, user_b}))
    channel, created = await get_or_create_teamless(conn, session, DIRECT, existing_name, "", [user_a, user_b])
    await conn.commit()
    if created:
        teammate = user_b if user_a == session.user_id else user_a
        data = {"creator_id": session.user_id, "teammate_id": teammate}
        await events.publish("direct_added", data, events.Broadcast(channel_id=channel["id"]))
    return JSONResponse(channel_json(channel), status_code=201)


@router.post("/channels/group", status_code=201)
async def create_group_channel(
    user_ids: Annotated[list[str], Body()], conn: Conn, session: CurrentSession
) -> JSONResponse:
    """The group message channel of 3 to 8 users (the caller always among them), created if missing."""
    if not all(map(is_valid_id, user_ids)):
        raise invalid_body_param("user_ids")
    members = sorted({*user_ids, session.user_id})
    if not GROUP_MIN_USERS <= len(members) <= GROUP_MAX_USERS:
        raise AppError(
            400,
            "api.channel.create_group.bad_size.app_error",
            f"Group message channels must contain at least {GROUP_MIN_USERS} and no more than {GROUP_MAX_USERS} users.",
        )
    found = await _active_users(conn, members)
    display_name = ", ".join(sorted(u["username"] for u in found.values()))
    if len(display_name) > 64:
        display_name = display_name[:61] + "..."
    channel, created = await get_or_create_teamless(
        conn, session, GROUP, group_channel_name(members), display_name, members
    )
    await conn.commit()
    if created:
        data = {"teammate_ids": json.dumps(members)}
        await events.publish("group_added", data, events.Broadcast(channel_id=channel["id"]))
    return JSONResponse(channel_json(channel), status_code=201)
