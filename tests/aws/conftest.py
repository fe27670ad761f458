"""AWS provider tests: boto3 against a moto server over HTTP, pooled databases on the real PostgreSQL.

``aws_cell`` provisions, once per session, what a cell provides (a VPC with two private subnets, a
Route53 zone, the shared bucket and key, and the database admin secret pointing at the test
PostgreSQL) plus a zone for silo names. Tests name everything after fresh workspace ids, so they
share the moto account without resetting it.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import boto3
import pytest

from control_plane.core.settings import Settings
from control_plane.credentials.models import Purpose
from control_plane.providers.aws.common import Aws
from control_plane.providers.aws.sets import PooledProviders, SiloProviders, pooled_providers, silo_providers
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.providers.base import WorkspaceSpec
from infra.conventions import CellOutputs, cell_names, cell_tags, s3_tagging, tag_list
from tests.harness.moto import ACCOUNT_ID, REGION, MotoServer, moto_server  # noqa: F401

CELL = "cell-a"
CELL_DOMAIN = "cell-a.canopy-test.example.com"
SILO_DOMAIN = "silo.canopy-test.example.com"
FAKE_CA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").decode()


class SessionSecrets(dict[tuple[uuid.UUID, Purpose], str]):
    """Random workspace secrets kept for the session: what the control plane's credential store hands providers
    (these tests have no control-plane database)."""

    def __call__(self, workspace_id: uuid.UUID, purpose: Purpose) -> str:
        return self.setdefault((workspace_id, purpose), secrets.token_urlsafe(32))


@dataclass(frozen=True)
class CloudCell:
    """What the session's fake cell provides."""

    outputs: CellOutputs
    silo_zone_id: str


def _zone(name: str) -> str:
    zone = boto3.client("route53").create_hosted_zone(Name=name, CallerReference=uuid.uuid4().hex)
    return str(zone["HostedZone"]["Id"]).removeprefix("/hostedzone/")


def _subnets() -> list[str]:
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    return [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.42.{i}.0/24", AvailabilityZone=f"{REGION}{az}")["Subnet"][
            "SubnetId"
        ]
        for i, az in enumerate("ab")
    ]


def _admin_secret(admin_url: str, key_arn: str, cell: str) -> str:
    """The cell's admin secret, in RDS's JSON shape plus host/port (here: the machine's PostgreSQL)."""
    url = urlsplit(admin_url)
    value = {"username": url.username, "password": "unused-under-trust", "host": url.hostname, "port": url.port}
    secret = boto3.client("secretsmanager").create_secret(
        Name=f"{cell_names(cell).prefix}-admin", SecretString=json.dumps(value), KmsKeyId=key_arn
    )
    return str(secret["ARN"])


def _oidc_provider(cell: str) -> str:
    """The IAM OIDC provider of the cell's shared cluster (whose issuer is made up: the cluster is not in moto)."""
    iam = boto3.client("iam")
    issuer = f"https://oidc.eks.{REGION}.amazonaws.com/id/{uuid.uuid4().hex.upper()}"
    provider = iam.create_open_id_connect_provider(
        Url=issuer, ClientIDList=["sts.amazonaws.com"], Tags=tag_list(cell_tags(cell))
    )
    return str(provider["OpenIDConnectProviderArn"])


def make_cloud_cell(admin_url: str, name: str = CELL) -> CloudCell:
    """Cell ``name``'s shared resources in the moto server boto3 points at (once per session and name). The shared
    bucket has no TLS-only policy: moto applies a matching Deny to every object request regardless of its
    conditions.
    """
    names = cell_names(name)
    domain = f"{name}.canopy-test.example.com"
    key_arn = boto3.client("kms").create_key(Description="cell key")["KeyMetadata"]["Arn"]
    bucket = names.bucket(ACCOUNT_ID)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.put_bucket_tagging(Bucket=bucket, Tagging=s3_tagging(cell_tags(name)))
    outputs = CellOutputs(  # built directly: moto's zone ids do not start with "Z" like real ones
        name=name,
        region=REGION,
        cluster_name=names.cluster,
        cluster_endpoint=f"https://{name}.eks.example.com",
        cluster_ca=FAKE_CA,
        postgres_host=f"{name}.cluster-x.eu-west-1.rds.amazonaws.com",
        postgres_port=5432,
        postgres_admin_secret_arn=_admin_secret(admin_url, key_arn, name),
        bucket_name=bucket,
        kms_key_arn=key_arn,
        zone_id=_zone(domain),
        domain=domain,
        control_plane_role_arn=f"arn:aws:iam::{ACCOUNT_ID}:role/{names.control_plane_role}",
        oidc_provider_arn=_oidc_provider(name),
        private_subnet_ids=tuple(_subnets()),
        max_workspaces=100,
        max_databases=100,
    )
    return CloudCell(outputs, _zone(SILO_DOMAIN))


@pytest.fixture(scope="session")
def aws_cell(moto_server: MotoServer, admin_url: str) -> CloudCell:  # noqa: F811
    """The session's cell (see :func:`make_cloud_cell`)."""
    return make_cloud_cell(admin_url)


@pytest.fixture(scope="session")
def aws(moto_server: MotoServer) -> Aws:  # noqa: F811
    """Shared clients (built after the environment points at moto)."""
    return Aws()


@pytest.fixture(scope="session")
def settings(aws_cell: CloudCell) -> Settings:
    """Control-plane settings of the AWS providers under test (short waits: moto answers at once)."""
    return Settings(
        aws_environment="test",
        aws_region=REGION,
        aws_private_subnet_ids=list(aws_cell.outputs.private_subnet_ids),
        aws_zone_id=aws_cell.silo_zone_id,
        aws_zone_domain=SILO_DOMAIN,
        aws_wait_timeout_seconds=10.0,
        aws_poll_seconds=0.05,
        cell_postgres_sslmode="disable",
    )


@pytest.fixture(scope="session")
def silo(aws: Aws, settings: Settings) -> SiloProviders:
    """The silo providers."""
    return silo_providers(settings, aws)


@pytest.fixture(scope="session")
def pooled(aws: Aws, settings: Settings, aws_cell: CloudCell) -> PooledProviders:
    """The pooled providers, with a cell lookup that knows the session's cell."""
    return pooled_providers(settings, aws, {CELL: aws_cell.outputs}.__getitem__, SessionSecrets())


@pytest.fixture(scope="session")
def sweep(aws: Aws) -> LeakSweep:
    """The leak sweep of the test region."""
    return LeakSweep(aws, REGION)


@pytest.fixture
def workspace() -> Callable[..., WorkspaceSpec]:
    """Factory: a fresh workspace (new id, slug and organization) of ``tier``."""

    def make(tier: str = "enterprise", cell: str | None = None) -> WorkspaceSpec:
        ws_id = uuid.uuid4()
        return WorkspaceSpec(
            id=ws_id,
            slug=f"t{ws_id.hex[:10]}",
            organization_id=uuid.uuid4(),
            tier=tier,
            region=REGION,
            display_name="Test workspace",
            cell=cell,
        )

    return make


@pytest.fixture
def cleanup() -> Iterator[list[Callable[[], object]]]:
    """Callbacks run after the test even when it fails (teardowns of what it provisioned)."""
    callbacks: list[Callable[[], object]] = []
    yield callbacks
    for callback in reversed(callbacks):
        callback()
