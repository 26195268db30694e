"""Units of work: a Session only when used; a read-only one never leaves a write behind, on
either backend."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

import bootstrap
from services import db, organizations
from services.tables import Organization
from services.unit_of_work import UnitOfWork


def _organization(container: bootstrap.Container) -> int:
    with container.uow() as uow:
        org = organizations.create_organization(uow, name="Readers", own_domains=[])
        uow.commit()
        return org.id


def _name(container: bootstrap.Container, org_id: int) -> str | None:
    with container.uow(read_only=True) as uow:
        return uow.session.scalar(select(Organization.name).where(Organization.id == org_id))


class _CountingFactory:
    """A sessionmaker stand-in that remembers the Sessions it made."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.kw = factory.kw
        self.made: list[Session] = []

    def __call__(self) -> Session:
        self.made.append(self.factory())
        return self.made[-1]


def test_a_unit_of_work_makes_its_session_when_first_used(
    container: bootstrap.Container,
) -> None:
    factory = _CountingFactory(container.uow.session_factory)
    unit = UnitOfWork(factory)  # type: ignore[arg-type]
    with unit as uow:
        assert uow.engine is container.engine
        assert not uow.in_transaction()
    assert factory.made == []  # entered and left without a query: no Session
    with unit as uow:
        uow.session.scalar(select(Organization.id).limit(1))
        assert uow.in_transaction()
        assert uow.session is factory.made[0]  # one Session for the whole unit
    assert len(factory.made) == 1
    with pytest.raises(RuntimeError, match="outside its `with` block"):
        _ = uow.session


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
