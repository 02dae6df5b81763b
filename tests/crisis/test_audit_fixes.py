"""The operator audit of the crisis compensation: core customers get nothing (SMS, push,
email, call list) before the human review approves them; an excluded core customer gets
nothing; the call script says only what holds when the call is listed; the Compensate step
only moves forward; closing says what is unfinished; the CLI masks the reason before Prefect
stores it."""
from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from tasks.crisis.compensate import campaign_name, plan_compensation, release_core, send_apologies
from tasks.crisis.incidents import get_incident, get_step
from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame
from tasks.messaging import read_staff_list

CUSTOMERS = {"C1": "ordinary", "C2": "core", "C3": "potential", "C5": "core"}


def _touches(engine, iid) -> pd.DataFrame:
    return read_frame(engine, "SELECT touch_key, customer_id, channel, status, body, sent_at FROM touches WHERE campaign = :c",
                      {"c": campaign_name(iid)}, parse_dates=["sent_at"])


def _call_list(iid) -> pd.DataFrame:
    """Every row written to the staff-outreach list (phone, email) for the incident."""
    files = sorted((Path(os.environ["USEROPS_OUTPUT_DIR"]) / "outreach").rglob(f"{campaign_name(iid)}.csv"))
    if not files:
        return pd.DataFrame(columns=["customer_id", "message", "listed_at"])
    return pd.concat([read_staff_list(f) for f in files], ignore_index=True)


def _planned_and_sent(engine, pinned_now):
    shop(engine, CUSTOMERS)
    iid = open_incident(engine)["incident_id"]
    plan_compensation(iid, engine, NOW)
    send_apologies(iid, engine, NOW)
    return iid


def test_core_call_list_waits_for_the_core_review(warehouse, provider, pinned_now):
    """Item 1: before the review, a core customer is on no list and gets no message."""
    iid = _planned_and_sent(warehouse, pinned_now)
    t = _touches(warehouse, iid)
    core = t[t["customer_id"].isin(["C2", "C5"])]
    assert set(core["channel"]) == {"sms", "staff"}
    assert (core["status"] == "awaiting_review").all(), core[["customer_id", "channel", "status"]]
    assert not set(_call_list(iid)["customer_id"]) & {"C2", "C5"}
    assert not {p["touch_key"].split("|")[1] for p in provider.delivered.values()} & {"C2", "C5"}

    release_core(iid, "lead-li", engine=warehouse, now=NOW)
    send_apologies(iid, warehouse, NOW)
    t = _touches(warehouse, iid)
    assert (t.loc[t["customer_id"].isin(["C2", "C5"]), "status"] == "sent").all()
    assert sorted(_call_list(iid)["customer_id"]) == ["C2", "C5"]


def test_excluded_core_customer_gets_nothing(warehouse, provider, pinned_now):
    """Item 2: ``--exclude`` keeps the customer off the call list as well as the messages."""
    iid = _planned_and_sent(warehouse, pinned_now)
    assert release_core(iid, "lead-li", exclude=["C5"], engine=warehouse, now=NOW) == {"released": 1, "held": 1, "not_excluded": [], "not_in_incident": []}
    send_apologies(iid, warehouse, NOW)
    t = _touches(warehouse, iid)
    assert (t.loc[t["customer_id"] == "C5", "status"] == "suppressed").all()
    assert "C5" not in set(_call_list(iid)["customer_id"])
    assert "C2" in set(_call_list(iid)["customer_id"])
    assert "C5" not in {p["touch_key"].split("|")[1] for p in provider.delivered.values()}


def test_call_script_says_only_what_holds_when_listed(warehouse, provider, pinned_now):
    """Item 3: the script of a call is rendered when the call is listed (after the review, right
    after the apologies were sent) and says only what holds then: Control not confirmed -> not
    "we stopped selling it"; the coupon "is in your account" only if the apology carrying it was
    sent (in quiet hours it waits for the morning, the call does not)."""
    from tasks.crisis.compensate import _personalise
    from tasks.crisis.control import confirm_manual_takedown

    iid = _planned_and_sent(warehouse, pinned_now)  # 14:00 in Shanghai
    assert get_step(warehouse, iid, "control")["status"] != "done"
    release_core(iid, "lead-li", engine=warehouse, now=NOW)
    send_apologies(iid, warehouse, NOW)
    calls = _call_list(iid).set_index("customer_id")
    t = _touches(warehouse, iid).set_index("touch_key")
    for cid in ("C2", "C5"):
        assert t.loc[f"{campaign_name(iid)}|{cid}", "status"] == "sent"  # the apology (and its coupon) went out first
        script = calls.loc[cid, "message"]
        assert "已暂停销售" not in script and "正在下架" in script  # Control is still waiting for a human
        assert "50元致歉券，已放入您的账户" in script
        assert "会在24小时内给您打电话" not in script and "回复本消息" not in script  # spoken, not a message

    # quiet hours: the apology waits for the morning, so the call made meanwhile claims no coupon
    late = pinned_now(NOW + timedelta(hours=8))  # 22:00 in Shanghai
    shop(warehouse, {"N1": "core"}, sku="SKU-NIGHT", now=late)
    night = open_incident(warehouse, skus=("SKU-NIGHT",), now=late)["incident_id"]
    plan_compensation(night, warehouse, late)
    release_core(night, "lead-li", engine=warehouse, now=late)
    send_apologies(night, warehouse, late)
    t = _touches(warehouse, night).set_index("channel")
    assert t.loc["sms", "status"] == "planned" and t.loc["staff", "status"] == "sent"
    script = _call_list(night).set_index("customer_id").loc["N1", "message"]
    assert "致歉券" not in script and "已暂停销售" not in script

    # once the take-down is confirmed, a script rendered then says so
    confirm_manual_takedown(night, "ops-wang", engine=warehouse)
    assert get_step(warehouse, night, "control")["status"] == "done"
    df = pd.DataFrame({"customer_id": ["X"], "name": ["王"], "priority": ["core"], "sku": ["SKU-BAD"], "category": ["水杯"],
                       "last_paid_at": [pd.Timestamp(NOW)], "coupon_placed": [False]})
    text = _personalise(df, "zh-CN", taken_down=True, call_script=True)["body"].iloc[0]
    assert "已暂停销售" in text and "致歉券" not in text


