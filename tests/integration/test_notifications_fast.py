"""The webhook's fast path (services.notifications, webhooks.graph): what it may skip, and what
it must not.

The subscription cache, the statements each request runs, the throttled last_notification_at
writes, SQLite's read before the write lock, and the schema-free parsing of plain Graph batches
(never accepting what the schema refuses).
"""

from __future__ import annotations

import copy
import datetime as dt
import fcntl
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from marshmallow import ValidationError
from sqlalchemy import bindparam, delete, event, select, update
from sqlalchemy.dialects import sqlite as sqlite_dialect

import bootstrap
from services import metrics, notifications
from services.notifications import Incoming, record_notifications
from services.tables import InboundNotification, Mailbox, Provider, Subscription
from services.unit_of_work import UnitOfWorkFactory
from tests.conftest import Tenant
from webhooks import graph

SECRET = "client-state-secret-for-the-fast-path-0123456789"
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def mailboxes(uow_factory: UnitOfWorkFactory, tenant: Tenant) -> dict[str, int]:
    """Two watched mailboxes with one subscription each: sub-a and sub-b."""
    ids: dict[str, int] = {}
    with uow_factory() as uow:
        for name in ("a", "b"):
            address = f"{name}@northwind.example"
            mailbox = Mailbox(
                org_id=tenant.org_id, provider="microsoft", address=address, external_id=name
            )
            uow.session.add(mailbox)
            uow.session.add(
                Subscription(
                    org_id=tenant.org_id,
                    provider="microsoft",
                    kind="mailbox_events",
                    mailbox=address,
                    external_id=f"sub-{name}",
                    resource=f"/users/{name}/events",
                    secret=SECRET,
                    expires_at=NOW + dt.timedelta(days=3),
                )
            )
            uow.session.flush()
            ids[name] = mailbox.id
        uow.commit()
    return ids


