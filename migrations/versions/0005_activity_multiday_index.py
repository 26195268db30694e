"""Partial index of multi-day activities, for those that started days before a range

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22

A calendar range also lists what started before it and still runs. Activities that started
within two days before the range come from ix_activities_org_start; older ones that still run
last more than two days, and this index holds only activities longer than 36 hours, so the
lookup reads a few rows instead of every activity before (or after) the range.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Must match services.tables.MULTI_DAY_WHERE.
_SQLITE_WHERE = "julianday(end_at) - julianday(start_at) > 1.5"
_PG_WHERE = "end_at - start_at > interval '36 hours'"


def upgrade() -> None:
    op.create_index(
        "ix_activities_org_multiday_end",
        "activities",
        ["org_id", "end_at", "start_at"],
        sqlite_where=sa.text(_SQLITE_WHERE),
        postgresql_where=sa.text(_PG_WHERE),
    )


def downgrade() -> None:
    op.drop_index("ix_activities_org_multiday_end", table_name="activities")
