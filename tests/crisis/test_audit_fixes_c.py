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


def test_a_closed_incident_ends_the_checklist(sqlite_warehouse, pinned_now, provider):
    """Item 1: open, draft, close at +5 min; then what the paused run would do next: no
    escalation, no statement published, no apology sent (the planned ones are withdrawn)."""
    from tasks.crisis.clarify import approve_statement, draft_statement, expire_step
    from tasks.crisis.compensate import plan_compensation, send_apologies
    from tasks.crisis.report import close_incident

    shop(sqlite_warehouse, CUSTOMERS)
    iid = open_incident(sqlite_warehouse)["incident_id"]
    draft_statement(iid, engine=sqlite_warehouse, now=NOW)
    assert close_incident(iid, "ops", sqlite_warehouse, NOW + timedelta(minutes=5)) is not None
    later = NOW + timedelta(minutes=6)
    expire_step(iid, "compensate", "crisis.expired.review", engine=sqlite_warehouse, now=later)
    assert approve_statement(iid, None, "lead", engine=sqlite_warehouse, now=later) is False
    plan_compensation(iid, sqlite_warehouse, later)
    send_apologies(iid, sqlite_warehouse, later)
    assert _outbox(sqlite_warehouse, "crisis_escalation").empty
    assert _outbox(sqlite_warehouse, "crisis_statement").empty
    touches = read_frame(sqlite_warehouse, "SELECT status FROM touches WHERE campaign = :c", {"c": f"crisis-{iid}"})
    assert "sent" not in set(touches["status"]), touches
    assert not provider_sent(provider)


def provider_sent(provider):
    return list(provider.delivered)


