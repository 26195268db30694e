"""Unit tests for services.recurrence: RRULE validation and on-read expansion."""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.rrule import rrule, rrulestr
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from services import recurrence
from services.recurrence import (
    InvalidRecurrence,
    Occurrence,
    Series,
    expand,
    local_to_utc,
    parse_rule,
    series_end,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def starts(series: Series, window_start: datetime, window_end: datetime) -> list[datetime]:
    return [occ.start for occ in expand(series, window_start, window_end)]


def utc_days(year: int, month: int, days: list[int], hour: int = 9) -> list[datetime]:
    return [utc(year, month, day, hour) for day in days]


# --------------------------------------------------------------------------- basic expansion


def test_weekly_series_without_end_returns_occurrence_five_years_out() -> None:
    series = Series("FREQ=WEEKLY;BYDAY=MO", datetime(2025, 1, 6, 9, 0), HOUR, "Europe/Oslo")

    result = expand(series, utc(2030, 1, 7), utc(2030, 1, 8))

    # 2030-01-07 is a Monday; 09:00 CET is 08:00 UTC.
    assert result == [Occurrence(utc(2030, 1, 7, 8), utc(2030, 1, 7, 8), utc(2030, 1, 7, 9))]


def test_daily() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert starts(series, utc(2025, 1, 1), utc(2025, 1, 4)) == utc_days(2025, 1, [1, 2, 3])


def test_weekly_infers_weekday_from_start() -> None:
    series = Series("FREQ=WEEKLY", datetime(2025, 1, 8, 9, 0), HOUR, "UTC")  # a Wednesday

    assert starts(series, utc(2025, 1, 1), utc(2025, 2, 1)) == utc_days(2025, 1, [8, 15, 22, 29])


def test_monthly_infers_day_from_start() -> None:
    series = Series("FREQ=MONTHLY", datetime(2025, 1, 15, 14, 0), HOUR, "UTC")

    assert starts(series, utc(2025, 3, 1), utc(2025, 5, 1)) == [
        utc(2025, 3, 15, 14),
        utc(2025, 4, 15, 14),
    ]


def test_yearly_infers_month_and_day_from_start() -> None:
    series = Series("FREQ=YEARLY", datetime(2025, 6, 15, 9, 0), HOUR, "UTC")

    assert starts(series, utc(2030, 1, 1), utc(2032, 1, 1)) == [
        utc(2030, 6, 15, 9),
        utc(2031, 6, 15, 9),
    ]


def test_yearly_on_february_29_only_in_leap_years() -> None:
    series = Series("FREQ=YEARLY", datetime(2024, 2, 29, 10, 0), HOUR, "UTC")

    assert starts(series, utc(2025, 1, 1), utc(2033, 1, 1)) == [
        utc(2028, 2, 29, 10),
        utc(2032, 2, 29, 10),
    ]


def test_interval_weekly_on_two_days() -> None:
    rule = "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE"
    series = Series(rule, datetime(2025, 1, 6, 9, 0), HOUR, "UTC")

    assert starts(series, utc(2025, 1, 1), utc(2025, 2, 8)) == [
        utc(2025, 1, 6, 9),
        utc(2025, 1, 8, 9),
        utc(2025, 1, 20, 9),
        utc(2025, 1, 22, 9),
        utc(2025, 2, 3, 9),
        utc(2025, 2, 5, 9),
    ]


def test_interval_daily() -> None:
    series = Series("FREQ=DAILY;INTERVAL=3", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert starts(series, utc(2025, 1, 1), utc(2025, 1, 12)) == utc_days(2025, 1, [1, 4, 7, 10])


@pytest.mark.parametrize(
    ("wkst", "expected_days"),
    [
        # RFC 5545 §3.3.10: WKST decides which days share a two-week period.
        ("SU", [(1, 10), (1, 12), (1, 24), (1, 26)]),
        ("MO", [(1, 3), (1, 12), (1, 17), (1, 26), (1, 31)]),
    ],
)
def test_wkst_is_kept_when_fast_forwarding(wkst: str, expected_days: list[tuple[int, int]]) -> None:
    rule = f"FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST={wkst}"
    series = Series(rule, datetime(1997, 8, 5, 9, 0), HOUR, "America/New_York")

    # 09:00 EST is 14:00 UTC.
    assert starts(series, utc(2027, 1, 1), utc(2027, 2, 1)) == [
        utc(2027, month, day, 14) for month, day in expected_days
    ]


@pytest.mark.parametrize(
    ("wkst", "expected_days"),
    [("MO", [5, 10, 19, 24]), ("SU", [5, 17, 19, 31])],
)
def test_rfc_wkst_example_with_count(wkst: str, expected_days: list[int]) -> None:
    # The RFC 5545 §3.3.10 example, whose result depends on WKST.
    rule = f"FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST={wkst}"
    series = Series(rule, datetime(1997, 8, 5, 9, 0), HOUR, "America/New_York")

    # 09:00 EDT is 13:00 UTC.
    assert starts(series, utc(1997, 1, 1), utc(1998, 1, 1)) == utc_days(1997, 8, expected_days, 13)


def test_count_limits_occurrences() -> None:
    series = Series("FREQ=DAILY;COUNT=3", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert starts(series, utc(2024, 1, 1), utc(2026, 1, 1)) == utc_days(2025, 1, [1, 2, 3])
    assert expand(series, utc(2025, 1, 4), utc(2026, 1, 1)) == []


def test_count_with_window_after_many_occurrences() -> None:
    series = Series("FREQ=WEEKLY;COUNT=300", datetime(2025, 1, 6, 9, 0), HOUR, "UTC")

    # Occurrence 300 is 299 weeks after the first.
    last = datetime(2025, 1, 6, 9, 0, tzinfo=UTC) + timedelta(weeks=299)
    assert starts(series, last - DAY, last + timedelta(weeks=4)) == [last]


@pytest.mark.parametrize(
    ("until", "expected_days"),
    [
        ("UNTIL=20250105T080000Z", [1, 2, 3, 4, 5]),  # 09:00 Oslo = 08:00Z, inclusive
        ("UNTIL=20250105T075959Z", [1, 2, 3, 4]),
        ("UNTIL=20250105", [1, 2, 3, 4, 5]),  # a date includes that whole day
        ("UNTIL=20250104", [1, 2, 3, 4]),
        ("UNTIL=20250105T090000", [1, 2, 3, 4, 5]),  # local wall-clock time
        ("UNTIL=20250105T085959", [1, 2, 3, 4]),
    ],
)
def test_until_forms(until: str, expected_days: list[int]) -> None:
    series = Series(f"FREQ=DAILY;{until}", datetime(2025, 1, 1, 9, 0), HOUR, "Europe/Oslo")

    assert starts(series, utc(2024, 12, 1), utc(2025, 2, 1)) == utc_days(2025, 1, expected_days, 8)


def test_until_z_is_converted_to_local_time_in_summer() -> None:
    # 09:00 Oslo in July is 07:00Z; an UNTIL of 07:00Z must include that day.
    rule = "FREQ=DAILY;UNTIL=20250703T070000Z"
    series = Series(rule, datetime(2025, 7, 1, 9, 0), HOUR, "Europe/Oslo")

    assert starts(series, utc(2025, 6, 1), utc(2025, 8, 1)) == utc_days(2025, 7, [1, 2, 3], 7)


def test_window_after_until_is_empty() -> None:
    series = Series("FREQ=DAILY;UNTIL=20250110", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert expand(series, utc(2025, 1, 11), utc(2030, 1, 1)) == []


def test_window_before_dtstart() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert expand(series, utc(2020, 1, 1), utc(2025, 1, 1)) == []
    assert starts(series, utc(2020, 1, 1), utc(2025, 1, 2)) == [utc(2025, 1, 1, 9)]


def test_monthly_last_weekday_with_bysetpos() -> None:
    rule = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"
    series = Series(rule, datetime(2025, 1, 1, 16, 0), HOUR, "UTC")

    last_weekdays = [31, 28, 31, 30, 30, 30, 31, 29, 30, 31, 28, 31]
    assert starts(series, utc(2025, 1, 1), utc(2026, 1, 1)) == [
        utc(2025, month, day, 16) for month, day in enumerate(last_weekdays, start=1)
    ]


@pytest.mark.parametrize(
    ("byday", "expected"),
    [
        ("2TU", [(1, 14), (2, 11), (3, 11)]),
        ("-1FR", [(1, 31), (2, 28), (3, 28)]),
    ],
)
def test_monthly_positional_weekday(byday: str, expected: list[tuple[int, int]]) -> None:
    series = Series(f"FREQ=MONTHLY;BYDAY={byday}", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert starts(series, utc(2025, 1, 1), utc(2025, 4, 1)) == [
        utc(2025, month, day, 9) for month, day in expected
    ]


@pytest.mark.parametrize("rule", ["FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=MONTHLY"])
def test_monthly_on_the_31st_skips_short_months(rule: str) -> None:
    series = Series(rule, datetime(2025, 1, 31, 9, 0), HOUR, "UTC")

    months_with_31 = [1, 3, 5, 7, 8, 10, 12]
    assert starts(series, utc(2025, 1, 1), utc(2026, 1, 1)) == [
        utc(2025, month, 31, 9) for month in months_with_31
    ]
    # Years later, through the fast-forward path.
    assert starts(series, utc(2031, 1, 1), utc(2032, 1, 1)) == [
        utc(2031, month, 31, 9) for month in months_with_31
    ]


def test_monthly_interval_on_the_31st_years_later() -> None:
    series = Series("FREQ=MONTHLY;INTERVAL=2", datetime(2025, 1, 31, 9, 0), HOUR, "UTC")

    # Odd months only; of those, September and November have 30 days.
    assert starts(series, utc(2030, 1, 1), utc(2031, 1, 1)) == [
        utc(2030, month, 31, 9) for month in (1, 3, 5, 7)
    ]


def test_monthly_last_day_with_negative_monthday() -> None:
    series = Series("FREQ=MONTHLY;BYMONTHDAY=-1", datetime(2025, 1, 31, 9, 0), HOUR, "UTC")

    assert starts(series, utc(2028, 1, 1), utc(2028, 4, 1)) == [
        utc(2028, 1, 31, 9),
        utc(2028, 2, 29, 9),
        utc(2028, 3, 31, 9),
    ]


def test_results_are_sorted_and_overlap_the_window() -> None:
    rule = "FREQ=WEEKLY;BYDAY=MO,WE,FR"
    series = Series(rule, datetime(2025, 1, 6, 9, 0), timedelta(hours=2), "UTC")

    # The Friday 09:00-11:00 meeting overlaps a window that starts at 10:00.
    assert starts(series, utc(2025, 1, 10, 10), utc(2025, 1, 13, 9)) == [utc(2025, 1, 10, 9)]
    # An occurrence that ends exactly at window_start does not overlap.
    assert starts(series, utc(2025, 1, 10, 11), utc(2025, 1, 13, 9)) == []
    # An occurrence that starts exactly at window_end is outside.
    assert starts(series, utc(2025, 1, 10, 11), utc(2025, 1, 13, 10)) == [utc(2025, 1, 13, 9)]


def test_zero_length_occurrence_at_window_start_is_included() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), timedelta(0), "UTC")

    result = expand(series, utc(2025, 1, 2, 9), utc(2025, 1, 3, 9))

    assert result == [Occurrence(utc(2025, 1, 2, 9), utc(2025, 1, 2, 9), utc(2025, 1, 2, 9))]


def test_empty_or_inverted_window() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert expand(series, utc(2025, 1, 5), utc(2025, 1, 5)) == []
    assert expand(series, utc(2025, 1, 6), utc(2025, 1, 5)) == []


def test_window_in_another_zone_is_compared_as_an_instant() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")
    tokyo = ZoneInfo("Asia/Tokyo")

    # 18:00-19:00 Tokyo is 09:00-10:00 UTC.
    window = (datetime(2025, 1, 2, 18, tzinfo=tokyo), datetime(2025, 1, 2, 19, tzinfo=tokyo))
    assert starts(series, *window) == [utc(2025, 1, 2, 9)]


# --------------------------------------------------------------------------- exdates and skip


def test_exdates_remove_occurrences() -> None:
    exdates = frozenset({datetime(2025, 1, 13, 9, 0)})
    series = Series("FREQ=WEEKLY", datetime(2025, 1, 6, 9, 0), HOUR, "Europe/Oslo", exdates)

    assert starts(series, utc(2025, 1, 1), utc(2025, 1, 28)) == [
        utc(2025, 1, 6, 8),
        utc(2025, 1, 20, 8),
        utc(2025, 1, 27, 8),
    ]


def test_aware_exdate_matches_the_instant() -> None:
    exdates = frozenset({utc(2025, 1, 13, 8)})  # 09:00 Oslo
    series = Series("FREQ=WEEKLY", datetime(2025, 1, 6, 9, 0), HOUR, "Europe/Oslo", exdates)

    assert starts(series, utc(2025, 1, 1), utc(2025, 1, 21)) == [
        utc(2025, 1, 6, 8),
        utc(2025, 1, 20, 8),
    ]


def test_exdate_far_in_the_future_of_a_no_end_series() -> None:
    exdates = frozenset({datetime(2031, 3, 3, 9, 0)})
    series = Series("FREQ=WEEKLY", datetime(2025, 1, 6, 9, 0), HOUR, "UTC", exdates)

    assert starts(series, utc(2031, 3, 1), utc(2031, 3, 18)) == [
        utc(2031, 3, 10, 9),
        utc(2031, 3, 17, 9),
    ]


def test_skip_leaves_out_overridden_occurrences() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "Europe/Oslo")
    oslo = ZoneInfo("Europe/Oslo")

    skip = {utc(2025, 1, 2, 8), datetime(2025, 1, 3, 9, 0, tzinfo=oslo)}
    result = expand(series, utc(2025, 1, 1), utc(2025, 1, 5), skip=skip)

    assert [occ.original_start for occ in result] == [utc(2025, 1, 1, 8), utc(2025, 1, 4, 8)]


def test_skip_accepts_any_container() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    result = expand(series, utc(2025, 1, 1), utc(2025, 1, 3), skip=[utc(2025, 1, 1, 9)])

    assert [occ.start for occ in result] == [utc(2025, 1, 2, 9)]


# --------------------------------------------------------------------------- DST


def test_oslo_spring_forward_keeps_local_time() -> None:
    # DST starts 2025-03-30 in Europe/Oslo: CET (+1) -> CEST (+2).
    series = Series("FREQ=WEEKLY;BYDAY=MO", datetime(2025, 3, 3, 9, 0), HOUR, "Europe/Oslo")

    assert expand(series, utc(2025, 3, 24), utc(2025, 4, 1)) == [
        Occurrence(utc(2025, 3, 24, 8), utc(2025, 3, 24, 8), utc(2025, 3, 24, 9)),
        Occurrence(utc(2025, 3, 31, 7), utc(2025, 3, 31, 7), utc(2025, 3, 31, 8)),
    ]


def test_oslo_fall_back_keeps_local_time() -> None:
    # DST ends 2025-10-26 in Europe/Oslo: CEST (+2) -> CET (+1).
    series = Series("FREQ=WEEKLY;BYDAY=MO", datetime(2025, 3, 3, 9, 0), HOUR, "Europe/Oslo")

    assert starts(series, utc(2025, 10, 20), utc(2025, 10, 28)) == [
        utc(2025, 10, 20, 7),
        utc(2025, 10, 27, 8),
    ]


def test_new_york_spring_forward_and_fall_back() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "America/New_York")

    # 2025-03-09: EST (-5) -> EDT (-4).
    assert starts(series, utc(2025, 3, 8), utc(2025, 3, 10, 12)) == [
        utc(2025, 3, 8, 14),
        utc(2025, 3, 9, 13),
    ]
    # 2025-11-02: EDT (-4) -> EST (-5).
    assert starts(series, utc(2025, 11, 1), utc(2025, 11, 2, 23)) == [
        utc(2025, 11, 1, 13),
        utc(2025, 11, 2, 14),
    ]


def test_dst_gap_uses_offset_before_the_gap() -> None:
    # 02:30 does not exist on 2025-03-09 in New York; RFC 5545 makes it 03:30 EDT (07:30Z).
    series = Series("FREQ=DAILY", datetime(2025, 3, 8, 2, 30), HOUR, "America/New_York")

    assert starts(series, utc(2025, 3, 8), utc(2025, 3, 11)) == [
        utc(2025, 3, 8, 7, 30),  # 02:30 EST
        utc(2025, 3, 9, 7, 30),  # 03:30 EDT
        utc(2025, 3, 10, 6, 30),  # 02:30 EDT
    ]


def test_local_to_utc_gap_and_overlap() -> None:
    new_york = ZoneInfo("America/New_York")

    gap = local_to_utc(datetime(2025, 3, 9, 2, 30), "America/New_York")
    assert gap == utc(2025, 3, 9, 7, 30)
    assert gap.astimezone(new_york).replace(tzinfo=None) == datetime(2025, 3, 9, 3, 30)
    # Oslo 2025-03-30 02:30 does not exist: CET applies, so 01:30Z (03:30 CEST).
    assert local_to_utc(datetime(2025, 3, 30, 2, 30), "Europe/Oslo") == utc(2025, 3, 30, 1, 30)
    # Overlap: the first 01:30 in New York is EDT, the first 02:30 in Oslo is CEST.
    assert local_to_utc(datetime(2025, 11, 2, 1, 30), "America/New_York") == utc(2025, 11, 2, 5, 30)
    assert local_to_utc(datetime(2025, 10, 26, 2, 30), "Europe/Oslo") == utc(2025, 10, 26, 0, 30)
    assert local_to_utc(datetime(2025, 6, 1, 12, 0), "UTC") == utc(2025, 6, 1, 12)
    assert local_to_utc(utc(2025, 6, 1, 12), "Europe/Oslo") == utc(2025, 6, 1, 12)


def test_dst_overlap_occurrence_is_the_first_one() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 10, 31, 1, 30), HOUR, "America/New_York")

    assert starts(series, utc(2025, 11, 1), utc(2025, 11, 4)) == [
        utc(2025, 11, 1, 5, 30),  # 01:30 EDT
        utc(2025, 11, 2, 5, 30),  # first 01:30, still EDT
        utc(2025, 11, 3, 6, 30),  # 01:30 EST
    ]


