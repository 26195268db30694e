"""Recording provider change notifications: the whole of what a webhook request does.

The webhook verifies each item's secret against its subscription, records the valid ones
durably, marks their mailboxes as needing a sync and says which mailboxes to enqueue. No
provider call and no domain work happen here: Graph drops endpoints slower than 3 s.

Coalescing: `Mailbox.sync_queued_at` is set by the one request that finds it empty, and only
that request enqueues a sync; the sync clears it when it starts. A burst of notifications for
one mailbox therefore becomes one queued sync, however many requests carry it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from services import metrics
from services.db import utcnow
from services.tables import InboundNotification, Mailbox, Provider, Subscription
from services.unit_of_work import UnitOfWork

__all__ = [
    "Incoming",
    "Recorded",
    "channel_is_valid",
    "record_mail_push",
    "record_notifications",
    "record_signal",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One item of a notification batch, already schema-checked by the webhook."""

    subscription_id: str  # the provider's id of the subscription / channel
    client_state: str  # the secret the provider echoes back
    payload: Mapping[str, Any]  # the item as received (kept for audit; secret removed)
    lifecycle_event: str | None = None
    # The provider's id of the watched resource, when it sends one (Google's X-Goog-Resource-ID):
    # it must match the one the subscription was created with.
    resource: str | None = None


@dataclass(slots=True)
class Recorded:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    # Mailboxes whose sync this request must enqueue (their flag was clear).
    mailboxes_to_sync: list[int] = field(default_factory=list)
    # Lifecycle notifications to hand to the worker, by id.
    lifecycle_ids: list[int] = field(default_factory=list)


def record_notifications(
    uow: UnitOfWork,
    provider: Provider,
    items: Sequence[Incoming],
    *,
    now: dt.datetime | None = None,
) -> Recorded:
    """Verify and record a batch; commits. Items that fail verification are dropped and logged."""
    now = now or utcnow()
    result = Recorded()
    subscriptions = _subscriptions(uow, provider, {item.subscription_id for item in items})
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for item in items:
        subscription = subscriptions.get(item.subscription_id)
        problem = _problem(subscription, item)
        if subscription is None or problem is not None:
            # Never log the clientState: for a near-miss it is close to the secret.
            log.warning(
                "notification.rejected provider=%s subscription=%s reason=%s",
                provider,
                item.subscription_id[:64],
                problem,
            )
            result.rejected += 1
            continue
        payload = {key: value for key, value in item.payload.items() if key != "clientState"}
        key = _dedupe_key(item.subscription_id, payload)
        if key in seen:
            result.duplicates += 1
            continue
        seen.add(key)
        rows.append(
            {
                "org_id": subscription.org_id,
                "provider": provider,
                "dedupe_key": key,
                "mailbox": subscription.mailbox,
                "subscription_id": subscription.id,
                "payload": payload,
                "status": "pending",
                "received_at": now,
                "attempts": 0,
                "kind": "change" if item.lifecycle_event is None else "lifecycle",
            }
        )
    if rows:
        inserted = _insert_new(uow, rows)
        result.accepted = len(rows)
        result.duplicates += len(rows) - len(inserted)
        fresh = [row for row in rows if row["dedupe_key"] in inserted]
        _touch_subscriptions(uow, {row["subscription_id"] for row in rows}, now)
        changes = [row for row in fresh if row["kind"] == "change"]
        result.mailboxes_to_sync = _flag_mailboxes(uow, provider, changes, now)
        result.lifecycle_ids = [
            inserted[row["dedupe_key"]] for row in fresh if row["kind"] == "lifecycle"
        ]
    metrics.increment(uow, "mtc_notifications_received_total", result.accepted)
    metrics.increment(uow, "mtc_notifications_rejected_total", result.rejected)
    uow.commit()
    return result


def channel_is_valid(
    uow: UnitOfWork, provider: Provider, external_id: str, secret: str, resource: str
) -> bool:
    """Whether a push names a stored channel with this secret and resource (nothing recorded)."""
    subscription = _subscriptions(uow, provider, {external_id}).get(external_id)
    item = Incoming(external_id, secret, {}, resource=resource)
    return _problem(subscription, item) is None


def record_signal(
    uow: UnitOfWork,
    *,
    org_id: int,
    provider: Provider,
    mailbox: str,
    dedupe_key: str,
    payload: Mapping[str, Any],
    now: dt.datetime | None = None,
) -> list[int]:
    """Record a change signal that came from elsewhere than a calendar webhook (Gmail's news of
    an invitation); returns the mailbox to enqueue a sync for, if nobody has. Commits."""
    now = now or utcnow()
    row = {
        "org_id": org_id,
        "provider": provider,
        "dedupe_key": dedupe_key[:400],
        "mailbox": mailbox,
        "subscription_id": None,
        "payload": dict(payload),
        "status": "pending",
        "received_at": now,
        "attempts": 0,
        "kind": "change",
    }
    inserted = _insert_new(uow, [row])
    to_sync = _flag_mailboxes(uow, provider, [row], now) if inserted else []
    uow.commit()
    return to_sync


