"""The Google Workspace add-on endpoints through the Flask app, with Google's ID tokens real.

Tokens are minted by the Google identity stand-in and verified over HTTPS against its certs
endpoint (GOOGLE_CERTS_URL, its CA in REQUESTS_CA_BUNDLE). Google Calendar and Gmail are fakes of
the services' ports put into the container (this layer's tests; the adapters have their own).
Every forged request is refused in the one JSON error shape and changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

import bootstrap
from services import companies, contacts, organizations, sync
from services.meetings import Attendee, EventType, MeetingSnapshot, Removed
from services.ports import ChangeSignal, MailboxRef, ProviderError
from services.tables import Activity, Company, Contact, ParticipantRole, Provider, Response, User
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import table_counts, with_settings
from tests.helpers import assert_error
from tests.standins.google_identity import ADDON_CLIENT_ID, ADDON_SERVICE_ACCOUNT, GoogleIdentity
from tests.standins.tls import make_ca

BASE = "https://crm.test"
PREFIX = "/addon/google"
DOMAIN = "northwind.example"
LINDA = f"linda@{DOMAIN}"
LINDA_SUB = "108234567890123456789"
AUTH = "https://www.googleapis.com/auth/"
EVENT_READ = AUTH + "calendar.addons.current.event.read"
MESSAGE_READ = AUTH + "gmail.addons.current.message.readonly"
ALL_SCOPES = [
    AUTH + "calendar.addons.execute",
    EVENT_READ,
    AUTH + "gmail.addons.execute",
    MESSAGE_READ,
    AUTH + "script.locale",
    AUTH + "userinfo.email",
]
ENDPOINTS = ["homepage", "calendar/event-open", "gmail/message-open", "action", "autocomplete"]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeCalendar:
    """Google Calendar behind CalendarSource, EventFinder and EventTagWriter."""

    events: dict[str, MeetingSnapshot] = field(default_factory=dict)
    # Event id -> the series master yielded before it (Google instance ids name an occurrence).
    masters: dict[str, MeetingSnapshot] = field(default_factory=dict)
    fetched: list[tuple[str, list[str]]] = field(default_factory=list)
    tags: list[tuple[str, str, int]] = field(default_factory=list)
    fail_tag_write: bool = False
    signals_name_events: bool = True

    def changed_events(
        self, mailbox: MailboxRef, signals: Sequence[ChangeSignal]
    ) -> Iterator[MeetingSnapshot | Removed]:
        self.fetched.append((mailbox.address, [s.event_id for s in signals]))
        for signal in signals:
            if signal.event_id in self.masters:
                yield self.masters[signal.event_id]
            snapshot = self.events.get(signal.event_id)
            if snapshot is not None and snapshot.mailbox == mailbox.address:
                yield snapshot

    def delta(self, *args: object) -> Any:
        raise NotImplementedError

    def event_ids_for_ical_uid(self, mailbox: MailboxRef, ical_uid: str) -> list[str]:
        return [
            s.provider_event_id
            for s in self.events.values()
            if s.ical_uid == ical_uid and s.mailbox == mailbox.address
        ]

    def write_tag(self, mailbox: MailboxRef, event_id: str, activity_id: int) -> None:
        if self.fail_tag_write:
            raise ProviderError(
                "Google Calendar answered HTTP 403", reason="google.forbidden", transient=False
            )
        self.tags.append((mailbox.address, event_id, activity_id))


@dataclass
class FakeMessages:
    invitations: dict[str, str] = field(default_factory=dict)  # message id -> iCalUID
    read: list[tuple[str, str]] = field(default_factory=list)

    def calendar_uid(self, mailbox_address: str, message_id: str) -> str | None:
        self.read.append((mailbox_address, message_id))
        return self.invitations.get(message_id)


def snapshot(
    event_id: str = "evt1",
    *,
    start: dt.datetime | None = None,
    subject: str = "Kick-off with Acme",
    attendees: Sequence[tuple[str, str]] = (
        ("wile@acme.example", "Wile Coyote"),
        ("new.person@globex.example", "New Person"),
        ("friend@gmail.com", "Friend"),
    ),
) -> MeetingSnapshot:
    begin = start or NOW + dt.timedelta(days=2)
    people = [Attendee(LINDA, "Linda", ParticipantRole.ORGANIZER, Response.ORGANIZER)]
    people += [Attendee(email, name) for email, name in attendees]
    return MeetingSnapshot(
        provider=Provider.GOOGLE,
        mailbox=LINDA,
        provider_event_id=event_id,
        ical_uid=f"{event_id}@google.com",
        event_type=EventType.SINGLE,
        start=begin,
        end=begin + dt.timedelta(hours=1),
        time_zone="Europe/Oslo",
        subject=subject,
        organizer_email=LINDA,
        organizer_name="Linda",
        mailbox_is_organizer=True,
        attendees=tuple(people),
        change_key=f"etag-{event_id}",
    )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def google_standin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoogleIdentity]:
    with GoogleIdentity(make_ca(tmp_path_factory.mktemp("google-addon-ca"))) as standin:
        yield standin


@pytest.fixture
def google(google_standin: GoogleIdentity, monkeypatch: pytest.MonkeyPatch) -> GoogleIdentity:
    for name, value in google_standin.environment().items():
        monkeypatch.setenv(name, value)
    return google_standin


@pytest.fixture
def settings(settings: bootstrap.Settings, google: GoogleIdentity) -> bootstrap.Settings:
    return with_settings(
        settings,
        public_base_url=BASE,
        google_addon_service_account=ADDON_SERVICE_ACCOUNT,
        google_addon_client_id=ADDON_CLIENT_ID,
        google_certs_url=google.certs_url,
    )


@pytest.fixture
def calendar() -> FakeCalendar:
    return FakeCalendar()


@pytest.fixture
def messages() -> FakeMessages:
    return FakeMessages()


@pytest.fixture
def northwind(
    uow_factory: UnitOfWorkFactory,
    container: bootstrap.Container,
    calendar: FakeCalendar,
    messages: FakeMessages,
) -> SimpleNamespace:
    """The organization connected to the Workspace domain, Linda, Acme and its contact Wile."""
    container._google = SimpleNamespace(calendar=calendar, messages=messages)  # type: ignore[assignment]
    with uow_factory() as uow:
        org = organizations.create_organization(
            uow, name="Northwind", own_domains=[DOMAIN], google_domain=DOMAIN
        )
        linda = organizations.add_user(uow, org_id=org.id, email=LINDA, display_name="Linda")
        acme = companies.create_company(uow, org.id, name="Acme Corp", domains=["acme.example"])
        wile = contacts.create_contact(
            uow,
            org.id,
            {"first_name": "Wile", "last_name": "Coyote", "emails": ["wile@acme.example"],
             "company_id": acme.id},
        )  # fmt: skip
        globex_org = organizations.create_organization(
            uow, name="Globex", own_domains=["globex.example"], google_domain="globex.example"
        )
        uow.commit()
    return SimpleNamespace(
        org_id=org.id, linda_id=linda.id, acme_id=acme.id, wile_id=wile.id, other_org=globex_org.id
    )


def user_token(
    google: GoogleIdentity,
    email: str = LINDA,
    *,
    hd: str | None = DOMAIN,
    sub: str = LINDA_SUB,
    **options: Any,
) -> str:
    return google.mint_id_token(
        ADDON_CLIENT_ID, email, hd=hd, sub=sub, extra_claims={"name": "Linda Lane"}, **options
    )


def event_object(
    google: GoogleIdentity,
    *,
    user: str | None = None,
    scopes: list[str] | None = None,
    parameters: dict[str, str] | None = None,
    inputs: dict[str, list[str]] | None = None,
    **hosts: Any,
) -> dict[str, Any]:
    common: dict[str, Any] = {"hostApp": "CALENDAR", "platform": "WEB"}
    if parameters is not None:
        common["parameters"] = parameters
    if inputs is not None:
        common["formInputs"] = {k: {"stringInputs": {"value": v}} for k, v in inputs.items()}
    return {
        "commonEventObject": common,
        "authorizationEventObject": {
            "userOAuthToken": "ya29.not-used",
            "userIdToken": user if user is not None else user_token(google),
            "authorizedScopes": ALL_SCOPES if scopes is None else scopes,
        },
        **hosts,
    }


def call(
    client: FlaskClient,
    google: GoogleIdentity,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    system: str | None = None,
    headers: dict[str, str] | None = None,
) -> TestResponse:
    url = f"{BASE}{PREFIX}/{path}"
    token = system if system is not None else google.mint_id_token(url, ADDON_SERVICE_ACCOUNT)
    sent = {"Authorization": f"Bearer {token}"} if headers is None else headers
    return client.post(
        f"{PREFIX}/{path}", json=body or event_object(google), headers=sent, base_url=BASE
    )


def card_of(response: TestResponse, navigation: str = "pushCard") -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    card: dict[str, Any] = body["renderActions"]["action"]["navigations"][0][navigation]
    return card


def notification_of(response: TestResponse) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    text: str = response.get_json()["renderActions"]["action"]["notification"]["text"]
    return text


def widgets_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [w for section in card["sections"] for w in section["widgets"]]


def named(card: dict[str, Any], name: str) -> dict[str, Any]:
    for widget in widgets_of(card):
        for kind in ("selectionInput", "textInput"):
            if kind in widget and widget[kind]["name"] == name:
                return widget[kind]  # type: ignore[no-any-return]
    raise AssertionError(f"no input {name}")


def activity_for(uow_factory: UnitOfWorkFactory, event_id: str = "evt1") -> Activity:
    """The activity of a fake event (its iCalUID is ``<event id>@google.com``)."""
    with uow_factory() as uow:
        found = uow.session.scalar(
            select(Activity).where(Activity.ical_uid == f"{event_id}@google.com")
        )
        assert found is not None
        return found


def open_event(client: FlaskClient, google: GoogleIdentity, event_id: str = "evt1") -> TestResponse:
    body = event_object(google, calendar={"calendarId": LINDA, "id": event_id})
    return call(client, google, "calendar/event-open", body)


# --------------------------------------------------------------------------- forged requests


def _forgeries(google: GoogleIdentity, path: str) -> dict[str, tuple[int, dict[str, Any]]]:
    """name -> (status, keyword arguments of call())."""
    url = f"{BASE}{PREFIX}/{path}"
    other = "homepage" if path != "homepage" else "action"
    return {
        "no_token": (401, {"headers": {}}),
        "not_bearer": (401, {"headers": {"Authorization": "Basic dXNlcjpwYXNz"}}),
        "system_expired": (
            401,
            {"system": google.mint_id_token(url, ADDON_SERVICE_ACCOUNT, expires_in=-120)},
        ),
        "system_wrong_audience": (
            401,
            {"system": google.mint_id_token(f"{BASE}{PREFIX}/{other}", ADDON_SERVICE_ACCOUNT)},
        ),
        "system_http_audience": (
            401,
            {"system": google.mint_id_token(url.replace("https:", "http:"), ADDON_SERVICE_ACCOUNT)},
        ),
        "wrong_service_account": (
            401,
            {"system": google.mint_id_token(url, "evil@attacker.iam.gserviceaccount.com")},
        ),
        "system_email_not_verified": (
            401,
            {"system": google.mint_id_token(url, ADDON_SERVICE_ACCOUNT, email_verified=False)},
        ),
        "system_unknown_key": (
            401,
            {"system": google.mint_id_token(url, ADDON_SERVICE_ACCOUNT, key="unknown")},
        ),
        "system_wrong_issuer": (
            401,
            {"system": google.mint_id_token(url, ADDON_SERVICE_ACCOUNT, issuer="https://evil")},
        ),
        "user_token_missing": (401, {"body": event_object(google, user="")}),
        "user_expired": (
            401,
            {"body": event_object(google, user=user_token(google, expires_in=-120))},
        ),
        "user_wrong_audience": (
            401,
            {
                "body": event_object(
                    google,
                    user=google.mint_id_token(
                        "other-client.apps.googleusercontent.com", LINDA, hd=DOMAIN
                    ),
                )
            },
        ),
        "user_email_not_verified": (
            401,
            {"body": event_object(google, user=user_token(google, email_verified=False))},
        ),
        "user_unknown_key": (
            401,
            {"body": event_object(google, user=user_token(google, key="unknown"))},
        ),
        "user_is_the_system_token": (
            401,
            {"body": event_object(google, user=google.mint_id_token(url, ADDON_SERVICE_ACCOUNT))},
        ),
        "user_of_unconnected_domain": (
            403,
            {
                "body": event_object(
                    google,
                    user=user_token(
                        google, "mallory@initech.example", hd="initech.example", sub="999"
                    ),
                )
            },
        ),
        "consumer_account": (
            403,
            {
                "body": event_object(
                    google, user=user_token(google, "linda.lane@gmail.com", hd=None, sub="777")
                )
            },
        ),
        "consumer_account_claiming_the_domain_address": (
            403,
            {"body": event_object(google, user=user_token(google, hd=None, sub="778"))},
        ),
    }


FORGERY_NAMES = [
    "no_token",
    "not_bearer",
    "system_expired",
    "system_wrong_audience",
    "system_http_audience",
    "wrong_service_account",
    "system_email_not_verified",
    "system_unknown_key",
    "system_wrong_issuer",
    "user_token_missing",
    "user_expired",
    "user_wrong_audience",
    "user_email_not_verified",
    "user_unknown_key",
    "user_is_the_system_token",
    "user_of_unconnected_domain",
    "consumer_account",
    "consumer_account_claiming_the_domain_address",
]


class TestForgedRequests:
    @pytest.mark.parametrize("path", ENDPOINTS)
    @pytest.mark.parametrize("forgery", FORGERY_NAMES)
    def test_refused_and_nothing_changes(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        messages: FakeMessages,
        uow_factory: UnitOfWorkFactory,
        path: str,
        forgery: str,
    ) -> None:
        calendar.events["evt1"] = snapshot()
        messages.invitations["msg1"] = "evt1@google.com"
        status, options = _forgeries(google, path)[forgery]
        body = options.pop("body", None) or event_object(google)
        body.update(
            calendar={"calendarId": LINDA, "id": "evt1"},
            gmail={"messageId": "msg1", "threadId": "t1", "accessToken": "x"},
        )
        body["commonEventObject"]["parameters"] = {"fn": "home"}
        before = table_counts(uow_factory)
        response = call(client, google, path, body, **options)
        error = assert_error(
            response, status, "not_authenticated" if status == 401 else "forbidden"
        )
        assert table_counts(uow_factory) == before
        assert calendar.fetched == []
        assert messages.read == []
        assert "eyJ" not in error["message"]  # no token material in the answer
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    def test_a_good_request_creates_the_user_at_first_sign_in(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        response = call(client, google, "homepage")
        card_of(response)
        with uow_factory() as uow:
            linda = uow.session.get(User, northwind.linda_id)
            assert linda is not None
            assert linda.google_subject == LINDA_SUB

    def test_a_body_that_is_not_json_is_refused(
        self, client: FlaskClient, google: GoogleIdentity, northwind: SimpleNamespace
    ) -> None:
        url = f"{BASE}{PREFIX}/homepage"
        token = google.mint_id_token(url, ADDON_SERVICE_ACCOUNT)
        response = client.post(
            f"{PREFIX}/homepage",
            data="[1, 2]",
            content_type="application/json",
            headers={"Authorization": f"Bearer {token}"},
            base_url=BASE,
        )
        assert_error(response, 400)

    def test_not_configured_is_503(
        self, app: Any, google: GoogleIdentity, container: bootstrap.Container
    ) -> None:
        container.settings = with_settings(container.settings, google_addon_client_id=None)
        response = call(app.test_client(), google, "homepage")
        assert_error(response, 503)


class TestScopes:
    @pytest.mark.parametrize(
        ("path", "granted", "missing"),
        [
            ("calendar/event-open", [s for s in ALL_SCOPES if s != EVENT_READ], [EVENT_READ]),
            ("gmail/message-open", [s for s in ALL_SCOPES if s != MESSAGE_READ], [MESSAGE_READ]),
            ("homepage", [], [AUTH + "userinfo.email"]),
            (
                "calendar/event-open",
                [AUTH + "calendar.addons.execute"],
                [AUTH + "userinfo.email", EVENT_READ],
            ),
        ],
    )
    def test_missing_scopes_are_requested(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
        path: str,
        granted: list[str],
        missing: list[str],
    ) -> None:
        calendar.events["evt1"] = snapshot()
        body = event_object(
            google,
            scopes=granted,
            calendar={"calendarId": LINDA, "id": "evt1"},
            gmail={"messageId": "msg1"},
        )
        before = table_counts(uow_factory)
        response = call(client, google, path, body)
        assert response.status_code == 200
        assert response.get_json() == {"requesting_google_scopes": {"scopes": missing}}
        assert table_counts(uow_factory) == before
        assert calendar.fetched == []


# --------------------------------------------------------------------------- happy paths


class TestHomepage:
    def test_lists_untagged_meetings_with_a_one_click_tag(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        with uow_factory() as uow:
            org = northwind.org_id
            sync.apply_snapshot(uow, org, snapshot("evt1"))
            sync.apply_snapshot(uow, org, snapshot("past", start=NOW - dt.timedelta(days=3)))
            sync.apply_snapshot(uow, org, snapshot("far", start=NOW + dt.timedelta(days=60)))
            sync.apply_snapshot(uow, org, snapshot("old", start=NOW - dt.timedelta(days=30)))
            sync.apply_snapshot(uow, org, snapshot("tagged", subject="Already tagged"))
            sync.apply_snapshot(uow, org, snapshot("cancelled", subject="Called off"))
            sync.apply_removed(uow, org, Removed(Provider.GOOGLE, LINDA, "cancelled"))
            tagged = sync.find_activity_for_event(uow, org, Provider.GOOGLE, LINDA, "tagged")
            assert tagged is not None
            tagged.company_id = northwind.acme_id
            uow.commit()
        card = card_of(call(client, google, "homepage"))
        assert card["header"]["title"] == "Meetings that need a company"
        items = [w["decoratedText"] for w in card["sections"][0]["widgets"]]
        assert [i["text"] for i in items] == ["Kick-off with Acme", "Kick-off with Acme"]
        assert "ended" in items[0]["topLabel"]
        button = items[1]["button"]
        assert button["text"] == "Tag Acme Corp"
        action = button["onClick"]["action"]
        assert action["function"] == f"{BASE}{PREFIX}/action"
        parameters = {p["key"]: p["value"] for p in action["parameters"]}
        upcoming = activity_for(uow_factory, "evt1")
        assert parameters == {
            "fn": "tag_meeting",
            "activity_id": str(upcoming.id),
            "company_id": str(northwind.acme_id),
        }

        # The click: tagged in the CRM with the attendees who are Acme's contacts, and the
        # activity id written on Linda's copy of the event.
        response = call(client, google, "action", event_object(google, parameters=parameters))
        assert notification_of(response) == "Linked to Acme Corp"
        refreshed = card_of(response, "updateCard")
        assert len(refreshed["sections"][0]["widgets"]) == 1
        with uow_factory() as uow:
            row = uow.session.get(Activity, upcoming.id)
            assert row is not None
            assert row.company_id == northwind.acme_id
            assert [c.contact_id for c in row.contact_links] == [northwind.wile_id]
        assert calendar.tags == [(LINDA, "evt1", upcoming.id)]

    def test_another_organizations_meeting_cannot_be_tagged(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        with uow_factory() as uow:
            outsider = snapshot("globex-evt")
            sync.apply_snapshot(uow, northwind.other_org, outsider)
            uow.commit()
            row = uow.session.scalars(select(Activity)).one()
        before = table_counts(uow_factory)
        parameters = {"fn": "tag_meeting", "activity_id": str(row.id), "company_id": "1"}
        response = call(client, google, "action", event_object(google, parameters=parameters))
        assert (
            "does not exist"
            in response.get_json()["renderActions"]["action"]["notification"]["text"]
        )
        after = table_counts(uow_factory)
        assert {k: v for k, v in after.items() if k != "users"} == {
            k: v for k, v in before.items() if k != "users"
        }

    def test_company_search_and_autocomplete(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
    ) -> None:
        body = event_object(google, inputs={"company_query": ["acm"]})
        response = call(client, google, "autocomplete", body)
        assert response.status_code == 200
        assert response.get_json() == {
            "autoComplete": {"items": [{"text": f"Acme Corp · #{northwind.acme_id}"}]}
        }
        body = event_object(google, parameters={"fn": "search"}, inputs={"company_query": ["acme"]})
        card = card_of(call(client, google, "action", body))
        assert widgets_of(card)[0]["decoratedText"]["text"] == "Acme Corp"


class TestEventOpen:
    def test_shows_suggestions_from_the_attendees(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        calendar.events["evt1"] = snapshot()
        card = card_of(open_event(client, google))
        assert calendar.fetched == [(LINDA, ["evt1"])]
        assert card["header"]["title"] == "Kick-off with Acme"
        company = named(card, "company_id")
        assert company["items"][0] == {
            "text": "Acme Corp (1 attendee is a contact)",
            "value": str(northwind.acme_id),
            "selected": True,
        }
        assert [i["value"] for i in named(card, "contact_ids")["items"]] == [str(northwind.wile_id)]
        assert [i["value"] for i in named(card, "new_contacts")["items"]] == [
            "new.person@globex.example",
            "friend@gmail.com",
        ]
        assert named(card, "company_query")["autoCompleteAction"]["function"] == (
            f"{BASE}{PREFIX}/autocomplete"
        )
        headers = [s.get("header") for s in card["sections"]]
        assert "How did it go?" not in headers
        # Opening it applied the event: the activity exists, linked to Linda's copy.
        assert activity_for(uow_factory).subject == "Kick-off with Acme"

    def test_save_tags_and_writes_the_tag_on_the_event(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        calendar.events["evt1"] = snapshot()
        card_of(open_event(client, google))
        activity = activity_for(uow_factory)
        body = event_object(
            google,
            parameters={"fn": "save", "event_id": "evt1", "activity_id": str(activity.id)},
            inputs={
                "company_id": [str(northwind.acme_id)],
                "contact_ids": [str(northwind.wile_id)],
                "kind": ["visit"],
            },
        )
        response = call(client, google, "action", body)
        assert notification_of(response) == "Linked to Acme Corp"
        card = card_of(response, "updateCard")
        assert widgets_of(card)[0]["decoratedText"]["text"] == "Acme Corp"
        with uow_factory() as uow:
            row = uow.session.get(Activity, activity.id)
            assert row is not None
            assert (row.company_id, row.kind) == (northwind.acme_id, "visit")
            assert [c.contact_id for c in row.contact_links] == [northwind.wile_id]
        assert calendar.tags == [(LINDA, "evt1", activity.id)]

    def test_an_occurrence_of_a_series_tags_the_series(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        start = (NOW + dt.timedelta(days=1)).replace(hour=9, minute=0, second=0)
        master = replace(
            snapshot("ser1", start=start - dt.timedelta(days=7), subject="Weekly sync"),
            event_type=EventType.SERIES,
            rrule="FREQ=WEEKLY",
            time_zone="UTC",
        )
        instance_id = f"ser1_{start:%Y%m%dT%H%M%SZ}"
        occurrence = replace(
            master,
            provider_event_id=instance_id,
            event_type=EventType.OCCURRENCE,
            rrule=None,
            start=start,
            end=start + dt.timedelta(hours=1),
            series_provider_id="ser1",
            original_start=start,
            change_key="etag-occurrence",
        )
        calendar.events[instance_id] = occurrence
        calendar.masters[instance_id] = master
        card = card_of(open_event(client, google, instance_id))
        assert card["header"]["title"] == "Weekly sync"
        save = widgets_of(card)[len(card["sections"][0]["widgets"]) - 1]
        parameters = {
            p["key"]: p["value"]
            for p in save["buttonList"]["buttons"][0]["onClick"]["action"]["parameters"]
        }
        assert (parameters["event_id"], parameters["series_event_id"]) == (instance_id, "ser1")
        body = event_object(
            google,
            parameters=parameters,
            inputs={"company_id": [str(northwind.acme_id)], "kind": ["meeting"]},
        )
        assert notification_of(call(client, google, "action", body)) == "Linked to Acme Corp"
        series = activity_for(uow_factory, "ser1")
        assert series.company_id == northwind.acme_id
        assert calendar.tags == [(LINDA, "ser1", series.id)]

    def test_save_with_a_company_picked_in_the_search_box(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        calendar.events["evt1"] = snapshot(attendees=[("someone@initech.example", "Someone")])
        with uow_factory() as uow:
            initech = companies.create_company(uow, northwind.org_id, name="Initech")
            uow.commit()
        card_of(open_event(client, google))
        for text in (f"Initech · #{initech.id}", "initech"):
            body = event_object(
                google,
                parameters={"fn": "save", "event_id": "evt1"},
                inputs={"company_query": [text], "kind": ["call"]},
            )
            assert notification_of(call(client, google, "action", body)) == "Linked to Initech"
        assert activity_for(uow_factory).company_id == initech.id

    def test_a_failed_tag_write_keeps_the_crm_tag_and_says_so(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        calendar.events["evt1"] = snapshot()
        card_of(open_event(client, google))
        calendar.fail_tag_write = True
        body = event_object(
            google,
            parameters={"fn": "save", "event_id": "evt1"},
            inputs={"company_id": [str(northwind.acme_id)], "kind": ["meeting"]},
        )
        text = notification_of(call(client, google, "action", body))
        assert text.startswith("Linked to Acme Corp in the CRM, but the calendar event could not")
        assert activity_for(uow_factory).company_id == northwind.acme_id

    def test_save_refusals_are_notifications(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        calendar.events["evt1"] = snapshot()
        card_of(open_event(client, google))
        before = table_counts(uow_factory)
        for inputs in (
            {"company_id": ["999999"], "kind": ["meeting"]},  # no such company
            {"company_id": [str(northwind.acme_id)], "kind": ["task"]},
            {"company_query": ["no such company"]},
        ):
            body = event_object(
                google, parameters={"fn": "save", "event_id": "evt1"}, inputs=inputs
            )
            response = call(client, google, "action", body)
            assert set(response.get_json()["renderActions"]["action"]) == {"notification"}
        assert table_counts(uow_factory) == before
        assert calendar.tags == []

    def test_unsaved_event(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        call(client, google, "homepage")  # first sign-in
        before = table_counts(uow_factory)
        no_id = event_object(google, calendar={"calendarId": LINDA})
        card = card_of(call(client, google, "calendar/event-open", no_id))
        assert card["header"]["title"] == "Save the event first"
        card = card_of(open_event(client, google, "not-in-calendar"))
        assert card["header"]["title"] == "Save the event first"
        assert table_counts(uow_factory) == before
        assert calendar.fetched == [(LINDA, ["not-in-calendar"])]


class TestGmail:
    def test_invitation_shows_the_event_card(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        messages: FakeMessages,
    ) -> None:
        calendar.events["evt1"] = snapshot()
        messages.invitations["msg-f:1"] = "evt1@google.com"
        body = event_object(google, gmail={"messageId": "msg-f:1", "threadId": "thread-f:1"})
        body["commonEventObject"]["hostApp"] = "GMAIL"
        card = card_of(call(client, google, "gmail/message-open", body))
        assert messages.read == [(LINDA, "msg-f:1")]
        assert card["header"]["title"] == "Kick-off with Acme"
        assert named(card, "company_id")["items"][0]["value"] == str(northwind.acme_id)

    def test_a_message_without_a_meeting(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        messages: FakeMessages,
    ) -> None:
        body = event_object(google, gmail={"messageId": "msg-f:2", "threadId": "thread-f:2"})
        card = card_of(call(client, google, "gmail/message-open", body))
        assert card["header"]["title"] == "No meeting in this e-mail"

    def test_an_invitation_not_in_the_calendar(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        messages: FakeMessages,
    ) -> None:
        messages.invitations["msg-f:3"] = "elsewhere@example.com"
        body = event_object(google, gmail={"messageId": "msg-f:3"})
        card = card_of(call(client, google, "gmail/message-open", body))
        assert card["header"]["title"] == "Not in your calendar yet"


class TestUnknownAttendees:
    def test_add_as_contacts_creates_contacts_and_companies_in_one_step(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        calendar.events["evt1"] = snapshot(
            attendees=[
                ("wile@acme.example", "Wile Coyote"),
                ("new.person@globex.example", "New Person"),
                ("friend@gmail.com", "Friend"),
                ("second@acme.example", "Lane, Second"),
                ("julie@northwind.example", "Julie"),
            ]
        )
        card_of(open_event(client, google))
        body = event_object(
            google,
            parameters={"fn": "add_contacts", "event_id": "evt1"},
            inputs={
                "new_contacts": [
                    "new.person@globex.example",
                    "friend@gmail.com",
                    "second@acme.example",
                    "julie@northwind.example",  # not offered: one of us
                ]
            },
        )
        response = call(client, google, "action", body)
        assert notification_of(response) == "Added 3 contacts and Globex"
        card = card_of(response, "updateCard")
        assert "Not in the CRM yet" not in [s.get("header") for s in card["sections"]]
        with uow_factory() as uow:
            rows = {
                c.emails[0].email: c
                for c in uow.session.scalars(
                    select(Contact).where(Contact.org_id == northwind.org_id)
                )
            }
            names = {c.name for c in uow.session.scalars(select(Company))}
            globex = uow.session.scalar(select(Company).where(Company.name == "Globex"))
            assert globex is not None
            assert [d.domain for d in globex.domains] == ["globex.example"]
            assert rows["new.person@globex.example"].company_id == globex.id
            assert (rows["new.person@globex.example"].first_name,
                    rows["new.person@globex.example"].last_name) == ("New", "Person")  # fmt: skip
            assert rows["friend@gmail.com"].company_id is None
            assert rows["second@acme.example"].company_id == northwind.acme_id
            assert (rows["second@acme.example"].first_name,
                    rows["second@acme.example"].last_name) == ("Second", "Lane")  # fmt: skip
            assert "julie@northwind.example" not in rows
            assert names == {"Acme Corp", "Globex"}  # no company for gmail.com or our domain


class TestOutcome:
    @pytest.mark.parametrize(("held", "status"), [("true", "held"), ("false", "not_held")])
    def test_held_or_not_held_with_the_outcome(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
        held: str,
        status: str,
    ) -> None:
        calendar.events["evt1"] = snapshot(start=NOW - dt.timedelta(days=1))
        card = card_of(open_event(client, google))
        outcome = next(s for s in card["sections"] if s.get("header") == "How did it go?")
        buttons = outcome["widgets"][-1]["buttonList"]["buttons"]
        chosen = next(b for b in buttons if {"key": "held", "value": held} in (
            b["onClick"]["action"]["parameters"]))  # fmt: skip
        parameters = {p["key"]: p["value"] for p in chosen["onClick"]["action"]["parameters"]}
        body = event_object(
            google, parameters=parameters, inputs={"outcome": ["Won: they liked the demo"]}
        )
        response = call(client, google, "action", body)
        assert notification_of(response) == ("Marked held" if held == "true" else "Marked not held")
        row = activity_for(uow_factory)
        assert (row.status, row.outcome) == (status, "Won: they liked the demo")

    def test_a_future_meeting_cannot_be_marked(
        self,
        client: FlaskClient,
        google: GoogleIdentity,
        northwind: SimpleNamespace,
        calendar: FakeCalendar,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        calendar.events["evt1"] = snapshot()
        card_of(open_event(client, google))
        row = activity_for(uow_factory)
        parameters = {
            "fn": "outcome",
            "held": "true",
            "event_id": "evt1",
            "activity_id": str(row.id),
        }
        response = call(client, google, "action", event_object(google, parameters=parameters))
        assert "not ended" in response.get_json()["renderActions"]["action"]["notification"]["text"]
        assert activity_for(uow_factory).status == "planned"
