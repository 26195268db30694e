"""Playwright fixtures: headless Debian Chromium against the app on a real local HTTP server.

The Outlook host is a stub (office_stub.js) injected before any page script; the real Office.js
on Microsoft's CDN is answered with an empty script, and every other address off this machine
is refused, so the tests run offline and see only what the pane itself does.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

import bootstrap
from tests.conftest import Tenant
from tests.standins.server import BackgroundServer

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
STUB = Path(__file__).with_name("office_stub.js").read_text(encoding="utf-8")
OFFICE_JS_HOST = "https://appsforoffice.microsoft.com/"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "browser"  # gitignored


class _Dispatcher:
    """The server starts before the app exists: the app's settings need the server's URL.

    For the same reason the server outlives the app's container: once a test is over,
    requests are refused rather than handed to an app whose engine is closed.
    """

    def __init__(self) -> None:
        self.app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        app = self.app
        if app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"the test is over"]
        return app(environ, start_response)


@pytest.fixture
def server() -> Iterator[tuple[BackgroundServer, _Dispatcher]]:
    dispatcher = _Dispatcher()
    with BackgroundServer(dispatcher) as running:
        yield running, dispatcher


@pytest.fixture
def settings(
    settings: bootstrap.Settings, server: tuple[BackgroundServer, _Dispatcher]
) -> bootstrap.Settings:
    # The event runtime fetches the API by absolute URL: public_base_url is where it is served.
    return replace(settings, public_base_url=server[0].base_url)


@pytest.fixture
def base_url(app: Flask, server: tuple[BackgroundServer, _Dispatcher]) -> Iterator[str]:
    running, dispatcher = server
    dispatcher.app = app
    yield running.base_url
    dispatcher.app = None
    running.wait_idle()  # before the container closes its engine


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (tests/system-packages.sh installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Pane:
    """A page plus what the tests check on it: console errors and the stub's records."""

    def __init__(self, page: Any, base_url: str, name: str) -> None:
        self.page = page
        self.base_url = base_url
        self.name = name
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, path: str) -> Any:
        return self.page.goto(self.base_url + path, wait_until="load")

    def office(self) -> dict[str, Any]:
        return self.page.evaluate("() => JSON.parse(JSON.stringify(window.__office))")  # type: ignore[no-any-return]

    def calls(self, name: str) -> list[list[Any]]:
        return [c["args"] for c in self.office()["calls"] if c["name"] == name]

    def screenshot(self, state: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{self.name}-{state}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def make_pane(
    browser: Any, base_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Pane]]:
    contexts: list[Any] = []
    panes: list[Pane] = []

    def make(config: dict[str, Any] | None = None, *, host: bool = True) -> Pane:
        context = browser.new_context(viewport={"width": 360, "height": 760}, locale="en-GB")
        contexts.append(context)

        def route(route: Any) -> None:
            url = route.request.url
            if url.startswith(base_url):
                route.continue_()
            elif url.startswith(OFFICE_JS_HOST):
                route.fulfill(status=200, content_type="text/javascript", body="")
            else:  # nothing leaves this machine
                route.abort()

        context.route("**/*", route)
        context.add_init_script(f"window.__OFFICE_CONFIG__ = {json.dumps(config or {})};")
        if host:  # without it, the page is as in a plain browser with office.js unreachable
            context.add_init_script(STUB)
        page = context.new_page()
        page.set_default_timeout(10_000)
        pane = Pane(page, base_url, re.sub(r"[^\w.-]+", "-", request.node.name).strip("-"))
        panes.append(pane)
        return pane

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def api(client: FlaskClient, tenant: Tenant) -> Callable[..., Any]:
    """Calls the JSON API as the tenant's user; returns the decoded body, checks the status."""

    def call(method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        response = client.open(f"/api/v1{path}", method=method, json=body, headers=tenant.headers)
        expected = status or (201 if method == "POST" else 200)
        assert response.status_code == expected, response.get_data(as_text=True)
        return response.get_json()

    return call
