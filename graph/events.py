"""Microsoft Graph v1.0 ``event`` JSON -> the provider-neutral ``services.meetings`` snapshot.

One call maps one mailbox's copy of one event, as ``GET /users/{id}/events/{id}`` (with
``event_expand``), ``calendarView`` or ``calendarView/delta`` return it. The Graph pages this
module follows:

* event: https://learn.microsoft.com/graph/api/resources/event
* attendee: https://learn.microsoft.com/graph/api/resources/attendee
* responseStatus: https://learn.microsoft.com/graph/api/resources/responsestatus
* dateTimeTimeZone: https://learn.microsoft.com/graph/api/resources/datetimetimezone
* itemBody: https://learn.microsoft.com/graph/api/resources/itembody
* singleValueLegacyExtendedProperty:
  https://learn.microsoft.com/graph/api/resources/singlevaluelegacyextendedproperty
* delta (``@removed``): https://learn.microsoft.com/graph/delta-query-events and
  https://learn.microsoft.com/graph/api/event-delta
* series masters, ``cancelledOccurrences``: https://learn.microsoft.com/graph/api/event-get
  (example "Get a series master with its exceptions and cancelled occurrences")
* add-in custom properties as ``cecp-<add-in id>``:
  https://learn.microsoft.com/office/dev/add-ins/outlook/metadata-for-an-outlook-add-in

Decisions that are not Graph's to make, each explained where it is implemented:

* ``sensitivity`` "personal" is *not* private: Outlook shares personal items' details like
  normal ones (only private/confidential hide them), so the CRM does not hide them either.
* The organizer is always an attendee (first, role and response ORGANIZER), whether or not
  Graph lists them: Exchange's own copies don't, copies of invitations from other systems
  often do, and every mailbox's snapshot of one meeting should list the same people.
* ``cancelledOccurrences`` entries are read as ``OID.<master id>.<YYYY-MM-DD>``, the date being
  the occurrence's local date in the series' zone; the exdate is the series' start time on
  that date, in that zone, as UTC (UTC midnight for all-day series, as ``start`` is).
* All-day events keep their wall-clock date whatever ``timeZone`` Graph labels it with, as
  UTC midnight: ``services.recurrence`` reports all-day occurrences the same way.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from html.parser import HTMLParser
from typing import Any, Final
from zoneinfo import ZoneInfo

from graph.recurrence import to_rrule
from graph.timezones import UnknownTimeZone, parse_graph_datetime, windows_to_iana
from services.meetings import Attendee, EventType, MeetingSnapshot, Removed, TagHint
from services.recurrence import local_to_utc
from services.tables import ActivityKind, ParticipantRole, Provider, Response, ShowAs

__all__ = [
    "BODY_MAX_CHARS",
    "CECP_PROPERTY_SET",
    "TAG_ACTIVITY",
    "TAG_COMPANY",
    "TAG_CONTACTS",
    "TAG_KIND",
    "GraphPayloadError",
    "cecp_property_id",
    "event_expand",
    "html_to_text",
    "is_removed",
    "parse_tag_hint",
    "to_removed",
    "to_snapshot",
]

log = logging.getLogger(__name__)

# PS_PUBLIC_STRINGS ([MS-OXPROPS] 1.3.2): Office.js stores all of one add-in's custom
# properties as one JSON string in the named property "cecp-<add-in id>" of this set.
CECP_PROPERTY_SET: Final = "{00020329-0000-0000-C000-000000000046}"

# The add-in's custom property names (Office.js ``customProperties.set(name, value)``). The
# add-in writes them and this module reads them, so both use these constants.
TAG_COMPANY: Final = "crmCompanyId"  # "12"
TAG_CONTACTS: Final = "crmContactIds"  # "3,4"
TAG_KIND: Final = "crmKind"  # an ActivityKind value, "meeting"
TAG_ACTIVITY: Final = "crmActivityId"  # "77"

BODY_MAX_CHARS: Final = 100_000
"""The longest body text a snapshot carries; longer bodies are cut."""

# Office.js allows 2,500 characters of custom properties per add-in per item; anything much
# longer was not written by our add-in, and is not worth parsing.
_TAG_MAX_CHARS: Final = 10_000
_MAX_ID: Final = 2**63 - 1  # the database's BIGINT

_EVENT_TYPES: Final[dict[str, EventType]] = {
    "singleInstance": EventType.SINGLE,
    "occurrence": EventType.OCCURRENCE,
    "exception": EventType.EXCEPTION,
    "seriesMaster": EventType.SERIES,
}
_ROLES: Final[dict[str, ParticipantRole]] = {
    "required": ParticipantRole.REQUIRED,
    "optional": ParticipantRole.OPTIONAL,
    "resource": ParticipantRole.RESOURCE,
}
# When one address is listed twice, the more specific part it plays wins.
_ROLE_RANK: Final[dict[ParticipantRole, int]] = {
    ParticipantRole.ORGANIZER: 0,
    ParticipantRole.REQUIRED: 1,
    ParticipantRole.OPTIONAL: 2,
    ParticipantRole.RESOURCE: 3,
}
# "none" is the organizer's view of an attendee who has not replied, "notResponded" the
# attendee's own; the responseStatus page says to treat them alike.
_RESPONSES: Final[dict[str, Response]] = {
    "none": Response.NONE,
    "notresponded": Response.NONE,
    "organizer": Response.ORGANIZER,
    "tentativelyaccepted": Response.TENTATIVE,
    "accepted": Response.ACCEPTED,
    "declined": Response.DECLINED,
}
_SHOW_AS: Final[dict[str, ShowAs]] = {
    "free": ShowAs.FREE,
    "tentative": ShowAs.TENTATIVE,
    "busy": ShowAs.BUSY,
    "oof": ShowAs.OOF,
    "workingelsewhere": ShowAs.WORKING_ELSEWHERE,
}
# "personal" is deliberately absent: see the module docstring.
_PRIVATE_SENSITIVITIES: Final = frozenset({"private", "confidential"})
_ACTIVITY_KINDS: Final = frozenset(kind.value for kind in ActivityKind)
# Exchange writes "no time" as .NET's DateTime.MinValue ("0001-01-01T00:00:00Z") and sometimes
# as the FILETIME epoch (1601-01-01); no real response is that old.
_NO_TIME_BEFORE: Final = datetime(1602, 1, 1, tzinfo=UTC)


class GraphPayloadError(ValueError):
    """A Graph event payload that lacks, or has unreadable, fields a snapshot needs."""


# --------------------------------------------------------------------------- request helpers


def cecp_property_id(addin_id: str) -> str:
    """The extended-property id of an add-in's custom properties, for ``$expand``/``$filter``.

    ``addin_id`` is the manifest's ``<Id>`` GUID, kept in the case given (which case Exchange
    uses is not verified, so ``to_snapshot`` compares ids case-insensitively). Raises
    ValueError for anything but a GUID, which also keeps quotes out of the OData filter.

    https://learn.microsoft.com/office/dev/add-ins/outlook/metadata-for-an-outlook-add-in
    """
    key = addin_id.strip() if isinstance(addin_id, str) else ""
    try:
        canonical = str(uuid.UUID(key))
    except ValueError:
        canonical = ""
    if not key or canonical != key.lower():
        raise ValueError(f"add-in id must be a GUID like 8-4-4-4-12 hex digits, got {addin_id!r}")
    return f"String {CECP_PROPERTY_SET} Name cecp-{key}"


def event_expand(addin_id: str | None) -> str:
    """The ``$expand`` query value that returns the add-in's custom properties with an event.

    ``"singleValueExtendedProperties($filter=id eq 'String {...} Name cecp-<id>')"``; the empty
    string (send no ``$expand``) when there is no add-in id. ``calendarView/delta`` refuses
    ``$expand``, so tags are only read from a GET of the item.

    https://learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get
    """
    if addin_id is None:
        return ""
    return f"singleValueExtendedProperties($filter=id eq '{cecp_property_id(addin_id)}')"


# --------------------------------------------------------------------------- delta items


def is_removed(item: Mapping[str, Any]) -> bool:
    """Whether a delta item reports the event gone: ``{"id": ..., "@removed": {"reason": ...}}``.

    Both reasons mean the same to this mailbox: "deleted", and "changed" (the event left the
    delta's calendarView window or can no longer be seen).

    https://learn.microsoft.com/graph/delta-query-overview#resource-representation-in-the-delta-query-response
    """
    return isinstance(item, Mapping) and item.get("@removed") is not None


def to_removed(event_id: str, *, mailbox: str) -> Removed:
    """The ``Removed`` record for an event id, e.g. a delta item for which ``is_removed``."""
    if not isinstance(event_id, str) or not event_id:
        raise GraphPayloadError("a removed event needs its id")
    return Removed(provider=Provider.MICROSOFT, mailbox=mailbox, provider_event_id=event_id)


# --------------------------------------------------------------------------- the snapshot


def to_snapshot(
    event: Mapping[str, Any],
    *,
    mailbox: str,
    addin_id: str | None,
    series_master: Mapping[str, Any] | None = None,
) -> MeetingSnapshot:
    """Map one Graph v1.0 event (one mailbox's copy) to a ``MeetingSnapshot``.

    ``mailbox`` is the calendar owner's e-mail address (kept as given in the snapshot, compared
    with attendees case-insensitively). ``addin_id`` is the add-in's manifest id, whose
    ``cecp-`` property holds the tag; None reads no tag. ``series_master`` is only consulted for
    an occurrence or exception (its ``id`` must be the event's ``seriesMasterId``): its time zone
    and its tag stand in when the instance has none, because delta cannot ``$expand`` the tag
    and Outlook drops custom properties from occurrences.

    Raises GraphPayloadError for a delta ``@removed`` item, a missing ``id``, ``iCalUId``,
    ``start`` or ``end``, an unreadable date-time, a series master without a valid
    ``recurrence``, and a ``series_master`` that is not the event's master. A bad tag is never
    an error: the snapshot just has no ``tag_hint``.

    https://learn.microsoft.com/graph/api/resources/event
    """
    if not isinstance(event, Mapping):
        raise GraphPayloadError(f"an event must be a JSON object, got {type(event).__name__}")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise GraphPayloadError("event has no id")
    if is_removed(event):
        raise GraphPayloadError(f"event {event_id} is a delta @removed item; use to_removed")
    ical_uid = event.get("iCalUId")
    if not isinstance(ical_uid, str) or not ical_uid:
        raise GraphPayloadError(f"event {event_id} has no iCalUId")
    event_type = _event_type(event, event_id)
    in_series = event_type in (EventType.OCCURRENCE, EventType.EXCEPTION)
    master = _checked_master(series_master, event, event_id) if in_series else None

    all_day = event.get("isAllDay") is True
    start = _when(event, "start", event_id, all_day=all_day)
    end = _when(event, "end", event_id, all_day=all_day)
    if end < start:
        raise GraphPayloadError(f"event {event_id} ends before it starts")
    time_zone = _time_zone(event, master)

    organizer_email, organizer_name = _email_address(event.get("organizer"))
    is_organizer = event.get("isOrganizer")
    mailbox_is_organizer = (
        is_organizer
        if isinstance(is_organizer, bool)
        else bool(organizer_email) and organizer_email == _normal_email(mailbox)
    )

    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    if event_type is EventType.SERIES:
        rrule, exdates = _series_rule(event, event_id, start, time_zone, all_day=all_day)

    tag_hint = _tag_hint(event, addin_id)
    if tag_hint is None and master is not None:
        tag_hint = _tag_hint(master, addin_id)

    return MeetingSnapshot(
        provider=Provider.MICROSOFT,
        mailbox=mailbox,
        provider_event_id=event_id,
        ical_uid=ical_uid,
        event_type=event_type,
        start=start,
        end=end,
        time_zone=time_zone,
        subject=_str(event.get("subject")),
        body=_body(event.get("body")),
        location=_str(_get(event, "location", "displayName")),
        all_day=all_day,
        organizer_email=organizer_email,
        organizer_name=organizer_name,
        mailbox_is_organizer=mailbox_is_organizer,
        attendees=_attendees(
            event,
            organizer=(organizer_email, organizer_name),
            mailbox=_normal_email(mailbox),
            mailbox_is_organizer=mailbox_is_organizer,
        ),
        cancelled=event.get("isCancelled") is True,
        private=_str(event.get("sensitivity")).casefold() in _PRIVATE_SENSITIVITIES,
        # "unknown" (and anything newer than this table) blocks time, as Outlook shows it.
        show_as=_SHOW_AS.get(_str(event.get("showAs")).casefold(), ShowAs.BUSY),
        reminder_minutes=_reminder(event),
        series_provider_id=_optional_str(event.get("seriesMasterId")) if in_series else None,
        original_start=_original_start(event, event_id) if in_series else None,
        rrule=rrule,
        exdates=exdates,
        change_key=_optional_str(event.get("changeKey")),
        tag_hint=tag_hint,
        categories=tuple(c for c in event.get("categories") or () if isinstance(c, str) and c),
    )


def _event_type(event: Mapping[str, Any], event_id: str) -> EventType:
    kind = event.get("type")
    if kind is None:
        # A $select without "type": the shape still tells a series part from a single event.
        if event.get("recurrence") is not None:
            return EventType.SERIES
        return EventType.OCCURRENCE if event.get("seriesMasterId") else EventType.SINGLE
    found = _EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if found is None:
        raise GraphPayloadError(f"event {event_id} has an unknown type {kind!r}")
    return found


def _checked_master(
    master: Mapping[str, Any] | None, event: Mapping[str, Any], event_id: str
) -> Mapping[str, Any] | None:
    if master is None:
        return None
    master_id = master.get("id") if isinstance(master, Mapping) else None
    if master_id != event.get("seriesMasterId"):
        raise GraphPayloadError(
            f"series_master {master_id!r} is not the master of event {event_id} "
            f"(seriesMasterId {event.get('seriesMasterId')!r})"
        )
    return master


def _when(event: Mapping[str, Any], name: str, event_id: str, *, all_day: bool) -> datetime:
    value = event.get(name)
    if not isinstance(value, Mapping):
        raise GraphPayloadError(f"event {event_id} has no {name}")
    try:
        if all_day:
            # An all-day event is a span of dates, not instants: Graph labels its midnights
            # with some zone (UTC unless a Prefer header asked for another), and converting
            # them would move the day. The wall-clock date is kept, as UTC midnight.
            wall = parse_graph_datetime(
                {"dateTime": _str(value.get("dateTime")), "timeZone": "UTC"}
            )
            return datetime.combine(wall.date(), time(), tzinfo=UTC)
        return parse_graph_datetime(value)
    except ValueError as exc:  # includes UnknownTimeZone
        raise GraphPayloadError(f"event {event_id} has an unreadable {name}: {exc}") from None


def _time_zone(event: Mapping[str, Any], master: Mapping[str, Any] | None) -> str:
    """The event's IANA zone: where it was created, else the zone its times are given in.

    ``originalStartTimeZone`` may be ``tzone://Microsoft/Custom`` (a legacy custom zone with no
    id) or a name nobody maps; then the master's, then ``start.timeZone`` (usually "UTC", as
    Graph converts times to UTC without a Prefer header), then UTC. Guessing a zone from an
    offset would be worse: a series would then drift at the other zone's DST changes.
    """
    candidates = [event.get("originalStartTimeZone")]
    if master is not None:
        candidates.append(master.get("originalStartTimeZone"))
    candidates.append(_get(event, "start", "timeZone"))
    for name in candidates:
        if isinstance(name, str) and name.strip():
            try:
                return windows_to_iana(name)
            except UnknownTimeZone:
                continue
    return "UTC"


def _series_rule(
    event: Mapping[str, Any], event_id: str, start: datetime, time_zone: str, *, all_day: bool
) -> tuple[str, tuple[datetime, ...]]:
    """RRULE and exdates of a series master, from ``recurrence`` and ``cancelledOccurrences``."""
    recurrence = event.get("recurrence")
    if not isinstance(recurrence, Mapping):
        raise GraphPayloadError(f"series master {event_id} has no recurrence")
    if all_day:
        start_local = datetime.combine(start.date(), time())
    else:
        start_local = start.astimezone(_zone(time_zone)).replace(tzinfo=None)
    try:
        rrule = to_rrule(recurrence, start_local=start_local)
    except ValueError as exc:  # InvalidRecurrence
        raise GraphPayloadError(f"series master {event_id} has a bad recurrence: {exc}") from None

    exdates: set[datetime] = set()
    unreadable = 0
    for entry in event.get("cancelledOccurrences") or ():
        day = _cancelled_date(entry)
        if day is None:
            unreadable += 1
        elif all_day:
            exdates.add(datetime.combine(day, time(), tzinfo=UTC))
        else:
            # The occurrence would have started at the series' wall-clock time on that date;
            # local_to_utc resolves a DST gap or overlap as services.recurrence expands it.
            exdates.add(local_to_utc(datetime.combine(day, start_local.time()), time_zone))
    if unreadable:
        # Skipping rather than raising keeps the rest of the series in sync; the occurrence
        # stays visible until the next read of the master.
        log.warning(
            "series master %s: ignored %d unreadable cancelledOccurrences entries",
            event_id,
            unreadable,
        )
    return rrule, tuple(sorted(exdates))


def _cancelled_date(entry: object) -> date | None:
    """The date of ``"OID.<master id>.2024-03-11"``, the documented occurrenceId form.

    The master id inside is not compared with the master's: it may be in the other id format
    (immutable or not) than the one the request asked for. It is base64 and has no dots, but
    the date is taken after the last dot in case that ever changes.
    """
    if not isinstance(entry, str) or not entry.startswith("OID."):
        return None
    text = entry.rpartition(".")[2]
    if len(text) != 10:  # fromisoformat also takes "20240311" and week dates
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _original_start(event: Mapping[str, Any], event_id: str) -> datetime | None:
    value = event.get("originalStart")
    if value is None:
        return None
    found = _instant(value)
    if found is None:
        raise GraphPayloadError(f"event {event_id} has an unreadable originalStart {value!r}")
    return found


def _instant(value: object) -> datetime | None:
    """An Edm.DateTimeOffset (``2024-03-11T08:00:00Z``, or with 7 fraction digits) as UTC.

    None for anything unreadable, and for Exchange's "no time" values. Graph documents these
    values as UTC, so one without an offset is read as UTC.
    """
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        # Python 3.11 reads "Z" and cuts a 7-digit fraction to microseconds.
        found = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    found = found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    return None if found < _NO_TIME_BEFORE else found


def _reminder(event: Mapping[str, Any]) -> int | None:
    # Graph keeps reminderMinutesBeforeStart (15 by default) when the reminder is off.
    if event.get("isReminderOn") is not True:
        return None
    minutes = event.get("reminderMinutesBeforeStart")
    if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes >= 0:
        return minutes
    return None


# --------------------------------------------------------------------------- people


def _attendees(
    event: Mapping[str, Any],
    *,
    organizer: tuple[str, str],
    mailbox: str,
    mailbox_is_organizer: bool,
) -> tuple[Attendee, ...]:
    """The organizer first, then each attendee address once, in Graph's order.

    https://learn.microsoft.com/graph/api/resources/attendee
    """
    people: dict[str, Attendee] = {}
    listed = event.get("attendees")
    for raw in listed if isinstance(listed, list) else ():
        attendee = _attendee(raw)
        if attendee is None:
            continue
        prior = people.get(attendee.email)
        people[attendee.email] = attendee if prior is None else _merge(prior, attendee)

    organizer_email, organizer_name = organizer
    if organizer_email:
        # Graph lists the organizer only in copies of invitations from other systems, and
        # then with whatever status that system sent ("none" per the responseStatus page).
        # The organizer is the organizer in every mailbox's copy, so all copies agree.
        as_listed = people.pop(organizer_email, None)
        name = organizer_name or (as_listed.name if as_listed is not None else "")
        people = {
            organizer_email: Attendee(
                email=organizer_email,
                name=name,
                role=ParticipantRole.ORGANIZER,
                response=Response.ORGANIZER,
            ),
            **people,
        }

    own = people.get(mailbox) if mailbox and not mailbox_is_organizer else None
    if own is not None:
        people[mailbox] = _with_own_response(own, event.get("responseStatus"))
    return tuple(people.values())


def _attendee(raw: object) -> Attendee | None:
    if not isinstance(raw, Mapping):
        return None
    email, name = _email_address(raw)
    if not email:
        return None  # nothing to match a contact by
    response, responded_at = _status(raw.get("status"))
    role = _ROLES.get(_str(raw.get("type")).casefold(), ParticipantRole.REQUIRED)
    return Attendee(email=email, name=name, role=role, response=response, responded_at=responded_at)


def _status(raw: object) -> tuple[Response, datetime | None]:
    """A responseStatus as (response, time); unknown responses count as no response."""
    if not isinstance(raw, Mapping):
        return Response.NONE, None
    response = _RESPONSES.get(_str(raw.get("response")).casefold(), Response.NONE)
    return response, _instant(raw.get("time"))


def _merge(first: Attendee, second: Attendee) -> Attendee:
    """One address listed twice: the more specific role, a name, the better response."""
    role = min(first.role, second.role, key=_ROLE_RANK.__getitem__)
    response, responded_at = first.response, first.responded_at
    if _more_informative(second.response, second.responded_at, response, responded_at):
        response, responded_at = second.response, second.responded_at
    return Attendee(
        email=first.email,
        name=first.name or second.name,
        role=role,
        response=response,
        responded_at=responded_at,
    )


def _more_informative(
    response: Response, at: datetime | None, than: Response, than_at: datetime | None
) -> bool:
    """Whether (response, at) says more than (than, than_at): a reply beats none, then newer."""
    if (response is Response.NONE) != (than is Response.NONE):
        return response is not Response.NONE
    return at is not None and (than_at is None or at > than_at)


def _with_own_response(attendee: Attendee, raw_status: object) -> Attendee:
    """The mailbox owner's entry, corrected by the event's own ``responseStatus``.

    In an attendee's copy, ``responseStatus`` is that attendee's own answer, while the listed
    statuses are whatever the organizer's last update carried (often "none" for everyone).
    The own answer wins unless the list holds a reply with a strictly newer time. The
    organizer's copy never gets here: there the list is the tracking data, and its
    ``responseStatus`` only says "organizer".
    """
    response, responded_at = _status(raw_status)
    if response in (Response.NONE, Response.ORGANIZER):
        return attendee
    listed_is_newer = (
        attendee.response is not Response.NONE
        and attendee.responded_at is not None
        and responded_at is not None
        and attendee.responded_at > responded_at
    )
    if listed_is_newer:
        return attendee
    return replace(attendee, response=response, responded_at=responded_at)


def _email_address(holder: object) -> tuple[str, str]:
    """(lower-case address, display name) of a recipient's ``emailAddress``; "" if none."""
    address = _get(holder, "emailAddress", "address")
    name = _get(holder, "emailAddress", "name")
    return _normal_email(address), _str(name).strip()


