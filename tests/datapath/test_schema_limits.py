"""Values the warehouse column cannot hold are quarantined by rules derived from the schema
(a text longer than its VARCHAR, an amount beyond NUMERIC(14,2), inf), the same on SQLite
and PostgreSQL: the row names its id and rule, the rest loads. PostgreSQL used to fail the
whole table ('value too long for type character varying(200)') where SQLite stored it."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.ingest import import_file
from tasks.validate import COLUMN_TYPES, load_suites, validate_frame
from userops.db import read_frame


@pytest.fixture(scope="module")
def suites():
    return load_suites()


def _rules(suites, table):
    return {e.meta["rule"]: e for e in suites[table].expectations}


def test_every_sized_column_of_the_schema_has_its_rule(warehouse, suites):
    insp = sa.inspect(warehouse)
    for table in COLUMN_TYPES:
        rules = _rules(suites, table)
        for col in insp.get_columns(table):
            typ = col["type"]
            if isinstance(typ, sa.String) and getattr(typ, "length", None):
                e = rules.get(f"{col['name']}_too_long")
                assert e is not None and e.configuration.kwargs["max_value"] == typ.length, (table, col["name"], typ)
            elif isinstance(typ, sa.Numeric) and not isinstance(typ, (sa.Integer, sa.Float)):
                e = rules.get(f"{col['name']}_too_large")
                top = 10 ** (typ.precision - typ.scale) - 10 ** -typ.scale
                assert e is not None and e.configuration.kwargs["max_value"] == pytest.approx(top), (table, col["name"])


def test_too_long_too_large_and_infinite_values_are_quarantined(suites):
    df = pd.DataFrame({
        "order_id": ["O1", "O2", "O3", "O4", "O5"],
        "customer_id": ["C1"] * 5,
        "paid_at": ["2026-01-05T10:00:00"] * 5,
        "amount": ["10", "inf", "1e20", "-Infinity", "999999999999.99"],
        "status": ["paid"] * 5,
        "store": ["s", "s", "s", "s", "店" * 101],
    })
    o = validate_frame("orders", df, suites, known_refs={"customer_id": {"C1"}}, language="en")
    got = dict(zip(o.bad["source_id"], o.bad["rule"]))
    assert got == {"O2": "amount_unparseable", "O3": "amount_too_large", "O4": "amount_unparseable", "O5": "store_too_long"}
    assert o.good["order_id"].tolist() == ["O1"]
    reason = o.bad.loc[o.bad["rule"] == "store_too_long", "reason"].iloc[0]
    assert "100 characters" in reason
    zh = validate_frame("orders", df, suites, known_refs={"customer_id": {"C1"}}, language="zh-CN")
    assert "超过 999,999,999,999.99" in zh.bad.loc[zh.bad["rule"] == "amount_too_large", "reason"].iloc[0]


def test_import_with_an_over_long_name_and_id_loads_the_rest_on_both_databases(warehouse, tmp_path):
    long_id = "K" * 250
    text = ("customer_id,name,email\n"
            f"C1,{'名' * 300},a@example.com\n"
            "C2,ok,b@example.com\n"
            f"{long_id},x,c@example.com\n"
            "C4,bad,not-an-email\n")
    p = tmp_path / "c.csv"
    p.write_text(text, encoding="utf-8")
    res = import_file("customers", p, engine=warehouse)
    assert (res.read, res.loaded, res.quarantined) == (4, 1, 3)
    q = read_frame(warehouse, "SELECT source_id, rule, record FROM quarantine ORDER BY rule")
    assert q["rule"].tolist() == ["customer_id_too_long", "email_malformed", "name_too_long"]
    cut = q.loc[q["rule"] == "customer_id_too_long"]
    assert cut["source_id"].iloc[0] == long_id[:199] + "…"
    assert json.loads(cut["record"].iloc[0])["customer_id"] == long_id  # the record itself is kept whole
    assert read_frame(warehouse, "SELECT customer_id FROM customers")["customer_id"].tolist() == ["C2"]


def test_a_refused_write_names_the_table_and_what_to_check(pg_warehouse, monkeypatch):
    from userops.db import WarehouseWriteError, bulk_upsert
    from userops.settings import reset_settings

    rows = pd.DataFrame({"customer_id": ["C1"], "name": ["x" * 300]})
    for lang, want in (("zh-CN", ["写入数据仓库的 customers 表失败", "22001", "expectations/customers.json"]),
                       ("en", ["writing the customers table of the warehouse failed", "22001", "expectations/customers.json"])):
        monkeypatch.setenv("USEROPS_LANGUAGE", lang)
        reset_settings()
        with pytest.raises(WarehouseWriteError) as err:
            with pg_warehouse.begin() as conn:
                bulk_upsert(conn, "customers", rows, ["customer_id"])
        for w in want:
            assert w in str(err.value), str(err.value)
