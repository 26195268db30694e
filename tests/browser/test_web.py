"""The add-in's pages over HTTP: URLs of the manifest contract, caching, CSP, icons, config."""

from __future__ import annotations

import re
import struct
from dataclasses import replace
from pathlib import Path

import pytest
from flask.testing import FlaskClient

import bootstrap
import wsgi
from addin import web
from graph import events

PAGES = ("/addin/taskpane.html", "/addin/commands.html")
HASHED = re.compile(r'(?:src|href|content)="(/addin/static/[^"]+)"')


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_not_cached_and_name_hashed_assets(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    assert response.headers["Cache-Control"] == "no-cache"
    html = response.get_data(as_text=True)
    assert "{{" not in html
    for url in HASHED.findall(html):
        assert re.fullmatch(r"/addin/static/[\w.-]+\.[0-9a-f]{12}\.(js|css)", url), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_the_csp_allows_no_inline_script_and_only_outlook_frames(client: FlaskClient) -> None:
    csp = client.get("/addin/taskpane.html").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self' https://appsforoffice.microsoft.com"
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' data:"
    assert "https://login.microsoftonline.com" in directives["connect-src"]
    assert "unsafe" not in csp
    assert directives["frame-ancestors"].split() == list(web.FRAME_ANCESTORS)
    html = client.get("/addin/taskpane.html").get_data(as_text=True)
    assert "<style" not in html
    assert " style=" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"


def test_module_imports_point_at_hashed_names(client: FlaskClient) -> None:
    html = client.get("/addin/taskpane.html").get_data(as_text=True)
    entry = re.search(r'src="(/addin/static/taskpane\.[0-9a-f]{12}\.js)"', html)
    assert entry
    body = client.get(entry.group(1)).get_data(as_text=True)
    imports = re.findall(r'from "\./([^"]+)"', body)
    assert imports
    for name in imports:
        assert re.fullmatch(r"[\w-]+\.[0-9a-f]{12}\.js", name), name
        assert client.get(f"/addin/static/{name}").status_code == 200


def test_a_stale_or_unknown_hash_is_not_found(client: FlaskClient) -> None:
    assert client.get("/addin/static/taskpane.000000000000.js").status_code == 404
    assert client.get("/addin/static/taskpane.js").status_code == 404
    assert client.get("/addin/static/nothing.0123456789ab.css").status_code == 404


def test_launchevent_is_one_script_with_the_absolute_api_url(
    client: FlaskClient, settings: bootstrap.Settings
) -> None:
    response = client.get("/addin/launchevent.js")
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "no-cache"
    body = response.get_data(as_text=True)
    assert f'var BASE_URL = "{settings.public_base_url}";' in body
    assert not re.search(r"^\s*(import|export)\b", body, re.MULTILINE)


def test_allowed_json_lists_the_event_script(
    client: FlaskClient, settings: bootstrap.Settings
) -> None:
    response = client.get("/.well-known/microsoft-officeaddins-allowed.json")
    assert response.status_code == 200
    expected = f"{settings.public_base_url}/addin/launchevent.js"
    assert response.get_json() == {"allowed": [expected]}


@pytest.mark.parametrize("size", [16, 32, 64, 80, 128])
def test_icons_are_pngs_of_their_size(client: FlaskClient, size: int) -> None:
    response = client.get(f"/addin/assets/icon-{size}.png")
    assert response.status_code == 200
    assert response.mimetype == "image/png"
    body = response.get_data()
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", body[16:24]) == (size, size)


def test_config_names_the_client_and_the_api_scope(settings: bootstrap.Settings) -> None:
    configured = replace(
        settings,
        ms_client_id="0000-client",
        ms_api_audience="api://crm.test/0000-client",
        ms_tenant_id="11111111-2222-3333-4444-555555555555",
    )
    app = wsgi.create_app(configured)
    try:
        body = app.test_client().get("/addin/config.json").get_json()
    finally:
        app.extensions["container"].close()
    assert body == {
        "clientId": "0000-client",
        "apiScope": "api://crm.test/0000-client/access_as_user",
        "authority": "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555",
    }


def test_the_tag_keys_agree_with_the_graph_reader() -> None:
    """The pane writes each TAG_* key as its own custom property; Graph reads the cecp JSON."""
    pane = Path(web.PANE_DIR, "tags.js").read_text(encoding="utf-8")
    launch = Path(web.PANE_DIR.parents[1], "launchevent.js").read_text(encoding="utf-8")
    for constant in ("TAG_COMPANY", "TAG_CONTACTS", "TAG_KIND", "TAG_ACTIVITY"):
        assert f'export const {constant} = "{getattr(events, constant)}";' in pane
    for constant in ("TAG_COMPANY", "TAG_ACTIVITY"):
        assert f'var {constant} = "{getattr(events, constant)}";' in launch
    # What Office stores for the four properties is read back as the tag.
    stored = '{"crmCompanyId":"12","crmContactIds":"3,4","crmKind":"visit","crmActivityId":"77"}'
    hint = events.parse_tag_hint(stored)
    assert hint is not None
    assert (hint.company_id, hint.contact_ids, hint.kind, hint.activity_id) == (
        12,
        (3, 4),
        "visit",
        77,
    )