class Statements:
    """The SQL the database connections are sent, in order (traced on the DBAPI connection:
    the one-item path runs its statements there, past SQLAlchemy's events; on PostgreSQL
    mostly on the process's own connection, past psycopg's cursor too, so there as
    _OwnConnection.run is called)."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.autocommit: list[bool] = []  # PostgreSQL: whether each was sent in autocommit

    def clear(self) -> None:
        self.sent.clear()
        self.autocommit.clear()

    @property
    def dml(self) -> list[str]:
        """First words and table of each SELECT / INSERT / UPDATE / DELETE, in order."""
        shown = []
        for sql in self.sent:
            words = sql.split()
            if words[0] == "WITH":  # PostgreSQL: a one-item batch's writes in one statement
                shown.append("WITH inserted, flagged, counted")
            elif words[0] in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                table = next(w for w in words if w.strip('"') in _TABLES)
                shown.append(f"{words[0]} {table.strip(chr(34))}")
        return shown


_TABLES = {"subscriptions", "mailboxes", "inbound_notifications", "metric_counters"}


@pytest.fixture
def statements(
    container: bootstrap.Container, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Statements]:
    seen = Statements()
    traced: list[Any] = []

    def record(sql: str) -> None:
        seen.sent.append(sql.strip())

    run_on_own = notifications._OwnConnection.run

    def traced_run(own: Any, statement: Any, params: Any) -> Any:
        record(statement.sql)
        seen.autocommit.append(own._proxy.driver_connection.autocommit)
        return run_on_own(own, statement, params)

    monkeypatch.setattr(notifications._OwnConnection, "run", traced_run)

    class TracedCursor(psycopg.Cursor):  # type: ignore[type-arg]
        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            record(str(query))
            seen.autocommit.append(self.connection.autocommit)
            return super().execute(query, params, **options)

    def trace(dbapi_connection: Any, *_: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(record)
        else:
            dbapi_connection.cursor_factory = TracedCursor
        traced.append(dbapi_connection)

    event.listen(container.engine, "checkout", trace)
    yield seen
    event.remove(container.engine, "checkout", trace)
    for dbapi_connection in traced:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.set_trace_callback(None)
        else:
            dbapi_connection.cursor_factory = psycopg.Cursor


def change(event_id: str, subscription: str = "sub-a", secret: str = SECRET) -> Incoming:
    return Incoming(
        subscription,
        secret,
        {"event_id": event_id, "change_type": "updated", "etag": uuid.uuid4().hex},
    )


def record(
    uow_factory: UnitOfWorkFactory, *items: Incoming, now: dt.datetime = NOW
) -> notifications.Recorded:
    with uow_factory() as uow:
        return record_notifications(uow, Provider.MICROSOFT, list(items), now=now)


def stored(uow_factory: UnitOfWorkFactory) -> list[str]:
    with uow_factory() as uow:
        rows = uow.session.scalars(select(InboundNotification).order_by(InboundNotification.id))
        return [row.payload["event_id"] for row in rows]


# --------------------------------------------------------------------------- statements


def test_a_known_subscription_is_recorded_with_few_statements(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    statements: Statements,
    container: bootstrap.Container,
) -> None:
    on_postgres = container.engine.dialect.name == "postgresql"
    assert record(uow_factory, change("e1")).mailboxes_to_sync == [mailboxes["a"]]
    if on_postgres:
        first = ["SELECT subscriptions", "WITH inserted, flagged, counted"]
        first.append("UPDATE subscriptions")  # last_notification_at: first time in this process
        # The writes in autocommit: no BEGIN and COMMIT round trips; the pool gets the
        # connection back as it lent it.
        assert statements.autocommit[-2:] == [True, True]
        with container.engine.connect() as connection:
            assert connection.connection.driver_connection.autocommit is False
    else:
        first = [
            "SELECT subscriptions",
            "INSERT inbound_notifications",
            "UPDATE mailboxes",  # the coalescing flag, which also sets last_notification_at
            "INSERT metric_counters",
            "UPDATE subscriptions",  # last_notification_at: first time in this process
        ]
    assert statements.dml == first
    statements.clear()
    # One second later: the subscription comes from the cache, nothing is due to be touched,
    # and the mailbox's sync is already queued.
    later = NOW + dt.timedelta(seconds=1)
    second = change("e2")
    assert record(uow_factory, second, now=later).mailboxes_to_sync == []
    assert statements.dml == (
        ["WITH inserted, flagged, counted"]
        if on_postgres
        else ["INSERT inbound_notifications", "UPDATE mailboxes", "INSERT metric_counters"]
    )
    assert stored(uow_factory) == ["e1", "e2"]
    assert record(uow_factory, second, now=later).duplicates == 1  # Graph delivered it again
    assert stored(uow_factory) == ["e1", "e2"]


def test_last_notification_at_is_written_again_once_it_is_a_few_seconds_old(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int]
) -> None:
    def last_notifications() -> tuple[dt.datetime | None, dt.datetime | None]:
        with uow_factory() as uow:
            return (
                uow.session.scalar(
                    select(Subscription.last_notification_at).where(
                        Subscription.external_id == "sub-a"
                    )
                ),
                uow.session.scalar(
                    select(Mailbox.last_notification_at).where(Mailbox.id == mailboxes["a"])
                ),
            )

    record(uow_factory, change("e1"))
    assert last_notifications() == (NOW, NOW)
    record(uow_factory, change("e2"), now=NOW + dt.timedelta(seconds=2))
    assert last_notifications() == (NOW, NOW)  # within TOUCH_EVERY: not rewritten
    later = NOW + notifications.TOUCH_EVERY + dt.timedelta(seconds=1)
    record(uow_factory, change("e3"), now=later)
    assert last_notifications() == (later, later)


def test_a_batch_over_several_mailboxes_flags_each_once(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int]
) -> None:
    duplicate = change("a2")
    items = [change("a1"), duplicate, duplicate, change("b1", "sub-b"), change("b2", "sub-b")]
    result = record(uow_factory, *items)
    assert (result.accepted, result.duplicates, result.rejected) == (4, 1, 0)
    assert result.mailboxes_to_sync == sorted(mailboxes.values())
    again = record(uow_factory, duplicate, change("b3", "sub-b"))  # Graph retried one item
    assert (again.accepted, again.duplicates, again.mailboxes_to_sync) == (2, 1, [])
    assert sorted(stored(uow_factory)) == ["a1", "a2", "b1", "b2", "b3"]


def test_counters_move_in_the_recording_transaction(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int]
) -> None:
    record(uow_factory, change("e1"), change("e2", secret="forged"), change("e3", "sub-x"))
    with uow_factory() as uow:
        counters = metrics.snapshot_counters(uow)
    assert counters["mtc_notifications_received_total"] == 1
    assert counters["mtc_notifications_rejected_total"] == 2


def test_a_one_item_batch_is_stored_as_a_larger_batch_is(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int], container: bootstrap.Container
) -> None:
    # One item goes straight to the DBAPI cursor, larger batches through SQLAlchemy: the
    # stored values must be the same, to the text of a SQLite timestamp.
    record(uow_factory, change("one"))
    record(uow_factory, change("two"), change("three"))
    with container.engine.connect() as connection:
        rows = connection.exec_driver_sql(
            "SELECT org_id, provider, mailbox, subscription_id, status, received_at, attempts, "
            "kind, CAST(payload AS TEXT), dedupe_key FROM inbound_notifications ORDER BY id"
        ).all()
    assert len(rows) == 3
    one, two, three = ([*row[:8], json.loads(row[8]), row[9]] for row in rows)
    assert one[:8] == two[:8] == three[:8]
    assert (
        one[5] == NOW if isinstance(one[5], dt.datetime) else one[5] == "2026-11-22 12:00:00.000000"
    )
    assert [one[8]["event_id"], two[8]["event_id"]] == ["one", "two"]
    assert one[8].keys() == two[8].keys()
    assert one[9].startswith("sub-a:")
    assert len(one[9]) == len(two[9])
    with uow_factory() as uow:
        counters = metrics.snapshot_counters(uow)
    assert counters["mtc_notifications_received_total"] == 3


def test_on_sqlite_the_subscription_is_read_before_the_write_lock(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    statements: Statements,
    container: bootstrap.Container,
) -> None:
    if container.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    record(uow_factory, change("e1"))
    shown = [sql.split()[0] if sql.startswith("SELECT") else sql for sql in statements.sent]
    # The read in a deferred transaction (no write lock while reading and verifying), the
    # writes after BEGIN IMMEDIATE.
    assert shown[:4] == ["BEGIN", "SELECT", "ROLLBACK", "BEGIN IMMEDIATE"]
    assert "SELECT" not in shown[4:]
    assert shown[-1] == "COMMIT"


# --------------------------------------------------------------------------- the cache


def test_a_cached_subscription_never_hides_a_failed_check(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int], statements: Statements
) -> None:
    record(uow_factory, change("e1"))
    statements.clear()
    forged = record(uow_factory, change("e2", secret=SECRET[:-1] + "x"))
    assert (forged.accepted, forged.rejected) == (0, 1)
    assert statements.dml[0] == "SELECT subscriptions"  # a mismatch is read again, not trusted
    assert stored(uow_factory) == ["e1"]


def test_a_new_secret_verifies_at_once(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int]
) -> None:
    record(uow_factory, change("e1"))
    with uow_factory() as uow:
        uow.session.execute(update(Subscription).values(secret="a-new-secret"))
        uow.commit()
    assert record(uow_factory, change("e2", secret="a-new-secret")).accepted == 1


def test_an_unknown_subscription_is_not_cached(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int], tenant: Tenant
) -> None:
    assert record(uow_factory, change("e1", "sub-new")).rejected == 1
    with uow_factory() as uow:
        uow.session.add(
            Subscription(
                org_id=tenant.org_id,
                provider="microsoft",
                kind="mailbox_events",
                mailbox="a@northwind.example",
                external_id="sub-new",
                secret=SECRET,
                expires_at=NOW + dt.timedelta(days=3),
            )
        )
        uow.commit()
    assert record(uow_factory, change("e2", "sub-new")).accepted == 1


def test_a_deleted_subscription_stops_verifying_although_it_is_cached(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int]
) -> None:
    record(uow_factory, change("e1"))
    with uow_factory() as uow:
        uow.session.execute(delete(Subscription).where(Subscription.external_id == "sub-a"))
        uow.commit()
    alone = record(uow_factory, change("e2"))  # one item: one statement on PostgreSQL
    assert (alone.accepted, alone.rejected) == (0, 1)
    result = record(uow_factory, change("e3"), change("b1", "sub-b"))
    assert (result.accepted, result.rejected) == (1, 1)
    assert stored(uow_factory) == ["e1", "b1"]


def test_the_cache_expires(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    statements: Statements,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record(uow_factory, change("e1"))
    monkeypatch.setattr(notifications, "SUBSCRIPTION_TTL", 0.0)
    statements.clear()
    record(uow_factory, change("e2"))
    assert statements.dml[0] == "SELECT subscriptions"


def test_each_database_has_its_own_cache(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int], settings: bootstrap.Settings
) -> None:
    record(uow_factory, change("e1"))
    other = bootstrap.build(settings)  # another engine (a test's fresh container, say)
    try:
        with other.uow() as uow:
            uow.session.execute(delete(Subscription).where(Subscription.external_id == "sub-a"))
            uow.commit()
        assert record(other.uow, change("e2")).rejected == 1
    finally:
        other.close()


def test_channel_is_valid_uses_the_same_checks(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int]
) -> None:
    with uow_factory() as uow:
        check = notifications.channel_is_valid
        assert check(uow, Provider.MICROSOFT, "sub-a", SECRET, "/users/a/events")
        assert check(uow, Provider.MICROSOFT, "sub-a", SECRET, "/users/a/events")  # cached
        assert not check(uow, Provider.MICROSOFT, "sub-a", SECRET, "/users/b/events")
        assert not check(uow, Provider.MICROSOFT, "sub-a", "guess", "/users/a/events")
        assert not check(uow, Provider.GOOGLE, "sub-a", SECRET, "/users/a/events")


# --------------------------------------------------------------------------- plain batches


def _graph_item() -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "subscriptionId": "sub-a",
        "subscriptionExpirationDateTime": "2026-11-29T10:00:00.0000000Z",
        "clientState": SECRET,
        "changeType": "updated",
        "resource": "Users/a/Events/AAMkAD1",
        "tenantId": "tenant-1",
        "resourceData": {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": "Users/a/Events/AAMkAD1",
            "@odata.etag": 'W/"DwAAABYAAA1"',
            "id": "AAMkAD1",
        },
    }


_MISSING = object()
_ODD_VALUES: list[Any] = [
    _MISSING, None, "", "x", 0, 1.5, True, [], {}, ["x"], "x" * 64, "x" * 65,
    "x" * 256, "x" * 257, "x" * 1024, "x" * 1025, "x" * 2048, "x" * 2049,
    "created", "deleted", "moved",
]  # fmt: skip
_FIELDS = [
    ("subscriptionId",), ("clientState",), ("tenantId",), ("subscriptionExpirationDateTime",),
    ("changeType",), ("resource",), ("resourceData",), ("resourceData", "id"),
    ("resourceData", "@odata.etag"), ("resourceData", "@odata.type"), ("unknownField",),
]  # fmt: skip


def _variants() -> Iterator[dict[str, Any]]:
    yield {"value": [_graph_item()]}
    yield {"value": [_graph_item(), _graph_item()], "@odata.nextLink": "ignored"}
    for odd in ([], "x", None, [1], [None], [[]], _MISSING):
        yield {} if odd is _MISSING else {"value": odd}
    for path in _FIELDS:
        for value in _ODD_VALUES:
            item = _graph_item()
            target = item
            for key in path[:-1]:
                target = target[key]
            if value is _MISSING:
                target.pop(path[-1], None)
            else:
                target[path[-1]] = copy.deepcopy(value)
            yield {"value": [_graph_item(), item]}


def _by_schema(body: dict[str, Any]) -> list[Incoming] | None:
    try:
        items = graph._COLLECTION.load(body)["value"]
        return [graph._change_incoming(graph._CHANGE.load(item)) for item in items]
    except ValidationError:
        return None


def test_plain_batches_are_read_as_the_schema_reads_them() -> None:
    fast_ones = 0
    for body in _variants():
        expected = _by_schema(copy.deepcopy(body))
        fast = graph._plain_changes(copy.deepcopy(body))
        if fast is None:
            continue  # the schema decides (and names the errors)
        fast_ones += 1
        assert expected is not None, body  # never accepts what the schema refuses
        assert fast == expected, body
    assert fast_ones > 50  # Graph's own shape, and its harmless variations, take the fast path


# --------------------------------------------------------------------------- SQLite writers


@pytest.fixture
def writers_lock(container: bootstrap.Container) -> str:
    """The file SQLite's webhook writers take turns on (skips on PostgreSQL)."""
    database = container.engine.url.database
    if container.engine.dialect.name != "sqlite" or not database:
        pytest.skip("SQLite's write lock")
    return f"{database}-webhook-writers"


