"""Data lifecycle benchmarks: backup and restore throughput of a large workspace, and wake latency.

Backup half (on the machine's PostgreSQL, ``BENCH_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/
postgres``): makes a workspace database as the local runtime does (a role owning its database), runs the workspace
server's migrations on it and fills it by bulk SQL (1,000 users, a team, 200 channels, ``--posts`` posts of
chat-sized messages, a fifth of them replies). Then, in the same run, it times a bare ``pg_dump -Fc`` to a file and
``pg_restore`` into a fresh database, and Canopy's backup of the database part (the local runtime's BackupProvider:
dump in a snapshot with the post count, AES-256-GCM encryption, SHA-256, written to a part file) and its restore into
a new workspace database. Prints MB/s of the database's size for each and the ratios Canopy/bare (target >= 0.7).
Everything it made is dropped at the end.

Wake half: starts the embedded PostgreSQL and `canopy run` (one worker, local workspace runtime, the API with its
proxy) in a temporary state directory, signs up N workspaces (POST /api/v1/signup, confirmed with the link from the
outbox), waits until they serve, hibernates them all (POST /api/v1/workspaces/{id}/hibernate as an operator) and
waits until no server runs. Then, one workspace at a time, it times `GET /w/<slug>/api/v4/config/client?format=old`
(what a client asks first) through the proxy: the request wakes the workspace and is held until it serves. Finally
it wakes them again all at once (one request each, at the same moment). Prints p50 and p95 seconds (target, one at
a time: p50 <= 1 s, p95 <= 1.5 s on a 2-core machine) and where the time goes: the reconcile's steps as the worker
logged them (medians), and the rest (the wake's transaction, the job's pickup, the proxy's polling and the request
itself).

    .venv/bin/python bench/data_lifecycle.py [--posts 1000000] [--rounds 2] [--count 20] [--only backup|wake]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BENCH_SERVER = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
sys.path.insert(0, str(ROOT))

from bench.time_to_workspace import canopy_env, free_port, percentile, verification_token  # noqa: E402
from control_plane.embedded import start_postgres  # noqa: E402
from control_plane.providers.base import WorkspaceSpec  # noqa: E402

PASSWORD = "bench password 1234"
STEP_LINE = re.compile(r"workspace ([0-9a-f-]{36}): (\w+) ensured in ([0-9.]+) s")
JOB_LINE = re.compile(r"Job reconcile_workspace\[\d+\]\(workspace_id='([0-9a-f-]{36})'\) ended .* lasted ([0-9.]+) s")


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.1)


def states(db_url: str) -> dict[str, tuple[str, str, bool]]:
    """slug -> (id, lifecycle state, Available) of every workspace."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT slug, id::text, lifecycle_state::text, "
            'coalesce(conditions @> \'[{"type": "Available", "status": "True"}]\', false) FROM workspaces'
        ).fetchall()
    return {slug: (ws_id, state, available) for slug, ws_id, state, available in rows}


def figures(label: str, times: list[float]) -> None:
    print(
        f"{label}: p50 {percentile(times, 0.50):.2f} s   p95 {percentile(times, 0.95):.2f} s   "
        f"min {min(times):.2f} s   max {max(times):.2f} s   mean {statistics.mean(times):.2f} s"
    )


def wake_one(client: httpx.Client, slug: str) -> float:
    started = time.perf_counter()
    response = client.get(f"/w/{slug}/api/v4/config/client", params={"format": "old"})
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{slug}: {response.status_code} {response.text[:300]}")
    return elapsed


def hibernate_all(base: str, env: dict[str, str], db_url: str, slugs: list[str]) -> None:
    email = f"op-{os.urandom(3).hex()}@bench.example.com"
    token = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "create-account", "--email", email, "--role", "operator"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    found = states(db_url)
    with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        for slug in slugs:
            client.post(f"/api/v1/workspaces/{found[slug][0]}/hibernate").raise_for_status()
    wait_for(
        "every server to stop",
        lambda: all(state == "hibernated" and not up for state, up in (states(db_url)[s][1:] for s in slugs)),
        300,
    )


def breakdown(log: str, ids: set[str], since: int) -> None:
    """Medians of the wake reconciles (the first of each of ``ids`` after byte ``since`` of the log) and their
    steps, as the worker logged them."""
    steps: dict[str, list[float]] = defaultdict(list)
    jobs: list[float] = []
    done: set[str] = set()
    for line in log[since:].splitlines():
        if (step := STEP_LINE.search(line)) and step.group(1) in ids - done:
            steps[step.group(2)].append(float(step.group(3)))
        elif (job := JOB_LINE.search(line)) and job.group(1) in ids - done:
            jobs.append(float(job.group(2)))
            done.add(job.group(1))
    if jobs:
        print(f"  the wake's reconcile (median): {statistics.median(jobs):.3f} s, of which")
    for name, durations in steps.items():
        print(f"    {name:<14} {statistics.median(durations):.3f} s")


