"""A night's extract against a source whose records are not the sample's tidy strings: integer
ids with a null among them, stamps in the future, records edited while the extract runs,
no page totals, naive times, Chinese status values. Real HTTP over loopback (``source_stub``)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.extract import RestSource
from tasks.ingest import ingest_table
from tasks.load import get_watermark, set_watermark
from tests.datapath.source_stub import StubSource
from userops.db import read_frame
from userops.settings import reset_settings


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def customers(n: int, stamp: datetime, first: int = 1) -> list[dict]:
    return [{"customer_id": i, "name": f"n{i}", "registered_at": "2026-01-01T00:00:00Z", "updated_at": iso(stamp)} for i in range(first, first + n)]


def orders(n: int, stamp: datetime, first: int = 100, **kw) -> list[dict]:
    return [{"order_id": i, "customer_id": 1 + i % 10, "paid_at": "2026-11-01T10:00:00Z", "amount": 12.5, "status": "paid",
             "updated_at": iso(stamp), **kw} for i in range(first, first + n)]


@pytest.fixture
def stub(monkeypatch):
    """A stub CRM + order system with pages of 7 rows; settings point at it."""
    with StubSource({"/crm/customers": [], "/orders/orders": []}) as s:
        for svc in ("CRM", "ORDERS"):
            monkeypatch.setenv(f"USEROPS_{svc}__URL", s.url)
            monkeypatch.setenv(f"USEROPS_{svc}__PAGE_SIZE", "7")
            monkeypatch.setenv(f"USEROPS_{svc}__BACKOFF_SECONDS", "0.01")
        reset_settings()
        yield s
    reset_settings()


def ids(engine, table: str, col: str) -> list[str]:
    return sorted(read_frame(engine, f"SELECT {col} FROM {table}")[col].tolist())


def n_rows(engine, table: str) -> int:
    return int(read_frame(engine, f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])


# ------------------------------------------------------------------ 1. integer ids with a null
def test_integer_ids_with_a_null_stay_integers(warehouse, stub):
    day = datetime(2026, 11, 19, 10)
    stub.tables["/crm/customers"] = customers(10, day)
    bad = {**orders(1, day, first=999)[0], "order_id": None}
    no_customer = {**orders(1, day, first=200)[0], "customer_id": None}
    stub.tables["/orders/orders"] = orders(40, day) + [bad, no_customer]
    ingest_table("customers", "run-1", engine=warehouse)
    res = ingest_table("orders", "run-1", engine=warehouse)
    # a null among integer ids made the column float: '100.0', and no order's customer was known
    assert ids(warehouse, "customers", "customer_id") == sorted(str(i) for i in range(1, 11))
    assert ids(warehouse, "orders", "order_id") == sorted(str(i) for i in range(100, 140))
    assert (res.loaded, res.quarantined) == (40, 2)
    # the source fixes the bad record; the next night re-reads the same rows: still 40 orders
    stub.tables["/orders/orders"] = orders(40, day)
    ingest_table("orders", "run-2", engine=warehouse, full_refresh=True)
    assert n_rows(warehouse, "orders") == 40
    assert float(read_frame(warehouse, "SELECT CAST(SUM(amount) AS FLOAT) AS s FROM orders")["s"].iloc[0]) == 40 * 12.5


def test_integer_ids_with_a_null_from_a_crm_database(warehouse, tmp_path, monkeypatch):
    crm = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with crm.begin() as c:
        c.exec_driver_sql("CREATE TABLE members (id INTEGER, level INTEGER, changed TEXT)")
        c.exec_driver_sql("INSERT INTO members VALUES (1, 3, '2026-11-01 00:00:00'), (2, NULL, '2026-11-01 00:00:00'), (NULL, 1, '2026-11-01 00:00:00')")
    crm.dispose()
    monkeypatch.setenv("USEROPS_CRM_SQL__URL", f"sqlite:///{tmp_path / 'crm.db'}")
    monkeypatch.setenv("USEROPS_CRM_SQL__CUSTOMERS_QUERY", "SELECT id AS customer_id, level AS member_level, changed AS updated_at FROM members")
    monkeypatch.setenv("USEROPS_VALIDATION__MAX_BAD_SHARE", "0.5")
    reset_settings()
    res = ingest_table("customers", "run-sql", engine=warehouse)
    assert (res.loaded, res.quarantined) == (2, 1)
    assert ids(warehouse, "customers", "customer_id") == ["1", "2"]
