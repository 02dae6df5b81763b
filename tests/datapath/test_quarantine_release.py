"""A record quarantined only because what it refers to was missing (an order whose customer
was quarantined, that order's items, the customer's feedback and events) is loaded the night
its customer (order) arrives, even though its own ``updated_at`` at the source never moved
and the incremental extract does not read it again. Through the real path: the sample CRM
and order system on loopback, the nightly flow on a real Prefect server, both warehouses."""
from __future__ import annotations

import pandas as pd
import pytest

from flows.nightly import nightly
from userops.db import read_frame
from userops.sample.generator import SampleData

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.usefixtures("prefect_server")]

KEYS = {"customers": "customer_id", "orders": "order_id", "order_items": "order_id, sku", "feedback": "feedback_id", "events": "event_id"}
NIGHT_1, NIGHT_2 = pd.Timestamp("2026-11-20").date(), pd.Timestamp("2026-11-21").date()


@pytest.fixture
def data_stages(monkeypatch):
    """The nights run ingest and the stages whose tables these tests read (the quarantine
    report, the tags' per-customer aggregates); churn, campaigns, the digest are tested on
    their own (tests/datapath/test_nightly.py runs the whole night)."""
    from flows import stages

    monkeypatch.setattr(stages, "NIGHTLY_STAGES", [(n, f) for n, f in stages.NIGHTLY_STAGES if n in ("quarantine-report", "tags")])


def _pick_customer(data: SampleData) -> str:
    """A customer with a few paid orders (with items), feedback and events, small enough for
    every table's bad-row share to stay under the 5% limit."""
    o = data.orders
    paid = o[o["status"] == "paid"].groupby("customer_id").size()
    with_items = set(o.loc[o["order_id"].isin(data.order_items["order_id"]), "customer_id"])
    fb = data.feedback.groupby("customer_id").size()
    ev = data.events.groupby("customer_id").size()
    ok = [c for c in paid.index if 3 <= paid[c] <= 10 and c in with_items and 1 <= fb.get(c, 0) <= 2 and 1 <= ev.get(c, 0) <= 20]
    assert ok, "the sample has no suitable customer"
    return sorted(ok)[0]


def _with_customer(data: SampleData, cid: str, **values) -> SampleData:
    c = data.customers.copy()
    for k, v in values.items():
        c.loc[c["customer_id"] == cid, k] = v
    return SampleData(c, data.orders.copy(), data.order_items.copy(), data.feedback.copy(), data.events.copy())


def _count(engine, sql: str, **params) -> int:
    return int(read_frame(engine, sql, params).iloc[0, 0])


def _snapshot(engine) -> dict:
    out = {t: read_frame(engine, f"SELECT * FROM {t} ORDER BY {k}").astype(str).to_dict("records") for t, k in KEYS.items()}
    out["quarantine"] = read_frame(
        engine, "SELECT source_table, source_id, rule, record, run_id, resolved_at, resolved_run_id FROM quarantine ORDER BY id"
    ).astype(str).to_dict("records")
    out["watermarks"] = read_frame(engine, "SELECT source, watermark FROM source_watermarks ORDER BY source").astype(str).to_dict("records")
    out["aggregates"] = read_frame(engine, "SELECT * FROM customer_aggregates ORDER BY customer_id").astype(str).to_dict("records")
    return out


