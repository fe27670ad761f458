"""Group commit of new posts (:mod:`workspace_server.post_writer`): a batch writes exactly what its posts would
one by one, concurrent posts share a statement, a bad post fails alone, and writers of several processes do not
deadlock. Runs the writer in this process against a real server's database."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tests.workspace_server.wsclient import User, create_user, login, ok
from workspace_server.post_writer import PARALLEL_BATCH, NewPost, PostWriter, write_posts
from workspace_server.posts import new_post
from workspace_server.settings import sqlalchemy_url


@dataclass(frozen=True)
class World:
    database_url: str
    users: dict[str, str]  # username -> id
    channels: dict[str, str]  # label -> id
    roots: dict[str, str]  # channel label -> a root post of it


@pytest.fixture(scope="module")
def world(server: Any, admin: Any) -> World:
    """Four users; an open channel, a private one without dave, a DM, a group message, an archived channel; and a
    root post in the open and the private channel."""
    boss = login(server.base_url, admin.username, admin.password)
    team_id = ok(boss.api.get(f"/teams/name/{server.team_name}"))["id"]
    people: dict[str, User] = {name: create_user(boss, server.base_url, name, team_id) for name in ("alice", "bob")}
    people |= {name: create_user(boss, server.base_url, name, team_id) for name in ("carol", "dave")}
    alice = people["alice"].api

    def channel(name: str, kind: str, members: Sequence[str]) -> str:
        body = {"team_id": team_id, "name": name, "display_name": name.title(), "type": kind}
        channel_id: str = ok(alice.post("/channels", json=body), 201)["id"]
        for member in members:
            ok(alice.post(f"/channels/{channel_id}/members", json={"user_id": people[member].id}), 201)
        return channel_id

    channels = {
        "open": channel("batch-open", "O", ["bob", "carol", "dave"]),
        "private": channel("batch-private", "P", ["bob", "carol"]),
        "archived": channel("batch-archived", "O", ["bob"]),
        "dm": ok(alice.post("/channels/direct", json=[people["alice"].id, people["bob"].id]), 201)["id"],
        "gm": ok(alice.post("/channels/group", json=[people[n].id for n in ("alice", "bob", "carol")]), 201)["id"],
    }
    with psycopg.connect(server.database_url, autocommit=True) as db:
        db.execute("UPDATE channels SET delete_at = 1 WHERE id = %s", (channels["archived"],))
    roots = {
        label: ok(alice.post("/posts", json={"channel_id": channels[label], "message": "root"}), 201)["id"]
        for label in ("open", "private")
    }
    return World(server.database_url, {n: u.id for n, u in people.items()}, channels, roots)


def _scenario(world: World) -> list[NewPost]:
    """Posts covering every rule, in one order: mentions (of a user, of the channel, in DMs and group messages, of
    oneself, of someone who posts again later), replies (several to one root, to a root of another channel, to
    nothing), and refusals (not a member, archived channel, no such channel)."""
    rng = random.Random(7)
    names = list(world.users)
    messages = ["hello #news", "ping @{other}", "@channel look", "@here and @{other}", "@{me} note to self", "ok"]
    posts: list[NewPost] = []
    for k in range(60):
        author = names[k % len(names)]
        label = rng.choice(["open", "open", "private", "dm", "gm", "archived"])
        text = rng.choice(messages).format(other=rng.choice(names), me=author)
        root = ""
        if label in ("open", "private") and rng.random() < 0.4:
            root = rng.choice([world.roots[label], world.roots["open"], "z" * 26])
        channel_id = "y" * 26 if k == 17 else world.channels[label]
        post = new_post(
            channel_id=channel_id, user_id=world.users[author], message=text, root_id=root, props={}, authorized=False
        )
        posts.append(post)
    base = posts[0].now
    # Distinct, increasing times (as requests arriving one after the other have).
    return [replace(p, now=base + i) for i, p in enumerate(posts)]


async def _write_in_chunks(database_url: str, chunks: list[list[NewPost]]) -> tuple[list[dict[str, Any]], Any]:
    """Write the chunks as batches in one transaction, read back every counter, roll back."""
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        async with engine.connect() as conn:
            outcomes = []
            for chunk in chunks:
                outcomes += [dict(row) for row in await write_posts(conn, chunk)]
            state = [
                (await conn.exec_driver_sql(query)).all()
                for query in (
                    "SELECT id, total_msg_count, total_msg_count_root, last_post_at, last_root_post_at FROM channels"
                    " ORDER BY id",
                    "SELECT channel_id, user_id, msg_count, msg_count_root, mention_count, mention_count_root,"
                    " last_viewed_at, last_update_at FROM channel_members ORDER BY channel_id, user_id",
                    "SELECT id, channel_id, root_id, user_id, create_at, message, hashtags, reply_count,"
                    " last_reply_at FROM posts ORDER BY id",
                )
            ]
            await conn.rollback()
    finally:
        await engine.dispose()
    for outcome in outcomes:
        del outcome["ord"]
    return outcomes, state


def test_a_batch_writes_what_its_posts_would_one_by_one(world: World) -> None:
    posts = _scenario(world)
    one_by_one = asyncio.run(_write_in_chunks(world.database_url, [[p] for p in posts]))
    together = asyncio.run(_write_in_chunks(world.database_url, [posts]))
    in_three = asyncio.run(_write_in_chunks(world.database_url, [posts[:11], posts[11:40], posts[40:]]))
    assert together == one_by_one
    assert in_three == one_by_one
    # The scenario does exercise every rule.
    outcomes = one_by_one[0]
    written = [o for o in outcomes if o["id"] is not None]
    assert any(o["may_post"] is None for o in outcomes)  # no such channel
    assert any(o["may_post"] is False for o in outcomes)  # not a member
    assert any(o["channel_delete_at"] for o in outcomes)  # archived
    assert any(o["may_post"] and not o["channel_delete_at"] and o["id"] is None for o in outcomes)  # bad root
    assert max(o["thread_reply_count"] or 0 for o in written) >= 3
    assert any(len(o["mentions"]) >= 2 for o in written) and any(len(o["mentions"]) == 1 for o in written)


def test_concurrent_posts_share_one_statement(world: World) -> None:
    async def post_fifty() -> list[dict[str, Any]]:
        writer = PostWriter(world.database_url)
        try:
            rows = await asyncio.gather(
                *(
                    writer.write(
                        new_post(
                            channel_id=world.channels["open"],
                            user_id=world.users[("alice", "bob")[k % 2]],
                            message=f"concurrent {k}",
                            root_id=world.roots["open"] if k % 5 == 0 else "",
                            props={"k": k},
                            authorized=False,
                        )
                    )
                    for k in range(50)
                )
            )
        finally:
            await writer.close()
        return rows

    before = _counters(world)
    rows = asyncio.run(post_fifty())
    assert all(row["id"] is not None for row in rows)
    assert [row["props"]["k"] for row in rows] == list(range(50))
    assert max(row["ord"] for row in rows) == 50  # one statement for all fifty
    after = _counters(world)
    assert after["total"] == before["total"] + 50
    assert after["root_replies"] == before["root_replies"] + 10
    # Each author has read the channel up to their own last post.
    assert after["read"]["bob"] == after["total"] and after["read"]["alice"] == after["total"] - 1


def _counters(world: World) -> dict[str, Any]:
    def value(db: psycopg.Connection[Any], query: str, *params: str) -> Any:
        row = db.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    with psycopg.connect(world.database_url) as db:
        member = "SELECT msg_count FROM channel_members WHERE channel_id = %s AND user_id = %s"
        return {
            "total": value(db, "SELECT total_msg_count FROM channels WHERE id = %s", world.channels["open"]),
            "root_replies": value(db, "SELECT reply_count FROM posts WHERE id = %s", world.roots["open"]),
            "read": {name: value(db, member, world.channels["open"], world.users[name]) for name in ("alice", "bob")},
        }


def test_a_post_postgresql_refuses_fails_alone(world: World, caplog: pytest.LogCaptureFixture) -> None:
    async def post_ten() -> list[dict[str, Any] | BaseException]:
        writer = PostWriter(world.database_url)
        try:
            return await asyncio.gather(
                *(
                    writer.write(
                        new_post(
                            channel_id=world.channels["open"],
                            user_id=world.users["carol"],
                            # The API refuses NUL characters; a post that got here anyway must not sink the others.
                            message="bad \x00" if k == 4 else f"fine {k}",
                            root_id="",
                            props={},
                            authorized=False,
                        )
                    )
                    for k in range(10)
                ),
                return_exceptions=True,
            )
        finally:
            await writer.close()

    with caplog.at_level(logging.WARNING, logger="workspace_server.post_writer"):
        outcomes = asyncio.run(post_ten())
    assert isinstance(outcomes[4], psycopg.Error)
    fine = [o for k, o in enumerate(outcomes) if k != 4]
    assert all(isinstance(o, dict) and o["message"].startswith("fine") for o in fine)
    assert "a batch of 10 posts failed" in caplog.text


async def _a_writer_waits_for_a_lock(probe: psycopg.Connection[Any], timeout: float = 10.0) -> None:
    """Return once a post writer's connection to the test database waits for a lock (polling ``probe``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = probe.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'canopy-workspace-posts'"
            " AND wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()
        probe.rollback()
        if waiting and waiting[0]:
            return
        await asyncio.sleep(0.01)  # lets the writer, on this event loop, get to its lock
    raise AssertionError(f"no post writer waited for a lock within {timeout}s")


