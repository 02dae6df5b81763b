"""Slack refuses a message's blocks: the text fallback carries the part whole (split into
several text messages within Slack's limit), never just the title or a cut text."""
from __future__ import annotations

import json
from datetime import date

import pytest

from tasks.alerts import deliver_pending, enqueue_alert
from tasks.alerts.channels import Message, PayloadError, SlackChannel
from tests.alerts.conftest import outbox

LINK = "http://127.0.0.1:4200/runs/flow-run/7aa1c7ad"


def _texts(slack) -> list[str]:
    return [p["text"] for p in slack.received if "blocks" not in p]


def test_single_part_fallback_is_whole_and_split_within_the_text_limit(slack):
    body = "\n".join(f"- 第 {i:03d} 行：客户分层变化明细说明，含原因与建议" for i in range(300))  # ~9 000 chars
    slack.script(400, "invalid_blocks")
    n = SlackChannel("slack", slack.url).send(Message("夜间摘要", body, link=LINK), "zh-CN")
    assert n == 1
    texts = _texts(slack)
    assert len(texts) > 1 and all(len(x) <= 4000 for x in texts)
    joined = "\n".join(texts)
    for i in range(300):
        assert f"第 {i:03d} 行" in joined
    assert LINK in joined and all("夜间摘要" in x for x in texts) and "（续 1/" in texts[0]
    assert "…" not in joined


def test_multi_part_fallback_carries_its_part_not_only_the_title(slack):
    # more than 48 sections of 3 000 bytes: several Slack parts
    body = "\n".join(f"第 {i:04d} 行 " + "明细" * 30 for i in range(2600))
    ch = SlackChannel("slack", slack.url)
    parts = ch.render(Message("夜间摘要", body), "zh-CN")
    assert len(parts) > 1
    slack.script(400, "invalid_blocks")
    ch.post(parts[0])
    texts = _texts(slack)
    assert texts, "nothing posted"
    joined = "\n".join(texts)
    first_part = "\n".join(b["text"]["text"] for b in parts[0]["blocks"] if b["type"] == "section")
    first_lines = [ln for ln in first_part.split("\n") if ln]
    assert len(first_lines) > 100
    for ln in first_lines:
        assert ln in joined
    assert all(len(x) <= 4000 for x in texts)
    assert "_text_fallback" not in json.dumps(slack.requests)  # the fallback never goes over the wire


def test_text_refused_too_is_a_refusal_with_both_reasons(slack):
    slack.script(400, "invalid_blocks")
    slack.script(400, "no_text")
    with pytest.raises(PayloadError) as ei:
        SlackChannel("slack", slack.url).send(Message("t", "body"), "zh-CN")
    assert "invalid_blocks" in ei.value.localized("zh-CN") and "no_text" in ei.value.localized("zh-CN")


def test_api_style_ok_false_answer_is_a_refusal(slack):
    slack.script(200, {"ok": False, "error": "invalid_blocks"})
    SlackChannel("slack", slack.url).send(Message("标题", "第一行\n第二行"), "zh-CN")
    texts = _texts(slack)
    assert len(texts) == 1 and "第一行" in texts[0] and "第二行" in texts[0]


def test_outbox_row_sent_only_with_the_whole_body(warehouse, use_channels, slack, clock):
    use_channels(slack=slack)
    body = "\n".join(f"第 {i:03d} 行：说明" + "x" * 40 for i in range(150))
    enqueue_alert("digest", "夜间摘要", body, day=date(2026, 11, 20))
    slack.script(400, "invalid_blocks")
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 1
    joined = "\n".join(_texts(slack))
    for i in range(150):
        assert f"第 {i:03d} 行" in joined
    assert outbox(warehouse)[0].status == "sent"
