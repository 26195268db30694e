"""Sync rules: one mailbox's copy of a meeting (a MeetingSnapshot) -> the CRM activity.

Provider-neutral: the Graph and Google workers map their payloads to snapshots and call
`apply_snapshot` / `apply_removed`. Nothing here commits; the caller does.

A snapshot is trusted as the copy's current state. Providers give no order between deliveries
and the worker fetches the event before applying it, so the last snapshot applied for a copy
wins for that copy's fields. Only participant responses carry their own times; they never go
back in time.

The rules (SCENARIOS.md A3, A4, B1-B8):

* One activity per meeting. It is found by this copy's ProviderLink, else by iCalUID, else by
  adopting the add-in's activity named in the tag hint (once: adoption sets its iCalUID), else
  created. Every mailbox copy has its own link. The copies may come from different providers.
* The organizer's copy is authoritative for the meeting: details, times, recurrence, privacy,
  attendee list and cancellation. An attendee's copy sets only that attendee's own response,
  and fills in everything else while no copy of the organizer's is linked (external organizer).
* The owner is set once: the organizer if they are a CRM user, else the first reporting user.
* Cancellation turns a planned activity into a cancelled one and keeps it. Sync never changes
  a held / not held activity, never un-cancels and never touches `outcome`. When an attendee
  removes their copy, that attendee declined.
* A series master stores its rule (services.activities' conventions). Cancelled and moved
  occurrences are exception rows (`series_id`, `original_start`).
* The tag (company, contacts, kind) is the CRM's. Sync only fills an empty tag: from the hint,
  or for an externally organized meeting, from a certain company match of its attendees.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Protocol, TypeGuard
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.schema import ColumnDefault, Table

from services import recurrence
from services.activities import store_recurrence
from services.db import Base, utcnow
from services.meetings import Attendee, EventType, MeetingSnapshot, Removed, TagHint
from services.tables import (
    Activity,
    ActivityContact,
    ActivityKind,
    ActivityStatus,
    Company,
    CompanyDomain,
    Contact,
    ContactEmail,
    Organization,
    Participant,
    ParticipantRole,
    Provider,
    ProviderLink,
    Recurrence,
    Response,
    User,
    Visibility,
)
from services.text import (
    email_domain,
    is_free_mail,
    is_valid_email,
    normalize_domain,
    normalize_email,
)
from services.unit_of_work import UnitOfWork

__all__ = [
    "MASTER_NOT_SYNCED",
    "SyncAction",
    "SyncOutcome",
    "apply_removed",
    "apply_snapshot",
    "find_activity_for_event",
    "lookups_for",
]

MASTER_NOT_SYNCED: Final = "series master not synced yet"

# Column widths (services.tables): longer provider text is cut rather than refused.
_SUBJECT_MAX: Final = 400
_LOCATION_MAX: Final = 400
_NAME_MAX: Final = 200
_EMAIL_MAX: Final = 320
_ID_MAX: Final = 1024
_CHANGE_KEY_MAX: Final = 256
_DB_ID_MAX: Final = 2**63 - 1  # BIGINT: a larger id in a hint would be a database error
# Kinds a calendar item can be tagged as; a task has no place in a calendar.
_MEETING_KINDS: Final = frozenset({ActivityKind.MEETING, ActivityKind.CALL, ActivityKind.VISIT})
# Responses that are not an answer: they never overwrite one and get no observed time.
_NO_ANSWER: Final = frozenset({Response.NONE, Response.ORGANIZER})


class SyncAction(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    CANCELLED = "cancelled"
    DECLINED = "declined"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """What applying one snapshot or removal did; `reason` says why when it was ignored."""

    activity_id: int | None
    action: SyncAction
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _Copy:
    """A snapshot with the values every rule compares, normalised once."""

    org_id: int
    snapshot: MeetingSnapshot
    mailbox: str
    organizer: str
    now: dt.datetime


@dataclass(slots=True)
class _Changes:
    changed: bool = False
    cancelled: bool = False
    created: bool = False


# --------------------------------------------------------------------------- lookups

_LOOKUPS_KEY: Final = "services.sync.lookups"


@dataclass(slots=True)
class _Lookups:
    """Users, contacts and company domains by e-mail, read once for a batch of snapshots.

    Sync never creates or changes users, contacts, companies or the organization, so within one
    transaction what was read stays true for the snapshots that follow. Only `lookups_for`
    installs it, for the span of one batch; without it every lookup asks the database.
    """

    org_id: int
    users: dict[str, int | None] = field(default_factory=dict)
    contacts: dict[str, int | None] = field(default_factory=dict)
    contact_company: dict[int, int | None] = field(default_factory=dict)
    domains: dict[str, int | None] = field(default_factory=dict)
    own_domains: frozenset[str] | None = None
    # Batch mode (only under `lookups_for`): this mailbox's links and the meetings by iCalUID,
    # kept up to date as the batch goes. New single meetings are plain rows (no ORM objects,
    # no unit-of-work bookkeeping) inserted together, with their participants, contacts and
    # links, in a few multi-row statements (`_flush_pending`); until then `pending_uids` and
    # `pending_links` name them, and a snapshot that needs one inserts them first.
    batch: bool = False
    links: dict[tuple[str, str, str], ProviderLink | None] = field(default_factory=dict)
    meetings: dict[str, Activity | None] = field(default_factory=dict)
    pending: list[_NewMeeting] = field(default_factory=list)
    pending_uids: set[str] = field(default_factory=set)
    pending_links: set[tuple[str, str, str]] = field(default_factory=set)


@dataclass(slots=True)
class _NewMeeting:
    """A single meeting a batch creates, as the rows to insert (`_flush_pending`)."""

    activity: dict[str, object]
    participants: list[_NewParticipant]
    contact_ids: list[int]
    link: dict[str, object]


@dataclass(slots=True)
class _NewParticipant:
    """A participant row to insert; the rules that answer responses work on it as on the ORM's."""

    email: str
    name: str
    role: str
    user_id: int | None
    contact_id: int | None
    response: str = Response.NONE
    responded_at: dt.datetime | None = None


