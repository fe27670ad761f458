"""Names obey each AWS naming rule, tag converters give each service's shape, policy documents say what they mean."""

from __future__ import annotations

import json
import random
import re
import uuid
from fnmatch import fnmatchcase
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from infra import conventions as c

RNG = random.Random(20240611)
IDS = [uuid.UUID(int=RNG.getrandbits(128), version=4) for _ in range(500)]
ENVS = ["prod", "staging", "dev", "e2e1", "a", "abcdefghij"]

# Each service's own rule, written out independently of the module under test.
RULES: dict[str, Any] = {
    "bucket": lambda n: (
        re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", n)
        and ".." not in n
        and not n.startswith(("xn--", "sthree-", "amzn-s3-demo-"))
        and not n.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3"))
    ),
    "kms_alias": lambda n: re.fullmatch(r"alias/[A-Za-z0-9/_-]{1,250}", n) and not n.startswith("alias/aws/"),
    "rds_instance": lambda n: re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,62}", n) and "--" not in n and n[-1] != "-",
    "db_subnet_group": lambda n: re.fullmatch(r"[a-z0-9 ._-]{1,255}", n) and n != "default",
    "db_security_group": lambda n: (
        re.fullmatch(r"[A-Za-z0-9 ._:/()#,@\[\]+=&;{}!$*-]{1,255}", n) and not n.startswith("sg-")
    ),
    "secret": lambda n: re.fullmatch(r"[A-Za-z0-9/_+=.@-]{1,512}", n) and not re.search(r"-[A-Za-z0-9]{6}$", n),
    "eks_cluster": lambda n: re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9_-]{0,99}", n),
    "eks_nodegroup": lambda n: re.fullmatch(r"[0-9A-Za-z][A-Za-z0-9_-]{0,62}", n),
    "cluster_role": lambda n: re.fullmatch(r"[\w+=,.@-]{1,64}", n),
    "node_role": lambda n: re.fullmatch(r"[\w+=,.@-]{1,64}", n),
    "app_role": lambda n: re.fullmatch(r"[\w+=,.@-]{1,64}", n),
    "storage_policy": lambda n: re.fullmatch(r"[\w+=,.@-]{1,128}", n),
    "namespace": lambda n: re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", n),
    "pooled_database": lambda n: re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", n),
    "pooled_role": lambda n: re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", n),
    "pooled_prefix": lambda n: n.endswith("/") and not n.startswith("/") and len(n.encode()) <= 1024,
}
TAG_KEY = re.compile(r"[\w\s.:/=+\-@]{1,128}")
TAG_VALUE = re.compile(r"[\w\s.:/=+\-@]{0,256}")
LABEL_KEY = re.compile(
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")


def test_rules_cover_every_name() -> None:
    assert set(RULES) == {f.name for f in c.WorkspaceNames.__dataclass_fields__.values()}


@pytest.mark.parametrize("env", ENVS)
def test_workspace_names_obey_aws_rules_for_many_ids(env: str) -> None:
    seen: dict[str, set[str]] = {rule: set() for rule in RULES}
    for workspace_id in IDS:
        names = c.workspace_names(env, workspace_id)
        for attr, rule in RULES.items():
            value = getattr(names, attr)
            assert rule(value), f"{attr}={value!r} breaks the AWS rule"
            seen[attr].add(value)
    assert all(len(values) == len(IDS) for values in seen.values()), "two workspaces share a name"


def test_names_are_deterministic_and_accept_str_or_uuid() -> None:
    workspace_id = IDS[0]
    assert c.workspace_names("prod", workspace_id) == c.workspace_names("prod", str(workspace_id))
    names = c.workspace_names("prod", workspace_id)
    sid = workspace_id.hex[:12]
    assert c.short_id(workspace_id) == sid
    assert names.bucket == f"canopy-prod-{sid}"
    assert names.kms_alias == f"alias/canopy/prod/{sid}"
    assert names.namespace == f"ws-{sid}"
    assert names.pooled_database == names.pooled_role == f"ws_{sid}"
    assert names.pooled_prefix == f"workspaces/{sid}/"
    assert c.workspace_names("staging", workspace_id).bucket != names.bucket


@pytest.mark.parametrize("env", ["", "Prod", "1prod", "prod-eu", "abcdefghijk", "pr_d"])
def test_bad_environments_are_refused(env: str) -> None:
    with pytest.raises(ValueError, match="environment"):
        c.workspace_names(env, IDS[0])


def test_bad_workspace_id_is_refused() -> None:
    with pytest.raises(ValueError):
        c.short_id("not-a-uuid")


@pytest.mark.parametrize("cell", ["a", "euw1-a", "use1-b2", "abcdefghij0123456789"])
def test_cell_names_obey_aws_rules(cell: str) -> None:
    names = c.cell_names(cell)
    assert RULES["bucket"](names.bucket("123456789012"))
    assert RULES["kms_alias"](names.kms_alias)
    for rds_name in (names.database, f"{names.database}-final", f"{names.database}-9"):
        assert RULES["rds_instance"](rds_name)
    assert RULES["db_subnet_group"](names.db_subnet_group)
    assert RULES["eks_cluster"](names.cluster) and RULES["eks_nodegroup"](names.nodegroup)
    for role in (names.cluster_role, names.node_role, names.control_plane_role):
        assert RULES["cluster_role"](role)


@pytest.mark.parametrize("cell", ["", "A", "1a", "a-", "a--b", "abcdefghij01234567890", "a_b"])
def test_bad_cell_names_are_refused(cell: str) -> None:
    with pytest.raises(ValueError, match="cell name"):
        c.cell_names(cell)


def test_cell_bucket_needs_an_account_id() -> None:
    with pytest.raises(ValueError, match="account"):
        c.cell_names("a").bucket("12345")


def test_workspace_hostname() -> None:
    assert c.workspace_hostname("acme", "canopy.example.com") == "acme.canopy.example.com"
    for slug in ("", "-acme", "acme-", "ac--me", "Acme", "a" * 64):
        with pytest.raises(ValueError):
            c.workspace_hostname(slug, "canopy.example.com")
    with pytest.raises(ValueError):
        c.workspace_hostname("acme", "localhost")


# --- Tags ------------------------------------------------------------------------------------------

TAGS = c.workspace_tags(IDS[0], IDS[1], "professional", "euw1-a")


def test_workspace_tags_carry_every_canopy_key() -> None:
    assert set(TAGS) == set(c.WORKSPACE_TAG_KEYS)
    assert {
        "canopy:workspace": str(IDS[0]),
        "canopy:org": str(IDS[1]),
        "canopy:tier": "professional",
        "canopy:cell": "euw1-a",
        "canopy:managed-by": "canopy",
    } == TAGS
    assert c.workspace_tags(IDS[0], IDS[1], "enterprise", None)["canopy:cell"] == ""
    assert c.cell_tags("euw1-a") == {"canopy:cell": "euw1-a", "canopy:managed-by": "canopy"}


def test_tags_obey_aws_tag_rules_for_many_ids() -> None:
    for workspace_id in IDS:
        for key, value in c.workspace_tags(workspace_id, uuid.uuid4(), "enterprise", None).items():
            assert TAG_KEY.fullmatch(key) and TAG_VALUE.fullmatch(value)


def test_bad_tags_are_refused() -> None:
    with pytest.raises(ValueError, match="tier"):
        c.workspace_tags(IDS[0], IDS[1], "free", None)
    with pytest.raises(ValueError, match="cell"):
        c.workspace_tags(IDS[0], IDS[1], "professional", "Bad Cell")
    with pytest.raises(ValueError, match="invalid value"):
        c.workspace_tags(IDS[0], "org<script>", "professional", None)


SESSION = botocore.session.get_session()


def _validate(service: str, operation: str, params: dict[str, Any]) -> None:
    """Validates ``params`` against the operation's input shape in botocore's service model (no network)."""
    shape = SESSION.get_service_model(service).operation_model(operation).input_shape
    validate_parameters(params, shape)


@pytest.mark.parametrize(
    ("service", "operation", "params"),
    [
        ("rds", "AddTagsToResource", {"ResourceName": "arn:aws:rds:x", "Tags": c.tag_list(TAGS)}),
        ("secretsmanager", "TagResource", {"SecretId": "s", "Tags": c.tag_list(TAGS)}),
        ("iam", "TagRole", {"RoleName": "r", "Tags": c.tag_list(TAGS)}),
        ("ec2", "CreateTags", {"Resources": ["sg-1"], "Tags": c.tag_list(TAGS)}),
        ("kms", "TagResource", {"KeyId": "k", "Tags": c.kms_tag_list(TAGS)}),
        ("eks", "TagResource", {"resourceArn": "arn:aws:eks:x", "tags": c.eks_tags(TAGS)}),
        ("s3", "PutBucketTagging", {"Bucket": "b", "Tagging": c.s3_tagging(TAGS)}),
        ("route53", "ChangeTagsForResource", c.route53_tag_request("/hostedzone/Z123", TAGS)),
        ("resourcegroupstaggingapi", "GetResources", {"TagFilters": c.tag_filters({c.TAG_WORKSPACE: "w"})}),
        (
            "s3",
            "PutBucketEncryption",
            {"Bucket": "b", "ServerSideEncryptionConfiguration": c.S3.encryption_configuration("arn:k")},
        ),
        ("s3", "PutBucketVersioning", {"Bucket": "b", "VersioningConfiguration": c.S3.versioning_configuration()}),
        ("s3", "PutPublicAccessBlock", {"Bucket": "b", "PublicAccessBlockConfiguration": c.S3.public_access_block()}),
        (
            "eks",
            "CreateCluster",
            {
                "name": "n",
                "roleArn": "arn:r",
                "resourcesVpcConfig": c.EKS.vpc_config(["subnet-1", "subnet-2"]),
                "encryptionConfig": c.EKS.encryption_config("arn:k"),
                "tags": c.eks_tags(TAGS),
            },
        ),
    ],
)
def test_shapes_match_the_boto3_service_models(service: str, operation: str, params: dict[str, Any]) -> None:
    _validate(service, operation, params)


def test_wrong_shapes_fail_the_same_validation() -> None:
    with pytest.raises(ParamValidationError):
        _validate("kms", "TagResource", {"KeyId": "k", "Tags": c.tag_list(TAGS)})
    with pytest.raises(ParamValidationError):
        _validate("eks", "TagResource", {"resourceArn": "a", "tags": c.tag_list(TAGS)})


def test_tag_lists_read_back() -> None:
    assert c.tags_from_list(c.tag_list(TAGS)) == TAGS
    assert c.tags_from_list(c.kms_tag_list(TAGS)) == TAGS
    assert c.route53_tag_request("Z1", TAGS)["ResourceId"] == "Z1"
    assert len(c.tag_list(TAGS)) <= 10  # Route53 allows 10 tags per zone


def test_kubernetes_labels_are_valid() -> None:
    labels = c.kubernetes_labels(TAGS)
    assert labels["canopy/workspace"] == str(IDS[0])
    assert labels["app.kubernetes.io/managed-by"] == "canopy"
    for key, value in labels.items():
        assert LABEL_KEY.fullmatch(key) and LABEL_VALUE.fullmatch(value), (key, value)


# --- Policy documents ------------------------------------------------------------------------------

BUCKET_ARN = c.bucket_arn("canopy-cell-euw1-a-123456789012")


def _allowed(policy: dict[str, Any], action: str, resource: str) -> bool:
    return any(
        statement["Effect"] == "Allow"
        and action in _as_list(statement["Action"])
        and any(fnmatchcase(resource, pattern) for pattern in _as_list(statement["Resource"]))
        for statement in policy["Statement"]
    )


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_prefix_policy_scopes_objects_to_the_prefix_only() -> None:
    policy = c.prefix_policy(BUCKET_ARN, "workspaces/abc/")
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert _allowed(policy, action, f"{BUCKET_ARN}/workspaces/abc/files/a.png")
        assert not _allowed(policy, action, f"{BUCKET_ARN}/workspaces/abcd/files/a.png")
        assert not _allowed(policy, action, f"{BUCKET_ARN}/workspaces/other/x")
        assert not _allowed(policy, action, f"{BUCKET_ARN}/x")
    listing = next(s for s in policy["Statement"] if s["Action"] == "s3:ListBucket")
    assert listing["Resource"] == BUCKET_ARN
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["workspaces/abc/*"]}}
    assert all(statement["Resource"] != "*" for statement in policy["Statement"])
    assert not any("kms:" in json.dumps(s["Action"]) for s in policy["Statement"])


