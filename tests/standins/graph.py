"""Microsoft Graph v1.0 stand-in: users, calendars, delta, subscriptions, batching, throttling.

A real HTTP server (``root_url`` = ``{base_url}/v1.0`` is the product's ``GRAPH_BASE_URL``)
whose state is plain Python objects that tests read and change directly. It follows the
documented contracts listed in README.md; where the documentation is silent the behaviour
observed on the real service is copied and marked "observed" in a comment.

Every request needs ``Authorization: Bearer <JWT>`` minted by the Entra stand-in for one of
Graph's audiences (``https://graph.microsoft.com``, Graph's app id, or this server's own
origin, which is what ``{GRAPH_BASE_URL origin}/.default`` yields). Application tokens reach
every mailbox their ``roles`` allow; delegated tokens only the signed-in user's.

Tests use:

* directory and calendar state: ``add_user``, ``add_group``, ``create_event``,
  ``update_event``, ``cancel_event``, ``delete_event``, ``respond``, ``cancel_occurrence``,
  ``move_occurrence``, ``set_extended_property``; ``event(user, id)`` reads one back;
* notifications: ``notify_changes``, ``flush_notifications`` (what the mutators queued, the
  way Exchange would announce them), ``send_lifecycle``; ``route`` maps a public origin
  (``https://crm.test``) to a loopback server, like a hosts file;
* failure injection and observation: ``fail_next``, ``expire_delta_tokens``,
  ``concurrency_limit``, ``latency``, ``deny_mailbox``, the ``requests`` log with
  timestamps, ``max_in_flight``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import requests
from werkzeug.test import EnvironBuilder, run_wsgi_app
from werkzeug.wrappers import Request, Response

from graph.recurrence import to_rrule
from graph.timezones import iana_to_windows, windows_to_iana
from services.recurrence import Series, expand
from tests.standins.entra import GRAPH_APP_ID, GRAPH_RESOURCE, Entra, TokenRejected
from tests.standins.server import BackgroundServer
from tests.standins.tls import LocalCA

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "Delivery",
    "Graph",
    "GraphGroup",
    "GraphRequest",
    "GraphUser",
    "StoredEvent",
    "Subscription",
]

_ODATA_JSON: Final = (
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8"
)
# Graph's "no time" value (responseStatus.time before a reply).
NEVER: Final = "0001-01-01T00:00:00Z"
# Documented limits (README.md has the links).
MAX_SUBSCRIPTION_MINUTES: Final = 10080
MIN_SUBSCRIPTION_MINUTES: Final = 45
MAX_CLIENT_STATE: Final = 128
MAX_BATCH: Final = 20
BATCH_PARALLELISM: Final = 4  # Outlook runs at most 4 requests of a batch at a time
VALIDATION_TIMEOUT: Final = 10.0
CHANGE_TYPES: Final = ("created", "updated", "deleted")
CALENDAR_ROLES: Final = frozenset(
    {"Calendars.Read", "Calendars.ReadWrite", "Calendars.ReadBasic.All"}
)
USER_ROLES: Final = frozenset({"User.Read.All", "User.ReadBasic.All", "Directory.Read.All"})
GROUP_ROLES: Final = frozenset({"GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"})
# PidLidGlobalObjectId's fixed prefix (MS-OXOCAL 2.2.1.27): Outlook's iCalUId starts with it.
_GOID_PREFIX: Final = "040000008200E00074C5B7101A82E008"
_DELTA_UNSUPPORTED: Final = ("$select", "$expand", "$filter", "$orderby", "$search", "$top")


# --------------------------------------------------------------------------- time helpers


def graph_instant(moment: datetime) -> str:
    """A DateTimeOffset as Graph writes it: UTC, seven fractional digits, ``Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond:06d}0Z"


_ISO: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?"
    r"\s*(Z|z|[+-]\d{2}:?\d{2})?"
)


def parse_instant(text: str) -> datetime:
    """An aware datetime for an ISO 8601 value; no offset means UTC (as Graph reads it)."""
    match = _ISO.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    moment = datetime(
        int(year),
        int(month),
        int(day),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        int((fraction or "0").ljust(7, "0")[:6]),
        tzinfo=UTC,
    )
    if offset and offset.upper() != "Z":
        sign = 1 if offset[0] == "+" else -1
        digits = offset[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment


def _zone(name: str) -> ZoneInfo:
    """The IANA zone for a Windows or IANA name (as Graph accepts either)."""
    return ZoneInfo(windows_to_iana(name))


def _windows_name(name: str) -> str:
    """The Windows name Graph reports in originalStartTimeZone for a Windows or IANA name."""
    iana = windows_to_iana(name)
    return name if iana != name else iana_to_windows(name)


def _date_time_time_zone(moment: datetime, zone_name: str, *, all_day: bool) -> dict[str, str]:
    """A ``dateTimeTimeZone`` for ``moment`` shown in ``zone_name`` (Graph's UTC default).

    All-day events are floating dates (stored as UTC midnight): Graph shows them as midnight
    in whatever zone is asked for.
    """
    if all_day:
        local = moment.astimezone(UTC).replace(tzinfo=None)
    else:
        local = moment.astimezone(_zone(zone_name)).replace(tzinfo=None)
    return {
        "dateTime": f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}0",
        "timeZone": zone_name,
    }


def _to_instant(value: datetime | str | Mapping[str, str], zone_name: str) -> datetime:
    """A stored (UTC) instant from a datetime (naive = wall time in ``zone_name``), an ISO
    string (likewise) or a ``dateTimeTimeZone`` dict."""
    if isinstance(value, Mapping):
        return _to_instant(value["dateTime"], value.get("timeZone", zone_name))
    if isinstance(value, str):
        match = _ISO.fullmatch(value.strip())
        if match is not None and match.group(8):
            return parse_instant(value)
        value = parse_instant(value).replace(tzinfo=None)
    if value.tzinfo is None:
        return value.replace(tzinfo=_zone(zone_name)).astimezone(UTC)
    return value.astimezone(UTC)


def _floating_midnight(value: datetime | str | Mapping[str, str] | date) -> datetime:
    """An all-day bound: the calendar date, kept as UTC midnight."""
    if isinstance(value, Mapping):
        value = value["dateTime"]
    if isinstance(value, str):
        value = parse_instant(value)
    day = value.date() if isinstance(value, datetime) else value
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# --------------------------------------------------------------------------- identifiers


def _new_event_id() -> str:
    # Exchange REST ids are URL-safe base64 of an entry id; opaque to clients.
    return "AAMkAD" + base64.urlsafe_b64encode(secrets.token_bytes(42)).decode().rstrip("=") + "="


def _new_change_key() -> str:
    return base64.b64encode(secrets.token_bytes(18)).decode()


def _new_ical_uid() -> str:
    """A PidLidGlobalObjectId in hex, as Outlook's iCalUId (MS-OXOCAL 2.2.1.27).

    Layout: 16-byte class id, 4-byte instance date (zero for a master), 8-byte creation
    FILETIME, 8 reserved zero bytes, 4-byte little-endian data size, then the data.
    """
    filetime = int((time.time() + 11644473600) * 10_000_000).to_bytes(8, "little")
    data = secrets.token_bytes(16)
    return (
        _GOID_PREFIX
        + "00000000"
        + filetime.hex().upper()
        + "0" * 16
        + len(data).to_bytes(4, "little").hex().upper()
        + data.hex().upper()
    )


def _occurrence_ical_uid(master_uid: str, day: date) -> str:
    """An occurrence's iCalUId: the master's with the instance date bytes set (YH YL M D)."""
    if not master_uid.startswith(_GOID_PREFIX) or len(master_uid) < 40:
        return f"{master_uid}-{day:%Y%m%d}"
    return master_uid[:32] + f"{day.year:04X}{day.month:02X}{day.day:02X}" + master_uid[40:]


def _derived_key(*parts: str) -> str:
    return base64.b64encode(hashlib.sha256("|".join(parts).encode()).digest()[:18]).decode()


# --------------------------------------------------------------------------- state


@dataclass
class GraphUser:
    id: str
    mail: str
    userPrincipalName: str
    displayName: str
    givenName: str | None = None
    surname: str | None = None
    jobTitle: str | None = None

    def json(self) -> dict[str, Any]:
        return {
            "businessPhones": [],
            "displayName": self.displayName,
            "givenName": self.givenName,
            "jobTitle": self.jobTitle,
            "mail": self.mail,
            "mobilePhone": None,
            "officeLocation": None,
            "preferredLanguage": None,
            "surname": self.surname,
            "userPrincipalName": self.userPrincipalName,
            "id": self.id,
        }


@dataclass
class GraphGroup:
    id: str
    displayName: str
    members: list[str]  # user ids


@dataclass
class StoredEvent:
    """One item in a mailbox's primary calendar: a single instance or a series master.

    ``fields`` holds Graph properties as JSON; times are kept apart as UTC instants (all-day
    events as UTC midnight of their dates). A series keeps its modified occurrences in
    ``exceptions`` and its deleted ones in ``cancelled``, both keyed by the occurrence's
    original local date ("2026-03-10").
    """

    id: str
    owner: str  # user id
    fields: dict[str, Any]
    start: datetime
    end: datetime
    time_zone: str  # Windows or IANA name the event was created in
    all_day: bool = False
    extended: dict[str, str] = field(default_factory=dict)
    exceptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    modified_seq: int = 0

    @property
    def is_series(self) -> bool:
        return self.fields.get("type") == "seriesMaster"

    @property
    def ical_uid(self) -> str:
        return str(self.fields["iCalUId"])

    @property
    def is_organizer(self) -> bool:
        return bool(self.fields.get("isOrganizer"))


@dataclass
class _Instance:
    """One item of a calendar view: a single instance, an occurrence or an exception."""

    event: StoredEvent
    key: str | None  # occurrence key (original local date), None for a single instance
    original_start: datetime | None
    start: datetime
    end: datetime
    override: dict[str, Any] | None


@dataclass
class Subscription:
    id: str
    app_id: str
    creator_id: str
    tenant_id: str
    resource: str  # as the client sent it
    user_id: str
    change_types: tuple[str, ...]
    change_type_text: str
    notification_url: str
    lifecycle_url: str | None
    expiration: datetime
    client_state: str | None
    needs_reauthorization: bool = False

    def json(self, root: str) -> dict[str, Any]:
        return {
            "@odata.context": f"{root}/$metadata#subscriptions/$entity",
            "id": self.id,
            "resource": self.resource,
            "applicationId": self.app_id,
            "changeType": self.change_type_text,
            "clientState": self.client_state,
            "notificationUrl": self.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": graph_instant(self.expiration),
            "creatorId": self.creator_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }


@dataclass(frozen=True)
class GraphRequest:
    """One request as Graph saw it. ``path`` is relative to /v1.0; Authorization is left out."""

    at: float  # time.monotonic() on arrival
    wall: datetime
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    status: int
    duration: float
    mailbox: str | None  # user id of the mailbox addressed, if any
    app_id: str | None
    in_batch: bool


@dataclass(frozen=True)
class Delivery:
    """One POST from the stand-in to the product (validation, change or lifecycle)."""

    url: str  # the URL as registered (before any route mapping)
    status: int | None  # None when no response came (timeout, refused)
    latency: float
    payload: Any
    response_body: str
    error: str | None = None


@dataclass
class _Failure:
    remaining: int
    status: int
    retry_after: int | None
    path_prefix: str | None
    method: str | None
    code: str
    message: str


