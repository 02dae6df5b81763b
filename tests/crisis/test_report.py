"""The closing report (timeline, compensated per tier, cost, complaint rate before/after),
closing (auto after the quiet period), and the CLI's list/show/close."""
from __future__ import annotations

import re
from datetime import timedelta

from typer.testing import CliRunner

from tasks.crisis.clarify import approve_statement, draft_statement
from tasks.crisis.compensate import plan_compensation, refresh_compensated, release_core, send_apologies
from tasks.crisis.control import confirm_manual_takedown
from tasks.crisis.incidents import get_incident
from tasks.crisis.report import auto_close, build_report, report_markdown
from tests.crisis.conftest import NOW, add_feedback, add_orders, open_incident, shop
from userops.db import read_frame

CUSTOMERS = {"C1": "ordinary", "C2": "core", "C3": "potential", "C4": "potential"}


def _handled(engine, pinned_now):
    shop(engine, CUSTOMERS)
    with engine.begin() as conn:
        add_feedback(conn, "SKU-BAD", [NOW - timedelta(hours=h) for h in range(1, 9)])  # 8 complaints before
        add_feedback(conn, "SKU-OK", [NOW - timedelta(days=3)])
        add_orders(conn, [(f"OX{k}", "C-OTHER", NOW - timedelta(days=1 + k % 6), "paid", "SKU-OK", 1, 5.0, "毛巾") for k in range(20)])
    iid = open_incident(engine)["incident_id"]
    confirm_manual_takedown(iid, "ops-wang", engine=engine, now=NOW + timedelta(minutes=90))
    draft_statement(iid, engine=engine)
    approve_statement(iid, None, "pr-zhao", engine=engine, now=NOW + timedelta(hours=5))  # an hour late
    plan_compensation(iid, engine, now=NOW + timedelta(hours=5))
    send_apologies(iid, engine)
    release_core(iid, "lead-li", engine=engine, now=NOW + timedelta(hours=6))
    send_apologies(iid, engine)
    pinned_now(NOW + timedelta(hours=6))
    refresh_compensated(iid, engine, now=NOW + timedelta(hours=6))
    with engine.begin() as conn:
        add_feedback(conn, "SKU-BAD", [NOW + timedelta(days=1)])  # 1 complaint after
    return iid


def test_closing_report(warehouse, provider, pinned_now):
    iid = _handled(warehouse, pinned_now)
    rep = build_report(iid, warehouse, now=NOW + timedelta(days=7))
    steps = {s["step"]: s for s in rep["steps"]}
    assert steps["control"]["done_by"] == "ops-wang" and steps["control"]["met_deadline"] is True
    assert steps["clarify"]["done_by"] == "pr-zhao" and steps["clarify"]["met_deadline"] is False
    assert steps["compensate"]["status"] == "done" and steps["compensate"]["met_deadline"] is True
    assert rep["compensated"]["core"] == {"customers": 1, "compensated": 1, "call_list": 1, "excluded": 0, "coupon_cost": 50.0,
                                          "refund_exposure": 11.0, "excluded_refund_exposure": 0.0}
    assert rep["excluded"] == 0
    assert rep["compensated"]["potential"]["customers"] == 2 and rep["compensated"]["potential"]["coupon_cost"] == 60.0
    assert rep["cost"]["coupons"] == 130.0  # 50 + 2 x 30 + 20
    assert rep["cost"]["refund_exposure"] == 10.0 + 11.0 + 12.0 + 13.0
    before, after = rep["complaint_rate"]["before"], rep["complaint_rate"]["after"]
    assert before["complaints"] == 9 and before["sku_complaints"] == 8 and before["paid_orders"] == 25 and before["rate"] == 0.36
    assert after["complaints"] == 1 and after["sku_complaints"] == 1
    assert rep["call_list"] == ["C2"]
    md = report_markdown(rep)
    assert "pr-zhao" in md and "否（+1小时0分）" in md and "C2" in md
    # the stored codes in words: no raw status, tier or empty-list text, no nan
    assert "已完成" in md and "| 核心 |" in md and "| 潜力 |" in md
    assert not re.search(r"\bnan\b|\[\]|\bdone\b|\bcore\b", md)
    assert not re.search(r"客户\d|1380000|@example", md)  # no names, phones, emails