def test_orders_of_a_fixed_customer_leave_quarantine(warehouse, sample_source, sample_data, data_stages):
    cid = _pick_customer(sample_data)
    mine = sample_data.orders[sample_data.orders["customer_id"] == cid]
    items = sample_data.order_items[sample_data.order_items["order_id"].isin(mine["order_id"])]
    feedback = sample_data.feedback[sample_data.feedback["customer_id"] == cid]
    events = sample_data.events[sample_data.events["customer_id"] == cid]

    # night 1: the CRM holds a bad e-mail for the customer
    sample_source.set_data(_with_customer(sample_data, cid, email="not-an-email"))
    nightly(as_of=NIGHT_1)
    q = read_frame(warehouse, "SELECT source_table, source_id, rule, resolved_at FROM quarantine")
    assert q[q["source_table"] == "customers"]["rule"].tolist() == ["email_malformed"]
    by_table = q.groupby("source_table")["rule"].agg(set).to_dict()
    assert by_table["orders"] == {"customer_unknown"} and by_table["order_items"] == {"order_unknown"}
    assert by_table["feedback"] == {"customer_unknown"} and by_table["events"] == {"customer_unknown"}
    assert set(q.loc[q["source_table"] == "orders", "source_id"]) == set(mine["order_id"])
    assert _count(warehouse, "SELECT COUNT(*) FROM orders WHERE customer_id = :c", c=cid) == 0
    assert q["resolved_at"].isna().all()

    # the operator fixes the customer in the CRM: only the customer's updated_at moves
    fixed_at = pd.Timestamp("2026-11-20 09:00:00")
    sample_source.set_data(_with_customer(sample_data, cid, updated_at=fixed_at))
    stats = nightly(as_of=NIGHT_2)
    assert stats["ingest"]["orders"]["read"] < 20  # still an incremental night

    assert _count(warehouse, "SELECT COUNT(*) FROM customers WHERE customer_id = :c", c=cid) == 1
    got = read_frame(warehouse, "SELECT order_id, status, CAST(amount AS FLOAT) AS amount, paid_at FROM orders WHERE customer_id = :c ORDER BY order_id",
                     {"c": cid}, parse_dates=["paid_at"])
    want = mine.sort_values("order_id")[["order_id", "status", "amount", "paid_at"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    assert _count(warehouse, "SELECT COUNT(*) FROM order_items WHERE order_id IN (SELECT order_id FROM orders WHERE customer_id = :c)", c=cid) == len(items)
    assert _count(warehouse, "SELECT COUNT(*) FROM feedback WHERE customer_id = :c", c=cid) == len(feedback)
    assert _count(warehouse, "SELECT COUNT(*) FROM events WHERE customer_id = :c", c=cid) == len(events)
    # every quarantined row of theirs is marked released by night 2's run; the customer's
    # own bad version too (a newer version of it is in the warehouse)
    q = read_frame(warehouse, "SELECT source_table, rule, resolved_at, resolved_run_id FROM quarantine")
    assert q["resolved_at"].notna().all(), q[q["resolved_at"].isna()]
    assert q["resolved_run_id"].nunique() == 1
    # the tags count the released orders (the incremental refresh saw them as new)
    paid = read_frame(warehouse, "SELECT paid_orders FROM customer_aggregates WHERE customer_id = :c", {"c": cid})
    assert paid["paid_orders"].tolist() == [int((mine["status"] == "paid").sum())]

    # the operator's view: nothing open, the settled ones behind --all, `show` says by which run
    from typer.testing import CliRunner

    from userops.cli import app

    runner = CliRunner()
    listed = runner.invoke(app, ["quarantine", "list"])  # zh-CN, the default
    assert listed.exit_code == 0 and "隔离区为空" in listed.output
    assert f"另有 {len(q)} 条记录已处理" in listed.output and "--all" in listed.output
    everything = runner.invoke(app, ["quarantine", "list", "--all", "--table", "orders", "--limit", "100"]).output
    assert all(o in everything for o in mine["order_id"])
    first = read_frame(warehouse, "SELECT MIN(id) AS i, MIN(resolved_run_id) AS r FROM quarantine").iloc[0]
    shown = runner.invoke(app, ["quarantine", "show", str(int(first["i"]))]).output
    assert "处理运行" in shown and str(first["r"]) in shown

    # a third night (the same night again) changes nothing
    before = _snapshot(warehouse)
    nightly(as_of=NIGHT_2)
    assert _snapshot(warehouse) == before


def test_a_released_record_that_still_fails_stays_quarantined(warehouse, sample_source, sample_data, data_stages):
    """The customer arrives, but the order also has a bad amount: it stays quarantined, under
    the rule that still fails, and is not loaded; its items wait for it."""
    cid = _pick_customer(sample_data)
    mine = sample_data.orders[sample_data.orders["customer_id"] == cid].sort_values("order_id")
    bad_order = mine["order_id"].iloc[0]
    data = _with_customer(sample_data, cid, email="not-an-email")
    data.orders.loc[data.orders["order_id"] == bad_order, "amount"] = -5.0
    sample_source.set_data(data)
    nightly(as_of=NIGHT_1)
    rules = read_frame(warehouse, "SELECT rule FROM quarantine WHERE source_id = :o AND source_table = 'orders'", {"o": bad_order})
    assert set(rules["rule"]) == {"customer_unknown", "amount_negative"}

    data = _with_customer(sample_data, cid, updated_at=pd.Timestamp("2026-11-20 09:00:00"))
    data.orders.loc[data.orders["order_id"] == bad_order, "amount"] = -5.0
    sample_source.set_data(data)
    nightly(as_of=NIGHT_2)
    assert _count(warehouse, "SELECT COUNT(*) FROM orders WHERE customer_id = :c", c=cid) == len(mine) - 1
    assert _count(warehouse, "SELECT COUNT(*) FROM orders WHERE order_id = :o", o=bad_order) == 0
    still = read_frame(warehouse, "SELECT source_table, rule FROM quarantine WHERE resolved_at IS NULL ORDER BY source_table, rule")
    assert set(still.loc[still["source_table"] == "orders", "rule"]) == {"customer_unknown", "amount_negative"}
    assert set(still["source_table"]) == {"orders", "order_items"}  # the bad order's items wait for it
    before = _snapshot(warehouse)
    nightly(as_of=NIGHT_2)
    assert _snapshot(warehouse) == before


def test_a_newer_version_loaded_meanwhile_is_not_overwritten(warehouse, sample_source, sample_data, data_stages):
    """The order changed at the source too (refunded) while its customer was being fixed: the
    night loads the new version; the old quarantined one must not overwrite it."""
    cid = _pick_customer(sample_data)
    order = sample_data.orders[(sample_data.orders["customer_id"] == cid) & (sample_data.orders["status"] == "paid")]["order_id"].iloc[0]
    sample_source.set_data(_with_customer(sample_data, cid, email="not-an-email"))
    nightly(as_of=NIGHT_1)
    data = _with_customer(sample_data, cid, updated_at=pd.Timestamp("2026-11-20 09:00:00"))
    data.orders.loc[data.orders["order_id"] == order, ["status", "updated_at"]] = ["refunded", pd.Timestamp("2026-11-20 10:00:00")]
    sample_source.set_data(data)
    nightly(as_of=NIGHT_2)
    got = read_frame(warehouse, "SELECT status, updated_at FROM orders WHERE order_id = :o", {"o": order}, parse_dates=["updated_at"])
    assert got["status"].tolist() == ["refunded"]
    assert got["updated_at"].iloc[0] == pd.Timestamp("2026-11-20 10:00:00")
    assert _count(warehouse, "SELECT COUNT(*) FROM quarantine WHERE resolved_at IS NULL") == 0


def test_an_imported_order_is_released_in_the_zone_it_was_read_in(warehouse, tmp_path):
    """A file's naive times are shop time (Asia/Shanghai): an order quarantined from a file
    and released later is read in that zone again, not as UTC."""
    from tasks.ingest import import_file

    orders = tmp_path / "o.csv"
    orders.write_text("order_id,customer_id,paid_at,amount,status\nO1,C1,2025-06-01 12:00:00,199.00,paid\n", encoding="utf-8")
    customers = tmp_path / "c.csv"
    customers.write_text("customer_id,email\nC1,c1@example.com\n", encoding="utf-8")
    res = import_file("orders", orders)
    assert (res.loaded, res.quarantined) == (0, 1)
    import_file("customers", customers)
    empty = tmp_path / "o2.csv"
    empty.write_text("order_id,customer_id,paid_at,amount,status\nO2,C1,2025-06-02 12:00:00,5.00,paid\n", encoding="utf-8")
    res = import_file("orders", empty)  # the next orders batch (a file or a night) releases it
    assert res.released == 1
    got = read_frame(warehouse, "SELECT order_id, paid_at FROM orders ORDER BY order_id", parse_dates=["paid_at"])
    assert got["paid_at"].tolist() == [pd.Timestamp("2025-06-01 04:00:00"), pd.Timestamp("2025-06-02 04:00:00")]
    assert _count(warehouse, "SELECT COUNT(*) FROM quarantine WHERE resolved_at IS NULL") == 0


def test_settling_reads_only_what_can_settle(warehouse):
    """A record bad in itself (amount < 0) is superseded once the warehouse holds a newer
    version of it (fixed at the source and loaded); one never loaded stays open, and is not
    even read (the candidate query skips it: a standing quarantine costs nothing a night)."""
    import json

    from tasks.ingest import REFERENCES
    from tasks.quarantine import settle_quarantine
    from tasks.validate import load_suites
    from userops.db import bulk_upsert

    def order(oid, amount, stamp):
        return {"order_id": oid, "customer_id": "C1", "paid_at": "2026-10-01 10:00:00", "amount": amount, "status": "paid",
                "discount_amount": "0", "channel": "app", "updated_at": stamp}

    bad = [order("O-FIXED", "-5.00", "2026-10-01 10:00:00"), order("O-STANDING", "-7.00", "2026-10-01 10:00:00")]
    q = pd.DataFrame({"source_table": "orders", "source_id": ["O-FIXED", "O-STANDING"], "record_hash": ["h1", "h2"],
                      "rule": "amount_negative", "reason": "amount is negative", "record": [json.dumps(r) for r in bad],
                      "run_id": "night-1", "seen_at": pd.Timestamp("2026-10-01 12:00:00")})
    customers = pd.DataFrame({"customer_id": ["C1"], "registered_at": pd.Series([pd.Timestamp("2025-01-01")], dtype="datetime64[us]")})
    fixed = pd.DataFrame([order("O-FIXED", 5.0, "2026-10-02 09:00:00")]).assign(
        paid_at=pd.Timestamp("2026-10-01 10:00:00"), updated_at=pd.Timestamp("2026-10-02 09:00:00"), discount_amount=0.0)
    with warehouse.begin() as conn:
        bulk_upsert(conn, "quarantine", q, ["source_table", "record_hash", "rule"], on_conflict="nothing")
        bulk_upsert(conn, "customers", customers, ["customer_id"])
        bulk_upsert(conn, "orders", fixed.astype({"paid_at": "datetime64[us]", "updated_at": "datetime64[us]"}), ["order_id"])
        out = settle_quarantine(conn, "orders", "night-2", load_suites(), REFERENCES["orders"])
    assert out == {"released": 0, "superseded": 1, "still_quarantined": 0}
    left = read_frame(warehouse, "SELECT source_id, resolved_run_id FROM quarantine ORDER BY source_id")
    assert left["source_id"].tolist() == ["O-FIXED", "O-STANDING"]
    assert left["resolved_run_id"].iloc[0] == "night-2" and pd.isna(left["resolved_run_id"].iloc[1])
