"""Suggestions from a meeting's attendees: known contacts first, then companies by domain.

Free-mail domains and the organization's own domains never suggest a company (scenario A2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select

from services.companies import companies_by_domain
from services.contacts import contacts_by_email
from services.errors import NotFound
from services.organizations import users_by_email
from services.tables import Company, Contact, Organization
from services.text import email_domain, is_free_mail, is_valid_email, normalize_email
from services.unit_of_work import UnitOfWork


@dataclass(slots=True)
class CompanySuggestion:
    company: Company
    # Why: attendees that are contacts of it, and attendees whose domain points to it.
    contact_emails: list[str] = field(default_factory=list)
    domain_emails: list[str] = field(default_factory=list)

    @property
    def score(self) -> tuple[int, int]:
        return (len(self.contact_emails), len(self.domain_emails))


@dataclass(slots=True)
class Suggestions:
    contacts: dict[str, Contact]  # attendee e-mail -> known contact
    companies: list[CompanySuggestion]
    internal: list[str]  # our own people (users or own domains)
    unknown: list[str]  # external attendees we know nothing about (candidates for new contacts)
    invalid: list[str]


def suggest(uow: UnitOfWork, org_id: int, emails: Iterable[str]) -> Suggestions:
    org = uow.session.get(Organization, org_id)
    if org is None:
        raise NotFound(f"organization {org_id} does not exist")
    own_domains = set(org.own_domains)
    attendees: list[str] = []
    invalid: list[str] = []
    for raw in emails:
        email = normalize_email(raw)
        if not is_valid_email(email):
            invalid.append(raw)
        elif email not in attendees:
            attendees.append(email)

    users = users_by_email(uow, org_id, attendees)
    internal = [e for e in attendees if e in users or email_domain(e) in own_domains]
    external = [e for e in attendees if e not in internal]
    contacts = contacts_by_email(uow, org_id, external)
    company_domains = {
        email_domain(e) for e in external if e not in contacts and not is_free_mail(email_domain(e))
    }
    by_domain = companies_by_domain(uow, org_id, company_domains)

    suggestions: dict[int, CompanySuggestion] = {}
    companies_of_contacts = {c.company_id for c in contacts.values() if c.company_id is not None}
    loaded = {c.id: c for c in by_domain.values()}
    missing = companies_of_contacts - loaded.keys()
    if missing:
        for company in uow.session.scalars(select(Company).where(Company.id.in_(missing))):
            loaded[company.id] = company
    for email in external:
        contact = contacts.get(email)
        if contact is not None and contact.company_id is not None:
            entry = suggestions.setdefault(
                contact.company_id, CompanySuggestion(loaded[contact.company_id])
            )
            entry.contact_emails.append(email)
        elif contact is None:
            by_email = by_domain.get(email_domain(email))
            if by_email is not None:
                entry = suggestions.setdefault(by_email.id, CompanySuggestion(by_email))
                entry.domain_emails.append(email)

    ranked = sorted(
        suggestions.values(), key=lambda s: (-s.score[0], -s.score[1], s.company.sort_name)
    )
    unknown = [e for e in external if e not in contacts]
    return Suggestions(
        contacts=contacts, companies=ranked, internal=internal, unknown=unknown, invalid=invalid
    )
