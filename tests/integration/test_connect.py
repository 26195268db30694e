"""services.mailboxes.connect_tenant / connect_domain: one organization per tenant or domain."""

from __future__ import annotations

import uuid

import pytest

from services import mailboxes, organizations
from services.errors import Conflict, NotFound
from services.tables import Organization
from services.unit_of_work import UnitOfWorkFactory


def _organization(uow_factory: UnitOfWorkFactory, name: str) -> int:
    with uow_factory() as uow:
        org = organizations.create_organization(uow, name=name, own_domains=[])
        uow.commit()
        return org.id


def _keys(uow_factory: UnitOfWorkFactory, org_id: int) -> tuple[str | None, str | None]:
    with uow_factory(read_only=True) as uow:
        org = uow.session.get(Organization, org_id)
        assert org is not None
        return org.ms_tenant_id, org.google_domain


def test_a_tenant_connects_to_one_organization_only(uow_factory: UnitOfWorkFactory) -> None:
    first, second = _organization(uow_factory, "First"), _organization(uow_factory, "Second")
    tenant = str(uuid.uuid4())
    mailboxes.connect_tenant(uow_factory, org_id=first, tenant_id=tenant)
    mailboxes.connect_tenant(uow_factory, org_id=first, tenant_id=tenant)  # again: no change

    with pytest.raises(Conflict, match=f"tenant {tenant} is already connected to organization"):
        mailboxes.connect_tenant(uow_factory, org_id=second, tenant_id=tenant)
    with pytest.raises(NotFound):
        mailboxes.connect_tenant(uow_factory, org_id=second + 1000, tenant_id=str(uuid.uuid4()))

    assert _keys(uow_factory, first) == (tenant, None)
    assert _keys(uow_factory, second) == (None, None)
    assert mailboxes.organization_for_tenant(uow_factory, tenant) == first


def test_a_domain_connects_to_one_organization_only(uow_factory: UnitOfWorkFactory) -> None:
    first, second = _organization(uow_factory, "First"), _organization(uow_factory, "Second")
    domain = f"{uuid.uuid4().hex[:12]}.example"
    mailboxes.connect_domain(uow_factory, org_id=first, domain=f" {domain.upper()} ")

    with pytest.raises(Conflict, match=f"domain {domain} is already connected to organization"):
        mailboxes.connect_domain(uow_factory, org_id=second, domain=domain)
    with pytest.raises(Conflict, match="is not a domain name"):
        mailboxes.connect_domain(uow_factory, org_id=second, domain="user@example.com")

    assert _keys(uow_factory, first) == (None, domain)
    assert _keys(uow_factory, second) == (None, None)
    assert mailboxes.organization_for_domain(uow_factory, domain.upper()) == first
