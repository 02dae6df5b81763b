"""Incidents and incident steps (issue 7)

Revision ID: 0006_crisis
Revises: 0005_campaigns
"""
from alembic import op
import sqlalchemy as sa

revision = "0006_crisis"
down_revision = "0005_campaigns"
branch_labels = None
depends_on = None

TS = sa.DateTime()  # naive UTC everywhere


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("skus", sa.Text, nullable=False),  # JSON list
        sa.Column("reason", sa.Text),
        sa.Column("severity", sa.String(12)),
        sa.Column("source", sa.String(20)),  # manual / spike
        sa.Column("status", sa.String(12), nullable=False),  # open / closed
        sa.Column("opened_at", TS, nullable=False), sa.Column("closed_at", TS),
        sa.Column("opened_by", sa.String(100)),
        sa.Column("statement", sa.Text),
        sa.Column("flow_run_id", sa.String(64)),
    )
    op.create_table(
        "incident_steps",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(16), primary_key=True),  # control / clarify / compensate
        sa.Column("deadline_at", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),  # pending / done / late / escalated
        sa.Column("done_at", TS), sa.Column("done_by", sa.String(100)),
        sa.Column("result", sa.Text),
        sa.Column("reminders_sent", sa.Text),  # JSON list: 50 / 90 / escalated
    )
    # Customers affected by an open incident: no marketing to them while it is open.
    op.create_table(
        "incident_customers",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("priority", sa.String(12)),  # core / potential / ordinary
        sa.Column("remedy", sa.String(40)),
        sa.Column("compensated_at", TS),
    )
    op.create_index("ix_incident_customers_customer", "incident_customers", ["customer_id"])



def downgrade() -> None:
    for t in ["incident_customers", "incident_steps", "incidents"]:
        op.drop_table(t)

