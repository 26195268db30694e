"""Microsoft Graph ``patternedRecurrence`` <-> RFC 5545 RRULE, as ``services.recurrence`` reads it.

Graph describes a series as a pattern and a range:

* patternedRecurrence: https://learn.microsoft.com/graph/api/resources/patternedrecurrence
* recurrencePattern: https://learn.microsoft.com/graph/api/resources/recurrencepattern
* recurrenceRange: https://learn.microsoft.com/graph/api/resources/recurrencerange

Exchange's own iCalendar mapping (MS-OXCICAL §2.1.3.2.2, "Recurrence Templates",
https://learn.microsoft.com/openspecs/exchange_server_protocols/ms-oxcical/2b9345c9-6cd6-494e-9b28-473d61ac44e4)
is the reference for which RRULEs Outlook can hold. The mapping, pattern by pattern:

=================  ====================================================================
Graph pattern      RRULE
=================  ====================================================================
daily              ``FREQ=DAILY``
weekly             ``FREQ=WEEKLY;BYDAY=MO,WE;WKST=SU`` (WKST from firstDayOfWeek)
absoluteMonthly    ``FREQ=MONTHLY;BYMONTHDAY=15``; days 29-31 see below
relativeMonthly    one day: ``BYDAY=2TH`` / ``BYDAY=-1FR``; several days:
                   ``BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1`` ("the first weekday")
absoluteYearly     ``FREQ=YEARLY;BYMONTH=3;BYMONTHDAY=15``
relativeYearly     ``FREQ=YEARLY;BYMONTH=11;BYDAY=4TH`` (or BYDAY list + BYSETPOS)
=================  ====================================================================

``interval`` is INTERVAL; range ``numbered`` is COUNT, ``endDate`` is a local date-time UNTIL
at 23:59:59 of that date (services.recurrence compares a local UNTIL with the local starts, so
every occurrence on the end date is kept, as Graph's inclusive endDate means), ``noEnd`` has
neither.

Where Outlook and RFC 5545 disagree, the RRULE follows Outlook. A day of month that a month
lacks is moved to that month's last day by Outlook (CDO RecurrencePattern.DayOfMonth,
https://msdn.microsoft.com/library/ms528295(v=exchg.10): "The last day of every month can be
represented by the value 31", and for the 29th "Outlook ... generate[s] recurrences on February
28"; MS-OXCICAL maps ``BYMONTHDAY=-1`` to day 31), while RFC 5545 skips the month. So day 31
becomes ``BYMONTHDAY=-1``, day 30 ``BYMONTHDAY=28,29,30;BYSETPOS=-1`` and day 29
``BYMONTHDAY=28,29;BYSETPOS=-1``; a yearly February 29 is
``BYMONTH=2;BYMONTHDAY=28,29;BYSETPOS=-1``. ``from_rrule`` refuses a plain day 29-31 that RFC
5545 would skip, rather than let Outlook and the CRM show different dates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from graph.timezones import UnknownTimeZone, iana_to_windows, windows_to_iana
from services.recurrence import InvalidRecurrence, parse_rule

__all__ = ["from_rrule", "normalize", "to_rrule"]

# Graph day names, in RRULE / datetime.weekday() order (Monday = 0).
_GRAPH_DAYS: Final = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_RRULE_DAYS: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
# Graph lists days Sunday first (its default first day of the week); canonical output does too.
_GRAPH_ORDER: Final = (6, 0, 1, 2, 3, 4, 5)

_PATTERN_TYPES: Final = {
    name.casefold(): name
    for name in (
        "daily",
        "weekly",
        "absoluteMonthly",
        "relativeMonthly",
        "absoluteYearly",
        "relativeYearly",
    )
}
# Older Graph pages and SDKs spell range types "EndDate", "NoEnd", "Numbered".
_RANGE_TYPES: Final = {name.casefold(): name for name in ("endDate", "noEnd", "numbered")}
_INDEXES: Final[dict[str, int]] = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_INDEX_NAMES: Final[dict[int, str]] = {n: name for name, n in _INDEXES.items()}

_DATE: Final = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_UNTIL: Final = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z)?)?")
_BYDAY_ITEM: Final = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_END_OF_DAY: Final = time(23, 59, 59)
# The shortest length of each month (February without a leap day), and the longest.
_MIN_DAYS: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_MAX_DAYS: Final = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


# --------------------------------------------------------------------------- Graph -> RRULE


def to_rrule(recurrence: Mapping[str, Any], *, start_local: datetime) -> str:
    """The RRULE value (no ``RRULE:`` prefix) for a Graph ``patternedRecurrence``.

    ``recurrence`` is the dict Graph sends, ``{"pattern": {...}, "range": {...}}``. Fields that
    do not apply to the pattern or range type are ignored, because Graph fills them with
    placeholders (``"dayOfMonth": 0``, ``"endDate": "0001-01-01"``). ``start_local`` is the
    series' first start as a wall-clock time in the series' zone (an aware value's own wall
    time is used); it places an ``endDate`` UNTIL and is the DTSTART the rule is used with.

    ``range.startDate`` is only checked for form: Graph requires it to be the first start's
    date, and the series starts at ``start_local``. ``range.recurrenceTimeZone`` is not used;
    ``endDate`` is read in the series' zone, which is Graph's default for it.

    The result passes ``services.recurrence.parse_rule``. Raises InvalidRecurrence, naming the
    field, for a missing, unknown or out-of-range value.

    https://learn.microsoft.com/graph/api/resources/patternedrecurrence
    """
    canonical = normalize(recurrence)
    pattern: dict[str, Any] = canonical["pattern"]
    range_: dict[str, Any] = canonical["range"]
    kind = pattern["type"]
    parts = [f"FREQ={_FREQS[kind]}"]
    if pattern["interval"] != 1:
        parts.append(f"INTERVAL={pattern['interval']}")
    if "month" in pattern:
        parts.append(f"BYMONTH={pattern['month']}")
    if kind == "absoluteMonthly":
        parts.extend(_monthday_parts(pattern["dayOfMonth"], month=None))
    elif kind == "absoluteYearly":
        parts.extend(_monthday_parts(pattern["dayOfMonth"], month=pattern["month"]))
    elif kind == "weekly":
        parts.append("BYDAY=" + ",".join(_rrule_days(pattern["daysOfWeek"])))
        parts.append(f"WKST={_RRULE_DAYS[_GRAPH_DAYS.index(pattern['firstDayOfWeek'])]}")
    elif kind in ("relativeMonthly", "relativeYearly"):
        days = _rrule_days(pattern["daysOfWeek"])
        position = _INDEXES[pattern["index"]]
        if len(days) == 1:
            parts.append(f"BYDAY={position}{days[0]}")
        else:
            # Several days with an index pick the n-th of all those days in the month: "the
            # first weekday" is the first of Mon..Fri, so BYSETPOS, not one ordinal per day.
            parts.append("BYDAY=" + ",".join(days))
            parts.append(f"BYSETPOS={position}")

    range_type = range_["type"]
    if range_type == "numbered":
        parts.append(f"COUNT={range_['numberOfOccurrences']}")
    elif range_type == "endDate":
        end = date.fromisoformat(range_["endDate"])
        first = start_local.date()
        if end < first:
            raise InvalidRecurrence(
                f"range.endDate {end.isoformat()} is before the series start {first.isoformat()}"
            )
        # The end of that day in local wall-clock time, not a DATE or a UTC instant: the rule
        # is expanded in local time, so 23:59:59 keeps every occurrence of the end date in
        # any zone without a conversion (a UTC UNTIL would need the zone, and drift if the
        # zone's rules change). A DATE UNTIL would also be inclusive, but RFC 5545 wants
        # UNTIL to have DTSTART's value type, and DTSTART here is a date-time.
        parts.append(f"UNTIL={datetime.combine(end, _END_OF_DAY):%Y%m%dT%H%M%S}")

    rule = ";".join(parts)
    parse_rule(rule)  # our own output must be a rule the rest of the system accepts
    return rule


_FREQS: Final = {
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "absoluteMonthly": "MONTHLY",
    "relativeMonthly": "MONTHLY",
    "absoluteYearly": "YEARLY",
    "relativeYearly": "YEARLY",
}


def _monthday_parts(day: int, *, month: int | None) -> list[str]:
    """BYMONTHDAY (and BYSETPOS) for Outlook's "day N, or the month's last day if shorter"."""
    shortest = 28 if month is None else _MIN_DAYS[month]
    if day <= shortest:
        return [f"BYMONTHDAY={day}"]
    if day == 31:
        return ["BYMONTHDAY=-1"]
    # The largest of 28..N that the month has: N, or the last day of a shorter month.
    return ["BYMONTHDAY=" + ",".join(str(d) for d in range(28, day + 1)), "BYSETPOS=-1"]


