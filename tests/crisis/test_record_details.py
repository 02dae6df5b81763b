"""`userops incident show`'s record says each action's detail in the operator's words (zh-CN
by default, en): the step and its status as the report names them (澄清事实, 已完成), the
counts, reminder levels and SKUs in a phrase; it printed the stored detail raw
(``step=clarify, status=done``). A value with no word is shown as ``key: value``; free text
(a note, a reason) is never shown, nor a phone or an email; the stored details are unchanged."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest

from tests.crisis.conftest import NOW, incident_record, open_incident, shop


def _record(lines: str, action_words: str) -> str:
    """The record's line of the action with these words."""
    hits = [line for line in lines.splitlines() if action_words in line]
    assert len(hits) == 1, (action_words, lines)
    return hits[0]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_incident_show_record_says_the_details_in_words(lang, sqlite_warehouse, pinned_now, monkeypatch):

    from tasks.crisis.clarify import approve_statement, draft_statement, reject_statement
    from tasks.crisis.incidents import incident_audit
    from userops.db import audit

    shop(sqlite_warehouse, {"C1": "core", "C2": "ordinary"})
    iid = open_incident(sqlite_warehouse, reason="客户 13812345678 / li@example.com 说杯盖漏水")["incident_id"]
    draft_statement(iid, engine=sqlite_warehouse)
    reject_statement(iid, None, "pr-zhao", note="请回电 13912345678 或 wang@example.com", engine=sqlite_warehouse)
    assert approve_statement(iid, None, "pr-zhao", engine=sqlite_warehouse, now=NOW + timedelta(hours=1))
    with sqlite_warehouse.begin() as conn:  # as the crisis code writes them
        audit(conn, "userops:deadline-watch", "step.reminder", "incident", iid,
              {"step": "control", "level": "50", "sent": True, "at": NOW, "deadline_at": NOW})
        audit(conn, "userops:deadline-watch", "step.escalated", "incident", iid,
              {"step": "compensate", "level": "escalated", "sent": True, "at": NOW, "deadline_at": NOW})
        audit(conn, "tester", "incident.joined", "incident", iid,
              {"trigger_skus": ["SKU-NEW"], "new_skus": ["SKU-NEW"], "reason": "13812345678", "source": "manual"})
        audit(conn, "userops", "compensation.planned", "incident", iid,
              {"customers": 2, "new_touches": 2, "per_tier": {"core": 1, "ordinary": 1}, "awaiting_review": 1})
        audit(conn, "lead-li", "compensation.core_reviewed", "incident", iid,
              {"released": 1, "held": 0, "held_customers": 0, "not_excluded": []})
        audit(conn, "userops", "compensation.calls_released", "incident", iid, {"released": 2, "taken_down": True})
        audit(conn, "userops", "something.new", "incident", iid, {"step": "recall", "status": "queued"})
    stored = {e.action: e.detail for e in incident_audit(sqlite_warehouse, iid).itertuples(index=False)}

    record = incident_record(monkeypatch, iid, lang)
    # no stored detail text, no phone, no email, no free text
    assert not re.search(r"\b(step|status|level|per_tier|new_skus|released|held|customers)=", record), record
    assert not re.search(r"1381234|1391234|@example|请回电|杯盖漏水", record), record
    if lang == "zh-CN":  # no stored code (in en some codes are the words: done, core)
        for code in ("clarify", "compensate", "control", "waiting", "done", "escalated", "core", "ordinary"):
            assert not re.search(rf"\b{code}\b", record), (code, record)
        assert "（澄清事实；等待人工）" in _record(record, "声明草稿已生成")
        assert "（澄清事实；等待人工）" in _record(record, "声明退回修改")
        assert "（澄清事实；已完成）" in _record(record, "声明已批准并发布")
        assert "（控制扩散；已用去 50% 时间）" in _record(record, "截止提醒")
        assert "（补偿用户；已过截止时间）" in _record(record, "超时升级")
        assert "（新增 SKU：SKU-NEW）" in _record(record, "新的 SKU 并入事件")
        assert "（受影响客户 2 位；按优先级：核心 1，普通 1）" in _record(record, "补偿已安排")
        assert "（放行 1；暂缓 0）" in _record(record, "核心客户致歉已复核")
        assert "（2 个回访电话）" in _record(record, "回访电话已列入回访清单")
        assert "（step：recall；status：queued）" in _record(record, "something.new")  # no word: key and value
    else:
        assert "(Clarify; waiting for a human)" in _record(record, "statement drafted")
        assert "(Clarify; waiting for a human)" in _record(record, "statement sent back")
        assert "(Clarify; done)" in _record(record, "statement approved and published")
        assert "(Control; 50% through its window)" in _record(record, "deadline reminder")
        assert "(Compensate; past its deadline)" in _record(record, "escalated (deadline missed)")
        assert "(new SKUs: SKU-NEW)" in _record(record, "SKUs joined the incident")
        assert "(affected customers: 2; by priority: core 1, ordinary 1)" in _record(record, "compensation planned")
        assert "(1 released; 0 held)" in _record(record, "core apologies reviewed")
        assert "(calls: 2)" in _record(record, "calls put on the call list")
        assert "(step: recall; status: queued)" in _record(record, "something.new")
    # only the display changed: the stored details are as written
    after = {e.action: e.detail for e in incident_audit(sqlite_warehouse, iid).itertuples(index=False)}
    assert after == stored
    assert json.loads(stored["statement.approved"])["step"] == "clarify"
    assert json.loads(stored["statement.approved"])["status"] == "done"
