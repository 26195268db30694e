"""services.sync.lookups_for: a batch applied with shared lookups and one flush does what the
snapshots applied one at a time do (the mailbox jobs apply each chunk this way)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select

from services import sync
from services.meetings import Attendee, MeetingSnapshot, Removed, TagHint
from services.sync import SyncAction
from services.tables import Activity, Contact, ParticipantRole, ProviderLink, Response
from services.unit_of_work import UnitOfWorkFactory
from tests.integration.test_sync import (
    BOB,
    HOUR,
    JULIE,
    KARI,
    LINDA,
    NOW,
    OLA,
    SAM,
    START,
    World,
    exception_copy,
    external_copy,
    julie_copy,
    linda_copy,
    series_copy,
)
from tests.integration.test_sync import world as sync_world

Change = MeetingSnapshot | Removed
world = sync_world  # the Northwind fixture of the sync rules' tests


def changes(world: World) -> list[Change]:
    """A mailbox round's worth of everything: new, repeated, changed, removed, series parts."""
    week = dt.timedelta(days=7)
    hint = TagHint(company_id=world.initech_id, contact_ids=(world.bob_id,), kind="call")
    organizer = Attendee(LINDA, "Linda", ParticipantRole.ORGANIZER, Response.ORGANIZER)
    return [
        linda_copy(),
        linda_copy(provider_event_id="linda-2", ical_uid="uid-2", subject="Second"),
        # The same event again in the same batch, changed: the pending link is found.
        linda_copy(
            subject="Kickoff, moved", start=START + HOUR, end=START + 2 * HOUR, change_key="ck-2"
        ),
        # Unchanged re-delivery of the one just applied.
        linda_copy(
            subject="Kickoff, moved", start=START + HOUR, end=START + 2 * HOUR, change_key="ck-2"
        ),
        julie_copy(),
        external_copy(LINDA, JULIE, LINDA, KARI, SAM),
        external_copy(JULIE, JULIE, LINDA, KARI, SAM),
        external_copy(LINDA, BOB, provider_event_id="linda-ext-2", ical_uid="uid-ext-2"),
        linda_copy(provider_event_id="linda-3", ical_uid="uid-3", subject="Gone soon"),
        Removed(linda_copy().provider, LINDA, "linda-3"),
        Removed(linda_copy().provider, LINDA, "never-seen"),
        series_copy(exdates=(START + 2 * week,)),
        exception_copy(START + week, start=START + week + HOUR, end=START + week + 2 * HOUR),
        linda_copy(
            provider_event_id="linda-4",
            ical_uid="uid-4",
            attendees=(
                Attendee(LINDA, "Linda", ParticipantRole.ORGANIZER, Response.ORGANIZER),
                Attendee(OLA, "Ola", response=Response.ACCEPTED, responded_at=NOW - HOUR),
            ),
        ),
        linda_copy(provider_event_id="bad", ical_uid=""),  # ignored: no iCalUID
        # New meetings: tagged by the add-in; cancelled; an attendee's copy (an untimed answer
        # of her own counts as given now) before the organizer's in the same batch.
        linda_copy(provider_event_id="linda-5", ical_uid="uid-5", tag_hint=hint),
        linda_copy(provider_event_id="linda-6", ical_uid="uid-6", cancelled=True),
        julie_copy(
            provider_event_id="julie-7",
            ical_uid="uid-7",
            attendees=(organizer, Attendee(JULIE, "Julie", response=Response.TENTATIVE)),
        ),
        linda_copy(provider_event_id="linda-7", ical_uid="uid-7", subject="Seven"),
    ]


def apply_all(
    uow_factory: UnitOfWorkFactory, org_id: int, items: Sequence[Change], *, batched: bool
) -> list[SyncAction]:
    actions: list[SyncAction] = []
    with uow_factory() as uow:

        def run() -> None:
            for item in items:
                if isinstance(item, Removed):
                    outcome = sync.apply_removed(uow, org_id, item, now=NOW)
                else:
                    outcome = sync.apply_snapshot(uow, org_id, item, now=NOW)
                actions.append(outcome.action)

        if batched:
            with sync.lookups_for(uow, org_id, items):
                run()
        else:
            run()
        uow.commit()
    return actions


