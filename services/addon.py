"""The Google Workspace add-on's use cases: what the Calendar and Gmail side panels show and do.

Provider-neutral: the Google calendar is reached through the ports (`CalendarSource`,
`EventFinder`, `EventTagWriter`) and the user's mailbox is a `MailboxRef`; addin/google.py
verifies the request, calls one function here and turns the returned view into a card.

* `open_event` fetches the event from the calendar, applies it with the sync rules (so the panel
  never waits for the push notification: scenario A1) and returns an `EventView`;
* `event_for_ical_uid` does the same for the meeting an invitation e-mail is about;
* `meetings_needing_company` is the homepage list of the user's untagged meetings;
* `tag_event` / `tag_meeting` set company, contacts and kind (A2, A3), then write our activity id
  on the user's copy of the event; a failed write leaves the CRM tag saved and says so;
* `add_attendees_as_contacts` creates contacts (and companies from their domains) in one step
  (A4); `record_outcome` marks a past meeting held / not held with its outcome (D1).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from sqlalchemy import exists, or_, select

from services import sync
from services.activities import get_activity, update_activity
from services.auth import Principal
from services.companies import companies_by_domain, create_company, search_companies
from services.contacts import contacts_by_email, create_contact, full_name
from services.db import utcnow
from services.errors import Forbidden, InvalidInput, NotFound
from services.meetings import MeetingSnapshot, Removed
from services.ports import (
    CalendarSource,
    ChangeSignal,
    EventFinder,
    EventTagWriter,
    MailboxRef,
    ProviderError,
)
from services.suggest import CompanySuggestion, suggest
from services.tables import (
    Activity,
    ActivityKind,
    ActivityStatus,
    Company,
    Contact,
    Organization,
    Participant,
    ProviderLink,
    Recurrence,
    Visibility,
)
from services.text import email_domain, is_free_mail, normalize_email
from services.unit_of_work import UnitOfWork

__all__ = [
    "MEETING_KINDS",
    "AddedContacts",
    "AttendeeView",
    "CompanyChoice",
    "ContactChoice",
    "EventView",
    "MeetingNeedingCompany",
    "TagResult",
    "add_attendees_as_contacts",
    "event_for_ical_uid",
    "event_view",
    "find_companies",
    "meetings_needing_company",
    "open_event",
    "record_outcome",
    "resolve_company",
    "tag_event",
    "tag_meeting",
]

UowFactory = Callable[..., UnitOfWork]

# What a calendar item can be tagged as (a task has no place in a calendar).
MEETING_KINDS: Final = (ActivityKind.MEETING, ActivityKind.CALL, ActivityKind.VISIT)
# The homepage looks this far back (meetings to record) and ahead (meetings to tag).
LOOK_BACK: Final = dt.timedelta(days=14)
LOOK_AHEAD: Final = dt.timedelta(days=30)
NEEDING_COMPANY_LIMIT: Final = 25
_OUTCOME_MAX: Final = 4000


# --------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class CompanyChoice:
    id: int
    name: str
    why: str = ""  # "2 attendees are its contacts", "domain acme.example"


@dataclass(frozen=True, slots=True)
class ContactChoice:
    id: int
    name: str
    email: str
    selected: bool


@dataclass(frozen=True, slots=True)
class AttendeeView:
    email: str
    name: str
    response: str
    internal: bool
    contact_id: int | None = None
    contact_name: str = ""
    company_name: str = ""


@dataclass(frozen=True, slots=True)
class EventView:
    """An event as the side panel shows it. ``activity_id`` None: not in the CRM (not saved)."""

    event_id: str
    series_event_id: str | None = None  # set when the event is an occurrence of this series
    activity_id: int | None = None
    subject: str = ""
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    time_zone: str = "UTC"
    kind: str = ActivityKind.MEETING
    status: str = ActivityStatus.PLANNED
    outcome: str = ""
    company: CompanyChoice | None = None  # the tag
    contacts: tuple[ContactChoice, ...] = ()  # tagged ones selected, attendees' others not
    attendees: tuple[AttendeeView, ...] = ()
    suggestions: tuple[CompanyChoice, ...] = ()
    unknown: tuple[AttendeeView, ...] = ()  # external attendees who are not contacts (A4)
    is_over: bool = False
    editable: bool = True  # False: another user's private meeting
    is_owner: bool = False

    @property
    def found(self) -> bool:
        return self.activity_id is not None


@dataclass(frozen=True, slots=True)
class MeetingNeedingCompany:
    activity_id: int
    subject: str
    start: dt.datetime
    time_zone: str
    suggestion: CompanyChoice | None
    is_over: bool


@dataclass(frozen=True, slots=True)
class TagResult:
    activity_id: int
    company: CompanyChoice | None
    written_to_event: bool
    message: str  # for the user: what happened, in words


@dataclass(frozen=True, slots=True)
class AddedContacts:
    contacts: tuple[ContactChoice, ...] = ()
    companies: tuple[CompanyChoice, ...] = ()
    skipped: tuple[str, ...] = ()  # addresses not added, with the reason

    @property
    def message(self) -> str:
        if not self.contacts:
            return "No contacts added: " + ("; ".join(self.skipped) or "nobody to add")
        text = f"Added {len(self.contacts)} contact{'s' if len(self.contacts) != 1 else ''}"
        if self.companies:
            text += " and " + ", ".join(c.name for c in self.companies)
        return text


# --------------------------------------------------------------------------- opening events


def open_event(
    uow_factory: UowFactory,
    principal: Principal,
    source: CalendarSource,
    ref: MailboxRef,
    event_id: str,
    *,
    now: dt.datetime | None = None,
) -> EventView:
    """Fetch the event from the user's calendar, bring the CRM in line, return what to show.

    An event the calendar does not have (not saved yet, or deleted) gives a view without an
    activity. Provider failures propagate as `ProviderError`.
    """
    _check_ref(principal, ref)
    if not event_id.strip():
        return EventView(event_id="")
    changes = list(source.changed_events(ref, [ChangeSignal(event_id)]))
    now = now or utcnow()
    series_event_id: str | None = None
    with uow_factory() as uow:
        for change in changes:
            if isinstance(change, Removed):
                sync.apply_removed(uow, ref.org_id, change, now=now)
            elif isinstance(change, MeetingSnapshot):
                sync.apply_snapshot(uow, ref.org_id, change, now=now)
                if change.provider_event_id == event_id and change.series_provider_id:
                    series_event_id = change.series_provider_id
        uow.commit()
    with uow_factory(read_only=True) as uow:
        return _event_view(uow, principal, ref, event_id, series_event_id, now)


def event_view(
    uow_factory: UowFactory,
    principal: Principal,
    ref: MailboxRef,
    event_id: str,
    *,
    series_event_id: str | None = None,
    now: dt.datetime | None = None,
) -> EventView:
    """What the CRM knows about the user's copy of an event, without asking the calendar."""
    _check_ref(principal, ref)
    with uow_factory(read_only=True) as uow:
        return _event_view(uow, principal, ref, event_id, series_event_id, now or utcnow())


