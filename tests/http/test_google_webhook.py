"""Google push endpoints: Calendar channel notifications and Gmail's Pub/Sub pushes.

Every refused request changes nothing; the Pub/Sub token is checked before the body is read.
https://developers.google.com/workspace/calendar/api/guides/push
https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

import bootstrap
from services.tables import InboundNotification, Mailbox, Subscription
from tests.conftest import Tenant, table_counts
from tests.helpers import assert_error
from tests.standins.google_identity import GoogleIdentity
from tests.standins.tls import make_ca

CALENDAR = "/webhooks/google/calendar"
PUBSUB = "/webhooks/google/pubsub"
TOKEN = "channel-token-0123456789abcdefghijklmnopqrstu"
AUDIENCE = "https://crm.example.com/webhooks/google/pubsub"
PUSH_ACCOUNT = "gmail-push@crm-project.iam.gserviceaccount.com"


@pytest.fixture
def identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GoogleIdentity]:
    with GoogleIdentity(make_ca(tmp_path)) as google:
        for name, value in google.environment().items():
            monkeypatch.setenv(name, value)
        yield google


@pytest.fixture
def settings(settings: bootstrap.Settings, identity: GoogleIdentity) -> bootstrap.Settings:
    return dataclasses.replace(
        settings,
        google_certs_url=identity.certs_url,
        google_pubsub_audience=AUDIENCE,
        google_pubsub_service_account=PUSH_ACCOUNT,
    )


@pytest.fixture
def watched(container: bootstrap.Container, tenant: Tenant) -> Tenant:
    """The tenant's user is a watched Google calendar with a channel and a Gmail watch."""
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=6)
    with container.uow() as uow:
        uow.session.add(
            Mailbox(
                org_id=tenant.org_id,
                provider="google",
                address=tenant.user_email,
                external_id=tenant.user_email,
            )
        )
        for kind, external_id, resource in (
            ("mailbox_events", "channel-1", "resource-1"),
            ("gmail_watch", tenant.user_email, "1000"),
        ):
            uow.session.add(
                Subscription(
                    org_id=tenant.org_id,
                    provider="google",
                    kind=kind,
                    mailbox=tenant.user_email,
                    external_id=external_id,
                    resource=resource,
                    secret=TOKEN,
                    expires_at=expires,
                )
            )
        uow.commit()
    return tenant


def channel_headers(**overrides: str | None) -> dict[str, str]:
    headers: dict[str, str | None] = {
        "X-Goog-Channel-ID": "channel-1",
        "X-Goog-Channel-Token": TOKEN,
        "X-Goog-Channel-Expiration": "Sat, 28 Nov 2026 10:00:00 GMT",
        "X-Goog-Resource-ID": "resource-1",
        "X-Goog-Resource-State": "exists",
        "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/primary/events",
        "X-Goog-Message-Number": "2",
        **overrides,
    }
    return {name: value for name, value in headers.items() if value is not None}


def recorded(container: bootstrap.Container) -> list[tuple[str, str, dict[str, Any]]]:
    with container.uow() as uow:
        rows = uow.session.scalars(select(InboundNotification).order_by(InboundNotification.id))
        return [(row.kind, row.mailbox, row.payload) for row in rows]


def without_metrics(container: bootstrap.Container) -> dict[str, int]:
    counts = table_counts(container.uow)
    counts.pop("metric_counters")  # refusals are counted for /metrics, nothing else changes
    return counts


def queued_tasks(container: bootstrap.Container) -> list[str]:
    return [message.name for message in container.queue.pending()]


# --------------------------------------------------------------------------- Calendar


class TestCalendarChannel:
    def test_a_change_is_recorded_and_one_sync_queued(
        self, client: FlaskClient, container: bootstrap.Container, watched: Tenant
    ) -> None:
        assert client.post(CALENDAR, headers=channel_headers()).status_code == 200
        second = client.post(CALENDAR, headers=channel_headers(**{"X-Goog-Message-Number": "3"}))
        assert second.status_code == 200
        assert [(kind, mailbox) for kind, mailbox, _ in recorded(container)] == [
            ("change", watched.user_email),
            ("change", watched.user_email),
        ]
        assert recorded(container)[0][2]["resource_state"] == "exists"
        assert queued_tasks(container) == ["sync-mailbox"]  # coalesced

    def test_a_redelivered_message_is_acknowledged_once(
        self, client: FlaskClient, container: bootstrap.Container, watched: Tenant
    ) -> None:
        for _ in range(2):
            assert client.post(CALENDAR, headers=channel_headers()).status_code == 200
        assert len(recorded(container)) == 1

    def test_not_exists_is_a_change_too(
        self, client: FlaskClient, container: bootstrap.Container, watched: Tenant
    ) -> None:
        headers = channel_headers(**{"X-Goog-Resource-State": "not_exists"})
        assert client.post(CALENDAR, headers=headers).status_code == 200
        assert recorded(container)[0][2]["resource_state"] == "not_exists"

    def test_the_sync_message_is_acknowledged_and_records_nothing(
        self, client: FlaskClient, container: bootstrap.Container, watched: Tenant
    ) -> None:
        before = table_counts(container.uow)
        headers = channel_headers(**{"X-Goog-Resource-State": "sync", "X-Goog-Message-Number": "1"})
        answer = client.post(CALENDAR, headers=headers)
        assert answer.status_code == 200
        assert table_counts(container.uow) == before
        assert queued_tasks(container) == []

    @pytest.mark.parametrize(
        ("overrides", "status"),
        [
            ({"X-Goog-Channel-Token": "guessed"}, 403),
            ({"X-Goog-Channel-Token": None}, 403),
            ({"X-Goog-Channel-ID": "channel-unknown"}, 403),
            ({"X-Goog-Resource-ID": "resource-of-another-channel"}, 403),
            ({"X-Goog-Resource-State": "sync", "X-Goog-Channel-Token": "guessed"}, 403),
            ({"X-Goog-Channel-ID": None}, 400),
            ({"X-Goog-Resource-ID": None}, 400),
            ({"X-Goog-Resource-State": "deleted"}, 400),
            ({"X-Goog-Message-Number": "two"}, 400),
        ],
    )
    def test_forged_or_malformed_notifications_change_nothing(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        watched: Tenant,
        overrides: dict[str, str | None],
        status: int,
    ) -> None:
        before = without_metrics(container)
        assert_error(client.post(CALENDAR, headers=channel_headers(**overrides)), status)
        assert without_metrics(container) == before
        assert queued_tasks(container) == []

    def test_a_body_is_refused(
        self, client: FlaskClient, container: bootstrap.Container, watched: Tenant
    ) -> None:
        answer = client.post(CALENDAR, headers=channel_headers(), data=b"x" * 10_000)
        assert_error(answer, 413)
        assert recorded(container) == []


