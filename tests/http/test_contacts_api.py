"""Contacts over HTTP: CRUD, lookup by e-mail, list filters, validation and isolation."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import Tenant, table_counts
from tests.helpers import assert_error


def company(client: FlaskClient, tenant: Tenant, name: str, domain: str) -> int:
    response = client.post(
        "/api/v1/companies", json={"name": name, "domains": [domain]}, headers=tenant.headers
    )
    return int(response.get_json()["id"])


def contact(client: FlaskClient, tenant: Tenant, **body: object) -> dict[str, object]:
    response = client.post("/api/v1/contacts", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def test_create_lookup_update_delete(client: FlaskClient, tenant: Tenant) -> None:
    contoso = company(client, tenant, "Contoso", "contoso.com")
    anna = contact(
        client, tenant, first_name="Anna", last_name="Kowalski",
        emails=["Anna@Contoso.com", "anna.k@gmail.com"], company_id=contoso,
    )  # fmt: skip
    assert anna["name"] == "Anna Kowalski"
    assert anna["emails"] == ["anna@contoso.com", "anna.k@gmail.com"]

    found = client.get("/api/v1/contacts/lookup?email=ANNA.K@gmail.com", headers=tenant.headers)
    assert found.status_code == 200
    assert found.get_json()["id"] == anna["id"]

    url = f"/api/v1/contacts/{anna['id']}"
    changed = client.patch(
        url, json={"title": "CFO", "emails": ["anna@contoso.com"]}, headers=tenant.headers
    )
    assert changed.get_json()["title"] == "CFO"
    assert changed.get_json()["emails"] == ["anna@contoso.com"]
    gone = client.get("/api/v1/contacts/lookup?email=anna.k@gmail.com", headers=tenant.headers)
    assert_error(gone, 404, "not_found")

    assert client.delete(url, headers=tenant.headers).status_code == 204
    assert_error(client.get(url, headers=tenant.headers), 404)


def test_list_by_company_and_name(client: FlaskClient, tenant: Tenant) -> None:
    contoso = company(client, tenant, "Contoso", "contoso.com")
    contact(client, tenant, first_name="Anna", last_name="Kowalski", company_id=contoso)
    contact(client, tenant, first_name="Per", last_name="Ølsen", company_id=contoso)
    contact(client, tenant, first_name="Bob", last_name="Smith")
    items = client.get(f"/api/v1/contacts?company_id={contoso}", headers=tenant.headers).get_json()[
        "items"
    ]
    assert [c["name"] for c in items] == ["Anna Kowalski", "Per Ølsen"]
    items = client.get("/api/v1/contacts?q=olsen", headers=tenant.headers).get_json()["items"]
    assert [c["name"] for c in items] == ["Per Ølsen"]


def test_email_belongs_to_one_contact(client: FlaskClient, tenant: Tenant, uow_factory) -> None:
    contact(client, tenant, first_name="Anna", emails=["anna@contoso.com"])
    before = table_counts(uow_factory)
    response = client.post(
        "/api/v1/contacts",
        json={"first_name": "Fake", "emails": ["anna@contoso.com"]},
        headers=tenant.headers,
    )
    assert_error(response, 409, "conflict", field="emails")
    assert table_counts(uow_factory) == before


def test_invalid_contacts_are_refused(client: FlaskClient, tenant: Tenant, uow_factory) -> None:
    before = table_counts(uow_factory)
    cases = [
        ({}, "first_name"),  # neither a name nor an e-mail
        ({"first_name": "A", "emails": ["not-an-email"]}, "emails"),
        ({"first_name": "A", "company_id": "7"}, "company_id"),  # a string is not an id
        ({"first_name": "A", "company_id": 999999}, "company_id"),
    ]
    for body, field in cases:
        response = client.post("/api/v1/contacts", json=body, headers=tenant.headers)
        assert_error(response, 422, field=field)
    assert_error(
        client.get("/api/v1/contacts/lookup?email=nope", headers=tenant.headers), 422, field="email"
    )
    assert table_counts(uow_factory) == before


def test_other_organizations_contacts_are_invisible(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant, uow_factory
) -> None:
    theirs = contact(client, other_tenant, first_name="Hidden", emails=["hidden@globex.example"])
    their_company = company(client, other_tenant, "Globex", "globex-customer.example")
    before = table_counts(uow_factory)
    url = f"/api/v1/contacts/{theirs['id']}"
    assert_error(client.get(url, headers=tenant.headers), 404)
    assert_error(client.patch(url, json={"title": "x"}, headers=tenant.headers), 404)
    assert_error(client.delete(url, headers=tenant.headers), 404)
    lookup = client.get(
        "/api/v1/contacts/lookup?email=hidden@globex.example", headers=tenant.headers
    )
    assert_error(lookup, 404)
    # Attaching our contact to their company is refused as if the company did not exist.
    response = client.post(
        "/api/v1/contacts",
        json={"first_name": "Mine", "company_id": their_company},
        headers=tenant.headers,
    )
    assert_error(response, 422, "invalid_input", field="company_id")
    assert table_counts(uow_factory) == before
