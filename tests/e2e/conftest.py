"""End-to-end harness: the app over real HTTP, the Graph and Entra stand-ins, the real queue.

The app runs in a threaded werkzeug server (Graph's validation handshake calls it while the
product waits for `POST /subscriptions`). `PUBLIC_BASE_URL` is https://crm.test, which the Graph
stand-in maps to the loopback server. Jobs go through the real Huey queue (SQLite or Redis);
`world.drain()` runs them in the test thread until the queue is empty, which makes tests
deterministic. The worker-restart test runs a real `flask worker` process instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

import bootstrap
import wsgi
from tests.conftest import Tenant, make_tenant
from tests.standins import BackgroundServer, MicrosoftStandIns, microsoft_standins
from tests.standins.graph import GraphUser

CLIENT_ID = "6c1f4a7e-2b9d-4e8a-9f3c-5d7e8a9b0c1d"
SECRET = "graph-app-secret-for-tests"
ADDIN_ID = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"
PUBLIC_BASE_URL = "https://crm.test"
DOMAIN = "contoso.example"


@dataclass
class World:
    """Everything one end-to-end test touches."""

    ms: MicrosoftStandIns
    container: bootstrap.Container
    server: BackgroundServer
    tenant: Tenant
    app: Flask
    users: dict[str, GraphUser] = field(default_factory=dict)

    @property
    def graph(self) -> Any:
        return self.ms.graph

    def add_user(self, local: str) -> GraphUser:
        user = self.graph.add_user(f"{local}@{DOMAIN}")
        self.users[local] = user
        return user

    # --- the product, as an admin and a user see it

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.server.base_url}/api/v1{path}",
            headers=self.tenant.headers,
            timeout=30,
            **kwargs,
        )

    def connect(self) -> None:
        """The admin connects the tenant; the worker lists mailboxes and subscribes them."""
        answer = self.api("POST", "/admin/microsoft/connect", json={})
        assert answer.status_code == 202, answer.text
        self.drain()

    def activities(self, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 200)
        answer = self.api("GET", "/activities", params=params)
        assert answer.status_code == 200, answer.text
        return list(answer.json()["items"])

    def activity_for(self, ical_uid: str) -> dict[str, Any]:
        # Exception rows of a series share the master's iCalUID; this is the meeting itself.
        found = [
            a
            for a in self.activities()
            if a.get("ical_uid") == ical_uid and a.get("series_id") is None
        ]
        assert len(found) == 1, f"{len(found)} activities for {ical_uid}"
        return found[0]

    def health(self) -> dict[str, dict[str, Any]]:
        answer = self.api("GET", "/admin/mailboxes")
        assert answer.status_code == 200, answer.text
        return {row["address"]: row for row in answer.json()["items"]}

    # --- the worker

    def drain(self, *, max_tasks: int = 20_000) -> int:
        """Run queued jobs (and the ones they queue) until none is left; returns how many ran.

        Jobs a RetryTask put on the schedule for later stay there: tests look at them.
        """
        queue = self.container.queue
        ran = 0
        while ran < max_tasks:
            task = queue.dequeue()
            if task is None:
                return ran
            queue.execute(task)
            ran += 1
        raise AssertionError(f"the queue did not drain after {max_tasks} jobs")

    def notify(self, **options: Any) -> list[Any]:
        """Graph announces what changed; the worker syncs."""
        deliveries = self.graph.flush_notifications(**options)
        assert all(d.status == 202 for d in deliveries), [(d.status, d.error) for d in deliveries]
        self.drain()
        return deliveries

    def sweep(self) -> None:
        self.container.tasks["sweep_notifications"].call_local(stale_seconds=0)
        self.drain()

    def reconcile_all(self) -> None:
        self.container.tasks["reconcile_all"].call_local()
        self.drain()


@pytest.fixture
def world(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    settings: bootstrap.Settings,
    container: bootstrap.Container,
) -> Iterator[World]:
    with microsoft_standins(tmp_path) as ms:
        ms.entra.register_app(CLIENT_ID, SECRET)
        for name, value in ms.environment().items():
            monkeypatch.setenv(name, value)
        graph_settings = replace(
            settings,
            ms_tenant_id=ms.entra.tenant_id,
            ms_client_id=CLIENT_ID,
            ms_client_secret=SECRET,
            ms_authority_host=ms.entra.base_url,
            graph_base_url=ms.graph.root_url,
            addin_id=ADDIN_ID,
            public_base_url=PUBLIC_BASE_URL,
        )
        # The tasks read the container's settings when they run, so swapping them is enough.
        container.settings = graph_settings
        app = wsgi.create_app(graph_settings)
        app.extensions["container"].close()
        app.extensions["container"] = container
        tenant = make_tenant(container.uow, "Contoso", DOMAIN, user="admin")
        with BackgroundServer(app) as server:
            ms.graph.route(PUBLIC_BASE_URL, server.base_url)
            yield World(ms=ms, container=container, server=server, tenant=tenant, app=app)


def wait_until(condition: Any, *, timeout: float = 30.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out: {message}")


def start_worker(world: World) -> subprocess.Popen[bytes]:
    """A real `flask --app wsgi worker` process on the test's database and queue."""
    settings = world.container.settings
    env = {
        **os.environ,  # the stand-ins' CA bundle
        "DATABASE_URL": settings.database_url,
        "INSTANCE_PATH": str(settings.instance_path),
        "SECRET_KEY": settings.secret_key,
        "PUBLIC_BASE_URL": settings.public_base_url,
        "MS_TENANT_ID": settings.ms_tenant_id or "",
        "MS_CLIENT_ID": settings.ms_client_id or "",
        "MS_CLIENT_SECRET": settings.ms_client_secret or "",
        "MS_AUTHORITY_HOST": settings.ms_authority_host,
        "GRAPH_BASE_URL": settings.graph_base_url,
        "ADDIN_ID": settings.addin_id or "",
        "LOG_LEVEL": "WARNING",
    }
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--workers", "2"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------- Google