def test_a_batch_locks_its_channels_in_id_order_before_writing(world: World) -> None:
    """What keeps the batches of several server processes from deadlocking: a batch locks all its channels, in id
    order, before it locks anything else (a thread's root post here). While another transaction holds the later
    channel, the batch holds the earlier one and waits, having touched nothing else."""
    first, later = sorted(["open", "private"], key=lambda label: world.channels[label])
    with psycopg.connect(world.database_url) as holder, psycopg.connect(world.database_url) as probe:
        holder.execute("SELECT 1 FROM channels WHERE id = %s FOR UPDATE", (world.channels[later],))

        async def write_batch() -> list[dict[str, Any]]:
            writer = PostWriter(world.database_url)
            try:
                posts = [
                    new_post(channel_id=world.channels[label], user_id=world.users["alice"], message="locks",
                             root_id=root, props={}, authorized=False)
                    for label, root in ((first, world.roots[first]), (later, ""))
                ]  # fmt: skip
                return await asyncio.gather(*(writer.write(post) for post in posts))
            finally:
                await writer.close()

        async def observe_then_release() -> list[dict[str, Any]]:
            batch = asyncio.create_task(write_batch())
            await _a_writer_waits_for_a_lock(probe)
            with pytest.raises(psycopg.errors.LockNotAvailable):
                probe.execute("SELECT 1 FROM channels WHERE id = %s FOR UPDATE NOWAIT", (world.channels[first],))
            probe.rollback()
            probe.execute("SELECT 1 FROM posts WHERE id = %s FOR UPDATE NOWAIT", (world.roots[first],))
            probe.rollback()
            holder.rollback()
            return await batch

        rows = asyncio.run(observe_then_release())
    assert [row["id"] is not None for row in rows] == [True, True]


def test_a_second_batch_goes_alongside_one_held_up(world: World) -> None:
    """A batch waiting for a lock (its channel being changed) does not hold up a full batch queued behind it."""
    with psycopg.connect(world.database_url) as holder, psycopg.connect(world.database_url) as probe:
        holder.execute("SELECT 1 FROM channels WHERE id = %s FOR UPDATE", (world.channels["private"],))

        def post(label: str) -> NewPost:
            return new_post(channel_id=world.channels[label], user_id=world.users["bob"], message=label, root_id="",
                            props={}, authorized=False)  # fmt: skip

        async def scenario() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            writer = PostWriter(world.database_url)
            try:
                held_up = asyncio.create_task(writer.write(post("private")))
                await _a_writer_waits_for_a_lock(probe)
                behind = [writer.write(post("open")) for _ in range(PARALLEL_BATCH)]
                written = await asyncio.wait_for(asyncio.gather(*behind), timeout=10)
                assert not held_up.done()
            finally:
                holder.rollback()
                await writer.close()
            return written, await held_up

        written, first = asyncio.run(scenario())
    assert all(row["id"] is not None for row in written) and first["id"] is not None
