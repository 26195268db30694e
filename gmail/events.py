"""Google Calendar v3 ``Event`` JSON -> the provider-neutral ``services.meetings`` snapshot.

Pure mapping of one mailbox's copy of one event as ``events.get`` / ``events.list``
(``singleEvents=false``) return it; reference/google.md §4.5 lists the fields. Decisions:

* ``eventType`` workingLocation, outOfOffice, focusTime and birthday are not meetings: None.
* A series master has ``recurrence`` (``RRULE``/``EXDATE``/``RDATE``/``EXRULE`` lines without
  DTSTART). Only the first RRULE becomes the rule; ``EXDATE`` values (UTC ``...Z``, ``TZID=``
  local, floating local in the event's zone, or ``VALUE=DATE``; comma lists) become exdates.
  ``RDATE`` and ``EXRULE`` cannot be represented: the rule is kept and the loss is logged.
* An instance with ``recurringEventId`` is an EXCEPTION (a list with ``singleEvents=false``
  returns only modified or cancelled instances), its ``originalStartTime`` the original start.
* ``status: cancelled``: "Cancelled exceptions of an uncancelled recurring event … are only
  guaranteed to have values for the id, recurringEventId and originalStartTime"; they become
  EXCEPTION snapshots with ``cancelled=True`` (what ``services.sync`` turns into a cancelled
  occurrence row), with the master standing in for missing fields. Any other cancelled event
  is deleted (or moved away) and becomes ``Removed``: ``services.sync.apply_removed`` then
  tells the organizer's deletion (cancelled) from an attendee's (declined).
* All-day events (``date`` instead of ``dateTime``) start and end at UTC midnight of their
  dates, the project's convention for floating dates (``services.recurrence`` reports all-day
  occurrences, and ``graph.events`` all-day events, the same way), so every copy of a meeting
  and the series' expansion agree; ``time_zone`` is still the event's or the calendar's zone.
* The organizer is always the first attendee, with role and response ORGANIZER, whether or not
  Google lists them (as ``graph.events`` does); resources (rooms) are left out.
* ``reminders.useDefault`` means the calendar's default reminders, which the event does not
  carry: no reminder minutes then.
* ``change_key`` is the ``etag`` (which changes with any change of the copy), else
  ``updated`` and ``sequence``.
* The tag hint is ``extendedProperties.private.crmActivityId`` (what ``gmail.calendar`` writes);
  an exception without one takes its master's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.meetings import Attendee, EventType, MeetingSnapshot, Removed, TagHint
from services.recurrence import InvalidRecurrence, local_to_utc
from services.tables import ParticipantRole, Provider, Response, ShowAs

__all__ = [
    "BODY_MAX_CHARS",
    "IGNORED_EVENT_TYPES",
    "TAG_ACTIVITY",
    "GooglePayloadError",
    "needs_calendar_zone",
    "snapshot_from_event",
]

log = logging.getLogger(__name__)

TAG_ACTIVITY: Final = "crmActivityId"
IGNORED_EVENT_TYPES: Final = frozenset({"workingLocation", "outOfOffice", "focusTime", "birthday"})
BODY_MAX_CHARS: Final = 100_000
_MAX_ID: Final = 2**63 - 1
_RESPONSES: Final[dict[str, Response]] = {
    "needsaction": Response.NONE,
    "accepted": Response.ACCEPTED,
    "declined": Response.DECLINED,
    "tentative": Response.TENTATIVE,
}
_PRIVATE: Final = frozenset({"private", "confidential"})
_HTML_HINT: Final = ("<br", "<p", "<div", "<b>", "<i>", "<u>", "<a ", "<ul", "<ol", "<li", "<span")


class GooglePayloadError(ValueError):
    """An event payload that lacks, or has unreadable, fields a snapshot needs."""


def needs_calendar_zone(event: Mapping[str, Any], master: Mapping[str, Any] | None = None) -> bool:
    """Whether mapping ``event`` would fall back to the calendar's time zone."""
    return not any(_zone_name(_get(e, "start", "timeZone")) for e in (event, master) if e)


