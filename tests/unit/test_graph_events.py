"""Unit tests for graph.events: Graph v1.0 event JSON -> MeetingSnapshot.

The payloads under tests/payloads/graph/ are hand-written from the documented formats
(https://learn.microsoft.com/graph/api/resources/event and the pages graph/events.py links).
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

from graph.events import (
    BODY_MAX_CHARS,
    CECP_PROPERTY_SET,
    TAG_ACTIVITY,
    TAG_COMPANY,
    TAG_CONTACTS,
    TAG_KIND,
    GraphPayloadError,
    cecp_property_id,
    event_expand,
    html_to_text,
    is_removed,
    parse_tag_hint,
    to_removed,
    to_snapshot,
)
from services.meetings import Attendee, EventType, Removed, TagHint
from services.tables import ParticipantRole, Provider, Response, ShowAs

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads" / "graph"
ADDIN = "3f8b2a6c-1d4e-4b7a-9c2f-5e6d7a8b9c0d"
ANNA = "anna.berg@contoso.com"  # organizer of most fixtures
DAVE = "dave.okafor@contoso.com"  # an attendee with his own mailbox in the tenant
MASTER_ID = (
    "AAMkADk0MGFkODQ0LWIzZDQtNDQ2Ni04NGQ1LWQwODRmMmY2NGE5ZABGAAAAAAC8zzPBxd0QRa6M2Zl4n6sdBwCl3Vx"
    "PX3E8RLzl0wD6qQ1bAAAAAAENAACl3VxPX3E8RLzl0wD6qQ1bAAAX0W8AAAA="
)
MEETING_ICAL_UID = (
    "040000008200E00074C5B7101A82E00800000000A0B1C2D3E46EDA0100000000000000001000000"
    "0B6B4E06E0B4F3E4C9C1B8F5B6B7D8E9F"
)


@cache
def _read(name: str) -> Any:
    return json.loads((PAYLOADS / f"{name}.json").read_text(encoding="utf-8"))


def load(name: str) -> dict[str, Any]:
    """A fresh copy of a payload, safe to edit in a test."""
    payload: dict[str, Any] = copy.deepcopy(_read(name))
    return payload


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def cecp(value: str, *, prop_id: str | None = None) -> list[dict[str, str]]:
    return [{"id": prop_id or cecp_property_id(ADDIN), "value": value}]


# --------------------------------------------------------------------------- request helpers


def test_cecp_property_id_names_the_public_strings_property_of_the_addin() -> None:
    assert CECP_PROPERTY_SET == "{00020329-0000-0000-C000-000000000046}"
    assert cecp_property_id(ADDIN) == (
        "String {00020329-0000-0000-C000-000000000046} Name "
        "cecp-3f8b2a6c-1d4e-4b7a-9c2f-5e6d7a8b9c0d"
    )


def test_cecp_property_id_keeps_the_case_of_the_manifest_id() -> None:
    assert cecp_property_id(ADDIN.upper()).endswith("cecp-3F8B2A6C-1D4E-4B7A-9C2F-5E6D7A8B9C0D")


@pytest.mark.parametrize(
    "bad",
    ["", "crm-addin", "3f8b2a6c1d4e4b7a9c2f5e6d7a8b9c0d", "{3f8b2a6c-1d4e-4b7a-9c2f-5e6d7a8b9c0d}",
     "3f8b2a6c-1d4e-4b7a-9c2f-5e6d7a8b9c0d') or (id ne '"],
)  # fmt: skip
def test_cecp_property_id_refuses_anything_but_a_guid(bad: str) -> None:
    with pytest.raises(ValueError, match="GUID"):
        cecp_property_id(bad)


def test_event_expand_filters_the_single_value_property_by_id() -> None:
    assert event_expand(ADDIN) == (
        "singleValueExtendedProperties($filter=id eq 'String {00020329-0000-0000-C000-000000000046}"
        " Name cecp-3f8b2a6c-1d4e-4b7a-9c2f-5e6d7a8b9c0d')"
    )


def test_event_expand_without_an_addin_expands_nothing() -> None:
    assert event_expand(None) == ""


def test_tag_property_names_are_the_addins() -> None:
    assert (TAG_COMPANY, TAG_CONTACTS, TAG_KIND, TAG_ACTIVITY) == (
        "crmCompanyId",
        "crmContactIds",
        "crmKind",
        "crmActivityId",
    )


# --------------------------------------------------------------------------- organizer's copy


def test_organizer_copy_maps_identity_and_times() -> None:
    snap = to_snapshot(load("meeting_organizer"), mailbox=ANNA, addin_id=ADDIN)
    assert snap.provider is Provider.MICROSOFT
    assert snap.mailbox == ANNA
    assert snap.provider_event_id == (
        "AAMkADk0MGFkODQ0LWIzZDQtNDQ2Ni04NGQ1LWQwODRmMmY2NGE5ZABGAAAAAAC8zzPBxd0QRa6M2Zl4n6sdBwCl3Vx"
        "PX3E8RLzl0wD6qQ1bAAAAAAENAACl3VxPX3E8RLzl0wD6qQ1bAAAX0W7oAAA="
    )
    assert snap.ical_uid == MEETING_ICAL_UID
    assert snap.event_type is EventType.SINGLE
    assert snap.change_key == "pd1cT19xPES85dMA+qkNWwAAF9WCpg=="
    assert snap.start == utc(2024, 3, 12, 9)
    assert snap.end == utc(2024, 3, 12, 10)
    assert snap.time_zone == "Europe/Berlin"  # "W. Europe Standard Time"
    assert snap.all_day is False
    assert snap.series_provider_id is None
    assert snap.original_start is None
    assert snap.rrule is None
    assert snap.exdates == ()


def test_organizer_copy_maps_the_descriptive_fields() -> None:
    snap = to_snapshot(load("meeting_organizer"), mailbox=ANNA, addin_id=ADDIN)
    assert snap.subject == "Quarterly review with Fabrikam"
    # A text body keeps its text; CRLF become LF and the trailing line break goes.
    assert snap.body == "Hi all,\n\nlet's go through the Q1 numbers and the renewal.\n\nAnna"
    assert snap.location == "Fabrikam HQ, Room 4"
    assert snap.organizer_email == ANNA  # Graph sent "Anna.Berg@contoso.com"
    assert snap.organizer_name == "Anna Berg"
    assert snap.mailbox_is_organizer is True
    assert snap.reminder_minutes == 15
    assert snap.categories == ("CRM", "Fabrikam")
    assert snap.cancelled is False
    assert snap.private is False
    assert snap.show_as is ShowAs.BUSY


def test_organizer_copy_lists_the_organizer_first_and_the_tracked_responses() -> None:
    snap = to_snapshot(load("meeting_organizer"), mailbox=ANNA, addin_id=ADDIN)
    assert snap.attendees == (
        Attendee(ANNA, "Anna Berg", ParticipantRole.ORGANIZER, Response.ORGANIZER, None),
        Attendee(
            "bob.meyer@fabrikam.com",
            "Bob Meyer",
            ParticipantRole.REQUIRED,
            Response.ACCEPTED,
            utc(2024, 3, 5, 10, 12, 31),
        ),
        Attendee(
            "carol.ruiz@fabrikam.com",
            "Carol Ruiz",
            ParticipantRole.OPTIONAL,
            Response.TENTATIVE,
            utc(2024, 3, 5, 16, 40, 2),
        ),
        # "0001-01-01T00:00:00Z" is Exchange's "no time".
        Attendee(DAVE, "Dave Okafor", ParticipantRole.REQUIRED, Response.NONE, None),
        Attendee(
            "erin.walsh@fabrikam.com",
            "Erin Walsh",
            ParticipantRole.REQUIRED,
            Response.DECLINED,
            utc(2024, 3, 5, 9, 1),
        ),
        # "Sales Team" has no address and is left out.
        Attendee(
            "projector-cart@contoso.com",
            "Projector cart",
            ParticipantRole.RESOURCE,
            Response.ACCEPTED,
            utc(2024, 3, 4, 14, 2, 15),
        ),
    )


def test_organizer_copy_carries_the_tag_hint() -> None:
    snap = to_snapshot(load("meeting_organizer"), mailbox=ANNA, addin_id=ADDIN)
    assert snap.tag_hint == TagHint(
        company_id=12, contact_ids=(3, 4), kind="meeting", activity_id=77
    )


def test_without_an_addin_id_no_tag_is_read() -> None:
    assert to_snapshot(load("meeting_organizer"), mailbox=ANNA, addin_id=None).tag_hint is None


def test_another_addins_property_is_not_our_tag() -> None:
    event = load("meeting_organizer")
    other = "11111111-2222-3333-4444-555555555555"
    event["singleValueExtendedProperties"][0]["id"] = cecp_property_id(other)
    assert to_snapshot(event, mailbox=ANNA, addin_id=ADDIN).tag_hint is None


@pytest.mark.parametrize(
    "prop_id",
    [
        "String {00020329-0000-0000-C000-000000000046} Name "
        "cecp-3F8B2A6C-1D4E-4B7A-9C2F-5E6D7A8B9C0D",
        "STRING {00020329-0000-0000-c000-000000000046} NAME "
        "CECP-3f8b2a6c-1d4e-4b7a-9c2f-5e6d7a8b9c0d",
    ],
)
def test_the_tag_property_id_is_matched_in_any_case(prop_id: str) -> None:
    event = load("meeting_organizer")
    event["singleValueExtendedProperties"][0]["id"] = prop_id
    assert to_snapshot(event, mailbox=ANNA, addin_id=ADDIN).tag_hint == TagHint(
        12, (3, 4), "meeting", 77
    )


def test_is_organizer_missing_is_inferred_from_the_mailbox() -> None:
    event = load("meeting_organizer")
    del event["isOrganizer"]
    assert to_snapshot(event, mailbox="ANNA.Berg@contoso.com", addin_id=None).mailbox_is_organizer
    assert not to_snapshot(event, mailbox=DAVE, addin_id=None).mailbox_is_organizer


# --------------------------------------------------------------------------- attendee's copy


def test_attendee_copy_is_the_same_meeting_under_another_id() -> None:
    organizer = to_snapshot(load("meeting_organizer"), mailbox=ANNA, addin_id=ADDIN)
    attendee = to_snapshot(load("meeting_attendee"), mailbox=DAVE, addin_id=ADDIN)
    assert attendee.provider_event_id != organizer.provider_event_id
    assert attendee.provider_event_id.endswith("AAAF2k1DAAA=")
    assert attendee.ical_uid == organizer.ical_uid == MEETING_ICAL_UID
    assert attendee.mailbox == DAVE
    assert attendee.mailbox_is_organizer is False
    assert attendee.organizer_email == ANNA
    assert attendee.change_key == "DwAAABYAAAB4Oq9yqkbMS6y0Nmf7r4kJAAAF2iQN"
    # Custom properties never reach attendees' copies.
    assert attendee.tag_hint is None


def test_attendee_copy_takes_the_owners_response_from_response_status() -> None:
    snap = to_snapshot(load("meeting_attendee"), mailbox=DAVE, addin_id=ADDIN)
    by_email = {a.email: a for a in snap.attendees}
    assert by_email[DAVE].response is Response.ACCEPTED
    assert by_email[DAVE].responded_at == utc(2024, 3, 6, 8, 15, 2)
    # Everyone else keeps what this copy knows of them: nothing.
    assert by_email["bob.meyer@fabrikam.com"].response is Response.NONE
    assert by_email[ANNA].response is Response.ORGANIZER
    assert [a.email for a in snap.attendees] == [
        ANNA,
        "bob.meyer@fabrikam.com",
        "carol.ruiz@fabrikam.com",
        DAVE,
        "erin.walsh@fabrikam.com",
        "projector-cart@contoso.com",
    ]


def test_the_mailbox_is_matched_case_insensitively() -> None:
    snap = to_snapshot(load("meeting_attendee"), mailbox="Dave.Okafor@Contoso.com", addin_id=None)
    assert snap.mailbox == "Dave.Okafor@Contoso.com"
    assert {a.email: a.response for a in snap.attendees}[DAVE] is Response.ACCEPTED


def test_a_newer_listed_reply_beats_an_older_own_response() -> None:
    event = load("meeting_attendee")
    event["attendees"][2]["status"] = {"response": "declined", "time": "2024-03-07T09:00:00Z"}
    snap = to_snapshot(event, mailbox=DAVE, addin_id=None)
    dave = {a.email: a for a in snap.attendees}[DAVE]
    assert (dave.response, dave.responded_at) == (Response.DECLINED, utc(2024, 3, 7, 9))


def test_an_older_listed_reply_gives_way_to_the_own_response() -> None:
    event = load("meeting_attendee")
    event["attendees"][2]["status"] = {"response": "declined", "time": "2024-03-05T09:00:00Z"}
    snap = to_snapshot(event, mailbox=DAVE, addin_id=None)
    dave = {a.email: a for a in snap.attendees}[DAVE]
    assert (dave.response, dave.responded_at) == (Response.ACCEPTED, utc(2024, 3, 6, 8, 15, 2))


def test_an_unanswered_own_response_keeps_the_listed_status() -> None:
    event = load("meeting_attendee")
    event["responseStatus"] = {"response": "notResponded", "time": "0001-01-01T00:00:00Z"}
    event["attendees"][2]["status"] = {
        "response": "tentativelyAccepted",
        "time": "2024-03-05T09:00:00Z",
    }
    snap = to_snapshot(event, mailbox=DAVE, addin_id=None)
    dave = {a.email: a for a in snap.attendees}[DAVE]
    assert (dave.response, dave.responded_at) == (Response.TENTATIVE, utc(2024, 3, 5, 9))


def test_the_organizers_response_status_does_not_touch_the_tracked_statuses() -> None:
    # Anna's copy: her responseStatus is "organizer"; Dave's tracked "none" stays.
    event = load("meeting_organizer")
    event["attendees"].append(
        {
            "type": "required",
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"name": "Anna Berg", "address": ANNA},
        }
    )
    snap = to_snapshot(event, mailbox=ANNA, addin_id=None)
    assert [a for a in snap.attendees if a.email == ANNA] == [
        Attendee(ANNA, "Anna Berg", ParticipantRole.ORGANIZER, Response.ORGANIZER, None)
    ]
    assert {a.email: a.response for a in snap.attendees}[DAVE] is Response.NONE


def test_the_owner_not_among_attendees_is_not_added() -> None:
    snap = to_snapshot(load("meeting_attendee"), mailbox="zoe@contoso.com", addin_id=None)
    assert "zoe@contoso.com" not in {a.email for a in snap.attendees}
    assert len(snap.attendees) == 6


# --------------------------------------------------------------------------- attendee lists


def test_a_listed_organizer_appears_once_first_as_organizer() -> None:
    event = load("cancelled")  # organized by hiro.tanaka@fabrikam.com, who is not listed
    event["attendees"].append(
        {
            "type": "required",
            "status": {"response": "accepted", "time": "2024-03-01T09:12:44Z"},
            "emailAddress": {"name": "", "address": "HIRO.TANAKA@fabrikam.com"},
        }
    )
    snap = to_snapshot(event, mailbox=DAVE, addin_id=None)
    assert [a.email for a in snap.attendees] == ["hiro.tanaka@fabrikam.com", DAVE]
    assert snap.attendees[0] == Attendee(
        "hiro.tanaka@fabrikam.com", "Hiro Tanaka", ParticipantRole.ORGANIZER, Response.ORGANIZER
    )


def test_an_unlisted_organizer_is_added() -> None:
    snap = to_snapshot(load("all_day"), mailbox="frank.lee@contoso.com", addin_id=None)
    assert snap.attendees == (
        Attendee(
            "frank.lee@contoso.com", "Frank Lee", ParticipantRole.ORGANIZER, Response.ORGANIZER
        ),
    )


def test_an_address_listed_twice_is_merged_keeping_the_most_informative() -> None:
    event = load("meeting_organizer")
    event["attendees"] = [
        {
            "type": "optional",
            "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
            "emailAddress": {"name": "", "address": "bob.meyer@fabrikam.com"},
        },
        {
            "type": "required",
            "status": {"response": "accepted", "time": "2024-03-05T10:12:31Z"},
            "emailAddress": {"name": "Bob Meyer", "address": "BOB.MEYER@FABRIKAM.COM"},
        },
        {
            "type": "optional",
            "status": {"response": "declined", "time": "2024-03-04T08:00:00Z"},
            "emailAddress": {"name": "Robert", "address": "bob.meyer@fabrikam.com"},
        },
    ]
    snap = to_snapshot(event, mailbox=ANNA, addin_id=None)
    assert snap.attendees[1:] == (
        Attendee(
            "bob.meyer@fabrikam.com",
            "Bob Meyer",
            ParticipantRole.REQUIRED,
            Response.ACCEPTED,
            utc(2024, 3, 5, 10, 12, 31),
        ),
    )


def test_attendees_without_a_usable_address_are_skipped() -> None:
    event = load("meeting_organizer")
    event["attendees"] = [
        {"type": "required", "emailAddress": {"name": "Sales Team"}},
        {
            "type": "required",
            "emailAddress": {"name": "Old", "address": "/o=ExchangeLabs/ou=Exchange"},
        },
        {"type": "required", "emailAddress": {"name": "Blank", "address": "  "}},
        "not an object",
        {"type": "optional", "emailAddress": {"address": "carol.ruiz@fabrikam.com"}},
    ]
    snap = to_snapshot(event, mailbox=ANNA, addin_id=None)
    assert [a.email for a in snap.attendees] == [ANNA, "carol.ruiz@fabrikam.com"]
    assert snap.attendees[1].role is ParticipantRole.OPTIONAL


def test_attendee_type_and_response_spellings() -> None:
    event = load("meeting_organizer")
    event["attendees"] = [
        {"type": kind, "status": {"response": response}, "emailAddress": {"address": address}}
        for kind, response, address in [
            ("resource", "notResponded", "a@x.example"),
            (None, "organizer", "b@x.example"),
            ("optional", "tentativelyAccepted", "c@x.example"),
            ("required", "somethingNew", "d@x.example"),
        ]
    ]
    snap = to_snapshot(event, mailbox=ANNA, addin_id=None)
    assert [(a.role, a.response) for a in snap.attendees[1:]] == [
        (ParticipantRole.RESOURCE, Response.NONE),
        (ParticipantRole.REQUIRED, Response.ORGANIZER),
        (ParticipantRole.OPTIONAL, Response.TENTATIVE),
        (ParticipantRole.REQUIRED, Response.NONE),
    ]


# --------------------------------------------------------------------------- series


def test_series_master_maps_its_rule_and_cancelled_occurrences() -> None:
    snap = to_snapshot(load("series_master_weekly"), mailbox=ANNA, addin_id=ADDIN)
    assert snap.event_type is EventType.SERIES
    assert snap.provider_event_id == MASTER_ID
    assert snap.rrule == "FREQ=WEEKLY;BYDAY=MO;WKST=MO"
    assert snap.start == utc(2024, 3, 4, 8)  # 09:00 in Berlin
    assert snap.time_zone == "Europe/Berlin"
    # 09:00 Berlin on each cancelled date: CET on March 11, CEST (DST from March 31) on April 1.
    assert snap.exdates == (utc(2024, 3, 11, 8), utc(2024, 4, 1, 7))
    assert snap.series_provider_id is None
    assert snap.original_start is None
    assert snap.tag_hint == TagHint(company_id=12, contact_ids=(3,), kind="meeting")


def test_series_master_rule_uses_the_local_start() -> None:
    # An endDate series: UNTIL is the end date's last second in Berlin wall-clock time.
    event = load("series_master_weekly")
    event["recurrence"]["range"] = {
        "type": "endDate",
        "startDate": "2024-03-04",
        "endDate": "2024-06-24",
    }
    event["start"] = {
        "dateTime": "2024-03-04T23:30:00.0000000",
        "timeZone": "UTC",
    }  # 00:30 on the 5th
    event["end"] = {"dateTime": "2024-03-05T00:00:00.0000000", "timeZone": "UTC"}
    event["cancelledOccurrences"] = ["OID.x.2024-03-12"]
    snap = to_snapshot(event, mailbox=ANNA, addin_id=None)
    assert snap.rrule == "FREQ=WEEKLY;BYDAY=MO;WKST=MO;UNTIL=20240624T235959"
    assert snap.exdates == (utc(2024, 3, 11, 23, 30),)  # 00:30 Berlin on March 12


def test_unreadable_cancelled_occurrences_are_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = load("series_master_weekly")
    event["cancelledOccurrences"] += ["2024-03-18", "OID.x.2024-13-01", "OID.x.20240318", 7]
    with caplog.at_level(logging.WARNING, logger="graph.events"):
        snap = to_snapshot(event, mailbox=ANNA, addin_id=None)
    assert snap.exdates == (utc(2024, 3, 11, 8), utc(2024, 4, 1, 7))
    assert "ignored 4 unreadable cancelledOccurrences" in caplog.text


def test_all_day_series_exdates_are_utc_midnights() -> None:
    event = load("series_master_weekly")
    event["isAllDay"] = True
    event["start"] = {"dateTime": "2024-03-04T00:00:00.0000000", "timeZone": "UTC"}
    event["end"] = {"dateTime": "2024-03-05T00:00:00.0000000", "timeZone": "UTC"}
    snap = to_snapshot(event, mailbox=ANNA, addin_id=None)
    assert snap.rrule == "FREQ=WEEKLY;BYDAY=MO;WKST=MO"
    assert snap.exdates == (utc(2024, 3, 11), utc(2024, 4, 1))


def test_series_master_without_recurrence_is_refused() -> None:
    event = load("series_master_weekly")
    del event["recurrence"]
    with pytest.raises(GraphPayloadError, match="has no recurrence"):
        to_snapshot(event, mailbox=ANNA, addin_id=None)


def test_series_master_with_a_bad_recurrence_is_refused() -> None:
    event = load("series_master_weekly")
    event["recurrence"]["pattern"]["daysOfWeek"] = ["moonday"]
    with pytest.raises(GraphPayloadError, match=r"bad recurrence.*daysOfWeek"):
        to_snapshot(event, mailbox=ANNA, addin_id=None)


def test_exception_maps_its_series_and_original_start() -> None:
    snap = to_snapshot(load("series_exception"), mailbox=ANNA, addin_id=ADDIN)
    assert snap.event_type is EventType.EXCEPTION
    assert snap.series_provider_id == MASTER_ID
    assert snap.original_start == utc(2024, 3, 18, 8)
    assert snap.start == utc(2024, 3, 19, 13)  # moved to Tuesday afternoon
    assert snap.end == utc(2024, 3, 19, 13, 30)
    # Graph gives each instance its own iCalUId; it is kept, not replaced by the master's.
    assert snap.ical_uid.startswith("040000008200E00074C5B7101A82E00807E80312")
    assert snap.subject == "Fabrikam weekly sync (moved to Tuesday)"
    assert snap.rrule is None
    assert snap.tag_hint is None  # custom properties are not on exceptions


def test_exception_takes_the_masters_tag_when_it_has_none() -> None:
    snap = to_snapshot(
        load("series_exception"),
        mailbox=ANNA,
        addin_id=ADDIN,
        series_master=load("series_master_weekly"),
    )
    assert snap.tag_hint == TagHint(company_id=12, contact_ids=(3,), kind="meeting")


def test_exceptions_own_tag_beats_the_masters() -> None:
    event = load("series_exception")
    event["singleValueExtendedProperties"] = cecp('{"crmCompanyId":"99"}')
    snap = to_snapshot(
        event, mailbox=ANNA, addin_id=ADDIN, series_master=load("series_master_weekly")
    )
    assert snap.tag_hint == TagHint(company_id=99)


def test_exception_takes_the_masters_zone_when_its_own_is_unknown() -> None:
    event = load("series_exception")
    event["originalStartTimeZone"] = "tzone://Microsoft/Custom"
    master = load("series_master_weekly")
    assert to_snapshot(event, mailbox=ANNA, addin_id=None).time_zone == "UTC"
    assert to_snapshot(event, mailbox=ANNA, addin_id=None, series_master=master).time_zone == (
        "Europe/Berlin"
    )


def test_a_series_master_of_another_series_is_refused() -> None:
    master = load("series_master_weekly")
    master["id"] = "AAMkAnotherMaster="
    with pytest.raises(GraphPayloadError, match="is not the master"):
        to_snapshot(load("series_exception"), mailbox=ANNA, addin_id=None, series_master=master)


def test_unreadable_original_start_is_refused() -> None:
    event = load("series_exception")
    event["originalStart"] = "18.03.2024 08:00"
    with pytest.raises(GraphPayloadError, match="originalStart"):
        to_snapshot(event, mailbox=ANNA, addin_id=None)


def test_original_start_with_seven_fraction_digits() -> None:
    event = load("series_exception")
    event["originalStart"] = "2024-03-18T08:00:00.0000000Z"
    assert to_snapshot(event, mailbox=ANNA, addin_id=None).original_start == utc(2024, 3, 18, 8)


def test_missing_type_is_inferred_from_the_shape() -> None:
    master = load("series_master_weekly")
    exception = load("series_exception")
    single = load("meeting_organizer")
    for event in (master, exception, single):
        del event["type"]
    assert to_snapshot(master, mailbox=ANNA, addin_id=None).event_type is EventType.SERIES
    assert to_snapshot(exception, mailbox=ANNA, addin_id=None).event_type is EventType.OCCURRENCE
    assert to_snapshot(single, mailbox=ANNA, addin_id=None).event_type is EventType.SINGLE


# --------------------------------------------------------------------------- all-day, zones


def test_all_day_event_is_its_dates_as_utc_midnights() -> None:
    snap = to_snapshot(load("all_day"), mailbox="frank.lee@contoso.com", addin_id=None)
    assert snap.all_day is True
    assert snap.start == utc(2024, 4, 22)
    assert snap.end == utc(2024, 4, 24)
    assert snap.time_zone == "America/Los_Angeles"
    assert snap.show_as is ShowAs.FREE
    assert snap.reminder_minutes is None  # isReminderOn is false; 1080 is Graph's default
    assert snap.location == "Hannover"
    assert snap.body == ""


def test_all_day_dates_do_not_move_with_the_zone_graph_labels_them_with() -> None:
    # With "Prefer: outlook.timezone" Graph labels the midnights with that zone instead.
    event = load("all_day")
    event["start"] = {
        "dateTime": "2024-04-22T00:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }
    event["end"] = {"dateTime": "2024-04-24T00:00:00.0000000", "timeZone": "Pacific Standard Time"}
    snap = to_snapshot(event, mailbox="frank.lee@contoso.com", addin_id=None)
    assert (snap.start, snap.end) == (utc(2024, 4, 22), utc(2024, 4, 24))


def test_private_event() -> None:
    snap = to_snapshot(load("private"), mailbox=ANNA, addin_id=None)
    assert snap.private is True
    assert snap.show_as is ShowAs.OOF
    assert snap.subject == "Dentist"
    assert snap.categories == ("Personal",)
    assert snap.reminder_minutes == 30
    assert snap.location == ""


@pytest.mark.parametrize(
    ("sensitivity", "private"),
    [("normal", False), ("personal", False), ("private", True), ("confidential", True)],
)
def test_sensitivity(sensitivity: str, private: bool) -> None:
    event = load("private")
    event["sensitivity"] = sensitivity
    assert to_snapshot(event, mailbox=ANNA, addin_id=None).private is private


@pytest.mark.parametrize(
    ("show_as", "expected"),
    [
        ("free", ShowAs.FREE),
        ("tentative", ShowAs.TENTATIVE),
        ("busy", ShowAs.BUSY),
        ("oof", ShowAs.OOF),
        ("workingElsewhere", ShowAs.WORKING_ELSEWHERE),
        ("unknown", ShowAs.BUSY),
        (None, ShowAs.BUSY),
    ],
)
def test_show_as(show_as: str | None, expected: ShowAs) -> None:
    event = load("private")
    event["showAs"] = show_as
    assert to_snapshot(event, mailbox=ANNA, addin_id=None).show_as is expected


def test_custom_time_zone_falls_back_to_utc() -> None:
    snap = to_snapshot(load("custom_timezone"), mailbox=DAVE, addin_id=None)
    assert snap.time_zone == "UTC"
    assert snap.start == utc(2024, 3, 20, 13)
    assert snap.end == utc(2024, 3, 20, 16)
    assert snap.show_as is ShowAs.WORKING_ELSEWHERE
    assert snap.organizer_email == DAVE
    assert snap.location == "Northwind plant, Gate 2"


def test_custom_time_zone_falls_back_to_the_zone_of_start() -> None:
    # With "Prefer: outlook.timezone" the times come in that zone: it is the best guess left.
    event = load("custom_timezone")
    event["start"] = {
        "dateTime": "2024-03-20T09:00:00.0000000",
        "timeZone": "Eastern Standard Time",
    }
    event["end"] = {"dateTime": "2024-03-20T12:00:00.0000000", "timeZone": "Eastern Standard Time"}
    snap = to_snapshot(event, mailbox=DAVE, addin_id=None)
    assert snap.time_zone == "America/New_York"
    assert snap.start == utc(2024, 3, 20, 13)  # EDT, UTC-4


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        ("Mars Standard Time", "UTC"),
        ("", "UTC"),
        (None, "UTC"),
        ("Asia/Tokyo", "Asia/Tokyo"),
        ("tzone://Microsoft/Utc", "UTC"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
    ],
)
def test_original_start_time_zone_forms(zone: str | None, expected: str) -> None:
    event = load("custom_timezone")
    event["originalStartTimeZone"] = zone
    assert to_snapshot(event, mailbox=DAVE, addin_id=None).time_zone == expected


def test_cancelled_meeting() -> None:
    snap = to_snapshot(load("cancelled"), mailbox=DAVE, addin_id=None)
    assert snap.cancelled is True
    # The subject is kept as Exchange rewrote it: the prefix is localized ("Abgesagt: ").
    assert snap.subject == "Canceled: Pipeline sync"
    assert snap.show_as is ShowAs.FREE
    assert snap.time_zone == "Europe/London"
    assert snap.reminder_minutes is None
    assert snap.organizer_email == "hiro.tanaka@fabrikam.com"
    assert snap.mailbox_is_organizer is False
    assert snap.attendees[1] == Attendee(
        DAVE, "Dave Okafor", ParticipantRole.REQUIRED, Response.TENTATIVE, utc(2024, 3, 2, 10, 0, 3)
    )


# --------------------------------------------------------------------------- delta


def test_delta_page_splits_into_snapshots_and_removals() -> None:
    page = load("delta_page")
    results = [
        to_removed(item["id"], mailbox=ANNA)
        if is_removed(item)
        else to_snapshot(item, mailbox=ANNA, addin_id=ADDIN)
        for item in page["value"]
    ]
    assert [is_removed(item) for item in page["value"]] == [False, False, True, True]
    assert results[2] == Removed(Provider.MICROSOFT, ANNA, page["value"][2]["id"])
    assert results[3] == Removed(Provider.MICROSOFT, ANNA, page["value"][3]["id"])

    occurrence = results[0]
    assert not isinstance(occurrence, Removed)
    assert occurrence.event_type is EventType.OCCURRENCE
    assert occurrence.series_provider_id == MASTER_ID
    assert occurrence.original_start == utc(2024, 3, 25, 8)
    assert occurrence.start == utc(2024, 3, 25, 8)
    assert occurrence.tag_hint is None  # delta cannot $expand the property

    single = results[1]
    assert not isinstance(single, Removed)
    assert single.event_type is EventType.SINGLE
    assert single.subject == "Call with Contoso Pharma"
    assert single.show_as is ShowAs.TENTATIVE
    assert single.end == utc(2024, 3, 21, 12, 45)


def test_a_removed_item_is_not_a_snapshot() -> None:
    removed = load("delta_page")["value"][2]
    with pytest.raises(GraphPayloadError, match="use to_removed"):
        to_snapshot(removed, mailbox=ANNA, addin_id=None)


def test_to_removed_needs_an_id() -> None:
    assert to_removed("AAMk=", mailbox=DAVE) == Removed(Provider.MICROSOFT, DAVE, "AAMk=")
    with pytest.raises(GraphPayloadError):
        to_removed("", mailbox=DAVE)


# --------------------------------------------------------------------------- bodies


def test_html_body_becomes_its_text() -> None:
    snap = to_snapshot(load("html_body"), mailbox=ANNA, addin_id=None)
    line = "_" * 80
    assert snap.body == (
        "Hello Bob,\n"
        "\n"
        "Agenda:\n"
        "Pricing & terms\n"
        "Timeline\n"
        "\n"
        f"{line}\n"
        "Microsoft Teams meeting\n"
        "Join on your computer, mobile app or room device\n"
        "Click here to join the meeting\n"
        "Meeting ID: 312 456 789 012\n"
        "Passcode: x7Ym3Q\n"
        f"{line}"
    )
    assert snap.time_zone == "Europe/Paris"


def test_html_to_text_drops_hidden_content_and_keeps_cells_apart() -> None:
    html = (
        "<head><title>T</title><style>p{}</style></head><body><script>x()</script>"
        "<table><tr><td>Name</td><td>Role</td></tr><tr><td>Bob</td><td>CTO</td></tr></table>"
        "a<br>b<br><br>c &lt;d&gt; &#8364;5<![weird]>e</body>"
    )
    assert html_to_text(html) == "Name Role\nBob CTO\na\nb\n\nc <d> \u20ac5e"


def test_html_to_text_survives_an_unclosed_head() -> None:
    assert html_to_text("<head><title>x</title><body><p>Visible</p>") == "Visible"


def test_html_body_is_capped() -> None:
    event = load("html_body")
    event["body"]["content"] = "<p>" + "word " * 50_000 + "</p>"
    body = to_snapshot(event, mailbox=ANNA, addin_id=None).body
    assert len(body) == BODY_MAX_CHARS
    assert body.startswith("word word")


def test_text_body_is_capped() -> None:
    event = load("meeting_organizer")
    event["body"]["content"] = "x" * (BODY_MAX_CHARS + 10)
    assert len(to_snapshot(event, mailbox=ANNA, addin_id=None).body) == BODY_MAX_CHARS


def test_text_body_is_not_parsed_as_html() -> None:
    event = load("meeting_organizer")
    event["body"] = {"contentType": "text", "content": "a <b> c"}
    assert to_snapshot(event, mailbox=ANNA, addin_id=None).body == "a <b> c"


# --------------------------------------------------------------------------- tag values


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ('{"crmCompanyId":"12"}', TagHint(company_id=12)),
        ('{"crmCompanyId":12,"crmContactIds":[3,4,3]}', TagHint(company_id=12, contact_ids=(3, 4))),
        ('{"crmContactIds":" 5 , 6 ,"}', TagHint(contact_ids=(5, 6))),
        ('{"crmKind":"Call","crmActivityId":"8"}', TagHint(kind="call", activity_id=8)),
        ('{"crmCompanyId":"","crmContactIds":"","crmKind":"","other":"x","crmActivityId":"3"}',
         TagHint(activity_id=3)),
        ("{}", None),
        ('{"otherAddinSetting":"1"}', None),
        ("", None),
        (None, None),
    ],
)  # fmt: skip
def test_tag_values(value: str | None, hint: TagHint | None) -> None:
    assert parse_tag_hint(value) == hint


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[1, 2]",
        '"12"',
        '{"crmCompanyId":"abc"}',
        '{"crmCompanyId":"-1"}',
        '{"crmCompanyId":"0"}',
        '{"crmCompanyId":"99999999999999999999"}',
        '{"crmCompanyId":"\u0661\u0662"}',  # Arabic-Indic digits
        '{"crmCompanyId":true}',
        '{"crmCompanyId":1.5}',
        '{"crmContactIds":"3,x"}',
        '{"crmContactIds":{"a":1}}',
        '{"crmKind":"lunch"}',
        '{"crmKind":7}',
        "[" * 5000,
        '{"crmCompanyId":"1","pad":"' + "x" * 20_000 + '"}',
        12,
    ],
)
def test_malformed_tag_values_give_no_hint(value: object, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="graph.events"):
        assert parse_tag_hint(value) is None
    assert "malformed CRM tag" in caplog.text
    # The log names the problem, never the content.
    assert "abc" not in caplog.text
    assert "lunch" not in caplog.text


def test_a_malformed_tag_never_breaks_the_snapshot() -> None:
    event = load("meeting_organizer")
    event["singleValueExtendedProperties"] = cecp('{"crmCompanyId": "12"')
    snap = to_snapshot(event, mailbox=ANNA, addin_id=ADDIN)
    assert snap.tag_hint is None
    assert snap.subject == "Quarterly review with Fabrikam"


# --------------------------------------------------------------------------- bad payloads


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("id", "has no id"),
        ("iCalUId", "has no iCalUId"),
        ("start", "has no start"),
        ("end", "has no end"),
    ],
)
def test_missing_required_fields_are_refused(field: str, message: str) -> None:
    event = load("meeting_organizer")
    del event[field]
    with pytest.raises(GraphPayloadError, match=message):
        to_snapshot(event, mailbox=ANNA, addin_id=None)


@pytest.mark.parametrize(
    ("start", "message"),
    [
        ({"dateTime": "12.03.2024 09:00", "timeZone": "UTC"}, "unreadable start"),
        ({"dateTime": "2024-03-12T09:00:00", "timeZone": "Mars Standard Time"}, "unreadable start"),
        ({"dateTime": "2024-03-12T11:00:00", "timeZone": "UTC"}, "ends before it starts"),
    ],
)
def test_unreadable_times_are_refused(start: dict[str, str], message: str) -> None:
    event = load("meeting_organizer")
    event["start"] = start
    with pytest.raises(GraphPayloadError, match=message):
        to_snapshot(event, mailbox=ANNA, addin_id=None)


def test_an_unknown_type_is_refused() -> None:
    event = load("meeting_organizer")
    event["type"] = "tentativeInstance"
    with pytest.raises(GraphPayloadError, match="unknown type"):
        to_snapshot(event, mailbox=ANNA, addin_id=None)


def test_graph_payload_error_is_a_value_error() -> None:
    assert issubclass(GraphPayloadError, ValueError)
