"""`userops campaign ...`: plan --dry-run explains who would get what and why, masks
personal data and writes nothing; report and calendar read the warehouse; an invalid
definition stops with file, field and reason."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.campaigns.conftest import campaign, touches, write_campaign
from userops.cli import app

runner = CliRunner()


def test_plan_dry_run_report_calendar(warehouse, cdir, members, monkeypatch):
    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T04:00:00")
    write_campaign(cdir, campaign())
    res = runner.invoke(app, ["campaign", "plan", "wake", "--dry-run", "--as-of", "2026-11-20"])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "受众 400 人" in out and "已退订：0" in out and "全局频次上限：0" in out
    assert "预演：未写入任何数据，未发送任何消息。" in out
    assert "回T退订" in out  # the sample shows the unsubscribe keyword
    for name in members["customers"]["name"]:
        assert name not in out
    for phone in members["customers"]["phone"]:
        assert phone not in out
    assert touches(warehouse).empty
    res = runner.invoke(app, ["campaign", "plan", "wake", "--dry-run", "--json", "--as-of", "2026-11-20"])
    data = json.loads(res.output)
    assert data["stats"]["audience"] == 400 and data["dry_run"] is True
    # plan for real, then report and calendar
    res = runner.invoke(app, ["campaign", "plan", "wake", "--as-of", "2026-11-20"])
    assert res.exit_code == 0 and len(touches(warehouse)) == 400
    import re

    cost = touches(warehouse)["gift_cost"].fillna(0).sum()
    assert f"礼品成本 ¥{cost:,.2f}" in res.output and cost > 0, res.output  # money reads as money
    res = runner.invoke(app, ["campaign", "report", "wake"])
    assert res.exit_code == 0, res.output
    assert re.search(r"¥[\d,]+\.\d\d", res.output), res.output  # money reads as money in the report too (the table's gift cost)
    assert "增量收入" not in res.output  # no incremental revenue before a conclusion (windows open, nothing sent)
    assert "实验组" in res.output and "对照组" in res.output and "尚无结论" in res.output  # nothing sent yet, every window open
    res = runner.invoke(app, ["campaign", "calendar", "--json"])
    cal = json.loads(res.output)
    assert sum(r["planned"] for r in cal) == sum(1 for s in touches(warehouse)["status"] if s == "planned")
    res = runner.invoke(app, ["campaign", "list"])
    assert "wake" in res.output and "sms" in res.output


def test_list_validate_approve_in_chinese_by_default_and_english(warehouse, cdir, members, monkeypatch):
    from userops.settings import reset_settings

    write_campaign(cdir, campaign())
    write_campaign(cdir, campaign("zz", period="month", entry=[{"on": "stage_change", "to": ["silent"]}]))
    res = runner.invoke(app, ["campaign", "list"])
    assert res.exit_code == 0, res.output
    head = res.output.splitlines()[0]
    for zh in ("名称", "标题", "状态", "触发方式", "渠道", "周期", "对照组比例", "优先级", "文件"):
        assert zh in head
    for english in ("name", "title", "enabled", "entry", "channel", "period", "holdout", "priority", "file"):
        assert english not in head
    assert "唤醒测试" in res.output and "启用" in res.output and " on " not in res.output
    # trigger and period in the catalogue's words, no code
    assert "每晚" in res.output and "阶段变化（进入沉默）" in res.output and "每天" in res.output and "每月" in res.output, res.output
    for code in ("nightly", "stage_change", " day ", " month "):
        assert code not in res.output, res.output
    res = runner.invoke(app, ["campaign", "validate"])
    assert res.exit_code == 0 and "2 个活动定义有效：wake，zz" in res.output
    res = runner.invoke(app, ["campaign", "plan", "nope", "--dry-run"])
    assert res.exit_code == 2 and "没有活动 'nope'；已定义：wake，zz" in res.output
    # the per-variant and per-channel counts read "A 3, B 2", never a raw dict
    res = runner.invoke(app, ["campaign", "plan", "wake", "--dry-run", "--as-of", "2026-11-20"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "版本分布" in x)
    assert "{" not in line and "sms " in line and ("A " in line or "B " in line)
    res = runner.invoke(app, ["campaign", "approve", "wake"])
    assert res.exit_code == 0 and "已放行 0 条触达" in res.output

    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    res = runner.invoke(app, ["campaign", "list"])
    assert res.output.splitlines()[0].split() == ["name", "title", "enabled", "entry", "channel", "period", "holdout", "priority", "file"]
    assert "Wake test" in res.output and " on " in res.output
    assert "2 campaign definition(s) valid: wake, zz" in runner.invoke(app, ["campaign", "validate"]).output
    res = runner.invoke(app, ["campaign", "plan", "nope"])
    assert res.exit_code == 2 and "no campaign 'nope'; defined: wake, zz" in res.output
    assert "0 touch(es) released" in runner.invoke(app, ["campaign", "approve", "wake"]).output


def test_invalid_definition_stops_the_cli(warehouse, cdir, monkeypatch):
    from userops.settings import reset_settings

    write_campaign(cdir, campaign(audience={"sql": "DELETE FROM customers"}))
    res = runner.invoke(app, ["campaign", "plan", "wake", "--dry-run"])
    assert res.exit_code == 2
    assert "活动定义无效，未发送任何消息：" in res.output
    assert "wake.yaml：audience.sql：只允许只读的 SELECT（查询以 DELETE 开头）" in res.output and "read-only" not in res.output
    res = runner.invoke(app, ["campaign", "validate"])
    assert res.exit_code == 2
    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    res = runner.invoke(app, ["campaign", "validate"])
    assert res.exit_code == 2
    assert "wake.yaml: audience.sql: only a read-only SELECT is allowed (the query starts with DELETE)" in res.output


def test_a_channel_without_a_provider_is_refused_before_anything_is_planned(warehouse, cdir, members, monkeypatch):
    """`campaign run NAME --channel email` / `campaign send --channel email` with no SMTP
    server: one line naming the setting (exit 2), nothing planned or sent; it was a traceback."""
    monkeypatch.delenv("USEROPS_SMTP_URL", raising=False)
    write_campaign(cdir, campaign())
    for args in (["campaign", "run", "wake", "--channel", "email", "--local", "--as-of", "2026-11-20"], ["campaign", "send", "--channel", "email"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2 and "渠道 email 没有配置发送服务：请设置 USEROPS_SMTP_URL" in res.output, res.output
        assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)
    assert touches(warehouse).empty
