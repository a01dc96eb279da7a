"""server-side sessions: one row per signed-in session, so sign-out and revocation end it everywhere

Revision ID: 0007_user_sessions
Revises: 0006_ledger_day_uncertain
Create Date: 2026-11-27 10:00:00

"""
from alembic import op
import sqlalchemy as sa

import panel.models  # noqa: F401  (custom column types such as UTCDateTime)


# revision identifiers, used by Alembic.
revision = '0007_user_sessions'
down_revision = '0006_ledger_day_uncertain'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('user_session',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', panel.models.UTCDateTime(), nullable=False),
    sa.Column('address', sa.String(length=64), nullable=True),
    sa.Column('user_agent', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_user_session_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_session'))
    )
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_session_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_user_session_created_at'), ['created_at'], unique=False)
    # Throttle keys change shape (account+address pairs instead of accounts): old counters mean nothing now.
    op.execute(sa.text("DELETE FROM login_throttle"))


def downgrade():
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_session_created_at'))
        batch_op.drop_index(batch_op.f('ix_user_session_user_id'))
    op.drop_table('user_session')
