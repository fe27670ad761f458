"""The workspace server's performance figures, all from one run, each printed next to its target.

Run (about 3-5 minutes on the 2-core machine; needs the test PostgreSQL, and Redis when ``--workers`` > 1)::

    .venv/bin/python bench/workspace_server.py                 # everything, one server process
    .venv/bin/python bench/workspace_server.py --workers 2     # two server processes (WS_WORKERS=2, via Redis)
    .venv/bin/python bench/workspace_server.py --phases post,throughput --seconds 10   # a subset, shorter
    .venv/bin/python bench/workspace_server.py --phases throughput --concurrency 16     # one concurrency

PostgreSQL comes from ``CANOPY_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``); the
bench creates a database ``bench_ws_<pid>``, starts its own ``python -m workspace_server`` process(es) on it and
drops it at the end (also on failure or Ctrl-C). This process is the client: it shares the machine's cores with
the server and PostgreSQL, which the figures include.

Phases (``--phases``, default all, always in this order):

- ``coldstart``: spawn -> first ``200`` from ``GET /api/v4/system/ping``, median of 5 (migrations already applied
  by a first, untimed start). Target <= 1.5 s.
- ``rss``: a server's resident memory after start, set-up and a few requests. Target <= 90 MB.
- ``post``: ``POST /api/v4/posts`` at a steady ``--rate`` (200/s) for ``--seconds`` (20 s), open loop: each post is
  sent at its scheduled time whatever happened to the previous ones, and its latency counts from that scheduled
  time, so queueing is not hidden (no coordinated omission). 5 posting users, 20 channels (every poster a member
  of each), posts round-robin over both; ~10% of messages @mention someone. Target p99 <= 50 ms.
- ``throughput``: capacity. The same posts closed loop from 8, 16, 32 and 64 keep-alive connections
  (``--concurrency``), and single-row autocommit INSERTs from as many psycopg connections into a table with the
  same columns and indexes as ``posts`` (``LIKE posts INCLUDING ALL``): at each level posts, INSERTs, INSERTs,
  posts, ``--seconds / 8`` each, so that the machine's drift weighs on both sides alike. A table
  shows both at every level (with the CPU each party spent per operation); the target compares the peaks: the most
  posts/s the server sustained against the most INSERT/s PostgreSQL took, each at its best concurrency (posts are
  group-committed, so the server does best with many requests in flight; single-row INSERTs do best with about as
  many connections as the machine has room for). Target: peak posts/s >= 0.4 x peak INSERT/s. The ratio at each
  level is printed too.
- ``websocket``: 1,000 WebSocket connections (20 users) in one channel, 5 posts/s for 10 s; delivery latency
  = event parsed by the client - scheduled send time of the post. Every connection must get every post.
  Target p99 <= 150 ms.
- ``search``: 1,000,000 posts (``--search-posts``) bulk-loaded with COPY into the same database (2,000 users, 500
  channels, Zipf-distributed made-up words, the searching user a member of 25 channels), then single-term
  (common, middling, rare), two-term, phrase, prefix, ``from:`` and ``in:`` searches through
  ``POST /api/v4/teams/{id}/posts/search``, one at a time. Target p99 <= 200 ms.

The HTTP client is a minimal asyncio HTTP/1.1 keep-alive pool (no per-request library overhead), so that the
figures are the server's as far as a shared 2-core machine allows. Every post waits for PostgreSQL's WAL flush at
commit: on a disk that other work keeps busy (checkpoints forced by databases being dropped, bulk loads), fsyncs
of 100-200 ms show up in the open-loop p99 as posts "sent in these seconds"; ``--synchronous-commit off`` runs
the same bench without those waits, to tell them from the server's own delays. So that what earlier work left
unwritten (another run's posts, say) is not flushed during the open loop, the bench asks PostgreSQL for a
``CHECKPOINT`` just before it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from argon2 import PasswordHasher

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("CANOPY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CANOPY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEAM = "bench"
CONTROL_TOKEN = "bench-control-token"
PASSWORD = "bench-password-1"
POSTERS = 5
CHANNELS = 20
WS_USERS = 20
WS_CONNECTIONS = 1000
WS_RATE = 5
WS_SECONDS = 10
COLD_STARTS = 5
SEARCH_USERS = 2000
SEARCH_CHANNELS = 500
SEARCH_MEMBER_OF = 25
SEARCH_VOCABULARY = 20000
SEARCH_REPEATS = 8
KEEPALIVE_EXPIRY_SECONDS = 4.0
PHASES = ("coldstart", "rss", "post", "throughput", "websocket", "search")

_results: list[tuple[str, str, str, bool | None]] = []


def report(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    """Print a figure (and remember it for the summary)."""
    _results.append((name, value, target, ok))
    verdict = "" if ok is None else ("  OK" if ok else "  MISSED")
    print(f"  {name:<44} {value:<28} {('target ' + target) if target else ''}{verdict}", flush=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile of ``values`` (sorted here)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))] if ordered else float("nan")


# --- server processes ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A ``python -m workspace_server`` process on a fixed port."""

    database_url: str
    base_dir: Path
    workers: int
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WS_")}
        env |= {
            "WS_DATABASE_URL": self.database_url,
            "WS_CONTROL_TOKEN": CONTROL_TOKEN,
            "WS_TEAM_NAME": TEAM,
            "WS_LISTEN_PORT": str(self.port),
            "WS_RUNTIME_DIR": str(self.base_dir / "run"),
            "WS_FILES_DIR": str(self.base_dir / "files"),
        }
        if self.workers > 1:
            env |= {"WS_WORKERS": str(self.workers), "WS_REDIS_URL": REDIS_URL}
        return env

    def start(self) -> float:
        """Spawn the process and wait for ping to answer 200: answers the seconds from spawn to that answer."""
        log = open(self.base_dir / "server.log", "ab")  # noqa: SIM115 - the child keeps it
        started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "workspace_server"], env=self.env(), stdout=log, stderr=log)
        log.close()
        deadline = started + 60
        with httpx.Client(timeout=5) as client:
            while time.perf_counter() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.base_url}/api/v4/system/ping").status_code == 200:
                        return time.perf_counter() - started
                time.sleep(0.005)
        raise RuntimeError(f"server not ready in 60 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log_tail(self) -> str:
        path = self.base_dir / "server.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def pids(self) -> list[int]:
        """The server's process and its worker processes, if any."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        kids = [int(p) for p in children.read_text().split()] if children.exists() else []
        return [self.proc.pid, *kids]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = os.times()
    return usage.user + usage.system


def postgres_pids() -> list[int]:
    """The PostgreSQL backends serving this bench's database."""
    marker = f" bench_ws_{os.getpid()} ".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().replace(b"\0", b" ") + b" ":
                    found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


# --- a minimal HTTP/1.1 keep-alive client ----------------------------------------------------------------------


class HttpPool:
    """Keep-alive connections to one server; a request takes an idle connection or opens one (up to ``limit``,
    then waits for one)."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.limit = limit
        self.idle: deque[tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], float]] = deque()
        self.opened = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def _acquire(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """A connection, and whether it was idle in the pool (the server may have closed it meanwhile)."""
        while True:
            while self.idle:
                conn, since = self.idle.pop()
                if time.monotonic() - since < KEEPALIVE_EXPIRY_SECONDS:
                    return conn, True
                conn[1].close()  # the server closes idle connections after 5 s
                self.opened -= 1
            if self.opened < self.limit:
                self.opened += 1
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except BaseException:
                    self.opened -= 1
                    raise
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return (reader, writer), False
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            await waiter

    def _release(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if conn is None:
            self.opened -= 1
        else:
            self.idle.append((conn, time.monotonic()))
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def request(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, bytes]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        ).encode()
        for attempt in range(3):
            conn, reused = await self._acquire()
            reader, writer = conn
            try:
                writer.write(head + payload)
                header = await reader.readuntil(b"\r\n\r\n")
                status = int(header[9:12])
                match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", header)
                data = await reader.readexactly(int(match.group(1))) if match else b""
            except asyncio.IncompleteReadError as exc:
                writer.close()
                self._release(None)
                # A kept-alive connection the server closed while idle: retry once on another, as HTTP clients do.
                if reused and not exc.partial and attempt < 2:
                    continue
                raise
            except BaseException:
                writer.close()
                self._release(None)
                raise
            self._release(conn)
            return status, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        for (_, writer), _ in self.idle:
            writer.close()
        self.idle.clear()


# --- set-up through the API ------------------------------------------------------------------------------------


@dataclass
class Workspace:
    team_id: str
    admin_id: str
    admin_token: str
    posters: list[tuple[str, str, str]]  # (user id, username, token)
    ws_tokens: list[str]
    channel_ids: list[str]
    town_square: str


def _ok(response: httpx.Response, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} {response.text}")
    return response.json()


def _login(api: httpx.Client, username: str, password: str) -> tuple[str, str]:
    response = api.post("/users/login", json={"login_id": username, "password": password})
    body = _ok(response)
    return body["id"], response.headers["Token"]


def set_up(base_url: str) -> Workspace:
    """The admin, 5 posters in 20 channels, 20 more users for the WebSocket connections (all in the team)."""
    with httpx.Client(base_url=f"{base_url}/api/v4", timeout=60) as api:
        _ok(
            api.put(
                "/canopy/initial_admin",
                headers={"Authorization": f"Bearer {CONTROL_TOKEN}"},
                json={
                    "email": "admin@bench.test",
                    "username": "admin",
                    "password_hash": PasswordHasher().hash(PASSWORD),
                },
            )
        )
        admin_id, admin_token = _login(api, "admin", PASSWORD)
        api.headers["Authorization"] = f"Bearer {admin_token}"
        team_id = _ok(api.get(f"/teams/name/{TEAM}"))["id"]
        town_square = _ok(api.get(f"/teams/{team_id}/channels/name/town-square"))["id"]

        def user(name: str) -> tuple[str, str, str]:
            body = {"email": f"{name}@bench.test", "username": name, "password": PASSWORD}
            user_id = _ok(api.post("/users", json=body), 201)["id"]
            _ok(api.post(f"/teams/{team_id}/members", json={"team_id": team_id, "user_id": user_id}), 201)
            with httpx.Client(base_url=f"{base_url}/api/v4", timeout=60) as own:
                return user_id, name, _login(own, name, PASSWORD)[1]

        posters = [user(f"poster{i}") for i in range(POSTERS)]
        ws_tokens = [user(f"listener{i}")[2] for i in range(WS_USERS)]
        channel_ids = []
        for i in range(CHANNELS):
            body = {"team_id": team_id, "name": f"load-{i}", "display_name": f"Load {i}", "type": "O"}
            channel_id = _ok(api.post("/channels", json=body), 201)["id"]
            for poster_id, _, _ in posters:
                _ok(api.post(f"/channels/{channel_id}/members", json={"user_id": poster_id}), 201)
            channel_ids.append(channel_id)
    return Workspace(team_id, admin_id, admin_token, posters, ws_tokens, channel_ids, town_square)


_TEXT = """
the deploy is done and the build looks green again but staging still shows the old banner so could someone check
the cache settings before lunch thanks I will review the pull request after standup meeting moved to three please
update the ticket with the logs from yesterday customer reported slow search on mobile we should add an index and
measure it again tomorrow morning
"""
WORDS = _TEXT.split()


def message(rng: random.Random, k: int, usernames: list[str]) -> str:
    words = rng.choices(WORDS, k=rng.randint(4, 30))
    if k % 10 == 0:
        words.insert(rng.randrange(len(words)), f"@{usernames[k % len(usernames)]}")
    return " ".join(words)


# --- phases ----------------------------------------------------------------------------------------------------


async def open_loop_posts(port: int, ws: Workspace, rate: int, seconds: float, warmup: float) -> None:
    pool = HttpPool(port, limit=256)
    rng = random.Random(1)
    names = [name for _, name, _ in ws.posters]
    errors: dict[str, int] = {}
    latencies: list[float] = []
    timeline: list[tuple[float, float]] = []

    async def one(k: int, scheduled: float, record: bool) -> None:
        _, _, token = ws.posters[k % len(ws.posters)]
        body = {"channel_id": ws.channel_ids[k % len(ws.channel_ids)], "message": message(rng, k, names)}
        try:
            status, data = await pool.request("POST", "/api/v4/posts", token, body)
        except (OSError, asyncio.IncompleteReadError) as exc:
            status, data = 0, f"{exc!r} after {time.perf_counter() - scheduled:.3f} s".encode()
        if status != 201:
            key = f"{status} {data[:160].decode(errors='replace')}"
            errors[key] = errors.get(key, 0) + 1
        if record:
            latencies.append(time.perf_counter() - scheduled)
            timeline.append((scheduled - start, latencies[-1]))

    tasks = []
    total_warm = int(rate * warmup)
    count = total_warm + int(rate * seconds)
    start = time.perf_counter() + 0.05
    for k in range(count):
        scheduled = start + k / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k, scheduled, k >= total_warm)))
    await asyncio.gather(*tasks)
    pool.close()
    ms = [x * 1000 for x in latencies]
    report(f"create-post p50 @ {rate}/s open loop", f"{pct(ms, 0.5):.1f} ms", "", None)
    report(f"create-post p99 @ {rate}/s open loop", f"{pct(ms, 0.99):.1f} ms", "<= 50 ms", pct(ms, 0.99) <= 50)
    report("create-post max / errors", f"{max(ms):.1f} ms / {sum(errors.values())} of {count}")
    for error, times in errors.items():
        print(f"    {times} x {error}")
    slow = [(at, latency) for at, latency in timeline if latency > 0.05]
    if slow:
        when = sorted({int(at) for at, _ in slow})
        print(f"    {len(slow)} posts over 50 ms, sent in these seconds of the run: {when}")


@dataclass
class Loop:
    """One closed loop: operations per second, and CPU seconds per operation of each party."""

    rate: float
    errors: int
    cpu_ms: list[float]  # per operation: (server,) client, PostgreSQL backends
    busy_percent: float

    def cpu(self) -> str:
        return " / ".join(f"{part:.2f}" for part in self.cpu_ms)

    @staticmethod
    def mean(first: Loop, second: Loop) -> Loop:
        """Two equally long loops of the same kind as one."""
        return Loop(
            (first.rate + second.rate) / 2,
            first.errors + second.errors,
            [(a + b) / 2 for a, b in zip(first.cpu_ms, second.cpu_ms, strict=True)],
            (first.busy_percent + second.busy_percent) / 2,
        )


class _Meter:
    """CPU of the given processes, this one, PostgreSQL's and the whole machine over a timed stretch."""

    def __init__(self, pids: list[int]) -> None:
        self.pids, self.backends = pids, postgres_pids()
        self.before = self._read()
        self.started = time.perf_counter()

    def _read(self) -> list[float]:
        return [cpu_seconds(self.pids), own_cpu_seconds(), cpu_seconds(self.backends), machine_busy_seconds()]

    def loop(self, done: int, errors: int = 0) -> Loop:
        elapsed = time.perf_counter() - self.started
        spent = [after - before for after, before in zip(self._read(), self.before, strict=True)]
        parts = spent[:3] if self.pids else spent[1:3]
        busy = 100 * spent[3] / elapsed / (os.cpu_count() or 1)
        return Loop(done / elapsed, errors, [1000 * part / max(done, 1) for part in parts], busy)


async def closed_loop_posts(port: int, ws: Workspace, concurrency: int, seconds: float, pids: list[int]) -> Loop:
    pool = HttpPool(port, limit=concurrency)
    rng = random.Random(2)
    names = [name for _, name, _ in ws.posters]
    done = 0
    errors = 0
    counter = itertools.count()
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            k = next(counter)
            _, _, token = ws.posters[k % len(ws.posters)]
            body = {"channel_id": ws.channel_ids[k % len(ws.channel_ids)], "message": message(rng, k, names)}
            status, _ = await pool.request("POST", "/api/v4/posts", token, body)
            done += 1
            errors += status != 201

    stop_at = time.perf_counter() + 1.0  # warm up the connections
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = errors = 0
    meter = _Meter(pids)
    stop_at = meter.started + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    pool.close()
    return meter.loop(done, errors)


async def raw_inserts(database_url: str, ws: Workspace, connections: int, seconds: float) -> Loop:
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("DROP TABLE IF EXISTS bench_raw_posts")
        db.execute("CREATE TABLE bench_raw_posts (LIKE posts INCLUDING ALL)")
    rng = random.Random(3)
    names = [name for _, name, _ in ws.posters]
    counter = itertools.count()
    done = 0
    sql = (
        "INSERT INTO bench_raw_posts (id, create_at, update_at, user_id, channel_id, root_id, message, props, hashtags)"
        " VALUES (%s, %s, %s, %s, %s, '', %s, '{}', '')"
    )

    async def worker(db: psycopg.AsyncConnection[Any], stop_at: float) -> None:
        nonlocal done
        while time.perf_counter() < stop_at:
            k = next(counter)
            now = int(time.time() * 1000)
            post_id = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=26))
            user_id = ws.posters[k % len(ws.posters)][0]
            channel_id = ws.channel_ids[k % len(ws.channel_ids)]
            await db.execute(sql, (post_id, now, now, user_id, channel_id, message(rng, k, names)))
            done += 1

    conns: list[psycopg.AsyncConnection[Any]] = [
        await psycopg.AsyncConnection.connect(database_url, autocommit=True) for _ in range(connections)
    ]
    try:
        warm = time.perf_counter() + 1.0
        await asyncio.gather(*(worker(db, warm) for db in conns))
        done = 0
        meter = _Meter([])
        await asyncio.gather(*(worker(db, meter.started + seconds) for db in conns))
        loop = meter.loop(done)
    finally:
        for conn in conns:
            await conn.close()
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("DROP TABLE bench_raw_posts")
    return loop


