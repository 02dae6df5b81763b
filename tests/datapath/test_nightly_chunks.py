"""A night's table batch streamed chunk by chunk (``tasks.ingest.ingest_table``): small pages
and chunks of ~100 rows, so the 300-member sample source makes many chunks per table."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.extract import SourceError, SqlSource
from tasks.ingest import SOURCE_TABLES, ingest_table
from tasks.load import get_watermark
from tasks.validate import BatchRejected
from userops.db import read_frame
from userops.sample.generator import advance_day

KEYS = {"customers": "customer_id", "orders": "order_id", "order_items": "order_id, sku", "feedback": "feedback_id", "events": "event_id"}


@pytest.fixture
def small_pages(sample_source, monkeypatch):
    """Pages of 40 rows: a chunk of 100 rows is three pages."""
    from userops.settings import reset_settings

    for svc in ("CRM", "ORDERS"):
        monkeypatch.setenv(f"USEROPS_{svc}__PAGE_SIZE", "40")
        monkeypatch.setenv(f"USEROPS_{svc}__MAX_RETRIES", "1")
    reset_settings()
    return sample_source


def ingest(engine, table, run_id="run-chunks", chunk_rows=100, **kw):
    timings: dict = {}
    res = ingest_table(table, run_id, engine=engine, chunk_rows=chunk_rows, timings=timings, **kw)
    return res, timings


def count(engine, table) -> int:
    return int(read_frame(engine, f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])


def snapshot(engine) -> dict:
    out = {t: read_frame(engine, f"SELECT * FROM {t} ORDER BY {k}").astype(str).to_dict("records") for t, k in KEYS.items()}
    out["quarantine"] = read_frame(engine, "SELECT source_table, source_id, rule, record FROM quarantine ORDER BY source_table, source_id, rule").to_dict("records")
    out["watermarks"] = read_frame(engine, "SELECT source, watermark FROM source_watermarks ORDER BY source").astype(str).to_dict("records")
    out["indexes"] = {t: sorted(ix["name"] for ix in sa.inspect(engine).get_indexes(t)) for t in KEYS}
    return out


def with_orders(data, orders: pd.DataFrame):
    return dataclasses.replace(data, orders=orders.reset_index(drop=True))


def by_update(orders: pd.DataFrame) -> pd.DataFrame:
    """The orders in the order the source serves them (updated_at, order_id)."""
    return orders.sort_values(["updated_at", "order_id"], kind="stable").reset_index(drop=True)


@pytest.mark.parametrize("validate_in", ["thread", "process"])
def test_multi_chunk_batch_loads_the_same_as_one_chunk(warehouse, small_pages, sample_data, validate_in):
    chunks = {}
    # in a process: the two tables whose checks reach other tables and earlier chunks (their
    # references read by the child's own connection, keys repeated across chunks); a process
    # start costs seconds, and every table goes through the same code
    in_process = {"orders", "order_items"} if validate_in == "process" else set()
    for table in SOURCE_TABLES:
        res, tm = ingest(warehouse, table, validate_in="process" if table in in_process else "thread")
        assert tm["validated_in"] == ("process" if table in in_process else "thread")
        chunks[table] = tm["chunks"]
        assert res.read == res.loaded == len(getattr(sample_data, table)), table
        assert {"extract_s", "validate_s", "load_s", "wall_s"} <= set(tm)
    assert chunks["orders"] >= 15 and chunks["order_items"] >= 20
    chunked = snapshot(warehouse)
    with warehouse.begin() as conn:
        for t in [*reversed(SOURCE_TABLES), "quarantine", "source_watermarks"]:
            conn.exec_driver_sql(f"DELETE FROM {t}")
    for table in SOURCE_TABLES:
        res, tm = ingest(warehouse, table, chunk_rows=10**9, validate_in="auto")  # one chunk: no process
        assert tm["chunks"] == 1
    assert snapshot(warehouse) == chunked
    assert get_watermark(warehouse, "orders.orders") == sample_data.orders["updated_at"].max().to_pydatetime()


@pytest.mark.parametrize("validate_in", ["thread", "process"])
def test_source_failing_after_some_chunks_loads_nothing(warehouse, small_pages, sample_data, validate_in):
    ingest(warehouse, "customers")
    small_pages.faults["fail_after"] = 20  # 20 pages of orders (800 rows, 8 chunks) then HTTP 500 for good
    with pytest.raises(SourceError, match="HTTP 500"):
        _, tm = ingest(warehouse, "orders", validate_in=validate_in)
    assert count(warehouse, "orders") == 0
    assert get_watermark(warehouse, "orders.orders") is None


def test_an_incremental_night_failing_after_some_chunks_keeps_the_previous_night(warehouse, small_pages, sample_data):
    """The rollback is the loader's, in this process, wherever the chunks were validated (the
    child's error coming back is the test above)."""
    ingest(warehouse, "customers")
    first, _ = ingest(warehouse, "orders")
    before = snapshot(warehouse)
    # an incremental night whose source fails mid-way keeps the previous night's rows and watermark
    nxt = advance_day(sample_data, "2026-11-20", change_share=0.5)
    small_pages.set_data(nxt)
    small_pages.faults["fail_after"] = 4
    timings: dict = {}
    with pytest.raises(SourceError, match="HTTP 500"):
        ingest_table("orders", "run-2", engine=warehouse, chunk_rows=100, timings=timings)
    assert timings["chunks"] >= 1  # chunks were loaded into the transaction before the failure
    assert snapshot(warehouse) == before
    assert get_watermark(warehouse, "orders.orders") == first.watermark