def test_auto_close_after_quiet_period_and_cli(warehouse, provider, pinned_now):
    from userops.cli import app

    iid = _handled(warehouse, pinned_now)
    assert auto_close(warehouse, NOW + timedelta(days=6)) == []  # all done, but still within the quiet period
    runner = CliRunner()
    out = runner.invoke(app, ["incident", "list"]).output
    assert iid in out and "完成" in out and "事件编号" in out and "done" not in out
    # the severity in the operator's words, as `incident show` says it, and in line with the
    # header (columns padded by display width)
    row = next(x for x in out.splitlines() if iid in x)
    assert " 高 " in row and " high " not in row, row
    from rich.cells import cell_len

    head = next(x for x in out.splitlines() if "事件编号" in x)
    for word in ("级别", "开启（店铺时间）", "控制"):
        assert cell_len(head[: head.index(word)]) in {cell_len(row[: m.start()]) for m in re.finditer(r"(?<= )\S", row)}, (word, head, row)
    out = runner.invoke(app, ["incident", "show", iid]).output
    assert "ops-wang" in out and "pr-zhao" in out and "lead-li" in out and "声明已批准并发布" in out
    assert "## 操作记录" in out and "per_tier" not in out and "（澄清事实；已完成）" in out
    assert "1380000" not in out and "客户0" not in out
    assert auto_close(warehouse, NOW + timedelta(days=7, minutes=1)) == [iid]
    inc = get_incident(warehouse, iid)
    assert inc["status"] == "closed" and inc["closed_by"] == "userops:auto-close"
    assert read_frame(warehouse, "SELECT * FROM incident_skus").empty
    res = runner.invoke(app, ["incident", "close", iid])
    assert res.exit_code == 1  # already closed
    assert runner.invoke(app, ["incident", "show", "INC-NOPE"]).exit_code == 1


def test_open_incident_not_closed_while_a_step_is_open(warehouse):
    iid = open_incident(warehouse)["incident_id"]
    assert auto_close(warehouse, NOW + timedelta(days=30)) == []
    res = CliRunner().invoke(__import__("userops.cli", fromlist=["app"]).app, ["incident", "close", iid, "--by", "ops"],
                                input="y\n")  # Control and Clarify not done: it asks first
    assert res.exit_code == 0 and get_incident(warehouse, iid)["status"] == "closed"


def test_report_markdown_shows_a_missing_value_as_a_dash():
    """A report read back from the warehouse carries None, NaN or NaT for what nobody did
    yet: each is '-' in the report, never 'None', 'nan', 'NaT' or '<NA>'."""
    import numpy as np
    import pandas as pd

    step = {"deadline_at": NOW, "status": "pending", "done_at": None, "met_deadline": None, "reminders_sent": None}
    rep = {
        "incident_id": "INC-1", "skus": ["SKU-BAD"], "reason": None, "severity": np.nan, "source": "manual", "status": "open",
        "opened_at": NOW, "opened_by": pd.NA, "closed_at": None,
        "steps": [{**step, "step": "control", "done_by": None}, {**step, "step": "clarify", "done_by": float("nan")},
                  {**step, "step": "compensate", "done_by": pd.NaT, "status": pd.NA}],
        "compensated": {}, "cost": {"coupons": 0.0, "refund_exposure": 0.0},
        "complaint_rate": {"before": {"complaints": 0, "paid_orders": 0, "rate": None},
                           "after": {"complaints": 0, "paid_orders": 0, "rate": None}},
        "call_list": [],
    }
    md = report_markdown(rep, "en")
    assert not re.search(r"\bNone\b|\bnan\b|\bNaT\b|<NA>", md), md
    assert "- Severity: - · Source: opened by hand · Status: open" in md
    assert re.search(r"- Opened: \S+ \S+ \(-\)", md), md
    rows = [line for line in md.splitlines() if line.startswith(("| Control", "| Clarify", "| Compensate"))]
    assert len(rows) == 3 and all(line.split(" | ")[4] == "-" for line in rows), rows
    assert rows[2].split(" | ")[2] == "-"  # an unknown status too


def test_report_masks_contact_data_quoted_in_the_reason(warehouse):
    """The reason is the operator's free text and may quote the customer who complained; the
    incident artifact and `incident show` mask it as the crisis alerts do (and the incident row
    keeps it masked: it is masked at intake, before the statement draft uses it)."""
    from userops.cli import app

    reason = "顾客来电 13912345678 / wang.fang@example.net 反映杯盖漏水"
    iid = open_incident(warehouse, reason=reason)["incident_id"]
    md = report_markdown(build_report(iid, warehouse, now=NOW + timedelta(hours=1)))  # what the artifact publishes
    assert "杯盖漏水" in md and "139****78" in md and "w***@example.net" in md
    assert "13912345678" not in md and "wang.fang@" not in md
    shown = CliRunner().invoke(app, ["incident", "show", iid]).output
    assert "杯盖漏水" in shown and "13912345678" not in shown and "wang.fang@" not in shown
    assert get_incident(warehouse, iid)["reason"] == "顾客来电 139****78 / w***@example.net 反映杯盖漏水"
