"""Series, exceptions and meeting identity in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.exc import IntegrityError

from services import activities
from services.activities import ActivityFilter
from services.auth import Principal, PrincipalKind
from services.tables import Activity, ActivityStatus
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant

UTC = dt.UTC


def principal(tenant: Tenant) -> Principal:
    return Principal(tenant.org_id, tenant.user_id, PrincipalKind.API_KEY, "test")


def weekly_series(uow_factory: UnitOfWorkFactory, tenant: Tenant, **extra: object) -> int:
    with uow_factory() as uow:
        item = activities.create_activity(
            uow,
            principal(tenant),
            {
                "kind": "meeting",
                "subject": "Standup",
                "start": dt.datetime(2030, 10, 21, 9, tzinfo=UTC),
                "end": dt.datetime(2030, 10, 21, 9, 15, tzinfo=UTC),
                "time_zone": "America/New_York",
                "recurrence": {"rule": "FREQ=WEEKLY;BYDAY=MO"},
                "ical_uid": "series-1@example.com",
            }
            | extra,
        )
        uow.commit()
        return item.activity.id


def occurrences(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, start: dt.datetime, end: dt.datetime
):
    with uow_factory(read_only=True) as uow:
        page = activities.list_activities(
            uow, principal(tenant), ActivityFilter(start=start, end=end)
        )
        return [(i.activity.id, i.start, i.original_start, i.activity.status) for i in page.items]


def test_dst_change_keeps_local_time(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    series = weekly_series(uow_factory, tenant)  # 05:00 New York (EDT) on 2030-10-21
    got = occurrences(
        uow_factory,
        tenant,
        dt.datetime(2030, 10, 28, tzinfo=UTC),
        dt.datetime(2030, 11, 12, tzinfo=UTC),
    )
    # New York leaves summer time on 2030-11-03: 05:00 local is 09:00 UTC before, 10:00 after.
    assert [(i, s) for i, s, _, _ in got] == [
        (series, dt.datetime(2030, 10, 28, 9, tzinfo=UTC)),
        (series, dt.datetime(2030, 11, 4, 10, tzinfo=UTC)),
        (series, dt.datetime(2030, 11, 11, 10, tzinfo=UTC)),
    ]


def test_exception_rows_replace_their_occurrence(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    series = weekly_series(uow_factory, tenant)
    moved_from = dt.datetime(2030, 10, 28, 9, tzinfo=UTC)
    cancelled_at = dt.datetime(2030, 11, 4, 10, tzinfo=UTC)
    with uow_factory() as uow:
        for original, start, status in [
            (moved_from, dt.datetime(2030, 10, 29, 15, tzinfo=UTC), ActivityStatus.PLANNED),
            (cancelled_at, cancelled_at, ActivityStatus.CANCELLED),
        ]:
            uow.session.add(
                Activity(
                    org_id=tenant.org_id,
                    owner_id=tenant.user_id,
                    subject="Standup",
                    series_id=series,
                    original_start=original,
                    start_at=start,
                    end_at=start + dt.timedelta(minutes=15),
                    status=status,
                    time_zone="America/New_York",
                    ical_uid="series-1@example.com",
                )
            )
        uow.commit()
    got = occurrences(
        uow_factory,
        tenant,
        dt.datetime(2030, 10, 27, tzinfo=UTC),
        dt.datetime(2030, 11, 12, tzinfo=UTC),
    )
    assert [(s, o, status) for _, s, o, status in got] == [
        (dt.datetime(2030, 10, 29, 15, tzinfo=UTC), None, "planned"),  # moved: exception row
        (cancelled_at, None, "cancelled"),  # cancelled occurrence shows as such
        (
            dt.datetime(2030, 11, 11, 10, tzinfo=UTC),
            dt.datetime(2030, 11, 11, 10, tzinfo=UTC),
            "planned",
        ),
    ]
    assert all(i != series for i, *_ in got[:2])


def test_exdates_remove_occurrences(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    weekly_series(
        uow_factory, tenant, recurrence={"rule": "FREQ=WEEKLY;BYDAY=MO",
                                         "exdates": [dt.datetime(2030, 10, 28, 9, tzinfo=UTC)]}
    )  # fmt: skip
    got = occurrences(
        uow_factory,
        tenant,
        dt.datetime(2030, 10, 27, tzinfo=UTC),
        dt.datetime(2030, 11, 5, tzinfo=UTC),
    )
    assert [s for _, s, _, _ in got] == [dt.datetime(2030, 11, 4, 10, tzinfo=UTC)]


def test_one_activity_per_ical_uid(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    weekly_series(uow_factory, tenant)
    duplicate = Activity(
        org_id=tenant.org_id,
        subject="dup",
        start_at=dt.datetime(2030, 1, 1, tzinfo=UTC),
        end_at=dt.datetime(2030, 1, 1, tzinfo=UTC),
        ical_uid="series-1@example.com",
    )
    with uow_factory() as uow:
        uow.session.add(duplicate)
        with pytest.raises(IntegrityError):
            uow.commit()


def test_one_exception_row_per_occurrence(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    series = weekly_series(uow_factory, tenant)
    original = dt.datetime(2030, 10, 28, 9, tzinfo=UTC)

    def exception() -> Activity:
        return Activity(
            org_id=tenant.org_id, series_id=series, original_start=original, start_at=original,
            end_at=original, ical_uid="series-1@example.com",
        )  # fmt: skip

    with uow_factory() as uow:
        uow.session.add(exception())
        uow.commit()
    with uow_factory() as uow:
        uow.session.add(exception())
        with pytest.raises(IntegrityError):
            uow.commit()


def test_count_bounded_series_is_not_listed_after_its_end(
    uow_factory: UnitOfWorkFactory, tenant: Tenant
) -> None:
    weekly_series(uow_factory, tenant, recurrence={"rule": "FREQ=WEEKLY;BYDAY=MO;COUNT=3"})
    assert (
        occurrences(
            uow_factory,
            tenant,
            dt.datetime(2030, 11, 10, tzinfo=UTC),
            dt.datetime(2031, 1, 1, tzinfo=UTC),
        )
        == []
    )
    assert (
        len(
            occurrences(
                uow_factory,
                tenant,
                dt.datetime(2030, 10, 1, tzinfo=UTC),
                dt.datetime(2031, 1, 1, tzinfo=UTC),
            )
        )
        == 3
    )


def test_all_day_exdate_west_of_utc(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> None:
    with uow_factory() as uow:
        activities.create_activity(
            uow,
            principal(tenant),
            {
                "kind": "visit",
                "start": dt.datetime(2024, 3, 4, tzinfo=UTC),
                "end": dt.datetime(2024, 3, 5, tzinfo=UTC),
                "all_day": True,
                "time_zone": "America/Los_Angeles",
                "recurrence": {
                    "rule": "FREQ=WEEKLY;BYDAY=MO",
                    "exdates": [dt.datetime(2024, 3, 11, tzinfo=UTC)],
                },
            },
        )
        uow.commit()
    got = occurrences(
        uow_factory,
        tenant,
        dt.datetime(2024, 3, 1, tzinfo=UTC),
        dt.datetime(2024, 3, 20, tzinfo=UTC),
    )
    assert [s.date() for _, s, _, _ in got] == [dt.date(2024, 3, 4), dt.date(2024, 3, 18)]