def _rrule_days(graph_days: Sequence[str]) -> list[str]:
    return [_RRULE_DAYS[i] for i in sorted(_GRAPH_DAYS.index(d) for d in graph_days)]


# --------------------------------------------------------------------------- normalising


def normalize(recurrence: Mapping[str, Any]) -> dict[str, Any]:
    """A validated, canonical copy of a Graph ``patternedRecurrence``.

    Only the fields that the pattern and range types use are kept, with Graph's defaults
    filled in (``index`` "first", ``firstDayOfWeek`` "sunday"), type names in Graph's v1.0
    spelling, day names lower-case, unique and Sunday first. ``range.startDate`` and
    ``range.recurrenceTimeZone`` are kept when given. Two recurrences describe the same series
    when their normal forms are equal; ``from_rrule`` returns this form. Raises
    InvalidRecurrence like ``to_rrule``.

    https://learn.microsoft.com/graph/api/resources/recurrencepattern
    """
    if not isinstance(recurrence, Mapping):
        raise InvalidRecurrence(
            f"recurrence must be an object with pattern and range, got {type(recurrence).__name__}"
        )
    pattern_in = _object(recurrence, "pattern")
    range_in = _object(recurrence, "range")

    kind = _enum(pattern_in, "pattern.type", _PATTERN_TYPES)
    pattern: dict[str, Any] = {"type": kind, "interval": _positive(pattern_in, "pattern.interval")}
    if kind == "weekly":
        pattern["daysOfWeek"] = _days(pattern_in)
        pattern["firstDayOfWeek"] = _day(pattern_in, "firstDayOfWeek", default="sunday")
    elif kind in ("relativeMonthly", "relativeYearly"):
        pattern["daysOfWeek"] = _days(pattern_in)
        pattern["index"] = _index(pattern_in)
    if kind in ("absoluteYearly", "relativeYearly"):
        pattern["month"] = _int_in(pattern_in, "month", 1, 12)
    if kind == "absoluteMonthly":
        pattern["dayOfMonth"] = _int_in(pattern_in, "dayOfMonth", 1, 31)
    elif kind == "absoluteYearly":
        month = pattern["month"]
        # February 29 is allowed (Outlook moves it to the 28th in other years); April 31 is not.
        pattern["dayOfMonth"] = _int_in(pattern_in, "dayOfMonth", 1, _MAX_DAYS[month])

    range_type = _enum(range_in, "range.type", _RANGE_TYPES)
    range_: dict[str, Any] = {"type": range_type}
    start = range_in.get("startDate")
    if start is not None:
        range_["startDate"] = _date(start, "range.startDate").isoformat()
    if range_type == "endDate":
        range_["endDate"] = _date(range_in.get("endDate"), "range.endDate").isoformat()
    elif range_type == "numbered":
        range_["numberOfOccurrences"] = _positive(range_in, "range.numberOfOccurrences")
    zone = range_in.get("recurrenceTimeZone")
    if zone is not None and zone != "":
        if not isinstance(zone, str):
            raise InvalidRecurrence(f"range.recurrenceTimeZone must be a string, got {zone!r}")
        range_["recurrenceTimeZone"] = zone
    return {"pattern": pattern, "range": range_}


