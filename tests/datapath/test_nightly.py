"""The nightly flow end to end against the sample source, on a real Prefect server."""
from __future__ import annotations

import pandas as pd
import pytest

from flows.nightly import nightly
from tasks.load import get_watermark
from userops.db import read_frame
from userops.sample.generator import advance_day

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_server")]

SOURCE_TABLES = {
    "customers": "customer_id",
    "orders": "order_id",
    "order_items": "order_id, sku",
    "feedback": "feedback_id",
    "events": "event_id",
}


@pytest.fixture
def ingest_only(monkeypatch):
    """Nights of ingest alone, for the tests whose assertions are the source tables: the later
    stages are tested on their own, and the first two tests here run the whole night."""
    from flows import stages

    monkeypatch.setattr(stages, "NIGHTLY_STAGES", [])


def snapshot(engine) -> dict:
    out = {}
    for t, key in SOURCE_TABLES.items():
        out[t] = read_frame(engine, f"SELECT * FROM {t} ORDER BY {key}").astype(str).to_dict("records")
    out["quarantine"] = read_frame(engine, "SELECT source_table, source_id, rule, record FROM quarantine ORDER BY id").to_dict("records")
    out["watermarks"] = read_frame(engine, "SELECT source, watermark FROM source_watermarks ORDER BY source").astype(str).to_dict("records")
    return out


def count(engine, table):
    return int(read_frame(engine, f"SELECT COUNT(*) AS n FROM {table}")["n"].iloc[0])


def test_nightly_loads_every_source_row(warehouse, sample_source, sample_data):
    stats = nightly(as_of=pd.Timestamp("2026-11-20").date())
    for t in SOURCE_TABLES:
        assert count(warehouse, t) == len(getattr(sample_data, t)), t
        assert stats["ingest"][t]["loaded"] == len(getattr(sample_data, t))
    runs = read_frame(warehouse, "SELECT status FROM pipeline_runs WHERE flow = 'nightly'")
    assert runs["status"].tolist() == ["completed"]
    assert get_watermark(warehouse, "orders.orders") == sample_data.orders["updated_at"].max().to_pydatetime()


def test_running_the_same_night_twice_changes_nothing(warehouse, sample_source):
    nightly(as_of=pd.Timestamp("2026-11-20").date())
    first = snapshot(warehouse)
    stats = nightly(as_of=pd.Timestamp("2026-11-20").date())
    assert snapshot(warehouse) == first
    # the second night only re-read rows at the watermark, not everything
    assert stats["ingest"]["orders"]["read"] < 20


def test_incremental_night_picks_up_the_delta(warehouse, sample_source, sample_data, ingest_only):
    nightly(as_of=pd.Timestamp("2026-11-20").date())
    nxt = advance_day(sample_data, "2026-11-20", change_share=0.02)
    sample_source.set_data(nxt)
    stats = nightly(as_of=pd.Timestamp("2026-11-21").date())
    assert count(warehouse, "orders") == len(nxt.orders)
    assert count(warehouse, "customers") == len(nxt.customers)
    changed = (nxt.orders["updated_at"] >= pd.Timestamp("2026-11-20")).sum()
    assert changed <= stats["ingest"]["orders"]["read"] <= changed + 5
    refunded = read_frame(warehouse, "SELECT COUNT(*) AS n FROM orders WHERE status = 'refunded'")["n"].iloc[0]
    assert refunded == (nxt.orders["status"] == "refunded").sum()


def test_bad_batch_fails_loads_nothing_and_keeps_watermark(warehouse, sample_source, sample_data, ingest_only):
    sample_source.faults.update({"malformed": 60, "malformed_tables": ["orders"]})  # 12% > 5%
    with pytest.raises(Exception, match="orders：.*未通过校验"):  # zh-CN, the default
        nightly(as_of=pd.Timestamp("2026-11-20").date())
    assert count(warehouse, "customers") > 0  # the earlier, good batch is in
    assert count(warehouse, "orders") == 0  # nothing of the bad batch
    assert get_watermark(warehouse, "orders.orders") is None
    q = read_frame(warehouse, "SELECT rule, COUNT(*) AS n FROM quarantine WHERE source_table='orders' GROUP BY rule")
    assert q.set_index("rule")["n"].to_dict().get("amount_negative", 0) > 0  # kept for the operator
    run = read_frame(warehouse, "SELECT status, error FROM pipeline_runs")
    assert run["status"].tolist() == ["failed"] and "amount_negative" in run["error"].iloc[0]
    # the source is fixed; the re-run ends where one clean run would
    sample_source.faults.clear()
    nightly(as_of=pd.Timestamp("2026-11-20").date())
    assert count(warehouse, "orders") == len(sample_data.orders)


def test_source_errors_then_recovery(warehouse, sample_source, sample_data, ingest_only):
    sample_source.faults.update({"fail_next": 2, "rate_limit_next": 2, "retry_after": 0})
    nightly(as_of=pd.Timestamp("2026-11-20").date())
    assert count(warehouse, "orders") == len(sample_data.orders)
    assert sample_source.faults["fail_next"] == 0 and sample_source.faults["rate_limit_next"] == 0


def test_source_that_keeps_failing_mid_table_loads_nothing_of_it(warehouse, sample_source, sample_data, monkeypatch, ingest_only):
    monkeypatch.setenv("USEROPS_ORDERS__MAX_RETRIES", "2")
    from userops.settings import reset_settings

    reset_settings()
    n_customer_pages = -(-len(sample_data.customers) // 500) + 1  # customers + feedback pages
    sample_source.faults["fail_after"] = n_customer_pages + 2  # orders fail after 2 pages
    with pytest.raises(Exception, match="尝试 3 次后仍返回 HTTP 500"):
        nightly(as_of=pd.Timestamp("2026-11-20").date())
    assert count(warehouse, "orders") == 0
    assert get_watermark(warehouse, "orders.orders") is None
    sample_source.faults.clear()
    nightly(as_of=pd.Timestamp("2026-11-20").date())
    assert count(warehouse, "orders") == len(sample_data.orders)
