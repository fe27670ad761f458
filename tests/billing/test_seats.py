"""A day's seats are the peak in force during it; days without data are refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from billing.engine.seats import MissingSeatSnapshot, SeatSnapshot, organization_seats_per_day, seats_per_day


def snap(day: int, hour: int, seats: int) -> SeatSnapshot:
    return SeatSnapshot(datetime(2026, 3, day, hour, tzinfo=UTC), seats)


DAYS = [date(2026, 3, d) for d in range(1, 8)]


def test_peak_in_force_during_each_day() -> None:
    snapshots = [
        snap(1, 0, 3),  # midnight snapshot of day 1
        snap(2, 12, 5),  # grows mid-day: day 2 counts 5
        snap(3, 9, 2),  # shrinks on day 3: 5 was in force at its midnight, so day 3 counts 5
        snap(3, 18, 4),
        # nothing on day 4: 4 carries forward
        snap(5, 0, 1),  # at midnight of day 5: in force from its start
        snap(6, 23, 0),
        snap(7, 1, 0),
    ]
    assert seats_per_day(reversed(snapshots), DAYS) == [3, 5, 5, 4, 1, 1, 0]


def test_a_snapshot_taken_the_previous_evening_is_in_force() -> None:
    assert seats_per_day([SeatSnapshot(datetime(2026, 2, 28, 22, tzinfo=UTC), 7)], DAYS[:2]) == [7, 7]


def test_a_day_before_any_snapshot_is_refused() -> None:
    with pytest.raises(MissingSeatSnapshot) as caught:
        seats_per_day([snap(2, 1, 3)], DAYS[:3])
    assert caught.value.day == date(2026, 3, 1)
    with pytest.raises(MissingSeatSnapshot):
        seats_per_day([], DAYS[:1])


def test_a_snapshot_at_the_next_midnight_belongs_to_the_next_day() -> None:
    assert seats_per_day([snap(1, 0, 1), snap(2, 0, 9)], DAYS[:2]) == [1, 9]


def test_snapshots_are_checked() -> None:
    with pytest.raises(ValueError, match="aware"):
        SeatSnapshot(datetime(2026, 3, 1), 1)
    with pytest.raises(ValueError, match="negative"):
        SeatSnapshot(datetime(2026, 3, 1, tzinfo=UTC), -1)


def test_every_hour_pattern_matches_a_brute_force_reading() -> None:
    """Seats change at hourly snapshots over a week; each day's count is the max of in-force values."""
    start = datetime(2026, 3, 1, tzinfo=UTC) - timedelta(hours=1)
    values = [(i * 7919) % 11 for i in range(24 * 7 + 1)]
    snapshots = [SeatSnapshot(start + timedelta(hours=i), v) for i, v in enumerate(values)]
    for stride in (1, 5, 13, 24, 31):
        kept = snapshots[::stride]
        expected = []
        for day in DAYS:
            lo = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
            hi = lo + timedelta(days=1)
            in_force = [s.seats for s in kept if s.taken_at <= lo][-1:]
            during = [s.seats for s in kept if lo < s.taken_at < hi]
            expected.append(max(in_force + during))
        assert seats_per_day(kept, DAYS) == expected, stride


def test_an_organization_sums_its_workspaces_and_a_new_workspace_counts_from_its_first_snapshot() -> None:
    first = [snap(1, 0, 3), snap(3, 12, 1)]
    second = [snap(2, 18, 4)]  # made on day 2
    assert organization_seats_per_day([first, second], DAYS[:4]) == [3, 3 + 4, 3 + 4, 1 + 4]
    with pytest.raises(MissingSeatSnapshot) as missing:
        organization_seats_per_day([second], DAYS[:2])
    assert missing.value.day == date(2026, 3, 1)
    assert organization_seats_per_day([], []) == []
