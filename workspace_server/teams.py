"""Teams and team membership (``/api/v4/teams`` and ``/api/v4/users/{user_id}/teams``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import RowMapping, and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server import events
from workspace_server.auth import CurrentSession, Session
from workspace_server.channels import OPEN, create_default_channels, join_default_channels
from workspace_server.db import Conn
from workspace_server.events import Broadcast
from workspace_server.ids import is_valid_id, new_id, now_ms
from workspace_server.membership import (
    SchemeRolesBody,
    add_team_member,
    admin_in_roles,
    get_team_member,
    team_member_json,
    team_member_not_found,
)
from workspace_server.schema import channel_members, channels, team_members, teams
from workspace_server.users import RolesBody, get_user, resolve_user_id, user_not_found
from workspace_server.web import (
    AppError,
    JSONResponse,
    PageQuery,
    PerPageQuery,
    invalid_body_param,
    invalid_url_param,
    permission_error,
    status_ok,
)

router = APIRouter(prefix="/api/v4")


def team_json(team: RowMapping, *, sanitize: bool) -> dict[str, Any]:
    """A team in Mattermost's ``Team`` shape; ``sanitize`` hides the email and invite id from non-admins."""
    return {
        "id": team["id"],
        "create_at": team["create_at"],
        "update_at": team["update_at"],
        "delete_at": team["delete_at"],
        "display_name": team["display_name"],
        "name": team["name"],
        "description": team["description"],
        "email": "" if sanitize else team["email"],
        "type": team["type"],
        "company_name": team["company_name"],
        "allowed_domains": team["allowed_domains"],
        "invite_id": "" if sanitize else team["invite_id"],
        "allow_open_invite": team["allow_open_invite"],
        "last_team_icon_update": 0,
        "scheme_id": None,
        "group_constrained": None,
        "policy_id": None,
        "cloud_limits_archived": False,
    }


async def ensure_team(conn: AsyncConnection, name: str, display_name: str) -> str:
    """The id of the open team ``name``, created with its default channels if missing (the caller commits)."""
    now = now_ms()
    stmt = insert(teams).values(
        id=new_id(),
        create_at=now,
        update_at=now,
        name=name,
        display_name=display_name,
        type=OPEN,
        invite_id=new_id(),
        allow_open_invite=True,
    )
    await conn.execute(stmt.on_conflict_do_nothing(index_elements=[teams.c.name]))
    team_id: str = (await conn.execute(select(teams.c.id).where(teams.c.name == name))).scalar_one()
    await create_default_channels(conn, team_id)
    return team_id


async def join_team(conn: AsyncConnection, team_id: str, user_id: str, *, admin: bool) -> RowMapping:
    """Make ``user_id`` a member of the team and of its default channels (the caller commits)."""
    member = await add_team_member(conn, team_id, user_id, admin=admin)
    await join_default_channels(conn, team_id, user_id)
    return member


def _is_open(team: RowMapping) -> bool:
    return bool(team["type"] == OPEN and team["allow_open_invite"])


@dataclass(frozen=True, slots=True)
class TeamAccess:
    """A team the caller may see, and the caller's membership in it."""

    team: RowMapping
    member: RowMapping | None
    is_system_admin: bool

    @property
    def manages(self) -> bool:
        """System admins and team admins see the team's email and invite id."""
        return self.is_system_admin or bool(self.member and self.member["scheme_admin"])


async def _visible_team(conn: AsyncConnection, session: Session, *conditions: Any) -> TeamAccess:
    """The team matching ``conditions``: 404 if none, 403 unless the caller is in it, an admin, or it is open."""
    team = (await conn.execute(select(teams).where(teams.c.delete_at == 0, *conditions))).mappings().first()
    if team is None:
        raise AppError(404, "app.team.get.find.app_error", "Unable to find the existing team.")
    member = await get_team_member(conn, team["id"], session.user_id)
    if member is None and not session.is_system_admin and not _is_open(team):
        raise permission_error()
    return TeamAccess(team, member, session.is_system_admin)


class TeamMemberBody(BaseModel):
    """``POST /teams/{team_id}/members``."""

    team_id: str
    user_id: str


