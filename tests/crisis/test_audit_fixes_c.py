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
