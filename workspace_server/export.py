"""The whole workspace as an archive Mattermost's bulk import reads (``GET /api/v4/canopy/export``).

The format is Mattermost's bulk export (``server/channels/app/export.go`` and ``export_converters.go`` write it; the
line types and field names are those of ``app/imports/import_types.go``, checked by ``import_validators.go``). A
zip holds ``export.jsonl`` (deflated) and every attachment, stored, as ``data/<path>`` for the ``path`` a post line
names: ``mmctl import process`` takes the archive's ``.jsonl`` file and resolves attachment paths under ``data/``.

The lines, in Mattermost's order: ``version`` (1), ``team``, ``channel`` (open and private), ``user`` (every
account, bots and deactivated ones included, each with its team and channel memberships and roles), ``post`` (root
posts with their ``replies``, ``reactions``, ``attachments``, ``flagged_by``), ``direct_channel`` and
``direct_post``. Like Mattermost's export, deleted posts, deleted teams (with their channels) and notification
settings Mattermost would refuse are left out, and a team whose name Mattermost reserves is renamed
(:func:`importable_team_name`). Passwords are not exported: this server keeps argon2 hashes, which Mattermost cannot
check, so people set a new password after an import.

Everything is read in one ``REPEATABLE READ READ ONLY`` transaction, so that every reference resolves however busy
the workspace is, and in keyset-paginated batches: the server holds one batch of rows at a time whatever the size
of the workspace. Attachment paths go to a temporary file while the lines are written; their bytes are copied
after the lines, chunk by chunk. The zip's central directory, written last, costs a few hundred bytes of memory per
attachment.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import tempfile
import zipfile
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, cast

from sqlalchemy import ARRAY, ColumnElement, RowMapping, Select, String, any_, exists, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from workspace_server.channels import DIRECT, GROUP, OPEN, PRIVATE
from workspace_server.membership import channel_member_json, team_member_json
from workspace_server.preferences import FLAGGED_POST
from workspace_server.schema import (
    channel_members,
    channels,
    file_infos,
    posts,
    preferences,
    reactions,
    team_members,
    teams,
    users,
)
from workspace_server.storage import ObjectNotFound, Storage
from workspace_server.users import DEFAULT_NOTIFY_PROPS
from workspace_server.web import MATTERMOST_VERSION

logger = logging.getLogger(__name__)

JSONL_NAME = "export.jsonl"
DATA_DIR = "data"  # Mattermost's model.ExportDataDir: attachment paths are relative to it
GENERATOR = "canopy-workspace-server"
BATCH = 500
FAVORITE_CHANNEL = "favorite_channel"
TEAM_NAME_MAX = 64
# Mattermost refuses to import a team whose name starts with one of these (model.IsReservedTeamName); such a team is
# exported as ``team-<name>``, the same everywhere it is named.
_RESERVED_TEAM_PREFIXES = (
    "admin", "api", "channel", "claim", "error", "files", "help", "landing", "login", "mfa", "oauth", "plug",
    "plugins", "post", "signup", "boards", "playbooks",
)  # fmt: skip

# Notification settings as import_validators.go accepts them: import field -> (stored key, accepted values).
_USER_NOTIFY_PROPS: dict[str, tuple[str, frozenset[str] | None]] = {
    "desktop": ("desktop", frozenset({"all", "mention", "none"})),
    "desktop_sound": ("desktop_sound", frozenset({"true", "false"})),
    "email": ("email", frozenset({"true", "false"})),
    "mobile": ("push", frozenset({"all", "mention", "none"})),
    "mobile_push_status": ("push_status", frozenset({"online", "away", "offline"})),
    "channel": ("channel", frozenset({"true", "false"})),
    "comments": ("comments", frozenset({"any", "root", "never"})),
    "mention_keys": ("mention_keys", None),
}
_CHANNEL_LEVELS = frozenset({"default", "all", "mention", "none"})
_CHANNEL_NOTIFY_PROPS: dict[str, tuple[str, frozenset[str] | None]] = {
    "desktop": ("desktop", _CHANNEL_LEVELS),
    "mobile": ("push", _CHANNEL_LEVELS),
    "mark_unread": ("mark_unread", frozenset({"all", "mention"})),
}
_POST_COLUMNS = (
    posts.c.id,
    posts.c.create_at,
    posts.c.edit_at,
    posts.c.user_id,
    posts.c.channel_id,
    posts.c.root_id,
    posts.c.message,
    posts.c.type,
    posts.c.props,
    posts.c.is_pinned,
    users.c.username,
)
_HAS_MEMBERS = exists().where(channel_members.c.channel_id == channels.c.id)


class _Archive:
    """A zip written into memory and handed on as it grows (to the zip module an unseekable file, so each entry's
    sizes and checksum follow it in a data descriptor)."""

    def __init__(self) -> None:
        self._written: list[bytes] = []
        self.zip = zipfile.ZipFile(cast(IO[bytes], self), "w")

    def write(self, data: bytes) -> int:
        """Keep ``data`` until :meth:`take`."""
        self._written.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to do: :meth:`take` hands the bytes on."""

    def take(self) -> bytes:
        """The bytes written since the last call."""
        data = b"".join(self._written)
        self._written.clear()
        return data

    def entry(self, name: str, *, size: int | None = None) -> IO[bytes]:
        """A new member ``name``: stored, of ``size`` bytes (a file), or deflated and of unknown size (zip64)."""
        info = zipfile.ZipInfo(name, date_time=datetime.datetime.now().timetuple()[:6])
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED if size is None else zipfile.ZIP_STORED
        info.file_size = size or 0
        return self.zip.open(info, "w", force_zip64=size is None)


