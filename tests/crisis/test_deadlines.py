"""Reminders at 50% / 90% of each step's window and escalation when late, on a pinned clock."""
from __future__ import annotations

import json
from datetime import timedelta

from tasks.crisis.deadlines import watch_deadlines
from tasks.crisis.incidents import get_step, open_or_join, set_step
from tests.crisis.conftest import NOW
from userops.db import read_frame


def outbox(engine):
    return read_frame(engine, "SELECT kind, severity, title, payload, channel FROM alert_outbox ORDER BY id")


def test_reminders_and_escalation_recorded_once(warehouse, pinned_now, monkeypatch):
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_CRISIS__ESCALATION_CHANNELS", '["log-escalation"]')
    monkeypatch.setenv("USEROPS_CRISIS__ESCALATION_MENTIONS", '["duty-manager"]')
    reset_settings()
    iid = open_or_join(["SKU-A"], "x", engine=warehouse, now=NOW)["incident_id"]

    def at(minutes):
        return watch_deadlines(warehouse, pinned_now(NOW + timedelta(minutes=minutes)))

    assert at(59)["reminders"] == 0  # control: 50% of 2h is 60 min
    r = at(60)
    assert r["reminders"] == 1 and r["recorded"] == [{"incident_id": iid, "step": "control", "levels": ["50"]}]
    assert at(61)["reminders"] == 0  # never twice
    r = at(108)  # 90% of control
    assert r["recorded"] == [{"incident_id": iid, "step": "control", "levels": ["90"]}]
    # Control done on time (by the hook); Clarify still open
    with warehouse.begin() as conn:
        set_step(conn, iid, "control", "done", "hook", now=NOW + timedelta(minutes=110))
    r = at(121)  # 50% of clarify (4h) is 120 min; control done: nothing more for it
    assert r["recorded"] == [{"incident_id": iid, "step": "clarify", "levels": ["50"]}]
    r = at(4 * 60 + 1)  # clarify late: 90% and escalation due at once -> one escalation sent, both recorded
    assert r["escalations"] == 1 and r["reminders"] == 0
    assert r["recorded"] == [{"incident_id": iid, "step": "clarify", "levels": ["90", "escalated"]}]
    assert at(5 * 60)["escalations"] == 0  # escalated once
    assert get_step(warehouse, iid, "clarify")["reminders_sent"] == ["50", "90", "escalated"]
    assert get_step(warehouse, iid, "control")["reminders_sent"] == ["50", "90"]
    r = at(12 * 60)  # compensate: 50% of 24h
    assert r["recorded"] == [{"incident_id": iid, "step": "compensate", "levels": ["50"]}]

    alerts = outbox(warehouse)
    bodies = read_frame(warehouse, "SELECT body FROM alert_outbox ORDER BY id")["body"].tolist()
    assert "时的状态：未开始。" in bodies[0] and "状态：未开始。请立即处理。" in bodies[3], bodies  # the status in words, not 'pending'
    assert alerts["kind"].tolist() == ["crisis_deadline", "crisis_deadline", "crisis_deadline", "crisis_escalation", "crisis_deadline"]
    esc = alerts[alerts["kind"] == "crisis_escalation"].iloc[0]
    assert esc["severity"] == "critical" and esc["channel"] == "log-escalation"  # the second contact list
    assert json.loads(esc["payload"])["mentions"] == "escalation"  # a reference: the people are resolved at send time
    audit = read_frame(warehouse, "SELECT action, detail FROM audit_log WHERE action IN ('step.reminder', 'step.escalated')")
    assert len(audit) == 6  # every level recorded (clarify 90% too, though only the escalation was sent)
    assert audit["action"].tolist().count("step.escalated") == 1


def test_closed_incidents_are_not_watched(warehouse, pinned_now):
    from tasks.crisis.report import close_incident

    iid = open_or_join(["SKU-A"], "x", engine=warehouse, now=NOW)["incident_id"]
    close_incident(iid, "ops", warehouse, NOW + timedelta(minutes=5))
    assert watch_deadlines(warehouse, NOW + timedelta(hours=30))["recorded"] == []
    assert outbox(warehouse).empty
