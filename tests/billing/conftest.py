"""Billing tests: the engine needs nothing; the gateway runs against localstripe (see tests/harness/localstripe.py)."""

from __future__ import annotations

from tests.harness.localstripe import localstripe, stripe_client  # noqa: F401