def event_for_ical_uid(
    uow_factory: UowFactory,
    principal: Principal,
    finder: EventFinder,
    source: CalendarSource,
    ref: MailboxRef,
    ical_uid: str,
    *,
    now: dt.datetime | None = None,
) -> EventView:
    """The user's copy of the meeting an invitation is about (none yet: a view without one)."""
    _check_ref(principal, ref)
    event_ids = finder.event_ids_for_ical_uid(ref, ical_uid)
    if not event_ids:
        return EventView(event_id="")
    return open_event(uow_factory, principal, source, ref, event_ids[0], now=now)


def _is_over(activity: Activity, now: dt.datetime) -> bool:
    """Ended: a single meeting's end, a series' last occurrence (a series without end never)."""
    if activity.recurrence is not None:
        last_end = activity.recurrence.last_end
        return last_end is not None and last_end <= now
    return activity.end_at <= now


def _check_ref(principal: Principal, ref: MailboxRef) -> None:
    if ref.org_id != principal.org_id:
        raise Forbidden("the mailbox belongs to another organization")


def _find_activity(
    uow: UnitOfWork, ref: MailboxRef, event_id: str, series_event_id: str | None = None
) -> tuple[Activity, str] | None:
    """The activity of the user's copy of an event, and the event id it is linked by.

    An unchanged occurrence of a series has no activity of its own: the series has it.
    """
    for candidate in (event_id, series_event_id):
        if not candidate:
            continue
        activity = sync.find_activity_for_event(
            uow, ref.org_id, ref.provider, ref.address, candidate
        )
        if activity is not None:
            return activity, candidate
    return None


