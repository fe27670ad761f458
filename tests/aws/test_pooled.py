"""Professional (pooled) providers: the database on the real PostgreSQL (the cell's admin secret in moto
points at it), the bucket prefix and its IAM policy, the pods' role, and the DNS record in the cell's zone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from control_plane.providers.aws.sets import PooledProviders
from control_plane.providers.aws.sweep import LeakSweep
from control_plane.providers.base import WorkspaceSpec
from infra.conventions import prefix_policy, tags_from_list, workspace_names, workspace_tags
from tests.aws.conftest import CELL, CELL_DOMAIN, CloudCell
from tests.aws.test_silo import _assert_attached, _assert_workload_role
from tests.credentials.scram import password_matches, role_verifier

Make = Callable[..., WorkspaceSpec]


@pytest.fixture
def pooled_workspace(workspace: Make, cleanup: list[Any], pooled: PooledProviders) -> Callable[[], WorkspaceSpec]:
    """Factory: a professional workspace in the cell whose database is dropped after the test."""

    def make() -> WorkspaceSpec:
        ws = workspace("professional", cell=CELL)
        cleanup.append(lambda: pooled.database.teardown(ws))  # roles are server-wide: never leave one behind
        return ws

    return make


def test_pooled_database_is_isolated(
    pooled: PooledProviders, pooled_workspace: Callable[[], WorkspaceSpec], admin_url: str
) -> None:
    a, b = pooled_workspace(), pooled_workspace()
    assert pooled.database.ensure(a).created == ("role", "database")
    assert pooled.database.ensure(b).created == ("role", "database")
    assert pooled.database.ensure(a).created == ()
    url_a, url_b = pooled.database.connection_url(a), pooled.database.connection_url(b)
    name_a, name_b = workspace_names("test", a.id).pooled_database, workspace_names("test", b.id).pooled_database
    with psycopg.connect(admin_url, autocommit=True) as conn:  # the role's password is the one in its URL
        assert password_matches(role_verifier(conn, name_a), str(conninfo_to_dict(url_a)["password"]))
    with psycopg.connect(url_b, autocommit=True) as conn:
        conn.execute("CREATE TABLE secrets (value text)")
        conn.execute("INSERT INTO secrets VALUES ('b only')")
    # The test server trusts 127.0.0.1 (no password check): what stops A is the database ACL itself.
    for target in (name_b, "postgres"):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            psycopg.connect(url_a.replace(f"/{name_a}?", f"/{target}?")).close()
    with psycopg.connect(url_a, autocommit=True) as conn:
        assert conn.execute("SELECT current_user, current_database()").fetchone() == (name_a, name_a)
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM secrets")
        role = conn.execute(
            "SELECT rolconnlimit, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (20, False, False, False)
        owned = conn.execute(
            "SELECT datname FROM pg_database WHERE datdba = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        ).fetchall()
        assert owned == [(name_a,)]
        assert conn.execute("SELECT has_database_privilege('public', current_database(), 'CONNECT')").fetchone() == (
            False,
        )

    # A run that died after creating the role: the next one adopts it and creates only the database.
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name_a)))
    assert pooled.database.ensure(a).created == ("database",)

    pooled.database.teardown(a)
    pooled.database.teardown(a)
    assert pooled.database.leftovers(a) == []
    assert pooled.database.leftovers(b) == [f"role {name_b}", f"database {name_b}"]


def test_pooled_storage_is_a_prefix_with_a_scoped_policy(
    pooled: PooledProviders, aws_cell: CloudCell, workspace: Make, sweep: LeakSweep
) -> None:
    a, b = workspace("professional", cell=CELL), workspace("professional", cell=CELL)
    bucket = aws_cell.outputs.bucket_name
    first = pooled.storage.ensure(a)
    assert first.created == ("storage_policy",)
    assert pooled.storage.ensure(a).created == ()
    pooled.storage.ensure(b)
    prefix = workspace_names("test", a.id).pooled_prefix
    assert first.outputs == {
        "bucket": bucket,
        "bucket_prefix": prefix,
        "kms_key_arn": aws_cell.outputs.kms_key_arn,
        "region": aws_cell.outputs.region,
        "storage_policy_arn": first.outputs["storage_policy_arn"],
    }
    iam = boto3.client("iam")
    arn = first.outputs["storage_policy_arn"]
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert policy["Path"] == "/canopy/"
    assert tags_from_list(iam.list_policy_tags(PolicyArn=arn)["Tags"]) == workspace_tags(
        a.id, a.organization_id, "professional", CELL
    )
    document = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]["Document"]
    assert document == prefix_policy(f"arn:aws:s3:::{bucket}", prefix, aws_cell.outputs.kms_key_arn)
    assert document["Statement"][0]["Resource"] == f"arn:aws:s3:::{bucket}/{prefix}*"

    # Someone widened the policy: the next ensure puts the scoped document back.
    wide = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(wide), SetAsDefault=True)
    assert pooled.storage.ensure(a).created == ()
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    assert version["Document"] == document

    s3 = boto3.client("s3")
    for ws in (a, b):
        key = workspace_names("test", ws.id).pooled_prefix + "f.txt"
        s3.put_object(Bucket=bucket, Key=key, Body=b"1")
        s3.put_object(Bucket=bucket, Key=key, Body=b"2")
    assert sweep.leftovers_for(a.id) == [f"iam policy {arn}"]
    pooled.storage.teardown(a)
    pooled.storage.teardown(a)
    assert pooled.storage.leftovers(a) == [] and sweep.leftovers_for(a.id) == []
    assert len(pooled.storage.leftovers(b)) == 2  # b's objects and policy are untouched
    pooled.storage.teardown(b)
    assert pooled.storage.leftovers(b) == []


def test_pooled_role_trusts_the_cells_oidc_provider_and_carries_the_prefix_policy(
    pooled: PooledProviders, aws_cell: CloudCell, workspace: Make, sweep: LeakSweep
) -> None:
    ws = workspace("professional", cell=CELL)
    names = workspace_names("test", ws.id)
    tags = workspace_tags(ws.id, ws.organization_id, "professional", CELL)
    storage = pooled.storage.ensure(ws).outputs["storage_policy_arn"]
    first = pooled.identity.ensure(ws)
    assert first.created == ("app_role",)
    assert first.outputs == {"workload_role_arn": f"arn:aws:iam::123456789012:role/canopy/{names.app_role}"}
    assert pooled.identity.ensure(ws).created == ()
    oidc = aws_cell.outputs.oidc_provider_arn
    _assert_workload_role(names.app_role, oidc, names.namespace, tags)
    document = prefix_policy(
        f"arn:aws:s3:::{aws_cell.outputs.bucket_name}", names.pooled_prefix, aws_cell.outputs.kms_key_arn
    )
    _assert_attached(names.app_role, document, tags)

    # Someone opened the trust to every service account and attached more: the next ensure converges both.
    iam = boto3.client("iam")
    wide = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Federated": oidc}, "Action": "sts:AssumeRoleWithWebIdentity"}],
    }
    iam.update_assume_role_policy(RoleName=names.app_role, PolicyDocument=json.dumps(wide))
    iam.detach_role_policy(RoleName=names.app_role, PolicyArn=storage)
    iam.attach_role_policy(RoleName=names.app_role, PolicyArn="arn:aws:iam::aws:policy/AmazonS3FullAccess")
    assert pooled.identity.ensure(ws).created == ()
    _assert_workload_role(names.app_role, oidc, names.namespace, tags)
    _assert_attached(names.app_role, document, tags)

    assert sweep.leftovers_for(ws.id) == [
        f"iam role {first.outputs['workload_role_arn']}",
        f"iam policy {storage}",
    ]
    pooled.identity.teardown(ws)
    pooled.identity.teardown(ws)
    pooled.storage.teardown(ws)
    assert pooled.identity.leftovers(ws) == [] and sweep.leftovers_for(ws.id) == []


def test_pooled_dns_points_at_the_cell_ingress(
    pooled: PooledProviders, aws_cell: CloudCell, workspace: Make, sweep: LeakSweep
) -> None:
    ws = workspace("professional", cell=CELL)
    name = f"{ws.slug}.{CELL_DOMAIN}"
    ensured = pooled.dns.ensure(ws, {})
    assert ensured.created == ("dns_record",)
    assert ensured.outputs == {
        "endpoint_url": f"https://{name}",
        "dns_zone_id": aws_cell.outputs.zone_id,
        "dns_name": name,
    }
    assert pooled.dns.endpoint_url(ws) == f"https://{name}"
    assert pooled.dns.ensure(ws, {}).created == ()
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=aws_cell.outputs.zone_id)
    [record] = [r for r in records["ResourceRecordSets"] if r["Name"].rstrip(".") == name]
    assert record["Type"] == "CNAME" and record["ResourceRecords"] == [{"Value": f"ingress.{CELL_DOMAIN}"}]
    assert pooled.dns.ensure(ws, {"ingress_hostname": "lb-2.example.com"}).created == ()  # re-pointed, not new
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=aws_cell.outputs.zone_id)
    [record] = [r for r in records["ResourceRecordSets"] if r["Name"].rstrip(".") == name]
    assert record["ResourceRecords"] == [{"Value": "lb-2.example.com"}]
    where = [(aws_cell.outputs.zone_id, name)]
    assert sweep.leftovers_for(ws.id, where) == [f"route53 record {name}"]
    pooled.dns.teardown(ws)
    pooled.dns.teardown(ws)
    assert pooled.dns.leftovers(ws) == [] and sweep.leftovers_for(ws.id, where) == []
