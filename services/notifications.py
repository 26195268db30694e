"""Recording provider change notifications: the whole of what a webhook request does.

The webhook verifies each item's secret against its subscription, records the valid ones
durably, marks their mailboxes as needing a sync and says which mailboxes to enqueue. No
provider call and no domain work happen here: Graph drops endpoints slower than 3 s.

Coalescing: `Mailbox.sync_queued_at` is set by the one request that finds it empty, and only
that request enqueues a sync; the sync clears it when it starts. A burst of notifications for
one mailbox therefore becomes one queued sync, however many requests carry it.

Cost (the webhook answers Graph under bursts, see docs/benchmarks.md): the statements are built
once, so SQLAlchemy compiles each once per process, and no ORM object is loaded. Subscriptions
are looked up before the write transaction starts (on SQLite that transaction holds the
database's write lock) and kept for SUBSCRIPTION_TTL seconds in each process; a one-item batch
then writes with three statements: the row, the mailbox's coalescing flag, the counter (on
PostgreSQL one statement does all three). A one-item batch, the common case, runs them past
the Session (_OnCursor: the same SQL and bind processing, without the Session's and
SQLAlchemy's per-execution work, which cost more CPU than the writes): on SQLite on a DBAPI
connection from the engine's pool, the webhook's writers queuing on a file lock for their turn
(see _Turn); on PostgreSQL on a connection each process keeps, prepared and run through libpq
(see _OwnConnection).
`last_notification_at` of a subscription or mailbox is written when this process has not
written it in the last TOUCH_EVERY, not on every notification.

What the cache may get wrong, and for how long (SUBSCRIPTION_TTL, 10 s, in each process): only
successful verifications come from it. An item whose clientState or resource does not match
the cached subscription is checked again against the database, and an unknown id is never
cached, so a new subscription or a new secret is seen at once. For up to SUBSCRIPTION_TTL after
a subscription's row is deleted or its secret replaced, a process that cached it still accepts
the old secret. A deleted subscription's notification is refused even then: its row would name
the deleted subscription, the foreign key refuses the INSERT, and the batch is verified again
from the database (unless SQLite has meanwhile given the deleted row's id to a new one).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, NamedTuple, cast

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Engine,
    Table,
    bindparam,
    event,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.selectable import Select

from services import metrics
from services.db import READ_ONLY_OPTION, UtcDateTime, utcnow
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

# How long a process trusts a subscription it read (seconds; see the module's docstring).
SUBSCRIPTION_TTL: Final = 10.0
# A subscription's or mailbox's last_notification_at is rewritten at most this often per process:
# it is shown on the health page, where a minute is precise enough, and each rewrite is a round
# trip; with thousands of mailboxes a process meets each one rarely, so a short period would
# rewrite them on nearly every notification.
TOUCH_EVERY: Final = dt.timedelta(seconds=60)
_CACHE_LIMIT: Final = 50_000  # entries per database; expired ones are dropped beyond it

_RECEIVED: Final = metrics.counter_name("mtc_notifications_received_total")
_REJECTED: Final = metrics.counter_name("mtc_notifications_rejected_total")


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


# --------------------------------------------------------------------------- statements

_SUBSCRIPTIONS: Final = cast(Table, Subscription.__table__)
_MAILBOXES: Final = cast(Table, Mailbox.__table__)
_NOTIFICATIONS: Final = cast(Table, InboundNotification.__table__)

_NOW = bindparam("b_now", type_=UtcDateTime())


def _in_mailboxes(one: bool) -> tuple[ColumnElement[bool], ...]:
    """The mailboxes named by org, provider and address: one (`b_address`) or a list
    (`b_addresses`). Expanding a list costs more per run than the statement's whole execution,
    and a one-item batch names one mailbox."""
    address = _MAILBOXES.c.address
    return (
        _MAILBOXES.c.org_id == bindparam("b_org"),
        _MAILBOXES.c.provider == bindparam("b_provider"),
        address == bindparam("b_address")
        if one
        else address.in_(bindparam("b_addresses", expanding=True)),
    )


def _addresses(addresses: Sequence[str]) -> tuple[bool, dict[str, Any]]:
    if len(addresses) == 1:
        return True, {"b_address": addresses[0]}
    return False, {"b_addresses": list(addresses)}


_SELECT_SUBSCRIPTIONS: Final = select(
    _SUBSCRIPTIONS.c.external_id,
    _SUBSCRIPTIONS.c.id,
    _SUBSCRIPTIONS.c.org_id,
    _SUBSCRIPTIONS.c.mailbox,
    _SUBSCRIPTIONS.c.secret,
    _SUBSCRIPTIONS.c.resource,
).where(
    _SUBSCRIPTIONS.c.provider == bindparam("b_provider"),
    _SUBSCRIPTIONS.c.external_id.in_(bindparam("b_external_ids", expanding=True)),
)
# Coalescing: only the request that finds the flag clear sets it, and learns the mailbox's id.
_FLAG_MAILBOXES: Final = {
    one: update(_MAILBOXES)
    .where(
        *_in_mailboxes(one), _MAILBOXES.c.active.is_(True), _MAILBOXES.c.sync_queued_at.is_(None)
    )
    .values(sync_queued_at=_NOW, last_notification_at=_NOW)
    .returning(_MAILBOXES.c.id, _MAILBOXES.c.address)
    for one in (True, False)
}
_TOUCH_MAILBOXES: Final = {
    one: update(_MAILBOXES).where(*_in_mailboxes(one)).values(last_notification_at=_NOW)
    for one in (True, False)
}
_TOUCH_SUBSCRIPTIONS: Final = {
    one: update(_SUBSCRIPTIONS)
    .where(
        _SUBSCRIPTIONS.c.id == bindparam("b_id")
        if one
        else _SUBSCRIPTIONS.c.id.in_(bindparam("b_ids", expanding=True))
    )
    .values(last_notification_at=_NOW)
    for one in (True, False)
}
_INSERTS: dict[str, Insert] = {}


def _insert_statement(dialect: str) -> Insert:
    """INSERT .. ON CONFLICT DO NOTHING RETURNING, per dialect, built once; run with one
    parameter set per row (executemany), so its compiled form does not depend on the batch."""
    statement = _INSERTS.get(dialect)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = _INSERTS[dialect] = (
            insert(_NOTIFICATIONS)
            .on_conflict_do_nothing(index_elements=["provider", "dedupe_key"])
            .returning(_NOTIFICATIONS.c.dedupe_key, _NOTIFICATIONS.c.id)
        )
    return statement


def _one_on_postgres() -> Select[Any]:
    """A one-item batch's three writes as one PostgreSQL statement (data-modifying CTEs): the
    row (ON CONFLICT DO NOTHING), the coalescing flag of its mailbox if the row is new and a
    change, and the received counter. Returns (the new row's id or NULL, the id of the mailbox
    this request flagged or NULL). The UPDATE waits on a concurrent one for the same mailbox
    and then sees its flag, so exactly one request still flags (and enqueues) it."""
    values = {
        name: bindparam(f"r_{name}", type_=_NOTIFICATIONS.c[name].type)
        for name in (
            "org_id", "provider", "dedupe_key", "mailbox", "subscription_id", "payload",
            "status", "received_at", "attempts", "kind",
        )
    }  # fmt: skip
    inserted = (
        postgresql.insert(_NOTIFICATIONS)
        .values(values)
        .on_conflict_do_nothing(index_elements=["provider", "dedupe_key"])
        .returning(
            _NOTIFICATIONS.c.id,
            _NOTIFICATIONS.c.org_id,
            _NOTIFICATIONS.c.mailbox,
            _NOTIFICATIONS.c.kind,
        )
        .cte("inserted")
    )
    flagged = (
        update(_MAILBOXES)
        .where(
            _MAILBOXES.c.org_id == inserted.c.org_id,
            _MAILBOXES.c.provider == values["provider"],
            _MAILBOXES.c.address == inserted.c.mailbox,
            inserted.c.kind == "change",
            _MAILBOXES.c.active.is_(True),
            _MAILBOXES.c.sync_queued_at.is_(None),
        )
        .values(sync_queued_at=_NOW, last_notification_at=_NOW)
        .returning(_MAILBOXES.c.id)
        .cte("flagged")
    )
    # Run although nothing reads it: PostgreSQL runs every data-modifying CTE to completion.
    counted = metrics.upsert_statement("postgresql").cte("counted")
    return select(
        select(inserted.c.id).scalar_subquery(),
        select(flagged.c.id).scalar_subquery(),
    ).add_cte(counted)


_ONE_ON_POSTGRES: Final = _one_on_postgres()


class _OnCursor:
    """A statement compiled once for a dialect and run on a DBAPI cursor, with the same SQL
    and the same bind processing SQLAlchemy would apply. A one-item batch is the webhook's
    common case; SQLAlchemy's Session and per-execution work cost it more CPU than SQLite's
    own writes did (docs/benchmarks.md, run N)."""

    def __init__(self, statement: Any, dialect: Dialect, column_keys: Sequence[str] = ()) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) or None)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("parameters rendered at execution (expanding IN) are not supported")
        self.sql = compiled.string
        self.positions = compiled.positiontup  # qmark order, None for named styles
        # (name in the SQL, key in the caller's parameters or None for a literal, the literal,
        # the type's bind processor)
        self.binds = [
            (
                name,
                bind.key if bind.required else None,
                None if bind.required else bind.effective_value,
                bind.type.dialect_impl(dialect).bind_processor(dialect),
            )
            for bind, name in compiled.bind_names.items()
        ]

    def values(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {}
        for name, key, literal, process in self.binds:
            value = literal if key is None else params[key]
            values[name] = value if process is None else process(value)
        return values

    def run(self, cursor: Any, params: Mapping[str, Any]) -> list[Any]:
        values = self.values(params)
        bound = values if self.positions is None else [values[name] for name in self.positions]
        cursor.execute(self.sql, bound)
        return cursor.fetchall() if cursor.description else []


class _OwnConnection:
    """PostgreSQL: a connection of the engine's pool that this process keeps for the one-item
    write, in autocommit, each statement prepared on it once and run through libpq itself.
    psycopg's cursor (adaptation, its prepared-statement cache, its wait loop) and the pool's
    checkout and checkin cost more CPU than the round trip (docs/benchmarks.md, run P). One
    thread uses it at a time (`lock`); another meanwhile takes a connection from the pool."""

    def __init__(self, engine: Engine) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.lost = False  # closed, or the server went away: the next write makes a new one
        self._proxy = engine.raw_connection()
        connection = cast(psycopg.Connection[Any], self._proxy.driver_connection)
        connection.autocommit = True
        self._encoding = connection.info.encoding
        self._pgconn = connection.pgconn
        self._transformer = Transformer(connection)
        # statement -> (its name on the server, its parameters in $n order, their formats)
        self._prepared: dict[_OnCursor, tuple[bytes, list[str], list[PyFormat]]] = {}

    def run(self, statement: _OnCursor, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run `statement`; its rows. Raises psycopg's error for an error of the server, and
        _ConnectionLost (the connection closed) when the connection is gone."""
        prepared = self._prepared.get(statement) or self._prepare(statement)
        name, order, formats = prepared
        values = statement.values(params)
        dumped = self._transformer.dump_sequence([values[key] for key in order], formats)
        # libpq reads None as NULL; psycopg's stubs do not say so.
        result = self._checked(lambda: self._pgconn.exec_prepared(name, dumped))  # type: ignore[arg-type]
        self._transformer.set_pgresult(result)
        return self._transformer.load_rows(0, result.ntuples, tuple)

    def close(self) -> None:
        """Close the connection (it is not given back to the pool: it has prepared statements)."""
        if not self.lost:
            self.lost = True
            self._proxy.invalidate()

    def _prepare(self, statement: _OnCursor) -> tuple[bytes, list[str], list[PyFormat]]:
        order: list[str] = []

        def numbered(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return "%"  # pyformat's %%
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        name = f"mtc_{len(self._prepared)}".encode()
        sql = re.sub(r"%\((\w+)\)s|%%", numbered, statement.sql).encode(self._encoding)
        self._checked(lambda: self._pgconn.prepare(name, sql))
        # As text: every placeholder is cast in the SQL, so the server knows what it parses.
        prepared = self._prepared[statement] = (name, order, [PyFormat.TEXT] * len(order))
        return prepared

    def _checked(self, send: Callable[[], Any]) -> Any:
        try:
            result = send()
        except psycopg.OperationalError as error:  # closed before it was sent
            self.close()
            raise _ConnectionLost(str(error)) from error
        if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            return result
        if self._pgconn.status != pq.ConnStatus.OK:
            self.close()
            raise _ConnectionLost(result.error_message.decode(self._encoding, "replace"))
        raise psycopg.errors.error_from_result(result, encoding=self._encoding)


class _ConnectionLost(Exception):
    """The process's own PostgreSQL connection broke."""


_ROW_KEYS: Final = (
    "org_id", "provider", "dedupe_key", "mailbox", "subscription_id", "payload", "status",
    "received_at", "attempts", "kind",
)  # fmt: skip


def _on_cursor(dialect: Dialect) -> dict[str, _OnCursor]:
    """The one-item batch's statements for `dialect` (kept per engine in _Process)."""
    statements = {
        "touch_subscription": _OnCursor(_TOUCH_SUBSCRIPTIONS[True], dialect),
        "touch_mailbox": _OnCursor(_TOUCH_MAILBOXES[True], dialect),
    }
    if dialect.name == "postgresql":
        statements["one"] = _OnCursor(_ONE_ON_POSTGRES, dialect)
    else:
        statements["insert"] = _OnCursor(_insert_statement(dialect.name), dialect, _ROW_KEYS)
        statements["flag"] = _OnCursor(_FLAG_MAILBOXES[True], dialect)
        statements["count"] = _OnCursor(metrics.upsert_statement(dialect.name), dialect)
    return statements


# --------------------------------------------------------------------------- per-process state


class _Known(NamedTuple):
    """A subscription as read from the database, and when (time.monotonic())."""

    id: int
    org_id: int
    mailbox: str
    secret: str
    resource: str
    read_at: float


class _Process:
    """What one process remembers about one database."""

    def __init__(self) -> None:
        self.subscriptions: dict[tuple[str, str], _Known] = {}
        # ("s", subscription id) or ("m", org, provider, address) -> the `now` last written.
        self.touched: dict[tuple[Any, ...], dt.datetime] = {}
        # SQLite: the file the webhook's writers take turns on (see _Turn), opened per process.
        self.writers_fd: int | None = None
        self.writers_pid = 0
        self.writers_thread_lock = threading.Lock()
        self.on_cursor: dict[str, _OnCursor] | None = None  # _on_cursor(its dialect)
        self.own: _OwnConnection | None = None  # PostgreSQL: see _own_connection


# Own connections a forked child found: its parent's, never to be used nor closed (closing
# would end the parent's session on the shared socket); kept so no finalizer runs on them.
_FORKED_AWAY: list[_OwnConnection] = []
_OWN_LOCK: Final = threading.Lock()


def _own_connection(engine: Engine, state: _Process) -> _OwnConnection | None:
    """This process's own connection to `engine`, locked for the caller (release its lock);
    None when another thread is using it."""
    with _OWN_LOCK:
        own = state.own
        if own is not None and own.pid != os.getpid():
            _FORKED_AWAY.append(own)
            own = None
        if own is None or own.lost:
            own = state.own = _OwnConnection(engine)
    return own if own.lock.acquire(blocking=False) else None


_PROCESS: weakref.WeakKeyDictionary[Engine, _Process] = weakref.WeakKeyDictionary()


def _process(uow: UnitOfWork) -> tuple[Engine, _Process]:
    engine = uow.engine
    state = _PROCESS.get(engine)
    if state is None:
        state = _PROCESS[engine] = _Process()
        event.listen(engine, "engine_disposed", partial(_disposed, state))
    return engine, state


def _disposed(state: _Process, _engine: Engine) -> None:
    """The engine's connections are closed: so is this process's own (a database is dropped
    or the app stops)."""
    with _OWN_LOCK:
        own, state.own = state.own, None
    if own is not None and own.pid == os.getpid():
        own.close()


class _Turn:
    """On SQLite, the webhook's writers take turns on a file lock before BEGIN IMMEDIATE.

    SQLite lets a writer that finds the database locked sleep and retry (1, 2, 5, 10 ms ...),
    so with two web processes the lock sat idle while one slept, and the other often took it
    again first. Waiting on flock() instead hands the lock over at once: with 2 gunicorn workers
    requests/s rose by about a third (docs/benchmarks.md, run E). Other writers (the worker) do
    not take this lock and meet the webhook in SQLite's own locking, as before. The lock is
    released by the kernel if the process dies.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        engine, self.state = _process(uow)
        database = engine.url.database
        sqlite_file = engine.dialect.name == "sqlite" and database not in (None, "", ":memory:")
        self.path = f"{database}-webhook-writers" if sqlite_file else None
        self.held = False

    def take(self) -> None:
        if self.path is None or self.held:
            return
        state = self.state
        if state.writers_fd is None or state.writers_pid != os.getpid():  # new, or forked
            state.writers_fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            state.writers_pid = os.getpid()
        state.writers_thread_lock.acquire()  # flock() does not order threads of one process
        try:
            fcntl.flock(state.writers_fd, fcntl.LOCK_EX)
        except BaseException:
            state.writers_thread_lock.release()
            raise
        self.held = True

    def release(self) -> None:
        if self.held:
            assert self.state.writers_fd is not None
            self.held = False
            try:
                fcntl.flock(self.state.writers_fd, fcntl.LOCK_UN)
            finally:
                self.state.writers_thread_lock.release()


def _due(state: _Process, key: tuple[Any, ...], now: dt.datetime) -> bool:
    last = state.touched.get(key)
    return last is None or not dt.timedelta(0) <= now - last < TOUCH_EVERY


# --------------------------------------------------------------------------- the API


def record_notifications(
    uow: UnitOfWork,
    provider: Provider,
    items: Sequence[Incoming],
    *,
    now: dt.datetime | None = None,
) -> Recorded:
    """Verify and record a batch; commits. Items that fail verification are dropped and logged."""
    now = now or utcnow()
    ours = not uow.in_transaction()
    turn = _Turn(uow) if ours else None
    try:
        try:
            result, touched = _record(uow, provider, items, now, turn, trust_cache=True)
        except IntegrityError:
            # A cached subscription was deleted meanwhile (foreign key): verify again from the
            # database. Only when the transaction is ours to roll back.
            if not ours:
                raise
            uow.session.rollback()
            result, touched = _record(uow, provider, items, now, turn, trust_cache=False)
        if uow.in_transaction():  # not when _record_one committed on its own
            uow.commit()
    finally:
        if turn is not None:
            turn.release()
    state = _process(uow)[1]
    if len(state.touched) > _CACHE_LIMIT:
        state.touched.clear()
    state.touched.update(dict.fromkeys(touched, now))
    return result


def _record(
    uow: UnitOfWork,
    provider: Provider,
    items: Sequence[Incoming],
    now: dt.datetime,
    turn: _Turn | None,
    *,
    trust_cache: bool,
) -> tuple[Recorded, list[tuple[Any, ...]]]:
    """Everything but the commit: reads and Python work first, then the writes."""
    result = Recorded()
    subscriptions = _verified(uow, provider, items, trust_cache=trust_cache)
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
    touched: list[tuple[Any, ...]] = []
    if len(rows) == 1 and not result.rejected and turn is not None:
        engine, state = _process(uow)
        return _record_one(engine, provider, rows[0], now, state, result, turn)
    if turn is not None:
        turn.take()
    if rows:
        engine, state = _process(uow)
        connection = _connection(uow)  # on SQLite: BEGIN IMMEDIATE, the write lock
        inserted = _insert_new(connection, rows)
        result.accepted = len(rows)
        result.duplicates += len(rows) - len(inserted)
        fresh = [row for row in rows if row["dedupe_key"] in inserted]
        subscription_ids = {row["subscription_id"] for row in rows}
        due = sorted(sid for sid in subscription_ids if _due(state, ("s", sid), now))
        if due:
            _touch_subscriptions(connection, due, now)
            touched += [("s", sid) for sid in due]
        changes = [row for row in fresh if row["kind"] == "change"]
        result.mailboxes_to_sync, mailboxes = _flag_mailboxes(
            connection, provider, changes, now, state
        )
        touched += mailboxes
        result.lifecycle_ids = [
            inserted[row["dedupe_key"]] for row in fresh if row["kind"] == "lifecycle"
        ]
    metrics.increment_many(uow, {_RECEIVED: result.accepted, _REJECTED: result.rejected})
    return result, touched


def _record_one(
    engine: Engine,
    provider: Provider,
    row: dict[str, Any],
    now: dt.datetime,
    state: _Process,
    result: Recorded,
    turn: _Turn,
) -> tuple[Recorded, list[tuple[Any, ...]]]:
    """_record's writes for one verified item, committed, without the unit of work's Session:
    on PostgreSQL one statement (_ONE_ON_POSTGRES) in autocommit, one round trip, on the
    process's own connection (_OwnConnection) or, when another thread has it, on one of the
    pool; on SQLite the row, the mailbox's flag and the counter in one BEGIN IMMEDIATE
    transaction, the writers' turn taken just before it and given up just after the commit.
    last_notification_at, when due, is written after them (on PostgreSQL in its own
    transaction: a lost touch only makes the next one due)."""
    if state.on_cursor is None:
        state.on_cursor = _on_cursor(engine.dialect)
    params = {f"r_{key}": value for key, value in row.items()}
    params.update(row, b_now=now, m_name=_RECEIVED, m_value=1)
    params.update(b_org=row["org_id"], b_provider=provider, b_address=row["mailbox"])
    params["b_id"] = row["subscription_id"]
    write = _WriteOne(state, state.on_cursor, params, row, now)
    if "one" in state.on_cursor:
        own = _own_connection(engine, state)
        done = False
        if own is not None:
            try:
                write.on_postgres(own.run)
                done = True
            except _ConnectionLost:
                pass  # what is left is written through the pool
            except psycopg.IntegrityError as refused:
                raise IntegrityError(None, None, refused) from refused  # retried by the caller
            finally:
                own.lock.release()
        if not done:
            _on_pooled(engine, lambda cursor: write.on_postgres(partial(_run_on, cursor)))
    else:
        # The rest (the pool's checkin) needs no write lock.
        _on_pooled(engine, lambda cursor: write.on_sqlite(cursor, turn), committed=turn.release)
    result.accepted = 1
    if write.inserted is None:
        result.duplicates += 1
    elif row["kind"] == "lifecycle":
        result.lifecycle_ids = [write.inserted]
    elif write.flagged is not None:
        result.mailboxes_to_sync = [write.flagged]
    return result, write.touched


_Run = Callable[[_OnCursor, Mapping[str, Any]], list[Any]]


def _run_on(cursor: Any, statement: _OnCursor, params: Mapping[str, Any]) -> list[Any]:
    return statement.run(cursor, params)


class _WriteOne:
    """The statements of _record_one, run by a `run(statement, params)` of either kind."""

    def __init__(
        self,
        state: _Process,
        statements: dict[str, _OnCursor],
        params: dict[str, Any],
        row: dict[str, Any],
        now: dt.datetime,
    ) -> None:
        self.state = state
        self.statements = statements
        self.params = params
        self.row = row
        self.now = now
        self.inserted: int | None = None  # the new row's id
        self.flagged: int | None = None  # the mailbox this request flagged
        self.written = False  # the row, the flag and the counter
        self.touched: list[tuple[Any, ...]] = []

    def on_postgres(self, run: _Run) -> None:
        """Again after a lost connection: the statement that succeeded is not run twice (the
        row would count as a duplicate, and the mailbox it flagged would not be enqueued)."""
        if not self.written:
            self.inserted, self.flagged = run(self.statements["one"], self.params)[0]
            self.written = True
        self._touch(run)

    def on_sqlite(self, cursor: Any, turn: _Turn) -> None:
        statements, params = self.statements, self.params
        run = partial(_run_on, cursor)
        turn.take()
        cursor.execute("BEGIN IMMEDIATE")
        found = run(statements["insert"], params)
        self.inserted = found[0][1] if found else None
        if self.inserted is not None and self.row["kind"] == "change":
            flagged = run(statements["flag"], params)
            self.flagged = flagged[0][0] if flagged else None
        run(statements["count"], params)
        self._touch(run)

    def _touch(self, run: _Run) -> None:
        state, row, now = self.state, self.row, self.now
        self.touched = []
        subscription = ("s", row["subscription_id"])
        mailbox = ("m", row["org_id"], row["provider"], row["mailbox"])
        if _due(state, subscription, now):
            run(self.statements["touch_subscription"], self.params)
            self.touched.append(subscription)
        if self.inserted is not None and row["kind"] == "change":
            if self.flagged is not None:
                self.touched.append(mailbox)
            elif _due(state, mailbox, now):
                run(self.statements["touch_mailbox"], self.params)
                self.touched.append(mailbox)


def _on_pooled(
    engine: Engine, work: Callable[[Any], None], *, committed: Callable[[], None] | None = None
) -> None:
    """Run `work(cursor)` on a DBAPI connection of the pool and commit, then `committed()`.
    In autocommit on PostgreSQL: each statement is its own transaction."""
    autocommit = engine.dialect.name == "postgresql"
    connection = engine.raw_connection()
    try:
        if autocommit:
            connection.driver_connection.autocommit = True  # type: ignore[union-attr]
        cursor = connection.cursor()
        work(cursor)
        cursor.close()
        connection.commit()
        if committed is not None:
            committed()
    except engine.dialect.loaded_dbapi.IntegrityError as refused:
        connection.rollback()
        raise IntegrityError(None, None, refused) from refused  # record_notifications retries
    except BaseException:
        connection.rollback()
        raise
    finally:
        if autocommit and not connection.driver_connection.closed:  # type: ignore[union-attr]
            connection.driver_connection.autocommit = False  # type: ignore[union-attr]
        connection.close()


def channel_is_valid(
    uow: UnitOfWork, provider: Provider, external_id: str, secret: str, resource: str
) -> bool:
    """Whether a push names a stored channel with this secret and resource (nothing recorded)."""
    item = Incoming(external_id, secret, {}, resource=resource)
    subscription = _verified(uow, provider, [item], trust_cache=True).get(external_id)
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
    connection = _connection(uow)
    inserted = _insert_new(connection, [row])
    to_sync = _flag_mailboxes(connection, provider, [row], now, None)[0] if inserted else []
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
    connection = _connection(uow)
    inserted = _insert_new(connection, [row])
    _touch_subscriptions(connection, [watch.id], now)
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


# --------------------------------------------------------------------------- helpers


def _problem(subscription: _Known | None, item: Incoming) -> str | None:
    if subscription is None:
        return "unknown subscription"
    if not hmac.compare_digest(subscription.secret.encode(), item.client_state.encode()):
        return "clientState mismatch"
    if item.resource is not None and item.resource != subscription.resource:
        return "resource mismatch"
    return None


def _verified(
    uow: UnitOfWork, provider: Provider, items: Sequence[Incoming], *, trust_cache: bool
) -> dict[str, _Known]:
    """The subscriptions the items name: from this process's cache when it was read less than
    SUBSCRIPTION_TTL ago and verifies the items, otherwise from the database."""
    engine, state = _process(uow)
    clock = time.monotonic()
    found: dict[str, _Known] = {}
    wanted: set[str] = set()
    for item in items:
        external_id = item.subscription_id
        if external_id in wanted:
            continue
        known = found.get(external_id)
        if known is None and trust_cache:
            known = state.subscriptions.get((provider, external_id))
            if known is not None and clock - known.read_at >= SUBSCRIPTION_TTL:
                known = None
        # Only successes come from the cache: a mismatch is checked against the database.
        if known is None or _problem(known, item) is not None:
            found.pop(external_id, None)
            wanted.add(external_id)
        else:
            found[external_id] = known
    if not wanted:
        return found
    params = {"b_provider": provider, "b_external_ids": sorted(wanted)}
    session = uow.session
    busy = session.in_transaction() or session.new or session.dirty or session.deleted
    if busy or engine.dialect.name != "sqlite":
        read = _connection(uow).execute(_SELECT_SUBSCRIPTIONS, params).all()
    else:
        # Before the write transaction: SQLite's BEGIN IMMEDIATE would hold the write lock
        # through this read and the Python work after it.
        with engine.connect() as connection:
            connection.execution_options(**{READ_ONLY_OPTION: True})
            read = connection.execute(_SELECT_SUBSCRIPTIONS, params).all()
    if len(state.subscriptions) > _CACHE_LIMIT:
        state.subscriptions = {
            key: known
            for key, known in state.subscriptions.items()
            if clock - known.read_at < SUBSCRIPTION_TTL
        }
    for external_id in wanted:
        state.subscriptions.pop((provider, external_id), None)
    for external_id, id_, org_id, mailbox, secret, resource in read:
        known = found[external_id] = _Known(id_, org_id, mailbox, secret, resource, clock)
        state.subscriptions[(provider, external_id)] = known
    return found


def _connection(uow: UnitOfWork) -> Connection:
    """The unit of work's connection (starting its transaction), pending ORM changes flushed."""
    session = uow.session
    session.flush()
    return session.connection()


def _dedupe_key(subscription_id: str, payload: Mapping[str, Any]) -> str:
    """Same item delivered twice (provider retries, duplicates) -> same key.

    A Graph item names the event and its `@odata.etag`, which changes with every change of the
    event, so two different changes never share a key.
    """
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{subscription_id[:200]}:{digest}"


def _insert_new(connection: Connection, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert the rows whose key is new; returns {dedupe_key: id} of those inserted."""
    statement = _insert_statement(connection.dialect.name)
    found = connection.execute(statement, rows[0] if len(rows) == 1 else rows)
    return dict(found.all())


def _touch_subscriptions(connection: Connection, ids: list[int], now: dt.datetime) -> None:
    if len(ids) == 1:
        connection.execute(_TOUCH_SUBSCRIPTIONS[True], {"b_id": ids[0], "b_now": now})
    else:
        connection.execute(_TOUCH_SUBSCRIPTIONS[False], {"b_ids": ids, "b_now": now})


def _flag_mailboxes(
    connection: Connection,
    provider: Provider,
    rows: list[dict[str, Any]],
    now: dt.datetime,
    state: _Process | None,
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """Mark the mailboxes as notified; returns those whose sync nobody has queued yet, and the
    mailboxes whose last_notification_at was written (with `state`, only those due)."""
    addresses: dict[int, set[str]] = defaultdict(set)
    for row in rows:
        addresses[row["org_id"]].add(row["mailbox"])
    to_sync: list[int] = []
    touched: list[tuple[Any, ...]] = []
    for org_id, mailboxes in addresses.items():
        params = {"b_org": org_id, "b_provider": provider, "b_now": now}
        one, named = _addresses(sorted(mailboxes))
        flagged = connection.execute(_FLAG_MAILBOXES[one], {**params, **named})
        written: set[str] = set()
        for mailbox_id, address in flagged:
            to_sync.append(mailbox_id)
            written.add(address)
        stale = sorted(
            address
            for address in mailboxes - written
            if state is None or _due(state, ("m", org_id, provider, address), now)
        )
        if stale:
            one, named = _addresses(stale)
            connection.execute(_TOUCH_MAILBOXES[one], {**params, **named})
        touched += [("m", org_id, provider, address) for address in (*written, *stale)]
    return sorted(to_sync), touched
