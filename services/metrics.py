"""Counters shared by every process, and the Prometheus text exposition of them.

The web processes count notifications and the worker counts provider errors; Prometheus scrapes
any web process. So counters live in the database (one row per name and labels), incremented in
the same transaction as the work they count. Gauges (queue depth, sync lag) are read at scrape
time. https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

from services.db import utcnow
from services.tables import InboundNotification, MetricCounter, NotificationStatus
from services.unit_of_work import UnitOfWork

__all__ = [
    "COUNTERS",
    "Gauge",
    "counter_name",
    "increment",
    "increment_many",
    "render",
    "snapshot_counters",
    "sync_lag_seconds",
    "upsert_statement",
]

# name -> help text. Every counter the product increments is declared here, so /metrics shows
# each one (at 0) before it first moves.
COUNTERS: Final[Mapping[str, str]] = {
    "mtc_notifications_received_total": "Change notifications accepted (clientState verified).",
    "mtc_notifications_rejected_total": "Change notifications dropped: unknown subscription or "
    "wrong clientState.",
    "mtc_provider_errors_total": "Failed provider requests, by reason.",
    "mtc_sync_runs_total": "Mailbox syncs finished, by kind and result.",
}


def counter_name(name: str, **labels: str) -> str:
    """`name{label="value",...}` with label values escaped as the exposition format wants."""
    if name not in COUNTERS:
        raise ValueError(f"undeclared counter {name!r}")
    if not labels:
        return name
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def increment(uow: UnitOfWork, name: str, by: int = 1, **labels: str) -> None:
    """Add `by` to a counter inside the caller's transaction (an upsert: one statement)."""
    if by > 0:
        increment_many(uow, {counter_name(name, **labels): by})


def increment_many(uow: UnitOfWork, counts: Mapping[str, int]) -> None:
    """Add to several counters (full names, see counter_name) in one round trip, inside the
    caller's transaction. Counts of 0 or less are left out."""
    rows = [{"m_name": key, "m_value": by} for key, by in counts.items() if by > 0]
    if not rows:
        return
    for row in rows:
        if _base(str(row["m_name"])) not in COUNTERS:
            raise ValueError(f"undeclared counter {row['m_name']!r}")
    connection = uow.session.connection()
    statement = upsert_statement(connection.dialect.name)
    connection.execute(statement, rows[0] if len(rows) == 1 else rows)


_COUNTERS_TABLE: Final = cast(Table, MetricCounter.__table__)
_UPSERTS: dict[str, Insert] = {}


def upsert_statement(dialect: str) -> Insert:
    """One upsert statement per dialect, built once: its compiled form is cached by SQLAlchemy,
    where a statement built per call costs more to construct than to run. Parameters: `m_name`
    (the full name, see counter_name) and `m_value` (what to add)."""
    statement = _UPSERTS.get(dialect)
    if statement is None:
        table = _COUNTERS_TABLE
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        upsert = insert(table).values(name=bindparam("m_name"), value=bindparam("m_value"))
        statement = _UPSERTS[dialect] = upsert.on_conflict_do_update(
            index_elements=[table.c.name], set_={"value": table.c.value + upsert.excluded.value}
        )
    return statement


def snapshot_counters(uow: UnitOfWork) -> dict[str, int]:
    return dict(uow.session.execute(select(MetricCounter.name, MetricCounter.value)).all())


def sync_lag_seconds(uow: UnitOfWork, *, now: dt.datetime | None = None) -> float:
    """Age of the oldest notification not yet synced: how far behind the CRM is (0: caught up)."""
    oldest = uow.session.scalar(
        select(func.min(InboundNotification.received_at)).where(
            InboundNotification.status == NotificationStatus.PENDING,
            InboundNotification.kind == "change",
        )
    )
    if oldest is None:
        return 0.0
    return max(0.0, ((now or utcnow()) - oldest).total_seconds())


@dataclass(frozen=True, slots=True)
class Gauge:
    name: str
    help: str
    value: float


def render(counters: Mapping[str, int], gauges: Iterable[Gauge]) -> str:
    """The Prometheus text format (version 0.0.4) for the counters and gauges."""
    lines: list[str] = []
    for name, help_text in COUNTERS.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
        series = {key: value for key, value in counters.items() if _base(key) == name}
        if not any(key == name for key in series) and not any("{" in key for key in series):
            series[name] = 0
        lines += [f"{key} {value}" for key, value in sorted(series.items())]
    for gauge in gauges:
        lines += [
            f"# HELP {gauge.name} {gauge.help}",
            f"# TYPE {gauge.name} gauge",
            f"{gauge.name} {_number(gauge.value)}",
        ]
    return "\n".join(lines) + "\n"


def _base(key: str) -> str:
    return key.split("{", 1)[0]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
