"""Sign-in: from a verified provider identity to the CRM organization and user it acts as.

Provider-neutral: the web layer verifies the token (Entra access token, Google ID token) and
hands over who it names; this module decides which organization that is (the allow-list of
connected tenants / Workspace domains) and which CRM user, creating the user at first sign-in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute

from services.auth import Principal, PrincipalKind
from services.errors import Forbidden
from services.tables import Organization, User
from services.text import is_valid_email, normalize_domain, normalize_email
from services.unit_of_work import UnitOfWork

UowFactory = Callable[..., UnitOfWork]


@dataclass(frozen=True, slots=True)
class _Columns:
    tenant: InstrumentedAttribute[str | None]  # on Organization
    subject: InstrumentedAttribute[str | None]  # on User
    provider: str  # for messages


# The tenant key of an organization and the stable per-user id, for each identity provider.
_COLUMNS: dict[PrincipalKind, _Columns] = {
    PrincipalKind.ENTRA: _Columns(
        Organization.ms_tenant_id, User.entra_object_id, "Microsoft 365 tenant"
    ),
    PrincipalKind.GOOGLE: _Columns(
        Organization.google_domain, User.google_subject, "Google Workspace domain"
    ),
}


@dataclass(frozen=True, slots=True)
class VerifiedIdentity:
    """Who a verified token names.

    ``tenant``: the Entra tenant id or the Google Workspace domain. ``subject``: the identity's
    stable id in that tenant (Entra ``oid``, Google ``sub``). ``email`` and ``name`` are as the
    provider reports them; they are used to find a CRM user created before their first sign-in
    and to create one, never to tell users apart.
    """

    kind: PrincipalKind
    tenant: str
    subject: str
    email: str
    name: str = ""


class NotConnected(Forbidden):
    """The identity's tenant / domain is not connected to any organization."""


def _columns(kind: PrincipalKind) -> _Columns:
    try:
        return _COLUMNS[kind]
    except KeyError:
        raise ValueError(f"{kind} is not an identity provider") from None


def organization_for(uow: UnitOfWork, kind: PrincipalKind, tenant: str) -> int | None:
    """The organization connected to this tenant / domain, or None (not on the allow-list).

    Tenant ids and domains are compared without regard to case (GUIDs are printed both ways).
    """
    column = _columns(kind).tenant
    return uow.session.scalar(
        select(Organization.id).where(func.lower(column) == _tenant_key(kind, tenant))
    )


def _tenant_key(kind: PrincipalKind, tenant: str) -> str:
    return normalize_domain(tenant) if kind is PrincipalKind.GOOGLE else tenant.strip().lower()


def sign_in(uow_factory: UowFactory, identity: VerifiedIdentity) -> Principal:
    """The principal a verified identity acts as; Forbidden when it may not use the CRM.

    The user is found by its provider id; else by e-mail (a user an administrator added before
    their first sign-in), which links the provider id to it; else it is created. Two first
    sign-ins racing each other meet a unique constraint: the loser reads the winner's row.

    Every task-pane request signs in, and after the first it only reads: a read-only unit of
    work, so that requests never queue for SQLite's write lock. Only a first sign-in writes.
    """
    with uow_factory(read_only=True) as uow:
        org_id, user = _find(uow, identity)
        if user is not None:
            return _principal(org_id, user, identity)
    try:
        return _sign_in_once(uow_factory, identity)
    except IntegrityError:
        return _sign_in_once(uow_factory, identity)


def _sign_in_once(uow_factory: UowFactory, identity: VerifiedIdentity) -> Principal:
    with uow_factory() as uow:
        org_id, user = _find(uow, identity)
        if user is None:
            user = _link_or_create(uow, org_id, identity, _columns(identity.kind))
        principal = _principal(org_id, user, identity)
        uow.commit()
    return principal


def _find(uow: UnitOfWork, identity: VerifiedIdentity) -> tuple[int, User | None]:
    """The identity's organization (NotConnected when none) and its user by provider id, in
    one query: every task-pane request asks."""
    columns = _columns(identity.kind)
    found = uow.session.execute(
        select(Organization.id, User)
        .outerjoin(User, (User.org_id == Organization.id) & (columns.subject == identity.subject))
        .where(func.lower(columns.tenant) == _tenant_key(identity.kind, identity.tenant))
    ).first()
    if found is None:
        raise NotConnected(
            f"this {columns.provider} is not connected to the CRM: an administrator must "
            "connect it first"
        )
    return found[0], found[1]


def _principal(org_id: int, user: User, identity: VerifiedIdentity) -> Principal:
    if not user.active:
        raise Forbidden(f"the CRM user {user.email} is deactivated")
    return Principal(
        org_id=org_id,
        user_id=user.id,
        kind=identity.kind,
        name=user.display_name or identity.name or user.email,
    )


def _link_or_create(
    uow: UnitOfWork, org_id: int, identity: VerifiedIdentity, columns: _Columns
) -> User:
    email = normalize_email(identity.email)
    if not is_valid_email(email):
        raise Forbidden(
            "the account has no e-mail address the CRM can use to find or create its user"
        )
    user = uow.session.scalar(select(User).where(User.org_id == org_id, User.email == email))
    values: dict[str, Any] = {columns.subject.key: identity.subject}
    if user is None:
        user = User(org_id=org_id, email=email, display_name=identity.name.strip()[:200], **values)
        uow.session.add(user)
    elif (linked := getattr(user, columns.subject.key)) is not None:
        if linked == identity.subject:
            # A racing first sign-in of the same account committed between our two reads.
            return user
        # The address now belongs to someone else than the account that first signed in with it.
        raise Forbidden(f"the CRM user {email} is linked to another account")
    else:
        setattr(user, columns.subject.key, identity.subject)
        if not user.display_name and identity.name.strip():
            user.display_name = identity.name.strip()[:200]
    uow.flush()
    return user
