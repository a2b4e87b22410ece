"""When each read of a captured body arrived: attempts.raw_reads.

The viewer replays a captured stream read by read at the pace it came; the capture alone has the
bytes, not their timing. NULL for attempts without a capture and for those stored before this revision.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attempts') as batch:
        batch.add_column(sa.Column('raw_reads', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attempts') as batch:
        batch.drop_column('raw_reads')