def _event_view(
    uow: UnitOfWork,
    principal: Principal,
    ref: MailboxRef,
    event_id: str,
    series_event_id: str | None,
    now: dt.datetime,
) -> EventView:
    found = _find_activity(uow, ref, event_id, series_event_id)
    if found is None:
        return EventView(event_id=event_id)
    activity, linked_by = found
    item = get_activity(uow, principal, activity.id)
    is_owner = principal.user_id is not None and activity.owner_id == principal.user_id
    base = EventView(
        event_id=event_id,
        series_event_id=linked_by if linked_by != event_id else None,
        activity_id=activity.id,
        start=item.start,
        end=item.end,
        time_zone=activity.time_zone,
        status=activity.status,
        is_over=_is_over(activity, now),
        is_owner=is_owner,
    )
    if item.masked:
        return replace(base, subject="Private meeting", editable=False)
    emails = [p.email for p in activity.participants]
    hints = suggest(uow, principal.org_id, emails)
    companies = _companies(uow, [c.company_id for c in hints.contacts.values()])
    attendees = tuple(
        _attendee(p, hints.contacts.get(p.email), companies, p.email in hints.internal)
        for p in activity.participants
    )
    tagged = {link.contact_id for link in activity.contact_links}
    contacts = _contact_choices(uow, principal.org_id, tagged, hints.contacts)
    company = None
    if activity.company_id is not None:
        linked = uow.session.get(Company, activity.company_id)
        company = CompanyChoice(linked.id, linked.name) if linked is not None else None
    unknown_emails = set(hints.unknown)
    return replace(
        base,
        subject=activity.subject,
        kind=activity.kind,
        outcome=activity.outcome,
        company=company,
        contacts=contacts,
        attendees=attendees,
        suggestions=tuple(_choice(s) for s in hints.companies),
        unknown=tuple(a for a in attendees if a.email in unknown_emails),
    )


def _companies(uow: UnitOfWork, ids: Iterable[int | None]) -> dict[int, Company]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {c.id: c for c in uow.session.scalars(select(Company).where(Company.id.in_(wanted)))}


def _attendee(
    participant: Participant,
    contact: Contact | None,
    companies: Mapping[int, Company],
    internal: bool,
) -> AttendeeView:
    company = companies.get(contact.company_id) if contact and contact.company_id else None
    return AttendeeView(
        email=participant.email,
        name=participant.name,
        response=participant.response,
        internal=internal,
        contact_id=contact.id if contact else None,
        contact_name=full_name(contact) if contact else "",
        company_name=company.name if company else "",
    )


def _contact_choices(
    uow: UnitOfWork, org_id: int, tagged: set[int], attendee_contacts: Mapping[str, Contact]
) -> tuple[ContactChoice, ...]:
    choices: dict[int, ContactChoice] = {}
    if tagged:
        rows = uow.session.scalars(
            select(Contact).where(Contact.org_id == org_id, Contact.id.in_(tagged))
        )
        for contact in rows:
            email = contact.emails[0].email if contact.emails else ""
            choices[contact.id] = ContactChoice(contact.id, _contact_name(contact), email, True)
    for email, contact in attendee_contacts.items():
        if contact.id not in choices:
            choices[contact.id] = ContactChoice(contact.id, _contact_name(contact), email, False)
    return tuple(sorted(choices.values(), key=lambda c: (not c.selected, c.name.lower())))


