"""the scheduler's heartbeat: when the reminder sweep last completed, in the database

Revision ID: 0009_scheduler_heartbeat
Revises: 0008_fast_polls
Create Date: 2026-11-28 09:00:00

"""
from alembic import op
import sqlalchemy as sa

import panel.models  # noqa: F401  (custom column types such as UTCDateTime)


# revision identifiers, used by Alembic.
revision = '0009_scheduler_heartbeat'
down_revision = '0008_fast_polls'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('heartbeat',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('at', panel.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_heartbeat'))
    )


def downgrade():
    op.drop_table('heartbeat')
