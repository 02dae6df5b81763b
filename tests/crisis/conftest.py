"""Fixture data for the crisis tests: customers, paid orders of SKUs, tags, complaints."""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from userops.db import bulk_upsert

NOW = datetime(2026, 11, 20, 6, 0, 0)  # 14:00 in Shanghai


def add_customers(conn, ids, names=None, phones=None):
    df = pd.DataFrame({
        "customer_id": list(ids),
        "name": names if names is not None else [f"客户{i}" for i in range(len(ids))],
        "phone": phones if phones is not None else [f"1380000{i:04d}" for i in range(len(ids))],
        "email": [f"c{i}@example.com" for i in range(len(ids))],
        "registered_at": pd.Timestamp("2025-01-01"),
        "marketing_consent": True,
        "timezone": "Asia/Shanghai",
        "updated_at": pd.Timestamp("2025-01-01"),
    })
    bulk_upsert(conn, "customers", df, ["customer_id"])


def add_orders(conn, rows):
    """rows: (order_id, customer_id, paid_at, status, sku, qty, unit_price, category)."""
    df = pd.DataFrame(rows, columns=["order_id", "customer_id", "paid_at", "status", "sku", "quantity", "unit_price", "category"])
    df["paid_at"] = pd.to_datetime(df["paid_at"]).astype("datetime64[us]")
    o = df.groupby("order_id", as_index=False).agg(customer_id=("customer_id", "first"), paid_at=("paid_at", "first"),
                                                   status=("status", "first"))
    o["amount"] = df.assign(v=df["quantity"] * df["unit_price"]).groupby("order_id")["v"].sum().values
    o["updated_at"] = o["paid_at"]
    bulk_upsert(conn, "orders", o, ["order_id"])
    bulk_upsert(conn, "order_items", df[["order_id", "sku", "quantity", "unit_price", "category"]], ["order_id", "sku"])


def add_tags(conn, priorities: dict):
    df = pd.DataFrame({"customer_id": list(priorities), "as_of": date(2026, 11, 19), "lifecycle_stage": "active",
                       "at_risk": False, "crisis_priority": list(priorities.values())})
    bulk_upsert(conn, "tags", df, ["customer_id"])


_fid = [0]


def add_feedback(conn, sku, times, kind="complaint", customer_id=None, first_response_at=None):
    ids = []
    rows = []
    for ts in times:
        _fid[0] += 1
        fid = f"F{_fid[0]:06d}"
        ids.append(fid)
        rows.append({"feedback_id": fid, "customer_id": customer_id, "kind": kind, "sku": sku,
                     "created_at": pd.Timestamp(ts), "first_response_at": first_response_at,
                     "updated_at": pd.Timestamp(ts), "text": "坏了"})
    df = pd.DataFrame(rows)
    df["created_at"] = df["created_at"].astype("datetime64[us]")
    df["updated_at"] = df["updated_at"].astype("datetime64[us]")
    df["first_response_at"] = pd.to_datetime(df["first_response_at"]).astype("datetime64[us]")
    bulk_upsert(conn, "feedback", df, ["feedback_id"])
    return ids


def shop(engine, customers: dict, sku="SKU-BAD", other_sku="SKU-OK", now=NOW):
    """customers: id -> priority (core/potential/ordinary/None). Each buys ``sku`` once
    (amount grows with the position) 5 days before ``now``; C-OTHER buys only other_sku."""
    ids = list(customers)
    with engine.begin() as conn:
        add_customers(conn, ids + ["C-OTHER", "C-OLD"])
        rows = []
        for k, cid in enumerate(ids):
            rows.append((f"O-{cid}", cid, now - timedelta(days=5, hours=k), "paid", sku, 1, 10.0 + k, "水杯"))
        rows.append(("O-OTHER", "C-OTHER", now - timedelta(days=2), "paid", other_sku, 1, 99.0, "毛巾"))
        rows.append(("O-OLD", "C-OLD", now - timedelta(days=45), "paid", sku, 1, 20.0, "水杯"))  # outside the look-back
        rows.append(("O-REF", "C-OTHER", now - timedelta(days=3), "refunded", sku, 1, 20.0, "水杯"))  # not paid
        add_orders(conn, rows)
        tagged = {c: p for c, p in customers.items() if p}
        if tagged:
            add_tags(conn, tagged)


@pytest.fixture
def pinned_now(monkeypatch):
    """USEROPS_NOW pinned to NOW; returns a setter to move the clock."""
    def set_now(ts: datetime):
        monkeypatch.setenv("USEROPS_NOW", ts.isoformat())
        return ts

    set_now(NOW)
    return set_now


@pytest.fixture
def provider(monkeypatch):
    """The local SMS/push provider (tests/fakes), settings pointing at it."""
    from tests.fakes.message_provider import FakeProvider
    from userops.settings import reset_settings

    p = FakeProvider().start()
    monkeypatch.setenv("USEROPS_SMS_WEBHOOK_URL", p.url)
    monkeypatch.setenv("USEROPS_PUSH_WEBHOOK_URL", p.url)
    reset_settings()
    yield p
    p.stop()
    reset_settings()


def open_incident(engine, skus=("SKU-BAD",), reason="批次漏水", now=NOW, flow_run_id=None):
    """Open an incident the way the flow does (plus its affected customers)."""
    from tasks.crisis.compensate import record_affected
    from tasks.crisis.incidents import open_or_join

    inc = open_or_join(list(skus), reason, "high", "manual", "tester", flow_run_id, engine=engine, now=now)
    with engine.begin() as conn:
        record_affected(conn, inc["incident_id"], now)
    return inc


def incident_record(monkeypatch, incident_id: str, lang: str) -> str:
    """``userops incident show``'s record section (操作记录 / Record) in ``lang``."""
    from typer.testing import CliRunner

    from userops.cli import app
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    try:
        res = CliRunner().invoke(app, ["incident", "show", incident_id])
    finally:
        monkeypatch.delenv("USEROPS_LANGUAGE")
        reset_settings()
    assert res.exit_code == 0, res.output
    return res.output.split("## 操作记录" if lang == "zh-CN" else "## Record", 1)[1]
