"""Watching mailboxes: the watch list, subscriptions, and the syncs that keep activities current.

Provider-neutral: graph/ (and gmail/) implement the ports in services.ports; bootstrap wires these
jobs to the queue. Every job is idempotent and safe to run twice or concurrently, because the sync
rules (services.sync) are, and because notifications are only marked done after their changes are
committed: a worker killed mid-way leaves them pending for the next sync.

Network and database work never overlap: a chunk of changes is fetched with no transaction open,
then applied and committed, so a slow provider never holds SQLite's write lock.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import itertools
import logging
import queue
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeVar, cast

from sqlalchemy import delete, exists, func, or_, select, true, update
from sqlalchemy.orm import InstrumentedAttribute

from services import metrics
from services.db import utcnow
from services.errors import Conflict, NotFound
from services.meetings import EventType, Removed
from services.notifications import record_signal
from services.organizations import users_by_email
from services.ports import (
    CalendarSource,
    Change,
    ChangeSignal,
    ChannelGone,
    CursorExpired,
    Directory,
    MailboxRef,
    MailWatch,
    ProviderError,
    PushChannels,
)
from services.sync import SyncAction, apply_removed, apply_snapshot, lookups_for
from services.tables import (
    Activity,
    ActivityKind,
    InboundNotification,
    Mailbox,
    NotificationStatus,
    Organization,
    Provider,
    ProviderLink,
    Recurrence,
    Subscription,
    SyncState,
    User,
)
from services.text import normalize_email
from services.unit_of_work import UnitOfWork

__all__ = [
    "DirectoryReport",
    "LifecycleOutcome",
    "MailboxHealth",
    "RetryLater",
    "SyncPolicy",
    "SyncReport",
    "active_mailbox_ids",
    "connect_domain",
    "connect_tenant",
    "drop_subscriptions",
    "ensure_mail_watch",
    "ensure_subscription",
    "google_organizations",
    "handle_lifecycle",
    "mailbox_health",
    "mailboxes_needing_sync",
    "organization_for_domain",
    "organization_for_tenant",
    "process_mail_news",
    "provider_of",
    "reconcile_mailbox",
    "refresh_mailboxes",
    "renew_subscriptions",
    "stop_mail_watches",
    "sync_mailbox",
]

log = logging.getLogger(__name__)

UowFactory = Callable[..., UnitOfWork]

# Subscription.kind: the calendar push registration (Graph subscription, Google Calendar
# channel) and Gmail's watch, which only says "new mail" (a second signal for Google users).
SUBSCRIPTION_KIND: Final = "mailbox_events"
MAIL_WATCH_KIND: Final = "gmail_watch"


@dataclass(frozen=True, slots=True)
class SyncPolicy:
    """The knobs of the sync jobs; defaults are what the issue and the providers' limits ask."""

    window_past: dt.timedelta = dt.timedelta(days=90)
    window_future: dt.timedelta = dt.timedelta(days=730)
    # A delta window is fixed when it starts; restart it (a full resync) once it is this stale.
    window_roll_after: dt.timedelta = dt.timedelta(days=7)
    claim_limit: int = 5000  # notifications one sync takes on
    chunk_size: int = 200  # changes applied per transaction
    max_attempts: int = 8  # then notifications are marked failed and reconciliation takes over
    renew_before: dt.timedelta = dt.timedelta(days=3)  # Outlook subscriptions last < 7 days
    retry_base_seconds: float = 30.0