def throughput(server: Server, database_url: str, ws: Workspace, levels: list[int], seconds: float) -> None:
    """Posts and raw INSERTs closed loop at each concurrency, then the ratio of the peaks. Each level runs posts,
    raw, raw, posts (half of ``seconds`` each): a machine that speeds up or slows down during a level then
    weighs on both sides alike."""
    print(f"  {'conns':>5}  {'posts/s':>8}  {'CPU ms server/client/PG':>24}  {'busy':>4}  {'INSERT/s':>8}"
          f"  {'CPU ms client/PG':>16}  {'busy':>4}  {'ratio':>5}")  # fmt: skip
    posts: dict[int, Loop] = {}
    raw: dict[int, Loop] = {}
    for level in levels:

        def run_posts(level: int = level) -> Loop:
            return asyncio.run(closed_loop_posts(server.port, ws, level, seconds / 2, server.pids()))

        def run_raw(level: int = level) -> Loop:
            return asyncio.run(raw_inserts(database_url, ws, level, seconds / 2))

        first_posts, first_raw = run_posts(), run_raw()
        raw[level] = Loop.mean(first_raw, run_raw())
        posts[level] = Loop.mean(first_posts, run_posts())
        p, r = posts[level], raw[level]
        errors = f"  ({p.errors} errors)" if p.errors else ""
        print(f"  {level:>5}  {p.rate:>8.0f}  {p.cpu():>24}  {p.busy_percent:>3.0f}%  {r.rate:>8.0f}  {r.cpu():>16}"
              f"  {r.busy_percent:>3.0f}%  {p.rate / r.rate:>5.2f}{errors}", flush=True)  # fmt: skip
    best_posts = max(posts, key=lambda level: posts[level].rate)
    best_raw = max(raw, key=lambda level: raw[level].rate)
    report(f"sustained posts/s (peak, at {best_posts} conns)", f"{posts[best_posts].rate:.0f} /s")
    report(f"raw single-row INSERT/s (peak, at {best_raw} conns)", f"{raw[best_raw].rate:.0f} /s")
    ratio = posts[best_posts].rate / raw[best_raw].rate
    report("posts/s / raw INSERT/s (peak / peak)", f"{ratio:.2f}", ">= 0.4", ratio >= 0.4)