@contextlib.contextmanager
def lookups_for(uow: UnitOfWork, org_id: int, snapshots: Iterable[object] = ()) -> Iterator[None]:
    """Apply a batch of snapshots and removals (one transaction) with few round trips.

    Within the block sync reads users, contacts, company domains, this batch's links and its
    meetings by iCalUID once (up front, in a few IN queries), and defers the flush: new single
    meetings are inserted together when the block ends. A duplicate (a concurrent worker's
    copy of the same meeting) then fails the whole batch with an IntegrityError; the caller
    applies it again one by one, without the block, where each insert has its savepoint.
    `SyncOutcome.activity_id` is None for a meeting created in the block.
    """
    lookups = _Lookups(org_id, batch=True)
    info = uow.session.info
    previous = info.get(_LOOKUPS_KEY)
    info[_LOOKUPS_KEY] = lookups
    try:
        emails: set[str] = set()
        keys: dict[tuple[str, str], set[str]] = {}
        uids: set[str] = set()
        for change in snapshots:
            if not isinstance(change, MeetingSnapshot | Removed):
                continue
            mailbox = normalize_email(change.mailbox)
            keys.setdefault((str(change.provider), mailbox), set()).add(change.provider_event_id)
            if isinstance(change, Removed):
                continue
            emails.add(mailbox)
            emails.add(normalize_email(change.organizer_email))
            emails.update(normalize_email(a.email) for a in change.attendees)
            if change.ical_uid and change.event_type in (EventType.SINGLE, EventType.SERIES):
                uids.add(change.ical_uid)
        emails.discard("")
        if emails:
            _user_ids(uow, org_id, emails)
            _contact_ids(uow, org_id, emails)
            _domain_companies(uow, org_id, {email_domain(e) for e in emails} - {""})
        _preload_links(uow, lookups, keys)
        _preload_meetings(uow, lookups, uids)
        yield
        _flush_pending(uow, lookups)
        uow.flush()
    finally:
        if previous is None:
            info.pop(_LOOKUPS_KEY, None)
        else:
            info[_LOOKUPS_KEY] = previous


def _lookups(uow: UnitOfWork, org_id: int) -> _Lookups:
    found = uow.session.info.get(_LOOKUPS_KEY)
    if isinstance(found, _Lookups) and found.org_id == org_id:
        return found
    return _Lookups(org_id)  # not kept: every call reads afresh


def _preload_links(
    uow: UnitOfWork, lookups: _Lookups, keys: Mapping[tuple[str, str], set[str]]
) -> None:
    for (provider, mailbox), event_ids in keys.items():
        rows = uow.session.scalars(
            select(ProviderLink).where(
                ProviderLink.org_id == lookups.org_id,
                ProviderLink.provider == provider,
                ProviderLink.mailbox == mailbox,
                ProviderLink.provider_event_id.in_(event_ids),
            )
        ).all()
        lookups.links.update({(provider, mailbox, i): None for i in event_ids})
        lookups.links.update({(provider, mailbox, r.provider_event_id): r for r in rows})


def _preload_meetings(uow: UnitOfWork, lookups: _Lookups, uids: set[str]) -> None:
    if not uids:
        return
    rows = uow.session.scalars(
        select(Activity).where(
            Activity.org_id == lookups.org_id,
            Activity.ical_uid.in_(uids),
            Activity.original_start.is_(None),
        )
    ).all()
    lookups.meetings.update(dict.fromkeys(uids))
    lookups.meetings.update({row.ical_uid: row for row in rows if row.ical_uid is not None})


def _flush_pending(uow: UnitOfWork, lookups: _Lookups) -> None:
    """Insert the new meetings of the batch so far: one multi-row INSERT per table."""
    if not lookups.pending:
        return
    pending, lookups.pending = lookups.pending, []
    for uid in lookups.pending_uids:
        lookups.meetings.pop(uid, None)  # stored now: read back when asked for
    lookups.pending_uids.clear()
    lookups.pending_links.clear()
    session = uow.session
    activities = _table(Activity)
    ids = session.scalars(
        insert(activities).returning(activities.c.id, sort_by_parameter_order=True),
        _with_defaults(Activity, [meeting.activity for meeting in pending]),
    ).all()
    participants: list[dict[str, object]] = []
    contacts: list[dict[str, object]] = []
    links: list[dict[str, object]] = []
    for meeting, activity_id in zip(pending, ids, strict=True):
        org_id = meeting.activity["org_id"]
        participants += [
            {"org_id": org_id, "activity_id": activity_id, "email": p.email, "name": p.name,
             "role": p.role, "response": p.response, "responded_at": p.responded_at,
             "user_id": p.user_id, "contact_id": p.contact_id}
            for p in meeting.participants
        ]  # fmt: skip
        contacts += [
            {"org_id": org_id, "activity_id": activity_id, "contact_id": contact_id}
            for contact_id in meeting.contact_ids
        ]
        links.append({**meeting.link, "activity_id": activity_id})
    for model, rows in ((Participant, participants), (ActivityContact, contacts)):
        if rows:
            session.execute(insert(_table(model)), _with_defaults(model, rows))
    session.execute(insert(_table(ProviderLink)), _with_defaults(ProviderLink, links))


def _table(model: type[Base]) -> Table:
    table = model.__table__
    if not isinstance(table, Table):
        raise TypeError(f"{model.__name__} is not mapped to one table")
    return table


