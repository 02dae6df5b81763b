"""Alert outbox (issue 5)

Revision ID: 0004_alerts
Revises: 0003_churn
"""
from alembic import op
import sqlalchemy as sa

revision = "0004_alerts"
down_revision = "0003_churn"
branch_labels = None
depends_on = None

TS = sa.DateTime()  # naive UTC everywhere


def upgrade() -> None:
    op.create_table(
        "alert_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(200), nullable=False),  # kind + subject + day
        sa.Column("kind", sa.String(60), nullable=False),  # flow_failed, validation, health_breach, drift, crisis_deadline, feedback_sla, digest ...
        sa.Column("channel", sa.String(40), nullable=False),  # slack / dingtalk / wecom
        sa.Column("severity", sa.String(12), nullable=False, server_default="info"),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),  # markdown, no personal data
        sa.Column("payload", sa.Text),  # JSON extra (links, mentions)
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),  # pending / sending / sent / failed
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.Column("claim", sa.String(40)),  # token of the deliverer holding the row while status = sending
        sa.Column("send_id", sa.Integer),  # alert_sends.id of the message that carried it (merged: shared)
        sa.UniqueConstraint("dedupe_key", "channel", name="uq_alert_dedupe"),
    )
    op.create_index("ix_alert_outbox_status", "alert_outbox", ["status", "next_attempt_at"])
    # One row per HTTP post that reached a channel: the rate limiter counts these
    # (across processes), and it tells how many alerts each message carried.
    op.create_table(
        "alert_sends",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("sent_at", TS, nullable=False),
        sa.Column("alerts", sa.Integer, nullable=False, server_default="1"),  # alerts carried; > 1: a merged message
        sa.Column("part", sa.Integer, nullable=False, server_default="1"),  # 1-based part of a message split for size
        sa.Column("outcome", sa.String(16), nullable=False),  # sent / refused / limited (every post that reached the channel counts)
    )
    op.create_index("ix_alert_sends_channel", "alert_sends", ["channel", "sent_at"])



def downgrade() -> None:
    op.drop_table("alert_sends")
    op.drop_table("alert_outbox")

