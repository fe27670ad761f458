"""A checker of Mattermost bulk-import archives, after Mattermost's own rules.

Sources (mattermost/mattermost, ``server/``): the line types and fields of ``channels/app/imports/import_types.go``;
the required fields and limits of ``channels/app/imports/import_validators.go``; how an archive is read by
``channels/jobs/import_process/worker.go`` (the first ``.jsonl`` member, attachments under ``data/``) and
``channels/app/import.go`` (line 1 must be ``version`` 1; each line names teams, channels and users by name, so they
must come earlier); the name rules of ``public/model`` (``IsValidTeamName``, ``IsReservedTeamName``,
``IsValidChannelIdentifier``, ``IsValidUsername``, ``IsValidUserRoles``).

:func:`check_archive` raises :class:`AssertionError` naming the line of the first violation and answers what the
archive holds, for the test to compare with what it wrote.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DATA_DIR = "data"
LINE_TYPES = frozenset(
    {"version", "role", "scheme", "team", "channel", "user", "bot", "post", "direct_channel", "direct_post", "emoji"}
)
# Mattermost's limits (public/model), in runes unless said otherwise.
POST_MESSAGE_MAX = 16383
TEAM_NAME_MAX, TEAM_DISPLAY_NAME_MAX, TEAM_DESCRIPTION_MAX = 64, 64, 255
CHANNEL_NAME_MAX, CHANNEL_DISPLAY_NAME_MAX, CHANNEL_HEADER_MAX, CHANNEL_PURPOSE_MAX = 64, 64, 1024, 250
USERNAME_MAX, EMAIL_MAX, NICKNAME_MAX, NAME_MAX, POSITION_MAX = 64, 128, 64, 64, 128
EMOJI_NAME_MAX = 64
GROUP_MIN, GROUP_MAX = 3, 8
RESERVED_TEAM_PREFIXES = (
    "admin", "api", "channel", "claim", "error", "files", "help", "landing", "login", "mfa", "oauth", "plug",
    "plugins", "post", "signup", "boards", "playbooks",
)  # fmt: skip
RESTRICTED_USERNAMES = frozenset({"all", "channel", "matterbot", "system"})
VALID_TEAM_NAME = re.compile(r"^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$")
VALID_CHANNEL_NAME = re.compile(r"^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]*$")
VALID_USERNAME = re.compile(r"^[a-z][a-z0-9.\-_]*$")
VALID_ROLE = re.compile(r"^[a-z0-9_]+$")
USER_NOTIFY_VALUES = {
    "desktop": {"all", "mention", "none"},
    "desktop_sound": {"true", "false"},
    "email": {"true", "false"},
    "mobile": {"all", "mention", "none"},
    "mobile_push_status": {"online", "away", "offline"},
    "channel": {"true", "false"},
    "comments": {"any", "root", "never"},
}
CHANNEL_NOTIFY_VALUES = {
    "desktop": {"default", "all", "mention", "none"},
    "mobile": {"default", "all", "mention", "none"},
    "mark_unread": {"all", "mention"},
}


@dataclass
class Archive:
    """What a checked archive holds."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    members: dict[str, bytes] = field(default_factory=dict)  # every member but the JSONL, by name

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        """The bodies of the lines of ``kind``, in order."""
        return [line[kind] for line in self.lines if line["type"] == kind]

    def attachment(self, path: str) -> bytes:
        """The bytes of the attachment a post names by ``path``."""
        return self.members[f"{DATA_DIR}/{path}"]


def _runes(text: Any) -> int:
    return len(text) if isinstance(text, str) else 0


def _valid_roles(roles: Any) -> bool:
    names = roles.split() if isinstance(roles, str) else None
    return names is not None and all(VALID_ROLE.match(r) for r in names) and names != ["system_admin"]


