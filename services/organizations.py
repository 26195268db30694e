"""Organizations (tenants) and their users."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from services.errors import Conflict, InvalidInput
from services.tables import Organization, User
from services.text import is_valid_domain, is_valid_email, normalize_domain, normalize_email
from services.unit_of_work import UnitOfWork


def create_organization(
    uow: UnitOfWork,
    *,
    name: str,
    own_domains: Iterable[str] = (),
    ms_tenant_id: str | None = None,
    google_domain: str | None = None,
) -> Organization:
    domains = sorted({normalize_domain(d) for d in own_domains})
    bad = [d for d in domains if not is_valid_domain(d)]
    if bad:
        raise InvalidInput.field("own_domains", f"not a domain: {', '.join(bad)}")
    if not name.strip():
        raise InvalidInput.field("name", "must not be empty")
    org = Organization(
        name=name.strip(),
        own_domains=domains,
        ms_tenant_id=ms_tenant_id,
        google_domain=normalize_domain(google_domain) if google_domain else None,
    )
    uow.session.add(org)
    uow.flush()
    return org


def find_organization_by_name(uow: UnitOfWork, name: str) -> Organization | None:
    return uow.session.scalar(select(Organization).where(Organization.name == name))


def add_user(uow: UnitOfWork, *, org_id: int, email: str, display_name: str = "") -> User:
    email = normalize_email(email)
    if not is_valid_email(email):
        raise InvalidInput.field("email", "not a valid e-mail address")
    existing = uow.session.scalar(select(User).where(User.org_id == org_id, User.email == email))
    if existing is not None:
        raise Conflict(f"user {email} already exists", errors={"email": ["already exists"]})
    user = User(org_id=org_id, email=email, display_name=display_name.strip())
    uow.session.add(user)
    uow.flush()
    return user


def users_by_email(uow: UnitOfWork, org_id: int, emails: Iterable[str]) -> dict[str, User]:
    wanted = {normalize_email(e) for e in emails}
    if not wanted:
        return {}
    rows = uow.session.scalars(select(User).where(User.org_id == org_id, User.email.in_(wanted)))
    return {user.email: user for user in rows}


def list_users(uow: UnitOfWork, org_id: int) -> list[User]:
    return list(uow.session.scalars(select(User).where(User.org_id == org_id).order_by(User.email)))