class RetryLater(Exception):
    """The job should run again after `delay` seconds (the provider throttled or failed)."""

    def __init__(self, message: str, *, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


@dataclass(slots=True)
class SyncReport:
    mailbox_id: int
    notifications: int = 0
    applied: int = 0
    removed: int = 0
    ignored: int = 0
    failed: int = 0
    full_resync: bool = False
    more_pending: bool = False
    skipped: str = ""  # why nothing was done, when nothing was


@dataclass(slots=True)
class DirectoryReport:
    added: int = 0
    reactivated: int = 0
    deactivated: int = 0
    active: int = 0
    # Active mailboxes without a live subscription: the caller subscribes them.
    to_subscribe: list[int] = field(default_factory=list)
    # Mailboxes that left the directory and still have subscriptions to delete.
    to_unsubscribe: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LifecycleOutcome:
    action: str  # renewed / recreated / reconcile / ignored
    reconcile_mailbox_id: int | None = None


@dataclass(frozen=True, slots=True)
class MailboxHealth:
    mailbox_id: int
    provider: str
    address: str
    active: bool
    subscription_expires_at: dt.datetime | None
    mail_watch_expires_at: dt.datetime | None  # Google users' Gmail watch (second signal)
    last_notification_at: dt.datetime | None
    last_sync_at: dt.datetime | None
    last_error: str | None
    last_error_at: dt.datetime | None
    pending_notifications: int


# --------------------------------------------------------------------------- the watch list


def connect_tenant(uow_factory: UowFactory, *, org_id: int, tenant_id: str) -> None:
    """Link an organization to its Entra tenant (the admin granted the app consent there)."""
    _connect(uow_factory, org_id, Organization.ms_tenant_id, tenant_id, "tenant")


def _connect(
    uow_factory: UowFactory,
    org_id: int,
    column: InstrumentedAttribute[str | None],
    value: str,
    what: str,
) -> None:
    """Set the organization's provider key `column` to `value`, unless another has it."""
    with uow_factory() as uow:
        organization = uow.session.get(Organization, org_id)
        if organization is None:
            raise NotFound(f"organization {org_id} does not exist")
        other = uow.session.scalar(
            select(Organization.id).where(column == value, Organization.id != org_id)
        )
        if other is not None:
            raise Conflict(f"{what} {value} is already connected to organization {other}")
        setattr(organization, column.key, value)
        uow.commit()


def organization_for_tenant(uow_factory: UowFactory, tenant_id: str) -> int | None:
    with uow_factory(read_only=True) as uow:
        return uow.session.scalar(
            select(Organization.id).where(Organization.ms_tenant_id == tenant_id)
        )


def connect_domain(uow_factory: UowFactory, *, org_id: int, domain: str) -> None:
    """Link an organization to its Google Workspace domain (its admin granted delegation)."""
    domain = domain.strip().lower()
    if not domain or "." not in domain or "@" in domain:
        raise Conflict(f"{domain!r} is not a domain name")
    _connect(uow_factory, org_id, Organization.google_domain, domain, "domain")


def organization_for_domain(uow_factory: UowFactory, domain: str) -> int | None:
    with uow_factory(read_only=True) as uow:
        return uow.session.scalar(
            select(Organization.id).where(Organization.google_domain == domain.strip().lower())
        )


def google_organizations(uow_factory: UowFactory) -> list[int]:
    with uow_factory(read_only=True) as uow:
        return list(
            uow.session.scalars(
                select(Organization.id)
                .where(Organization.google_domain.is_not(None))
                .order_by(Organization.id)
            )
        )


def provider_of(uow_factory: UowFactory, mailbox_id: int) -> Provider | None:
    """Which provider a mailbox is at: the jobs pick the adapters by it."""
    with uow_factory(read_only=True) as uow:
        provider = uow.session.scalar(select(Mailbox.provider).where(Mailbox.id == mailbox_id))
    return None if provider is None else Provider(provider)


def refresh_mailboxes(
    uow_factory: UowFactory,
    directory: Directory,
    *,
    org_id: int,
    provider: Provider,
    group_id: str | None = None,
) -> DirectoryReport:
    """Bring the watch list in line with the directory (all users, or one group's members)."""
    entries = {normalize_email(entry.address): entry for entry in directory.mailboxes(group_id)}
    report = DirectoryReport()
    with uow_factory() as uow:
        known = {
            mailbox.address: mailbox
            for mailbox in uow.session.scalars(
                select(Mailbox).where(Mailbox.org_id == org_id, Mailbox.provider == provider)
            )
        }
        for address, entry in entries.items():
            mailbox = known.get(address)
            if mailbox is None:
                mailbox = Mailbox(org_id=org_id, provider=provider, address=address)
                uow.session.add(mailbox)
                report.added += 1
            elif not mailbox.active:
                report.reactivated += 1
            mailbox.external_id = entry.external_id
            mailbox.display_name = entry.display_name[:200]
            mailbox.active = True
        # A watched mailbox is a CRM user: their meetings get an owner and they count as
        # internal participants (services.sync recognises users by e-mail).
        users = users_by_email(uow, org_id, entries)
        for address, entry in entries.items():
            user = users.get(address)
            if user is None:
                uow.session.add(
                    User(
                        org_id=org_id,
                        email=address,
                        display_name=entry.display_name[:200],
                        entra_object_id=entry.external_id[:64]
                        if provider is Provider.MICROSOFT
                        else None,
                    )
                )
            elif user.entra_object_id is None and provider is Provider.MICROSOFT:
                user.entra_object_id = entry.external_id[:64]
        for address, mailbox in known.items():
            if address not in entries and mailbox.active:
                mailbox.active = False
                report.deactivated += 1
        uow.flush()
        report.active = len(entries)
        live = set(
            uow.session.scalars(
                select(Subscription.mailbox).where(
                    Subscription.org_id == org_id,
                    Subscription.provider == provider,
                    Subscription.kind == SUBSCRIPTION_KIND,
                )
            )
        )
        report.to_subscribe = sorted(
            mailbox.id
            for mailbox in uow.session.scalars(
                select(Mailbox).where(
                    Mailbox.org_id == org_id, Mailbox.provider == provider, Mailbox.active
                )
            )
            if mailbox.address not in live
        )
        report.to_unsubscribe = sorted(
            subscription.external_id
            for subscription in uow.session.scalars(
                select(Subscription).where(
                    Subscription.org_id == org_id,
                    Subscription.provider == provider,
                    Subscription.kind == SUBSCRIPTION_KIND,
                    Subscription.mailbox.not_in(entries) if entries else true(),
                )
            )
        )
        uow.commit()
    log.info(
        "mailboxes.refreshed org=%s provider=%s active=%s added=%s deactivated=%s",
        org_id,
        provider,
        report.active,
        report.added,
        report.deactivated,
    )
    return report


def active_mailbox_ids(uow_factory: UowFactory, provider: Provider | None = None) -> list[int]:
    with uow_factory(read_only=True) as uow:
        query = select(Mailbox.id).where(Mailbox.active.is_(True)).order_by(Mailbox.id)
        if provider is not None:
            query = query.where(Mailbox.provider == provider)
        return list(uow.session.scalars(query))


# --------------------------------------------------------------------------- subscriptions


def ensure_subscription(
    uow_factory: UowFactory,
    channels: PushChannels,
    mailbox_id: int,
    *,
    now: dt.datetime | None = None,
    policy: SyncPolicy = SyncPolicy(),
) -> str:
    """Make sure the mailbox has a live subscription: "exists", "created" or "inactive".

    One that expires within `renew_before` is renewed in place where the provider allows it
    (Graph), else replaced: the new channel is created first and the old one stopped after, so
    nothing goes unannounced in between (Google Calendar; both are accepted meanwhile).
    """
    now = now or utcnow()
    with uow_factory() as uow:
        mailbox = uow.session.get(Mailbox, mailbox_id)
        if mailbox is None or not mailbox.active:
            return "inactive"
        ref = _ref(mailbox)
        current = _subscription_of(uow, mailbox)
        if current is not None and current.expires_at > now + policy.renew_before:
            return "exists"
        stale = None if current is None else (current.external_id, current.resource)
    if stale is not None and channels.renewable:
        try:
            renewed = channels.renew(stale[0])
        except ChannelGone:
            _forget_subscription(uow_factory, stale[0])
            stale = None
        else:
            _store_expiry(uow_factory, stale[0], renewed)
            return "exists"
    client_state = secrets.token_urlsafe(32)  # 43 characters; Graph allows up to 128
    try:
        channel = channels.subscribe(ref, client_state)
    except ProviderError as failure:
        # Shown in the health view: e.g. Graph could not validate PUBLIC_BASE_URL.
        _record_error(uow_factory, mailbox_id, failure)
        if failure.transient:
            raise RetryLater(str(failure), delay=_delay(failure, policy)) from failure
        raise
    with uow_factory() as uow:
        others = Subscription.external_id != (stale[0] if stale is not None else "")
        uow.session.execute(
            delete(Subscription).where(
                Subscription.org_id == ref.org_id,
                Subscription.provider == ref.provider,
                Subscription.mailbox == ref.address,
                Subscription.kind == SUBSCRIPTION_KIND,
                others,
            )
        )
        uow.session.add(
            Subscription(
                org_id=ref.org_id,
                provider=ref.provider,
                kind=SUBSCRIPTION_KIND,
                mailbox=ref.address,
                external_id=channel.external_id,
                resource=channel.resource,
                secret=client_state,
                expires_at=channel.expires_at,
            )
        )
        uow.commit()
    if stale is not None:  # the replaced channel: stopped once the new one is stored
        _stop_channel(uow_factory, channels, stale[0], stale[1], ref)
    log.info("subscription.created mailbox_id=%s expires=%s", mailbox_id, channel.expires_at)
    return "created"


def renew_subscriptions(
    uow_factory: UowFactory,
    channels: PushChannels,
    *,
    provider: Provider,
    now: dt.datetime | None = None,
    policy: SyncPolicy = SyncPolicy(),
) -> list[int]:
    """Renew (or replace) every subscription that expires within `renew_before`.

    Returns the mailboxes whose subscription was gone and must be recreated (and resynced: what
    happened while it was gone was never announced).
    """
    now = now or utcnow()
    with uow_factory(read_only=True) as uow:
        due = list(
            uow.session.execute(
                select(Subscription.external_id, Mailbox.id)
                .join(
                    Mailbox,
                    (Mailbox.org_id == Subscription.org_id)
                    & (Mailbox.provider == Subscription.provider)
                    & (Mailbox.address == Subscription.mailbox),
                )
                .where(
                    Subscription.provider == provider,
                    Subscription.kind == SUBSCRIPTION_KIND,
                    Subscription.expires_at <= now + policy.renew_before,
                )
            )
        )
    gone: list[int] = []
    for external_id, mailbox_id in due:
        if not channels.renewable:
            try:
                ensure_subscription(uow_factory, channels, mailbox_id, now=now, policy=policy)
            except (ProviderError, RetryLater):
                continue  # recorded on the mailbox; the old channel lives until it expires
            continue
        try:
            expires_at = channels.renew(external_id)
        except ChannelGone:
            _forget_subscription(uow_factory, external_id)
            gone.append(mailbox_id)
            continue
        except ProviderError as failure:
            _record_error(uow_factory, mailbox_id, failure)
            continue
        _store_expiry(uow_factory, external_id, expires_at)
    return gone


def drop_subscriptions(
    uow_factory: UowFactory, channels: PushChannels, external_ids: Sequence[str]
) -> None:
    """Delete subscriptions of mailboxes no longer watched, at the provider and here.

    One that cannot be deleted now is kept (and tried again at the next refresh).
    """
    with uow_factory(read_only=True) as uow:
        rows = list(
            uow.session.execute(
                select(
                    Subscription.external_id,
                    Subscription.resource,
                    Mailbox.org_id,
                    Mailbox.provider,
                    Mailbox.address,
                    Mailbox.external_id,
                )
                .join(
                    Mailbox,
                    (Mailbox.org_id == Subscription.org_id)
                    & (Mailbox.provider == Subscription.provider)
                    & (Mailbox.address == Subscription.mailbox),
                )
                .where(Subscription.external_id.in_(external_ids))
            )
        )
    for external_id, resource, org_id, provider, address, user_id in rows:
        ref = MailboxRef(org_id, Provider(provider), address, user_id)
        _stop_channel(uow_factory, channels, external_id, resource, ref)


def _stop_channel(
    uow_factory: UowFactory,
    channels: PushChannels,
    external_id: str,
    resource: str,
    ref: MailboxRef,
) -> None:
    try:
        channels.unsubscribe(external_id, resource=resource, mailbox=ref)
    except ProviderError as failure:
        # Kept: the next refresh or replacement tries again (it expires by itself anyway).
        log.warning("subscription.delete_failed reason=%s: %s", failure.reason, failure)
        return
    _forget_subscription(uow_factory, external_id)


def handle_lifecycle(
    uow_factory: UowFactory,
    channels: PushChannels,
    notification_id: int,
    *,
    now: dt.datetime | None = None,
    policy: SyncPolicy = SyncPolicy(),
) -> LifecycleOutcome:
    """Act on a lifecycle notification: reauthorizationRequired, subscriptionRemoved, missed.

    https://learn.microsoft.com/graph/change-notifications-lifecycle-events
    """
    now = now or utcnow()
    with uow_factory() as uow:
        row = uow.session.get(InboundNotification, notification_id)
        if row is None or row.status != NotificationStatus.PENDING:
            return LifecycleOutcome("ignored")
        event = str(row.payload.get("lifecycle_event") or "")
        subscription = (
            uow.session.get(Subscription, row.subscription_id) if row.subscription_id else None
        )
        mailbox = uow.session.scalar(
            select(Mailbox).where(
                Mailbox.org_id == row.org_id,
                Mailbox.provider == row.provider,
                Mailbox.address == row.mailbox,
            )
        )
        external_id = subscription.external_id if subscription is not None else None
        mailbox_id = mailbox.id if mailbox is not None else None
    try:
        outcome = _act_on_lifecycle(
            uow_factory, channels, event, external_id, mailbox_id, now=now, policy=policy
        )
    except ProviderError as failure:
        if mailbox_id is not None:
            _record_error(uow_factory, mailbox_id, failure)
        if not failure.transient:  # retrying cannot help: the hourly jobs take over
            _finish_notifications(uow_factory, [notification_id], NotificationStatus.FAILED)
        raise
    with uow_factory() as uow:
        uow.session.execute(
            update(InboundNotification)
            .where(InboundNotification.id == notification_id)
            .values(status=NotificationStatus.DONE, processed_at=utcnow())
        )
        uow.commit()
    log.info("lifecycle.handled event=%s action=%s", event, outcome.action)
    return outcome


def _act_on_lifecycle(
    uow_factory: UowFactory,
    channels: PushChannels,
    event: str,
    external_id: str | None,
    mailbox_id: int | None,
    *,
    now: dt.datetime,
    policy: SyncPolicy,
) -> LifecycleOutcome:
    if mailbox_id is None:
        return LifecycleOutcome("ignored")
    if event == "missed":
        return LifecycleOutcome("reconcile", mailbox_id)
    if event == "reauthorizationRequired" and external_id is not None:
        try:
            channels.reauthorize(external_id)
            _store_expiry(uow_factory, external_id, channels.renew(external_id))
            return LifecycleOutcome("renewed")
        except ChannelGone:
            _forget_subscription(uow_factory, external_id)
            ensure_subscription(uow_factory, channels, mailbox_id, now=now, policy=policy)
            return LifecycleOutcome("recreated", mailbox_id)
    # subscriptionRemoved, or reauthorization for a subscription we no longer have
    if external_id is not None:
        _forget_subscription(uow_factory, external_id)
    ensure_subscription(uow_factory, channels, mailbox_id, now=now, policy=policy)
    return LifecycleOutcome("recreated", mailbox_id)


def _subscription_of(uow: UnitOfWork, mailbox: Mailbox) -> Subscription | None:
    return uow.session.scalar(
        select(Subscription)
        .where(
            Subscription.org_id == mailbox.org_id,
            Subscription.provider == mailbox.provider,
            Subscription.mailbox == mailbox.address,
            Subscription.kind == SUBSCRIPTION_KIND,
        )
        .order_by(Subscription.expires_at.desc())
        .limit(1)
    )


def _store_expiry(uow_factory: UowFactory, external_id: str, expires_at: dt.datetime) -> None:
    with uow_factory() as uow:
        uow.session.execute(
            update(Subscription)
            .where(Subscription.external_id == external_id)
            .values(expires_at=expires_at)
        )
        uow.commit()


def _forget_subscription(uow_factory: UowFactory, external_id: str) -> None:
    with uow_factory() as uow:
        uow.session.execute(delete(Subscription).where(Subscription.external_id == external_id))
        uow.commit()


# --------------------------------------------------------------------------- Gmail watches


@dataclass(slots=True)
class MailReport:
    mailbox_id: int
    pushes: int = 0
    calendar_messages: int = 0
    history_expired: bool = False
    sync_mailbox_id: int | None = None  # the calendar sync the caller must enqueue, if any
    skipped: str = ""


def ensure_mail_watch(
    uow_factory: UowFactory,
    watch: MailWatch,
    mailbox_id: int,
    *,
    now: dt.datetime | None = None,
    renew_before: dt.timedelta = dt.timedelta(days=6),
) -> str:
    """Start or renew a Google user's Gmail watch: "exists", "created", "renewed" or "inactive".

    Gmail wants a watch call at least every 7 days and recommends one a day; a daily job with
    the default `renew_before` does that. The history id to resume from is kept across renewals
    (a renewal's is newer: taking it would skip the mail in between).
    """
    now = now or utcnow()
    with uow_factory(read_only=True) as uow:
        mailbox = uow.session.get(Mailbox, mailbox_id)
        if mailbox is None or not mailbox.active:
            return "inactive"
        ref = _ref(mailbox)
        current = _mail_watch_of(uow, ref)
        if current is not None and current.expires_at > now + renew_before:
            return "exists"
    try:
        channel = watch.watch(ref)
    except ProviderError as failure:
        _record_error(uow_factory, mailbox_id, failure)
        raise
    with uow_factory() as uow:
        row = _mail_watch_of(uow, ref)
        if row is None:
            uow.session.add(
                Subscription(
                    org_id=ref.org_id,
                    provider=ref.provider,
                    kind=MAIL_WATCH_KIND,
                    mailbox=ref.address,
                    external_id=channel.external_id,
                    resource=channel.resource,
                    # Pushes are authenticated by Pub/Sub's OIDC token, not by a shared secret.
                    secret=secrets.token_urlsafe(32),
                    expires_at=channel.expires_at,
                )
            )
        else:
            row.expires_at = channel.expires_at
        uow.commit()
    log.info("mail_watch.%s mailbox_id=%s", "renewed" if row else "created", mailbox_id)
    return "renewed" if row is not None else "created"


def stop_mail_watches(uow_factory: UowFactory, watch: MailWatch, *, org_id: int) -> int:
    """Stop the Gmail watches of mailboxes no longer watched; returns how many were stopped."""
    with uow_factory(read_only=True) as uow:
        rows = list(
            uow.session.execute(
                select(Subscription.external_id, Mailbox.id)
                .join(
                    Mailbox,
                    (Mailbox.org_id == Subscription.org_id)
                    & (Mailbox.provider == Subscription.provider)
                    & (Mailbox.address == Subscription.mailbox),
                )
                .where(
                    Subscription.org_id == org_id,
                    Subscription.kind == MAIL_WATCH_KIND,
                    Mailbox.active.is_(False),
                )
            )
        )
        refs = {
            mailbox_id: _ref(uow.session.get_one(Mailbox, mailbox_id)) for _, mailbox_id in rows
        }
    stopped = 0
    for external_id, mailbox_id in rows:
        try:
            watch.stop(refs[mailbox_id])
        except ProviderError as failure:
            log.warning("mail_watch.stop_failed reason=%s: %s", failure.reason, failure)
            continue
        _forget_subscription(uow_factory, external_id)
        stopped += 1
    return stopped


def process_mail_news(
    uow_factory: UowFactory,
    watch: MailWatch,
    mailbox_id: int,
    *,
    policy: SyncPolicy = SyncPolicy(),
) -> MailReport:
    """Look at a Google user's new mail after Gmail pushes; invitations and replies signal a sync.

    The pushes are a second signal beside the Calendar channel (which Google does not promise to
    deliver): new mail carrying a text/calendar part, or a history id too old to read (404), is
    recorded as a change of the user's calendar, whose sync then runs as for any notification.
    """
    report = MailReport(mailbox_id)
    with uow_factory() as uow:
        mailbox = uow.session.get(Mailbox, mailbox_id)
        if mailbox is None:
            report.skipped = "no such mailbox"
            return report
        ref = _ref(mailbox)
        active = mailbox.active
        claimed = list(
            uow.session.execute(
                select(InboundNotification.id, InboundNotification.payload).where(
                    InboundNotification.org_id == ref.org_id,
                    InboundNotification.provider == ref.provider,
                    InboundNotification.mailbox == ref.address,
                    InboundNotification.status == NotificationStatus.PENDING,
                    InboundNotification.kind == "mail",
                )
            )
        )
        row = _mail_watch_of(uow, ref)
        since = row.resource if row is not None else ""
    ids = [row_id for row_id, _ in claimed]
    report.pushes = len(ids)
    if not ids:
        report.skipped = "nothing pending"
        return report
    if not active or not since:
        _finish_notifications(uow_factory, ids, NotificationStatus.DONE)
        report.skipped = "mailbox not watched"
        return report
    pushed = max((_history_number(payload) for _, payload in claimed), default=0)
    try:
        news = watch.news(ref, since)
    except CursorExpired:
        report.history_expired = True
        resume_from = str(pushed) if pushed else since
    except ProviderError as failure:
        _fail_notifications(uow_factory, ids, failure, policy)
        _record_error(uow_factory, mailbox_id, failure)
        if failure.transient:
            raise RetryLater(str(failure), delay=_delay(failure, policy)) from failure
        return report
    else:
        report.calendar_messages = news.calendar_messages
        resume_from = news.history_id
    with uow_factory() as uow:
        row = _mail_watch_of(uow, ref)
        if row is not None:
            row.resource = resume_from
        uow.commit()
    if report.calendar_messages or report.history_expired:
        with uow_factory() as uow:
            to_sync = record_signal(
                uow,
                org_id=ref.org_id,
                provider=ref.provider,
                mailbox=ref.address,
                dedupe_key=f"gmail:{ref.address}:{since}:{resume_from}",
                payload={"source": "gmail", "history_id": resume_from},
            )
        report.sync_mailbox_id = to_sync[0] if to_sync else None
    _finish_notifications(uow_factory, ids, NotificationStatus.DONE)
    log.info(
        "mail.news mailbox_id=%s pushes=%s calendar_messages=%s expired=%s",
        mailbox_id,
        report.pushes,
        report.calendar_messages,
        report.history_expired,
    )
    return report


def _mail_watch_of(uow: UnitOfWork, ref: MailboxRef) -> Subscription | None:
    return uow.session.scalar(
        select(Subscription).where(
            Subscription.org_id == ref.org_id,
            Subscription.provider == ref.provider,
            Subscription.mailbox == ref.address,
            Subscription.kind == MAIL_WATCH_KIND,
        )
    )


def _history_number(payload: object) -> int:
    value = payload.get("history_id") if isinstance(payload, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else 0


# --------------------------------------------------------------------------- syncs


def sync_mailbox(
    uow_factory: UowFactory,
    source: CalendarSource,
    mailbox_id: int,
    *,
    now: dt.datetime | None = None,
    policy: SyncPolicy = SyncPolicy(),
) -> SyncReport:
    """Apply the current state of every event the mailbox's pending notifications name.

    All pending notifications of the mailbox are taken at once (coalescing): each event is
    fetched once however many notifications named it. Raises RetryLater when the provider
    throttles or fails; the notifications then stay pending.
    """
    report = SyncReport(mailbox_id)
    with uow_factory() as uow:
        mailbox = uow.session.get(Mailbox, mailbox_id)
        if mailbox is None:
            report.skipped = "no such mailbox"
            return report
        mailbox.sync_queued_at = None  # notifications from now on queue a new sync
        ref = _ref(mailbox)
        active = mailbox.active
        claimed = list(
            uow.session.execute(
                select(InboundNotification.id, InboundNotification.payload)
                .where(
                    InboundNotification.org_id == ref.org_id,
                    InboundNotification.mailbox == ref.address,
                    InboundNotification.provider == ref.provider,
                    InboundNotification.status == NotificationStatus.PENDING,
                    InboundNotification.kind == "change",
                )
                .order_by(InboundNotification.id)
                .limit(policy.claim_limit)
            )
        )
        uow.commit()
    ids = [row_id for row_id, _ in claimed]
    report.notifications = len(ids)
    report.more_pending = len(ids) == policy.claim_limit
    if not ids:
        report.skipped = "nothing pending"
        return report
    if not active:
        _finish_notifications(uow_factory, ids, NotificationStatus.DONE)
        report.skipped = "mailbox not watched"
        return report
    signals = _signals(payload for _, payload in claimed)
    try:
        if source.signals_name_events:
            changes = source.changed_events(ref, signals)
            _apply_all(uow_factory, ref, changes, report, now=now, chunk_size=policy.chunk_size)
        else:  # "the calendar changed": the changes since the cursor say what
            _incremental(uow_factory, source, ref, report, now=now or utcnow(), policy=policy)
    except ProviderError as failure:
        _fail_notifications(uow_factory, ids, failure, policy)
        _record_error(uow_factory, mailbox_id, failure)
        _count_run(uow_factory, "notifications", "error")
        if failure.transient:
            raise RetryLater(str(failure), delay=_delay(failure, policy)) from failure
        return report
    _finish_notifications(uow_factory, ids, NotificationStatus.DONE)
    _record_success(uow_factory, mailbox_id, report)
    _count_run(uow_factory, "notifications", "ok")
    log.info(
        "sync.notifications mailbox_id=%s notifications=%s events=%s applied=%s removed=%s",
        mailbox_id,
        report.notifications,
        len(signals),
        report.applied,
        report.removed,
    )
    return report


def reconcile_mailbox(
    uow_factory: UowFactory,
    source: CalendarSource,
    mailbox_id: int,
    *,
    now: dt.datetime | None = None,
    policy: SyncPolicy = SyncPolicy(),
) -> SyncReport:
    """Recover anything notifications missed: an incremental delta round over the rolling window.

    Without a cursor, with a stale window or after the provider refused the cursor, the round is
    a full resync; copies the full round no longer reports are then checked one by one.
    """
    now = now or utcnow()
    report = SyncReport(mailbox_id)
    with uow_factory() as uow:
        mailbox = uow.session.get(Mailbox, mailbox_id)
        if mailbox is None or not mailbox.active:
            report.skipped = "mailbox not watched"
            return report
        ref = _ref(mailbox)
    try:
        _incremental(uow_factory, source, ref, report, now=now, policy=policy)
    except ProviderError as failure:
        _record_error(uow_factory, mailbox_id, failure)
        _count_run(uow_factory, "reconcile", "error")
        if failure.transient:
            raise RetryLater(str(failure), delay=_delay(failure, policy)) from failure
        return report
    _record_success(uow_factory, mailbox_id, report)
    _count_run(uow_factory, "reconcile", "ok")
    log.info(
        "sync.reconciled mailbox_id=%s full=%s applied=%s removed=%s failed=%s",
        mailbox_id,
        report.full_resync,
        report.applied,
        report.removed,
        report.failed,
    )
    return report


def _incremental(
    uow_factory: UowFactory,
    source: CalendarSource,
    ref: MailboxRef,
    report: SyncReport,
    *,
    now: dt.datetime,
    policy: SyncPolicy,
) -> None:
    """One delta round from the stored cursor (a full round without one); stores the new cursor.

    Raises ProviderError; the stored cursor then stays as it was.
    """
    with uow_factory() as uow:
        state = _sync_state(uow, ref)
        cursor, stored_start, stored_end = state.cursor, state.window_start, state.window_end
        uow.commit()
    fresh_window = (now - policy.window_past, now + policy.window_future)
    window = fresh_window
    if cursor is None or stored_start is None or stored_end is None:
        cursor = None
    elif stored_start < fresh_window[0] - policy.window_roll_after:
        cursor = None  # roll the window forward: a full round
    else:
        window = (stored_start, stored_end)  # a delta link keeps the window it started with
    try:
        new_cursor = _delta_round(uow_factory, source, ref, cursor, window, report, policy, now)
    except CursorExpired:
        log.info("sync.cursor_expired mailbox=%s: full resync", ref.address)
        window = fresh_window
        report.applied = report.removed = report.ignored = report.failed = 0
        new_cursor = _delta_round(uow_factory, source, ref, None, window, report, policy, now)
    with uow_factory() as uow:
        state = _sync_state(uow, ref)
        state.cursor = new_cursor
        state.window_start, state.window_end = window
        uow.commit()


def mailboxes_needing_sync(
    uow_factory: UowFactory,
    *,
    now: dt.datetime | None = None,
    stale_after: dt.timedelta = dt.timedelta(minutes=2),
) -> list[int]:
    """Mailboxes with notifications pending longer than `stale_after` and no sync queued since.

    The sweeper for what a crashed worker or a failed enqueue left behind. Claims the mailboxes
    (sets their queued flag), so the caller must enqueue a sync for each id returned.
    """
    now = now or utcnow()
    cutoff = now - stale_after
    with uow_factory() as uow:
        stuck = (
            select(InboundNotification.id)
            .where(
                InboundNotification.org_id == Mailbox.org_id,
                InboundNotification.provider == Mailbox.provider,
                InboundNotification.mailbox == Mailbox.address,
                InboundNotification.status == NotificationStatus.PENDING,
                InboundNotification.kind == "change",
                InboundNotification.received_at <= cutoff,
            )
            .exists()
        )
        ids = list(
            uow.session.scalars(
                update(Mailbox)
                .where(
                    Mailbox.active.is_(True),
                    or_(Mailbox.sync_queued_at.is_(None), Mailbox.sync_queued_at <= cutoff),
                    stuck,
                )
                .values(sync_queued_at=now)
                .returning(Mailbox.id)
            )
        )
        uow.commit()
    return sorted(ids)


def _delta_round(
    uow_factory: UowFactory,
    source: CalendarSource,
    ref: MailboxRef,
    cursor: str | None,
    window: tuple[dt.datetime, dt.datetime],
    report: SyncReport,
    policy: SyncPolicy,
    now: dt.datetime,
) -> str:
    report.full_resync = cursor is None
    size = policy.chunk_size
    delta = source.delta(ref, cursor, window)
    created = _apply_all(uow_factory, ref, iter(delta), report, now=now, chunk_size=size)
    new_cursor = delta.cursor
    # Delta cannot carry the add-in's tag; a new meeting the add-in may have tagged is fetched
    # once more in full (only while the CRM has add-in activities waiting to be adopted).
    untagged = [ChangeSignal(event_id) for event_id in created]
    if untagged and _has_adoptable(uow_factory, ref.org_id):
        changes = source.changed_events(ref, untagged)
        _apply_all(uow_factory, ref, changes, report, now=now, chunk_size=size)
    if report.full_resync:
        # A full round reports every copy that still exists; links it did not touch may be
        # copies deleted while nobody was listening. Ask about each (a 404 is a removal).
        # The sync stamps each copy it applies with `now`: older stamps were not reported.
        unseen = _unseen_links(uow_factory, ref, since=now, window_start=window[0])
        if unseen:
            changes = source.changed_events(ref, [ChangeSignal(i, "deleted") for i in unseen])
            _apply_all(uow_factory, ref, changes, report, now=now, chunk_size=size)
    return new_cursor


def _apply_all(
    uow_factory: UowFactory,
    ref: MailboxRef,
    changes: Iterator[Change],
    report: SyncReport,
    *,
    now: dt.datetime | None,
    chunk_size: int,
) -> list[str]:
    """Apply changes chunk by chunk; returns the ids of single events created without a tag hint.

    A chunk is fetched (network) before its transaction opens, and the next one is fetched
    while it is applied (`_read_ahead`). If a chunk fails to apply, its changes are applied
    one by one so one bad event cannot hold back the rest.
    """
    created: list[str] = []
    chunks = iter(lambda: list(itertools.islice(changes, chunk_size)), [])
    for chunk in _read_ahead(chunks):
        counts = (report.applied, report.removed, report.ignored, len(created))
        try:
            with uow_factory() as uow:
                # One batch: shared lookups, one flush at its end (services.sync.lookups_for).
                with lookups_for(uow, ref.org_id, chunk):
                    for change in chunk:
                        _apply_one(uow, ref, change, report, created, now)
                uow.commit()
        except Exception:  # isolate the bad change below, then carry on
            log.exception("sync.chunk_failed mailbox=%s: applying one by one", ref.address)
            # What the failed attempt counted is counted again below.
            report.applied, report.removed, report.ignored = counts[:3]
            del created[counts[3] :]
            for change in chunk:
                try:
                    with uow_factory() as uow:
                        _apply_one(uow, ref, change, report, created, now)
                        uow.commit()
                except Exception as failure:  # noqa: BLE001
                    report.failed += 1
                    event_id = change.provider_event_id
                    log.error("sync.change_failed mailbox=%s event=%s", ref.address, event_id)
                    _record_error(
                        uow_factory,
                        None,
                        ProviderError(
                            f"event {event_id[:80]} could not be applied: "
                            f"{type(failure).__name__}: {failure}",
                            reason="sync.apply_failed",
                        ),
                        ref=ref,
                    )
    return created


_T = TypeVar("_T")
_END: Final = object()


@dataclass(frozen=True, slots=True)
class _Failed:
    error: BaseException


def _read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """`items`, with the next one read in a thread while the caller works on this one.

    For provider pages: the next page's network round trip overlaps the database work on
    this one. One item ahead at most; an error reading the items is raised to the caller in
    their place. Closing the generator early stops the reading after the item under way.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        try:
            for item in items:
                if not hand_over(item):
                    return
            hand_over(_END)
        except BaseException as error:  # noqa: BLE001 - raised again in the caller's thread
            hand_over(_Failed(error))

    context = contextvars.copy_context()  # the job's log context goes along
    reader = threading.Thread(target=context.run, args=(read,), name="sync-read-ahead")
    reader.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, _Failed):
                raise item.error
            yield cast(_T, item)
    finally:
        stop.set()
        reader.join()


def _apply_one(
    uow: UnitOfWork,
    ref: MailboxRef,
    change: Change,
    report: SyncReport,
    created: list[str],
    now: dt.datetime | None,
) -> None:
    if isinstance(change, Removed):
        outcome = apply_removed(uow, ref.org_id, change, now=now)
        report.removed += outcome.action in (SyncAction.CANCELLED, SyncAction.DECLINED)
        return
    outcome = apply_snapshot(uow, ref.org_id, change, now=now)
    if outcome.action is SyncAction.IGNORED:
        report.ignored += 1
        log.info(
            "sync.ignored mailbox=%s event=%s reason=%s",
            ref.address,
            change.provider_event_id[:80],
            outcome.reason,
        )
        return
    report.applied += 1
    if (
        outcome.action is SyncAction.CREATED
        and change.tag_hint is None
        and change.event_type is EventType.SINGLE
    ):
        created.append(change.provider_event_id)


def _has_adoptable(uow_factory: UowFactory, org_id: int) -> bool:
    """Whether any add-in activity waits for its meeting (no iCalUID yet): see sync._adoptable."""
    with uow_factory(read_only=True) as uow:
        return bool(
            uow.session.scalar(
                select(
                    exists().where(
                        Activity.org_id == org_id,
                        Activity.ical_uid.is_(None),
                        Activity.series_id.is_(None),
                        Activity.kind != ActivityKind.TASK,
                    )
                )
            )
        )


def _unseen_links(
    uow_factory: UowFactory, ref: MailboxRef, *, since: dt.datetime, window_start: dt.datetime
) -> list[str]:
    with uow_factory(read_only=True) as uow:
        return list(
            uow.session.scalars(
                select(ProviderLink.provider_event_id)
                .join(Activity, Activity.id == ProviderLink.activity_id)
                .outerjoin(Recurrence, Recurrence.activity_id == Activity.id)
                .where(
                    ProviderLink.org_id == ref.org_id,
                    ProviderLink.provider == ref.provider,
                    ProviderLink.mailbox == ref.address,
                    or_(ProviderLink.last_synced_at.is_(None), ProviderLink.last_synced_at < since),
                    or_(
                        Activity.end_at >= window_start,
                        Recurrence.last_end.is_(None) & Recurrence.activity_id.is_not(None),
                        Recurrence.last_end >= window_start,
                    ),
                )
            )
        )


def _signals(payloads: Iterable[object]) -> list[ChangeSignal]:
    """One signal per event, the last change type winning (a deletion is checked by a fetch)."""
    by_event: dict[str, ChangeSignal] = {}
    for payload in payloads:
        if not isinstance(payload, dict):
            continue
        event_id = payload.get("event_id")
        if isinstance(event_id, str) and event_id:
            by_event[event_id] = ChangeSignal(event_id, str(payload.get("change_type") or ""))
    return list(by_event.values())


def _finish_notifications(
    uow_factory: UowFactory, ids: Sequence[int], status: NotificationStatus
) -> None:
    with uow_factory() as uow:
        for start in range(0, len(ids), 500):
            uow.session.execute(
                update(InboundNotification)
                .where(InboundNotification.id.in_(ids[start : start + 500]))
                .values(status=status, processed_at=utcnow())
            )
        uow.commit()


def _fail_notifications(
    uow_factory: UowFactory, ids: Sequence[int], failure: ProviderError, policy: SyncPolicy
) -> None:
    """Count the attempt; notifications past `max_attempts` give up (reconciliation remains)."""
    with uow_factory() as uow:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            uow.session.execute(
                update(InboundNotification)
                .where(InboundNotification.id.in_(chunk))
                .values(
                    attempts=InboundNotification.attempts + 1,
                    last_error=str(failure)[:2000],
                )
            )
            uow.session.execute(
                update(InboundNotification)
                .where(
                    InboundNotification.id.in_(chunk),
                    InboundNotification.attempts >= policy.max_attempts,
                )
                .values(status=NotificationStatus.FAILED, processed_at=utcnow())
            )
        uow.commit()


def _delay(failure: ProviderError, policy: SyncPolicy) -> float:
    return failure.retry_after if failure.retry_after is not None else policy.retry_base_seconds


# --------------------------------------------------------------------------- health


def mailbox_health(uow: UnitOfWork, org_id: int) -> list[MailboxHealth]:
    """Per mailbox: subscription expiry, last notification, last sync, last error (E2)."""
    pending = dict(
        uow.session.execute(
            select(InboundNotification.mailbox, func.count())
            .where(
                InboundNotification.org_id == org_id,
                InboundNotification.status == NotificationStatus.PENDING,
                InboundNotification.kind == "change",
            )
            .group_by(InboundNotification.mailbox)
        ).all()
    )
    subscriptions: dict[tuple[str, str, str], dt.datetime] = {}
    for row in uow.session.scalars(
        select(Subscription)
        .where(Subscription.org_id == org_id)
        .order_by(Subscription.expires_at)  # the latest wins (a replaced channel overlaps)
    ):
        subscriptions[(row.kind, row.provider, row.mailbox)] = row.expires_at
    states = {
        (row.provider, row.mailbox): row
        for row in uow.session.scalars(select(SyncState).where(SyncState.org_id == org_id))
    }
    result: list[MailboxHealth] = []
    for mailbox in uow.session.scalars(
        select(Mailbox).where(Mailbox.org_id == org_id).order_by(Mailbox.address)
    ):
        key = (mailbox.provider, mailbox.address)
        state = states.get(key)
        result.append(
            MailboxHealth(
                mailbox_id=mailbox.id,
                provider=mailbox.provider,
                address=mailbox.address,
                active=mailbox.active,
                subscription_expires_at=subscriptions.get((SUBSCRIPTION_KIND, *key)),
                mail_watch_expires_at=subscriptions.get((MAIL_WATCH_KIND, *key)),
                last_notification_at=mailbox.last_notification_at,
                last_sync_at=state.last_success_at if state else None,
                last_error=state.last_error if state else None,
                last_error_at=state.last_error_at if state else None,
                pending_notifications=pending.get(mailbox.address, 0),
            )
        )
    return result


# --------------------------------------------------------------------------- helpers


def _ref(mailbox: Mailbox) -> MailboxRef:
    return MailboxRef(
        org_id=mailbox.org_id,
        provider=Provider(mailbox.provider),
        address=mailbox.address,
        external_id=mailbox.external_id,
    )


def _sync_state(uow: UnitOfWork, ref: MailboxRef) -> SyncState:
    state = uow.session.scalar(
        select(SyncState).where(
            SyncState.org_id == ref.org_id,
            SyncState.provider == ref.provider,
            SyncState.mailbox == ref.address,
        )
    )
    if state is None:
        state = SyncState(org_id=ref.org_id, provider=ref.provider, mailbox=ref.address)
        uow.session.add(state)
        uow.flush()
    return state


def _record_success(uow_factory: UowFactory, mailbox_id: int, report: SyncReport) -> None:
    """A finished sync; the last error stays visible when some change could not be applied."""
    with uow_factory() as uow:
        mailbox = uow.session.get(Mailbox, mailbox_id)
        if mailbox is not None:
            state = _sync_state(uow, _ref(mailbox))
            state.last_success_at = utcnow()
            if not report.failed:
                state.last_error = None
                state.last_error_at = None
            uow.commit()


def _record_error(
    uow_factory: UowFactory,
    mailbox_id: int | None,
    failure: ProviderError,
    *,
    ref: MailboxRef | None = None,
) -> None:
    """The health view's "last error, in words" (graph/ counts each failed request itself)."""
    log.warning(
        "sync.error mailbox_id=%s reason=%s message=%s", mailbox_id, failure.reason, failure
    )
    with uow_factory() as uow:
        if ref is None and mailbox_id is not None:
            mailbox = uow.session.get(Mailbox, mailbox_id)
            ref = _ref(mailbox) if mailbox is not None else None
        if ref is not None:
            state = _sync_state(uow, ref)
            state.last_error = f"{failure} ({failure.reason})"[:2000]
            state.last_error_at = utcnow()
        uow.commit()


def _count_run(uow_factory: UowFactory, kind: str, result: str) -> None:
    with uow_factory() as uow:
        metrics.increment(uow, "mtc_sync_runs_total", kind=kind, result=result)
        uow.commit()
