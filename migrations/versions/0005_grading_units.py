"""Grading units: a judge provider's request that grades a unit is a unit of the run's queue too.

``units.graded_unit_id`` is the id of the unit a grading unit grades (NULL for the job's own units);
``units.grading_prompt`` holds the rendered grading request, what the judge is sent. Existing units
are the job's own: both columns NULL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 20:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMNs, no foreign key: on SQLite a constraint means rebuilding `units` (batch mode),
    # and dropping the old table there cascades into every stored run's attempts and results. A
    # grading unit goes with its run (units.run_id cascades), which is when its graded unit goes.
    op.add_column('units', sa.Column('graded_unit_id', sa.Integer(), nullable=True))
    op.add_column('units', sa.Column('grading_prompt', sa.Text(), nullable=True))
    op.create_index(op.f('ix_units_graded_unit_id'), 'units', ['graded_unit_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_units_graded_unit_id'), table_name='units')
    # In place (SQLite >= 3.35 drops an unindexed, unreferenced column itself): rebuilding ``units``
    # would drop the old table with foreign keys on and cascade every attempt and result away.
    with op.batch_alter_table('units', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('grading_prompt')
        batch_op.drop_column('graded_unit_id')
