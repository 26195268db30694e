"""Suggestions from attendees (scenario A2): contacts first, then companies by domain."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import Tenant
from tests.helpers import assert_error


def make(client: FlaskClient, tenant: Tenant, path: str, **body: object) -> int:
    response = client.post(f"/api/v1/{path}", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


def test_contacts_first_then_domains(client: FlaskClient, tenant: Tenant) -> None:
    contoso = make(client, tenant, "companies", name="Contoso", domains=["contoso.com"])
    fabrikam = make(client, tenant, "companies", name="Fabrikam", domains=["fabrikam.com"])
    # Anna works for Contoso but writes from her private address.
    anna = make(
        client, tenant, "contacts", first_name="Anna", emails=["anna@gmail.com"], company_id=contoso
    )
    # Someone registered a company for gmail.com: a free-mail domain must still never suggest it.
    make(client, tenant, "companies", name="Gmail fan club", domains=["gmail.com"])
    # ... and nor may our own domain.
    make(client, tenant, "companies", name="Ourselves", domains=["northwind.example"])

    response = client.post(
        "/api/v1/suggest",
        json={"emails": ["x@fabrikam.com", "Anna@Gmail.com", "y@fabrikam.com", "bob@gmail.com",
                         "julie@northwind.example", "new@unknown.example", "not-an-email",
                         "x@fabrikam.com"]},
        headers=tenant.headers,
    )  # fmt: skip
    body = response.get_json()
    assert response.status_code == 200
    assert [
        (s["company"]["id"], s["contact_emails"], s["domain_emails"]) for s in body["companies"]
    ] == [
        (contoso, ["anna@gmail.com"], []),
        (fabrikam, [], ["x@fabrikam.com", "y@fabrikam.com"]),
    ]
    assert body["contacts"]["anna@gmail.com"]["id"] == anna
    assert body["internal"] == ["julie@northwind.example"]
    assert body["unknown"] == [
        "x@fabrikam.com",
        "y@fabrikam.com",
        "bob@gmail.com",
        "new@unknown.example",
    ]
    assert body["invalid"] == ["not-an-email"]


def test_other_organizations_data_never_suggested(
    client: FlaskClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    make(client, other_tenant, "companies", name="Globex customer", domains=["customer.example"])
    body = client.post(
        "/api/v1/suggest", json={"emails": ["a@customer.example"]}, headers=tenant.headers
    ).get_json()
    assert body["companies"] == []
    assert body["contacts"] == {}
    assert body["unknown"] == ["a@customer.example"]


def test_bad_suggest_requests(client: FlaskClient, tenant: Tenant) -> None:
    assert_error(
        client.post("/api/v1/suggest", json={}, headers=tenant.headers), 422, field="emails"
    )
    assert_error(
        client.post("/api/v1/suggest", json={"emails": "a@b.c"}, headers=tenant.headers), 422
    )
    too_many = {"emails": [f"u{i}@x.example" for i in range(501)]}
    assert_error(
        client.post("/api/v1/suggest", json=too_many, headers=tenant.headers), 422, field="emails"
    )
