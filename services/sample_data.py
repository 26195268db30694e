"""A small, believable sample organization for `make run` and demos. Loading it twice is a no-op."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from services import activities, auth, companies, contacts, organizations
from services.auth import Principal, PrincipalKind
from services.unit_of_work import UnitOfWork

ORG_NAME = "Northwind Traders (sample)"
ZONE = "Europe/Oslo"


@dataclass(frozen=True, slots=True)
class SampleResult:
    summary: str
    api_key: str | None = None
    api_key_user: str | None = None


def _next_weekday(today: dt.date, weekday: int) -> dt.date:
    return today + dt.timedelta(days=(weekday - today.weekday()) % 7 or 7)


def load(uow: UnitOfWork, *, today: dt.date | None = None) -> SampleResult:
    if organizations.find_organization_by_name(uow, ORG_NAME) is not None:
        return SampleResult(summary=f"sample organization {ORG_NAME!r} already loaded")
    today = today or dt.datetime.now(ZoneInfo(ZONE)).date()
    zone = ZoneInfo(ZONE)

    org = organizations.create_organization(uow, name=ORG_NAME, own_domains=["northwind.example"])
    linda = organizations.add_user(
        uow, org_id=org.id, email="linda@northwind.example", display_name="Linda Berg"
    )
    organizations.add_user(
        uow, org_id=org.id, email="julie@northwind.example", display_name="Julie Haugen"
    )
    organizations.add_user(
        uow, org_id=org.id, email="john@northwind.example", display_name="John Dahl"
    )

    contoso = companies.create_company(
        uow, org.id, name="Contoso Ltd", domains=["contoso.com"], city="Oslo", country="Norway"
    )
    fabrikam = companies.create_company(
        uow, org.id, name="Fabrikam Inc.", domains=["fabrikam.com"], city="Bergen"
    )
    companies.create_company(uow, org.id, name="Café Ærø Bryggeri", domains=["aero-bryggeri.no"])
    companies.create_company(uow, org.id, name="Adventure Works", domains=["adventure-works.com"])
    companies.create_company(uow, org.id, name="Wide World Importers", domains=["wwimporters.com"])

    anna = contacts.create_contact(
        uow,
        org.id,
        {"first_name": "Anna", "last_name": "Kowalski", "title": "Purchasing manager",
         "emails": ["anna@contoso.com"], "company_id": contoso.id},
    )  # fmt: skip
    contacts.create_contact(
        uow,
        org.id,
        {"first_name": "Per", "last_name": "Olsen", "emails": ["per@fabrikam.com"],
         "company_id": fabrikam.id},
    )  # fmt: skip

    as_linda = Principal(org_id=org.id, user_id=linda.id, kind=PrincipalKind.API_KEY, name="sample")

    def at(day: dt.date, hour: int, minutes: int = 0) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(hour, minutes), zone)

    monday = _next_weekday(today, 0)
    activities.create_activity(
        uow,
        as_linda,
        {
            "kind": "meeting",
            "subject": "Contoso: annual contract review",
            "start": at(today + dt.timedelta(days=2), 10),
            "end": at(today + dt.timedelta(days=2), 11),
            "time_zone": ZONE,
            "company_id": contoso.id,
            "contact_ids": [anna.id],
            "participants": [
                {"email": "linda@northwind.example", "role": "organizer", "response": "organizer"},
                {"email": "julie@northwind.example", "response": "accepted"},
                {"email": "anna@contoso.com", "name": "Anna Kowalski", "response": "tentative"},
                {"email": "newbuyer@contoso.com", "name": "New Buyer"},
            ],
        },
    )
    activities.create_activity(
        uow,
        as_linda,
        {
            "kind": "meeting",
            "subject": "Weekly pipeline review",
            "start": at(monday, 9),
            "end": at(monday, 9, 30),
            "time_zone": ZONE,
            "recurrence": {"rule": "FREQ=WEEKLY;BYDAY=MO"},
            "participants": [
                {"email": "linda@northwind.example", "role": "organizer", "response": "organizer"},
                {"email": "julie@northwind.example", "response": "accepted"},
                {"email": "john@northwind.example", "response": "tentative"},
            ],
        },
    )
    activities.create_activity(
        uow,
        as_linda,
        {
            "kind": "meeting",
            "subject": "Doctor",
            "start": at(today + dt.timedelta(days=1), 14),
            "end": at(today + dt.timedelta(days=1), 15),
            "time_zone": ZONE,
            "visibility": "private",
        },
    )
    activities.create_activity(
        uow,
        as_linda,
        {
            "kind": "task",
            "subject": "Send Fabrikam the revised offer",
            "due_date": today + dt.timedelta(days=3),
            "priority": "high",
            "company_id": fabrikam.id,
        },
    )
    issued = auth.create_api_key(
        uow, org_id=org.id, name="sample data", user_email="linda@northwind.example"
    )
    return SampleResult(
        summary=(
            f"loaded sample organization {org.id} {ORG_NAME!r}: 3 users, 5 companies, "
            "2 contacts, 4 activities (one weekly series with no end)"
        ),
        api_key=issued.token,
        api_key_user=linda.email,
    )
