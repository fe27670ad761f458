"""Every list query the API builds reads an index, never the whole table, on a fleet-sized database.

A scratch database is filled by bulk SQL (20,000 workspaces, 100,000 audit entries, ``ANALYZE``); each case
compiles the statement the repository builds for a filter combination and asserts, on its ``EXPLAIN (FORMAT
JSON)``, that no ``Seq Scan`` reads the table and that one of the indexes meant for that filter does (so dropping
any listing index fails the cases that need it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql

from control_plane.audit import repository as audit_repository
from control_plane.audit.repository import AuditFilter
from control_plane.core.migrate import upgrade
from control_plane.workspaces import repository as workspace_repository
from control_plane.workspaces.lifecycle import Lifecycle
from control_plane.workspaces.models import Tier
from control_plane.workspaces.repository import WorkspaceFilter
from tests.fleet_rows import CANARY, NEW_CELL, Fleet, fill

WORKSPACES = 20_000
AUDIT_ENTRIES = 100_000
PAGE = 51  # the API's default page and one more, as the service asks


@pytest.fixture(scope="module")
def fleet_db(create_database: Callable[[str], str]) -> Iterator[tuple[str, Fleet]]:
    """A migrated scratch database holding a fleet's rows."""
    url = create_database("list_plans")
    upgrade(url)
    yield url, fill(url, organizations=200, workspaces=WORKSPACES, audit_entries=AUDIT_ENTRIES)


def plan_nodes(url: str, statement: Select[Any]) -> list[dict[str, Any]]:
    """Every node of the plan of ``statement`` (compiled with its parameters inlined)."""
    sql = str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    with psycopg.connect(url) as conn:
        row = conn.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchone()  # type: ignore[arg-type]
    assert row is not None
    plan = row[0] if isinstance(row[0], list) else json.loads(row[0])
    nodes, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def assert_index_plan(url: str, statement: Select[Any], table: str, indexes: set[str]) -> None:
    """No sequential scan over ``table``, and one of ``indexes`` read."""
    nodes = plan_nodes(url, statement)
    shape = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes]
    assert not [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == table], shape
    used = {n["Index Name"] for n in nodes if "Index Name" in n}
    assert used & indexes, (shape, indexes)


def middle_cursor(url: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) of a workspace half way down the list: a deep page starts after it."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT created_at, id FROM workspaces ORDER BY created_at, id OFFSET %s LIMIT 1", [WORKSPACES // 2]
        ).fetchone()
    assert row is not None
    return row[0], row[1]


W = "ix_workspaces_"
WORKSPACE_INDEX = {
    "organization_id": W + "org_created",
    "state": W + "state_created",
    "tier": W + "tier_created",
    "cell": W + "cell_created",
    "desired_release": W + "desired_release_created",
    "observed_release": W + "observed_release_created",
    "slug_prefix": W + "slug_trgm",
    "slug_contains": W + "slug_trgm",
}
ORG = "<organization>"
# (filters, broad): a broad filter matches so many rows that reading the ordering index and skipping the few
# misses is cheaper than its own index, and the planner may do either; a narrow one must read its own index.
WORKSPACE_CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, False),
    ({"organization_id": ORG}, False),
    ({"state": Lifecycle.active}, True),
    ({"state": Lifecycle.suspended}, False),
    ({"tier": Tier.enterprise}, False),
    ({"tier": Tier.professional}, True),
    ({"cell": "cell-3"}, True),
    ({"cell": NEW_CELL}, False),
    ({"desired_release": "10.7.0"}, True),
    ({"desired_release": CANARY}, False),
    ({"observed_release": CANARY}, False),
    ({"slug_prefix": "raven-1"}, False),
    ({"slug_prefix": "oak-12"}, False),
    ({"slug_contains": "1234"}, False),
    ({"slug_contains": "ven-19"}, False),
    ({"organization_id": ORG, "state": Lifecycle.hibernated}, False),
    ({"organization_id": ORG, "slug_contains": "ven"}, False),
    ({"state": Lifecycle.past_due, "tier": Tier.enterprise}, False),
    ({"cell": "cell-5", "state": Lifecycle.active, "tier": Tier.professional}, True),
    ({"cell": NEW_CELL, "state": Lifecycle.active}, False),
    ({"cell": "cell-2", "desired_release": CANARY}, False),
    ({"desired_release": "10.9.0", "observed_release": "10.8.0"}, True),
    ({"state": Lifecycle.trialing, "slug_contains": "maple"}, False),
]


