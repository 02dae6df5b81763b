"""Alerts whose body must go out whole are never merged: the approved crisis statement and
crisis escalations are posted alone, split into parts when a channel needs it, never cut."""
from __future__ import annotations

import json
from datetime import date

from tasks.alerts import deliver_pending, enqueue_alert
from tests.alerts.conftest import outbox

DAY = date(2026, 11, 20)
STATEMENT = "\n".join(f"第 {i:02d} 行：关于 SKU-1 的情况说明与处理进展。" for i in range(1, 19))


def _burst(n=6):
    for i in range(n):
        enqueue_alert("threshold", f"指标 {i} 超阈值", f"第一行 {i}\n第二行 {i}", subject=f"m{i}", day=DAY)


def test_approved_statement_is_not_merged_with_a_burst(warehouse, use_channels, slack, clock):
    use_channels(slack=slack)
    _burst()
    enqueue_alert("crisis_statement", "INC-1 官方声明", STATEMENT, severity="info", subject="INC-1", day=DAY)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 7
    posts = [json.dumps(p, ensure_ascii=False) for p in slack.received]
    whole = [p for p in posts if "INC-1 官方声明" in p]
    assert len(whole) == 1 and "已合并发送" not in whole[0]
    for i in range(1, 19):
        assert f"第 {i:02d} 行" in whole[0]
    st = outbox(warehouse, kind="crisis_statement")[0]
    assert st.status == "sent"
    merged = [p for p in posts if "已合并发送" in p]
    assert merged and "INC-1" not in merged[0]


def test_escalation_is_not_merged_and_a_long_statement_is_split(warehouse, use_channels, dingtalk, clock):
    use_channels(dingtalk=dingtalk)
    _burst(8)
    long_statement = "\n".join(f"第 {i:03d} 行：关于 SKU-1 的情况说明与处理进展，" + "详细说明" * 40 for i in range(200))
    enqueue_alert("crisis_statement", "INC-2 官方声明", long_statement, severity="info", subject="INC-2", day=DAY)
    enqueue_alert("crisis_escalation", "INC-2 澄清步骤超时", "截止 12:00\n已超时 1 小时\n状态：等待审批", severity="critical", subject="INC-2|clarify|escalated", day=DAY)
    res = deliver_pending(now=clock.utc())
    assert dingtalk.rejected == []
    texts = dingtalk.message_texts()
    esc = [x for x in texts if "INC-2 澄清步骤超时" in x]
    assert len(esc) == 1 and "已超时 1 小时" in esc[0] and "状态：等待审批" in esc[0]
    parts = [x for x in texts if "INC-2 官方声明" in x]
    assert len(parts) > 1
    joined = "\n".join(parts)
    for i in range(200):
        assert f"第 {i:03d} 行" in joined
    assert res["sent"] == 10
    assert {r.status for r in outbox(warehouse)} == {"sent"}
