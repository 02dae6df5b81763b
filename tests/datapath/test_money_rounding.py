"""Amounts are money with two decimals: validation rounds them half away from zero to cents
(tasks.validate.round_cents), so SQLite and PostgreSQL store the same. Before, SQLite kept
123.455 while PostgreSQL's NUMERIC(14,2) stored 123.46."""
from __future__ import annotations

from tasks.ingest import import_file
from userops.db import read_frame


def test_both_databases_store_the_same_cents(warehouse, tmp_path):
    c = tmp_path / "c.csv"
    c.write_text("customer_id,name\nC1,a\n", encoding="utf-8")
    import_file("customers", c, engine=warehouse)
    o = tmp_path / "o.csv"
    o.write_text(
        "order_id,customer_id,paid_at,amount,discount_amount,status\n"
        "O1,C1,2026-01-01 10:00,123.455,0.005,paid\n"
        "O2,C1,2026-01-01 10:00,0.125,0,paid\n"
        "O3,C1,2026-01-01 10:00,0.005,1.005,paid\n"
        "O4,C1,2026-01-01 10:00,1.999,2.675,paid\n",
        encoding="utf-8",
    )
    res = import_file("orders", o, engine=warehouse)
    assert res.loaded == 4
    got = read_frame(warehouse, "SELECT order_id, CAST(amount AS FLOAT) AS a, CAST(discount_amount AS FLOAT) AS d FROM orders ORDER BY order_id")
    assert got["a"].tolist() == [123.46, 0.13, 0.01, 2.0]
    assert got["d"].tolist() == [0.01, 0.0, 1.01, 2.68]
    # the text the database holds, not only the float read back
    txt = read_frame(warehouse, "SELECT CAST(amount AS TEXT) AS t FROM orders ORDER BY order_id")["t"]
    assert [round(float(x), 6) for x in txt] == [123.46, 0.13, 0.01, 2.0]