# --------------------------------------------------------------------------------------------
# Backup and restore throughput

LOREM = (
    "Shipping the release today after the last review. Can someone check the migration on staging before noon? "
    "The dashboard shows a spike in latency around the deploy, probably the cache warming up again. "
    "Thanks for the write-up, I left a few comments on the doc and a question about the retry budget. "
    "Lunch at the usual place? I will book a table for six people at half past twelve. "
    "Reminder: the quarterly planning starts Monday, please add your team's goals to the board by Friday. "
    "I pushed a fix for the flaky test, it was waiting on a timer instead of the event it meant to wait for. "
)


def _populate(url: str, posts: int) -> None:
    """A workspace server's schema (its own migrations) and, by bulk SQL, 1,000 users, a team, 200 channels with
    their members and ``posts`` posts of chat-sized messages (a fifth of them replies)."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from workspace_server.migrate import upgrade_schema
    from workspace_server.settings import sqlalchemy_url

    engine = create_async_engine(sqlalchemy_url(url))
    asyncio.run(upgrade_schema(engine))
    asyncio.run(engine.dispose())
    users, channels = 1000, 200
    now_ms = int(time.time() * 1000)
    start_ms = now_ms - posts * 1000
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'posts' AND indexname <> 'posts_pkey'"
        ).fetchall()
        for name, _ in indexes:  # a bulk load builds its secondary indexes once, at the end
            conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        conn.execute(
            "INSERT INTO users (id, create_at, update_at, username, email, email_verified, password, first_name,"
            " last_name) SELECT substr(md5('u' || i), 1, 26), %(t)s, %(t)s, 'user' || i, 'user' || i ||"
            " '@bench.example.com', true, '$2b$10$' || md5('pw' || i) || md5('salt' || i), 'First' || i, 'Last' || i"
            " FROM generate_series(1, %(users)s) i",
            {"t": start_ms, "users": users},
        )
        conn.execute(
            "INSERT INTO teams (id, create_at, update_at, display_name, name, invite_id, allow_open_invite)"
            " VALUES (substr(md5('team'), 1, 26), %(t)s, %(t)s, 'Bench', 'bench', substr(md5('invite'), 1, 26), true)",
            {"t": start_ms},
        )
        conn.execute(
            "INSERT INTO team_members (team_id, user_id, create_at) SELECT substr(md5('team'), 1, 26), id, %(t)s"
            " FROM users",
            {"t": start_ms},
        )
        conn.execute(
            "INSERT INTO channels (id, create_at, update_at, team_id, type, display_name, name, purpose, creator_id)"
            " SELECT substr(md5('c' || i), 1, 26), %(t)s, %(t)s, substr(md5('team'), 1, 26), 'O', 'Channel ' || i,"
            " 'channel-' || i, 'Talk about topic ' || i, substr(md5('u1'), 1, 26) FROM generate_series(1, %(n)s) i",
            {"t": start_ms, "n": channels},
        )
        conn.execute(  # every user in 20 channels
            "INSERT INTO channel_members (channel_id, user_id, last_viewed_at) SELECT substr(md5('c' || c), 1, 26),"
            " substr(md5('u' || u), 1, 26), %(t)s FROM generate_series(1, %(users)s) u,"
            " generate_series(1, 20) k, LATERAL (SELECT 1 + (u * 7 + k * 10) %% %(n)s AS c) ch"
            " ON CONFLICT DO NOTHING",
            {"t": now_ms, "users": users, "n": channels},
        )
        conn.execute(
            "INSERT INTO posts (id, create_at, update_at, user_id, channel_id, root_id, message, props)"
            " SELECT substr(md5('p' || i), 1, 26), %(start)s + i * 1000, %(start)s + i * 1000,"
            " substr(md5('u' || (1 + i %% %(users)s)), 1, 26), substr(md5('c' || (1 + i %% %(n)s)), 1, 26),"
            " CASE WHEN i %% 5 = 0 AND i > %(n)s THEN substr(md5('p' || (i - %(n)s)), 1, 26) ELSE '' END,"
            " substr(%(lorem)s::text, (1 + (i * 7919) %% 400)::int, (20 + (i * 31) %% 180)::int) || ' #' || (i %% 97),"
            " '{}'::jsonb FROM generate_series(1, %(posts)s::bigint) i",
            {"start": start_ms, "users": users, "n": channels, "lorem": LOREM, "posts": posts},
        )
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute("VACUUM ANALYZE")


def _admin(dbname: str = "postgres") -> str:
    """URL of ``dbname`` on the benchmark's server, as its superuser."""
    return urlunsplit(urlsplit(BENCH_SERVER)._replace(path=f"/{dbname}"))