@dataclass
class _DeltaToken:
    user_id: str
    user_segment: str
    start: datetime
    end: datetime
    time_zone: str
    snapshot: dict[str, str]  # id -> changeKey of what the client has seen
    seq: int  # change sequence when the round ended
    expired: bool = False


@dataclass
class _SkipToken:
    # The round's items from `offset` on: an instance is rendered when its page is served.
    items: list[_Instance | dict[str, Any]]
    offset: int
    next_state: _DeltaToken
    expired: bool = False


@dataclass
class _Caller:
    app_id: str
    oid: str
    tenant_id: str
    roles: frozenset[str]
    scopes: frozenset[str]
    delegated: bool

    def allowed(self, needed: frozenset[str]) -> bool:
        return bool((self.scopes if self.delegated else self.roles) & needed)


class _GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


@dataclass
class _Context:
    """What a handler gets: the request, the verified caller and parsed Prefer values."""

    request: Request
    caller: _Caller
    root: str
    prefer: dict[str, str]

    def arg(self, name: str) -> str | None:
        """A query parameter, matched case-insensitively as Graph does."""
        folded = name.casefold()
        for key, value in self.request.args.items(multi=True):
            if key.casefold() == folded:
                return value
        return None

    def json_body(self) -> dict[str, Any]:
        try:
            body = json.loads(self.request.get_data(as_text=True) or "null")
        except ValueError:
            raise _GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(body, dict):
            raise _GraphError(400, "BadRequest", "Unable to read JSON request payload.")
        return body


_Handler = Callable[..., Response]


# --------------------------------------------------------------------------- the stand-in