def _contact_name(contact: Contact) -> str:
    return full_name(contact) or (contact.emails[0].email if contact.emails else f"#{contact.id}")


def _choice(suggestion: CompanySuggestion) -> CompanyChoice:
    if suggestion.contact_emails:
        count = len(suggestion.contact_emails)
        why = "1 attendee is a contact" if count == 1 else f"{count} attendees are contacts"
    else:
        why = "domain " + ", ".join(sorted({email_domain(e) for e in suggestion.domain_emails}))
    return CompanyChoice(suggestion.company.id, suggestion.company.name, why)


# --------------------------------------------------------------------------- homepage


def meetings_needing_company(
    uow: UnitOfWork,
    principal: Principal,
    now: dt.datetime,
    *,
    look_back: dt.timedelta = LOOK_BACK,
    look_ahead: dt.timedelta = LOOK_AHEAD,
    limit: int = NEEDING_COMPANY_LIMIT,
) -> list[MeetingNeedingCompany]:
    """The user's meetings without a company, from ``look_back`` ago to ``look_ahead`` ahead.

    "The user's": they own it or take part in it. Cancelled meetings, tasks and other users'
    private meetings are left out; a recurring series counts once, while it still runs.
    """
    if principal.user_id is None:
        return []
    start, end = now - look_back, now + look_ahead
    takes_part = exists().where(
        Participant.activity_id == Activity.id, Participant.user_id == principal.user_id
    )
    still_running = or_(
        Activity.end_at >= start,
        exists().where(
            Recurrence.activity_id == Activity.id,
            or_(Recurrence.last_end.is_(None), Recurrence.last_end >= start),
        ),
    )
    stmt = (
        select(Activity)
        .where(
            Activity.org_id == principal.org_id,
            Activity.company_id.is_(None),
            Activity.kind.in_(MEETING_KINDS),
            Activity.status != ActivityStatus.CANCELLED,
            Activity.series_id.is_(None),
            Activity.start_at < end,
            still_running,
            or_(Activity.owner_id == principal.user_id, takes_part),
            or_(
                Activity.visibility != Visibility.PRIVATE,
                Activity.owner_id == principal.user_id,
            ),
        )
        .order_by(Activity.start_at, Activity.id)
        .limit(limit)
    )
    meetings = []
    for activity in uow.session.scalars(stmt):
        found = suggest(uow, principal.org_id, [p.email for p in activity.participants])
        meetings.append(
            MeetingNeedingCompany(
                activity_id=activity.id,
                subject=activity.subject,
                start=activity.start_at,
                time_zone=activity.time_zone,
                suggestion=_choice(found.companies[0]) if found.companies else None,
                is_over=_is_over(activity, now),
            )
        )
    return meetings


# --------------------------------------------------------------------------- company search


def find_companies(
    uow: UnitOfWork, principal: Principal, query: str, limit: int = 10
) -> list[CompanyChoice]:
    """Companies matching what the user typed (name words or a domain), best first."""
    if not query.strip():
        return []
    return [
        CompanyChoice(c.id, c.name, ", ".join(c.domain_names))
        for c in search_companies(uow, principal.org_id, query, limit)
    ]


def resolve_company(uow: UnitOfWork, principal: Principal, text: str) -> int:
    """The company a free-text entry names: the only match, or the one with exactly that name."""
    matches = search_companies(uow, principal.org_id, text, 5)
    exact = [c for c in matches if c.name.casefold() == " ".join(text.split()).casefold()]
    if len(exact) == 1:
        return exact[0].id
    if len(matches) == 1:
        return matches[0].id
    if not matches:
        raise InvalidInput.field("company", f"no company matches “{text.strip()}”")
    raise InvalidInput.field("company", f"several companies match “{text.strip()}”: pick one")


