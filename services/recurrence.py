"""Recurring meeting series: RFC 5545 RRULE validation and on-read expansion.

A series is stored as its rule, its exceptions and an IANA time zone, never as a list of
copies. Occurrences are generated for a requested range when read:

* The rule is expanded by ``dateutil.rrule`` on naive local wall-clock times, and each start is
  then converted to UTC with ``zoneinfo``. A 09:00 Europe/Oslo meeting therefore stays at 09:00
  local time across DST changes, and its UTC time shifts by an hour.
* A local time that does not exist (DST gap) takes the UTC offset from before the gap
  (RFC 5545 §3.3.5), so 02:30 on a spring-forward day in New York is 03:30 EDT. An ambiguous
  local time (DST overlap) is its first occurrence (``fold=0``).
* ``end`` is ``start + duration`` in elapsed time.
* All-day series are expanded in floating time. Each occurrence is reported as UTC midnight of
  its date, and ``end`` is that midnight plus ``duration``.
* ``UNTIL`` may be UTC (``...Z``), a local date-time, or a date. A date includes the whole day.
  For an all-day series, a UTC ``UNTIL`` is compared with the UTC-midnight starts.
* A DTSTART that does not match the rule is not an occurrence in itself. This is dateutil's
  behaviour, and RFC 5545 leaves such a set undefined.

Common rules without COUNT (DAILY and WEEKLY with plain weekdays, MONTHLY by month day or by
ordinal weekday, no other BY parts) skip dateutil: their local starts are computed by date
arithmetic, which generates exactly what dateutil would, at a fraction of its fixed cost per call.

dateutil iterates from DTSTART. For a series that started years ago, ``expand`` therefore
"fast-forwards" rules without COUNT: it moves DTSTART by a whole number of periods (INTERVAL x
FREQ unit) to the start of the period that holds the window. It also pins the parts that dateutil
would otherwise infer from DTSTART, so the shifted rule produces exactly the same occurrences.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final, Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, weekday, weekdays

__all__ = [
    "InvalidRecurrence",
    "Occurrence",
    "Series",
    "expand",
    "expand_starts",
    "local_to_utc",
    "occurrences_per_day",
    "parse_rule",
    "series_end",
]

_Freq = Literal[0, 1, 2, 3]
_FREQS: Final[dict[str, _Freq]] = {
    "YEARLY": YEARLY,
    "MONTHLY": MONTHLY,
    "WEEKLY": WEEKLY,
    "DAILY": DAILY,
}
_SUB_DAILY: Final = frozenset({"HOURLY", "MINUTELY", "SECONDLY"})
_DAYS: Final = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_PARTS: Final = frozenset(
    {
        "FREQ",
        "UNTIL",
        "COUNT",
        "INTERVAL",
        "BYSECOND",
        "BYMINUTE",
        "BYHOUR",
        "BYDAY",
        "BYMONTHDAY",
        "BYYEARDAY",
        "BYWEEKNO",
        "BYMONTH",
        "BYSETPOS",
        "WKST",
    }
)
# Allowed ranges. Leap second 60 is left out because datetime cannot represent it.
_RANGES: Final[dict[str, tuple[int, int, bool]]] = {
    "BYSECOND": (0, 59, False),
    "BYMINUTE": (0, 59, False),
    "BYHOUR": (0, 23, False),
    "BYMONTHDAY": (1, 31, True),
    "BYYEARDAY": (1, 366, True),
    "BYWEEKNO": (1, 53, True),
    "BYMONTH": (1, 12, False),
    "BYSETPOS": (1, 366, True),
}
_INT_LIST: Final = re.compile(r"[+-]?\d{1,4}(?:,[+-]?\d{1,4})*")
_BYDAY_ITEM: Final = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_UNTIL: Final = re.compile(r"(\d{4})(\d{2})(\d{2})(?:T(\d{2})(\d{2})(\d{2})(Z)?)?")
_POSITIVE: Final = re.compile(r"\d{1,9}")

# The widest spread of UTC offsets (-12:00 to +14:00). No zone's offset can change by more
# than this, so local bounds widened by it cannot miss an occurrence in the UTC window.
_LOCAL_MARGIN: Final = timedelta(hours=26)
_MIDNIGHT: Final = time()
_END_OF_DAY: Final = time(23, 59, 59)
_ZERO: Final = timedelta(0)
# Naive <-> aware conversion by adding an interval to an anchor: datetime.replace(tzinfo=...)
# costs several times more, and it runs once for each occurrence.
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE: Final = _EPOCH.replace(tzinfo=None)
_UTC_MIN: Final = datetime.min.replace(tzinfo=UTC)
# Local wall-clock values are naive on purpose: dateutil expands them in floating time.
_LOCAL_MIN: Final = datetime.min  # noqa: DTZ901
_LOCAL_MAX: Final = datetime.max  # noqa: DTZ901


class InvalidRecurrence(ValueError):
    """A recurrence rule, time zone or series that cannot be accepted."""


@dataclass(frozen=True, slots=True)
class Series:
    """A recurring series: RRULE value, first local start, duration and IANA time zone."""

    rrule: str
    start: datetime
    duration: timedelta
    time_zone: str
    exdates: frozenset[datetime] = frozenset()
    all_day: bool = False


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One generated occurrence, in aware UTC."""

    original_start: datetime
    start: datetime
    end: datetime


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True, slots=True)
class _Until:
    day: date
    at: time | None  # None: UNTIL was a DATE value
    utc: bool


