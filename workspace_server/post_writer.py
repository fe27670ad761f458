"""Group commit for new posts: the posts that requests hand in while a write is under way are written together,
by one statement (one transaction), when it ends.

A post costs PostgreSQL far more as a statement and a transaction of its own than as a row of a bigger one: parse,
executor start, commit record and WAL flush are paid once per batch. So :class:`PostWriter` keeps one batch in
flight per process, on a connection of its own; posts that arrive meanwhile queue, and go together as the next
batch (at most :data:`MAX_BATCH`). A second batch goes alongside only when :data:`PARALLEL_BATCH` posts wait
(under heavy load, or behind a batch held up by a lock). An idle server writes a lone post at once: nothing waits
for a batch to fill.
Requests that write posts with other rows in one transaction (attachments, webhooks) run the same statement in
their own transaction (:func:`write_posts`).

The batch statement does for every post what writing it alone would, in arrival order: check that the workspace is
not read-only (:data:`plan.WRITE_REFUSAL`, read in the statement itself) and that the author may post in the
channel, count a reply on its thread, insert the post, count it on the channel, mark the channel read
for its author and count a mention for each member it mentions. Counters within a batch are what they would be
had its posts been written one after the other (a reply's ``reply_count``, a member's ``msg_count`` are the totals
at that post); refused posts write nothing. (A reply cannot name a root of its own batch: a post's id is known
only once it is written.)

Locks: a batch locks its channels' rows, in id order, before anything else, so that batches of several server
processes never deadlock with each other. If a batch fails as a whole (a deadlock with some other transaction, a
value PostgreSQL refuses), each of its posts is written alone, so that one bad post fails only its own request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psycopg
from psycopg.rows import dict_row
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from workspace_server.db import CONNECT_TIMEOUT_SECONDS
from workspace_server.events import dumps
from workspace_server.plan import WRITE_REFUSAL
from workspace_server.schema import posts

log = logging.getLogger(__name__)

MAX_BATCH: Final = 100
"""Posts written by one statement at most (bounds how long a batch holds its channels' locks)."""
MAX_IN_FLIGHT: Final = 2
"""Batches written at once, on as many connections."""
PARALLEL_BATCH: Final = 16
"""Posts queued behind a batch in flight that are worth a second batch alongside it (smaller batches cost
PostgreSQL more per post than the wait does)."""

_POST_COLUMNS: Final = ", ".join(c.name for c in posts.c if c.name != "message_tsv")

# One row per post of the batch (``ord``: its place in the batch, from 1): the checks (``refusal``: why the
# workspace refuses writes, NULL when it takes them; ``may_post``: the author is a member of the channel or
# ``authorized``; ``channel_delete_at``; the last two NULL when the channel does not exist), the stored post's
# columns (NULL when it was refused, or when ``root_id`` is not a root post of the channel),
# ``thread_reply_count``, and what the ``posted`` event needs (:func:`realtime.posted_context`).
_WRITE_POSTS: Final = f"""
WITH b AS (
    SELECT * FROM jsonb_to_recordset(%(posts)s::jsonb) AS b(ord int, id text, channel_id text, root_id text,
        message text, props jsonb, hashtags text, sender text, authorized bool, mentioned text[], channel_wide bool,
        now bigint)
), locked AS (
    -- The batch's channels, locked in id order before anything is written: every write below reads this through
    -- a sort or an aggregate, so batches of several processes take their locks in one order and never deadlock.
    SELECT id, delete_at FROM channels WHERE id IN (SELECT channel_id FROM b) ORDER BY id FOR UPDATE
), plan AS (
    SELECT {WRITE_REFUSAL} AS refusal
), acc AS (
    SELECT b.ord, c.delete_at AS channel_delete_at, b.authorized OR EXISTS (
        SELECT 1 FROM channel_members m0 WHERE m0.channel_id = c.id AND m0.user_id = b.sender) AS may_post
    FROM b JOIN locked c ON c.id = b.channel_id
), allowed AS (
    SELECT b.* FROM b JOIN acc USING (ord) CROSS JOIN plan
    WHERE acc.may_post AND acc.channel_delete_at = 0 AND plan.refusal IS NULL
), replies AS (
    SELECT root_id, channel_id, count(*) AS n, max(now) AS now FROM allowed WHERE root_id <> ''
    GROUP BY root_id, channel_id
), thread AS (
    UPDATE posts t SET reply_count = t.reply_count + r.n, last_reply_at = greatest(t.last_reply_at, r.now)
    FROM replies r
    WHERE t.id = r.root_id AND t.channel_id = r.channel_id AND t.root_id = '' AND t.delete_at = 0
    RETURNING t.id, t.channel_id, t.reply_count - r.n AS reply_count_before
), kept AS (
    -- The posts written, each with its rank among the batch's posts of its channel (and roots of its channel) and
    -- its thread's reply count once it is counted.
    SELECT a.*, a.root_id = '' AS is_root,
        row_number() OVER (PARTITION BY a.channel_id ORDER BY a.ord) AS channel_rank,
        count(*) FILTER (WHERE a.root_id = '') OVER (PARTITION BY a.channel_id ORDER BY a.ord) AS channel_root_rank,
        th.reply_count_before + row_number() OVER (PARTITION BY a.root_id ORDER BY a.ord) AS thread_reply_count
    FROM allowed a LEFT JOIN thread th ON th.id = a.root_id AND th.channel_id = a.channel_id
    WHERE a.root_id = '' OR th.id IS NOT NULL
), p AS (
    INSERT INTO posts (id, create_at, update_at, user_id, channel_id, root_id, message, props, hashtags)
    SELECT id, now, now, sender, channel_id, root_id, message, props, hashtags FROM kept ORDER BY ord
    RETURNING {_POST_COLUMNS}
), counts AS (
    SELECT channel_id, count(*) AS n, count(*) FILTER (WHERE is_root) AS n_root, max(now) AS now,
        max(now) FILTER (WHERE is_root) AS root_now
    FROM kept GROUP BY channel_id
), ch AS (
    UPDATE channels c SET
        last_post_at = greatest(c.last_post_at, k.now),
        total_msg_count = c.total_msg_count + k.n,
        last_root_post_at = coalesce(greatest(c.last_root_post_at, k.root_now), c.last_root_post_at),
        total_msg_count_root = c.total_msg_count_root + k.n_root
    FROM counts k WHERE c.id = k.channel_id
    RETURNING c.id, c.team_id, c.type, c.name, c.display_name, c.total_msg_count - k.n AS total_before,
        c.total_msg_count_root - k.n_root AS total_root_before
), targets AS (
    -- For each post, the users whose read state or mention count it changes: its author and those it mentions,
    -- or every member for @channel/@all/@here and in direct and group channels. As an array of keys, so that a
    -- post to a channel of thousands of members mentioning nobody reads two rows of channel_members.
    SELECT DISTINCT k.ord, k.channel_id, t.user_id, t.user_id = k.sender AS is_sender, k.is_root, k.now,
        ch.total_before + k.channel_rank AS total_at, ch.total_root_before + k.channel_root_rank AS total_root_at
    FROM kept k JOIN ch ON ch.id = k.channel_id
    CROSS JOIN LATERAL unnest(CASE WHEN k.channel_wide OR ch.type IN ('D', 'G')
        THEN ARRAY(SELECT m0.user_id::text FROM channel_members m0 WHERE m0.channel_id = k.channel_id)
        ELSE ARRAY(SELECT u.id::text FROM users u
            WHERE u.username = ANY(k.mentioned) AND u.delete_at = 0) || k.sender
    END) AS t(user_id)
), last_sent AS (
    -- Each author's last post of the batch in each channel: their read state is the channel's at that post.
    SELECT DISTINCT ON (channel_id, user_id) channel_id, user_id, ord, now, total_at, total_root_at
    FROM targets WHERE is_sender ORDER BY channel_id, user_id, ord DESC
), per_member AS (
    -- Mentions count from the member's own last post on (reading the channel clears them).
    SELECT t.channel_id, t.user_id, max(t.now) AS now, s.ord AS sent_ord, s.now AS viewed_at, s.total_at,
        s.total_root_at,
        count(*) FILTER (WHERE NOT t.is_sender AND t.ord > coalesce(s.ord, 0)) AS mentions,
        count(*) FILTER (WHERE NOT t.is_sender AND t.is_root AND t.ord > coalesce(s.ord, 0)) AS root_mentions
    FROM targets t LEFT JOIN last_sent s ON s.channel_id = t.channel_id AND s.user_id = t.user_id
    GROUP BY t.channel_id, t.user_id, s.ord, s.now, s.total_at, s.total_root_at
), cm AS (
    UPDATE channel_members m SET
        msg_count = coalesce(a.total_at, m.msg_count),
        msg_count_root = coalesce(a.total_root_at, m.msg_count_root),
        last_viewed_at = coalesce(a.viewed_at, m.last_viewed_at),
        mention_count = CASE WHEN a.sent_ord IS NULL THEN m.mention_count ELSE 0 END + a.mentions,
        mention_count_root = CASE WHEN a.sent_ord IS NULL THEN m.mention_count_root ELSE 0 END + a.root_mentions,
        last_update_at = a.now
    FROM per_member a
    WHERE m.channel_id = a.channel_id AND m.user_id = a.user_id
    RETURNING m.channel_id, m.user_id
), mentioned AS (
    -- Each post's mentioned members (the author's own row is their read state, not a mention).
    SELECT t.ord, array_agg(t.user_id ORDER BY t.user_id) AS user_ids
    FROM targets t JOIN cm ON cm.channel_id = t.channel_id AND cm.user_id = t.user_id
    WHERE NOT t.is_sender GROUP BY t.ord
)
SELECT b.ord, plan.refusal, acc.may_post, acc.channel_delete_at, k.thread_reply_count, p.*,
    ch.team_id AS channel_team_id, ch.type AS channel_type, ch.name AS channel_name,
    ch.display_name AS channel_display_name, u.username AS sender_name,
    coalesce(mentioned.user_ids, ARRAY[]::text[]) AS mentions
FROM b CROSS JOIN plan LEFT JOIN acc ON acc.ord = b.ord LEFT JOIN kept k ON k.ord = b.ord LEFT JOIN p ON p.id = k.id
    LEFT JOIN ch ON ch.id = k.channel_id LEFT JOIN mentioned ON mentioned.ord = b.ord
    LEFT JOIN users u ON u.id = b.sender
ORDER BY b.ord
"""
# The same with PostgreSQL's own placeholder, for a raw cursor: psycopg re-parses statements this long for
# placeholders on every execution (it caches only short ones).
_WRITE_POSTS_RAW: Final = _WRITE_POSTS.replace("%(posts)s", "$1")


@dataclass(frozen=True, slots=True)
class NewPost:
    """A post to write: its values, and what counting it needs (see :func:`realtime.parse_mentions`).
    ``authorized``: the author may post to the channel without being a member of it (a system admin, or a caller
    that checked)."""

    id: str
    channel_id: str
    root_id: str
    message: str
    props: dict[str, Any]
    hashtags: str
    sender_id: str
    authorized: bool
    mentioned: Sequence[str]
    channel_wide: bool
    now: int


@dataclass(slots=True)
class _Pending:
    post: NewPost
    answer: asyncio.Future[dict[str, Any]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


def _posts_json(batch: Sequence[NewPost]) -> str:
    """The batch statement's one parameter: the posts as a JSON array (PostgreSQL parses JSON faster than the
    driver composes a dozen array literals)."""
    rows = [
        {
            "ord": position,
            "id": p.id,
            "channel_id": p.channel_id,
            "root_id": p.root_id,
            "message": p.message,
            "props": p.props,
            "hashtags": p.hashtags,
            "sender": p.sender_id,
            "authorized": p.authorized,
            "mentioned": p.mentioned,
            "channel_wide": p.channel_wide,
            "now": p.now,
        }
        for position, p in enumerate(batch, 1)
    ]
    return dumps(rows)


async def write_posts(conn: AsyncConnection, batch: Sequence[NewPost]) -> list[RowMapping]:
    """Write ``batch`` in ``conn``'s transaction (the caller commits): the rows of the batch statement."""
    return list((await conn.exec_driver_sql(_WRITE_POSTS, {"posts": _posts_json(batch)})).mappings())


class PostWriter:
    """Writes the posts of one server process in batches (see the module docstring), each a single autocommit
    statement on a connection of the writer's own: one batch at a time, and a second one alongside only when
    :data:`PARALLEL_BATCH` posts are queued behind the first. Its connections plan the statement once (a generic
    plan: planning it for every batch would cost more than running it)."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._queue: list[_Pending] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    async def write(self, post: NewPost) -> dict[str, Any]:
        """Write ``post`` with whatever else is queued: its row of the batch statement (see ``_WRITE_POSTS``).
        Raises what PostgreSQL answered when the post, written alone, fails."""
        pending = _Pending(post)
        self._queue.append(pending)
        if self._in_flight == 0 or (self._in_flight < MAX_IN_FLIGHT and len(self._queue) >= PARALLEL_BATCH):
            self._in_flight += 1
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await pending.answer

    async def close(self) -> None:
        """Wait for the batches in flight, then close the connections."""
        while self._tasks:
            await asyncio.gather(*self._tasks)
        for conn in self._idle:
            await conn.close()
        self._idle.clear()

    async def _drain(self) -> None:
        """Write batches while posts are queued."""
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._write_batch(batch)
        finally:
            self._in_flight -= 1

    async def _write_batch(self, batch: list[_Pending]) -> None:
        try:
            rows = await self._execute([pending.post for pending in batch])
        except Exception as error:  # answered to every waiting request, never lost in this task
            if len(batch) == 1:
                _answer(batch[0], error)
                return
            log.warning("a batch of %d posts failed (%s); writing them one by one", len(batch), error)
            for pending in batch:
                await self._write_batch([pending])
            return
        for pending, row in zip(batch, rows, strict=True):
            _answer(pending, row)

    async def _execute(self, batch: list[NewPost]) -> list[dict[str, Any]]:
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            cursor = psycopg.AsyncRawCursor(conn, row_factory=dict_row)
            rows = await (await cursor.execute(_WRITE_POSTS_RAW, [_posts_json(batch)])).fetchall()
        except psycopg.Error:
            if conn.broken:
                await conn.close()
            else:
                self._idle.append(conn)
            raise
        except BaseException:  # interrupted with the statement in flight: the connection's state is unknown
            await conn.close()
            raise
        self._idle.append(conn)
        return rows

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(
            self._database_url,
            autocommit=True,
            prepare_threshold=0,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            application_name="canopy-workspace-posts",
            options="-c plan_cache_mode=force_generic_plan",
        )


def _answer(pending: _Pending, outcome: dict[str, Any] | Exception) -> None:
    """Hand the row (or the error) to the waiting request, unless it gave up (its post is written all the same)."""
    if pending.answer.done():
        return
    if isinstance(outcome, Exception):
        pending.answer.set_exception(outcome)
    else:
        pending.answer.set_result(outcome)
