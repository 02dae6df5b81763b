"""Core warehouse: source tables, quarantine, audit log, watermarks, pipeline runs.

Revision ID: 0001_core
Revises:
"""
from alembic import op
import sqlalchemy as sa

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime()  # naive UTC everywhere
MONEY = sa.Numeric(14, 2)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200)),
        sa.Column("phone", sa.String(40)),
        sa.Column("email", sa.String(254)),
        sa.Column("registered_at", TS),
        sa.Column("city", sa.String(100)),
        sa.Column("member_level", sa.String(40)),
        sa.Column("marketing_consent", sa.Boolean),
        sa.Column("unsubscribed_at", TS),
        sa.Column("timezone", sa.String(64)),
        sa.Column("updated_at", TS),
    )
    op.create_index("ix_customers_updated_at", "customers", ["updated_at"])
    op.create_table(
        "orders",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("paid_at", TS),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount", MONEY),
        sa.Column("discount_amount", MONEY),
        sa.Column("store", sa.String(100)),
        sa.Column("channel", sa.String(40)),
        sa.Column("updated_at", TS),
    )
    op.create_index("ix_orders_customer_id", "orders", ["customer_id"])
    op.create_index("ix_orders_paid_at", "orders", ["paid_at"])
    op.create_index("ix_orders_updated_at", "orders", ["updated_at"])
    op.create_table(
        "order_items",
        sa.Column("order_id", sa.String(64), primary_key=True),
        sa.Column("sku", sa.String(64), primary_key=True),
        sa.Column("quantity", sa.Integer),
        sa.Column("unit_price", MONEY),
        sa.Column("category", sa.String(100)),
        sa.Column("updated_at", TS),
    )
    op.create_index("ix_order_items_sku", "order_items", ["sku"])
    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("kind", sa.String(16), nullable=False),  # complaint / suggestion / praise
        sa.Column("sku", sa.String(64)),
        sa.Column("created_at", TS),
        sa.Column("first_response_at", TS),
        sa.Column("resolved_at", TS),
        sa.Column("satisfaction", sa.Integer),  # 1..5
        sa.Column("nps", sa.Integer),  # 0..10
        sa.Column("text", sa.Text),
        sa.Column("updated_at", TS),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])
    op.create_index("ix_feedback_customer_id", "feedback", ["customer_id"])
    op.create_table(
        "events",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64)),
        sa.Column("kind", sa.String(40)),  # visit / login / click
        sa.Column("occurred_at", TS),
    )
    op.create_index("ix_events_occurred_at", "events", ["occurred_at"])
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_table", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(200)),  # the record's id as given (may be empty)
        sa.Column("record_hash", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(80), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("record", sa.Text, nullable=False),  # the record as received, JSON
        sa.Column("run_id", sa.String(64), nullable=False),  # the run that first saw it
        sa.Column("seen_at", TS, nullable=False),
        # naive times in the record are in this zone (a file import's shop time); NULL: UTC
        sa.Column("assume_tz", sa.String(64)),
        # the record no longer needs the operator: loaded once what it referred to arrived, or
        # a newer version of it is in the warehouse (tasks.quarantine.settle_quarantine)
        sa.Column("resolved_at", TS),
        sa.Column("resolved_run_id", sa.String(64)),
        sa.UniqueConstraint("source_table", "record_hash", "rule", name="uq_quarantine_record_rule"),
    )
    op.create_index("ix_quarantine_run", "quarantine", ["run_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(80), nullable=False),
        sa.Column("entity", sa.String(80), nullable=False),
        sa.Column("entity_id", sa.String(200)),
        sa.Column("detail", sa.Text),
    )
    op.create_table(
        "source_watermarks",
        sa.Column("source", sa.String(80), primary_key=True),  # e.g. crm.customers
        sa.Column("watermark", TS),
        sa.Column("run_id", sa.String(64)),
        sa.Column("updated_at", TS),
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("flow", sa.String(80), nullable=False),
        sa.Column("as_of", sa.Date),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stats", sa.Text),  # JSON: counts per stage
        sa.Column("error", sa.Text),
    )


def downgrade() -> None:
    for t in ["pipeline_runs", "source_watermarks", "audit_log", "quarantine", "events", "feedback", "order_items", "orders", "customers"]:
        op.drop_table(t)
