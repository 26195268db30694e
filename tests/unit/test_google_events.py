"""Unit tests for gmail.events: Calendar v3 event JSON -> MeetingSnapshot / Removed / None.

The payloads under tests/payloads/google/ are hand-written from the documented Event resource
(reference/google.md §4.5): a single meeting, an all-day event, a series master with EXDATEs
in three forms, a moved and a cancelled instance, an organizer-deleted (id-only) event, a
private copy of an external meeting, a working-location entry and an all-day series.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from gmail.events import (
    BODY_MAX_CHARS,
    GooglePayloadError,
    needs_calendar_zone,
    snapshot_from_event,
)
from services.meetings import Attendee, EventType, MeetingSnapshot, Removed, TagHint
from services.tables import ParticipantRole, Provider, Response, ShowAs

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads" / "google"
ANNA = "anna@example.com"


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def payload(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(name))


def snapshot(name: str, **options: Any) -> MeetingSnapshot:
    result = snapshot_from_event(ANNA, payload(name), **options)
    assert isinstance(result, MeetingSnapshot)
    return result


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_single_meeting() -> None:
    shot = snapshot("single")
    assert shot.provider is Provider.GOOGLE
    assert shot.mailbox == ANNA
    assert shot.provider_event_id == "7kq3b1n9v2c4d5e6f7g8h9i0j1"
    assert shot.ical_uid == "7kq3b1n9v2c4d5e6f7g8h9i0j1@google.com"
    assert shot.event_type is EventType.SINGLE
    assert (shot.start, shot.end) == (utc(2026, 3, 10, 8), utc(2026, 3, 10, 9))
    assert shot.time_zone == "Europe/Vienna"
    assert not shot.all_day
    assert shot.subject == "Quarterly review with Acme"
    assert shot.body == "Agenda:\n1. Numbers\n2. Next steps & owners"
    assert shot.location == "Room 4.12, Vienna office"
    assert (shot.organizer_email, shot.organizer_name) == (ANNA, "Anna Berg")
    assert shot.mailbox_is_organizer
    assert not shot.cancelled
    assert not shot.private
    assert shot.show_as is ShowAs.BUSY
    assert shot.reminder_minutes == 10  # the earliest popup; e-mail reminders are not popups
    assert shot.change_key == '"3412345678901234"'
    assert shot.series_provider_id is None
    assert shot.original_start is None
    assert shot.rrule is None
    assert shot.exdates == ()
    assert shot.tag_hint is None


def test_attendee_statuses_roles_and_organizer_first() -> None:
    shot = snapshot("single")
    assert shot.attendees == (
        Attendee(ANNA, "Anna Berg", ParticipantRole.ORGANIZER, Response.ORGANIZER),
        Attendee("bob.smith@acme.com", "Bob Smith", ParticipantRole.REQUIRED, Response.ACCEPTED),
        Attendee("carol@acme.com", "", ParticipantRole.REQUIRED, Response.NONE),
        Attendee("dave@acme.com", "Dave", ParticipantRole.OPTIONAL, Response.TENTATIVE),
        Attendee("erin@acme.com", "", ParticipantRole.REQUIRED, Response.DECLINED),
    )  # the room (resource) is left out


def test_organizer_not_listed_is_still_first_attendee() -> None:
    event = payload("single")
    event["attendees"] = event["attendees"][1:2]
    shot = snapshot_from_event(ANNA, event)
    assert isinstance(shot, MeetingSnapshot)
    assert [(a.email, a.role) for a in shot.attendees] == [
        (ANNA, ParticipantRole.ORGANIZER),
        ("bob.smith@acme.com", ParticipantRole.REQUIRED),
    ]


def test_all_day_event_is_utc_midnight_of_its_dates_in_the_calendar_zone() -> None:
    shot = snapshot("all_day", calendar_time_zone="America/New_York")
    assert shot.all_day
    assert (shot.start, shot.end) == (utc(2026, 3, 16), utc(2026, 3, 18))  # end exclusive
    assert shot.time_zone == "America/New_York"
    assert shot.show_as is ShowAs.FREE  # transparent
    assert shot.reminder_minutes is None  # useDefault
    assert needs_calendar_zone(payload("all_day"))
    assert not needs_calendar_zone(payload("single"))


def test_series_master_rule_and_exdates() -> None:
    shot = snapshot("recurring_master")
    assert shot.event_type is EventType.SERIES
    assert shot.rrule == "FREQ=WEEKLY;BYDAY=TU;UNTIL=20260630T215959Z"
    # TZID list (09:00 Vienna = 08:00 UTC in March; 07:00 UTC after the DST change) and UTC.
    assert shot.exdates == (utc(2026, 3, 17, 8), utc(2026, 3, 31, 7), utc(2026, 4, 14, 7))
    assert shot.tag_hint == TagHint(activity_id=77)
    assert shot.reminder_minutes is None


def test_all_day_series_date_exdates_and_unsupported_rdate_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="gmail.events"):
        shot = snapshot("all_day_series", calendar_time_zone="Europe/Vienna")
    assert shot.event_type is EventType.SERIES
    assert shot.all_day
    assert shot.rrule == "FREQ=MONTHLY;BYMONTHDAY=-1"
    assert shot.exdates == (utc(2026, 4, 30), utc(2026, 5, 31))
    assert "RDATE" in caplog.text


def test_floating_exdate_uses_event_zone() -> None:
    event = payload("recurring_master")
    event["recurrence"] = ["RRULE:FREQ=DAILY", "EXDATE:20260305T090000"]
    shot = snapshot_from_event(ANNA, event)
    assert isinstance(shot, MeetingSnapshot)
    assert shot.exdates == (utc(2026, 3, 5, 8),)


def test_master_without_rrule_is_a_payload_error() -> None:
    event = payload("recurring_master")
    event["recurrence"] = ["RDATE:20260305T090000Z"]
    with pytest.raises(GooglePayloadError, match="RRULE"):
        snapshot_from_event(ANNA, event)


def test_moved_instance_is_an_exception_with_its_original_start() -> None:
    shot = snapshot("moved_instance", master=payload("recurring_master"))
    assert shot.event_type is EventType.EXCEPTION
    assert shot.series_provider_id == "series0001"
    assert shot.original_start == utc(2026, 3, 10, 8)
    assert (shot.start, shot.end) == (utc(2026, 3, 11, 13), utc(2026, 3, 11, 13, 30))
    assert shot.ical_uid == "series0001@google.com"
    assert not shot.cancelled
    assert shot.tag_hint == TagHint(activity_id=77)  # the master's tag stands in
    assert shot.attendees[1].response is Response.NONE


def test_cancelled_instance_uses_the_master_for_what_it_lacks() -> None:
    shot = snapshot("cancelled_instance", master=payload("recurring_master"))
    assert shot.event_type is EventType.EXCEPTION
    assert shot.cancelled
    assert shot.provider_event_id == "series0001_20260324T080000Z"
    assert shot.series_provider_id == "series0001"
    assert shot.original_start == utc(2026, 3, 24, 8)
    assert (shot.start, shot.end) == (utc(2026, 3, 24, 8), utc(2026, 3, 24, 8, 30))
    assert shot.ical_uid == "series0001@google.com"
    assert shot.subject == "Weekly sync with Acme"
    assert shot.organizer_email == ANNA
    assert shot.mailbox_is_organizer
    assert shot.time_zone == "Europe/Vienna"


def test_cancelled_instance_without_master_still_names_series_and_original_start() -> None:
    shot = snapshot("cancelled_instance")
    assert shot.cancelled
    assert shot.event_type is EventType.EXCEPTION
    assert shot.original_start == utc(2026, 3, 24, 8) == shot.start == shot.end
    assert shot.ical_uid == ""


def test_organizer_cancelled_minimal_event_is_removed() -> None:
    assert snapshot_from_event(ANNA, payload("cancelled_minimal")) == Removed(
        Provider.GOOGLE, ANNA, "gone0001"
    )


def test_private_copy_of_an_external_meeting() -> None:
    shot = snapshot("private")
    assert shot.private
    assert shot.organizer_email == "external.organizer@partner.org"
    assert not shot.mailbox_is_organizer
    assert shot.time_zone == "UTC"  # neither the event nor the calendar named one
    assert shot.attendees == (
        Attendee(
            "external.organizer@partner.org",
            "Pat Partner",
            ParticipantRole.ORGANIZER,
            Response.ORGANIZER,
        ),
        Attendee(ANNA, "", ParticipantRole.REQUIRED, Response.TENTATIVE),
    )
    confidential = payload("private")
    confidential["visibility"] = "confidential"
    shot = snapshot_from_event(ANNA, confidential)
    assert isinstance(shot, MeetingSnapshot)
    assert shot.private


def test_organizer_matched_by_address_when_self_is_absent() -> None:
    event = payload("private")
    shot = snapshot_from_event("External.Organizer@partner.org", event)
    assert isinstance(shot, MeetingSnapshot)
    assert shot.mailbox_is_organizer


@pytest.mark.parametrize("kind", ["workingLocation", "outOfOffice", "focusTime", "birthday"])
def test_non_meeting_event_types_are_ignored(kind: str) -> None:
    event = payload("working_location")
    event["eventType"] = kind
    assert snapshot_from_event(ANNA, event) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("77", TagHint(activity_id=77)), (12, TagHint(activity_id=12)), ("x1", None), ("0", None)],
)
def test_tag_hint_from_private_extended_property(value: object, expected: TagHint | None) -> None:
    event = payload("single")
    event["extendedProperties"] = {"private": {"crmActivityId": value}, "shared": {}}
    shot = snapshot_from_event(ANNA, event)
    assert isinstance(shot, MeetingSnapshot)
    assert shot.tag_hint == expected


def test_shared_extended_property_is_not_a_tag() -> None:
    event = payload("single")
    event["extendedProperties"] = {"shared": {"crmActivityId": "5"}}
    shot = snapshot_from_event(ANNA, event)
    assert isinstance(shot, MeetingSnapshot)
    assert shot.tag_hint is None


def test_change_key_falls_back_to_updated_and_sequence() -> None:
    event = payload("single")
    del event["etag"]
    shot = snapshot_from_event(ANNA, event)
    assert isinstance(shot, MeetingSnapshot)
    assert shot.change_key == "2026-03-02T11:30:00.000Z#2"


def test_plain_text_description_and_long_body_cut() -> None:
    event = payload("single")
    event["description"] = "Line one\r\nLine two & more"
    shot = snapshot_from_event(ANNA, event)
    assert isinstance(shot, MeetingSnapshot)
    assert shot.body == "Line one\nLine two & more"
    event["description"] = "x" * (BODY_MAX_CHARS + 10)
    shot = snapshot_from_event(ANNA, event)
    assert isinstance(shot, MeetingSnapshot)
    assert len(shot.body) == BODY_MAX_CHARS


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"id": None}, "no id"),
        ({"iCalUID": None}, "no iCalUID"),
        ({"start": None}, "no start"),
        ({"end": {"dateTime": "tomorrow"}}, "unreadable end"),
        ({"end": {"dateTime": "2026-03-10T07:00:00Z"}}, "ends before"),
    ],
)
def test_unusable_payloads_raise(change: dict[str, Any], match: str) -> None:
    event = payload("single")
    event.update(change)
    with pytest.raises(GooglePayloadError, match=match):
        snapshot_from_event(ANNA, event)


def test_master_of_another_series_is_refused() -> None:
    master = payload("recurring_master")
    master["id"] = "other"
    with pytest.raises(GooglePayloadError, match="not the series"):
        snapshot_from_event(ANNA, payload("moved_instance"), master=master)
