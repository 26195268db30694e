"""Microsoft Graph calendars as a ``services.ports.CalendarSource``: events by id, and delta.

``GraphCalendar`` reads one mailbox's primary calendar over ``graph.client.GraphClient`` and
turns what Graph returns into ``MeetingSnapshot``/``Removed`` with ``graph.events``. The Graph
pages it follows:

* get event (occurrence ids included, ``$select=cancelledOccurrences`` on series masters):
  https://learn.microsoft.com/graph/api/event-get
* list instances of a series: https://learn.microsoft.com/graph/api/event-list-instances
* calendar view delta: https://learn.microsoft.com/graph/api/event-delta and
  https://learn.microsoft.com/graph/delta-query-events
* ``@removed`` items, ``@odata.nextLink``/``@odata.deltaLink``:
  https://learn.microsoft.com/graph/delta-query-overview
* JSON batching (20 requests per ``$batch``): https://learn.microsoft.com/graph/json-batching
* immutable ids (``Prefer: IdType="ImmutableId"``):
  https://learn.microsoft.com/graph/outlook-immutable-id
* add-in custom properties (``cecp-<add-in id>``, read with ``$expand``):
  https://learn.microsoft.com/office/dev/add-ins/outlook/metadata-for-an-outlook-add-in

Graph failures leave this module as ``services.ports.ProviderError`` (``CursorExpired`` for a
delta link Graph no longer knows); ``provider_errors`` does the mapping for graph/ adapters.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote, urlencode

from graph.auth import GraphAuthError
from graph.client import (
    BatchRequest,
    GraphClient,
    GraphConflict,
    GraphError,
    GraphGone,
    GraphNotFound,
    GraphThrottled,
    GraphUnavailable,
)
from graph.events import GraphPayloadError, event_expand, is_removed, to_removed, to_snapshot
from services.meetings import MeetingSnapshot
from services.ports import (
    Change,
    ChangeSignal,
    CursorExpired,
    MailboxRef,
    ProviderError,
)

__all__ = [
    "EVENT_FIELDS",
    "PREFER_IMMUTABLE_IDS",
    "GraphCalendar",
    "GraphDeltaRound",
    "provider_error",
    "provider_errors",
    "utc_iso",
]

log = logging.getLogger(__name__)

# What graph.events.to_snapshot reads. A $select is needed at all because Graph only returns a
# master's cancelledOccurrences (the series' exdates) when it is selected by name.
EVENT_FIELDS: Final = (
    "id", "iCalUId", "type", "seriesMasterId", "originalStart", "originalStartTimeZone",
    "start", "end", "isAllDay", "subject", "body", "location", "organizer", "isOrganizer",
    "attendees", "responseStatus", "isCancelled", "sensitivity", "showAs", "isReminderOn",
    "reminderMinutesBeforeStart", "recurrence", "changeKey", "categories",
)  # fmt: skip
# Notifications carry immutable ids (GraphSubscriptions asks for them); every read asks too,
# so that snapshots, notifications and delta items name an event with the same id.
PREFER_IMMUTABLE_IDS: Final = 'IdType="ImmutableId"'
_SYNC_STATE_NOT_FOUND: Final = "graph.sync_state_not_found"
# Masters read during one delta round, kept for the series' later pages; bounded because a
# first round over a large mailbox sees every series in it (a page keeps its own anyway).
_MASTER_CACHE_SIZE: Final = 500
_INSTANCE_TYPES: Final = frozenset({"occurrence", "exception"})
_QUERY_SAFE: Final = "$,()'"


# --------------------------------------------------------------------------- shared helpers


def utc_iso(moment: datetime) -> str:
    """``2026-03-10T08:00:00Z``: an aware moment as the UTC date-time Graph's parameters take."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Events read and held at once by changed_events: ten $batch requests.
_SLICE: Final = 200

# Entra could not answer (graph.auth): try again later. Any other refusal needs an admin.
_ENTRA_TRANSIENT: Final = frozenset({"entra.unavailable", "entra.unreachable"})