def _with_defaults(model: type[Base], rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    """Each row with every column of `model`: its value, else the column's default.

    The same columns for every row, so that a table's rows are one multi-row INSERT.
    """
    table = _table(model)
    defaults: dict[str, object] = {}
    for column in table.columns:
        if column is table.autoincrement_column:
            continue  # the database's
        default = column.default
        if default is None:
            defaults[column.key] = None
        elif isinstance(default, ColumnDefault) and default.is_scalar:
            defaults[column.key] = default.arg
        elif isinstance(default, ColumnDefault) and default.is_callable:
            defaults[column.key] = default.arg(None)  # evaluated once for the batch
        else:
            raise TypeError(f"{model.__name__}.{column.key}: unsupported default {default!r}")
    return [{**defaults, **row} for row in rows]


def _user_ids(uow: UnitOfWork, org_id: int, emails: Iterable[str]) -> dict[str, int]:
    cache = _lookups(uow, org_id).users
    wanted = {normalize_email(e) for e in emails} - {""}
    missing = wanted - cache.keys()
    if missing:
        rows = uow.session.execute(
            select(User.email, User.id).where(User.org_id == org_id, User.email.in_(missing))
        ).all()
        cache.update(dict.fromkeys(missing))
        cache.update(dict(rows))
    return {e: i for e in wanted if (i := cache.get(e)) is not None}


def _contact_ids(uow: UnitOfWork, org_id: int, emails: Iterable[str]) -> dict[str, int]:
    lookups = _lookups(uow, org_id)
    cache = lookups.contacts
    wanted = {normalize_email(e) for e in emails} - {""}
    missing = wanted - cache.keys()
    if missing:
        rows = uow.session.execute(
            select(ContactEmail.email, Contact.id, Contact.company_id)
            .join(Contact, Contact.id == ContactEmail.contact_id)
            .where(ContactEmail.org_id == org_id, ContactEmail.email.in_(missing))
        ).all()
        cache.update(dict.fromkeys(missing))
        for email, contact_id, company_id in rows:
            cache[email] = contact_id
            lookups.contact_company[contact_id] = company_id
    return {e: i for e in wanted if (i := cache.get(e)) is not None}


def _contact_companies(
    uow: UnitOfWork, org_id: int, contact_ids: Iterable[int]
) -> dict[int, int | None]:
    """Each existing contact's company (None without one); unknown ids are left out."""
    cache = _lookups(uow, org_id).contact_company
    wanted = set(contact_ids)
    missing = wanted - cache.keys()
    if missing:
        rows = uow.session.execute(
            select(Contact.id, Contact.company_id).where(Contact.id.in_(missing))
        ).all()
        cache.update(dict(rows))
    return {i: cache[i] for i in wanted if i in cache}


def _domain_companies(uow: UnitOfWork, org_id: int, domains: Iterable[str]) -> dict[str, int]:
    cache = _lookups(uow, org_id).domains
    wanted = {normalize_domain(d) for d in domains}
    missing = wanted - cache.keys()
    if missing:
        rows = uow.session.execute(
            select(CompanyDomain.domain, CompanyDomain.company_id).where(
                CompanyDomain.org_id == org_id, CompanyDomain.domain.in_(missing)
            )
        ).all()
        cache.update(dict.fromkeys(missing))
        cache.update(dict(rows))
    return {d: i for d in wanted if (i := cache.get(d)) is not None}


def _own_domains(uow: UnitOfWork, org_id: int) -> frozenset[str] | None:
    """The organization's own domains; None if it does not exist."""
    lookups = _lookups(uow, org_id)
    if lookups.own_domains is None:
        org = uow.session.get(Organization, org_id)
        if org is None:
            return None
        lookups.own_domains = frozenset(org.own_domains)
    return lookups.own_domains


# --------------------------------------------------------------------------- entry points


def find_activity_for_event(
    uow: UnitOfWork, org_id: int, provider: Provider | str, mailbox: str, provider_event_id: str
) -> Activity | None:
    """The activity a mailbox's copy of an event is linked to, if it has been synced."""
    link = _find_link(uow, org_id, provider, normalize_email(mailbox), provider_event_id)
    return None if link is None else uow.session.get(Activity, link.activity_id)


def apply_snapshot(
    uow: UnitOfWork, org_id: int, snapshot: MeetingSnapshot, *, now: dt.datetime | None = None
) -> SyncOutcome:
    """Bring the CRM in line with one mailbox's copy of a meeting. Idempotent; no commit."""
    copy = _Copy(
        org_id=org_id,
        snapshot=snapshot,
        mailbox=normalize_email(snapshot.mailbox),
        organizer=normalize_email(snapshot.organizer_email),
        now=now or utcnow(),
    )
    problem = _problem(snapshot)
    if problem is not None:
        return SyncOutcome(None, SyncAction.IGNORED, problem)
    link = _find_link(uow, org_id, snapshot.provider, copy.mailbox, snapshot.provider_event_id)
    if link is not None and snapshot.change_key and link.change_key == snapshot.change_key:
        # The provider says the copy is as it was when last applied. The link records that
        # it was seen (reconciliation can tell live copies from stale ones); nothing else moves.
        link.last_synced_at = copy.now
        return SyncOutcome(link.activity_id, SyncAction.UNCHANGED)
    if snapshot.event_type is EventType.OCCURRENCE:
        return _apply_occurrence(uow, copy)
    if snapshot.event_type is EventType.EXCEPTION:
        return _apply_exception(uow, copy, link)
    return _apply_meeting(uow, copy, link)


def apply_removed(
    uow: UnitOfWork, org_id: int, removed: Removed, *, now: dt.datetime | None = None
) -> SyncOutcome:
    """A mailbox's copy is gone: the organizer's means cancelled, an attendee's declined."""
    now = now or utcnow()
    mailbox = normalize_email(removed.mailbox)
    link = _find_link(uow, org_id, removed.provider, mailbox, removed.provider_event_id)
    if link is None:
        return SyncOutcome(None, SyncAction.IGNORED, "no synced copy of this event")
    activity = uow.session.get(Activity, link.activity_id)
    uow.session.delete(link)
    _forget_link(uow, org_id, link)
    uow.flush()
    if activity is None:  # deleted meanwhile; the cascade took the link's row too
        return SyncOutcome(None, SyncAction.IGNORED, "the activity no longer exists")
    if _is_over(activity, now):
        # Removing a past meeting from a calendar (or a delta window moving past it) is
        # clean-up, not a cancellation or a decline: the history stays as it was.
        return SyncOutcome(activity.id, SyncAction.IGNORED, "the meeting is over")
    changes = _Changes()
    if _is_organizer(uow, activity, mailbox):
        _cancel(uow, activity, changes)
        return _finish(uow, activity, changes)
    if activity.status != ActivityStatus.CANCELLED:
        _decline(activity, mailbox, now, changes)
    return _finish(uow, activity, changes, declined=True)


# --------------------------------------------------------------------------- meetings


def _apply_meeting(uow: UnitOfWork, copy: _Copy, link: ProviderLink | None) -> SyncOutcome:
    """A single meeting or a series master."""
    snapshot = copy.snapshot
    changes = _Changes()
    activity = _meeting_for(uow, copy, link, changes)
    if activity is None:
        return _new_in_batch(uow, copy)
    _record_link(uow, copy, link, activity)
    _fill_owner(uow, activity, copy, changes)
    if _is_authoritative(uow, copy, [activity]):
        _apply_details(activity, snapshot, changes)
        _apply_participants(uow, activity, copy, changes)
        set_company = _fill_tag(uow, activity, copy, changes)
        _apply_rule(uow, activity, copy, changes)
        if set_company:
            _share_tag_with_exceptions(uow, activity, changes)
        if snapshot.cancelled:
            _cancel(uow, activity, changes)
    else:
        _apply_own_response(activity, copy, changes)
        if _fill_tag(uow, activity, copy, changes):
            _share_tag_with_exceptions(uow, activity, changes)
    return _finish(uow, activity, changes)


def _meeting_for(
    uow: UnitOfWork, copy: _Copy, link: ProviderLink | None, changes: _Changes
) -> Activity | None:
    """The one activity of this meeting: linked, same iCalUID, adopted, or new.

    None for a new single meeting in a batch (`lookups_for`) when no stored link names it:
    the batch inserts it as plain rows (`_new_in_batch`).
    """
    if link is not None:
        linked = uow.session.get(Activity, link.activity_id)
        if linked is not None:
            return linked
    lookups = _lookups(uow, copy.org_id)
    ical_uid = copy.snapshot.ical_uid
    if ical_uid in lookups.pending_uids:
        _flush_pending(uow, lookups)  # another copy of a meeting new in this batch
    if ical_uid in lookups.meetings:
        found = lookups.meetings[ical_uid]
    else:
        found = _by_ical_uid(uow, copy.org_id, ical_uid)
    if found is not None:
        return found
    adoptable = _adoptable(uow, copy.org_id, copy.snapshot.tag_hint)
    if adoptable is not None:
        stored = _adopt(uow, copy, adoptable)
    elif lookups.batch and copy.snapshot.event_type is EventType.SINGLE and link is None:
        return None
    else:
        activity = Activity(**_new_meeting_fields(copy))
        stored = _insert(uow, activity, lambda: _by_ical_uid(uow, copy.org_id, ical_uid))
        changes.created = stored is activity
    if lookups.batch and ical_uid:
        lookups.meetings[ical_uid] = stored
    return stored


def _by_ical_uid(uow: UnitOfWork, org_id: int, ical_uid: str) -> Activity | None:
    """The single meeting or series master with this iCalUID (exception rows share it)."""
    if not ical_uid:
        return None
    return uow.session.scalar(
        select(Activity).where(
            Activity.org_id == org_id,
            Activity.ical_uid == ical_uid,
            Activity.original_start.is_(None),
        )
    )


def _adoptable(uow: UnitOfWork, org_id: int, hint: TagHint | None) -> Activity | None:
    """The add-in's activity from the hint, while no meeting has claimed it (scenario A3)."""
    activity_id = hint.activity_id if hint is not None else None
    if not _is_db_id(activity_id):
        return None
    activity = uow.session.get(Activity, activity_id)
    if (
        activity is None
        or activity.org_id != org_id
        or activity.ical_uid is not None  # adopted already: a copied item carries the hint too
        or activity.series_id is not None
        or activity.kind == ActivityKind.TASK
    ):
        return None
    return activity


def _adopt(uow: UnitOfWork, copy: _Copy, activity: Activity) -> Activity:
    try:
        with uow.session.begin_nested():
            activity.ical_uid = copy.snapshot.ical_uid
    except IntegrityError:
        # Another mailbox's copy stored the meeting meanwhile: it is the one activity.
        found = _by_ical_uid(uow, copy.org_id, copy.snapshot.ical_uid)
        if found is None:
            raise
        return found
    return activity


def _new_meeting_fields(copy: _Copy) -> dict[str, object]:
    snapshot = copy.snapshot
    return {
        "org_id": copy.org_id,
        "kind": _hint_kind(snapshot.tag_hint) or ActivityKind.MEETING,
        "status": ActivityStatus.PLANNED,
        "start_at": snapshot.start.astimezone(dt.UTC),
        "end_at": snapshot.end.astimezone(dt.UTC),
        "time_zone": _zone(snapshot.time_zone),
        "ical_uid": snapshot.ical_uid,
        "origin": str(snapshot.provider),
    }


def _new_in_batch(uow: UnitOfWork, copy: _Copy) -> SyncOutcome:
    """A new single meeting in a batch, as rows for `_flush_pending`: the rules of
    `_apply_meeting` for an activity that has nothing yet, whose copy is authoritative."""
    snapshot = copy.snapshot
    lookups = _lookups(uow, copy.org_id)
    participants = _new_participants(uow, copy)
    company_id, _ = _tag_company(uow, copy, participants)  # the hint's kind is set already
    activity = _new_meeting_fields(copy) | _details(snapshot)
    activity["owner_id"] = _owner(uow, copy)
    activity["company_id"] = company_id
    if snapshot.cancelled:
        activity["status"] = ActivityStatus.CANCELLED
    contact_ids = _tag_contacts(uow, copy, participants, company_id, with_hint=True)
    link = {
        "org_id": copy.org_id,
        "provider": str(snapshot.provider),
        "mailbox": copy.mailbox,
        "provider_event_id": snapshot.provider_event_id,
    } | _link_fields(copy)
    lookups.pending.append(_NewMeeting(activity, participants, contact_ids, link))
    lookups.pending_uids.add(snapshot.ical_uid)
    key = (str(snapshot.provider), copy.mailbox, snapshot.provider_event_id)
    lookups.pending_links.add(key)
    lookups.links.pop(key, None)
    action = SyncAction.CANCELLED if snapshot.cancelled else SyncAction.CREATED
    return SyncOutcome(None, action)


def _insert(uow: UnitOfWork, row: Activity, refind: Callable[[], Activity | None]) -> Activity:
    """Insert `row`; if a concurrent copy inserted the same meeting first, return that one.

    The unique indexes (org + iCalUID, series + original start) decide: on PostgreSQL a second
    worker's insert waits for the first to commit and then fails, inside a savepoint here.
    """
    try:
        with uow.session.begin_nested():
            uow.session.add(row)
    except IntegrityError:
        found = refind()
        if found is None:
            raise
        return found
    return row


# --------------------------------------------------------------------------- series parts


def _apply_occurrence(uow: UnitOfWork, copy: _Copy) -> SyncOutcome:
    """An unchanged instance: the series' rule already has it; only the master must exist."""
    master = _find_master(uow, copy)
    if master is None:
        return SyncOutcome(None, SyncAction.IGNORED, MASTER_NOT_SYNCED)
    return SyncOutcome(master.id, SyncAction.UNCHANGED)


def _apply_exception(uow: UnitOfWork, copy: _Copy, link: ProviderLink | None) -> SyncOutcome:
    """A moved, changed or cancelled occurrence: its own row, pointing at the series."""
    snapshot = copy.snapshot
    master, row = _exception_of(uow, copy, link)
    if master is None:
        return SyncOutcome(None, SyncAction.IGNORED, MASTER_NOT_SYNCED)
    if snapshot.cancelled and not _is_authoritative(uow, copy, _rows(row, master)):
        # An attendee's cancelled copy while the organizer's series is linked: the organizer
        # decides (Exchange also cancels the copy of an attendee removed from one occurrence).
        return SyncOutcome((row or master).id, SyncAction.UNCHANGED)
    changes = _Changes()
    if row is None:
        row = _stored_exception(uow, master, _original_start(snapshot), changes)
    _record_link(uow, copy, link, row)
    _fill_owner(uow, row, copy, changes)
    if snapshot.cancelled:
        # Google sends cancelled instances with little more than their ids: keep the row's
        # details and change the status only.
        _cancel(uow, row, changes)
    elif _is_authoritative(uow, copy, [row]):
        # The organizer's copy of this occurrence decides; until it is seen, any copy of the
        # moved occurrence is better than the series' original slot.
        _apply_details(row, snapshot, changes)
        _apply_participants(uow, row, copy, changes)
    else:
        _apply_own_response(row, copy, changes)
    _copy_tag(master, row, changes)
    return _finish(uow, row, changes)


def _exception_of(
    uow: UnitOfWork, copy: _Copy, link: ProviderLink | None
) -> tuple[Activity | None, Activity | None]:
    """(series master, exception row if stored) of an exception snapshot."""
    if link is not None:
        row = uow.session.get(Activity, link.activity_id)
        if row is not None and row.series_id is not None:
            return uow.session.get(Activity, row.series_id), row
    master = _find_master(uow, copy)
    if master is None:
        return None, None
    return master, _exception_row(uow, master.id, _original_start(copy.snapshot))


def _original_start(snapshot: MeetingSnapshot) -> dt.datetime:
    if snapshot.original_start is None:  # _problem() refuses such exceptions
        raise ValueError("exception without its original start")
    return snapshot.original_start.astimezone(dt.UTC)


def _rows(*rows: Activity | None) -> list[Activity]:
    return [row for row in rows if row is not None]


def _stored_exception(
    uow: UnitOfWork, master: Activity, original_start: dt.datetime, changes: _Changes
) -> Activity:
    """The series' exception row for `original_start`, created from the master if missing."""
    found = _exception_row(uow, master.id, original_start)
    if found is not None:
        return found
    row = _new_exception(master, original_start)
    stored = _insert(uow, row, lambda: _exception_row(uow, master.id, original_start))
    if stored is row:
        changes.changed = changes.created = True
    return stored


def _find_master(uow: UnitOfWork, copy: _Copy) -> Activity | None:
    """The series master: via this mailbox's link to it, else its iCalUID, else the hint."""
    snapshot = copy.snapshot
    if snapshot.series_provider_id:
        link = _find_link(
            uow, copy.org_id, snapshot.provider, copy.mailbox, snapshot.series_provider_id
        )
        master = uow.session.get(Activity, link.activity_id) if link is not None else None
        if master is not None and master.series_id is None:
            return master
    # Google instances share the series' iCalUID; Graph gives each occurrence its own.
    candidates = [_by_ical_uid(uow, copy.org_id, snapshot.ical_uid)]
    hint_id = snapshot.tag_hint.activity_id if snapshot.tag_hint is not None else None
    if _is_db_id(hint_id):
        candidates.append(uow.session.get(Activity, hint_id))
    for candidate in candidates:
        if (
            candidate is not None
            and candidate.org_id == copy.org_id
            and candidate.series_id is None
            and candidate.recurrence is not None
        ):
            return candidate
    return None


def _exception_row(uow: UnitOfWork, series_id: int, original_start: dt.datetime) -> Activity | None:
    return uow.session.scalar(
        select(Activity).where(
            Activity.series_id == series_id, Activity.original_start == original_start
        )
    )


def _exception_rows(uow: UnitOfWork, series_id: int) -> list[Activity]:
    return list(uow.session.scalars(select(Activity).where(Activity.series_id == series_id)))


def _new_exception(master: Activity, original_start: dt.datetime) -> Activity:
    """The occurrence at `original_start` as its own row, a copy of the series' values."""
    row = Activity(
        org_id=master.org_id,
        kind=master.kind,
        subject=master.subject,
        description=master.description,
        location=master.location,
        start_at=original_start,
        end_at=original_start + (master.end_at - master.start_at),
        time_zone=master.time_zone,
        all_day=master.all_day,
        status=ActivityStatus.PLANNED,
        owner_id=master.owner_id,
        company_id=master.company_id,
        visibility=master.visibility,
        show_as=master.show_as,
        reminder_minutes=master.reminder_minutes,
        ical_uid=master.ical_uid,
        series_id=master.id,
        original_start=original_start,
        origin=master.origin,
    )
    row.recurrence = None
    row.participants = [
        Participant(
            org_id=p.org_id,
            email=p.email,
            name=p.name,
            role=p.role,
            response=p.response,
            responded_at=p.responded_at,
            contact_id=p.contact_id,
            user_id=p.user_id,
        )
        for p in master.participants
    ]
    row.contact_links = [
        ActivityContact(org_id=master.org_id, contact_id=c.contact_id) for c in master.contact_links
    ]
    return row


def _apply_rule(uow: UnitOfWork, activity: Activity, copy: _Copy, changes: _Changes) -> None:
    """The series' rule, and its cancelled occurrences as cancelled exception rows."""
    snapshot = copy.snapshot
    if snapshot.event_type is not EventType.SERIES:
        if activity.recurrence is not None:  # the organizer made it a single meeting
            activity.recurrence = None
            changes.changed = True
        return
    before = _rule_state(activity.recurrence)
    # Exdates already stored came from the CRM's own rule (the API); the provider's cancelled
    # occurrences become exception rows instead, so they show as cancelled.
    stored = activity.recurrence.exdates if activity.recurrence is not None else []
    kept = [dt.datetime.fromisoformat(value) for value in stored]
    store_recurrence(activity, snapshot.rrule, kept)
    if _rule_state(activity.recurrence) != before:
        changes.changed = True
    _cancel_occurrences(uow, activity, snapshot.exdates, changes)


def _rule_state(row: Recurrence | None) -> tuple[object, ...] | None:
    if row is None:
        return None
    return (
        row.rrule,
        row.time_zone,
        row.local_start,
        tuple(row.exdates),
        row.first_start,
        row.last_end,
    )


def _cancel_occurrences(
    uow: UnitOfWork, master: Activity, starts: Iterable[dt.datetime], changes: _Changes
) -> None:
    for original_start in sorted({start.astimezone(dt.UTC) for start in starts}):
        occurrence = _Changes()
        row = _stored_exception(uow, master, original_start, occurrence)
        _cancel(uow, row, occurrence)
        # A cancelled occurrence changes the series; it does not cancel the series.
        changes.changed = changes.changed or occurrence.changed


# --------------------------------------------------------------------------- fields


def _apply_details(activity: Activity, snapshot: MeetingSnapshot, changes: _Changes) -> None:
    _assign(activity, _details(snapshot), changes)


def _details(snapshot: MeetingSnapshot) -> dict[str, object]:
    """The activity's fields the organizer's copy decides, besides people and the rule."""
    return {
        "subject": snapshot.subject[:_SUBJECT_MAX],
        "description": snapshot.body,
        "location": snapshot.location[:_LOCATION_MAX],
        "start_at": snapshot.start.astimezone(dt.UTC),
        "end_at": snapshot.end.astimezone(dt.UTC),
        "time_zone": _zone(snapshot.time_zone),
        "all_day": snapshot.all_day,
        "visibility": Visibility.PRIVATE if snapshot.private else Visibility.NORMAL,
        "show_as": snapshot.show_as,
        "reminder_minutes": snapshot.reminder_minutes,
    }


def _assign(target: object, values: Mapping[str, object], changes: _Changes) -> None:
    """Set only what differs, so an unchanged re-delivery leaves the row (and updated_at) alone."""
    for name, value in values.items():
        if getattr(target, name) != value:
            setattr(target, name, value)
            changes.changed = True


def _cancel(uow: UnitOfWork, activity: Activity, changes: _Changes) -> None:
    """Planned -> cancelled, for a series with its planned exception rows; held stays held."""
    if activity.status == ActivityStatus.PLANNED:
        activity.status = ActivityStatus.CANCELLED
        changes.changed = changes.cancelled = True
    if activity.recurrence is not None:
        for row in _exception_rows(uow, activity.id):
            if row.status == ActivityStatus.PLANNED:
                row.status = ActivityStatus.CANCELLED
                changes.changed = True


def _is_over(activity: Activity, now: dt.datetime) -> bool:
    if activity.recurrence is not None:
        last_end = activity.recurrence.last_end
        return last_end is not None and last_end <= now
    return activity.end_at <= now


def _fill_owner(uow: UnitOfWork, activity: Activity, copy: _Copy, changes: _Changes) -> None:
    """The organizer if a CRM user, else the user whose mailbox reported it first."""
    if activity.owner_id is not None:
        return
    user_id = _owner(uow, copy)
    if user_id is not None:
        activity.owner_id = user_id
        changes.changed = True


def _owner(uow: UnitOfWork, copy: _Copy) -> int | None:
    users = _user_ids(uow, copy.org_id, [e for e in (copy.organizer, copy.mailbox) if e])
    return users.get(copy.organizer) or users.get(copy.mailbox)


# --------------------------------------------------------------------------- people


def _is_authoritative(uow: UnitOfWork, copy: _Copy, rows: Sequence[Activity]) -> bool:
    """The organizer's copy, or an attendee's while no copy of the organizer's is linked."""
    if copy.snapshot.mailbox_is_organizer:
        return True
    # A sparse copy (a cancelled Google instance) may not name the organizer: the rows do.
    organizer = copy.organizer or _organizer_of(rows)
    if not organizer or organizer == copy.mailbox:
        return True
    organizer_link = uow.session.scalar(
        select(ProviderLink.id)
        .where(
            ProviderLink.org_id == copy.org_id,
            ProviderLink.activity_id.in_([row.id for row in rows]),
            ProviderLink.mailbox == organizer,
        )
        .limit(1)
    )
    return organizer_link is None


def _organizer_of(rows: Iterable[Activity]) -> str:
    for row in rows:
        for participant in row.participants:
            if participant.role == ParticipantRole.ORGANIZER:
                return participant.email
    return ""


def _is_organizer(uow: UnitOfWork, activity: Activity, mailbox: str) -> bool:
    rows = [activity]
    if activity.series_id is not None:
        master = uow.session.get(Activity, activity.series_id)
        rows += [master] if master is not None else []
    return _organizer_of(rows) == mailbox


def _people(copy: _Copy) -> dict[str, Attendee]:
    """Attendees by normalised e-mail, the organizer first (listed or not) and as organizer."""
    snapshot = copy.snapshot
    people: dict[str, Attendee] = {}
    if _usable_email(copy.organizer):
        people[copy.organizer] = Attendee(
            email=copy.organizer,
            name=snapshot.organizer_name,
            role=ParticipantRole.ORGANIZER,
            response=Response.ORGANIZER,
        )
    for attendee in snapshot.attendees:
        email = normalize_email(attendee.email)
        if not _usable_email(email):
            continue
        if email == copy.organizer:
            name = attendee.name or snapshot.organizer_name
            people[email] = replace(
                attendee, email=email, name=name, role=ParticipantRole.ORGANIZER
            )
        elif email not in people:
            # Only the organizer is the organizer, whatever a copy's list says.
            demoted = attendee.role == ParticipantRole.ORGANIZER
            people[email] = replace(
                attendee,
                email=email,
                role=ParticipantRole.REQUIRED if demoted else attendee.role,
                response=Response.NONE
                if attendee.response == Response.ORGANIZER
                else attendee.response,
            )
    return people


def _apply_participants(
    uow: UnitOfWork, activity: Activity, copy: _Copy, changes: _Changes
) -> None:
    """The attendee list as the authoritative copy has it; removed attendees disappear."""
    people = _people(copy)
    users = _user_ids(uow, copy.org_id, people)
    contacts = _contact_ids(uow, copy.org_id, people)
    current = {p.email: p for p in activity.participants}
    result: list[Participant] = []
    for email, attendee in people.items():
        participant = current.get(email)
        if participant is None:
            participant = Participant(
                org_id=copy.org_id, email=email, name="", response=Response.NONE
            )
            changes.changed = True
        _assign(
            participant,
            {
                # Google often lists people without a display name: keep the one we have.
                "name": attendee.name[:_NAME_MAX] or participant.name,
                "role": attendee.role,
                "user_id": users.get(email),
                "contact_id": contacts.get(email),
            },
            changes,
        )
        _merge_response(
            participant, attendee, own=email == copy.mailbox, now=copy.now, changes=changes
        )
        result.append(participant)
    if set(current) != set(people):
        activity.participants = result
        changes.changed = True


def _new_participants(uow: UnitOfWork, copy: _Copy) -> list[_NewParticipant]:
    """`_apply_participants` for a meeting that has none yet."""
    people = _people(copy)
    users = _user_ids(uow, copy.org_id, people)
    contacts = _contact_ids(uow, copy.org_id, people)
    result: list[_NewParticipant] = []
    for email, attendee in people.items():
        participant = _NewParticipant(
            email, attendee.name[:_NAME_MAX], attendee.role, users.get(email), contacts.get(email)
        )
        own = email == copy.mailbox
        _merge_response(participant, attendee, own=own, now=copy.now, changes=_Changes())
        result.append(participant)
    return result


def _apply_own_response(activity: Activity, copy: _Copy, changes: _Changes) -> None:
    """An attendee's copy next to the organizer's: only that attendee's own answer counts.

    Someone the organizer's list does not name (invited through a group, or removed) is not
    added: the organizer's list wins whatever order the copies arrive in.
    """
    attendee = _people(copy).get(copy.mailbox)
    participant = next((p for p in activity.participants if p.email == copy.mailbox), None)
    if attendee is not None and participant is not None:
        _merge_response(participant, attendee, own=True, now=copy.now, changes=changes)


class _Answer(Protocol):
    response: str
    responded_at: dt.datetime | None


class _Person(Protocol):
    @property
    def email(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def user_id(self) -> int | None: ...
    @property
    def contact_id(self) -> int | None: ...


def _merge_response(
    participant: _Answer, attendee: Attendee, *, own: bool, now: dt.datetime, changes: _Changes
) -> None:
    """Take the copy's answer unless the stored one is newer: answers never go back in time.

    An attendee's own copy is their current answer; without a time (Google gives none) it
    counts as given when observed. Other copies' untimed answers only replace untimed ones,
    and "no answer" replaces an answer only with a newer time.
    """
    response, at = attendee.response, attendee.responded_at
    stored_at = participant.responded_at
    changed = response != participant.response
    if at is None and own and response not in _NO_ANSWER and (changed or stored_at is None):
        # Observed now; also when another copy reported the same answer first, untimed.
        at = now
    if not changed:
        if at is not None and (stored_at is None or at > stored_at):
            participant.responded_at = at
            changes.changed = True
        return
    if at is None:
        take = stored_at is None and response != Response.NONE
    else:
        take = stored_at is None or at > stored_at
    if take:
        participant.response = response
        participant.responded_at = at
        changes.changed = True


def _decline(activity: Activity, mailbox: str, now: dt.datetime, changes: _Changes) -> None:
    """An attendee deleted their copy: that is their answer, observed now."""
    participant = next((p for p in activity.participants if p.email == mailbox), None)
    if participant is not None:
        declined = Attendee(email=mailbox, response=Response.DECLINED, responded_at=now)
        _merge_response(participant, declined, own=True, now=now, changes=changes)


# --------------------------------------------------------------------------- the tag


def _fill_tag(uow: UnitOfWork, activity: Activity, copy: _Copy, changes: _Changes) -> bool:
    """Fill an empty tag from the hint or a certain match; return whether a company was set."""
    company_id: int | None = None
    if activity.company_id is None:
        company_id, kind = _tag_company(uow, copy, activity.participants)
        if company_id is not None:
            activity.company_id = company_id
            changes.changed = True
        if kind is not None and activity.kind != kind:
            activity.kind = kind  # the kind is part of the tag the user chose
    with_hint = not activity.contact_links
    wanted = _tag_contacts(uow, copy, activity.participants, company_id, with_hint=with_hint)
    _add_contacts(activity, wanted, changes)
    return company_id is not None


def _tag_company(
    uow: UnitOfWork, copy: _Copy, participants: Sequence[_Person]
) -> tuple[int | None, ActivityKind | None]:
    """For an untagged meeting: the hint's company and kind, else a certain match (no kind)."""
    hint = copy.snapshot.tag_hint
    from_hint = _hint_company(uow, copy.org_id, hint)
    if from_hint is not None:
        return from_hint, _hint_kind(hint)
    return _certain_company(uow, copy, participants), None


def _tag_contacts(
    uow: UnitOfWork,
    copy: _Copy,
    participants: Sequence[_Person],
    company_id: int | None,
    *,
    with_hint: bool,
) -> list[int]:
    """Contacts to tag: the hint's (`with_hint`), and the attendees of a company just set."""
    hint = copy.snapshot.tag_hint
    wanted: list[int] = []
    if hint is not None and with_hint:
        wanted += _hint_contacts(uow, copy.org_id, hint)
    if company_id is not None:
        wanted += _attendee_contacts_of(uow, copy.org_id, participants, company_id)
    return list(dict.fromkeys(wanted))


def _hint_company(uow: UnitOfWork, org_id: int, hint: TagHint | None) -> int | None:
    company_id = hint.company_id if hint is not None else None
    if not _is_db_id(company_id):
        return None
    company = uow.session.get(Company, company_id)
    return company.id if company is not None and company.org_id == org_id else None


def _hint_contacts(uow: UnitOfWork, org_id: int, hint: TagHint) -> list[int]:
    ids = [i for i in dict.fromkeys(hint.contact_ids) if _is_db_id(i)]
    if not ids:
        return []
    found = set(
        uow.session.scalars(select(Contact.id).where(Contact.org_id == org_id, Contact.id.in_(ids)))
    )
    return [i for i in ids if i in found]


def _hint_kind(hint: TagHint | None) -> ActivityKind | None:
    kind = hint.kind if hint is not None else None
    return ActivityKind(kind) if kind in _MEETING_KINDS else None


def _attendee_contacts_of(
    uow: UnitOfWork, org_id: int, participants: Sequence[_Person], company_id: int
) -> list[int]:
    ids = [p.contact_id for p in participants if p.contact_id is not None]
    if not ids:
        return []
    companies = _contact_companies(uow, org_id, ids)
    of_company = {i for i in ids if i in companies and companies[i] == company_id}
    return [i for i in ids if i in of_company]


def _add_contacts(activity: Activity, contact_ids: Iterable[int], changes: _Changes) -> None:
    have = {link.contact_id for link in activity.contact_links}
    for contact_id in dict.fromkeys(contact_ids):
        if contact_id not in have:
            activity.contact_links.append(
                ActivityContact(org_id=activity.org_id, contact_id=contact_id)
            )
            changes.changed = True


def _certain_company(uow: UnitOfWork, copy: _Copy, participants: Sequence[_Person]) -> int | None:
    """The one company an externally organized meeting is with, when nothing points elsewhere.

    Every external attendee that is a known contact belongs to it, and every other external
    attendee's (non-free-mail) domain points to it. Free-mail strangers say nothing; rooms
    are not people. Internally organized meetings are tagged by their organizer (A1, A2).
    """
    if not copy.organizer:
        return None
    own_domains = _own_domains(uow, copy.org_id)
    if own_domains is None:
        return None

    def internal(email: str, user_id: int | None) -> bool:
        return user_id is not None or email_domain(email) in own_domains

    if internal(copy.organizer, _user_ids(uow, copy.org_id, [copy.organizer]).get(copy.organizer)):
        return None
    external = [
        p
        for p in participants
        if not internal(p.email, p.user_id) and p.role != ParticipantRole.RESOURCE
    ]
    contact_ids = [p.contact_id for p in external if p.contact_id is not None]
    companies_of_contacts = _contact_companies(uow, copy.org_id, contact_ids)
    domains = {
        email_domain(p.email)
        for p in external
        if p.contact_id is None and not is_free_mail(email_domain(p.email))
    }
    by_domain = _domain_companies(uow, copy.org_id, domains)
    found: set[int | None] = {companies_of_contacts.get(i) for i in contact_ids}
    found |= {by_domain.get(d) for d in domains}
    if len(found) != 1:
        return None
    return found.pop()  # None when the one "company" is a contact without one or a stranger


def _copy_tag(master: Activity, row: Activity, changes: _Changes) -> None:
    """An exception row of a tagged series is about the same company and contacts."""
    if row.company_id is None and master.company_id is not None:
        row.company_id = master.company_id
        changes.changed = True
    if not row.contact_links:
        _add_contacts(row, [c.contact_id for c in master.contact_links], changes)


def _share_tag_with_exceptions(uow: UnitOfWork, master: Activity, changes: _Changes) -> None:
    for row in _exception_rows(uow, master.id):
        _copy_tag(master, row, changes)


# --------------------------------------------------------------------------- links


def _find_link(
    uow: UnitOfWork, org_id: int, provider: Provider | str, mailbox: str, event_id: str
) -> ProviderLink | None:
    lookups = _lookups(uow, org_id)
    key = (str(provider), mailbox, event_id)
    if key in lookups.pending_links:
        _flush_pending(uow, lookups)  # a meeting new in this batch: stored now, then read back
    elif key in lookups.links:
        cached = lookups.links[key]
        if cached is not None and cached in uow.session.new:
            uow.flush()  # created earlier in this batch: stored now, as one by one would have
        return cached
    found = uow.session.scalar(
        select(ProviderLink).where(
            ProviderLink.org_id == org_id,
            ProviderLink.provider == str(provider),
            ProviderLink.mailbox == mailbox,
            ProviderLink.provider_event_id == event_id,
        )
    )
    if lookups.batch:
        lookups.links[key] = found
    return found


def _forget_link(uow: UnitOfWork, org_id: int, link: ProviderLink) -> None:
    lookups = _lookups(uow, org_id)
    key = (link.provider, link.mailbox, link.provider_event_id)
    if key in lookups.links:
        lookups.links[key] = None


def _record_link(
    uow: UnitOfWork, copy: _Copy, link: ProviderLink | None, activity: Activity
) -> ProviderLink:
    snapshot = copy.snapshot
    lookups = _lookups(uow, copy.org_id)
    if link is None:
        link = ProviderLink(
            org_id=copy.org_id,
            activity_id=activity.id,
            provider=str(snapshot.provider),
            mailbox=copy.mailbox,
            provider_event_id=snapshot.provider_event_id,
        )
        uow.session.add(link)
        if lookups.batch:
            lookups.links[(link.provider, link.mailbox, link.provider_event_id)] = link
    link.activity_id = activity.id
    for name, value in _link_fields(copy).items():
        setattr(link, name, value)
    return link


def _link_fields(copy: _Copy) -> dict[str, object]:
    """What a link records of the copy it was last synced from."""
    snapshot = copy.snapshot
    return {
        "ical_uid": snapshot.ical_uid or None,
        "series_master_id": snapshot.series_provider_id,
        "change_key": (snapshot.change_key or "")[:_CHANGE_KEY_MAX] or None,
        "last_synced_at": copy.now,
    }


# --------------------------------------------------------------------------- helpers


def _finish(
    uow: UnitOfWork, activity: Activity, changes: _Changes, *, declined: bool = False
) -> SyncOutcome:
    if changes.changed and not changes.created:
        # Participants, contacts and the rule live in other tables: the activity changed too.
        activity.updated_at = utcnow()
    if not _lookups(uow, activity.org_id).batch:
        uow.flush()  # in a batch (lookups_for) its end flushes, or the next query
    if changes.cancelled:
        action = SyncAction.CANCELLED
    elif changes.created:
        action = SyncAction.CREATED
    elif changes.changed:
        action = SyncAction.DECLINED if declined else SyncAction.UPDATED
    else:
        action = SyncAction.UNCHANGED
    return SyncOutcome(activity.id, action)


def _problem(snapshot: MeetingSnapshot) -> str | None:
    """Why a snapshot cannot be applied, or None."""
    times = (snapshot.start, snapshot.end, snapshot.original_start, *snapshot.exdates)
    if any(t is not None and t.tzinfo is None for t in times):
        return "naive date-time in the snapshot"
    if len(snapshot.provider_event_id) > _ID_MAX or len(snapshot.ical_uid) > _ID_MAX:
        return f"event id or iCalUID longer than {_ID_MAX} characters"
    if snapshot.event_type is EventType.EXCEPTION:
        if snapshot.original_start is None:
            return "exception without its original start"
        if snapshot.cancelled:
            return None  # only the original start is used
    elif snapshot.event_type is EventType.OCCURRENCE:
        return None
    elif not snapshot.ical_uid:
        return "meeting without an iCalUID"
    if snapshot.end < snapshot.start:
        return "meeting ends before it starts"
    if snapshot.event_type is EventType.SERIES:
        return _rule_problem(snapshot)
    return None


def _rule_problem(snapshot: MeetingSnapshot) -> str | None:
    if not snapshot.rrule:
        return "series master without a recurrence rule"
    zone = _zone(snapshot.time_zone)
    series = recurrence.Series(
        rrule=snapshot.rrule,
        start=snapshot.start.astimezone(ZoneInfo(zone)).replace(tzinfo=None, microsecond=0),
        duration=snapshot.end - snapshot.start,
        time_zone=zone,
        all_day=snapshot.all_day,
    )
    try:
        recurrence.parse_rule(snapshot.rrule)
        recurrence.series_end(series)
    except recurrence.InvalidRecurrence as error:
        return f"unusable recurrence rule: {error}"
    return None


def _zone(name: str) -> str:
    """The IANA zone, or UTC for one this system does not know (times are UTC anyway)."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return "UTC"
    return name


def _usable_email(email: str) -> bool:
    return bool(email) and len(email) <= _EMAIL_MAX and is_valid_email(email)


def _is_db_id(value: int | None) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _DB_ID_MAX
