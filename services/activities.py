"""Activities: create, change, cancel, and list with recurring series expanded in the range."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Select,
    String,
    Text,
    and_,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload, lazyload
from sqlalchemy.orm.attributes import set_committed_value

from services import recurrence
from services.auth import Principal
from services.companies import get_company
from services.contacts import contacts_by_email, get_contact
from services.errors import Forbidden, InvalidInput, NotFound
from services.organizations import users_by_email
from services.ports import EventIds, MailboxRef, ProviderError
from services.tables import (
    MULTI_DAY_WHERE,
    Activity,
    ActivityContact,
    ActivityKind,
    ActivityStatus,
    Mailbox,
    Participant,
    Provider,
    ProviderLink,
    Recurrence,
    Response,
    TaskStatus,
    User,
    Visibility,
)
from services.text import normalize_email
from services.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)

SIMPLE_FIELDS = (
    "kind",
    "subject",
    "description",
    "location",
    "status",
    "outcome",
    "visibility",
    "show_as",
    "reminder_minutes",
    "due_date",
    "priority",
    "task_status",
    "ical_uid",
)
_Select = TypeVar("_Select", bound=Select[*tuple[Any, ...]])


# Listing order and cursor: (start, activity id, original start of an occurrence). Activities
# that are not occurrences of a series sort before occurrences at the same start and id.
SortKey = tuple[dt.datetime, int, dt.datetime]
NOT_AN_OCCURRENCE = dt.datetime.min.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class ActivityItem:
    """An activity as one caller may see it; for a series occurrence, start/end are its own."""

    activity: Activity
    start: dt.datetime
    end: dt.datetime
    original_start: dt.datetime | None = None  # set on an expanded occurrence of a series
    masked: bool = False  # private activity of someone else: only "busy" is shown

    @property
    def sort_key(self) -> SortKey:
        return (self.start, self.activity.id, self.original_start or NOT_AN_OCCURRENCE)


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    owner_id: int | None = None
    company_id: int | None = None
    contact_id: int | None = None
    kinds: Sequence[str] = ()
    statuses: Sequence[str] = ()
    start: dt.datetime | None = None  # range start (inclusive), aware
    end: dt.datetime | None = None  # range end (exclusive), aware
    series_id: int | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[ActivityItem]
    next_after: SortKey | None = None


@dataclass(slots=True)
class _Pending:
    """Recurrence input collected while applying changes, validated once start/end are final."""

    rule: str | None = None
    exdates: list[dt.datetime] = field(default_factory=list)
    touched: bool = False


def _view(principal: Principal, activity: Activity) -> ActivityItem:
    return ActivityItem(
        activity=activity,
        start=activity.start_at,
        end=activity.end_at,
        masked=_masked(principal, activity),
    )


def _masked(principal: Principal, activity: Activity) -> bool:
    return activity.visibility == Visibility.PRIVATE and not principal.can_see_private(
        activity.owner_id
    )


def _load(uow: UnitOfWork, principal: Principal, activity_id: int) -> Activity:
    activity = uow.session.get(Activity, activity_id)
    if activity is None or activity.org_id != principal.org_id:
        raise NotFound(f"activity {activity_id} does not exist")
    return activity


def get_activity(uow: UnitOfWork, principal: Principal, activity_id: int) -> ActivityItem:
    return _view(principal, _load(uow, principal, activity_id))


def activity_for_event(
    uow_factory: Callable[..., UnitOfWork],
    principal: Principal,
    provider: Provider,
    event_id: str,
    ids: EventIds | None = None,
) -> ActivityItem:
    """The activity the calling user's own copy of a calendar event is linked to.

    The read-mode pane of an attendee asks with its item's id: their copy carries no tag (the
    organizer's custom properties stay on the organizer's item), but sync linked it. Only the
    caller's own mailbox is looked in, so an id of someone else's copy finds nothing. When the
    id is not one sync stored, `ids` (when given) translates it, outside any transaction: it
    asks the provider.
    """
    with uow_factory(read_only=True) as uow:
        mailbox = _own_mailbox(uow, principal, provider)
        found = _linked_activity(uow, principal, mailbox, event_id)
    if found is None and ids is not None:
        try:
            stored = ids.stored_event_id(mailbox, event_id)
        except ProviderError as failure:
            log.warning("activity_for_event.translate_failed reason=%s", failure.reason)
            stored = None
        if stored is not None and stored != event_id:
            with uow_factory(read_only=True) as uow:
                found = _linked_activity(uow, principal, mailbox, stored)
    if found is None:
        raise NotFound("this calendar event is not linked to a CRM activity (not synced yet?)")
    return found


def _own_mailbox(uow: UnitOfWork, principal: Principal, provider: Provider) -> MailboxRef:
    user = uow.session.get(User, principal.user_id) if principal.user_id is not None else None
    if user is None or user.org_id != principal.org_id:
        raise NotFound("only a user's own calendar can be looked up by event id")
    address = normalize_email(user.email)
    external_id = uow.session.scalar(
        select(Mailbox.external_id).where(
            Mailbox.org_id == principal.org_id,
            Mailbox.provider == provider,
            Mailbox.address == address,
        )
    )
    if external_id is None:
        raise NotFound(f"the calendar of {address} is not watched, so nothing is linked to it")
    return MailboxRef(principal.org_id, provider, address, external_id)


def _linked_activity(
    uow: UnitOfWork, principal: Principal, mailbox: MailboxRef, event_id: str
) -> ActivityItem | None:
    activity_id = uow.session.scalar(
        select(ProviderLink.activity_id).where(
            ProviderLink.org_id == principal.org_id,
            ProviderLink.provider == mailbox.provider,
            ProviderLink.mailbox == mailbox.address,
            ProviderLink.provider_event_id == event_id,
        )
    )
    return None if activity_id is None else get_activity(uow, principal, activity_id)


def _load_for_change(uow: UnitOfWork, principal: Principal, activity_id: int) -> Activity:
    activity = _load(uow, principal, activity_id)
    if _masked(principal, activity):
        raise Forbidden("this is another user's private activity")
    return activity


def _check_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput.field("time_zone", f"unknown IANA time zone: {name}") from None
    return name


def _set_owner(uow: UnitOfWork, principal: Principal, activity: Activity, owner_id: int) -> None:
    owner = uow.session.get(User, owner_id)
    if owner is None or owner.org_id != principal.org_id:
        raise InvalidInput.field("owner_id", f"no user {owner_id} in this organization")
    activity.owner_id = owner_id


def _set_participants(
    uow: UnitOfWork, org_id: int, activity: Activity, items: Iterable[Mapping[str, Any]]
) -> None:
    wanted: dict[str, Mapping[str, Any]] = {}
    for item in items:
        wanted[normalize_email(item["email"])] = item
    users = users_by_email(uow, org_id, wanted)
    contacts = contacts_by_email(uow, org_id, wanted)
    current = {p.email: p for p in activity.participants}
    result = []
    for email, item in wanted.items():
        participant = current.get(email) or Participant(org_id=org_id, email=email)
        participant.name = item.get("name", participant.name) or ""
        participant.role = item.get("role", participant.role) or "required"
        response = item.get("response", participant.response) or Response.NONE
        if response != participant.response:
            participant.responded_at = item.get("responded_at")
        participant.response = response
        user, contact = users.get(email), contacts.get(email)
        participant.user_id = user.id if user else None
        participant.contact_id = contact.id if contact else None
        result.append(participant)
    activity.participants = result


def _set_contacts(
    uow: UnitOfWork, org_id: int, activity: Activity, contact_ids: Iterable[int]
) -> None:
    ids = list(dict.fromkeys(contact_ids))
    for contact_id in ids:
        try:
            get_contact(uow, org_id, contact_id)
        except NotFound:
            raise InvalidInput.field("contact_ids", f"no contact {contact_id}") from None
    activity.contact_links = [
        ActivityContact(org_id=org_id, contact_id=contact_id) for contact_id in ids
    ]


def _apply(
    uow: UnitOfWork, principal: Principal, activity: Activity, changes: Mapping[str, Any]
) -> None:
    pending = _Pending()
    for name, value in changes.items():
        if name in SIMPLE_FIELDS:
            setattr(activity, name, value)
        elif name == "start":
            activity.start_at = value.astimezone(dt.UTC)
        elif name == "end":
            activity.end_at = value.astimezone(dt.UTC)
        elif name == "time_zone":
            activity.time_zone = _check_zone(value)
        elif name == "all_day":
            activity.all_day = bool(value)
        elif name == "owner_id":
            _set_owner(uow, principal, activity, value)
        elif name == "company_id":
            if value is not None:
                try:
                    get_company(uow, principal.org_id, value)
                except NotFound:
                    raise InvalidInput.field("company_id", f"no company {value}") from None
            activity.company_id = value
        elif name == "contact_ids":
            _set_contacts(uow, principal.org_id, activity, value)
        elif name == "participants":
            _set_participants(uow, principal.org_id, activity, value)
        elif name == "recurrence":
            pending.touched = True
            if value is not None:
                pending.rule = value["rule"]
                pending.exdates = list(value.get("exdates", ()))
        else:
            raise TypeError(f"unknown activity field: {name}")
    _complete_task_fields(activity)
    if activity.end_at < activity.start_at:
        raise InvalidInput.field("end", "must not be before start")
    if activity.series_id is not None and pending.touched:
        raise InvalidInput.field("recurrence", "an occurrence of a series cannot recur itself")
    if pending.touched:
        _set_recurrence(activity, pending)
    elif activity.recurrence is not None and {"start", "end", "time_zone"} & changes.keys():
        # Moving a series moves every occurrence: re-anchor the rule at the new start.
        exdates = [_parse_local(s) for s in activity.recurrence.exdates]
        _set_recurrence(activity, _Pending(activity.recurrence.rrule, exdates, touched=True))


def _complete_task_fields(activity: Activity) -> None:
    if activity.kind == ActivityKind.TASK:
        if activity.due_date is None:
            raise InvalidInput.field("due_date", "a task needs a due date")
        if activity.task_status is None:
            activity.task_status = TaskStatus.NOT_STARTED


def _initial_times(fields: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime, bool]:
    """Start, end and all-day of a new activity; a task without a slot sits on its due date."""
    start: dt.datetime | None = fields.get("start")
    end: dt.datetime | None = fields.get("end", start)
    if start is None and fields.get("kind") == ActivityKind.TASK:
        due: dt.date | None = fields.get("due_date")
        if due is None:
            raise InvalidInput.field("due_date", "a task needs a due date")
        start = end = dt.datetime.combine(due, dt.time(), dt.UTC)
        return start, end, fields.get("all_day", True)
    if start is None or end is None:
        missing = "start" if start is None else "end"
        raise InvalidInput.field(missing, "a meeting, call or visit needs a start and an end")
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC), fields.get("all_day", False)


def _parse_local(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value)


def _local(moment: dt.datetime, zone: str) -> dt.datetime:
    return moment.astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def _set_recurrence(activity: Activity, pending: _Pending) -> None:
    if pending.rule is None:
        activity.recurrence = None
        return
    try:
        recurrence.parse_rule(pending.rule)
    except recurrence.InvalidRecurrence as error:
        raise InvalidInput.field("recurrence.rule", str(error)) from None
    zone = activity.time_zone
    # All-day dates float: the stored UTC midnight *is* the date, in every zone.
    anchor_zone = "UTC" if activity.all_day else zone
    local_start = _local(activity.start_at, anchor_zone).replace(microsecond=0)
    # All-day dates are floating: an aware exdate names its UTC date (see services.recurrence).
    exdate_zone = "UTC" if activity.all_day else zone
    exdates = sorted({_local(e, exdate_zone) if e.tzinfo else e for e in pending.exdates})
    series = recurrence.Series(
        rrule=pending.rule,
        start=local_start,
        duration=activity.end_at - activity.start_at,
        time_zone=zone,
        exdates=frozenset(exdates),
        all_day=activity.all_day,
    )
    row = activity.recurrence or Recurrence(org_id=activity.org_id)
    row.rrule = pending.rule
    row.time_zone = zone
    row.local_start = local_start.isoformat()
    row.exdates = [e.isoformat() for e in exdates]
    row.first_start = activity.start_at
    row.last_end = recurrence.series_end(series)
    activity.recurrence = row


def _series(
    rule: str,
    local_start: str,
    time_zone: str,
    exdates: list[str],
    duration: dt.timedelta,
    all_day: bool,
) -> recurrence.Series:
    return recurrence.Series(
        rrule=rule,
        start=_parse_local(local_start),
        duration=duration,
        time_zone=time_zone,
        exdates=frozenset(_parse_local(s) for s in exdates),
        all_day=all_day,
    )


def create_activity(
    uow: UnitOfWork, principal: Principal, fields: Mapping[str, Any]
) -> ActivityItem:
    start, end, all_day = _initial_times(fields)
    activity = Activity(
        org_id=principal.org_id,
        kind=fields.get("kind", ActivityKind.MEETING),
        time_zone="UTC",
        status=ActivityStatus.PLANNED,
        start_at=start,
        end_at=end,
        all_day=all_day,
    )
    activity.participants = []
    activity.contact_links = []
    changes = {k: v for k, v in fields.items() if k not in ("start", "end", "all_day")}
    changes.setdefault("owner_id", principal.user_id)
    if changes["owner_id"] is None:
        raise InvalidInput.field("owner_id", "required when the caller is not a user")
    # Time zone first: the recurrence is anchored in it.
    ordered = {"time_zone": changes.pop("time_zone", "UTC"), **changes}
    _apply(uow, principal, activity, ordered)
    uow.session.add(activity)
    uow.flush()
    return _view(principal, activity)


def update_activity(
    uow: UnitOfWork, principal: Principal, activity_id: int, changes: Mapping[str, Any]
) -> ActivityItem:
    activity = _load_for_change(uow, principal, activity_id)
    ordered = dict(changes)
    if "time_zone" in ordered:
        ordered = {"time_zone": ordered.pop("time_zone"), **ordered}
    _apply(uow, principal, activity, ordered)
    uow.flush()
    return _view(principal, activity)


def cancel_activity(uow: UnitOfWork, principal: Principal, activity_id: int) -> ActivityItem:
    """Cancelled activities stay in history (scenario B3); cancelling twice is harmless."""
    activity = _load_for_change(uow, principal, activity_id)
    activity.status = ActivityStatus.CANCELLED
    uow.flush()
    return _view(principal, activity)


def _filtered(stmt: _Select, principal: Principal, flt: ActivityFilter) -> _Select:
    stmt = stmt.where(Activity.org_id == principal.org_id)
    if flt.owner_id is not None:
        stmt = stmt.where(Activity.owner_id == flt.owner_id)
    if flt.company_id is not None:
        stmt = stmt.where(Activity.company_id == flt.company_id)
    if flt.contact_id is not None:
        stmt = stmt.where(
            Activity.id.in_(
                select(ActivityContact.activity_id).where(
                    ActivityContact.contact_id == flt.contact_id
                )
            )
        )
    if flt.kinds:
        stmt = stmt.where(Activity.kind.in_(flt.kinds))
    if flt.statuses:
        stmt = stmt.where(Activity.status.in_(flt.statuses))
    if flt.series_id is not None:
        stmt = stmt.where(Activity.series_id == flt.series_id)
    if flt.company_id is not None or flt.contact_id is not None:
        # Who a private meeting is with is private too: don't reveal it through the filters.
        visible_private = (
            Activity.owner_id == principal.user_id if principal.user_id is not None else false()
        )
        stmt = stmt.where(or_(Activity.visibility != Visibility.PRIVATE, visible_private))
    return stmt


def list_activities(
    uow: UnitOfWork,
    principal: Principal,
    flt: ActivityFilter,
    *,
    after: SortKey | None = None,
    limit: int = 100,
) -> Page:
    """Activities ordered by start. With a date range, series are expanded into occurrences."""
    if flt.start is None or flt.end is None:
        return _list_stored(uow, principal, flt, after, limit)
    return _list_range(uow, principal, flt, flt.start, flt.end, after, limit)


def _after_clause(after: SortKey | None) -> Any:
    if after is None:
        return True
    start, last_id, _ = after
    return or_(Activity.start_at > start, and_(Activity.start_at == start, Activity.id > last_id))


def _page(items: list[ActivityItem], limit: int) -> Page:
    if len(items) > limit:
        items = items[:limit]
        return Page(items=items, next_after=items[-1].sort_key)
    return Page(items=items)


def _list_stored(
    uow: UnitOfWork,
    principal: Principal,
    flt: ActivityFilter,
    after: SortKey | None,
    limit: int,
) -> Page:
    stmt = _filtered(select(Activity), principal, flt)
    if flt.start is not None:
        stmt = stmt.where(Activity.end_at >= flt.start)
    if flt.end is not None:
        stmt = stmt.where(Activity.start_at < flt.end)
    stmt = stmt.where(_after_clause(after)).order_by(Activity.start_at, Activity.id)
    rows = uow.session.scalars(stmt.limit(limit + 1)).all()
    return _page([_view(principal, a) for a in rows], limit)


# Where an activity or one occurrence falls, known before its row is loaded: (start, activity id,
# original start or NOT_AN_OCCURRENCE, end). Tuples, as they are made by the thousand: the first
# three items are the sort key, so a list of slots sorts in listing order.
_Slot = tuple[dt.datetime, int, dt.datetime, dt.datetime]

# Single activities that started up to this long before a range are looked up by start; older
# ones that still run into it last longer than this, so they are in the partial index of
# multi-day activities (more than 36 hours: MULTI_DAY_WHERE, migration 0005).
_RECENT = dt.timedelta(days=2)
_DAY = dt.timedelta(days=1)
_TICK = dt.timedelta(microseconds=1)


def _list_range(
    uow: UnitOfWork,
    principal: Principal,
    flt: ActivityFilter,
    start: dt.datetime,
    end: dt.datetime,
    after: SortKey | None,
    limit: int,
) -> Page:
    """A range can meet thousands of activities and occurrences; only the page's rows are loaded
    as full activities. The rest is decided on a few columns, stretch by stretch from the start:
    a busy calendar fills a page within days."""
    singles = _SinglesInRange(uow, principal, flt, after, limit)
    series = _SeriesInRange(uow, principal, flt, start, end)
    slots = singles.running(start)
    # Nothing that starts before the cursor's start can make the page.
    done = min(max(start, after[0]), end) if after else start
    # A pass over the series costs about the same however long a stretch it expands, so the
    # first stretch is one expected to fill the page, and each next one twice the last.
    days = 1.5 * (limit + 1) / series.occurrences_per_day if series else math.inf
    upto = end if days >= (end - done) / _DAY else done + max(_DAY * days, _TICK)
    while True:
        found = singles.starting(done, upto)
        slots += found
        slots += series.slots(done, upto, after, running=done == start)
        # More singles than a page in the stretch: the page ends at the last one at the latest.
        if len(found) > limit or upto >= end or sum(slot[0] < upto for slot in slots) > limit:
            break
        done, upto = upto, min(end, upto + (upto - done) * 2)
    slots.sort()
    more = len(slots) > limit
    slots = slots[:limit]
    loaded = _load_activities(uow, {slot[1] for slot in slots})
    items = []
    for slot_start, activity_id, original_start, slot_end in slots:
        activity = loaded[activity_id]
        items.append(
            ActivityItem(
                activity,
                slot_start,
                slot_end,
                None if original_start is NOT_AN_OCCURRENCE else original_start,
                _masked(principal, activity),
            )
        )
    return Page(items=items, next_after=items[-1].sort_key if more else None)


class _SinglesInRange:
    """Single activities and stored exception occurrences, read as slots in listing order, up to
    one more than the page at a time: what starts in a stretch, and what runs at the start."""

    def __init__(
        self,
        uow: UnitOfWork,
        principal: Principal,
        flt: ActivityFilter,
        after: SortKey | None,
        limit: int,
    ) -> None:
        self._uow = uow
        self._org_id = principal.org_id
        self._limit = limit
        series_masters = select(Recurrence.activity_id).where(Recurrence.org_id == self._org_id)
        stmt = _filtered(select(Activity.id, Activity.start_at, Activity.end_at), principal, flt)
        # NOT IN an uncorrelated subquery is hashed once per statement; an anti-join is planned
        # from table statistics, and stale ones after a bulk load made PostgreSQL loop over
        # the recurrences for every activity.
        self._singles = stmt.where(Activity.id.not_in(series_masters), _after_clause(after))

    def starting(self, start: dt.datetime, end: dt.datetime) -> list[_Slot]:
        """Those that start in [start, end)."""
        return self._read(self._singles.where(Activity.start_at >= start, Activity.start_at < end))

    def running(self, start: dt.datetime) -> list[_Slot]:
        """Those that started before `start` and still run: from the start index the ones that
        started shortly before; older ones are multi-day, and their ids come from the partial
        index alone (it holds every column the lookup needs, so no planner prefers another)."""
        session = self._uow.session
        running = self._singles.where(Activity.end_at > start)
        slots = self._read(
            running.where(Activity.start_at >= start - _RECENT, Activity.start_at < start)
        )
        multi_day = session.scalars(
            select(Activity.id).where(
                Activity.org_id == self._org_id,
                Activity.end_at > start,
                Activity.start_at < start - _RECENT,
                text(MULTI_DAY_WHERE[session.get_bind().dialect.name]),
            )
        ).all()
        if multi_day:
            slots += self._read(running.where(_id_in(session, Activity.id, list(multi_day))))
        return slots

    def _read(self, stmt: Select[int, dt.datetime, dt.datetime]) -> list[_Slot]:
        ordered = stmt.order_by(Activity.start_at, Activity.id).limit(self._limit + 1)
        return [
            (start_at, id_, NOT_AN_OCCURRENCE, end_at)
            for id_, start_at, end_at in self._uow.session.execute(ordered)
        ]


class _SeriesInRange:
    """The series whose span meets a range, read once, expanded for parts of the range."""

    def __init__(
        self,
        uow: UnitOfWork,
        principal: Principal,
        flt: ActivityFilter,
        start: dt.datetime,
        end: dt.datetime,
    ) -> None:
        # Read from the recurrences' (org, first start, last end) index, not from activities.
        # Exdates come as their JSON text, decoded only when there are any: most lists are empty.
        stmt = _filtered(
            select(
                Activity.id, Activity.start_at, Activity.end_at, Activity.all_day,
                Recurrence.rrule, Recurrence.time_zone, Recurrence.local_start,
                cast(Recurrence.exdates, Text),
            ),
            principal,
            flt,
        ).join(Recurrence, Recurrence.activity_id == Activity.id)  # fmt: skip
        rows = uow.session.execute(
            stmt.where(
                Recurrence.org_id == principal.org_id,
                Recurrence.first_start < end,
                or_(Recurrence.last_end.is_(None), Recurrence.last_end > start),
            )
        ).all()
        overridden: dict[int, set[dt.datetime]] = {}
        if rows:
            # Exceptions can only replace occurrences that start before the end, and after the
            # start less the longest duration.
            earliest = start - max(end_at - start_at for _, start_at, end_at, *_ in rows)
            exceptions = select(Activity.series_id, Activity.original_start).where(
                _id_in(uow.session, Activity.series_id, [row[0] for row in rows]),
                Activity.original_start >= earliest,
                Activity.original_start < end,
            )
            for series_id, original_start in uow.session.execute(exceptions):
                if series_id is not None and original_start is not None:
                    overridden.setdefault(series_id, set()).add(original_start)
        # Rows are unpacked as tuples: reading hundreds of Row attributes by name costs more.
        self._series: list[tuple[int, recurrence.Series, Container[dt.datetime]]] = [
            (
                id_,
                _series(rule, local_start, zone, _exdates(exdates), end_at - start_at, all_day),
                overridden.get(id_, frozenset()),
            )
            for id_, start_at, end_at, all_day, rule, zone, local_start, exdates in rows
        ]

    def __bool__(self) -> bool:
        return bool(self._series)

    @property
    def occurrences_per_day(self) -> float:
        """An estimate, for sizing the stretches to expand."""
        return sum(recurrence.occurrences_per_day(series.rrule) for _, series, _ in self._series)

    def slots(
        self, start: dt.datetime, end: dt.datetime, after: SortKey | None, *, running: bool
    ) -> list[_Slot]:
        """Occurrences that start in [start, end) and sort after the cursor, and with `running`
        also those that started before `start` and still run."""
        found: list[_Slot] = []
        for activity_id, series, skip in self._series:
            duration = series.duration
            for occ_start in recurrence.expand_starts(series, start, end, skip=skip):
                if occ_start < start and not running:
                    continue  # the stretch before has it
                if after is None or (occ_start, activity_id, occ_start) > after:
                    found.append((occ_start, activity_id, occ_start, occ_start + duration))
        return found


def _load_activities(uow: UnitOfWork, ids: set[int]) -> dict[int, Activity]:
    """The page's activities with their recurrence, participants and contacts, all loaded.

    The recurrence comes in the same statement. The collections are loaded here rather than
    by the relationships' selectin loaders, which send one bound parameter per id: hundreds a
    page, and on PostgreSQL rendering, converting and parsing those cost more than the rows.
    """
    session = uow.session
    ordered = sorted(ids)
    activities = session.scalars(
        select(Activity)
        .where(_id_in(session, Activity.id, ordered))
        .options(
            joinedload(Activity.recurrence),
            lazyload(Activity.participants),
            lazyload(Activity.contact_links),
        )
    ).all()
    participants: dict[int, list[Participant]] = {}
    for participant in session.scalars(
        select(Participant)
        .where(_id_in(session, Participant.activity_id, ordered))
        .order_by(Participant.id)
    ):
        participants.setdefault(participant.activity_id, []).append(participant)
    links: dict[int, list[ActivityContact]] = {}
    for link in session.scalars(
        select(ActivityContact).where(_id_in(session, ActivityContact.activity_id, ordered))
    ):
        links.setdefault(link.activity_id, []).append(link)
    for activity in activities:
        set_committed_value(activity, "participants", participants.get(activity.id, []))
        set_committed_value(activity, "contact_links", links.get(activity.id, []))
    return {activity.id: activity for activity in activities}


def _exdates(text: str) -> list[str]:
    return json.loads(text) if text != "[]" else []


def _id_in(
    session: Session, column: InstrumentedAttribute[Any], ids: list[int]
) -> ColumnElement[bool]:
    """`column IN ids` with the ids in one text parameter (an array literal on PostgreSQL, JSON on
    SQLite), unpacked by a set-returning function: the statement stays the same whatever their
    number, with no bound-parameter limit; psycopg sends a string for a fraction of what a list
    costs; and the planner joins with the ids. (`= ANY(array)` from text is tested against every
    row of a sequential scan, which PostgreSQL chooses before a new table is analyzed.)"""
    if session.get_bind().dialect.name == "postgresql":
        array = cast(
            bindparam(None, "{" + ",".join(map(str, ids)) + "}", String), ARRAY(BigInteger)
        )
        return column.in_(select(func.unnest(array)))
    return column.in_(select(literal_column("value")).select_from(func.json_each(json.dumps(ids))))


def store_recurrence(
    activity: Activity, rule: str | None, exdates: Iterable[dt.datetime] = ()
) -> None:
    """Set (or, with no rule, clear) a series' rule exactly as the API stores it.

    For services outside this module (services.sync). Aware exdates are instants, naive ones
    wall-clock starts in the series' zone. Raises InvalidInput for a rule the store refuses.
    """
    _set_recurrence(activity, _Pending(rule, list(exdates), touched=True))