def snapshot_from_event(
    mailbox: str,
    event: Mapping[str, Any],
    *,
    calendar_time_zone: str = "UTC",
    master: Mapping[str, Any] | None = None,
) -> MeetingSnapshot | Removed | None:
    """Map one Calendar event (``mailbox``'s copy) to a snapshot, ``Removed`` or None (ignore).

    ``calendar_time_zone`` is the calendar's zone (``events.list``'s ``timeZone``), used when
    the event names none. ``master`` is the series master of an instance: it stands in for the
    fields a cancelled instance lacks, and for the time zone and tag.

    Raises GooglePayloadError for a missing ``id``, an event (not cancelled) without
    ``iCalUID``, ``start`` or ``end``, unreadable times, or a master without an RRULE.
    """
    if not isinstance(event, Mapping):
        raise GooglePayloadError(f"an event must be a JSON object, got {type(event).__name__}")
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise GooglePayloadError("event has no id")
    kinds = {_str(event.get("eventType")), _str(master.get("eventType")) if master else ""}
    if kinds & IGNORED_EVENT_TYPES:
        return None
    series_id = _str(event.get("recurringEventId"))
    if master is not None and series_id and master.get("id") != series_id:
        raise GooglePayloadError(
            f"master {master.get('id')!r} is not the series of event {event_id} "
            f"(recurringEventId {series_id!r})"
        )
    if not series_id:
        master = None
    if event.get("status") == "cancelled":
        if series_id and isinstance(event.get("originalStartTime"), Mapping):
            return _cancelled_instance(
                mailbox, event, event_id, series_id, master, calendar_time_zone
            )
        return Removed(provider=Provider.GOOGLE, mailbox=mailbox, provider_event_id=event_id)

    ical_uid = _str(event.get("iCalUID")) or (_str(master.get("iCalUID")) if master else "")
    if not ical_uid:
        raise GooglePayloadError(f"event {event_id} has no iCalUID")
    time_zone = _time_zone(event, master, calendar_time_zone)
    start, all_day = _when(event.get("start"), time_zone, event_id, "start")
    end, _ = _when(event.get("end"), time_zone, event_id, "end")
    if end < start:
        raise GooglePayloadError(f"event {event_id} ends before it starts")

    recurrence = event.get("recurrence")
    rrule: str | None = None
    exdates: tuple[datetime, ...] = ()
    if series_id:
        event_type = EventType.EXCEPTION
    elif isinstance(recurrence, list) and recurrence:
        event_type = EventType.SERIES
        rrule, exdates = _recurrence(recurrence, event_id, start, time_zone, all_day=all_day)
    else:
        event_type = EventType.SINGLE
    original_start = (
        _when(event.get("originalStartTime"), time_zone, event_id, "originalStartTime")[0]
        if series_id and event.get("originalStartTime") is not None
        else None
    )
    if series_id and original_start is None:
        raise GooglePayloadError(f"instance {event_id} has no originalStartTime")

    organizer_email, organizer_name, is_organizer = _organizer(event, mailbox)
    tag = _tag_hint(event)
    if tag is None and master is not None:
        tag = _tag_hint(master)
    return MeetingSnapshot(
        provider=Provider.GOOGLE,
        mailbox=mailbox,
        provider_event_id=event_id,
        ical_uid=ical_uid,
        event_type=event_type,
        start=start,
        end=end,
        time_zone=time_zone,
        subject=_str(event.get("summary")).strip(),
        body=_body(event.get("description")),
        location=_str(event.get("location")).strip(),
        all_day=all_day,
        organizer_email=organizer_email,
        organizer_name=organizer_name,
        mailbox_is_organizer=is_organizer,
        attendees=_attendees(event, organizer_email, organizer_name),
        cancelled=False,
        private=_str(event.get("visibility")) in _PRIVATE,
        show_as=ShowAs.FREE if event.get("transparency") == "transparent" else ShowAs.BUSY,
        reminder_minutes=_reminder(event),
        series_provider_id=series_id or None,
        original_start=original_start,
        rrule=rrule,
        exdates=exdates,
        change_key=_change_key(event),
        tag_hint=tag,
    )


def _cancelled_instance(
    mailbox: str,
    event: Mapping[str, Any],
    event_id: str,
    series_id: str,
    master: Mapping[str, Any] | None,
    calendar_time_zone: str,
) -> MeetingSnapshot:
    """A cancelled occurrence: what services.sync needs is the series and the original start.

    Google guarantees only id, recurringEventId and originalStartTime; the rest comes from the
    instance when present, else the master (times: the original start + the master's duration).
    """
    source: Mapping[str, Any] = master or {}
    time_zone = _time_zone(event, master, calendar_time_zone)
    original, all_day = _when(event.get("originalStartTime"), time_zone, event_id, "originalStart")
    duration = timedelta(0)
    if master is not None and master.get("start") and master.get("end"):
        master_start, _ = _when(master.get("start"), time_zone, series_id, "start")
        master_end, _ = _when(master.get("end"), time_zone, series_id, "end")
        duration = max(master_end - master_start, timedelta(0))
    start, end = original, original + duration
    if isinstance(event.get("start"), Mapping) and isinstance(event.get("end"), Mapping):
        start, _ = _when(event.get("start"), time_zone, event_id, "start")
        end, _ = _when(event.get("end"), time_zone, event_id, "end")
        end = max(end, start)
    holder = event if isinstance(event.get("organizer"), Mapping) else source
    organizer_email, organizer_name, is_organizer = _organizer(holder, mailbox)
    return MeetingSnapshot(
        provider=Provider.GOOGLE,
        mailbox=mailbox,
        provider_event_id=event_id,
        ical_uid=_str(event.get("iCalUID")) or _str(source.get("iCalUID")),
        event_type=EventType.EXCEPTION,
        start=start,
        end=end,
        time_zone=time_zone,
        subject=(_str(event.get("summary")) or _str(source.get("summary"))).strip(),
        all_day=all_day,
        organizer_email=organizer_email,
        organizer_name=organizer_name,
        mailbox_is_organizer=is_organizer,
        cancelled=True,
        series_provider_id=series_id,
        original_start=original,
        change_key=_change_key(event),
        tag_hint=_tag_hint(event) or (_tag_hint(master) if master is not None else None),
    )


