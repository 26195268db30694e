"""Google Calendar as a ``services.ports.CalendarSource``, ``EventFinder`` and ``EventTagWriter``.

``GoogleCalendar`` reads each mailbox's primary calendar as that user (domain-wide delegation,
``gmail.client``) and maps events with ``gmail.events``. Reference/google.md §4:

* Calendar push notifications only say "this calendar changed" (``signals_name_events`` is
  False): the sync runs ``delta`` rounds. A round without a cursor is a full list of the window
  (``timeMin``/``timeMax``); with a cursor it sends ``syncToken`` instead of the window and
  otherwise the same parameters (``singleEvents=false``, ``showDeleted=true``, page size), as
  the sync guide requires. The round's cursor is the last page's ``nextSyncToken``; a 410
  (``fullSyncRequired``) raises ``CursorExpired`` while iterating.
* ``singleEvents=false`` returns series masters (with ``recurrence``) and only the modified
  or cancelled instances; ``showDeleted=true`` is needed so that a full round sees the
  cancelled instances (Google's way of deleting one occurrence) and deleted events.
* Masters come before their exceptions: an exception whose master has not come yet in the
  round waits (bounded) until it does, or until the round's end, when the master is read once.
* The calendar's time zone (``timeZone`` of every list answer) is kept per mailbox; it is the
  zone of events that name none (all-day events).

Failures leave as ``services.ports.ProviderError`` (``gmail.client.GoogleError``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from gmail.client import CALENDAR_SCOPE, GoogleClient, GoogleGone, GoogleNotFound
from gmail.events import GooglePayloadError, needs_calendar_zone, snapshot_from_event
from services.meetings import Removed
from services.ports import Change, ChangeSignal, CursorExpired, MailboxRef, ProviderError
from services.tables import Provider

__all__ = ["GoogleCalendar", "GoogleDeltaRound", "rfc3339"]

log = logging.getLogger(__name__)

_SCOPES: Final = (CALENDAR_SCOPE,)
_EVENTS: Final = "calendars/primary/events"
_CURSOR_EXPIRED_REASON: Final = "google.sync_token_expired"
# Exceptions waiting for their master in one round; past this the masters are read at once.
_MAX_WAITING: Final = 2_000
# Masters kept during a round for later exceptions (older ones are read again if needed).
_MASTER_CACHE_SIZE: Final = 500
_ZONE_CACHE_SIZE: Final = 10_000


def rfc3339(moment: datetime) -> str:
    """``2026-03-10T08:00:00Z``: an aware moment as the UTC timestamp Calendar takes."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_path(event_id: str) -> str:
    return f"{_EVENTS}/{quote(event_id, safe='')}"


