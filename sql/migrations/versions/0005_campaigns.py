"""Campaign runs and touches (issue 6)

Revision ID: 0005_campaigns
Revises: 0004_alerts
"""
from alembic import op
import sqlalchemy as sa

revision = "0005_campaigns"
down_revision = "0004_alerts"
branch_labels = None
depends_on = None

TS = sa.DateTime()  # naive UTC everywhere


def upgrade() -> None:
    op.create_table(
        "campaign_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("campaign", sa.String(80), nullable=False),
        sa.Column("period", sa.String(20), nullable=False),  # e.g. 2026-11-22 or 2026-W47
        sa.Column("started_at", TS, nullable=False), sa.Column("finished_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("notes", sa.Text),  # why it ran (e.g. silent share 38% > 35%)
        sa.Column("stats", sa.Text),  # JSON: audience, exclusions per reason, planned, sent ...
    )
    op.create_table(
        "touches",
        sa.Column("touch_key", sa.String(200), primary_key=True),  # idempotency key: campaign|customer|period
        sa.Column("campaign", sa.String(80), nullable=False),
        sa.Column("campaign_run_id", sa.String(64)),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),  # email / sms / push / staff
        sa.Column("grp", sa.String(12), nullable=False),  # treatment / control
        sa.Column("variant", sa.String(20)),
        sa.Column("locale", sa.String(8)),
        sa.Column("subject", sa.Text), sa.Column("body", sa.Text),
        sa.Column("is_marketing", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("gift_cost", sa.Float, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),  # planned / awaiting_review / in_flight / sent / failed / suppressed / control
        sa.Column("reason", sa.Text),  # why suppressed / failed
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("planned_at", TS, nullable=False),
        sa.Column("not_before", TS),  # quiet hours defer, never drop
        sa.Column("in_flight_at", TS), sa.Column("sent_at", TS),
        sa.Column("provider_id", sa.String(200)),
        sa.Column("period", sa.String(20)),  # the period of the idempotency key (campaign touches)
        sa.Column("claimed_by", sa.String(120)),  # sender (host:pid:start) holding it in flight
        sa.Column("quiet_hours", sa.String(11)),  # e.g. 21:00-09:00; NULL = none (staff lists)
        sa.Column("timezone", sa.String(64)),  # where quiet hours are read (customer's or shop's)
    )
    op.create_index("ix_touches_customer", "touches", ["customer_id", "sent_at"])
    op.create_index("ix_touches_status", "touches", ["status", "planned_at"])  # due ones, oldest first
    op.create_index("ix_touches_campaign_period", "touches", ["campaign", "period"])



def downgrade() -> None:
    op.drop_table("touches")
    op.drop_table("campaign_runs")

