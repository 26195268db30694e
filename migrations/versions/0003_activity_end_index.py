"""Index for activities that started before a range and still run into it

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_activities_org_end_start", "activities", ["org_id", "end_at", "start_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_activities_org_end_start", table_name="activities")