def _object(parent: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = parent.get(name)
    if not isinstance(value, Mapping):
        raise InvalidRecurrence(f"recurrence.{name} must be an object, got {value!r}")
    return value


def _enum(parent: Mapping[str, Any], field: str, names: Mapping[str, str]) -> str:
    value = parent.get(field.rpartition(".")[2])
    canonical = names.get(value.casefold()) if isinstance(value, str) else None
    if canonical is None:
        raise InvalidRecurrence(
            f"{field} must be one of {', '.join(names.values())}, got {value!r}"
        )
    return canonical


def _positive(parent: Mapping[str, Any], field: str) -> int:
    value = parent.get(field.rpartition(".")[2])
    # bool is an int subclass; true is not an interval.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRecurrence(f"{field} must be a positive integer, got {value!r}")
    return value


def _int_in(pattern: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = pattern.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidRecurrence(f"pattern.{name} must be an integer {low}..{high}, got {value!r}")
    return value


def _day(pattern: Mapping[str, Any], name: str, *, default: str) -> str:
    value = pattern.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value.casefold() not in _GRAPH_DAYS:
        raise InvalidRecurrence(f"pattern.{name} must be a day name like 'monday', got {value!r}")
    return value.casefold()


def _days(pattern: Mapping[str, Any]) -> list[str]:
    value = pattern.get("daysOfWeek")
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise InvalidRecurrence(
            f"pattern.daysOfWeek must be a non-empty list of day names, got {value!r}"
        )
    indexes: set[int] = set()
    for item in value:
        if not isinstance(item, str) or item.casefold() not in _GRAPH_DAYS:
            raise InvalidRecurrence(
                f"pattern.daysOfWeek item must be a day name like 'monday', got {item!r}"
            )
        indexes.add(_GRAPH_DAYS.index(item.casefold()))
    return [_GRAPH_DAYS[i] for i in _GRAPH_ORDER if i in indexes]


def _index(pattern: Mapping[str, Any]) -> str:
    value = pattern.get("index")
    if value is None:
        return "first"  # Graph's documented default
    if not isinstance(value, str) or value.casefold() not in _INDEXES:
        raise InvalidRecurrence(
            f"pattern.index must be one of {', '.join(_INDEXES)}, got {value!r}"
        )
    return value.casefold()


def _date(value: object, field: str) -> date:
    match = _DATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidRecurrence(f"{field} must be a date like 2024-01-26, got {value!r}")
    try:
        return date(*(int(g) for g in match.groups()))
    except ValueError as exc:
        raise InvalidRecurrence(f"{field} {value!r} is not a valid date: {exc}") from None


# --------------------------------------------------------------------------- RRULE -> Graph


def from_rrule(rrule: str, *, start_local: datetime, time_zone_windows: str) -> dict[str, Any]:
    """The Graph ``patternedRecurrence`` for an RRULE, in the form ``normalize`` returns.

    ``start_local`` is the series' DTSTART as a wall-clock time (an aware value is converted
    to the zone); it becomes ``range.startDate`` and supplies what the rule leaves to DTSTART
    (the weekday of ``FREQ=WEEKLY``, the day of ``FREQ=MONTHLY``). ``time_zone_windows`` is
    the series' zone, written to ``range.recurrenceTimeZone``; an IANA name is translated.

    Graph writes only what its patterns can say, and a series it would expand differently
    must not be sent. Raises InvalidRecurrence("Outlook cannot represent ...") for, e.g.,
    BYHOUR/BYMINUTE/BYSECOND other than DTSTART's own time, BYYEARDAY, BYWEEKNO, several
    BYMONTH or BYMONTHDAY values, a 5th or second-to-last weekday, BYSETPOS outside 1..4 and
    -1, and a day 29-31 that RFC 5545 would skip in short months where Outlook moves it to the
    last day. Raises InvalidRecurrence for an invalid rule or time zone too.

    https://learn.microsoft.com/graph/api/resources/patternedrecurrence
    """
    parse_rule(rrule)  # every later step may assume a well-formed, RFC-valid rule
    try:
        windows = _windows_name(time_zone_windows)
        iana = windows_to_iana(windows)
    except UnknownTimeZone as exc:
        raise InvalidRecurrence(str(exc)) from None
    if start_local.tzinfo is not None:
        start_local = start_local.astimezone(ZoneInfo(iana)).replace(tzinfo=None)
    parts = _rule_parts(rrule)
    freq = parts.pop("FREQ")
    interval = int(parts.pop("INTERVAL", "1"))
    count = parts.pop("COUNT", None)
    until = parts.pop("UNTIL", None)
    _drop_redundant_time(parts, start_local)
    for name in ("BYYEARDAY", "BYWEEKNO"):
        if name in parts:
            raise InvalidRecurrence(f"Outlook cannot represent {name} ({name}={parts[name]})")

    if freq == "DAILY":
        pattern = _daily(parts, interval)
    elif freq == "WEEKLY":
        pattern = _weekly(parts, interval, start_local)
    elif freq == "MONTHLY":
        pattern = _monthly(parts, interval, start_local)
    else:
        pattern = _yearly(parts, interval, start_local)

    range_: dict[str, Any]
    if count is not None:
        range_ = {"type": "numbered", "numberOfOccurrences": int(count)}
    elif until is not None:
        end = _end_date(until, start_local, iana)
        if end < start_local.date():
            raise InvalidRecurrence(
                f"Outlook cannot represent a series that ends (UNTIL={until}) before its "
                f"first day {start_local.date().isoformat()}"
            )
        range_ = {"type": "endDate", "endDate": end.isoformat()}
    else:
        range_ = {"type": "noEnd"}
    range_["startDate"] = start_local.date().isoformat()
    range_["recurrenceTimeZone"] = windows
    # Through normalize, so the output has exactly the canonical shape and is re-validated.
    return normalize({"pattern": pattern, "range": range_})


def _windows_name(name: str) -> str:
    """The canonical Windows spelling of a Windows name, or the Windows name of an IANA one.

    Every Windows name's "001" zone maps back to that Windows name (a test checks the whole
    table), so the round trip only fixes the spelling of a Windows name.
    """
    return iana_to_windows(windows_to_iana(name))


def _rule_parts(rrule: str) -> dict[str, str]:
    text = rrule.strip().upper().removeprefix("RRULE:")
    parts: dict[str, str] = {}
    for part in text.split(";"):
        if part:
            name, _, value = part.partition("=")
            parts[name] = value
    return parts


def _drop_redundant_time(parts: dict[str, str], start_local: datetime) -> None:
    """Remove BYHOUR/BYMINUTE/BYSECOND that only restate DTSTART's time; refuse the rest.

    MS-OXCICAL's templates allow a single BYHOUR and BYMINUTE, and dateutil infers them from
    DTSTART anyway, so such parts change nothing. Any other value adds or moves occurrences
    within a day, which a Graph series (one start time) cannot hold.
    """
    for name, own in (
        ("BYHOUR", start_local.hour),
        ("BYMINUTE", start_local.minute),
        ("BYSECOND", start_local.second),
    ):
        value = parts.pop(name, None)
        if value is not None and _ints(value) != (own,):
            raise InvalidRecurrence(
                f"Outlook cannot represent {name}={value}: a series has one start time "
                f"({start_local:%H:%M:%S})"
            )


def _refuse(parts: Mapping[str, str], names: Sequence[str], freq: str) -> None:
    for name in names:
        if name in parts:
            raise InvalidRecurrence(
                f"Outlook cannot represent {name}={parts[name]} with FREQ={freq}"
            )


def _daily(parts: dict[str, str], interval: int) -> dict[str, Any]:
    _refuse(parts, ("BYMONTH", "BYMONTHDAY", "BYSETPOS"), "DAILY")
    byday = parts.get("BYDAY")
    if byday is None:
        return {"type": "daily", "interval": interval}
    # "Every weekday" is FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR in many clients; Outlook keeps it as
    # a weekly pattern, which is the same set only when no day is skipped between weeks.
    if interval != 1:
        raise InvalidRecurrence(
            f"Outlook cannot represent FREQ=DAILY;INTERVAL={interval} with BYDAY={byday}"
        )
    days = _plain_days(byday, "DAILY")
    return {
        "type": "weekly",
        "interval": 1,
        "daysOfWeek": days,
        "firstDayOfWeek": _wkst(parts, default="sunday"),
    }


def _weekly(parts: dict[str, str], interval: int, start_local: datetime) -> dict[str, Any]:
    _refuse(parts, ("BYMONTH", "BYMONTHDAY", "BYSETPOS"), "WEEKLY")
    byday = parts.get("BYDAY")
    days = [_GRAPH_DAYS[start_local.weekday()]] if byday is None else _plain_days(byday, "WEEKLY")
    return {
        "type": "weekly",
        "interval": interval,
        "daysOfWeek": days,
        # RFC 5545's default week start is Monday, Graph's is Sunday: always write it.
        "firstDayOfWeek": _wkst(parts, default="monday"),
    }


def _monthly(parts: dict[str, str], interval: int, start_local: datetime) -> dict[str, Any]:
    _refuse(parts, ("BYMONTH",), "MONTHLY")
    if "BYDAY" in parts:
        if "BYMONTHDAY" in parts:
            raise InvalidRecurrence(
                "Outlook cannot represent BYDAY together with BYMONTHDAY "
                f"(BYDAY={parts['BYDAY']};BYMONTHDAY={parts['BYMONTHDAY']})"
            )
        days, index = _relative(parts["BYDAY"], parts.get("BYSETPOS"))
        return {"type": "relativeMonthly", "interval": interval, "daysOfWeek": days, "index": index}
    day, clamped = _monthday(parts, start_local.day)
    if not clamped and day > 28:
        raise InvalidRecurrence(
            f"Outlook cannot represent a monthly day {day} that skips shorter months (RFC "
            "5545); Outlook moves it to the last day of those months. Use "
            f"BYMONTHDAY={_clamp_hint(day)} for that"
        )
    return {"type": "absoluteMonthly", "interval": interval, "dayOfMonth": day}


def _yearly(parts: dict[str, str], interval: int, start_local: datetime) -> dict[str, Any]:
    months = parts.get("BYMONTH")
    if months is not None and len(_ints(months)) > 1:
        raise InvalidRecurrence(f"Outlook cannot represent several months (BYMONTH={months})")
    month = start_local.month if months is None else _ints(months)[0]
    if "BYDAY" in parts:
        if months is None:
            # Without BYMONTH an ordinal counts weekdays of the whole year ("20th Monday").
            raise InvalidRecurrence(
                f"Outlook cannot represent BYDAY={parts['BYDAY']} with FREQ=YEARLY and no BYMONTH"
            )
        if "BYMONTHDAY" in parts:
            raise InvalidRecurrence(
                "Outlook cannot represent BYDAY together with BYMONTHDAY "
                f"(BYDAY={parts['BYDAY']};BYMONTHDAY={parts['BYMONTHDAY']})"
            )
        days, index = _relative(parts["BYDAY"], parts.get("BYSETPOS"))
        return {
            "type": "relativeYearly",
            "interval": interval,
            "daysOfWeek": days,
            "index": index,
            "month": month,
        }
    if months is None and "BYMONTHDAY" in parts:
        # RFC 5545 expands BYMONTHDAY over every month of the year when BYMONTH is absent
        # (dateutil infers BYMONTH from DTSTART only when no BYxxx day part is given).
        raise InvalidRecurrence(
            f"Outlook cannot represent BYMONTHDAY={parts['BYMONTHDAY']} with FREQ=YEARLY and "
            "no BYMONTH (that is every month of the year)"
        )
    day, clamped = _monthday(parts, start_local.day)
    if clamped:
        day = min(day, _MAX_DAYS[month])
    elif day > _MIN_DAYS[month]:
        raise InvalidRecurrence(
            f"Outlook cannot represent a yearly day {day} of month {month} that RFC 5545 "
            f"skips in years without it; Outlook moves it to the month's last day. Use "
            f"BYMONTHDAY={_clamp_hint(day)} for that"
        )
    return {"type": "absoluteYearly", "interval": interval, "dayOfMonth": day, "month": month}


def _monthday(parts: Mapping[str, str], default: int) -> tuple[int, bool]:
    """(day, clamped) from BYMONTHDAY [+ BYSETPOS]; clamped: shorter months use their last day.

    Accepts a single day, ``-1`` (day 31, clamped) and the clamp form ``28,..,N;BYSETPOS=-1``
    that ``to_rrule`` writes. Without BYMONTHDAY the day is DTSTART's, unclamped, as dateutil
    infers it.
    """
    text = parts.get("BYMONTHDAY")
    setpos = parts.get("BYSETPOS")
    if text is None:
        if setpos is not None:
            raise InvalidRecurrence(
                f"Outlook cannot represent BYSETPOS={setpos} without BYDAY or BYMONTHDAY"
            )
        return default, False
    values = _ints(text)
    positions = None if setpos is None else _ints(setpos)
    if positions is None and len(values) == 1 and values[0] > 0:
        return values[0], False
    if positions is None and values == (-1,):
        return 31, True
    if positions == (-1,) and len(values) > 1 and values == tuple(range(28, values[-1] + 1)):
        return values[-1], True
    shown = f"BYMONTHDAY={text}" + ("" if setpos is None else f";BYSETPOS={setpos}")
    raise InvalidRecurrence(
        f"Outlook cannot represent {shown}: a Graph pattern has one day of the month"
    )


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))  # "+1" and "01" too, as parse_rule allows


