"""Pulumi mocks that record what a program declares and answer like AWS, and the cell configuration under test."""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import pulumi

from infra.cell.program import CellConfig
from infra.policy import ResourceRecord

ACCOUNT = "123456789012"
REGION = "eu-west-1"
AZS = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
CA_DATA = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n").decode()
CONFIG = CellConfig(
    name="euw1-a",
    region=REGION,
    domain="euw1-a.canopy.example.com",
    control_plane_principal_arn="arn:aws:iam::210987654321:role/canopy-control-plane",
    control_plane_external_id="canopy-test",
)


def _hex(name: str, length: int) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def oidc_issuer_url(cluster: str) -> str:
    """The OIDC issuer EKS gives ``cluster`` (under the mocks)."""
    return f"https://oidc.eks.{REGION}.amazonaws.com/id/{_hex(cluster, 32).upper()}"


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every custom resource; answers like AWS would (ids, ARNs, endpoints of the right shape) and
    answers the data sources the cell program reads."""

    def __init__(self) -> None:
        self.records: list[ResourceRecord] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = dict(args.inputs)
        resource_id, outputs = self._answer(args.typ, args.name, inputs)
        if args.custom and not args.typ.startswith("pulumi:providers:"):
            self.records.append(ResourceRecord(args.typ, args.name, inputs, resource_id))
        return resource_id, outputs

    def _answer(self, typ: str, name: str, inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        service = typ.split(":")[1].split("/")[0]
        outputs = {**inputs, "arn": f"arn:aws:{service}:{REGION}:{ACCOUNT}:{name}"}
        if typ == "aws:ec2/subnet:Subnet":
            return f"subnet-{_hex(name, 17)}", outputs
        if typ == "aws:s3/bucket:Bucket":
            return inputs["bucket"], {**outputs, "arn": f"arn:aws:s3:::{inputs['bucket']}"}
        if typ == "aws:kms/key:Key":
            key_id = str(uuid.UUID(_hex(name, 32)))
            return key_id, {**outputs, "keyId": key_id, "arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}"}
        if typ == "aws:iam/role:Role":
            return inputs["name"], {**outputs, "arn": f"arn:aws:iam::{ACCOUNT}:role/{inputs['name']}"}
        if typ == "aws:route53/zone:Zone":
            zone_id = "Z" + _hex(name, 20).upper()
            return zone_id, {**outputs, "zoneId": zone_id}
        if typ == "aws:eks/cluster:Cluster":
            vpc = {**inputs["vpcConfig"], "clusterSecurityGroupId": f"sg-{_hex(name, 17)}"}
            endpoint = f"https://{_hex(name, 32).upper()}.gr7.{REGION}.eks.amazonaws.com"
            return inputs["name"], {
                **outputs,
                "vpcConfig": vpc,
                "endpoint": endpoint,
                "certificateAuthority": {"data": CA_DATA},
                "identities": [{"oidcs": [{"issuer": oidc_issuer_url(name)}]}],
            }
        if typ == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{inputs['url'].removeprefix('https://')}"
            return arn, {**outputs, "arn": arn}
        if typ == "aws:acm/certificate:Certificate":
            record = {
                "domainName": inputs["domainName"],
                "resourceRecordName": f"_{_hex(name, 32)}.{inputs['domainName'].removeprefix('*.')}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": f"_{_hex(name + 'v', 32)}.acm-validations.aws.",
            }
            arn = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/{uuid.UUID(_hex(name, 32))}"
            return arn, {**outputs, "arn": arn, "domainValidationOptions": [record]}
        if typ == "aws:route53/record:Record":
            return f"{inputs['zoneId']}_{inputs['name']}", {**outputs, "fqdn": inputs["name"]}
        if typ == "kubernetes:core/v1:Service" and inputs["spec"].get("type") == "LoadBalancer":
            hostname = f"{_hex(name, 32)}-{_hex(name, 16)}.elb.{REGION}.amazonaws.com"
            return name, {**outputs, "status": {"loadBalancer": {"ingress": [{"hostname": hostname}]}}}
        if typ == "aws:rds/cluster:Cluster":
            secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rds!cluster-{_hex(name, 8)}-AbCdEf"
            return inputs["clusterIdentifier"], {
                **outputs,
                "endpoint": f"{inputs['clusterIdentifier']}.cluster-{_hex(name, 12)}.{REGION}.rds.amazonaws.com",
                "masterUserSecrets": [{"secretArn": secret, "secretStatus": "active", "kmsKeyId": "k"}],
            }
        return f"{name}-{_hex(typ + name, 8)}", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        answers: dict[str, dict[str, Any]] = {
            "aws:index/getAvailabilityZones:getAvailabilityZones": {"names": AZS, "zoneIds": ["euw1-az1", "euw1-az2"]},
            "aws:index/getCallerIdentity:getCallerIdentity": {"accountId": ACCOUNT, "arn": "arn", "userId": "u"},
            "aws:index/getPartition:getPartition": {"partition": "aws", "dnsSuffix": "amazonaws.com"},
        }
        return answers[args.token], []


@dataclass(frozen=True)
class DeclaredCell:
    """What the cell program declared and the values of its outputs."""

    records: list[ResourceRecord]
    outputs: dict[str, Any]

    def of_type(self, typ: str) -> list[ResourceRecord]:
        """Records of one resource type."""
        return [r for r in self.records if r.type == typ]