# --------------------------------------------------------------------------- tagging


def tag_event(
    uow_factory: UowFactory,
    principal: Principal,
    ref: MailboxRef,
    event_id: str,
    *,
    company_id: int | None,
    contact_ids: Sequence[int] = (),
    kind: str = ActivityKind.MEETING,
    tag_writer: EventTagWriter,
    series_event_id: str | None = None,
) -> TagResult:
    """Tag the user's copy of an event; NotFound when the CRM has not seen it (not saved).

    An occurrence of a series tags the series, and the tag is written on the series' event.
    """
    _check_ref(principal, ref)
    with uow_factory(read_only=True) as uow:
        found = _find_activity(uow, ref, event_id, series_event_id)
        if found is None:
            raise NotFound("this event is not in the CRM yet: save it in Calendar first")
        activity_id, linked_by = found[0].id, found[1]
    return _tag(
        uow_factory,
        principal,
        activity_id,
        company_id,
        contact_ids,
        kind,
        lambda: tag_writer.write_tag(ref, linked_by, activity_id),
    )


def tag_meeting(
    uow_factory: UowFactory,
    principal: Principal,
    ref: MailboxRef,
    activity_id: int,
    *,
    company_id: int | None,
    contact_ids: Sequence[int] | None = None,
    kind: str | None = None,
    tag_writer: EventTagWriter,
) -> TagResult:
    """Tag a meeting by its CRM id (the homepage's one-click button).

    Contacts: when not given, the attendees who are contacts of the company. The activity id
    is written on the user's own copy of the event when they have one at this provider.
    """
    _check_ref(principal, ref)
    with uow_factory(read_only=True) as uow:
        activity = uow.session.get(Activity, activity_id)
        if activity is None or activity.org_id != principal.org_id:
            raise NotFound(f"activity {activity_id} does not exist")
        event_id = uow.session.scalar(
            select(ProviderLink.provider_event_id).where(
                ProviderLink.activity_id == activity_id,
                ProviderLink.provider == ref.provider,
                ProviderLink.mailbox == normalize_email(ref.address),
            )
        )
        if contact_ids is None:
            contact_ids = _attendee_contacts_of(uow, activity, company_id)
        kind = kind or activity.kind

    def write() -> None:
        if event_id is not None:
            tag_writer.write_tag(ref, event_id, activity_id)

    return _tag(uow_factory, principal, activity_id, company_id, contact_ids, kind, write)


def _attendee_contacts_of(uow: UnitOfWork, activity: Activity, company_id: int | None) -> list[int]:
    if company_id is None:
        return []
    found = contacts_by_email(uow, activity.org_id, [p.email for p in activity.participants])
    return sorted({c.id for c in found.values() if c.company_id == company_id})


def _tag(
    uow_factory: UowFactory,
    principal: Principal,
    activity_id: int,
    company_id: int | None,
    contact_ids: Sequence[int],
    kind: str,
    write: Callable[[], None],
) -> TagResult:
    if kind not in MEETING_KINDS:
        raise InvalidInput.field("kind", f"must be one of {', '.join(MEETING_KINDS)}")
    with uow_factory() as uow:
        update_activity(
            uow,
            principal,
            activity_id,
            {"company_id": company_id, "contact_ids": list(contact_ids), "kind": kind},
        )
        company = None
        if company_id is not None:
            row = uow.session.get(Company, company_id)
            company = CompanyChoice(row.id, row.name) if row is not None else None
        uow.commit()
    saved = f"Linked to {company.name}" if company else "Saved"
    try:
        write()
    except ProviderError as failure:
        return TagResult(
            activity_id,
            company,
            written_to_event=False,
            message=f"{saved} in the CRM, but the calendar event could not be marked: {failure}",
        )
    return TagResult(activity_id, company, written_to_event=True, message=saved)


# --------------------------------------------------------------------------- outcome (D1)