def test_on_sqlite_the_webhook_writers_take_turns_on_a_file_lock(
    uow_factory: UnitOfWorkFactory, mailboxes: dict[str, int], writers_lock: str
) -> None:
    record(uow_factory, change("e1"))
    other = os.open(writers_lock, os.O_RDWR)  # another process, as far as flock() is concerned
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: released after the commit
        waiting = threading.Thread(target=record, args=(uow_factory, change("e2")))
        waiting.start()
        waiting.join(0.3)
        assert waiting.is_alive()  # verified and ready, waiting for its turn
        assert stored(uow_factory) == ["e1"]
        fcntl.flock(other, fcntl.LOCK_UN)
        waiting.join(10)
        assert not waiting.is_alive()
        assert stored(uow_factory) == ["e1", "e2"]
    finally:
        os.close(other)


def test_on_sqlite_a_one_item_batch_gives_up_its_turn_once_committed(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    container: bootstrap.Container,
    writers_lock: str,
) -> None:
    record(uow_factory, change("e1"))  # the lock file exists from here on
    turn_free_at_checkin: list[bool] = []

    def checked_in(dbapi_connection: Any, connection_record: Any) -> None:
        other = os.open(writers_lock, os.O_RDWR)
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_UN)
            turn_free_at_checkin.append(True)
        except BlockingIOError:
            turn_free_at_checkin.append(False)
        finally:
            os.close(other)

    event.listen(container.engine, "checkin", checked_in)
    try:
        record(uow_factory, change("e2"))
    finally:
        event.remove(container.engine, "checkin", checked_in)
    assert stored(uow_factory) == ["e1", "e2"]
    # The writing connection goes back to the pool after the other writers' turn is free.
    assert turn_free_at_checkin
    assert all(turn_free_at_checkin)


