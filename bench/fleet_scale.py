"""The control plane at fleet size, in sections (``--only`` runs some of them).

Section ``api``: list and filter latency through the real HTTP API. A fresh database on the machine's PostgreSQL,
migrated to head, is filled by bulk SQL (``INSERT ... SELECT generate_series``, ``tests/fleet_rows.py``; not
timed): W workspaces across W/100 organizations, 9 cells, the lifecycle states, two tiers and six releases, and A
audit entries. The control-plane API (``canopy api``: the app under uvicorn, no worker) serves it on loopback; an
operator token (``canopy create-account --role operator``) and an owner token of one organization (100
workspaces) make the requests. Each query runs once untimed, then R times in sequence over one keep-alive
connection, timed from request to parsed answer: the first page, each filter, a deep cursor page (the middle of
the list), slug prefix and substring searches, the owner's view, and the audit list with each filter. A baseline
row (one workspace by id, no list) shows what any request costs.

    .venv/bin/python bench/fleet_scale.py [--only api] [--workspaces 100000] [--audit 1000000] [--requests 200]

Prints p50/p99 per query and whether p99 <= 50 ms (the target). The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.time_to_workspace import free_port, percentile, wait_ready  # noqa: E402
from tests.fleet_rows import CANARY, NEW_CELL, Fleet, fill  # noqa: E402

ADMIN_URL = os.environ.get("CANOPY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TARGET_P99_MS = 50.0


def admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(statement)


@dataclass(frozen=True)
class Query:
    """One timed request: a label, the path, its parameters and whose token."""

    label: str
    path: str
    params: dict[str, Any]
    owner: bool = False


def api_queries(url: str, fleet: Fleet) -> list[Query]:
    """The list and filter queries an operator and an owner make."""
    from control_plane.workspaces.models import Workspace
    from control_plane.workspaces.service import encode_cursor

    with psycopg.connect(url) as conn:
        middle = conn.execute(
            "SELECT created_at, id FROM workspaces ORDER BY created_at, id OFFSET %s LIMIT 1", [fleet.workspaces // 2]
        ).fetchone()
        target = conn.execute("SELECT target_id FROM audit_entries ORDER BY id DESC LIMIT 1").fetchone()
    assert middle is not None and target is not None
    deep = encode_cursor(Workspace(created_at=middle[0], id=middle[1]))
    now = datetime.now(UTC)
    span = timedelta(seconds=5 * fleet.audit_entries)  # the audit entries are 5 s apart, the newest now
    ws, audit = "/api/v1/workspaces", "/api/v1/audit"
    return [
        Query("baseline: one workspace by id (no list)", f"{ws}/{middle[1]}", {}),
        Query("workspaces: first page", ws, {}),
        Query("workspaces: deep page (cursor)", ws, {"cursor": deep}),
        Query("workspaces: organization", ws, {"organization_id": fleet.sample_organization_id}),
        Query("workspaces: state=active", ws, {"state": "active"}),
        Query("workspaces: state=suspended", ws, {"state": "suspended"}),
        Query("workspaces: state=suspended, deep", ws, {"state": "suspended", "cursor": deep}),
        Query("workspaces: tier=enterprise", ws, {"tier": "enterprise"}),
        Query("workspaces: cell=cell-3", ws, {"cell": "cell-3"}),
        Query(f"workspaces: cell={NEW_CELL}", ws, {"cell": NEW_CELL}),
        Query("workspaces: desired_release=10.7.0", ws, {"desired_release": "10.7.0"}),
        Query(f"workspaces: desired_release={CANARY}", ws, {"desired_release": CANARY}),
        Query(f"workspaces: observed_release={CANARY}", ws, {"observed_release": CANARY}),
        Query("workspaces: cell + state + tier", ws, {"cell": "cell-5", "state": "active", "tier": "professional"}),
        Query("workspaces: slug_prefix=oak-12", ws, {"slug_prefix": "oak-12"}),
        Query("workspaces: slug_prefix=r", ws, {"slug_prefix": "r"}),
        Query("workspaces: slug_contains=1234", ws, {"slug_contains": "1234"}),
        Query("workspaces: slug_contains=ven-9", ws, {"slug_contains": "ven-9"}),
        Query("owner: workspaces", ws, {}, owner=True),
        Query("owner: workspaces, state=hibernated", ws, {"state": "hibernated"}, owner=True),
        Query("audit: newest", audit, {}),
        Query("audit: deep page (before_id)", audit, {"before_id": fleet.audit_entries // 2}),
        Query("audit: organization", audit, {"organization_id": fleet.sample_organization_id}),
        Query("audit: target", audit, {"target_id": target[0]}),
        Query("audit: action=cell.register", audit, {"action": "cell.register"}),
        Query("audit: action=workspace.create", audit, {"action": "workspace.create"}),
        Query("audit: actor=system:billing", audit, {"actor": "system:billing"}),
        Query("audit: actor=<one member>", audit, {"actor": "account:c4ca4238-a0b9-2382-0dcc-509a6f75849b"}),
        Query("audit: since 1 h ago", audit, {"since": (now - timedelta(hours=1)).isoformat()}),
        Query(
            "audit: a 2 h window, half way back",
            audit,
            {"since": (now - span / 2).isoformat(), "until": (now - span / 2 + timedelta(hours=2)).isoformat()},
        ),
        Query("audit: until 3/4 of the way back", audit, {"until": (now - span * 3 / 4).isoformat()}),
        Query(
            "audit: organization + action",
            audit,
            {"organization_id": fleet.sample_organization_id, "action": "workspace.hibernated"},
        ),
        Query("owner: audit", audit, {}, owner=True),
    ]


def owner_token(url: str, organization_id: str) -> str:
    """A token of a new owner of ``organization_id`` (written as ``canopy`` would: account, membership, token)."""
    import uuid

    from control_plane.accounts.models import Account, Membership
    from control_plane.core.authz import Role
    from control_plane.core.clock import utcnow
    from control_plane.core.db import reset_engine, session_scope
    from control_plane.core.security import hash_password
    from control_plane.core.settings import get_settings
    from control_plane.tokens import service as tokens

    os.environ["CANOPY_DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engine()
    org = uuid.UUID(organization_id)
    with session_scope() as session:
        account = Account(
            email=f"owner-{os.urandom(3).hex()}@bench.example.com",
            password_hash=hash_password(os.urandom(12).hex()),
            email_verified_at=utcnow(),
        )
        session.add(account)
        session.flush()
        session.add(Membership(organization_id=org, account_id=account.id, role=Role.owner))
        _, secret = tokens.issue(
            session, account_id=account.id, role=Role.owner, organization_id=org, name="bench", actor="bench"
        )
    return secret


def timed(client: httpx.Client, query: Query, headers: dict[str, str], requests: int) -> tuple[list[float], int]:
    """``requests`` timings (ms) of ``query`` after one untimed, and how many items a page held."""
    first = client.get(query.path, params=query.params, headers=headers)
    if first.status_code != 200:
        raise SystemExit(f"{query.label}: {first.status_code} {first.text[:300]}")
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(query.path, params=query.params, headers=headers)
        response.json()
        times.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
    return times, len(first.json().get("items", [None]))


def api_section(args: argparse.Namespace) -> bool:
    """Fill a database, serve it, time the queries; whether every p99 met the target."""
    database = f"bench_fleet_{os.urandom(3).hex()}"
    url = f"{ADMIN_URL.rpartition('/')[0]}/{database}"
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    state = Path(tempfile.mkdtemp(prefix="canopy-fleet-"))
    server: subprocess.Popen[bytes] | None = None
    try:
        from control_plane.core.migrate import upgrade

        upgrade(url)
        started = time.perf_counter()
        organizations = max(1, args.workspaces // 100)
        fleet = fill(url, organizations=organizations, workspaces=args.workspaces, audit_entries=args.audit)
        print(
            f"filled {fleet.workspaces} workspaces in {organizations} organizations and {fleet.audit_entries} audit"
            f" entries in {time.perf_counter() - started:.0f} s (bulk SQL, ANALYZE)"
        )
        port = free_port()
        env = {**os.environ, "CANOPY_DATABASE_URL": url, "CANOPY_STATE_DIR": str(state), "CANOPY_DEV_MODE": "true"}
        cli = [sys.executable, "-m", "control_plane.cli"]
        operator = subprocess.run(
            [*cli, "create-account", "--email", "operator@bench.example.com", "--role", "operator"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        owner = owner_token(url, fleet.sample_organization_id)
        with open(state / "api.log", "wb") as log:
            server = subprocess.Popen([*cli, "api", "--port", str(port)], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, time.monotonic() + 60)
        rows = []
        with httpx.Client(base_url=base, timeout=30) as client:
            for query in api_queries(url, fleet):
                token = owner if query.owner else operator
                times, items = timed(client, query, {"Authorization": f"Bearer {token}"}, args.requests)
                rows.append((query.label, items, percentile(times, 0.5), percentile(times, 0.99)))
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    width = max(len(label) for label, *_ in rows)
    print(f"\n{'query':<{width}}  items  p50 ms  p99 ms  p99 <= {TARGET_P99_MS:.0f} ms")
    for label, items, p50, p99 in rows:
        print(f"{label:<{width}}  {items:>5}  {p50:>6.1f}  {p99:>6.1f}  {'yes' if p99 <= TARGET_P99_MS else 'NO'}")
    met = all(p99 <= TARGET_P99_MS for *_, p99 in rows)
    print(f"\nevery p99 <= {TARGET_P99_MS:.0f} ms: {'yes' if met else 'no'} ({args.requests} requests per query)")
    return met


SECTIONS: dict[str, Callable[[argparse.Namespace], bool]] = {"api": api_section}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only this section (repeatable)")
    parser.add_argument("--workspaces", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=1_000_000, help="audit entries")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    args = parser.parse_args()
    for name in args.only or list(SECTIONS):
        print(f"== {name} ==")
        SECTIONS[name](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