def test_closing_withdraws_planned_apologies(sqlite_warehouse, pinned_now, provider):
    """Item 1: apologies planned before the closing are withdrawn by it: nothing sends them after."""
    from tasks.crisis.compensate import plan_compensation, send_apologies
    from tasks.crisis.report import close_incident
    from tasks.messaging import send_due

    shop(sqlite_warehouse, {"C1": "ordinary", "C2": "core"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    plan_compensation(iid, sqlite_warehouse, NOW)
    assert close_incident(iid, "ops", sqlite_warehouse, NOW + timedelta(minutes=5)) is not None
    send_due(engine=sqlite_warehouse, now=NOW + timedelta(minutes=6))
    send_apologies(iid, sqlite_warehouse, NOW + timedelta(minutes=6))
    touches = read_frame(sqlite_warehouse, "SELECT status, reason FROM touches WHERE campaign = :c", {"c": f"crisis-{iid}"})
    assert set(touches["status"]) == {"suppressed"} and set(touches["reason"]) == {"incident closed"}, touches


def test_close_asks_when_control_or_clarify_unfinished(sqlite_warehouse, pinned_now):
    """Item 1: no affected customer, nothing owed by Compensate, yet Control and Clarify are not
    done: ``incident close`` names them and asks (no answer = no, refused and recorded)."""
    from typer.testing import CliRunner

    from tasks.crisis.incidents import get_incident
    from userops.cli import app

    iid = open_incident(sqlite_warehouse, skus=("SKU-NOBODY",))["incident_id"]
    res = CliRunner().invoke(app, ["incident", "close", iid, "--by", "ops"], input="")
    assert res.exit_code == 1, res.output
    assert "控制扩散" in res.output and "澄清事实" in res.output and "仍要关闭吗？" in res.output, res.output
    assert get_incident(sqlite_warehouse, iid)["status"] == "open"
    res = CliRunner().invoke(app, ["incident", "close", iid, "--by", "ops"], input="y\n")
    assert res.exit_code == 0, res.output
    assert get_incident(sqlite_warehouse, iid)["status"] == "closed"


def test_paused_run_released_by_closing_finishes(sqlite_warehouse, pinned_now, monkeypatch):
    """Item 1: closing answers the form the run waits in (nothing approved); the run's wait loop
    then finds the incident closed and ends the checklist without acting on the answer."""
    import pytest

    import flows.crisis as crisis
    import tasks.crisis.runs as runs
    from tasks.crisis.clarify import draft_statement
    from tasks.crisis.report import close_incident

    shop(sqlite_warehouse, CUSTOMERS)
    iid = open_incident(sqlite_warehouse, flow_run_id="fr-1")["incident_id"]
    draft_statement(iid, engine=sqlite_warehouse, now=NOW)
    resumed = []
    monkeypatch.setattr(runs, "run_state", lambda fr: ("PAUSED", "statement-1"))
    monkeypatch.setattr(runs, "resume", lambda fr, run_input: resumed.append((fr, run_input)))

    def pause(wait_for_input=None, **kw):  # the operator closes the incident while the form waits
        rep = close_incident(iid, "ops", sqlite_warehouse, NOW + timedelta(minutes=5))
        assert rep["released_run"] == "fr-1"
        return crisis.StatementApproval(**resumed[-1][1])

    monkeypatch.setattr(crisis, "pause_flow_run", pause)

    class _Log:
        def info(self, *a, **k): pass
        warning = info

    with pytest.raises(crisis.IncidentClosed):
        crisis._wait_for_statement(iid, "fr-1", _Log())
    assert resumed and resumed[0][1]["approve"] is False
    actions = set(read_frame(sqlite_warehouse, "SELECT action FROM audit_log WHERE entity_id = :i", {"i": iid})["action"])
    assert "statement.sent_back" not in actions and "statement.approved" not in actions


def test_approve_refuses_a_closed_incident(sqlite_warehouse, pinned_now):
    """Item 1: ``incident approve`` on a closed incident says it is not open; nothing published."""
    from typer.testing import CliRunner

    from tasks.crisis.clarify import draft_statement
    from tasks.crisis.report import close_incident
    from userops.cli import app

    shop(sqlite_warehouse, CUSTOMERS)
    iid = open_incident(sqlite_warehouse)["incident_id"]
    draft_statement(iid, engine=sqlite_warehouse, now=NOW)
    close_incident(iid, "ops", sqlite_warehouse, NOW + timedelta(minutes=5))
    res = CliRunner().invoke(app, ["incident", "approve", iid, "--statement", "--by", "lead"])
    assert res.exit_code == 1 and "没有处理中的事件" in res.output, res.output
    assert _outbox(sqlite_warehouse, "crisis_statement").empty


def _deadline_watch_cadence() -> int:
    """Seconds between two deadline watches as prefect.yaml schedules them: the crisis-watch
    interval when deployed, else the hourly monitor (cron on the hour)."""
    from userops.deploy import load_prefect_yaml

    for d in load_prefect_yaml()["deployments"]:
        if d["entrypoint"] == "flows/crisis.py:crisis_watch":
            return min(int(s["interval"]) for s in d["schedules"])
    return 3600


def test_watch_cadence_meets_the_control_window(sqlite_warehouse, pinned_now):
    """Item 3: incidents opened at every offset of the watch's interval (a step of a twelfth of
    it); the watch runs at prefect.yaml's cadence for 25 hours: every 50%/90% reminder of every
    step is sent before that step's deadline (never merged into the escalation), and every
    escalation is sent within one interval after the deadline."""
    from tasks.crisis.deadlines import watch_deadlines
    from tasks.crisis.incidents import get_steps

    cadence = _deadline_watch_cadence()
    t0 = NOW.replace(minute=0, second=0)
    opened = {}
    for k in range(12):
        at = t0 + timedelta(seconds=k * cadence / 12)
        opened[open_incident(sqlite_warehouse, skus=(f"SKU-{k}",), now=at)["incident_id"]] = at
    seen: dict = {}
    tick = t0
    while tick <= t0 + timedelta(hours=25):
        for rec in watch_deadlines(sqlite_warehouse, now=tick)["recorded"]:
            for level in rec["levels"]:
                seen[(rec["incident_id"], rec["step"], level)] = (tick, rec["levels"])
        tick += timedelta(seconds=cadence)
    late = []
    for iid in opened:
        for st in get_steps(sqlite_warehouse, iid).itertuples(index=False):
            for level in ("50", "90"):
                when, levels = seen[(iid, st.step, level)]
                if not (when < st.deadline_at and levels[-1] == level):
                    late.append((iid, st.step, level, when, st.deadline_at))
            when, _ = seen[(iid, st.step, "escalated")]
            if not (st.deadline_at < when <= st.deadline_at + timedelta(seconds=cadence)):
                late.append((iid, st.step, "escalated", when, st.deadline_at))
    assert not late, late
    assert cadence <= 300  # Control's 90% reminder and its escalation within a few minutes


def test_crisis_watch_is_cheap_with_no_open_incident_and_delivers_at_once(sqlite_warehouse, pinned_now, monkeypatch):
    """Item 3: with no open incident the watch makes one query and nothing else; with one, what it
    queues is delivered in the same pass."""
    import tasks.crisis.deadlines as deadlines

    calls = []
    monkeypatch.setattr(deadlines, "watch_deadlines", lambda *a, **k: calls.append(1))
    assert deadlines.watch_open_incidents(sqlite_warehouse, NOW)["open"] == 0 and not calls
    monkeypatch.undo()

    iid = open_incident(sqlite_warehouse)["incident_id"]
    pinned_now(NOW + timedelta(minutes=108))
    out = deadlines.watch_open_incidents(sqlite_warehouse, NOW + timedelta(minutes=108))
    assert out["open"] == 1 and out["reminders"] == 1
    box = _outbox(sqlite_warehouse, "crisis_deadline")
    assert len(box) and "pending" not in set(box["status"]), box
    assert iid
