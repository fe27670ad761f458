"""Post search (``POST /api/v4/teams/{team_id}/posts/search`` and ``POST /api/v4/posts/search``) on PostgreSQL
full-text search.

Terms follow Mattermost's syntax: words (all of them, or any with ``is_or_search``), ``"quoted phrases"``,
``prefix*``, ``-excluded`` words or phrases, ``from:username``, ``in:channel-name`` (``in:@username`` for a direct
channel), ``before:``/``after:``/``on:YYYY-MM-DD`` (in the caller's ``time_zone_offset``), and ``-from:``/``-in:``.

Only channels the caller is a member of are searched (as in Mattermost, open channels they have not joined are
not), so private channels and direct messages of others never appear.

Speed at a million posts: a first round trip resolves the caller's channel ids, the ``from:`` authors and the
tsquery; the search then compares constants, so PostgreSQL's statistics on ``posts.channel_id`` and on the
lexemes of ``posts.message_tsv`` tell it how many posts each side selects. Rare terms go through the GIN index
(with a bitmap AND on the channel index when that is smaller); common ones walk ``ix_posts_create_at_id``
newest first and stop after a page; ``from:`` uses ``ix_posts_user_id_create_at``."""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, Text, and_, cast, func, literal, literal_column, not_, or_, select
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.auth import CurrentSession, Session
from workspace_server.db import Conn
from workspace_server.ids import is_valid_id
from workspace_server.membership import get_team_member
from workspace_server.post_metadata import add_metadata
from workspace_server.posts import POST_COLUMNS, post_json
from workspace_server.schema import channel_members, channels, posts, users
from workspace_server.web import INT_MAX, AppError, JSONResponse, invalid_url_param, permission_error

router = APIRouter(prefix="/api/v4")

TS_CONFIG = "english"
_CONFIG: ColumnElement[Any] = literal_column(f"'{TS_CONFIG}'::regconfig")
PER_PAGE_DEFAULT = 60
PER_PAGE_MAX = 200
TIME_ZONE_OFFSET_MAX = 24 * 3600  # seconds east of UTC; real ones lie within -12 h and +14 h
TERMS_MAX_CHARS = 1000
RARE_MATCHES = 1000
"""Below this many matching posts in the workspace, a search reads every match through the full-text index."""
_TOKEN = re.compile(r'(-)?(?:(from|in|channel|before|after|on):)?(?:"([^"]*)"?|(\S+))', re.IGNORECASE)
_WORD = re.compile(r"\w+")
_LEXEME = re.compile(r"'((?:[^']|'')+)'(:\*)?")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
DAY_MS = 86_400_000


@dataclass
class SearchTerms:
    """A parsed search string."""

    words: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    excluded_words: list[str] = field(default_factory=list)
    excluded_phrases: list[str] = field(default_factory=list)
    excluded_prefixes: list[str] = field(default_factory=list)
    from_users: list[str] = field(default_factory=list)
    excluded_from_users: list[str] = field(default_factory=list)
    in_channels: list[str] = field(default_factory=list)
    excluded_in_channels: list[str] = field(default_factory=list)
    before: str = ""
    after: str = ""
    on: str = ""

    @property
    def has_text(self) -> bool:
        """Whether any text term (not a filter) was given."""
        return bool(self.words or self.phrases or self.prefixes)

    @property
    def has_filters(self) -> bool:
        """Whether any user, channel or date filter was given."""
        return bool(self.from_users or self.in_channels or self.before or self.after or self.on)


