"""EKS cluster resolution: kubeconfig overrides, the IAM token's format (offline), the cluster of a workspace."""

from __future__ import annotations

import base64
import datetime
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from control_plane.core.settings import Settings
from control_plane.kube.eks import ClusterResolver, eks_token, workspace_cluster
from control_plane.providers.base import ProviderError
from tests.kube.factories import workspace

REGION = "eu-west-1"
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def session() -> Any:
    return boto3.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name=REGION)


def presigned_url(token: str) -> str:
    body = token.removeprefix("k8s-aws-v1.")
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()


def test_token_is_a_presigned_get_caller_identity_with_the_cluster_id_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")  # an emulator's endpoint must not leak in
    token = eks_token(session(), "canopy-cell-c1", REGION)
    assert token.startswith("k8s-aws-v1.")
    assert re.fullmatch(r"k8s-aws-v1\.[A-Za-z0-9_-]+", token), "URL-safe base64 without padding"
    url = urlsplit(presigned_url(token))
    assert (url.scheme, url.netloc, url.path) == ("https", f"sts.{REGION}.amazonaws.com", "/")
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert query["Action"] == "GetCallerIdentity" and query["Version"] == "2011-06-15"
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "60"
    assert query["X-Amz-SignedHeaders"].split(";") == ["host", "x-k8s-aws-id"]
    assert re.fullmatch(rf"AKIDEXAMPLE/\d{{8}}/{REGION}/sts/aws4_request", query["X-Amz-Credential"])
    assert re.fullmatch(r"[0-9a-f]{64}", query["X-Amz-Signature"])


def test_the_signature_depends_on_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    instant = datetime.datetime(2024, 1, 2, 3, 4, 5)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda remove_tzinfo=True: instant)
    first = eks_token(session(), "a", REGION)
    assert "X-Amz-Date=20240102T030405Z" in presigned_url(first)
    assert eks_token(session(), "a", REGION) == first  # same instant, same cluster
    assert eks_token(session(), "b", REGION) != first


def kubeconfig(path: Path, server: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }
    path.write_text(json.dumps(config))
    return str(path)


def host(client: Any) -> str:
    return str(client._api.configuration.host)


def test_overrides_win_exact_name_first_then_the_wildcard(tmp_path: Path) -> None:
    overrides = {
        "canopy-cell-c1": kubeconfig(tmp_path / "cell", "https://127.0.0.1:6443"),
        "*": kubeconfig(tmp_path / "any", "https://127.0.0.1:7443"),
    }
    resolver = ClusterResolver(overrides)
    assert host(resolver.client("canopy-cell-c1")) == "https://127.0.0.1:6443"
    assert host(resolver.client("canopy-test-0123456789ab")) == "https://127.0.0.1:7443"
    assert resolver.client("canopy-cell-c1") is resolver.client("canopy-cell-c1")  # cached with its discovery
    resolver.close()


class _FakeEks:
    def describe_cluster(self, name: str) -> dict[str, Any]:
        ca = base64.b64encode(CA_PEM).decode()
        return {"cluster": {"name": name, "endpoint": "https://abc.eks.test", "certificateAuthority": {"data": ca}}}


class _Session:
    """A boto3 session whose EKS client is a fake (STS is real: presigning needs no network)."""

    region_name = REGION

    def client(self, service: str, **kwargs: Any) -> Any:
        return _FakeEks() if service == "eks" else session().client(service, **kwargs)


def test_without_an_override_the_eks_endpoint_ca_and_an_iam_token_are_used() -> None:
    client = ClusterResolver({"other": "/nonexistent"}, session=_Session()).client("canopy-cell-c1")
    configuration = client._api.configuration
    assert configuration.host == "https://abc.eks.test"
    assert configuration.ca_cert_data == CA_PEM.decode()
    bearer = configuration.auth_settings()["BearerToken"]["value"]
    assert bearer.startswith("Bearer k8s-aws-v1.")
    assert "x-k8s-aws-id" in presigned_url(bearer.removeprefix("Bearer "))


def test_the_setting_is_read_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANOPY_KUBECONFIG_OVERRIDES", '{"*": "/etc/canopy/cell.kubeconfig"}')
    assert Settings().kubeconfig_overrides == {"*": "/etc/canopy/cell.kubeconfig"}
    monkeypatch.delenv("CANOPY_KUBECONFIG_OVERRIDES")
    assert Settings().kubeconfig_overrides == {}


def test_workspace_cluster() -> None:
    pooled, silo = workspace("professional"), workspace("enterprise")
    assert workspace_cluster("prod", pooled) == "canopy-cell-c1"
    assert workspace_cluster("prod", silo) == f"canopy-prod-{silo.short_id}"
    orphan = workspace("professional")
    object.__setattr__(orphan, "cell", None)
    with pytest.raises(ProviderError, match="has no cell"):
        workspace_cluster("prod", orphan)
