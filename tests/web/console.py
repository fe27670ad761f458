"""A rollout for the operator console tests, made through product paths: an owner signs up (their organization and
a professional workspace), an admin creates an Enterprise workspace there through the API (active once it serves),
an operator publishes a release and starts a rollout of it over that workspace through the API. The plan keeps the
canary soaking for an hour, so the rollout stays running until the test acts on it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

import httpx

from tests.waiting import wait_until
from tests.web.conftest import Server
from tests.web.pages import PASSWORD, new_client, sign_up_and_verify
from workspace_server.release import SCHEMA_REVISION

TIMEOUT = 120.0
HOUR = 3600


@dataclass(frozen=True)
class Fleet:
    """What the console tests look at."""

    owner: httpx.Client  # signed in to the owner's session
    owner_email: str
    operator_email: str
    operator_token: str
    professional_id: str
    enterprise_id: str
    release: str
    rollout_id: str


def staff(server: Server, role: str) -> tuple[str, str]:
    """A staff account made with ``canopy create-account``; its email and the API token it prints."""
    email = f"{role}-{uuid.uuid4().hex[:6]}@canopy.example"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CANOPY_")}
    environment.update({"CANOPY_DATABASE_URL": server.db_url, "CANOPY_DEV_MODE": "true"})
    command = [sys.executable, "-m", "control_plane.cli", "create-account", "--email", email, "--role", role]
    done = subprocess.run(
        [*command, "--password", PASSWORD], env=environment, check=True, capture_output=True, text=True, timeout=60
    )
    return email, done.stdout.strip().splitlines()[-1]


def api(server: Server, token: str) -> httpx.Client:
    """An API client with ``token``."""
    return httpx.Client(base_url=server.loopback, timeout=30, headers={"Authorization": f"Bearer {token}"})


def lifecycle_state(server: Server, workspace_id: str) -> str:
    """The workspace's lifecycle state."""
    [(state,)] = server.query("SELECT lifecycle_state::text FROM workspaces WHERE id = %s", uuid.UUID(workspace_id))
    return str(state)


def rollout_state(server: Server, rollout_id: str) -> str:
    """The rollout's state as stored."""
    [(state,)] = server.query("SELECT state::text FROM rollouts WHERE id = %s", uuid.UUID(rollout_id))
    return str(state)


def fleet_with_rollout(server: Server) -> Fleet:
    """Owner, operator, an active Enterprise workspace, a published release and a running rollout over it."""
    slug = f"fleet-{uuid.uuid4().hex[:6]}"
    owner, owner_email = new_client(server.loopback), f"owner@{slug}.example.com"
    professional_id = sign_up_and_verify(owner, owner_email, slug).split("/")[-2]
    [(organization_id,)] = server.query(
        "SELECT organization_id FROM workspaces WHERE id = %s", uuid.UUID(professional_id)
    )
    _, admin_token = staff(server, "admin")
    with api(server, admin_token) as admin:
        created = admin.post(
            "/api/v1/workspaces",
            json={"slug": f"{slug}-ent", "tier": "enterprise", "organization_id": str(organization_id)},
        )
    assert created.status_code == 201, created.text
    enterprise_id = created.json()["id"]
    wait_until("the Enterprise workspace serves", lambda: lifecycle_state(server, enterprise_id) == "active", TIMEOUT)

    operator_email, operator_token = staff(server, "operator")
    release = f"9.{uuid.uuid4().int % 1000}.0"
    with api(server, operator_token) as operator:
        published = operator.post(
            "/api/v1/releases",
            json={"version": release, "image": f"canopy/workspace:{release}", "schema_min": SCHEMA_REVISION},
        )
        assert published.status_code == 201, published.text
        plan = {"canaries": 1, "canary_soak_seconds": HOUR, "upgrade_timeout_seconds": HOUR}
        started = operator.post(
            "/api/v1/rollouts", json={"release": release, "selector": {"workspaces": [enterprise_id]}, "plan": plan}
        )
    assert started.status_code == 201, started.text
    return Fleet(
        owner,
        owner_email,
        operator_email,
        operator_token,
        professional_id,
        enterprise_id,
        release,
        started.json()["id"],
    )