class Graph:
    """The Graph stand-in. ``start()`` serves it; ``root_url`` is ``GRAPH_BASE_URL``."""

    def __init__(
        self,
        entra: Entra,
        *,
        ca: LocalCA | None = None,
        verify: str | bool = True,
    ) -> None:
        """``ca`` serves Graph over HTTPS; ``verify`` is what outbound POSTs to the product
        (validation, notifications) verify TLS with: a CA bundle path or True."""
        self.entra = entra
        self.tenant_id = entra.tenant_id
        self._lock = threading.RLock()
        self._server = BackgroundServer(self._wsgi, ssl_context=ca.server_context() if ca else None)
        self._verify = verify
        self.users: dict[str, GraphUser] = {}
        self.groups: dict[str, GraphGroup] = {}
        self.mailboxes: dict[str, dict[str, StoredEvent]] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.denied_mailboxes: set[str] = set()
        # Knobs tests may set.
        self.delta_page_size = 10  # Outlook's default page size (Prefer odata.maxpagesize wins)
        self.latency = 0.0  # seconds added to every request, to make concurrency visible
        self.concurrency_limit: int | None = None  # e.g. 4: answer 429 MailboxConcurrency
        self.concurrency_scope: Literal["app", "mailbox"] = "app"
        self.require_https_notification_url = False
        self.notification_timeout = 3.0  # Graph publishes with a 3-second client timeout
        self.remove_declined = True  # declining moves the event to Deleted Items
        self.report_out_of_window_changes = True  # delta quirk: @removed for outside events
        # Observations.
        self.requests: list[GraphRequest] = []
        self.validations: list[Delivery] = []
        self.deliveries: list[Delivery] = []
        self.pending_notifications: list[tuple[str, str, str]] = []
        self.routes: dict[str, str] = {}
        self._failures: list[_Failure] = []
        self._in_flight: dict[str, int] = {}
        self._max_in_flight: dict[str, int] = {}
        self._events: dict[str, StoredEvent] = {}
        self._tombstones: list[tuple[int, str, str]] = []  # (seq, owner, id)
        self._seq = 0
        self._delta_tokens: dict[str, _DeltaToken] = {}
        self._skip_tokens: dict[str, _SkipToken] = {}
        self._routes = self._route_table()

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> Graph:
        self._server.start()
        # The product asks Entra for "{origin of GRAPH_BASE_URL}/.default".
        self.entra.graph_resources.add(self.base_url)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Graph:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def root_url(self) -> str:
        """``{base_url}/v1.0``: the value for ``GRAPH_BASE_URL``."""
        return f"{self.base_url}/v1.0"

    @property
    def audiences(self) -> set[str]:
        return {GRAPH_RESOURCE, GRAPH_APP_ID, self.base_url}

    # ----------------------------------------------------------------------- directory

    def add_user(
        self,
        mail: str,
        *,
        id: str | None = None,
        display_name: str | None = None,
        upn: str | None = None,
    ) -> GraphUser:
        local = mail.split("@")[0]
        given, _, surname = local.replace("_", ".").partition(".")
        user = GraphUser(
            id=id or str(uuid.uuid4()),
            mail=mail,
            userPrincipalName=upn or mail,
            displayName=display_name or local.replace(".", " ").title(),
            givenName=given.title() or None,
            surname=surname.title() or None,
        )
        with self._lock:
            self.users[user.id] = user
            self.mailboxes.setdefault(user.id, {})
        return user

    def add_group(
        self,
        display_name: str,
        members: Iterable[GraphUser | str],
        *,
        id: str | None = None,
    ) -> GraphGroup:
        group = GraphGroup(
            id=id or str(uuid.uuid4()),
            displayName=display_name,
            members=[m.id if isinstance(m, GraphUser) else m for m in members],
        )
        with self._lock:
            self.groups[group.id] = group
        return group

    def user(self, ref: str | GraphUser) -> GraphUser:
        """A user by id, UPN or mail (case-insensitive), as Graph resolves /users/{ref}."""
        if isinstance(ref, GraphUser):
            return ref
        found = self._find_user(ref)
        if found is None:
            raise KeyError(f"no stand-in user {ref!r}")
        return found

    def _find_user(self, ref: str) -> GraphUser | None:
        if ref in self.users:
            return self.users[ref]
        folded = ref.casefold()
        for user in self.users.values():
            if folded in (
                user.id.casefold(),
                user.mail.casefold(),
                user.userPrincipalName.casefold(),
            ):
                return user
        return None

    def deny_mailbox(self, user: str | GraphUser) -> None:
        """Make the mailbox answer as an ApplicationAccessPolicy that excludes it does."""
        self.denied_mailboxes.add(self.user(user).id)

    # ----------------------------------------------------------------------- events: read

    def event(
        self, user: str | GraphUser, event_id: str, *, time_zone: str = "UTC"
    ) -> dict[str, Any]:
        """An event (or occurrence) as ``GET /users/{user}/events/{id}`` returns it."""
        with self._lock:
            instance = self._lookup(self.user(user).id, event_id)
            if instance is None:
                raise KeyError(f"no event {event_id!r} in {user!r}'s calendar")
            return self._render(instance, time_zone=time_zone, select=None, expand_ext="*")

    def events(self, user: str | GraphUser) -> list[dict[str, Any]]:
        """Every stored item (single instances and series masters) of a calendar."""
        with self._lock:
            owner = self.user(user).id
            return [
                self._render(self._whole(ev), time_zone="UTC", select=None, expand_ext="*")
                for ev in self.mailboxes[owner].values()
            ]

    def copy_of(self, event_id: str, user: str | GraphUser) -> str:
        """The id of the same meeting (same iCalUId) in another user's calendar."""
        with self._lock:
            source = self._events[self._master_id(event_id)]
            owner = self.user(user).id
            for ev in self.mailboxes[owner].values():
                if ev.ical_uid == source.ical_uid:
                    return ev.id
        raise KeyError(f"{user!r} has no copy of {event_id!r}")

    def occurrence_id(self, user: str | GraphUser, master_id: str, day: date | str) -> str:
        """The id of the occurrence of a series on ``day`` (its original local date)."""
        key = day if isinstance(day, str) else day.isoformat()
        return f"{master_id}_{key.replace('-', '')}"

    # ----------------------------------------------------------------------- events: write

    def create_event(
        self,
        user: str | GraphUser,
        *,
        start: datetime | str,
        end: datetime | str | None = None,
        subject: str = "Meeting",
        time_zone: str = "UTC",
        attendees: Iterable[str | Mapping[str, Any]] = (),
        recurrence: Mapping[str, Any] | None = None,
        is_all_day: bool = False,
        body: str = "",
        location: str | None = None,
        sensitivity: str = "normal",
        show_as: str = "busy",
        categories: Iterable[str] = (),
        extended_properties: Mapping[str, str] | None = None,
        is_online_meeting: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create an event as ``user`` (the organizer) and return it as Graph shows it.

        Naive ``start``/``end`` are wall times in ``time_zone`` (Windows or IANA name). Internal
        attendees (stand-in users) get their own copy, with its own id and the same
        iCalUId, as Exchange delivers the invitation; custom (extended) properties stay on the
        organizer's item only. ``fields`` are extra Graph properties set as given.
        """
        with self._lock:
            organizer = self.user(user)
            zone_name = time_zone
            if is_all_day:
                start_at = _floating_midnight(start)
                end_at = (
                    _floating_midnight(end) if end is not None else start_at + timedelta(days=1)
                )
            else:
                start_at = _to_instant(start, zone_name)
                end_at = (
                    _to_instant(end, zone_name)
                    if end is not None
                    else start_at + timedelta(minutes=30)
                )
            now = datetime.now(UTC)
            base: dict[str, Any] = {
                "createdDateTime": graph_instant(now),
                "lastModifiedDateTime": graph_instant(now),
                "changeKey": _new_change_key(),
                "categories": list(categories),
                "transactionId": None,
                "originalStartTimeZone": _windows_name(zone_name),
                "originalEndTimeZone": _windows_name(zone_name),
                "iCalUId": _new_ical_uid(),
                "reminderMinutesBeforeStart": 15,
                "isReminderOn": True,
                "hasAttachments": False,
                "subject": subject,
                "importance": "normal",
                "sensitivity": sensitivity,
                "isCancelled": False,
                "isOrganizer": True,
                "responseRequested": True,
                "seriesMasterId": None,
                "showAs": show_as,
                "type": "seriesMaster" if recurrence else "singleInstance",
                "onlineMeetingUrl": None,
                "isOnlineMeeting": is_online_meeting,
                "onlineMeetingProvider": "teamsForBusiness" if is_online_meeting else "unknown",
                "allowNewTimeProposals": True,
                "isDraft": False,
                "hideAttendees": False,
                "responseStatus": {"response": "organizer", "time": NEVER},
                "body": {"contentType": "html", "content": body},
                "location": _location(location),
                "locations": [_location(location)] if location else [],
                "recurrence": None,
                "attendees": [_attendee(a) for a in attendees],
                "organizer": {
                    "emailAddress": {"name": organizer.displayName, "address": organizer.mail}
                },
                "onlineMeeting": {
                    "joinUrl": f"https://teams.microsoft.com/l/meetup-join/{uuid.uuid4()}"
                }
                if is_online_meeting
                else None,
            }
            base.update(fields)
            ev = StoredEvent(
                id=_new_event_id(),
                owner=organizer.id,
                fields=base,
                start=start_at,
                end=end_at,
                time_zone=zone_name,
                all_day=is_all_day,
                extended=dict(extended_properties or {}),
            )
            if recurrence:
                ev.fields["recurrence"] = _full_recurrence(recurrence, ev)
            self._store(ev)
            self._queue(ev.owner, ev.id, "created")
            for invitee in self._internal_attendees(ev):
                self._deliver_copy(ev, invitee)
            return self._render(self._whole(ev), time_zone="UTC", select=None, expand_ext=None)

    def update_event(self, user: str | GraphUser, event_id: str, **changes: Any) -> dict[str, Any]:
        """Change an event; the organizer's changes reach the attendees' copies.

        ``changes`` are Graph properties, with conveniences: ``start``/``end`` as datetimes
        (naive = wall time in the event's zone), ``time_zone``, ``body`` and ``location`` as
        strings, ``attendees`` as addresses. Adding an internal attendee sends them a copy;
        removing one cancels theirs ("Canceled: ..." and isCancelled, as Exchange does).
        """
        with self._lock:
            ev = self._owned(user, event_id)
            before = {a.id for a in self._internal_attendees(ev)}
            self._apply(ev, changes)
            self._touch(ev)
            self._queue(ev.owner, ev.id, "updated")
            if ev.is_organizer:
                after = {a.id: a for a in self._internal_attendees(ev)}
                for copy in self._copies(ev):
                    if copy.owner in after:
                        self._apply(copy, _shared(changes))
                        self._touch(copy)
                        self._queue(copy.owner, copy.id, "updated")
                    elif copy.owner in before:
                        self._cancel_copy(copy)
                have = {c.owner for c in self._copies(ev)}
                for uid, invitee in after.items():
                    if uid not in have:
                        self._deliver_copy(ev, invitee)
            return self._render(self._whole(ev), time_zone="UTC", select=None, expand_ext=None)

    def set_extended_property(
        self, user: str | GraphUser, event_id: str, property_id: str, value: str | None
    ) -> None:
        """Set (or with None remove) a singleValueExtendedProperty on this copy only."""
        with self._lock:
            ev = self._owned(user, event_id)
            if value is None:
                ev.extended.pop(property_id, None)
            else:
                ev.extended[property_id] = value
            self._touch(ev)
            self._queue(ev.owner, ev.id, "updated")

    def cancel_event(self, user: str | GraphUser, event_id: str) -> None:
        """The organizer cancels: their item goes, attendees' copies become cancelled."""
        with self._lock:
            ev = self._owned(user, event_id)
            if not ev.is_organizer:
                raise ValueError("only the organizer can cancel a meeting; use delete_event")
            for copy in self._copies(ev):
                self._cancel_copy(copy)
            self._remove(ev)

    def delete_event(self, user: str | GraphUser, event_id: str) -> None:
        """Delete this copy only (an attendee removing a meeting from their calendar)."""
        with self._lock:
            self._remove(self._owned(user, event_id))

    def respond(self, user: str | GraphUser, event_id: str, response: str) -> None:
        """An attendee answers: ``accepted``, ``tentativelyAccepted`` or ``declined``.

        Their copy's ``responseStatus`` and the organizer copy's attendee ``status`` change.
        ``event_id`` may be an occurrence: the answer then becomes an exception on both sides.
        A declined meeting leaves the attendee's calendar unless ``remove_declined`` is off.
        """
        if response not in ("accepted", "tentativelyAccepted", "declined"):
            raise ValueError(f"unknown response {response!r}")
        with self._lock:
            attendee = self.user(user)
            master_id, key = self._split_occurrence(event_id)
            copy = self._owned(attendee, master_id)
            stamp = graph_instant(datetime.now(UTC))
            status = {"response": response, "time": stamp}
            show_as = "tentative" if response == "tentativelyAccepted" else "busy"
            organizer = self._organizer_copy(copy)
            if key is None:
                copy.fields["responseStatus"] = status
                copy.fields["showAs"] = show_as
                self._touch(copy)
                if response == "declined" and self.remove_declined:
                    self._remove(copy)
                else:
                    self._queue(copy.owner, copy.id, "updated")
                if organizer is not None:
                    organizer.fields["attendees"] = _with_status(
                        organizer.fields["attendees"], attendee.mail, status
                    )
                    self._touch(organizer)
                    self._queue(organizer.owner, organizer.id, "updated")
                return
            self._override(copy, key, {"responseStatus": status, "showAs": show_as})
            self._queue(copy.owner, copy.id, "updated")
            if organizer is not None:
                current = self._instance_fields(organizer, key).get(
                    "attendees", organizer.fields["attendees"]
                )
                self._override(
                    organizer, key, {"attendees": _with_status(current, attendee.mail, status)}
                )
                self._queue(organizer.owner, organizer.id, "updated")

    def cancel_occurrence(
        self, user: str | GraphUser, master_id: str, occurrence: str | date
    ) -> None:
        """The organizer deletes one occurrence. It leaves the organizer's view (its id is
        listed in ``cancelledOccurrences``); attendees' occurrences become cancelled
        exceptions. Exchange announces it as ``updated`` on the master (observed)."""
        with self._lock:
            ev = self._owned(user, master_id)
            key = self._occurrence_key(ev, occurrence)
            ev.cancelled.add(key)
            ev.exceptions.pop(key, None)
            self._touch(ev)
            self._queue(ev.owner, ev.id, "updated")
            for copy in self._copies(ev):
                subject = self._instance_fields(copy, key).get("subject", copy.fields["subject"])
                self._override(copy, key, {"isCancelled": True, "subject": f"Canceled: {subject}"})
                self._queue(copy.owner, copy.id, "updated")

    def move_occurrence(
        self,
        user: str | GraphUser,
        master_id: str,
        occurrence: str | date,
        *,
        start: datetime | str,
        end: datetime | str | None = None,
        **changes: Any,
    ) -> str:
        """The organizer reschedules (and optionally edits) one occurrence, making it an
        exception in every copy. Returns the occurrence id."""
        with self._lock:
            ev = self._owned(user, master_id)
            key = self._occurrence_key(ev, occurrence)
            original = self._original_start(ev, key)
            duration = ev.end - ev.start
            start_at = _to_instant(start, ev.time_zone)
            end_at = _to_instant(end, ev.time_zone) if end is not None else start_at + duration
            fields = _convenience(changes)
            for target in (ev, *self._copies(ev)):
                self._override(
                    target,
                    key,
                    fields if target is ev else _shared(fields),
                    start=start_at,
                    end=end_at,
                    original=original,
                )
                self._queue(target.owner, target.id, "updated")
            return self.occurrence_id(user, ev.id, key)

    # ----------------------------------------------------------------------- internals: storage

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _store(self, ev: StoredEvent) -> None:
        ev.modified_seq = self._next_seq()
        self.mailboxes.setdefault(ev.owner, {})[ev.id] = ev
        self._events[ev.id] = ev

    def _touch(self, ev: StoredEvent) -> None:
        ev.fields["changeKey"] = _new_change_key()
        ev.fields["lastModifiedDateTime"] = graph_instant(datetime.now(UTC))
        ev.modified_seq = self._next_seq()

    def _remove(self, ev: StoredEvent) -> None:
        self.mailboxes[ev.owner].pop(ev.id, None)
        self._events.pop(ev.id, None)
        self._tombstones.append((self._next_seq(), ev.owner, ev.id))
        self._queue(ev.owner, ev.id, "deleted")

    def _queue(self, owner: str, event_id: str, change_type: str) -> None:
        self.pending_notifications.append((owner, event_id, change_type))

    def _owned(self, user: str | GraphUser, event_id: str) -> StoredEvent:
        owner = self.user(user).id
        ev = self.mailboxes.get(owner, {}).get(event_id)
        if ev is None:
            raise KeyError(f"no event {event_id!r} in {owner}'s calendar")
        return ev

    def _internal_attendees(self, ev: StoredEvent) -> list[GraphUser]:
        found = []
        for attendee in ev.fields.get("attendees") or []:
            user = self._find_user(attendee["emailAddress"]["address"])
            if user is not None and user.id != ev.owner:
                found.append(user)
        return found

    def _copies(self, ev: StoredEvent) -> list[StoredEvent]:
        """Attendee copies of an organizer's meeting (same iCalUId, other mailboxes)."""
        return [
            other
            for box, events in self.mailboxes.items()
            if box != ev.owner
            for other in events.values()
            if other.ical_uid == ev.ical_uid and not other.is_organizer
        ]

    def _organizer_copy(self, ev: StoredEvent) -> StoredEvent | None:
        address = ev.fields["organizer"]["emailAddress"]["address"]
        organizer = self._find_user(address)
        if organizer is None:
            return None
        for other in self.mailboxes.get(organizer.id, {}).values():
            if other.ical_uid == ev.ical_uid and other.is_organizer:
                return other
        return None

    def _deliver_copy(self, ev: StoredEvent, invitee: GraphUser) -> StoredEvent:
        fields = json.loads(json.dumps(ev.fields))
        now = graph_instant(datetime.now(UTC))
        fields.update(
            {
                "createdDateTime": now,
                "lastModifiedDateTime": now,
                "changeKey": _new_change_key(),
                "isOrganizer": False,
                "responseStatus": {"response": "notResponded", "time": NEVER},
                "categories": [],
                "showAs": "tentative",
            }
        )
        copy = StoredEvent(
            id=_new_event_id(),
            owner=invitee.id,
            fields=fields,
            start=ev.start,
            end=ev.end,
            time_zone=ev.time_zone,
            all_day=ev.all_day,
            exceptions={
                k: json.loads(json.dumps(_plain(v))) | _times(v) for k, v in ev.exceptions.items()
            },
            cancelled=set(ev.cancelled),
        )
        self._store(copy)
        self._queue(copy.owner, copy.id, "created")
        return copy

    def _cancel_copy(self, copy: StoredEvent) -> None:
        if not copy.fields.get("isCancelled"):
            copy.fields["isCancelled"] = True
            copy.fields["subject"] = f"Canceled: {copy.fields['subject']}"
        self._touch(copy)
        self._queue(copy.owner, copy.id, "updated")

    def _apply(self, ev: StoredEvent, changes: Mapping[str, Any]) -> None:
        changes = dict(changes)
        zone_name = changes.pop("time_zone", None)
        if zone_name is not None:
            ev.time_zone = zone_name
            ev.fields["originalStartTimeZone"] = _windows_name(zone_name)
            ev.fields["originalEndTimeZone"] = _windows_name(zone_name)
        duration = ev.end - ev.start
        if "start" in changes:
            value = changes.pop("start")
            ev.start = _floating_midnight(value) if ev.all_day else _to_instant(value, ev.time_zone)
            if "end" not in changes:
                ev.end = ev.start + duration
        if "end" in changes:
            value = changes.pop("end")
            ev.end = _floating_midnight(value) if ev.all_day else _to_instant(value, ev.time_zone)
        if "recurrence" in changes:
            recurrence = changes.pop("recurrence")
            ev.fields["recurrence"] = _full_recurrence(recurrence, ev) if recurrence else None
            ev.fields["type"] = "seriesMaster" if recurrence else "singleInstance"
        converted = _convenience(changes)
        if "attendees" in converted:
            # Attendees who stay keep their answers; only newcomers start at "none".
            known = {
                a["emailAddress"]["address"].casefold(): a["status"]
                for a in ev.fields.get("attendees") or []
            }
            for attendee in converted["attendees"]:
                address = attendee["emailAddress"]["address"].casefold()
                if address in known and attendee["status"]["response"] == "none":
                    attendee["status"] = known[address]
        ev.fields.update(converted)

    # ----------------------------------------------------------------------- internals: series

    def _zone_for_keys(self, ev: StoredEvent) -> ZoneInfo:
        return ZoneInfo("UTC") if ev.all_day else _zone(ev.time_zone)

    def _key_of(self, ev: StoredEvent, original_start: datetime) -> str:
        return original_start.astimezone(self._zone_for_keys(ev)).date().isoformat()

    def _series(self, ev: StoredEvent) -> Series:
        zone = self._zone_for_keys(ev)
        local = ev.start.astimezone(zone).replace(tzinfo=None)
        rule = to_rrule(ev.fields["recurrence"], start_local=local)
        return Series(
            rrule=rule,
            start=local,
            duration=ev.end - ev.start,
            time_zone=str(zone.key),
            all_day=ev.all_day,
        )

    def _original_start(self, ev: StoredEvent, key: str) -> datetime:
        day = date.fromisoformat(key)
        low = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=2)
        for occ in expand(self._series(ev), low, low + timedelta(days=5)):
            if self._key_of(ev, occ.original_start) == key:
                return occ.original_start
        raise KeyError(f"the series {ev.id} has no occurrence on {key}")

    def _occurrence_key(self, ev: StoredEvent, occurrence: str | date) -> str:
        if not ev.is_series:
            raise ValueError(f"{ev.id} is not a series master")
        if isinstance(occurrence, date):
            key = occurrence.isoformat()
        elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", occurrence):
            key = occurrence
        else:
            master_id, found = self._split_occurrence(occurrence)
            if found is None or master_id != ev.id:
                raise ValueError(f"{occurrence!r} is not an occurrence of {ev.id}")
            key = found
        self._original_start(ev, key)  # raises for a date that is not an occurrence
        return key

    def _split_occurrence(self, event_id: str) -> tuple[str, str | None]:
        """(master id, occurrence key) for an occurrence id; (id, None) otherwise."""
        master, sep, day = event_id.rpartition("_")
        if sep and re.fullmatch(r"\d{8}", day) and master in self._events:
            return master, f"{day[:4]}-{day[4:6]}-{day[6:]}"
        return event_id, None

    def _master_id(self, event_id: str) -> str:
        return self._split_occurrence(event_id)[0]

    def _override(
        self,
        ev: StoredEvent,
        key: str,
        fields: Mapping[str, Any],
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        original: datetime | None = None,
    ) -> None:
        current = ev.exceptions.get(key)
        if current is None:
            original = original or self._original_start(ev, key)
            current = {
                "fields": {},
                "originalStart": original,
                "start": original,
                "end": original + (ev.end - ev.start),
            }
            ev.exceptions[key] = current
        current["fields"].update(fields)
        if start is not None:
            current["start"] = start
        if end is not None:
            current["end"] = end
        current["changeKey"] = _new_change_key()
        current["lastModifiedDateTime"] = graph_instant(datetime.now(UTC))
        ev.modified_seq = self._next_seq()

    def _instance_fields(self, ev: StoredEvent, key: str) -> dict[str, Any]:
        exception = ev.exceptions.get(key)
        return dict(exception["fields"]) if exception else {}

    def _instances(self, ev: StoredEvent, low: datetime, high: datetime) -> list[_Instance]:
        """The items ``ev`` shows in the view [low, high): itself, or its occurrences."""
        if not ev.is_series:
            return (
                [_Instance(ev, None, None, ev.start, ev.end, None)]
                if _overlaps(ev.start, ev.end, low, high)
                else []
            )
        found: list[_Instance] = []
        for occ in expand(self._series(ev), low, high):
            key = self._key_of(ev, occ.original_start)
            if key in ev.cancelled or key in ev.exceptions:
                continue
            found.append(_Instance(ev, key, occ.original_start, occ.start, occ.end, None))
        for key, exception in ev.exceptions.items():
            if key in ev.cancelled:
                continue
            if _overlaps(exception["start"], exception["end"], low, high):
                found.append(
                    _Instance(
                        ev,
                        key,
                        exception["originalStart"],
                        exception["start"],
                        exception["end"],
                        exception,
                    )
                )
        return found

    def _whole(self, ev: StoredEvent) -> _Instance:
        return _Instance(ev, None, None, ev.start, ev.end, None)

    def _lookup(self, owner: str, event_id: str) -> _Instance | None:
        box = self.mailboxes.get(owner, {})
        if event_id in box:
            return self._whole(box[event_id])
        master_id, key = self._split_occurrence(event_id)
        ev = box.get(master_id)
        if ev is None or key is None or not ev.is_series or key in ev.cancelled:
            return None
        exception = ev.exceptions.get(key)
        if exception is not None:
            return _Instance(
                ev, key, exception["originalStart"], exception["start"], exception["end"], exception
            )
        try:
            original = self._original_start(ev, key)
        except KeyError:
            return None
        return _Instance(ev, key, original, original, original + (ev.end - ev.start), None)

    def _view(self, owner: str, low: datetime, high: datetime) -> list[_Instance]:
        items = [
            instance
            for ev in self.mailboxes.get(owner, {}).values()
            for instance in self._instances(ev, low, high)
        ]
        items.sort(key=lambda i: (i.start, i.event.id, i.key or ""))
        return items

    # ----------------------------------------------------------------------- internals: JSON

    def _render(
        self,
        instance: _Instance,
        *,
        time_zone: str,
        select: set[str] | None,
        expand_ext: str | None,
        odata_type: bool = False,
    ) -> dict[str, Any]:
        ev = instance.event
        fields = dict(ev.fields)
        event_id = ev.id
        if instance.key is not None:
            assert instance.original_start is not None
            day = date.fromisoformat(instance.key)
            fields.update(
                {
                    "type": "occurrence",
                    "seriesMasterId": ev.id,
                    "recurrence": None,
                    "iCalUId": _occurrence_ical_uid(ev.ical_uid, day),
                    "originalStart": graph_instant(instance.original_start),
                }
            )
            extra = ""
            if instance.override is not None:
                fields.update(instance.override["fields"])
                fields["type"] = "exception"
                fields["lastModifiedDateTime"] = instance.override["lastModifiedDateTime"]
                extra = instance.override["changeKey"]
            fields["changeKey"] = _derived_key(ev.fields["changeKey"], instance.key, extra)
            event_id = _occurrence_id(ev.id, instance.key)
        content = fields.get("body", {}).get("content", "")
        out: dict[str, Any] = {}
        if odata_type:
            out["@odata.type"] = "#microsoft.graph.event"
        out["@odata.etag"] = f'W/"{fields["changeKey"]}"'
        out["id"] = event_id
        out.update(fields)
        out["bodyPreview"] = _preview(content)
        out["isAllDay"] = ev.all_day
        out["webLink"] = (
            f"https://outlook.office365.com/owa/?itemid={event_id}&exvsurl=1&path=/calendar/item"
        )
        out["start"] = _date_time_time_zone(instance.start, time_zone, all_day=ev.all_day)
        out["end"] = _date_time_time_zone(instance.end, time_zone, all_day=ev.all_day)
        if select is not None:
            wanted = {name.casefold() for name in select}
            kept = {"@odata.type", "@odata.etag", "id"}
            out = {k: v for k, v in out.items() if k in kept or k.casefold() in wanted}
            if "cancelledoccurrences" in wanted and ev.is_series and instance.key is None:
                out["cancelledOccurrences"] = [f"OID.{ev.id}.{k}" for k in sorted(ev.cancelled)]
        if expand_ext is not None:
            props = [
                {"id": pid, "value": value}
                for pid, value in ev.extended.items()
                if expand_ext == "*" or _same_property(pid, expand_ext)
            ]
            if props:  # Graph leaves the property out when the filter matches nothing
                out["singleValueExtendedProperties"] = props
        return out

    # ----------------------------------------------------------------------- notifications

    def route(self, public_origin: str, loopback_origin: str) -> None:
        """Deliver to ``loopback_origin`` what is addressed to ``public_origin``.

        ``graph.route("https://crm.test", app_server.base_url)`` lets the product keep its
        public ``PUBLIC_BASE_URL`` while the stand-in posts to the local test server.
        """
        self.routes[public_origin.rstrip("/")] = loopback_origin.rstrip("/")

    def _target(self, url: str) -> str:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        mapped = self.routes.get(origin)
        if mapped is not None:
            target = urlsplit(mapped)
            parts = parts._replace(scheme=target.scheme, netloc=target.netloc)
        target_url = urlunsplit(parts)
        if not _is_loopback(target_url):
            # The stand-in never reaches beyond this machine.
            raise ValueError(f"{url} is not a loopback address; add graph.route(...) for it")
        return target_url

    def _post(
        self,
        url: str,
        *,
        params: Mapping[str, str] | None,
        body: bytes,
        content_type: str,
        timeout: float,
    ) -> tuple[Delivery, str]:
        """POST to the product; returns the delivery and the response's Content-Type."""
        try:
            target = self._target(url)
        except ValueError as exc:
            return Delivery(url, None, 0.0, None, "", str(exc)), ""
        started = time.monotonic()
        try:
            with requests.Session() as session:
                session.trust_env = False  # no proxies, no netrc: straight to loopback
                response = session.post(
                    target,
                    params=params,
                    data=body,
                    headers={"Content-Type": content_type},
                    timeout=timeout,
                    verify=self._verify,
                    allow_redirects=False,
                )
                delivery = Delivery(
                    url, response.status_code, time.monotonic() - started, None, response.text
                )
                return delivery, response.headers.get("Content-Type", "")
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
            return Delivery(url, None, time.monotonic() - started, None, "", error), ""

    def _validate_endpoint(self, url: str) -> str | None:
        """The validation handshake; None when it passes, else the error message Graph gives."""
        token = (
            "Validation: Testing client application reachability for subscription Request-Id: "
            f"{uuid.uuid4()}"
        )
        result = self._post(
            url,
            params={"validationToken": token},
            body=b"",
            content_type="text/plain; charset=utf-8",
            timeout=VALIDATION_TIMEOUT,
        )
        delivery, content_type = result
        with self._lock:
            self.validations.append(
                Delivery(
                    url,
                    delivery.status,
                    delivery.latency,
                    token,
                    delivery.response_body,
                    delivery.error,
                )
            )
        if delivery.error is not None and "Timeout" in delivery.error:
            return "Subscription validation request timed out."
        ok = (
            delivery.status == 200
            and content_type.split(";")[0].strip().casefold() == "text/plain"
            and delivery.response_body == token
        )
        if ok:
            return None
        return (
            "Subscription validation request failed. Notification endpoint must respond with "
            "200 OK to validation request."
        )

    def notify_changes(
        self,
        changes: Iterable[tuple[str | GraphUser, str, str]],
        *,
        batch: bool = True,
        client_state: str | None = None,
        repeat: int = 1,
        reverse: bool = False,
    ) -> list[Delivery]:
        """POST change notifications for ``(user, event_id, change_type)`` to every live
        subscription of that mailbox whose changeType includes it.

        ``batch`` puts all notifications for one URL in one changeNotificationCollection
        (several subscriptions may share it); otherwise one POST each. ``client_state``
        replaces every item's clientState (a forged notification), ``repeat`` sends each POST
        again (duplicates), ``reverse`` sends them in reverse order. Returns the deliveries.
        """
        with self._lock:
            self._purge_expired()
            items: list[tuple[str, dict[str, Any]]] = []
            for user_ref, event_id, change_type in changes:
                owner = self.user(user_ref).id
                etag = self._etag(owner, event_id)
                for sub in self.subscriptions.values():
                    if sub.user_id != owner or change_type not in sub.change_types:
                        continue
                    resource = f"Users/{owner}/Events/{event_id}"
                    items.append(
                        (
                            sub.notification_url,
                            {
                                "id": base64.urlsafe_b64encode(secrets.token_bytes(9)).decode(),
                                "subscriptionId": sub.id,
                                "subscriptionExpirationDateTime": graph_instant(sub.expiration),
                                "clientState": sub.client_state
                                if client_state is None
                                else client_state,
                                "changeType": change_type,
                                "resource": resource,
                                "tenantId": sub.tenant_id,
                                "resourceData": {
                                    "@odata.type": "#Microsoft.Graph.Event",
                                    "@odata.id": resource,
                                    "@odata.etag": etag,
                                    "id": event_id,
                                },
                            },
                        )
                    )
        posts: list[tuple[str, list[dict[str, Any]]]] = []
        if batch:
            grouped: dict[str, list[dict[str, Any]]] = {}
            for url, item in items:
                grouped.setdefault(url, []).append(item)
            posts = list(grouped.items())
        else:
            posts = [(url, [item]) for url, item in items]
        if reverse:
            posts = [(url, list(reversed(value))) for url, value in reversed(posts)]
        return self._send_collections(posts, repeat)

    def flush_notifications(self, **options: Any) -> list[Delivery]:
        """Send what the mutators queued (``pending_notifications``) and clear the queue."""
        with self._lock:
            pending, self.pending_notifications = self.pending_notifications, []
        return self.notify_changes(pending, **options)

    def send_lifecycle(
        self, subscription_id: str, lifecycle_event: str, *, client_state: str | None = None
    ) -> Delivery:
        """POST a lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``
        or ``missed``) to the subscription's lifecycleNotificationUrl.

        ``subscriptionRemoved`` also removes the subscription, as Graph has; a
        ``reauthorizationRequired`` subscription stays flagged until reauthorized or renewed.
        """
        if lifecycle_event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
            raise ValueError(f"unknown lifecycle event {lifecycle_event!r}")
        with self._lock:
            sub = self.subscriptions[subscription_id]
            if sub.lifecycle_url is None:
                raise ValueError(f"subscription {subscription_id} has no lifecycleNotificationUrl")
            item = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": graph_instant(sub.expiration),
                "tenantId": sub.tenant_id,
                "clientState": sub.client_state if client_state is None else client_state,
                "lifecycleEvent": lifecycle_event,
            }
            if lifecycle_event == "subscriptionRemoved":
                del self.subscriptions[sub.id]
            elif lifecycle_event == "reauthorizationRequired":
                sub.needs_reauthorization = True
            url = sub.lifecycle_url
        return self._send_collections([(url, [item])], 1)[0]

    def send_raw(self, url: str, payload: Any) -> Delivery:
        """POST any JSON to a URL as Graph would (for malformed-payload tests)."""
        return self._send_collections([(url, payload)], 1, raw=True)[0]

    def _send_collections(
        self, posts: Sequence[tuple[str, Any]], repeat: int, *, raw: bool = False
    ) -> list[Delivery]:
        sent: list[Delivery] = []
        for url, value in posts:
            payload = value if raw else {"value": value}
            body = json.dumps(payload).encode()
            for _ in range(repeat):
                result = self._post(
                    url,
                    params=None,
                    body=body,
                    content_type="application/json; charset=utf-8",
                    timeout=self.notification_timeout,
                )
                delivery = result[0]
                delivery = Delivery(
                    url,
                    delivery.status,
                    delivery.latency,
                    payload,
                    delivery.response_body,
                    delivery.error,
                )
                sent.append(delivery)
        with self._lock:
            self.deliveries.extend(sent)
        return sent

    def _etag(self, owner: str, event_id: str) -> str:
        instance = self._lookup(owner, event_id)
        if instance is None:
            return 'W/"' + _new_change_key() + '"'  # deleted: the last etag is not kept
        rendered = self._render(instance, time_zone="UTC", select={"changeKey"}, expand_ext=None)
        return str(rendered["@odata.etag"])

    # ----------------------------------------------------------------------- test hooks

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 429,
        retry_after: float | None = 2,
        path_prefix: str | None = None,
        method: str | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with ``status`` (after authentication).

        ``path_prefix`` is matched case-insensitively against the path below /v1.0
        ("/users/u1/calendarView"); requests inside a $batch are matched one by one, as
        Graph throttles each. 429 and 503 carry ``Retry-After`` (whole seconds) unless
        ``retry_after`` is None.
        """
        default_code, default_message = {
            429: ("ApplicationThrottled", "Application is over its MailboxConcurrency limit."),
            503: (
                "ServiceNotAvailable",
                "The service is temporarily unavailable. Please retry later.",
            ),
            504: ("UnknownError", "The gateway timed out waiting for the service."),
        }.get(status, ("UnknownError", "Injected failure."))
        with self._lock:
            self._failures.append(
                _Failure(
                    remaining=count,
                    status=status,
                    retry_after=None if retry_after is None else math.ceil(retry_after),
                    path_prefix=path_prefix.casefold() if path_prefix else None,
                    method=method.upper() if method else None,
                    code=code or default_code,
                    message=message or default_message,
                )
            )

    def expire_delta_tokens(self, user: str | GraphUser | None = None) -> int:
        """Make every delta/skip token (of one mailbox, or all) answer 410 SyncStateNotFound."""
        owner = None if user is None else self.user(user).id
        count = 0
        with self._lock:
            for state in self._delta_tokens.values():
                if owner is None or state.user_id == owner:
                    state.expired, count = True, count + 1
            for skip in self._skip_tokens.values():
                if owner is None or skip.next_state.user_id == owner:
                    skip.expired, count = True, count + 1
        return count

    def expire_subscription(self, subscription_id: str) -> None:
        with self._lock:
            self.subscriptions[subscription_id].expiration = datetime.now(UTC) - timedelta(
                seconds=1
            )

    def log(
        self,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        status: int | None = None,
    ) -> list[GraphRequest]:
        """Logged requests by arrival; filters: method, path prefix (any case), status."""
        prefix = path_prefix.casefold() if path_prefix else None
        with self._lock:
            found = [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (prefix is None or r.path.casefold().startswith(prefix))
                and (status is None or r.status == status)
            ]
        return sorted(found, key=lambda r: r.at)

    def event_gets(self, user: str | GraphUser | None = None) -> int:
        """How many single-event GETs reached the calendar (of one mailbox, or all)."""
        owner = None if user is None else self.user(user).id
        pattern = re.compile(r"/users/[^/]+/events/[^/]+", re.IGNORECASE)
        return sum(
            1
            for r in self.log(method="GET")
            if pattern.fullmatch(r.path) and (owner is None or r.mailbox == owner)
        )

    def max_in_flight(
        self, user: str | GraphUser | None = None, *, app_id: str | None = None
    ) -> int:
        """The highest number of requests in progress at once for a mailbox, an app, or all."""
        if user is not None:
            key = "mailbox:" + self.user(user).id
        elif app_id is not None:
            key = "app:" + app_id
        else:
            key = "all"
        with self._lock:
            return self._max_in_flight.get(key, 0)

    # ----------------------------------------------------------------------- HTTP: plumbing

    def _route_table(self) -> list[tuple[str, re.Pattern[str], _Handler]]:
        user = r"/users/(?P<user>[^/]+)"
        event = user + r"/events/(?P<event>[^/]+)"
        table: list[tuple[str, str, _Handler]] = [
            ("GET", r"/users", self._list_users),
            ("GET", user, self._get_user),
            ("GET", r"/groups/(?P<group>[^/]+)/members", self._group_members),
            ("GET", user + r"/events", self._list_events),
            ("GET", event, self._get_event),
            ("GET", event + r"/instances", self._instances_of),
            ("GET", user + r"(?:/calendar)?/calendarview", self._calendar_view),
            ("GET", user + r"(?:/calendar)?/calendarview/delta(?:\(\))?", self._delta),
            ("POST", r"/subscriptions", self._create_subscription),
            ("GET", r"/subscriptions", self._list_subscriptions),
            ("GET", r"/subscriptions/(?P<sid>[^/]+)", self._get_subscription),
            ("PATCH", r"/subscriptions/(?P<sid>[^/]+)", self._renew_subscription),
            ("DELETE", r"/subscriptions/(?P<sid>[^/]+)", self._delete_subscription),
            ("POST", r"/subscriptions/(?P<sid>[^/]+)/reauthorize", self._reauthorize),
            ("POST", r"/\$batch", self._batch),
        ]
        return [(m, re.compile(p + "/?", re.IGNORECASE), h) for m, p, h in table]

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        arrived, wall = time.monotonic(), datetime.now(UTC)
        in_batch = bool(request.environ.get("standin.in_batch"))
        request_id = str(uuid.uuid4())
        client_request_id = request.headers.get("client-request-id", request_id)
        path = request.path
        caller: _Caller | None = None
        mailbox: str | None = None
        counted: list[str] = []
        try:
            if not path.startswith("/v1.0/") and path != "/v1.0":
                raise _GraphError(
                    400,
                    "BadRequest",
                    f"Invalid version: {path.split('/')[1] or '(none)'}. "
                    "The stand-in serves v1.0 only.",
                )
            path = path[len("/v1.0") :] or "/"
            caller = self._authenticate(request)
            if path.casefold().startswith("/me/") or path.casefold() == "/me":
                if not caller.delegated:
                    raise _GraphError(
                        400,
                        "BadRequest",
                        "/me request is only valid with delegated authentication flow.",
                    )
                path = f"/users/{caller.oid}{path[3:]}"
            mailbox = self._mailbox_of(path)
            counted = self._enter(caller, mailbox)
            self._inject(request.method, path)
            if self.latency:
                time.sleep(self.latency)
            response = self._dispatch(request, path, caller)
        except _GraphError as exc:
            response = _graph_error(exc, request_id, client_request_id, wall)
        finally:
            self._leave(counted)
        response.headers["request-id"] = request_id
        response.headers["client-request-id"] = client_request_id
        with self._lock:
            self.requests.append(
                GraphRequest(
                    at=arrived,
                    wall=wall,
                    method=request.method,
                    path=path if path.startswith("/") else request.path,
                    query={k: request.args.getlist(k) for k in request.args},
                    headers={
                        k: v for k, v in request.headers.items() if k.casefold() != "authorization"
                    },
                    status=response.status_code,
                    duration=time.monotonic() - arrived,
                    mailbox=mailbox,
                    app_id=caller.app_id if caller else None,
                    in_batch=in_batch,
                )
            )
        return response

    def _authenticate(self, request: Request) -> _Caller:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not token.strip() or scheme.casefold() != "bearer":
            raise _GraphError(
                401, "InvalidAuthenticationToken", "Access token is empty.", _www_authenticate()
            )
        try:
            claims = self.entra.verify(token.strip(), audiences=self.audiences)
        except TokenRejected as exc:
            message = {
                "malformed": "IDX14100: JWT is not well formed, there are no dots (.).",
                "expired": "Lifetime validation failed, the token is expired.",
                "audience": "Access token validation failure. Invalid audience.",
                "issuer": "Access token validation failure. Invalid issuer.",
            }.get(exc.reason, "Access token validation failure.")
            raise _GraphError(
                401, "InvalidAuthenticationToken", message, _www_authenticate()
            ) from None
        delegated = "scp" in claims
        return _Caller(
            app_id=str(claims.get("appid") or claims.get("azp") or ""),
            oid=str(claims.get("oid", "")),
            tenant_id=str(claims["tid"]),
            roles=frozenset(claims.get("roles") or ()),
            scopes=frozenset(str(claims.get("scp", "")).split()),
            delegated=delegated,
        )

    def _mailbox_of(self, path: str) -> str | None:
        match = re.match(r"/users/([^/]+)", path, re.IGNORECASE)
        if match is None:
            return None
        user = self._find_user(match.group(1))
        return user.id if user else match.group(1)

    def _enter(self, caller: _Caller, mailbox: str | None) -> list[str]:
        keys = ["all", "app:" + caller.app_id] + (["mailbox:" + mailbox] if mailbox else [])
        with self._lock:
            if self.concurrency_limit is not None:
                scope_key = (
                    "app:" + caller.app_id
                    if self.concurrency_scope == "app"
                    else ("mailbox:" + mailbox if mailbox else None)
                )
                if scope_key and self._in_flight.get(scope_key, 0) >= self.concurrency_limit:
                    raise _GraphError(
                        429,
                        "ApplicationThrottled",
                        "Application is over its MailboxConcurrency limit.",
                        {"Retry-After": "1"},
                    )
            for key in keys:
                self._in_flight[key] = self._in_flight.get(key, 0) + 1
                self._max_in_flight[key] = max(
                    self._max_in_flight.get(key, 0), self._in_flight[key]
                )
        return keys

    def _leave(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._in_flight[key] -= 1

    def _inject(self, method: str, path: str) -> None:
        if path.casefold() in ("/$batch", "/$batch/"):
            # A batch is throttled request by request; only an explicit prefix hits the envelope.
            candidates = [
                f for f in self._failures if f.path_prefix and "/$batch".startswith(f.path_prefix)
            ]
        else:
            candidates = self._failures
        with self._lock:
            failure = next(
                (
                    f
                    for f in candidates
                    if f.remaining > 0
                    and (f.method is None or f.method == method)
                    and (f.path_prefix is None or path.casefold().startswith(f.path_prefix))
                ),
                None,
            )
            if failure is None:
                return
            failure.remaining -= 1
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        raise _GraphError(failure.status, failure.code, failure.message, headers)

    def _dispatch(self, request: Request, path: str, caller: _Caller) -> Response:
        method_mismatch = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if method != request.method:
                method_mismatch = True
                continue
            context = _Context(request, caller, self.root_url, _prefer(request))
            return handler(context, **match.groupdict())
        if method_mismatch:
            raise _GraphError(
                405,
                "Request_BadRequest",
                "Specified HTTP method is not allowed for the request target.",
            )
        segment = path.strip("/").split("/")[-1] or path
        raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")

    # ----------------------------------------------------------------------- HTTP: directory

    def _require(
        self, ctx: _Context, needed: frozenset[str], *, mailbox: str | None = None
    ) -> None:
        if not ctx.caller.allowed(needed):
            if needed is CALENDAR_ROLES:
                raise _GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )
            raise _GraphError(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        if mailbox is not None:
            if mailbox in self.denied_mailboxes:
                raise _GraphError(403, "ErrorAccessDenied", "Access to OData is disabled.")
            if ctx.caller.delegated and mailbox != ctx.caller.oid:
                raise _GraphError(
                    403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
                )

    def _resolve_user(self, ref: str) -> GraphUser:
        user = self._find_user(ref)
        if user is None:
            raise _GraphError(404, "ErrorInvalidUser", f"The requested user '{ref}' is invalid.")
        return user

    def _list_users(self, ctx: _Context) -> Response:
        self._require(ctx, USER_ROLES)
        top = _int_arg(ctx.arg("$top"), default=100, low=1, high=999)
        select = _select(ctx.arg("$select"))
        with self._lock:
            users = sorted(self.users.values(), key=lambda u: u.userPrincipalName.casefold())
        offset = _offset(ctx.arg("$skiptoken"))
        page = users[offset : offset + top]
        body: dict[str, Any] = {
            "@odata.context": f"{ctx.root}/$metadata#users",
            "value": [_pick(u.json(), select) for u in page],
        }
        if offset + top < len(users):
            query = {"$top": str(top), "$skiptoken": _skiptoken(offset + top)}
            if ctx.arg("$select"):
                query["$select"] = ctx.arg("$select") or ""
            body["@odata.nextLink"] = f"{ctx.root}/users?{urlencode(query)}"
        return _ok(body)

    def _get_user(self, ctx: _Context, user: str) -> Response:
        if not (ctx.caller.delegated and self._mailbox_of(f"/users/{user}") == ctx.caller.oid):
            self._require(ctx, USER_ROLES)
        found = self._find_user(user)
        if found is None:
            raise _GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{user}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        body = {"@odata.context": f"{ctx.root}/$metadata#users/$entity", **found.json()}
        return _ok(_pick(body, _select(ctx.arg("$select"))))

    def _group_members(self, ctx: _Context, group: str) -> Response:
        self._require(ctx, GROUP_ROLES)
        found = self.groups.get(group)
        if found is None:
            raise _GraphError(
                404,
                "Request_ResourceNotFound",
                f"Resource '{group}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        top = _int_arg(ctx.arg("$top"), default=100, low=1, high=999)
        offset = _offset(ctx.arg("$skiptoken"))
        select = _select(ctx.arg("$select"))
        members = [self.users[m] for m in found.members if m in self.users]
        body: dict[str, Any] = {
            "@odata.context": f"{ctx.root}/$metadata#directoryObjects",
            "value": [
                {"@odata.type": "#microsoft.graph.user", **_pick(u.json(), select)}
                for u in members[offset : offset + top]
            ],
        }
        if offset + top < len(members):
            query = {"$top": str(top), "$skiptoken": _skiptoken(offset + top)}
            body["@odata.nextLink"] = f"{ctx.root}/groups/{group}/members?{urlencode(query)}"
        return _ok(body)

    # ----------------------------------------------------------------------- HTTP: events

    def _calendar_owner(self, ctx: _Context, user: str) -> GraphUser:
        found = self._resolve_user(user)
        self._require(ctx, CALENDAR_ROLES, mailbox=found.id)
        return found

    def _list_events(self, ctx: _Context, user: str) -> Response:
        owner = self._calendar_owner(ctx, user)
        if ctx.arg("$filter") is not None:
            raise _GraphError(
                400, "NotImplementedInStandIn", "The stand-in does not evaluate $filter."
            )
        top = _int_arg(ctx.arg("$top"), default=10, low=1, high=1000)
        offset = _int_arg(ctx.arg("$skip"), default=0, low=0, high=10**9)
        select = _select(ctx.arg("$select"))
        zone_name = ctx.prefer.get("outlook.timezone", "UTC")
        with self._lock:
            stored = sorted(self.mailboxes[owner.id].values(), key=lambda e: (e.start, e.id))
            value = [
                self._render(
                    self._whole(ev),
                    time_zone=zone_name,
                    select=select,
                    expand_ext=_expand_filter(ctx),
                )
                for ev in stored[offset : offset + top]
            ]
        body: dict[str, Any] = {
            "@odata.context": f"{ctx.root}/$metadata#users('{user}')/events",
            "value": value,
        }
        if offset + top < len(stored):
            body["@odata.nextLink"] = _next_link(ctx, offset + top)
        return _ok(body, _applied(ctx))

    def _get_event(self, ctx: _Context, user: str, event: str) -> Response:
        owner = self._calendar_owner(ctx, user)
        zone_name = ctx.prefer.get("outlook.timezone", "UTC")
        immutable = ctx.prefer.get("idtype", "").casefold() == "immutableid"
        with self._lock:
            instance = self._lookup(owner.id, from_rest_id(event))
            if instance is None:
                raise _GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            body = self._render(
                instance,
                time_zone=zone_name,
                select=_select(ctx.arg("$select")),
                expand_ext=_expand_filter(ctx),
            )
        if not immutable and "id" in body:
            body["id"] = rest_id(body["id"])
        return _ok(
            {"@odata.context": f"{ctx.root}/$metadata#users('{user}')/events/$entity", **body},
            _applied(ctx),
        )

    def _window(self, ctx: _Context) -> tuple[datetime, datetime]:
        start, end = ctx.arg("startDateTime"), ctx.arg("endDateTime")
        if not start or not end:
            raise _GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        try:
            return parse_instant(start), parse_instant(end)
        except ValueError as exc:
            raise _GraphError(400, "ErrorInvalidParameter", str(exc)) from None

    def _instances_of(self, ctx: _Context, user: str, event: str) -> Response:
        owner = self._calendar_owner(ctx, user)
        low, high = self._window(ctx)
        zone_name = ctx.prefer.get("outlook.timezone", "UTC")
        top = _int_arg(ctx.arg("$top"), default=10, low=1, high=1000)
        offset = _int_arg(ctx.arg("$skip"), default=0, low=0, high=10**9)
        select = _select(ctx.arg("$select"))
        with self._lock:
            ev = self.mailboxes[owner.id].get(event)
            if ev is None:
                raise _GraphError(
                    404, "ErrorItemNotFound", "The specified object was not found in the store."
                )
            found = (
                sorted(self._instances(ev, low, high), key=lambda i: i.start)
                if ev.is_series
                else []
            )
            value = [
                self._render(i, time_zone=zone_name, select=select, expand_ext=None)
                for i in found[offset : offset + top]
            ]
        body: dict[str, Any] = {
            "@odata.context": f"{ctx.root}/$metadata#Collection(event)",
            "value": value,
        }
        if offset + top < len(found):
            body["@odata.nextLink"] = _next_link(ctx, offset + top)
        return _ok(body, _applied(ctx))

    def _calendar_view(self, ctx: _Context, user: str) -> Response:
        owner = self._calendar_owner(ctx, user)
        low, high = self._window(ctx)
        zone_name = ctx.prefer.get("outlook.timezone", "UTC")
        top = _int_arg(ctx.arg("$top"), default=10, low=1, high=1000)
        offset = _int_arg(ctx.arg("$skip"), default=0, low=0, high=10**9)
        select = _select(ctx.arg("$select"))
        with self._lock:
            found = self._view(owner.id, low, high)
            value = [
                self._render(i, time_zone=zone_name, select=select, expand_ext=_expand_filter(ctx))
                for i in found[offset : offset + top]
            ]
        body: dict[str, Any] = {
            "@odata.context": f"{ctx.root}/$metadata#Collection(event)",
            "value": value,
        }
        if offset + top < len(found):
            body["@odata.nextLink"] = _next_link(ctx, offset + top)
        return _ok(body, _applied(ctx))

    # ----------------------------------------------------------------------- HTTP: delta

    def _delta(self, ctx: _Context, user: str) -> Response:
        owner = self._calendar_owner(ctx, user)
        unsupported = [name for name in _DELTA_UNSUPPORTED if ctx.arg(name) is not None]
        if unsupported:
            # Observed wording of the real service for calendarView delta.
            raise _GraphError(
                400,
                "ErrorInvalidUrlQuery",
                "The following parameters are not supported with change tracking over the "
                "'CalendarView' resource: '$orderby, $filter, $select, $expand, $search, $top'.",
            )
        page_size = _int_arg(
            ctx.prefer.get("odata.maxpagesize"), default=self.delta_page_size, low=1, high=1000
        )
        skip, delta = ctx.arg("$skiptoken"), ctx.arg("$deltatoken")
        with self._lock:
            if skip is not None:
                state = self._skip_tokens.get(skip)
                if state is None or state.expired:
                    raise _sync_state_not_found()
                items, offset, next_state = state.items, state.offset, state.next_state
            elif delta is not None:
                previous = self._delta_tokens.get(delta)
                if previous is None or previous.expired or previous.user_id != owner.id:
                    raise _sync_state_not_found()
                items, next_state = self._changes_since(previous)
                offset = 0
            else:
                low, high = self._window(ctx)
                zone_name = ctx.prefer.get("outlook.timezone", "UTC")
                start_state = _DeltaToken(owner.id, user, low, high, zone_name, {}, 0)
                items, next_state = self._changes_since(start_state)
                offset = 0
            end = offset + page_size
            page = [
                self._render(
                    item, time_zone=next_state.time_zone, select=None, expand_ext=None,
                    odata_type=True,
                )
                if isinstance(item, _Instance)
                else item
                for item in items[offset:end]
            ]  # fmt: skip
            body: dict[str, Any] = {
                "@odata.context": f"{ctx.root}/$metadata#Collection(event)",
                "value": page,
            }
            link = f"{ctx.root}/users/{next_state.user_segment}/calendarView/delta"
            if end < len(items):
                token = secrets.token_urlsafe(24)
                self._skip_tokens[token] = _SkipToken(items, end, next_state)
                body["@odata.nextLink"] = f"{link}?$skiptoken={token}"
            else:
                token = secrets.token_urlsafe(24)
                self._delta_tokens[token] = next_state
                body["@odata.deltaLink"] = f"{link}?$deltatoken={token}"
        headers = (
            {"Preference-Applied": f"odata.maxpagesize={page_size}"}
            if "odata.maxpagesize" in ctx.prefer
            else {}
        )
        return _ok(body, headers)

    def _changes_since(
        self, previous: _DeltaToken
    ) -> tuple[list[_Instance | dict[str, Any]], _DeltaToken]:
        """The items a delta round returns after ``previous``, and the state it ends in.

        Changed instances are rendered as their page is served (a large mailbox's first page
        does not wait for every event to be rendered); removals are ready-made items.
        """
        current: dict[str, tuple[_Instance, str]] = {}
        for instance in self._view(previous.user_id, previous.start, previous.end):
            event_id, change_key = _identity(instance)
            current[event_id] = (instance, change_key)
        changed: list[_Instance | dict[str, Any]] = [
            instance
            for item_id, (instance, change_key) in current.items()
            if previous.snapshot.get(item_id) != change_key
        ]
        removed = [item_id for item_id in previous.snapshot if item_id not in current]
        if self.report_out_of_window_changes and previous.seq:
            # Documented quirk: events outside the window that were added, updated or deleted
            # since the last round come back as @removed too; clients filter by date.
            touched = [
                ev.id
                for ev in self.mailboxes.get(previous.user_id, {}).values()
                if ev.modified_seq > previous.seq
            ] + [
                i
                for seq, owner, i in self._tombstones
                if owner == previous.user_id and seq > previous.seq
            ]
            for event_id in touched:
                if (
                    event_id not in current
                    and event_id not in removed
                    and not any(key.startswith(event_id + "_") for key in current)
                ):
                    removed.append(event_id)
        items = changed + [
            {
                "@odata.type": "#microsoft.graph.event",
                "id": item_id,
                "@removed": {"reason": "deleted"},
            }
            for item_id in removed
        ]
        next_state = _DeltaToken(
            previous.user_id,
            previous.user_segment,
            previous.start,
            previous.end,
            previous.time_zone,
            {item_id: change_key for item_id, (_, change_key) in current.items()},
            self._seq,
        )
        return items, next_state

    # ----------------------------------------------------------------------- HTTP: subscriptions

    def _purge_expired(self) -> None:
        # Graph deletes a subscription when it expires.
        now = datetime.now(UTC)
        for sid in [s.id for s in self.subscriptions.values() if s.expiration <= now]:
            del self.subscriptions[sid]

    def _expiration(self, value: Any) -> datetime:
        if not isinstance(value, str):
            raise _GraphError(400, "InvalidRequest", "expirationDateTime is required.")
        try:
            asked = parse_instant(value)
        except ValueError:
            raise _GraphError(
                400, "InvalidRequest", f"Invalid expirationDateTime '{value}'."
            ) from None
        now = datetime.now(UTC)
        if asked <= now:
            raise _GraphError(
                400, "InvalidRequest", "Subscription expiration must be in the future."
            )
        if asked > now + timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
            raise _GraphError(
                400,
                "InvalidRequest",
                f"Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in "
                "the future.",
            )
        # Documented: a value under 45 minutes from now is raised to 45 minutes.
        return max(asked, now + timedelta(minutes=MIN_SUBSCRIPTION_MINUTES))

    def _subscription_user(self, ctx: _Context, resource: str) -> GraphUser:
        match = re.fullmatch(
            r"/?(?:users/(?P<user>[^/]+)|(?P<me>me))/events", resource, re.IGNORECASE
        )
        if match is None:
            raise _GraphError(
                400,
                "InvalidRequest",
                f"Resource '{resource}' is not supported by the stand-in "
                "(only /users/{id}/events and /me/events).",
            )
        if match.group("me"):
            if not ctx.caller.delegated:
                raise _GraphError(
                    400,
                    "BadRequest",
                    "/me request is only valid with delegated authentication flow.",
                )
            return self._resolve_user(ctx.caller.oid)
        return self._resolve_user(match.group("user"))

    def _check_url(self, name: str, url: Any) -> str:
        if not isinstance(url, str) or not urlsplit(url).scheme or not urlsplit(url).netloc:
            raise _GraphError(
                400, "InvalidRequest", f"{name} is required and must be an absolute URL."
            )
        if self.require_https_notification_url and urlsplit(url).scheme != "https":
            raise _GraphError(400, "InvalidRequest", f"The {name} must be an https URL.")
        return url

    def _create_subscription(self, ctx: _Context) -> Response:
        body = ctx.json_body()
        change_text = body.get("changeType")
        change_types = tuple(
            sorted({c.strip() for c in str(change_text or "").split(",") if c.strip()})
        )
        if not change_types or any(c not in CHANGE_TYPES for c in change_types):
            raise _GraphError(400, "InvalidRequest", f"Invalid changeType '{change_text}'.")
        notification_url = self._check_url("notificationUrl", body.get("notificationUrl"))
        lifecycle_url = body.get("lifecycleNotificationUrl")
        if lifecycle_url is not None:
            lifecycle_url = self._check_url("lifecycleNotificationUrl", lifecycle_url)
        resource = body.get("resource")
        if not isinstance(resource, str):
            raise _GraphError(400, "InvalidRequest", "resource is required.")
        if body.get("includeResourceData"):
            raise _GraphError(
                400,
                "NotImplementedInStandIn",
                "Rich notifications are not implemented by the stand-in.",
            )
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > MAX_CLIENT_STATE
        ):
            raise _GraphError(
                400,
                "InvalidRequest",
                f"clientState must be a string of at most {MAX_CLIENT_STATE} characters.",
            )
        expiration = self._expiration(body.get("expirationDateTime"))
        owner = self._subscription_user(ctx, resource)
        self._require(ctx, CALENDAR_ROLES, mailbox=owner.id)

        def duplicate() -> Subscription | None:
            self._purge_expired()
            return next(
                (
                    s
                    for s in self.subscriptions.values()
                    if s.app_id == ctx.caller.app_id
                    and s.user_id == owner.id
                    and s.change_types == change_types
                ),
                None,
            )

        with self._lock:
            taken = duplicate()
        if taken is None:
            # The handshake runs outside the lock: the product may call Graph while answering.
            for url in [notification_url, *([lifecycle_url] if lifecycle_url else [])]:
                problem = self._validate_endpoint(url)
                if problem is not None:
                    raise _GraphError(400, "ValidationError", problem)
        with self._lock:
            taken = taken or duplicate()
            if taken is not None:
                # Documented: same changeType + resource: 409 (code as observed).
                raise _GraphError(
                    409,
                    "ObjectIdentifierInUse",
                    f"Subscription Id {taken.id} already exists for the requested combination",
                )
            sub = Subscription(
                id=str(uuid.uuid4()),
                app_id=ctx.caller.app_id,
                creator_id=ctx.caller.oid,
                tenant_id=ctx.caller.tenant_id,
                resource=resource,
                user_id=owner.id,
                change_types=change_types,
                change_type_text=str(change_text),
                notification_url=notification_url,
                lifecycle_url=lifecycle_url,
                expiration=expiration,
                client_state=client_state,
            )
            self.subscriptions[sub.id] = sub
            return _ok(sub.json(ctx.root), status=201)

    def _own_subscription(self, ctx: _Context, sid: str) -> Subscription:
        self._purge_expired()
        sub = self.subscriptions.get(sid)
        if sub is None or sub.app_id != ctx.caller.app_id:
            raise _GraphError(404, "ResourceNotFound", "The object was not found.")
        return sub

    def _list_subscriptions(self, ctx: _Context) -> Response:
        with self._lock:
            self._purge_expired()
            value = [
                s.json(ctx.root)
                for s in self.subscriptions.values()
                if s.app_id == ctx.caller.app_id
            ]
        for item in value:
            item.pop("@odata.context")
        return _ok({"@odata.context": f"{ctx.root}/$metadata#subscriptions", "value": value})

    def _get_subscription(self, ctx: _Context, sid: str) -> Response:
        with self._lock:
            return _ok(self._own_subscription(ctx, sid).json(ctx.root))

    def _renew_subscription(self, ctx: _Context, sid: str) -> Response:
        body = ctx.json_body()
        if "lifecycleNotificationUrl" in body:
            raise _GraphError(
                400,
                "InvalidRequest",
                "lifecycleNotificationUrl cannot be updated; delete and recreate the subscription.",
            )
        with self._lock:
            self._own_subscription(ctx, sid)
        new_url = body.get("notificationUrl")
        if new_url is not None:
            problem = self._validate_endpoint(self._check_url("notificationUrl", new_url))
            if problem is not None:
                raise _GraphError(400, "ValidationError", problem)
        with self._lock:
            sub = self._own_subscription(ctx, sid)
            if "expirationDateTime" in body:
                sub.expiration = self._expiration(body["expirationDateTime"])
            if new_url is not None:
                sub.notification_url = new_url
            sub.needs_reauthorization = False  # renewing also reauthorizes
            return _ok(sub.json(ctx.root))

    def _delete_subscription(self, ctx: _Context, sid: str) -> Response:
        with self._lock:
            sub = self._own_subscription(ctx, sid)
            del self.subscriptions[sub.id]
        return Response(status=204)

    def _reauthorize(self, ctx: _Context, sid: str) -> Response:
        with self._lock:
            self._own_subscription(ctx, sid).needs_reauthorization = False
        return Response(status=204)

    # ----------------------------------------------------------------------- HTTP: $batch

    def _batch(self, ctx: _Context) -> Response:
        body = ctx.json_body()
        steps = body.get("requests")
        if not isinstance(steps, list) or not all(isinstance(s, dict) for s in steps):
            raise _GraphError(400, "BadRequest", "Invalid batch payload format.")
        if len(steps) > MAX_BATCH:
            raise _GraphError(
                400, "BadRequest", f"Number of batch requests exceeds the limit of {MAX_BATCH}."
            )
        ids = [str(s.get("id", "")) for s in steps]
        if any(not i for i in ids) or len({i.casefold() for i in ids}) != len(ids):
            raise _GraphError(400, "BadRequest", "Batch request ids must be present and unique.")
        for step in steps:
            if not step.get("method") or not isinstance(step.get("url"), str):
                raise _GraphError(400, "BadRequest", "Each batch request needs a method and a url.")
            if urlsplit(step["url"]).scheme:
                raise _GraphError(400, "BadRequest", "Batch request urls must be relative.")
            if "body" in step and not any(
                k.casefold() == "content-type" for k in (step.get("headers") or {})
            ):
                raise _GraphError(
                    400, "BadRequest", "Content-Type header is required when a body is present."
                )
        authorization = ctx.request.headers.get("Authorization", "")
        if any(step.get("dependsOn") for step in steps):
            # Sequential, in the given order; a failed dependency fails its dependents (424).
            results: dict[str, dict[str, Any]] = {}
            for step in steps:
                failed = [
                    d
                    for d in step.get("dependsOn") or []
                    if results.get(d, {}).get("status", 500) >= 400
                ]
                if failed:
                    results[step["id"]] = {
                        "id": step["id"],
                        "status": 424,
                        "body": {
                            "error": {"code": "FailedDependency", "message": "Failed dependency."}
                        },
                    }
                else:
                    results[step["id"]] = self._run_step(step, authorization)
            responses = list(results.values())
        else:
            with ThreadPoolExecutor(max_workers=BATCH_PARALLELISM) as pool:
                responses = list(pool.map(lambda s: self._run_step(s, authorization), steps))
        return _ok({"responses": responses})

    def _run_step(self, step: Mapping[str, Any], authorization: str) -> dict[str, Any]:
        url = urlsplit("/" + str(step["url"]).lstrip("/"))
        headers = {str(k): str(v) for k, v in (step.get("headers") or {}).items()}
        headers["Authorization"] = authorization
        data = step.get("body")
        builder = EnvironBuilder(
            path="/v1.0" + url.path,
            query_string=url.query,
            method=str(step["method"]).upper(),
            headers=list(headers.items()),
            data=json.dumps(data) if isinstance(data, (dict, list)) else data,
        )
        environ = builder.get_environ()
        builder.close()
        environ["standin.in_batch"] = True
        app_iter, status, response_headers = run_wsgi_app(self._wsgi, environ)
        try:
            raw = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        result: dict[str, Any] = {
            "id": step["id"],
            "status": int(status.split()[0]),
            "headers": {
                k: v
                for k, v in response_headers.items()
                if k in ("Content-Type", "Retry-After", "Location", "Preference-Applied")
            },
        }
        if raw:
            result["body"] = json.loads(raw)
        return result


# --------------------------------------------------------------------------- module helpers


def _overlaps(start: datetime, end: datetime, low: datetime, high: datetime) -> bool:
    if start == end:
        return low <= start < high
    return start < high and end > low


def _location(name: str | None) -> dict[str, Any]:
    return {
        "displayName": name or "",
        "locationType": "default",
        "uniqueIdType": "unknown" if not name else "private",
        "address": {},
        "coordinates": {},
    }


def _attendee(value: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"emailAddress": {"address": value, "name": value}}
    email = dict(value.get("emailAddress") or {})
    email.setdefault("name", email.get("address", ""))
    return {
        "type": value.get("type", "required"),
        "status": dict(value.get("status") or {"response": "none", "time": NEVER}),
        "emailAddress": email,
    }


def _with_status(
    attendees: list[dict[str, Any]], address: str, status: Mapping[str, str]
) -> list[dict[str, Any]]:
    updated: list[dict[str, Any]] = json.loads(json.dumps(attendees))
    for attendee in updated:
        if attendee["emailAddress"]["address"].casefold() == address.casefold():
            attendee["status"] = dict(status)
    return updated


def _convenience(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Graph JSON for the shorthand accepted by update_event (body/location/attendees)."""
    out = dict(changes)
    if isinstance(out.get("body"), str):
        out["body"] = {"contentType": "html", "content": out["body"]}
    if "location" in out and (out["location"] is None or isinstance(out["location"], str)):
        out["locations"] = [_location(out["location"])] if out["location"] else []
        out["location"] = _location(out["location"])
    if "attendees" in out:
        out["attendees"] = [_attendee(a) for a in out["attendees"]]
    for python_name, graph_name in (
        ("show_as", "showAs"),
        ("is_online_meeting", "isOnlineMeeting"),
    ):
        if python_name in out:
            out[graph_name] = out.pop(python_name)
    return out


