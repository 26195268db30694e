"""Activities over HTTP: create, change, cancel, list with filters, series, privacy, isolation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from services import auth, organizations
from services.tables import Mailbox, Provider, ProviderLink
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant, table_counts
from tests.helpers import assert_error

START = "2030-03-04T09:00:00+01:00"
END = "2030-03-04T10:00:00+01:00"


def post(client: FlaskClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body = {"kind": "meeting", "subject": "Review", "start": START, "end": END} | body
    response = client.post("/api/v1/activities", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def listing(client: FlaskClient, tenant: Tenant, query: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/activities?{query}", headers=tenant.headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]  # type: ignore[no-any-return]


def colleague(uow_factory: UnitOfWorkFactory, tenant: Tenant, name: str) -> Tenant:
    with uow_factory() as uow:
        user = organizations.add_user(uow, org_id=tenant.org_id, email=f"{name}@northwind.example")
        issued = auth.create_api_key(uow, org_id=tenant.org_id, name=name, user_email=user.email)
        uow.commit()
    return Tenant(tenant.org_id, user.id, user.email, issued.token)


class TestCreateAndChange:
    def test_meeting_with_participants_and_responses(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory
    ) -> None:
        julie = colleague(uow_factory, tenant, "julie")
        anna = client.post(
            "/api/v1/contacts",
            json={"first_name": "Anna", "emails": ["anna@contoso.com"]},
            headers=tenant.headers,
        ).get_json()
        made = post(
            client,
            tenant,
            participants=[
                {"email": tenant.user_email, "role": "organizer", "response": "organizer"},
                {"email": "JULIE@northwind.example", "response": "accepted",
                 "responded_at": "2030-03-01T12:00:00Z"},
                {"email": "anna@contoso.com", "name": "Anna", "response": "tentative"},
                {"email": "stranger@elsewhere.example", "name": "Stranger"},
            ],
        )  # fmt: skip
        assert made["owner_id"] == tenant.user_id
        assert made["status"] == "planned"
        assert made["start"] == "2030-03-04T08:00:00+00:00"
        by_email = {p["email"]: p for p in made["participants"]}
        assert by_email["julie@northwind.example"]["user_id"] == julie.user_id
        assert by_email["julie@northwind.example"]["responded_at"] == "2030-03-01T12:00:00+00:00"
        assert by_email["anna@contoso.com"]["contact_id"] == anna["id"]
        assert by_email["anna@contoso.com"]["response"] == "tentative"
        assert by_email["stranger@elsewhere.example"] | {} == {
            "email": "stranger@elsewhere.example", "name": "Stranger", "role": "required",
            "response": "none", "responded_at": None, "contact_id": None, "user_id": None,
        }  # fmt: skip

    def test_task_sits_on_its_due_date(self, client: FlaskClient, tenant: Tenant) -> None:
        response = client.post(
            "/api/v1/activities",
            json={
                "kind": "task",
                "subject": "Send offer",
                "due_date": "2030-05-02",
                "priority": "high",
            },
            headers=tenant.headers,
        )
        task = response.get_json()
        assert response.status_code == 201
        assert (task["start"], task["all_day"], task["task_status"]) == (
            "2030-05-02T00:00:00+00:00",
            True,
            "not_started",
        )
        changed = client.patch(
            f"/api/v1/activities/{task['id']}",
            json={"task_status": "completed"},
            headers=tenant.headers,
        )
        assert changed.get_json()["task_status"] == "completed"

    def test_reschedule_then_record_outcome(self, client: FlaskClient, tenant: Tenant) -> None:
        made = post(client, tenant)
        url = f"/api/v1/activities/{made['id']}"
        moved = client.patch(
            url,
            json={"start": "2030-03-05T13:00:00Z", "end": "2030-03-05T14:30:00Z"},
            headers=tenant.headers,
        ).get_json()
        assert (moved["start"], moved["end"]) == (
            "2030-03-05T13:00:00+00:00",
            "2030-03-05T14:30:00+00:00",
        )
        held = client.patch(
            url,
            json={"status": "held", "outcome": "Won: price and local support"},
            headers=tenant.headers,
        ).get_json()
        assert (held["status"], held["outcome"]) == ("held", "Won: price and local support")

    def test_cancel_keeps_history(self, client: FlaskClient, tenant: Tenant) -> None:
        made = post(client, tenant)
        cancelled = client.post(f"/api/v1/activities/{made['id']}/cancel", headers=tenant.headers)
        assert cancelled.status_code == 200
        assert cancelled.get_json()["status"] == "cancelled"
        again = client.post(f"/api/v1/activities/{made['id']}/cancel", headers=tenant.headers)
        assert again.status_code == 200
        assert [a["id"] for a in listing(client, tenant, "status=cancelled")] == [made["id"]]
        assert listing(client, tenant, "status=planned") == []


class TestValidation:
    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"end": "2030-03-04T08:00:00+01:00"}, "end"),
            ({"time_zone": "Mars/Olympus"}, "time_zone"),
            ({"recurrence": {"rule": "FREQ=SOMETIMES"}}, "recurrence.rule"),
            ({"start": "2030-03-04T09:00:00"}, "start"),  # no UTC offset
            ({"kind": "lunch"}, "kind"),
            ({"owner_id": 999999}, "owner_id"),
            ({"company_id": 999999}, "company_id"),
            ({"contact_ids": [999999]}, "contact_ids"),
            ({"subject": 42}, "subject"),
            ({"participants": [{"email": "x"}]}, "participants"),
            ({"colour": "red"}, "colour"),
        ],
    )
    def test_bad_fields_are_refused_and_change_nothing(
        self,
        client: FlaskClient,
        tenant: Tenant,
        uow_factory: UnitOfWorkFactory,
        body: dict[str, Any],
        field: str,
    ) -> None:
        before = table_counts(uow_factory)
        full = {"kind": "meeting", "start": START, "end": END} | body
        assert_error(
            client.post("/api/v1/activities", json=full, headers=tenant.headers), 422, field=field
        )
        assert table_counts(uow_factory) == before

    def test_meeting_needs_times_and_task_a_due_date(
        self, client: FlaskClient, tenant: Tenant
    ) -> None:
        response = client.post(
            "/api/v1/activities", json={"kind": "meeting"}, headers=tenant.headers
        )
        assert_error(response, 422, field="start")
        response = client.post("/api/v1/activities", json={"kind": "task"}, headers=tenant.headers)
        assert_error(response, 422, field="due_date")

    def test_patch_validation_changes_nothing(self, client: FlaskClient, tenant: Tenant) -> None:
        made = post(client, tenant)
        url = f"/api/v1/activities/{made['id']}"
        assert_error(
            client.patch(url, json={"end": "2000-01-01T00:00:00Z"}, headers=tenant.headers), 422
        )
        assert_error(
            client.patch(url, json={"status": "done"}, headers=tenant.headers), 422, field="status"
        )
        assert client.get(url, headers=tenant.headers).get_json()["end"] == made["end"]

    def test_range_needs_both_ends(self, client: FlaskClient, tenant: Tenant) -> None:
        response = client.get(
            "/api/v1/activities?start=2030-01-01T00:00:00Z", headers=tenant.headers
        )
        assert_error(response, 422, field="start")
        response = client.get(
            "/api/v1/activities?start=2030-01-02T00:00:00Z&end=2030-01-01T00:00:00Z",
            headers=tenant.headers,
        )
        assert_error(response, 422, field="end")


class TestListing:
    def test_filters(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory
    ) -> None:
        julie = colleague(uow_factory, tenant, "julie")
        contoso = client.post(
            "/api/v1/companies", json={"name": "Contoso"}, headers=tenant.headers
        ).get_json()
        anna = client.post(
            "/api/v1/contacts", json={"first_name": "Anna"}, headers=tenant.headers
        ).get_json()
        tagged = post(client, tenant, company_id=contoso["id"], contact_ids=[anna["id"]])
        call = post(
            client, tenant, kind="call", start="2030-03-06T09:00:00Z", end="2030-03-06T09:15:00Z"
        )
        theirs = post(client, julie, start="2030-04-01T09:00:00Z", end="2030-04-01T10:00:00Z")

        def ids(query: str) -> list[int]:
            return [a["id"] for a in listing(client, tenant, query)]

        assert ids(f"company_id={contoso['id']}") == [tagged["id"]]
        assert ids(f"contact_id={anna['id']}") == [tagged["id"]]
        assert ids("kind=call") == [call["id"]]
        assert ids("kind=call&kind=meeting") == [tagged["id"], call["id"], theirs["id"]]
        assert ids(f"owner_id={julie.user_id}") == [theirs["id"]]
        assert ids("start=2030-03-05T00:00:00Z&end=2030-03-31T00:00:00Z") == [call["id"]]

    def test_series_expanded_in_range_with_cursor_pages(
        self, client: FlaskClient, tenant: Tenant
    ) -> None:
        series = post(
            client,
            tenant,
            subject="Weekly",
            start="2030-01-07T09:00:00+01:00",
            end="2030-01-07T09:30:00+01:00",
            time_zone="Europe/Oslo",
            recurrence={"rule": "FREQ=WEEKLY;BYDAY=MO"},
        )
        single = post(client, tenant, start="2030-03-27T12:00:00Z", end="2030-03-27T13:00:00Z")
        query = "start=2030-03-01T00:00:00Z&end=2030-04-15T00:00:00Z"
        whole = listing(client, tenant, query + "&limit=500")
        starts = [(a["id"], a["start"]) for a in whole]
        # Oslo switches to summer time on 2030-03-31: 09:00 local moves from 08:00 to 07:00 UTC.
        assert starts == [
            (series["id"], "2030-03-04T08:00:00+00:00"),
            (series["id"], "2030-03-11T08:00:00+00:00"),
            (series["id"], "2030-03-18T08:00:00+00:00"),
            (series["id"], "2030-03-25T08:00:00+00:00"),
            (single["id"], "2030-03-27T12:00:00+00:00"),
            (series["id"], "2030-04-01T07:00:00+00:00"),
            (series["id"], "2030-04-08T07:00:00+00:00"),
        ]
        assert all(a["series_id"] == series["id"] for a in whole if a["id"] == series["id"])
        assert whole[0]["original_start"] == whole[0]["start"]

        paged: list[tuple[int, str]] = []
        cursor = None
        while True:
            url = f"/api/v1/activities?{query}&limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = client.get(url, headers=tenant.headers).get_json()
            paged += [(a["id"], a["start"]) for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert paged == starts

    def test_no_end_series_occurrence_five_years_out(
        self, client: FlaskClient, tenant: Tenant
    ) -> None:
        post(
            client, tenant, start="2030-01-07T09:00:00+01:00", end="2030-01-07T09:30:00+01:00",
            time_zone="Europe/Oslo", recurrence={"rule": "FREQ=WEEKLY;BYDAY=MO"},
        )  # fmt: skip
        far = listing(client, tenant, "start=2035-01-01T00:00:00Z&end=2035-01-10T00:00:00Z")
        assert [a["start"] for a in far] == [
            "2035-01-01T08:00:00+00:00",
            "2035-01-08T08:00:00+00:00",
        ]

    def test_moving_a_series_moves_every_occurrence(
        self, client: FlaskClient, tenant: Tenant
    ) -> None:
        series = post(
            client, tenant, start="2030-01-07T09:00:00+01:00", end="2030-01-07T09:30:00+01:00",
            time_zone="Europe/Oslo", recurrence={"rule": "FREQ=WEEKLY;BYDAY=MO"},
        )  # fmt: skip
        client.patch(
            f"/api/v1/activities/{series['id']}",
            json={"start": "2030-01-07T11:00:00+01:00", "end": "2030-01-07T11:30:00+01:00"},
            headers=tenant.headers,
        )
        items = listing(client, tenant, "start=2030-06-03T00:00:00Z&end=2030-06-04T00:00:00Z")
        assert [a["start"] for a in items] == ["2030-06-03T09:00:00+00:00"]  # 11:00 summer time


class TestPrivacy:
    def test_private_meeting_shows_only_busy_to_colleagues(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory
    ) -> None:
        julie = colleague(uow_factory, tenant, "julie")
        contoso = client.post(
            "/api/v1/companies", json={"name": "Contoso"}, headers=tenant.headers
        ).get_json()
        secret = post(
            client, tenant, subject="Doctor", description="blood test", visibility="private",
            company_id=contoso["id"], participants=[{"email": "doc@clinic.example"}],
        )  # fmt: skip
        url = f"/api/v1/activities/{secret['id']}"
        mine = client.get(url, headers=tenant.headers).get_json()
        assert (mine["subject"], mine["private"]) == ("Doctor", False)

        seen = client.get(url, headers=julie.headers).get_json()
        assert seen["private"] is True
        assert seen["subject"] == "Busy"
        for hidden in (
            "description",
            "participants",
            "company_id",
            "contact_ids",
            "location",
            "outcome",
        ):
            assert hidden not in seen
        assert (seen["start"], seen["end"]) == (secret["start"], secret["end"])
        assert [a["subject"] for a in listing(client, julie, "")] == ["Busy"]
        # Filtering by company must not reveal who the private meeting is with.
        assert listing(client, julie, f"company_id={contoso['id']}") == []
        assert [a["id"] for a in listing(client, tenant, f"company_id={contoso['id']}")] == [
            secret["id"]
        ]

        before = table_counts(uow_factory)
        assert_error(
            client.patch(url, json={"subject": "x"}, headers=julie.headers), 403, "forbidden"
        )
        assert_error(client.post(f"{url}/cancel", headers=julie.headers), 403)
        assert table_counts(uow_factory) == before


def test_other_organizations_activities_are_invisible(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, uow_factory: UnitOfWorkFactory
) -> None:
    theirs = post(client, other_tenant)
    url = f"/api/v1/activities/{theirs['id']}"
    before = table_counts(uow_factory)
    assert_error(client.get(url, headers=tenant.headers), 404)
    assert_error(client.patch(url, json={"subject": "x"}, headers=tenant.headers), 404)
    assert_error(client.post(f"{url}/cancel", headers=tenant.headers), 404)
    assert listing(client, tenant, "") == []
    # Their user cannot own our activity either.
    response = client.post(
        "/api/v1/activities",
        json={"kind": "meeting", "start": START, "end": END, "owner_id": other_tenant.user_id},
        headers=tenant.headers,
    )
    assert_error(response, 422, field="owner_id")
    assert table_counts(uow_factory) == before
    assert dt.datetime.fromisoformat(theirs["start"]).tzinfo is not None


def test_forged_activity_cursors_are_refused(client: FlaskClient, tenant: Tenant) -> None:
    from addin.api.schemas import encode_cursor

    query = "start=2030-03-01T00:00:00Z&end=2030-04-01T00:00:00Z&cursor="
    for forged in (
        encode_cursor(["2030-03-02T00:00:00+00:00", 1, "yesterday"]),
        encode_cursor(["2030-03-02T00:00:00+00:00", 1, "2030-03-02T00:00:00"]),
        encode_cursor(["2030-03-02T00:00:00", 1, ""]),
    ):
        response = client.get(f"/api/v1/activities?{query}{forged}", headers=tenant.headers)
        assert_error(response, 422, field="cursor")


def _link(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, activity_id: int, mailbox: str, event_id: str
) -> None:
    """What sync records for one (watched) mailbox's copy of a meeting."""
    with uow_factory() as uow:
        watched = select(Mailbox).where(Mailbox.org_id == tenant.org_id, Mailbox.address == mailbox)
        if uow.session.scalar(watched) is None:
            uow.session.add(
                Mailbox(
                    org_id=tenant.org_id,
                    provider=Provider.MICROSOFT,
                    address=mailbox,
                    external_id=f"id-of-{mailbox}",
                )
            )
        uow.session.add(
            ProviderLink(
                org_id=tenant.org_id,
                activity_id=activity_id,
                provider=Provider.MICROSOFT,
                mailbox=mailbox,
                provider_event_id=event_id,
            )
        )
        uow.commit()


