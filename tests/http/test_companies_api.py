"""Companies over HTTP: CRUD, list, search, validation and isolation."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.conftest import Tenant, table_counts
from tests.helpers import assert_error


def create(client: FlaskClient, tenant: Tenant, **body: object) -> dict[str, object]:
    response = client.post("/api/v1/companies", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


class TestCrud:
    def test_create_read_update_delete(self, client: FlaskClient, tenant: Tenant) -> None:
        made = create(
            client, tenant, name="  Contoso   Ltd ", domains=["WWW.Contoso.com", "contoso.no"]
        )
        assert made["name"] == "Contoso Ltd"
        assert made["domains"] == ["contoso.com", "contoso.no"]

        url = f"/api/v1/companies/{made['id']}"
        assert client.get(url, headers=tenant.headers).get_json()["name"] == "Contoso Ltd"

        patched = client.patch(
            url, json={"city": "Oslo", "domains": ["contoso.com"]}, headers=tenant.headers
        )
        assert patched.status_code == 200
        assert patched.get_json()["city"] == "Oslo"
        assert patched.get_json()["domains"] == ["contoso.com"]
        assert patched.get_json()["name"] == "Contoso Ltd"

        assert client.delete(url, headers=tenant.headers).status_code == 204
        assert_error(client.get(url, headers=tenant.headers), 404, "not_found")

    def test_domain_belongs_to_one_company(
        self, client: FlaskClient, tenant: Tenant, uow_factory
    ) -> None:
        create(client, tenant, name="Contoso", domains=["contoso.com"])
        before = table_counts(uow_factory)
        response = client.post(
            "/api/v1/companies",
            json={"name": "Copycat", "domains": ["contoso.com"]},
            headers=tenant.headers,
        )
        assert_error(response, 409, "conflict", field="domains")
        assert table_counts(uow_factory) == before

    def test_invalid_domain_is_a_field_error(
        self, client: FlaskClient, tenant: Tenant, uow_factory
    ) -> None:
        before = table_counts(uow_factory)
        response = client.post(
            "/api/v1/companies",
            json={"name": "X", "domains": ["not a domain"]},
            headers=tenant.headers,
        )
        assert_error(response, 422, "invalid_input", field="domains")
        assert table_counts(uow_factory) == before


class TestListAndSearch:
    def test_alphabetical_pages_with_cursor(self, client: FlaskClient, tenant: Tenant) -> None:
        for name in ["Delta", "alpha", "Charlie", "Bravo", "Écho"]:
            create(client, tenant, name=name)
        seen: list[str] = []
        cursor = None
        while True:
            query = "limit=2" + (f"&cursor={cursor}" if cursor else "")
            page = client.get(f"/api/v1/companies?{query}", headers=tenant.headers).get_json()
            seen += [item["name"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ["alpha", "Bravo", "Charlie", "Delta", "Écho"]

    def test_search_by_word_prefix_case_and_accents(
        self, client: FlaskClient, tenant: Tenant
    ) -> None:
        create(client, tenant, name="Café Ærø Bryggeri")
        create(client, tenant, name="Contoso Ltd")
        found = client.get("/api/v1/companies?q=AERO", headers=tenant.headers).get_json()["items"]
        assert [c["name"] for c in found] == ["Café Ærø Bryggeri"]
        found = client.get("/api/v1/companies?q=brygg%20caf", headers=tenant.headers).get_json()[
            "items"
        ]
        assert [c["name"] for c in found] == ["Café Ærø Bryggeri"]
        assert (
            client.get("/api/v1/companies?q=toso", headers=tenant.headers).get_json()["items"] == []
        )

    def test_a_search_hit_reads_as_the_company_does(
        self, client: FlaskClient, tenant: Tenant
    ) -> None:
        # Search hits are read without the ORM: every field, and the domains in order.
        made = [
            create(
                client,
                tenant,
                name="Northwind Traders",
                domains=["northwind.example", "nw.example", "b-northwind.example"],
                website="https://northwind.example",
                phone="+47 22 00 00 00",
                city="Oslo",
                country="Norway",
                notes="Key account",
            ),
            create(client, tenant, name="Northwind Bakery"),
        ]
        found = client.get("/api/v1/companies?q=northwind", headers=tenant.headers).get_json()
        read = [
            client.get(f"/api/v1/companies/{c['id']}", headers=tenant.headers).get_json()
            for c in made
        ]
        assert sorted(found["items"], key=lambda c: c["id"]) == read
        assert read[0]["domains"] == ["b-northwind.example", "northwind.example", "nw.example"]
        assert read[1]["domains"] == []

    def test_bad_cursor_and_limit(self, client: FlaskClient, tenant: Tenant) -> None:
        assert_error(
            client.get("/api/v1/companies?cursor=zzz", headers=tenant.headers), 422, field="cursor"
        )
        assert_error(
            client.get("/api/v1/companies?limit=0", headers=tenant.headers), 422, field="limit"
        )
        assert_error(
            client.get("/api/v1/companies?limit=many", headers=tenant.headers), 422, field="limit"
        )


class TestIsolation:
    def test_other_organizations_company_is_invisible(
        self, client: FlaskClient, tenant: Tenant, other_tenant: Tenant, uow_factory
    ) -> None:
        theirs = create(client, other_tenant, name="Globex Secret", domains=["secret.example"])
        url = f"/api/v1/companies/{theirs['id']}"
        before = table_counts(uow_factory)
        assert_error(client.get(url, headers=tenant.headers), 404)
        assert_error(client.patch(url, json={"name": "Mine"}, headers=tenant.headers), 404)
        assert_error(client.delete(url, headers=tenant.headers), 404)
        assert table_counts(uow_factory) == before
        assert (
            client.get("/api/v1/companies?q=globex", headers=tenant.headers).get_json()["items"]
            == []
        )
        assert client.get("/api/v1/companies", headers=tenant.headers).get_json()["items"] == []
        # The same domain may belong to a company in another organization.
        create(client, tenant, name="Our Secret", domains=["secret.example"])
        assert client.get(url, headers=other_tenant.headers).get_json()["name"] == "Globex Secret"


def test_longest_names_fit_even_when_folding_lengthens_them(
    client: FlaskClient, tenant: Tenant
) -> None:
    name = "ß" * 200  # folds to 400 characters
    made = create(client, tenant, name=name)
    assert made["name"] == name
    found = client.get("/api/v1/companies?q=ssss", headers=tenant.headers).get_json()["items"]
    assert [c["id"] for c in found] == [made["id"]]
    contact = client.post(
        "/api/v1/contacts",
        json={"first_name": "ß" * 120, "last_name": "ß" * 120},
        headers=tenant.headers,
    )
    assert contact.status_code == 201
