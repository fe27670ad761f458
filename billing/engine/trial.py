"""The trial timeline: 14 days without a card, with notices before it ends.

The trial is the interval ``[start, start + length)``. Its **last day** is the UTC date of its final moment
(the day before ``end`` when the trial ends exactly at midnight). A notice "N days left" is due at 00:00 UTC
of the day N days before the last day, so with the defaults the mails say "7 days left", "ends tomorrow"
(1) and "ends today" (0, on the last day). Notices due before the trial starts are skipped, and only the
latest notice due is ever sent: a notice missed (the sender was down) is superseded by the next one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing.engine.periods import midnight


class TrialNotice(enum.StrEnum):
    """The trial mails, by days left before the last day."""

    seven_days_left = "seven_days_left"
    one_day_left = "one_day_left"
    last_day = "last_day"


@dataclass(frozen=True)
class TrialPolicy:
    """Configuration: the trial's length and when each notice is due (days before the last day)."""

    length: timedelta = timedelta(days=14)
    notice_days_left: tuple[tuple[TrialNotice, int], ...] = (
        (TrialNotice.seven_days_left, 7),
        (TrialNotice.one_day_left, 1),
        (TrialNotice.last_day, 0),
    )


DEFAULT_TRIAL = TrialPolicy()


def trial_end(start: datetime, policy: TrialPolicy = DEFAULT_TRIAL) -> datetime:
    """When the trial is over (exclusive)."""
    return start + policy.length


def notice_schedule(start: datetime, policy: TrialPolicy = DEFAULT_TRIAL) -> list[tuple[TrialNotice, datetime]]:
    """Each notice of the trial started at ``start`` with the time it is due, in time order."""
    last_day = (trial_end(start, policy) - timedelta(microseconds=1)).date()
    schedule = [(notice, midnight(last_day - timedelta(days=days))) for notice, days in policy.notice_days_left]
    return sorted(((n, at) for n, at in schedule if at >= start), key=lambda item: item[1])


def due_trial_notice(start: datetime, now: datetime, policy: TrialPolicy = DEFAULT_TRIAL) -> TrialNotice | None:
    """The latest notice due at ``now`` while the trial runs (``None`` before the first and after the end)."""
    if now >= trial_end(start, policy):
        return None
    due = [notice for notice, at in notice_schedule(start, policy) if at <= now]
    return due[-1] if due else None
