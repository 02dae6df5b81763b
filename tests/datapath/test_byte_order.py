"""Text compares and sorts by character code on both databases (migration 0011_byte_order_text):
SQLite's BINARY collation, PostgreSQL's "C" whatever the database's own collation."""
from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command

from userops.db import alembic_config, bulk_upsert, dispose_engines, get_engine, migrate

IDS = ["apple", "Banana", "b10", "b9", "Zoë", "zebra", "_x", "会员1", "Äpfel"]
BY_CODE = sorted(IDS)  # Python compares str by code point = UTF-8 byte order

_COLUMNS = """
SELECT c.relname AS tbl, a.attname AS col, coll.collname
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_collation coll ON coll.oid = a.attcollation
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped AND t.typcollation <> 0
"""


NOT_OURS = {"alembic_version", "other_app_notes"}


def _columns(engine, ours: bool = True) -> pd.DataFrame:
    with engine.connect() as conn:
        df = pd.DataFrame(conn.exec_driver_sql(_COLUMNS).fetchall(), columns=["tbl", "col", "collname"])
    return df[~df["tbl"].isin(NOT_OURS)] if ours else df[df["tbl"].isin(NOT_OURS)]


def _customers(engine, ids) -> None:
    with engine.begin() as conn:
        bulk_upsert(conn, "customers", pd.DataFrame({"customer_id": ids, "name": ids}), ["customer_id"])


def _ordered(engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT customer_id FROM customers ORDER BY customer_id")]


@pytest.mark.postgres
def test_every_text_column_of_the_warehouse_compares_by_character_code(pg_url):
    """Fails for a table a later migration adds without byte_order_text for its columns."""
    engine = get_engine(pg_url)
    migrate(engine)
    cols = _columns(engine)
    assert {"customers", "orders", "order_items", "tags", "customer_aggregates", "customer_category_qty"} <= set(cols["tbl"])
    assert len(cols) > 100
    offenders = cols[cols["collname"] != "C"]
    assert offenders.empty, f"text columns not in byte order: {offenders[['tbl', 'col', 'collname']].to_dict('records')}"


@pytest.mark.postgres
def test_ids_sort_the_same_on_both_databases_whatever_the_collation(pg_linguistic_url, tmp_path):
    """A database created with a linguistic collation (ICU en-US: 'apple' before 'Banana')
    sorts the warehouse's ids as SQLite does once migrated."""
    for url in (f"sqlite:///{tmp_path / 'w.db'}", pg_linguistic_url):
        engine = get_engine(url)
        migrate(engine)
        _customers(engine, IDS)
        assert _ordered(engine) == BY_CODE, url.split(":")[0]
    dispose_engines()


@pytest.mark.postgres
def test_upgrade_keeps_the_rows_and_keys_and_downgrade_restores_the_collation(pg_linguistic_url):
    engine = get_engine(pg_linguistic_url)
    migrate(engine, "0010_count_fillfactor")
    _customers(engine, IDS)
    assert _ordered(engine) != BY_CODE  # the linguistic order before
    assert set(_columns(engine)["collname"]) == {"default"}
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE customers")
        conn.exec_driver_sql("CREATE TABLE other_app_notes (note VARCHAR(20))")  # another application's table

    migrate(engine)
    assert set(_columns(engine)["collname"]) == {"C"}
    assert set(_columns(engine, ours=False)["collname"]) == {"default"}  # left as it was
    with engine.connect() as conn:  # the altered columns' statistics are gathered again
        stats = conn.exec_driver_sql("SELECT attname FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'customers'").scalars().all()
    assert {"customer_id", "name"} <= set(stats)
    assert _ordered(engine) == BY_CODE
    with engine.connect() as conn:  # the rebuilt key still finds and refuses
        assert conn.exec_driver_sql("SELECT name FROM customers WHERE customer_id = 'Zoë'").scalar() == "Zoë"
        with pytest.raises(sa.exc.IntegrityError):
            conn.exec_driver_sql("INSERT INTO customers (customer_id, name) VALUES ('Banana', 'again')")

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010_count_fillfactor")
    assert set(_columns(engine)["collname"]) == {"default"}
    assert sorted(_ordered(engine)) == BY_CODE  # every row still there
    dispose_engines()
