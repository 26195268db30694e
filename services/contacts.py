"""Contacts: people at customers, found again by any of their e-mail addresses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from services.companies import get_company
from services.errors import Conflict, InvalidInput, NotFound
from services.tables import Contact, ContactEmail
from services.text import fold, is_valid_email, normalize_email
from services.unit_of_work import UnitOfWork

EDITABLE_FIELDS = ("first_name", "last_name", "title", "phone", "company_id")


def full_name(contact: Contact) -> str:
    return " ".join(part for part in (contact.first_name, contact.last_name) if part)


def get_contact(uow: UnitOfWork, org_id: int, contact_id: int) -> Contact:
    contact = uow.session.get(Contact, contact_id)
    if contact is None or contact.org_id != org_id:
        raise NotFound(f"contact {contact_id} does not exist")
    return contact


def _clean_emails(emails: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for email in emails:
        email = normalize_email(email)
        if not is_valid_email(email):
            raise InvalidInput.field("emails", f"not a valid e-mail address: {email}")
        if email not in cleaned:
            cleaned.append(email)
    return cleaned


def _check_emails_free(
    uow: UnitOfWork, org_id: int, emails: list[str], contact_id: int | None
) -> None:
    if not emails:
        return
    taken = uow.session.execute(
        select(ContactEmail.email, ContactEmail.contact_id).where(
            ContactEmail.org_id == org_id, ContactEmail.email.in_(emails)
        )
    ).all()
    clashes = [f"{email} (contact {owner})" for email, owner in taken if owner != contact_id]
    if clashes:
        raise Conflict(
            f"e-mail address already belongs to another contact: {', '.join(clashes)}",
            errors={"emails": [f"already used by another contact: {', '.join(clashes)}"]},
        )


def _apply(uow: UnitOfWork, org_id: int, contact: Contact, changes: Mapping[str, Any]) -> None:
    for field, value in changes.items():
        if field == "emails":
            clean = _clean_emails(value)
            _check_emails_free(uow, org_id, clean, contact.id)
            current = {e.email: e for e in contact.emails}
            contact.emails = [current.get(e) or ContactEmail(org_id=org_id, email=e) for e in clean]
            for position, row in enumerate(contact.emails):
                row.position = position
        elif field == "company_id":
            if value is not None:
                try:
                    get_company(uow, org_id, value)
                except NotFound:  # another organization's company does not exist for us
                    raise InvalidInput.field("company_id", f"no company {value}") from None
            contact.company_id = value
        elif field in EDITABLE_FIELDS:
            setattr(contact, field, " ".join(str(value).split()))
        else:
            raise TypeError(f"unknown contact field: {field}")
    if not (contact.first_name or contact.last_name or contact.emails):
        raise InvalidInput(
            "a contact needs a name or an e-mail address",
            errors={"first_name": ["a contact needs a name or an e-mail address"]},
        )
    sort_name = fold(f"{contact.last_name} {contact.first_name}")
    if not sort_name and contact.emails:
        sort_name = contact.emails[0].email
    # Folding can lengthen a name (ß -> ss) and an address can be longer than the column.
    contact.sort_name = sort_name[: Contact.sort_name.type.length]


def create_contact(uow: UnitOfWork, org_id: int, fields: Mapping[str, Any]) -> Contact:
    contact = Contact(org_id=org_id)
    contact.emails = []
    _apply(uow, org_id, contact, {"first_name": "", "last_name": "", **fields})
    uow.session.add(contact)
    uow.flush()
    return contact


def update_contact(
    uow: UnitOfWork, org_id: int, contact_id: int, changes: Mapping[str, Any]
) -> Contact:
    contact = get_contact(uow, org_id, contact_id)
    _apply(uow, org_id, contact, changes)
    uow.flush()
    return contact


def delete_contact(uow: UnitOfWork, org_id: int, contact_id: int) -> None:
    uow.session.delete(get_contact(uow, org_id, contact_id))
    uow.flush()


def contacts_by_email(uow: UnitOfWork, org_id: int, emails: Iterable[str]) -> dict[str, Contact]:
    wanted = {normalize_email(e) for e in emails}
    if not wanted:
        return {}
    rows = uow.session.execute(
        select(ContactEmail.email, Contact)
        .join(Contact, Contact.id == ContactEmail.contact_id)
        .where(ContactEmail.org_id == org_id, ContactEmail.email.in_(wanted))
    ).all()
    return dict(rows)


def find_contact_by_email(uow: UnitOfWork, org_id: int, email: str) -> Contact:
    found = contacts_by_email(uow, org_id, [email]).get(normalize_email(email))
    if found is None:
        raise NotFound(f"no contact with e-mail {normalize_email(email)}")
    return found


def list_contacts(
    uow: UnitOfWork,
    org_id: int,
    *,
    company_id: int | None,
    query: str | None,
    after: tuple[str, int] | None,
    limit: int,
) -> list[Contact]:
    """Keyset-paginated by (sort_name, id), optionally one company's or matching a name prefix."""
    stmt = select(Contact).where(Contact.org_id == org_id)
    if company_id is not None:
        stmt = stmt.where(Contact.company_id == company_id)
    for word in fold(query or "").split():
        stmt = stmt.where(Contact.sort_name.like(f"{word}%") | Contact.sort_name.like(f"% {word}%"))
    if after is not None:
        sort_name, last_id = after
        stmt = stmt.where(
            (Contact.sort_name > sort_name)
            | ((Contact.sort_name == sort_name) & (Contact.id > last_id))
        )
    return list(uow.session.scalars(stmt.order_by(Contact.sort_name, Contact.id).limit(limit)))
