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


# ------------------------------------------------------------------ 2./3. the watermark
def test_a_future_stamp_is_quarantined_and_does_not_move_the_watermark(warehouse, stub):
    day = datetime(2026, 11, 19, 10)
    stub.tables["/crm/customers"] = customers(30, day) + customers(1, datetime(2031, 1, 1), first=31)
    res = ingest_table("customers", "run-1", engine=warehouse)
    assert res.quarantined == 1
    assert read_frame(warehouse, "SELECT rule FROM quarantine")["rule"].tolist() == ["updated_at_out_of_range"]
    assert get_watermark(warehouse, "crm.customers") == day
    # a watermark already pushed to 2031 (by the old code): a full refresh sets it to what it read
    with warehouse.begin() as conn:
        set_watermark(conn, "crm.customers", datetime(2031, 1, 1), "run-old")
    ingest_table("customers", "run-2", engine=warehouse, full_refresh=True)
    assert get_watermark(warehouse, "crm.customers") == day


def test_watermark_stays_behind_the_extract_start_and_the_next_extract_overlaps(warehouse, stub):
    now = datetime.utcnow().replace(microsecond=0)
    early = now - timedelta(hours=1)
    # one record stamped 8 minutes ahead (a fast clock, inside the 10-minute tolerance), one bad record
    bad = {**customers(1, now - timedelta(minutes=3), first=50)[0], "email": "not-an-email"}
    stub.tables["/crm/customers"] = customers(30, early) + customers(1, now + timedelta(minutes=8), first=31) + [bad]
    before = datetime.utcnow()
    res = ingest_table("customers", "run-1", engine=warehouse)
    assert (res.loaded, res.quarantined) == (31, 1)
    mark = get_watermark(warehouse, "crm.customers")
    assert mark <= before + timedelta(seconds=1)  # never the fast clock's now+8
    # a customer edited after the extract by a correct clock: read the next night
    stub.tables["/crm/customers"].append(customers(1, datetime.utcnow().replace(microsecond=0), first=32)[0])
    stub.queries.clear()
    res2 = ingest_table("customers", "run-2", engine=warehouse)
    assert "32" in ids(warehouse, "customers", "customer_id")
    # asked from the watermark minus the overlap (10 minutes)
    sent = pd.Timestamp(stub.queries[0]["updated_since"])
    sent = sent.tz_convert("UTC").tz_localize(None) if sent.tzinfo else sent
    assert sent == pd.Timestamp(mark) - pd.Timedelta(minutes=10)
    # the re-read bad record is kept once and not counted again (nor does it count against
    # the night's bad-row limit: 1 of 3 rows read would be above it)
    assert n_rows(warehouse, "quarantine") == 1
    assert (res2.read, res2.quarantined) == (2, 0) and n_rows(warehouse, "customers") == 32


# ------------------------------------------------------------------ 4. no page totals
@pytest.mark.parametrize("meta", ["has_more", "none"])
@pytest.mark.parametrize("style", ["page", "offset"])
def test_paging_without_totals_reads_every_page(meta, style):
    day = datetime(2026, 11, 19, 10)
    with StubSource({"/crm/customers": customers(12, day)}, meta=meta) as s:
        df = RestSource(s.url, pagination=style, page_size=5).fetch("/crm/customers")
    assert sorted(df["customer_id"]) == list(range(1, 13))


# ------------------------------------------------------------------ 5. naive times, updated_since
def test_updated_since_carries_its_offset():
    with StubSource({"/crm/customers": customers(3, datetime(2026, 11, 20))}) as s:
        RestSource(s.url).fetch("/crm/customers", updated_since=datetime(2026, 11, 19, 23, 59, 59))
    assert s.queries[0]["updated_since"] == "2026-11-19T23:59:59+00:00"


@pytest.mark.parametrize("zone, stored", [(None, "2026-11-20 08:00:00"), ("Asia/Shanghai", "2026-11-20 00:00:00")])
def test_naive_times_are_read_in_the_sources_zone(warehouse, stub, monkeypatch, zone, stored):
    if zone:
        monkeypatch.setenv("USEROPS_CRM__NAIVE_TIMEZONE", zone)
        reset_settings()
    stub.tables["/crm/customers"] = [{**c, "updated_at": "2026-11-20 08:00:00"} for c in customers(3, datetime(2026, 11, 20))]
    ingest_table("customers", "run-1", engine=warehouse)
    got = read_frame(warehouse, "SELECT updated_at FROM customers", parse_dates=["updated_at"])["updated_at"]
    assert set(got.dt.strftime("%Y-%m-%d %H:%M:%S")) == {stored}


def test_a_crm_database_in_shop_time(warehouse, tmp_path, monkeypatch):
    crm = sa.create_engine(f"sqlite:///{tmp_path / 'crm.db'}")
    with crm.begin() as c:
        c.exec_driver_sql("CREATE TABLE members (id TEXT, changed TEXT)")
        c.exec_driver_sql("INSERT INTO members VALUES ('M1', '2026-11-20 07:00:00'), ('M2', '2026-11-20 09:00:00')")
    crm.dispose()
    monkeypatch.setenv("USEROPS_CRM_SQL__URL", f"sqlite:///{tmp_path / 'crm.db'}")
    monkeypatch.setenv("USEROPS_CRM_SQL__CUSTOMERS_QUERY", "SELECT id AS customer_id, changed AS updated_at FROM members WHERE changed >= :updated_since")
    monkeypatch.setenv("USEROPS_CRM_SQL__NAIVE_TIMEZONE", "Asia/Shanghai")
    reset_settings()
    ingest_table("customers", "run-sql", engine=warehouse)
    got = read_frame(warehouse, "SELECT updated_at FROM customers ORDER BY customer_id", parse_dates=["updated_at"])["updated_at"]
    assert got.dt.strftime("%H:%M").tolist() == ["23:00", "01:00"]  # UTC
    # the UTC watermark is compared with the database's shop times in shop time: 00:30 UTC = 08:30 there
    from tasks.ingest import extract_chunks

    again = pd.concat(list(extract_chunks("customers", datetime(2026, 11, 20, 0, 30), 100)))
    assert again["customer_id"].tolist() == ["M2"]


# ------------------------------------------------------------------ 6. Chinese values
def test_chinese_status_from_a_rest_source(warehouse, stub):
    day = datetime(2026, 11, 19, 10)
    stub.tables["/crm/customers"] = customers(10, day)
    stub.tables["/orders/orders"] = orders(3, day, status="已支付") + orders(1, day, first=103, status="已退款")
    ingest_table("customers", "run-1", engine=warehouse)
    res = ingest_table("orders", "run-1", engine=warehouse)
    assert res.quarantined == 0
    got = read_frame(warehouse, "SELECT order_id, status FROM orders ORDER BY order_id")
    assert got["status"].tolist() == ["paid", "paid", "paid", "refunded"]