class GoogleCalendar:
    """``CalendarSource`` + ``EventFinder`` + ``EventTagWriter`` over Google Calendar.

    ``page_size`` is ``maxResults`` of list calls (Google allows up to 2500). Thread-safe as
    the client is.
    """

    signals_name_events = False  # a notification names the calendar, never the event

    def __init__(self, client: GoogleClient, *, page_size: int = 250) -> None:
        if not 1 <= page_size <= 2500:
            raise ValueError("page_size must be between 1 and 2500")
        self._client = client
        self._page_size = page_size
        self._zones: dict[str, str] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------- CalendarSource

    def changed_events(
        self, mailbox: MailboxRef, signals: Sequence[ChangeSignal]
    ) -> Iterator[Change]:
        """The current state of the named events, each read once; masters first; 404: Removed."""
        ids = list(dict.fromkeys(s.event_id for s in signals if s.event_id))
        found = {event_id: self._get(mailbox, event_id) for event_id in ids}
        masters: dict[str, dict[str, Any] | None] = {}
        for event in found.values():
            series_id = _series_id(event)
            if series_id and series_id not in masters:
                masters[series_id] = found.get(series_id) or self._get(mailbox, series_id)
        done: set[str] = set()
        # Masters (and events that are not instances) first, then the instances.
        for event_id in sorted(ids, key=lambda i: bool(_series_id(found[i]))):
            if event_id in done:
                continue
            done.add(event_id)
            event = found[event_id]
            if event is None:
                yield _removed(mailbox, event_id)
                continue
            series_id = _series_id(event)
            master = masters.get(series_id) if series_id else None
            if series_id and series_id not in done:
                done.add(series_id)
                if master is None:
                    yield _removed(mailbox, series_id)
                else:
                    yield from self._map(mailbox, master, None)
            if series_id and (master is None or master.get("status") == "cancelled"):
                continue  # the series is gone (its master's Removed said so): so is this
            yield from self._map(mailbox, event, master)

    def delta(
        self, mailbox: MailboxRef, cursor: str | None, window: tuple[datetime, datetime]
    ) -> GoogleDeltaRound:
        """One list round: the window without a cursor, else the changes since the sync token."""
        params: dict[str, Any] = {
            "singleEvents": "false",
            "showDeleted": "true",
            "maxResults": str(self._page_size),
        }
        if cursor is None:
            start, end = window
            if start >= end:
                raise ValueError(f"the delta window must not be empty, got {start} .. {end}")
            params["timeMin"] = rfc3339(start)
            params["timeMax"] = rfc3339(end)
        else:
            params["syncToken"] = cursor  # no timeMin/timeMax with a sync token
        return GoogleDeltaRound(self, mailbox, params)

    # ----------------------------------------------------------------------- EventFinder

    def event_ids_for_ical_uid(self, mailbox: MailboxRef, ical_uid: str) -> list[str]:
        """Ids of the mailbox's (not deleted) copies with this iCalUID: a master or single
        event, and a series' modified instances."""
        if not ical_uid:
            return []
        ids: list[str] = []
        params = {"iCalUID": ical_uid, "showDeleted": "false", "maxResults": "250"}
        for page in self._client.pages(
            _EVENTS, as_user=mailbox.address, scopes=_SCOPES, params=params
        ):
            self._remember_zone(mailbox, page)
            for item in _items(page):
                item_id = item.get("id")
                if isinstance(item_id, str) and item_id and item.get("status") != "cancelled":
                    ids.append(item_id)
        return list(dict.fromkeys(ids))

    # ----------------------------------------------------------------------- EventTagWriter

    def write_tag(self, mailbox: MailboxRef, event_id: str, activity_id: int) -> None:
        """Set ``extendedProperties.private.crmActivityId`` on the mailbox's copy.

        ``private`` properties belong to this copy only (``shared`` ones would reach the other
        attendees). A patch merges the key into the existing properties; no guest is notified.
        """
        self._client.patch(
            _event_path(event_id),
            as_user=mailbox.address,
            scopes=_SCOPES,
            params={"sendUpdates": "none"},
            json={"extendedProperties": {"private": {"crmActivityId": str(activity_id)}}},
        )

    # ----------------------------------------------------------------------- reads

    def _get(self, mailbox: MailboxRef, event_id: str) -> dict[str, Any] | None:
        """The event as ``events.get`` returns it (deleted ones too, as cancelled); None: 404."""
        try:
            event = self._client.get(_event_path(event_id), as_user=mailbox.address, scopes=_SCOPES)
        except (GoogleNotFound, GoogleGone):
            return None
        return event if isinstance(event, dict) else None

    def _list_pages(
        self, mailbox: MailboxRef, params: Mapping[str, Any]
    ) -> Iterator[dict[str, Any]]:
        return self._client.pages(_EVENTS, as_user=mailbox.address, scopes=_SCOPES, params=params)

    def _calendar_zone(self, mailbox: MailboxRef) -> str:
        """The primary calendar's zone, from a one-item list (calendars.get needs a wider scope
        than calendar.events); cached per mailbox."""
        with self._lock:
            zone = self._zones.get(mailbox.address)
        if zone is not None:
            return zone
        page = self._client.get(
            _EVENTS,
            as_user=mailbox.address,
            scopes=_SCOPES,
            params={"maxResults": "1", "fields": "timeZone"},
        )
        self._remember_zone(mailbox, page)
        with self._lock:
            return self._zones.get(mailbox.address, "UTC")

    def _remember_zone(self, mailbox: MailboxRef, page: object) -> str | None:
        zone = page.get("timeZone") if isinstance(page, Mapping) else None
        if not isinstance(zone, str) or not zone:
            return None
        with self._lock:
            if len(self._zones) >= _ZONE_CACHE_SIZE and mailbox.address not in self._zones:
                self._zones.pop(next(iter(self._zones)))
            self._zones[mailbox.address] = zone
        return zone

    def _map(
        self,
        mailbox: MailboxRef,
        event: Mapping[str, Any],
        master: Mapping[str, Any] | None,
        zone: str | None = None,
    ) -> Iterator[Change]:
        """The event's change; one Google cannot describe is logged and left out."""
        if zone is None and needs_calendar_zone(event, master):
            zone = self._calendar_zone(mailbox)
        try:
            change = snapshot_from_event(
                mailbox.address, event, calendar_time_zone=zone or "UTC", master=master
            )
        except GooglePayloadError as exc:
            # The message names the event and the field, never summary or description text.
            log.warning(
                "google.calendar.unreadable_event mailbox=%s event=%s reason=%s",
                mailbox.address,
                event.get("id"),
                exc,
            )
            return
        if change is not None:
            yield change


