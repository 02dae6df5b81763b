"""Escalation contacts (crisis.escalation_mentions, "never logged") are @-mentioned, but
their numbers are resolved only when the alert is posted: the outbox keeps a reference."""
from __future__ import annotations

import json
import logging
from datetime import timedelta

import sqlalchemy as sa

from tasks.alerts import deliver_pending
from tasks.alerts.outbox import OUTBOX

MOBILE = "13800138000"


def test_escalation_numbers_never_stored_and_still_mentioned(warehouse, use_channels, dingtalk, clock, monkeypatch, caplog, tmp_path):
    from tasks.crisis.deadlines import watch_deadlines
    from tasks.crisis.incidents import open_or_join

    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("USEROPS_CRISIS__ESCALATION_MENTIONS", json.dumps([MOBILE, "duty-manager"]))
    use_channels(dingtalk=dingtalk)
    now = clock.utc()
    open_or_join(["SKU-A"], "批次漏水", engine=warehouse, now=now)
    assert watch_deadlines(warehouse, now + timedelta(hours=3))["escalations"] == 1
    with warehouse.connect() as conn:
        rows = conn.execute(sa.select(OUTBOX)).all()
    esc = [r for r in rows if r.kind == "crisis_escalation"]
    assert len(esc) == 1 and json.loads(esc[0].payload)["mentions"] == "escalation"
    for _ in range(3):  # the rows, as many passes as the robot's minute needs
        deliver_pending(warehouse, now=clock.utc())
        clock.advance(61)
    posted = [p for p in dingtalk.received if p.get("at")]
    assert len(posted) == 1
    assert MOBILE in posted[0]["at"]["atMobiles"] and "duty-manager" in posted[0]["at"]["atUserIds"]
    assert {MOBILE, "duty-manager"} <= set(dingtalk.notified)
    with warehouse.connect() as conn:
        everything = json.dumps([list(map(str, r)) for r in conn.execute(sa.select(OUTBOX)).all()], ensure_ascii=False)
        everything += json.dumps([list(map(str, r)) for r in conn.execute(sa.text("SELECT * FROM audit_log")).all()], ensure_ascii=False)
    assert MOBILE not in everything
    assert MOBILE not in caplog.text
    journal = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert MOBILE not in journal
