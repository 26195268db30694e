"""The provider-neutral jobs with Google's shapes: channels that cannot be renewed, a calendar
whose notifications name no event (a cursor round instead), and Gmail's watch as a second signal.

Fakes stand in for the ports here; the end-to-end tests drive the same jobs against the Google
stand-ins over HTTPS.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import func, select

from services import mailboxes
from services.meetings import EventType, MeetingSnapshot
from services.notifications import (
    Incoming,
    channel_is_valid,
    record_mail_push,
    record_notifications,
)
from services.ports import (
    Change,
    ChangeSignal,
    Channel,
    ChannelGone,
    CursorExpired,
    MailboxRef,
    MailNews,
)
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

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
START = NOW + dt.timedelta(days=2)


@dataclass
class FakeChannels:
    """PushChannels like Google Calendar's: no renewal, so a channel is replaced."""

    renewable = False
    calls: list[tuple[str, str]] = field(default_factory=list)
    count: int = 0
    stopped_with: list[tuple[str, str, str]] = field(default_factory=list)

    def subscribe(self, mailbox: MailboxRef, client_state: str) -> Channel:
        self.count += 1
        channel_id = f"channel-{self.count}"
        self.calls.append(("subscribe", channel_id))
        return Channel(channel_id, f"resource-{self.count}", NOW + dt.timedelta(days=7))

    def renew(self, external_id: str) -> dt.datetime:
        raise ChannelGone(reason="google.cannot_renew")

    def reauthorize(self, external_id: str) -> None:
        raise ChannelGone(reason="google.cannot_renew")

    def unsubscribe(
        self, external_id: str, *, resource: str = "", mailbox: MailboxRef | None = None
    ) -> None:
        self.calls.append(("stop", external_id))
        self.stopped_with.append((external_id, resource, mailbox.address if mailbox else ""))


@dataclass
class _Round:
    changes: list[Change]
    cursor: str
    fail: Exception | None = None

    def __iter__(self) -> Iterator[Change]:
        if self.fail is not None:
            raise self.fail
        return iter(self.changes)


@dataclass
class CursorSource:
    """A CalendarSource whose notifications say only "changed": the sync asks since a cursor."""

    mailbox: str
    signals_name_events = False
    rounds: list[str | None] = field(default_factory=list)  # the cursors asked with
    expired: set[str] = field(default_factory=set)
    events: dict[str, str] = field(default_factory=dict)  # id -> subject

    def snapshot(self, event_id: str) -> MeetingSnapshot:
        return MeetingSnapshot(
            provider=Provider.GOOGLE,
            mailbox=self.mailbox,
            provider_event_id=event_id,
            ical_uid=f"{event_id}@google.com",
            event_type=EventType.SINGLE,
            start=START,
            end=START + dt.timedelta(hours=1),
            time_zone="Europe/Oslo",
            subject=self.events[event_id],
            organizer_email=self.mailbox,
            mailbox_is_organizer=True,
        )

    def changed_events(
        self, mailbox: MailboxRef, signals: Sequence[ChangeSignal]
    ) -> Iterator[Change]:
        return iter([self.snapshot(s.event_id) for s in signals if s.event_id in self.events])

    def delta(
        self, mailbox: MailboxRef, cursor: str | None, window: tuple[dt.datetime, dt.datetime]
    ) -> _Round:
        self.rounds.append(cursor)
        if cursor in self.expired:
            return _Round([], "", CursorExpired(reason="google.sync_token_expired"))
        changes: list[Change] = [self.snapshot(event_id) for event_id in self.events]
        return _Round(changes, f"token-{len(self.rounds)}")


@dataclass
class FakeMail:
    """MailWatch: Gmail's watch and history."""

    calendar_messages: int = 0
    history_id: str = "200"
    too_old: bool = False
    watched: int = 0
    asked_since: list[str] = field(default_factory=list)

    def watch(self, mailbox: MailboxRef) -> Channel:
        self.watched += 1
        return Channel(mailbox.address, f"{100 + self.watched}", NOW + dt.timedelta(days=7))

    def stop(self, mailbox: MailboxRef) -> None:
        pass

    def news(self, mailbox: MailboxRef, since_history_id: str) -> MailNews:
        self.asked_since.append(since_history_id)
        if self.too_old:
            raise CursorExpired(reason="google.history_expired")
        return MailNews(self.history_id, self.calendar_messages)


