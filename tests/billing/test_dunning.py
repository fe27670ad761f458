"""Dunning: retries at 2, 5 and 7 days after the first failure, each with a mail, then unpaid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.engine.dunning import (
    DunningPolicy,
    MarkUnpaid,
    RetryCharge,
    WaitUntil,
    next_dunning_action,
    retry_schedule,
)

FAILED = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_the_action_table() -> None:
    second = timedelta(seconds=1)
    assert next_dunning_action(FAILED, 1, FAILED) == WaitUntil(FAILED + 2 * DAY, 1)
    assert next_dunning_action(FAILED, 1, FAILED + 2 * DAY - second) == WaitUntil(FAILED + 2 * DAY, 1)
    assert next_dunning_action(FAILED, 1, FAILED + 2 * DAY) == RetryCharge(1, FAILED + 2 * DAY)
    assert next_dunning_action(FAILED, 2, FAILED + 2 * DAY) == WaitUntil(FAILED + 5 * DAY, 2)
    assert next_dunning_action(FAILED, 2, FAILED + 6 * DAY) == RetryCharge(2, FAILED + 5 * DAY)
    assert next_dunning_action(FAILED, 3, FAILED + 6 * DAY) == WaitUntil(FAILED + 7 * DAY, 3)
    assert next_dunning_action(FAILED, 3, FAILED + 7 * DAY) == RetryCharge(3, FAILED + 7 * DAY)
    assert next_dunning_action(FAILED, 4, FAILED + 7 * DAY) == MarkUnpaid()
    assert next_dunning_action(FAILED, 9, FAILED) == MarkUnpaid()
    with pytest.raises(ValueError, match="attempts >= 1"):
        next_dunning_action(FAILED, 0, FAILED)


def walk(policy: DunningPolicy, step: timedelta) -> list[tuple[timedelta, str]]:
    """Run the timeline on a clock moving by ``step``, every charge failing; record what happened when."""
    attempts, now, happened = 1, FAILED, []
    while True:
        action = next_dunning_action(FAILED, attempts, now, policy)
        if isinstance(action, MarkUnpaid):
            happened.append((now - FAILED, "unpaid"))
            return happened
        if isinstance(action, RetryCharge):
            happened.append((now - FAILED, f"retry {action.retry} + mail"))
            attempts += 1
            continue
        now += step


@pytest.mark.parametrize("step_minutes", [1, 7, 60, 24 * 60])
def test_a_card_that_always_fails_goes_unpaid_after_the_third_retry(step_minutes: int) -> None:
    step = timedelta(minutes=step_minutes)
    happened = walk(DunningPolicy(), step)
    assert [what for _, what in happened] == ["retry 1 + mail", "retry 2 + mail", "retry 3 + mail", "unpaid"]
    for (when, _), due in zip(happened, [2 * DAY, 5 * DAY, 7 * DAY, 7 * DAY], strict=True):
        assert due <= when < due + step  # at the first tick of the clock once due


def test_a_late_runner_never_retries_twice_at_once_and_still_ends_unpaid() -> None:
    late = FAILED + 30 * DAY
    actions = [next_dunning_action(FAILED, attempts, late) for attempts in (1, 2, 3, 4)]
    assert actions == [
        RetryCharge(1, FAILED + 2 * DAY),
        RetryCharge(2, FAILED + 5 * DAY),
        RetryCharge(3, FAILED + 7 * DAY),
        MarkUnpaid(),
    ]


def test_delays_are_configuration() -> None:
    policy = DunningPolicy(retry_delays=(timedelta(hours=1),))
    assert retry_schedule(FAILED, policy) == [FAILED + timedelta(hours=1)]
    assert walk(policy, timedelta(minutes=10)) == [
        (timedelta(hours=1), "retry 1 + mail"),
        (timedelta(hours=1), "unpaid"),
    ]
    with pytest.raises(ValueError, match="increasing"):
        DunningPolicy(retry_delays=(DAY, DAY))
