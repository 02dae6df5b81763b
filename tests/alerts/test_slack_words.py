"""Slack's context line speaks the operator's language: severity and kind in words."""
from __future__ import annotations

import json

import pytest

from tasks.alerts.channels import Message, SlackChannel
from tasks.alerts.routing import KNOWN_KINDS
from userops.i18n import t


def _context(payload) -> str:
    return [b for b in payload["blocks"] if b["type"] == "context"][0]["elements"][0]["text"]


def test_context_line_in_chinese_and_english(slack):
    ch = SlackChannel("slack", slack.url)
    msg = Message("升级：澄清步骤超时", "事件 INC-1", severity="critical", kind="crisis_escalation")
    ch.send(msg, "zh-CN")
    ch.send(msg, "en")
    zh, en = _context(slack.received[0]), _context(slack.received[1])
    assert zh == "严重 · 危机升级"
    assert "critical" not in zh and "crisis_escalation" not in zh
    assert en == "critical · crisis escalation"
    ch.send(Message("3 条告警", "- a\n- b\n- c", severity="warning", kind="merged", alerts=3), "zh-CN")
    assert _context(slack.received[2]) == "警告 · 合并告警 · 3 条告警"
    ch.send(Message("x", "y", severity="error", kind="threshold"), "zh-CN")  # a kind with no words: no code shown
    assert _context(slack.received[3]) == "错误"


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_known_kind_and_severity_has_words(lang):
    for kind in KNOWN_KINDS:
        assert t(f"alert.kind.{kind}", lang)
    for sev in ("info", "warning", "error", "critical"):
        assert t(f"alert.severity.{sev}", lang)
