"""Listing users (``GET /api/v4/users``) by team and channel membership."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from workspace_server.auth import CurrentSession
from workspace_server.channels import readable_channel
from workspace_server.db import Conn
from workspace_server.ids import is_valid_id
from workspace_server.membership import get_team_member
from workspace_server.schema import channel_members, team_members, users
from workspace_server.users import user_json_for
from workspace_server.web import JSONResponse, PageQuery, PerPageQuery, invalid_url_param, permission_error

router = APIRouter(prefix="/api/v4")

PER_PAGE_MAX = 200


@router.get("/users")
async def get_users(
    conn: Conn,
    session: CurrentSession,
    page: PageQuery = 0,
    per_page: PerPageQuery = 60,
    in_team: str = "",
    not_in_team: str = "",
    in_channel: str = "",
    not_in_channel: str = "",
    active: bool | None = None,
    inactive: bool | None = None,
    sort: str = "",
) -> JSONResponse:
    """A page of users, by username (or newest first with ``sort=create_at``): optionally only those in (or not
    in) a team the caller belongs to, or a channel the caller may read; ``active``/``inactive`` filter on
    deactivation."""
    query = select(users)
    for team_id, inside in ((in_team, True), (not_in_team, False)):
        if not team_id:
            continue
        if not is_valid_id(team_id):
            raise invalid_url_param("in_team" if inside else "not_in_team")
        if not session.is_system_admin and await get_team_member(conn, team_id, session.user_id) is None:
            raise permission_error()
        members = select(team_members.c.user_id).where(team_members.c.team_id == team_id, team_members.c.delete_at == 0)
        query = query.where(users.c.id.in_(members) if inside else users.c.id.not_in(members))
    for channel_id, inside in ((in_channel, True), (not_in_channel, False)):
        if not channel_id:
            continue
        channel = await readable_channel(conn, channel_id, session)
        members = select(channel_members.c.user_id).where(channel_members.c.channel_id == channel["id"])
        query = query.where(users.c.id.in_(members) if inside else users.c.id.not_in(members))
    if active:
        query = query.where(users.c.delete_at == 0)
    if inactive:
        query = query.where(users.c.delete_at != 0)
    order = (users.c.create_at.desc(), users.c.id) if sort == "create_at" else (users.c.username,)
    per_page = min(per_page, PER_PAGE_MAX)
    query = query.order_by(*order).offset(page * per_page).limit(per_page)
    return JSONResponse([user_json_for(session, u) for u in (await conn.execute(query)).mappings()])
