"""Sync rules (services.sync) on real databases: snapshots in, CRM activities out."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import func, select

from services import activities, companies, contacts, organizations, sync
from services.activities import ActivityFilter, ActivityItem
from services.auth import Principal, PrincipalKind
from services.meetings import Attendee, EventType, MeetingSnapshot, Removed, TagHint
from services.sync import SyncAction, SyncOutcome
from services.tables import (
    Activity,
    ParticipantRole,
    Provider,
    ProviderLink,
    Recurrence,
    Response,
    ShowAs,
)
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant, make_tenant, table_counts

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)
# Sync's clock: the meetings below are all in the future of it.
NOW = dt.datetime(2030, 1, 1, 12, tzinfo=UTC)
START = dt.datetime(2030, 3, 4, 9, tzinfo=UTC)  # a Monday, 10:00 in Oslo
LINDA = "linda@northwind.example"
JULIE = "julie@northwind.example"
OLA = "ola@acme.example"  # a contact at Acme
KARI = "kari@acme.example"  # not a contact, but acme.example is Acme's domain
BOB = "bob@initech.example"  # a contact at Initech
SAM = "sam@gmail.com"  # a stranger on free mail


@dataclass(frozen=True)
class World:
    """The Northwind organization: users Linda and Julie, companies Acme and Initech."""

    tenant: Tenant
    julie_id: int
    acme_id: int
    initech_id: int
    ola_id: int
    bob_id: int

    @property
    def org_id(self) -> int:
        return self.tenant.org_id

    @property
    def linda_id(self) -> int:
        return self.tenant.user_id


@pytest.fixture
def world(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> World:
    with uow_factory() as uow:
        julie = organizations.add_user(uow, org_id=tenant.org_id, email=JULIE, display_name="Julie")
        acme = companies.create_company(uow, tenant.org_id, name="Acme", domains=["acme.example"])
        initech = companies.create_company(
            uow, tenant.org_id, name="Initech", domains=["initech.example"]
        )
        ola = contacts.create_contact(
            uow, tenant.org_id, {"first_name": "Ola", "emails": [OLA], "company_id": acme.id}
        )
        bob = contacts.create_contact(
            uow, tenant.org_id, {"first_name": "Bob", "emails": [BOB], "company_id": initech.id}
        )
        uow.commit()
    return World(tenant, julie.id, acme.id, initech.id, ola.id, bob.id)


# --------------------------------------------------------------------------- builders


def linda_copy(**changes: Any) -> MeetingSnapshot:
    """Linda's Outlook copy of a meeting she organizes with Julie and Ola."""
    snapshot = MeetingSnapshot(
        provider=Provider.MICROSOFT,
        mailbox=LINDA,
        provider_event_id="linda-1",
        ical_uid="uid-1",
        event_type=EventType.SINGLE,
        start=START,
        end=START + HOUR,
        time_zone="Europe/Oslo",
        subject="Kickoff",
        body="Agenda",
        location="Room 1",
        organizer_email=LINDA,
        organizer_name="Linda",
        mailbox_is_organizer=True,
        attendees=(
            Attendee(LINDA, "Linda", ParticipantRole.ORGANIZER, Response.ORGANIZER),
            Attendee(JULIE, "Julie"),
            Attendee(OLA, "Ola Nordmann"),
        ),
        change_key="ck-1",
    )
    return replace(snapshot, **changes)


def julie_copy(**changes: Any) -> MeetingSnapshot:
    """Julie's Google copy of the same meeting: she is an attendee."""
    defaults: dict[str, Any] = {
        "provider": Provider.GOOGLE,
        "mailbox": JULIE,
        "provider_event_id": "julie-1",
        "mailbox_is_organizer": False,
        "change_key": "etag-1",
    }
    return linda_copy(**(defaults | changes))


def external_copy(mailbox: str, *attendees: str, **changes: Any) -> MeetingSnapshot:
    """`mailbox`'s copy of a meeting Ola (Acme) organizes, with the given other attendees."""
    people = (
        Attendee(OLA, "Ola Nordmann", ParticipantRole.ORGANIZER, Response.ORGANIZER),
        *(Attendee(email, email.split("@")[0].title()) for email in attendees),
    )
    defaults: dict[str, Any] = {
        "provider": Provider.GOOGLE if mailbox == JULIE else Provider.MICROSOFT,
        "mailbox": mailbox,
        "provider_event_id": f"{mailbox.split('@')[0]}-ext",
        "ical_uid": "uid-ext",
        "organizer_email": OLA,
        "organizer_name": "Ola Nordmann",
        "mailbox_is_organizer": False,
        "attendees": people,
        "subject": "Acme visit",
    }
    return linda_copy(**(defaults | changes))


def series_copy(**changes: Any) -> MeetingSnapshot:
    """Linda's weekly Monday series with no end."""
    defaults: dict[str, Any] = {
        "provider_event_id": "linda-series",
        "ical_uid": "uid-series",
        "event_type": EventType.SERIES,
        "subject": "Weekly sync",
        "rrule": "FREQ=WEEKLY;BYDAY=MO",
        "change_key": "ck-s1",
    }
    return linda_copy(**(defaults | changes))


