"""Waiting like production although moto answers at once, and the settings the providers are built from."""

from __future__ import annotations

import itertools

import pytest

from control_plane.core.settings import Settings
from control_plane.providers.aws.common import SiloConfig, Waits
from control_plane.providers.base import ProviderError


def test_waits_poll_through_a_creating_phase_and_give_up_with_a_retryable_error() -> None:
    phases = itertools.chain(["CREATING"] * 3, itertools.repeat("ACTIVE"))
    seen: list[str] = []

    def active() -> bool:
        seen.append(next(phases))
        return seen[-1] == "ACTIVE"

    Waits(timeout=5, poll=0.01).until("cluster", active)
    assert seen == ["CREATING", "CREATING", "CREATING", "ACTIVE"]
    with pytest.raises(ProviderError, match=r"cluster not done after 0.05s; will retry"):
        Waits(timeout=0.05, poll=0.01).until("cluster", lambda: False)


def test_silo_config_reads_the_aws_settings() -> None:
    settings = Settings(
        aws_environment="prod",
        aws_region="eu-central-1",
        aws_private_subnet_ids=["subnet-0a", "subnet-0b"],
        aws_zone_id="Z123",
        aws_zone_domain="example.com",
    )
    config = SiloConfig.from_settings(settings)
    assert (config.env, config.region, config.subnet_ids) == ("prod", "eu-central-1", ("subnet-0a", "subnet-0b"))
    assert (config.zone_id, config.zone_domain, config.db_subnet_group) == ("Z123", "example.com", None)
    assert config.waits == Waits(settings.aws_wait_timeout_seconds, settings.aws_poll_seconds)
