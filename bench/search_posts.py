"""Search latency at a million posts: the workspace server's own search SQL on a generated workspace.

Creates a database on the test PostgreSQL (``CANOPY_TEST_PG_URL``, default postgres@127.0.0.1:5432), applies
the workspace server's migrations, and fills it with users, channels, memberships and posts whose words follow
a Zipf-like distribution (so that some words are in a quarter of all posts and others in a handful). Then, for
a user who is in ~20 of the channels, it runs the SQL that ``workspace_server.search`` builds for a set of
searches (rare, middling and very common words, phrases, prefixes, from:, OR, exclusions), printing EXPLAIN
ANALYZE timings and p50/p99 over repeated runs, and finally measures the HTTP endpoint end to end.

    .venv/bin/python bench/search_posts.py [--posts 1000000] [--keep] [--database NAME]

Target: p99 <= 200 ms per search at 1,000,000 posts (2-core machine).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.dialects import postgresql  # noqa: E402
from sqlalchemy.ext.asyncio import create_async_engine  # noqa: E402

from workspace_server.search import SearchTerms, parse_terms, resolve_scope, search_query  # noqa: E402
from workspace_server.settings import sqlalchemy_url  # noqa: E402

ADMIN_URL = os.environ.get("CANOPY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
USERS = 2000
CHANNELS = 500
CHANNELS_PER_USER = 20
VOCABULARY = 20000
REPEATS = 30
HTTP_ROUNDS = 8


def url_for(name: str) -> str:
    return f"{ADMIN_URL.rpartition('/')[0]}/{name}"


def vocabulary(size: int) -> list[str]:
    """Pronounceable made-up words (no stop words, no collisions after stemming of the common ones)."""
    rng = random.Random(7)
    onsets, vowels, codas = "bdfgklmnprstvz", "aeiou", ["", "n", "r", "l", "m", "x", "k"]
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = rng.randint(2, 4)
        word = "".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables))
        words[word] = None
    return list(words)


def build(database_url: str, posts: int) -> None:
    env = {**os.environ, "WS_DATABASE_URL": database_url}
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "workspace_server" / "alembic.ini"), "upgrade", "head"],
        check=True,
        env=env,
        cwd=ROOT,
        capture_output=True,
    )
    words = vocabulary(VOCABULARY)
    with psycopg.connect(database_url, autocommit=True) as db:
        started = time.monotonic()
        db.execute(
            "INSERT INTO teams (id, name, display_name, invite_id)"
            " VALUES (repeat('t', 26), 'bench', 'Bench', repeat('i', 26))"
        )
        db.execute(
            "INSERT INTO users (id, username, email)"
            " SELECT lpad(g::text, 26, 'u'), 'user' || g, 'user' || g || '@bench.test' FROM generate_series(1, %s) g",
            (USERS,),
        )
        db.execute("INSERT INTO team_members (team_id, user_id) SELECT repeat('t', 26), id FROM users")
        db.execute(
            "INSERT INTO channels (id, team_id, type, name, display_name)"
            " SELECT lpad(g::text, 26, 'c'), repeat('t', 26), CASE WHEN g %% 5 = 0 THEN 'P' ELSE 'O' END,"
            " 'channel-' || g, 'Channel ' || g FROM generate_series(1, %s) g",
            (CHANNELS,),
        )
        db.execute(
            "INSERT INTO channel_members (channel_id, user_id) SELECT DISTINCT"
            " lpad((1 + floor(random() * %s))::int::text, 26, 'c'), u.id FROM users u, generate_series(1, %s)"
            " ON CONFLICT DO NOTHING",
            (CHANNELS, CHANNELS_PER_USER),
        )
        # Load without the search indexes, then build them as the migration defines them.
        indexes = db.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'posts' AND indexname <> 'posts_pkey'"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        # Messages are drawn here (Zipf-like word ranks) and copied in; channels skew towards the first ones.
        rng = random.Random(11)
        cumulative = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
        started_at = 1_700_000_000_000
        with db.cursor().copy("COPY posts (id, create_at, update_at, user_id, channel_id, message) FROM STDIN") as copy:
            for g in range(1, posts + 1):
                at = started_at + g * 31_536_000_000 // posts
                message = " ".join(rng.choices(words, cum_weights=cumulative, k=6 + g % 15))
                user = str(1 + rng.randrange(USERS)).rjust(26, "u")
                channel = str(1 + int(rng.random() ** 2 * CHANNELS)).rjust(26, "c")
                copy.write_row((format(g, "x").rjust(26, "p"), at, at, user, channel, message))
                if g % 100_000 == 0:
                    print(f"  {g:>9,} posts ({time.monotonic() - started:.0f} s)", flush=True)
        for name, definition in indexes:
            index_started = time.monotonic()
            db.execute(definition)
            print(f"  index {name}: {time.monotonic() - index_started:.1f} s", flush=True)
        db.execute("VACUUM ANALYZE")
        print(f"built in {time.monotonic() - started:.0f} s", flush=True)


def frequencies(db: psycopg.Connection[Any]) -> list[tuple[str, int]]:
    rows = db.execute(
        "SELECT word, ndoc FROM ts_stat('SELECT message_tsv FROM posts TABLESAMPLE SYSTEM (5)') ORDER BY ndoc DESC"
    ).fetchall()
    return [(w, n * 20) for w, n in rows]


def searches(freq: list[tuple[str, int]], user: str) -> list[str]:
    def at(rank: int) -> str:
        return freq[min(rank, len(freq) - 1)][0]

    rare = next(w for w, n in freq if n <= 200)
    return [
        at(0),  # the most common word (in roughly a quarter of all posts)
        at(30),
        at(300),
        at(3000),
        rare,
        f"{at(0)} {at(30)}",
        f"{at(30)} {at(300)} {at(3000)}",
        f'"{at(0)} {at(1)}"',
        f"{at(300)[:3]}*",
        f"from:{user} {at(30)}",
        f"{at(3000)} {rare}",
        f"{at(0)} -{at(1)}",
        f"in:channel-1 {at(300)}",
    ]


async def measure(database_url: str, user_id: str, username: str) -> list[tuple[str, float, float, float, int]]:
    engine = create_async_engine(sqlalchemy_url(database_url))
    results = []
    with psycopg.connect(database_url) as db:
        freq = frequencies(db)
        terms_list = searches(freq, username)
        async with engine.connect() as conn:
            for terms in terms_list:
                parsed: SearchTerms = parse_terms(terms)
                scope = await resolve_scope(conn, user_id, "t" * 26, parsed)
                query = search_query(scope, parsed)
                sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
                plan = db.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql).fetchall()  # type: ignore[arg-type]
                explain_ms = float(plan[-1][0].split(":")[1].split()[0])
                timings = []
                rows = 0
                for _ in range(REPEATS):
                    started = time.perf_counter()
                    rows = len(db.execute(sql).fetchall())  # type: ignore[arg-type]
                    timings.append((time.perf_counter() - started) * 1000)
                timings.sort()
                p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]
                results.append((terms, explain_ms, statistics.median(timings), p99, rows))
                p50 = statistics.median(timings)
                print(f"{terms!r:45} explain {explain_ms:7.1f} ms  p50 {p50:7.1f}  p99 {p99:7.1f}  rows {rows}")
                if os.environ.get("SHOW_PLANS"):
                    print("\n".join(r[0] for r in plan))
    await engine.dispose()
    return results


def measure_http(database_url: str, user_id: str, terms_list: list[str]) -> None:
    """End to end through a real server process: login-free (a session row made here), POST search."""
    token = "benchtoken" + "x" * 16
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO sessions (id, token_hash, user_id, csrf_token, expires_at) VALUES (%s, %s, %s, 'c', %s)"
            " ON CONFLICT DO NOTHING",
            ("s" * 26, hashlib.sha256(token.encode()).hexdigest(), user_id, 2**62),
        )
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WS_")}
        env |= {
            "WS_DATABASE_URL": database_url,
            "WS_CONTROL_TOKEN": "bench",
            "WS_TEAM_NAME": "bench",
            "WS_RUNTIME_DIR": f"{tmp}/run",
            "WS_FILES_DIR": f"{tmp}/files",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "workspace_server"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL
        )
        try:
            port_file = Path(tmp) / "run" / "server.port"
            while not port_file.exists():
                time.sleep(0.05)
            base = f"http://127.0.0.1:{int(port_file.read_text())}/api/v4"
            timings: list[float] = []
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                for round_number in range(HTTP_ROUNDS + 1):
                    for terms in terms_list:
                        started = time.perf_counter()
                        response = client.post(f"{base}/teams/{'t' * 26}/posts/search", json={"terms": terms})
                        assert response.status_code == 200, response.text
                        if round_number:  # the first round warms the server's pool and caches
                            timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            print(
                f"HTTP search, {len(timings)} requests: p50 {statistics.median(timings):.1f} ms, "
                f"p99 {timings[min(len(timings) - 1, int(len(timings) * 0.99))]:.1f} ms, max {timings[-1]:.1f} ms"
            )
        finally:
            proc.terminate()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=1_000_000)
    parser.add_argument("--database", default="", help="reuse this database (built if empty)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    name = args.database or f"bench_search_{os.getpid()}"
    database_url = url_for(name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    try:
        if not exists:
            print(f"building {args.posts:,} posts in {name}", flush=True)
            build(database_url, args.posts)
        with psycopg.connect(database_url) as db:
            total = db.execute("SELECT count(*) FROM posts").fetchone()
            assert total is not None
            # The users who reach the most and the fewest posts through their channels.
            reach = db.execute(
                "WITH per_channel AS (SELECT channel_id, count(*) AS n FROM posts GROUP BY channel_id)"
                " SELECT u.id, u.username, count(*), coalesce(sum(c.n), 0)::bigint FROM users u"
                " JOIN channel_members m ON m.user_id = u.id LEFT JOIN per_channel c ON c.channel_id = m.channel_id"
                " GROUP BY u.id ORDER BY 4 DESC"
            ).fetchall()
        worst = 0.0
        for user_id, username, channel_count, posts_reached in (reach[0], reach[-1]):
            print(f"{total[0]:,} posts; as {username}: in {channel_count} channels, {posts_reached:,} posts in reach")
            results = asyncio.run(measure(database_url, user_id, username))
            worst = max(worst, *(r[3] for r in results))
            measure_http(database_url, user_id, [r[0] for r in results])
        print(f"worst per-search p99 (SQL): {worst:.1f} ms")
    finally:
        if not args.keep and not args.database:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
