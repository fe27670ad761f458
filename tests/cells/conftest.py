"""Cell tests: the real app in-process against a migrated database of their own."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from control_plane.accounts.models import Account
from control_plane.core.authz import Role
from control_plane.core.db import session_scope
from control_plane.organizations.models import Organization
from control_plane.tokens import service as tokens
from tests.conftest import configured_control_plane

ACCOUNT = "210987654321"
CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


def stack_outputs(
    name: str, region: str = "eu-west-1", max_workspaces: int = 500, max_databases: int = 500
) -> dict[str, Any]:
    """What ``pulumi stack output --json`` prints for a cell."""
    return {
        "name": name,
        "region": region,
        "cluster_name": f"canopy-cell-{name}",
        "cluster_endpoint": f"https://{name}.gr7.{region}.eks.amazonaws.com",
        "cluster_ca": CA,
        "postgres_host": f"canopy-cell-{name}.cluster-abc.{region}.rds.amazonaws.com",
        "postgres_port": 5432,
        "postgres_admin_secret_arn": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:rds!cluster-{name}-AbCdEf",
        "bucket_name": f"canopy-cell-{name}-{ACCOUNT}",
        "kms_key_arn": f"arn:aws:kms:{region}:{ACCOUNT}:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        "zone_id": "Z0123456789ABCDEFGHIJ",
        "domain": f"{name}.canopy.example.com",
        "control_plane_role_arn": f"arn:aws:iam::{ACCOUNT}:role/canopy-cell-{name}-control-plane",
        "oidc_provider_arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.{region}.amazonaws.com/id/{name.upper()}",
        "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"],
        "max_workspaces": max_workspaces,
        "max_databases": max_databases,
    }


@pytest.fixture(scope="module")
def cp_database(create_database: Callable[[str], str]) -> Iterator[str]:
    """A migrated control-plane database, configured for this module."""
    with configured_control_plane(create_database("cells")) as url:
        yield url


@pytest.fixture(scope="module")
def client(cp_database: str) -> Iterator[TestClient]:
    """The control-plane app."""
    from control_plane.app import create_app

    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def staff(cp_database: str) -> Callable[[str], dict[str, str]]:
    """Factory: ``Authorization`` headers of a new staff account with ``role``."""

    def make(role: str) -> dict[str, str]:
        with session_scope() as session:
            email = f"{role}-{uuid.uuid4().hex[:8]}@canopy.example"
            account = Account(email=email, password_hash="x", staff_role=Role(role))
            session.add(account)
            session.flush()
            _, secret = tokens.issue(
                session, account_id=account.id, role=Role(role), organization_id=None, name="test", actor="test"
            )
        return {"Authorization": f"Bearer {secret}"}

    return make


@pytest.fixture(scope="module")
def organization_id(cp_database: str) -> uuid.UUID:
    """An organization to own test workspaces."""
    with session_scope() as session:
        org = Organization(name="Cells test")
        session.add(org)
        session.flush()
        return org.id
