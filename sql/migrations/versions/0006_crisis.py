"""Incidents, incident steps, affected customers, complaint spikes, feedback SLA (issue 7)

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
        sa.Column("closed_by", sa.String(100)),
        sa.Column("statement", sa.Text),  # the draft, then the approved text
        sa.Column("statement_lang", sa.String(8)),
        sa.Column("statement_published_at", TS),
        sa.Column("flow_run_id", sa.String(64)),  # the flow run that drives the incident
        sa.Column("report", sa.Text),  # JSON closing report
    )
    op.create_index("ix_incidents_status", "incidents", ["status", "opened_at"])
    op.create_table(
        "incident_steps",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(16), primary_key=True),  # control / clarify / compensate
        sa.Column("deadline_at", TS, nullable=False),
        # pending / waiting (a human's turn) / done / expired (the wait for a human ran out)
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("done_at", TS), sa.Column("done_by", sa.String(100)),
        sa.Column("result", sa.Text),  # JSON
        sa.Column("reminders_sent", sa.Text),  # JSON list: "50" / "90" / "escalated"
    )
    # One open incident per SKU: the row is the lock; deleted when the incident closes.
    op.create_table(
        "incident_skus",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("added_at", TS, nullable=False),
    )
    # Customers affected by an open incident: no marketing to them while it is open.
    op.create_table(
        "incident_customers",
        sa.Column("incident_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("priority", sa.String(12)),  # core / potential / ordinary
        sa.Column("rank", sa.Integer),  # service order: core first, then by amount
        sa.Column("affected_orders", sa.Integer),
        sa.Column("affected_amount", sa.Float),
        sa.Column("remedy", sa.String(40)),  # e.g. coupon50+refund+call
        sa.Column("coupon_value", sa.Float),
        sa.Column("refund_offer", sa.Boolean),
        sa.Column("call_list", sa.Boolean),
        sa.Column("touch_key", sa.String(200)),
        sa.Column("added_at", TS),
        sa.Column("compensated_at", TS),
    )
    op.create_index("ix_incident_customers_customer", "incident_customers", ["customer_id"])
    # Every complaint spike the monitor saw; emitted once (emitted_at), linked to its incident.
    op.create_table(
        "complaint_spikes",
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("first_hot_at", TS, primary_key=True),  # end of the first window over the threshold
        sa.Column("last_hot_at", TS, nullable=False),
        sa.Column("peak_complaints", sa.Integer, nullable=False),
        sa.Column("window_hours", sa.Float, nullable=False),
        sa.Column("rule", sa.String(12), nullable=False),  # count / rate
        sa.Column("baseline", sa.Float),  # usual complaints per window
        sa.Column("detected_at", TS, nullable=False),
        sa.Column("emitted_at", TS),
        sa.Column("incident_id", sa.String(64)),
    )
    # Feedback past the first-response SLA: listed and alerted once, acknowledged once.
    op.create_table(
        "feedback_sla",
        sa.Column("feedback_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("kind", sa.String(16)),
        sa.Column("sku", sa.String(64)),
        sa.Column("created_at", TS),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("listed_at", TS, nullable=False),
        sa.Column("ack_touch_key", sa.String(200)),
        sa.Column("responded_at", TS),
    )



def downgrade() -> None:
    for t in ["feedback_sla", "complaint_spikes", "incident_customers", "incident_skus", "incident_steps", "incidents"]:
        op.drop_table(t)
