"""fast polls and big companies: poll versions, tallies and ledger days kept by triggers; indexes for the
recipients list (name order, admins, people search)

Revision ID: 0008_fast_polls
Revises: 0007_user_sessions
Create Date: 2026-11-27 12:00:00

"""
from alembic import op
import sqlalchemy as sa

import panel.models  # noqa: F401  (custom column types such as UTCDateTime)
from panel import derived, triggers


# revision identifiers, used by Alembic.
revision = '0008_fast_polls'
down_revision = '0007_user_sessions'
branch_labels = None
depends_on = None


def _sqlite_has_trigram() -> bool:
    import sqlite3

    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='trigram')")
        return True
    except sqlite3.OperationalError:
        return False


def upgrade():
    bind = op.get_bind()
    op.create_table('poll_state',
    sa.Column('kind', sa.String(length=1), nullable=False),
    sa.Column('ref_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('changed_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'ref_id', name=op.f('pk_poll_state'))
    )
    op.create_index(op.f('ix_poll_state_changed_at'), 'poll_state', ['changed_at'], unique=False)
    op.create_table('company_tally',
    sa.Column('company_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('people', sa.Integer(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('company_id', name=op.f('pk_company_tally'))
    )
    op.create_table('ledger_day',
    sa.Column('company_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('local_date', sa.Date(), nullable=False),
    sa.Column('sent', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('uncertain', sa.Integer(), nullable=False),
    sa.Column('last_at', panel.models.UTCDateTime(), nullable=True),
    sa.Column('failure', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('company_id', 'local_date', name=op.f('pk_ledger_day'))
    )
    # The recipients list pages by (lower(name), id) and the widget names admins in that order: both from an index.
    # A company's newest claim and newest hand-over to the mail server: the widget's "Next reminder" whatever the
    # number of ledger rows.
    op.create_index('ix_reminder_delivery_company_claimed', 'reminder_delivery', ['company_id', 'claimed_at'])
    op.create_index('ix_reminder_delivery_company_data', 'reminder_delivery', ['company_id', 'data_at'])
    op.create_index('ix_user_company_name', 'user', ['company_id', sa.text('lower(name)'), 'id'], unique=False)
    op.create_index('ix_user_company_role_name', 'user', ['company_id', 'role', sa.text('lower(name)'), 'id'],
                    unique=False)
    if bind.dialect.name == 'sqlite':
        # People search by any part of a name or address: a trigram index (FTS5), when this SQLite build has FTS5.
        if _sqlite_has_trigram():
            op.execute("CREATE VIRTUAL TABLE user_search USING fts5(search, content='', tokenize='trigram')")
        # else (a SQLite build without FTS5): search scans the company's people in name order instead
    elif bind.dialect.name == 'postgresql':
        try:
            with bind.begin_nested():  # pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may add it
                op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
                op.execute('CREATE INDEX ix_user_search_trgm ON "user" USING gin '
                           '((lower(name) || chr(31) || lower(email)) gin_trgm_ops)')
        except sa.exc.DBAPIError:
            pass  # not allowed here: search scans the company's people in name order instead
    triggers.install(bind)
    derived.backfill(bind)


def downgrade():
    bind = op.get_bind()
    triggers.drop(bind)
    if bind.dialect.name == 'sqlite':
        op.execute('DROP TABLE IF EXISTS user_search')
    else:
        op.execute('DROP INDEX IF EXISTS ix_user_search_trgm')
    op.drop_index('ix_reminder_delivery_company_data', table_name='reminder_delivery')
    op.drop_index('ix_reminder_delivery_company_claimed', table_name='reminder_delivery')
    op.drop_index('ix_user_company_role_name', table_name='user')
    op.drop_index('ix_user_company_name', table_name='user')
    op.drop_table('ledger_day')
    op.drop_table('company_tally')
    op.drop_index(op.f('ix_poll_state_changed_at'), table_name='poll_state')
    op.drop_table('poll_state')
