"""Control (take-down hook or a human task) and Clarify (draft, approve once, publish)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tasks.crisis.clarify import approve_statement, draft_statement, reject_statement
from tasks.crisis.control import confirm_manual_takedown, run_control
from tasks.crisis.incidents import get_incident, get_step
from tests.crisis.conftest import NOW, add_feedback, open_incident, shop
from userops.db import read_frame


@pytest.fixture
def order_system(sample_data):
    from userops.sample.server import SampleServer

    with SampleServer(sample_data, token="s3cret") as server:
        yield server


def _use(monkeypatch, **env):
    from userops.settings import reset_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()


def test_takedown_hook_called_and_confirmed(warehouse, order_system, monkeypatch):
    _use(monkeypatch, USEROPS_CRISIS__TAKEDOWN_URL=f"{order_system.url}/orders/takedown", USEROPS_CRISIS__TAKEDOWN_TOKEN="s3cret")
    iid = open_incident(warehouse, skus=("SKU-A", "SKU-B"))["incident_id"]
    res = run_control(iid, engine=warehouse, now=NOW + timedelta(minutes=3))
    assert res["confirmed"]
    assert order_system.takedowns == [{"skus": ["SKU-A", "SKU-B"], "incident_id": iid, "reason": "批次漏水"}]
    step = get_step(warehouse, iid, "control")
    assert step["status"] == "done" and step["done_by"] == "userops:takedown-hook"
    assert step["result"]["taken_down"] == ["SKU-A", "SKU-B"] and step["result"]["hook_status"] == 200
    assert read_frame(warehouse, "SELECT * FROM alert_outbox WHERE kind = 'crisis_task'").empty
    # the token never lands in the record
    audit = read_frame(warehouse, "SELECT detail FROM audit_log")
    assert not audit["detail"].str.contains("s3cret").any()


def test_hook_failure_or_no_hook_is_a_task_for_a_human(warehouse, order_system, monkeypatch):
    _use(monkeypatch, USEROPS_CRISIS__TAKEDOWN_URL=f"{order_system.url}/orders/takedown", USEROPS_CRISIS__TAKEDOWN_RETRIES="1")
    iid = open_incident(warehouse)["incident_id"]
    res = run_control(iid, engine=warehouse)  # 401: the hook refuses without the token
    assert not res["confirmed"] and res["hook_status"] == 401
    step = get_step(warehouse, iid, "control")
    assert step["status"] == "waiting" and step["result"]["manual_task"]
    task = read_frame(warehouse, "SELECT title, body, severity FROM alert_outbox WHERE kind = 'crisis_task'")
    assert len(task) == 1 and "SKU-BAD" in task["title"].iloc[0] and "401" in task["body"].iloc[0]
    assert confirm_manual_takedown(iid, "ops-wang", "下架完成", engine=warehouse, now=NOW + timedelta(hours=1))
    step = get_step(warehouse, iid, "control")
    assert step["status"] == "done" and step["done_by"] == "ops-wang"
    assert not confirm_manual_takedown(iid, "ops-li", engine=warehouse)  # already done

    _use(monkeypatch, USEROPS_CRISIS__TAKEDOWN_URL="")
    iid2 = open_incident(warehouse, skus=("SKU-C",))["incident_id"]
    assert run_control(iid2, engine=warehouse)["mode"] == "manual"
    assert get_step(warehouse, iid2, "control")["status"] == "waiting"
    assert len(read_frame(warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'crisis_task'")) == 2


def test_statement_drafted_with_facts_and_published_once(warehouse, monkeypatch):
    shop(warehouse, {"C1": "core", "C2": "ordinary", "C3": None})
    with warehouse.begin() as conn:
        add_feedback(conn, "SKU-BAD", [NOW - timedelta(hours=h) for h in (1, 2, 3)])
    iid = open_incident(warehouse)["incident_id"]
    text = draft_statement(iid, engine=warehouse)
    assert "水杯（SKU-BAD）" in text and "批次漏水" not in text  # the reason is internal, never quoted
    assert "3位用户" in text  # complaints about the product
    assert "共3位" in text  # affected customers
    assert "20–50元" in text and "全额退款" in text
    assert "我们正在暂停销售" in text  # not taken down yet: says so honestly
    assert get_step(warehouse, iid, "clarify")["status"] == "waiting"
    en = draft_statement(iid, lang="en", engine=warehouse)
    assert "statement on" in en and "¥20–50" in en and "3 customers" in en

    # sent back with edits: the edits stay the draft, nothing published
    reject_statement(iid, text + "\n补充:更换批次。", "pr-zhao", "加上批次说明", engine=warehouse)
    assert "更换批次" in get_incident(warehouse, iid)["statement"]
    assert read_frame(warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'crisis_statement'").empty
    assert draft_statement(iid, engine=warehouse).count("更换批次") == 1  # a redraft keeps the human's text

    final = "关于水杯的说明(终稿)\n我们很抱歉。"
    assert approve_statement(iid, final, "pr-zhao", engine=warehouse, now=NOW + timedelta(hours=3))
    assert not approve_statement(iid, "another text", "someone", engine=warehouse)
    pub = read_frame(warehouse, "SELECT kind, title, body, severity FROM alert_outbox WHERE kind = 'crisis_statement'")
    assert len(pub) == 1 and pub["body"].iloc[0].strip() == final.strip()
    inc = get_incident(warehouse, iid)
    assert inc["statement"].strip() == final.strip() and inc["statement_published_at"] is not None
    step = get_step(warehouse, iid, "clarify")
    assert step["status"] == "done" and step["done_by"] == "pr-zhao" and step["result"]["edited"]


def test_statement_channels_configurable(warehouse, monkeypatch):
    _use(monkeypatch, USEROPS_CRISIS__STATEMENT_CHANNELS='["pr-wecom", "log"]')
    iid = open_incident(warehouse)["incident_id"]
    draft_statement(iid, engine=warehouse)
    approve_statement(iid, None, "pr", engine=warehouse)
    chans = read_frame(warehouse, "SELECT channel FROM alert_outbox WHERE kind = 'crisis_statement' ORDER BY channel")
    assert chans["channel"].tolist() == ["log", "pr-wecom"]
