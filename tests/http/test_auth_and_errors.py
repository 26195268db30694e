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


class TestBadInput:
    def test_malformed_json(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory
    ) -> None:
        before = table_counts(uow_factory)
        response = client.post(
            "/api/v1/companies",
            data='{"name": "X",',
            content_type="application/json",
            headers=tenant.headers,
        )
        assert_error(response, 400, "malformed_json")
        assert table_counts(uow_factory) == before

    def test_wrong_content_type(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory
    ) -> None:
        before = table_counts(uow_factory)
        response = client.post(
            "/api/v1/companies",
            data="name=X",
            content_type="application/x-www-form-urlencoded",
            headers=tenant.headers,
        )
        assert_error(response, 415, "unsupported_media_type")
        assert table_counts(uow_factory) == before

    def test_unknown_fields_and_wrong_types(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory
    ) -> None:
        before = table_counts(uow_factory)
        response = client.post(
            "/api/v1/companies", json={"name": ["X"], "admin": True}, headers=tenant.headers
        )
        body = assert_error(response, 422, "validation_error")
        assert body["errors"] == {"name": ["Not a valid string."], "admin": ["Unknown field."]}
        assert_error(client.post("/api/v1/companies", json=["X"], headers=tenant.headers), 422)
        assert table_counts(uow_factory) == before

    def test_oversized_body(
        self, client: FlaskClient, tenant: Tenant, uow_factory: UnitOfWorkFactory, app: Flask
    ) -> None:
        before = table_counts(uow_factory)
        huge = '{"name": "' + "x" * (app.config["MAX_CONTENT_LENGTH"] + 10) + '"}'
        response = client.post(
            "/api/v1/companies", data=huge, content_type="application/json", headers=tenant.headers
        )
        assert_error(response, 413, "payload_too_large")
        assert table_counts(uow_factory) == before

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
