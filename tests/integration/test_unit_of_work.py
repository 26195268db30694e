"""Units of work: a read-only one never leaves a write behind, on either backend."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import DBAPIError

import bootstrap
from services import organizations
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