def state(uow_factory: UnitOfWorkFactory, org_id: int) -> list[tuple[Any, ...]]:
    """Every activity of the organization with what sync sets, without row ids."""
    with uow_factory(read_only=True) as uow:
        rows = uow.session.scalars(select(Activity).where(Activity.org_id == org_id)).all()
        by_id = {row.id: row for row in rows}
        contact_names = dict(uow.session.execute(select(Contact.id, Contact.first_name)).all())
        link_rows = uow.session.scalars(
            select(ProviderLink).where(ProviderLink.org_id == org_id)
        ).all()
        links: dict[int, list[tuple[Any, ...]]] = {}
        for link in link_rows:
            links.setdefault(link.activity_id, []).append(
                (link.provider, link.mailbox, link.provider_event_id, link.ical_uid,
                 link.series_master_id, link.change_key, link.last_synced_at)
            )  # fmt: skip
        result = []
        for row in rows:
            series = by_id[row.series_id].ical_uid if row.series_id is not None else None
            result.append(
                (
                    row.ical_uid, row.original_start, series, row.kind, row.status,
                    row.subject, row.description, row.location, row.start_at, row.end_at,
                    row.time_zone, row.owner_id, row.company_id, row.visibility,
                    row.recurrence.rrule if row.recurrence is not None else None,
                    sorted((p.email, p.name, p.role, p.response, p.responded_at, p.user_id,
                            contact_names.get(p.contact_id)) for p in row.participants),
                    sorted(contact_names[c.contact_id] for c in row.contact_links),
                    sorted(links.get(row.id, [])),
                )
            )  # fmt: skip
        return sorted(result, key=repr)


def clear(uow_factory: UnitOfWorkFactory, org_id: int) -> None:
    with uow_factory() as uow:
        uow.session.execute(delete(ProviderLink).where(ProviderLink.org_id == org_id))
        rows = uow.session.scalars(select(Activity).where(Activity.org_id == org_id)).all()
        for row in sorted(rows, key=lambda r: r.series_id is None):  # exceptions first
            uow.session.delete(row)
            uow.flush()
        uow.commit()


def test_a_batch_does_what_one_at_a_time_does(uow_factory: UnitOfWorkFactory, world: World) -> None:
    items = changes(world)
    one_by_one = apply_all(uow_factory, world.org_id, items, batched=False)
    expected = state(uow_factory, world.org_id)
    clear(uow_factory, world.org_id)
    assert state(uow_factory, world.org_id) == []

    batched = apply_all(uow_factory, world.org_id, items, batched=True)

    assert batched == one_by_one
    assert state(uow_factory, world.org_id) == expected
    # And applying the same batch again changes nothing, as one at a time.
    again = apply_all(uow_factory, world.org_id, items, batched=True)
    assert state(uow_factory, world.org_id) == expected
    clear(uow_factory, world.org_id)
    apply_all(uow_factory, world.org_id, items, batched=False)
    assert apply_all(uow_factory, world.org_id, items, batched=False) == again


def test_a_batch_split_in_chunks_matches_too(uow_factory: UnitOfWorkFactory, world: World) -> None:
    items = changes(world)
    apply_all(uow_factory, world.org_id, items, batched=False)
    expected = state(uow_factory, world.org_id)
    clear(uow_factory, world.org_id)
    for start in range(0, len(items), 4):
        apply_all(uow_factory, world.org_id, items[start : start + 4], batched=True)
    assert state(uow_factory, world.org_id) == expected


def test_lookups_end_with_the_block(uow_factory: UnitOfWorkFactory, world: World) -> None:
    with uow_factory() as uow:
        with sync.lookups_for(uow, world.org_id, [linda_copy()]):
            assert uow.session.info
        assert not uow.session.info
        # Outside the block a snapshot is flushed at once and its outcome names the activity.
        outcome = sync.apply_snapshot(uow, world.org_id, linda_copy(), now=NOW)
        assert outcome.action is SyncAction.CREATED
        assert outcome.activity_id is not None
        uow.commit()