def test_a_statement_with_an_expanding_parameter_is_not_run_on_the_cursor() -> None:
    # Its SQL is only known at execution; _OnCursor renders once, so it refuses it up front.
    expanding = select(Mailbox.id).where(Mailbox.id.in_(bindparam("ids", expanding=True)))
    with pytest.raises(ValueError, match="expanding"):
        notifications._OnCursor(expanding, sqlite_dialect.dialect())


# ------------------------------------------------------------------ PostgreSQL's own connection


@pytest.fixture
def own_connection(container: bootstrap.Container) -> Any:
    """The process's own connection to the container's PostgreSQL (skips on SQLite): a
    function giving its server process's pid, or None while it has none."""
    engine = container.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's own connection")

    def backend_pid() -> int | None:
        state = notifications._PROCESS.get(engine)
        own = state.own if state is not None else None
        return None if own is None or own.lost else own._pgconn.backend_pid

    return backend_pid


def _server_processes(container: bootstrap.Container) -> set[int]:
    with container.engine.connect() as connection:
        return set(connection.exec_driver_sql("SELECT pid FROM pg_stat_activity").scalars())


@pytest.fixture
def pool_checkouts(container: bootstrap.Container) -> Iterator[list[object]]:
    """The DBAPI connections taken from the container's write pool, as they are taken."""
    seen: list[object] = []

    def checked_out(dbapi_connection: Any, *_: Any) -> None:
        seen.append(dbapi_connection)

    event.listen(container.engine, "checkout", checked_out)
    try:
        yield seen
    finally:
        event.remove(container.engine, "checkout", checked_out)