def test_gap_time_and_its_shifted_time_count_once() -> None:
    # On 2025-03-09, 02:30 (gap) and 03:30 EDT are the same instant.
    rule = "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=30"
    series = Series(rule, datetime(2025, 3, 8, 2, 30), timedelta(minutes=30), "America/New_York")

    assert starts(series, utc(2025, 3, 9), utc(2025, 3, 9, 12)) == [utc(2025, 3, 9, 7, 30)]


# --------------------------------------------------------------------------- all-day


def test_all_day_series_is_reported_as_utc_midnight_dates() -> None:
    series = Series("FREQ=WEEKLY;BYDAY=SA", datetime(2025, 3, 22), DAY, "Europe/Oslo", all_day=True)

    # No shift across the 2025-03-30 DST change: all-day occurrences are floating dates.
    assert expand(series, utc(2025, 3, 28), utc(2025, 4, 6)) == [
        Occurrence(utc(2025, 3, 29), utc(2025, 3, 29), utc(2025, 3, 30)),
        Occurrence(utc(2025, 4, 5), utc(2025, 4, 5), utc(2025, 4, 6)),
    ]


def test_all_day_exdate_and_until() -> None:
    series = Series(
        "FREQ=DAILY;UNTIL=20250105",
        datetime(2025, 1, 1),
        DAY,
        "America/New_York",
        exdates=frozenset({datetime(2025, 1, 3)}),
        all_day=True,
    )

    assert starts(series, utc(2024, 12, 1), utc(2025, 2, 1)) == [
        utc(2025, 1, 1),
        utc(2025, 1, 2),
        utc(2025, 1, 4),
        utc(2025, 1, 5),
    ]
    assert series_end(series) == utc(2025, 1, 6)


