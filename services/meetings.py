"""A meeting as a provider reports it, in provider-neutral terms.

graph/ and gmail/ map their payloads to these snapshots; the sync rules in services/ turn
snapshots into CRM activities. Nothing here knows Graph or Google field names.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

from services.tables import ParticipantRole, Provider, Response, ShowAs


class EventType(enum.StrEnum):
    SINGLE = "single"
    SERIES = "series"  # the series master: carries the rule
    OCCURRENCE = "occurrence"  # an unchanged instance of a series
    EXCEPTION = "exception"  # a moved or otherwise changed instance of a series


@dataclass(frozen=True, slots=True)
class Attendee:
    email: str  # normalised lower case
    name: str = ""
    role: ParticipantRole = ParticipantRole.REQUIRED
    response: Response = Response.NONE
    responded_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class TagHint:
    """The tag the add-in wrote into the item (Outlook custom property / Google private property).

    A hint only: the tag of record lives in the CRM (custom properties get lost on recurring
    occurrences and never reach attendees' copies).
    """

    company_id: int | None = None
    contact_ids: tuple[int, ...] = ()
    kind: str | None = None
    activity_id: int | None = None


@dataclass(frozen=True, slots=True)
class MeetingSnapshot:
    """One mailbox's copy of one event, as the provider has it now."""

    provider: Provider
    mailbox: str
    provider_event_id: str
    ical_uid: str
    event_type: EventType
    start: dt.datetime  # aware UTC
    end: dt.datetime  # aware UTC
    time_zone: str  # IANA
    subject: str = ""
    body: str = ""
    location: str = ""
    all_day: bool = False
    organizer_email: str = ""
    organizer_name: str = ""
    mailbox_is_organizer: bool = False
    attendees: tuple[Attendee, ...] = ()
    cancelled: bool = False
    private: bool = False
    show_as: ShowAs = ShowAs.BUSY
    reminder_minutes: int | None = None
    series_provider_id: str | None = None  # the series master's id, for occurrences/exceptions
    original_start: dt.datetime | None = None  # aware UTC, for occurrences/exceptions
    rrule: str | None = None  # series masters only
    exdates: tuple[dt.datetime, ...] = ()  # aware UTC starts of cancelled occurrences
    change_key: str | None = None
    tag_hint: TagHint | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Removed:
    """The event is gone from this mailbox (deleted, or the mailbox no longer sees it)."""

    provider: Provider
    mailbox: str
    provider_event_id: str