_MARK = re.compile(rb"lat:(\d+\.\d+)")


class WsClient(asyncio.Protocol):
    """A WebSocket client that authenticates by header and parses frames just enough to check ``seq`` and read
    the scheduled time the poster put in each message (as ``tests/workspace_server/test_websocket_load.py``)."""

    def __init__(self, port: int, token: str, hello: asyncio.Future[None]) -> None:
        self.request = (
            f"GET /api/v4/websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
        ).encode()
        self.hello = hello
        self.buffer = b""
        self.upgraded = False
        self.next_seq = 0
        self.seq_errors = 0
        self.latencies: list[float] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have what is used here.
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer + data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(buffer[:200].decode(errors="replace"))
            self.upgraded, buffer = True, buffer[end + 4 :]
        pos = 0
        while len(buffer) - pos >= 2:
            length, header = buffer[pos + 1] & 0x7F, 2
            if length == 126:
                if len(buffer) - pos < 4:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if len(buffer) - pos < 10:
                    break
                length, header = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            if len(buffer) - pos < header + length:
                break
            opcode, payload = buffer[pos] & 0x0F, buffer[pos + header : pos + header + length]
            pos += header + length
            if opcode == 1 and b'"seq_reply"' not in payload:
                self.event(payload, now)
        self.buffer = buffer[pos:]

    def event(self, payload: bytes, now: float) -> None:
        seq = int(payload[payload.rindex(b'"seq":') + 6 : -1])
        if seq != self.next_seq:
            self.seq_errors += 1
        self.next_seq = seq + 1
        if seq == 0 and not self.hello.done():
            self.hello.set_result(None)
        if b'"event":"posted"' in payload and (mark := _MARK.search(payload)) is not None:
            self.latencies.append(now - float(mark.group(1)))


