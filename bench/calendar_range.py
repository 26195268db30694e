"""Calendar range benchmark: one month of an organization's calendar, series expanded."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import insert, text

from bench.common import Backend, Result, log, settle, summarize, time_ms
from services import activities, organizations
from services.activities import ActivityFilter
from services.auth import Principal, PrincipalKind
from services.tables import Activity

TARGET_MS = 100.0

ZONES = (
    "Europe/Oslo", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago",
    "America/Los_Angeles", "America/Sao_Paulo", "Asia/Tokyo", "Asia/Kolkata",
    "Australia/Sydney", "Pacific/Auckland", "UTC",
)  # fmt: skip
RULES = (
    "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR",
    "FREQ=DAILY",
    "FREQ=WEEKLY;BYDAY=MO",
    "FREQ=WEEKLY;BYDAY=TU,TH",
    "FREQ=WEEKLY;INTERVAL=2;BYDAY=FR",
    "FREQ=MONTHLY;BYMONTHDAY=1",
    "FREQ=MONTHLY;BYDAY=2WE",
    "FREQ=MONTHLY;BYDAY=-1FR",
)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _single_rows(
    rng: random.Random, org_id: int, user_ids: list[int], count: int
) -> list[dict[str, Any]]:
    """The rows create_activity writes for a plain meeting, over the past and the coming year."""
    now = _now()
    rows = []
    for n in range(count):
        start = now + dt.timedelta(minutes=30 * rng.randrange(-365 * 48, 365 * 48))
        end = start + dt.timedelta(minutes=rng.choice((15, 30, 45, 60, 90, 120)))
        rows.append(
            {
                "org_id": org_id, "kind": "meeting", "subject": f"Meeting {n}", "description": "",
                "location": "", "start_at": start, "end_at": end,
                "time_zone": rng.choice(ZONES), "all_day": False, "status": "planned",
                "outcome": "", "owner_id": rng.choice(user_ids), "company_id": None,
                "visibility": "private" if rng.random() < 0.1 else "normal", "show_as": "busy",
                "reminder_minutes": 15, "due_date": None, "priority": "normal",
                "task_status": None, "ical_uid": f"bench-{n}@example.com", "series_id": None,
                "original_start": None, "origin": "crm", "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
    return rows


def _load(
    backend: Backend, rng: random.Random, *, users: int, series: int, singles: int
) -> Principal:
    factory = backend.container.uow
    with factory() as uow:
        org = organizations.create_organization(
            uow, name="Bench Calendar", own_domains=["calendar.example"]
        )
        user_ids = [
            organizations.add_user(uow, org_id=org.id, email=f"user{n}@calendar.example").id
            for n in range(users)
        ]
        uow.commit()
    now = _now()
    with factory() as uow:
        for n in range(series):
            owner = Principal(org.id, rng.choice(user_ids), PrincipalKind.API_KEY, "bench")
            zone = rng.choice(ZONES)
            start = now - dt.timedelta(days=rng.randrange(1, 3 * 365), hours=rng.randrange(24))
            activities.create_activity(
                uow,
                owner,
                {
                    "subject": f"Series {n}",
                    "start": start,
                    "end": start + dt.timedelta(minutes=rng.choice((15, 30, 60))),
                    "time_zone": zone,
                    "recurrence": {"rule": rng.choice(RULES)},
                },
            )
        uow.commit()
    with backend.container.engine.begin() as connection:
        rows = _single_rows(rng, org.id, user_ids, singles)
        for i in range(0, len(rows), 2000):
            connection.execute(insert(Activity), rows[i : i + 2000])
    if backend.is_postgres:
        # What autovacuum does within a minute of a bulk load; measured before it, the runs
        # would straddle it and the plans change mid-run (the search benchmark does the same).
        engine = backend.container.engine
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    return Principal(org.id, user_ids[0], PrincipalKind.API_KEY, "bench")


def run(
    backend: Backend, *, users: int, series: int, singles: int, runs: int, seed: int = 7
) -> list[Result]:
    rng = random.Random(seed)
    log(f"{backend.name}: loading {users} users, {series} series, {singles:,} meetings")
    principal = _load(backend, rng, users=users, series=series, singles=singles)
    settle()
    now = _now()
    factory = backend.container.uow
    counts: list[int] = []

    def month(start: dt.datetime) -> None:
        with factory(read_only=True) as uow:
            page = activities.list_activities(
                uow, principal, ActivityFilter(start=start, end=start + dt.timedelta(days=30)),
                limit=500,
            )  # fmt: skip
            counts.append(len(page.items))

    starts = [now + dt.timedelta(days=rng.randrange(-330, 330)) for _ in range(runs)]
    for start in starts[:5]:
        month(start)
    counts.clear()
    samples = [time_ms(lambda s=start: month(s)) for start in starts]  # type: ignore[misc]
    low, high = min(counts), max(counts)
    note = f"{low} items a page" if low == high else f"{low}-{high} items a page"
    label = f"one month, {series} series + {singles:,} meetings, limit 500"
    result = summarize("calendar range", backend.name, label, samples, TARGET_MS, note)
    log(f"{backend.name}: calendar range p99 {result.p99:.2f} ms ({note})")
    return [result]
