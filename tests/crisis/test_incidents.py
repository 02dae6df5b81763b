"""Opening, joining (never a duplicate), deadlines, marketing suppression while open."""
from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest

from tasks.crisis.incidents import get_incident, get_steps, list_incidents, open_or_join, timeline
from tasks.crisis.report import close_incident
from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame


def test_open_sets_three_deadlines_from_opening(warehouse):
    inc = open_or_join(["SKU-A"], "漏水", "critical", "manual", "ops-wang", engine=warehouse, now=NOW)
    assert not inc["joined"]
    steps = get_steps(warehouse, inc["incident_id"]).set_index("step")
    assert list(steps.index) == ["control", "clarify", "compensate"]
    assert steps.loc["control", "deadline_at"] == pd.Timestamp(NOW + timedelta(hours=2))
    assert steps.loc["clarify", "deadline_at"] == pd.Timestamp(NOW + timedelta(hours=4))
    assert steps.loc["compensate", "deadline_at"] == pd.Timestamp(NOW + timedelta(hours=24))
    assert set(steps["status"]) == {"pending"}
    rec = get_incident(warehouse, inc["incident_id"])
    assert rec["status"] == "open" and rec["severity"] == "critical" and rec["opened_by"] == "ops-wang"
    audit = read_frame(warehouse, "SELECT actor, action FROM audit_log WHERE entity_id = :i", {"i": inc["incident_id"]})
    assert audit.values.tolist() == [["ops-wang", "incident.opened"]]
    with pytest.raises(ValueError):
        open_or_join(["SKU-B"], "x", "apocalyptic", engine=warehouse)
    with pytest.raises(ValueError):
        open_or_join([" "], "x", engine=warehouse)


def test_second_trigger_joins_never_duplicates(warehouse):
    a = open_or_join(["SKU-A"], "漏水", engine=warehouse, now=NOW)
    b = open_or_join(["SKU-A"], "complaint spike", source="spike", engine=warehouse, now=NOW + timedelta(hours=1))
    assert b["joined"] and b["incident_id"] == a["incident_id"] and b["new_skus"] == []
    c = open_or_join(["SKU-A", "SKU-A2"], "same batch", engine=warehouse, now=NOW + timedelta(hours=2))
    assert c["joined"] and c["incident_id"] == a["incident_id"] and c["new_skus"] == ["SKU-A2"]
    assert get_incident(warehouse, a["incident_id"])["skus"] == ["SKU-A", "SKU-A2"]
    d = open_or_join(["SKU-OTHER"], "另一件事", engine=warehouse, now=NOW)
    assert not d["joined"] and d["incident_id"] != a["incident_id"]
    assert len(list_incidents(warehouse)) == 2
    # once closed, a new trigger for the SKU opens a new incident
    close_incident(a["incident_id"], "ops", warehouse, NOW + timedelta(days=8))
    e = open_or_join(["SKU-A"], "again", engine=warehouse, now=NOW + timedelta(days=9))
    assert not e["joined"] and e["incident_id"] != a["incident_id"]


def test_concurrent_triggers_open_one_incident(warehouse):
    results, errors = [], []
    barrier = threading.Barrier(4)

    def go(k):
        try:
            barrier.wait()
            results.append(open_or_join(["SKU-RACE", f"SKU-R{k}"], f"trigger {k}", engine=warehouse, now=NOW))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(k,)) for k in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert len({r["incident_id"] for r in results}) == 1
    assert sum(not r["joined"] for r in results) == 1
    inc = get_incident(warehouse, results[0]["incident_id"])
    assert inc["skus"] == sorted(["SKU-RACE"] + [f"SKU-R{k}" for k in range(4)])
    assert len(list_incidents(warehouse)) == 1


