"""Unit tests for graph.recurrence: Graph patternedRecurrence <-> RRULE.

Occurrences are checked two ways: hand-written cases with the exact dates Outlook shows, and a
property test against ``outlook_dates`` below, a day-by-day reading of the Graph pattern
definitions that shares no code with dateutil or graph.recurrence.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, note, reject, settings
from hypothesis import strategies as st

from graph.recurrence import from_rrule, normalize, to_rrule
from graph.timezones import windows_to_iana
from services.recurrence import InvalidRecurrence, Series, expand, local_to_utc, parse_rule

BERLIN = "W. Europe Standard Time"
NINE = (9, 0)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
INDEXES = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}


def recurrence(pattern: dict[str, Any], range_: dict[str, Any]) -> dict[str, Any]:
    return {"pattern": pattern, "range": range_}


def no_end(start: str = "2024-01-01") -> dict[str, Any]:
    return {"type": "noEnd", "startDate": start}


def at_nine(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, *NINE)


def local_dates(rule: str, start: datetime, zone_windows: str, until: date) -> list[date]:
    """Local dates of the occurrences services.recurrence expands, up to ``until`` inclusive."""
    zone = windows_to_iana(zone_windows)
    series = Series(rule, start, timedelta(hours=1), zone)
    window_end = local_to_utc(
        datetime.combine(until + timedelta(days=1), datetime.min.time()), zone
    )
    found = expand(series, local_to_utc(start, zone), window_end)
    tz = ZoneInfo(zone)
    locals_ = [occ.start.astimezone(tz) for occ in found]
    # Every occurrence keeps its wall-clock time across DST changes.
    assert {(t.hour, t.minute) for t in locals_} <= {(start.hour, start.minute)}
    return [t.date() for t in locals_]


# --------------------------------------------------------------------------- to_rrule: rules


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({"type": "daily", "interval": 1}, "FREQ=DAILY"),
        ({"type": "daily", "interval": 3}, "FREQ=DAILY;INTERVAL=3"),
        (
            {"type": "weekly", "interval": 1, "daysOfWeek": ["wednesday", "monday"],
             "firstDayOfWeek": "sunday"},
            "FREQ=WEEKLY;BYDAY=MO,WE;WKST=SU",
        ),
        (
            {"type": "weekly", "interval": 2, "daysOfWeek": ["sunday", "friday"],
             "firstDayOfWeek": "monday"},
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR,SU;WKST=MO",
        ),
        (  # firstDayOfWeek missing: Graph's default, Sunday (RFC 5545's would be Monday)
            {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
            "FREQ=WEEKLY;BYDAY=TU;WKST=SU",
        ),
        ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15},
         "FREQ=MONTHLY;BYMONTHDAY=15"),
        ({"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 28},
         "FREQ=MONTHLY;INTERVAL=3;BYMONTHDAY=28"),
        ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 29},
         "FREQ=MONTHLY;BYMONTHDAY=28,29;BYSETPOS=-1"),
        ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 30},
         "FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1"),
        ({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
         "FREQ=MONTHLY;BYMONTHDAY=-1"),
        (
            {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["thursday"],
             "index": "second"},
            "FREQ=MONTHLY;BYDAY=2TH",
        ),
        (
            {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["friday"], "index": "last"},
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR",
        ),
        (  # index missing: Graph's default, first
            {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"]},
            "FREQ=MONTHLY;BYDAY=1MO",
        ),
        (  # "the first weekday of the month"
            {"type": "relativeMonthly", "interval": 1,
             "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
             "index": "first"},
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1",
        ),
        (  # "the last weekend day of the month"
            {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["sunday", "saturday"],
             "index": "last"},
            "FREQ=MONTHLY;BYDAY=SA,SU;BYSETPOS=-1",
        ),
        (  # Graph's own example: "the second Thursday or Friday every three months"
            {"type": "relativeMonthly", "interval": 3, "daysOfWeek": ["thursday", "friday"],
             "index": "second"},
            "FREQ=MONTHLY;INTERVAL=3;BYDAY=TH,FR;BYSETPOS=2",
        ),
        (
            {"type": "absoluteYearly", "interval": 1, "month": 3, "dayOfMonth": 15},
            "FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=15",
        ),
        (
            {"type": "absoluteYearly", "interval": 3, "month": 1, "dayOfMonth": 31},
            "FREQ=YEARLY;INTERVAL=3;BYMONTH=1;BYMONTHDAY=31",
        ),
        (
            {"type": "absoluteYearly", "interval": 1, "month": 4, "dayOfMonth": 30},
            "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=30",
        ),
        (
            {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29},
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
        ),
        (
            {"type": "relativeYearly", "interval": 1, "daysOfWeek": ["thursday"],
             "index": "fourth", "month": 11},
            "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
        ),
        (
            {"type": "relativeYearly", "interval": 2, "month": 3, "index": "last",
             "daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"]},
            "FREQ=YEARLY;INTERVAL=2;BYMONTH=3;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
        ),
    ],
)  # fmt: skip
def test_to_rrule_pattern(pattern: dict[str, Any], expected: str) -> None:
    rule = to_rrule(recurrence(pattern, no_end()), start_local=datetime(2024, 1, 1, 9))

    assert rule == expected
    parse_rule(rule)


@pytest.mark.parametrize(
    ("range_", "expected"),
    [
        ({"type": "noEnd", "startDate": "2024-01-01"}, "FREQ=DAILY"),
        (
            {"type": "endDate", "startDate": "2024-01-01", "endDate": "2024-06-30"},
            "FREQ=DAILY;UNTIL=20240630T235959",
        ),
        (
            {"type": "numbered", "startDate": "2024-01-01", "numberOfOccurrences": 10},
            "FREQ=DAILY;COUNT=10",
        ),
        ({"type": "endDate", "endDate": "2024-01-01"}, "FREQ=DAILY;UNTIL=20240101T235959"),
    ],
)
def test_to_rrule_range(range_: dict[str, Any], expected: str) -> None:
    rule = to_rrule(
        recurrence({"type": "daily", "interval": 1}, range_), start_local=datetime(2024, 1, 1, 9)
    )

    assert rule == expected


def test_to_rrule_ignores_graph_placeholders_for_unused_fields() -> None:
    # What GET /events/{id} returns for a weekly series: every field, unused ones zeroed.
    graph = {
        "pattern": {
            "type": "weekly",
            "interval": 1,
            "month": 0,
            "dayOfMonth": 0,
            "daysOfWeek": ["monday"],
            "firstDayOfWeek": "sunday",
            "index": "first",
        },
        "range": {
            "type": "noEnd",
            "startDate": "2017-09-04",
            "endDate": "0001-01-01",
            "recurrenceTimeZone": "Pacific Standard Time",
            "numberOfOccurrences": 0,
        },
    }

    assert to_rrule(graph, start_local=datetime(2017, 9, 4, 9)) == "FREQ=WEEKLY;BYDAY=MO;WKST=SU"


def test_to_rrule_accepts_other_spellings_of_types_and_days() -> None:
    graph = recurrence(
        {"type": "RelativeMonthly", "interval": 1, "daysOfWeek": ["Friday"], "index": "Last"},
        {"type": "EndDate", "startDate": "2024-01-26", "endDate": "2024-12-31"},
    )

    assert to_rrule(graph, start_local=datetime(2024, 1, 26, 9)) == (
        "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20241231T235959"
    )


# --------------------------------------------------------------------------- to_rrule: errors

DAILY = {"type": "daily", "interval": 1}


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"range": no_end()}, "recurrence.pattern must be an object"),
        ({"pattern": DAILY}, "recurrence.range must be an object"),
        ({"pattern": "daily", "range": no_end()}, "recurrence.pattern must be an object"),
        (recurrence({"interval": 1}, no_end()), "pattern.type must be one of daily, weekly"),
        (recurrence({"type": "hourly", "interval": 1}, no_end()), "got 'hourly'"),
        (recurrence({"type": "daily"}, no_end()), "pattern.interval must be a positive integer"),
        (recurrence({"type": "daily", "interval": 0}, no_end()), "pattern.interval .* got 0"),
        (recurrence({"type": "daily", "interval": "2"}, no_end()), "got '2'"),
        (recurrence({"type": "daily", "interval": True}, no_end()), "got True"),
        (recurrence({"type": "daily", "interval": 1.5}, no_end()), "got 1.5"),
        (recurrence({"type": "weekly", "interval": 1}, no_end()), "pattern.daysOfWeek must be"),
        (
            recurrence({"type": "weekly", "interval": 1, "daysOfWeek": []}, no_end()),
            "pattern.daysOfWeek must be a non-empty list",
        ),
        (
            recurrence({"type": "weekly", "interval": 1, "daysOfWeek": "monday"}, no_end()),
            "pattern.daysOfWeek must be a non-empty list",
        ),
        (
            recurrence({"type": "weekly", "interval": 1, "daysOfWeek": ["funday"]}, no_end()),
            "pattern.daysOfWeek item must be a day name .* 'funday'",
        ),
        (
            recurrence(
                {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"],
                 "firstDayOfWeek": "mon"},
                no_end(),
            ),
            "pattern.firstDayOfWeek must be a day name",
        ),
        (
            recurrence(
                {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"],
                 "index": "fifth"},
                no_end(),
            ),
            "pattern.index must be one of first, second, third, fourth, last, got 'fifth'",
        ),
        (
            recurrence({"type": "absoluteMonthly", "interval": 1}, no_end()),
            "pattern.dayOfMonth must be an integer 1..31, got None",
        ),
        (
            recurrence({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 0}, no_end()),
            "pattern.dayOfMonth must be an integer 1..31, got 0",
        ),
        (
            recurrence({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 32}, no_end()),
            "pattern.dayOfMonth must be an integer 1..31, got 32",
        ),
        (
            recurrence(
                {"type": "absoluteYearly", "interval": 1, "month": 4, "dayOfMonth": 31}, no_end()
            ),
            "pattern.dayOfMonth must be an integer 1..30, got 31",
        ),
        (
            recurrence(
                {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 30}, no_end()
            ),
            "pattern.dayOfMonth must be an integer 1..29, got 30",
        ),
        (
            recurrence(
                {"type": "absoluteYearly", "interval": 1, "month": 13, "dayOfMonth": 1}, no_end()
            ),
            "pattern.month must be an integer 1..12, got 13",
        ),
        (
            recurrence(
                {"type": "relativeYearly", "interval": 1, "daysOfWeek": ["monday"],
                 "index": "first", "month": 0},
                no_end(),
            ),
            "pattern.month must be an integer 1..12, got 0",
        ),
        (recurrence(DAILY, {"type": "forever"}), "range.type must be one of endDate, noEnd"),
        (recurrence(DAILY, {"startDate": "2024-01-01"}), "range.type must be one of"),
        (recurrence(DAILY, {"type": "endDate"}), "range.endDate must be a date .* got None"),
        (
            recurrence(DAILY, {"type": "endDate", "endDate": "2024-02-30"}),
            "range.endDate '2024-02-30' is not a valid date",
        ),
        (
            recurrence(DAILY, {"type": "endDate", "endDate": "2024-06-30T00:00:00"}),
            "range.endDate must be a date like 2024-01-26",
        ),
        (
            recurrence(DAILY, {"type": "endDate", "endDate": "2023-12-31"}),
            "range.endDate 2023-12-31 is before the series start 2024-01-01",
        ),
        (
            recurrence(DAILY, {"type": "numbered", "numberOfOccurrences": 0}),
            "range.numberOfOccurrences must be a positive integer, got 0",
        ),
        (
            recurrence(DAILY, {"type": "noEnd", "startDate": "01/01/2024"}),
            "range.startDate must be a date",
        ),
        (
            recurrence(DAILY, {"type": "noEnd", "recurrenceTimeZone": 1}),
            "range.recurrenceTimeZone must be a string",
        ),
    ],
)  # fmt: skip
def test_to_rrule_rejects_bad_input(graph: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRecurrence, match=message):
        to_rrule(graph, start_local=datetime(2024, 1, 1, 9))


def test_to_rrule_rejects_a_non_mapping() -> None:
    with pytest.raises(InvalidRecurrence, match="got list"):
        to_rrule([], start_local=datetime(2024, 1, 1, 9))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- occurrences


def weekly(days: list[str], first_day: str, interval: int = 1) -> dict[str, Any]:
    return {"type": "weekly", "interval": interval, "daysOfWeek": days, "firstDayOfWeek": first_day}


def numbered(start: date, count: int) -> dict[str, Any]:
    return {"type": "numbered", "startDate": start.isoformat(), "numberOfOccurrences": count}


def ends(start: date, end: date) -> dict[str, Any]:
    return {"type": "endDate", "startDate": start.isoformat(), "endDate": end.isoformat()}


WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
D = date


OCCURRENCE_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[date]]] = [
    (
        "relativeMonthly last Friday every 2 months from 2024-01-26, 5 occurrences",
        {"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["friday"], "index": "last"},
        numbered(D(2024, 1, 26), 5),
        [D(2024, 1, 26), D(2024, 3, 29), D(2024, 5, 31), D(2024, 7, 26), D(2024, 9, 27)],
    ),
    (
        "daily every 3 days, end date inclusive",
        {"type": "daily", "interval": 3},
        ends(D(2024, 1, 1), D(2024, 1, 10)),
        [D(2024, 1, 1), D(2024, 1, 4), D(2024, 1, 7), D(2024, 1, 10)],
    ),
    (
        "every other week on Monday and Sunday, weeks starting Sunday",
        weekly(["monday", "sunday"], "sunday", interval=2),
        numbered(D(2024, 1, 1), 5),
        # Week Sun 31 Dec..Sat 6 Jan holds Mon 1 Jan; 7..13 Jan is skipped; 14..20 Jan next.
        [D(2024, 1, 1), D(2024, 1, 14), D(2024, 1, 15), D(2024, 1, 28), D(2024, 1, 29)],
    ),
    (
        "every other week on Monday and Sunday, weeks starting Monday",
        weekly(["monday", "sunday"], "monday", interval=2),
        numbered(D(2024, 1, 1), 5),
        # Week Mon 1..Sun 7 Jan; 8..14 Jan is skipped; 15..21 Jan next.
        [D(2024, 1, 1), D(2024, 1, 7), D(2024, 1, 15), D(2024, 1, 21), D(2024, 1, 29)],
    ),
    (
        "every weekday, across the spring DST change, until Wednesday",
        weekly(WEEKDAYS, "sunday"),
        ends(D(2024, 3, 28), D(2024, 4, 3)),
        [D(2024, 3, 28), D(2024, 3, 29), D(2024, 4, 1), D(2024, 4, 2), D(2024, 4, 3)],
    ),
    (
        "absoluteMonthly day 31 falls on the last day of shorter months",
        {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31},
        numbered(D(2024, 1, 31), 6),
        [D(2024, 1, 31), D(2024, 2, 29), D(2024, 3, 31), D(2024, 4, 30), D(2024, 5, 31),
         D(2024, 6, 30)],
    ),
    (
        "absoluteMonthly day 30 falls on February 28 or 29",
        {"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 30},
        numbered(D(2023, 11, 30), 5),
        [D(2023, 11, 30), D(2023, 12, 30), D(2024, 1, 30), D(2024, 2, 29), D(2024, 3, 30)],
    ),
    (
        "absoluteMonthly day 29 every 12 months from a non-leap February",
        {"type": "absoluteMonthly", "interval": 12, "dayOfMonth": 29},
        numbered(D(2023, 2, 28), 3),
        [D(2023, 2, 28), D(2024, 2, 29), D(2025, 2, 28)],
    ),
    (
        "absoluteMonthly on the 15th every 3 months (Graph's example)",
        {"type": "absoluteMonthly", "interval": 3, "dayOfMonth": 15},
        numbered(D(2024, 1, 15), 4),
        [D(2024, 1, 15), D(2024, 4, 15), D(2024, 7, 15), D(2024, 10, 15)],
    ),
    (
        "relativeMonthly first weekday",
        {"type": "relativeMonthly", "interval": 1, "daysOfWeek": WEEKDAYS, "index": "first"},
        numbered(D(2024, 6, 3), 4),
        # 1 Jun 2024 is a Saturday, 1 Aug a Thursday, 1 Sep a Sunday.
        [D(2024, 6, 3), D(2024, 7, 1), D(2024, 8, 1), D(2024, 9, 2)],
    ),
    (
        "relativeMonthly last weekend day",
        {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["saturday", "sunday"],
         "index": "last"},
        numbered(D(2024, 6, 30), 3),
        [D(2024, 6, 30), D(2024, 7, 28), D(2024, 8, 31)],
    ),
    (
        "relativeMonthly second Thursday or Friday every three months (Graph's example)",
        {"type": "relativeMonthly", "interval": 3, "daysOfWeek": ["thursday", "friday"],
         "index": "second"},
        numbered(D(2024, 1, 5), 3),
        # Jan 2024: Thu 4, Fri 5 -> the 5th; Apr: Thu 4, Fri 5 -> 5th; Jul: Thu 4, Fri 5 -> 5th.
        [D(2024, 1, 5), D(2024, 4, 5), D(2024, 7, 5)],
    ),
    (
        "relativeMonthly fourth Monday, start after that month's fourth Monday",
        {"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["monday"], "index": "fourth"},
        ends(D(2024, 1, 25), D(2024, 4, 30)),
        [D(2024, 2, 26), D(2024, 3, 25), D(2024, 4, 22)],
    ),
    (
        "absoluteYearly February 29 falls on the 28th in other years",
        {"type": "absoluteYearly", "interval": 1, "month": 2, "dayOfMonth": 29},
        numbered(D(2024, 2, 29), 5),
        [D(2024, 2, 29), D(2025, 2, 28), D(2026, 2, 28), D(2027, 2, 28), D(2028, 2, 29)],
    ),
    (
        "absoluteYearly March 15 every 2 years, end date inclusive",
        {"type": "absoluteYearly", "interval": 2, "month": 3, "dayOfMonth": 15},
        ends(D(2024, 3, 15), D(2030, 3, 15)),
        [D(2024, 3, 15), D(2026, 3, 15), D(2028, 3, 15), D(2030, 3, 15)],
    ),
    (
        "relativeYearly fourth Thursday of November",
        {"type": "relativeYearly", "interval": 1, "daysOfWeek": ["thursday"], "index": "fourth",
         "month": 11},
        numbered(D(2024, 11, 28), 3),
        [D(2024, 11, 28), D(2025, 11, 27), D(2026, 11, 26)],
    ),
    (
        "relativeYearly last weekday of March",
        {"type": "relativeYearly", "interval": 1, "daysOfWeek": WEEKDAYS, "index": "last",
         "month": 3},
        numbered(D(2024, 3, 29), 3),
        # 31 Mar 2024 is a Sunday, 31 Mar 2025 a Monday, 31 Mar 2026 a Tuesday.
        [D(2024, 3, 29), D(2025, 3, 31), D(2026, 3, 31)],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("pattern", "range_", "expected"),
    [case[1:] for case in OCCURRENCE_CASES],
    ids=[case[0] for case in OCCURRENCE_CASES],
)
@pytest.mark.parametrize("zone", [BERLIN, "Pacific Standard Time", "Tokyo Standard Time"])
def test_occurrences_match_outlook(
    pattern: dict[str, Any], range_: dict[str, Any], expected: list[date], zone: str
) -> None:
    start = at_nine(date.fromisoformat(range_["startDate"]))
    rule = to_rrule(recurrence(pattern, range_), start_local=start)

    assert local_dates(rule, start, zone, D(2035, 1, 1)) == expected
    assert outlook_dates(normalize(recurrence(pattern, range_)), D(2035, 1, 1)) == expected


def test_end_date_keeps_a_late_evening_occurrence_on_that_day() -> None:
    start = datetime(2024, 1, 1, 23, 30)
    graph = recurrence({"type": "daily", "interval": 1}, ends(start.date(), D(2024, 1, 3)))
    rule = to_rrule(graph, start_local=start)

    assert local_dates(rule, start, "Pacific Standard Time", D(2024, 2, 1)) == [
        D(2024, 1, 1),
        D(2024, 1, 2),
        D(2024, 1, 3),
    ]


# --------------------------------------------------------------------------- independent oracle


def _nth(year: int, month: int, days: list[str], index: str) -> date:
    wanted = {DAYS.index(d) for d in days}
    matching = [
        date(year, month, n)
        for n in range(1, calendar.monthrange(year, month)[1] + 1)
        if date(year, month, n).weekday() in wanted
    ]
    position = INDEXES[index]
    return matching[position - 1] if position > 0 else matching[-1]


def _day_in_month(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def outlook_dates(graph: dict[str, Any], horizon: date) -> list[date]:
    """Occurrence dates up to ``horizon`` (inclusive), from the Graph definitions day by day.

    The series' first day is range.startDate. A pattern's periods count from the start's day,
    week (aligned to firstDayOfWeek), month or year; a day of month that a month lacks is
    its last day (Outlook's rule).
    """
    pattern, range_ = graph["pattern"], graph["range"]
    start = date.fromisoformat(range_["startDate"])
    kind, interval = pattern["type"], pattern["interval"]
    found: list[date] = []
    day = start
    while day <= horizon:
        months = (day.year - start.year) * 12 + day.month - start.month
        years = day.year - start.year
        if kind == "daily":
            hit = (day - start).days % interval == 0
        elif kind == "weekly":
            first = DAYS.index(pattern["firstDayOfWeek"])

            def week_of(d: date, first: int = first) -> date:
                return d - timedelta(days=(d.weekday() - first) % 7)

            weeks = (week_of(day) - week_of(start)).days // 7
            hit = DAYS[day.weekday()] in pattern["daysOfWeek"] and weeks % interval == 0
        elif kind == "absoluteMonthly":
            target = _day_in_month(day.year, day.month, pattern["dayOfMonth"])
            hit = months % interval == 0 and day == target
        elif kind == "relativeMonthly":
            target = _nth(day.year, day.month, pattern["daysOfWeek"], pattern["index"])
            hit = months % interval == 0 and day == target
        elif kind == "absoluteYearly":
            hit = (
                years % interval == 0
                and day.month == pattern["month"]
                and day == _day_in_month(day.year, day.month, pattern["dayOfMonth"])
            )
        else:
            hit = (
                years % interval == 0
                and day.month == pattern["month"]
                and day == _nth(day.year, day.month, pattern["daysOfWeek"], pattern["index"])
            )
        if hit:
            found.append(day)
        day += timedelta(days=1)
    if range_["type"] == "numbered":
        return found[: range_["numberOfOccurrences"]]
    if range_["type"] == "endDate":
        return [d for d in found if d <= date.fromisoformat(range_["endDate"])]
    return found


day_names = st.sampled_from(DAYS)
day_sets = st.lists(day_names, min_size=1, max_size=7, unique=True)
indexes = st.sampled_from(list(INDEXES))
months = st.integers(1, 12)


@st.composite
def absolute_yearly(draw: st.DrawFn) -> dict[str, Any]:
    month = draw(months)
    longest = 29 if month == 2 else calendar.monthrange(2001, month)[1]
    return {"month": month, "dayOfMonth": draw(st.integers(1, longest))}


patterns = st.one_of(
    st.fixed_dictionaries({"type": st.just("daily"), "interval": st.integers(1, 10)}),
    st.fixed_dictionaries(
        {
            "type": st.just("weekly"),
            "interval": st.integers(1, 4),
            "daysOfWeek": day_sets,
            "firstDayOfWeek": day_names,
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("absoluteMonthly"),
            "interval": st.integers(1, 6),
            "dayOfMonth": st.integers(1, 31),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("relativeMonthly"),
            "interval": st.integers(1, 6),
            "daysOfWeek": day_sets,
            "index": indexes,
        }
    ),
    st.builds(
        lambda interval, fields: {"type": "absoluteYearly", "interval": interval, **fields},
        st.integers(1, 3),
        absolute_yearly(),
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("relativeYearly"),
            "interval": st.integers(1, 3),
            "daysOfWeek": day_sets,
            "index": indexes,
            "month": months,
        }
    ),
)
# Zones whose 09:00 is never in a DST gap, so every occurrence keeps 09:00.
zones = st.sampled_from(
    [BERLIN, "Pacific Standard Time", "Tokyo Standard Time", "AUS Eastern Standard Time", "UTC"]
)
HORIZON_DAYS = 3 * 366


@st.composite
def ranges(draw: st.DrawFn, start: date) -> dict[str, Any]:
    kind = draw(st.sampled_from(["noEnd", "endDate", "numbered"]))
    range_: dict[str, Any] = {"type": kind, "startDate": start.isoformat()}
    if kind == "endDate":
        range_["endDate"] = (start + timedelta(days=draw(st.integers(0, HORIZON_DAYS)))).isoformat()
    elif kind == "numbered":
        range_["numberOfOccurrences"] = draw(st.integers(1, 40))
    return range_


@settings(max_examples=300, deadline=None)
@given(
    pattern=patterns,
    start=st.dates(date(2000, 1, 1), date(2035, 12, 31)),
    zone=zones,
    data=st.data(),
)
def test_round_trip_and_occurrences_match_the_graph_definition(
    pattern: dict[str, Any], start: date, zone: str, data: st.DataObject
) -> None:
    range_ = data.draw(ranges(start))
    range_["recurrenceTimeZone"] = zone
    graph = recurrence(pattern, range_)
    start_local = at_nine(start)

    rule = to_rrule(graph, start_local=start_local)
    note(f"RRULE: {rule}")

    assert from_rrule(rule, start_local=start_local, time_zone_windows=zone) == normalize(graph)
    horizon = start + timedelta(days=HORIZON_DAYS)
    assert local_dates(rule, start_local, zone, horizon) == outlook_dates(graph, horizon)


# --------------------------------------------------------------------------- from_rrule


START = datetime(2024, 1, 26, 9, 0)  # a Friday


def graph_out(pattern: dict[str, Any], **range_: Any) -> dict[str, Any]:
    range_.setdefault("type", "noEnd")
    return {
        "pattern": pattern,
        "range": {**range_, "startDate": "2024-01-26", "recurrenceTimeZone": BERLIN},
    }


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("FREQ=DAILY", graph_out({"type": "daily", "interval": 1})),
        ("RRULE:freq=daily;interval=2;", graph_out({"type": "daily", "interval": 2})),
        (
            "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
            graph_out({"type": "weekly", "interval": 1, "daysOfWeek": WEEKDAYS,
                       "firstDayOfWeek": "sunday"}),
        ),
        (  # DTSTART's weekday; RFC 5545's default week start
            "FREQ=WEEKLY",
            graph_out({"type": "weekly", "interval": 1, "daysOfWeek": ["friday"],
                       "firstDayOfWeek": "monday"}),
        ),
        (
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=SU,TU;WKST=SU",
            graph_out({"type": "weekly", "interval": 2, "daysOfWeek": ["sunday", "tuesday"],
                       "firstDayOfWeek": "sunday"}),
        ),
        ("FREQ=MONTHLY", graph_out({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 26})),
        (
            "FREQ=MONTHLY;BYMONTHDAY=15",
            graph_out({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}),
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=-1",
            graph_out({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 31}),
        ),
        (
            "FREQ=MONTHLY;BYMONTHDAY=28,29,30;BYSETPOS=-1",
            graph_out({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 30}),
        ),
        (
            "FREQ=MONTHLY;INTERVAL=2;BYDAY=-1FR",
            graph_out({"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["friday"],
                       "index": "last"}),
        ),
        (  # MS-OXCICAL's own form of "the 3rd Sunday"
            "FREQ=MONTHLY;BYDAY=SU;BYSETPOS=3",
            graph_out({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["sunday"],
                       "index": "third"}),
        ),
        (
            "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            graph_out({"type": "relativeMonthly", "interval": 1, "daysOfWeek": WEEKDAYS,
                       "index": "last"}),
        ),
        (
            "FREQ=YEARLY",
            graph_out({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 26, "month": 1}),
        ),
        (
            "FREQ=YEARLY;BYMONTH=3",
            graph_out({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 26, "month": 3}),
        ),
        (
            "FREQ=YEARLY;BYMONTH=1;BYMONTHDAY=15",
            graph_out({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 15, "month": 1}),
        ),
        (  # signs and leading zeros, as parse_rule accepts them
            "FREQ=MONTHLY;INTERVAL=02;BYDAY=MO,FR;BYSETPOS=+1;BYHOUR=09",
            graph_out({"type": "relativeMonthly", "interval": 2, "daysOfWeek": ["monday", "friday"],
                       "index": "first"}),
        ),
        (
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1",
            graph_out({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 29, "month": 2}),
        ),
        (
            "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=-1",
            graph_out({"type": "absoluteYearly", "interval": 1, "dayOfMonth": 30, "month": 4}),
        ),
        (
            "FREQ=YEARLY;INTERVAL=4;BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1",
            graph_out({"type": "absoluteYearly", "interval": 4, "dayOfMonth": 29, "month": 2}),
        ),
        (
            "FREQ=YEARLY;BYMONTH=11;BYDAY=4TH",
            graph_out({"type": "relativeYearly", "interval": 1, "daysOfWeek": ["thursday"],
                       "index": "fourth", "month": 11}),
        ),
        (
            "FREQ=YEARLY;BYMONTH=9;BYDAY=SA,SU;BYSETPOS=1",
            graph_out({"type": "relativeYearly", "interval": 1,
                       "daysOfWeek": ["sunday", "saturday"], "index": "first", "month": 9}),
        ),
        (  # BYHOUR/BYMINUTE that repeat DTSTART's time change nothing
            "FREQ=DAILY;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
            graph_out({"type": "daily", "interval": 1}),
        ),
        ("FREQ=DAILY;COUNT=7", graph_out({"type": "daily", "interval": 1},
                                         type="numbered", numberOfOccurrences=7)),
        ("FREQ=DAILY;UNTIL=20240630", graph_out({"type": "daily", "interval": 1},
                                                type="endDate", endDate="2024-06-30")),
        ("FREQ=DAILY;UNTIL=20240630T235959", graph_out({"type": "daily", "interval": 1},
                                                       type="endDate", endDate="2024-06-30")),
        (  # local UNTIL at exactly the start time keeps that day
            "FREQ=DAILY;UNTIL=20240630T090000",
            graph_out({"type": "daily", "interval": 1}, type="endDate", endDate="2024-06-30"),
        ),
        (  # local UNTIL before the start time ends the day before
            "FREQ=DAILY;UNTIL=20240630T085959",
            graph_out({"type": "daily", "interval": 1}, type="endDate", endDate="2024-06-29"),
        ),
        (  # 07:00Z is 09:00 CEST
            "FREQ=DAILY;UNTIL=20240630T070000Z",
            graph_out({"type": "daily", "interval": 1}, type="endDate", endDate="2024-06-30"),
        ),
        (  # 07:00Z is 08:00 CET, before 09:00
            "FREQ=DAILY;UNTIL=20240130T070000Z",
            graph_out({"type": "daily", "interval": 1}, type="endDate", endDate="2024-01-29"),
        ),
        (  # UNTIL on the first day
            "FREQ=DAILY;UNTIL=20240126",
            graph_out({"type": "daily", "interval": 1}, type="endDate", endDate="2024-01-26"),
        ),
    ],
)  # fmt: skip
def test_from_rrule(rule: str, expected: dict[str, Any]) -> None:
    assert from_rrule(rule, start_local=START, time_zone_windows=BERLIN) == expected


@pytest.mark.parametrize(
    ("zone", "written"),
    [
        (BERLIN, BERLIN),
        ("w. europe standard time", BERLIN),
        ("Europe/Oslo", BERLIN),
        ("America/Vancouver", "British Columbia Standard Time"),
        ("UTC", "UTC"),
        ("tzone://Microsoft/Utc", "UTC"),
    ],
)
def test_from_rrule_writes_the_windows_zone(zone: str, written: str) -> None:
    result = from_rrule("FREQ=DAILY", start_local=START, time_zone_windows=zone)

    assert result["range"]["recurrenceTimeZone"] == written


def test_from_rrule_converts_an_aware_start_to_the_zone() -> None:
    # 23:30 UTC on the 25th is 00:30 on the 26th in Berlin: the series starts on the 26th.
    start = datetime(2024, 1, 25, 23, 30, tzinfo=UTC)

    result = from_rrule("FREQ=WEEKLY", start_local=start, time_zone_windows=BERLIN)

    assert result["range"]["startDate"] == "2024-01-26"
    assert result["pattern"]["daysOfWeek"] == ["friday"]


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("FREQ=DAILY;BYHOUR=9,15", "Outlook cannot represent BYHOUR=9,15"),
        ("FREQ=DAILY;BYHOUR=10", "Outlook cannot represent BYHOUR=10"),
        ("FREQ=DAILY;BYMINUTE=30", "Outlook cannot represent BYMINUTE=30"),
        ("FREQ=YEARLY;BYYEARDAY=100", "Outlook cannot represent BYYEARDAY"),
        ("FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", "Outlook cannot represent BYWEEKNO"),
        ("FREQ=DAILY;INTERVAL=2;BYDAY=MO", "Outlook cannot represent FREQ=DAILY;INTERVAL=2"),
        ("FREQ=DAILY;BYMONTH=1", "Outlook cannot represent BYMONTH=1 with FREQ=DAILY"),
        ("FREQ=DAILY;BYMONTHDAY=1", "Outlook cannot represent BYMONTHDAY=1 with FREQ=DAILY"),
        ("FREQ=WEEKLY;BYMONTH=1", "Outlook cannot represent BYMONTH=1 with FREQ=WEEKLY"),
        ("FREQ=WEEKLY;BYDAY=MO,TU;BYSETPOS=1", "Outlook cannot represent BYSETPOS=1"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", "Outlook cannot represent BYMONTHDAY=1,15"),
        ("FREQ=MONTHLY;BYMONTHDAY=-2", "Outlook cannot represent BYMONTHDAY=-2"),
        ("FREQ=MONTHLY;BYMONTHDAY=31", "monthly day 31 that skips shorter months"),
        ("FREQ=MONTHLY;BYMONTHDAY=29", "Use BYMONTHDAY=28,29;BYSETPOS=-1"),
        ("FREQ=MONTHLY;BYMONTHDAY=28,29,30", "Outlook cannot represent BYMONTHDAY=28,29,30"),
        ("FREQ=MONTHLY;BYMONTHDAY=29,30;BYSETPOS=-1", "Outlook cannot represent BYMONTHDAY"),
        ("FREQ=MONTHLY;BYMONTH=3", "Outlook cannot represent BYMONTH=3 with FREQ=MONTHLY"),
        ("FREQ=MONTHLY;BYDAY=MO", "Outlook cannot represent BYDAY=MO \\(every such day"),
        ("FREQ=MONTHLY;BYDAY=1MO,3MO", "BYDAY=1MO,3MO: a relative pattern has one position"),
        ("FREQ=YEARLY;BYMONTHDAY=15", "BYMONTHDAY=15 with FREQ=YEARLY and no BYMONTH"),
        ("FREQ=MONTHLY;BYDAY=5MO", "Outlook cannot represent position 5 in BYDAY=5MO"),
        ("FREQ=MONTHLY;BYDAY=-2FR", "Outlook cannot represent position -2"),
        ("FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=5", "position 5 in BYDAY=MO,TU;BYSETPOS=5"),
        ("FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=-2", "Outlook cannot represent position -2"),
        ("FREQ=MONTHLY;BYDAY=MO,TU;BYSETPOS=1,2", "Outlook cannot represent several positions"),
        ("FREQ=MONTHLY;BYDAY=1MO;BYSETPOS=1", "ordinal days and BYSETPOS together"),
        ("FREQ=MONTHLY;BYDAY=MO;BYMONTHDAY=13", "BYDAY together with BYMONTHDAY"),
        ("FREQ=YEARLY;BYMONTH=1,7", "Outlook cannot represent several months"),
        ("FREQ=YEARLY;BYDAY=20MO", "BYDAY=20MO with FREQ=YEARLY and no BYMONTH"),
        ("FREQ=YEARLY;BYMONTH=3;BYSETPOS=1", "BYSETPOS=1 without BYDAY or BYMONTHDAY"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "yearly day 29 of month 2"),
        ("FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=31", "yearly day 31 of month 4"),
        ("FREQ=YEARLY;BYMONTH=5;BYDAY=MO;BYMONTHDAY=13", "BYDAY together with BYMONTHDAY"),
        ("FREQ=DAILY;UNTIL=20240125", "ends \\(UNTIL=20240125\\) before its first day"),
        ("FREQ=DAILY;UNTIL=20240126T080000", "ends \\(UNTIL=20240126T080000\\) before"),
    ],
)
def test_from_rrule_refuses_what_outlook_cannot_represent(rule: str, message: str) -> None:
    with pytest.raises(InvalidRecurrence, match=message):
        from_rrule(rule, start_local=START, time_zone_windows=BERLIN)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        (datetime(2024, 1, 31, 9), "monthly day 31 that skips shorter months"),
        (datetime(2024, 1, 29, 9), "monthly day 29 that skips shorter months"),
    ],
)
def test_plain_monthly_from_a_late_day_is_refused(start: datetime, message: str) -> None:
    # dateutil skips months without the 29th-31st; Outlook would move those to the last day.
    with pytest.raises(InvalidRecurrence, match=message):
        from_rrule("FREQ=MONTHLY", start_local=start, time_zone_windows=BERLIN)


def test_plain_yearly_from_february_29_is_refused() -> None:
    with pytest.raises(InvalidRecurrence, match="yearly day 29 of month 2"):
        from_rrule("FREQ=YEARLY", start_local=datetime(2024, 2, 29, 9), time_zone_windows=BERLIN)


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("", "empty recurrence rule"),
        ("FREQ=HOURLY", "FREQ=HOURLY is not supported"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20240601", "COUNT and UNTIL cannot both be given"),
        ("BYDAY=MO", "FREQ is required"),
    ],
)
def test_from_rrule_refuses_invalid_rules(rule: str, message: str) -> None:
    with pytest.raises(InvalidRecurrence, match=message):
        from_rrule(rule, start_local=START, time_zone_windows=BERLIN)


@pytest.mark.parametrize(
    "zone", ["tzone://Microsoft/Custom", "Mars Standard Time", "Antarctica/Troll", ""]
)
def test_from_rrule_refuses_a_zone_graph_cannot_take(zone: str) -> None:
    with pytest.raises(InvalidRecurrence, match=repr(zone)):
        from_rrule("FREQ=DAILY", start_local=START, time_zone_windows=zone)


# --------------------------------------------------------------------------- RRULE property

RFC_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@st.composite
def rrules(draw: st.DrawFn) -> str:
    """Rules that parse_rule accepts, many of which Outlook cannot hold."""
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]))
    parts = [f"FREQ={freq}"]
    if draw(st.booleans()):
        parts.append(f"INTERVAL={draw(st.integers(1, 3))}")
    has_by = False
    positions = ["1", "2", "3", "4", "5", "-1", "-2", "1,2"]
    # Mostly Outlook's shapes: "2TH", or a day list with one BYSETPOS.
    relative = freq in ("MONTHLY", "YEARLY") and draw(st.booleans())
    if relative:
        days = draw(st.lists(st.sampled_from(RFC_DAYS), min_size=1, max_size=5, unique=True))
        if len(days) == 1 and draw(st.booleans()):
            parts.append(f"BYDAY={draw(st.sampled_from(positions[:-1]))}{days[0]}")
        else:
            parts.append(f"BYDAY={','.join(days)};BYSETPOS={draw(st.sampled_from(positions))}")
        if freq == "YEARLY" and draw(st.integers(0, 3)) > 0:
            parts.append(f"BYMONTH={draw(st.integers(1, 12))}")
    elif draw(st.integers(0, 2)) == 0:
        ordinals = [None] + ([1, 2, 3, 4, 5, -1, -2] if freq in ("MONTHLY", "YEARLY") else [])
        days = draw(st.lists(st.sampled_from(RFC_DAYS), min_size=1, max_size=3, unique=True))
        byday = [f"{draw(st.sampled_from(ordinals)) or ''}{day}" for day in days]
        parts.append("BYDAY=" + ",".join(byday))
        has_by = True
    if freq != "WEEKLY" and draw(st.integers(0, 2)) == 0:
        monthdays = st.sampled_from(["-1", "-2", "28,29", "28,29,30", "28,29,30,31", "1,15"])
        parts.append("BYMONTHDAY=" + draw(st.one_of(st.integers(1, 31).map(str), monthdays)))
        has_by = True
    if not relative and draw(st.integers(0, 2)) == 0:
        parts.append("BYMONTH=" + draw(st.sampled_from(["1", "2", "3", "4", "11", "1,7"])))
        has_by = True
    if has_by and draw(st.integers(0, 2)) == 0:
        parts.append("BYSETPOS=" + draw(st.sampled_from(positions)))
    if draw(st.booleans()):
        parts.append(f"WKST={draw(st.sampled_from(RFC_DAYS))}")
    if draw(st.integers(0, 5)) == 0:
        parts.append(f"BYHOUR={draw(st.sampled_from([9, 10]))}")
    end = draw(st.sampled_from(["none", "count", "date", "local", "utc"]))
    if end == "count":
        parts.append(f"COUNT={draw(st.integers(1, 30))}")
    elif end != "none":
        until = date(2024, 1, 1) + timedelta(days=draw(st.integers(0, 3 * 366)))
        suffix = {"date": "", "local": "T090000", "utc": "T080000Z"}[end]
        parts.append(f"UNTIL={until:%Y%m%d}{suffix}")
    return ";".join(parts)


@settings(max_examples=600, deadline=None)
@given(rule=rrules(), start=st.dates(date(2024, 1, 1), date(2024, 12, 31)))
def test_from_rrule_keeps_the_occurrences_or_refuses(rule: str, start: date) -> None:
    """For any rule, Outlook gets the same occurrences through the Graph pattern, or nothing."""
    try:
        parse_rule(rule)
    except InvalidRecurrence:
        reject()
    start_local = at_nine(start)
    refusal: str | None = None
    try:
        graph = from_rrule(rule, start_local=start_local, time_zone_windows=BERLIN)
    except InvalidRecurrence as exc:
        refusal = str(exc)
    if refusal is not None:
        event("refused")
        assert "Outlook cannot represent" in refusal
        return
    event(f"mapped to {graph['pattern']['type']}")
    back = to_rrule(graph, start_local=start_local)
    note(f"{rule} -> {graph} -> {back}")

    horizon = date(2028, 1, 1)
    assert local_dates(back, start_local, BERLIN, horizon) == local_dates(
        rule, start_local, BERLIN, horizon
    )


# --------------------------------------------------------------------------- normalize


def test_normalize_keeps_only_fields_of_the_type_and_fills_defaults() -> None:
    graph = {
        "pattern": {
            "type": "RelativeMonthly",
            "interval": 1,
            "month": 0,
            "dayOfMonth": 0,
            "daysOfWeek": ["Saturday", "sunday", "saturday"],
            "firstDayOfWeek": "sunday",
        },
        "range": {
            "type": "NoEnd",
            "startDate": "2024-01-06",
            "endDate": "0001-01-01",
            "numberOfOccurrences": 0,
            "recurrenceTimeZone": "",
        },
    }

    assert normalize(graph) == {
        "pattern": {
            "type": "relativeMonthly",
            "interval": 1,
            "daysOfWeek": ["sunday", "saturday"],
            "index": "first",
        },
        "range": {"type": "noEnd", "startDate": "2024-01-06"},
    }
