"""Listing a calendar range: what still runs at its start, and paging through it."""

from __future__ import annotations

import datetime as dt

from services import activities
from services.activities import ActivityFilter, ActivityItem, SortKey
from services.auth import Principal, PrincipalKind
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant

UTC = dt.UTC
RANGE_START = dt.datetime(2030, 3, 11, 12, tzinfo=UTC)
RANGE = ActivityFilter(start=RANGE_START, end=RANGE_START + dt.timedelta(days=1))


def principal(tenant: Tenant) -> Principal:
    return Principal(tenant.org_id, tenant.user_id, PrincipalKind.API_KEY, "test")


def create(
    uow_factory: UnitOfWorkFactory,
    tenant: Tenant,
    subject: str,
    start: dt.datetime,
    **fields: object,
) -> int:
    with uow_factory() as uow:
        item = activities.create_activity(
            uow,
            principal(tenant),
            {"subject": subject, "start": start, "end": start + dt.timedelta(hours=1)} | fields,
        )
        uow.commit()
        return item.activity.id


def listed(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, limit: int, after: SortKey | None = None
) -> tuple[list[ActivityItem], SortKey | None]:
    with uow_factory(read_only=True) as uow:
        page = activities.list_activities(uow, principal(tenant), RANGE, after=after, limit=limit)
        return page.items, page.next_after


def all_pages(uow_factory: UnitOfWorkFactory, tenant: Tenant, limit: int) -> list[ActivityItem]:
    items, after = listed(uow_factory, tenant, limit)
    while after is not None:
        more, after = listed(uow_factory, tenant, limit, after)
        items += more
    return items


def test_activities_that_started_before_the_range_and_still_run_are_listed(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    hour = dt.timedelta(hours=1)
    ended = create(uow_factory, tenant, "ended at the start", RANGE_START - hour)
    overnight = create(
        uow_factory, tenant, "overnight", RANGE_START - 20 * hour, end=RANGE_START + hour
    )
    conference = create(
        uow_factory,
        tenant,
        "conference",
        RANGE_START - dt.timedelta(days=10),
        end=RANGE_START + dt.timedelta(days=2),
    )
    two_days = create(
        uow_factory,
        tenant,
        "exactly two days before",
        RANGE_START - dt.timedelta(days=2),
        end=RANGE_START + hour,
    )
    items, _ = listed(uow_factory, tenant, 100)
    ids = [item.activity.id for item in items]
    assert ids == [conference, two_days, overnight]
    assert ended not in ids


def test_pages_together_list_what_one_page_lists(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    # Meetings that started before the range and still run fill the first pages: trips that
    # started days before, a daily night shift from 09:00, and two meetings from 10:00 and 11:00.
    for n in range(3):
        start = RANGE_START - dt.timedelta(days=9 - n)
        create(uow_factory, tenant, f"trip {n}", start, end=RANGE_START + dt.timedelta(days=3))
    create(
        uow_factory,
        tenant,
        "night shift",
        RANGE_START - dt.timedelta(days=30, hours=3),
        end=RANGE_START - dt.timedelta(days=30) + dt.timedelta(hours=5),
        recurrence={"rule": "FREQ=DAILY"},
    )
    for hours in (2, 1):
        start = RANGE_START - dt.timedelta(hours=hours)
        create(uow_factory, tenant, f"{hours} h before", start, end=start + dt.timedelta(hours=3))
    for n in range(3):
        create(uow_factory, tenant, f"meeting {n}", RANGE_START + dt.timedelta(hours=n))
    whole, after = listed(uow_factory, tenant, 100)
    assert after is None
    assert [item.activity.subject for item in whole[:8]] == [
        "trip 0", "trip 1", "trip 2", "night shift", "2 h before", "1 h before", "meeting 0",
        "meeting 1",
    ]  # fmt: skip
    for limit in (1, 2, 3, 4):
        paged = all_pages(uow_factory, tenant, limit)
        assert [item.sort_key for item in paged] == [item.sort_key for item in whole]