def test_on_postgres_a_one_item_batch_is_written_on_the_process_own_connection(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    own_connection: Any,
    pool_checkouts: list[object],
) -> None:
    assert record(uow_factory, change("e1")).mailboxes_to_sync == [mailboxes["a"]]
    first = own_connection()
    assert first is not None
    pool_checkouts.clear()
    assert record(uow_factory, change("e2")).accepted == 1  # subscription cached: no read
    assert pool_checkouts == []  # nothing taken from the pool, nothing given back
    assert own_connection() == first
    assert stored(uow_factory) == ["e1", "e2"]


def test_a_lost_own_connection_loses_no_notification(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    container: bootstrap.Container,
    own_connection: Any,
) -> None:
    record(uow_factory, change("e1"))
    lost = own_connection()
    with container.engine.connect() as other:  # a restart, a failover, an idle timeout
        other.exec_driver_sql(f"SELECT pg_terminate_backend({lost}, 5000)")
    second = record(uow_factory, change("e2"))  # written through the pool
    assert (second.accepted, second.duplicates) == (1, 0)
    assert stored(uow_factory) == ["e1", "e2"]
    record(uow_factory, change("e3"))
    assert own_connection() not in (None, lost)  # a new one from the next write on
    assert lost not in _server_processes(container)
    assert stored(uow_factory) == ["e1", "e2", "e3"]