# Properties each copy keeps for itself when the organizer changes the meeting.
_PER_COPY: Final = frozenset(
    {
        "responseStatus",
        "isOrganizer",
        "categories",
        "showAs",
        "isReminderOn",
        "reminderMinutesBeforeStart",
        "show_as",
    }
)


def _shared(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in changes.items() if k not in _PER_COPY}


def _plain(exception: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in exception.items() if k not in ("originalStart", "start", "end")}


def _times(exception: Mapping[str, Any]) -> dict[str, Any]:
    return {k: exception[k] for k in ("originalStart", "start", "end")}


def _full_recurrence(recurrence: Mapping[str, Any], ev: StoredEvent) -> dict[str, Any]:
    """A patternedRecurrence with every field Graph returns (placeholders included)."""
    pattern = dict(recurrence.get("pattern") or {})
    range_ = dict(recurrence.get("range") or {})
    zone = ZoneInfo("UTC") if ev.all_day else _zone(ev.time_zone)
    first = ev.start.astimezone(zone).date().isoformat()
    full = {
        "pattern": {
            "type": pattern.get("type"),
            "interval": pattern.get("interval", 1),
            "month": pattern.get("month", 0),
            "dayOfMonth": pattern.get("dayOfMonth", 0),
            "daysOfWeek": list(pattern.get("daysOfWeek", [])),
            "firstDayOfWeek": pattern.get("firstDayOfWeek", "sunday"),
            "index": pattern.get("index", "first"),
        },
        "range": {
            "type": range_.get("type", "noEnd"),
            "startDate": range_.get("startDate", first),
            "endDate": range_.get("endDate", "0001-01-01"),
            "recurrenceTimeZone": range_.get("recurrenceTimeZone", _windows_name(ev.time_zone)),
            "numberOfOccurrences": range_.get("numberOfOccurrences", 0),
        },
    }
    to_rrule(full, start_local=ev.start.astimezone(zone).replace(tzinfo=None))  # validates
    return full


