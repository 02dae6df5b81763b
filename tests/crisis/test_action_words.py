"""`userops incident show`'s record names each action in the operator's words (zh-CN by
default, en), not the stored codes (``statement.approved``); an unknown code is shown as it
is, and the stored actions stay the codes. Every action the crisis code writes to the audit
log has its words in the catalogue."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.crisis.conftest import NOW, incident_record, open_incident, shop
from userops.settings import PROJECT_ROOT


def _written_actions() -> set[str]:
    """The incident audit actions the code writes: ``audit(conn, actor, "<code>", "incident", …)``,
    ``set_step(…, action="<code>")`` and the expired steps (``expire_step``)."""
    codes: set[str] = set()
    for path in sorted((PROJECT_ROOT / "tasks" / "crisis").glob("*.py")):
        src = path.read_text(encoding="utf-8")
        codes |= set(re.findall(r'action="([a-z_.]+)"', src))
        for m in re.finditer(r'audit\(\s*conn,\s*[^,]+,\s*(.+?),\s*"incident"', src, re.S):
            codes |= set(re.findall(r'"([a-z_]+\.[a-z_.]+)"', m.group(1)))
    flows = (PROJECT_ROOT / "flows" / "crisis.py").read_text(encoding="utf-8")
    codes |= {f"step.{step}.expired" for step in re.findall(r'expire_step\(incident_id, "([a-z]+)"', flows)}
    return codes


def test_every_written_action_has_words():
    from tasks.crisis.messages import ACTION_WORDS, action_word

    codes = _written_actions()
    assert {"statement.approved", "incident.opened", "step.reminder", "step.escalated", "alert.obsolete",
            "step.clarify.expired", "step.compensate.expired", "compensation.core_reviewed"} <= codes, codes
    assert codes <= set(ACTION_WORDS), codes - set(ACTION_WORDS)
    for code in codes:
        for lang in ("zh-CN", "en"):
            assert action_word(code, lang) != code, (code, lang)
    assert action_word("statement.approved", "zh-CN") == "声明已批准并发布"
    assert action_word("statement.approved", "en") == "statement approved and published"
    assert action_word("something.new", "zh-CN") == "something.new"  # unknown: the code itself


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_incident_show_record_says_the_actions_in_words(lang, sqlite_warehouse, pinned_now, monkeypatch):

    from tasks.crisis.clarify import approve_statement, draft_statement
    from tasks.crisis.incidents import incident_audit

    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    draft_statement(iid, engine=sqlite_warehouse)
    assert approve_statement(iid, None, "pr-zhao", engine=sqlite_warehouse, now=NOW + timedelta(hours=1))
    with sqlite_warehouse.begin() as conn:  # a code this version does not know
        from userops.db import audit

        audit(conn, "userops", "something.new", "incident", iid, {})
    record = incident_record(monkeypatch, iid, lang)
    for code in ("incident.opened", "step.clarify.drafted", "statement.approved"):
        assert code not in record, record
    if lang == "zh-CN":
        assert "开启事件" in record and "声明草稿已生成" in record and "声明已批准并发布" in record, record
    else:
        assert "incident opened" in record and "statement drafted" in record and "statement approved and published" in record, record
    assert "something.new" in record  # unknown: as stored
    # only the display changed: the stored actions are the codes
    assert {"incident.opened", "step.clarify.drafted", "statement.approved"} <= set(incident_audit(sqlite_warehouse, iid)["action"])