@pytest.mark.parametrize("deep", [False, True], ids=["first-page", "deep-page"])
@pytest.mark.parametrize(("case", "broad"), WORKSPACE_CASES, ids=lambda c: "+".join(c) if isinstance(c, dict) else "")
def test_each_workspace_listing_reads_an_index(
    fleet_db: tuple[str, Fleet], case: dict[str, Any], broad: bool, deep: bool
) -> None:
    url, fleet = fleet_db
    filters = WorkspaceFilter(**{k: fleet.sample_organization_id if v == ORG else v for k, v in case.items()})
    statement = workspace_repository.page_query(filters, middle_cursor(url) if deep else None, PAGE)
    indexes = {WORKSPACE_INDEX[name] for name in case}
    if broad or not case:
        indexes.add(W + "created")
    assert_index_plan(url, statement, "workspaces", indexes)


A = "ix_audit_entries_"
AUDIT_INDEX = {
    "organization_id": A + "org_id",
    "target_type": A + "target_type_id",
    "target_id": A + "target_id",
    "action": A + "action_id",
    "actor": A + "actor_id",
    "since": A + "occurred_at",
    "until": A + "occurred_at",
}
TARGET = "<workspace>"
NOW = datetime.now(UTC)
AUDIT_CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, False),
    ({"organization_id": ORG}, False),
    ({"target_id": TARGET}, False),
    ({"target_type": "workspace", "target_id": TARGET}, False),
    ({"target_type": "cell"}, False),
    ({"action": "cell.register"}, False),
    ({"action": "workspace.create"}, True),
    ({"actor": "system:billing"}, True),
    ({"actor": "account:c4ca4238-a0b9-2382-0dcc-509a6f75849b"}, False),
    ({"since": NOW - timedelta(hours=1)}, True),
    ({"since": NOW - timedelta(days=3), "until": NOW - timedelta(days=3) + timedelta(hours=2)}, False),
    # Older than a time, newest first: the planner reads the id order and skips the newer entries (an index scan).
    ({"until": NOW - timedelta(days=5)}, True),
    ({"organization_id": ORG, "action": "workspace.hibernated"}, False),
    ({"organization_id": ORG, "since": NOW - timedelta(days=2)}, False),
    ({"action": "token.create", "actor": "system:reconciler"}, True),
]


@pytest.mark.parametrize("deep", [False, True], ids=["first-page", "deep-page"])
@pytest.mark.parametrize(("case", "broad"), AUDIT_CASES, ids=lambda c: "+".join(c) if isinstance(c, dict) else "")
def test_each_audit_listing_reads_an_index(
    fleet_db: tuple[str, Fleet], case: dict[str, Any], broad: bool, deep: bool
) -> None:
    url, fleet = fleet_db
    with psycopg.connect(url) as conn:
        target = conn.execute("SELECT target_id FROM audit_entries WHERE target_type = 'workspace' LIMIT 1").fetchone()
    assert target is not None
    values = {ORG: fleet.sample_organization_id, TARGET: target[0]}
    filters = AuditFilter(**{k: values.get(v, v) if isinstance(v, str) else v for k, v in case.items()})
    statement = audit_repository.page_query(filters, AUDIT_ENTRIES // 2 if deep else None, 101)
    indexes = {AUDIT_INDEX[name] for name in case}
    if broad or not case:
        indexes.add("pk_audit_entries")
    assert_index_plan(url, statement, "audit_entries", indexes)