def record_mail_push(
    uow: UnitOfWork,
    *,
    address: str,
    history_id: str,
    message_id: str,
    kind: str,
    now: dt.datetime | None = None,
) -> int | None:
    """Record a verified Gmail push (Pub/Sub message) for a watched mailbox. Commits.

    Returns the mailbox's id when its mail history must be looked at, None when the address is
    not watched or the message was delivered before (Pub/Sub delivers at least once).
    """
    now = now or utcnow()
    watch = uow.session.scalar(
        select(Subscription).where(
            Subscription.provider == Provider.GOOGLE,
            Subscription.kind == kind,
            Subscription.external_id == address,
        )
    )
    if watch is None:
        log.info("mail_push.ignored reason=unwatched")
        metrics.increment(uow, "mtc_notifications_rejected_total")
        uow.commit()
        return None
    row = {
        "org_id": watch.org_id,
        "provider": Provider.GOOGLE,
        "dedupe_key": f"pubsub:{message_id[:200]}",
        "mailbox": watch.mailbox,
        "subscription_id": watch.id,
        "payload": {"history_id": history_id, "message_id": message_id},
        "status": "pending",
        "received_at": now,
        "attempts": 0,
        "kind": "mail",
    }
    inserted = _insert_new(uow, [row])
    _touch_subscriptions(uow, {watch.id}, now)
    metrics.increment(uow, "mtc_notifications_received_total")
    mailbox_id = uow.session.scalar(
        update(Mailbox)
        .where(
            Mailbox.org_id == watch.org_id,
            Mailbox.provider == Provider.GOOGLE,
            Mailbox.address == watch.mailbox,
            Mailbox.active.is_(True),
        )
        .values(last_notification_at=now)
        .returning(Mailbox.id)
    )
    uow.commit()
    return mailbox_id if inserted else None


def _problem(subscription: Subscription | None, item: Incoming) -> str | None:
    if subscription is None:
        return "unknown subscription"
    if not hmac.compare_digest(subscription.secret.encode(), item.client_state.encode()):
        return "clientState mismatch"
    if item.resource is not None and item.resource != subscription.resource:
        return "resource mismatch"
    return None


def _subscriptions(
    uow: UnitOfWork, provider: Provider, external_ids: set[str]
) -> dict[str, Subscription]:
    if not external_ids:
        return {}
    found = uow.session.scalars(
        select(Subscription).where(
            Subscription.provider == provider, Subscription.external_id.in_(external_ids)
        )
    )
    return {subscription.external_id: subscription for subscription in found}


def _dedupe_key(subscription_id: str, payload: Mapping[str, Any]) -> str:
    """Same item delivered twice (provider retries, duplicates) -> same key.

    A Graph item names the event and its `@odata.etag`, which changes with every change of the
    event, so two different changes never share a key.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{subscription_id[:200]}:{digest}"


def _insert_new(uow: UnitOfWork, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the rows whose key is new; returns {dedupe_key: id} of those inserted."""
    dialect = uow.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(InboundNotification)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["provider", "dedupe_key"])
        .returning(InboundNotification.dedupe_key, InboundNotification.id)
    )
    return dict(uow.session.execute(statement).all())


def _touch_subscriptions(uow: UnitOfWork, subscription_ids: set[int], now: dt.datetime) -> None:
    uow.session.execute(
        update(Subscription)
        .where(Subscription.id.in_(subscription_ids))
        .values(last_notification_at=now)
    )


def _flag_mailboxes(
    uow: UnitOfWork, provider: Provider, rows: list[dict[str, Any]], now: dt.datetime
) -> list[int]:
    """Mark the mailboxes as notified; returns those whose sync nobody has queued yet."""
    addresses: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        addresses[row["org_id"]].add(row["mailbox"])
    to_sync: list[int] = []
    for org_id, mailboxes in addresses.items():
        where = (
            Mailbox.org_id == org_id,
            Mailbox.provider == provider,
            Mailbox.address.in_(mailboxes),
        )
        uow.session.execute(update(Mailbox).where(*where).values(last_notification_at=now))
        flagged = uow.session.scalars(
            update(Mailbox)
            .where(*where, Mailbox.active.is_(True), Mailbox.sync_queued_at.is_(None))
            .values(sync_queued_at=now)
            .returning(Mailbox.id)
        )
        to_sync.extend(flagged)
    return sorted(to_sync)
