"""Maintenance windows: open or closed at a given instant, in the customer's time zone, across midnight."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from control_plane.rollouts.windows import is_open

# 2026-03-02 is a Monday (weekday 0).
TUESDAY_NIGHT_BERLIN = {"days": [1], "start": "23:00", "duration_minutes": 120, "timezone": "Europe/Berlin"}
SUNDAY_MORNING_TOKYO = {"days": [6], "start": "02:00", "duration_minutes": 60, "timezone": "Asia/Tokyo"}
WEEKDAYS_UTC = {"days": [0, 1, 2, 3, 4], "start": "12:00", "duration_minutes": 30}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_no_window_is_always_open() -> None:
    assert is_open(None, utc("2026-03-04 03:17"))


@pytest.mark.parametrize(
    ("window", "instant", "open_"),
    [
        # Tuesday 23:00-01:00 Berlin (UTC+1 in March before the switch): 22:00-24:00 UTC on Tuesday.
        (TUESDAY_NIGHT_BERLIN, "2026-03-03 21:59", False),
        (TUESDAY_NIGHT_BERLIN, "2026-03-03 22:00", True),
        (TUESDAY_NIGHT_BERLIN, "2026-03-03 23:30", True),  # past local midnight: Wednesday 00:30 in Berlin
        (TUESDAY_NIGHT_BERLIN, "2026-03-04 00:00", False),  # the end is not in the window
        (TUESDAY_NIGHT_BERLIN, "2026-03-02 22:30", False),  # Monday night
        (TUESDAY_NIGHT_BERLIN, "2026-03-04 22:30", False),  # Wednesday night
        # After the switch to summer time (29 March), the same local window is 21:00-23:00 UTC.
        (TUESDAY_NIGHT_BERLIN, "2026-03-31 21:30", True),
        (TUESDAY_NIGHT_BERLIN, "2026-03-31 23:30", False),
        # Sunday 02:00-03:00 Tokyo (UTC+9) is Saturday 17:00-18:00 UTC.
        (SUNDAY_MORNING_TOKYO, "2026-03-07 17:10", True),
        (SUNDAY_MORNING_TOKYO, "2026-03-08 17:10", False),
        (SUNDAY_MORNING_TOKYO, "2026-03-07 18:00", False),
        (WEEKDAYS_UTC, "2026-03-06 12:29", True),  # Friday
        (WEEKDAYS_UTC, "2026-03-07 12:10", False),  # Saturday
        (WEEKDAYS_UTC, "2026-03-06 12:30", False),
    ],
)
def test_a_window_is_open_from_its_local_start_for_its_duration_on_its_days(
    window: dict[str, Any], instant: str, open_: bool
) -> None:
    assert is_open(window, utc(instant)) is open_


def test_a_window_ending_after_midnight_on_the_last_day_of_the_week_runs_into_monday() -> None:
    sunday_late = {"days": [6], "start": "23:30", "duration_minutes": 60, "timezone": "UTC"}
    assert is_open(sunday_late, utc("2026-03-09 00:15"))  # Monday 00:15
    assert not is_open(sunday_late, utc("2026-03-10 00:15"))  # Tuesday 00:15
