"""PostgreSQL: every text column of the warehouse compares and sorts by character code
(``COLLATE "C"``), as SQLite's BINARY collation does.

Why: ids (customer, order, SKU), categories and channels are keys, not prose. In a
linguistic collation (``en_US.UTF-8``, ``C.UTF-8``, ICU) PostgreSQL compares two strings
through the locale library and cannot use abbreviated keys, so every sort and index build
on them costs about twice what a byte comparison does (a 5M-row (customer, category) key
built here: 7.6-9.0 s -> 4.2-4.7 s). The full tag recompute builds such keys for millions
of rows every week; the first import builds the order indexes. Ties and ``ORDER BY`` also
come out the same on both databases (``Banana`` before ``apple``), which SQLite already did.

Equality is unchanged (both collations are deterministic), so no stored value or key
changes. Only the column's collation changes: PostgreSQL rewrites no table, but rebuilds
every index on the altered columns and gathers their statistics again (on a warehouse of 10M
orders, once, about a minute). Only userops' own tables are altered (a schema may hold other
applications' tables). Tables created by later migrations call
``userops.db.byte_order_text`` for their own columns.
SQLite: nothing (BINARY is already its default).

Revision ID: 0011_byte_order_text
Revises: 0010_count_fillfactor
"""
from alembic import op

from userops.db import byte_order_text

revision = "0011_byte_order_text"
down_revision = "0010_count_fillfactor"
branch_labels = None
depends_on = None

TABLES = [  # every table of migrations 0001-0010
    "alert_outbox", "alert_sends", "audit_log", "campaign_runs", "churn_scores", "clusters",
    "complaint_spikes", "customer_aggregates", "customer_category_qty", "customer_channel_orders",
    "customers", "drift_checks", "events", "feedback", "feedback_sla", "health_breaches",
    "health_snapshots", "incident_customers", "incident_skus", "incident_steps", "incidents",
    "model_versions", "order_changes", "order_items", "orders", "pipeline_runs", "quarantine",
    "source_watermarks", "stage_history", "tag_frames", "tag_state", "tags", "touches",
]


def upgrade() -> None:
    byte_order_text(op.get_bind(), TABLES)


def downgrade() -> None:
    byte_order_text(op.get_bind(), TABLES, collation="default")