def _preview(content: str) -> str:
    text = html.unescape(re.sub(r"<[^>]+>", " ", content))
    return re.sub(r"\s+", " ", text).strip()[:255]


def _same_property(stored: str, asked: str) -> bool:
    def norm(value: str) -> str:
        return re.sub(r"\s+", " ", value.strip()).casefold()

    return norm(stored) == norm(asked)


def _expand_filter(ctx: _Context) -> str | None:
    """``"*"``, one property id, or None, from ``$expand=singleValueExtendedProperties(...)``."""
    value = ctx.arg("$expand")
    if not value:
        return None
    match = re.fullmatch(
        r"\s*singleValueExtendedProperties\s*(?:\(\s*\$filter\s*=\s*id\s+eq\s+'(?P<id>(?:[^']|'')*)'\s*\))?\s*",
        value,
        re.IGNORECASE,
    )
    if match is None:
        raise _GraphError(
            400, "NotImplementedInStandIn", f"The stand-in does not support $expand={value}."
        )
    return match.group("id").replace("''", "'") if match.group("id") else "*"


def _select(value: str | None) -> set[str] | None:
    if not value:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _pick(item: Mapping[str, Any], select: set[str] | None) -> dict[str, Any]:
    if select is None:
        return dict(item)
    wanted = {name.casefold() for name in select} | {"id", "@odata.context", "@odata.type"}
    return {k: v for k, v in item.items() if k.casefold() in wanted}


