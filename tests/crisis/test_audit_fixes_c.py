"""Third crisis audit: a closed incident ends the checklist; reminders and escalations of a
finished step are never posted; the deadline watch's cadence meets the 2h Control window;
confirming the take-down from the statement form records only that; incident ids in shop time."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame

CUSTOMERS = {"C1": "ordinary", "C2": "potential"}


def _outbox(engine, kind):
    return read_frame(engine, "SELECT id, status, title, body FROM alert_outbox WHERE kind = :k ORDER BY id", {"k": kind})


def test_incident_id_in_shop_time(sqlite_warehouse, pinned_now):
    """Item 5: opened at 00:30 Shanghai on 11-21 (16:30 UTC on 11-20): the id says 20261121-0030."""
    shop(sqlite_warehouse, CUSTOMERS)
    at = datetime(2026, 11, 20, 16, 30)
    ids = {open_incident(sqlite_warehouse, skus=(f"SKU-{k}",), now=at)["incident_id"] for k in range(5)}
    assert len(ids) == 5
    assert all(i.startswith("INC-20261121-0030-") for i in ids), ids


def test_statement_form_resumed_only_to_confirm_the_takedown(sqlite_warehouse, pinned_now, monkeypatch):
    """Item 4: the statement form comes back with only "take-down confirmed" ticked (the text as
    pre-filled): the take-down is recorded, no "statement sent back", the draft is not marked
    edited and the next form's draft says the products are off sale."""
    import flows.crisis as crisis
    from prefect.exceptions import FlowPauseTimeout

    from tasks.crisis.clarify import draft_statement
    from tasks.crisis.incidents import get_incident, get_step

    shop(sqlite_warehouse, CUSTOMERS)
    iid = open_incident(sqlite_warehouse)["incident_id"]
    draft = draft_statement(iid, engine=sqlite_warehouse)
    assert "我们正在暂停销售" in draft
    drafts = []

    def pause(wait_for_input=None, **kw):
        drafts.append(get_incident(sqlite_warehouse, iid)["statement"])
        if len(drafts) == 1:
            return crisis.StatementApproval(statement=drafts[0], approve=False, approver="ops-wang", takedown_confirmed=True)
        raise FlowPauseTimeout("timed out")

    monkeypatch.setattr(crisis, "pause_flow_run", pause)

    class _Log:
        def info(self, *a, **k): pass
        warning = info

    assert crisis._wait_for_statement(iid, None, _Log()) is False
    assert get_step(sqlite_warehouse, iid, "control")["status"] == "done"
    actions = read_frame(sqlite_warehouse, "SELECT actor, action FROM audit_log WHERE entity_id = :i", {"i": iid})
    assert "statement.sent_back" not in set(actions["action"]), actions
    assert "step.control.confirmed" in set(actions["action"])
    assert get_step(sqlite_warehouse, iid, "clarify")["result"].get("edited") is not True
    assert len(drafts) == 2 and "我们正在暂停销售" not in drafts[1] and "暂停销售" in drafts[1], drafts[1]
    # a later re-draft reflects what holds, too
    assert "我们正在暂停销售" not in draft_statement(iid, engine=sqlite_warehouse)


def test_sent_back_unchanged_is_no_edit(sqlite_warehouse, pinned_now):
    """Item 4: a draft sent back as pre-filled is recorded sent back, not ``edited``; a changed one is."""
    from tasks.crisis.clarify import draft_statement, reject_statement
    from tasks.crisis.incidents import get_step

    shop(sqlite_warehouse, CUSTOMERS)
    iid = open_incident(sqlite_warehouse)["incident_id"]
    draft = draft_statement(iid, engine=sqlite_warehouse)
    reject_statement(iid, draft, "pr-zhao", "再看看", engine=sqlite_warehouse)
    assert get_step(sqlite_warehouse, iid, "clarify")["result"]["edited"] is False
    reject_statement(iid, draft + "补充。", "pr-zhao", engine=sqlite_warehouse)
    assert get_step(sqlite_warehouse, iid, "clarify")["result"]["edited"] is True
    reject_statement(iid, draft + "补充。", "pr-zhao", engine=sqlite_warehouse)  # edited stays
    assert get_step(sqlite_warehouse, iid, "clarify")["result"]["edited"] is True


