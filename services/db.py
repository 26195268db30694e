"""Engine, declarative base and column types shared by every table."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, DateTime, Engine, Integer, MetaData, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, sessionmaker
from sqlalchemy.types import TypeDecorator

# Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Execution option a read-only unit of work sets on its connection (see make_engine).
READ_ONLY_OPTION = "crm_read_only"

# SQLite only auto-increments INTEGER PRIMARY KEY, PostgreSQL wants 64-bit ids.
Id = BigInteger().with_variant(Integer(), "sqlite")

# Naive UTC -> aware UTC by adding the difference to an anchor: datetime.replace(tzinfo=...)
# costs ten times more, and it runs for every datetime read from SQLite (thousands a request).
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_NAIVE = _EPOCH.replace(tzinfo=None)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes in Python, stored as UTC on every backend.

    SQLite has no time zone type and hands back naive values; this type makes both backends
    return aware UTC datetimes, and refuses naive ones so no local time sneaks in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return _EPOCH + (value - _EPOCH_NAIVE)  # type: ignore[no-any-return]
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UtcDateTime()}


def include_in_autogenerate(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic autogenerate filter: the search structures (FTS5 tables, word tables, expression
    indexes) exist only in migration 0002, so the models must not propose dropping them."""
    return not (reflected and compare_to is None and name is not None and "search" in name)


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Create the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return _server_engine(url, echo=echo)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        # WAL lets the worker write while web requests read; NORMAL sync is safe with WAL.
        # isolation_level=None hands transaction control to the events below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        # pysqlite's implicit transactions start late and deadlock writers under WAL;
        # an explicit BEGIN IMMEDIATE takes the write lock up front and waits busy_timeout for it.
        # Read-only units of work ask for a deferred BEGIN so readers never queue behind writers.
        deferred = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

    return engine


def make_read_engine(url: str, *, echo: bool = False) -> Engine | None:
    """For read-only units of work on PostgreSQL: autocommit, every transaction read-only.

    A read then costs no BEGIN and no ROLLBACK, two of the few round trips of a task-pane
    request. It sees what it would inside a transaction: under READ COMMITTED, the default,
    each statement takes its own snapshot either way. The server refuses a write, which in a
    transaction would have been rolled back at the end. None for SQLite, whose read-only units
    already begin deferred (see make_engine).
    """
    if make_url(url).get_backend_name() == "sqlite":
        return None
    return _server_engine(
        url,
        echo=echo,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": "-c default_transaction_read_only=on"},
    )


# A pooled PostgreSQL connection idle longer than this (seconds) is pinged before it is used.
PING_AFTER_IDLE = 1.0


def _server_engine(url: str, *, echo: bool, **options: Any) -> Engine:
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20, **options)

    # SQLAlchemy's pool_pre_ping pings on every checkout: a round trip more for each unit of
    # work, when a connection used a moment ago is alive but for a server restart in that
    # moment (then one request fails, and the pool replaces its connections). Ping only
    # after PING_AFTER_IDLE; a failed ping makes the pool connect again (DisconnectionError).
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("the pooled connection failed its ping") from error
        if not alive:
            raise DisconnectionError("the pooled connection failed its ping")

    @event.listens_for(engine, "connect")
    def _utc_session(dbapi_connection: Any, _record: Any) -> None:
        # psycopg returns timestamptz values in the session's zone. In UTC they come in
        # datetime.UTC, which UtcDateTime passes on as they are; in a server zone such as
        # Etc/UTC each value is converted, thousands per calendar request. The values are
        # instants either way, so no result changes.
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        dbapi_connection.execute("SET TimeZone = 'UTC'")
        dbapi_connection.autocommit = autocommit

    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
