"""Tags: on PostgreSQL the per-customer order aggregate and its per-(customer, category) /
per-(customer, channel) counts are UNLOGGED tables.

They hold derived state only: everything in them is computed again from ``orders`` and
``order_items`` by a full recompute. Logged, they wrote most of the write-ahead log of the
tags stage, and so of every standby and every WAL archive: at 1M members / 10M orders a
full recompute wrote 1,345 MB of WAL (510 MB unlogged: the tags and stage history, which
stay logged) and a night 1.0-1.1 GB (98 MB). Measured on the same warehouse, alternated:
the full recompute 61.5-64.2 -> 59.3-62.2 s, a night's refresh 24.3-25.6 -> 21.7-23.0 s.

What it costs: PostgreSQL empties unlogged tables after a crash (and a promoted standby
has them empty); a hot standby cannot read them. The tags stage notices an emptied aggregate
(``tasks.tags.aggregates_lost``) and recomputes it whole that night; churn scoring reads
the orders instead until then. ``tags``, ``stage_history`` and everything an operator or a
campaign reads stay logged. A table published for logical replication stays logged too
(PostgreSQL refuses to unlog it).

Revision ID: 0012_unlogged_aggregates
Revises: 0011_byte_order_text
"""
import logging

from alembic import op

revision = "0012_unlogged_aggregates"
down_revision = "0011_byte_order_text"
branch_labels = None
depends_on = None

TABLES = ("customer_aggregates", "customer_category_qty", "customer_channel_orders")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    # a table published for logical replication (e.g. a publication FOR ALL TABLES feeding a
    # data lake) cannot be unlogged: it stays as it is, and only loses the speed-up
    published = set(bind.exec_driver_sql("SELECT tablename FROM pg_publication_tables WHERE schemaname = current_schema()").scalars())
    for table in TABLES:
        if table in published:
            logging.getLogger("userops.db").warning("%s stays crash-logged: it is published for logical replication", table)
            continue
        op.execute(f"ALTER TABLE {table} SET UNLOGGED")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"ALTER TABLE {table} SET LOGGED")