def _clamp_hint(day: int) -> str:
    return "-1" if day == 31 else ",".join(str(d) for d in range(28, day + 1)) + ";BYSETPOS=-1"


def _relative(byday: str, setpos: str | None) -> tuple[list[str], str]:
    """daysOfWeek and index for a relative pattern: ``2TH``, ``-1FR`` or ``MO,TU;BYSETPOS=n``."""
    items = [_byday_item(item) for item in byday.split(",")]
    ordinals = {n for _, n in items}
    if setpos is None:
        if ordinals == {0}:
            raise InvalidRecurrence(
                f"Outlook cannot represent BYDAY={byday} (every such day of the month); "
                "a relative pattern picks one: 2TH, -1FR, or a day list with BYSETPOS"
            )
        if len(items) != 1:
            raise InvalidRecurrence(
                f"Outlook cannot represent BYDAY={byday}: a relative pattern has one position "
                "for all its days"
            )
        position = items[0][1]
    else:
        if ordinals != {0}:
            raise InvalidRecurrence(
                f"Outlook cannot represent BYDAY={byday} with BYSETPOS={setpos} "
                "(ordinal days and BYSETPOS together)"
            )
        positions = _ints(setpos)
        if len(positions) != 1:
            raise InvalidRecurrence(
                f"Outlook cannot represent several positions (BYSETPOS={setpos})"
            )
        position = positions[0]
    if position not in _INDEX_NAMES:
        raise InvalidRecurrence(
            f"Outlook cannot represent position {position} in BYDAY={byday}"
            + ("" if setpos is None else f";BYSETPOS={setpos}")
            + ": Graph's index is first, second, third, fourth or last (1..4, -1)"
        )
    days = {day for day, _ in items}
    return [_GRAPH_DAYS[i] for i in _GRAPH_ORDER if i in days], _INDEX_NAMES[position]


