"""reminder ledger keyed by (company, user, local day start); data_at (DATA handed over); status 'uncertain'

Revision ID: 0006_ledger_day_uncertain
Revises: 0005_sweep_index
Create Date: 2026-11-26 07:00:00

"""
from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

from alembic import op
import sqlalchemy as sa

import panel.models  # noqa: F401  (custom column types such as UTCDateTime)


# revision identifiers, used by Alembic.
revision = '0006_ledger_day_uncertain'
down_revision = '0005_sweep_index'
branch_labels = None
depends_on = None

OLD_STATUSES = "status IN ('claimed', 'sending', 'sent', 'failed', 'skipped')"
NEW_STATUSES = "status IN ('claimed', 'sending', 'sent', 'failed', 'skipped', 'uncertain')"


def _day_start(day, tz_name: str) -> datetime:
    """The first instant of local date ``day`` (midnight; ample for rows written before this revision)."""
    return datetime.combine(day, time(0)).replace(tzinfo=ZoneInfo(tz_name)).astimezone(timezone.utc)


def upgrade():
    with op.batch_alter_table('reminder_delivery', schema=None) as batch_op:
        batch_op.add_column(sa.Column('day_start', panel.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('data_at', panel.models.UTCDateTime(), nullable=True))

    # Rows written before this revision: the local day in the company's present timezone.
    bind = op.get_bind()
    ledger = sa.table('reminder_delivery', sa.column('company_id', sa.Integer), sa.column('local_date', sa.Date),
                      sa.column('day_start', panel.models.UTCDateTime()))
    company = sa.table('company', sa.column('id', sa.Integer), sa.column('timezone', sa.String))
    days = bind.execute(sa.select(ledger.c.company_id, ledger.c.local_date, company.c.timezone)
                        .join(company, company.c.id == ledger.c.company_id).distinct()).all()
    for row in days:
        bind.execute(ledger.update().where(ledger.c.company_id == row.company_id,
                                           ledger.c.local_date == row.local_date)
                     .values(day_start=_day_start(row.local_date, row.timezone)))

    with op.batch_alter_table('reminder_delivery', schema=None) as batch_op:
        batch_op.alter_column('day_start', existing_type=panel.models.UTCDateTime(), nullable=False)
        batch_op.drop_constraint('uq_reminder_delivery_key', type_='unique')
        batch_op.create_unique_constraint('uq_reminder_delivery_day', ['company_id', 'user_id', 'day_start'])
        batch_op.drop_constraint(op.f('ck_reminder_delivery_status_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_reminder_delivery_status_valid'), sa.text(NEW_STATUSES))


def downgrade():
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE reminder_delivery SET status = 'sent' WHERE status = 'uncertain'"))
    with op.batch_alter_table('reminder_delivery', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_reminder_delivery_status_valid'), type_='check')
        batch_op.create_check_constraint(op.f('ck_reminder_delivery_status_valid'), sa.text(OLD_STATUSES))
        batch_op.drop_constraint('uq_reminder_delivery_day', type_='unique')
        # Two zones' rows for one date cannot both stay under the old key: keep the first of each.
    bind.execute(sa.text(
        "DELETE FROM reminder_delivery WHERE id NOT IN (SELECT min(id) FROM reminder_delivery "
        "GROUP BY company_id, user_id, generation, local_date)"))
    with op.batch_alter_table('reminder_delivery', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_reminder_delivery_key',
                                          ['company_id', 'user_id', 'generation', 'local_date'])
        batch_op.drop_column('data_at')
        batch_op.drop_column('day_start')
