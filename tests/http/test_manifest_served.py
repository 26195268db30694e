"""GET /manifest.xml and `flask manifest outlook`: one document, refusals, every URL served."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

import bootstrap
from manifest import outlook
from tests.helpers import assert_error

ADDIN_ID = "6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b"
LAUNCH_EVENT = "{http://schemas.microsoft.com/office/mailappversionoverrides/1.1}LaunchEvent"
SCHEMA_NAMESPACES = ("http://schemas.microsoft.com/", "http://www.w3.org/")
CONTENT_TYPES = {
    ".html": {"text/html"},
    ".js": {"application/javascript", "text/javascript"},
    ".png": {"image/png"},
    "/": {"text/html"},  # the support page
}


@pytest.fixture
def settings(settings: bootstrap.Settings) -> bootstrap.Settings:
    return replace(settings, addin_id=ADDIN_ID)


def use_settings(app: Flask, **changes: Any) -> None:
    container = app.extensions["container"]
    container.settings = replace(container.settings, **changes)


def referenced_urls(document: bytes) -> list[str]:
    """Every absolute URL in the manifest but the AppDomain (a domain, not a page)."""
    root = etree.fromstring(document)
    found = []
    for element in root.iter():
        if not isinstance(element.tag, str) or etree.QName(element).localname == "AppDomain":
            continue
        for value in [*element.attrib.values(), element.text or ""]:
            is_web_url = value.startswith(("https://", "http://"))
            if is_web_url and not value.startswith(SCHEMA_NAMESPACES):
                found.append(value.strip())
    return sorted(set(found))


def test_the_manifest_is_served_as_xml(client: FlaskClient, settings: bootstrap.Settings) -> None:
    response = client.get("/manifest.xml")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/xml"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.get_data(as_text=True) == outlook.outlook_manifest(settings)
    assert f"<Id>{ADDIN_ID}</Id>" in response.get_data(as_text=True)


@pytest.mark.parametrize("policy", ["SoftBlock", "PromptUser"])
def test_send_mode_chooses_the_smart_alerts_policy(client: FlaskClient, policy: str) -> None:
    body = client.get(f"/manifest.xml?send_mode={policy}").get_data(as_text=True)
    assert f'Type="OnAppointmentSend" FunctionName="onAppointmentSend" SendMode="{policy}"' in body


def test_send_mode_off_leaves_on_appointment_send_out(client: FlaskClient) -> None:
    response = client.get("/manifest.xml?send_mode=off")
    assert response.status_code == 200
    assert "OnAppointmentSend" not in response.get_data(as_text=True)


def test_an_unknown_send_mode_is_a_400(client: FlaskClient) -> None:
    body = assert_error(client.get("/manifest.xml?send_mode=Block"), 400, "bad_request")
    assert "SoftBlock, PromptUser, off" in body["message"]


def test_without_addin_id_the_manifest_is_unavailable(app: Flask, client: FlaskClient) -> None:
    use_settings(app, addin_id=None)
    body = assert_error(client.get("/manifest.xml"), 503, "unavailable")
    assert "ADDIN_ID" in body["message"]


def test_a_plain_http_base_url_makes_the_manifest_unavailable(
    app: Flask, client: FlaskClient
) -> None:
    use_settings(app, public_base_url="http://localhost:5000")
    body = assert_error(client.get("/manifest.xml"), 503, "unavailable")
    assert "PUBLIC_BASE_URL must be an https:// URL" in body["message"]


def test_the_cli_prints_the_document_the_endpoint_serves(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["manifest", "outlook"])
    assert result.exit_code == 0, result.output
    assert result.stdout == client.get("/manifest.xml").get_data(as_text=True)


@pytest.mark.parametrize("policy", outlook.SEND_POLICIES)
def test_the_cli_writes_the_file_the_endpoint_serves(
    app: Flask, client: FlaskClient, tmp_path: Path, policy: str
) -> None:
    target = tmp_path / "manifest.xml"
    result = app.test_cli_runner().invoke(
        args=["manifest", "outlook", "-o", str(target), "--send-mode", policy]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    served = client.get(f"/manifest.xml?send_mode={policy}").get_data()
    assert target.read_bytes() == served


def test_the_cli_without_addin_id_fails_naming_it(app: Flask, tmp_path: Path) -> None:
    use_settings(app, addin_id=None)
    target = tmp_path / "manifest.xml"
    result = app.test_cli_runner().invoke(args=["manifest", "outlook", "-o", str(target)])
    assert result.exit_code == 1
    assert "Error: ADDIN_ID is not set" in result.output
    assert not target.exists()


def test_every_url_in_the_manifest_is_https_and_served(
    client: FlaskClient, settings: bootstrap.Settings
) -> None:
    urls = referenced_urls(client.get("/manifest.xml").get_data())
    base = settings.public_base_url
    assert len(urls) == 9, urls  # 2 pages, the event runtime script, 5 icons, the support page
    failures = []
    for url in urls:
        assert url.startswith(f"{base}/"), url
        path = url.removeprefix(base)
        response = client.get(path)
        expected = CONTENT_TYPES.get(path) or CONTENT_TYPES["." + path.rsplit(".", 1)[-1]]
        if response.status_code != 200 or response.mimetype not in expected:
            failures.append(f"{path}: {response.status_code} {response.mimetype}")
        response.close()
    assert not failures, failures


def test_the_event_runtime_registers_every_launch_event_function(client: FlaskClient) -> None:
    """Each FunctionName is registered with Office.actions.associate in the served runtime.

    The HTML runtime (commands.html) loads the same script the JS-only runtime of classic
    Outlook on Windows runs.
    """
    root = etree.fromstring(client.get("/manifest.xml").get_data())
    functions = sorted(event.get("FunctionName") for event in root.iter(LAUNCH_EVENT))
    assert functions == [
        "onAppointmentAttendeesChanged",
        "onAppointmentSend",
        "onNewAppointmentOrganizer",
    ]
    script = client.get("/addin/launchevent.js").get_data(as_text=True)
    registered = set(
        re.findall(r"""Office\.actions\.associate\(\s*["']([A-Za-z0-9_]+)["']""", script)
    )
    assert set(functions) <= registered, f"registered: {sorted(registered)}"
    assert "/addin/launchevent.js" in client.get("/addin/commands.html").get_data(as_text=True)