def _create_database(name: str) -> str:
    with psycopg.connect(_admin(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return _admin(name)


def _drop_database(name: str) -> None:
    with psycopg.connect(_admin(), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _post_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM posts").fetchone()
    assert row
    return int(row[0])


def _timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


class Workspaces:
    """Workspace databases on the benchmark's server as the local runtime makes them (a role owning its database),
    and the local runtime's BackupProvider over them, keeping its parts under ``work``."""

    def __init__(self, work: Path) -> None:
        from cryptography.fernet import Fernet

        from control_plane.credentials.keys import Keyring
        from control_plane.providers.local import LocalDatabase, LocalStorage
        from control_plane.providers.local_backup import LocalBackup

        password = secrets.token_urlsafe(24)
        self.database = LocalDatabase(BENCH_SERVER, lambda _id, _purpose: password)
        self.backup = LocalBackup(work, self.database, LocalStorage(work), Keyring((Fernet.generate_key().decode(),)))
        self.made: list[WorkspaceSpec] = []

    def make(self, label: str) -> tuple[WorkspaceSpec, str]:
        """A new workspace database, and its URL as the workspace's role."""
        workspace_id = uuid.uuid4()
        spec = WorkspaceSpec(workspace_id, f"bench-{label}", uuid.uuid4(), "professional", "local", label)
        self.database.ensure(spec)
        self.made.append(spec)
        return spec, self.database.connection_url(spec)

    def drop(self, spec: WorkspaceSpec) -> None:
        self.database.teardown(spec)
        self.made.remove(spec)

    def teardown(self) -> None:
        for spec in list(self.made):
            self.drop(spec)


def _bare(workspaces: Workspaces, source: WorkspaceSpec, posts: int, work: Path) -> tuple[float, float, int]:
    """Seconds of a bare ``pg_dump -Fc`` of ``source`` to a file and of ``pg_restore`` of it into a fresh database
    (as the superuser), and the dump's size."""
    dump = work / "bare.dump"
    backup = _timed(["pg_dump", "-Fc", "-f", str(dump), "-d", _admin(f"ws_{source.short_id}")])
    copy = f"bench_bare_{os.urandom(3).hex()}"
    try:
        restore = _timed(["pg_restore", "--no-owner", "-d", _create_database(copy), str(dump)])
        assert _post_count(_admin(copy)) == posts
    finally:
        _drop_database(copy)
    size = dump.stat().st_size
    dump.unlink()
    return backup, restore, size


def _canopy(workspaces: Workspaces, source: WorkspaceSpec, posts: int) -> tuple[float, float, int]:
    """Seconds of Canopy's backup of the database part of ``source`` (the local runtime's BackupProvider: a dump in
    its snapshot with the post count, encrypted, metered, written) and of its restore into a new workspace database
    (decrypted, authenticated, restored in one transaction), and the part's size."""
    started = time.perf_counter()
    part = workspaces.backup.back_up_database(source, {}, uuid.uuid4())
    backup = time.perf_counter() - started
    assert part.count == posts
    target, target_url = workspaces.make("restored")
    try:
        started = time.perf_counter()
        workspaces.backup.restore_database(target, {}, part)
        restore = time.perf_counter() - started
        assert _post_count(target_url) == posts
    finally:
        workspaces.drop(target)
        workspaces.backup.discard(part)
    return backup, restore, part.size


def _rate(size: int, seconds: float) -> str:
    return f"{size / 1e6 / seconds:7.1f} MB/s ({seconds:.1f} s)"


def backup_benchmark(posts: int, rounds: int) -> None:
    """Bare ``pg_dump -Fc``/``pg_restore`` against Canopy's backup and restore of one workspace database, in rounds
    that alternate which goes first (the best of each is compared: the machine is shared)."""
    work = Path(tempfile.mkdtemp(prefix="canopy-bench-backup-"))
    workspaces = Workspaces(work)
    try:
        source, source_url = workspaces.make("source")
        started = time.perf_counter()
        _populate(source_url, posts)
        with psycopg.connect(source_url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        assert row
        size = int(row[0])
        made = time.perf_counter() - started
        print(f"workspace database: {posts:,} posts, {size / 1e6:.0f} MB, made in {made:.0f} s", flush=True)
        bare: list[tuple[float, float, int]] = []
        canopy: list[tuple[float, float, int]] = []
        for round_ in range(1, rounds + 1):
            if round_ % 2:  # who goes first alternates: the second reads a source the first brought into the cache
                bare.append(_bare(workspaces, source, posts, work))
                canopy.append(_canopy(workspaces, source, posts))
            else:
                canopy.append(_canopy(workspaces, source, posts))
                bare.append(_bare(workspaces, source, posts, work))
            print(
                f"  round {round_}: bare {bare[-1][0]:.1f} s + {bare[-1][1]:.1f} s,"
                f" Canopy {canopy[-1][0]:.1f} s + {canopy[-1][1]:.1f} s (backup + restore)",
                flush=True,
            )
        bare_backup, bare_restore = min(b[0] for b in bare), min(b[1] for b in bare)
        canopy_backup, canopy_restore = min(c[0] for c in canopy), min(c[1] for c in canopy)
        print(f"throughput in MB of the database (pg_database_size) per second, best of {rounds}:")
        print(f"  bare pg_dump -Fc      {_rate(size, bare_backup)}   dump {bare[0][2] / 1e6:.0f} MB")
        print(f"  bare pg_restore       {_rate(size, bare_restore)}")
        print(f"  Canopy backup         {_rate(size, canopy_backup)}   encrypted part {canopy[0][2] / 1e6:.0f} MB")
        print(f"  Canopy restore        {_rate(size, canopy_restore)}")
        print(
            f"  ratio Canopy/bare: backup {bare_backup / canopy_backup:.2f},"
            f" restore {bare_restore / canopy_restore:.2f}   (target >= 0.7)"
        )
    finally:
        workspaces.teardown()
        shutil.rmtree(work, ignore_errors=True)


def wake_benchmark(count: int) -> None:
    """Wake latency over ``count`` hibernated workspaces (see the module's docstring)."""
    state = Path(tempfile.mkdtemp(prefix="canopy-bench-"))
    db_url = start_postgres(state)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = canopy_env(state, db_url, port)
    log_path = state / "canopy.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "control_plane.cli", "run", "--port", str(port)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=open(log_path, "wb"),  # noqa: SIM115
    )
    try:
        wait_for("the control plane", lambda: httpx.get(f"{base}/readyz", timeout=1).status_code == 200, 60)
        run_id = os.urandom(3).hex()
        slugs = [f"wake-{run_id}-{i}" for i in range(count)]
        with httpx.Client(base_url=base, timeout=60) as client:
            for slug in slugs:
                email = f"owner@{slug}.example.com"
                client.post("/api/v1/signup", json={"email": email, "workspace": slug, "password": PASSWORD})
                client.post("/api/v1/signup/verify", json={"token": verification_token(db_url, email)})
            wait_for("every workspace to serve", lambda: all(states(db_url)[s][2] for s in slugs), 300)
            hibernate_all(base, env, db_url, slugs)
            ids = {states(db_url)[s][0] for s in slugs}
            since = log_path.stat().st_size
            one_at_a_time = [wake_one(client, slug) for slug in slugs]
            log = log_path.read_text(errors="replace")
            hibernate_all(base, env, db_url, slugs)
            with ThreadPoolExecutor(max_workers=len(slugs)) as pool:
                at_once = list(pool.map(lambda slug: wake_one(client, slug), slugs))
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # `canopy run` stops its workspace servers on exit
        server.wait(60)
    print(f"wake latency over {len(slugs)} hibernated workspaces (embedded default, first request to first answer):")
    figures("  one at a time", one_at_a_time)
    print("  target: p50 <= 1 s, p95 <= 1.5 s")
    breakdown(log, ids, since)
    figures(f"  all {len(slugs)} at once", at_once)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="hibernated workspaces woken")
    parser.add_argument("--posts", type=int, default=1_000_000, help="posts of the backed-up workspace")
    parser.add_argument("--rounds", type=int, default=2, help="alternating bare/Canopy rounds (best of each)")
    parser.add_argument("--only", choices=("backup", "wake"), help="run one half only")
    args = parser.parse_args()
    if args.only != "wake":
        backup_benchmark(args.posts, args.rounds)
    if args.only != "backup":
        wake_benchmark(args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
