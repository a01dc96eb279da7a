"""sweep keyset index on (remind_from, company_id); fill remind_from for tokens stored before 0004

Revision ID: 0005_sweep_index
Revises: 0004_reminder_ledger
Create Date: 2026-11-25 19:55:00

"""
from alembic import op
import sqlalchemy as sa

import panel.models  # noqa: F401  (custom column types such as UTCDateTime)


# revision identifiers, used by Alembic.
revision = '0005_sweep_index'
down_revision = '0004_reminder_ledger'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sage_token', schema=None) as batch_op:
        batch_op.drop_index('ix_sage_token_remind_from')
        batch_op.create_index('ix_sage_token_remind_from_company', ['remind_from', 'company_id'], unique=False)

    # Tokens stored before remind_from existed would never be found by the sweep: compute it now.
    from panel.sage.status import window_start

    bind = op.get_bind()
    token = sa.table('sage_token', sa.column('id', sa.Integer), sa.column('company_id', sa.Integer),
                     sa.column('expires_at', panel.models.UTCDateTime()),
                     sa.column('remind_from', panel.models.UTCDateTime()))
    company = sa.table('company', sa.column('id', sa.Integer), sa.column('timezone', sa.String),
                       sa.column('reminder_days', sa.Integer))
    rows = bind.execute(sa.select(token.c.id, token.c.expires_at, company.c.timezone, company.c.reminder_days)
                        .join(company, company.c.id == token.c.company_id)
                        .where(token.c.remind_from.is_(None))).all()
    for row in rows:
        bind.execute(token.update().where(token.c.id == row.id)
                     .values(remind_from=window_start(row.expires_at, row.reminder_days, row.timezone)))


def downgrade():
    with op.batch_alter_table('sage_token', schema=None) as batch_op:
        batch_op.drop_index('ix_sage_token_remind_from_company')
        batch_op.create_index('ix_sage_token_remind_from', ['remind_from'], unique=False)