class _Recorder:
    def __init__(self):
        self.posted = []

    def channels(self):
        from tasks.alerts.channels import LogChannel

        rec = self

        class _Ch(LogChannel):
            def post(self, payload: dict) -> None:
                rec.posted.append(payload)

        return {name: _Ch(name) for name in ("log", "slack", "dingtalk", "wecom", "log-escalation")}

    def texts(self, iid):
        return [f"{p.get('title')}\n{p.get('text') or p.get('body') or ''}" for p in self.posted if iid in json.dumps(p, ensure_ascii=False)]


def test_reminder_of_a_step_done_since_is_never_posted(sqlite_warehouse, pinned_now):
    """Item 2: the Control 90% reminder is queued at 1h50, Control is confirmed at 1h51: the
    delivery at 1h52 posts nothing for Control (the reminder is obsolete, audited); the
    reminder's text names the deadline, not a time left."""
    from tasks.alerts.outbox import deliver_pending
    from tasks.crisis.control import confirm_manual_takedown
    from tasks.crisis.deadlines import watch_deadlines

    iid = open_incident(sqlite_warehouse)["incident_id"]
    r = watch_deadlines(sqlite_warehouse, now=NOW + timedelta(minutes=110))
    assert {"incident_id": iid, "step": "control", "levels": ["50", "90"]} in r["recorded"]
    body = _outbox(sqlite_warehouse, "crisis_deadline")["body"].iloc[0]
    assert "还剩" not in body and "截止 2026-11-20 16:00（店铺时间）" in body, body
    assert confirm_manual_takedown(iid, "ops-wang", engine=sqlite_warehouse, now=NOW + timedelta(minutes=111))
    assert set(_outbox(sqlite_warehouse, "crisis_deadline")["status"]) == {"obsolete"}
    rec = _Recorder()
    deliver_pending(sqlite_warehouse, now=NOW + timedelta(minutes=112), channels=rec.channels())
    assert not [x for x in rec.texts(iid) if "控制扩散" in x], rec.texts(iid)
    audit = read_frame(sqlite_warehouse, "SELECT actor, detail FROM audit_log WHERE action = 'alert.obsolete.deadline'")
    assert audit["actor"].tolist() == ["ops-wang"] and json.loads(audit["detail"].iloc[0])["step"] == "control"


def test_escalation_of_a_closed_incident_is_never_posted(sqlite_warehouse, pinned_now):
    """Item 2: escalations queued for an incident closed since are obsolete; the watch queues no
    more for it."""
    from tasks.alerts.outbox import deliver_pending
    from tasks.crisis.deadlines import watch_deadlines
    from tasks.crisis.report import close_incident

    iid = open_incident(sqlite_warehouse)["incident_id"]
    watch_deadlines(sqlite_warehouse, now=NOW + timedelta(minutes=5 * 60))  # control + clarify late
    assert len(_outbox(sqlite_warehouse, "crisis_escalation")) >= 2
    assert close_incident(iid, "ops", sqlite_warehouse, NOW + timedelta(minutes=5 * 60 + 1)) is not None
    assert set(_outbox(sqlite_warehouse, "crisis_escalation")["status"]) == {"obsolete"}
    rec = _Recorder()
    deliver_pending(sqlite_warehouse, now=NOW + timedelta(minutes=5 * 60 + 2), channels=rec.channels())
    assert not [x for x in rec.texts(iid) if "升级" in x or "提醒" in x], rec.texts(iid)
    assert watch_deadlines(sqlite_warehouse, now=NOW + timedelta(hours=25))["recorded"] == []
