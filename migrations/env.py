"""Alembic environment: the URL comes from the app settings, the metadata from services.tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

import bootstrap
from services import tables  # noqa: F401 - registers every table on the metadata
from services.db import Base, include_in_autogenerate, make_engine

config = context.config
url = config.get_main_option("sqlalchemy.url") or bootstrap.Settings.from_env().database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
        include_object=include_in_autogenerate,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()