def parse_terms(terms: str) -> SearchTerms:
    """Split Mattermost search syntax into its parts."""
    parsed = SearchTerms()
    for match in _TOKEN.finditer(terms[:TERMS_MAX_CHARS]):
        negated, key, quoted, bare = (
            bool(match.group(1)),
            (match.group(2) or "").lower(),
            match.group(3),
            match.group(4),
        )
        if quoted is None and not bare:
            continue
        if key in ("from", "in", "channel"):
            value = (quoted if quoted is not None else bare).strip()
            if not value:
                continue
            if key == "from":
                (parsed.excluded_from_users if negated else parsed.from_users).append(value.lstrip("@").lower())
            else:
                (parsed.excluded_in_channels if negated else parsed.in_channels).append(value.lstrip("~").lower())
        elif key in ("before", "after", "on"):
            setattr(parsed, key, (quoted if quoted is not None else bare).strip())
        elif quoted is not None:
            if quoted.strip():
                (parsed.excluded_phrases if negated else parsed.phrases).append(quoted)
        elif bare.endswith("*") and _WORD.search(bare):
            (parsed.excluded_prefixes if negated else parsed.prefixes).append(bare.rstrip("*"))
        elif _WORD.search(bare):
            (parsed.excluded_words if negated else parsed.words).append(bare)
    return parsed


def _prefix_query(term: str) -> ColumnElement[Any]:
    # Only word characters reach to_tsquery, so its operator syntax cannot be injected.
    parts = _WORD.findall(term)
    return func.to_tsquery(_CONFIG, literal(" & ".join([*parts[:-1], parts[-1] + ":*"]), Text))


def _queries(words: list[str], phrases: list[str], prefixes: list[str]) -> list[ColumnElement[Any]]:
    queries = [func.plainto_tsquery(_CONFIG, literal(w, Text)) for w in words]
    queries += [func.phraseto_tsquery(_CONFIG, literal(p, Text)) for p in phrases]
    return queries + [_prefix_query(p) for p in prefixes]


def _fold(queries: list[ColumnElement[Any]], function: str) -> ColumnElement[Any] | None:
    if not queries:
        return None
    combined = queries[0]
    for query in queries[1:]:
        combined = getattr(func, function)(combined, query)
    return combined


def _day_start_ms(value: str, offset_seconds: int) -> int | None:
    """Midnight starting ``YYYY-MM-DD`` in the caller's time zone (``offset_seconds`` east of UTC), in ms."""
    match = _DATE.match(value)
    if match is None:
        return None
    try:
        day = datetime.datetime(int(match[1]), int(match[2]), int(match[3]), tzinfo=datetime.UTC)
    except ValueError:
        return None
    return int(day.timestamp() * 1000) - offset_seconds * 1000


def searchable_channels(user_id: str, team_id: str | None, parsed: SearchTerms, include_deleted: bool) -> Select[Any]:
    """The ids of the channels searched: those the user is a member of (in the team, and their direct and group
    channels), narrowed by ``in:`` and ``-in:``."""
    query = (
        select(channel_members.c.channel_id)
        .join(channels, channels.c.id == channel_members.c.channel_id)
        .where(channel_members.c.user_id == user_id)
    )
    if team_id is not None:
        query = query.where(or_(channels.c.team_id == team_id, channels.c.team_id.is_(None)))
    if not include_deleted:
        query = query.where(channels.c.delete_at == 0)

    def names(values: list[str]) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        for value in values:
            if value.startswith("@"):
                # A direct channel, named after the two users' ids.
                other = select(users.c.id).where(users.c.username == value[1:]).scalar_subquery()
                conditions.append(
                    and_(
                        channels.c.team_id.is_(None),
                        channels.c.name.in_(
                            [
                                func.concat(literal(user_id), "__", other),
                                func.concat(other, "__", literal(user_id)),
                            ]
                        ),
                    )
                )
            else:
                conditions.append(channels.c.name == value)
        return conditions

    if parsed.in_channels:
        query = query.where(or_(*names(parsed.in_channels)))
    if parsed.excluded_in_channels:
        query = query.where(not_(or_(*names(parsed.excluded_in_channels))))
    return query