def exception_copy(original: dt.datetime, **changes: Any) -> MeetingSnapshot:
    """Linda's Outlook copy of one changed occurrence (Graph: its own iCalUId)."""
    defaults: dict[str, Any] = {
        "provider_event_id": f"linda-series-{original:%m%d}",
        "ical_uid": f"uid-series-{original:%m%d}",
        "event_type": EventType.EXCEPTION,
        "series_provider_id": "linda-series",
        "original_start": original,
        "start": original,
        "end": original + HOUR,
        "subject": "Weekly sync",
        "change_key": f"ck-e-{original:%m%d}",
    }
    return linda_copy(**(defaults | changes))


# --------------------------------------------------------------------------- helpers


def apply(
    uow_factory: UnitOfWorkFactory, org_id: int, snapshot: MeetingSnapshot, now: dt.datetime = NOW
) -> SyncOutcome:
    with uow_factory() as uow:
        outcome = sync.apply_snapshot(uow, org_id, snapshot, now=now)
        uow.commit()
    return outcome


def remove(
    uow_factory: UnitOfWorkFactory,
    org_id: int,
    snapshot: MeetingSnapshot,
    now: dt.datetime = NOW,
) -> SyncOutcome:
    removed = Removed(snapshot.provider, snapshot.mailbox, snapshot.provider_event_id)
    with uow_factory() as uow:
        outcome = sync.apply_removed(uow, org_id, removed, now=now)
        uow.commit()
    return outcome


def load(uow_factory: UnitOfWorkFactory, activity_id: int | None) -> Activity:
    """The activity with its participants, contacts and rule loaded (detached)."""
    assert activity_id is not None
    with uow_factory(read_only=True) as uow:
        activity = uow.session.get(Activity, activity_id)
        assert activity is not None
        return activity


def responses(activity: Activity) -> dict[str, tuple[str, dt.datetime | None]]:
    return {p.email: (p.response, p.responded_at) for p in activity.participants}


def links(uow_factory: UnitOfWorkFactory, activity_id: int | None) -> list[tuple[str, str, str]]:
    with uow_factory(read_only=True) as uow:
        rows = uow.session.scalars(
            select(ProviderLink).where(ProviderLink.activity_id == activity_id)
        )
        return sorted((r.provider, r.mailbox, r.provider_event_id) for r in rows)


def count_activities(uow_factory: UnitOfWorkFactory, org_id: int) -> int:
    with uow_factory(read_only=True) as uow:
        return uow.session.execute(
            select(func.count()).select_from(Activity).where(Activity.org_id == org_id)
        ).scalar_one()


def as_user(org_id: int, user_id: int | None) -> Principal:
    return Principal(org_id, user_id, PrincipalKind.API_KEY, "test")


def listed(
    uow_factory: UnitOfWorkFactory,
    principal: Principal,
    start: dt.datetime,
    end: dt.datetime,
    **flt: Any,
) -> list[ActivityItem]:
    with uow_factory(read_only=True) as uow:
        page = activities.list_activities(
            uow, principal, ActivityFilter(start=start, end=end, **flt)
        )
        return page.items


# --------------------------------------------------------------------------- A3: tag survives


