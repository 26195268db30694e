"""Background jobs: plain functions taking a unit-of-work factory (wired to Huey in bootstrap)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import delete, or_

from services.db import utcnow
from services.tables import InboundNotification, NotificationStatus
from services.unit_of_work import UnitOfWork

UowFactory = Callable[..., UnitOfWork]

# Processed notifications are kept this long for audit and duplicate detection.
NOTIFICATION_RETENTION = dt.timedelta(days=30)


def now_iso() -> str:
    return utcnow().isoformat()


def prune_inbound_notifications(uow_factory: UowFactory, *, now: dt.datetime | None = None) -> int:
    """Delete finished notifications older than the retention; pending changes are never lost.

    A lifecycle event still pending after the retention was overtaken long ago by the hourly
    renewals and reconciliations.
    """
    cutoff = (now or utcnow()) - NOTIFICATION_RETENTION
    with uow_factory() as uow:
        result = uow.session.execute(
            delete(InboundNotification).where(
                InboundNotification.received_at < cutoff,
                or_(
                    InboundNotification.status != NotificationStatus.PENDING,
                    InboundNotification.kind == "lifecycle",
                ),
            )
        )
        uow.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