def test_compensate_status_only_moves_forward(warehouse, provider, pinned_now):
    """Item 4: after the core review the step is under way, never back to 'not started'."""
    iid = _planned_and_sent(warehouse, pinned_now)
    assert get_step(warehouse, iid, "compensate")["status"] == "waiting"
    release_core(iid, "lead-li", engine=warehouse, now=NOW)
    assert get_step(warehouse, iid, "compensate")["status"] == "in_progress"
    from tasks.crisis.compensate import refresh_compensated

    send_apologies(iid, warehouse, NOW)
    refresh_compensated(iid, warehouse, NOW)
    assert get_step(warehouse, iid, "compensate")["status"] == "done"
    steps = read_frame(warehouse, "SELECT detail FROM audit_log WHERE action LIKE 'step.compensate%' ORDER BY id")
    statuses = [json.loads(d)["status"] for d in steps["detail"]]
    assert "pending" not in statuses[statuses.index("waiting"):], statuses


def test_close_with_unfinished_compensation_says_so(warehouse, provider, pinned_now):
    """Item 5: closing with apologies still open says what is left and asks (default no; no
    answer = no): refused is recorded; confirmed closes it and records what was left."""
    from userops.cli import app

    shop(warehouse, CUSTOMERS)
    iid = open_incident(warehouse)["incident_id"]
    plan_compensation(iid, warehouse, NOW)  # nothing sent yet: 4 apologies (2 awaiting review), 2 calls
    runner = CliRunner()
    for answer in ("", "n\n"):  # no terminal to answer / "no"
        res = runner.invoke(app, ["incident", "close", iid, "--by", "ops"], input=answer)
        assert res.exit_code == 1, res.output
        assert "4 条致歉未发出" in res.output and "2 条等待核心客户复核" in res.output and "2 个回访电话" in res.output
        assert "仍要关闭吗？" in res.output and "未关闭" in res.output
    assert get_incident(warehouse, iid)["status"] == "open"
    audit = read_frame(warehouse, "SELECT actor, action FROM audit_log WHERE entity_id = :i AND action LIKE 'incident.clos%'",
                       {"i": iid})
    assert audit["action"].tolist() == ["incident.close_refused"] * 2 and set(audit["actor"]) == {"ops"}

    res = runner.invoke(app, ["incident", "close", iid, "--by", "ops"], input="y\n")
    assert res.exit_code == 0, res.output
    assert "4 条致歉未发出" in res.output and "已确认关闭" in res.output
    assert get_incident(warehouse, iid)["status"] == "closed"
    audit = read_frame(warehouse, "SELECT action, detail FROM audit_log WHERE entity_id = :i AND action LIKE 'incident.clos%' ORDER BY id",
                       {"i": iid})
    assert audit["action"].tolist()[2:] == ["incident.closed", "incident.closed_unfinished"]
    assert '"apologies": 4' in audit["detail"].iloc[-1] and '"calls": 2' in audit["detail"].iloc[-1]


def test_cli_open_masks_the_reason_before_prefect_stores_it(warehouse, monkeypatch):
    """``incident open`` hands Prefect the masked reason (Prefect keeps parameters as typed)."""
    import prefect.deployments

    from userops.cli import app

    shop(warehouse, {"C1": "ordinary"})
    seen = {}

    class FR:
        id = "00000000-0000-0000-0000-000000000001"

    def fake_run_deployment(name, parameters=None, **kw):
        seen.update(parameters)
        return FR()

    monkeypatch.setattr(prefect.deployments, "run_deployment", fake_run_deployment)
    res = CliRunner().invoke(app, ["incident", "open", "--sku", "SKU-BAD", "--reason", "客户 13812345678 / li@example.com 说杯盖漏水"])
    assert res.exit_code == 0, res.output
    assert "13812345678" not in seen["reason"] and "li@example.com" not in seen["reason"]
    assert "杯盖漏水" in seen["reason"]
    assert "已打码" in res.output
