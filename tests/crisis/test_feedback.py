"""The 24-hour feedback promise (listed, alerted once, acknowledged once) and the quality trace."""
from __future__ import annotations

import json
from datetime import timedelta


from tasks.crisis.feedback import feedback_sla_check, quality_trace_check
from tests.crisis.conftest import NOW, add_customers, add_feedback, add_orders, add_tags
from userops.db import read_frame


def test_overdue_feedback_listed_alerted_and_acknowledged_once(warehouse, provider, pinned_now):
    with warehouse.begin() as conn:
        add_customers(conn, ["C1", "C2", "C3", "C4"], names=["王芳", "李雷", None, "赵四"])
        late = add_feedback(conn, "SKU-A", [NOW - timedelta(hours=30)], customer_id="C1")
        add_feedback(conn, "SKU-A", [NOW - timedelta(hours=30)], customer_id="C2", first_response_at=NOW - timedelta(hours=29))
        soon = add_feedback(conn, None, [NOW - timedelta(hours=10)], kind="suggestion", customer_id="C3")
        anon = add_feedback(conn, "SKU-B", [NOW - timedelta(hours=25)], customer_id=None)
        resolved = add_feedback(conn, "SKU-B", [NOW - timedelta(hours=40)], customer_id="C4")
        conn.exec_driver_sql(f"UPDATE feedback SET resolved_at = created_at WHERE feedback_id = '{resolved[0]}'")

    out = feedback_sla_check(warehouse, NOW)
    assert sorted(out["overdue_ids"]) == sorted(late + anon)
    assert out["newly_listed"] == 2 and out["acknowledged"] == 1  # the anonymous one cannot be answered
    alerts = read_frame(warehouse, "SELECT kind, title, body, payload FROM alert_outbox WHERE kind = 'feedback_sla'")
    assert len(alerts) == 1
    assert set(json.loads(alerts["payload"].iloc[0])["feedback_ids"]) == set(late + anon)
    assert "王芳" not in alerts["body"].iloc[0] and "1380000" not in alerts["body"].iloc[0]
    assert len(provider.delivered) == 1
    msg = next(iter(provider.delivered.values()))
    assert msg["text"].startswith("王芳，您好") and "我们收到了，正在努力" in msg["text"]

    # an hour later: the same items are still overdue but nobody is alerted or messaged again
    out = feedback_sla_check(warehouse, pinned_now(NOW + timedelta(hours=1)))
    assert out["overdue"] == 2 and out["newly_listed"] == 0 and out["acknowledged"] == 0
    assert len(read_frame(warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'feedback_sla'")) == 1
    assert len(provider.delivered) == 1 and provider.stats()["requests"] == 1

    # the suggestion passes 24h at 05:00 shop time: alerted now, acknowledged after the quiet hours
    out = feedback_sla_check(warehouse, pinned_now(NOW + timedelta(hours=15)))
    assert out["newly_listed"] == 1 and out["ack_planned"] == 1 and out["acknowledged"] == 0  # planned, not sent yet
    assert out["ack_waiting"] == 1 and out["ack_waiting_for_channel"] == 0
    assert len(read_frame(warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'feedback_sla'")) == 2
    assert len(provider.delivered) == 1
    out = feedback_sla_check(warehouse, pinned_now(NOW + timedelta(hours=19)))  # 09:00 shop time
    assert out["newly_listed"] == 0 and out["send"]["sent"] == 1
    texts = sorted(p["text"] for p in provider.delivered.values())
    assert any(t.startswith("尊敬的会员，您好") for t in texts), texts
    listed = read_frame(warehouse, "SELECT feedback_id, ack_touch_key FROM feedback_sla ORDER BY feedback_id")
    assert sorted(listed["feedback_id"]) == sorted(late + anon + soon)
    touches = read_frame(warehouse, "SELECT touch_key, status, is_marketing FROM touches")
    assert set(touches["status"]) == {"sent"} and not touches["is_marketing"].astype(bool).any()


def test_acknowledgement_can_be_switched_off(warehouse, monkeypatch, pinned_now):
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_HEALTH__FEEDBACK_ACK", "false")
    monkeypatch.setenv("USEROPS_HEALTH__FEEDBACK_SLA_HOURS", "48")
    reset_settings()
    with warehouse.begin() as conn:
        add_customers(conn, ["C1"])
        add_feedback(conn, "SKU-A", [NOW - timedelta(hours=30)], customer_id="C1")
        add_feedback(conn, "SKU-A", [NOW - timedelta(hours=50)], customer_id="C1")
    out = feedback_sla_check(warehouse, NOW)
    assert out["newly_listed"] == 1 and out["acknowledged"] == 0
    assert read_frame(warehouse, "SELECT 1 FROM touches").empty


def test_quality_trace_names_the_skus_driving_complaints(warehouse, pinned_now):
    """The rate is the health snapshot's complaint rate: complaints / active customers (a
    paid order in the last 60 days; refunds and older buyers are not active)."""
    with warehouse.begin() as conn:
        ids = [f"C{k}" for k in range(100)]
        add_customers(conn, ids + [f"OLD{k}" for k in range(30)] + ["REF"])
        add_orders(conn, [(f"O{k}", ids[k], NOW - timedelta(days=1 + k % 6), "paid", "SKU-X" if k < 10 else "SKU-Z", 1, 10.0, "杯")
                          for k in range(100)]
                   + [(f"OO{k}", f"OLD{k}", NOW - timedelta(days=61), "paid", "SKU-Z", 1, 10.0, "杯") for k in range(30)]
                   + [("OR", "REF", NOW - timedelta(days=1), "refunded", "SKU-X", 1, 10.0, "杯")])
        add_feedback(conn, "SKU-Y", [NOW - timedelta(days=2)] * 2)
        add_feedback(conn, "SKU-X", [NOW - timedelta(days=1, hours=h) for h in range(3)])
        add_feedback(conn, "SKU-X", [NOW - timedelta(days=7, hours=1)])  # outside the 7 days
    low = quality_trace_check(warehouse, NOW)
    assert (low["complaints"], low["active"], low["active_from"]) == (5, 100, "orders")
    assert low["rate"] == 0.05 and not low["alerted"]  # 5 / 100: at the threshold, not above
    with warehouse.begin() as conn:
        add_feedback(conn, "SKU-X", [NOW - timedelta(hours=h) for h in range(1, 4)])
    out = quality_trace_check(warehouse, NOW)
    assert out["alerted"] and out["rate"] == 0.08 and out["skus"] == ["SKU-X", "SKU-Y"]
    a = read_frame(warehouse, "SELECT title, body, severity, payload FROM alert_outbox WHERE kind = 'quality_trace'")
    assert len(a) == 1 and "质量溯源" in a["title"].iloc[0] and "8.0%" in a["title"].iloc[0]
    body = a["body"].iloc[0]
    assert "8 条投诉 / 100 位活跃会员" in body
    assert "- SKU-X：6 条投诉（75%），每单投诉 60.0%" in body  # 6 complaints on 10 paid orders of SKU-X
    assert "- SKU-Y：2 条投诉（25%）" in body and "order" not in body  # no English in the zh-CN alert
    assert json.loads(a["payload"].iloc[0])["active"] == 100
    assert not quality_trace_check(warehouse, NOW + timedelta(hours=1))["alerted"]  # once a day

    # once the nightly tags exist, their active customers (new, active, loyal) are the
    # denominator, as in the health snapshot
    with warehouse.begin() as conn:
        add_tags(conn, {f"C{k}": "ordinary" for k in range(100)})
        conn.exec_driver_sql("UPDATE tags SET lifecycle_stage = CASE WHEN customer_id < 'C3' THEN 'silent' ELSE lifecycle_stage END")
        conn.exec_driver_sql("UPDATE tags SET lifecycle_stage = 'loyal' WHERE customer_id IN ('C90', 'C91')")
    active = read_frame(warehouse, "SELECT COUNT(*) AS n FROM tags WHERE lifecycle_stage <> 'silent'")["n"].iloc[0]
    out = quality_trace_check(warehouse, NOW + timedelta(hours=2))
    assert (out["active"], out["active_from"]) == (active, "tags") and out["rate"] == round(8 / active, 4)
    assert 0 < active < 100