def test_prefix_policy_grants_the_key_only_through_s3() -> None:
    policy = c.prefix_policy(BUCKET_ARN, "workspaces/abc/", kms_key_arn="arn:aws:kms:eu-west-1:1:key/k")
    kms = policy["Statement"][-1]
    assert kms["Resource"] == "arn:aws:kms:eu-west-1:1:key/k"
    assert kms["Condition"] == {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}


@pytest.mark.parametrize("prefix", ["workspaces/abc", "/workspaces/abc/", "workspaces/*/", ""])
def test_prefix_policy_refuses_prefixes_that_leak(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        c.prefix_policy(BUCKET_ARN, prefix)


def test_bucket_policy_allows_the_silo_bucket_only_and_its_key_only_through_s3() -> None:
    silo = c.bucket_arn("canopy-prod-0123456789ab")
    policy = c.bucket_policy(silo, kms_key_arn="arn:aws:kms:eu-west-1:1:key/k")
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert _allowed(policy, action, f"{silo}/files/a.png")
        assert not _allowed(policy, action, f"{BUCKET_ARN}/files/a.png")
    assert _allowed(policy, "s3:ListBucket", silo) and not _allowed(policy, "s3:ListBucket", BUCKET_ARN)
    assert not _allowed(policy, "s3:DeleteBucket", silo)
    pooled = c.prefix_policy(BUCKET_ARN, "w/", "arn:aws:kms:eu-west-1:1:key/k")
    assert policy["Statement"][-1] == pooled["Statement"][-1]
    assert all(statement["Resource"] != "*" for statement in policy["Statement"])


OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/0A1B2C3D"


def test_web_identity_trust_binds_the_role_to_one_service_account_of_one_cluster() -> None:
    policy = c.web_identity_trust_policy(OIDC_ARN, "ws-0123456789ab", "workspace-server")
    issuer = "oidc.eks.eu-west-1.amazonaws.com/id/0A1B2C3D"
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": OIDC_ARN},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{issuer}:sub": "system:serviceaccount:ws-0123456789ab:workspace-server",
                        f"{issuer}:aud": "sts.amazonaws.com",
                    }
                },
            }
        ],
    }
    with pytest.raises(ValueError, match="OIDC provider"):
        c.web_identity_trust_policy("arn:aws:iam::123456789012:role/x", "ws-0123456789ab", "workspace-server")