# --------------------------------------------------------------------------- Pub/Sub


def envelope(address: str, history_id: Any = "1234", message_id: str = "2070443601311540") -> dict:
    data = json.dumps({"emailAddress": address, "historyId": history_id}).encode()
    return {
        "message": {
            "data": base64.urlsafe_b64encode(data).decode().rstrip("="),
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": "2026-11-22T19:13:55.749Z",
            "publish_time": "2026-11-22T19:13:55.749Z",
            "attributes": {},
        },
        "subscription": "projects/crm-project/subscriptions/gmail-push",
        "deliveryAttempt": 1,
    }


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestPubSubPush:
    def test_a_verified_push_is_recorded_and_the_mail_looked_at(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        identity: GoogleIdentity,
        watched: Tenant,
    ) -> None:
        token = identity.mint_id_token(AUDIENCE, PUSH_ACCOUNT)
        answer = client.post(PUBSUB, json=envelope(watched.user_email), headers=bearer(token))
        assert answer.status_code == 200
        assert recorded(container) == [
            ("mail", watched.user_email, {"history_id": "1234", "message_id": "2070443601311540"})
        ]
        assert queued_tasks(container) == ["gmail-news"]
        again = client.post(PUBSUB, json=envelope(watched.user_email), headers=bearer(token))
        assert again.status_code == 200  # Pub/Sub delivers at least once
        assert len(recorded(container)) == 1

    def test_a_push_for_an_unwatched_address_is_acknowledged_and_ignored(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        identity: GoogleIdentity,
        watched: Tenant,
    ) -> None:
        token = identity.mint_id_token(AUDIENCE, PUSH_ACCOUNT)
        answer = client.post(PUBSUB, json=envelope("someone@else.example"), headers=bearer(token))
        assert answer.status_code == 200
        assert recorded(container) == []

    @pytest.mark.parametrize(
        ("forgery", "status"),
        [
            ("none", 401),
            ("not a jwt", 401),
            ("expired", 401),
            ("wrong audience", 401),
            ("wrong service account", 401),
            ("email not verified", 401),
            ("wrong issuer", 401),
            ("unknown key", 401),
        ],
    )
    def test_forged_tokens_are_refused_before_the_body_is_read(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        identity: GoogleIdentity,
        watched: Tenant,
        forgery: str,
        status: int,
    ) -> None:
        mint = identity.mint_id_token
        tokens = {
            "none": None,
            "not a jwt": "abc.def",
            "expired": mint(AUDIENCE, PUSH_ACCOUNT, expires_in=-600),
            "wrong audience": mint("https://crm.example.com/other", PUSH_ACCOUNT),
            "wrong service account": mint(AUDIENCE, "intruder@evil.iam.gserviceaccount.com"),
            "email not verified": mint(AUDIENCE, PUSH_ACCOUNT, email_verified=False),
            "wrong issuer": mint(AUDIENCE, PUSH_ACCOUNT, issuer="https://evil.example"),
            "unknown key": mint(AUDIENCE, PUSH_ACCOUNT, key="unknown"),
        }
        token = tokens[forgery]
        before = without_metrics(container)
        answer = client.post(
            PUBSUB,
            data=b"{not even json",  # never read: the token is checked first
            content_type="application/json",
            headers=bearer(token) if token else {},
        )
        assert_error(answer, status)
        assert without_metrics(container) == before
        assert queued_tasks(container) == []

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"nothing": 1}, "message"),
            ({"message": {"data": "e30"}}, "message.messageId"),
            ({"message": {"messageId": "1", "data": "!!!"}}, "message.data"),
            (envelope("not-an-address"), "message.data.emailAddress"),
            (envelope("anna@example.com", history_id="12ab"), "message.data.historyId"),
        ],
    )
    def test_a_verified_but_malformed_push_is_400_with_the_field(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        identity: GoogleIdentity,
        watched: Tenant,
        body: dict[str, Any],
        field: str,
    ) -> None:
        token = identity.mint_id_token(AUDIENCE, PUSH_ACCOUNT)
        before = without_metrics(container)
        assert_error(client.post(PUBSUB, json=body, headers=bearer(token)), 400, field=field)
        assert without_metrics(container) == before
