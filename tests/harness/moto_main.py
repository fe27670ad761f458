"""``moto_server`` with three emulator gaps fixed. Run as a script, without its directory on the path
(``python -P moto_main.py -H ... -p ...``: the harness's ``moto.py`` would shadow moto).

- moto gives every EKS cluster of a process the same OIDC issuer, where AWS gives each cluster its own (and each
  silo's IAM OIDC provider is the provider of that issuer). Here each cluster gets an issuer of its own, in AWS's
  shape.
- moto applies a bucket policy's Deny whatever its conditions, so the TLS-only statements every Canopy bucket
  carries (Deny when ``aws:SecureTransport`` is false, or ``s3:TlsVersion`` below 1.2) would refuse every object
  request. This server is plain HTTP on loopback, standing in for AWS's TLS endpoint: its requests count as sent
  over TLS 1.2 or later, so those statements do not match (every other statement is evaluated as moto does).
- AWS Config's item of an S3 bucket carries its default encryption (``supplementaryConfiguration.
  ServerSideEncryptionConfiguration``), which moto's leaves out; here it is added in AWS Config's shape, so the
  drift probes' batched reads (``BatchGetResourceConfig``) see what ``PutBucketEncryption`` set.
"""

from __future__ import annotations

import json
import sys
import uuid
from typing import Any

from moto.eks import models
from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.s3.models import FakeBucket
from moto.server import main

_create_cluster = models.Cluster.__init__


def _with_own_issuer(self: Any, *args: Any, **kwargs: Any) -> None:
    _create_cluster(self, *args, **kwargs)
    region = self.arn.split(":")[3]
    self.identity = {"oidc": {"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{uuid.uuid4().hex.upper()}"}}


models.Cluster.__init__ = _with_own_issuer  # type: ignore[method-assign]

_TRANSPORT_KEYS = frozenset({"aws:SecureTransport", "s3:TlsVersion"})


def _about_transport(statement: dict[str, Any]) -> bool:
    """Whether a policy statement's condition is only about how the request travelled (TLS and its version)."""
    condition = statement.get("Condition") or {}
    keys = {key for operands in condition.values() for key in operands}
    return bool(keys) and keys <= _TRANSPORT_KEYS


def _over_tls(self: FakeBucket, action: str, resource: str) -> Any:
    """The bucket policy's verdict (moto's own evaluation) for a request sent over TLS."""
    if self.policy is None:
        return PermissionResult.NEUTRAL
    policy = json.loads(self.policy)
    statements = policy.get("Statement", [])
    statements = statements if isinstance(statements, list) else [statements]
    kept = [statement for statement in statements if not _about_transport(statement)]
    if not kept:
        return PermissionResult.NEUTRAL
    return IAMPolicy(json.dumps({**policy, "Statement": kept})).is_action_permitted(action, resource)


FakeBucket.get_permission = _over_tls  # type: ignore[method-assign]

_config_item = FakeBucket.to_config_dict


def _with_encryption(self: FakeBucket) -> dict[str, Any]:
    """moto's AWS Config item of the bucket, plus its default encryption as AWS Config reports it."""
    item: dict[str, Any] = _config_item(self)
    if self.encryption:
        rule = self.encryption["Rule"]
        default = rule.get("ApplyServerSideEncryptionByDefault") or {}
        config_rule = {
            "applyServerSideEncryptionByDefault": {
                "sseAlgorithm": default.get("SSEAlgorithm"),
                "kmsMasterKeyID": default.get("KMSMasterKeyID"),
            },
            "bucketKeyEnabled": str(rule.get("BucketKeyEnabled", "false")).lower() == "true",
        }
        item["supplementaryConfiguration"]["ServerSideEncryptionConfiguration"] = json.dumps({"rules": [config_rule]})
    return item


FakeBucket.to_config_dict = _with_encryption  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