def _normal_email(value: object) -> str:
    # Exchange sometimes gives internal recipients only an X.500 legacyExchangeDN
    # ("/o=ExchangeLabs/ou=..."): not an address any contact could have, so it counts as none.
    text = _str(value).strip().lower()
    return text if "@" in text else ""


# --------------------------------------------------------------------------- the tag


def _tag_hint(event: Mapping[str, Any], addin_id: str | None) -> TagHint | None:
    """The tag in the add-in's ``cecp-`` extended property, if the event carries it."""
    if addin_id is None:
        return None
    wanted = cecp_property_id(addin_id).casefold()
    properties = event.get("singleValueExtendedProperties")
    for prop in properties if isinstance(properties, list) else ():
        prop_id = prop.get("id") if isinstance(prop, Mapping) else None
        # Case-insensitive: Exchange may return the GUIDs and the name in another case
        # than the request used (reference: "exact case not verified").
        if isinstance(prop_id, str) and " ".join(prop_id.split()).casefold() == wanted:
            return parse_tag_hint(prop.get("value"))
    return None


class _BadTag(ValueError):
    """Internal: why a tag property was ignored (a reason, never its content)."""


def parse_tag_hint(value: object) -> TagHint | None:
    """The ``TagHint`` in a ``cecp-`` property value; None when absent, empty or malformed.

    The value is the JSON object Office.js writes, every property a string:
    ``{"crmCompanyId":"12","crmContactIds":"3,4","crmKind":"meeting","crmActivityId":"77"}``.
    JSON numbers and a list of contact ids are read too. Other add-in properties are ignored.
    Never raises: a hint is only a hint, and a bad one is logged at debug level without its
    content (it may hold customer data).
    """
    try:
        return _parse_tag(value)
    except _BadTag as exc:
        log.debug("ignoring a malformed CRM tag property: %s", exc)
        return None


