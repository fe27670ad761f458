"""The 14-day trial and its notices at 7 and 1 days left and on the last day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.engine.trial import TrialNotice, TrialPolicy, due_trial_notice, notice_schedule, trial_end

N = TrialNotice


def test_a_trial_started_mid_morning() -> None:
    start = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert trial_end(start) == datetime(2026, 3, 15, 10, 30, tzinfo=UTC)
    assert notice_schedule(start) == [
        (N.seven_days_left, datetime(2026, 3, 8, tzinfo=UTC)),
        (N.one_day_left, datetime(2026, 3, 14, tzinfo=UTC)),
        (N.last_day, datetime(2026, 3, 15, tzinfo=UTC)),
    ]


def test_a_trial_ending_at_midnight_has_its_last_day_before() -> None:
    start = datetime(2026, 2, 20, tzinfo=UTC)  # ends 6 March 00:00 (2026 is not a leap year)
    assert [at.date().isoformat() for _, at in notice_schedule(start)] == ["2026-02-26", "2026-03-04", "2026-03-05"]


def test_every_minute_of_the_trial_gets_the_latest_notice_due() -> None:
    for start_hour in range(0, 24, 5):
        start = datetime(2028, 2, 20, start_hour, 17, tzinfo=UTC)  # over 29 February
        schedule = notice_schedule(start)
        assert len(schedule) == 3
        now = start - timedelta(minutes=1)
        seen: list[TrialNotice | None] = []
        while now < trial_end(start) + timedelta(hours=3):
            notice = due_trial_notice(start, now)
            expected = [n for n, at in schedule if at <= now and now < trial_end(start)]
            assert notice == (expected[-1] if expected else None)
            if not seen or seen[-1] != notice:
                seen.append(notice)
            now += timedelta(minutes=7)
        assert seen == [None, N.seven_days_left, N.one_day_left, N.last_day, None]


def test_notices_before_a_short_trial_starts_are_skipped() -> None:
    policy = TrialPolicy(length=timedelta(days=3))
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert [n for n, _ in notice_schedule(start, policy)] == [N.one_day_left, N.last_day]
    assert due_trial_notice(start, start, policy) is None
    assert due_trial_notice(start, datetime(2026, 3, 3, 1, tzinfo=UTC), policy) == N.one_day_left