def record_outcome(
    uow_factory: UowFactory,
    principal: Principal,
    activity_id: int,
    *,
    held: bool,
    note: str = "",
    now: dt.datetime | None = None,
) -> None:
    """Mark a meeting that has ended held or not held, with what came out of it (owner only)."""
    now = now or utcnow()
    note = note.strip()
    if len(note) > _OUTCOME_MAX:
        raise InvalidInput.field("outcome", f"at most {_OUTCOME_MAX} characters")
    with uow_factory() as uow:
        activity = uow.session.get(Activity, activity_id)
        if activity is None or activity.org_id != principal.org_id:
            raise NotFound(f"activity {activity_id} does not exist")
        if activity.owner_id is not None and activity.owner_id != principal.user_id:
            raise Forbidden("only the meeting's owner records whether it was held")
        if activity.status == ActivityStatus.CANCELLED:
            raise InvalidInput.field("status", "the meeting was cancelled")
        if not _is_over(activity, now):
            raise InvalidInput.field("status", "the meeting has not ended yet")
        status = ActivityStatus.HELD if held else ActivityStatus.NOT_HELD
        update_activity(uow, principal, activity_id, {"status": status, "outcome": note})
        uow.commit()


# --------------------------------------------------------------------------- new contacts (A4)


def add_attendees_as_contacts(
    uow_factory: UowFactory,
    principal: Principal,
    attendees: Sequence[tuple[str, str]],
) -> AddedContacts:
    """Create a contact for each external attendee who is not one yet, in one step.

    ``attendees``: (e-mail, display name). A company is created from each business domain that
    no company has yet (free-mail and the organization's own domains never make one, as in
    suggestions); existing companies with the domain get the new contacts. All or nothing.
    """
    names = {normalize_email(email): name for email, name in attendees}
    with uow_factory() as uow:
        org = uow.session.get(Organization, principal.org_id)
        if org is None:
            raise NotFound(f"organization {principal.org_id} does not exist")
        found = suggest(uow, principal.org_id, names)
        skipped = [f"{e} (one of us)" for e in found.internal]
        skipped += [f"{e} (already a contact)" for e in found.contacts]
        skipped += [f"{e} (not an e-mail address)" for e in found.invalid]
        own = set(org.own_domains)
        domains = {
            email_domain(e)
            for e in found.unknown
            if not is_free_mail(email_domain(e)) and email_domain(e) not in own
        }
        by_domain = companies_by_domain(uow, principal.org_id, domains)
        created_companies: list[CompanyChoice] = []
        contacts: list[ContactChoice] = []
        for email in found.unknown:
            domain = email_domain(email)
            company = by_domain.get(domain) if domain in domains else None
            if company is None and domain in domains:
                company = create_company(
                    uow, principal.org_id, name=_company_name(domain), domains=[domain]
                )
                by_domain[domain] = company
                created_companies.append(
                    CompanyChoice(company.id, company.name, f"domain {domain}")
                )
            first, last = _split_name(names.get(email, ""))
            contact = create_contact(
                uow,
                principal.org_id,
                {
                    "first_name": first,
                    "last_name": last,
                    "emails": [email],
                    "company_id": company.id if company else None,
                },
            )
            contacts.append(ContactChoice(contact.id, _contact_name(contact), email, True))
        uow.commit()
    return AddedContacts(tuple(contacts), tuple(created_companies), tuple(skipped))


def _company_name(domain: str) -> str:
    """A first name for a company known only by its domain: "acme-tools.example" -> "Acme Tools"."""
    labels = [label for label in domain.split(".") if label not in ("www", "mail", "email")]
    main = labels[0] if labels else domain
    return " ".join(part.capitalize() for part in main.replace("_", "-").split("-") if part)


def _split_name(display_name: str) -> tuple[str, str]:
    words = " ".join(display_name.replace('"', " ").split())
    if "@" in words:
        return "", ""
    if "," in words:  # "Doe, Jane"
        last, _, first = words.partition(",")
        return first.strip(), last.strip()
    first, _, last = words.rpartition(" ")
    return (first, last) if first else (last, "")