def _parse_tag(value: object) -> TagHint | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadTag("value is not a string")
    if len(value) > _TAG_MAX_CHARS:
        raise _BadTag("value is too long")
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):  # "[[[[..." nests deeper than the recursion limit
        raise _BadTag("value is not JSON") from None
    if not isinstance(data, dict):
        raise _BadTag("value is not a JSON object")
    kind = data.get(TAG_KIND)
    if kind is not None and kind != "":
        if not isinstance(kind, str) or kind.strip().lower() not in _ACTIVITY_KINDS:
            raise _BadTag(f"{TAG_KIND} is not an activity kind")
        kind = kind.strip().lower()
    else:
        kind = None
    hint = TagHint(
        company_id=_tag_id(data.get(TAG_COMPANY), TAG_COMPANY),
        contact_ids=_tag_ids(data.get(TAG_CONTACTS)),
        kind=kind,
        activity_id=_tag_id(data.get(TAG_ACTIVITY), TAG_ACTIVITY),
    )
    return None if hint == TagHint() else hint


def _tag_id(value: object, name: str) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip()
        # isdecimal() alone would accept other scripts' digits, which int() then reads.
        if not (text.isascii() and text.isdecimal()) or len(text) > 19:
            raise _BadTag(f"{name} is not an id")
        number = int(text)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise _BadTag(f"{name} is not an id")
    if not 0 < number <= _MAX_ID:
        raise _BadTag(f"{name} is out of range")
    return number


