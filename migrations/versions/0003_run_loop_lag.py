"""How late runner's own loop woke during a run: runs.loop_lag.

The timing figures of a run (TTFT, gaps, durations) are only honest when runner's loop kept up; the
run stores the lag its processes measured so the report can flag figures taken while it did not.
Runs stored before this revision have NULL (not measured).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('loop_lag', sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('loop_lag')
