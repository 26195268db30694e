"""Units of work: a read-only one never leaves a write behind, on either backend."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

import bootstrap
from services import db, organizations
from services.tables import Organization


def _organization(container: bootstrap.Container) -> int:
    with container.uow() as uow:
        org = organizations.create_organization(uow, name="Readers", own_domains=[])
        uow.commit()
        return org.id


def _name(container: bootstrap.Container, org_id: int) -> str | None:
    with container.uow(read_only=True) as uow:
        return uow.session.scalar(select(Organization.name).where(Organization.id == org_id))


def test_a_read_only_unit_cannot_write(container: bootstrap.Container) -> None:
    org_id = _organization(container)
    rename = update(Organization).where(Organization.id == org_id).values(name="Writers")
    if container.read_engine is not None:
        # PostgreSQL: read-only units run in autocommit on an engine whose transactions are
        # read-only, so the server refuses the write rather than a rollback undoing it.
        with (
            container.uow(read_only=True) as uow,
            pytest.raises(DBAPIError, match="read-only transaction"),
        ):
            uow.session.execute(rename)
    else:
        with container.uow(read_only=True) as uow:
            uow.session.execute(rename)  # SQLite: the deferred transaction is rolled back
    assert _name(container, org_id) == "Readers"


def test_postgres_pings_a_pooled_connection_only_after_it_sat_idle(
    container: bootstrap.Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite connections are files, not sockets: nothing to ping")
    org_id = _organization(container)
    pings: list[object] = []
    dialect = container.engine.dialect
    real_ping = dialect.do_ping
    monkeypatch.setattr(dialect, "do_ping", lambda conn: pings.append(conn) or real_ping(conn))

    def backend_pid() -> int:
        with container.engine.connect() as connection:
            return int(connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    pid = backend_pid()
    assert backend_pid() == pid  # the same pooled connection, used a moment ago: no ping
    assert pings == []

    # Its server process goes away (a restart, a failover) while it sits in the pool.
    assert container.read_engine is not None  # another pool, so another connection
    with container.read_engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 5000)")  # waits for it
    monkeypatch.setattr(db, "PING_AFTER_IDLE", 0.0)  # every pooled connection counts as idle
    assert backend_pid() != pid  # pinged, found dead and replaced: the caller saw no error
    assert pings
    assert _name(container, org_id) == "Readers"