def _byday_item(item: str) -> tuple[int, int]:
    match = _BYDAY_ITEM.fullmatch(item)
    if match is None:  # parse_rule accepted the rule, so this is unreachable in practice
        raise InvalidRecurrence(f"BYDAY item {item!r} is not a weekday like MO, 2TU or -1FR")
    return _RRULE_DAYS.index(match.group(2)), int(match.group(1) or 0)


def _plain_days(byday: str, freq: str) -> list[str]:
    items = [_byday_item(item) for item in byday.split(",")]
    if any(n for _, n in items):
        raise InvalidRecurrence(f"Outlook cannot represent BYDAY={byday} with FREQ={freq}")
    days = {day for day, _ in items}
    return [_GRAPH_DAYS[i] for i in _GRAPH_ORDER if i in days]


def _wkst(parts: Mapping[str, str], *, default: str) -> str:
    wkst = parts.get("WKST")
    return default if wkst is None else _GRAPH_DAYS[_RRULE_DAYS.index(wkst)]


def _end_date(until: str, start_local: datetime, iana: str) -> date:
    """Graph's inclusive endDate for an UNTIL: the last day whose start time is <= UNTIL.

    A DATE UNTIL includes its whole day (services.recurrence's rule), a local one is compared
    with the wall-clock start, a UTC one is first moved to the series' zone.
    """
    match = _UNTIL.fullmatch(until)
    if match is None:  # parse_rule accepted the rule, so this is unreachable in practice
        raise InvalidRecurrence(f"UNTIL {until!r} is not a date or date-time")
    year, month, day, hour, minute, second, zulu = match.groups()
    day_value = date(int(year), int(month), int(day))
    if hour is None:
        return day_value
    moment = datetime.combine(day_value, time(int(hour), int(minute), int(second)))
    if zulu:
        moment = _utc_to_local(moment, iana)
    start_time = start_local.time().replace(microsecond=0)
    return moment.date() if moment.time() >= start_time else moment.date() - timedelta(days=1)


def _utc_to_local(moment: datetime, iana: str) -> datetime:
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(iana)).replace(tzinfo=None)
