"""Tags, order aggregates, stage history, clusters, health snapshots (issue 3)

Revision ID: 0002_tags
Revises: 0001_core
"""
from alembic import op
import sqlalchemy as sa

revision = "0002_tags"
down_revision = "0001_core"
branch_labels = None
depends_on = None

TS = sa.DateTime()  # naive UTC everywhere


def upgrade() -> None:
    # Current tags, one row per customer (members registered before the refresh's cutoff).
    # Only rows whose values changed are rewritten each night: ``as_of`` is the business day
    # of the refresh that last changed the row; the table as a whole is current as of
    # ``tag_state.as_of`` (name 'tags'). Days since the last order change every day for every
    # buyer, so they are not stored: as_of - local date of ``last_paid_at``.
    op.create_table(
        "tags",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False),  # prospect/new/active/loyal/silent/churned
        sa.Column("at_risk", sa.Boolean, nullable=False, server_default=sa.false()),  # churn-score overlay
        sa.Column("rfm_r", sa.SmallInteger), sa.Column("rfm_f", sa.SmallInteger), sa.Column("rfm_m", sa.SmallInteger),
        sa.Column("rfm_segment", sa.String(32)),  # champions, loyal, potential_loyalist, new, promising, ...
        sa.Column("value_tier", sa.String(8)),  # high/mid/low
        sa.Column("crisis_priority", sa.String(12)),  # core/potential/ordinary
        sa.Column("price_sensitive", sa.Boolean),
        sa.Column("favourite_category", sa.String(100)),
        sa.Column("preferred_channel", sa.String(40)),
        sa.Column("cluster_id", sa.Integer),
        sa.Column("ltv", sa.Float),
        sa.Column("paid_orders", sa.Integer),
        sa.Column("first_paid_at", TS), sa.Column("last_paid_at", TS),
        sa.Column("tag_hash", sa.BigInteger),  # hash of the computed values: rewrite only changed rows
        sa.Column("updated_at", TS),
    )
    op.create_index("ix_tags_stage", "tags", ["lifecycle_stage"])
    # Per-customer order aggregate maintained incrementally from the nightly delta, as of
    # ``tag_state.cutoff`` (name 'aggregates'): paid orders only (refunded and cancelled ones
    # are counted apart in ``returned_orders``), paid_at before the cutoff.
    op.create_table(
        "customer_aggregates",
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("first_paid_at", TS), sa.Column("second_paid_at", TS), sa.Column("last_paid_at", TS),
        sa.Column("paid_orders", sa.Integer), sa.Column("paid_amount", sa.Float),
        sa.Column("discounted_orders", sa.Integer), sa.Column("purchase_days", sa.Integer),
        sa.Column("weekend_orders", sa.Integer),
        sa.Column("window_orders", sa.Integer), sa.Column("window_amount", sa.Float),  # last loyal_window_days
        sa.Column("returned_orders", sa.Integer),  # refunded or cancelled
        sa.Column("favourite_category", sa.String(100)), sa.Column("favourite_category_qty", sa.Integer),
        sa.Column("items_qty", sa.Integer),
        sa.Column("preferred_channel", sa.String(40)), sa.Column("preferred_channel_orders", sa.Integer),
        sa.Column("updated_at", TS),
    )
    # The orders of one customer in time order, covering what the aggregate reads: the
    # incremental refresh and the full recompute read this index only, never the table.
    op.create_index(
        "ix_orders_customer_paid", "orders",
        ["customer_id", "paid_at", "status", "amount", "discount_amount", "channel", "order_id"],
    )
    # The nightly delta (customers with orders changed since the watermark) and the items
    # of a customer's paid orders (favourite category), read from indexes only.
    op.create_index("ix_orders_updated_customer", "orders", ["updated_at", "customer_id"])
    op.create_index("ix_order_items_order_category", "order_items", ["order_id", "category", "quantity"])
    # Where the incremental refreshes stand ('aggregates', 'tags').
    op.create_table(
        "tag_state",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("cutoff", TS),  # paid_at before this counts (end of as_of in the shop's timezone, UTC)
        sa.Column("orders_watermark", TS),  # max(orders.updated_at) already folded in
        sa.Column("full_as_of", sa.Date),  # last full recompute
        sa.Column("params", sa.Text),  # JSON: settings fingerprint, thresholds used (value tiers, RFM edges)
        sa.Column("updated_at", TS),
    )
    op.create_table(
        "stage_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("from_stage", sa.String(16)),  # NULL on first sight
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("changed_on", sa.Date, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.UniqueConstraint("customer_id", "changed_on", name="uq_stage_history_day"),
    )
    op.create_index("ix_stage_history_changed_on", "stage_history", ["changed_on", "to_stage"])
    op.create_table(
        "clusters",
        sa.Column("cluster_id", sa.Integer, primary_key=True),
        sa.Column("fitted_on", sa.Date, nullable=False),
        sa.Column("size", sa.Integer),
        sa.Column("centroid", sa.Text),  # JSON
        sa.Column("description_zh", sa.Text), sa.Column("description_en", sa.Text),
    )
    op.create_table(
        "health_snapshots",
        sa.Column("as_of", sa.Date, primary_key=True),
        sa.Column("metrics", sa.Text, nullable=False),  # JSON of every figure
        sa.Column("members", sa.Integer), sa.Column("active", sa.Integer),
        sa.Column("silent_share", sa.Float), sa.Column("complaint_rate", sa.Float),
        sa.Column("satisfaction", sa.Float), sa.Column("nps", sa.Float),
        sa.Column("repeat_rate", sa.Float), sa.Column("conversion", sa.Float), sa.Column("avg_ltv", sa.Float),
        sa.Column("dau", sa.Integer), sa.Column("mau", sa.Integer),
        sa.Column("created_at", TS),
    )
    op.create_table(
        "health_breaches",
        sa.Column("as_of", sa.Date, primary_key=True),
        sa.Column("metric", sa.String(40), primary_key=True),  # silent_share / complaint_rate / satisfaction / model_drift ...
        sa.Column("value", sa.Float), sa.Column("threshold", sa.Float),
        sa.Column("event", sa.String(80)),  # the Prefect event emitted
        sa.Column("emitted_at", TS),
        sa.Column("detail", sa.Text),
    )



def downgrade() -> None:
    op.drop_index("ix_order_items_order_category", table_name="order_items")
    op.drop_index("ix_orders_updated_customer", table_name="orders")
    op.drop_index("ix_orders_customer_paid", table_name="orders")
    for t in ["health_breaches", "health_snapshots", "clusters", "tag_state", "stage_history", "customer_aggregates", "tags"]:
        op.drop_table(t)

