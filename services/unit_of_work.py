"""One database transaction per request or job: explicit commit, rollback by default."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from services.db import READ_ONLY_OPTION


class UnitOfWork:
    """`with uow_factory() as uow: ...; uow.commit()`. Leaving the block without commit rolls back.

    The Session is made when first used, so a unit of work that needs none (the webhook's
    one-item batch writes on a DBAPI connection) does not pay for one. Units of work are never
    shared between threads or requests: build one from the factory.
    """

    def __init__(self, session_factory: sessionmaker[Any], *, read_only: bool = False) -> None:
        self._session_factory = session_factory
        self._read_only = read_only
        self._open = False
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            if not self._open:
                raise RuntimeError("unit of work used outside its `with` block")
            self._session = self._session_factory()
            if self._read_only:
                self._session.connection(execution_options={READ_ONLY_OPTION: True})
        return self._session

    @property
    def engine(self) -> Engine:
        """The engine this unit of work's Session is bound to."""
        return self._session_factory.kw["bind"]  # type: ignore[no-any-return]

    def in_transaction(self) -> bool:
        """Whether the Session has begun a transaction (False when no Session was made)."""
        return self._session is not None and self._session.in_transaction()

    def __enter__(self) -> Self:
        self._open = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # close() rolls back whatever was not committed and detaches the objects *unexpired*,
        # so the web layer can still serialize what a committed or read-only unit returned.
        self._open = False
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def commit(self) -> None:
        self.session.commit()

    def flush(self) -> None:
        self.session.flush()


class UnitOfWorkFactory:
    """Callable that hands out fresh units of work; this is what services receive.

    Read-only units use `read_session_factory` when there is one (PostgreSQL's read-only
    engine, services.db.make_read_engine).
    """

    def __init__(
        self,
        session_factory: sessionmaker[Any],
        read_session_factory: sessionmaker[Any] | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.read_session_factory = read_session_factory or session_factory

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        factory = self.read_session_factory if read_only else self.session_factory
        return UnitOfWork(factory, read_only=read_only)
