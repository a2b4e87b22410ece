"""Results per attempt: ``--retry failed`` keeps a retried unit's earlier result rows, stamped
``results.replaced_at``, instead of deleting them.

The unit's current result is its rows with ``replaced_at`` NULL; the unique key (unit_id,
choice_index) now holds among those only (a partial unique index, which SQLite and PostgreSQL both
have). Existing rows: every one is a current result (NULL). History that earlier versions deleted
is not brought back; the partial output of those attempts is still in ``attempts.partial_choices``.

SQLite cannot drop a table constraint in place: the batch operation copies ``results`` into a new
table with the new schema (ids, foreign keys and indexes kept) and swaps it in. PostgreSQL alters the
table in place: the new nullable column needs no rewrite; the partial index is built from the rows.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

CURRENT = sa.text('replaced_at IS NULL')


def upgrade() -> None:
    with op.batch_alter_table('results') as batch:
        batch.add_column(sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=True))
        batch.drop_constraint('uq_results_unit_id_choice_index', type_='unique')
    op.create_index(
        'ix_results_unit_id_choice_index',
        'results',
        ['unit_id', 'choice_index'],
        unique=True,
        sqlite_where=CURRENT,
        postgresql_where=CURRENT,
    )


def downgrade() -> None:
    # The history has no place in the older schema: it goes, and each unit keeps its current result.
    op.execute(sa.text('DELETE FROM results WHERE replaced_at IS NOT NULL'))
    op.drop_index('ix_results_unit_id_choice_index', table_name='results')
    with op.batch_alter_table('results') as batch:
        batch.create_unique_constraint('uq_results_unit_id_choice_index', ['unit_id', 'choice_index'])
        batch.drop_column('replaced_at')