@dataclass
class _Threads:
    """What the post lines of one batch of root posts need besides the posts themselves."""

    replies: dict[str, list[RowMapping]] = field(default_factory=lambda: defaultdict(list))
    reactions: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    files: dict[str, list[RowMapping]] = field(default_factory=lambda: defaultdict(list))
    flagged_by: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


async def export_archive(engine: AsyncEngine, storage: Storage) -> AsyncIterator[bytes]:
    """The archive's bytes, in chunks as they are made (see the module docstring)."""
    archive = _Archive()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as attachments:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            async with conn.begin():
                # Take the snapshot now, before the first byte goes out: the archive holds what the workspace held
                # when it was asked for.
                await conn.execute(select(1))
                with archive.entry(JSONL_NAME) as jsonl:
                    async for lines in _lines(conn, attachments):
                        await asyncio.to_thread(jsonl.write, "".join(lines).encode())
                        if chunk := archive.take():
                            yield chunk
        attachments.seek(0)
        for record in attachments:
            path, size = json.loads(record)
            async for chunk in _attachment(archive, storage, path, size):
                if chunk:
                    yield chunk
    archive.zip.close()
    yield archive.take()


async def _attachment(archive: _Archive, storage: Storage, path: str, size: int) -> AsyncIterator[bytes]:
    """The member ``data/<path>`` with the object's bytes; nothing (and a warning) if storage has lost it."""
    chunks = aiter(storage.stream(path))
    try:
        first = await anext(chunks)
    except ObjectNotFound:
        logger.warning("export: attachment %s is missing from storage; left out", path)
        return
    except StopAsyncIteration:
        first = b""
    with archive.entry(f"{DATA_DIR}/{path}", size=size) as member:
        member.write(first)
        async for chunk in chunks:
            member.write(chunk)
            yield archive.take()
    yield archive.take()