@pytest.fixture
def mailbox_id(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> int:
    with uow_factory() as uow:
        mailbox = Mailbox(
            org_id=tenant.org_id,
            provider=Provider.GOOGLE,
            address=tenant.user_email,
            external_id=tenant.user_email,
        )
        uow.session.add(mailbox)
        uow.commit()
        return mailbox.id


def channel_rows(uow_factory: UnitOfWorkFactory) -> list[tuple[str, str, str]]:
    with uow_factory() as uow:
        rows = uow.session.scalars(select(Subscription).order_by(Subscription.id))
        return [(row.kind, row.external_id, row.resource) for row in rows]


def pending(uow_factory: UnitOfWorkFactory, kind: str) -> int:
    with uow_factory() as uow:
        return (
            uow.session.scalar(
                select(func.count()).where(
                    InboundNotification.kind == kind, InboundNotification.status == "pending"
                )
            )
            or 0
        )


# --------------------------------------------------------------------------- channels


def test_a_channel_that_cannot_be_renewed_is_replaced_new_first_then_the_old_stopped(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    channels = FakeChannels()
    assert mailboxes.ensure_subscription(uow_factory, channels, mailbox_id, now=NOW) == "created"
    assert mailboxes.ensure_subscription(uow_factory, channels, mailbox_id, now=NOW) == "exists"

    later = NOW + dt.timedelta(days=5)  # within renew_before of the 7-day expiry
    assert mailboxes.ensure_subscription(uow_factory, channels, mailbox_id, now=later) == "created"

    assert channels.calls == [("subscribe", "channel-1"), ("subscribe", "channel-2"),
                              ("stop", "channel-1")]  # fmt: skip
    # channels.stop names the channel's resource id and is called as the calendar's user.
    assert channels.stopped_with == [("channel-1", "resource-1", tenant.user_email)]
    assert channel_rows(uow_factory) == [("mailbox_events", "channel-2", "resource-2")]


def test_the_renewal_job_replaces_due_channels_of_providers_without_renewal(
    uow_factory: UnitOfWorkFactory, mailbox_id: int
) -> None:
    channels = FakeChannels()
    mailboxes.ensure_subscription(uow_factory, channels, mailbox_id, now=NOW)
    gone = mailboxes.renew_subscriptions(
        uow_factory, channels, provider=Provider.GOOGLE, now=NOW + dt.timedelta(days=6)
    )
    assert gone == []
    assert [call for call, _ in channels.calls] == ["subscribe", "subscribe", "stop"]
    assert [external_id for _, external_id, _ in channel_rows(uow_factory)] == ["channel-2"]


def test_a_calendar_push_is_checked_against_the_channel_token_and_resource(
    uow_factory: UnitOfWorkFactory, mailbox_id: int
) -> None:
    mailboxes.ensure_subscription(uow_factory, FakeChannels(), mailbox_id, now=NOW)
    with uow_factory() as uow:
        secret = uow.session.scalars(select(Subscription.secret)).one()
        assert channel_is_valid(uow, Provider.GOOGLE, "channel-1", secret, "resource-1")
        assert not channel_is_valid(uow, Provider.GOOGLE, "channel-1", secret, "resource-9")
        assert not channel_is_valid(uow, Provider.GOOGLE, "channel-1", "guess", "resource-1")
        assert not channel_is_valid(uow, Provider.GOOGLE, "channel-9", secret, "resource-1")
        wrong_resource = Incoming("channel-1", secret, {"message_number": "2"}, resource="r-9")
        recorded = record_notifications(uow, Provider.GOOGLE, [wrong_resource])
    assert (recorded.accepted, recorded.rejected) == (0, 1)
    assert pending(uow_factory, "change") == 0


# --------------------------------------------------------------------------- syncs


def notify(uow_factory: UnitOfWorkFactory, number: int) -> list[int]:
    with uow_factory() as uow:
        secret, resource = uow.session.execute(
            select(Subscription.secret, Subscription.resource)
        ).one()
        item = Incoming(
            "channel-1",
            secret,
            {"resource_state": "exists", "message_number": str(number)},
            resource=resource,
        )
        return record_notifications(uow, Provider.GOOGLE, [item]).mailboxes_to_sync


def cursor_of(uow_factory: UnitOfWorkFactory) -> str | None:
    with uow_factory() as uow:
        return uow.session.scalar(select(SyncState.cursor))


def test_a_notification_without_event_ids_runs_a_round_from_the_stored_cursor(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    mailboxes.ensure_subscription(uow_factory, FakeChannels(), mailbox_id, now=NOW)
    source = CursorSource(tenant.user_email, events={"ev1": "Kick-off"})
    assert notify(uow_factory, 2) == [mailbox_id]
    assert notify(uow_factory, 3) == []  # coalesced: one sync is already queued

    report = mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    assert (report.notifications, report.applied, report.full_resync) == (2, 1, True)
    assert source.rounds == [None]
    assert cursor_of(uow_factory) == "token-1"

    source.events["ev2"] = "Review"
    notify(uow_factory, 4)
    report = mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    assert source.rounds == [None, "token-1"]  # incremental from the stored token
    assert report.full_resync is False
    assert cursor_of(uow_factory) == "token-2"
    with uow_factory() as uow:
        assert sorted(uow.session.scalars(select(Activity.subject))) == ["Kick-off", "Review"]
    assert pending(uow_factory, "change") == 0


def test_an_expired_sync_token_falls_back_to_a_full_round_without_duplicates(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    mailboxes.ensure_subscription(uow_factory, FakeChannels(), mailbox_id, now=NOW)
    source = CursorSource(tenant.user_email, events={"ev1": "Kick-off"})
    notify(uow_factory, 2)
    mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    source.expired.add("token-1")
    notify(uow_factory, 3)
    report = mailboxes.sync_mailbox(uow_factory, source, mailbox_id)
    assert source.rounds == [None, "token-1", None]
    assert report.full_resync is True
    assert cursor_of(uow_factory) == "token-3"
    with uow_factory() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Activity)) == 1


# --------------------------------------------------------------------------- Gmail


def watched(uow_factory: UnitOfWorkFactory, mailbox_id: int, mail: FakeMail) -> None:
    assert mailboxes.ensure_mail_watch(uow_factory, mail, mailbox_id, now=NOW) == "created"


def push(uow_factory: UnitOfWorkFactory, address: str, history: str, message: str) -> int | None:
    with uow_factory() as uow:
        return record_mail_push(
            uow,
            address=address,
            history_id=history,
            message_id=message,
            kind=mailboxes.MAIL_WATCH_KIND,
        )


def test_the_mail_watch_is_renewed_daily_and_keeps_the_history_id_to_resume_from(
    uow_factory: UnitOfWorkFactory, mailbox_id: int
) -> None:
    mail = FakeMail()
    watched(uow_factory, mailbox_id, mail)
    assert mailboxes.ensure_mail_watch(uow_factory, mail, mailbox_id, now=NOW) == "exists"
    tomorrow = NOW + dt.timedelta(days=1, minutes=1)
    assert mailboxes.ensure_mail_watch(uow_factory, mail, mailbox_id, now=tomorrow) == "renewed"
    assert mail.watched == 2
    assert channel_rows(uow_factory)[0][2] == "101"  # not the renewal's newer 102


def test_a_push_is_recorded_once_and_only_for_a_watched_user(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    watched(uow_factory, mailbox_id, FakeMail())
    assert push(uow_factory, tenant.user_email, "150", "m-1") == mailbox_id
    assert push(uow_factory, tenant.user_email, "150", "m-1") is None  # redelivered
    assert push(uow_factory, "stranger@elsewhere.example", "150", "m-2") is None
    assert pending(uow_factory, "mail") == 1


def test_new_invitations_in_the_mail_signal_a_calendar_sync(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    mail = FakeMail(calendar_messages=1, history_id="180")
    watched(uow_factory, mailbox_id, mail)
    push(uow_factory, tenant.user_email, "170", "m-1")
    report = mailboxes.process_mail_news(uow_factory, mail, mailbox_id)
    assert mail.asked_since == ["101"]
    assert report.sync_mailbox_id == mailbox_id
    assert pending(uow_factory, "change") == 1
    assert pending(uow_factory, "mail") == 0
    assert channel_rows(uow_factory)[0][2] == "180"  # resumes from there next time


def test_mail_without_invitations_signals_nothing(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    mail = FakeMail(calendar_messages=0, history_id="180")
    watched(uow_factory, mailbox_id, mail)
    push(uow_factory, tenant.user_email, "170", "m-1")
    report = mailboxes.process_mail_news(uow_factory, mail, mailbox_id)
    assert report.sync_mailbox_id is None
    assert pending(uow_factory, "change") == 0
    assert channel_rows(uow_factory)[0][2] == "180"


def test_a_history_id_too_old_falls_back_to_a_calendar_sync(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    mail = FakeMail(too_old=True)
    watched(uow_factory, mailbox_id, mail)
    push(uow_factory, tenant.user_email, "9000", "m-1")
    report = mailboxes.process_mail_news(uow_factory, mail, mailbox_id)
    assert report.history_expired is True
    assert report.sync_mailbox_id == mailbox_id
    assert pending(uow_factory, "change") == 1
    assert channel_rows(uow_factory)[0][2] == "9000"  # the pushed id: the newest known


def test_health_shows_the_channel_and_the_mail_watch_apart(
    uow_factory: UnitOfWorkFactory, mailbox_id: int, tenant: Tenant
) -> None:
    mailboxes.ensure_subscription(uow_factory, FakeChannels(), mailbox_id, now=NOW)
    mail = FakeMail()
    mail_expiry = NOW + dt.timedelta(days=7)
    watched(uow_factory, mailbox_id, mail)
    with uow_factory() as uow:
        uow.session.execute(
            Subscription.__table__.update()
            .where(Subscription.kind == mailboxes.MAIL_WATCH_KIND)
            .values(expires_at=mail_expiry - dt.timedelta(hours=1))
        )
        uow.commit()
        (row,) = mailboxes.mailbox_health(uow, tenant.org_id)
    assert row.provider == "google"
    assert row.subscription_expires_at == NOW + dt.timedelta(days=7)
    assert row.mail_watch_expires_at == mail_expiry - dt.timedelta(hours=1)
