"""Shared fixtures: settings, a migrated database, the container, the app and an API client.

The backend comes from the environment that `make test` sets for each pass:
- no TEST_DATABASE_URL: SQLite files under pytest's tmp dir, Huey on SQLite;
- TEST_DATABASE_URL=postgresql+psycopg://.../postgres and TEST_REDIS_URL=redis://...: a fresh
  database per xdist worker on that server, Huey on Redis (a database number per worker).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

import bootstrap
import wsgi
from services import auth, organizations
from services.db import Base
from services.unit_of_work import UnitOfWorkFactory
from tests.databases import create_postgres_database, migrate

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
ON_POSTGRES = bool(TEST_DATABASE_URL)


def _worker_index(worker_id: str) -> int:
    return int(worker_id.removeprefix("gw")) if worker_id.startswith("gw") else 0


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> str:
    """A database migrated to head once per test process."""
    if TEST_DATABASE_URL:
        url = create_postgres_database(TEST_DATABASE_URL, f"crm_test_{worker_id}")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'crm.db'}"
    migrate(url)
    return url


@pytest.fixture(scope="session")
def redis_url(worker_id: str) -> str | None:
    if not TEST_REDIS_URL:
        return None
    # One Redis database number per xdist worker keeps their queues apart.
    return f"{TEST_REDIS_URL.rstrip('/')}/{_worker_index(worker_id) % 16}"


@pytest.fixture
def settings(database_url: str, redis_url: str | None, tmp_path: Path) -> bootstrap.Settings:
    return bootstrap.Settings(
        database_url=database_url,
        redis_url=redis_url,
        instance_path=tmp_path / "instance",
        secret_key="test-secret-key",
        environment="test",
        public_base_url="https://crm.test",
    )


def _empty_all_tables(container: bootstrap.Container) -> None:
    with container.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                connection.execute(table.delete())


@pytest.fixture
def container(settings: bootstrap.Settings) -> Iterator[bootstrap.Container]:
    built = bootstrap.build(settings)
    built.queue.flush()
    yield built
    built.queue.flush()
    _empty_all_tables(built)
    built.close()


@pytest.fixture
def uow_factory(container: bootstrap.Container) -> UnitOfWorkFactory:
    return container.uow


@pytest.fixture
def app(settings: bootstrap.Settings, container: bootstrap.Container) -> Flask:
    application = wsgi.create_app(settings)
    # Share the test's container so the test and the app see the same engine and queue.
    application.extensions["container"].close()
    application.extensions["container"] = container
    return application


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass(frozen=True)
class Tenant:
    """An organization with one user and an API key acting as that user."""

    org_id: int
    user_id: int
    user_email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_tenant(
    uow_factory: UnitOfWorkFactory, name: str, domain: str, *, user: str = "linda"
) -> Tenant:
    with uow_factory() as uow:
        org = organizations.create_organization(uow, name=name, own_domains=[domain])
        person = organizations.add_user(uow, org_id=org.id, email=f"{user}@{domain}")
        issued = auth.create_api_key(uow, org_id=org.id, name="tests", user_email=person.email)
        uow.commit()
    return Tenant(org.id, person.id, person.email, issued.token)


@pytest.fixture
def tenant(uow_factory: UnitOfWorkFactory) -> Tenant:
    return make_tenant(uow_factory, "Northwind", "northwind.example")


@pytest.fixture
def other_tenant(uow_factory: UnitOfWorkFactory) -> Tenant:
    return make_tenant(uow_factory, "Globex", "globex.example", user="hank")


def table_counts(uow_factory: UnitOfWorkFactory) -> dict[str, int]:
    """Row count of every table: tests compare it before and after a refused request."""
    with uow_factory() as uow:
        return {
            table.name: uow.session.execute(
                text(f'SELECT COUNT(*) FROM "{table.name}"')  # noqa: S608 - our table names
            ).scalar_one()
            for table in Base.metadata.sorted_tables
        }


def with_settings(settings: bootstrap.Settings, **changes: Any) -> bootstrap.Settings:
    return replace(settings, **changes)