GOOGLE_ADMIN = f"admin@{DOMAIN}"
PUBSUB_TOPIC = "projects/crm-project/topics/gmail-push"
PUBSUB_AUDIENCE = f"{PUBLIC_BASE_URL}/webhooks/google/pubsub"
PUBSUB_ACCOUNT = "gmail-push@crm-project.iam.gserviceaccount.com"
ADDON_SCOPES = [
    "https://www.googleapis.com/auth/calendar.addons.current.event.read",
    "https://www.googleapis.com/auth/calendar.addons.execute",
    "https://www.googleapis.com/auth/gmail.addons.current.message.readonly",
    "https://www.googleapis.com/auth/gmail.addons.execute",
    "https://www.googleapis.com/auth/script.locale",
    "https://www.googleapis.com/auth/userinfo.email",
]


@dataclass
class GoogleWorld:
    """The Microsoft world plus the Google stand-ins: one organization, both providers."""

    world: World
    standins: Any  # tests.standins.GoogleStandIns
    identity: Any  # tests.standins.google_identity.GoogleIdentity

    @property
    def google(self) -> Any:
        return self.standins.google

    def add_user(self, local: str, name: str = "") -> str:
        address = f"{local}@{DOMAIN}"
        self.google.add_user(address, name or local.title(), time_zone="Europe/Oslo")
        return address

    def connect(self) -> None:
        """The admin connects the Workspace domain; the worker watches every user."""
        answer = self.world.api("POST", "/admin/google/connect", json={"domain": DOMAIN})
        assert answer.status_code == 202, answer.text
        self.world.drain()

    def notify(self) -> list[int | None]:
        """Google announces what changed (header-only POSTs); the worker syncs."""
        statuses = self.google.flush_notifications()
        assert all(status == 200 for status in statuses), statuses
        self.world.drain()
        return statuses

    def push_mail(self, user: str, *, token: str | None = None) -> int | None:
        """Pub/Sub pushes Gmail's news for `user` with an OIDC token (a valid one by default)."""
        if token is None:
            token = self.identity.mint_id_token(PUBSUB_AUDIENCE, PUBSUB_ACCOUNT)
        status: int | None = self.google.pubsub_push(
            user, f"{self.world.server.base_url}/webhooks/google/pubsub", token
        )
        self.world.drain()
        return status

    # --- the add-on, called as Google calls it

    def addon(self, path: str, user: str, **event: Any) -> requests.Response:
        from tests.standins.google_identity import ADDON_CLIENT_ID, ADDON_SERVICE_ACCOUNT

        url = f"{PUBLIC_BASE_URL}/addon/google/{path}"
        system = self.identity.mint_id_token(url, ADDON_SERVICE_ACCOUNT)
        user_token = self.identity.mint_id_token(ADDON_CLIENT_ID, user, hd=DOMAIN)
        common: dict[str, Any] = {"hostApp": event.pop("host", "CALENDAR"), "platform": "WEB"}
        if "parameters" in event:
            common["parameters"] = event.pop("parameters")
        if "inputs" in event:
            common["formInputs"] = {
                key: {"stringInputs": {"value": value}}
                for key, value in event.pop("inputs").items()
            }
        body = {
            "commonEventObject": common,
            "authorizationEventObject": {
                "userIdToken": user_token,
                "authorizedScopes": ADDON_SCOPES,
            },
            **event,
        }
        return requests.post(
            f"{self.world.server.base_url}/addon/google/{path}",
            json=body,
            headers={"Authorization": f"Bearer {system}"},
            timeout=30,
        )


@pytest.fixture
def gworld(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GoogleWorld]:
    from gmail.client import SCOPES
    from tests.standins import google_standins
    from tests.standins.google_identity import (
        ADDON_CLIENT_ID,
        ADDON_SERVICE_ACCOUNT,
        GoogleIdentity,
    )

    directory = tmp_path / "google"
    directory.mkdir()
    with (
        google_standins(directory, ca=world.ms.ca) as standins,
        GoogleIdentity(world.ms.ca) as identity,
    ):
        google = standins.google
        key = google.write_service_account_file(directory / "service-account.json")
        google.grant_delegation(key["client_id"], SCOPES)
        google.add_user(GOOGLE_ADMIN, "Admin", time_zone="Europe/Oslo")
        google.set_admin(GOOGLE_ADMIN)
        environment = standins.environment()
        for name in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"):
            monkeypatch.setenv(name, environment[name])
        world.container.settings = replace(
            world.container.settings,
            google_service_account_file=directory / "service-account.json",
            google_calendar_base_url=environment["GOOGLE_CALENDAR_BASE_URL"],
            google_gmail_base_url=environment["GOOGLE_GMAIL_BASE_URL"],
            google_directory_base_url=environment["GOOGLE_DIRECTORY_BASE_URL"],
            google_admin_email=GOOGLE_ADMIN,
            google_certs_url=identity.certs_url,
            google_addon_service_account=ADDON_SERVICE_ACCOUNT,
            google_addon_client_id=ADDON_CLIENT_ID,
            google_pubsub_topic=PUBSUB_TOPIC,
            google_pubsub_audience=PUBSUB_AUDIENCE,
            google_pubsub_service_account=PUBSUB_ACCOUNT,
        )
        google.route(PUBLIC_BASE_URL, world.server.base_url)
        yield GoogleWorld(world=world, standins=standins, identity=identity)
