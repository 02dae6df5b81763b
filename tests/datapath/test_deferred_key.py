"""A table rebuilt whole (the tags' full recompute) may be filled without its primary key on
PostgreSQL: the key is back afterwards, and a duplicate still fails the transaction and
leaves the table as it was (SQLite keeps its key throughout)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from userops.db import deferred_primary_key, read_frame


def test_the_key_is_rebuilt_and_still_refuses_duplicates(warehouse):
    with warehouse.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t_counts (customer_id VARCHAR(10), category VARCHAR(10), qty INTEGER, PRIMARY KEY (customer_id, category))")
    with warehouse.begin() as conn:
        with deferred_primary_key(conn, "t_counts"):
            conn.exec_driver_sql("INSERT INTO t_counts VALUES ('C1', 'gift', 1), ('C1', 'tools', 2)")
    with pytest.raises(sa.exc.IntegrityError):  # the key is back
        with warehouse.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t_counts VALUES ('C1', 'gift', 3)")
    with pytest.raises(sa.exc.IntegrityError):  # a duplicate inside the block fails the whole transaction
        with warehouse.begin() as conn:
            with deferred_primary_key(conn, "t_counts"):
                conn.exec_driver_sql("INSERT INTO t_counts VALUES ('C2', 'gift', 1), ('C2', 'gift', 4)")
    rows = read_frame(warehouse, "SELECT customer_id, category, qty FROM t_counts ORDER BY category")
    assert rows.values.tolist() == [["C1", "gift", 1], ["C1", "tools", 2]]
    if warehouse.dialect.name == "postgresql":
        with warehouse.connect() as conn:
            key = conn.exec_driver_sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass('t_counts') AND contype = 'p'").scalar()
        assert key == "PRIMARY KEY (customer_id, category)"