@dataclass(frozen=True)
class Scope:
    """What a search looks for, resolved in one round trip before the search itself: the tsquery as PostgreSQL
    prints it (``""`` for none) and its positive lexemes, the channels searched, and the ``from:``/``-from:``
    authors. With these as constants, the planner sees how many posts the caller's channels and the terms
    select, and picks between the full-text index and walking posts newest first. ``rare``: fewer than
    :data:`RARE_MATCHES` posts of the workspace match the terms (then the search reads them all through the
    full-text index, whatever the planner estimates)."""

    tsquery: str
    rare: bool
    lexemes: list[tuple[str, bool]]
    channel_ids: list[str]
    author_ids: list[str]
    excluded_author_ids: list[str]


def _ids(query: Select[Any]) -> ColumnElement[Any]:
    return func.array(query.scalar_subquery())


async def resolve_scope(
    conn: AsyncConnection,
    user_id: str,
    team_id: str | None,
    parsed: SearchTerms,
    *,
    is_or: bool = False,
    include_deleted_channels: bool = False,
) -> Scope:
    """Let PostgreSQL turn the text terms into one tsquery (stemming, stop words) and find the caller's channels
    and the named authors."""
    columns: list[ColumnElement[Any]] = [
        _ids(searchable_channels(user_id, team_id, parsed, include_deleted_channels)).label("channel_ids"),
        _ids(select(users.c.id).where(users.c.username.in_(parsed.from_users))).label("author_ids"),
        _ids(select(users.c.id).where(users.c.username.in_(parsed.excluded_from_users))).label("excluded"),
    ]
    wanted = _fold(_queries(parsed.words, parsed.phrases, parsed.prefixes), "tsquery_or" if is_or else "tsquery_and")
    if wanted is not None:
        whole = wanted
        unwanted = _fold(
            _queries(parsed.excluded_words, parsed.excluded_phrases, parsed.excluded_prefixes), "tsquery_or"
        )
        if unwanted is not None:
            whole = func.tsquery_and(wanted, func.tsquery_not(unwanted))
        matching = posts.c.message_tsv.op("@@")(whole)
        matches: Select[Any] = select(literal_column("1")).where(matching).limit(RARE_MATCHES)
        rare = select(func.count()).select_from(matches.subquery()).scalar_subquery() < RARE_MATCHES
        columns += [cast(wanted, Text).label("wanted"), cast(whole, Text).label("whole"), rare.label("rare")]
    row = (await conn.execute(select(*columns))).mappings().one()
    wanted_text = row.get("wanted") or ""
    return Scope(
        tsquery=row.get("whole") or "",
        rare=bool(row.get("rare")),
        lexemes=[(m[1].replace("''", "'"), bool(m[2])) for m in _LEXEME.finditer(wanted_text)],
        channel_ids=list(row["channel_ids"]),
        author_ids=list(row["author_ids"]),
        excluded_author_ids=list(row["excluded"]),
    )


def search_query(
    scope: Scope,
    parsed: SearchTerms,
    *,
    time_zone_offset: int = 0,
    page: int = 0,
    per_page: int = PER_PAGE_DEFAULT,
) -> Select[Any]:
    """The posts matching the search, newest first: ``per_page + 1`` rows from ``page`` (the extra one tells
    whether there is a next page)."""
    conditions: list[ColumnElement[bool]] = [
        posts.c.channel_id.in_(scope.channel_ids),
        posts.c.delete_at == 0,
        posts.c.type.not_like("system\\_%"),
    ]
    if scope.tsquery:
        conditions.append(posts.c.message_tsv.op("@@")(cast(literal(scope.tsquery), TSQUERY)))
    if parsed.from_users:
        conditions.append(posts.c.user_id.in_(scope.author_ids))
    if scope.excluded_author_ids:
        conditions.append(posts.c.user_id.not_in(scope.excluded_author_ids))
    for key in ("before", "after", "on"):
        start = _day_start_ms(getattr(parsed, key), time_zone_offset) if getattr(parsed, key) else None
        if start is None:
            continue
        if key == "before":
            conditions.append(posts.c.create_at < start)
        elif key == "after":
            conditions.append(posts.c.create_at >= start + DAY_MS)
        else:
            conditions.append(and_(posts.c.create_at >= start, posts.c.create_at < start + DAY_MS))
    if scope.rare:
        # Estimates of how many posts a phrase or a rare word matches can be far too high, and then walking posts
        # newest first (to stop at the page) reads most of the table; the matches themselves are few.
        matching = select(*POST_COLUMNS).where(*conditions).cte("matching").prefix_with("MATERIALIZED")
        newest_first = (matching.c.create_at.desc(), matching.c.id.desc())
        return select(matching).order_by(*newest_first).offset(page * per_page).limit(per_page + 1)
    return (
        select(*POST_COLUMNS)
        .where(*conditions)
        .order_by(posts.c.create_at.desc(), posts.c.id.desc())
        .offset(page * per_page)
        .limit(per_page + 1)
    )