def provider_error(err: GraphError | GraphAuthError) -> ProviderError:
    """The ``ProviderError`` for a Graph or token failure.

    Transient (worth trying again later): throttling, outages, timeouts, an unreachable Entra,
    a conflict (a race). Permanent: everything Graph said no to on the merits, such as access
    denied, a user without a mailbox, a bad request or a wrong client secret.
    """
    if isinstance(err, GraphAuthError):
        return ProviderError(str(err), reason=err.reason, transient=err.reason in _ENTRA_TRANSIENT)
    transient = isinstance(err, GraphThrottled | GraphUnavailable | GraphConflict | GraphGone)
    return ProviderError(
        str(err), reason=err.reason, retry_after=err.retry_after, transient=transient
    )


@contextmanager
def provider_errors(*, cursor: bool = False) -> Iterator[None]:
    """Re-raise Graph failures inside the block as ``ProviderError``.

    With ``cursor``, a 410 SyncStateNotFound becomes ``CursorExpired``: the delta link is dead
    and the caller must start a new round without one.
    """
    try:
        yield
    except GraphGone as err:
        if cursor:
            raise CursorExpired(str(err), reason=_SYNC_STATE_NOT_FOUND) from err
        raise provider_error(err) from err
    except (GraphError, GraphAuthError) as err:
        raise provider_error(err) from err


def _relative_url(path: str, params: Mapping[str, str]) -> str:
    # %20 rather than "+" for spaces: OData reads the query as a URI, not as a form.
    return f"{path}?{urlencode(params, quote_via=quote, safe=_QUERY_SAFE)}" if params else path


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- the source


