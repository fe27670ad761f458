"""Seats per day from seat snapshots.

A seat is an activated, non-bot user; the control plane records a snapshot of the count daily and at every
billing event. **A day's seats are the peak in force during the day**: the count in force at 00:00 UTC (the
latest snapshot taken at or before midnight) and every snapshot taken during the day, whichever is highest.
A day with no snapshot at or before its end cannot be priced (:class:`MissingSeatSnapshot`): billing never
guesses a count.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from billing.engine.periods import ONE_DAY, midnight


@dataclass(frozen=True, order=True)
class SeatSnapshot:
    """``seats`` counted at ``taken_at`` (an aware datetime)."""

    taken_at: datetime
    seats: int

    def __post_init__(self) -> None:
        if self.taken_at.tzinfo is None:
            raise ValueError(f"snapshot times are aware datetimes: {self.taken_at!r}")
        if self.seats < 0:
            raise ValueError(f"a seat count is never negative: {self.seats}")


class MissingSeatSnapshot(ValueError):
    """No snapshot tells the seats of a billed day."""

    def __init__(self, day: date) -> None:
        super().__init__(f"no seat snapshot at or before the end of {day.isoformat()}")
        self.day = day


def seats_per_day(snapshots: Iterable[SeatSnapshot], days: Sequence[date]) -> list[int]:
    """The seats of each of ``days`` (see the module's rule), in the same order."""
    ordered = sorted(snapshots)
    times = [s.taken_at for s in ordered]
    return [_seats_on(ordered, times, day) for day in days]


def _seats_on(ordered: list[SeatSnapshot], times: list[datetime], day: date) -> int:
    start, end = midnight(day), midnight(day + ONE_DAY)
    in_force_index = bisect.bisect_right(times, start) - 1
    during = ordered[bisect.bisect_right(times, start) : bisect.bisect_left(times, end)]
    candidates = [s.seats for s in during]
    if in_force_index >= 0:
        candidates.append(ordered[in_force_index].seats)
    if not candidates:
        raise MissingSeatSnapshot(day)
    return max(candidates)


def organization_seats_per_day(per_workspace: Iterable[Sequence[SeatSnapshot]], days: Sequence[date]) -> list[int]:
    """The seats of an organization of several workspaces on each of ``days``: the sum of each workspace's
    seats (:func:`seats_per_day`; a workspace with no snapshot yet on a day did not exist then and counts 0).
    A day that no workspace has a snapshot for raises :class:`MissingSeatSnapshot`."""
    totals = [0] * len(days)
    known = [False] * len(days)
    for snapshots in per_workspace:
        ordered = sorted(snapshots)
        times = [s.taken_at for s in ordered]
        for index, day in enumerate(days):
            try:
                totals[index] += _seats_on(ordered, times, day)
            except MissingSeatSnapshot:
                continue
            known[index] = True
    for index, day in enumerate(days):
        if not known[index]:
            raise MissingSeatSnapshot(day)
    return totals
