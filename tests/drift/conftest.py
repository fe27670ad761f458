"""The moto + Kubernetes harness of ``tests/provisioning`` (real workers with the aws provider), for drift."""

from tests.aws.conftest import aws_cell  # noqa: F401
from tests.harness.fixtures import kube_cluster  # noqa: F401
from tests.harness.moto import moto_server  # noqa: F401
from tests.provisioning.conftest import kube  # noqa: F401