def _tag_ids(value: object) -> tuple[int, ...]:
    items: Iterable[object]
    if value is None:
        return ()
    if isinstance(value, str):
        items = (part for part in value.split(",") if part.strip())
    elif isinstance(value, list):
        items = value
    else:
        raise _BadTag(f"{TAG_CONTACTS} is not a list of ids")
    ids: dict[int, None] = {}  # ordered and unique
    for item in items:
        number = _tag_id(item, TAG_CONTACTS)
        if number is None:
            raise _BadTag(f"{TAG_CONTACTS} has an empty id")
        ids[number] = None
    return tuple(ids)


# --------------------------------------------------------------------------- the body


def _body(raw: object) -> str:
    """The body as plain text: HTML bodies are reduced to their text, then cut to the cap.

    https://learn.microsoft.com/graph/api/resources/itembody
    """
    content = _get(raw, "content")
    if not isinstance(content, str) or not content:
        return ""
    if _str(_get(raw, "contentType")).casefold() == "html":
        if len(content) <= _MEMO_BODY_MAX:
            return _short_html_to_text(content)
        return html_to_text(content)
    text = content.replace("\r\n", "\n").replace("\r", "\n").strip()
    return text[:BODY_MAX_CHARS]


# Bodies repeat: a series' copies, template invitations, a chunk re-read after a retry.
# Parsing one is about a quarter of the mapping's cost, and the text depends on the body
# alone, so short bodies (at most 256 x 8 KB of keys held) are parsed once.
_MEMO_BODY_MAX: Final = 8_192


