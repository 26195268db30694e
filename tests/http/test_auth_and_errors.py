"""Authentication of the API and the one JSON error shape for every kind of bad request."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from services import auth
from services.tables import ApiKey
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant, table_counts
from tests.helpers import assert_error

ENDPOINTS = [
    ("GET", "/api/v1/companies"),
    ("POST", "/api/v1/companies"),
    ("GET", "/api/v1/contacts/lookup?email=a@b.example"),
    ("GET", "/api/v1/activities"),
    ("POST", "/api/v1/suggest"),
    ("GET", "/api/v1/me"),
]


class TestAuthentication:
    @pytest.mark.parametrize(("method", "url"), ENDPOINTS)
    @pytest.mark.parametrize(
        "authorization",
        [
            None,
            "",
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "Bearer mtc_0000000000000000_wrongsecret",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        ],
    )
    def test_refused_without_a_valid_token(
        self,
        client: FlaskClient,
        tenant: Tenant,
        uow_factory: UnitOfWorkFactory,
        method: str,
        url: str,
        authorization: str | None,
    ) -> None:
        before = table_counts(uow_factory)
        headers = {} if authorization is None else {"Authorization": authorization}
        response = client.open(
            url, method=method, json={"name": "X", "emails": []}, headers=headers
        )
        assert_error(response, 401, "not_authenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert table_counts(uow_factory) == before

    def test_right_id_wrong_secret(self, client: FlaskClient, tenant: Tenant) -> None:
        lookup_id = tenant.token.split("_")[1]
        forged = {"Authorization": f"Bearer mtc_{lookup_id}_not-the-secret"}
        assert_error(client.get("/api/v1/me", headers=forged), 401)

    def test_revoked_key_is_refused(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory
    ) -> None:
        assert client.get("/api/v1/me", headers=tenant.headers).status_code == 200
        with uow_factory() as uow:
            issued = auth.create_api_key(uow, org_id=tenant.org_id, name="temp")
            uow.commit()
        headers = {"Authorization": f"Bearer {issued.token}"}
        assert client.get("/api/v1/me", headers=headers).get_json()["user_id"] is None
        with uow_factory() as uow:
            auth.revoke_api_key(uow, issued.id)
            uow.commit()
        assert_error(client.get("/api/v1/me", headers=headers), 401)

    def test_me_names_the_principal(self, client: FlaskClient, tenant: Tenant) -> None:
        me = client.get("/api/v1/me", headers=tenant.headers).get_json()
        assert me == {
            "org_id": tenant.org_id,
            "user_id": tenant.user_id,
            "kind": "api_key",
            "name": "tests",
        }

    def test_only_hashes_are_stored(self, tenant: Tenant, uow_factory: UnitOfWorkFactory) -> None:
        secret = tenant.token.split("_", 2)[2]
        with uow_factory() as uow:
            stored = uow.session.scalars(select(ApiKey.secret_hash)).all()
        assert stored
        assert all(secret not in value for value in stored)


# Every endpoint that takes a body, with a wrong-typed field and an unknown field for it.
BODY_ENDPOINTS = [
    ("POST", "/api/v1/companies", {"name": ["X"]}),
    ("PATCH", "/api/v1/companies/{company}", {"city": 5}),
    ("POST", "/api/v1/contacts", {"first_name": {"a": 1}}),
    ("PATCH", "/api/v1/contacts/{contact}", {"emails": "a@b.example"}),
    ("POST", "/api/v1/activities", {"kind": "meeting", "start": "soon", "end": "later"}),
    ("PATCH", "/api/v1/activities/{activity}", {"reminder_minutes": "ten"}),
    ("POST", "/api/v1/suggest", {"emails": [1, 2]}),
]


@pytest.fixture
def existing(client: FlaskClient, tenant: Tenant) -> dict[str, int]:
    """One company, contact and activity of the tenant, for the PATCH endpoints."""
    h = tenant.headers
    company = client.post("/api/v1/companies", json={"name": "Contoso"}, headers=h).get_json()
    contact = client.post("/api/v1/contacts", json={"first_name": "Anna"}, headers=h).get_json()
    activity = client.post(
        "/api/v1/activities",
        json={"kind": "call", "start": "2030-01-01T10:00:00Z", "end": "2030-01-01T10:30:00Z"},
        headers=h,
    ).get_json()
    return {"company": company["id"], "contact": contact["id"], "activity": activity["id"]}


def _snapshot(client: FlaskClient, tenant: Tenant, ids: dict[str, int]) -> list[object]:
    h = tenant.headers
    return [
        client.get(f"/api/v1/companies/{ids['company']}", headers=h).get_json(),
        client.get(f"/api/v1/contacts/{ids['contact']}", headers=h).get_json(),
        client.get(f"/api/v1/activities/{ids['activity']}", headers=h).get_json(),
    ]


@pytest.mark.parametrize(("method", "url", "wrong_type"), BODY_ENDPOINTS)
class TestBadInput:
    """Each kind of bad body on each endpoint: the right 4xx, the error shape, nothing changed."""

    def _check(
        self,
        client: FlaskClient,
        tenant: Tenant,
        uow_factory: UnitOfWorkFactory,
        existing: dict[str, int],
        method: str,
        url: str,
        status: int,
        code: str,
        **request: object,
    ) -> dict[str, object]:
        before = (table_counts(uow_factory), _snapshot(client, tenant, existing))
        response = client.open(
            url.format(**existing), method=method, headers=tenant.headers, **request
        )
        body = assert_error(response, status, code)
        assert (table_counts(uow_factory), _snapshot(client, tenant, existing)) == before
        return body

    def test_malformed_json(self, client, tenant, uow_factory, existing, method, url, wrong_type):
        self._check(
            client, tenant, uow_factory, existing, method, url, 400, "malformed_json",
            data='{"name": "X",', content_type="application/json",
        )  # fmt: skip

    def test_wrong_content_type(
        self, client, tenant, uow_factory, existing, method, url, wrong_type
    ):
        self._check(
            client, tenant, uow_factory, existing, method, url, 415, "unsupported_media_type",
            data="name=X", content_type="application/x-www-form-urlencoded",
        )  # fmt: skip

    def test_wrong_types(self, client, tenant, uow_factory, existing, method, url, wrong_type):
        body = self._check(
            client, tenant, uow_factory, existing, method, url, 422, "validation_error",
            json=wrong_type,
        )  # fmt: skip
        assert set(wrong_type) & set(body["errors"])

    def test_unknown_fields(self, client, tenant, uow_factory, existing, method, url, wrong_type):
        body = self._check(
            client, tenant, uow_factory, existing, method, url, 422, "validation_error",
            json={"is_admin": True},
        )  # fmt: skip
        assert body["errors"]["is_admin"] == ["Unknown field."]

    def test_not_an_object(self, client, tenant, uow_factory, existing, method, url, wrong_type):
        self._check(
            client, tenant, uow_factory, existing, method, url, 422, "validation_error",
            json=["a", "list"],
        )  # fmt: skip

    def test_oversized_body(
        self, client, tenant, uow_factory, existing, method, url, wrong_type, app
    ):
        huge = '{"name": "' + "x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + '"}'
        self._check(
            client, tenant, uow_factory, existing, method, url, 413, "payload_too_large",
            data=huge, content_type="application/json",
        )  # fmt: skip


class TestOtherErrors:
    def test_unknown_route_and_method(self, client: FlaskClient, tenant: Tenant) -> None:
        assert_error(client.get("/api/v1/nothing-here", headers=tenant.headers), 404, "not_found")
        assert_error(client.put("/api/v1/companies", json={}, headers=tenant.headers), 405)

    def test_internal_errors_are_json_without_details(
        self, app: Flask, client: FlaskClient
    ) -> None:
        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("secret detail")

        response = client.get("/boom")
        body = assert_error(response, 500, "internal_error")
        assert "secret detail" not in response.get_data(as_text=True)
        assert response.headers["X-Request-Id"] in body["message"]