@dataclass(frozen=True, slots=True)
class _Rule:
    freq: _Freq
    interval: int
    count: int | None
    until: _Until | None
    wkst: int
    byday: tuple[tuple[int, int], ...] | None  # (weekday, ordinal); ordinal 0 = every
    bymonthday: tuple[int, ...] | None
    byyearday: tuple[int, ...] | None
    byweekno: tuple[int, ...] | None
    bymonth: tuple[int, ...] | None
    bysetpos: tuple[int, ...] | None
    byhour: tuple[int, ...] | None
    byminute: tuple[int, ...] | None
    bysecond: tuple[int, ...] | None


def parse_rule(rrule: str) -> None:
    """Validate an RRULE value (without the ``RRULE:`` prefix); raise InvalidRecurrence."""
    _parse(rrule)


def _int_list(name: str, value: str) -> tuple[int, ...]:
    if not _INT_LIST.fullmatch(value):
        raise InvalidRecurrence(f"{name} must be a comma-separated list of integers, got {value!r}")
    low, high, signed = _RANGES[name]
    items = tuple(int(v) for v in value.split(","))
    for item in items:
        if not (low <= abs(item) <= high) or (item < 0 and not signed):
            allowed = f"{-high}..{-low} or {low}..{high}" if signed else f"{low}..{high}"
            raise InvalidRecurrence(f"{name} value {item} is out of range ({allowed})")
    return items