def test_an_activity_is_found_by_the_callers_copy_of_the_event(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, uow_factory: UnitOfWorkFactory
) -> None:
    julie = colleague(uow_factory, tenant, "julie")
    unwatched = colleague(uow_factory, tenant, "kim")
    meeting = post(client, tenant, subject="Pricing")
    _link(uow_factory, tenant, meeting["id"], tenant.user_email, "AAMkAGI2-own_copy=")
    _link(uow_factory, tenant, meeting["id"], julie.user_email, "AAMkAGI2-julies_copy=")

    def by_event(who: Tenant, event_id: str, provider: str = "") -> Any:
        query = f"event_id={event_id}" + (f"&provider={provider}" if provider else "")
        return client.get(f"/api/v1/activities/by-event?{query}", headers=who.headers)

    before = table_counts(uow_factory)
    found = by_event(tenant, "AAMkAGI2-own_copy=")
    assert found.status_code == 200, found.get_json()
    assert (
        found.get_json()
        == client.get(f"/api/v1/activities/{meeting['id']}", headers=tenant.headers).get_json()
    )
    assert by_event(julie, "AAMkAGI2-julies_copy=").get_json()["id"] == meeting["id"]
    # Only the caller's own mailbox: another user's copy, another provider, another org.
    assert_error(by_event(tenant, "AAMkAGI2-julies_copy="), 404)
    assert_error(by_event(tenant, "AAMkAGI2-own_copy=", "google"), 404)
    assert_error(by_event(other_tenant, "AAMkAGI2-own_copy="), 404)
    missing = assert_error(by_event(unwatched, "AAMkAGI2-own_copy="), 404)
    assert "not watched" in missing["message"]
    assert_error(client.get("/api/v1/activities/by-event", headers=tenant.headers), 422)
    assert_error(by_event(tenant, "x", "exchange"), 422, field="provider")
    assert table_counts(uow_factory) == before
