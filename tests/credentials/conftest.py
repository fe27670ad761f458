"""Credential tests run on the reconciler tests' control plane (real workers, real workspace servers)."""

from tests.reconciler.conftest import plane  # noqa: F401