# --------------------------------------------------------------------------- times


def _zone_name(value: object) -> str:
    """``value`` if it is an IANA zone this system knows, else ""."""
    if not isinstance(value, str) or not value.strip():
        return ""
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ""
    return name


def _time_zone(
    event: Mapping[str, Any], master: Mapping[str, Any] | None, calendar_time_zone: str
) -> str:
    candidates = [_get(event, "start", "timeZone"), _get(event, "originalStartTime", "timeZone")]
    if master is not None:
        candidates.append(_get(master, "start", "timeZone"))
    candidates.append(calendar_time_zone)
    for candidate in candidates:
        name = _zone_name(candidate)
        if name:
            return name
    return "UTC"


def _when(value: object, time_zone: str, event_id: str, name: str) -> tuple[datetime, bool]:
    """(aware UTC moment, all-day) of an EventDateTime."""
    if not isinstance(value, Mapping):
        raise GooglePayloadError(f"event {event_id} has no {name}")
    text = value.get("dateTime")
    if isinstance(text, str) and text:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise GooglePayloadError(f"event {event_id} has an unreadable {name}") from None
        if moment.tzinfo is None:  # not sent by Google, but then the zone says where
            zone = _zone_name(value.get("timeZone")) or time_zone
            return local_to_utc(moment, zone), False
        return moment.astimezone(UTC), False
    day = value.get("date")
    if isinstance(day, str) and len(day) == 10:
        try:
            return datetime.combine(date.fromisoformat(day), time(), tzinfo=UTC), True
        except ValueError:
            pass
    raise GooglePayloadError(f"event {event_id} has an unreadable {name}")


def _recurrence(
    lines: Sequence[object], event_id: str, start: datetime, time_zone: str, *, all_day: bool
) -> tuple[str, tuple[datetime, ...]]:
    rrule: str | None = None
    exdates: set[datetime] = set()
    local_start = start.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)
    ignored: list[str] = []
    for line in lines:
        if not isinstance(line, str) or ":" not in line:
            continue
        head, _, value = line.strip().partition(":")
        name, *parameters = head.split(";")
        name = name.upper()
        if name == "RRULE":
            if rrule is None:
                rrule = value.strip()
            else:
                ignored.append("RRULE")
        elif name == "EXDATE":
            exdates.update(_exdates(value, parameters, local_start, time_zone, all_day, event_id))
        else:
            ignored.append(name)
    if ignored:
        # The rule stays: the occurrences it does not cover (RDATE) or removes (EXRULE) are the
        # loss, and an exception row still comes for each changed one.
        log.warning(
            "google.events.unsupported_recurrence event=%s parts=%s", event_id, sorted(ignored)
        )
    if not rrule:
        raise GooglePayloadError(f"series master {event_id} has no RRULE")
    return rrule, tuple(sorted(exdates))