def _int_arg(value: str | None, *, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _GraphError(
            400, "BadRequest", f"Invalid value '{value}' for an integer parameter."
        ) from None
    if not low <= number <= high:
        raise _GraphError(
            400, "BadRequest", f"The value {number} must be between {low} and {high}."
        )
    return number


def _occurrence_id(event_id: str, key: str) -> str:
    return f"{event_id}_{key.replace('-', '')}"


def _identity(instance: _Instance) -> tuple[str, str]:
    """(id, changeKey) of an instance as `_render` gives them, without rendering it."""
    ev = instance.event
    if instance.key is None:
        return ev.id, ev.fields["changeKey"]
    extra = instance.override["changeKey"] if instance.override is not None else ""
    return _occurrence_id(ev.id, instance.key), _derived_key(
        ev.fields["changeKey"], instance.key, extra
    )


def _skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
    except ValueError:
        raise _GraphError(400, "BadRequest", "Invalid $skiptoken.") from None


def _next_link(ctx: _Context, offset: int) -> str:
    query = [(k, v) for k, v in ctx.request.args.items(multi=True) if k.casefold() != "$skip"]
    query.append(("$skip", str(offset)))
    return f"{ctx.root}{ctx.request.path[len('/v1.0') :]}?{urlencode(query)}"


# Outlook gives an item two REST ids: the regular one (what Office.js convertToRestId returns)
# and the immutable one (asked for with Prefer: IdType="ImmutableId"). The stand-in keeps events
# by their immutable id, which is what the product always asks for; a single-event GET also
# accepts the regular form and answers in it without that preference. Real ids are opaque;
# here the regular form is the immutable one behind a prefix.
_REST_PREFIX = "AAMkREST-"


def rest_id(immutable_id: str) -> str:
    """The regular REST id of the item with this immutable id."""
    return _REST_PREFIX + immutable_id


def from_rest_id(event_id: str) -> str:
    """The immutable id of an item named by either of its ids."""
    return event_id.removeprefix(_REST_PREFIX)


def _prefer(request: Request) -> dict[str, str]:
    """``Prefer`` values by name: ``odata.maxpagesize``, ``outlook.timezone``, ``IdType``."""
    found: dict[str, str] = {}
    for header in request.headers.getlist("Prefer"):
        for part in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", header):
            name, _, value = part.strip().partition("=")
            if name:
                found[name.strip().casefold()] = value.strip().strip('"')
    return found


def _applied(ctx: _Context) -> dict[str, str]:
    zone = ctx.prefer.get("outlook.timezone")
    return {"Preference-Applied": f'outlook.timezone="{zone}"'} if zone else {}


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _www_authenticate() -> dict[str, str]:
    return {
        "WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/'
        f'common/oauth2/authorize", client_id="{GRAPH_APP_ID}"'
    }


def _sync_state_not_found() -> _GraphError:
    # Observed on calendarView delta (microsoft-graph-docs#2350): 410 Gone, SyncStateNotFound.
    return _GraphError(
        410,
        "SyncStateNotFound",
        "The sync state generation is not found; generation=1;[highest=2][2].",
    )


def _ok(
    body: Mapping[str, Any], headers: Mapping[str, str] | None = None, *, status: int = 200
) -> Response:
    response = Response(json.dumps(body), status=status, content_type=_ODATA_JSON)
    response.headers["OData-Version"] = "4.0"
    response.headers["Cache-Control"] = "no-cache"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _graph_error(
    error: _GraphError, request_id: str, client_request_id: str, at: datetime
) -> Response:
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": f"{at:%Y-%m-%dT%H:%M:%S}",
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    response = Response(json.dumps(body), status=error.status, content_type="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