class GraphCalendar:
    """``CalendarSource`` over Graph for one tenant; thread-safe as the client is.

    ``addin_id`` is the add-in manifest's id, whose custom properties hold the CRM tag (None:
    read no tag). ``page_size`` is asked of delta (``Prefer: odata.maxpagesize``) and instance
    lists. Exceptions of a series are looked for between ``now() - window_past`` and
    ``now() + window_future``.
    """

    signals_name_events = True  # a notification carries the changed event's id

    def __init__(
        self,
        client: GraphClient,
        *,
        addin_id: str | None,
        page_size: int = 100,
        window_past: timedelta = timedelta(days=90),
        window_future: timedelta = timedelta(days=730),
        now: Callable[[], datetime] = _now,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self._client = client
        self._addin_id = addin_id
        self._page_size = page_size
        self._window_past = window_past
        self._window_future = window_future
        self._now = now
        expand = event_expand(addin_id)  # raises ValueError for an id that is not a GUID
        self._get_params: dict[str, str] = {
            "$select": ",".join((*EVENT_FIELDS, "cancelledOccurrences"))
        }
        if expand:
            self._get_params["$expand"] = expand

    # ----------------------------------------------------------------------- changed events

    def changed_events(
        self, mailbox: MailboxRef, signals: Sequence[ChangeSignal]
    ) -> Iterator[Change]:
        """The current state of the signalled events, each fetched once (see the port).

        Read in slices, so that a resync's re-check of 100,000 copies holds a slice in memory,
        not all of them; a series spanning two slices is read twice (applying it is idempotent).
        """
        unique = list({signal.event_id: signal for signal in signals if signal.event_id}.values())
        with provider_errors():
            for start in range(0, len(unique), _SLICE):
                yield from self._changed_events(mailbox, unique[start : start + _SLICE])

    def _changed_events(
        self, mailbox: MailboxRef, signals: Sequence[ChangeSignal]
    ) -> Iterator[Change]:
        ids = _unique(s.event_id for s in signals if s.event_id)
        found = self._get_events(mailbox, ids)
        # A signalled id that is gone counts as a gone master too: no second read of it.
        masters: dict[str, dict[str, Any] | None] = {
            event_id: event
            for event_id, event in found.items()
            if event is None or event.get("type") == "seriesMaster"
        }
        wanted = _unique(
            str(event["seriesMasterId"])
            for event in found.values()
            if event is not None and _is_instance(event) and event["seriesMasterId"] not in masters
        )
        masters.update(self._get_events(mailbox, wanted))

        # A series' exceptions can change without a notification for them (a master update
        # announces them all), so every series read here is read with its exceptions.
        exception_ids = {
            master_id: self._exception_ids(mailbox, master_id)
            for master_id, master in masters.items()
            if master is not None
        }
        missing = _unique(i for ids_ in exception_ids.values() for i in ids_ if i not in found)
        instances = {**found, **self._get_events(mailbox, missing)}

        done: set[str] = set()  # removed ids and series already yielded
        for event_id in ids:
            event = found[event_id]
            if event_id in done:
                continue
            if event is None:
                done.add(event_id)
                yield to_removed(event_id, mailbox=mailbox.address)
            elif event.get("type") == "seriesMaster" or _is_instance(event):
                master_id = str(event["seriesMasterId"]) if _is_instance(event) else event_id
                if master_id in done:
                    continue
                done.add(master_id)
                signalled = [
                    e
                    for i in ids
                    if (e := found[i]) is not None and e.get("seriesMasterId") == master_id
                ]
                yield from self._series(
                    mailbox, master_id, masters.get(master_id), exception_ids, instances, signalled
                )
            else:
                yield from self._snapshots(mailbox, [event])

    def _series(
        self,
        mailbox: MailboxRef,
        master_id: str,
        master: Mapping[str, Any] | None,
        exception_ids: Mapping[str, Sequence[str]],
        instances: Mapping[str, Mapping[str, Any] | None],
        signalled: Sequence[Mapping[str, Any]],
    ) -> Iterator[Change]:
        """A master, then its exceptions, then the signalled instances not among them."""
        if master is None:
            # The series went between reading an instance and its master: all of it is gone.
            yield to_removed(master_id, mailbox=mailbox.address)
            return
        members: dict[str, Mapping[str, Any]] = {}
        for event_id in exception_ids.get(master_id, ()):
            if (event := instances.get(event_id)) is not None:
                members[event_id] = event
        for event in signalled:
            members.setdefault(str(event.get("id")), event)
        yield from self._snapshots(mailbox, [master])
        yield from self._snapshots(mailbox, members.values(), master=master)

    def _exception_ids(self, mailbox: MailboxRef, master_id: str) -> list[str]:
        """Ids of the series' exceptions in the window; [] when the series is gone."""
        now = self._now()
        params = {
            "startDateTime": utc_iso(now - self._window_past),
            "endDateTime": utc_iso(now + self._window_future),
            # Only ids: the exceptions are then read with $expand, for their own tags.
            "$select": "id,type",
            "$top": str(self._page_size),
        }
        ids: list[str] = []
        try:
            for page in self._client.pages(
                f"{self._events_path(mailbox)}/{quote(master_id, safe='')}/instances",
                mailbox=mailbox.external_id,
                params=params,
                headers={"Prefer": PREFER_IMMUTABLE_IDS},
            ):
                for item in page.get("value") or ():
                    if isinstance(item, Mapping) and item.get("type") == "exception":
                        item_id = item.get("id")
                        if isinstance(item_id, str) and item_id:
                            ids.append(item_id)
        except GraphNotFound:
            return []
        return ids

    # ----------------------------------------------------------------------- delta

    def delta(
        self, mailbox: MailboxRef, cursor: str | None, window: tuple[datetime, datetime]
    ) -> GraphDeltaRound:
        """One calendarView delta round: everything in ``window``, or changes since ``cursor``."""
        if cursor is not None:
            return GraphDeltaRound(self, mailbox, cursor, {})
        start, end = window
        params = {"startDateTime": utc_iso(start), "endDateTime": utc_iso(end)}  # aware only
        if start >= end:
            raise ValueError(f"the delta window must not be empty, got {start} .. {end}")
        return GraphDeltaRound(
            self,
            mailbox,
            f"/users/{quote(mailbox.external_id, safe='')}/calendarView/delta",
            params,
        )

    def _delta_pages(
        self, mailbox: MailboxRef, path: str, params: Mapping[str, str]
    ) -> Iterator[dict[str, Any]]:
        return self._client.pages(
            path,
            mailbox=mailbox.external_id,
            params=dict(params) or None,
            # Sent on every page: Graph reads the page size from each request, not the link.
            headers={"Prefer": f"odata.maxpagesize={self._page_size}, {PREFER_IMMUTABLE_IDS}"},
        )

    def _delta_page(
        self,
        mailbox: MailboxRef,
        items: Sequence[Any],
        masters: dict[str, dict[str, Any] | None],
        yielded_masters: set[str],
    ) -> Iterator[Change]:
        """The changes of one delta page, masters first (see the port's rules)."""
        entries: list[tuple[str, Mapping[str, Any]]] = []
        for item in items:
            item_id = item.get("id") if isinstance(item, Mapping) else None
            if not isinstance(item_id, str) or not item_id:
                log.warning("graph.calendar.delta_item_without_id mailbox=%s", mailbox.external_id)
                continue
            entries.append((item_id, item))
        # @removed also means "left the window" (or changed outside it): only a 404 on a
        # direct read proves the event is gone.
        verified = self._get_events(
            mailbox, _unique(item_id for item_id, item in entries if is_removed(item))
        )
        current: list[tuple[str, Mapping[str, Any] | None, bool]] = [
            (item_id, verified[item_id], True) if is_removed(item) else (item_id, item, False)
            for item_id, item in entries
        ]
        # This page's masters: from the round's cache, else read now (one $batch per 20).
        needed = _unique(
            str(event["seriesMasterId"])
            for _, event, _ in current
            if event is not None and _is_instance(event)
        )
        page_masters = {i: masters[i] for i in needed if i in masters}
        page_masters.update({i: verified[i] for i in needed if verified.get(i) is not None})
        fetched = self._get_events(mailbox, [i for i in needed if i not in page_masters])
        page_masters.update(fetched)
        for master_id, master in fetched.items():
            _remember(masters, master_id, master)

        for item_id, event, was_removed in current:
            if event is None:
                yield to_removed(item_id, mailbox=mailbox.address)
            elif event.get("type") == "seriesMaster":
                # Only from checking an @removed item: delta itself never returns masters.
                _remember(masters, item_id, dict(event))
                if item_id not in yielded_masters:
                    yielded_masters.add(item_id)
                    yield from self._snapshots(mailbox, [event])
            elif _is_instance(event):
                master_id = str(event["seriesMasterId"])
                master = page_masters[master_id]
                if master_id not in yielded_masters:
                    yielded_masters.add(master_id)
                    if master is None:
                        yield to_removed(master_id, mailbox=mailbox.address)
                    else:
                        yield from self._snapshots(mailbox, [master])
                # A plain occurrence is what the master's rule says; one read to check an
                # @removed is reported, as it is the only news about that id.
                if master is not None and (event.get("type") == "exception" or was_removed):
                    yield from self._snapshots(mailbox, [event], master=master)
            else:
                # singleInstance straight from delta: no tag (delta cannot $expand it).
                yield from self._snapshots(mailbox, [event])

    # ----------------------------------------------------------------------- reads

    def _events_path(self, mailbox: MailboxRef) -> str:
        return f"/users/{quote(mailbox.external_id, safe='')}/events"

    def _get_events(
        self, mailbox: MailboxRef, ids: Sequence[str]
    ) -> dict[str, dict[str, Any] | None]:
        """Each event by id as GET returns it, None for a 404; one $batch per 20 ids."""
        if not ids:
            return {}
        headers = {"Prefer": PREFER_IMMUTABLE_IDS}
        paths = [f"{self._events_path(mailbox)}/{quote(event_id, safe='')}" for event_id in ids]
        if len(ids) == 1:
            try:
                event = self._client.get(
                    paths[0], mailbox=mailbox.external_id, params=self._get_params, headers=headers
                )
            except GraphNotFound:
                return {ids[0]: None}
            return {ids[0]: event}
        requests = [
            BatchRequest(
                id=str(number),
                method="GET",
                url=_relative_url(path, self._get_params),
                headers=headers,
            )
            for number, path in enumerate(paths)
        ]
        found: dict[str, dict[str, Any] | None] = {}
        responses = self._client.batch(requests, mailbox=mailbox.external_id)
        for event_id, response in zip(ids, responses, strict=True):
            error = response.error()
            if isinstance(error, GraphNotFound):
                found[event_id] = None
            elif error is not None:
                raise error
            else:
                # A body that is not an object fails in to_snapshot, which logs and skips it.
                found[event_id] = dict(response.body) if isinstance(response.body, Mapping) else {}
        return found

    def _snapshots(
        self,
        mailbox: MailboxRef,
        events: Iterable[Mapping[str, Any]],
        *,
        master: Mapping[str, Any] | None = None,
    ) -> Iterator[MeetingSnapshot]:
        """Snapshots of the events; one Graph cannot describe is logged and left out."""
        for event in events:
            try:
                yield to_snapshot(
                    event,
                    mailbox=mailbox.address,
                    addin_id=self._addin_id,
                    series_master=master,
                )
            except GraphPayloadError as exc:
                # The message names the event and the field, never body or subject text.
                log.warning(
                    "graph.calendar.unreadable_event mailbox=%s event=%s reason=%s",
                    mailbox.external_id,
                    event.get("id"),
                    exc,
                )


def _remember(
    masters: dict[str, dict[str, Any] | None], master_id: str, master: dict[str, Any] | None
) -> None:
    """Cache a master for the rest of a delta round, dropping the oldest when full."""
    masters.pop(master_id, None)
    if len(masters) >= _MASTER_CACHE_SIZE:
        del masters[next(iter(masters))]
    masters[master_id] = master


def _is_instance(event: Mapping[str, Any]) -> bool:
    """An occurrence or exception that names its series master."""
    master_id = event.get("seriesMasterId")
    return event.get("type") in _INSTANCE_TYPES and isinstance(master_id, str) and bool(master_id)


class GraphDeltaRound:
    """A ``services.ports.DeltaRound``: iterate once, then read ``cursor``.

    Pages are fetched and turned into changes one at a time, so a first round over a large
    mailbox holds one page (and a bounded master cache) in memory, not the whole calendar.
    """

    def __init__(
        self,
        calendar: GraphCalendar,
        mailbox: MailboxRef,
        path: str,
        params: Mapping[str, str],
    ) -> None:
        self._calendar = calendar
        self._mailbox = mailbox
        self._path = path
        self._params = dict(params)
        self._cursor: str | None = None
        self._started = False

    def __iter__(self) -> Iterator[Change]:
        if self._started:
            raise RuntimeError("a delta round can be iterated only once")
        self._started = True
        return self._changes()

    @property
    def cursor(self) -> str:
        """The ``@odata.deltaLink`` for the next round; only once iteration has finished."""
        if self._cursor is None:
            raise RuntimeError("the delta cursor is known only after the whole round was read")
        return self._cursor

    def _changes(self) -> Iterator[Change]:
        calendar, mailbox = self._calendar, self._mailbox
        masters: dict[str, dict[str, Any] | None] = {}
        yielded_masters: set[str] = set()
        delta_link: str | None = None
        with provider_errors(cursor=True):
            for page in calendar._delta_pages(mailbox, self._path, self._params):
                yield from calendar._delta_page(
                    mailbox, page.get("value") or (), masters, yielded_masters
                )
                link = page.get("@odata.deltaLink")
                if isinstance(link, str) and link:
                    delta_link = link
        if delta_link is None:
            raise ProviderError(
                "Graph ended the delta round without a delta link", reason="graph.no_delta_link"
            )
        self._cursor = delta_link
