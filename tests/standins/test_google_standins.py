"""The Google stand-in keeps the documented contracts, checked over real HTTPS.

google-auth's service-account credentials refresh against the token endpoint (with and without
domain-wide delegation); requests then calls Calendar, Gmail and the Directory with the tokens,
and a tiny HTTPS receiver collects the push notifications and Pub/Sub envelopes.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google.auth.transport.requests
import jwt
import pytest
import requests
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from werkzeug.wrappers import Request, Response

from tests.standins import BackgroundServer, google_standins
from tests.standins.google import SCOPE, Google
from tests.standins.tls import LocalCA, make_ca

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CALENDAR = SCOPE + "calendar.events"
CALENDAR_RO = SCOPE + "calendar.events.readonly"
GMAIL_RO = SCOPE + "gmail.readonly"
DIRECTORY = SCOPE + "admin.directory.user.readonly"
ANNA, BOB, CARL = "anna@example.com", "bob@example.com", "carl@example.com"
OUTSIDER = "guest@partner.test"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    return make_ca(tmp_path_factory.mktemp("google-ca"), ("localhost", "127.0.0.1", "crm.test"))


@pytest.fixture
def google_api(ca: LocalCA) -> Iterator[Google]:
    with Google(ca) as stand_in:
        stand_in.add_user(ANNA, "Anna Berg", time_zone="Europe/Oslo")
        stand_in.add_user(BOB, "Bob Stone")
        stand_in.add_user(CARL, "Carl Lund")
        yield stand_in


@pytest.fixture
def key(google_api: Google) -> dict[str, str]:
    info = google_api.make_service_account_key()
    google_api.grant_delegation(info["client_id"], [CALENDAR, GMAIL_RO, DIRECTORY])
    return info


@pytest.fixture
def http(ca: LocalCA) -> Iterator[requests.Session]:
    # trust_env off: the machine's REQUESTS_CA_BUNDLE would otherwise override `verify`.
    with requests.Session() as session:
        session.trust_env = False
        session.verify = str(ca.ca_path)
        yield session


def credentials(
    info: dict[str, str], http: requests.Session, subject: str | None, scopes: list[str]
) -> service_account.Credentials:
    creds: service_account.Credentials
    creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=scopes
    )
    if subject is not None:
        creds = creds.with_subject(subject)  # type: ignore[no-untyped-call]
    creds.refresh(google.auth.transport.requests.Request(session=http))  # type: ignore[no-untyped-call]
    return creds


def bearer(
    info: dict[str, str], http: requests.Session, subject: str | None, *scopes: str
) -> dict[str, str]:
    creds = credentials(info, http, subject, list(scopes or (CALENDAR,)))
    return {"Authorization": f"Bearer {creds.token}"}


class Receiver:
    """The product's webhook: records every POST and answers ``status``."""

    def __init__(self, ca: LocalCA, status: int = 200) -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []
        self.server = BackgroundServer(self._app, ssl_context=ca.server_context())

    def _app(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        self.calls.append(
            {
                "path": request.path,
                "headers": dict(request.headers),
                "body": request.get_data(as_text=True),
            }
        )
        return Response(status=self.status)(environ, start_response)


@pytest.fixture
def receiver(ca: LocalCA, google_api: Google) -> Iterator[Receiver]:
    hook = Receiver(ca)
    with hook.server:
        google_api.route("https://crm.test", hook.server.base_url)
        yield hook


def list_events(
    google_api: Google, http: requests.Session, auth: dict[str, str], **params: Any
) -> requests.Response:
    return http.get(
        f"{google_api.calendar_url}/calendars/primary/events", params=params, headers=auth
    )


def make_meeting(google_api: Google, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "summary": "Quarterly review",
        "start": "2026-03-10T09:00:00",
        "end": "2026-03-10T10:00:00",
        "time_zone": "Europe/Oslo",
        "attendees": [BOB, OUTSIDER],
    }
    fields.update(overrides)
    return google_api.create_event(ANNA, **fields)


# --------------------------------------------------------------------------- OAuth


def test_google_auth_refreshes_with_domain_wide_delegation(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    creds = credentials(key, http, ANNA, [CALENDAR])

    issued = google_api.tokens[str(creds.token)]
    assert (issued.subject, issued.client_email) == (ANNA, key["client_email"])
    assert issued.scopes == {CALENDAR}
    assert creds.expiry is not None
    assert creds.valid
    answer = list_events(google_api, http, {"Authorization": f"Bearer {creds.token}"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["summary"] == ANNA
    assert google_api.log(path_regex=r"/events$")[0].subject == ANNA


def test_token_endpoint_refusals(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    # A scope the admin did not delegate: 401 unauthorized_client, as Google answers.
    with pytest.raises(RefreshError, match="unauthorized_client"):
        credentials(key, http, ANNA, [CALENDAR, SCOPE + "drive"])
    google_api.revoke_delegation(key["client_id"])
    with pytest.raises(RefreshError, match="unauthorized_client"):
        credentials(key, http, ANNA, [CALENDAR])
    # Not a user of the domain.
    google_api.grant_delegation(key["client_id"], [CALENDAR])
    with pytest.raises(RefreshError, match="Invalid email or User ID"):
        credentials(key, http, "nobody@example.com", [CALENDAR])
    # Without a subject the service account acts as itself: no delegation needed,
    # but it has no access to the users' calendars.
    own = credentials(key, http, None, [CALENDAR])
    assert list_events(google_api, http, {"Authorization": f"Bearer {own.token}"}).status_code == (
        404
    )
    # A deleted key, a foreign audience, a long-lived assertion.
    google_api.revoke_key(key["private_key_id"])
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        credentials(key, http, ANNA, [CALENDAR])
    other = google_api.make_service_account_key()
    now = int(time.time())
    claims = {"iss": other["client_email"], "scope": CALENDAR, "iat": now, "exp": now + 3600}
    for aud, exp, message in (
        ("https://login.example.com/token", now + 3600, "audience"),
        (google_api.token_uri, now + 7200, "short-lived"),
    ):
        assertion = jwt.encode(
            {**claims, "aud": aud, "exp": exp},
            other["private_key"],
            algorithm="RS256",
            headers={"kid": other["private_key_id"]},
        )
        answer = http.post(
            google_api.token_uri,
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            },
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
        assert message in answer.json()["error_description"]
    assert http.post(google_api.token_uri, data={"grant_type": "password"}).json() == {
        "error": "unsupported_grant_type",
        "error_description": "Invalid grant_type: password",
    }
    assert google_api.count_token_requests(status=401) == 2


def test_apis_require_a_valid_token_and_scope(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    event = make_meeting(google_api)
    missing = list_events(google_api, http, {})
    assert missing.status_code == 401
    assert missing.json()["error"]["errors"][0]["reason"] == "required"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    forged = list_events(google_api, http, {"Authorization": "Bearer ya29.forged"})
    assert forged.status_code == 401
    assert forged.json()["error"]["errors"][0]["reason"] == "authError"
    assert forged.json()["error"]["status"] == "UNAUTHENTICATED"

    google_api.grant_delegation(key["client_id"], [CALENDAR_RO, CALENDAR])
    readonly = bearer(key, http, ANNA, CALENDAR_RO)
    url = f"{google_api.calendar_url}/calendars/primary/events/{event['id']}"
    assert http.get(url, headers=readonly).status_code == 200
    patch = http.patch(url, json={"extendedProperties": {"private": {"a": "b"}}}, headers=readonly)
    assert patch.status_code == 403
    assert patch.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"
    # Acting as Bob: Anna's calendar is not his.
    as_bob = bearer(key, http, BOB, CALENDAR)
    other = http.get(f"{google_api.calendar_url}/calendars/{ANNA}/events", headers=as_bob)
    assert other.status_code == 404
    assert other.json()["error"]["errors"][0]["reason"] == "notFound"
    assert http.get(f"{google_api.calendar_url}/calendars/{BOB}/events", headers=as_bob).ok
    google_api.expire_access_tokens()
    assert http.get(url, headers=readonly).status_code == 401


# --------------------------------------------------------------------------- Calendar


def test_full_sync_pages_then_incremental_then_410(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    auth = bearer(key, http, ANNA)
    ids = [
        make_meeting(google_api, start=f"2026-03-1{d}T09:00:00", end=f"2026-03-1{d}T10:00:00")["id"]
        for d in range(5)
    ]
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"maxResults": 2, "timeMin": "2026-01-01T00:00:00Z"}
    while True:
        body = list_events(google_api, http, auth, **params).json()
        pages += 1
        seen += [item["id"] for item in body["items"]]
        if "nextPageToken" in body:
            assert "nextSyncToken" not in body
            params = {"maxResults": 2, "pageToken": body["nextPageToken"]}
            continue
        sync_token = body["nextSyncToken"]
        break
    assert (pages, seen) == (3, ids)

    empty = list_events(google_api, http, auth, syncToken=sync_token).json()
    assert empty["items"] == []
    google_api.update_event(ids[0], summary="Renamed")
    google_api.cancel_event(ids[1])
    changes = list_events(google_api, http, auth, syncToken=empty["nextSyncToken"]).json()
    by_id = {item["id"]: item for item in changes["items"]}
    assert by_id[ids[0]]["summary"] == "Renamed"
    assert by_id[ids[1]] == {
        "kind": "calendar#event",
        "etag": by_id[ids[1]]["etag"],
        "id": ids[1],
        "status": "cancelled",
    }
    # A full listing hides the cancelled event unless showDeleted.
    full = list_events(google_api, http, auth).json()["items"]
    assert ids[1] not in [i["id"] for i in full]
    assert ids[1] in [
        i["id"] for i in list_events(google_api, http, auth, showDeleted="true").json()["items"]
    ]

    bad = list_events(google_api, http, auth, syncToken=changes["nextSyncToken"], timeMin="x")
    assert bad.status_code == 400
    google_api.expire_sync_tokens(ANNA)
    gone = list_events(google_api, http, auth, syncToken=changes["nextSyncToken"])
    assert gone.status_code == 410
    error = gone.json()["error"]
    assert error["code"] == 410
    assert error["message"] == "Sync token is no longer valid, a full sync is required."
    assert error["errors"][0]["reason"] == "fullSyncRequired"
    assert error["errors"][0]["domain"] == "calendar"


def test_each_internal_attendee_has_a_copy(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    event = make_meeting(google_api, description="Agenda", location="Room 1")
    assert event["id"].isalnum()
    assert set(event["id"]) <= set("0123456789abcdefghijklmnopqrstuv")
    assert google_api.copies(event["id"]) == [ANNA, BOB]  # the outsider has no copy here
    anna, bob = bearer(key, http, ANNA), bearer(key, http, BOB)
    url = f"{google_api.calendar_url}/calendars/primary/events/{event['id']}"

    bobs = http.get(url, headers=bob).json()
    assert (bobs["id"], bobs["iCalUID"]) == (event["id"], event["iCalUID"])
    assert bobs["organizer"] == {"email": ANNA, "displayName": "Anna Berg"}
    assert bobs["start"] == {"dateTime": "2026-03-10T09:00:00+01:00", "timeZone": "Europe/Oslo"}
    mine = [a for a in bobs["attendees"] if a.get("self")]
    assert mine == [
        {"email": BOB, "displayName": "Bob Stone", "responseStatus": "needsAction", "self": True}
    ]
    assert http.get(url, headers=anna).json()["organizer"]["self"] is True

    # Private extended properties belong to one copy; patching bumps etag and updated.
    patched = http.patch(
        url, json={"extendedProperties": {"private": {"crmCompany": "42"}}}, headers=anna
    ).json()
    assert patched["extendedProperties"] == {"private": {"crmCompany": "42"}}
    assert patched["etag"] != event["etag"]
    assert "extendedProperties" not in http.get(url, headers=bob).json()
    tagged = list_events(google_api, http, anna, privateExtendedProperty="crmCompany=42").json()
    assert [i["id"] for i in tagged["items"]] == [event["id"]]
    forbidden = http.patch(url, json={"summary": "Mine now"}, headers=bob)
    assert forbidden.status_code == 403

    google_api.respond(BOB, event["id"], "accepted")
    statuses = {
        a["email"]: a["responseStatus"] for a in google_api.event(ANNA, event["id"])["attendees"]
    }
    assert statuses == {ANNA: "accepted", BOB: "accepted", OUTSIDER: "needsAction"}

    google_api.delete_own_copy(BOB, event["id"])
    assert http.get(url, headers=bob).json()["status"] == "cancelled"
    annas = http.get(url, headers=anna).json()
    assert annas["status"] == "confirmed"
    assert {a["email"]: a["responseStatus"] for a in annas["attendees"]}[BOB] == "declined"

    google_api.cancel_event(event["id"])
    cancelled = http.get(url, headers=anna).json()
    assert (cancelled["status"], cancelled["summary"]) == ("cancelled", "Quarterly review")
    assert http.get(url + "x", headers=anna).status_code == 404


def test_recurring_series_instances_and_exceptions(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    series = make_meeting(
        google_api,
        summary="Weekly sync",
        recurrence=["RRULE:FREQ=WEEKLY;COUNT=4", "EXDATE;TZID=Europe/Oslo:20260324T090000"],
    )
    master = series["id"]
    cancelled = google_api.cancel_instance(master, "2026-03-17T09:00:00")
    moved = google_api.move_instance(
        master, "2026-03-31T09:00:00", "2026-04-01T13:00:00", "2026-04-01T14:00:00"
    )
    assert cancelled == f"{master}_20260317T080000Z"
    assert moved == f"{master}_20260331T070000Z"  # summer time: 09:00 Oslo is 07:00 UTC
    auth = bearer(key, http, BOB)

    collapsed = list_events(google_api, http, auth).json()["items"]
    assert [i["id"] for i in collapsed] == [master, cancelled, moved]
    assert collapsed[0]["recurrence"][0] == "RRULE:FREQ=WEEKLY;COUNT=4"
    assert collapsed[1] == {
        "kind": "calendar#event",
        "etag": collapsed[1]["etag"],
        "id": cancelled,
        "status": "cancelled",
        "recurringEventId": master,
        "originalStartTime": {"dateTime": "2026-03-17T09:00:00+01:00", "timeZone": "Europe/Oslo"},
    }
    assert collapsed[2]["originalStartTime"]["dateTime"] == "2026-03-31T09:00:00+02:00"

    expanded = list_events(google_api, http, auth, singleEvents="true").json()["items"]
    assert [i["id"] for i in expanded] == [f"{master}_20260310T080000Z", moved]
    assert all(i["recurringEventId"] == master and "recurrence" not in i for i in expanded)
    assert expanded[1]["start"]["dateTime"] == "2026-04-01T13:00:00+02:00"
    one = http.get(
        f"{google_api.calendar_url}/calendars/primary/events/{master}_20260310T080000Z",
        headers=auth,
    ).json()
    assert one["originalStartTime"] == one["start"]
    assert one["iCalUID"] == series["iCalUID"]


def test_watch_delivers_sync_then_changes_until_stopped(
    google_api: Google, key: dict[str, str], http: requests.Session, receiver: Receiver
) -> None:
    auth = bearer(key, http, ANNA)
    watch_url = f"{google_api.calendar_url}/calendars/primary/events/watch"
    body = {
        "id": "chan-1",
        "type": "web_hook",
        "address": "https://crm.test/webhooks/google/calendar",
        "token": "secret-token",
        "params": {"ttl": "3600"},
    }
    channel = http.post(watch_url, json=body, headers=auth).json()
    assert channel["kind"] == "api#channel"
    assert (channel["id"], channel["token"]) == ("chan-1", "secret-token")
    assert int(channel["expiration"]) - time.time() * 1000 == pytest.approx(3_600_000, abs=10_000)
    assert len(receiver.calls) == 1
    sync = receiver.calls[0]
    assert sync["path"] == "/webhooks/google/calendar"
    assert sync["body"] == ""
    headers = sync["headers"]
    assert headers["X-Goog-Channel-Id"] == "chan-1"
    assert headers["X-Goog-Channel-Token"] == "secret-token"
    assert headers["X-Goog-Resource-State"] == "sync"
    assert headers["X-Goog-Message-Number"] == "1"
    assert headers["X-Goog-Resource-Id"] == channel["resourceId"]
    assert headers["X-Goog-Resource-Uri"] == channel["resourceUri"]
    assert headers["X-Goog-Channel-Expiration"].endswith("GMT")

    make_meeting(google_api)  # Anna's and Bob's calendars change; only Anna's is watched
    assert google_api.flush_notifications() == [200]
    exists = receiver.calls[1]["headers"]
    assert exists["X-Goog-Resource-State"] == "exists"
    assert int(exists["X-Goog-Message-Number"]) > 1
    assert google_api.notify(ANNA) == [200]

    assert http.post(watch_url, json=body, headers=auth).status_code == 400  # id not unique
    plain = http.post(
        watch_url, json={**body, "id": "c2", "address": "http://crm.test/x"}, headers=auth
    )
    assert plain.json()["error"]["errors"][0]["reason"] == "push.webhookUrlNotHttps"
    stop_url = f"{google_api.calendar_url}/channels/stop"
    wrong = http.post(stop_url, json={"id": "chan-1", "resourceId": "nope"}, headers=auth)
    assert wrong.status_code == 404
    stop = http.post(
        stop_url, json={"id": "chan-1", "resourceId": channel["resourceId"]}, headers=auth
    )
    assert stop.status_code == 204
    google_api.update_event(google_api.events(ANNA)[0]["id"], summary="Changed")
    assert google_api.flush_notifications() == []
    assert len(receiver.calls) == 3


def test_fail_next_answers_in_googles_error_shape(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    auth = bearer(key, http, ANNA)
    google_api.fail_next(r"/calendar/v3/calendars/[^/]+/events$", 429, retry_after=3)
    google_api.fail_next(r"/events$", 403)
    google_api.fail_next(r"/events$", 503, times=2)
    first = list_events(google_api, http, auth)
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "3"
    assert first.json()["error"]["errors"][0] == {
        "message": "Rate Limit Exceeded",
        "domain": "usageLimits",
        "reason": "rateLimitExceeded",
    }
    assert list_events(google_api, http, auth).json()["error"]["code"] == 403
    assert [list_events(google_api, http, auth).status_code for _ in range(3)] == [503, 503, 200]
    assert len(google_api.log(path_regex=r"/events$", subject=ANNA)) == 5
    assert len(google_api.log(path_regex=r"/events$", status=200)) == 1


# --------------------------------------------------------------------------- Gmail


def test_gmail_watch_history_and_invitation_message(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    auth = bearer(key, http, BOB, GMAIL_RO)
    gmail = f"{google_api.gmail_url}/users/me"
    watch = http.post(
        f"{gmail}/watch",
        json={
            "topicName": "projects/p/topics/gmail",
            "labelIds": ["INBOX"],
            "labelFilterBehavior": "INCLUDE",
        },
        headers=auth,
    ).json()
    assert int(watch["expiration"]) > time.time() * 1000
    event = make_meeting(google_api)
    message_id = google_api.deliver_invitation(BOB, event["id"])

    history = http.get(
        f"{gmail}/history",
        params={"startHistoryId": watch["historyId"], "historyTypes": "messageAdded"},
        headers=auth,
    ).json()
    assert int(history["historyId"]) > int(watch["historyId"])
    added = history["history"][0]["messagesAdded"][0]["message"]
    assert added["id"] == message_id
    assert "INBOX" in added["labelIds"]

    full = http.get(f"{gmail}/messages/{message_id}", params={"format": "full"}, headers=auth)
    payload = full.json()["payload"]
    assert payload["mimeType"] == "multipart/mixed"
    parts = payload["parts"][0]["parts"]
    calendar = next(p for p in parts if p["mimeType"] == "text/calendar")
    content_type = next(h["value"] for h in calendar["headers"] if h["name"] == "Content-Type")
    assert "method=REQUEST" in content_type.replace('"', "")
    ics = base64.urlsafe_b64decode(calendar["body"]["data"]).decode()
    assert f"UID:{event['iCalUID']}\r\n" in ics
    assert "METHOD:REQUEST" in ics
    assert f"mailto:{BOB}" in ics
    assert payload["parts"][1]["filename"] == "invite.ics"
    assert "attachmentId" in payload["parts"][1]["body"]
    metadata = http.get(
        f"{gmail}/messages/{message_id}",
        params={"format": "metadata", "metadataHeaders": "Subject"},
        headers=auth,
    ).json()["payload"]
    assert metadata["headers"] == [
        {
            "name": "Subject",
            "value": "Invitation: Quarterly review @ Tue Mar 10, 2026 09:00 (Europe/Oslo)",
        }
    ]

    google_api.expire_history(BOB)
    old = http.get(f"{gmail}/history", params={"startHistoryId": watch["historyId"]}, headers=auth)
    assert old.status_code == 404
    assert old.json()["error"]["status"] == "NOT_FOUND"
    profile = http.get(f"{gmail}/profile", headers=auth).json()
    fresh = http.get(
        f"{gmail}/history", params={"startHistoryId": profile["historyId"]}, headers=auth
    )
    assert fresh.status_code == 200
    assert "history" not in fresh.json()
    other = http.get(f"{google_api.gmail_url}/users/{ANNA}/profile", headers=auth)
    assert other.status_code == 403
    assert http.post(f"{gmail}/stop", headers=auth).status_code == 204


def test_pubsub_push_envelope(google_api: Google, receiver: Receiver) -> None:
    status = google_api.pubsub_push(BOB, "https://crm.test/webhooks/gmail", "id-token-123")
    assert status == 200
    call = receiver.calls[0]
    assert call["headers"]["Authorization"] == "Bearer id-token-123"
    envelope = json.loads(call["body"])
    assert envelope["subscription"] == "projects/p/subscriptions/s"
    assert envelope["deliveryAttempt"] == 1
    message = envelope["message"]
    assert message["messageId"] == message["message_id"]
    assert message["publishTime"] == message["publish_time"]
    data = json.loads(base64.urlsafe_b64decode(message["data"]))
    assert data == {"emailAddress": BOB, "historyId": int(google_api.history_id(BOB))}


# --------------------------------------------------------------------------- Directory


def test_directory_lists_users_for_an_admin(
    google_api: Google, key: dict[str, str], http: requests.Session
) -> None:
    google_api.add_user("dora@other.test", "Dora Ek", suspended=True)
    url = f"{google_api.directory_url}/users"
    as_bob = bearer(key, http, BOB, DIRECTORY)
    denied = http.get(url, params={"customer": "my_customer"}, headers=as_bob)
    assert denied.status_code == 403

    google_api.set_admin(ANNA)
    auth = bearer(key, http, ANNA, DIRECTORY)
    assert http.get(url, headers=auth).status_code == 400  # neither customer nor domain
    emails: list[str] = []
    params: dict[str, Any] = {"customer": "my_customer", "maxResults": 3}
    while True:
        body = http.get(url, params=params, headers=auth).json()
        emails += [u["primaryEmail"] for u in body["users"]]
        if "nextPageToken" not in body:
            break
        params["pageToken"] = body["nextPageToken"]
    assert emails == [ANNA, BOB, CARL, "dora@other.test"]
    example = http.get(url, params={"domain": "example.com"}, headers=auth).json()["users"]
    assert [u["primaryEmail"] for u in example] == [ANNA, BOB, CARL]
    assert example[0]["name"]["fullName"] == "Anna Berg"
    assert (example[0]["suspended"], example[0]["archived"]) == (False, False)
    no_scope = http.get(url, params={"customer": "my_customer"}, headers=bearer(key, http, ANNA))
    assert no_scope.status_code == 403


# --------------------------------------------------------------------------- bundle


def test_bundle_settings_point_at_the_stand_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with google_standins(tmp_path) as bundle:
        bundle.google.add_user(ANNA)
        info = bundle.google.write_service_account_file(tmp_path / "sa.json")
        bundle.google.grant_delegation(info["client_id"], [CALENDAR])
        env = bundle.environment()
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        # As the product would: the key file, google-auth and the environment's CA bundle.
        creds = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            env["GOOGLE_SERVICE_ACCOUNT_FILE"], scopes=[CALENDAR], subject=ANNA
        )
        with google.auth.transport.requests.AuthorizedSession(creds) as session:  # type: ignore[no-untyped-call]
            answer = session.get(f"{env['GOOGLE_CALENDAR_BASE_URL']}/calendars/primary/events")

    assert answer.status_code == 200
    assert env["GOOGLE_CALENDAR_BASE_URL"].endswith("/calendar/v3")
    assert env["GOOGLE_GMAIL_BASE_URL"].endswith("/gmail/v1")
    assert env["GOOGLE_DIRECTORY_BASE_URL"].endswith("/admin/directory/v1")
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == env["CURL_CA_BUNDLE"]
    assert json.loads(Path(env["GOOGLE_SERVICE_ACCOUNT_FILE"]).read_text())["token_uri"] == (
        bundle.google.token_uri
    )
