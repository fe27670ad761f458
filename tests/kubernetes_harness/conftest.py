"""The Kubernetes harness fixtures, imported the way other test packages do."""

from tests.harness.fixtures import kube_api_client, kube_cluster, kube_namespace  # noqa: F401
