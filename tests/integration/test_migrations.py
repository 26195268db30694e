"""Migrations build the schema from empty, match the models, and go down and up again."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import wsgi
from services.db import Base, include_in_autogenerate, make_engine
from tests.conftest import TEST_DATABASE_URL
from tests.databases import create_postgres_database


@pytest.fixture
def empty_database_url(tmp_path: Path, worker_id: str) -> str:
    if TEST_DATABASE_URL:
        return create_postgres_database(TEST_DATABASE_URL, f"crm_migrations_{worker_id}")
    return f"sqlite:///{tmp_path / 'empty.db'}"


def test_up_from_empty_matches_the_models(empty_database_url: str) -> None:
    command.upgrade(wsgi.alembic_config(empty_database_url), "head")
    engine = create_engine(empty_database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": include_in_autogenerate}
        )
        differences = compare_metadata(context, Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert differences == []
    assert {t.name for t in Base.metadata.sorted_tables} <= tables


def test_down_to_base_and_up_again(empty_database_url: str) -> None:
    config = wsgi.alembic_config(empty_database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = create_engine(empty_database_url)
    with engine.connect() as connection:
        left = set(inspect(connection).get_table_names()) - {"alembic_version"}
    assert left == set()
    command.upgrade(config, "head")
    with engine.connect() as connection:
        assert {t.name for t in Base.metadata.sorted_tables} <= set(
            inspect(connection).get_table_names()
        )
    engine.dispose()


def test_the_embedded_database_runs_sqlite_in_wal_mode(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
