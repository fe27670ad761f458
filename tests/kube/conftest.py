"""Kubernetes deployer tests: the real test cluster's fixtures."""

from tests.harness.fixtures import kube_api_client, kube_cluster, kube_namespace  # noqa: F401
