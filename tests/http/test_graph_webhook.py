"""The Graph webhook endpoints: the validation handshake, checks in order, recording, coalescing.

https://learn.microsoft.com/graph/change-notifications-delivery-webhooks
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request, request_started
from flask.testing import FlaskClient
from sqlalchemy import select

import bootstrap
from services import metrics
from services.tables import InboundNotification, Mailbox, Subscription
from tests.conftest import Tenant, table_counts
from tests.helpers import assert_error
from webhooks import graph as graph_webhooks

NOTIFY = "/webhooks/graph/notifications"
LIFECYCLE = "/webhooks/graph/lifecycle"
SECRET = "s3cret-client-state-0123456789abcdefghijklmnop"


@pytest.fixture
def subscription(container: bootstrap.Container, tenant: Tenant) -> Subscription:
    with container.uow() as uow:
        uow.session.add(
            Mailbox(
                org_id=tenant.org_id,
                provider="microsoft",
                address=tenant.user_email,
                external_id="user-1",
            )
        )
        row = Subscription(
            org_id=tenant.org_id,
            provider="microsoft",
            kind="mailbox_events",
            mailbox=tenant.user_email,
            external_id=str(uuid.uuid4()),
            resource="/users/user-1/events",
            secret=SECRET,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=6),
        )
        uow.session.add(row)
        uow.commit()
    return row


def change(
    subscription: Subscription,
    event_id: str = "AAMkAD-event-1",
    *,
    client_state: str = SECRET,
    etag: str = 'W/"DwAAABYAAA1"',
    change_type: str = "updated",
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "subscriptionId": subscription.external_id,
        "subscriptionExpirationDateTime": "2026-11-29T10:00:00.0000000Z",
        "clientState": client_state,
        "changeType": change_type,
        "resource": f"Users/user-1/Events/{event_id}",
        "tenantId": "tenant-1",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": f"Users/user-1/Events/{event_id}",
            "@odata.etag": etag,
            "id": event_id,
        },
    }


def post(client: FlaskClient, items: list[dict[str, Any]], url: str = NOTIFY) -> Any:
    return client.post(url, json={"value": items})


def recorded(container: bootstrap.Container) -> list[InboundNotification]:
    with container.uow() as uow:
        return list(uow.session.scalars(select(InboundNotification)))


def counts_without_metrics(container: bootstrap.Container) -> dict[str, int]:
    # Refused requests are counted for /metrics (mtc_notifications_rejected_total); nothing else.
    counts = table_counts(container.uow)
    counts.pop("metric_counters")
    return counts


class TestValidationHandshake:
    @pytest.mark.parametrize("url", [NOTIFY, LIFECYCLE])
    def test_token_is_echoed_decoded_as_plain_text(self, client: FlaskClient, url: str) -> None:
        answer = client.post(
            f"{url}?validationToken=Validation%3A%20Testing%20client%20%3Cb%3E",
            data=b"",
            content_type="text/plain; charset=utf-8",
        )
        assert answer.status_code == 200
        assert answer.mimetype == "text/plain"
        assert answer.get_data(as_text=True) == "Validation: Testing client <b>"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"

    @pytest.mark.parametrize("token", ["", "x" * 1025])
    def test_empty_or_absurd_token_is_refused(self, client: FlaskClient, token: str) -> None:
        assert_error(client.post(NOTIFY, query_string={"validationToken": token}), 400)


class TestChecksInOrder:
    def test_wrong_content_type_is_415_and_changes_nothing(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        before = table_counts(container.uow)
        body = json.dumps({"value": [change(subscription)]})
        answer = client.post(NOTIFY, data=body, content_type="text/plain")
        assert_error(answer, 415, "unsupported_media_type")
        assert table_counts(container.uow) == before

    def test_huge_body_is_413_before_it_is_read(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        before = table_counts(container.uow)
        item = change(subscription)
        body = json.dumps({"value": [item] * 25_000}).encode()
        assert len(body) > 8 * 1024 * 1024
        answer = client.post(NOTIFY, data=body, content_type="application/json")
        assert_error(answer, 413, "payload_too_large")
        assert table_counts(container.uow) == before

    def test_a_body_without_content_length_is_411(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        body = json.dumps({"value": [change(subscription)]}).encode()
        answer = client.post(
            NOTIFY,
            data=body,
            content_type="application/json",
            headers={"Transfer-Encoding": "chunked"},  # no length: read until the end
        )
        assert_error(answer, 411, "length_required")
        assert recorded(container) == []

    @pytest.mark.parametrize(
        "body",
        [
            b"{not json",
            b"[]",
            b'"text"',
            b"{}",
            b'{"value": []}',
            b'{"value": "x"}',
            b'{"value": [1]}',
        ],
    )
    def test_malformed_bodies_are_400_and_change_nothing(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        subscription: Subscription,
        body: bytes,
    ) -> None:
        before = table_counts(container.uow)
        answer = client.post(NOTIFY, data=body, content_type="application/json")
        assert_error(answer, 400)
        assert table_counts(container.uow) == before

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("subscriptionId", None),
            ("changeType", "moved"),
            ("resourceData", "not an object"),
            ("resource", ""),
        ],
    )
    def test_schema_errors_name_the_field_before_any_client_state_check(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        subscription: Subscription,
        field: str,
        value: Any,
    ) -> None:
        before = table_counts(container.uow)
        item = change(subscription, client_state="forged")
        item[field] = value
        body = assert_error(post(client, [item]), 400)
        assert field in json.dumps(body["errors"])
        assert table_counts(container.uow) == before

    def test_forged_client_state_is_403_and_records_nothing(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        before = counts_without_metrics(container)
        answer = post(client, [change(subscription, client_state="forged")])
        assert_error(answer, 403, "forbidden")
        assert counts_without_metrics(container) == before
        assert container.queue.pending_count() == 0

    def test_unknown_subscription_is_403(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        item = change(subscription)
        item["subscriptionId"] = str(uuid.uuid4())
        assert_error(post(client, [item]), 403)
        assert recorded(container) == []


class TestRecording:
    def test_valid_items_are_recorded_and_forged_ones_dropped(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        answer = post(
            client,
            [change(subscription, "a"), change(subscription, "b", client_state=SECRET + "x")],
        )
        assert answer.status_code == 202
        assert answer.get_data() == b""
        rows = recorded(container)
        assert [row.payload["event_id"] for row in rows] == ["a"]
        assert rows[0].status == "pending"
        assert "clientState" not in json.dumps(rows[0].payload)
        assert SECRET not in json.dumps(rows[0].payload)

    def test_duplicates_are_recorded_once(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        item = change(subscription)
        assert post(client, [item, item]).status_code == 202
        assert post(client, [item]).status_code == 202  # Graph retried the delivery
        assert len(recorded(container)) == 1
        other_change = change(subscription, etag='W/"DwAAABYAAA2"')
        assert post(client, [other_change]).status_code == 202
        assert len(recorded(container)) == 2

    def test_a_burst_for_one_mailbox_queues_one_sync(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        for n in range(5):
            batch = [change(subscription, f"event-{n}-{i}") for i in range(3)]
            assert post(client, batch).status_code == 202
        assert len(recorded(container)) == 15
        assert container.queue.pending_count() == 1
        with container.uow() as uow:
            mailbox = uow.session.scalars(select(Mailbox)).one()
            assert mailbox.sync_queued_at is not None
            assert mailbox.last_notification_at is not None
            assert uow.session.get(Subscription, subscription.id).last_notification_at is not None

    def test_lifecycle_event_is_recorded_and_handed_to_the_worker(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        item = {
            "subscriptionId": subscription.external_id,
            "subscriptionExpirationDateTime": "2026-11-29T10:00:00Z",
            "tenantId": "tenant-1",
            "clientState": SECRET,
            "lifecycleEvent": "missed",
        }
        assert post(client, [item], LIFECYCLE).status_code == 202
        (row,) = recorded(container)
        assert row.kind == "lifecycle"
        assert row.payload["lifecycle_event"] == "missed"
        assert container.queue.pending_count() == 1

    def test_lifecycle_endpoint_refuses_an_unknown_event(
        self, client: FlaskClient, container: bootstrap.Container, subscription: Subscription
    ) -> None:
        item = {
            "subscriptionId": subscription.external_id,
            "clientState": SECRET,
            "lifecycleEvent": "somethingNew",
        }
        assert_error(post(client, [item], LIFECYCLE), 400)
        assert recorded(container) == []


class TestPlainBatchesBeforeFlask:
    """Graph's plain batches are recorded and answered by webhooks.graph.PlainBatches, before
    Flask; everything else, and every answer but the 202, comes from the Flask route."""

    @pytest.fixture
    def through_flask(self, app: Flask) -> Iterator[list[str]]:
        """The paths of the requests that reached Flask's request handling."""
        paths: list[str] = []

        def started(sender: Flask, **extra: Any) -> None:
            paths.append(request.path)

        with request_started.connected_to(started, app):
            yield paths

    def test_a_plain_batch_is_answered_before_flask_as_the_route_answers_it(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        subscription: Subscription,
        through_flask: list[str],
    ) -> None:
        body = {"value": [change(subscription, "a")]}
        plain = client.post(NOTIFY, json=body, headers={"X-Request-Id": "graph-1"})
        assert plain.status_code == 202
        assert through_flask == []
        # A query string is not Graph's plain case: the Flask route records and answers it.
        body = {"value": [change(subscription, "b")]}
        route = client.post(NOTIFY + "?via=route", json=body, headers={"X-Request-Id": "graph-2"})
        assert route.status_code == 202
        assert through_flask == [NOTIFY]
        assert plain.headers["X-Request-Id"] == "graph-1"
        assert route.headers["X-Request-Id"] == "graph-2"
        assert plain.get_data() == route.get_data() == b""

        def others(answer: Any) -> list[tuple[str, str]]:
            return sorted((k, v) for k, v in answer.headers.items() if k != "X-Request-Id")

        assert others(plain) == others(route)
        assert sorted(row.payload["event_id"] for row in recorded(container)) == ["a", "b"]
        unnamed = client.post(NOTIFY, json={"value": [change(subscription, "c")]})
        assert len(unnamed.headers["X-Request-Id"]) == 32  # a new id when the sender gave none

    def test_a_batch_with_nothing_verified_is_refused_by_the_route_and_counted_once(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        subscription: Subscription,
        through_flask: list[str],
    ) -> None:
        answer = post(client, [change(subscription, client_state="forged")])
        assert_error(answer, 403, "forbidden")
        assert through_flask == [NOTIFY]  # handed over, with what was recorded
        with container.uow() as uow:
            counters = metrics.snapshot_counters(uow)
        assert counters["mtc_notifications_rejected_total"] == 1
        assert "mtc_notifications_received_total" not in counters
        assert recorded(container) == []

    def test_a_failure_to_record_is_answered_by_the_route_without_recording_again(
        self,
        client: FlaskClient,
        subscription: Subscription,
        through_flask: list[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        calls: list[int] = []

        def unreachable_database(*args: Any, **kwargs: Any) -> None:
            calls.append(len(calls))
            raise ConnectionError("the database is unreachable")

        monkeypatch.setattr(graph_webhooks, "record_notifications", unreachable_database)
        answer = client.post(
            NOTIFY, json={"value": [change(subscription)]}, headers={"X-Request-Id": "graph-3"}
        )
        body = assert_error(answer, 500, "internal_error")
        assert "graph-3" in body["message"]
        assert calls == [0]
        assert through_flask == [NOTIFY]

    @pytest.mark.parametrize(
        "content_type", ["application/json; charset=utf-8", "Application/JSON"]
    )
    def test_json_with_parameters_or_capitals_is_plain_too(
        self,
        client: FlaskClient,
        container: bootstrap.Container,
        subscription: Subscription,
        through_flask: list[str],
        content_type: str,
    ) -> None:
        data = json.dumps({"value": [change(subscription)]})
        answer = client.post(NOTIFY, data=data, content_type=content_type)
        assert answer.status_code == 202
        assert through_flask == []
        assert len(recorded(container)) == 1