def _among(column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
    """``column = ANY(:values)``: one array parameter however many values (an ``IN`` list costs one each)."""
    return column == any_(literal(list(values), ARRAY(String)))


def _line(kind: str, body: Mapping[str, Any]) -> str:
    return json.dumps({"type": kind, kind: body}, ensure_ascii=False, separators=(",", ":")) + "\n"


async def _batches(conn: AsyncConnection, query: Select[Any], key: Any) -> AsyncIterator[Sequence[RowMapping]]:
    """The rows of ``query`` in batches, keyset-paginated on the unique column ``key`` (labelled ``id``)."""
    after = ""
    while True:
        rows = (await conn.execute(query.where(key > after).order_by(key).limit(BATCH))).mappings().all()
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


async def _lines(conn: AsyncConnection, attachments: IO[str]) -> AsyncIterator[list[str]]:
    """The JSONL lines, a batch at a time, in Mattermost's order; attachment paths and sizes go to
    ``attachments``."""
    created = datetime.datetime.now(datetime.UTC).isoformat()
    info = {"generator": GENERATOR, "version": MATTERMOST_VERSION, "created": created}
    yield [json.dumps({"type": "version", "version": 1, "info": info}, separators=(",", ":")) + "\n"]
    async for rows in _batches(conn, select(teams).where(teams.c.delete_at == 0), teams.c.id):
        yield [_line("team", _team(row)) for row in rows]
    async for rows in _batches(conn, _team_channels(), channels.c.id):
        yield [_line("channel", _channel(row)) for row in rows]
    async for rows in _batches(conn, select(users), users.c.id):
        memberships = await _memberships(conn, [row["id"] for row in rows])
        yield [_line("user", _user(row, memberships[row["id"]])) for row in rows]
    async for rows in _root_batches(conn, direct=False):
        threads = await _threads(conn, rows)
        yield [_line("post", _post_line(row, threads, attachments)) for row in rows]
    async for rows in _batches(conn, _direct_channels(), channels.c.id):
        members = await _channel_members(conn, [row["id"] for row in rows])
        favorites = await _favorited_by(conn, [row["id"] for row in rows])
        yield [_line("direct_channel", _direct_channel(row, members, favorites)) for row in rows]
    async for rows in _root_batches(conn, direct=True):
        threads = await _threads(conn, rows)
        members = await _channel_members(conn, list({row["channel_id"] for row in rows}))
        yield [_line("direct_post", _direct_post_line(row, threads, members, attachments)) for row in rows]


# --- teams, channels, users ----------------------------------------------------------------------------------


def importable_team_name(name: str) -> str:
    """``name``, or ``team-<name>`` where Mattermost would refuse ``name`` as reserved."""
    return f"team-{name}"[:TEAM_NAME_MAX].rstrip("-") if name.startswith(_RESERVED_TEAM_PREFIXES) else name


def _team(row: RowMapping) -> dict[str, Any]:
    return {
        "name": importable_team_name(row["name"]),
        "display_name": row["display_name"],
        "type": row["type"],
        "description": row["description"],
        "allow_open_invite": row["allow_open_invite"],
    }


def _team_channels() -> Select[Any]:
    """Open and private channels of live teams."""
    return (
        select(channels, teams.c.name.label("team_name"))
        .join(teams, teams.c.id == channels.c.team_id)
        .where(channels.c.type.in_((OPEN, PRIVATE)), teams.c.delete_at == 0)
    )


def _channel(row: RowMapping) -> dict[str, Any]:
    return {
        "team": importable_team_name(row["team_name"]),
        "name": row["name"],
        "display_name": row["display_name"] or row["name"],
        "type": row["type"],
        "header": row["header"],
        "purpose": row["purpose"],
    }


def _accepted(stored: Mapping[str, Any], fields: Mapping[str, tuple[str, frozenset[str] | None]]) -> dict[str, str]:
    """The settings of ``stored`` that Mattermost's validators accept, under their import names."""
    found = {}
    for name, (key, values) in fields.items():
        value = stored.get(key)
        if isinstance(value, str) and (values is None or value in values):
            found[name] = value
    return found


async def _memberships(conn: AsyncConnection, user_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Each user's ``teams``: live team memberships with their roles and their channel memberships."""
    team_rows = await conn.execute(
        select(team_members, teams.c.name.label("team_name"))
        .join(teams, teams.c.id == team_members.c.team_id)
        .where(_among(team_members.c.user_id, user_ids), team_members.c.delete_at == 0, teams.c.delete_at == 0)
        .order_by(teams.c.name)
    )
    channel_rows = await conn.execute(
        select(channel_members, channels.c.name.label("channel_name"), channels.c.team_id)
        .join(channels, channels.c.id == channel_members.c.channel_id)
        .where(_among(channel_members.c.user_id, user_ids), channels.c.type.in_((OPEN, PRIVATE)))
        .order_by(channels.c.name)
    )
    favorite_rows = await conn.execute(
        select(preferences.c.user_id, preferences.c.name).where(
            _among(preferences.c.user_id, user_ids),
            preferences.c.category == FAVORITE_CHANNEL,
            preferences.c.value == "true",
        )
    )
    favorites = {(row.user_id, row.name) for row in favorite_rows}
    in_team: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in channel_rows.mappings():
        member = channel_member_json(row)
        in_team[row["user_id"], row["team_id"]].append(
            {
                "name": row["channel_name"],
                "roles": member["roles"],
                "notify_props": _accepted(member["notify_props"], _CHANNEL_NOTIFY_PROPS),
                "favorite": (row["user_id"], row["channel_id"]) in favorites,
                "mention_count": member["mention_count"],
                "mention_count_root": member["mention_count_root"],
                "msg_count": member["msg_count"],
                "msg_count_root": member["msg_count_root"],
                "last_viewed_at": member["last_viewed_at"],
            }
        )
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in team_rows.mappings():
        found[row["user_id"]].append(
            {
                "name": importable_team_name(row["team_name"]),
                "roles": team_member_json(row)["roles"],
                "channels": in_team[row["user_id"], row["team_id"]],
            }
        )
    return found


def _user(row: RowMapping, memberships: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "username": row["username"],
        "email": row["email"],
        "nickname": row["nickname"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "position": row["position"],
        "roles": row["roles"],
        "locale": row["locale"],
        "delete_at": row["delete_at"],
        "notify_props": _accepted({**DEFAULT_NOTIFY_PROPS, **row["notify_props"]}, _USER_NOTIFY_PROPS),
        "teams": memberships,
    }


# --- posts -------------------------------------------------------------------------------------------------------


def _root_posts(*, direct: bool) -> Select[Any]:
    """Live root posts whose author exists: in open and private channels of live teams, or in direct and group
    channels that have members."""
    query = (
        select(*_POST_COLUMNS)
        .join(users, users.c.id == posts.c.user_id)
        .join(channels, channels.c.id == posts.c.channel_id)
        .where(posts.c.root_id == "", posts.c.delete_at == 0)
    )
    if direct:
        return query.where(channels.c.type.in_((DIRECT, GROUP)), channels.c.delete_at == 0, _HAS_MEMBERS)
    return (
        query.add_columns(channels.c.name.label("channel_name"), teams.c.name.label("team_name"))
        .join(teams, teams.c.id == channels.c.team_id)
        .where(channels.c.type.in_((OPEN, PRIVATE)), teams.c.delete_at == 0)
    )


async def _root_batches(conn: AsyncConnection, *, direct: bool) -> AsyncIterator[Sequence[RowMapping]]:
    """:func:`_root_posts` a batch at a time: the next ids come from the posts' primary key alone, then their rows
    are joined (as Mattermost's ``GetParentsForExportAfter`` does), so that every batch costs the same however many
    posts come before it."""
    after = ""
    while True:
        next_ids = (
            select(posts.c.id)
            .where(posts.c.id > after, posts.c.root_id == "", posts.c.delete_at == 0)
            .order_by(posts.c.id)
            .limit(BATCH)
        )
        ids = (await conn.execute(next_ids)).scalars().all()
        if not ids:
            return
        query = _root_posts(direct=direct).where(_among(posts.c.id, ids)).order_by(posts.c.id)
        if rows := (await conn.execute(query)).mappings().all():
            yield rows
        after = ids[-1]


async def _threads(conn: AsyncConnection, roots: Sequence[RowMapping]) -> _Threads:
    """The live replies of ``roots``, and the reactions, attachments and flags of all of them."""
    threads = _Threads()
    root_ids = [row["id"] for row in roots]
    replies = await conn.execute(
        select(*_POST_COLUMNS)
        .join(users, users.c.id == posts.c.user_id)
        # root_id <> '' lets PostgreSQL use the partial index on root_id.
        .where(posts.c.root_id != "", _among(posts.c.root_id, root_ids), posts.c.delete_at == 0)
        .order_by(posts.c.create_at, posts.c.id)
    )
    for row in replies.mappings():
        threads.replies[row["root_id"]].append(row)
    post_ids = root_ids + [row["id"] for rows in threads.replies.values() for row in rows]
    reaction_rows = await conn.execute(
        select(reactions.c.post_id, users.c.username, reactions.c.emoji_name, reactions.c.create_at)
        .join(users, users.c.id == reactions.c.user_id)
        .where(_among(reactions.c.post_id, post_ids))
        .order_by(reactions.c.create_at, users.c.username, reactions.c.emoji_name)
    )
    for reaction in reaction_rows:
        threads.reactions[reaction.post_id].append(
            {"user": reaction.username, "emoji_name": reaction.emoji_name, "create_at": reaction.create_at}
        )
    file_rows = await conn.execute(
        select(file_infos.c.post_id, file_infos.c.path, file_infos.c.size)
        .where(_among(file_infos.c.post_id, post_ids), file_infos.c.delete_at == 0)
        .order_by(file_infos.c.create_at, file_infos.c.id)
    )
    for row in file_rows.mappings():
        threads.files[row["post_id"]].append(row)
    flag_rows = await conn.execute(
        select(preferences.c.name, users.c.username)
        .join(users, users.c.id == preferences.c.user_id)
        .where(
            preferences.c.category == FLAGGED_POST,
            _among(preferences.c.name, post_ids),
            preferences.c.value == "true",
        )
        .order_by(users.c.username)
    )
    for flag in flag_rows:
        threads.flagged_by[flag.name].append(flag.username)
    return threads


def _post_fields(row: RowMapping, threads: _Threads, attachments: IO[str]) -> dict[str, Any]:
    """What a root post and a reply have in common; its attachments' paths and sizes go to ``attachments``."""
    body: dict[str, Any] = {
        "user": row["username"],
        "type": row["type"],
        "message": row["message"],
        "props": row["props"],
        "create_at": row["create_at"],
        "edit_at": row["edit_at"],
    }
    if row["is_pinned"]:
        body["is_pinned"] = True
    if flagged_by := threads.flagged_by.get(row["id"]):
        body["flagged_by"] = flagged_by
    if post_reactions := threads.reactions.get(row["id"]):
        body["reactions"] = post_reactions
    if files := threads.files.get(row["id"]):
        body["attachments"] = [{"path": file["path"]} for file in files]
        attachments.writelines(json.dumps([file["path"], file["size"]]) + "\n" for file in files)
    return body


def _root_fields(row: RowMapping, threads: _Threads, attachments: IO[str]) -> dict[str, Any]:
    return {
        **_post_fields(row, threads, attachments),
        "replies": [_post_fields(reply, threads, attachments) for reply in threads.replies.get(row["id"], ())],
    }


def _post_line(row: RowMapping, threads: _Threads, attachments: IO[str]) -> dict[str, Any]:
    team = importable_team_name(row["team_name"])
    return {"team": team, "channel": row["channel_name"], **_root_fields(row, threads, attachments)}


async def _channel_members(conn: AsyncConnection, channel_ids: list[str]) -> dict[str, list[str]]:
    """The usernames of each direct or group channel's members, sorted; a direct channel with oneself names its
    member twice, as Mattermost's export does."""
    rows = await conn.execute(
        select(channel_members.c.channel_id, users.c.username)
        .join(users, users.c.id == channel_members.c.user_id)
        .where(_among(channel_members.c.channel_id, channel_ids))
        .order_by(users.c.username)
    )
    found: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        found[row.channel_id].append(row.username)
    return {channel_id: names * 2 if len(names) == 1 else names for channel_id, names in found.items()}


async def _favorited_by(conn: AsyncConnection, channel_ids: list[str]) -> dict[str, list[str]]:
    """The members who marked each channel a favorite."""
    rows = await conn.execute(
        select(preferences.c.name, users.c.username)
        .join(users, users.c.id == preferences.c.user_id)
        .join(
            channel_members,
            (channel_members.c.channel_id == preferences.c.name) & (channel_members.c.user_id == users.c.id),
        )
        .where(
            preferences.c.category == FAVORITE_CHANNEL,
            _among(preferences.c.name, channel_ids),
            preferences.c.value == "true",
        )
        .order_by(users.c.username)
    )
    found: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        found[row.name].append(row.username)
    return found


def _direct_channels() -> Select[Any]:
    """Direct and group channels that have members."""
    return select(channels.c.id, channels.c.header).where(
        channels.c.type.in_((DIRECT, GROUP)), channels.c.delete_at == 0, _HAS_MEMBERS
    )


def _direct_channel(
    row: RowMapping, members: Mapping[str, list[str]], favorites: Mapping[str, list[str]]
) -> dict[str, Any]:
    body: dict[str, Any] = {"members": members[row["id"]], "header": row["header"]}
    if favorited_by := favorites.get(row["id"]):
        body["favorited_by"] = favorited_by
    return body


def _direct_post_line(
    row: RowMapping, threads: _Threads, members: Mapping[str, list[str]], attachments: IO[str]
) -> dict[str, Any]:
    return {"channel_members": members[row["channel_id"]], **_root_fields(row, threads, attachments)}