def test_all_day_multi_day_occurrence_overlaps_window() -> None:
    series = Series("FREQ=MONTHLY", datetime(2025, 1, 1), 3 * DAY, "UTC", all_day=True)

    assert starts(series, utc(2025, 2, 3, 12), utc(2025, 2, 4)) == [utc(2025, 2, 1)]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "empty recurrence rule"),
        ("INTERVAL=2", "FREQ is required"),
        ("FREQ=HOURLY", "FREQ=HOURLY is not supported for meetings"),
        ("FREQ=MINUTELY", "FREQ=MINUTELY is not supported for meetings"),
        ("FREQ=SECONDLY", "FREQ=SECONDLY is not supported for meetings"),
        ("FREQ=FORTNIGHTLY", "unknown FREQ 'FORTNIGHTLY'"),
        ("FREQ=DAILY;COUNT=3;UNTIL=20250101", "COUNT and UNTIL cannot both be given"),
        ("FREQ=DAILY;FOO=1", "unknown rule part 'FOO'"),
        ("FREQ=DAILY;X-NAME=1", "unknown rule part 'X-NAME'"),
        ("FREQ=DAILY;COUNT", r"malformed rule part 'COUNT' \(expected NAME=VALUE\)"),
        ("FREQ=DAILY;FREQ=WEEKLY", "rule part FREQ given more than once"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL must be a positive integer, got '0'"),
        ("FREQ=DAILY;INTERVAL=-1", "INTERVAL must be a positive integer, got '-1'"),
        ("FREQ=DAILY;COUNT=x", "COUNT must be a positive integer, got 'X'"),
        ("FREQ=DAILY;UNTIL=2025-01-01", "UNTIL must be YYYYMMDD, YYYYMMDDTHHMMSS or"),
        ("FREQ=DAILY;UNTIL=20250230", "UNTIL '20250230' is not a valid date/time"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY item 'XX' is not a weekday"),
        ("FREQ=MONTHLY;BYDAY=0MO", r"BYDAY ordinal in '0MO' is out of range"),
        ("FREQ=WEEKLY;BYDAY=2TU", "BYDAY with an ordinal .* only allowed with FREQ=MONTHLY"),
        ("FREQ=MONTHLY;BYDAY=6MO", "BYDAY ordinal within a month must be"),
        ("FREQ=YEARLY;BYWEEKNO=1;BYDAY=1MO", "cannot be combined with BYWEEKNO"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", r"BYMONTHDAY value 32 is out of range \(-31..-1 or 1..31\)"),
        ("FREQ=MONTHLY;BYMONTHDAY=0", "BYMONTHDAY value 0 is out of range"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,,2", "BYMONTHDAY must be a comma-separated list"),
        ("FREQ=YEARLY;BYMONTH=13", r"BYMONTH value 13 is out of range \(1..12\)"),
        ("FREQ=YEARLY;BYMONTH=-1", "BYMONTH value -1 is out of range"),
        ("FREQ=DAILY;BYHOUR=24", "BYHOUR value 24 is out of range"),
        ("FREQ=DAILY;BYSECOND=60", "BYSECOND value 60 is out of range"),
        ("FREQ=WEEKLY;BYMONTHDAY=1", "BYMONTHDAY is not allowed with FREQ=WEEKLY"),
        ("FREQ=MONTHLY;BYYEARDAY=1", "BYYEARDAY is only allowed with FREQ=YEARLY, not MONTHLY"),
        ("FREQ=DAILY;BYWEEKNO=1", "BYWEEKNO is only allowed with FREQ=YEARLY, not DAILY"),
        ("FREQ=MONTHLY;BYSETPOS=1", "BYSETPOS requires another BYxxx rule part"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=0", "BYSETPOS value 0 is out of range"),
        ("FREQ=WEEKLY;WKST=XY", "WKST must be one of MO, TU, WE, TH, FR, SA, SU, got 'XY'"),
    ],
)
def test_parse_rule_rejects(rule: str, message: str) -> None:
    with pytest.raises(InvalidRecurrence, match=message):
        parse_rule(rule)


@pytest.mark.parametrize(
    ("rule", "first"),
    [
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE", utc(2025, 1, 1, 9)),
        ("freq=monthly;byday=-1fr", utc(2025, 1, 31, 9)),  # values are case-insensitive
        ("FREQ=DAILY;", utc(2025, 1, 1, 9)),  # a trailing ";" is tolerated
        ("RRULE:FREQ=DAILY;COUNT=5", utc(2025, 1, 1, 9)),  # so is the property name
        ("FREQ=YEARLY;BYMONTH=11;BYDAY=1TU", utc(2025, 11, 4, 9)),
        ("FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", utc(2025, 5, 12, 9)),
        ("FREQ=YEARLY;BYYEARDAY=-1", utc(2025, 12, 31, 9)),
        ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", utc(2025, 1, 31, 9)),
        ("FREQ=DAILY;UNTIL=20270101T000000Z", utc(2025, 1, 1, 9)),
    ],
)
def test_parse_rule_accepts(rule: str, first: datetime) -> None:
    parse_rule(rule)  # does not raise

    series = Series(rule, datetime(2025, 1, 1, 9, 0), HOUR, "UTC")  # a Wednesday
    assert starts(series, utc(2025, 1, 1), utc(2026, 1, 1))[0] == first


def test_invalid_rule_time_zone_and_duration_raise_from_expand() -> None:
    window = (utc(2025, 1, 1), utc(2025, 2, 1))
    start = datetime(2025, 1, 1, 9, 0)

    with pytest.raises(InvalidRecurrence, match="FREQ is required"):
        expand(Series("COUNT=2", start, HOUR, "UTC"), *window)
    with pytest.raises(InvalidRecurrence, match="unknown time zone 'Mars/Olympus'"):
        expand(Series("FREQ=DAILY", start, HOUR, "Mars/Olympus"), *window)
    with pytest.raises(InvalidRecurrence, match="duration must not be negative"):
        expand(Series("FREQ=DAILY", start, -HOUR, "UTC"), *window)
    with pytest.raises(InvalidRecurrence, match="cannot be used all-day"):
        expand(Series("FREQ=DAILY;BYHOUR=9", start, DAY, "UTC", all_day=True), *window)
    with pytest.raises(InvalidRecurrence, match="unknown time zone"):
        local_to_utc(start, "Nowhere/Special")


@pytest.mark.parametrize("name", ["Europe", "America/", "../etc/passwd", "utc", ""])
def test_malformed_time_zone_names_are_invalid(name: str) -> None:
    with pytest.raises(InvalidRecurrence, match=f"unknown time zone {name!r}"):
        local_to_utc(datetime(2025, 1, 1, 9, 0), name)


def test_naive_window_is_rejected() -> None:
    series = Series("FREQ=DAILY", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    with pytest.raises(ValueError, match="must be timezone-aware"):
        expand(series, datetime(2025, 1, 1), utc(2025, 2, 1))


def test_invalid_recurrence_is_a_value_error() -> None:
    assert issubclass(InvalidRecurrence, ValueError)


# --------------------------------------------------------------------------- series_end


def test_series_end_with_count() -> None:
    series = Series("FREQ=WEEKLY;COUNT=3", datetime(2025, 1, 6, 9, 0), HOUR, "Europe/Oslo")

    assert series_end(series) == utc(2025, 1, 20, 9)


def test_series_end_with_until() -> None:
    rule = "FREQ=WEEKLY;UNTIL=20250701T000000Z"
    series = Series(rule, datetime(2025, 1, 6, 9, 0), HOUR, "Europe/Oslo")

    # Last Monday before July 1st is June 30; 09:00 CEST is 07:00Z.
    assert series_end(series) == utc(2025, 6, 30, 8)


def test_series_end_with_until_decades_away() -> None:
    series = Series("FREQ=DAILY;UNTIL=20751231", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert series_end(series) == utc(2075, 12, 31, 10)


def test_series_end_with_until_on_sparse_rule() -> None:
    rule = "FREQ=YEARLY;UNTIL=20310101"
    series = Series(rule, datetime(2024, 2, 29, 10, 0), HOUR, "UTC")

    assert series_end(series) == utc(2028, 2, 29, 11)


def test_series_end_without_end_is_none() -> None:
    series = Series("FREQ=WEEKLY", datetime(2025, 1, 6, 9, 0), HOUR, "UTC")

    assert series_end(series) is None


def test_series_end_of_empty_finite_rule_is_its_start() -> None:
    series = Series("FREQ=DAILY;UNTIL=20241231", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    assert series_end(series) == utc(2025, 1, 1, 9)
    assert expand(series, utc(2024, 1, 1), utc(2026, 1, 1)) == []


# --------------------------------------------------------------------------- speed and bounds


def test_impossible_rule_terminates_quickly() -> None:
    # Never matches: dateutil alone would scan every day up to the year 9999 (seconds).
    rule = "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"
    series = Series(rule, datetime(2025, 1, 1, 9, 0), HOUR, "UTC")
    counted = Series(rule + ";COUNT=2", datetime(2025, 1, 1, 9, 0), HOUR, "UTC")

    began = clock.perf_counter()
    assert expand(series, utc(2026, 1, 1), utc(2026, 3, 1)) == []
    assert expand(counted, utc(2026, 1, 1), utc(2026, 3, 1)) == []
    assert clock.perf_counter() - began < 1.0
    assert series_end(counted) == utc(2025, 1, 1, 9)


def test_fast_forward_moves_dtstart_to_the_period_of_the_window() -> None:
    weekly = recurrence._plan(
        "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU", datetime(2020, 1, 7, 9, 0), "UTC", False
    )
    monthly = recurrence._plan("FREQ=MONTHLY;INTERVAL=5", datetime(2020, 1, 31, 9), "UTC", False)
    counted = recurrence._plan("FREQ=DAILY;COUNT=5", datetime(2020, 1, 1, 9), "UTC", False)

    # Weeks start on Monday 2020-01-06. Monday 2030-06-10 is 544 weeks later, an even number,
    # so 2030-06-12 lies in the two-week period that begins that day.
    assert weekly.fast_forward(datetime(2030, 6, 12)) == datetime(2030, 6, 10)
    # 125 months (25 periods of 5) after January 2020 is June 2030.
    assert monthly.fast_forward(datetime(2030, 8, 20)) == datetime(2030, 6, 1)
    assert counted.fast_forward(datetime(2030, 8, 20)) == datetime(2020, 1, 1, 9)


def test_ancient_series_expands_without_iterating_from_dtstart() -> None:
    # Iterating daily from the year 1900 to 2090 would take a noticeable fraction of a second.
    series = Series("FREQ=DAILY", datetime(1900, 1, 1, 9, 0), HOUR, "Europe/Oslo")

    began = clock.perf_counter()
    result = starts(series, utc(2090, 1, 1), utc(2090, 1, 3))
    elapsed = clock.perf_counter() - began

    assert result == [utc(2090, 1, 1, 8), utc(2090, 1, 2, 8)]
    assert elapsed < 0.05


# --------------------------------------------------------------------------- property


ZONES = ["UTC", "Europe/Oslo", "America/New_York", "Australia/Lord_Howe", "America/Santiago"]
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]


@st.composite
def series_and_windows(draw: st.DrawFn) -> tuple[Series, str, list[tuple[datetime, datetime]]]:
    """A random series, the same rule with UNTIL as local wall-clock time, and windows."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    all_day = draw(st.integers(0, 4)) == 0
    zone_name = draw(st.sampled_from(ZONES))
    parts = [f"FREQ={freq}"]
    interval = draw(st.integers(1, 4))
    if interval > 1 or draw(st.booleans()):
        parts.append(f"INTERVAL={interval}")
    has_by = ordinal = False
    if draw(st.booleans()):
        days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=3, unique=True))
        if freq in ("MONTHLY", "YEARLY"):
            numbers = st.sampled_from([0, 0, 1, 2, 4, 5, -1, -2])
            ordinals = [draw(numbers) for _ in days]
            ordinal = any(ordinals)
            days = [f"{n}{day}" if n else day for n, day in zip(ordinals, days, strict=True)]
        parts.append("BYDAY=" + ",".join(days))
        has_by = True
    if freq != "WEEKLY" and draw(st.integers(0, 2)) == 0:
        values = st.sampled_from([1, 2, 15, 28, 29, 30, 31, -1, -2])
        parts.append(
            f"BYMONTHDAY={','.join(map(str, draw(st.sets(values, min_size=1, max_size=2))))}"
        )
        has_by = True
    if draw(st.integers(0, 3)) == 0:
        months = draw(st.sets(st.integers(1, 12), min_size=1, max_size=3))
        parts.append(f"BYMONTH={','.join(map(str, sorted(months)))}")
        has_by = True
    if freq == "YEARLY" and not ordinal and draw(st.integers(0, 5)) == 0:
        parts.append(f"BYWEEKNO={draw(st.sampled_from([1, 2, 20, 52, 53, -1]))}")
        has_by = True
    if freq == "YEARLY" and draw(st.integers(0, 5)) == 0:
        parts.append(f"BYYEARDAY={draw(st.sampled_from([1, 59, 60, 100, 365, 366, -1]))}")
        has_by = True
    if not all_day and draw(st.integers(0, 4)) == 0:
        hours = draw(st.sets(st.sampled_from([0, 1, 2, 3, 9, 23]), min_size=1, max_size=2))
        parts.append(f"BYHOUR={','.join(map(str, sorted(hours)))}")
        has_by = True
    if has_by and draw(st.integers(0, 2)) == 0:
        positions = draw(st.sets(st.sampled_from([1, 2, 3, -1, -2]), min_size=1, max_size=2))
        parts.append(f"BYSETPOS={','.join(map(str, sorted(positions)))}")
    if draw(st.integers(0, 3)) == 0:
        parts.append(f"WKST={draw(st.sampled_from(WEEKDAYS))}")

    start_day = draw(st.dates(date(2015, 1, 1), date(2030, 12, 31)))
    start_time = (
        time()
        if all_day
        else draw(st.sampled_from([time(0, 0), time(1, 30), time(2, 30), time(9, 0), time(23, 45)]))
    )
    start = datetime.combine(start_day, start_time)
    zone = ZoneInfo(zone_name) if zone_name != "UTC" else UTC

    reference_parts = list(parts)
    end = draw(st.sampled_from(["none", "none", "count", "until_z", "until_date", "until_local"]))
    horizon = 4500  # days after DTSTART that windows may start at
    if end == "count":
        count = draw(st.integers(1, 40))
        parts.append(f"COUNT={count}")
        reference_parts.append(f"COUNT={count}")
        period = {"DAILY": 1, "WEEKLY": 7, "MONTHLY": 31, "YEARLY": 366}[freq]
        horizon = min(horizon, count * interval * period + 60)
    elif end != "none":
        horizon = draw(st.integers(0, 4000))
        until = start + timedelta(days=horizon, minutes=draw(st.integers(0, 1439)))
        horizon += 60
        if end == "until_z":
            until_utc = until.replace(tzinfo=UTC)
            parts.append(f"UNTIL={until_utc:%Y%m%dT%H%M%S}Z")
            local = until if all_day else until_utc.astimezone(zone).replace(tzinfo=None)
            reference_parts.append(f"UNTIL={local:%Y%m%dT%H%M%S}")
        elif end == "until_date":
            parts.append(f"UNTIL={until:%Y%m%d}")
            reference_parts.append(f"UNTIL={until:%Y%m%d}T235959")
        else:
            parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}")
            reference_parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}")

    durations = [DAY, 2 * DAY] if all_day else [timedelta(0), 30 * timedelta(minutes=1), HOUR, DAY]
    series = Series(
        ";".join(parts), start, draw(st.sampled_from(durations)), zone_name, all_day=all_day
    )
    windows = []
    for _ in range(draw(st.integers(1, 3))):
        day_offset = draw(st.integers(-60, horizon))
        offset = timedelta(days=day_offset, minutes=draw(st.integers(0, 1439)))
        window_start = (start + offset).replace(tzinfo=UTC)
        length = draw(st.sampled_from([HOUR, DAY, 7 * DAY, 31 * DAY, 92 * DAY, 400 * DAY]))
        windows.append((window_start, window_start + length))
    return series, ";".join(reference_parts), windows


def reference_expand(
    series: Series, reference_rule: str, window_start: datetime, window_end: datetime
) -> list[Occurrence]:
    """Plain dateutil iteration from DTSTART, with no fast-forward and no pinned parts."""
    zone = UTC if series.all_day or series.time_zone == "UTC" else ZoneInfo(series.time_zone)
    rule = rrulestr(f"RRULE:{reference_rule}", dtstart=series.start)
    assert isinstance(rule, rrule)
    high = window_end.astimezone(zone).replace(tzinfo=None) + 2 * DAY
    # Bounds dateutil's scan for rules that never match; it does not change what is generated.
    recurrence._guard(rule, recurrence._months_guard_limit(series.start, high))
    found: dict[datetime, Occurrence] = {}
    try:
        for local in rule:
            if local > high:
                break
            start = local.replace(tzinfo=zone).astimezone(UTC)
            end = start + series.duration
            overlaps = start < window_end and (end > window_start or start == window_start)
            if overlaps and start not in found:
                found[start] = Occurrence(start, start, end)
    except recurrence._Exhausted:
        pass
    return sorted(found.values(), key=lambda occ: occ.start)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(series_and_windows())
def test_fast_forward_matches_full_iteration(
    case: tuple[Series, str, list[tuple[datetime, datetime]]],
) -> None:
    series, reference_rule, windows = case
    note(f"series={series!r} reference_rule={reference_rule!r}")
    for window_start, window_end in windows:
        expected = reference_expand(series, reference_rule, window_start, window_end)
        assert expand(series, window_start, window_end) == expected


def test_all_day_aware_exdate_names_its_utc_date_west_of_utc() -> None:
    series = Series(
        rrule="FREQ=WEEKLY;BYDAY=MO",
        start=datetime(2024, 3, 4),
        duration=timedelta(days=1),
        time_zone="America/Los_Angeles",
        exdates=frozenset({datetime(2024, 3, 11, tzinfo=UTC)}),
        all_day=True,
    )
    got = expand(series, datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 20, tzinfo=UTC))
    assert [o.start for o in got] == [
        datetime(2024, 3, 4, tzinfo=UTC),
        datetime(2024, 3, 18, tzinfo=UTC),
    ]


# --------------------------------------------------------------------------- arithmetic fast path


FAST_RULES = [
    "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
    "FREQ=DAILY",
    "FREQ=DAILY;INTERVAL=3;BYDAY=SA,SU;UNTIL=20300101T000000Z",
    "FREQ=WEEKLY;BYDAY=MO",
    "FREQ=WEEKLY;BYDAY=TU,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU;WKST=SU;UNTIL=20300101",
    "FREQ=WEEKLY",
    "FREQ=MONTHLY;BYMONTHDAY=1",
    "FREQ=MONTHLY;BYMONTHDAY=-1;INTERVAL=2",
    "FREQ=MONTHLY;BYDAY=2WE",
    "FREQ=MONTHLY;BYDAY=-1FR",
    "FREQ=MONTHLY",
]


@pytest.mark.parametrize("rule", FAST_RULES)
def test_common_rules_take_the_arithmetic_path(rule: str, monkeypatch: pytest.MonkeyPatch) -> None:
    series = Series(rule, datetime(2024, 3, 5, 9, 30), HOUR, "Europe/Oslo")
    assert recurrence._fast_path_supported(recurrence._parse(rule))
    assert recurrence._series_plan(series).arithmetic is not None

    def no_dateutil(plan: object, dtstart: datetime) -> rrule:
        raise AssertionError("dateutil path taken")

    # A silent fallback to dateutil would go through _Plan.build.
    monkeypatch.setattr(recurrence._Plan, "build", no_dateutil)
    assert expand(series, utc(2026, 1, 1), utc(2026, 3, 1))


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;COUNT=5",
        "FREQ=WEEKLY;BYDAY=MO;COUNT=5",
        "FREQ=MONTHLY;BYDAY=2WE;COUNT=5",
        "FREQ=DAILY;BYMONTH=1",
        "FREQ=DAILY;BYMONTHDAY=1",
        "FREQ=DAILY;BYHOUR=9,10",
        "FREQ=WEEKLY;BYDAY=MO;BYMINUTE=15",
        "FREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=1",
        "FREQ=MONTHLY;BYDAY=MO",
        "FREQ=MONTHLY;BYDAY=MO,2TU",
        "FREQ=MONTHLY;BYMONTHDAY=1;BYDAY=MO",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        "FREQ=YEARLY",
    ],
)
def test_other_rules_use_dateutil(rule: str) -> None:
    assert not recurrence._fast_path_supported(recurrence._parse(rule))
    plan = recurrence._plan(rule, datetime(2024, 3, 5, 9, 30), "UTC", False)
    assert plan.arithmetic is None


FAST_ZONES = [
    "UTC",
    "Europe/Oslo",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "America/Santiago",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Auckland",
]


@st.composite
def fast_series_and_windows(
    draw: st.DrawFn,
) -> tuple[Series, str, list[tuple[datetime, datetime]]]:
    """A series with a rule the arithmetic path takes, its dateutil reference rule, windows."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY"]))
    all_day = draw(st.integers(0, 5)) == 0
    zone_name = draw(st.sampled_from(FAST_ZONES))
    parts = [f"FREQ={freq}"]
    interval = draw(st.integers(1, 4))
    if interval > 1 or draw(st.booleans()):
        parts.append(f"INTERVAL={interval}")
    if freq == "MONTHLY":
        kind = draw(st.sampled_from(["none", "monthday", "nweekday"]))
        if kind == "monthday":
            values = st.sampled_from([1, 2, 15, 28, 29, 30, 31, -1, -2, -28, -31])
            monthdays = draw(st.lists(values, min_size=1, max_size=2, unique=True))
            parts.append(f"BYMONTHDAY={','.join(map(str, monthdays))}")
        elif kind == "nweekday":
            ordinals = st.sampled_from([1, 2, 3, 4, 5, -1, -2, -4, -5])
            days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=2, unique=True))
            parts.append("BYDAY=" + ",".join(f"{draw(ordinals)}{day}" for day in days))
    elif draw(st.integers(0, 3)):
        days = draw(st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True))
        parts.append("BYDAY=" + ",".join(days))
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(WEEKDAYS))}")

    start_day = draw(st.dates(date(2015, 1, 1), date(2030, 12, 31)))
    times = [time(0, 0), time(0, 30), time(1, 30), time(2, 30), time(3, 0), time(9, 15)]
    start_time = time() if all_day else draw(st.sampled_from([*times, time(23, 59, 59)]))
    start = datetime.combine(start_day, start_time)
    zone = ZoneInfo(zone_name) if zone_name != "UTC" else UTC

    reference_parts = list(parts)
    end = draw(st.sampled_from(["none", "until_z", "until_date", "until_local"]))
    horizon = 4000
    if end != "none":
        until = start + timedelta(
            days=draw(st.integers(-3, 3000)), minutes=draw(st.integers(-60, 1439))
        )
        if end == "until_z":
            until_utc = until.replace(tzinfo=UTC)
            parts.append(f"UNTIL={until_utc:%Y%m%dT%H%M%S}Z")
            local = until if all_day else until_utc.astimezone(zone).replace(tzinfo=None)
            reference_parts.append(f"UNTIL={local:%Y%m%dT%H%M%S}")
        elif end == "until_date":
            parts.append(f"UNTIL={until:%Y%m%d}")
            reference_parts.append(f"UNTIL={until:%Y%m%d}T235959")
        else:
            parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}")
            reference_parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}")

    durations = [DAY, 3 * DAY] if all_day else [timedelta(0), timedelta(minutes=30), HOUR, DAY]
    series = Series(
        ";".join(parts), start, draw(st.sampled_from(durations)), zone_name, all_day=all_day
    )
    windows = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            # Around the DST changes of most zones (March/April, September to November).
            year = start.year + draw(st.integers(-1, 8))
            month = draw(st.sampled_from([3, 4, 9, 10, 11]))
            window_start = datetime(
                year, month, draw(st.integers(1, 28)), draw(st.integers(0, 23)), tzinfo=UTC
            )
        else:
            offset = timedelta(
                days=draw(st.integers(-400, horizon)), minutes=draw(st.integers(0, 1439))
            )
            window_start = (start + offset).replace(tzinfo=UTC)
        length = draw(st.sampled_from([HOUR, DAY, 7 * DAY, 31 * DAY, 92 * DAY, 400 * DAY]))
        windows.append((window_start, window_start + length))
    return series, ";".join(reference_parts), windows


