"""What Mattermost puts in ``post.metadata`` (files and reactions), and the JSON shapes of both."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.schema import file_infos, reactions


def file_info_json(info: RowMapping) -> dict[str, Any]:
    """A file in Mattermost's ``FileInfo`` shape (``width``, ``height`` and ``has_preview_image`` are left out
    when empty, as Mattermost's ``omitempty`` does)."""
    data: dict[str, Any] = {
        "id": info["id"],
        "user_id": info["user_id"],
        "post_id": info["post_id"],
        "channel_id": info["channel_id"],
        "create_at": info["create_at"],
        "update_at": info["update_at"],
        "delete_at": info["delete_at"],
        "name": info["name"],
        "extension": info["extension"],
        "size": info["size"],
        "mime_type": info["mime_type"],
        "mini_preview": None,
        "remote_id": "",
        "archived": False,
    }
    if info["width"]:
        data["width"] = info["width"]
    if info["height"]:
        data["height"] = info["height"]
    if info["has_preview_image"]:
        data["has_preview_image"] = True
    return data


def reaction_json(reaction: RowMapping | dict[str, Any], delete_at: int = 0) -> dict[str, Any]:
    """A reaction in Mattermost's ``Reaction`` shape."""
    return {
        "user_id": reaction["user_id"],
        "post_id": reaction["post_id"],
        "emoji_name": reaction["emoji_name"],
        "create_at": reaction["create_at"],
        "update_at": reaction["update_at"],
        "delete_at": delete_at,
        "remote_id": "",
        "channel_id": reaction["channel_id"],
    }


async def add_metadata(conn: AsyncConnection, posts: Iterable[dict[str, Any]]) -> None:
    """Fill ``metadata.files`` and ``metadata.reactions`` of the given post JSON objects in place, with one query
    each for all of them, and only for the posts that have any."""
    by_id = {p["id"]: p for p in posts}
    with_files = [p["id"] for p in by_id.values() if p.get("file_ids") and not p.get("delete_at")]
    with_reactions = [p["id"] for p in by_id.values() if p.get("has_reactions")]
    if with_files:
        query = (
            select(file_infos)
            .where(file_infos.c.post_id.in_(with_files), file_infos.c.delete_at == 0)
            .order_by(file_infos.c.create_at, file_infos.c.id)
        )
        for info in (await conn.execute(query)).mappings():
            by_id[info["post_id"]].setdefault("metadata", {}).setdefault("files", []).append(file_info_json(info))
    if with_reactions:
        query = (
            select(reactions)
            .where(reactions.c.post_id.in_(with_reactions))
            .order_by(reactions.c.create_at, reactions.c.user_id, reactions.c.emoji_name)
        )
        for reaction in (await conn.execute(query)).mappings():
            by_id[reaction["post_id"]].setdefault("metadata", {}).setdefault("reactions", []).append(
                reaction_json(reaction)
            )