async def websocket_fanout(port: int, ws: Workspace) -> None:
    loop = asyncio.get_running_loop()
    clients: list[WsClient] = []
    connect_started = time.perf_counter()
    for i in range(WS_CONNECTIONS):
        hello: asyncio.Future[None] = loop.create_future()
        token = ws.ws_tokens[i % len(ws.ws_tokens)]

        def factory(h: asyncio.Future[None] = hello, t: str = token) -> WsClient:
            return WsClient(port, t, h)

        _, client = await loop.create_connection(factory, "127.0.0.1", port)
        clients.append(client)
        if i % 100 == 99:
            await asyncio.wait_for(asyncio.gather(*(c.hello for c in clients)), 60)
    await asyncio.wait_for(asyncio.gather(*(c.hello for c in clients)), 60)
    report(f"{WS_CONNECTIONS} websocket connections open", f"in {time.perf_counter() - connect_started:.1f} s")
    await asyncio.sleep(1.0)
    pool = HttpPool(port, limit=8)
    posts = WS_RATE * WS_SECONDS
    post_ms: list[float] = []
    wall0 = time.time() + 0.05
    start = time.perf_counter() + 0.05

    async def one(k: int) -> None:
        scheduled_wall = wall0 + k / WS_RATE
        body = {"channel_id": ws.town_square, "message": f"fan-out {k} lat:{scheduled_wall:.6f}"}
        status, data = await pool.request("POST", "/api/v4/posts", ws.admin_token, body)
        if status != 201:
            raise RuntimeError(data.decode())
        post_ms.append((time.perf_counter() - (start + k / WS_RATE)) * 1000)

    tasks = []
    for k in range(posts):
        delay = start + k / WS_RATE - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 30
    while sum(len(c.latencies) for c in clients) < posts * WS_CONNECTIONS and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    pool.close()
    latencies = [x * 1000 for c in clients for x in c.latencies]
    missing = posts * WS_CONNECTIONS - len(latencies)
    seq_errors = sum(c.seq_errors for c in clients)
    p99 = pct(latencies, 0.99)
    report(f"ws delivery p50 ({WS_CONNECTIONS} conns, {WS_RATE} posts/s)", f"{pct(latencies, 0.5):.1f} ms")
    report(f"ws delivery p99 ({WS_CONNECTIONS} conns, {WS_RATE} posts/s)", f"{p99:.1f} ms", "<= 150 ms", p99 <= 150)
    report("ws delivery max / missing / seq errors", f"{max(latencies):.1f} ms / {missing} / {seq_errors}")
    report("  (its posts: create-post p99)", f"{pct(post_ms, 0.99):.1f} ms")


