"""Liveness, readiness (with hand-written failing fakes) and the OpenAPI document."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, session
from flask.testing import FlaskClient

from tests.helpers import assert_error


class UnreachableQueue:
    """Stands in for a Huey whose Redis or SQLite storage cannot be reached."""

    def pending_count(self) -> int:
        raise ConnectionError("queue storage down")

    def get(self, key: str, peek: bool = False) -> Any:
        raise ConnectionError("queue storage down")


class UnreachableEngine:
    def connect(self) -> Any:
        raise OSError("database down")


def test_healthz(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_no_request_reads_or_writes_a_cookie_session(app: Flask, client: FlaskClient) -> None:
    # A signed session cookie is ignored (nothing signs in with one), and no answer sets one.
    client.set_cookie("session", "eyJ4IjoxfQ.forged.signature")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    with app.test_request_context("/healthz", headers={"Cookie": "session=anything"}):
        app.preprocess_request()
        assert session.get("x") is None
        with pytest.raises(RuntimeError, match="session is unavailable"):
            session["x"] = 1


def test_readyz_when_everything_is_up(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    checks = response.get_json()["checks"]
    assert (checks["database"], checks["queue"], checks["queue_pending"]) == ("ok", "ok", "0")


def test_readyz_names_the_queue_when_it_is_down(app: Flask, client: FlaskClient) -> None:
    container = app.extensions["container"]
    real_queue, container.queue = container.queue, UnreachableQueue()
    try:
        body = assert_error(client.get("/readyz"), 503, "not_ready")
    finally:
        container.queue = real_queue
    assert body["errors"]["database"] == "ok"
    assert body["errors"]["queue"] == "unreachable: ConnectionError"


def test_readyz_names_the_database_when_it_is_down(app: Flask, client: FlaskClient) -> None:
    container = app.extensions["container"]
    real_engine, container.engine = container.engine, UnreachableEngine()
    try:
        body = assert_error(client.get("/readyz"), 503, "not_ready")
    finally:
        container.engine = real_engine
    assert body["errors"]["database"] == "unreachable: OSError"


def test_openapi_documents_every_endpoint_with_bearer_auth(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["info"]["title"] == "Meeting-to-CRM API"
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearer": []}]
    operations = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert {
        ("/api/v1/companies", "get"), ("/api/v1/companies", "post"),
        ("/api/v1/companies/{company_id}", "get"), ("/api/v1/companies/{company_id}", "patch"),
        ("/api/v1/companies/{company_id}", "delete"), ("/api/v1/contacts", "get"),
        ("/api/v1/contacts", "post"), ("/api/v1/contacts/lookup", "get"),
        ("/api/v1/contacts/{contact_id}", "get"), ("/api/v1/contacts/{contact_id}", "patch"),
        ("/api/v1/contacts/{contact_id}", "delete"), ("/api/v1/activities", "get"),
        ("/api/v1/activities", "post"), ("/api/v1/activities/{activity_id}", "get"),
        ("/api/v1/activities/{activity_id}", "patch"),
        ("/api/v1/activities/{activity_id}/cancel", "post"), ("/api/v1/suggest", "post"),
        ("/api/v1/users", "get"), ("/api/v1/me", "get"),
    } <= operations  # fmt: skip


def test_docs_page_uses_our_own_script(client: FlaskClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/static/vendor/redoc.standalone.js" in html
    script = client.get("/static/vendor/redoc.standalone.js")
    assert script.status_code == 200
    assert script.mimetype in (
        "text/javascript",
        "application/javascript",
    )
    script.close()
