"""Google APIs stand-in: the OAuth token endpoint, Calendar v3, Gmail v1 and Admin Directory v1.

One HTTPS server (``base_url``) speaks the documented contracts the product relies on, so the
product's own HTTP client and google-auth talk to it unchanged (see README.md for the links):

* ``POST /token`` - the service-account JWT-bearer grant
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``) that
  ``service_account.Credentials`` sends to the key file's ``token_uri``: an RS256 assertion
  signed with the service account's key (``iss``, ``scope``, ``aud`` = Google's token endpoint
  or ``token_uri``, ``iat``, ``exp``, and ``sub`` for domain-wide delegation). Errors have
  Google's OAuth shape ``{"error", "error_description"}``.
* ``/calendar/v3`` - events list (full and incremental sync, paging, 410 ``fullSyncRequired``),
  get, patch, watch (with the ``sync`` message) and ``channels/stop``.
* ``/gmail/v1`` - users.watch / stop / getProfile, history.list (404 for an expired
  ``startHistoryId``), messages.list and messages.get with invitation MIME trees.
* ``/admin/directory/v1/users`` - the directory, for an admin subject.

Every API request needs ``Authorization: Bearer <token>`` issued by ``/token``; the token acts
as its ``sub`` (the impersonated user) with the scopes granted. API errors have Google's JSON
shape ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}], "status"}}``.

Tests drive it from Python: ``make_service_account_key`` / ``write_service_account_file``,
``grant_delegation``, ``add_user``, ``set_admin``, ``create_event`` and the other calendar
mutators (each queues the push notifications Google would send; ``flush_notifications`` sends
them), ``deliver_invitation``, ``pubsub_push``, ``expire_sync_tokens``, ``expire_history``,
``fail_next`` and the ``requests`` log.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import quote, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dateutil.rrule import rrulestr
from werkzeug.wrappers import Request, Response

from tests.standins.server import BackgroundServer
from tests.standins.tls import LocalCA

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = [
    "DEFAULT_CLIENT_EMAIL",
    "Delivery",
    "Google",
    "GoogleRequest",
    "GoogleUser",
    "IssuedToken",
]

SCOPE: Final = "https://www.googleapis.com/auth/"
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth always signs ``aud`` = Google's token endpoint, whatever the key's token_uri
# (google/oauth2/service_account.py), so those audiences are accepted as well as our own URL.
GOOGLE_TOKEN_AUDIENCES: Final = (
    "https://oauth2.googleapis.com/token",
    "https://www.googleapis.com/oauth2/v4/token",
    "https://accounts.google.com/o/oauth2/token",
)
DEFAULT_CLIENT_EMAIL: Final = "crm-sync@meeting-to-crm.iam.gserviceaccount.com"
CALENDAR_READ: Final = frozenset(
    SCOPE + s
    for s in (
        "calendar",
        "calendar.readonly",
        "calendar.events",
        "calendar.events.readonly",
        "calendar.events.owned",
        "calendar.events.owned.readonly",
    )
)
CALENDAR_WRITE: Final = frozenset(
    SCOPE + s for s in ("calendar", "calendar.events", "calendar.events.owned")
)
GMAIL_METADATA: Final = SCOPE + "gmail.metadata"
GMAIL_READ: Final = frozenset(
    {"https://mail.google.com/", SCOPE + "gmail.readonly", SCOPE + "gmail.modify", GMAIL_METADATA}
)
DIRECTORY_READ: Final = frozenset(
    SCOPE + s for s in ("admin.directory.user.readonly", "admin.directory.user")
)
MAX_CHANNEL_TTL: Final = 604_800  # seconds; the documented default (and the assumed cap)
GMAIL_WATCH_DAYS: Final = 7
USER_AGENT: Final = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"
PUBSUB_USER_AGENT: Final = "CloudPubSub-Google"
_BASE32HEX: Final = "0123456789abcdefghijklmnopqrstuv"
_STATUS_NAMES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    410: "FAILED_PRECONDITION",  # stand-in choice: Calendar's 410 body is documented without it
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_INSTANCE_ID: Final = re.compile(r"(?P<master>[a-v0-9]+)_(?P<stamp>\d{8}T\d{6}Z|\d{8})")


# --------------------------------------------------------------------------- small helpers


def rfc3339(moment: datetime) -> str:
    """A timestamp as Google writes ``updated``/``created``: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _parse_rfc3339(text: str) -> datetime:
    """An aware datetime; Google rejects timeMin/timeMax without an offset (400)."""
    value = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(text)
    return value.astimezone(UTC)


def _event_id() -> str:
    """A Calendar-generated event id: base32hex (a-v, 0-9), 26 characters."""
    return "".join(_BASE32HEX[secrets.randbelow(32)] for _ in range(26))