@lru_cache(maxsize=256)
def _short_html_to_text(html: str) -> str:
    return html_to_text(html)


def html_to_text(html: str, *, limit: int = BODY_MAX_CHARS) -> str:
    """The readable text of an HTML document: what a browser shows, line by line.

    Uses only ``html.parser``: no markup is rendered or executed, and script, style and head
    content is dropped. Block elements and ``<br>`` break lines, table cells are separated by
    spaces, runs of blank lines become one, and the result is at most ``limit`` characters.
    """
    extractor = _TextExtractor(limit)
    # Fed in pieces so that a huge body stops being parsed once the text is long enough.
    step = 65_536
    try:
        for offset in range(0, len(html), step):
            if extractor.full:
                break
            extractor.feed(html[offset : offset + step])
        if not extractor.full:
            extractor.close()
    except AssertionError:
        # _markupbase still raises on some malformed declarations; the text found before
        # that point is kept rather than losing the whole body.
        pass
    return extractor.text()[:limit]


# Elements whose start and end break the line (HTML's block-level and list/table rows).
_BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "caption", "center", "dd", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
        "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
        "tbody", "tfoot", "thead", "tr", "ul",
    }
)  # fmt: skip
_CELL_TAGS: Final = frozenset({"td", "th"})
# Elements whose content is not shown text.
_HIDDEN_TAGS: Final = frozenset({"head", "noscript", "script", "style", "svg", "template", "title"})
# HTML's collapsible whitespace; U+00A0 (&nbsp;) is not in it, so "<p>&nbsp;</p>" is a line.
_HTML_SPACE: Final = " \t\n\r\f"