def _positive(name: str, value: str) -> int:
    if not _POSITIVE.fullmatch(value) or int(value) < 1:
        raise InvalidRecurrence(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _parse_until(value: str) -> _Until:
    match = _UNTIL.fullmatch(value)
    if match is None:
        raise InvalidRecurrence(
            f"UNTIL must be YYYYMMDD, YYYYMMDDTHHMMSS or YYYYMMDDTHHMMSSZ, got {value!r}"
        )
    year, month, day, hour, minute, second, zulu = match.groups()
    try:
        day_value = date(int(year), int(month), int(day))
        at = None if hour is None else time(int(hour), int(minute), int(second))
    except ValueError as exc:
        raise InvalidRecurrence(f"UNTIL {value!r} is not a valid date/time: {exc}") from None
    return _Until(day_value, at, zulu is not None)


def _parse_byday(value: str) -> tuple[tuple[int, int], ...]:
    items = []
    for item in value.split(","):
        match = _BYDAY_ITEM.fullmatch(item)
        if match is None:
            raise InvalidRecurrence(f"BYDAY item {item!r} is not a weekday like MO, 2TU or -1FR")
        ordinal = int(match.group(1) or 0)
        if match.group(1) is not None and not 1 <= abs(ordinal) <= 53:
            raise InvalidRecurrence(f"BYDAY ordinal in {item!r} is out of range (-53..-1, 1..53)")
        items.append((_DAYS.index(match.group(2)), ordinal))
    return tuple(items)


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> _Rule:
    value = text.strip().upper()
    value = value.removeprefix("RRULE:")
    if not value:
        raise InvalidRecurrence("empty recurrence rule")
    parts: dict[str, str] = {}
    for part in value.split(";"):
        if not part:
            continue  # a trailing ";" is common in the wild and harmless
        name, sep, part_value = part.partition("=")
        if not sep or not name or not part_value:
            raise InvalidRecurrence(f"malformed rule part {part!r} (expected NAME=VALUE)")
        if name not in _PARTS:
            raise InvalidRecurrence(f"unknown rule part {name!r}")
        if name in parts:
            raise InvalidRecurrence(f"rule part {name} given more than once")
        parts[name] = part_value

    freq_name = parts.get("FREQ")
    if freq_name is None:
        raise InvalidRecurrence("FREQ is required")
    if freq_name in _SUB_DAILY:
        raise InvalidRecurrence(
            f"FREQ={freq_name} is not supported for meetings (use DAILY, WEEKLY, MONTHLY or YEARLY)"
        )
    if freq_name not in _FREQS:
        raise InvalidRecurrence(f"unknown FREQ {freq_name!r}")
    freq = _FREQS[freq_name]
    if "COUNT" in parts and "UNTIL" in parts:
        raise InvalidRecurrence("COUNT and UNTIL cannot both be given")

    def ints(name: str) -> tuple[int, ...] | None:
        raw = parts.get(name)
        return None if raw is None else _int_list(name, raw)

    wkst_name = parts.get("WKST", "MO")
    if wkst_name not in _DAYS:
        raise InvalidRecurrence(f"WKST must be one of {', '.join(_DAYS)}, got {wkst_name!r}")
    rule = _Rule(
        freq=freq,
        interval=_positive("INTERVAL", parts["INTERVAL"]) if "INTERVAL" in parts else 1,
        count=_positive("COUNT", parts["COUNT"]) if "COUNT" in parts else None,
        until=_parse_until(parts["UNTIL"]) if "UNTIL" in parts else None,
        wkst=_DAYS.index(wkst_name),
        byday=_parse_byday(parts["BYDAY"]) if "BYDAY" in parts else None,
        bymonthday=ints("BYMONTHDAY"),
        byyearday=ints("BYYEARDAY"),
        byweekno=ints("BYWEEKNO"),
        bymonth=ints("BYMONTH"),
        bysetpos=ints("BYSETPOS"),
        byhour=ints("BYHOUR"),
        byminute=ints("BYMINUTE"),
        bysecond=ints("BYSECOND"),
    )
    _check_combinations(rule, freq_name)
    return rule


def _check_combinations(rule: _Rule, freq_name: str) -> None:
    """Enforce the RFC 5545 §3.3.10 restrictions on which parts go with which FREQ."""
    if rule.bymonthday is not None and rule.freq == WEEKLY:
        raise InvalidRecurrence("BYMONTHDAY is not allowed with FREQ=WEEKLY")
    if rule.byyearday is not None and rule.freq != YEARLY:
        raise InvalidRecurrence(f"BYYEARDAY is only allowed with FREQ=YEARLY, not {freq_name}")
    if rule.byweekno is not None and rule.freq != YEARLY:
        raise InvalidRecurrence(f"BYWEEKNO is only allowed with FREQ=YEARLY, not {freq_name}")
    ordinals = [n for _, n in rule.byday or () if n]
    if ordinals:
        if rule.freq not in (MONTHLY, YEARLY):
            raise InvalidRecurrence(
                f"BYDAY with an ordinal (e.g. 2TU) is only allowed with FREQ=MONTHLY or "
                f"YEARLY, not {freq_name}"
            )
        if rule.freq == YEARLY and rule.byweekno is not None:
            raise InvalidRecurrence("BYDAY with an ordinal cannot be combined with BYWEEKNO")
        within_month = rule.freq == MONTHLY or rule.bymonth is not None
        if within_month and any(abs(n) > 5 for n in ordinals):
            raise InvalidRecurrence("BYDAY ordinal within a month must be -5..-1 or 1..5")
    has_other_by = any(
        part is not None
        for part in (
            rule.byday,
            rule.bymonthday,
            rule.byyearday,
            rule.byweekno,
            rule.bymonth,
            rule.byhour,
            rule.byminute,
            rule.bysecond,
        )
    )
    if rule.bysetpos is not None and not has_other_by:
        raise InvalidRecurrence("BYSETPOS requires another BYxxx rule part")


# --------------------------------------------------------------------------- time zones


@functools.lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    # ZoneInfoNotFoundError is a KeyError; malformed keys raise ValueError, and a key that
    # names a tzdata directory (e.g. "Europe") raises IsADirectoryError.
    except (KeyError, ValueError, OSError):
        raise InvalidRecurrence(f"unknown time zone {name!r}") from None


def local_to_utc(local: datetime, time_zone: str) -> datetime:
    """Convert a naive wall-clock time in ``time_zone`` to aware UTC.

    A non-existent local time (DST gap) uses the offset from before the gap (RFC 5545 §3.3.5).
    An ambiguous one (DST overlap) is its first occurrence. An aware input is only converted.
    Raises InvalidRecurrence for an unknown time zone.
    """
    zone = _zone(time_zone)
    if local.tzinfo is not None:
        return local.astimezone(UTC)
    return _utc(local.replace(fold=0), zone)


def _utc(local: datetime, zone: tzinfo) -> datetime:
    return _EPOCH + (local - (zone.utcoffset(local) or _ZERO) - _EPOCH_NAIVE)


@functools.lru_cache(maxsize=4096)
def _to_local(moment: datetime, zone: tzinfo, shift: timedelta) -> datetime:
    """Aware moment -> naive wall clock in ``zone`` + ``shift``, clamped at datetime's limits.

    Cached: a calendar range expands hundreds of series over the same window, in a dozen zones.
    """
    try:
        local = moment.astimezone(zone)
        return datetime.combine(local.date(), local.time()) + shift
    except OverflowError:
        return _LOCAL_MIN if shift < _ZERO else _LOCAL_MAX


# --------------------------------------------------------------------------- expansion


class _Exhausted(Exception):
    """Raised inside dateutil's generator once iteration has provably passed the range."""


class _RebuildGuard(tuple[tuple[int, int], ...]):
    """Stands in for ``rrule._bynweekday`` to bound dateutil's iteration.

    dateutil's generator only returns control when it yields an occurrence. For a rule with
    no occurrence in the range, or none at all (e.g. ``FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30``), it
    would scan every period up to the year 9999, which takes seconds. Its ``_iterinfo.rebuild``
    tests ``rrule._bynweekday`` for truth once per call. It is called each time iteration enters
    a new month (DAILY, WEEKLY) or a new period (MONTHLY, YEARLY), always for a later month. So
    the number of calls bounds how far iteration has got. The tuple keeps dateutil's ordinal
    weekdays, so the rule's behaviour does not change.
    """

    calls: int
    limit: int

    def __bool__(self) -> bool:
        self.calls += 1
        if self.calls > self.limit:
            raise _Exhausted
        return len(self) > 0


def _guard(rule: rrule, limit: int) -> _RebuildGuard:
    guard = _RebuildGuard(getattr(rule, "_bynweekday", None) or ())
    guard.calls = 0
    guard.limit = limit
    rule.__dict__["_bynweekday"] = guard
    return guard


def _month_index(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def _months_guard_limit(first: datetime, last: datetime) -> int:
    # rebuild call n happens in a month >= first + (n - 1). So once the limit is passed,
    # iteration is at least 14 months past `last`. That is more than a whole YEARLY period,
    # so every period touching `last` has already been yielded.
    return _month_index(last) - _month_index(first) + 14


def _fast_path_supported(rule: _Rule) -> bool:
    """Whether ``_Arithmetic`` generates exactly dateutil's occurrences for ``rule``."""
    if rule.count is not None:
        return False  # COUNT needs every occurrence from DTSTART; dateutil counts them
    if any(
        part is not None
        for part in (
            rule.byyearday,
            rule.byweekno,
            rule.bymonth,
            rule.bysetpos,
            rule.byhour,
            rule.byminute,
            rule.bysecond,
        )
    ):
        return False
    if rule.freq in (DAILY, WEEKLY):
        return rule.bymonthday is None and all(n == 0 for _, n in rule.byday or ())
    if rule.freq == MONTHLY:
        # dateutil ANDs BYMONTHDAY with BYDAY, and plain with ordinal weekdays; leave those out.
        if rule.byday is None:
            return True
        return rule.bymonthday is None and all(n != 0 for _, n in rule.byday)
    return False


@dataclass(frozen=True, slots=True, eq=False)
class _Arithmetic:
    """A rule that ``_fast_path_supported`` accepts, expanded by date arithmetic.

    Every occurrence is at DTSTART's time of day (no BYHOUR, BYMINUTE or BYSECOND), so only
    the days need working out. Day numbers are proleptic Gregorian ordinals.
    """

    freq: _Freq
    step: int  # INTERVAL
    day0: int  # DTSTART's day
    week0: int  # first day of DTSTART's WKST-aligned week
    month0: int  # _month_index(DTSTART)
    clock: timedelta  # DTSTART's time of day
    weekdays: tuple[bool, ...]  # DAILY: allowed weekdays, Monday first
    offsets: tuple[int, ...]  # WEEKLY: allowed days after the week's first day, ascending
    monthdays: tuple[int, ...]  # MONTHLY: BYMONTHDAY values (DTSTART's day when inferred)
    nweekdays: tuple[tuple[int, int], ...]  # MONTHLY: BYDAY (weekday, ordinal)

    def starts(self, low: datetime, high: datetime) -> list[datetime]:
        """Naive local starts in ``[low, high]``, ascending; requires ``low >= DTSTART``.

        dateutil emits nothing before DTSTART, and UNTIL is applied by the caller as ``high``.
        """
        clock = self.clock
        floor = low - clock
        first = floor.toordinal()
        if floor.time() > _MIDNIGHT:
            first += 1
        last = (high - clock).toordinal()
        if first > last:
            return []
        step = self.step
        found: list[datetime] = []
        if self.freq == DAILY:
            # Active days are DTSTART's day plus whole multiples of INTERVAL days.
            active = self.day0 - (self.day0 - first) // step * step
            if active > last:
                return found
            mask = self.weekdays
            moment = datetime.fromordinal(active) + clock
            # Stepping one datetime avoids building a timedelta for each day; the range
            # ends before it could pass datetime.max.
            stride = timedelta(days=step)
            for day in range(active, last + 1, step):
                if mask[(day - 1) % 7]:  # ordinal 1 (0001-01-01) is a Monday
                    found.append(moment)
                if day + step <= last:
                    moment += stride
        elif self.freq == WEEKLY:
            # Active weeks are DTSTART's WKST-aligned week plus whole multiples of INTERVAL
            # weeks, as in dateutil; only its first week is cut short by DTSTART (via ``first``).
            weeks = (first - self.week0) // 7
            week = self.week0 + 7 * (-(-weeks // step) * step)
            while week <= last:
                for offset in self.offsets:
                    day = week + offset
                    if day > last:
                        break
                    if day >= first:
                        found.append(datetime.fromordinal(day) + clock)
                week += 7 * step
        else:
            month = (
                self.month0
                - (self.month0 - _month_index(datetime.fromordinal(first))) // step * step
            )
            last_month = _month_index(datetime.fromordinal(last))
            while month <= last_month:
                year, index = divmod(month, 12)
                start = date(year, index + 1, 1).toordinal()
                for mday in self._month_days(year, index + 1):
                    day = start + mday - 1
                    if first <= day <= last:
                        found.append(datetime.fromordinal(day) + clock)
                month += step
        return found

    def _month_days(self, year: int, month: int) -> list[int]:
        """The rule's days of one month, ascending; out-of-range values name no day."""
        weekday1, length = calendar.monthrange(year, month)
        days: set[int] = set()
        for value in self.monthdays:
            days.add(value if value > 0 else length + value + 1)
        for wday, ordinal in self.nweekdays:
            if ordinal > 0:
                days.add(1 + (wday - weekday1) % 7 + 7 * (ordinal - 1))
            else:
                last_wday = (weekday1 + length - 1) % 7
                days.add(length - (last_wday - wday) % 7 + 7 * (ordinal + 1))
        return sorted(day for day in days if 1 <= day <= length)


def _arithmetic(rule: _Rule, start: datetime) -> _Arithmetic | None:
    if not _fast_path_supported(rule):
        return None
    days = frozenset(day for day, _ in rule.byday or ())
    if rule.freq == WEEKLY and not days:
        days = frozenset({start.weekday()})  # as dateutil infers it from DTSTART
    monthdays = rule.bymonthday or ()
    if rule.freq == MONTHLY and rule.bymonthday is None and rule.byday is None:
        monthdays = (start.day,)  # as dateutil infers it from DTSTART
    return _Arithmetic(
        freq=rule.freq,
        step=rule.interval,
        day0=start.toordinal(),
        week0=start.toordinal() - (start.weekday() - rule.wkst) % 7,
        month0=_month_index(start),
        clock=start - datetime.combine(start.date(), _MIDNIGHT),
        weekdays=tuple(not days or day in days for day in range(7)),
        offsets=tuple(sorted({(day - rule.wkst) % 7 for day in days})),
        monthdays=monthdays,
        nweekdays=rule.byday if rule.freq == MONTHLY and rule.byday else (),
    )


@dataclass(frozen=True, slots=True, eq=False)
class _Plan:
    """A parsed rule bound to its DTSTART and zone, with inferred parts pinned."""

    rule: _Rule
    start: datetime  # naive local, whole seconds
    zone: tzinfo  # time zone the occurrences are converted from (UTC for all-day)
    margin: timedelta
    until: datetime | None  # naive local
    template: rrule  # the rule at DTSTART, with every inferred part pinned
    period0: int  # ordinal of DTSTART's day (DAILY) or of its WKST-aligned week (WEEKLY)
    month0: int  # _month_index(start)
    arithmetic: _Arithmetic | None  # set when the rule can skip dateutil

    def build(self, dtstart: datetime) -> rrule:
        """The rule with DTSTART moved to ``dtstart`` (a period start from fast_forward).

        Every part dateutil derives from DTSTART is pinned in the template, so only
        ``_dtstart`` differs between the two rules. Copying the template's state costs far less
        than rrule.__init__, and this runs once for each expand() call.
        """
        rule: rrule = object.__new__(rrule)
        rule.__dict__.update(self.template.__dict__)
        rule.__dict__["_dtstart"] = dtstart
        return rule

    def fast_forward(self, floor: datetime) -> datetime:
        """DTSTART for iterating from ``floor``: the start of the period that holds it.

        The result is 00:00 on the first day of a period that is a whole number of
        INTERVAL-periods after DTSTART's. The pinned parts make it generate every occurrence at
        or after ``floor`` exactly as the original rule does.
        """
        start = self.start
        rule = self.rule
        if rule.count is not None or floor <= start:
            return start  # COUNT needs every earlier occurrence counted
        step = rule.interval
        freq = rule.freq
        if freq == DAILY:
            periods = (floor.toordinal() - self.period0) // step * step
            first = self.period0 + periods
        elif freq == WEEKLY:
            # Weeks are aligned to WKST, as in dateutil's WEEKLY iteration.
            periods = (floor.toordinal() - self.period0) // 7 // step * step
            first = self.period0 + 7 * periods
        elif freq == MONTHLY:
            periods = (_month_index(floor) - self.month0) // step * step
            year, month = divmod(self.month0 + periods, 12)
            first = date(year, month + 1, 1).toordinal()
        else:
            periods = (floor.year - start.year) // step * step
            first = date(start.year + periods, 1, 1).toordinal()
        if periods == 0:
            return start  # the first period; keep dateutil's partial first WEEKLY period
        return datetime.fromordinal(first)

    def local_starts(self, low: datetime, high: datetime) -> list[datetime]:
        """Naive local starts in ``[low, high]``, in rule order."""
        if high < self.start or (self.until is not None and self.until < low):
            return []
        if self.arithmetic is not None:
            # The same bounds as dateutil's: nothing before DTSTART, nothing after UNTIL.
            low = max(low, self.start)
            if self.until is not None and self.until < high:
                high = self.until
            return self.arithmetic.starts(low, high) if low <= high else []
        dtstart = self.fast_forward(low)
        rule = self.build(dtstart)
        _guard(rule, _months_guard_limit(dtstart, high))
        found: list[datetime] = []
        try:
            for moment in rule:
                if moment > high:
                    break
                if moment >= low:
                    found.append(moment)
        except _Exhausted:
            pass
        return found

    def all_starts(self) -> list[datetime]:
        """Every naive local start of a COUNT rule."""
        rule = self.build(self.start)
        # No more occurrences in one full calendar cycle means none ever. The Gregorian
        # calendar repeats every 400 years (4800 months), and INTERVAL can stretch the cycle
        # by at most its own factor. Each rebuild call advances at least one month.
        cycle = 4800 * self.rule.interval + 2
        guard = _guard(rule, cycle)
        found: list[datetime] = []
        try:
            for moment in rule:
                found.append(moment)
                guard.limit = guard.calls + cycle
        except _Exhausted:
            pass
        return found

    def to_utc(self, local: datetime) -> datetime:
        return _utc(local, self.zone)


def _pinned_parts(
    rule: _Rule, start: datetime
) -> tuple[tuple[weekday, ...] | None, tuple[int, ...] | None, tuple[int, ...] | None]:
    """BYDAY, BYMONTHDAY and BYMONTH, with the values dateutil would infer from DTSTART."""
    byweekday = None
    if rule.byday is not None:
        byweekday = tuple(weekdays[day](n) if n else weekdays[day] for day, n in rule.byday)
    bymonthday, bymonth = rule.bymonthday, rule.bymonth
    # Same condition as dateutil's rrule.__init__, so pinning changes nothing at DTSTART.
    if (
        rule.byweekno is None
        and rule.byyearday is None
        and bymonthday is None
        and byweekday is None
    ):
        if rule.freq == YEARLY:
            bymonth = bymonth or (start.month,)
            bymonthday = (start.day,)
        elif rule.freq == MONTHLY:
            bymonthday = (start.day,)
        elif rule.freq == WEEKLY:
            byweekday = (weekdays[start.weekday()],)
    return byweekday, bymonthday, bymonth


def _local_until(until: _Until | None, zone: tzinfo, all_day: bool) -> datetime | None:
    if until is None:
        return None
    if until.at is None:
        return datetime.combine(until.day, _END_OF_DAY)  # a DATE includes that whole day
    moment = datetime.combine(until.day, until.at)
    if until.utc and not all_day:
        # dateutil needs UNTIL as naive as DTSTART, so express the UTC instant locally.
        return _to_local(moment.replace(tzinfo=UTC), zone, timedelta(0))
    return moment


@functools.lru_cache(maxsize=8192)
def _plan(text: str, start: datetime, time_zone: str, all_day: bool) -> _Plan:
    rule = _parse(text)
    zone = _zone(time_zone)
    if start.tzinfo is not None:
        start = start.astimezone(zone).replace(tzinfo=None)
    start = start.replace(microsecond=0, fold=0)
    if all_day:
        if rule.byhour or rule.byminute or rule.bysecond:
            raise InvalidRecurrence("BYHOUR, BYMINUTE and BYSECOND cannot be used all-day")
        start = datetime.combine(start.date(), _MIDNIGHT)
    byweekday, bymonthday, bymonth = _pinned_parts(rule, start)
    until = _local_until(rule.until, zone, all_day)
    try:
        template = rrule(
            rule.freq,
            dtstart=start,
            interval=rule.interval,
            wkst=rule.wkst,
            count=rule.count,
            until=until,
            bysetpos=rule.bysetpos,
            bymonth=bymonth,
            bymonthday=bymonthday,
            byyearday=rule.byyearday,
            byweekno=rule.byweekno,
            byweekday=byweekday,
            byhour=rule.byhour or (start.hour,),
            byminute=rule.byminute or (start.minute,),
            bysecond=rule.bysecond or (start.second,),
        )
    except ValueError as exc:  # parse() should have caught everything; keep the error type
        raise InvalidRecurrence(f"rule rejected by dateutil: {exc}") from None
    period0 = start.toordinal()
    if rule.freq == WEEKLY:
        period0 -= (start.weekday() - rule.wkst) % 7
    fixed = all_day or zone is UTC
    return _Plan(
        rule=rule,
        start=start,
        zone=UTC if all_day else zone,
        margin=timedelta(0) if fixed else _LOCAL_MARGIN,
        until=until,
        template=template,
        period0=period0,
        month0=_month_index(start),
        arithmetic=_arithmetic(rule, start),
    )


def _series_plan(series: Series) -> _Plan:
    if series.duration < timedelta(0):
        raise InvalidRecurrence(f"duration must not be negative, got {series.duration}")
    return _plan(series.rrule, series.start, series.time_zone, series.all_day)


@functools.lru_cache(maxsize=1024)
def _exdate_sets(
    exdates: frozenset[datetime], all_day: bool
) -> tuple[frozenset[datetime], frozenset[datetime]]:
    """Split EXDATEs into naive local starts and aware instants, as occurrences are matched."""
    local: set[datetime] = set()
    instants: set[datetime] = set()
    for exdate in exdates:
        if all_day:
            # All-day occurrences are reported as UTC midnights of their dates, so an aware
            # exdate names the date it has in UTC, whatever the series' zone.
            if exdate.tzinfo is not None:
                exdate = exdate.astimezone(UTC)
            local.add(datetime.combine(exdate.date(), _MIDNIGHT))
        elif exdate.tzinfo is None:
            local.add(exdate.replace(microsecond=0, fold=0))
        else:
            instants.add(exdate)
    return frozenset(local), frozenset(instants)


_NO_EXDATES: Final[tuple[frozenset[datetime], frozenset[datetime]]] = (frozenset(), frozenset())


def expand(
    series: Series,
    window_start: datetime,
    window_end: datetime,
    *,
    skip: Container[datetime] = frozenset(),
) -> list[Occurrence]:
    """Occurrences whose ``[start, end)`` overlaps ``[window_start, window_end)``, by start.

    The window bounds must be aware. ``skip`` holds aware ``original_start`` values of
    occurrences that are overridden elsewhere. They are left out, like the series' exdates.
    A zero-length occurrence is included when ``window_start <= start < window_end``.
    Raises InvalidRecurrence for a rule, time zone or duration that cannot be accepted.
    """
    duration = series.duration
    return [
        Occurrence(start, start, start + duration)
        for start in expand_starts(series, window_start, window_end, skip=skip)
    ]


def expand_starts(
    series: Series,
    window_start: datetime,
    window_end: datetime,
    *,
    skip: Container[datetime] = frozenset(),
) -> list[datetime]:
    """The starts (= original starts) of ``expand``'s occurrences; each ends ``series.duration``
    later. For callers that expand hundreds of series per request and need no Occurrence."""
    if window_start.tzinfo is None or window_end.tzinfo is None:
        raise ValueError("window_start and window_end must be timezone-aware")
    plan = _series_plan(series)
    if window_end <= window_start:
        return []
    duration = series.duration
    try:
        earliest = window_start - duration
    except OverflowError:
        earliest = _UTC_MIN
    local = plan.local_starts(
        _to_local(earliest, plan.zone, -plan.margin),
        _to_local(window_end, plan.zone, plan.margin),
    )
    if not local:
        return []
    excluded, excluded_instants = (
        _exdate_sets(series.exdates, series.all_day) if series.exdates else _NO_EXDATES
    )
    utcoffset = plan.zone.utcoffset
    found: list[datetime] = []
    previous = _UTC_MIN
    in_order = True
    for moment in local:
        if excluded and moment in excluded:
            continue
        start = _EPOCH + (moment - (utcoffset(moment) or _ZERO) - _EPOCH_NAIVE)
        if start >= window_end:
            continue
        if start + duration <= window_start and not (start == window_start and not duration):
            continue
        if (skip and start in skip) or (excluded_instants and start in excluded_instants):
            continue
        if start <= previous:
            in_order = False
        previous = start
        found.append(start)
    if in_order:
        return found
    # A DST-gap time maps to a later instant than the next local times, and it can meet the
    # instant of the time it is shifted to. The recurrence set is a set, so that counts once.
    found.sort()
    return [start for i, start in enumerate(found) if not i or start != found[i - 1]]


@functools.lru_cache(maxsize=1024)
def occurrences_per_day(rrule: str) -> float:
    """About how many occurrences a rule has per day, from FREQ, INTERVAL and how many values
    its BY parts list. For sizing the windows a caller expands, never for what occurs."""
    rule = _parse(rrule)
    weekdays = {day for day, _ in rule.byday or ()}
    if rule.freq == DAILY:
        per_period, days = len(weekdays) / 7 if weekdays else 1.0, 1.0
    elif rule.freq == WEEKLY:
        per_period, days = max(1, len(weekdays)), 7.0
    elif rule.freq == MONTHLY:
        # An ordinal weekday (2WE) occurs once a month, a plain one (WE) four or five times.
        by_day = sum(1 if ordinal else 4.35 for _, ordinal in rule.byday or ())
        per_period, days = len(rule.bymonthday or ()) + by_day or 1, 30.44
    else:
        per_period, days = len(rule.bymonth or ()) or 1, 365.25
    for part in (rule.byhour, rule.byminute, rule.bysecond):
        per_period *= len(part or (0,))
    if rule.bysetpos:
        per_period = min(per_period, len(rule.bysetpos))
    return per_period / days / rule.interval


def series_end(series: Series) -> datetime | None:
    """Aware UTC end of the series' last occurrence, or None when the rule has no end.

    Exdates are ignored, so the value is never earlier than the true end, which is what a
    range-query index needs. A finite rule with no occurrence at all ends at its DTSTART.
    """
    plan = _series_plan(series)
    if plan.rule.count is not None:
        starts = plan.all_starts()
        last = starts[-1] if starts else None
    elif plan.until is not None:
        last = _last_start_until(plan, plan.until)
    else:
        return None
    if last is None:
        return plan.to_utc(plan.start)
    return plan.to_utc(last) + series.duration


def _last_start_until(plan: _Plan, until: datetime) -> datetime | None:
    # Search backwards from UNTIL with widening spans, so a long series does not have to be
    # iterated from DTSTART (a daily series with UNTIL decades away).
    span = timedelta(days=400)
    while True:
        try:
            low = until - span
        except OverflowError:
            low = _LOCAL_MIN
        starts = plan.local_starts(low, until)
        if starts:
            return starts[-1]
        if low <= plan.start:
            return None
        span *= 8
