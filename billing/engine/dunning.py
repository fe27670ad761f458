"""The dunning timeline after a failed charge.

The first failed charge of an invoice makes the billing status ``past_due``. The charge is retried at fixed
delays **after the first failure** (2, 5 and 7 days by default), each retry with a mail to the billing
contacts. When the last retry has failed too, the status becomes ``unpaid`` (the workspace is suspended).
:func:`next_dunning_action` is a pure function of the first failure time, the number of charge attempts made
so far (the first charge included) and ``now``; a successful charge ends dunning (the caller stops asking).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class DunningPolicy:
    """Configuration: when each retry is due, as delays after the first failed charge (increasing)."""

    retry_delays: tuple[timedelta, ...] = (timedelta(days=2), timedelta(days=5), timedelta(days=7))

    def __post_init__(self) -> None:
        if list(self.retry_delays) != sorted(set(self.retry_delays)):
            raise ValueError("retry delays are strictly increasing")


DEFAULT_DUNNING = DunningPolicy()


@dataclass(frozen=True)
class WaitUntil:
    """Nothing to do before ``at``, when retry number ``retry`` (1-based) is due."""

    at: datetime
    retry: int


@dataclass(frozen=True)
class RetryCharge:
    """Retry the charge now (retry number ``retry``, 1-based), and mail the billing contacts."""

    retry: int
    due_at: datetime


@dataclass(frozen=True)
class MarkUnpaid:
    """Every retry has failed: the status becomes ``unpaid``."""


DunningAction = WaitUntil | RetryCharge | MarkUnpaid


def retry_schedule(first_failure_at: datetime, policy: DunningPolicy = DEFAULT_DUNNING) -> list[datetime]:
    """When each retry is due."""
    return [first_failure_at + delay for delay in policy.retry_delays]


def next_dunning_action(
    first_failure_at: datetime, attempts: int, now: datetime, policy: DunningPolicy = DEFAULT_DUNNING
) -> DunningAction:
    """What to do at ``now`` for an invoice whose ``attempts`` charges (>= 1) have all failed."""
    if attempts < 1:
        raise ValueError("dunning starts after a failed charge: attempts >= 1")
    schedule = retry_schedule(first_failure_at, policy)
    retry = attempts  # the retry after ``attempts`` failed charges (the first charge is not a retry)
    if retry > len(schedule):
        return MarkUnpaid()
    due_at = schedule[retry - 1]
    return RetryCharge(retry, due_at) if now >= due_at else WaitUntil(due_at, retry)
