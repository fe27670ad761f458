"""Pure pieces of the reconciler and the local providers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from control_plane.credentials.models import Purpose
from control_plane.providers.base import WorkspaceSpec
from control_plane.providers.local import LocalDatabase, LocalDns, _libpq_url
from control_plane.providers.workspace_client import admin_username, control_url
from control_plane.reconciler.status import backoff_seconds, set_condition, short_error
from control_plane.reconciler.steps import STEPS
from control_plane.reconciler.tasks import ACTIONS, converge, delete, every, hibernate, nothing
from control_plane.workspaces.lifecycle import (
    HIBERNATABLE_STATES,
    RUNNING_STATES,
    TRANSITIONS,
    IllegalTransition,
    Lifecycle,
    NotHibernated,
    NotPendingDeletion,
    cancel_target,
    check_transition,
    resume_state_on_entering,
    wake_target,
)

SPEC = WorkspaceSpec(
    id=uuid.UUID("0123456789abcdef0123456789abcdef"),
    slug="acme",
    organization_id=uuid.uuid4(),
    tier="professional",
    region="local",
    display_name="Acme",
)


@pytest.mark.parametrize(
    ("email", "username"),
    [
        ("Jane.Doe+chat@example.com", "jane.doe"),
        ("o'brien@example.com", "obrien"),
        ("42bob@example.com", "bob"),
        ("x@example.com", "x-admin"),
        ("___@example.com", "admin"),
        ("all@example.com", "all-admin"),
        ("averyveryverylongname.with.dots@example.com", "averyveryverylongname."),
    ],
)
def test_admin_username_follows_mattermost_rules(email: str, username: str) -> None:
    assert admin_username(email) == username
    assert 3 <= len(username) <= 22 and username[0].isalpha()


def test_backoff_is_exponential_capped_and_jittered() -> None:
    assert backoff_seconds(0, 1.0, 300.0, jitter=1.0) == 1.0
    assert backoff_seconds(3, 1.0, 300.0, jitter=1.0) == 8.0
    assert backoff_seconds(20, 1.0, 300.0, jitter=1.0) == 300.0
    assert backoff_seconds(10_000, 1.0, 300.0, jitter=0.5) == 150.0
    assert all(2.0 <= backoff_seconds(2, 1.0, 300.0) <= 4.0 for _ in range(200))


def test_condition_transition_time_moves_only_on_flip() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first = set_condition([], "ComputeReady", True, "Ready", "", t0)
    same = set_condition(first, "ComputeReady", True, "Ready", "again", t0 + timedelta(minutes=1))
    flipped = set_condition(same, "ComputeReady", False, "Failed", "boom", t0 + timedelta(minutes=2))
    assert same[0]["last_transition_at"] == t0.isoformat() and same[0]["message"] == "again"
    assert flipped[0]["last_transition_at"] == (t0 + timedelta(minutes=2)).isoformat()
    ordered = set_condition(flipped, "DatabaseReady", True, "Ready", "", t0)
    assert [c["type"] for c in ordered] == ["DatabaseReady", "ComputeReady"]


def test_short_error_never_carries_secrets() -> None:
    exc = RuntimeError("could not connect to postgresql://ws_x:s3cr3t@host/db\nsecond line")
    text = short_error("compute", exc, ["s3cr3t"])
    assert text == "compute: RuntimeError: could not connect to postgresql://ws_x:***@host/db"


def test_cron_every() -> None:
    assert every(2) == "* * * * * */2"
    assert every(0.2) == "* * * * * */1"
    assert every(300) == "*/5 * * * *"


def test_every_lifecycle_state_has_an_action() -> None:
    assert set(ACTIONS) == set(Lifecycle)
    assert all(ACTIONS[s] is converge for s in RUNNING_STATES)
    assert ACTIONS[Lifecycle.pending_deletion] is delete and ACTIONS[Lifecycle.hibernated] is hibernate
    assert ACTIONS[Lifecycle.deleted] is nothing and ACTIONS[Lifecycle.pending_verification] is nothing
    assert [s.condition for s in STEPS if s.condition] == [
        "DatabaseReady",
        "StorageReady",
        "ComputeReady",
        "DnsReady",
        "Available",
    ]


def _stored(workspace_id: uuid.UUID, purpose: Purpose) -> str:
    """A stored database password that needs quoting in a URL."""
    return "p@ss/word"


def test_workspace_database_urls_tcp_and_unix_socket() -> None:
    tcp = LocalDatabase("postgresql://postgres@127.0.0.1:5432/canopy", _stored).connection_url(SPEC)
    assert tcp == "postgresql://ws_0123456789ab:p%40ss%2Fword@127.0.0.1:5432/ws_0123456789ab"
    sock = LocalDatabase("postgresql://postgres@/canopy?host=/tmp/pg%20dir&port=5433", _stored).connection_url(SPEC)
    assert sock.startswith("postgresql://ws_0123456789ab:")
    assert sock.endswith("@/ws_0123456789ab?host=/tmp/pg%20dir&port=5433")
    assert _libpq_url({"dbname": "d"}) == "postgresql:///d"


def test_local_endpoint_url() -> None:
    assert LocalDns("localhost", "http://localhost:8000").endpoint_url(SPEC) == "http://localhost:8000/w/acme"
    assert LocalDns("canopy.dev", "https://canopy.dev/").endpoint_url(SPEC) == "https://canopy.dev/w/acme"
    assert LocalDns("localhost", "http://localhost:8000").subdomain_url(SPEC) == "http://acme.localhost:8000"
    assert LocalDns("canopy.dev", "https://canopy.dev").subdomain_url(SPEC) == "https://acme.canopy.dev"


@pytest.mark.parametrize("state", sorted(HIBERNATABLE_STATES))
def test_hibernation_pauses_a_state_and_waking_resumes_it(state: Lifecycle) -> None:
    check_transition(state, Lifecycle.hibernated)
    assert wake_target(Lifecycle.hibernated, state) == state


def test_only_serving_states_hibernate() -> None:
    assert {Lifecycle.trialing, Lifecycle.active, Lifecycle.past_due, Lifecycle.suspended} == HIBERNATABLE_STATES
    assert TRANSITIONS[Lifecycle.hibernated] == HIBERNATABLE_STATES | {Lifecycle.restoring, Lifecycle.pending_deletion}
    for state in (Lifecycle.provisioning, Lifecycle.pending_deletion, Lifecycle.hibernated):
        with pytest.raises(IllegalTransition) as refused:
            check_transition(state, Lifecycle.hibernated)
        assert refused.value.status == 409 and refused.value.slug == "illegal-transition"


@pytest.mark.parametrize("state", sorted(set(Lifecycle) - {Lifecycle.hibernated}))
def test_only_a_hibernated_workspace_wakes(state: Lifecycle) -> None:
    with pytest.raises(NotHibernated) as refused:
        wake_target(state, None)
    problem = refused.value
    assert (problem.status, problem.slug) == (409, "illegal-transition")
    assert problem.extra["current_state"] == state.value and problem.extra["requested_action"] == "wake"
    assert problem.extra["allowed_states"] == sorted(s.value for s in TRANSITIONS[state])


DELETABLE = frozenset(s for s, targets in TRANSITIONS.items() if Lifecycle.pending_deletion in targets)


def test_cancelling_a_deletion_returns_to_any_state_it_can_come_from() -> None:
    awake = DELETABLE - {Lifecycle.hibernated}
    assert TRANSITIONS[Lifecycle.pending_deletion] == awake | {Lifecycle.deleted}
    for state in awake:
        remembered = resume_state_on_entering(state, None, Lifecycle.pending_deletion)
        assert remembered == state and cancel_target(Lifecycle.pending_deletion, remembered) == state
    # A hibernated workspace's deletion remembers the state hibernation paused: cancelling starts it again.
    assert (
        resume_state_on_entering(Lifecycle.hibernated, Lifecycle.trialing, Lifecycle.pending_deletion)
        == Lifecycle.trialing
    )
    assert resume_state_on_entering(Lifecycle.pending_deletion, Lifecycle.trialing, Lifecycle.trialing) is None


@pytest.mark.parametrize("state", sorted(set(Lifecycle) - {Lifecycle.pending_deletion}))
def test_only_a_deletion_pending_is_cancelled(state: Lifecycle) -> None:
    with pytest.raises(NotPendingDeletion) as refused:
        cancel_target(state, None)
    assert (refused.value.status, refused.value.extra["requested_action"]) == (409, "cancelled")


def test_waking_cannot_resume_a_state_hibernation_never_pauses() -> None:
    with pytest.raises(IllegalTransition):
        wake_target(Lifecycle.hibernated, Lifecycle.provisioning)


def test_the_control_plane_calls_local_servers_inside_and_cluster_servers_at_their_public_address() -> None:
    outputs: dict[str, object] = {"internal_url": "http://svc.ns.svc.cluster.local:8065"}
    assert control_url("aws", outputs, "https://acme.cell.example") == "https://acme.cell.example"
    assert control_url("local", {"internal_url": "http://127.0.0.1:4242"}, "http://localhost:8000/w/acme") == (
        "http://127.0.0.1:4242"
    )
    assert control_url("local", {}, "http://localhost:8000/w/acme") is None  # a stopped server has no address
