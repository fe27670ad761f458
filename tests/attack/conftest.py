"""Attacks on the data-lifecycle surfaces run on the backups' control plane (real workers, real servers)."""

from tests.backups.conftest import _workers_end_with_their_test, backing

__all__ = ["_workers_end_with_their_test", "backing"]
