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
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),  # pending / sent / failed / merged
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", TS),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS),
        sa.UniqueConstraint("dedupe_key", "channel", name="uq_alert_dedupe"),
    )
    op.create_index("ix_alert_outbox_status", "alert_outbox", ["status", "next_attempt_at"])



def downgrade() -> None:
    op.drop_table("alert_outbox")

