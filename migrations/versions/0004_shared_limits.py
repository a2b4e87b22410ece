"""Shared limits: per-provider buckets, in-flight slots per process, and the run's workers (with what each spent).

Every process joined on a run draws from the same RPM / TPM buckets, concurrency (adaptive) and
budget cap, kept here. Existing runs get no rows: a process creates them at its first take.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 15:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'limit_buckets',
        sa.Column('run_id', sa.String(length=16), nullable=False),
        sa.Column('provider', sa.String(length=200), nullable=False),
        sa.Column('rpm_tokens', sa.Float(), nullable=False),
        sa.Column('tpm_tokens', sa.Float(), nullable=False),
        sa.Column('refilled_at', sa.Float(), nullable=False),
        sa.Column('concurrency', sa.Integer(), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.Column('successes', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ['run_id'], ['runs.id'], name=op.f('fk_limit_buckets_run_id_runs'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('run_id', 'provider', name=op.f('pk_limit_buckets')),
    )
    op.create_table(
        'limit_holders',
        sa.Column('run_id', sa.String(length=16), nullable=False),
        sa.Column('provider', sa.String(length=200), nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('slots', sa.Integer(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ['run_id'], ['runs.id'], name=op.f('fk_limit_holders_run_id_runs'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('run_id', 'provider', 'owner', name=op.f('pk_limit_holders')),
    )
    op.create_table(
        'limit_workers',
        sa.Column('run_id', sa.String(length=16), nullable=False),
        sa.Column('owner', sa.String(length=200), nullable=False),
        sa.Column('shared', sa.Boolean(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('spent_before_usd', sa.Float(), nullable=False),
        sa.Column('spent_usd', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ['run_id'], ['runs.id'], name=op.f('fk_limit_workers_run_id_runs'), ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('run_id', 'owner', name=op.f('pk_limit_workers')),
    )

def downgrade() -> None:
    op.drop_table('limit_workers')
    op.drop_table('limit_holders')
    op.drop_table('limit_buckets')
