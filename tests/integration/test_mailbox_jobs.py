"""The mailbox jobs (services.mailboxes) with a hand-written fake of the CalendarSource port.

The end-to-end tests drive them through Graph; these pin the failure paths a real provider
rarely produces on demand: errors mid-sync, a change that cannot be applied, attempts running
out, the sweeper after a crash.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select, update

from services import mailboxes
from services.mailboxes import RetryLater, SyncPolicy
from services.meetings import EventType, MeetingSnapshot
from services.notifications import Incoming, record_notifications
from services.ports import Change, ChangeSignal, DeltaRound, MailboxRef, ProviderError
from services.tables import (
    Activity,
    InboundNotification,
    Mailbox,
    Provider,
    Subscription,
    SyncState,
)
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant

START = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
SECRET = "client-state-secret-for-the-tests-0123456789"


@dataclass
class FakeSource:
    """CalendarSource: serves snapshots by event id, or fails as told."""

    mailbox: str
    signals_name_events = True
    fail_with: ProviderError | None = None
    broken: set[str] = field(default_factory=set)  # ids whose snapshot cannot be applied
    asked: list[list[str]] = field(default_factory=list)

    def snapshot(self, event_id: str) -> MeetingSnapshot:
        return MeetingSnapshot(
            provider=Provider.MICROSOFT,
            mailbox=self.mailbox,
            provider_event_id=event_id,
            ical_uid=f"uid-{event_id}",
            event_type=EventType.SINGLE,
            start=START,
            end=START + dt.timedelta(hours=1),
            time_zone="UTC",
            # A subject of the wrong type stands in for a bug in applying one event.
            subject=None if event_id in self.broken else f"Meeting {event_id}",  # type: ignore[arg-type]
            organizer_email=self.mailbox,
            mailbox_is_organizer=True,
        )

    def changed_events(
        self, mailbox: MailboxRef, signals: Sequence[ChangeSignal]
    ) -> Iterator[Change]:
        self.asked.append([s.event_id for s in signals])
        if self.fail_with is not None:
            raise self.fail_with
        return iter([self.snapshot(s.event_id) for s in signals])

    def delta(
        self, mailbox: MailboxRef, cursor: str | None, window: tuple[dt.datetime, dt.datetime]
    ) -> DeltaRound:
        raise AssertionError("not used here")


@pytest.fixture
def mailbox_id(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> int:
    with uow_factory() as uow:
        mailbox = Mailbox(
            org_id=tenant.org_id, provider="microsoft", address=tenant.user_email, external_id="u1"
        )
        uow.session.add(mailbox)
        uow.session.add(
            Subscription(
                org_id=tenant.org_id,
                provider="microsoft",
                kind="mailbox_events",
                mailbox=tenant.user_email,
                external_id="sub-1",
                secret=SECRET,
                expires_at=START,
            )
        )
        uow.commit()
        return mailbox.id


def notify(uow_factory: UnitOfWorkFactory, *event_ids: str) -> list[int]:
    items = [
        Incoming(
            "sub-1",
            SECRET,
            {"event_id": event_id, "change_type": "updated", "etag": uuid.uuid4().hex},
        )
        for event_id in event_ids
    ]
    with uow_factory() as uow:
        return record_notifications(uow, Provider.MICROSOFT, items).mailboxes_to_sync


def statuses(uow_factory: UnitOfWorkFactory) -> list[tuple[str, int]]:
    with uow_factory() as uow:
        rows = uow.session.scalars(select(InboundNotification).order_by(InboundNotification.id))
        return [(row.status, row.attempts) for row in rows]


def subjects(uow_factory: UnitOfWorkFactory) -> list[str]:
    with uow_factory() as uow:
        return sorted(uow.session.scalars(select(Activity.subject)))


def last_error(uow_factory: UnitOfWorkFactory) -> str | None:
    with uow_factory() as uow:
        return uow.session.scalars(select(SyncState.last_error)).one()


def test_a_sync_takes_every_pending_notification_and_fetches_each_event_once(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, mailbox_id: int
) -> None:
    assert notify(uow_factory, "a", "b") == [mailbox_id]
    assert notify(uow_factory, "a") == []  # a sync is queued already: coalesced
    source = FakeSource(tenant.user_email)
    report = mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    assert report.notifications == 3
    assert source.asked == [["a", "b"]]
    assert subjects(uow_factory) == ["Meeting a", "Meeting b"]
    assert statuses(uow_factory) == [("done", 0)] * 3
    assert notify(uow_factory, "c") == [mailbox_id]  # the sync cleared the flag


def test_a_transient_error_keeps_notifications_pending_and_says_when_to_retry(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, mailbox_id: int
) -> None:
    notify(uow_factory, "a")
    throttled = ProviderError(
        "Graph throttled the mailbox", reason="graph.throttled", retry_after=42
    )
    source = FakeSource(tenant.user_email, fail_with=throttled)
    with pytest.raises(RetryLater) as later:
        mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    assert later.value.delay == 42
    assert statuses(uow_factory) == [("pending", 1)]
    assert last_error(uow_factory) == "Graph throttled the mailbox (graph.throttled)"
    source.fail_with = None
    mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    assert statuses(uow_factory) == [("done", 1)]
    assert last_error(uow_factory) is None


def test_notifications_give_up_after_max_attempts(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, mailbox_id: int
) -> None:
    notify(uow_factory, "a")
    denied = ProviderError(
        "Access to OData is disabled.", reason="graph.forbidden", transient=False
    )
    source = FakeSource(tenant.user_email, fail_with=denied)
    policy = SyncPolicy(max_attempts=3)
    for _ in range(3):
        mailboxes.sync_mailbox(uow_factory, source, mailbox_id, policy=policy)  # no RetryLater
    assert statuses(uow_factory) == [("failed", 3)]
    assert mailboxes.sync_mailbox(uow_factory, source, mailbox_id, policy=policy).skipped


def test_one_change_that_cannot_be_applied_does_not_hold_back_the_others(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, mailbox_id: int
) -> None:
    notify(uow_factory, "a", "bad", "c")
    source = FakeSource(tenant.user_email, broken={"bad"})
    report = mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    assert report.failed == 1
    assert subjects(uow_factory) == ["Meeting a", "Meeting c"]
    assert "event bad could not be applied" in (last_error(uow_factory) or "")


def test_the_sweeper_requeues_what_a_crashed_worker_left(
    uow_factory: UnitOfWorkFactory, tenant: Tenant, mailbox_id: int
) -> None:
    notify(uow_factory, "a")
    now = dt.datetime.now(dt.UTC)
    stale = dt.timedelta(minutes=2)
    # Queued a moment ago: the queued sync will run, nothing to sweep.
    assert mailboxes.mailboxes_needing_sync(uow_factory, now=now, stale_after=stale) == []
    # The worker took the job (clearing the flag) and died before finishing.
    with uow_factory() as uow:
        uow.session.execute(update(Mailbox).values(sync_queued_at=None))
        uow.commit()
    later = now + dt.timedelta(minutes=3)
    assert mailboxes.mailboxes_needing_sync(uow_factory, now=later, stale_after=stale) == [
        mailbox_id
    ]
    # Claimed: a second sweep right after does not queue it twice.
    assert mailboxes.mailboxes_needing_sync(uow_factory, now=later, stale_after=stale) == []