def test_a3_adopts_the_addin_activity_exactly_once(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # The add-in created the activity (with its tag) before Outlook saved the meeting.
    with uow_factory() as uow:
        draft = activities.create_activity(
            uow,
            as_user(world.org_id, world.linda_id),
            {
                "kind": "visit",
                "subject": "Draft",
                "start": START,
                "end": START + HOUR,
                "company_id": world.acme_id,
                "contact_ids": [world.ola_id],
            },
        )
        uow.commit()
    draft_id = draft.activity.id
    hint = TagHint(company_id=world.acme_id, activity_id=draft_id, kind="visit")

    outcome = apply(uow_factory, world.org_id, linda_copy(tag_hint=hint))

    assert outcome == SyncOutcome(draft_id, SyncAction.UPDATED)
    adopted = load(uow_factory, draft_id)
    assert (adopted.ical_uid, adopted.subject, adopted.kind) == ("uid-1", "Kickoff", "visit")
    assert adopted.company_id == world.acme_id
    assert [c.contact_id for c in adopted.contact_links] == [world.ola_id]

    # Julie's copy (no hint: tags never reach attendees) joins the same activity.
    assert apply(uow_factory, world.org_id, julie_copy()).activity_id == draft_id
    assert links(uow_factory, draft_id) == [
        ("google", JULIE, "julie-1"),
        ("microsoft", LINDA, "linda-1"),
    ]

    # A copy of the Outlook item carries the same hint, but the draft is taken: a new activity.
    copied = apply(
        uow_factory,
        world.org_id,
        linda_copy(provider_event_id="linda-2", ical_uid="uid-2", tag_hint=hint),
    )
    assert copied.action is SyncAction.CREATED
    assert copied.activity_id != draft_id
    assert load(uow_factory, copied.activity_id).company_id == world.acme_id

    # Outlook later drops the custom property: the tag of record stays.
    later = apply(uow_factory, world.org_id, linda_copy(subject="Kickoff v2", change_key="ck-2"))
    assert later == SyncOutcome(draft_id, SyncAction.UPDATED)
    kept = load(uow_factory, draft_id)
    assert (kept.subject, kept.company_id) == ("Kickoff v2", world.acme_id)
    assert [c.contact_id for c in kept.contact_links] == [world.ola_id]
    assert count_activities(uow_factory, world.org_id) == 2


def test_hint_fills_an_empty_tag_with_this_organizations_ids_only(
    uow_factory: UnitOfWorkFactory, world: World, other_tenant: Tenant
) -> None:
    with uow_factory() as uow:
        foreign = companies.create_company(uow, other_tenant.org_id, name="Foreign")
        foreign_contact = contacts.create_contact(
            uow, other_tenant.org_id, {"first_name": "Hank", "company_id": foreign.id}
        )
        uow.commit()
    bad = TagHint(company_id=foreign.id, contact_ids=(foreign_contact.id, 2**70), kind="task")
    first = apply(uow_factory, world.org_id, linda_copy(tag_hint=bad))
    untagged = load(uow_factory, first.activity_id)
    assert (untagged.company_id, untagged.contact_links, untagged.kind) == (None, [], "meeting")

    good = TagHint(company_id=world.acme_id, contact_ids=(world.ola_id,), kind="call")
    apply(uow_factory, world.org_id, linda_copy(tag_hint=good, change_key="ck-2"))
    tagged = load(uow_factory, first.activity_id)
    assert (tagged.company_id, tagged.kind) == (world.acme_id, "call")
    assert [c.contact_id for c in tagged.contact_links] == [world.ola_id]

    # A user re-tags in the CRM: a later hint never overwrites that.
    with uow_factory() as uow:
        activities.update_activity(
            uow,
            as_user(world.org_id, world.linda_id),
            tagged.id,
            {"company_id": world.initech_id, "contact_ids": [world.bob_id]},
        )
        uow.commit()
    apply(uow_factory, world.org_id, linda_copy(tag_hint=good, change_key="ck-3"))
    retagged = load(uow_factory, first.activity_id)
    assert retagged.company_id == world.initech_id
    assert [c.contact_id for c in retagged.contact_links] == [world.bob_id]


def test_hint_company_links_the_attendees_who_are_its_contacts(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    snapshot = linda_copy(
        attendees=(*linda_copy().attendees, Attendee(BOB, "Bob")),
        tag_hint=TagHint(company_id=world.acme_id),
    )
    activity = load(uow_factory, apply(uow_factory, world.org_id, snapshot).activity_id)
    assert activity.company_id == world.acme_id
    # Ola is Acme's contact; Bob (Initech) attends too but is not what the meeting is about.
    assert [c.contact_id for c in activity.contact_links] == [world.ola_id]


# --------------------------------------------------------------------------- B1, B2


def test_b1_reschedule_follows_the_organizer(uow_factory: UnitOfWorkFactory, world: World) -> None:
    created = apply(uow_factory, world.org_id, linda_copy())
    assert created.action is SyncAction.CREATED
    moved = START + dt.timedelta(days=1, hours=2)
    outcome = apply(
        uow_factory, world.org_id, linda_copy(start=moved, end=moved + HOUR, change_key="ck-2")
    )
    assert outcome == SyncOutcome(created.activity_id, SyncAction.UPDATED)

    # Julie's copy is stale and says something else: only her answer counts from it.
    apply(uow_factory, world.org_id, julie_copy(subject="Old", location="Elsewhere"))
    with uow_factory(read_only=True) as uow:
        assert created.activity_id is not None
        item = activities.get_activity(
            uow, as_user(world.org_id, world.linda_id), created.activity_id
        )
    assert (item.start, item.end) == (moved, moved + HOUR)
    assert (item.activity.subject, item.activity.location) == ("Kickoff", "Room 1")
    assert item.activity.time_zone == "Europe/Oslo"


def test_b2_responses_are_kept_per_participant_and_never_go_back(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    t1, t2, t3 = (dt.datetime(2030, 1, 2, h, tzinfo=UTC) for h in (8, 9, 10))

    def with_ola(response: Response, at: dt.datetime | None, key: str) -> MeetingSnapshot:
        people = (
            Attendee(LINDA, "Linda", ParticipantRole.ORGANIZER, Response.ORGANIZER),
            Attendee(JULIE, "Julie"),
            Attendee(OLA, "Ola Nordmann", response=response, responded_at=at),
        )
        return linda_copy(attendees=people, change_key=key)

    activity_id = apply(uow_factory, world.org_id, with_ola(Response.ACCEPTED, t2, "a")).activity_id
    assert responses(load(uow_factory, activity_id))[OLA] == ("accepted", t2)

    # An older answer (delivered late) does not overwrite the newer one...
    apply(uow_factory, world.org_id, with_ola(Response.DECLINED, t1, "b"))
    assert responses(load(uow_factory, activity_id))[OLA] == ("accepted", t2)
    # ...a newer one does, and "no answer" without a time never replaces an answer.
    apply(uow_factory, world.org_id, with_ola(Response.TENTATIVE, t3, "c"))
    apply(uow_factory, world.org_id, with_ola(Response.NONE, None, "d"))
    assert responses(load(uow_factory, activity_id))[OLA] == ("tentative", t3)

    # Julie answers in Google, which gives no time: it counts from when sync saw it.
    seen = NOW + HOUR
    julie = Attendee(JULIE, "Julie", response=Response.ACCEPTED)
    apply(
        uow_factory,
        world.org_id,
        julie_copy(attendees=(julie,), change_key="e-1"),
        now=seen,
    )
    got = responses(load(uow_factory, activity_id))
    assert got[JULIE] == ("accepted", seen)
    assert got[LINDA] == ("organizer", None)
    assert got[OLA] == ("tentative", t3)


# --------------------------------------------------------------------------- B3


def test_b3_organizer_removal_cancels_and_keeps_history(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    activity_id = apply(uow_factory, world.org_id, linda_copy()).activity_id
    apply(uow_factory, world.org_id, julie_copy())

    outcome = remove(uow_factory, world.org_id, linda_copy())

    assert outcome == SyncOutcome(activity_id, SyncAction.CANCELLED)
    assert load(uow_factory, activity_id).status == "cancelled"
    assert links(uow_factory, activity_id) == [("google", JULIE, "julie-1")]
    history = listed(
        uow_factory,
        as_user(world.org_id, world.linda_id),
        START - HOUR,
        START + HOUR,
        statuses=["cancelled"],
    )
    assert [(i.activity.id, i.activity.subject) for i in history] == [(activity_id, "Kickoff")]


def test_b3_attendee_removing_their_copy_declines(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    activity_id = apply(uow_factory, world.org_id, linda_copy()).activity_id
    apply(uow_factory, world.org_id, julie_copy())

    outcome = remove(uow_factory, world.org_id, julie_copy())

    assert outcome == SyncOutcome(activity_id, SyncAction.DECLINED)
    activity = load(uow_factory, activity_id)
    assert activity.status == "planned"
    assert responses(activity)[JULIE] == ("declined", NOW)
    assert links(uow_factory, activity_id) == [("microsoft", LINDA, "linda-1")]
    # The same removal delivered again: nothing left to do.
    assert remove(uow_factory, world.org_id, julie_copy()).action is SyncAction.IGNORED


def test_b3_cancelled_attendee_copy_cancels_only_without_the_organizers_copy(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # External organizer: Exchange marks Linda's copy cancelled, that is all we will see.
    external = apply(uow_factory, world.org_id, external_copy(LINDA, LINDA))
    cancelled = apply(
        uow_factory, world.org_id, external_copy(LINDA, LINDA, cancelled=True, change_key="x")
    )
    assert cancelled == SyncOutcome(external.activity_id, SyncAction.CANCELLED)
    assert load(uow_factory, external.activity_id).status == "cancelled"

    # Linda organizes: Julie's cancelled copy (e.g. Julie was uninvited) cancels nothing.
    internal = apply(uow_factory, world.org_id, linda_copy())
    apply(uow_factory, world.org_id, julie_copy(cancelled=True))
    assert load(uow_factory, internal.activity_id).status == "planned"
    # ...while Linda's own cancelled copy does.
    apply(uow_factory, world.org_id, linda_copy(cancelled=True, change_key="ck-2"))
    assert load(uow_factory, internal.activity_id).status == "cancelled"


def test_removing_a_past_meeting_is_clean_up(uow_factory: UnitOfWorkFactory, world: World) -> None:
    activity_id = apply(uow_factory, world.org_id, linda_copy()).activity_id
    apply(uow_factory, world.org_id, julie_copy())
    after = START + 2 * HOUR
    for copy in (julie_copy(), linda_copy()):
        outcome = remove(uow_factory, world.org_id, copy, now=after)
        assert outcome == SyncOutcome(activity_id, SyncAction.IGNORED, "the meeting is over")
    activity = load(uow_factory, activity_id)
    assert activity.status == "planned"
    assert responses(activity)[JULIE] == ("none", None)
    assert links(uow_factory, activity_id) == []


def test_attendees_removed_by_the_organizer_disappear(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    activity_id = apply(uow_factory, world.org_id, linda_copy()).activity_id
    without_ola = linda_copy().attendees[:2]
    apply(uow_factory, world.org_id, linda_copy(attendees=without_ola, change_key="ck-2"))
    assert [p.email for p in load(uow_factory, activity_id).participants] == [LINDA, JULIE]


def test_only_the_organizer_is_the_organizer(uow_factory: UnitOfWorkFactory, world: World) -> None:
    # A copy that lists someone else with the organizer's role (invitations relayed from
    # other systems do) does not make them a second organizer.
    relayed = Attendee(OLA, "Ola Nordmann", ParticipantRole.ORGANIZER, Response.ORGANIZER)
    snapshot = linda_copy(attendees=(*linda_copy().attendees[:2], relayed))
    activity = load(uow_factory, apply(uow_factory, world.org_id, snapshot).activity_id)
    assert {p.email: (p.role, p.response) for p in activity.participants} == {
        LINDA: ("organizer", "organizer"),
        JULIE: ("required", "none"),
        OLA: ("required", "none"),
    }


# --------------------------------------------------------------------------- B4


@pytest.mark.parametrize("julie_first", [False, True])
def test_b4_two_mailboxes_on_two_providers_make_one_activity(
    uow_factory: UnitOfWorkFactory, world: World, julie_first: bool
) -> None:
    t_linda = dt.datetime(2029, 12, 30, 9, tzinfo=UTC)
    julie_answer = Attendee(JULIE, "Julie", response=Response.TENTATIVE)
    copies = [
        linda_copy(),
        julie_copy(attendees=(*linda_copy().attendees[:1], julie_answer)),
    ]
    for copy in reversed(copies) if julie_first else copies:
        apply(uow_factory, world.org_id, copy)
    # Linda's Outlook copy later carries Linda's own (timed) acceptance... as organizer.
    apply(uow_factory, world.org_id, linda_copy(change_key="ck-2"), now=t_linda)

    assert count_activities(uow_factory, world.org_id) == 1
    with uow_factory(read_only=True) as uow:
        activity = sync.find_activity_for_event(
            uow, world.org_id, Provider.GOOGLE, JULIE.upper(), "julie-1"
        )
        assert activity is not None
        same = sync.find_activity_for_event(uow, world.org_id, Provider.MICROSOFT, LINDA, "linda-1")
        assert same is activity
    assert links(uow_factory, activity.id) == [
        ("google", JULIE, "julie-1"),
        ("microsoft", LINDA, "linda-1"),
    ]
    people = {p.email: (p.role, p.response, p.user_id, p.contact_id) for p in activity.participants}
    assert people == {
        LINDA: ("organizer", "organizer", world.linda_id, None),
        JULIE: ("required", "tentative", world.julie_id, None),
        OLA: ("required", "none", None, world.ola_id),
    }
    assert activity.owner_id == world.linda_id
    assert (activity.subject, activity.origin) == (
        "Kickoff",
        "google" if julie_first else "microsoft",
    )


# --------------------------------------------------------------------------- B5


def test_b5_external_organizer_complete_participants_and_certain_company(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # Julie's Google calendar reports the invitation first, Linda's Outlook later.
    first = apply(uow_factory, world.org_id, external_copy(JULIE, JULIE, LINDA, KARI, SAM))
    second = apply(uow_factory, world.org_id, external_copy(LINDA, JULIE, LINDA, KARI, SAM))

    assert first.action is SyncAction.CREATED
    assert second.activity_id == first.activity_id
    activity = load(uow_factory, first.activity_id)
    people = {p.email: (p.name, p.role, p.user_id, p.contact_id) for p in activity.participants}
    assert people == {
        OLA: ("Ola Nordmann", "organizer", None, world.ola_id),
        JULIE: ("Julie", "required", world.julie_id, None),
        LINDA: ("Linda", "required", world.linda_id, None),
        KARI: ("Kari", "required", None, None),
        SAM: ("Sam", "required", None, None),
    }
    assert activity.owner_id == world.julie_id  # the first internal user who reported it
    # Ola is Acme's contact, Kari's domain is Acme's, Sam's free mail says nothing: certain.
    assert activity.company_id == world.acme_id
    assert [c.contact_id for c in activity.contact_links] == [world.ola_id]


@pytest.mark.parametrize(
    ("organizer", "others"),
    [
        pytest.param(OLA, (BOB,), id="two-companies"),
        pytest.param(OLA, ("x@unknown.example",), id="unknown-domain"),
        pytest.param(SAM, ("pat@hotmail.com",), id="free-mail-only"),
    ],
)
def test_b5_uncertain_company_leaves_the_meeting_untagged(
    uow_factory: UnitOfWorkFactory, world: World, organizer: str, others: tuple[str, ...]
) -> None:
    people = (
        Attendee(organizer, "Organizer", ParticipantRole.ORGANIZER, Response.ORGANIZER),
        Attendee(LINDA, "Linda"),
        *(Attendee(email) for email in others),
    )
    outcome = apply(
        uow_factory,
        world.org_id,
        external_copy(LINDA, organizer_email=organizer, attendees=people),
    )
    activity = load(uow_factory, outcome.activity_id)
    assert (activity.company_id, activity.contact_links) == (None, [])
    assert activity.owner_id == world.linda_id
    assert {p.email for p in activity.participants} == {organizer, LINDA, *others}


def test_internally_organized_meetings_are_not_auto_tagged(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # Only Acme people attend, but Linda organizes: she tags it (A1), sync does not guess.
    outcome = apply(uow_factory, world.org_id, linda_copy())
    assert load(uow_factory, outcome.activity_id).company_id is None


# --------------------------------------------------------------------------- B6


def test_b6_weekly_series_without_end_is_a_rule(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    outcome = apply(uow_factory, world.org_id, series_copy())
    assert outcome.action is SyncAction.CREATED
    master = load(uow_factory, outcome.activity_id)
    assert master.recurrence is not None
    assert (master.recurrence.rrule, master.recurrence.time_zone) == (
        "FREQ=WEEKLY;BYDAY=MO",
        "Europe/Oslo",
    )
    assert master.recurrence.last_end is None
    assert master.recurrence.local_start == "2030-03-04T10:00:00"

    five_years_out = listed(
        uow_factory,
        as_user(world.org_id, world.linda_id),
        dt.datetime(2035, 3, 4, tzinfo=UTC),
        dt.datetime(2035, 3, 11, tzinfo=UTC),
    )
    at = dt.datetime(2035, 3, 5, 9, tzinfo=UTC)  # Monday 10:00 Oslo (winter time)
    assert [(i.activity.id, i.start, i.original_start) for i in five_years_out] == [
        (master.id, at, at)
    ]
    with uow_factory(read_only=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Activity)) == 1


def test_b6_moved_and_cancelled_occurrences_are_exceptions(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    master_id = apply(uow_factory, world.org_id, series_copy()).activity_id
    second, third = START + dt.timedelta(weeks=1), START + dt.timedelta(weeks=2)
    moved_to = second + dt.timedelta(days=1, hours=4)

    moved = apply(
        uow_factory,
        world.org_id,
        exception_copy(second, start=moved_to, end=moved_to + HOUR, subject="Moved sync"),
    )
    assert moved.action is SyncAction.CREATED
    row = load(uow_factory, moved.activity_id)
    assert (row.series_id, row.original_start, row.start_at) == (master_id, second, moved_to)
    assert (row.subject, row.status, row.ical_uid) == ("Moved sync", "planned", "uid-series")

    # Outlook reports the cancelled third occurrence on the master (cancelledOccurrences).
    cancelled = apply(uow_factory, world.org_id, series_copy(exdates=(third,), change_key="ck-s2"))
    assert cancelled == SyncOutcome(master_id, SyncAction.UPDATED)
    master = load(uow_factory, master_id)
    assert master.status == "planned"
    assert master.recurrence is not None
    assert master.recurrence.exdates == []  # not a silent EXDATE: it shows as cancelled

    items = listed(
        uow_factory,
        as_user(world.org_id, world.linda_id),
        START + dt.timedelta(days=1),
        START + dt.timedelta(weeks=3, days=1),
    )
    assert [(i.start, i.activity.subject, i.activity.status) for i in items] == [
        (moved_to, "Moved sync", "planned"),
        (third, "Weekly sync", "cancelled"),
        (START + dt.timedelta(weeks=3), "Weekly sync", "planned"),
    ]
    assert all(i.activity.series_id == master_id for i in items[:2])


def test_b6_exception_before_its_master_waits(uow_factory: UnitOfWorkFactory, world: World) -> None:
    second = START + dt.timedelta(weeks=1)
    early = apply(uow_factory, world.org_id, exception_copy(second, start=second + HOUR))
    assert early == SyncOutcome(None, SyncAction.IGNORED, sync.MASTER_NOT_SYNCED)
    occurrence = exception_copy(second, event_type=EventType.OCCURRENCE)
    assert apply(uow_factory, world.org_id, occurrence).action is SyncAction.IGNORED
    assert count_activities(uow_factory, world.org_id) == 0

    master_id = apply(uow_factory, world.org_id, series_copy()).activity_id
    assert apply(uow_factory, world.org_id, occurrence) == SyncOutcome(
        master_id, SyncAction.UNCHANGED
    )
    late = apply(uow_factory, world.org_id, exception_copy(second, start=second + HOUR))
    assert late.action is SyncAction.CREATED
    assert load(uow_factory, late.activity_id).series_id == master_id


def test_b6_google_cancelled_instance_keeps_the_series_details(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # Julie organizes in Google; instances share the series' iCalUID, and a cancelled one
    # carries little more than its ids.
    people = (
        Attendee(JULIE, "Julie", ParticipantRole.ORGANIZER, Response.ACCEPTED),
        Attendee(LINDA, "Linda"),
        Attendee(OLA, "Ola Nordmann"),
    )
    google = {
        "provider": Provider.GOOGLE,
        "mailbox": JULIE,
        "organizer_email": JULIE,
        "attendees": people,
    }
    master_id = apply(
        uow_factory,
        world.org_id,
        series_copy(provider_event_id="g-series", change_key="e1", **google),
    ).activity_id
    second, third = START + dt.timedelta(weeks=1), START + dt.timedelta(weeks=2)

    def sparse(mailbox: str, original: dt.datetime, master_event: str) -> MeetingSnapshot:
        return exception_copy(
            original,
            provider=Provider.GOOGLE,
            mailbox=mailbox,
            provider_event_id=f"{master_event}_{original:%Y%m%dT%H%M%SZ}",
            series_provider_id=master_event,
            ical_uid="uid-series",
            subject="",
            organizer_email="",
            organizer_name="",
            mailbox_is_organizer=False,
            attendees=(),
            cancelled=True,
            change_key=None,
        )

    # Linda's Google copy of Julie's series: her cancelled instance (she was dropped from
    # it, say) is not the organizer's word while Julie's copy is linked.
    apply(
        uow_factory,
        world.org_id,
        series_copy(provider=Provider.GOOGLE, provider_event_id="l-series", mailbox=LINDA,
                    organizer_email=JULIE, mailbox_is_organizer=False, attendees=people),
    )  # fmt: skip
    attendee_says = apply(uow_factory, world.org_id, sparse(LINDA, third, "l-series"))
    assert attendee_says == SyncOutcome(master_id, SyncAction.UNCHANGED)

    outcome = apply(uow_factory, world.org_id, sparse(JULIE, second, "g-series"))
    assert outcome.action is SyncAction.CANCELLED
    row = load(uow_factory, outcome.activity_id)
    assert (row.series_id, row.original_start, row.status) == (master_id, second, "cancelled")
    assert (row.subject, row.start_at, row.owner_id) == ("Weekly sync", second, world.julie_id)
    assert [(p.email, p.role) for p in row.participants if p.role == "organizer"] == [
        (JULIE, "organizer")
    ]
    assert {p.email for p in row.participants} == {JULIE, LINDA, OLA}
    with uow_factory(read_only=True) as uow:
        stored = uow.session.scalars(
            select(Activity.original_start).where(Activity.series_id == master_id)
        )
        assert list(stored) == [second]


def test_b6_organizer_removing_the_series_cancels_its_occurrences(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    master_id = apply(uow_factory, world.org_id, series_copy()).activity_id
    second = START + dt.timedelta(weeks=1)
    row_id = apply(
        uow_factory, world.org_id, exception_copy(second, start=second + HOUR)
    ).activity_id

    assert remove(uow_factory, world.org_id, series_copy()).action is SyncAction.CANCELLED
    assert load(uow_factory, master_id).status == "cancelled"
    assert load(uow_factory, row_id).status == "cancelled"


# --------------------------------------------------------------------------- B7


def test_b7_private_meeting_shows_colleagues_only_busy(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    activity_id = apply(
        uow_factory,
        world.org_id,
        linda_copy(private=True, show_as=ShowAs.OOF, reminder_minutes=15),
    ).activity_id
    stored = load(uow_factory, activity_id)
    assert (stored.visibility, stored.show_as, stored.reminder_minutes) == ("private", "oof", 15)

    window = (START - HOUR, START + HOUR)
    [for_julie] = listed(uow_factory, as_user(world.org_id, world.julie_id), *window)
    [for_linda] = listed(uow_factory, as_user(world.org_id, world.linda_id), *window)
    assert (for_julie.activity.id, for_julie.masked) == (activity_id, True)
    assert (for_linda.activity.id, for_linda.masked) == (activity_id, False)

    apply(uow_factory, world.org_id, linda_copy(private=False, change_key="ck-2"))
    [now_public] = listed(uow_factory, as_user(world.org_id, world.julie_id), *window)
    assert now_public.masked is False


# --------------------------------------------------------------------------- idempotency


def test_the_same_snapshot_twice_changes_nothing(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    second = START + dt.timedelta(weeks=1)
    snapshots = [
        linda_copy(),
        julie_copy(attendees=(Attendee(JULIE, "Julie", response=Response.ACCEPTED),)),
        series_copy(exdates=(START + dt.timedelta(weeks=2),)),
        exception_copy(second, start=second + HOUR),
        external_copy(LINDA, LINDA, KARI),
    ]
    firsts = [apply(uow_factory, world.org_id, s) for s in snapshots]
    before = table_counts(uow_factory)
    stamps = {o.activity_id: load(uow_factory, o.activity_id).updated_at for o in firsts}

    for snapshot, first in zip(snapshots, firsts, strict=True):
        later = NOW + dt.timedelta(days=1)
        again = apply(uow_factory, world.org_id, snapshot, now=later)
        assert again == SyncOutcome(first.activity_id, SyncAction.UNCHANGED)
        # A re-delivery with a new change key but the same content: still unchanged.
        rekeyed = replace(snapshot, change_key=f"{snapshot.change_key}-again")
        assert apply(uow_factory, world.org_id, rekeyed, now=later) == again

    assert table_counts(uow_factory) == before
    assert {i: load(uow_factory, i).updated_at for i in stamps} == stamps


def test_an_unchanged_change_key_skips_the_copy(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    activity_id = apply(uow_factory, world.org_id, linda_copy()).activity_id
    later = NOW + HOUR
    # Providers change the key on every change: the same key means the copy was applied as is,
    # so its content is not even looked at; the link records that the copy was seen.
    outcome = apply(uow_factory, world.org_id, linda_copy(subject="Not read"), now=later)
    assert outcome == SyncOutcome(activity_id, SyncAction.UNCHANGED)
    assert load(uow_factory, activity_id).subject == "Kickoff"
    with uow_factory(read_only=True) as uow:
        link = uow.session.scalar(select(ProviderLink).where(ProviderLink.mailbox == LINDA))
        assert link is not None
        assert (link.change_key, link.last_synced_at) == ("ck-1", later)


def test_a_snapshot_is_the_current_truth_but_answers_keep_their_time(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # Providers don't order deliveries and the worker fetches the event before applying it,
    # so the last snapshot applied wins, even one that looks older; answers carry times.
    t1, t2 = dt.datetime(2030, 1, 2, 8, tzinfo=UTC), dt.datetime(2030, 1, 2, 9, tzinfo=UTC)

    def version(subject: str, response: Response, at: dt.datetime, key: str) -> MeetingSnapshot:
        people = (
            *linda_copy().attendees[:2],
            Attendee(OLA, "Ola", response=response, responded_at=at),
        )
        return linda_copy(subject=subject, attendees=people, change_key=key)

    activity_id = apply(
        uow_factory, world.org_id, version("New", Response.ACCEPTED, t2, "ck-9")
    ).activity_id
    apply(uow_factory, world.org_id, version("Old", Response.DECLINED, t1, "ck-8"))
    activity = load(uow_factory, activity_id)
    assert activity.subject == "Old"
    assert responses(activity)[OLA] == ("accepted", t2)


# --------------------------------------------------------------------------- status, outcome


def test_held_and_outcome_are_never_overwritten(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    activity_id = apply(uow_factory, world.org_id, linda_copy()).activity_id
    assert activity_id is not None
    with uow_factory() as uow:
        activities.update_activity(
            uow,
            as_user(world.org_id, world.linda_id),
            activity_id,
            {"status": "held", "outcome": "Won the pilot"},
        )
        uow.commit()
    apply(uow_factory, world.org_id, linda_copy(subject="Kickoff!", change_key="ck-2"))
    apply(
        uow_factory,
        world.org_id,
        linda_copy(subject="Kickoff!", cancelled=True, change_key="ck-3"),
    )
    assert remove(uow_factory, world.org_id, linda_copy()).action is SyncAction.UNCHANGED
    activity = load(uow_factory, activity_id)
    assert (activity.status, activity.outcome, activity.subject) == (
        "held",
        "Won the pilot",
        "Kickoff!",
    )


def test_a_users_cancellation_sticks(uow_factory: UnitOfWorkFactory, world: World) -> None:
    activity_id = apply(uow_factory, world.org_id, linda_copy()).activity_id
    assert activity_id is not None
    with uow_factory() as uow:
        activities.cancel_activity(uow, as_user(world.org_id, world.linda_id), activity_id)
        uow.commit()
    outcome = apply(uow_factory, world.org_id, linda_copy(subject="Still on?", change_key="ck-2"))
    assert outcome.action is SyncAction.UPDATED
    assert load(uow_factory, activity_id).status == "cancelled"


# --------------------------------------------------------------------------- isolation, races


def test_the_same_ical_uid_in_two_organizations_is_two_activities(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    globex = make_tenant(uow_factory, "Globex", "globex.example", user="hank")
    ours = apply(uow_factory, world.org_id, linda_copy())
    theirs = apply(
        uow_factory,
        globex.org_id,
        linda_copy(mailbox=globex.user_email, mailbox_is_organizer=False),
    )
    assert ours.activity_id != theirs.activity_id
    assert theirs.action is SyncAction.CREATED
    foreign = load(uow_factory, theirs.activity_id)
    assert (foreign.org_id, foreign.owner_id) == (globex.org_id, globex.user_id)
    # Julie and Linda are Northwind users, not Globex's.
    assert all(p.user_id is None for p in foreign.participants)
    with uow_factory(read_only=True) as uow:
        assert (
            sync.find_activity_for_event(uow, globex.org_id, "microsoft", LINDA, "linda-1") is None
        )


def test_concurrent_copies_of_a_new_meeting_join_one_activity(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # Linda's worker has stored the new meeting but not committed when Julie's starts; on
    # PostgreSQL Julie's insert waits, fails on the iCalUID index and joins Linda's row.
    results: list[SyncOutcome] = []

    def julies_worker() -> None:
        results.append(apply(uow_factory, world.org_id, julie_copy()))

    with uow_factory() as uow:
        first = sync.apply_snapshot(uow, world.org_id, linda_copy(), now=NOW)
        other = threading.Thread(target=julies_worker)
        other.start()
        time.sleep(0.5)
        uow.commit()
    other.join(timeout=30)

    assert [r.activity_id for r in results] == [first.activity_id]
    assert count_activities(uow_factory, world.org_id) == 1
    assert len(links(uow_factory, first.activity_id)) == 2


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"end": START - HOUR}, "meeting ends before it starts"),
        ({"ical_uid": ""}, "meeting without an iCalUID"),
        ({"event_type": EventType.SERIES, "rrule": None}, "series master without"),
        ({"event_type": EventType.SERIES, "rrule": "FREQ=SECONDLY"}, "unusable recurrence"),
        ({"event_type": EventType.EXCEPTION}, "exception without its original start"),
    ],
)
def test_unusable_snapshots_are_ignored(
    uow_factory: UnitOfWorkFactory, world: World, changes: dict[str, Any], reason: str
) -> None:
    outcome = apply(uow_factory, world.org_id, linda_copy(**changes))
    assert (outcome.activity_id, outcome.action) == (None, SyncAction.IGNORED)
    assert outcome.reason.startswith(reason)
    assert count_activities(uow_factory, world.org_id) == 0


def test_unknown_time_zone_falls_back_to_utc(uow_factory: UnitOfWorkFactory, world: World) -> None:
    outcome = apply(uow_factory, world.org_id, linda_copy(time_zone="Mars/Olympus"))
    assert load(uow_factory, outcome.activity_id).time_zone == "UTC"


def test_all_day_daily_series_west_of_utc_starts_on_its_date(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    day = dt.datetime(2030, 3, 4, tzinfo=UTC)
    apply(
        uow_factory,
        world.org_id,
        series_copy(
            start=day,
            end=day + dt.timedelta(days=1),
            all_day=True,
            time_zone="America/Los_Angeles",
            rrule="FREQ=DAILY;COUNT=2",
        ),
    )
    items = listed(
        uow_factory,
        as_user(world.org_id, world.linda_id),
        day - dt.timedelta(days=3),
        day + dt.timedelta(days=3),
    )
    assert [i.start.date() for i in items] == [dt.date(2030, 3, 4), dt.date(2030, 3, 5)]


def test_recurrence_rows_are_stored_like_the_apis(
    uow_factory: UnitOfWorkFactory, world: World
) -> None:
    # The same series created through the API and through sync stores the same rule row.
    with uow_factory() as uow:
        api = activities.create_activity(
            uow,
            as_user(world.org_id, world.linda_id),
            {
                "start": START,
                "end": START + HOUR,
                "time_zone": "Europe/Oslo",
                "recurrence": {"rule": "FREQ=WEEKLY;BYDAY=MO"},
            },
        )
        uow.commit()
    synced_id = apply(uow_factory, world.org_id, series_copy()).activity_id
    with uow_factory(read_only=True) as uow:
        rows = [uow.session.get(Recurrence, i) for i in (api.activity.id, synced_id)]
        states = [
            (r.rrule, r.time_zone, r.local_start, r.exdates, r.first_start, r.last_end)
            for r in rows
            if r is not None
        ]
    assert len(states) == 2
    assert states[0] == states[1]