@router.get("/users/{user_id}/teams")
async def get_user_teams(user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The teams the user (the caller or, for admins, anyone) belongs to."""
    target = resolve_user_id(user_id, session)
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    query = (
        select(teams, team_members.c.scheme_admin)
        .join(team_members, team_members.c.team_id == teams.c.id)
        .where(team_members.c.user_id == target, team_members.c.delete_at == 0, teams.c.delete_at == 0)
        .order_by(teams.c.display_name, teams.c.id)
    )
    rows = (await conn.execute(query)).mappings()
    return JSONResponse([team_json(t, sanitize=not (session.is_system_admin or t["scheme_admin"])) for t in rows])


@router.get("/teams/name/{name}")
async def get_team_by_name(name: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The team called ``name``."""
    access = await _visible_team(conn, session, teams.c.name == name)
    return JSONResponse(team_json(access.team, sanitize=not access.manages))


@router.get("/teams/{team_id}")
async def get_team(team_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The team ``team_id``."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    access = await _visible_team(conn, session, teams.c.id == team_id)
    return JSONResponse(team_json(access.team, sanitize=not access.manages))


@router.get("/teams/{team_id}/members/{user_id}")
async def get_team_member_route(team_id: str, user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The membership of ``user_id`` in the team."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    await _visible_team(conn, session, teams.c.id == team_id)
    member = await get_team_member(conn, team_id, resolve_user_id(user_id, session))
    if member is None:
        raise team_member_not_found()
    return JSONResponse(team_member_json(member))


@router.post("/teams/{team_id}/members", status_code=201)
async def add_member(team_id: str, body: TeamMemberBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Add a user to the team and its default channels: anyone may join an open team, team members may add
    others."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    if body.team_id != team_id:
        raise invalid_body_param("team_id")
    if not is_valid_id(body.user_id):
        raise invalid_body_param("user_id")
    access = await _visible_team(conn, session, teams.c.id == team_id)
    joining_open = body.user_id == session.user_id and _is_open(access.team)
    if not (access.member is not None or joining_open or session.is_system_admin):
        raise permission_error()
    user = await get_user(conn, body.user_id)
    if user is None or user["delete_at"]:
        raise user_not_found()
    member = await join_team(conn, team_id, body.user_id, admin=False)
    await conn.commit()
    return JSONResponse(team_member_json(member), status_code=201)


_RESERVED_TEAM_NAMES = frozenset(
    {
        "admin",
        "api",
        "channel",
        "claim",
        "error",
        "files",
        "help",
        "hooks",
        "landing",
        "login",
        "oauth",
        "plug",
        "plugins",
        "post",
        "signup",
        "boards",
        "playbooks",
    }
)
TEAM_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
PER_PAGE_MAX = 200


class TeamCreateBody(BaseModel):
    """``POST /teams``."""

    name: str
    display_name: str
    type: Literal["O", "I"] = OPEN
    description: str = ""
    allow_open_invite: bool = False


@router.post("/teams", status_code=201)
async def create_team(body: TeamCreateBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Create a team with its default channels; the caller becomes its admin and joins them."""
    name = body.name
    if not 2 <= len(name) <= 64 or not TEAM_NAME.match(name) or name in _RESERVED_TEAM_NAMES:
        raise AppError(400, "model.team.is_valid.name.app_error", "Invalid name.")
    if not body.display_name.strip() or len(body.display_name) > 64:
        raise AppError(400, "model.team.is_valid.name.app_error", "Invalid display name.")
    if len(body.description) > 255:
        raise invalid_body_param("description")
    now = now_ms()
    stmt = (
        insert(teams)
        .values(
            id=new_id(),
            create_at=now,
            update_at=now,
            name=name,
            display_name=body.display_name.strip(),
            description=body.description,
            type=body.type,
            invite_id=new_id(),
            allow_open_invite=body.allow_open_invite and body.type == OPEN,
        )
        .on_conflict_do_nothing()
        .returning(teams)
    )
    team = (await conn.execute(stmt)).mappings().first()
    if team is None:
        raise AppError(400, "store.sql_team.save_team.existing.app_error", "A team with that name already exists.")
    await create_default_channels(conn, team["id"])
    await join_team(conn, team["id"], session.user_id, admin=True)
    await conn.commit()
    return JSONResponse(team_json(team, sanitize=False), status_code=201)


@router.get("/teams")
async def get_teams(
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
) -> JSONResponse:
    """The teams the caller may list: every team for system admins; otherwise open teams and their own."""
    per_page = min(per_page, PER_PAGE_MAX)
    query = select(teams).where(teams.c.delete_at == 0)
    if not session.is_system_admin:
        mine = select(team_members.c.team_id).where(
            team_members.c.user_id == session.user_id, team_members.c.delete_at == 0
        )
        query = query.where(or_(and_(teams.c.type == OPEN, teams.c.allow_open_invite), teams.c.id.in_(mine)))
    query = query.order_by(teams.c.display_name, teams.c.id).offset(page * per_page).limit(per_page)
    return JSONResponse(
        [team_json(t, sanitize=not session.is_system_admin) for t in (await conn.execute(query)).mappings()]
    )


@router.get("/teams/{team_id}/members")
async def get_team_members(
    team_id: str,
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
) -> JSONResponse:
    """A page of the team's active members."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    await _visible_team(conn, session, teams.c.id == team_id)
    per_page = min(per_page, PER_PAGE_MAX)
    query = (
        select(team_members)
        .where(team_members.c.team_id == team_id, team_members.c.delete_at == 0)
        .order_by(team_members.c.user_id)
        .offset(page * per_page)
        .limit(per_page)
    )
    return JSONResponse([team_member_json(m) for m in (await conn.execute(query)).mappings()])


@router.get("/users/{user_id}/teams/members")
async def get_user_team_members(user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """The user's memberships in the teams they belong to (the caller's own, or anyone's for admins)."""
    target = resolve_user_id(user_id, session)
    if target != session.user_id and not session.is_system_admin:
        raise permission_error()
    query = (
        select(team_members)
        .join(teams, teams.c.id == team_members.c.team_id)
        .where(team_members.c.user_id == target, team_members.c.delete_at == 0, teams.c.delete_at == 0)
        .order_by(team_members.c.team_id)
    )
    return JSONResponse([team_member_json(m) for m in (await conn.execute(query)).mappings()])


@router.delete("/teams/{team_id}/members/{user_id}")
async def remove_member(team_id: str, user_id: str, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Leave a team, or remove someone from it (team and system admins): the membership ends and so do the
    user's memberships of the team's channels."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    target = resolve_user_id(user_id, session)
    access = await _visible_team(conn, session, teams.c.id == team_id)
    if target != session.user_id and not access.manages:
        raise permission_error()
    now = now_ms()
    ended = (
        update(team_members)
        .where(team_members.c.team_id == team_id, team_members.c.user_id == target, team_members.c.delete_at == 0)
        .values(delete_at=now)
        .returning(team_members.c.user_id)
    )
    if (await conn.execute(ended)).first() is None:
        raise team_member_not_found()
    team_channels = select(channels.c.id).where(channels.c.team_id == team_id)
    await conn.execute(
        delete(channel_members).where(
            channel_members.c.user_id == target, channel_members.c.channel_id.in_(team_channels)
        )
    )
    await conn.commit()
    data = {"team_id": team_id, "user_id": target}
    await events.publish("leave_team", data, Broadcast(team_id=team_id))
    await events.publish("leave_team", data, Broadcast(user_id=target))
    return status_ok()


async def _set_team_admin(conn: AsyncConnection, session: Session, team_id: str, user_id: str, admin: bool) -> None:
    """Make a member of the team its admin or a plain member (system and team admins may: Mattermost's
    ``manage_team_roles``), then tell them with ``memberrole_updated``."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    target = resolve_user_id(user_id, session)
    if not (await _visible_team(conn, session, teams.c.id == team_id)).manages:
        raise permission_error()
    stmt = (
        update(team_members)
        .where(team_members.c.team_id == team_id, team_members.c.user_id == target, team_members.c.delete_at == 0)
        .values(scheme_admin=admin)
        .returning(team_members)
    )
    member = (await conn.execute(stmt)).mappings().first()
    if member is None:
        raise team_member_not_found()
    await conn.commit()
    data = {"member": events.dumps(team_member_json(member))}
    await events.publish("memberrole_updated", data, Broadcast(user_id=target))


@router.put("/teams/{team_id}/members/{user_id}/roles")
async def update_member_roles(
    team_id: str, user_id: str, body: RolesBody, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """Set a team member's roles: ``team_user``, or ``team_user team_admin``."""
    admin = admin_in_roles(body.roles, "team_user", "team_admin", "team_member_roles")
    await _set_team_admin(conn, session, team_id, user_id, admin)
    return status_ok()


@router.put("/teams/{team_id}/members/{user_id}/schemeRoles")
async def update_member_scheme_roles(
    team_id: str, user_id: str, body: SchemeRolesBody, conn: Conn, session: CurrentSession
) -> JSONResponse:
    """Set a team member's scheme roles: ``scheme_admin`` on or off (a member stays a user, never a guest)."""
    await _set_team_admin(conn, session, team_id, user_id, body.admin())
    return status_ok()
