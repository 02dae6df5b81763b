"""Prefect-UI audit of the crisis feature: the incident report leaves customers excluded at
the core review off the call list (and says how many were excluded); the statement draft
never quotes the internal reason and counts a spike's complainants; the hourly feedback
check says planned / sent / waiting for a channel, never "acknowledged" for a planned message."""
from __future__ import annotations

from datetime import timedelta

from tasks.crisis.clarify import draft_statement
from tasks.crisis.compensate import plan_compensation, release_core, send_apologies
from tasks.crisis.feedback import feedback_sla_check
from tasks.crisis.report import build_report, report_markdown
from tasks.crisis.spike import check_spikes, link_spikes
from tests.crisis.conftest import NOW, add_customers, add_feedback, open_incident, shop
from userops.db import read_frame


def test_report_leaves_customers_excluded_at_review_off_the_call_list(warehouse, provider, pinned_now):
    shop(warehouse, {"C1": "ordinary", "C2": "core", "C5": "core"})
    iid = open_incident(warehouse)["incident_id"]
    plan_compensation(iid, warehouse, now=NOW)
    send_apologies(iid, warehouse)
    release_core(iid, "lead-li", exclude=["C5"], engine=warehouse, now=NOW + timedelta(hours=1))
    send_apologies(iid, warehouse)
    rep = build_report(iid, warehouse, now=NOW + timedelta(hours=2))
    assert rep["call_list"] == ["C2"]  # C5 was excluded: no call
    assert rep["compensated"]["core"]["call_list"] == 1 and rep["compensated"]["core"]["excluded"] == 1
    assert rep["excluded"] == 1
    # refund exposure still counts what C5 bought (labelled as such)
    amount = float(read_frame(warehouse, "SELECT affected_amount FROM incident_customers WHERE customer_id = 'C5'")["affected_amount"].iloc[0])
    assert rep["cost"]["excluded_refund_exposure"] == round(amount, 2)
    for lang in ("zh-CN", "en"):
        md = report_markdown(rep, lang)
        calls = md.split("C2")[0]
        assert "C5" not in md.split("\n## ")[-1], md  # not in the call list section
        assert calls
    zh = report_markdown(rep, "zh-CN")
    assert "1 位客户经核心客户复核排除" in zh and "| 复核排除 |" in zh and f"（其中 ¥{amount:,.2f}）" in zh
    assert "| 核心 | 2 | 0 | 1 | 1 |" in zh  # affected, compensated (not refreshed), excluded, call list
    assert "1 customer(s) were excluded at the core review" in report_markdown(rep, "en")


def test_spike_statement_counts_the_complainants_and_never_quotes_the_reason(sqlite_warehouse, pinned_now):
    e = sqlite_warehouse
    shop(e, {"C1": "ordinary"})
    spike_at = NOW - timedelta(days=10)  # the spike was detected (a replayed night) long before the run opened it
    with e.begin() as conn:
        add_customers(conn, [f"K{k}" for k in range(12)])
        for k in range(12):
            add_feedback(conn, "SKU-BAD", [spike_at - timedelta(minutes=5 * k)], customer_id=f"K{k}")
    assert check_spikes(e, spike_at, emit=lambda **kw: object())["new_spikes"] == ["SKU-BAD"]
    reason = "complaint spike: 12 complaints in 2.0h"
    iid = open_incident(e, reason=reason)["incident_id"]
    with e.begin() as conn:
        link_spikes(conn, ["SKU-BAD"], iid)
    zh = draft_statement(iid, "zh-CN", engine=e)
    assert "12位用户" in zh and "0位" not in zh
    assert "complaint spike" not in zh and reason not in zh
    en = draft_statement(iid, "en", engine=e)
    assert "12 customers" in en and "complaint spike" not in en


def test_statement_without_complaints_does_not_say_zero_users(sqlite_warehouse, pinned_now):
    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse, reason="内部：仓库反馈一批杯盖漏水")["incident_id"]
    zh = draft_statement(iid, "zh-CN", engine=sqlite_warehouse)
    assert "0位" not in zh and "内部" not in zh and "水杯（SKU-BAD）可能存在质量问题" in zh
    en = draft_statement(iid, "en", engine=sqlite_warehouse)
    assert "0 customers" not in en and "reported to us" not in en


def test_feedback_acks_waiting_for_a_channel_are_not_acknowledged(warehouse, pinned_now, monkeypatch):
    from userops.settings import reset_settings

    for k in ("USEROPS_SMS_WEBHOOK_URL", "USEROPS_PUSH_WEBHOOK_URL", "USEROPS_SMTP_URL"):
        monkeypatch.delenv(k, raising=False)
    reset_settings()
    with warehouse.begin() as conn:
        add_customers(conn, ["C1", "C2"])
        add_feedback(conn, "SKU-A", [NOW - timedelta(hours=30)], customer_id="C1")
        add_feedback(conn, "SKU-A", [NOW - timedelta(hours=30)], customer_id="C2")
    out = feedback_sla_check(warehouse, NOW)
    assert out["newly_listed"] == 2
    assert out["acknowledged"] == 0  # nothing was sent: no provider (the old code said 2)
    assert out["ack_planned"] == 2
    assert out["ack_waiting_for_channel"] == 2
    from tasks.crisis.feedback import summary_line

    line = summary_line(out, "zh-CN")
    assert "已致意" not in line and "本次安排 2" in line and "已发送 0" in line and "等待发送渠道 2" in line
    assert "2 waiting for a channel" in summary_line(out, "en")
    body = read_frame(warehouse, "SELECT body FROM alert_outbox WHERE kind = 'feedback_sla'")["body"].iloc[0]
    assert "已向" not in body and "尚未发出" in body
    assert set(read_frame(warehouse, "SELECT status FROM touches")["status"]) == {"planned"}
