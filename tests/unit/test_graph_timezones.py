"""Unit tests for graph.timezones: Windows <-> IANA names and Graph dateTimeTimeZone values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from zoneinfo import ZoneInfo

import pytest

from graph.timezones import (
    IANA_TO_WINDOWS,
    WINDOWS_TO_IANA,
    UnknownTimeZone,
    iana_to_windows,
    parse_graph_datetime,
    to_graph_datetime,
    windows_to_iana,
)
from services.recurrence import local_to_utc


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# --------------------------------------------------------------------------- Windows -> IANA


@pytest.mark.parametrize(
    ("windows", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Romance Standard Time", "Europe/Paris"),
        ("GMT Standard Time", "Europe/London"),
        ("Central Europe Standard Time", "Europe/Budapest"),
        ("FLE Standard Time", "Europe/Kiev"),  # CLDR keeps the pre-2022 IANA id
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("Eastern Standard Time", "America/New_York"),
        ("US Mountain Standard Time", "America/Phoenix"),
        ("British Columbia Standard Time", "America/Vancouver"),
        ("Central Standard Time (Mexico)", "America/Mexico_City"),
        ("Argentina Standard Time", "America/Buenos_Aires"),
        ("India Standard Time", "Asia/Calcutta"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("China Standard Time", "Asia/Shanghai"),
        ("Central Asia Standard Time", "Asia/Bishkek"),
        ("AUS Eastern Standard Time", "Australia/Sydney"),
        ("Greenwich Standard Time", "Atlantic/Reykjavik"),
        ("Dateline Standard Time", "Etc/GMT+12"),
        ("UTC-11", "Etc/GMT+11"),
        ("UTC+12", "Etc/GMT-12"),
        ("UTC", "UTC"),
    ],
)
def test_windows_names_map_to_cldr_001_zone(windows: str, iana: str) -> None:
    assert windows_to_iana(windows) == iana


def test_windows_names_match_case_insensitively_and_ignore_surrounding_space() -> None:
    assert windows_to_iana("w. europe standard time") == "Europe/Berlin"
    assert windows_to_iana("  Pacific Standard Time ") == "America/Los_Angeles"


@pytest.mark.parametrize(
    "name", ["Europe/Oslo", "America/Argentina/Buenos_Aires", "Asia/Kolkata", "Etc/UTC", "EST5EDT"]
)
def test_iana_names_are_returned_as_they_are(name: str) -> None:
    assert windows_to_iana(name) == name


def test_outlook_utc_zone_maps_to_utc() -> None:
    assert windows_to_iana("tzone://Microsoft/Utc") == "UTC"


@pytest.mark.parametrize(
    "name",
    [
        "tzone://Microsoft/Custom",
        "Customized Time Zone",
        "Mars Standard Time",
        "europe/berlin",  # IANA ids are case-sensitive; a wrong-case id is not guessed
        "Europe",  # a tzdata folder, not a zone
        "../../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "",
    ],
)
def test_unknown_names_raise_with_the_name(name: str) -> None:
    with pytest.raises(UnknownTimeZone) as info:
        windows_to_iana(name)

    assert repr(name) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_custom_zone_message_says_why() -> None:
    with pytest.raises(UnknownTimeZone, match="legacy Outlook custom zone"):
        windows_to_iana("tzone://Microsoft/Custom")


# --------------------------------------------------------------------------- IANA -> Windows


@pytest.mark.parametrize(
    ("iana", "windows"),
    [
        ("Europe/Oslo", "W. Europe Standard Time"),  # territory NO, not "001"
        ("Europe/Berlin", "W. Europe Standard Time"),
        ("Europe/Zurich", "W. Europe Standard Time"),
        ("Europe/Brussels", "Romance Standard Time"),
        ("Europe/Paris", "Romance Standard Time"),
        ("Europe/London", "GMT Standard Time"),
        ("Europe/Warsaw", "Central European Standard Time"),
        ("Europe/Kyiv", "FLE Standard Time"),
        ("Europe/Kiev", "FLE Standard Time"),
        ("Europe/Uzhgorod", "FLE Standard Time"),  # only through tzdata's alias to Europe/Kyiv
        ("America/Los_Angeles", "Pacific Standard Time"),
        ("America/Vancouver", "British Columbia Standard Time"),
        ("America/Phoenix", "US Mountain Standard Time"),
        ("America/Toronto", "Eastern Standard Time"),
        ("America/Argentina/Buenos_Aires", "Argentina Standard Time"),
        ("Asia/Kolkata", "India Standard Time"),
        ("Asia/Calcutta", "India Standard Time"),
        ("Asia/Almaty", "West Asia Standard Time"),
        ("Atlantic/Reykjavik", "Greenwich Standard Time"),
        ("Australia/Melbourne", "AUS Eastern Standard Time"),
        ("Etc/GMT+11", "UTC-11"),
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
        ("GMT", "UTC"),
    ],
)
def test_iana_zones_map_to_windows(iana: str, windows: str) -> None:
    assert iana_to_windows(iana) == windows


@pytest.mark.parametrize(
    "name", ["W. Europe Standard Time", "Antarctica/Troll", "Nowhere/City", "europe/oslo", ""]
)
def test_iana_to_windows_unknown_raises_with_the_name(name: str) -> None:
    with pytest.raises(UnknownTimeZone) as info:
        iana_to_windows(name)

    assert repr(name) in str(info.value)


# --------------------------------------------------------------------------- completeness


def test_table_has_every_windows_zone_of_cldr() -> None:
    # 142 rows in CLDR windowsZones.xml territory "001" as shipped in tzlocal 5.4.5. A
    # regeneration that changes the count must update this number on purpose.
    assert len(WINDOWS_TO_IANA) == 142
    assert len(IANA_TO_WINDOWS) == 592
    for name in ("Afghanistan Standard Time", "Yukon Standard Time", "Sri Lanka Standard Time"):
        assert name in WINDOWS_TO_IANA


def test_every_windows_name_maps_and_its_zone_loads() -> None:
    for windows, iana in WINDOWS_TO_IANA.items():
        assert windows_to_iana(windows) == iana
        assert ZoneInfo(iana).key == iana


def test_every_windows_name_survives_a_round_trip() -> None:
    # iana_to_windows(windows_to_iana(w)) == w is what lets graph.recurrence send back the
    # Windows name it was given.
    broken = {w: iana_to_windows(i) for w, i in WINDOWS_TO_IANA.items() if iana_to_windows(i) != w}
    assert broken == {}


def test_every_mapped_iana_zone_loads_and_maps_to_a_known_windows_name() -> None:
    for iana, windows in IANA_TO_WINDOWS.items():
        assert ZoneInfo(iana).key == iana
        assert windows in WINDOWS_TO_IANA


def test_only_zones_without_a_windows_zone_are_unmapped() -> None:
    zones = resources.files("tzdata").joinpath("zones").read_text().split()
    unmapped = sorted(zone for zone in zones if zone not in IANA_TO_WINDOWS)

    # Troll has no Windows zone; the POSIX-rule zones and Factory are not places. If tzdata
    # adds a zone, regenerate the table (see graph/timezones.py) and extend this list only
    # if CLDR has no row for it yet.
    assert unmapped == ["Antarctica/Troll", "CST6CDT", "EST5EDT", "Factory", "MST7MDT", "PST8PDT"]


def test_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        WINDOWS_TO_IANA["Mars Standard Time"] = "UTC"  # type: ignore[index]
    with pytest.raises(TypeError):
        IANA_TO_WINDOWS["Mars/Base"] = "UTC"  # type: ignore[index]


# --------------------------------------------------------------------------- parse_graph_datetime


@pytest.mark.parametrize(
    ("date_time", "zone", "expected"),
    [
        ("2024-03-10T09:00:00.0000000", "W. Europe Standard Time", utc(2024, 3, 10, 8)),
        ("2024-07-10T09:00:00.0000000", "W. Europe Standard Time", utc(2024, 7, 10, 7)),
        ("2024-07-10T09:00:00.0000000", "Pacific Standard Time", utc(2024, 7, 10, 16)),
        ("2024-07-10T09:00:00.0000000", "UTC", utc(2024, 7, 10, 9)),
        ("2024-07-10T09:00:00.0000000", "tzone://Microsoft/Utc", utc(2024, 7, 10, 9)),
        ("2024-07-10T09:00:00.0000000", "Asia/Tokyo", utc(2024, 7, 10, 0)),
        ("2024-07-10T09:00:00.0000000", "India Standard Time", utc(2024, 7, 10, 3, 30)),
        ("2024-07-10T09:00:00", "W. Europe Standard Time", utc(2024, 7, 10, 7)),
        ("2024-07-10T09:00", "W. Europe Standard Time", utc(2024, 7, 10, 7)),
        ("2024-12-31T23:30:00.0000000", "Eastern Standard Time", utc(2025, 1, 1, 4, 30)),
    ],
)
def test_parse_graph_datetime(date_time: str, zone: str, expected: datetime) -> None:
    result = parse_graph_datetime({"dateTime": date_time, "timeZone": zone})

    assert result == expected
    assert result.tzinfo is UTC


@pytest.mark.parametrize(
    ("fraction", "microsecond"),
    [(".0000000", 0), (".1234567", 123456), (".9999999", 999999), (".5", 500000), (".000001", 1)],
)
def test_seven_digit_fractions_keep_microseconds(fraction: str, microsecond: int) -> None:
    value = {"dateTime": f"2024-01-15T10:20:30{fraction}", "timeZone": "UTC"}

    assert parse_graph_datetime(value) == utc(2024, 1, 15, 10, 20, 30, microsecond)


def test_time_in_the_spring_forward_gap_uses_the_offset_before_the_gap() -> None:
    # 02:30 does not exist in Berlin on 2024-03-31 (02:00 CET -> 03:00 CEST). Like
    # services.recurrence.local_to_utc, it is read with the offset before the gap (+01:00),
    # so it is 01:30 UTC, shown as 03:30 CEST.
    value = {"dateTime": "2024-03-31T02:30:00.0000000", "timeZone": "W. Europe Standard Time"}

    result = parse_graph_datetime(value)

    assert result == utc(2024, 3, 31, 1, 30)
    assert result == local_to_utc(datetime(2024, 3, 31, 2, 30), "Europe/Berlin")
    assert result.astimezone(ZoneInfo("Europe/Berlin")).hour == 3


def test_time_in_the_new_york_gap() -> None:
    value = {"dateTime": "2024-03-10T02:30:00.0000000", "timeZone": "Eastern Standard Time"}

    assert parse_graph_datetime(value) == utc(2024, 3, 10, 7, 30)  # EST, -05:00


def test_time_in_the_fall_back_overlap_is_the_first_one() -> None:
    # 02:30 happens twice in Berlin on 2024-10-27; the first is CEST (+02:00).
    value = {"dateTime": "2024-10-27T02:30:00.0000000", "timeZone": "W. Europe Standard Time"}

    assert parse_graph_datetime(value) == utc(2024, 10, 27, 0, 30)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"timeZone": "UTC"}, "needs string dateTime and timeZone"),
        ({"dateTime": "2024-01-15T10:00:00"}, "needs string dateTime and timeZone"),
        ({"dateTime": 1705312800, "timeZone": "UTC"}, "needs string dateTime and timeZone"),
        ({"dateTime": "2024-01-15T10:00:00", "timeZone": None}, "needs string"),
        ({"dateTime": "2024-01-15 10:00:00", "timeZone": "UTC"}, "is not a local date-time"),
        ({"dateTime": "2024-01-15T10:00:00Z", "timeZone": "UTC"}, "is not a local date-time"),
        ({"dateTime": "2024-01-15T10:00:00+01:00", "timeZone": "UTC"}, "is not a local date-time"),
        ({"dateTime": "2024-01-15T10:00:00.12345678", "timeZone": "UTC"}, "is not a local"),
        ({"dateTime": "2024-01-15", "timeZone": "UTC"}, "is not a local date-time"),
        ({"dateTime": "", "timeZone": "UTC"}, "is not a local date-time"),
        ({"dateTime": "2024-02-30T10:00:00", "timeZone": "UTC"}, "is not a valid date-time"),
        ({"dateTime": "2024-01-15T24:00:00", "timeZone": "UTC"}, "is not a valid date-time"),
    ],
)
def test_malformed_values_raise_value_error(value: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_graph_datetime(value)  # type: ignore[arg-type]


def test_non_mapping_raises_value_error() -> None:
    with pytest.raises(ValueError, match="must be an object, got str"):
        parse_graph_datetime("2024-01-15T10:00:00")  # type: ignore[arg-type]


def test_unknown_zone_in_a_value_raises_unknown_time_zone() -> None:
    value = {"dateTime": "2024-01-15T10:00:00.0000000", "timeZone": "tzone://Microsoft/Custom"}

    with pytest.raises(UnknownTimeZone, match="tzone://Microsoft/Custom"):
        parse_graph_datetime(value)


# --------------------------------------------------------------------------- to_graph_datetime


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (
            utc(2024, 3, 10, 8),
            "Europe/Berlin",
            {"dateTime": "2024-03-10T09:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        ),
        (
            utc(2024, 7, 10, 7),
            "Europe/Oslo",
            {"dateTime": "2024-07-10T09:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        ),
        (
            utc(2024, 7, 10, 16, 15, 5, 123456),
            "America/Los_Angeles",
            {"dateTime": "2024-07-10T09:15:05.1234560", "timeZone": "Pacific Standard Time"},
        ),
        (
            utc(2024, 1, 1, 0, 0),
            "Asia/Kolkata",
            {"dateTime": "2024-01-01T05:30:00.0000000", "timeZone": "India Standard Time"},
        ),
        (
            utc(2024, 1, 1, 12),
            "UTC",
            {"dateTime": "2024-01-01T12:00:00.0000000", "timeZone": "UTC"},
        ),
        (
            datetime(2024, 1, 1, 13, tzinfo=timezone(timedelta(hours=1))),
            "Etc/UTC",
            {"dateTime": "2024-01-01T12:00:00.0000000", "timeZone": "UTC"},
        ),
    ],
)
def test_to_graph_datetime(moment: datetime, zone: str, expected: dict[str, str]) -> None:
    assert to_graph_datetime(moment, zone) == expected


@pytest.mark.parametrize(
    "moment",
    [
        utc(2024, 1, 15, 8, 0),
        utc(2024, 3, 31, 0, 59, 59, 999999),  # last instant of CET before the gap
        utc(2024, 3, 31, 1, 0),  # 03:00 CEST, first instant after the gap
        utc(2024, 10, 27, 0, 30),  # 02:30 CEST, the first of the two 02:30s
        utc(2024, 12, 31, 23, 0),  # midnight local, a new year
    ],
)
def test_to_graph_datetime_round_trips_through_parse(moment: datetime) -> None:
    assert parse_graph_datetime(to_graph_datetime(moment, "Europe/Berlin")) == moment


def test_second_of_two_overlapping_wall_times_reads_back_as_the_first() -> None:
    # 01:30 UTC is the second 02:30 in Berlin (CET). A dateTimeTimeZone has no offset, so
    # it is written as 02:30 and read back as the first 02:30 (CEST), an hour earlier.
    written = to_graph_datetime(utc(2024, 10, 27, 1, 30), "Europe/Berlin")

    assert written == {
        "dateTime": "2024-10-27T02:30:00.0000000",
        "timeZone": "W. Europe Standard Time",
    }
    assert parse_graph_datetime(written) == utc(2024, 10, 27, 0, 30)


def test_to_graph_datetime_refuses_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="must be timezone-aware"):
        to_graph_datetime(datetime(2024, 1, 1, 9), "Europe/Berlin")


@pytest.mark.parametrize("zone", ["Antarctica/Troll", "W. Europe Standard Time", "Nowhere/City"])
def test_to_graph_datetime_refuses_a_zone_without_windows_name(zone: str) -> None:
    with pytest.raises(UnknownTimeZone, match=zone):
        to_graph_datetime(utc(2024, 1, 1, 9), zone)