def _vocabulary(size: int) -> list[str]:
    """Pronounceable made-up words."""
    rng = random.Random(7)
    onsets, vowels, codas = "bdfgklmnprstvz", "aeiou", ["", "n", "r", "l", "m", "x", "k"]
    words: dict[str, None] = {}
    while len(words) < size:
        syllables = rng.randint(2, 4)
        words["".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(syllables))] = None
    return list(words)


def load_search_posts(database_url: str, ws: Workspace, total: int) -> tuple[list[str], str]:
    """COPY ``total`` posts into 500 new channels of the team (indexes rebuilt afterwards); the first poster
    joins 25 of them. Answers the words by frequency and a channel name the poster is in."""
    words = _vocabulary(SEARCH_VOCABULARY)
    cumulative = list(itertools.accumulate(1 / (rank + 1) ** 1.1 for rank in range(len(words))))
    rng = random.Random(11)
    started = time.perf_counter()
    searcher = ws.posters[0][0]
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute(
            "INSERT INTO users (id, username, email) SELECT 'bu' || lpad(g::text, 24, '0'), 'bulk' || g,"
            " 'bulk' || g || '@bench.test' FROM generate_series(1, %s) g",
            (SEARCH_USERS,),
        )
        db.execute(
            "INSERT INTO team_members (team_id, user_id) SELECT %s, id FROM users WHERE id LIKE 'bu%%'", (ws.team_id,)
        )
        db.execute(
            "INSERT INTO channels (id, team_id, type, name, display_name) SELECT 'bc' || lpad(g::text, 24, '0'), %s,"
            " CASE WHEN g %% 5 = 0 THEN 'P' ELSE 'O' END, 'bulk-' || g, 'Bulk ' || g FROM generate_series(1, %s) g",
            (ws.team_id, SEARCH_CHANNELS),
        )
        db.execute(
            "INSERT INTO channel_members (channel_id, user_id) SELECT DISTINCT"
            " 'bc' || lpad((1 + floor(random() * %s))::int::text, 24, '0'), u.id"
            " FROM users u, generate_series(1, 20) WHERE u.id LIKE 'bu%%' ON CONFLICT DO NOTHING",
            (SEARCH_CHANNELS,),
        )
        # The searcher: a few of the busiest channels and a spread of quieter ones.
        mine = sorted({1, 2, 5, *rng.sample(range(10, SEARCH_CHANNELS + 1), SEARCH_MEMBER_OF - 3)})
        db.execute(
            "INSERT INTO channel_members (channel_id, user_id) SELECT 'bc' || lpad(g::text, 24, '0'), %s"
            " FROM unnest(%s::int[]) g ON CONFLICT DO NOTHING",
            (searcher, mine),
        )
        indexes = db.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'posts' AND indexname <> 'posts_pkey'"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        at0 = int(time.time() * 1000) - 365 * 86_400_000
        with db.cursor().copy("COPY posts (id, create_at, update_at, user_id, channel_id, message) FROM STDIN") as copy:
            for g in range(1, total + 1):
                at = at0 + g * 31_536_000_000 // total
                text = " ".join(rng.choices(words, cum_weights=cumulative, k=4 + g % 20))
                user = "bu" + str(1 + rng.randrange(SEARCH_USERS)).rjust(24, "0")
                channel = "bc" + str(1 + int(rng.random() ** 2 * SEARCH_CHANNELS)).rjust(24, "0")
                copy.write_row(("bp" + format(g, "x").rjust(24, "0"), at, at, user, channel, text))
        loaded = time.perf_counter()
        for _, definition in indexes:
            db.execute(definition)
        db.execute("VACUUM ANALYZE")
    report(
        f"loaded {total:,} posts",
        f"COPY {loaded - started:.0f} s, indexes {time.perf_counter() - loaded:.0f} s",
    )
    return words, f"bulk-{mine[-1]}"