def test_oidc_provider_arn_is_the_issuer_without_its_scheme() -> None:
    arn = c.oidc_provider_arn("aws", "123456789012", "https://oidc.eks.eu-west-1.amazonaws.com/id/0A1B2C3D")
    assert arn == OIDC_ARN and c.oidc_issuer(arn) == "oidc.eks.eu-west-1.amazonaws.com/id/0A1B2C3D"


def test_tls_only_policy_denies_plain_http_on_bucket_and_objects() -> None:
    policy = c.tls_only_policy(BUCKET_ARN)
    insecure = next(s for s in policy["Statement"] if s["Sid"] == "DenyInsecureTransport")
    assert insecure["Effect"] == "Deny" and insecure["Principal"] == "*" and insecure["Action"] == "s3:*"
    assert insecure["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert insecure["Resource"] == [BUCKET_ARN, f"{BUCKET_ARN}/*"]
    assert all(s["Effect"] == "Deny" for s in policy["Statement"])


# --- Security settings and Kubernetes objects ------------------------------------------------------


def test_security_settings() -> None:
    assert (c.RDS.storage_encrypted, c.RDS.deletion_protection, c.RDS.publicly_accessible) == (True, True, False)
    assert c.RDS.backup_retention_days == 7 and c.RDS.engine == "postgres" and c.RDS.manage_master_user_password
    assert {c.RDS.instance_class(t) for t in c.TIERS} <= {"db.m7g.large", "db.r7g.large"}
    assert c.S3.encryption_configuration("arn:k")["Rules"][0] == {
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "arn:k"},
        "BucketKeyEnabled": True,
    }
    assert all(c.S3.public_access_block().values()) and len(c.S3.public_access_block()) == 4
    assert c.KMS.enable_key_rotation
    assert c.EKS.vpc_config([])["endpointPublicAccess"] is False
    assert c.EKS.encryption_config("arn:k") == [{"resources": ["secrets"], "provider": {"keyArn": "arn:k"}}]
    with pytest.raises(TypeError):
        c.RDS.instance_classes["enterprise"] = "db.t3.micro"  # type: ignore[index]


def test_pod_security() -> None:
    assert c.pod_security_context()["runAsNonRoot"] is True
    container = c.container_security_context()
    assert container["runAsNonRoot"] and container["readOnlyRootFilesystem"]
    assert container["allowPrivilegeEscalation"] is False
    container["runAsNonRoot"] = False
    assert c.container_security_context()["runAsNonRoot"] is True  # a fresh dict each time


def test_namespace_objects() -> None:
    namespace = c.workspace_names("prod", IDS[0]).namespace
    manifest = c.namespace_manifest(namespace, TAGS)
    assert manifest["metadata"]["name"] == namespace
    assert manifest["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    quota = c.resource_quota_manifest(namespace)
    assert quota["kind"] == "ResourceQuota" and quota["metadata"]["namespace"] == namespace
    assert quota["spec"]["hard"]["services.loadbalancers"] == "0"
    limits = c.limit_range_manifest(namespace)["spec"]["limits"][0]
    assert limits["type"] == "Container" and {"default", "defaultRequest", "max"} <= set(limits)
    deny = c.default_deny_network_policy(namespace)
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


# --- CellOutputs -----------------------------------------------------------------------------------

GOOD = {
    "name": "euw1-a",
    "region": "eu-west-1",
    "cluster_name": "canopy-cell-euw1-a",
    "cluster_endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
    "cluster_ca": "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==",
    "postgres_host": "canopy-cell-euw1-a.cluster-abc.eu-west-1.rds.amazonaws.com",
    "postgres_port": 5432,
    "postgres_admin_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!cluster-1-AbCdEf",
    "bucket_name": "canopy-cell-euw1-a-123456789012",
    "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/0b6ad2a4-1b6c-4c1c-9e4e-1d0c7c6d1f00",
    "zone_id": "Z0123456789ABCDEFGHIJ",
    "domain": "euw1-a.canopy.example.com",
    "control_plane_role_arn": "arn:aws:iam::123456789012:role/canopy-cell-euw1-a-control-plane",
    "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/0A1B2C3D",
    "private_subnet_ids": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"],
    "max_workspaces": 500,
    "max_databases": 400,
}


def test_cell_outputs_round_trip() -> None:
    outputs = c.CellOutputs.from_stack_outputs(GOOD)
    assert outputs.private_subnet_ids == ("subnet-0123456789abcdef0", "subnet-0123456789abcdef1")
    assert outputs.to_stack_outputs() == GOOD
    assert json.loads(json.dumps(outputs.to_stack_outputs())) == GOOD
    assert c.CellOutputs.from_stack_outputs({**GOOD, "postgres_port": "5432"}).postgres_port == 5432


def test_cell_outputs_need_exactly_their_keys() -> None:
    with pytest.raises(c.CellOutputsError) as caught:
        c.CellOutputs.from_stack_outputs({k: v for k, v in GOOD.items() if k != "zone_id"} | {"db_password": "x"})
    assert caught.value.problems == ["missing output 'zone_id'", "unexpected output 'db_password'"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "Bad_Cell"),
        ("region", "europe"),
        ("cluster_name", ""),
        ("cluster_endpoint", "http://abc"),
        ("cluster_ca", "-----BEGIN CERTIFICATE-----"),
        ("postgres_host", "not a host"),
        ("postgres_port", True),
        ("postgres_port", 70000),
        ("postgres_admin_secret_arn", "arn:aws:kms:eu-west-1:123456789012:key/x"),
        ("bucket_name", "Canopy_Bucket"),
        ("kms_key_arn", "alias/canopy"),
        ("zone_id", "/hostedzone/Z1"),
        ("domain", "example"),
        ("control_plane_role_arn", "arn:aws:iam::123456789012:user/bob"),
        ("oidc_provider_arn", "arn:aws:iam::123456789012:role/oidc.eks.eu-west-1.amazonaws.com/id/0A1B2C3D"),
        ("oidc_provider_arn", "oidc.eks.eu-west-1.amazonaws.com/id/0A1B2C3D"),
        ("private_subnet_ids", ["subnet-0123456789abcdef0"]),
        ("private_subnet_ids", "subnet-0123456789abcdef0,subnet-0123456789abcdef1"),
        ("private_subnet_ids", ["subnet-0123456789abcdef0", "vpc-0123456789abcdef0"]),
        ("max_workspaces", 0),
        ("max_databases", "many"),
    ],
)
def test_cell_outputs_name_the_bad_field(key: str, value: Any) -> None:
    with pytest.raises(c.CellOutputsError) as caught:
        c.CellOutputs.from_stack_outputs({**GOOD, key: value})
    assert len(caught.value.problems) == 1 and caught.value.problems[0].startswith(f"{key}: ")


def test_cell_outputs_report_every_problem_at_once() -> None:
    with pytest.raises(c.CellOutputsError) as caught:
        c.CellOutputs.from_stack_outputs({**GOOD, "region": "x", "max_databases": -1})
    assert [p.split(":")[0] for p in caught.value.problems] == ["region", "max_databases"]
    assert "region" in str(caught.value)
