"""Lease fencing and the stored retry verdict: units.lease_token, attempts.superseded, attempts.error_retryable.

Existing rows: every unit starts at token 0 (the next claim makes it 1), no attempt is superseded,
and the retry verdict of attempts stored before this revision is unknown (NULL). No unique index on
(attempts.unit_id, number): databases written before fencing may hold the duplicate numbers it
prevents, and the upgrade must not fail on them (the writer allocates numbers under a row lock).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('units') as batch:
        batch.add_column(sa.Column('lease_token', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('attempts') as batch:
        batch.add_column(sa.Column('error_retryable', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('superseded', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('attempts') as batch:
        batch.drop_column('superseded')
        batch.drop_column('error_retryable')
    with op.batch_alter_table('units') as batch:
        batch.drop_column('lease_token')