def test_a_write_whose_connection_broke_after_it_is_not_written_again(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    container: bootstrap.Container,
    own_connection: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = notifications._OwnConnection.run
    calls: list[str] = []

    def breaks_after_the_first(own: Any, statement: Any, params: Any) -> Any:
        calls.append(statement.sql.split()[0])
        if len(calls) > 1:  # last_notification_at of the subscription, due the first time
            own.close()
            raise notifications._ConnectionLost("server closed the connection unexpectedly")
        return run(own, statement, params)

    monkeypatch.setattr(notifications._OwnConnection, "run", breaks_after_the_first)
    result = record(uow_factory, change("e1"))
    assert calls == ["WITH", "UPDATE"]
    # The row, the flag and the counter were written once: the flag's enqueue is not lost to
    # a second run that would find the row a duplicate and the mailbox flagged.
    assert (result.accepted, result.duplicates) == (1, 0)
    assert result.mailboxes_to_sync == [mailboxes["a"]]
    with uow_factory() as uow:
        assert metrics.snapshot_counters(uow)["mtc_notifications_received_total"] == 1
        touched = uow.session.scalar(
            select(Subscription.last_notification_at).where(Subscription.external_id == "sub-a")
        )
    assert touched == NOW  # the rest went through the pool


def test_while_another_thread_has_the_own_connection_a_write_takes_one_from_the_pool(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    container: bootstrap.Container,
    own_connection: Any,
    pool_checkouts: list[object],
) -> None:
    record(uow_factory, change("e1"))
    own = notifications._PROCESS[container.engine].own
    assert own is not None
    pool_checkouts.clear()
    with own.lock:  # another thread is writing on it
        assert record(uow_factory, change("e2")).accepted == 1
    assert len(pool_checkouts) == 1
    assert stored(uow_factory) == ["e1", "e2"]


def test_disposing_the_engine_closes_the_own_connection(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    container: bootstrap.Container,
    own_connection: Any,
) -> None:
    record(uow_factory, change("e1"))
    closed = own_connection()
    container.engine.dispose()  # the app stops; a test database is about to be dropped
    assert own_connection() is None
    assert closed not in _server_processes(container)
    record(uow_factory, change("e2"))
    assert own_connection() not in (None, closed)


@pytest.mark.parametrize("child_disposes", [True, False], ids=["disposed", "not-disposed"])
def test_a_forked_child_never_uses_nor_closes_its_parent_own_connection(
    uow_factory: UnitOfWorkFactory,
    mailboxes: dict[str, int],
    container: bootstrap.Container,
    own_connection: Any,
    child_disposes: bool,
) -> None:
    record(uow_factory, change("e1"))
    parents = own_connection()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit status
        status = 1
        try:
            if child_disposes:  # SQLAlchemy's advice after a fork
                container.engine.dispose(close=False)
            record(uow_factory, change("e2"))
            status = 0 if own_connection() not in (None, parents) else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    record(uow_factory, change("e3"))
    assert own_connection() == parents  # untouched by the child: same session, still open
    assert stored(uow_factory) == ["e1", "e2", "e3"]
