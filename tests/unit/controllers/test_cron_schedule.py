"""Cron schedules as the CronJob controller reads them: fields, descriptors,
day-of-month/day-of-week OR, time zones and daylight-saving jumps."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from kybern.controllers.cronjob import job_name
from kybern.machinery import cron

UTC = dt.UTC
NY = ZoneInfo("America/New_York")


def at(*a: int) -> dt.datetime:
    return dt.datetime(*a, tzinfo=UTC)


def test_every_fifteen_minutes_in_office_hours():
    s = cron.parse("*/15 9-17 * * MON-FRI")
    assert s.next(at(2024, 1, 5, 17, 50), UTC) == at(2024, 1, 8, 9, 0)  # Friday evening -> Monday
    assert s.next(at(2024, 1, 8, 9, 0), UTC) == at(2024, 1, 8, 9, 15)


def test_descriptors():
    assert cron.parse("@hourly").next(at(2024, 1, 1, 10, 30), UTC) == at(2024, 1, 1, 11, 0)
    assert cron.parse("@daily").next(at(2024, 1, 1, 10, 30), UTC) == at(2024, 1, 2)
    assert cron.parse("@yearly").next(at(2024, 3, 1), UTC) == at(2025, 1, 1)
    assert cron.parse("@weekly").next(at(2024, 1, 1), UTC) == at(2024, 1, 7)  # a Sunday


def test_day_of_month_or_day_of_week_when_both_restricted():
    s = cron.parse("0 0 13 * FRI")
    days = []
    t = at(2024, 1, 1)
    for _ in range(4):
        t = s.next(t, UTC)
        days.append(t.day)
    assert days == [5, 12, 13, 19]


def test_time_zone_shifts_the_firing():
    s = cron.parse("0 9 * * *")
    assert s.next(at(2024, 1, 10, 0, 0), NY) == at(2024, 1, 10, 14, 0)  # 09:00 EST
    assert s.next(at(2024, 7, 10, 0, 0), NY) == at(2024, 7, 10, 13, 0)  # 09:00 EDT


def test_wall_time_skipped_by_spring_forward_does_not_fire():
    s = cron.parse("30 2 * * *")
    assert s.next(at(2024, 3, 10, 0, 0), NY) == at(2024, 3, 11, 6, 30)


def test_wall_time_repeated_by_fall_back_fires_once():
    s = cron.parse("30 1 * * *")
    first = s.next(at(2024, 11, 3, 0, 0), NY)
    assert first == at(2024, 11, 3, 5, 30)
    assert s.next(first, NY) == at(2024, 11, 4, 6, 30)


def test_most_recent_counts_missed_runs():
    s = cron.parse("*/10 * * * *")
    last, n = cron.most_recent(s, UTC, at(2024, 1, 1, 0, 0), at(2024, 1, 1, 0, 35))
    assert (last, n) == (at(2024, 1, 1, 0, 30), 3)
    assert cron.most_recent(s, UTC, at(2024, 1, 1, 0, 0), at(2024, 1, 1, 0, 5)) == (None, 0)
    last, n = cron.most_recent(cron.parse("* * * * *"), UTC, at(2024, 1, 1), at(2024, 1, 2))
    assert last == at(2024, 1, 2) and n > 100


def test_a_schedule_that_never_fires_is_invalid():
    """kubectl's test/cmd/events.sh: "59 23 31 2 *" parses but never fires; upstream's
    controller reports InvalidSchedule with its cron library's zero-time message."""
    with pytest.raises(cron.CronError, match="time difference between two schedules is less than 1 second"):
        cron.most_recent(cron.parse("59 23 31 2 *"), UTC, at(2024, 1, 1), at(2024, 1, 2))


@pytest.mark.parametrize("spec,message", [
    ("bad", "expected exactly 5 fields, found 1: [bad]"),
    ("61 * * * *", "end of range (61) above maximum (59): 61"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
])
def test_invalid_schedules_say_why(spec, message):
    with pytest.raises(cron.CronError) as e:
        cron.parse(spec)
    assert str(e.value) == message


def test_unknown_time_zone():
    with pytest.raises(cron.CronError):
        cron.zone("Mars/Olympus")


def test_job_name_is_the_scheduled_minute():
    assert job_name("hello", at(2024, 1, 1, 0, 1)) == f"hello-{1704067260 // 60}"
