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
    assert "受众 400 人" in out and "已退订: 0" in out and "全局频次上限: 0" in out
    assert "预演:未写入任何数据,未发送任何消息。" in out
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
    res = runner.invoke(app, ["campaign", "report", "wake"])
    assert res.exit_code == 0, res.output
    assert "实验组" in res.output and "对照组" in res.output and "暂不显著" in res.output  # nobody converted yet
    res = runner.invoke(app, ["campaign", "calendar", "--json"])
    cal = json.loads(res.output)
    assert sum(r["planned"] for r in cal) == sum(1 for s in touches(warehouse)["status"] if s == "planned")
    res = runner.invoke(app, ["campaign", "list"])
    assert "wake" in res.output and "sms" in res.output


def test_invalid_definition_stops_the_cli(warehouse, cdir):
    write_campaign(cdir, campaign(audience={"sql": "DELETE FROM customers"}))
    res = runner.invoke(app, ["campaign", "plan", "wake", "--dry-run"])
    assert res.exit_code == 2
    assert "wake.yaml: audience.sql: only a read-only SELECT is allowed (the query starts with DELETE)" in res.output
    res = runner.invoke(app, ["campaign", "validate"])
    assert res.exit_code == 2
