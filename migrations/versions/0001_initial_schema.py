"""Initial schema: runs, units (the work queue), attempts, results.

Reviewed by hand from autogenerate: portable types only (no runner imports), plain indexes.

Revision ID: 0001
Revises: 
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('runs',
    sa.Column('id', sa.String(length=16), nullable=False),
    sa.Column('job_name', sa.String(length=200), nullable=False),
    sa.Column('job_spec', sa.JSON(), nullable=False),
    sa.Column('job_sha256', sa.String(length=64), nullable=True),
    sa.Column('prices', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('runner_version', sa.String(length=40), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_runs'))
    )
    op.create_index(op.f('ix_runs_started_at'), 'runs', ['started_at'], unique=False)
    op.create_table('units',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.String(length=16), nullable=False),
    sa.Column('key', sa.String(length=500), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('case_id', sa.String(length=300), nullable=False),
    sa.Column('repeat', sa.Integer(), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('lease_owner', sa.String(length=200), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reused_from', sa.Integer(), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['reused_from'], ['units.id'], name=op.f('fk_units_reused_from_units'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], name=op.f('fk_units_run_id_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units')),
    sa.UniqueConstraint('run_id', 'key', name=op.f('uq_units_run_id_key'))
    )
    op.create_index(op.f('ix_units_request_hash_status'), 'units', ['request_hash', 'status'], unique=False)
    op.create_index(op.f('ix_units_run_id_status_id'), 'units', ['run_id', 'status', 'id'], unique=False)
    op.create_table('attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('headers_s', sa.Float(), nullable=True),
    sa.Column('first_byte_s', sa.Float(), nullable=True),
    sa.Column('first_reasoning_s', sa.Float(), nullable=True),
    sa.Column('first_answer_s', sa.Float(), nullable=True),
    sa.Column('end_s', sa.Float(), nullable=True),
    sa.Column('gap_p50_s', sa.Float(), nullable=True),
    sa.Column('gap_p90_s', sa.Float(), nullable=True),
    sa.Column('gap_max_s', sa.Float(), nullable=True),
    sa.Column('http_status', sa.Integer(), nullable=True),
    sa.Column('error_kind', sa.String(length=32), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('retry_after_s', sa.Float(), nullable=True),
    sa.Column('stream_error', sa.JSON(), nullable=True),
    sa.Column('bytes_received', sa.Integer(), nullable=False),
    sa.Column('chunks', sa.Integer(), nullable=False),
    sa.Column('heartbeats', sa.Integer(), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('complete', sa.Boolean(), nullable=True),
    sa.Column('partial_choices', sa.JSON(), nullable=True),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('total_tokens', sa.Integer(), nullable=True),
    sa.Column('reasoning_tokens', sa.Integer(), nullable=True),
    sa.Column('cached_input_tokens', sa.Integer(), nullable=True),
    sa.Column('cache_write_tokens', sa.Integer(), nullable=True),
    sa.Column('usage_raw', sa.JSON(), nullable=True),
    sa.Column('cost_reported', sa.Float(), nullable=True),
    sa.Column('cost_computed', sa.Float(), nullable=True),
    sa.Column('raw_capture', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_attempts_unit_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attempts'))
    )
    op.create_index(op.f('ix_attempts_started_at'), 'attempts', ['started_at'], unique=False)
    op.create_index(op.f('ix_attempts_unit_id_number'), 'attempts', ['unit_id', 'number'], unique=False)
    op.create_table('results',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=True),
    sa.Column('choice_index', sa.Integer(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('reasoning', sa.Text(), nullable=False),
    sa.Column('reasoning_steps', sa.JSON(), nullable=False),
    sa.Column('refusal', sa.Text(), nullable=True),
    sa.Column('tool_calls', sa.JSON(), nullable=False),
    sa.Column('finish_reason', sa.String(length=32), nullable=True),
    sa.Column('raw_finish_reason', sa.String(length=100), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('completion_id', sa.String(length=200), nullable=True),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('extras', sa.JSON(), nullable=False),
    sa.Column('input_tokens', sa.Integer(), nullable=True),
    sa.Column('output_tokens', sa.Integer(), nullable=True),
    sa.Column('total_tokens', sa.Integer(), nullable=True),
    sa.Column('reasoning_tokens', sa.Integer(), nullable=True),
    sa.Column('cached_input_tokens', sa.Integer(), nullable=True),
    sa.Column('cache_write_tokens', sa.Integer(), nullable=True),
    sa.Column('usage_raw', sa.JSON(), nullable=True),
    sa.Column('cost_reported', sa.Float(), nullable=True),
    sa.Column('cost_computed', sa.Float(), nullable=True),
    sa.Column('assertions', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], name=op.f('fk_results_attempt_id_attempts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_results_unit_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_results')),
    sa.UniqueConstraint('unit_id', 'choice_index', name=op.f('uq_results_unit_id_choice_index'))
    )
    op.create_index(op.f('ix_results_attempt_id'), 'results', ['attempt_id'], unique=False)
    op.create_index(op.f('ix_results_created_at'), 'results', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_results_created_at'), table_name='results')
    op.drop_index(op.f('ix_results_attempt_id'), table_name='results')
    op.drop_table('results')
    op.drop_index(op.f('ix_attempts_unit_id_number'), table_name='attempts')
    op.drop_index(op.f('ix_attempts_started_at'), table_name='attempts')
    op.drop_table('attempts')
    op.drop_index(op.f('ix_units_run_id_status_id'), table_name='units')
    op.drop_index(op.f('ix_units_request_hash_status'), table_name='units')
    op.drop_table('units')
    op.drop_index(op.f('ix_runs_started_at'), table_name='runs')
    op.drop_table('runs')