async def search_latency(port: int, ws: Workspace, words: list[str], channel_name: str) -> None:
    pool = HttpPool(port, limit=1)
    token = ws.posters[0][2]
    queries = [
        words[0],  # the most common word
        words[40],
        words[600],
        words[8000],  # rare
        f"{words[3]} {words[90]}",
        f"{words[200]} {words[1500]}",
        f'"{words[0]} {words[1]}"',
        f'"{words[50]} {words[7]}"',
        f"{words[300][:4]}*",
        f"from:bulk17 {words[20]}",
        "from:bulk42",
        f"in:{channel_name} {words[100]}",
        f"in:{channel_name}",
    ]
    timings: dict[str, list[float]] = {q: [] for q in queries}
    hits: dict[str, int] = {}
    path = f"/api/v4/teams/{ws.team_id}/posts/search"
    for q in queries:  # warm up once each
        await pool.request("POST", path, token, {"terms": q, "is_or_search": False, "page": 0, "per_page": 20})
    for _ in range(SEARCH_REPEATS):
        for q in queries:
            started = time.perf_counter()
            status, data = await pool.request(
                "POST", path, token, {"terms": q, "is_or_search": False, "page": 0, "per_page": 20}
            )
            timings[q].append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"search {q!r}: {status} {data[:300]!r}")
            hits[q] = len(json.loads(data)["order"])
    pool.close()
    for q in queries:
        print(f"    {q!r:<40} p50 {pct(timings[q], 0.5):7.1f} ms  max {max(timings[q]):7.1f} ms  ({hits[q]} hits)")
    every = [t for ts in timings.values() for t in ts]
    report("search p50 (1M posts)", f"{pct(every, 0.5):.1f} ms")
    p99 = pct(every, 0.99)
    report(f"search p99 (1M posts, {len(every)} searches)", f"{p99:.1f} ms", "<= 200 ms", p99 <= 200)