def _numeric_id(digits: int = 21) -> str:
    return str(10 ** (digits - 1) + secrets.randbelow(9 * 10 ** (digits - 1)))


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _to_moment(value: datetime | date | str, zone_name: str) -> datetime:
    """An aware UTC instant from a datetime or ISO string; naive means wall time in the zone."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=_zone(zone_name))
    return value.astimezone(UTC)


def _to_date(value: datetime | date | str) -> date:
    if isinstance(value, str):
        return date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return value.date()
    return value


def _stamp(original: datetime | date) -> str:
    """The suffix Google gives instance ids: ``YYYYMMDDTHHMMSSZ`` (UTC) or ``YYYYMMDD``."""
    if isinstance(original, datetime):
        return f"{original.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{original:%Y%m%d}"


def _parse_stamp(stamp: str) -> datetime | date:
    if "T" in stamp:
        return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return datetime.strptime(stamp, "%Y%m%d").replace(tzinfo=UTC).date()


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


# --------------------------------------------------------------------------- records


@dataclass
class GoogleUser:
    email: str
    name: str
    id: str
    time_zone: str = "UTC"
    suspended: bool = False
    archived: bool = False

    @property
    def domain(self) -> str:
        return self.email.split("@", 1)[1]

    def json(self, *, is_admin: bool, customer_id: str) -> dict[str, Any]:
        given, _, family = self.name.partition(" ")
        return {
            "kind": "admin#directory#user",
            "id": self.id,
            "etag": f'"{self.id[-8:]}"',
            "primaryEmail": self.email,
            "name": {"givenName": given, "familyName": family, "fullName": self.name},
            "isAdmin": is_admin,
            "isDelegatedAdmin": False,
            "agreedToTerms": True,
            "suspended": self.suspended,
            "archived": self.archived,
            "changePasswordAtNextLogin": False,
            "ipWhitelisted": False,
            "emails": [{"address": self.email, "primary": True}],
            "customerId": customer_id,
            "orgUnitPath": "/",
            "isMailboxSetup": True,
            "includeInGlobalAddressList": True,
        }


@dataclass
class _ServiceAccount:
    client_email: str
    client_id: str
    project_id: str
    public_keys: dict[str, rsa.RSAPublicKey]  # private_key_id -> public key


@dataclass(frozen=True)
class IssuedToken:
    """What an access token stands for: the service account, the subject and the scopes."""

    access_token: str
    client_email: str
    client_id: str
    subject: str | None  # the impersonated user (domain-wide delegation), else None
    scopes: frozenset[str]
    expires_at: float  # time.time()


@dataclass(frozen=True)
class GoogleRequest:
    """One request as the stand-in saw it (Authorization left out)."""

    at: float  # time.monotonic() on arrival
    method: str
    path: str  # full path, e.g. /calendar/v3/calendars/primary/events
    query: dict[str, list[str]]
    subject: str | None  # the user the token acts as
    client_email: str | None
    status: int


@dataclass(frozen=True)
class Delivery:
    """One POST from the stand-in to the product (a Calendar push or a Pub/Sub push)."""

    url: str  # as registered (before route mapping)
    kind: Literal["calendar", "pubsub"]
    headers: dict[str, str]
    body: str
    status: int | None  # None: no response (refused, timed out, not loopback)
    error: str | None = None


@dataclass
class _Series:
    """An event (single, series master or exception) as its organizer defines it."""

    id: str
    ical_uid: str
    organizer: str
    summary: str
    description: str
    location: str
    start: datetime | date
    end: datetime | date
    time_zone: str
    all_day: bool
    attendees: list[dict[str, Any]]
    recurrence: list[str] | None
    visibility: str
    transparency: str
    created: datetime
    shared: dict[str, str] = field(default_factory=dict)
    sequence: int = 0
    cancelled: bool = False
    recurring_event_id: str | None = None
    original_start: datetime | date | None = None


@dataclass
class _Copy:
    """The copy of an event on one calendar (organizer's or an internal attendee's)."""

    owner: str
    series: _Series
    private: dict[str, str]
    updated: datetime
    change: int
    removed: bool = False  # the owner deleted it from their calendar

    @property
    def etag(self) -> str:
        return f'"{3_400_000_000_000_000 + self.change}"'

    @property
    def cancelled(self) -> bool:
        return self.removed or self.series.cancelled


@dataclass
class Channel:
    id: str
    resource_id: str
    resource_uri: str
    token: str | None
    address: str
    expiration: datetime
    calendar: str
    client_id: str
    message_number: int = 0
    stopped: bool = False

    def live(self) -> bool:
        return not self.stopped and self.expiration > datetime.now(UTC)


@dataclass
class _SyncState:
    owner: str
    seq: int
    single_events: bool
    expired: bool = False


@dataclass
class _Page:
    owner: str
    items: list[dict[str, Any]]
    sync_token: str | None
    incremental: bool  # a page of an incremental sync (expires with the sync tokens)
    expired: bool = False


@dataclass
class _Message:
    id: str
    thread_id: str
    label_ids: list[str]
    history_id: int
    internal_date: datetime
    raw: bytes
    snippet: str


@dataclass
class _Mailbox:
    history_id: int
    messages: dict[str, _Message] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    history_floor: int = 0  # startHistoryId below this answers 404
    watch: dict[str, Any] | None = None


@dataclass
class _Failure:
    pattern: re.Pattern[str]
    status: int
    retry_after: int | None
    remaining: int
    method: str | None
    reason: str | None


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.domain = status, message, reason, domain
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> Response:
        detail = {"message": self.message, "domain": self.domain, "reason": self.reason}
        detail.update(self.extra)
        body: dict[str, Any] = {
            "error": {"code": self.status, "message": self.message, "errors": [detail]}
        }
        if self.status in _STATUS_NAMES:
            body["error"]["status"] = _STATUS_NAMES[self.status]
        response = _json(body, status=self.status)
        response.headers.update(self.headers)
        return response


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _json(body: Any, *, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json; charset=UTF-8")


def _not_found() -> _ApiError:
    return _ApiError(404, "Not Found", "notFound")


def _bad_request(message: str, reason: str = "invalid", **extra: str) -> _ApiError:
    return _ApiError(400, message, reason, extra=extra)


def _full_sync_required() -> _ApiError:
    # Calendar's documented 410 (reference §4.4, "Handle API errors" in the Calendar guide).
    return _ApiError(
        410,
        "Sync token is no longer valid, a full sync is required.",
        "fullSyncRequired",
        domain="calendar",
        extra={"locationType": "parameter", "location": "syncToken"},
    )


_WWW_AUTH: Final = 'Bearer realm="https://accounts.google.com/"'


# --------------------------------------------------------------------------- the stand-in


class Google:
    """The Google stand-in. ``start()`` serves it over HTTPS with ``ca``'s certificate."""

    def __init__(self, ca: LocalCA, *, verify: str | bool | None = None) -> None:
        """``verify`` is what outbound POSTs (pushes) verify TLS with; the CA by default."""
        self.ca = ca
        self._lock = threading.RLock()
        self._server = BackgroundServer(self._wsgi, ssl_context=ca.server_context())
        self._verify: str | bool = str(ca.ca_path) if verify is None else verify
        # Directory.
        self.users: dict[str, GoogleUser] = {}
        self.admins: set[str] = set()
        self.customer_id = "C0" + secrets.token_hex(4)
        # OAuth.
        self.service_accounts: dict[str, _ServiceAccount] = {}
        self.delegations: dict[str, frozenset[str]] = {}  # client_id -> scopes granted
        self.tokens: dict[str, IssuedToken] = {}
        self.token_requests: list[dict[str, Any]] = []
        self.token_lifetime = 3600
        self.service_account_file: Path | None = None
        # Calendar.
        self._series: dict[str, _Series] = {}
        self._copies: dict[tuple[str, str], _Copy] = {}
        self._seq = 0
        self._sync_tokens: dict[str, _SyncState] = {}
        self._pages: dict[str, _Page] = {}
        self._resource_ids: dict[str, str] = {}
        self.channels: dict[str, Channel] = {}
        self.pending_notifications: list[str] = []  # calendar owners, one per change
        self.sync_message: Literal["before", "off"] = "before"
        self.notification_timeout = 5.0
        self.routes: dict[str, str] = {}
        self.deliveries: list[Delivery] = []
        self.expansion_days = 400  # how far singleEvents expands a series without timeMax
        self._route_table = self._routes()
        # Gmail.
        self.mailboxes: dict[str, _Mailbox] = {}
        # Observation and failure injection.
        self.requests: list[GoogleRequest] = []
        self._failures: list[_Failure] = []

    # ----------------------------------------------------------------------- lifecycle

    def start(self) -> Google:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Google:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    @property
    def calendar_url(self) -> str:
        """``GOOGLE_CALENDAR_BASE_URL`` (Google's is https://www.googleapis.com/calendar/v3)."""
        return f"{self.base_url}/calendar/v3"

    @property
    def gmail_url(self) -> str:
        """``GOOGLE_GMAIL_BASE_URL`` (Google's is https://gmail.googleapis.com/gmail/v1)."""
        return f"{self.base_url}/gmail/v1"

    @property
    def directory_url(self) -> str:
        """``GOOGLE_DIRECTORY_BASE_URL`` (https://admin.googleapis.com/admin/directory/v1)."""
        return f"{self.base_url}/admin/directory/v1"

    def environment(self) -> dict[str, str]:
        ca = str(self.ca.ca_path)
        env = {
            "GOOGLE_CALENDAR_BASE_URL": self.calendar_url,
            "GOOGLE_GMAIL_BASE_URL": self.gmail_url,
            "GOOGLE_DIRECTORY_BASE_URL": self.directory_url,
            "REQUESTS_CA_BUNDLE": ca,
            "SSL_CERT_FILE": ca,
            "CURL_CA_BUNDLE": ca,
        }
        if self.service_account_file is not None:
            env["GOOGLE_SERVICE_ACCOUNT_FILE"] = str(self.service_account_file)
        return env

    # ----------------------------------------------------------------------- service accounts

    def make_service_account_key(
        self, client_email: str = DEFAULT_CLIENT_EMAIL, *, project_id: str | None = None
    ) -> dict[str, str]:
        """A JSON key as the Cloud console downloads it, with ``token_uri`` pointing here.

        A second key for the same ``client_email`` is another key of the same account (same
        ``client_id``); both stay valid.
        """
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_id = secrets.token_hex(20)
        with self._lock:
            account = self.service_accounts.get(client_email)
            if account is None:
                account = _ServiceAccount(
                    client_email=client_email,
                    client_id=_numeric_id(21),
                    project_id=project_id
                    or client_email.split("@", 1)[1].split(".", 1)[0]
                    or "meeting-to-crm",
                    public_keys={},
                )
                self.service_accounts[client_email] = account
            account.public_keys[key_id] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": account.project_id,
            "private_key_id": key_id,
            "private_key": pem,
            "client_email": client_email,
            "client_id": account.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": (
                "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(client_email)
            ),
            "universe_domain": "googleapis.com",
        }

    def write_service_account_file(
        self, path: Path | str, client_email: str = DEFAULT_CLIENT_EMAIL
    ) -> dict[str, str]:
        """Write a new key to ``path`` (mode 0600); ``environment()`` then names it in
        ``GOOGLE_SERVICE_ACCOUNT_FILE``. Returns the key dict."""
        info = self.make_service_account_key(client_email)
        target = Path(path)
        target.write_text(json.dumps(info, indent=2))
        target.chmod(0o600)
        self.service_account_file = target
        return info

    def revoke_key(self, private_key_id: str) -> None:
        """Delete a key: assertions it signs then fail with ``invalid_grant``."""
        with self._lock:
            for account in self.service_accounts.values():
                account.public_keys.pop(private_key_id, None)

    def grant_delegation(self, client_id: str, scopes: Iterable[str]) -> None:
        """Admin console > Security > API controls > Domain-wide delegation: allow ``client_id``
        (the service account's numeric id) to impersonate users for ``scopes`` (replaces)."""
        with self._lock:
            self.delegations[client_id] = frozenset(scopes)

    def revoke_delegation(self, client_id: str) -> None:
        with self._lock:
            self.delegations.pop(client_id, None)

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired (the APIs then answer 401)."""
        with self._lock:
            for value, token in list(self.tokens.items()):
                self.tokens[value] = IssuedToken(
                    token.access_token,
                    token.client_email,
                    token.client_id,
                    token.subject,
                    token.scopes,
                    time.time() - 1,
                )

    def count_token_requests(self, *, subject: str | None = None, status: int = 200) -> int:
        with self._lock:
            return sum(
                1
                for r in self.token_requests
                if r["status"] == status and (subject is None or r["subject"] == subject)
            )

    # ----------------------------------------------------------------------- directory

    def add_user(
        self,
        email: str,
        name: str = "",
        *,
        time_zone: str = "UTC",
        suspended: bool = False,
        archived: bool = False,
    ) -> GoogleUser:
        email = email.lower()
        with self._lock:
            if email in self.users:
                return self.users[email]
            local = email.split("@", 1)[0]
            user = GoogleUser(
                email=email,
                name=name or local.replace(".", " ").title(),
                id=_numeric_id(21),
                time_zone=time_zone,
                suspended=suspended,
                archived=archived,
            )
            self.users[email] = user
            self.mailboxes[email] = _Mailbox(history_id=1_000_000 + secrets.randbelow(900_000))
            return user

    def set_admin(self, email: str, admin: bool = True) -> None:
        with self._lock:
            (self.admins.add if admin else self.admins.discard)(email.lower())

    def user(self, email: str) -> GoogleUser:
        return self.users[email.lower()]

    # ----------------------------------------------------------------------- calendar: readers

    def event(self, user: str, event_id: str) -> dict[str, Any]:
        """The event as ``user``'s calendar shows it (full fields, even when cancelled)."""
        with self._lock:
            found = self._find(user.lower(), event_id)
            if found is None:
                raise KeyError(f"{event_id} is not on {user}'s calendar")
            return self._render(*found, minimal=False)

    def events(self, user: str) -> list[dict[str, Any]]:
        """Every copy on ``user``'s calendar (masters, singles, exceptions; cancelled too)."""
        with self._lock:
            return [
                self._render(copy, None, minimal=False)
                for (owner, _), copy in self._copies.items()
                if owner == user.lower()
            ]

    def copies(self, event_id: str) -> list[str]:
        """The calendars holding a copy of ``event_id``."""
        with self._lock:
            return sorted(owner for owner, eid in self._copies if eid == event_id)

    def instance_id(self, master_id: str, original_start: datetime | date | str) -> str:
        with self._lock:
            master = self._series[master_id]
            return f"{master_id}_{_stamp(self._original(master, original_start))}"

    # ----------------------------------------------------------------------- calendar: mutators

    def create_event(
        self,
        organizer_email: str,
        *,
        summary: str,
        start: datetime | date | str,
        end: datetime | date | str,
        time_zone: str = "UTC",
        attendees: Sequence[str | Mapping[str, Any]] = (),
        all_day: bool = False,
        recurrence: Sequence[str] | None = None,
        visibility: str = "default",
        transparency: str = "opaque",
        description: str = "",
        location: str = "",
        shared_properties: Mapping[str, str] | None = None,
        private_properties: Mapping[str, str] | None = None,
        event_id: str | None = None,
        ical_uid: str | None = None,
    ) -> dict[str, Any]:
        """Create an event on the organizer's calendar and a copy on each internal attendee's
        (same id and iCalUID). ``start``/``end``: naive values are wall time in ``time_zone``;
        with ``all_day`` they are dates (``end`` exclusive). ``recurrence`` are RRULE/EXDATE
        lines. ``private_properties`` go on the organizer's copy. Returns the organizer's view.
        """
        organizer = organizer_email.lower()
        now = datetime.now(UTC)
        eid = event_id or _event_id()
        entries = _attendee_list(organizer, attendees, self.users)
        series = _Series(
            id=eid,
            ical_uid=ical_uid or f"{eid}@google.com",
            organizer=organizer,
            summary=summary,
            description=description,
            location=location,
            start=_to_date(start) if all_day else _to_moment(start, time_zone),
            end=_to_date(end) if all_day else _to_moment(end, time_zone),
            time_zone=time_zone,
            all_day=all_day,
            attendees=entries,
            recurrence=list(recurrence) if recurrence else None,
            visibility=visibility,
            transparency=transparency,
            created=now,
            shared=dict(shared_properties or {}),
        )
        with self._lock:
            if eid in self._series:
                raise ValueError(f"event id {eid} exists")
            self._series[eid] = series
            owners = self._owners(series)
            for owner in owners:
                private = dict(private_properties or {}) if owner == organizer else {}
                self._copies[(owner, eid)] = _Copy(owner, series, private, now, 0)
            self._changed(series, owners)
            # An organizer outside the domain has no copy here: show the first invitee's.
            viewer = organizer if (organizer, eid) in self._copies else owners[0]
            return self._render(self._copies[(viewer, eid)], None, minimal=False)

    def update_event(self, event_id: str, **changes: Any) -> dict[str, Any]:
        """An organizer's edit, seen in every copy. Keys: summary, description, location,
        start, end, time_zone, all_day, attendees, recurrence, visibility, transparency,
        shared_properties. Changed times bump ``sequence``; new internal attendees get a copy,
        removed ones see theirs cancelled. ``event_id`` may be an instance id (that instance
        becomes an exception)."""
        with self._lock:
            series = self._editable(event_id)
            before = set(self._owners(series))
            zone = changes.pop("time_zone", series.time_zone)
            all_day = changes.pop("all_day", series.all_day)
            timing = zone != series.time_zone or all_day != series.all_day
            series.time_zone, series.all_day = zone, all_day
            for name in ("start", "end"):
                if name in changes:
                    value = changes.pop(name)
                    setattr(series, name, _to_date(value) if all_day else _to_moment(value, zone))
                    timing = True
            if "attendees" in changes:
                series.attendees = _attendee_list(
                    series.organizer, changes.pop("attendees"), self.users, series.attendees
                )
            if "recurrence" in changes:
                value = changes.pop("recurrence")
                series.recurrence = list(value) if value else None
                timing = True
            if "shared_properties" in changes:
                series.shared = dict(changes.pop("shared_properties") or {})
            for name in ("summary", "description", "location", "visibility", "transparency"):
                if name in changes:
                    setattr(series, name, changes.pop(name))
            if changes:
                raise TypeError(f"unknown event fields: {', '.join(changes)}")
            if timing:
                series.sequence += 1
            after = set(self._owners(series))
            now = datetime.now(UTC)
            for owner in after - before:
                existing = self._copies.get((owner, series.id))
                if existing is not None:
                    existing.removed = False
                else:
                    self._copies[(owner, series.id)] = _Copy(owner, series, {}, now, 0)
            for owner in before - after:
                gone = self._copies.get((owner, series.id))
                if gone is not None:
                    gone.removed = True
            self._changed(series, before | after)
            return self._render(self._copies[(series.organizer, series.id)], None, minimal=False)

    def set_private_property(self, user: str, event_id: str, key: str, value: str | None) -> None:
        """Set (or with None remove) an extendedProperties.private entry on one copy."""
        with self._lock:
            copy = self._copy(user.lower(), event_id)
            if value is None:
                copy.private.pop(key, None)
            else:
                copy.private[key] = value
            self._touch(copy)

    def respond(self, user_email: str, event_id: str, response: str) -> None:
        """An attendee answers: accepted, declined, tentative (or needsAction)."""
        if response not in ("accepted", "declined", "tentative", "needsAction"):
            raise ValueError(response)
        user = user_email.lower()
        with self._lock:
            series = self._editable(event_id)
            entry = next((a for a in series.attendees if a["email"] == user), None)
            if entry is None:
                raise KeyError(f"{user} is not invited to {event_id}")
            entry["responseStatus"] = response
            self._changed(series, self._owners(series))

    def cancel_event(self, event_id: str) -> None:
        """The organizer deletes the event: every copy (and exception) becomes cancelled."""
        with self._lock:
            match = _INSTANCE_ID.fullmatch(event_id)
            if event_id not in self._series and match:
                self.cancel_instance(match["master"], _parse_stamp(match["stamp"]))
                return
            series = self._series[event_id]
            series.cancelled = True
            self._changed(series, self._owners(series, with_removed=True))
            for exception in self._exceptions(series.id):
                if not exception.cancelled:
                    exception.cancelled = True
                    self._changed(exception, self._owners(exception, with_removed=True))

    def delete_own_copy(self, user_email: str, event_id: str) -> None:
        """``user`` deletes the event from their calendar. For an attendee: their copy becomes
        cancelled and they are ``declined`` in the other copies; the organizer cancels."""
        user = user_email.lower()
        with self._lock:
            copy = self._copy(user, event_id)
            series = copy.series
            if series.organizer == user:
                self.cancel_event(series.id)
                return
            copy.removed = True
            for entry in series.attendees:
                if entry["email"] == user:
                    entry["responseStatus"] = "declined"
            self._changed(series, self._owners(series, with_removed=True))

    def cancel_instance(self, master_id: str, original_start: datetime | date | str) -> str:
        """The organizer deletes one occurrence: a cancelled exception in every copy."""
        with self._lock:
            master = self._series[master_id]
            exception = self._materialize(master, self._original(master, original_start))
            exception.cancelled = True
            self._changed(exception, self._owners(exception, with_removed=True))
            return exception.id

    def move_instance(
        self,
        master_id: str,
        original_start: datetime | date | str,
        new_start: datetime | date | str,
        new_end: datetime | date | str,
    ) -> str:
        """The organizer moves one occurrence: an exception keeping ``originalStartTime``."""
        with self._lock:
            master = self._series[master_id]
            exception = self._materialize(master, self._original(master, original_start))
            if exception.all_day:
                exception.start, exception.end = _to_date(new_start), _to_date(new_end)
            else:
                exception.start = _to_moment(new_start, exception.time_zone)
                exception.end = _to_moment(new_end, exception.time_zone)
            exception.sequence += 1
            exception.cancelled = False
            self._changed(exception, self._owners(exception))
            return exception.id

    # ----------------------------------------------------------------------- calendar: internals

    def _owners(self, series: _Series, *, with_removed: bool = False) -> list[str]:
        """Calendars holding a copy: the organizer's and each internal attendee's."""
        owners = [series.organizer] if series.organizer in self.users else []
        for entry in series.attendees:
            email = entry["email"]
            if email in self.users and email not in owners:
                owners.append(email)
        if with_removed:
            owners += [
                owner for (owner, eid) in self._copies if eid == series.id and owner not in owners
            ]
        return owners

    def _changed(self, series: _Series, owners: Iterable[str]) -> None:
        """Record a change of ``series`` on each owner's copy and queue one push per calendar."""
        for owner in owners:
            copy = self._copies.get((owner, series.id))
            if copy is not None:
                self._touch(copy)

    def _touch(self, copy: _Copy) -> None:
        self._seq += 1
        now = datetime.now(UTC)
        copy.updated = max(now, copy.updated + timedelta(milliseconds=1))
        copy.change = self._seq
        self.pending_notifications.append(copy.owner)

    def _copy(self, owner: str, event_id: str) -> _Copy:
        copy = self._copies.get((owner, event_id))
        if copy is None:
            match = _INSTANCE_ID.fullmatch(event_id)
            if match and (owner, match["master"]) in self._copies:
                master = self._series[match["master"]]
                self._materialize(master, self._original(master, _parse_stamp(match["stamp"])))
                return self._copies[(owner, event_id)]
            raise KeyError(f"{event_id} is not on {owner}'s calendar")
        return copy

    def _editable(self, event_id: str) -> _Series:
        if event_id in self._series:
            return self._series[event_id]
        match = _INSTANCE_ID.fullmatch(event_id)
        if match and match["master"] in self._series:
            master = self._series[match["master"]]
            return self._materialize(master, self._original(master, _parse_stamp(match["stamp"])))
        raise KeyError(event_id)

    def _exceptions(self, master_id: str) -> list[_Series]:
        return [s for s in self._series.values() if s.recurring_event_id == master_id]

    def _original(self, master: _Series, value: datetime | date | str) -> datetime | date:
        """An occurrence's original start, checked against the series."""
        original: datetime | date = (
            _to_date(value) if master.all_day else _to_moment(value, master.time_zone)
        )
        if original not in self._occurrences(master, None):
            raise ValueError(f"{value} is not an occurrence of {master.id}")
        return original

    def _materialize(self, master: _Series, original: datetime | date) -> _Series:
        """The exception for one occurrence (created from the master on first use)."""
        eid = f"{master.id}_{_stamp(original)}"
        existing = self._series.get(eid)
        if existing is not None:
            return existing
        duration = _minus(master.end, master.start)
        exception = _Series(
            id=eid,
            ical_uid=master.ical_uid,
            organizer=master.organizer,
            summary=master.summary,
            description=master.description,
            location=master.location,
            start=original,
            end=_plus(original, duration),
            time_zone=master.time_zone,
            all_day=master.all_day,
            attendees=[dict(a) for a in master.attendees],
            recurrence=None,
            visibility=master.visibility,
            transparency=master.transparency,
            created=master.created,
            shared=dict(master.shared),
            sequence=master.sequence,
            cancelled=master.cancelled,
            recurring_event_id=master.id,
            original_start=original,
        )
        self._series[eid] = exception
        now = datetime.now(UTC)
        for (owner, sid), copy in list(self._copies.items()):
            if sid == master.id:
                self._copies[(owner, eid)] = _Copy(
                    owner, exception, dict(copy.private), now, 0, removed=copy.removed
                )
        return exception

    def _occurrences(self, master: _Series, until: datetime | None) -> list[datetime | date]:
        """Original starts of a series up to ``until`` (default: ``expansion_days`` ahead)."""
        if not master.recurrence:
            return [master.start]
        zone = _zone(master.time_zone)
        if master.all_day:
            assert isinstance(master.start, date)
            dtstart = datetime(master.start.year, master.start.month, master.start.day)
        else:
            assert isinstance(master.start, datetime)
            dtstart = master.start.astimezone(zone).replace(tzinfo=None)
        rules: list[str] = []
        exdates: list[datetime] = []
        rdates: list[datetime] = []
        for line in master.recurrence:
            name, _, value = line.partition(":")
            kind = name.split(";", 1)[0].upper()
            if kind in ("RRULE", "EXRULE"):
                rules.append(f"{kind}:{_local_until(value, zone, master.all_day)}")
            elif kind in ("EXDATE", "RDATE"):
                target = exdates if kind == "EXDATE" else rdates
                tzid = re.search(r"TZID=([^;:]+)", name)
                for item in value.split(","):
                    target.append(_local_value(item, tzid[1] if tzid else None, zone))
        horizon = until or max(datetime.now(UTC), _as_moment(master.start)) + timedelta(
            days=self.expansion_days
        )
        limit = horizon.astimezone(zone).replace(tzinfo=None)
        rule_set = rrulestr("\n".join(rules), dtstart=dtstart, forceset=True)
        for excluded in exdates:
            rule_set.exdate(excluded)
        for added in rdates:
            rule_set.rdate(added)
        found: list[datetime | date] = []
        for local in rule_set:
            if local > limit or len(found) >= 5000:
                break
            if master.all_day:
                found.append(local.date())
            else:
                found.append(local.replace(tzinfo=zone).astimezone(UTC))
        return found

    def _find(self, owner: str, event_id: str) -> tuple[_Copy, datetime | date | None] | None:
        """A copy, or a master copy plus the original start of one of its (virtual) instances."""
        copy = self._copies.get((owner, event_id))
        if copy is not None:
            return copy, None
        match = _INSTANCE_ID.fullmatch(event_id)
        if match is None:
            return None
        master_copy = self._copies.get((owner, match["master"]))
        if master_copy is None or not master_copy.series.recurrence:
            return None
        original = _parse_stamp(match["stamp"])
        if original not in self._occurrences(master_copy.series, None):
            return None
        return master_copy, original

    def _render(
        self,
        copy: _Copy,
        original: datetime | date | None,
        *,
        minimal: bool,
    ) -> dict[str, Any]:
        """``copy`` as its owner sees it; with ``original``, that instance of the series."""
        series = copy.series
        owner = copy.owner
        event_id = series.id if original is None else f"{series.id}_{_stamp(original)}"
        recurring_id = series.recurring_event_id if original is None else series.id
        original_start = series.original_start if original is None else original
        etag = copy.etag if original is None else f'"{3_400_000_000_000_000 + copy.change}0"'
        body: dict[str, Any] = {"kind": "calendar#event", "etag": etag, "id": event_id}
        if copy.cancelled:
            body["status"] = "cancelled"
            if recurring_id is not None and original_start is not None:
                body["recurringEventId"] = recurring_id
                body["originalStartTime"] = _when(original_start, series.time_zone)
            if minimal:
                return body
        else:
            body["status"] = "confirmed"
        start, end = series.start, series.end
        if original is not None:
            start, end = original, _plus(original, _minus(series.end, series.start))
        organizer_user = self.users.get(series.organizer)
        person: dict[str, Any] = {"email": series.organizer}
        if organizer_user is not None:
            person["displayName"] = organizer_user.name
        if series.organizer == owner:
            person["self"] = True
        eid = base64.b64encode(f"{event_id} {owner}".encode()).decode().rstrip("=")
        body.update(
            {
                "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
                "created": rfc3339(series.created),
                "updated": rfc3339(copy.updated),
                "summary": series.summary,
            }
        )
        if series.description:
            body["description"] = series.description
        if series.location:
            body["location"] = series.location
        body["creator"] = dict(person)
        body["organizer"] = dict(person)
        body["start"] = _when(start, series.time_zone)
        body["end"] = _when(end, series.time_zone)
        if series.recurrence and original is None:
            body["recurrence"] = list(series.recurrence)
        if recurring_id is not None and original_start is not None:
            body["recurringEventId"] = recurring_id
            body["originalStartTime"] = _when(original_start, series.time_zone)
        if series.transparency != "opaque":
            body["transparency"] = series.transparency
        if series.visibility != "default":
            body["visibility"] = series.visibility
        body["iCalUID"] = series.ical_uid
        body["sequence"] = series.sequence
        if series.attendees:
            attendees = []
            for entry in series.attendees:
                rendered = dict(entry)
                if entry["email"] == owner:
                    rendered["self"] = True
                attendees.append(rendered)
            body["attendees"] = attendees
        if series.attendees and series.organizer != owner:
            body["guestsCanInviteOthers"] = True
        extended: dict[str, dict[str, str]] = {}
        if copy.private:
            extended["private"] = dict(copy.private)
        if series.shared:
            extended["shared"] = dict(series.shared)
        if extended:
            body["extendedProperties"] = extended
        body["reminders"] = {"useDefault": True}
        body["eventType"] = "default"
        return body

    def _calendar_items(
        self,
        owner: str,
        *,
        single_events: bool,
        show_deleted: bool,
        time_min: datetime | None,
        time_max: datetime | None,
        since: int | None,
    ) -> list[dict[str, Any]]:
        """What events.list returns for ``owner``: a full listing, or (``since``) the changes."""
        items: list[tuple[str, dict[str, Any]]] = []
        copies = [c for (o, _), c in self._copies.items() if o == owner]
        exceptions: dict[str, list[_Copy]] = {}
        for copy in copies:
            if copy.series.recurring_event_id:
                exceptions.setdefault(copy.series.recurring_event_id, []).append(copy)
        incremental = since is not None
        for copy in copies:
            series = copy.series
            changed = since is None or copy.change > since
            if not single_events:
                if not changed:
                    continue
                if series.recurring_event_id is not None:
                    parent = self._copies.get((owner, series.recurring_event_id))
                    # A cancelled exception of a live series is listed even without showDeleted.
                    listed = (
                        incremental
                        or show_deleted
                        or not copy.cancelled
                        or (parent is not None and not parent.cancelled)
                    )
                elif copy.cancelled:
                    listed = incremental or show_deleted
                else:
                    listed = True
                if listed and _in_window(self, copy, time_min, time_max):
                    items.append((_sort_key(series.start), self._render(copy, None, minimal=True)))
                continue
            # singleEvents=true: expanded instances (and exceptions), never masters.
            if series.recurring_event_id is not None or not series.recurrence:
                if (
                    changed
                    and (not copy.cancelled or incremental or show_deleted)
                    and _in_window(self, copy, time_min, time_max)
                ):
                    items.append((_sort_key(series.start), self._render(copy, None, minimal=True)))
                continue
            if not changed:
                continue
            if copy.cancelled and not (incremental or show_deleted):
                continue
            overridden = {
                _stamp(e.series.original_start)
                for e in exceptions.get(series.id, [])
                if e.series.original_start is not None
            }
            duration = _minus(series.end, series.start)
            for original in self._occurrences(series, time_max):
                if _stamp(original) in overridden:
                    continue
                if time_max is not None and _as_moment(original) >= time_max:
                    continue
                if time_min is not None and _as_moment(_plus(original, duration)) <= time_min:
                    continue
                items.append((_sort_key(original), self._render(copy, original, minimal=True)))
        items.sort(key=lambda pair: pair[0])
        return [item for _, item in items]

    # ----------------------------------------------------------------------- calendar: sync hooks

    def expire_sync_tokens(self, user: str | None = None) -> int:
        """Make outstanding syncTokens (and sync page tokens) of ``user`` (or all) answer 410."""
        owner = user.lower() if user else None
        count = 0
        with self._lock:
            for state in self._sync_tokens.values():
                if owner is None or state.owner == owner:
                    state.expired, count = True, count + 1
            for page in self._pages.values():
                if page.incremental and (owner is None or page.owner == owner):
                    page.expired = True
        return count

    # ----------------------------------------------------------------------- push notifications

    def route(self, public_base: str, real_base: str) -> None:
        """Deliver to ``real_base`` (a loopback origin) what is addressed to ``public_base``."""
        self.routes[public_base.rstrip("/")] = real_base.rstrip("/")

    def _target(self, url: str) -> str:
        parts = urlsplit(url)
        mapped = self.routes.get(f"{parts.scheme}://{parts.netloc}")
        if mapped is not None:
            target = urlsplit(mapped)
            parts = parts._replace(scheme=target.scheme, netloc=target.netloc)
        target_url = urlunsplit(parts)
        if not _is_loopback(target_url):
            raise ValueError(f"{url} is not a loopback address; add google.route(...) for it")
        return target_url

    def _post(
        self,
        url: str,
        kind: Literal["calendar", "pubsub"],
        headers: dict[str, str],
        body: str,
    ) -> Delivery:
        try:
            target = self._target(url)
        except ValueError as exc:
            delivery = Delivery(url, kind, headers, body, None, str(exc))
        else:
            try:
                with requests.Session() as session:
                    session.trust_env = False  # straight to loopback, with our CA
                    response = session.post(
                        target,
                        data=body.encode(),
                        headers=headers,
                        timeout=self.notification_timeout,
                        verify=self._verify,
                        allow_redirects=False,
                    )
                delivery = Delivery(url, kind, headers, body, response.status_code)
            except requests.RequestException as exc:
                delivery = Delivery(url, kind, headers, body, None, f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.deliveries.append(delivery)
        return delivery

    def _send(self, channel: Channel, state: str) -> Delivery:
        with self._lock:
            if state == "sync":
                channel.message_number = 1
            else:  # increasing, not sequential (reference §4.2)
                channel.message_number += 1 + secrets.randbelow(3)
            headers = {
                "User-Agent": USER_AGENT,
                "Content-Length": "0",
                "X-Goog-Channel-ID": channel.id,
                "X-Goog-Channel-Expiration": format_datetime(channel.expiration, usegmt=True),
                "X-Goog-Message-Number": str(channel.message_number),
                "X-Goog-Resource-ID": channel.resource_id,
                "X-Goog-Resource-State": state,
                "X-Goog-Resource-URI": channel.resource_uri,
            }
            if channel.token is not None:
                headers["X-Goog-Channel-Token"] = channel.token
        return self._post(channel.address, "calendar", headers, "")

    def notify(self, user: str, state: str = "exists") -> list[int | None]:
        """Send ``state`` to every live channel on ``user``'s calendar now; the statuses."""
        with self._lock:
            targets = [c for c in self.channels.values() if c.calendar == user.lower() and c.live()]
        return [self._send(channel, state).status for channel in targets]

    def flush_notifications(self) -> list[int | None]:
        """Send what the mutators queued: one ``exists`` per change per live channel."""
        with self._lock:
            pending, self.pending_notifications = self.pending_notifications, []
        statuses: list[int | None] = []
        for owner in pending:
            statuses += self.notify(owner)
        return statuses

    def expire_channel(self, channel_id: str) -> None:
        with self._lock:
            self.channels[channel_id].expiration = datetime.now(UTC) - timedelta(seconds=1)

    def live_channels(self, user: str | None = None) -> list[Channel]:
        with self._lock:
            return [
                c
                for c in self.channels.values()
                if c.live() and (user is None or c.calendar == user.lower())
            ]

    # ----------------------------------------------------------------------- Gmail

    def deliver_invitation(self, user_email: str, event_id: str, method: str = "REQUEST") -> str:
        """Put the invitation email for ``event_id`` (``method`` REQUEST or CANCEL) into
        ``user``'s mailbox (a ``messageAdded`` history record). Returns the message id."""
        with self._lock:
            series = self._series[event_id]
            organizer = self.users.get(series.organizer)
            sender = f"{organizer.name if organizer else series.organizer} <{series.organizer}>"
            verb = {"REQUEST": "Invitation", "CANCEL": "Canceled event"}.get(method, method)
            if method == "REQUEST" and series.sequence > 0:
                verb = "Updated invitation"
            subject = f"{verb}: {series.summary} @ {_human_when(series)}"
            text = f"{series.summary}\n{_human_when(series)}\n\n{series.description}".strip()
            ics = _ics(series, method, self.users)
            return self._add_message(user_email, sender, subject, text, ics, method)

    def deliver_reply(
        self, organizer_email: str, event_id: str, attendee_email: str, response: str
    ) -> str:
        """The email an attendee's answer sends the organizer (``METHOD:REPLY``)."""
        with self._lock:
            series = self._series[event_id]
            attendee = attendee_email.lower()
            word = {"accepted": "Accepted", "declined": "Declined", "tentative": "Tentative"}[
                response
            ]
            subject = f"{word}: {series.summary} @ {_human_when(series)}"
            ics = _ics(series, "REPLY", self.users, reply=(attendee, response))
            return self._add_message(
                organizer_email, attendee, subject, f"{attendee} has {response}.", ics, "REPLY"
            )

    def deliver_message(
        self, user_email: str, *, sender: str, subject: str, text: str = "hello"
    ) -> str:
        """A plain email without a calendar part."""
        with self._lock:
            return self._add_message(user_email, sender, subject, text, None, None)

    def _add_message(
        self,
        user_email: str,
        sender: str,
        subject: str,
        text: str,
        ics: str | None,
        method: str | None,
    ) -> str:
        user = user_email.lower()
        mailbox = self.mailboxes[user]
        message = EmailMessage(policy=SMTP)
        now = datetime.now(UTC)
        message["From"] = sender
        message["To"] = user
        message["Subject"] = subject
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain="google.com")
        message.set_content(text)
        if ics is not None and method is not None:
            message.add_alternative(f"<p>{text}</p>", subtype="html")
            message.add_alternative(ics, subtype="calendar", params={"method": method})
            message.add_attachment(
                ics.encode(), maintype="application", subtype="ics", filename="invite.ics"
            )
        raw = message.as_bytes()
        message_id = secrets.token_hex(8)
        mailbox.history_id += 1 + secrets.randbelow(9)
        stored = _Message(
            id=message_id,
            thread_id=message_id,
            label_ids=["UNREAD", "IMPORTANT", "CATEGORY_PERSONAL", "INBOX"],
            history_id=mailbox.history_id,
            internal_date=now,
            raw=raw,
            snippet=text.replace("\n", " ")[:100],
        )
        mailbox.messages[message_id] = stored
        mailbox.history.append(
            {
                "id": mailbox.history_id,
                "message": stored,
            }
        )
        return message_id

    def history_id(self, user_email: str) -> str:
        with self._lock:
            return str(self.mailboxes[user_email.lower()].history_id)

    def expire_history(self, user_email: str) -> None:
        """Every historyId issued so far becomes too old: history.list answers 404."""
        with self._lock:
            mailbox = self.mailboxes[user_email.lower()]
            mailbox.history_id += 1
            mailbox.history_floor = mailbox.history_id

    def pubsub_push(
        self,
        user_email: str,
        url: str,
        authorization: str | None,
        *,
        history_id: str | None = None,
        subscription: str = "projects/p/subscriptions/s",
        delivery_attempt: int = 1,
    ) -> int | None:
        """POST Pub/Sub's push envelope for a Gmail notification to ``url``; the status.

        ``authorization`` is the token (Bearer is added) the test minted, or None for none.
        """
        user = user_email.lower()
        data = json.dumps(
            {"emailAddress": user, "historyId": int(history_id or self.history_id(user))}
        )
        message_id = str(10**15 + secrets.randbelow(9 * 10**15))
        published = rfc3339(datetime.now(UTC))
        envelope = {
            "message": {
                "data": base64.b64encode(data.encode()).decode(),
                "messageId": message_id,
                "message_id": message_id,
                "publishTime": published,
                "publish_time": published,
                "attributes": {},
            },
            "subscription": subscription,
            "deliveryAttempt": delivery_attempt,
        }
        headers = {"Content-Type": "application/json", "User-Agent": PUBSUB_USER_AGENT}
        if authorization is not None:
            token = authorization.removeprefix("Bearer ").strip()
            headers["Authorization"] = f"Bearer {token}"
        return self._post(url, "pubsub", headers, json.dumps(envelope)).status

    # ----------------------------------------------------------------------- test hooks

    def fail_next(
        self,
        path_regex: str,
        status: int = 429,
        retry_after: int | None = None,
        times: int = 1,
        *,
        method: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests whose path matches ``path_regex`` (re.search on
        the full path, e.g. ``/calendar/v3/calendars/[^/]+/events$``) with ``status`` in
        Google's error shape; 429/403 are ``rateLimitExceeded`` (403 ``usageLimits``), 5xx
        ``backendError``. API paths fail after authentication; ``/token`` before it."""
        with self._lock:
            self._failures.append(
                _Failure(re.compile(path_regex), status, retry_after, times, method, reason)
            )

    def log(
        self,
        *,
        method: str | None = None,
        path_regex: str | None = None,
        subject: str | None = None,
        status: int | None = None,
    ) -> list[GoogleRequest]:
        pattern = re.compile(path_regex) if path_regex else None
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper())
                and (pattern is None or pattern.search(r.path))
                and (subject is None or r.subject == subject.lower())
                and (status is None or r.status == status)
            ]

    # ----------------------------------------------------------------------- HTTP plumbing

    def _wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _routes(self) -> list[tuple[str, re.Pattern[str], Any]]:
        cal = r"/calendar/v3/calendars/(?P<calendar>[^/]+)/events"
        gmail = r"/gmail/v1/users/(?P<user>[^/]+)"
        table = [
            ("POST", cal + r"/watch", self._watch),
            ("GET", cal, self._list_events),
            ("GET", cal + r"/(?P<event>[^/]+)", self._get_event),
            ("PATCH", cal + r"/(?P<event>[^/]+)", self._patch_event),
            ("POST", r"/calendar/v3/channels/stop", self._stop_channel),
            ("POST", gmail + r"/watch", self._gmail_watch),
            ("POST", gmail + r"/stop", self._gmail_stop),
            ("GET", gmail + r"/profile", self._gmail_profile),
            ("GET", gmail + r"/history", self._gmail_history),
            ("GET", gmail + r"/messages", self._gmail_messages),
            ("GET", gmail + r"/messages/(?P<message>[^/]+)", self._gmail_message),
            ("GET", r"/admin/directory/v1/users", self._directory_users),
        ]
        return [(m, re.compile(p), h) for m, p, h in table]

    def _respond(self, request: Request) -> Response:
        arrived = time.monotonic()
        token: IssuedToken | None = None
        try:
            if request.path == "/token":
                self._inject(request)
                response = self._token(request)
            else:
                token = self._authenticate(request)
                self._inject(request)
                response = self._dispatch(request, token)
        except _ApiError as exc:
            response = exc.response()
        except _OAuthError as exc:
            response = _json(
                {"error": exc.error, "error_description": exc.description}, status=exc.status
            )
        with self._lock:
            self.requests.append(
                GoogleRequest(
                    at=arrived,
                    method=request.method,
                    path=request.path,
                    query={k: request.args.getlist(k) for k in request.args},
                    subject=token.subject if token else None,
                    client_email=token.client_email if token else None,
                    status=response.status_code,
                )
            )
        return response

    def _inject(self, request: Request) -> None:
        with self._lock:
            failure = next(
                (
                    f
                    for f in self._failures
                    if f.remaining > 0
                    and (f.method is None or f.method.upper() == request.method)
                    and f.pattern.search(request.path)
                ),
                None,
            )
            if failure is None:
                return
            failure.remaining -= 1
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        if request.path == "/token":
            error = "internal_failure" if failure.status >= 500 else "rate_limit_exceeded"
            raise _OAuthError(failure.status, error, "Injected failure.")
        if failure.status in (403, 429):
            reason = failure.reason or "rateLimitExceeded"
            raise _ApiError(
                failure.status, "Rate Limit Exceeded", reason, domain="usageLimits", headers=headers
            )
        if failure.status >= 500:
            raise _ApiError(
                failure.status, "Backend Error", failure.reason or "backendError", headers=headers
            )
        raise _ApiError(failure.status, "Injected failure.", failure.reason or "failed")

    def _authenticate(self, request: Request) -> IssuedToken:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.casefold() != "bearer" or not value.strip():
            raise _ApiError(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "required",
                headers={"WWW-Authenticate": _WWW_AUTH},
                extra={"location": "Authorization", "locationType": "header"},
            )
        with self._lock:
            token = self.tokens.get(value.strip())
        if token is None or token.expires_at <= time.time():
            raise _ApiError(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential. See "
                "https://developers.google.com/identity/sign-in/web/devconsole-project.",
                "authError",
                headers={"WWW-Authenticate": _WWW_AUTH + ', error="invalid_token"'},
                extra={"location": "Authorization", "locationType": "header"},
            )
        return token

    def _dispatch(self, request: Request, token: IssuedToken) -> Response:
        for method, pattern, handler in self._route_table:
            match = pattern.fullmatch(request.path.rstrip("/"))
            if match is not None and method == request.method:
                result: Response = handler(request, token, **match.groupdict())
                return result
        raise _not_found()

    @staticmethod
    def _require(token: IssuedToken, allowed: frozenset[str]) -> None:
        if not token.scopes & allowed:
            raise _ApiError(
                403,
                "Request had insufficient authentication scopes.",
                "insufficientPermissions",
                headers={
                    "WWW-Authenticate": _WWW_AUTH
                    + f', error="insufficient_scope", scope="{" ".join(sorted(allowed))}"'
                },
                extra={"message": "Insufficient Permission"},
            )

    # ----------------------------------------------------------------------- HTTP: /token

    def _token(self, request: Request) -> Response:
        if request.method != "POST":
            raise _OAuthError(405, "invalid_request", "Method not allowed.")
        form = request.form
        record: dict[str, Any] = {"subject": None, "scopes": [], "status": 400, "error": None}
        try:
            result = self._grant(form, record)
            record["status"] = 200
            return _json(result)
        except _OAuthError as exc:
            record["status"], record["error"] = exc.status, exc.error
            raise
        finally:
            with self._lock:
                self.token_requests.append(record)

    def _grant(self, form: Mapping[str, str], record: dict[str, Any]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        if grant_type != JWT_BEARER:
            raise _OAuthError(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise _OAuthError(400, "invalid_grant", "Invalid JWT: malformed.") from None
        issuer = str(unverified.get("iss", ""))
        record["client_email"] = issuer
        with self._lock:
            account = self.service_accounts.get(issuer)
            keys = dict(account.public_keys) if account else {}
        if account is None:
            raise _OAuthError(400, "invalid_grant", "Invalid grant: account not found")
        kid = header.get("kid")
        candidates = [keys[kid]] if kid in keys else ([] if kid else list(keys.values()))
        claims: dict[str, Any] | None = None
        for public_key in candidates:
            try:
                claims = jwt.decode(
                    assertion,
                    public_key,
                    algorithms=["RS256"],
                    audience=[self.token_uri, *GOOGLE_TOKEN_AUDIENCES],
                    options={"require": ["iss", "aud", "exp", "iat"]},
                    leeway=60,
                )
                break
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAudienceError:
                raise _OAuthError(
                    400,
                    "invalid_grant",
                    "Invalid JWT: Failed audience check. The expected value was "
                    + GOOGLE_TOKEN_AUDIENCES[0],
                ) from None
            except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
                raise _OAuthError(400, "invalid_grant", _LIFETIME_MESSAGE) from None
            except jwt.PyJWTError:
                raise _OAuthError(400, "invalid_grant", "Invalid JWT: malformed.") from None
        if claims is None:
            raise _OAuthError(400, "invalid_grant", "Invalid JWT Signature.")
        if int(claims["exp"]) - int(claims["iat"]) > 3600:
            raise _OAuthError(400, "invalid_grant", _LIFETIME_MESSAGE)
        scopes = frozenset(str(claims.get("scope", "")).split())
        record["scopes"] = sorted(scopes)
        if not scopes:
            raise _OAuthError(
                400, "invalid_scope", "Invalid OAuth scope or ID token audience provided."
            )
        subject = claims.get("sub")
        if subject is not None and str(subject).lower() == issuer.lower():
            subject = None  # sub = the service account itself is no delegation
        if subject is not None:
            subject = str(subject).lower()
            record["subject"] = subject
            with self._lock:
                known = subject in self.users
                granted = self.delegations.get(account.client_id, frozenset())
            if not known:
                raise _OAuthError(400, "invalid_grant", "Invalid email or User ID")
            if not scopes <= granted:
                raise _OAuthError(
                    401,
                    "unauthorized_client",
                    "Client is unauthorized to retrieve access tokens using this method, or "
                    "client not authorized for any of the scopes requested.",
                )
        access_token = "ya29.standin-" + secrets.token_urlsafe(48)
        with self._lock:
            self.tokens[access_token] = IssuedToken(
                access_token=access_token,
                client_email=issuer,
                client_id=account.client_id,
                subject=subject,
                scopes=scopes,
                expires_at=time.time() + self.token_lifetime,
            )
        return {
            "access_token": access_token,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
        }

    # ----------------------------------------------------------------------- HTTP: calendar

    def _calendar_owner(self, token: IssuedToken, calendar: str) -> str:
        """The calendar a token may read: its subject's own ('primary' or the address)."""
        subject = token.subject or token.client_email
        wanted = subject if calendar == "primary" else calendar.lower()
        if wanted != subject or wanted not in self.users:
            raise _not_found()
        return wanted

    def _list_events(self, request: Request, token: IssuedToken, calendar: str) -> Response:
        self._require(token, CALENDAR_READ)
        args = request.args
        owner = self._calendar_owner(token, calendar)
        try:
            max_results = int(args.get("maxResults", "250"))
        except ValueError:
            raise _bad_request("Invalid value for maxResults.") from None
        if not 1 <= max_results <= 2500:
            raise _bad_request(f"Invalid max results: {max_results}")
        page_token = args.get("pageToken")
        sync_token = args.get("syncToken")
        with self._lock:
            if page_token is not None:
                page = self._pages.get(page_token)
                if page is None or page.owner != owner:
                    raise _bad_request("Invalid page token value.", "invalid")
                if page.expired:
                    raise _full_sync_required()
                items, next_sync = page.items, page.sync_token
            else:
                items, next_sync = self._first_page(owner, args)
            body_items, rest = items[:max_results], items[max_results:]
            body: dict[str, Any] = {
                "kind": "calendar#events",
                "etag": f'"p{self._seq}"',
                "summary": owner,
                "description": "",
                "updated": rfc3339(datetime.now(UTC)),
                "timeZone": self.users[owner].time_zone,
                "accessRole": "owner",
                "defaultReminders": [{"method": "popup", "minutes": 10}],
                "items": body_items,
            }
            if rest:
                token_value = "CiAK" + secrets.token_urlsafe(24)
                incremental = sync_token is not None or (
                    page_token is not None and self._pages[page_token].incremental
                )
                self._pages[token_value] = _Page(owner, rest, next_sync, incremental)
                body["nextPageToken"] = token_value
            elif next_sync is not None:
                body["nextSyncToken"] = next_sync
        return _json(body)

    def _first_page(
        self, owner: str, args: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], str | None]:
        sync_token = args.get("syncToken")
        single = args.get("singleEvents", "false").lower() == "true"
        show_deleted = args.get("showDeleted", "false").lower() == "true"
        if sync_token is not None:
            for name in (
                "iCalUID",
                "orderBy",
                "privateExtendedProperty",
                "q",
                "sharedExtendedProperty",
                "timeMin",
                "timeMax",
                "updatedMin",
            ):
                if name in args:
                    raise _bad_request(
                        f"The parameter {name} is not allowed with syncToken.",
                        "invalid",
                        location=name,
                        locationType="parameter",
                    )
            if args.get("showDeleted", "").lower() == "false":
                raise _bad_request(
                    "showDeleted=false is not allowed with syncToken.",
                    location="showDeleted",
                    locationType="parameter",
                )
            state = self._sync_tokens.get(sync_token)
            if state is None or state.owner != owner or state.expired:
                raise _full_sync_required()
            items = self._calendar_items(
                owner,
                single_events=state.single_events,
                show_deleted=True,
                time_min=None,
                time_max=None,
                since=state.seq,
            )
            return items, self._new_sync_token(owner, state.single_events)
        try:
            time_min = _parse_rfc3339(args["timeMin"]) if "timeMin" in args else None
            time_max = _parse_rfc3339(args["timeMax"]) if "timeMax" in args else None
        except ValueError:
            raise _bad_request("Bad Request", "badRequest") from None
        if time_min and time_max and time_min >= time_max:
            raise _bad_request("The specified time range is empty.", "timeRangeEmpty")
        if args.get("orderBy") == "startTime" and not single:
            raise _bad_request(
                "The requested ordering is not available for the particular query.", "invalid"
            )
        items = self._calendar_items(
            owner,
            single_events=single,
            show_deleted=show_deleted,
            time_min=time_min,
            time_max=time_max,
            since=None,
        )
        if "iCalUID" in args:
            items = [i for i in items if i.get("iCalUID") == args["iCalUID"]]
        for kind in ("private", "shared"):
            wanted = [v.split("=", 1) for v in _getlist(args, f"{kind}ExtendedProperty")]
            if wanted:
                items = [
                    i
                    for i in items
                    if all(
                        len(pair) == 2
                        and i.get("extendedProperties", {}).get(kind, {}).get(pair[0]) == pair[1]
                        for pair in wanted
                    )
                ]
        return items, self._new_sync_token(owner, single)

    def _new_sync_token(self, owner: str, single_events: bool) -> str:
        value = "CPj" + secrets.token_urlsafe(18) + "="
        self._sync_tokens[value] = _SyncState(owner, self._seq, single_events)
        return value

    def _get_event(
        self, request: Request, token: IssuedToken, calendar: str, event: str
    ) -> Response:
        self._require(token, CALENDAR_READ)
        owner = self._calendar_owner(token, calendar)
        with self._lock:
            found = self._find(owner, event)
            if found is None:
                raise _not_found()
            return _json(self._render(*found, minimal=False))

    def _patch_event(
        self, request: Request, token: IssuedToken, calendar: str, event: str
    ) -> Response:
        self._require(token, CALENDAR_READ)
        self._require(token, CALENDAR_WRITE)
        owner = self._calendar_owner(token, calendar)
        body = _json_body(request)
        with self._lock:
            if self._find(owner, event) is None:
                raise _not_found()
            copy = self._copy(owner, event)
            series = copy.series
            extended = body.pop("extendedProperties", None) or {}
            organizer_fields = {
                k: body.pop(k)
                for k in ("summary", "description", "location", "visibility", "transparency")
                if k in body
            }
            if (organizer_fields or extended.get("shared")) and series.organizer != owner:
                raise _ApiError(
                    403,
                    "Shared properties can only be changed by the organizer of the event.",
                    "forbiddenForNonOrganizer",
                )
            for key, value in (extended.get("private") or {}).items():
                if value is None:
                    copy.private.pop(key, None)
                else:
                    copy.private[key] = str(value)
            for key, value in (extended.get("shared") or {}).items():
                if value is None:
                    series.shared.pop(key, None)
                else:
                    series.shared[key] = str(value)
            for key, value in organizer_fields.items():
                setattr(series, key, value)
            if organizer_fields or extended.get("shared"):
                self._changed(series, self._owners(series))
            else:
                self._touch(copy)
            return _json(self._render(copy, None, minimal=False))

    def _watch(self, request: Request, token: IssuedToken, calendar: str) -> Response:
        self._require(token, CALENDAR_READ)
        owner = self._calendar_owner(token, calendar)
        body = _json_body(request)
        channel_id = str(body.get("id") or "")
        address = str(body.get("address") or "")
        if not channel_id:
            raise _bad_request("Required channel id", "required")
        if body.get("type") not in ("web_hook", "webhook"):
            raise _bad_request(f"Invalid channel type: {body.get('type')}", "invalid")
        if not address.startswith("https://"):
            raise _bad_request(
                f"WebHook callback must be HTTPS: {address}", "push.webhookUrlNotHttps"
            )
        ttl = MAX_CHANNEL_TTL
        params = body.get("params") or {}
        if "ttl" in params:
            try:
                ttl = min(int(params["ttl"]), MAX_CHANNEL_TTL)
            except (TypeError, ValueError):
                raise _bad_request("Invalid ttl value.", "invalid") from None
        expiration = datetime.now(UTC) + timedelta(seconds=ttl)
        if body.get("expiration"):
            asked = datetime.fromtimestamp(int(body["expiration"]) / 1000, UTC)
            expiration = min(expiration, asked)
        with self._lock:
            if channel_id in self.channels:
                raise _bad_request(f"Channel id {channel_id} not unique", "channelIdNotUnique")
            resource_id = self._resource_ids.setdefault(owner, secrets.token_urlsafe(20))
            channel = Channel(
                id=channel_id,
                resource_id=resource_id,
                resource_uri=f"{self.calendar_url}/calendars/{quote(calendar)}/events?alt=json",
                token=body.get("token"),
                address=address,
                expiration=expiration,
                calendar=owner,
                client_id=token.client_id,
            )
            self.channels[channel_id] = channel
        if self.sync_message == "before":
            # Google may deliver the sync message before the watch response (reference §4.2).
            self._send(channel, "sync")
        answer: dict[str, Any] = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": _ms(channel.expiration),
        }
        if channel.token is not None:
            answer["token"] = channel.token
        return _json(answer)

    def _stop_channel(self, request: Request, token: IssuedToken) -> Response:
        body = _json_body(request)
        with self._lock:
            channel = self.channels.get(str(body.get("id")))
            if (
                channel is None
                or channel.stopped
                or channel.resource_id != body.get("resourceId")
                or channel.client_id != token.client_id
            ):
                raise _ApiError(
                    404,
                    f"Channel '{body.get('id')}' not found for project '{token.client_id}'",
                    "notFound",
                )
            channel.stopped = True
        return Response(status=204)

    # ----------------------------------------------------------------------- HTTP: Gmail

    def _mailbox_user(self, token: IssuedToken, user: str) -> str:
        subject = token.subject or token.client_email
        wanted = subject if user == "me" else user.lower()
        if wanted != subject:
            raise _ApiError(403, f"Delegation denied for {subject}", "forbidden")
        if wanted not in self.mailboxes:
            raise _ApiError(400, "Precondition check failed.", "failedPrecondition")
        return wanted

    def _gmail_watch(self, request: Request, token: IssuedToken, user: str) -> Response:
        self._require(token, GMAIL_READ)
        email = self._mailbox_user(token, user)
        body = _json_body(request)
        topic = str(body.get("topicName") or "")
        if not re.fullmatch(r"projects/[^/]+/topics/[^/]+", topic):
            raise _bad_request(
                "Invalid topicName does not match projects/SOME_PROJECT/topics/SOME_TOPIC: "
                + topic,
                "invalidArgument",
            )
        expiration = datetime.now(UTC) + timedelta(days=GMAIL_WATCH_DAYS)
        with self._lock:
            mailbox = self.mailboxes[email]
            mailbox.watch = {
                "topicName": topic,
                "labelIds": list(body.get("labelIds") or []),
                "labelFilterBehavior": body.get("labelFilterBehavior")
                or body.get("labelFilterAction"),
                "expiration": expiration,
            }
            return _json({"historyId": str(mailbox.history_id), "expiration": _ms(expiration)})

    def _gmail_stop(self, request: Request, token: IssuedToken, user: str) -> Response:
        self._require(token, GMAIL_READ)
        email = self._mailbox_user(token, user)
        with self._lock:
            self.mailboxes[email].watch = None
        return Response(status=204)

    def _gmail_profile(self, request: Request, token: IssuedToken, user: str) -> Response:
        self._require(token, GMAIL_READ)
        email = self._mailbox_user(token, user)
        with self._lock:
            mailbox = self.mailboxes[email]
            return _json(
                {
                    "emailAddress": email,
                    "messagesTotal": len(mailbox.messages),
                    "threadsTotal": len(mailbox.messages),
                    "historyId": str(mailbox.history_id),
                }
            )

    def _gmail_history(self, request: Request, token: IssuedToken, user: str) -> Response:
        self._require(token, GMAIL_READ)
        email = self._mailbox_user(token, user)
        args = request.args
        try:
            start = int(args["startHistoryId"])
        except (KeyError, ValueError):
            raise _bad_request("Invalid startHistoryId", "invalidArgument") from None
        max_results = min(int(args.get("maxResults", "100")), 500)
        offset = int(args.get("pageToken", "0") or 0)
        types = set(args.getlist("historyTypes"))
        label = args.get("labelId")
        with self._lock:
            mailbox = self.mailboxes[email]
            if start < mailbox.history_floor:
                raise _ApiError(404, "Requested entity was not found.", "notFound")
            records = []
            for record in mailbox.history:
                message: _Message = record["message"]
                if record["id"] <= start:
                    continue
                if types and "messageAdded" not in types:
                    continue
                if label and label not in message.label_ids:
                    continue
                short = {"id": message.id, "threadId": message.thread_id}
                records.append(
                    {
                        "id": str(record["id"]),
                        "messages": [short],
                        "messagesAdded": [{"message": {**short, "labelIds": message.label_ids}}],
                    }
                )
            page = records[offset : offset + max_results]
            body: dict[str, Any] = {"historyId": str(mailbox.history_id)}
            if page:
                body["history"] = page
            if offset + max_results < len(records):
                body["nextPageToken"] = str(offset + max_results)
        return _json(body)

    def _gmail_messages(self, request: Request, token: IssuedToken, user: str) -> Response:
        self._require(token, GMAIL_READ)
        email = self._mailbox_user(token, user)
        max_results = min(int(request.args.get("maxResults", "100")), 500)
        offset = int(request.args.get("pageToken", "0") or 0)
        labels = request.args.getlist("labelIds")
        with self._lock:
            found = [
                {"id": m.id, "threadId": m.thread_id}
                for m in sorted(
                    self.mailboxes[email].messages.values(),
                    key=lambda m: m.history_id,
                    reverse=True,
                )
                if all(label in m.label_ids for label in labels)
            ]
        body: dict[str, Any] = {"resultSizeEstimate": len(found)}
        if found[offset : offset + max_results]:
            body["messages"] = found[offset : offset + max_results]
        if offset + max_results < len(found):
            body["nextPageToken"] = str(offset + max_results)
        return _json(body)

    def _gmail_message(
        self, request: Request, token: IssuedToken, user: str, message: str
    ) -> Response:
        self._require(token, GMAIL_READ)
        email = self._mailbox_user(token, user)
        fmt = request.args.get("format", "full")
        if fmt not in ("full", "metadata", "minimal", "raw"):
            raise _bad_request(f"Invalid value for format: {fmt}", "invalidArgument")
        if fmt in ("full", "raw") and token.scopes & GMAIL_READ == {GMAIL_METADATA}:
            raise _ApiError(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
        with self._lock:
            stored = self.mailboxes[email].messages.get(message)
        if stored is None:
            raise _ApiError(404, "Requested entity was not found.", "notFound")
        body: dict[str, Any] = {
            "id": stored.id,
            "threadId": stored.thread_id,
            "labelIds": stored.label_ids,
            "snippet": stored.snippet,
            "sizeEstimate": len(stored.raw),
            "historyId": str(stored.history_id),
            "internalDate": _ms(stored.internal_date),
        }
        if fmt == "raw":
            body["raw"] = _b64url(stored.raw)
        elif fmt in ("full", "metadata"):
            parsed = message_from_bytes(stored.raw, _class=EmailMessage, policy=SMTP)
            if fmt == "full":
                body["payload"] = _payload(parsed, "")
            else:
                wanted = {h.lower() for h in request.args.getlist("metadataHeaders")}
                body["payload"] = {
                    "mimeType": parsed.get_content_type(),
                    "headers": [
                        {"name": k, "value": str(v)}
                        for k, v in parsed.items()
                        if not wanted or k.lower() in wanted
                    ],
                }
        return _json(body)

    # ----------------------------------------------------------------------- HTTP: directory

    def _directory_users(self, request: Request, token: IssuedToken) -> Response:
        self._require(token, DIRECTORY_READ)
        subject = token.subject
        if subject is None or subject not in self.admins:
            raise _ApiError(403, "Not Authorized to access this resource/api", "forbidden")
        args = request.args
        customer, domain = args.get("customer"), args.get("domain")
        if customer not in (None, "my_customer", self.customer_id) or (
            customer is None and domain is None
        ):
            raise _bad_request("Bad Request", "badRequest")
        max_results = int(args.get("maxResults", "100"))
        if not 1 <= max_results <= 500:
            raise _bad_request("Invalid Input: maxResults", "invalid")
        offset = int(args.get("pageToken", "0") or 0)
        with self._lock:
            users = sorted(
                (u for u in self.users.values() if domain is None or u.domain == domain.lower()),
                key=lambda u: u.email,
            )
            page = [
                u.json(is_admin=u.email in self.admins, customer_id=self.customer_id)
                for u in users[offset : offset + max_results]
            ]
        body: dict[str, Any] = {"kind": "admin#directory#users", "etag": '"dir"', "users": page}
        if offset + max_results < len(users):
            body["nextPageToken"] = str(offset + max_results)
        return _json(body)


_LIFETIME_MESSAGE: Final = (
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim."
)


# --------------------------------------------------------------------------- module helpers


def _getlist(args: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(args, "getlist", None)
    if getlist is not None:
        return list(getlist(name))
    return [args[name]] if name in args else []


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise _bad_request("Parse Error", "parseError") from None
    if not isinstance(body, dict):
        raise _bad_request("Parse Error", "parseError")
    return body


def _attendee_list(
    organizer: str,
    attendees: Sequence[str | Mapping[str, Any]],
    users: Mapping[str, GoogleUser],
    previous: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Attendee entries; the organizer is listed first (accepted) once there are guests."""
    statuses = {a["email"]: a.get("responseStatus", "needsAction") for a in previous}
    entries: list[dict[str, Any]] = []
    if attendees:
        entries.append({"email": organizer, "organizer": True, "responseStatus": "accepted"})
        if organizer in users:
            entries[0]["displayName"] = users[organizer].name
    for item in attendees:
        spec: Mapping[str, Any] = {"email": item} if isinstance(item, str) else item
        email = str(spec["email"]).lower()
        if email == organizer:
            continue
        entry: dict[str, Any] = {"email": email}
        name = spec.get("displayName") or (users[email].name if email in users else None)
        if name:
            entry["displayName"] = name
        if spec.get("optional"):
            entry["optional"] = True
        entry["responseStatus"] = spec.get("responseStatus") or statuses.get(email, "needsAction")
        entries.append(entry)
    return entries


def _when(value: datetime | date, zone_name: str) -> dict[str, str]:
    if isinstance(value, datetime):
        local = value.astimezone(_zone(zone_name))
        text = local.isoformat(timespec="seconds")
        if local.utcoffset() == timedelta(0) and zone_name in ("UTC", "Etc/UTC"):
            text = text.replace("+00:00", "Z")
        return {"dateTime": text, "timeZone": zone_name}
    return {"date": value.isoformat()}


def _as_moment(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _sort_key(value: datetime | date | None) -> str:
    return "" if value is None else _as_moment(value).isoformat()


def _minus(end: datetime | date, start: datetime | date) -> timedelta:
    return _as_moment(end) - _as_moment(start)


def _plus(value: datetime | date, delta: timedelta) -> datetime | date:
    if isinstance(value, datetime):
        return value + delta
    return value + timedelta(days=delta.days)


def _in_window(
    google: Google, copy: _Copy, time_min: datetime | None, time_max: datetime | None
) -> bool:
    """Whether an event overlaps [timeMin, timeMax) (any occurrence, for a series)."""
    if time_min is None and time_max is None:
        return True
    series = copy.series
    duration = _minus(series.end, series.start)
    starts = google._occurrences(series, time_max) if series.recurrence else [series.start]
    for start in starts:
        begin, finish = _as_moment(start), _as_moment(_plus(start, duration))
        if (time_max is None or begin < time_max) and (time_min is None or finish > time_min):
            return True
    return False


def _local_until(rule: str, zone: ZoneInfo, all_day: bool) -> str:
    """An RRULE with a UTC ``UNTIL`` rewritten to local wall time (dateutil works naive)."""

    def local(match: re.Match[str]) -> str:
        moment = datetime.strptime(match[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        if all_day:
            return f"UNTIL={moment:%Y%m%d}T235959"
        return f"UNTIL={moment.astimezone(zone):%Y%m%dT%H%M%S}"

    rule = re.sub(r"UNTIL=(\d{8}T\d{6})Z", local, rule)
    return re.sub(r"UNTIL=(\d{8})(?=;|$)", r"UNTIL=\1T235959", rule)


def _local_value(value: str, tzid: str | None, zone: ZoneInfo) -> datetime:
    value = value.strip()
    if len(value) == 8:
        return datetime.strptime(value, "%Y%m%d")  # noqa: DTZ007 - floating (all-day)
    if value.endswith("Z"):
        moment = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return moment.astimezone(zone).replace(tzinfo=None)
    local = datetime.strptime(value, "%Y%m%dT%H%M%S")  # noqa: DTZ007 - wall time
    if tzid:
        return local.replace(tzinfo=ZoneInfo(tzid)).astimezone(zone).replace(tzinfo=None)
    return local


def _human_when(series: _Series) -> str:
    if isinstance(series.start, datetime):
        local = series.start.astimezone(_zone(series.time_zone))
        return f"{local:%a %b %d, %Y %H:%M} ({series.time_zone})"
    return f"{series.start:%a %b %d, %Y}"


def _ics_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _fold(line: str) -> list[str]:
    """RFC 5545 §3.1: lines longer than 75 octets continue with a leading space."""
    out: list[str] = []
    current = ""
    for char in line:
        if len((current + char).encode()) > (75 if not out else 74):
            out.append(current)
            current = ""
        current += char
    out.append(current)
    return [out[0]] + [" " + part for part in out[1:]]


def _ics(
    series: _Series,
    method: str,
    users: Mapping[str, GoogleUser],
    *,
    reply: tuple[str, str] | None = None,
) -> str:
    """The text/calendar body Google sends with an invitation, update, cancel or reply."""
    now = datetime.now(UTC)
    partstat = {
        "accepted": "ACCEPTED",
        "declined": "DECLINED",
        "tentative": "TENTATIVE",
        "needsAction": "NEEDS-ACTION",
    }
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
    ]
    if isinstance(series.start, datetime) and isinstance(series.end, datetime):
        if series.recurrence:
            zone = _zone(series.time_zone)
            lines.append(
                f"DTSTART;TZID={series.time_zone}:{series.start.astimezone(zone):%Y%m%dT%H%M%S}"
            )
            lines.append(
                f"DTEND;TZID={series.time_zone}:{series.end.astimezone(zone):%Y%m%dT%H%M%S}"
            )
        else:
            lines.append(f"DTSTART:{series.start:%Y%m%dT%H%M%SZ}")
            lines.append(f"DTEND:{series.end:%Y%m%dT%H%M%SZ}")
    else:
        lines.append(f"DTSTART;VALUE=DATE:{series.start:%Y%m%d}")
        lines.append(f"DTEND;VALUE=DATE:{series.end:%Y%m%d}")
    if series.recurrence:
        lines += list(series.recurrence)
    if series.original_start is not None:
        lines.append(f"RECURRENCE-ID:{_stamp(series.original_start)}")
    lines.append(f"DTSTAMP:{now:%Y%m%dT%H%M%SZ}")
    organizer = users.get(series.organizer)
    lines.append(
        f"ORGANIZER;CN={organizer.name if organizer else series.organizer}:"
        f"mailto:{series.organizer}"
    )
    lines.append(f"UID:{series.ical_uid}")
    for entry in series.attendees:
        if reply is not None and entry["email"] != reply[0]:
            continue
        status = reply[1] if reply is not None else entry.get("responseStatus", "needsAction")
        role = "OPT-PARTICIPANT" if entry.get("optional") else "REQ-PARTICIPANT"
        lines.append(
            f"ATTENDEE;CUTYPE=INDIVIDUAL;ROLE={role};PARTSTAT={partstat.get(status, status)};"
            f"RSVP=TRUE;CN={entry.get('displayName', entry['email'])};X-NUM-GUESTS=0:"
            f"mailto:{entry['email']}"
        )
    lines += [
        f"CREATED:{series.created:%Y%m%dT%H%M%SZ}",
        f"DESCRIPTION:{_ics_escape(series.description)}",
        f"LAST-MODIFIED:{now:%Y%m%dT%H%M%SZ}",
        f"LOCATION:{_ics_escape(series.location)}",
        f"SEQUENCE:{series.sequence}",
        f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}",
        f"SUMMARY:{_ics_escape(series.summary)}",
        f"TRANSP:{series.transparency.upper()}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    folded: list[str] = []
    for line in lines:
        folded += _fold(line)
    return "\r\n".join(folded) + "\r\n"


def _payload(part: EmailMessage, part_id: str) -> dict[str, Any]:
    """A MIME part as Gmail's ``MessagePart``: partId, mimeType, filename, headers, body, parts."""
    headers = [{"name": k, "value": str(v)} for k, v in part.items()]
    body: dict[str, Any] = {
        "partId": part_id,
        "mimeType": part.get_content_type(),
        "filename": part.get_filename() or "",
        "headers": headers,
    }
    if part.is_multipart():
        children = list(part.iter_parts())
        body["body"] = {"size": 0}
        body["parts"] = [
            _payload(child, f"{part_id}.{i}" if part_id else str(i))  # type: ignore[arg-type]
            for i, child in enumerate(children)
        ]
        return body
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    if part.get_filename():
        body["body"] = {"attachmentId": "ANGjdJ" + secrets.token_urlsafe(32), "size": len(data)}
    else:
        body["body"] = {"size": len(data), "data": _b64url(data)}
    return body