def reference_local_starts(
    start: datetime, reference_rule: str, low: datetime, high: datetime
) -> list[datetime]:
    """Plain dateutil iteration from DTSTART of the naive local starts in ``[low, high]``."""
    rule = rrulestr(f"RRULE:{reference_rule}", dtstart=start)
    assert isinstance(rule, rrule)
    # Bounds dateutil's scan for rules that never match (e.g. BYMONTHDAY=31 every 4 months
    # from February); it does not change what is generated.
    recurrence._guard(rule, recurrence._months_guard_limit(start, high))
    found = []
    try:
        for local in rule:
            if local > high:
                break
            if local >= low:
                found.append(local)
    except recurrence._Exhausted:
        pass
    return found


@settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(fast_series_and_windows())
def test_arithmetic_path_matches_full_dateutil_iteration(
    case: tuple[Series, str, list[tuple[datetime, datetime]]],
) -> None:
    series, reference_rule, windows = case
    note(f"series={series!r} reference_rule={reference_rule!r}")
    plan = recurrence._series_plan(series)
    assert plan.arithmetic is not None
    for window_start, window_end in windows:
        # The local starts themselves, before UTC conversion could merge any of them.
        low = window_start.replace(tzinfo=None) - 2 * DAY
        high = window_end.replace(tzinfo=None) + 2 * DAY
        assert plan.local_starts(low, high) == reference_local_starts(
            plan.start, reference_rule, low, high
        )
        expected = reference_expand(series, reference_rule, window_start, window_end)
        assert expand(series, window_start, window_end) == expected
    if plan.until is not None:
        everything = reference_local_starts(plan.start, reference_rule, plan.start, plan.until)
        last = everything[-1] if everything else None
        expected_end = (
            plan.to_utc(plan.start) if last is None else plan.to_utc(last) + series.duration
        )
        assert series_end(series) == expected_end