# --- driver ----------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(synchronous_commit: str) -> Iterator[str]:
    name = f"bench_ws_{os.getpid()}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
        if synchronous_commit != "on":
            admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = {synchronous_commit}')
    try:
        yield f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def uptime() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of " + ",".join(PHASES))
    parser.add_argument("--rate", type=int, default=200, help="open-loop posts per second")
    parser.add_argument("--seconds", type=float, default=20, help="open-loop duration (each closed loop: a quarter)")
    parser.add_argument(
        "--concurrency",
        default="8,16,32,64",
        help="throughput: the connection counts of the closed loops (comma-separated; the same for raw INSERTs)",
    )
    parser.add_argument("--workers", type=int, default=1, help="server processes (WS_WORKERS; >1 uses Redis)")
    parser.add_argument("--search-posts", type=int, default=1_000_000)
    parser.add_argument(
        "--synchronous-commit",
        choices=("on", "off"),
        default="on",
        help="off: the bench database does not wait for WAL flushes at commit (server and raw INSERTs alike), to"
        " show what fsync stalls of a busy disk cost; the server itself never changes this durability setting",
    )
    args = parser.parse_args()
    phases = set(args.phases.split(","))
    if unknown := phases - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    print(f"workspace server bench: {os.cpu_count()} cores, load average {uptime()} at start", flush=True)
    print(
        f"  (python {sys.version.split()[0]}, server workers {args.workers},"
        f" synchronous_commit {args.synchronous_commit})",
        flush=True,
    )
    base_dir = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    server: Server | None = None
    bench_started = time.perf_counter()
    try:
        with database(args.synchronous_commit) as database_url:
            server = Server(database_url, base_dir, args.workers)
            first = server.start()  # applies the migrations
            report("first start (migrations included)", f"{first:.2f} s")
            if "coldstart" in phases:
                times = []
                for _ in range(COLD_STARTS):
                    server.stop()
                    times.append(server.start())
                median = statistics.median(times)
                report(
                    f"cold start to first ping, median of {COLD_STARTS}",
                    f"{median:.2f} s ({min(times):.2f}-{max(times):.2f})",
                    "<= 1.5 s",
                    median <= 1.5,
                )
            ws = set_up(server.base_url)
            with httpx.Client(base_url=f"{server.base_url}/api/v4", timeout=30) as api:
                api.headers["Authorization"] = f"Bearer {ws.posters[0][2]}"
                for i in range(5):
                    _ok(api.get("/system/ping"))
                    _ok(api.get("/users/me"))
                    _ok(api.post("/posts", json={"channel_id": ws.channel_ids[i], "message": "hello"}), 201)
                    _ok(api.get(f"/channels/{ws.channel_ids[i]}/posts"))
            if "rss" in phases:
                time.sleep(1.0)
                for pid in server.pids():
                    mb = rss_mb(pid)
                    report(f"idle RSS (pid {pid})", f"{mb:.1f} MB", "<= 90 MB", mb <= 90)
            if "post" in phases:
                with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                    admin.execute("CHECKPOINT")
                print(
                    f"open loop: {args.rate} posts/s for {args.seconds:.0f} s (+2 s warm-up), {CHANNELS} channels,"
                    f" {POSTERS} posting users; load average {uptime()}",
                    flush=True,
                )
                asyncio.run(open_loop_posts(server.port, ws, args.rate, args.seconds, warmup=2.0))
            if "throughput" in phases:
                levels = [int(level) for level in args.concurrency.split(",")]
                print(
                    f"throughput: posts, raw INSERTs, raw INSERTs, posts ({args.seconds / 8:.1f} s each) closed loop at"
                    f" {', '.join(map(str, levels))} connections; load average {uptime()}",
                    flush=True,
                )
                throughput(server, database_url, ws, levels, args.seconds / 4)
            if "websocket" in phases:
                print(f"websocket fan-out; load average {uptime()}", flush=True)
                asyncio.run(websocket_fanout(server.port, ws))
            if "search" in phases:
                print(f"search: loading {args.search_posts:,} posts; load average {uptime()}", flush=True)
                words, channel_name = load_search_posts(database_url, ws, args.search_posts)
                print(f"search: measuring; load average {uptime()}", flush=True)
                asyncio.run(search_latency(server.port, ws, words, channel_name))
            server.stop()
    finally:
        if server is not None:
            server.stop()
        log = base_dir / "server.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        trouble = [i for i, line in enumerate(lines) if " WARNING " in line or " ERROR " in line]
        if trouble:
            print(f"server log: {len(trouble)} warnings/errors; the first, with what follows it:")
            print("\n".join(f"    {line[:200]}" for line in lines[trouble[0] : trouble[0] + 40]))
        shutil.rmtree(base_dir, ignore_errors=True)
    print(f"\nsummary ({time.perf_counter() - bench_started:.0f} s, load average {uptime()} at the end):")
    for name, value, target, ok in _results:
        if target:
            print(f"  {'OK    ' if ok else 'MISSED'} {name:<44} {value:<28} target {target}")


if __name__ == "__main__":
    main()