class GoogleDeltaRound:
    """A ``services.ports.DeltaRound`` over ``events.list``: iterate once, then read ``cursor``.

    Pages are read and mapped one at a time; exceptions whose master has not come yet wait in
    a bounded buffer.
    """

    def __init__(
        self, calendar: GoogleCalendar, mailbox: MailboxRef, params: Mapping[str, Any]
    ) -> None:
        self._calendar = calendar
        self._mailbox = mailbox
        self._params = dict(params)
        self._cursor: str | None = None
        self._started = False
        self._zone: str | None = None
        self._masters: dict[str, dict[str, Any] | None] = {}  # raw masters (None: gone)
        self._seen: set[str] = set()  # masters yielded (or found gone) this round
        self._waiting: dict[str, list[dict[str, Any]]] = {}  # master id -> its exceptions
        self._waiting_count = 0

    def __iter__(self) -> Iterator[Change]:
        if self._started:
            raise RuntimeError("a delta round can be iterated only once")
        self._started = True
        return self._changes()

    @property
    def cursor(self) -> str:
        """The ``nextSyncToken`` for the next round; only once iteration has finished."""
        if self._cursor is None:
            raise RuntimeError("the sync token is known only after the whole round was read")
        return self._cursor

    def _changes(self) -> Iterator[Change]:
        calendar, mailbox = self._calendar, self._mailbox
        sync_token: str | None = None
        pages = calendar._list_pages(mailbox, self._params)
        while True:
            try:
                page = next(pages)
            except StopIteration:
                break
            except GoogleGone as err:
                raise CursorExpired(str(err), reason=_CURSOR_EXPIRED_REASON) from err
            self._zone = calendar._remember_zone(mailbox, page) or self._zone
            for item in _items(page):
                yield from self._item(item)
            token = page.get("nextSyncToken")
            if isinstance(token, str) and token:
                sync_token = token
        yield from self._flush()
        if sync_token is None:
            raise ProviderError(
                "Google ended the events list without a nextSyncToken",
                reason="google.no_sync_token",
            )
        self._cursor = sync_token

    def _item(self, item: dict[str, Any]) -> Iterator[Change]:
        item_id = item.get("id")
        if not isinstance(item_id, str) or not item_id:
            log.warning("google.calendar.item_without_id mailbox=%s", self._mailbox.address)
            return
        series_id = _series_id(item)
        if not series_id:
            if isinstance(item.get("recurrence"), list) or item.get("status") == "cancelled":
                self._remember(item_id, item)  # a master (or a deleted series)
                self._seen.add(item_id)
            yield from self._calendar._map(self._mailbox, item, None, self._zone)
            for waiting in self._waiting.pop(item_id, []):
                self._waiting_count -= 1
                yield from self._instance(waiting, item_id)
        elif series_id in self._seen:
            yield from self._instance(item, series_id)
        else:
            self._waiting.setdefault(series_id, []).append(item)
            self._waiting_count += 1
            if self._waiting_count > _MAX_WAITING:
                yield from self._flush()

    def _instance(self, item: Mapping[str, Any], series_id: str) -> Iterator[Change]:
        master = self._master(series_id)
        if master is None or master.get("status") == "cancelled":
            return  # the whole series is gone, which its master's Removed said
        yield from self._calendar._map(self._mailbox, item, master, self._zone)

    def _flush(self) -> Iterator[Change]:
        """Read the masters the waiting exceptions need (once each); yield them, then those."""
        waiting, self._waiting, self._waiting_count = self._waiting, {}, 0
        for series_id, items in waiting.items():
            if series_id not in self._seen:
                self._seen.add(series_id)
                master = self._master(series_id)
                if master is None:
                    yield _removed(self._mailbox, series_id)
                else:
                    yield from self._calendar._map(self._mailbox, master, None, self._zone)
            for item in items:
                yield from self._instance(item, series_id)

    def _master(self, series_id: str) -> dict[str, Any] | None:
        if series_id not in self._masters:
            self._remember(series_id, self._calendar._get(self._mailbox, series_id))
        return self._masters[series_id]

    def _remember(self, master_id: str, master: dict[str, Any] | None) -> None:
        self._masters.pop(master_id, None)
        if len(self._masters) >= _MASTER_CACHE_SIZE:
            del self._masters[next(iter(self._masters))]
        self._masters[master_id] = master


def _items(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    items = page.get("items")
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def _series_id(event: Mapping[str, Any] | None) -> str:
    value = event.get("recurringEventId") if event is not None else None
    return value if isinstance(value, str) else ""


def _removed(mailbox: MailboxRef, event_id: str) -> Removed:
    return Removed(provider=Provider.GOOGLE, mailbox=mailbox.address, provider_event_id=event_id)