class _TextExtractor(HTMLParser):
    def __init__(self, limit: int) -> None:
        super().__init__(convert_charrefs=True)
        self._limit = limit
        self._parts: list[str] = []
        self._size = 0
        self._hidden: list[str] = []  # open hidden elements, innermost last
        self._at_line_start = True
        self.full = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            # A <head> that was never closed must not hide the whole body.
            self._hidden.clear()
        elif tag in _HIDDEN_TAGS:
            self._hidden.append(tag)
        elif self._hidden:
            return
        elif tag == "br":
            self._emit("\n")
        elif tag in _BLOCK_TAGS:
            self._line_break()
        elif tag in _CELL_TAGS:
            self._emit(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._hidden:
            # Close it and anything left open inside it, as a browser would.
            del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]
        elif not self._hidden and tag in _BLOCK_TAGS:
            self._line_break()

    def handle_data(self, data: str) -> None:
        if self._hidden or self.full:
            return
        # Line breaks in the source are only spaces in HTML; text() collapses the spaces.
        text = data.replace("\r", " ").replace("\n", " ")
        self._parts.append(text)
        self._size += len(text)
        if text.strip(_HTML_SPACE):
            self._at_line_start = False
        if self._size > self._limit * 2:  # enough even after whitespace is collapsed
            self.full = True

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # Outlook writes "<![if !supportLists]>", which the parser knows; any other "<![...]>"
        # makes it raise. Browsers skip such a section as a bogus comment, up to its ">".
        try:
            return super().parse_marked_section(i, report)
        except AssertionError:
            end = self.rawdata.find(">", i + 3)
            return -1 if end < 0 else end + 1

    def _emit(self, text: str) -> None:
        self._parts.append(text)
        self._size += len(text)
        self._at_line_start = text.endswith("\n")

    def _line_break(self) -> None:
        # Adjacent blocks share one break: "<p>a</p><p>b</p>" is two lines, not three.
        if not self._at_line_start:
            self._emit("\n")

    def text(self) -> str:
        lines: list[str] = []
        blank = False
        for line in "".join(self._parts).split("\n"):
            words = " ".join(line.split())  # also folds &nbsp; into plain spaces
            if not words:
                blank = bool(lines)
                continue
            if blank:
                lines.append("")
                blank = False
            lines.append(words)
        return "\n".join(lines)


# --------------------------------------------------------------------------- small readers


def _get(holder: object, *path: str) -> object:
    """``holder[a][b]...`` through nested JSON objects; None where a step is missing."""
    for key in path:
        if not isinstance(holder, Mapping):
            return None
        holder = holder.get(key)
    return holder


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)
