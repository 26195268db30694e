"""GraphCalendar against the Graph stand-in over HTTP: events by id, series, $batch and delta."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from graph.calendar import GraphCalendar
from graph.client import GraphClient
from graph.events import TAG_COMPANY, TAG_CONTACTS, TAG_KIND, cecp_property_id
from services.meetings import EventType, MeetingSnapshot, Removed, TagHint
from services.ports import (
    CalendarSource,
    Change,
    ChangeSignal,
    CursorExpired,
    MailboxRef,
    ProviderError,
)
from services.tables import Provider
from tests.integration.conftest import app_tokens
from tests.standins import MicrosoftStandIns
from tests.standins.graph import GraphUser

ADDIN = "3f8b2a6c-1d4e-4b7a-9c2f-5e6d7a8b9c0d"
# The calendar's clock (for the window it lists a series' exceptions in) and a delta window.
NOW = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
TAG = json.dumps({TAG_COMPANY: "12", TAG_CONTACTS: "3,4", TAG_KIND: "meeting"})
EXPECTED_TAG = TagHint(company_id=12, contact_ids=(3, 4), kind="meeting")
WEEKLY_MONDAYS = {
    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
    "range": {"type": "numbered", "numberOfOccurrences": 4, "startDate": "2026-03-02"},
}


@pytest.fixture
def client(ms: MicrosoftStandIns) -> Iterator[GraphClient]:
    with GraphClient(base_url=ms.graph.root_url, token=app_tokens(ms).token) as graph_client:
        yield graph_client


def calendar_for(client: GraphClient, *, page_size: int = 100) -> CalendarSource:
    # Typed as the port, so mypy checks that GraphCalendar implements it.
    return GraphCalendar(client, addin_id=ADDIN, page_size=page_size, now=lambda: NOW)


@pytest.fixture
def calendar(client: GraphClient) -> CalendarSource:
    return calendar_for(client)


@pytest.fixture
def anna(ms: MicrosoftStandIns) -> GraphUser:
    return ms.graph.add_user("Anna.Berg@contoso.com")


def ref(user: GraphUser) -> MailboxRef:
    return MailboxRef(
        org_id=1, provider=Provider.MICROSOFT, address=user.mail.lower(), external_id=user.id
    )


def signals(*ids: str) -> list[ChangeSignal]:
    return [ChangeSignal(event_id) for event_id in ids]


def snapshots(changes: Sequence[Change]) -> list[MeetingSnapshot]:
    assert all(isinstance(change, MeetingSnapshot) for change in changes), changes
    return [change for change in changes if isinstance(change, MeetingSnapshot)]


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def tagged_series(ms: MicrosoftStandIns, user: GraphUser) -> dict[str, Any]:
    """Mondays 2, 9, 16 and 23 March 2026 at 09:00 in Oslo (08:00 UTC), tagged."""
    return ms.graph.create_event(
        user,
        start="2026-03-02T09:00:00",
        end="2026-03-02T10:00:00",
        time_zone="Europe/Oslo",
        subject="Weekly",
        recurrence=WEEKLY_MONDAYS,
        extended_properties={cecp_property_id(ADDIN): TAG},
    )


# --------------------------------------------------------------------------- changed_events


def test_a_single_event_with_its_tag(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    event = ms.graph.create_event(
        anna,
        start="2026-03-10T09:00:00",
        time_zone="Europe/Oslo",
        subject="Pricing",
        attendees=["ola@acme.example"],
        extended_properties={cecp_property_id(ADDIN): TAG},
    )

    [snapshot] = snapshots(list(calendar.changed_events(ref(anna), signals(event["id"]))))

    assert snapshot.provider_event_id == event["id"]
    assert snapshot.mailbox == "anna.berg@contoso.com"
    assert snapshot.event_type is EventType.SINGLE
    assert snapshot.subject == "Pricing"
    assert snapshot.start == utc(2026, 3, 10, 8)
    assert snapshot.time_zone == "Europe/Berlin"  # W. Europe Standard Time, as Graph says
    assert snapshot.tag_hint == EXPECTED_TAG
    assert [a.email for a in snapshot.attendees] == ["anna.berg@contoso.com", "ola@acme.example"]
    [get] = ms.graph.log(method="GET", path_prefix=f"/users/{anna.id}/events/")
    assert get.headers["Prefer"] == 'IdType="ImmutableId"'
    assert "cancelledOccurrences" in get.query["$select"][0].split(",")


def test_duplicate_signals_fetch_the_event_once(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    event = ms.graph.create_event(anna, start="2026-03-10T09:00:00")
    repeated = [ChangeSignal(event["id"], "created"), *signals(event["id"], event["id"])]

    changes = list(calendar.changed_events(ref(anna), repeated))

    assert [c.provider_event_id for c in changes] == [event["id"]]
    assert ms.graph.event_gets(anna) == 1
    assert not ms.graph.log(path_prefix="/$batch")


def test_a_deleted_event_is_removed(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    gone = ms.graph.create_event(anna, start="2026-03-10T09:00:00")
    kept = ms.graph.create_event(anna, start="2026-03-11T09:00:00")
    ms.graph.delete_event(anna, gone["id"])

    changes = list(calendar.changed_events(ref(anna), signals(gone["id"], kept["id"])))

    assert changes[0] == Removed(Provider.MICROSOFT, "anna.berg@contoso.com", gone["id"])
    assert [s.provider_event_id for s in snapshots(changes[1:])] == [kept["id"]]


def test_an_occurrence_comes_after_its_master_with_the_exceptions(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    master = tagged_series(ms, anna)
    moved = ms.graph.move_occurrence(
        anna, master["id"], "2026-03-09", start="2026-03-10T14:00:00", subject="Moved"
    )
    plain = ms.graph.occurrence_id(anna, master["id"], "2026-03-16")

    changes = snapshots(list(calendar.changed_events(ref(anna), signals(plain, moved))))

    assert [(s.provider_event_id, s.event_type) for s in changes] == [
        (master["id"], EventType.SERIES),
        (moved, EventType.EXCEPTION),
        (plain, EventType.OCCURRENCE),
    ]
    series, exception, occurrence = changes
    assert series.rrule is not None
    assert "BYDAY=MO" in series.rrule
    assert series.tag_hint == EXPECTED_TAG
    assert exception.series_provider_id == master["id"]
    assert exception.original_start == utc(2026, 3, 9, 8)
    assert exception.start == utc(2026, 3, 10, 13)
    assert exception.subject == "Moved"
    assert exception.tag_hint == EXPECTED_TAG  # the master's, as Outlook drops it on instances
    assert occurrence.original_start == utc(2026, 3, 16, 8)
    # The occurrence, the master and the exception: each read once.
    assert ms.graph.event_gets(anna) == 3
    [listing] = ms.graph.log(path_prefix=f"/users/{anna.id}/events/{master['id']}/instances")
    assert listing.query["startDateTime"] == ["2025-12-01T00:00:00Z"]
    assert listing.query["endDateTime"] == ["2028-02-29T00:00:00Z"]


def test_a_master_signal_brings_its_moved_occurrence_and_cancellations(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    master = tagged_series(ms, anna)
    moved = ms.graph.move_occurrence(anna, master["id"], "2026-03-16", start="2026-03-17T11:00:00")
    ms.graph.cancel_occurrence(anna, master["id"], "2026-03-23")

    changes = snapshots(list(calendar.changed_events(ref(anna), signals(master["id"]))))

    [series, exception] = changes
    assert series.event_type is EventType.SERIES
    assert series.exdates == (utc(2026, 3, 23, 8),)
    assert exception.provider_event_id == moved
    assert exception.event_type is EventType.EXCEPTION
    assert exception.original_start == utc(2026, 3, 16, 8)
    assert exception.start == utc(2026, 3, 17, 10)


def test_many_events_are_fetched_in_batches_of_twenty(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    ids = [
        ms.graph.create_event(anna, start=f"2026-03-{day % 28 + 1:02d}T{8 + day % 9:02d}:00:00")[
            "id"
        ]
        for day in range(45)
    ]

    changes = snapshots(list(calendar.changed_events(ref(anna), signals(*ids))))

    assert [s.provider_event_id for s in changes] == ids
    assert len(ms.graph.log(method="POST", path_prefix="/$batch")) == 3
    assert ms.graph.event_gets(anna) == 45


def test_an_unreadable_event_is_logged_and_skipped(
    ms: MicrosoftStandIns,
    calendar: CalendarSource,
    anna: GraphUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = ms.graph.create_event(
        anna, start="2026-03-10T09:00:00", body="<p>Secret plans</p>", iCalUId=""
    )
    fine = ms.graph.create_event(anna, start="2026-03-11T09:00:00")

    with caplog.at_level(logging.WARNING, logger="graph.calendar"):
        changes = list(calendar.changed_events(ref(anna), signals(broken["id"], fine["id"])))

    assert [c.provider_event_id for c in changes] == [fine["id"]]
    [record] = [r for r in caplog.records if r.name == "graph.calendar"]
    assert record.levelno == logging.WARNING
    assert broken["id"] in record.getMessage()
    assert "iCalUId" in record.getMessage()
    assert "Secret" not in caplog.text


# --------------------------------------------------------------------------- delta


def test_delta_full_round_then_only_the_changes(
    ms: MicrosoftStandIns, client: GraphClient, anna: GraphUser
) -> None:
    calendar = calendar_for(client, page_size=2)
    singles = [
        ms.graph.create_event(anna, start=f"2026-03-0{day}T09:00:00", subject=f"Single {day}")
        for day in (3, 4, 5)
    ]
    master = tagged_series(ms, anna)
    moved = ms.graph.move_occurrence(anna, master["id"], "2026-03-09", start="2026-03-10T14:00:00")

    first = calendar.delta(ref(anna), None, WINDOW)
    changes = snapshots(list(first))

    # Occurrences come back from delta, masters do not: the master is read (once) and the
    # unchanged occurrences are left to its rule.
    assert sorted((s.event_type, s.provider_event_id) for s in changes) == sorted(
        [(EventType.SINGLE, s["id"]) for s in singles]
        + [(EventType.SERIES, master["id"]), (EventType.EXCEPTION, moved)]
    )
    ids = [s.provider_event_id for s in changes]
    assert ids.index(master["id"]) < ids.index(moved)
    series = changes[ids.index(master["id"])]
    assert series.tag_hint == EXPECTED_TAG
    assert changes[ids.index(moved)].tag_hint == EXPECTED_TAG
    assert ms.graph.event_gets(anna) == 1
    pages = ms.graph.log(method="GET", path_prefix=f"/users/{anna.id}/calendarView/delta")
    assert len(pages) == 4  # 3 singles + 3 occurrences + 1 exception, 2 per page
    assert all(p.headers["Prefer"] == 'odata.maxpagesize=2, IdType="ImmutableId"' for p in pages)
    assert pages[0].query["startDateTime"] == ["2026-02-01T00:00:00Z"]
    assert pages[0].query["endDateTime"] == ["2026-06-01T00:00:00Z"]
    assert "$deltatoken=" in first.cursor

    ms.graph.update_event(anna, singles[1]["id"], subject="Renamed")
    second = calendar.delta(ref(anna), first.cursor, WINDOW)
    [renamed] = snapshots(list(second))

    assert (renamed.provider_event_id, renamed.subject) == (singles[1]["id"], "Renamed")
    assert second.cursor != first.cursor
    assert "$deltatoken=" in second.cursor


def test_delta_removed_items_are_checked_before_they_count_as_deleted(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    deleted = ms.graph.create_event(anna, start="2026-03-03T09:00:00")
    left = ms.graph.create_event(anna, start="2026-03-04T09:00:00")
    first = calendar.delta(ref(anna), None, WINDOW)
    assert len(list(first)) == 2

    ms.graph.delete_event(anna, deleted["id"])
    ms.graph.update_event(anna, left["id"], start=datetime(2027, 1, 5, 9), subject="Next year")
    changes = list(calendar.delta(ref(anna), first.cursor, WINDOW))

    # Both came back as @removed; only the deleted one is gone.
    assert Removed(Provider.MICROSOFT, "anna.berg@contoso.com", deleted["id"]) in changes
    [moved] = [c for c in changes if c.provider_event_id == left["id"]]
    assert isinstance(moved, MeetingSnapshot)
    assert (moved.subject, moved.start) == ("Next year", utc(2027, 1, 5, 9))
    assert ms.graph.event_gets(anna) == 2  # one $batch of the two @removed ids
    assert len(ms.graph.log(path_prefix="/$batch")) == 1


def test_delta_reports_a_series_change_through_its_master(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    master = tagged_series(ms, anna)
    moved = ms.graph.move_occurrence(anna, master["id"], "2026-03-09", start="2026-03-10T14:00:00")
    first = calendar.delta(ref(anna), None, WINDOW)
    list(first)

    ms.graph.cancel_occurrence(anna, master["id"], "2026-03-16")
    changes = list(calendar.delta(ref(anna), first.cursor, WINDOW))

    # Delta re-reports every occurrence (their change keys follow the master's): the master
    # comes once, before its exception; the cancelled occurrence is checked and really gone.
    cancelled = ms.graph.occurrence_id(anna, master["id"], "2026-03-16")
    assert sorted((type(c).__name__, c.provider_event_id) for c in changes) == sorted(
        [("MeetingSnapshot", master["id"]), ("MeetingSnapshot", moved), ("Removed", cancelled)]
    )
    ids = [c.provider_event_id for c in changes]
    assert ids.index(master["id"]) < ids.index(moved)
    series = changes[ids.index(master["id"])]
    assert isinstance(series, MeetingSnapshot)
    assert series.exdates == (utc(2026, 3, 16, 8),)


def test_an_expired_delta_link_raises_cursor_expired(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    ms.graph.create_event(anna, start="2026-03-03T09:00:00")
    first = calendar.delta(ref(anna), None, WINDOW)
    list(first)
    ms.graph.expire_delta_tokens(anna)

    with pytest.raises(CursorExpired) as expired:
        list(calendar.delta(ref(anna), first.cursor, WINDOW))

    assert expired.value.reason == "graph.sync_state_not_found"
    assert expired.value.transient


def test_a_skip_link_that_expires_mid_round_raises_cursor_expired(
    ms: MicrosoftStandIns, client: GraphClient, anna: GraphUser
) -> None:
    for day in (3, 4, 5):
        ms.graph.create_event(anna, start=f"2026-03-0{day}T09:00:00")
    round_ = calendar_for(client, page_size=1).delta(ref(anna), None, WINDOW)
    changes = iter(round_)
    next(changes)
    ms.graph.expire_delta_tokens(anna)

    with pytest.raises(CursorExpired):
        list(changes)
    with pytest.raises(RuntimeError):
        _ = round_.cursor


# --------------------------------------------------------------------------- failures


def test_throttled_reads_are_retried_by_the_client(ms: MicrosoftStandIns, anna: GraphUser) -> None:
    waits: list[float] = []
    events = [ms.graph.create_event(anna, start=f"2026-03-1{d}T09:00:00")["id"] for d in range(3)]
    ms.graph.fail_next(1, status=429, retry_after=1, path_prefix=f"/users/{anna.id}/events/")
    with GraphClient(
        base_url=ms.graph.root_url, token=app_tokens(ms).token, sleep=waits.append
    ) as graph_client:
        calendar = calendar_for(graph_client)
        [one] = list(calendar.changed_events(ref(anna), signals(events[0])))
        ms.graph.fail_next(2, status=503, retry_after=1, path_prefix=f"/users/{anna.id}/events/")
        three = list(calendar.changed_events(ref(anna), signals(*events)))

    assert one.provider_event_id == events[0]
    assert [c.provider_event_id for c in three] == events
    assert len(ms.graph.log(status=429)) == 1
    assert len(ms.graph.log(status=503)) == 2
    # The client waited out each Retry-After (its clock is real, its sleep is recorded).
    assert waits
    assert all(0 < wait <= 1.0 for wait in waits)


def test_a_denied_mailbox_is_a_permanent_provider_error(
    ms: MicrosoftStandIns, calendar: CalendarSource, anna: GraphUser
) -> None:
    event = ms.graph.create_event(anna, start="2026-03-10T09:00:00")
    ms.graph.deny_mailbox(anna)

    with pytest.raises(ProviderError) as denied:
        list(calendar.changed_events(ref(anna), signals(event["id"])))
    with pytest.raises(ProviderError) as denied_delta:
        list(calendar.delta(ref(anna), None, WINDOW))

    for error in (denied.value, denied_delta.value):
        assert error.reason == "graph.forbidden"
        assert not error.transient
        assert not isinstance(error, CursorExpired)


def test_a_refused_token_is_a_permanent_provider_error(
    ms: MicrosoftStandIns, anna: GraphUser
) -> None:
    refused = app_tokens(ms, secret="wrong")
    with (
        GraphClient(base_url=ms.graph.root_url, token=refused.token) as graph_client,
        pytest.raises(ProviderError) as failed,
    ):
        list(calendar_for(graph_client).changed_events(ref(anna), signals("AAMkAD-x")))

    assert failed.value.reason == "entra.invalid_client"
    assert not failed.value.transient  # an admin must fix the secret: waiting will not


def test_an_entra_outage_is_a_transient_provider_error(
    ms: MicrosoftStandIns, anna: GraphUser
) -> None:
    ms.entra.fail_next(5, status=503)
    with (
        GraphClient(base_url=ms.graph.root_url, token=app_tokens(ms).token) as graph_client,
        pytest.raises(ProviderError) as failed,
    ):
        list(calendar_for(graph_client).changed_events(ref(anna), signals("AAMkAD-x")))

    assert failed.value.reason == "entra.unavailable"
    assert failed.value.transient