def test_bad_share_is_judged_over_the_whole_batch(warehouse, small_pages, sample_data):
    ingest(warehouse, "customers")
    orders = by_update(sample_data.orders)
    # 30 bad rows in the first chunk: 30% of that chunk, 1.7% of the batch -> loaded
    orders.loc[:29, "amount"] = -5
    small_pages.set_data(with_orders(sample_data, orders))
    res, tm = ingest(warehouse, "orders")
    assert tm["chunks"] >= 15
    assert (res.read, res.loaded, res.quarantined) == (len(orders), len(orders) - 30, 30)
    assert count(warehouse, "orders") == len(orders) - 30
    assert get_watermark(warehouse, "orders.orders") == orders["updated_at"].max().to_pydatetime()


def test_batch_over_the_limit_in_its_last_chunks_loads_nothing(warehouse, small_pages, sample_data):
    ingest(warehouse, "customers")
    orders = by_update(sample_data.orders)
    n = len(orders)
    bad = list(range(n - 300, n, 3))  # 100 bad rows (5.7%), all in the last three chunks
    orders.loc[bad, "amount"] = -5
    small_pages.set_data(with_orders(sample_data, orders))
    with pytest.raises(BatchRejected) as err:
        ingest(warehouse, "orders", run_id="run-bad")
    msg = err.value.localized("en")
    assert f"orders: 100 of {n:,} rows (5.7%) failed validation, above the 5% limit" in msg and "amount_negative: 100" in msg
    assert f"orders：{n:,} 行中有 100 行（5.7%）未通过校验" in str(err.value)  # the operator's language, zh-CN by default
    assert err.value.counts["bad"] == 100 and err.value.counts["read"] == n
    assert count(warehouse, "orders") == 0  # the clean early chunks were rolled back too
    assert get_watermark(warehouse, "orders.orders") is None
    q = read_frame(warehouse, "SELECT rule, run_id, COUNT(*) AS n FROM quarantine WHERE source_table = 'orders' GROUP BY rule, run_id")
    assert q.to_dict("records") == [{"rule": "amount_negative", "run_id": "run-bad", "n": 100}]  # kept for the operator


def test_key_repeated_in_a_later_chunk_keeps_its_newest_version(warehouse, small_pages, sample_data):
    ingest(warehouse, "customers")
    orders = by_update(sample_data.orders)
    again = orders.iloc[[0]].assign(amount=999.0, updated_at=orders["updated_at"].max() + pd.Timedelta(seconds=1))
    small_pages.set_data(with_orders(sample_data, pd.concat([orders, again])))
    res, tm = ingest(warehouse, "orders")
    assert tm["chunks"] >= 15
    # the first version is superseded by the newer one of a later chunk: read = loaded + quarantined + superseded
    assert (res.read, res.loaded, res.quarantined, res.superseded) == (len(orders) + 1, len(orders), 0, 1)
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM quarantine WHERE source_table = 'orders'")["n"].iloc[0] == 0
    kept = read_frame(warehouse, "SELECT CAST(amount AS FLOAT) AS amount FROM orders WHERE order_id = :o", {"o": orders["order_id"].iloc[0]})
    assert kept["amount"].tolist() == [999.0]  # the newest one wins
    # the batch's watermark is the repeated row's time: the maximum over the whole batch
    assert get_watermark(warehouse, "orders.orders") == again["updated_at"].iloc[0].to_pydatetime()


def test_auto_validates_a_big_full_load_in_a_process(warehouse, small_pages, sample_data, monkeypatch):
    import tasks.ingest as ingest_mod

    assert ingest_mod.PROCESS_VALIDATION_ROWS is None  # off by default: threads
    _, tm = ingest(warehouse, "customers")
    assert tm["validated_in"] == "thread"
    monkeypatch.setattr(ingest_mod, "PROCESS_VALIDATION_ROWS", 1000)  # the source says 300 customers, 1762 orders
    res, tm = ingest(warehouse, "orders")
    assert tm["validated_in"] == "process" and res.loaded == len(sample_data.orders) and tm["chunks"] >= 15
    nxt = advance_day(sample_data, "2026-11-20", change_share=0.9)
    small_pages.set_data(nxt)
    _, tm = ingest(warehouse, "orders")  # an incremental night: no size request, threads
    assert tm["validated_in"] == "thread"


def test_empty_first_extract_is_rejected(warehouse, small_pages, sample_data):
    small_pages.set_data(dataclasses.replace(sample_data, customers=sample_data.customers.iloc[0:0]))
    with pytest.raises(BatchRejected, match="customers："):
        ingest(warehouse, "customers")
    assert count(warehouse, "customers") == 0 and get_watermark(warehouse, "crm.customers") is None


def test_sql_source_chunks_are_the_query_in_pieces(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    eng = sa.create_engine(url)
    pd.DataFrame({"customer_id": [f"C{i:03d}" for i in range(250)], "city": "上海"}).to_sql("customers", eng, index=False)
    eng.dispose()
    src = SqlSource(url, "SELECT * FROM customers ORDER BY customer_id")
    parts = list(src.chunks(rows=100))
    assert [len(p) for p in parts] == [100, 100, 50]
    pd.testing.assert_frame_equal(pd.concat(parts, ignore_index=True), src.fetch())
    empty = list(SqlSource(url, "SELECT * FROM customers WHERE 1 = 0").chunks(rows=100))
    assert len(empty) == 1 and empty[0].empty and list(empty[0].columns) == ["customer_id", "city"]