def _matches(message: str, lexemes: list[tuple[str, bool]]) -> list[str]:
    """The words of ``message`` that the search matched (a word matches a lexeme it starts with: stems are
    prefixes of their words, and prefix searches are prefixes by definition)."""
    found: dict[str, None] = {}
    for word in _WORD.findall(message):
        lowered = word.lower()
        if any(lowered.startswith(lexeme) for lexeme, _ in lexemes):
            found[word] = None
    return list(found)


class SearchBody(BaseModel):
    """``POST /teams/{team_id}/posts/search`` and ``POST /posts/search``."""

    terms: str = ""
    is_or_search: bool = False
    time_zone_offset: Annotated[int, Field(ge=-TIME_ZONE_OFFSET_MAX, le=TIME_ZONE_OFFSET_MAX)] = 0
    include_deleted_channels: bool = False
    page: int = 0
    per_page: int = PER_PAGE_DEFAULT


async def search(conn: AsyncConnection, session: Session, team_id: str | None, body: SearchBody) -> JSONResponse:
    """Run a search for the caller and answer Mattermost's ``PostSearchResults``."""
    if not (0 <= body.page <= INT_MAX and 1 <= body.per_page <= INT_MAX):
        raise AppError(400, "api.post.search_posts.invalid_body.app_error", "Invalid page or per_page.")
    per_page = min(body.per_page, PER_PAGE_MAX)
    parsed = parse_terms(body.terms)
    empty: dict[str, Any] = {
        "order": [],
        "posts": {},
        "matches": {},
        "next_post_id": "",
        "prev_post_id": "",
        "has_next": False,
        "first_inaccessible_post_time": 0,
    }
    scope = await resolve_scope(
        conn,
        session.user_id,
        team_id,
        parsed,
        is_or=body.is_or_search,
        include_deleted_channels=body.include_deleted_channels,
    )
    if not scope.tsquery and not parsed.has_filters:
        # Nothing to look for (no terms, or only stop words and exclusions).
        return JSONResponse(empty)
    if not scope.channel_ids or (parsed.from_users and not scope.author_ids):
        return JSONResponse(empty)
    query = search_query(scope, parsed, time_zone_offset=body.time_zone_offset, page=body.page, per_page=per_page)
    rows = list((await conn.execute(query)).mappings())
    has_next = len(rows) > per_page
    found = [post_json(r) for r in rows[:per_page]]
    await add_metadata(conn, found)
    return JSONResponse(
        empty
        | {
            "order": [p["id"] for p in found],
            "posts": {p["id"]: p for p in found},
            "matches": {p["id"]: _matches(p["message"], scope.lexemes) for p in found if scope.lexemes},
            "has_next": has_next,
        }
    )


@router.post("/teams/{team_id}/posts/search")
async def search_team_posts(team_id: str, body: SearchBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Search the posts of a team's channels that the caller is in, and of their direct and group channels."""
    if not is_valid_id(team_id):
        raise invalid_url_param("team_id")
    if await get_team_member(conn, team_id, session.user_id) is None:
        raise permission_error()
    return await search(conn, session, team_id, body)


@router.post("/posts/search")
async def search_all_posts(body: SearchBody, conn: Conn, session: CurrentSession) -> JSONResponse:
    """Search the posts of every channel the caller is in, across teams."""
    return await search(conn, session, None, body)
