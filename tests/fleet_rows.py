"""A fleet's rows written by bulk SQL (``INSERT ... SELECT generate_series``): organizations, workspaces spread
over cells, tiers, lifecycle states and releases, and audit entries, for the listing plan tests and
``bench/fleet_scale.py``. The rows are fixtures for reading (no workspace behind them), not product states."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

CELLS = 8
RELEASES = ("10.5.0", "10.6.0", "10.7.0", "10.8.0", "10.9.0")
NEW_CELL = "cell-new"  # a cell opened lately: 1 % of the workspaces
CANARY = "11.0.0-rc.1"  # a release on 1 % of the workspaces (desired; observed by half of them)
WORDS = [
    "acme",
    "alpha",
    "amber",
    "apex",
    "arbor",
    "atlas",
    "aurora",
    "beacon",
    "birch",
    "blue",
    "bolt",
    "cedar",
    "cloud",
    "coral",
    "crest",
    "delta",
    "ember",
    "falcon",
    "fern",
    "forge",
    "frost",
    "garnet",
    "glade",
    "harbor",
    "hazel",
    "indigo",
    "iris",
    "jade",
    "juniper",
    "kestrel",
    "lark",
    "lumen",
    "maple",
    "meadow",
    "nova",
    "oak",
    "onyx",
    "orbit",
    "pine",
    "quartz",
    "raven",
    "ridge",
    "sage",
    "slate",
    "spruce",
    "summit",
    "tide",
    "vale",
    "willow",
    "zephyr",
]
AUDIT_ACTIONS = [
    "workspace.create",
    "workspace.trialing",
    "workspace.active",
    "workspace.hibernated",
    "workspace.wake",
    "workspace.past_due",
    "workspace.suspended",
    "workspace.pending_deletion",
    "workspace.deleted",
    "token.create",
    "token.revoke",
    "member.invite",
    "member.join",
    "subscription.create",
    "subscription.update",
    "invoice.paid",
    "export.request",
    "cell.register",
]


@dataclass(frozen=True)
class Fleet:
    """What :func:`fill` wrote: sizes, and an organization of average size (for an owner's view)."""

    organizations: int
    workspaces: int
    audit_entries: int
    sample_organization_id: str


def fill(url: str, *, organizations: int, workspaces: int, audit_entries: int, inert: bool = False) -> Fleet:
    """Write the rows into the migrated database at ``url`` and ``ANALYZE`` the tables.

    Workspace ``i``: organization ``i % organizations``; enterprise one in 20; cell ``cell-k`` (none for one in 50,
    :data:`NEW_CELL` for one in 100);
    states 55 % active, 15 % trialing, 10 % hibernated, 3 % past_due, 2 % suspended, 2 % pending_deletion,
    3 % provisioning, 1 % pending_verification, 9 % deleted; desired release one of :data:`RELEASES`
    (:data:`CANARY` for one in 50), observed the same (the one before for a tenth, none while provisioning); slug
    ``<word>-<i>``; created 30 s apart.
    ``inert``: no row is one the workers act on (for a plane with workers running): each live, provisioning,
    pending_verification or pending_deletion one is ``hibernated`` instead, resuming the state it had (``active``
    for the last three): never converged, never due for a reconcile (the deleted 9 % stay deleted). Scheduled
    backups would still pick the hibernated ones: such a plane runs without them.
    Audit entry ``j``: about a workspace (80 %), its organization (10 %), its subscription (9 %) or a cell (1 %,
    no organization), 5 s apart, by a member, the reconciler or billing."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO organizations (id, name, created_at)"
            " SELECT gen_random_uuid(), 'fleet-' || lpad(o::text, 7, '0'), now() - interval '1 day' * 400"
            " FROM generate_series(0, %s - 1) AS o",
            [organizations],
        )
        conn.execute(
            """
            WITH orgs AS (SELECT array_agg(id ORDER BY name) AS ids FROM organizations WHERE name LIKE 'fleet-%%'),
            spread AS (
                SELECT i, abs(hashtext(i::text)) %% 100 AS p FROM generate_series(0, %(n)s - 1) AS i
            ), rows AS (
                SELECT i, orgs.ids[1 + i %% %(orgs)s] AS organization_id,
                    (%(words)s::text[])[1 + (i * 31) %% %(word_count)s] || '-' || i AS slug,
                    CASE WHEN i %% 20 = 0 THEN 'enterprise' ELSE 'professional' END AS tier,
                    CASE WHEN i %% 50 = 7 THEN NULL WHEN i %% 100 = 9 THEN %(new_cell)s
                         ELSE 'cell-' || ((i * 13) %% %(cells)s) END AS cell,
                    CASE WHEN i %% 100 IN (11, 12) THEN %(canary)s
                         ELSE (%(releases)s::text[])[1 + (i / 7) %% %(release_count)s] END AS desired_release,
                    CASE
                        WHEN p < 55 THEN 'active' WHEN p < 70 THEN 'trialing' WHEN p < 80 THEN 'hibernated'
                        WHEN p < 83 THEN 'past_due' WHEN p < 85 THEN 'suspended' WHEN p < 87 THEN 'pending_deletion'
                        WHEN p < 90 THEN 'provisioning' WHEN p < 91 THEN 'pending_verification' ELSE 'deleted'
                    END AS state,
                    now() - interval '30 seconds' * (%(n)s - i) AS created_at
                FROM spread, orgs
            ), placed AS (
                SELECT rows.*, CASE WHEN %(inert)s AND state <> 'deleted' THEN 'hibernated' ELSE state END AS placed,
                    CASE WHEN state IN ('hibernated', 'pending_deletion') THEN 'active'
                         WHEN %(inert)s AND state IN ('provisioning', 'pending_verification') THEN 'active'
                         WHEN %(inert)s AND state <> 'deleted' THEN state END AS resume
                FROM rows
            )
            INSERT INTO workspaces (id, organization_id, slug, display_name, tier, region, cell, desired_release,
                observed_release, lifecycle_state, resume_state, conditions, outputs, generation,
                observed_generation, reconcile_attempts, created_at, updated_at, deleted_at, deletion_requested_at,
                purge_after)
            SELECT gen_random_uuid(), organization_id, slug, slug, tier::tier, 'eu-west-1', cell, desired_release,
                CASE WHEN state IN ('provisioning', 'pending_verification') THEN NULL
                     WHEN i %% 10 = 3 OR i %% 100 = 12
                     THEN (%(releases)s::text[])[greatest(1, (i / 7) %% %(release_count)s)]
                     ELSE desired_release END,
                placed::lifecycle, resume::lifecycle,
                '[]', '{}', 2, 2, 0, created_at, created_at,
                CASE WHEN placed = 'deleted' THEN created_at + interval '1 day' END,
                CASE WHEN placed = 'pending_deletion' THEN created_at + interval '1 day' END,
                CASE WHEN placed = 'pending_deletion' THEN created_at + interval '31 days' END
            FROM placed
            """,
            {
                "n": workspaces,
                "inert": inert,
                "orgs": organizations,
                "words": list(WORDS),
                "word_count": len(WORDS),
                "cells": CELLS,
                "new_cell": NEW_CELL,
                "canary": CANARY,
                "releases": list(RELEASES),
                "release_count": len(RELEASES),
            },
        )
        conn.execute(
            """
            WITH targets AS (
                SELECT array_agg(id ORDER BY created_at) AS ws, array_agg(organization_id ORDER BY created_at) AS org
                FROM workspaces
            ), rows AS (
                SELECT j, (j::bigint * 7919) %% 100 AS p, 1 + (j::bigint * 104729) %% cardinality(ws) AS w, ws, org
                FROM generate_series(0, %(n)s - 1) AS j, targets
            )
            INSERT INTO audit_entries (occurred_at, actor, organization_id, action, target_type, target_id, after)
            SELECT now() - interval '5 seconds' * (%(n)s - j),
                CASE WHEN p < 40 THEN 'account:' || md5((j %% 3000)::text)::uuid
                     WHEN p < 80 THEN 'system:reconciler' ELSE 'system:billing' END,
                CASE WHEN p < 99 THEN org[w] END,
                CASE WHEN p < 80 THEN (%(actions)s::text[])[1 + j %% 9]
                     WHEN p < 90 THEN (%(actions)s::text[])[10 + j %% 4]
                     WHEN p < 99 THEN (%(actions)s::text[])[14 + j %% 4] ELSE 'cell.register' END,
                CASE WHEN p < 80 THEN 'workspace' WHEN p < 90 THEN 'organization' WHEN p < 99 THEN 'subscription'
                     ELSE 'cell' END,
                CASE WHEN p < 80 THEN ws[w]::text WHEN p < 99 THEN org[w]::text ELSE 'cell-' || (j %% %(cells)s) END,
                '{"bulk": true}'
            FROM rows
            """,
            {"n": audit_entries, "actions": list(AUDIT_ACTIONS), "cells": CELLS},
        )
        conn.execute("ANALYZE organizations, workspaces, audit_entries")
        row = conn.execute("SELECT id::text FROM organizations WHERE name = 'fleet-' || lpad('1', 7, '0')").fetchone()
    assert row is not None
    return Fleet(organizations, workspaces, audit_entries, row[0])
