"""gmail/ (client, calendar, channels, mail, directory) over real HTTPS against a small stand-in.

The stand-in here is deliberately minimal and scripted per test: a token endpoint that checks
only the grant type (and reads, without verifying, the assertion's ``sub`` and ``scope`` so the
tests can see whom the client acted for), and routes that answer queued responses. The CA of
``tests.standins.tls`` makes it HTTPS, trusted through ``REQUESTS_CA_BUNDLE`` as in production.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.wrappers import Request, Response

from gmail.calendar import GoogleCalendar
from gmail.channels import GoogleCalendarChannels
from gmail.client import (
    CALENDAR_SCOPE,
    DIRECTORY_SCOPE,
    GMAIL_SCOPE,
    GoogleAccessDenied,
    GoogleBadRequest,
    GoogleClient,
    GoogleNotFound,
    GoogleThrottled,
    GoogleUnavailable,
    quota_user,
)
from gmail.directory import GoogleDirectory
from gmail.mail import GmailMessages, GmailWatch
from services.meetings import EventType, MeetingSnapshot, Removed
from services.ports import ChangeSignal, ChannelGone, CursorExpired, MailboxRef, ProviderError
from services.tables import Provider
from tests.standins import BackgroundServer, make_ca

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads" / "google"
ANNA = "anna@example.com"
MAILBOX = MailboxRef(org_id=1, provider=Provider.GOOGLE, address=ANNA, external_id=ANNA)
CLIENT_ID = "109876543210987654321"
EVENTS = "/calendar/v3/calendars/primary/events"
WINDOW = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / f"{name}.json").read_text())
    return data


def reply(body: Any = None, status: int = 200, **headers: str) -> Response:
    text = "" if body is None else json.dumps(body)
    return Response(text, status=status, headers=headers, content_type="application/json")


def google_error(status: int, reason: str, message: str = "") -> Response:
    return reply(
        {"error": {"code": status, "message": message or reason, "errors": [{"reason": reason}]}},
        status,
    )


@dataclass
class Seen:
    method: str
    path: str
    args: dict[str, list[str]]
    body: Any
    user: str  # the DWD subject of the token the request carried
    at: float


Route = Callable[[Request], Response] | list[Response]


@dataclass
class FakeGoogle:
    """Token endpoint + scripted API routes; records every API request."""

    requests: list[Seen] = field(default_factory=list)
    grants: list[dict[str, str]] = field(default_factory=list)
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    refuse: Response | None = None
    _tokens: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def route(self, method: str, path: str, *answers: Response | Callable[[Request], Response]):
        if len(answers) == 1 and callable(answers[0]) and not isinstance(answers[0], Response):
            self.routes[(method, path)] = answers[0]
        else:
            self.routes[(method, path)] = [a for a in answers if isinstance(a, Response)]

    def calls(self, method: str | None = None, path: str | None = None) -> list[Seen]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._token(request) if request.path == "/token" else self._api(request)
        return response(environ, start_response)

    def _token(self, request: Request) -> Response:
        if request.form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return reply({"error": "unsupported_grant_type"}, 400)
        if self.refuse is not None:
            return self.refuse
        claims = _unverified_claims(request.form["assertion"])
        with self._lock:
            self.grants.append({"sub": claims.get("sub", ""), "scope": claims.get("scope", "")})
            token = f"ya29.token-{len(self.grants)}"
            self._tokens[token] = claims.get("sub", "")
        return reply({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _api(self, request: Request) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        with self._lock:
            user = self._tokens.get(token)
            self.requests.append(
                Seen(
                    request.method,
                    request.path,
                    {k: request.args.getlist(k) for k in request.args},
                    request.get_json(silent=True),
                    user or "",
                    time.monotonic(),
                )
            )
            if user is None:
                return google_error(401, "authError", "Invalid Credentials")
            route = self.routes.get((request.method, request.path))
            if route is None:
                return google_error(404, "notFound", "Not Found")
            if callable(route):
                return route(request)
            return route.pop(0) if len(route) > 1 else route[0]


def _unverified_claims(assertion: str) -> dict[str, str]:
    middle = assertion.split(".")[1]
    data: dict[str, str] = json.loads(base64.urlsafe_b64decode(middle + "=" * (-len(middle) % 4)))
    return data


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def google(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeGoogle, str]]:
    ca = make_ca(tmp_path / "ca")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca.ca_path))
    fake = FakeGoogle()
    with BackgroundServer(fake, ssl_context=ca.server_context()) as server:
        yield fake, server.base_url


MakeClient = Callable[..., GoogleClient]


@pytest.fixture
def make_client(google: tuple[FakeGoogle, str], private_key_pem: str) -> Iterator[MakeClient]:
    _, base = google
    clients: list[GoogleClient] = []

    def make(**options: Any) -> GoogleClient:
        info = {
            "type": "service_account",
            "project_id": "crm-project",
            "private_key_id": "k1",
            "private_key": private_key_pem,
            "client_email": "crm-sync@crm-project.iam.gserviceaccount.com",
            "client_id": CLIENT_ID,
            "token_uri": f"{base}/token",
        }
        options.setdefault("calendar_base_url", f"{base}/calendar/v3")
        options.setdefault("gmail_base_url", f"{base}/gmail/v1")
        options.setdefault("directory_base_url", f"{base}/admin/directory/v1")
        client = GoogleClient(info, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def fake(google: tuple[FakeGoogle, str]) -> FakeGoogle:
    return google[0]


# --------------------------------------------------------------------------- client


def test_acts_for_the_user_with_delegated_scopes_and_quota_user(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    fake.route("GET", f"{EVENTS}/e1", reply({"id": "e1"}))
    client = make_client()
    for _ in range(2):
        answer = client.get(
            "calendars/primary/events/e1", as_user="Anna@Example.com", scopes=[CALENDAR_SCOPE]
        )
        assert answer == {"id": "e1"}
    assert fake.grants == [{"sub": ANNA, "scope": CALENDAR_SCOPE}]  # one token, cached
    assert [(r.user, r.args["quotaUser"]) for r in fake.requests] == [(ANNA, [ANNA])] * 2
    url = client.calendar_url("calendars/primary/events/e1")
    other = client.get(url, as_user="bob@example.com", scopes=[CALENDAR_SCOPE])
    assert other == {"id": "e1"}
    assert fake.grants[-1]["sub"] == "bob@example.com"
    assert fake.requests[-1].user == "bob@example.com"


def test_long_addresses_send_a_stable_short_quota_user() -> None:
    long = "someone.with.a.very.long.name@subsidiary.example.com"
    assert len(quota_user(long)) == 40
    assert quota_user(long) == quota_user(long.upper())
    assert quota_user(ANNA) == ANNA


def test_retry_after_is_honoured_before_the_next_request(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    slow_down = reply({"error": {"code": 429, "message": "slow down"}}, 429, **{"Retry-After": "1"})
    fake.route("GET", f"{EVENTS}/e1", slow_down, reply({"id": "e1"}))
    errors: list[str] = []
    client = make_client(on_error=errors.append)
    assert client.get("calendars/primary/events/e1", as_user=ANNA, scopes=[CALENDAR_SCOPE])
    first, second = fake.calls("GET")
    assert second.at - first.at >= 1.0
    assert errors == ["google.throttled"]


def test_403_rate_limit_is_retried_but_other_403_is_access_denied(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    limited = google_error(403, "userRateLimitExceeded")
    limited.headers["Retry-After"] = "0"
    fake.route("GET", f"{EVENTS}/e1", limited, reply({"id": "e1"}))
    fake.route("GET", f"{EVENTS}/e2", google_error(403, "forbidden", "no access"))
    client = make_client()
    assert client.get("calendars/primary/events/e1", as_user=ANNA, scopes=[CALENDAR_SCOPE])
    assert len(fake.calls("GET", f"{EVENTS}/e1")) == 2
    with pytest.raises(GoogleAccessDenied) as denied:
        client.get("calendars/primary/events/e2", as_user=ANNA, scopes=[CALENDAR_SCOPE])
    assert denied.value.reason == "google.access_denied"
    assert denied.value.transient is False
    assert isinstance(denied.value, ProviderError)
    assert len(fake.calls("GET", f"{EVENTS}/e2")) == 1


def test_a_wait_longer_than_max_retry_wait_gives_up_at_once(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    busy = google_error(503, "backendError")
    busy.headers["Retry-After"] = "120"
    fake.route("GET", f"{EVENTS}/e1", busy)
    client = make_client(max_retry_wait=60.0)
    with pytest.raises(GoogleUnavailable) as failed:
        client.get("calendars/primary/events/e1", as_user=ANNA, scopes=[CALENDAR_SCOPE])
    assert failed.value.retry_after == 120.0
    assert failed.value.transient is True
    assert len(fake.requests) == 1


def test_server_errors_back_off_then_give_up(fake: FakeGoogle, make_client: MakeClient) -> None:
    fake.route("GET", f"{EVENTS}/e1", google_error(500, "backendError"))
    waits: list[float] = []
    client = make_client(max_retries=2, sleep=waits.append)
    with pytest.raises(GoogleUnavailable) as failed:
        client.get("calendars/primary/events/e1", as_user=ANNA, scopes=[CALENDAR_SCOPE])
    assert failed.value.reason == "google.unavailable"
    assert len(fake.requests) == 3
    assert 1.0 <= waits[0] < 2.0
    assert 2.0 <= waits[1] < 3.0


def test_throttled_after_retries_is_typed(fake: FakeGoogle, make_client: MakeClient) -> None:
    fake.route("GET", f"{EVENTS}/e1", google_error(429, "rateLimitExceeded"))
    client = make_client(max_retries=1, sleep=lambda _: None)
    with pytest.raises(GoogleThrottled) as failed:
        client.get("calendars/primary/events/e1", as_user=ANNA, scopes=[CALENDAR_SCOPE])
    assert failed.value.reason == "google.throttled"
    assert failed.value.transient
    assert failed.value.retry_after is not None


def test_errors_are_typed_and_tokens_never_logged(
    fake: FakeGoogle, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    fake.route("GET", f"{EVENTS}/bad", google_error(400, "invalid", "Bad Request"))
    client = make_client()
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(GoogleNotFound) as missing:
            client.get("calendars/primary/events/none", as_user=ANNA, scopes=[CALENDAR_SCOPE])
        with pytest.raises(GoogleBadRequest):
            client.get(
                "calendars/primary/events/bad",
                as_user=ANNA,
                scopes=[CALENDAR_SCOPE],
                params={"syncToken": "secret-sync-token"},
            )
    assert missing.value.reason == "google.not_found"
    assert not missing.value.transient
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("gmail"))
    assert "google.bad_request" in ours
    assert "ya29." not in caplog.text  # not even google-auth's or urllib3's debug lines
    assert "secret-sync-token" not in ours  # urllib3's debug line has the URL; ours never


def test_refused_delegation_is_access_denied_in_words(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    fake.refuse = reply(
        {
            "error": "unauthorized_client",
            "error_description": "Client is unauthorized to retrieve access tokens using this "
            "method, or client not authorized for any of the scopes requested.",
        },
        401,
    )
    errors: list[str] = []
    client = make_client(on_error=errors.append)
    with pytest.raises(GoogleAccessDenied) as denied:
        client.get("calendars/primary/events/e1", as_user=ANNA, scopes=[CALENDAR_SCOPE])
    message = str(denied.value)
    assert "domain-wide delegation" in message
    assert CALENDAR_SCOPE in message
    assert CLIENT_ID in message
    assert ANNA in message
    assert denied.value.transient is False
    assert denied.value.code == "unauthorized_client"
    assert fake.requests == []  # nothing reached the API
    assert errors == ["google.access_denied"]


def test_links_to_other_origins_are_refused(make_client: MakeClient) -> None:
    client = make_client()
    with pytest.raises(ProviderError, match="not a configured Google API origin"):
        client.get("https://evil.example/steal", as_user=ANNA, scopes=[CALENDAR_SCOPE])


# --------------------------------------------------------------------------- calendar


def test_full_round_pages_masters_first_and_sync_token(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    page1 = {
        "timeZone": "Europe/Vienna",
        "nextPageToken": "page-2",
        "items": [payload("cancelled_instance"), payload("single"), payload("working_location")],
    }
    page2 = {
        "timeZone": "Europe/Vienna",
        "nextSyncToken": "sync-1",
        "items": [payload("recurring_master"), payload("all_day"), payload("cancelled_minimal")],
    }
    fake.route("GET", EVENTS, reply(page1), reply(page2))
    calendar = GoogleCalendar(make_client(), page_size=3)
    round_ = calendar.delta(MAILBOX, None, WINDOW)
    changes = list(round_)
    assert round_.cursor == "sync-1"
    summary = [
        (c.provider_event_id, c.event_type if isinstance(c, MeetingSnapshot) else "removed")
        for c in changes
    ]
    assert summary == [
        ("7kq3b1n9v2c4d5e6f7g8h9i0j1", EventType.SINGLE),
        ("series0001", EventType.SERIES),
        ("series0001_20260324T080000Z", EventType.EXCEPTION),
        ("allday0001", EventType.SINGLE),
        ("gone0001", "removed"),
    ]
    cancelled = changes[2]
    assert isinstance(cancelled, MeetingSnapshot)
    assert cancelled.cancelled
    assert cancelled.ical_uid == "series0001@google.com"
    all_day = changes[3]
    assert isinstance(all_day, MeetingSnapshot)
    assert all_day.time_zone == "Europe/Vienna"
    first, second = fake.calls("GET", EVENTS)
    expected = {
        "singleEvents": ["false"],
        "showDeleted": ["true"],
        "maxResults": ["3"],
        "timeMin": ["2026-03-01T00:00:00Z"],
        "timeMax": ["2026-04-01T00:00:00Z"],
        "quotaUser": [ANNA],
    }
    assert first.args == expected
    assert second.args == {**expected, "pageToken": ["page-2"]}
    assert len(fake.requests) == 2  # the master came in the round: no events.get


def test_incremental_round_uses_the_sync_token_and_reads_missing_masters_once(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    fake.route(
        "GET",
        EVENTS,
        reply(
            {
                "timeZone": "Europe/Vienna",
                "nextSyncToken": "sync-2",
                "items": [payload("moved_instance"), payload("cancelled_instance")],
            }
        ),
    )
    fake.route("GET", f"{EVENTS}/series0001", reply(payload("recurring_master")))
    round_ = GoogleCalendar(make_client()).delta(MAILBOX, "sync-1", WINDOW)
    changes = list(round_)
    assert round_.cursor == "sync-2"
    assert [c.provider_event_id for c in changes] == [
        "series0001",
        "series0001_20260310T080000Z",
        "series0001_20260324T080000Z",
    ]
    (listed,) = fake.calls("GET", EVENTS)
    assert listed.args == {
        "singleEvents": ["false"],
        "showDeleted": ["true"],
        "maxResults": ["250"],
        "syncToken": ["sync-1"],
        "quotaUser": [ANNA],
    }
    assert len(fake.calls("GET", f"{EVENTS}/series0001")) == 1


def test_expired_sync_token_raises_cursor_expired(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    fake.route(
        "GET",
        EVENTS,
        google_error(410, "fullSyncRequired", "Sync token is no longer valid"),
    )
    round_ = GoogleCalendar(make_client()).delta(MAILBOX, "old-token", WINDOW)
    with pytest.raises(CursorExpired) as expired:
        list(round_)
    assert expired.value.reason == "google.sync_token_expired"
    with pytest.raises(RuntimeError):
        _ = round_.cursor


def test_changed_events_reads_each_once_masters_first_and_gone_is_removed(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    fake.route("GET", f"{EVENTS}/series0001_20260310T080000Z", reply(payload("moved_instance")))
    fake.route("GET", f"{EVENTS}/series0001", reply(payload("recurring_master")))
    signals = [
        ChangeSignal("series0001_20260310T080000Z"),
        ChangeSignal("deleted-one", "deleted"),
        ChangeSignal("series0001_20260310T080000Z"),
    ]
    changes = list(GoogleCalendar(make_client()).changed_events(MAILBOX, signals))
    assert changes[0] == Removed(Provider.GOOGLE, ANNA, "deleted-one")
    assert [c.provider_event_id for c in changes[1:]] == [
        "series0001",
        "series0001_20260310T080000Z",
    ]
    assert [r.path for r in fake.requests].count(f"{EVENTS}/series0001_20260310T080000Z") == 1
    assert len(fake.calls("GET", f"{EVENTS}/series0001")) == 1


def test_all_day_event_by_id_takes_the_calendar_zone(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    fake.route("GET", f"{EVENTS}/allday0001", reply(payload("all_day")))
    fake.route("GET", EVENTS, reply({"timeZone": "America/New_York"}))
    calendar = GoogleCalendar(make_client())
    for _ in range(2):
        (shot,) = calendar.changed_events(MAILBOX, [ChangeSignal("allday0001")])
        assert isinstance(shot, MeetingSnapshot)
        assert shot.time_zone == "America/New_York"
    assert len(fake.calls("GET", EVENTS)) == 1  # cached per mailbox


def test_event_ids_for_ical_uid_and_write_tag(fake: FakeGoogle, make_client: MakeClient) -> None:
    fake.route(
        "GET",
        EVENTS,
        reply({"items": [{"id": "series0001"}, {"id": "series0001_x", "status": "confirmed"}]}),
    )
    fake.route("PATCH", f"{EVENTS}/series0001", reply({"id": "series0001"}))
    calendar = GoogleCalendar(make_client())
    ids = calendar.event_ids_for_ical_uid(MAILBOX, "series0001@google.com")
    assert ids == ["series0001", "series0001_x"]
    assert fake.requests[0].args["iCalUID"] == ["series0001@google.com"]
    assert fake.requests[0].args["showDeleted"] == ["false"]
    calendar.write_tag(MAILBOX, "series0001", 77)
    patch = fake.calls("PATCH")[0]
    assert patch.body == {"extendedProperties": {"private": {"crmActivityId": "77"}}}
    assert patch.args["sendUpdates"] == ["none"]
    assert patch.user == ANNA
    with pytest.raises(GoogleNotFound):
        calendar.write_tag(MAILBOX, "missing", 77)


# --------------------------------------------------------------------------- channels


def test_calendar_channels(fake: FakeGoogle, make_client: MakeClient) -> None:
    expiry_ms = 1_900_000_000_000

    def watch(request: Request) -> Response:
        body = request.get_json()
        return reply(
            {
                "kind": "api#channel",
                "id": body["id"],
                "resourceId": "res-anna-primary",
                "resourceUri": "https://www.googleapis.com/calendar/v3/calendars/primary/events",
                "token": body["token"],
                "expiration": str(expiry_ms),
            }
        )

    fake.route("POST", f"{EVENTS}/watch", watch)
    fake.route("POST", "/calendar/v3/channels/stop", reply(None, 204))
    channels = GoogleCalendarChannels(
        make_client(), notification_url="https://crm.test/webhooks/google/calendar"
    )
    assert channels.renewable is False
    channel = channels.subscribe(MAILBOX, "client-state-secret")
    sent = fake.calls("POST", f"{EVENTS}/watch")[0]
    assert sent.user == ANNA
    assert sent.body["type"] == "web_hook"
    assert sent.body["token"] == "client-state-secret"
    assert sent.body["address"] == "https://crm.test/webhooks/google/calendar"
    assert sent.body["params"] == {"ttl": str(7 * 24 * 3600)}
    assert channel.external_id == sent.body["id"]
    assert len(channel.external_id) == 36
    assert channel.resource == "res-anna-primary"
    assert channel.expires_at == datetime.fromtimestamp(expiry_ms / 1000, tz=UTC)
    with pytest.raises(ChannelGone):
        channels.renew(channel.external_id)
    with pytest.raises(ChannelGone):
        channels.reauthorize(channel.external_id)
    channels.unsubscribe(channel.external_id, resource=channel.resource, mailbox=MAILBOX)
    stop = fake.calls("POST", "/calendar/v3/channels/stop")[0]
    assert stop.body == {"id": channel.external_id, "resourceId": "res-anna-primary"}
    assert stop.user == ANNA
    fake.route("POST", "/calendar/v3/channels/stop", google_error(404, "notFound"))
    channels.unsubscribe("gone", resource="r", mailbox=MAILBOX)  # already stopped: fine


# --------------------------------------------------------------------------- gmail


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


INVITE = (
    "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nDTSTART:20260310T080000Z\r\n"
    "UID:7kq3b1n9v2c4d5e6f7g8h9i0j1@goo\r\n gle.com\r\nSUMMARY:Review\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)


def test_gmail_watch_and_news(fake: FakeGoogle, make_client: MakeClient) -> None:
    fake.route(
        "POST",
        "/gmail/v1/users/me/watch",
        reply({"historyId": "1000", "expiration": "1900000000000"}),
    )
    fake.route(
        "GET",
        "/gmail/v1/users/me/history",
        reply(
            {
                "historyId": "1010",
                "nextPageToken": "h2",
                "history": [
                    {"id": "1001", "messagesAdded": [{"message": {"id": "m1"}}]},
                    {"id": "1002", "messagesAdded": [{"message": {"id": "m2"}}]},
                ],
            }
        ),
        reply(
            {
                "historyId": "1012",
                "history": [
                    {"id": "1011", "messagesAdded": [{"message": {"id": "m3"}}]},
                    {"id": "1012", "messagesAdded": [{"message": {"id": "m1"}}]},
                ],
            }
        ),
    )
    invitation = {
        "id": "m1",
        "payload": {
            "mimeType": "multipart/mixed",
            "parts": [
                {
                    "mimeType": "multipart/alternative",
                    "parts": [{"mimeType": "text/plain"}, {"mimeType": "text/calendar"}],
                },
                {"mimeType": "application/ics", "filename": "invite.ics"},
            ],
        },
    }
    fake.route("GET", "/gmail/v1/users/me/messages/m1", reply(invitation))
    fake.route(
        "GET",
        "/gmail/v1/users/me/messages/m2",
        reply({"id": "m2", "payload": {"mimeType": "text/plain"}}),
    )  # m3 was deleted meanwhile: 404
    mail = GmailWatch(make_client(), topic="projects/crm-project/topics/gmail")
    channel = mail.watch(MAILBOX)
    watch = fake.calls("POST")[0]
    assert watch.body == {
        "topicName": "projects/crm-project/topics/gmail",
        "labelIds": ["INBOX"],
        "labelFilterBehavior": "INCLUDE",
    }
    assert (channel.external_id, channel.resource) == (ANNA, "1000")
    assert channel.expires_at > datetime.now(UTC) + timedelta(days=1)

    news = mail.news(MAILBOX, "1000")
    assert news.history_id == "1012"
    assert news.calendar_messages == 1
    history = fake.calls("GET", "/gmail/v1/users/me/history")
    assert history[0].args["startHistoryId"] == ["1000"]
    assert history[0].args["historyTypes"] == ["messageAdded"]
    assert history[1].args["pageToken"] == ["h2"]
    assert all(r.user == ANNA for r in fake.requests)
    assert len(fake.calls("GET", "/gmail/v1/users/me/messages/m1")) == 1  # listed twice


def test_gmail_history_too_old_is_cursor_expired(fake: FakeGoogle, make_client: MakeClient) -> None:
    fake.route("GET", "/gmail/v1/users/me/history", google_error(404, "notFound"))
    mail = GmailWatch(make_client(), topic="projects/crm-project/topics/gmail")
    with pytest.raises(CursorExpired) as expired:
        mail.news(MAILBOX, "5")
    assert expired.value.reason == "google.history_expired"
    fake.route("POST", "/gmail/v1/users/me/stop", reply(None, 204))
    mail.stop(MAILBOX)
    assert fake.calls("POST")[0].user == ANNA


def test_calendar_uid_from_inline_part_and_attachment(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    inline = {
        "id": "m1",
        "payload": {
            "mimeType": "multipart/alternative",
            "parts": [
                {"mimeType": "text/plain", "body": {"data": _b64("hello")}},
                {"mimeType": "text/calendar; method=REQUEST", "body": {"data": _b64(INVITE)}},
            ],
        },
    }
    attached = {
        "id": "m2",
        "payload": {
            "mimeType": "multipart/mixed",
            "parts": [
                {"mimeType": "text/plain", "body": {"data": _b64("see attached")}},
                {
                    "mimeType": "application/octet-stream",
                    "filename": "invite.ics",
                    "body": {"attachmentId": "att-1", "size": 400},
                },
            ],
        },
    }
    fake.route("GET", "/gmail/v1/users/me/messages/m1", reply(inline))
    fake.route("GET", "/gmail/v1/users/me/messages/m2", reply(attached))
    fake.route(
        "GET", "/gmail/v1/users/me/messages/m2/attachments/att-1", reply({"data": _b64(INVITE)})
    )
    fake.route(
        "GET",
        "/gmail/v1/users/me/messages/m3",
        reply({"id": "m3", "payload": {"mimeType": "text/plain"}}),
    )
    messages = GmailMessages(make_client())
    expected = "7kq3b1n9v2c4d5e6f7g8h9i0j1@google.com"
    assert messages.calendar_uid(ANNA, "m1") == expected
    assert messages.calendar_uid(ANNA, "m2") == expected
    assert messages.calendar_uid(ANNA, "m3") is None
    assert messages.calendar_uid(ANNA, "missing") is None
    assert fake.calls("GET", "/gmail/v1/users/me/messages/m1")[0].args["format"] == ["full"]
    assert fake.grants[0]["scope"] == GMAIL_SCOPE


# --------------------------------------------------------------------------- directory


def test_directory_lists_active_users_as_the_admin(
    fake: FakeGoogle, make_client: MakeClient
) -> None:
    fake.route(
        "GET",
        "/admin/directory/v1/users",
        reply(
            {
                "nextPageToken": "u2",
                "users": [
                    {"primaryEmail": "Anna@Example.com", "name": {"fullName": "Anna Berg"}},
                    {"primaryEmail": "gone@example.com", "suspended": True},
                ],
            }
        ),
        reply(
            {
                "users": [
                    {"primaryEmail": "old@example.com", "archived": True},
                    {"primaryEmail": "bob@example.com", "name": {"fullName": "Bob"}},
                ]
            }
        ),
    )
    directory = GoogleDirectory(make_client(), admin_email="admin@example.com")
    entries = list(directory.mailboxes())
    assert [(e.external_id, e.address, e.display_name) for e in entries] == [
        (ANNA, ANNA, "Anna Berg"),
        ("bob@example.com", "bob@example.com", "Bob"),
    ]
    first, second = fake.requests
    assert first.user == "admin@example.com"
    assert first.args["customer"] == ["my_customer"]
    assert second.args["pageToken"] == ["u2"]
    assert fake.grants == [{"sub": "admin@example.com", "scope": DIRECTORY_SCOPE}]


def test_directory_with_a_fixed_list_asks_nobody(fake: FakeGoogle, make_client: MakeClient) -> None:
    directory = GoogleDirectory(
        make_client(), admin_email="", watch_users=["Anna@Example.com", "bob@example.com", ANNA]
    )
    assert [e.address for e in directory.mailboxes()] == [ANNA, "bob@example.com"]
    assert fake.requests == []
    with pytest.raises(ProviderError, match="GOOGLE_ADMIN_EMAIL"):
        list(GoogleDirectory(make_client(), admin_email="").mailboxes())