class _Checker:
    def __init__(self, members: dict[str, bytes]) -> None:
        self.members = members
        self.teams: set[str] = set()
        self.channels: set[tuple[str, str]] = set()
        self.users: set[str] = set()
        self.direct_channels: set[tuple[str, ...]] = set()
        self.emoji: set[str] = set()
        self.number = 0

    def fail(self, what: str) -> None:
        raise AssertionError(f"line {self.number}: {what}")

    def require(self, condition: bool, what: str) -> None:
        if not condition:
            self.fail(what)

    def line(self, line: dict[str, Any]) -> None:
        kind = line.get("type")
        self.require(kind in LINE_TYPES, f"unknown type {kind!r}")
        if self.number == 1:
            self.require(kind == "version" and line.get("version") == 1, "the first line must be version 1")
            return
        self.require(kind != "version", "a second version line")
        body = line.get(kind)
        self.require(isinstance(body, dict), f"{kind} line without its {kind!r} object")
        getattr(self, f"_{kind}", self._unchecked)(body)

    def _unchecked(self, body: dict[str, Any]) -> None:
        """Line types this server never writes (role, scheme, bot) are allowed but not checked."""

    def _team(self, team: dict[str, Any]) -> None:
        name = team.get("name")
        self.require(isinstance(name, str) and len(name) <= TEAM_NAME_MAX, "team.name missing or too long")
        self.require(not name.lower().startswith(RESERVED_TEAM_PREFIXES), f"team name {name!r} is reserved")
        self.require(bool(VALID_TEAM_NAME.match(name)) and len(name) >= 2, f"team name {name!r} is invalid")
        self.require(0 < _runes(team.get("display_name")) <= TEAM_DISPLAY_NAME_MAX, "team.display_name")
        self.require(team.get("type") in ("O", "I"), "team.type must be O or I")
        self.require(_runes(team.get("description")) <= TEAM_DESCRIPTION_MAX, "team.description too long")
        self.teams.add(name)

    def _channel(self, channel: dict[str, Any]) -> None:
        team, name = channel.get("team"), channel.get("name")
        self.require(team in self.teams, f"channel.team {team!r} names no earlier team")
        self.require(isinstance(name, str) and len(name) <= CHANNEL_NAME_MAX, "channel.name missing or too long")
        self.require(bool(VALID_CHANNEL_NAME.match(name)), f"channel name {name!r} is invalid")
        self.require(_runes(channel.get("display_name")) <= CHANNEL_DISPLAY_NAME_MAX, "channel.display_name too long")
        self.require(channel.get("type") in ("O", "P"), "channel.type must be O or P")
        self.require(_runes(channel.get("header")) <= CHANNEL_HEADER_MAX, "channel.header too long")
        self.require(_runes(channel.get("purpose")) <= CHANNEL_PURPOSE_MAX, "channel.purpose too long")
        self.channels.add((team, name))

    def _notify(self, props: Any, values: dict[str, set[str]], what: str) -> None:
        for key, value in (props or {}).items():
            self.require(key not in values or value in values[key], f"{what}.{key} = {value!r} is refused")

    def _user(self, user: dict[str, Any]) -> None:
        username = user.get("username")
        self.require(
            isinstance(username, str)
            and 0 < len(username) <= USERNAME_MAX
            and bool(VALID_USERNAME.match(username))
            and username not in RESTRICTED_USERNAMES,
            f"username {username!r} is invalid",
        )
        self.require(0 < len(user.get("email") or "") <= EMAIL_MAX, "user.email missing or too long")
        self.require("password" not in user or bool(user["password"]), "user.password empty")
        self.require(not (user.get("auth_data") and user.get("password")), "user has auth_data and a password")
        self.require(_runes(user.get("nickname")) <= NICKNAME_MAX, "user.nickname too long")
        self.require(_runes(user.get("first_name")) <= NAME_MAX, "user.first_name too long")
        self.require(_runes(user.get("last_name")) <= NAME_MAX, "user.last_name too long")
        self.require(_runes(user.get("position")) <= POSITION_MAX, "user.position too long")
        self.require("roles" not in user or _valid_roles(user["roles"]), f"user.roles {user.get('roles')!r}")
        self._notify(user.get("notify_props"), USER_NOTIFY_VALUES, "user.notify_props")
        for team in user.get("teams") or []:
            self.require(team.get("name") in self.teams, f"user team {team.get('name')!r} names no earlier team")
            self.require("roles" not in team or _valid_roles(team["roles"]), "user team roles")
            for channel in team.get("channels") or []:
                key = (team["name"], channel.get("name"))
                self.require(key in self.channels, f"user channel {key} names no earlier channel")
                self.require("roles" not in channel or _valid_roles(channel["roles"]), "user channel roles")
                self._notify(channel.get("notify_props"), CHANNEL_NOTIFY_VALUES, "channel notify_props")
        self.users.add(username)

    def _emoji(self, emoji: dict[str, Any]) -> None:
        self.require(bool(emoji.get("name")) and bool(emoji.get("image")), "emoji needs a name and an image")
        self.emoji.add(emoji["name"])

    def _is_user(self, name: Any, what: str) -> None:
        self.require(name in self.users, f"{what} {name!r} names no earlier user")

    def _post_fields(self, post: dict[str, Any], what: str) -> None:
        self._is_user(post.get("user"), f"{what}.user")
        self.require(isinstance(post.get("message"), str), f"{what}.message missing")
        self.require(_runes(post["message"]) <= POST_MESSAGE_MAX, f"{what}.message too long")
        create_at = post.get("create_at")
        self.require(isinstance(create_at, int) and create_at != 0, f"{what}.create_at missing or zero")
        for reaction in post.get("reactions") or []:
            self._is_user(reaction.get("user"), f"{what} reaction user")
            name = reaction.get("emoji_name")
            self.require(isinstance(name, str) and 0 < len(name) <= EMOJI_NAME_MAX, f"{what} reaction emoji_name")
            self.require(reaction.get("create_at", 0) >= create_at, f"{what} reaction older than its post")
        for flagger in post.get("flagged_by") or []:
            self._is_user(flagger, f"{what}.flagged_by")
        for attachment in post.get("attachments") or []:
            path = attachment.get("path")
            self.require(isinstance(path, str) and ".." not in path.split("/"), f"{what} attachment path {path!r}")
            self.require(f"{DATA_DIR}/{path}" in self.members, f"{what} attachment {path!r} is not in the archive")

    def _replies(self, post: dict[str, Any], what: str) -> None:
        for reply in post.get("replies") or []:
            self.require("replies" not in reply, f"{what} reply with replies")
            self._post_fields(reply, f"{what} reply")

    def _post(self, post: dict[str, Any]) -> None:
        self.require(post.get("team") in self.teams, f"post.team {post.get('team')!r} names no earlier team")
        key = (post["team"], post.get("channel"))
        self.require(key in self.channels, f"post channel {key} names no earlier channel")
        self._post_fields(post, "post")
        self._replies(post, "post")

    def _members(self, members: Any, what: str) -> tuple[str, ...]:
        self.require(isinstance(members, list), f"{what} missing")
        self.require(len(members) == 2 or GROUP_MIN <= len(members) <= GROUP_MAX, f"{what}: {len(members)} members")
        for member in members:
            self._is_user(member, f"{what} member")
        return tuple(sorted(members))

    def _direct_channel(self, channel: dict[str, Any]) -> None:
        members = self._members(channel.get("members"), "direct_channel.members")
        self.require(_runes(channel.get("header")) <= CHANNEL_HEADER_MAX, "direct_channel.header too long")
        for favoriter in channel.get("favorited_by") or []:
            self.require(favoriter in members, f"direct_channel.favorited_by {favoriter!r} is not a member")
        self.direct_channels.add(members)

    def _direct_post(self, post: dict[str, Any]) -> None:
        members = self._members(post.get("channel_members"), "direct_post.channel_members")
        self.require(members in self.direct_channels, f"direct_post channel {members} names no direct_channel")
        for flagger in post.get("flagged_by") or []:
            self.require(flagger in members, f"direct_post.flagged_by {flagger!r} is not a member")
        self._post_fields(post, "direct_post")
        self._replies(post, "direct_post")


def check_archive(data: bytes) -> Archive:
    """Check a bulk-import zip the way Mattermost reads it; answer its lines and members."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None, "a member's checksum does not match"
        names = [info.filename for info in archive.infolist()]
        assert not any(".." in name.split("/") for name in names), "a member's path leaves the archive"
        jsonl = [name for name in names if name.endswith(".jsonl")]
        assert len(jsonl) == 1, f"expected one .jsonl member, found {jsonl}"
        text = archive.read(jsonl[0]).decode("utf-8")
        members = {name: archive.read(name) for name in names if name != jsonl[0]}
    checker = _Checker(members)
    found = Archive(members=members)
    for checker.number, raw in enumerate(text.splitlines(), start=1):
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as exc:
            checker.fail(f"not JSON: {exc}")
        checker.require(isinstance(line, dict), "not a JSON object")
        checker.line(line)
        found.lines.append(line)
        found.counts[line["type"]] += 1
    assert text.endswith("\n"), "the last line is not terminated"
    return found