def _exdates(
    value: str,
    parameters: Sequence[str],
    local_start: datetime,
    time_zone: str,
    all_day: bool,
    event_id: str,
) -> list[datetime]:
    options = {
        key.strip().upper(): raw.strip().strip('"')
        for key, _, raw in (p.partition("=") for p in parameters)
    }
    zone = _zone_name(options.get("TZID")) or time_zone
    found: list[datetime] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        try:
            if options.get("VALUE", "").upper() == "DATE" or len(item) == 8:
                day = datetime.strptime(item, "%Y%m%d").date()  # noqa: DTZ007 - a date
                local = datetime.combine(day, local_start.time())
                utc_moment = None
            elif item.endswith(("Z", "z")):
                utc_moment = datetime.strptime(item[:-1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
                local = utc_moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
            else:
                local = datetime.strptime(item, "%Y%m%dT%H%M%S")  # noqa: DTZ007 - wall clock
                utc_moment = None
        except ValueError:
            log.warning("google.events.unreadable_exdate event=%s", event_id)
            continue
        if all_day:
            # Floating dates: the occurrence is that date's UTC midnight.
            found.append(datetime.combine(local.date(), time(), tzinfo=UTC))
        elif utc_moment is not None:
            found.append(utc_moment)
        else:
            try:
                found.append(local_to_utc(local, zone))
            except InvalidRecurrence:
                log.warning("google.events.unreadable_exdate event=%s", event_id)
    return found


# --------------------------------------------------------------------------- people


def _organizer(event: Mapping[str, Any], mailbox: str) -> tuple[str, str, bool]:
    organizer = event.get("organizer")
    if not isinstance(organizer, Mapping):
        return "", "", False
    email = _email(organizer.get("email"))
    name = _str(organizer.get("displayName")).strip()
    is_organizer = organizer.get("self") is True or (
        bool(email) and email == mailbox.strip().lower()
    )
    return email, name, is_organizer


def _attendees(
    event: Mapping[str, Any], organizer_email: str, organizer_name: str
) -> tuple[Attendee, ...]:
    """The organizer first (role and response ORGANIZER), then each attendee address once."""
    people: dict[str, Attendee] = {}
    listed = event.get("attendees")
    for raw in listed if isinstance(listed, list) else ():
        if not isinstance(raw, Mapping) or raw.get("resource") is True:
            continue  # rooms and equipment are not people
        email = _email(raw.get("email"))
        if not email:
            continue
        optional = raw.get("optional") is True
        attendee = Attendee(
            email=email,
            name=_str(raw.get("displayName")).strip(),
            role=ParticipantRole.OPTIONAL if optional else ParticipantRole.REQUIRED,
            response=_RESPONSES.get(_str(raw.get("responseStatus")).casefold(), Response.NONE),
        )
        prior = people.get(email)
        better = prior is not None and prior.response is Response.NONE
        if prior is None or (better and attendee.response is not Response.NONE):
            people[email] = attendee
    if organizer_email:
        # Google lists the organizer among the attendees (with their own answer) only when
        # they invited guests; they are the organizer in every copy either way.
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
    return tuple(people.values())


def _email(value: object) -> str:
    text = _str(value).strip().lower()
    return text if "@" in text else ""


# --------------------------------------------------------------------------- other fields


def _reminder(event: Mapping[str, Any]) -> int | None:
    reminders = event.get("reminders")
    if not isinstance(reminders, Mapping) or reminders.get("useDefault") is True:
        return None
    overrides = reminders.get("overrides")
    minutes = [
        item.get("minutes")
        for item in (overrides if isinstance(overrides, list) else ())
        if isinstance(item, Mapping) and item.get("method", "popup") == "popup"
    ]
    valid = [m for m in minutes if isinstance(m, int) and not isinstance(m, bool) and m >= 0]
    return min(valid) if valid else None


def _change_key(event: Mapping[str, Any]) -> str | None:
    etag = _str(event.get("etag"))
    if etag:
        return etag
    updated = _str(event.get("updated"))
    if not updated:
        return None
    sequence = event.get("sequence")
    return f"{updated}#{sequence}" if isinstance(sequence, int) else updated


def _tag_hint(event: Mapping[str, Any]) -> TagHint | None:
    value = _get(event, "extendedProperties", "private", TAG_ACTIVITY)
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdecimal():
        text = value.strip()
        if len(text) > 19:
            return None
        number = int(text)
    else:
        return None
    return TagHint(activity_id=number) if 0 < number <= _MAX_ID else None


def _body(value: object) -> str:
    """The description as plain text: Calendar stores HTML from its editor, text from the API."""
    text = _str(value)
    if not text:
        return ""
    lowered = text.lower()
    if any(hint in lowered for hint in _HTML_HINT):
        extractor = _Text()
        extractor.feed(text[: BODY_MAX_CHARS * 4])
        extractor.close()
        text = extractor.text()
    else:
        text = unescape(text) if "&" in text else text
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return "\n".join(lines).strip()[:BODY_MAX_CHARS]


class _Text(HTMLParser):
    """Text of the small HTML subset Calendar's editor writes; line breaks kept."""

    _BREAKS: Final = frozenset({"br", "p", "div", "li", "ul", "ol", "tr", "h1", "h2", "h3"})
    _HIDDEN: Final = frozenset({"script", "style"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BREAKS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self._BREAKS and tag != "br":
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self._parts.append(data)

    def text(self) -> str:
        lines = [" ".join(line.split()) for line in "".join(self._parts).split("\n")]
        out: list[str] = []
        for line in lines:
            if line or (out and out[-1]):
                out.append(line)
        return "\n".join(out).strip()


def _get(holder: object, *path: str) -> object:
    for key in path:
        if not isinstance(holder, Mapping):
            return None
        holder = holder.get(key)
    return holder


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""