def test_affected_customers_get_no_marketing_while_open(warehouse, provider, pinned_now):
    from tasks.messaging import plan_touches, send_due

    shop(warehouse, {"C1": "core", "C2": "ordinary"})
    inc = open_incident(warehouse)
    iid = inc["incident_id"]
    rows = read_frame(warehouse, "SELECT customer_id, priority FROM incident_customers WHERE incident_id = :i ORDER BY rank", {"i": iid})
    assert rows.values.tolist() == [["C1", "core"], ["C2", "ordinary"]]

    def market(period):
        touches = pd.DataFrame({
            "touch_key": [f"awakening|{c}|{period}" for c in ("C1", "C2", "C-OTHER")],
            "campaign": "awakening", "customer_id": ["C1", "C2", "C-OTHER"], "channel": "sms",
            "subject": "hi", "body": "come back", "planned_at": pd.Timestamp(NOW),
        })
        with warehouse.begin() as conn:
            plan_touches(conn, touches)
        send_due(warehouse)
        return read_frame(warehouse, "SELECT customer_id, status, reason FROM touches WHERE campaign = 'awakening' AND touch_key LIKE :p",
                          {"p": f"%|{period}"}).set_index("customer_id")

    during = market("w1")
    assert during.loc["C1", "status"] == "suppressed" and during.loc["C1", "reason"] == "open_crisis"
    assert during.loc["C2", "status"] == "suppressed"
    assert during.loc["C-OTHER", "status"] == "sent"
    close_incident(iid, "ops", warehouse, NOW + timedelta(days=7))
    after = market("w2")
    assert set(after["status"]) == {"sent"}


def test_timeline_marks_met_and_missed_deadlines(warehouse):
    from tasks.crisis.incidents import set_step

    inc = open_or_join(["SKU-A"], "x", engine=warehouse, now=NOW)
    iid = inc["incident_id"]
    with warehouse.begin() as conn:
        set_step(conn, iid, "control", "done", "hook", now=NOW + timedelta(minutes=30))
        set_step(conn, iid, "clarify", "done", "pr-zhao", now=NOW + timedelta(hours=5))
    tl = timeline(warehouse, iid, now=NOW + timedelta(hours=6)).set_index("step")
    assert tl.loc["control", "met_deadline"] == True  # noqa: E712
    assert tl.loc["clarify", "met_deadline"] == False  # noqa: E712
    assert tl.loc["clarify", "done_by"] == "pr-zhao"
    assert pd.isna(tl.loc["compensate", "met_deadline"])
    tl = timeline(warehouse, iid, now=NOW + timedelta(hours=25)).set_index("step")
    assert tl.loc["compensate", "met_deadline"] == False and bool(tl.loc["compensate", "late"])  # noqa: E712


REASON_WITH_CONTACTS = "顾客 13812345678（li.si@example.com）反映部分批次杯盖漏水"
REASON_MASKED = "顾客 138****78（l***@example.com）反映部分批次杯盖漏水"


def test_contact_details_in_the_reason_are_masked_at_intake(warehouse, pinned_now):
    """The reason may quote the customer who complained: it is stored masked (incident row,
    audit log of the opening and of a join), so the statement draft and the report never
    carry the phone or the email."""
    from tasks.crisis.clarify import draft_statement
    from tasks.crisis.report import build_report, report_markdown

    shop(warehouse, {"C1": "ordinary"})
    iid = open_incident(warehouse, reason=REASON_WITH_CONTACTS)["incident_id"]
    open_or_join(["SKU-BAD", "SKU-NEW"], "又一位顾客 13987654321 来电", engine=warehouse, now=NOW)  # a join's reason too
    assert get_incident(warehouse, iid)["reason"] == REASON_MASKED
    statement = draft_statement(iid, "zh-CN", engine=warehouse)
    rep = build_report(iid, warehouse, now=NOW + timedelta(hours=1))
    audit = read_frame(warehouse, "SELECT detail FROM audit_log WHERE entity_id = :i", {"i": iid})["detail"].str.cat(sep="\n")
    assert rep["reason"] == REASON_MASKED and REASON_MASKED not in statement and "139****21" in audit
    for text in (statement, report_markdown(rep, "zh-CN"), report_markdown(rep, "en"), audit,
                 get_incident(warehouse, iid)["statement"]):
        assert "13812345678" not in text and "li.si@" not in text and "13987654321" not in text, text

    from tasks.crisis.incidents import clean_reason  # what the flow uses to tell the operator

    assert clean_reason(REASON_WITH_CONTACTS) == (REASON_MASKED, True)
    assert clean_reason("部分批次杯盖漏水") == ("部分批次杯盖漏水", False)
