"""`userops alert …` commands, and no webhook token, signing secret, key, phone number or
email in any log line, command output, outbox row or posted message - on success and on
every kind of failure."""
from __future__ import annotations

import json
import logging
from datetime import date

import pytest
import typer
from typer.testing import CliRunner

from tasks.alerts import deliver_pending, enqueue_alert
from tests.alerts.conftest import DING_SECRET, outbox

DAY = date(2026, 11, 20)
AT_MOBILE = "13800138000"
PII = ["13812345678", "li.lei@example.com", AT_MOBILE]


def _app():
    from userops.cli import alert

    app = typer.Typer()
    alert.register(app)
    return app


def _run(*args):
    res = CliRunner().invoke(_app(), ["alert", *args])
    return res.exit_code, res.output


def test_alert_test_prints_the_channels_verdict(warehouse, use_channels, slack, dingtalk, wecom):
    use_channels(slack=slack, dingtalk=dingtalk, wecom=wecom, language="en")
    code, out = _run("test", "slack")
    assert code == 0 and "slack: ok" in out and len(slack.received) == 1
    assert "userops" in slack.received[0]["text"]
    code, out = _run("test", "wecom")
    assert code == 0 and "wecom: ok" in out
    dingtalk.secret = "SEC" + "1" * 64  # the robot's secret was reset in DingTalk
    code, out = _run("test", "dingtalk")
    assert code == 1 and "configuration error" in out and "310000" in out and "加签" in out
    slack.channel_state = "archived"
    code, out = _run("test", "slack")
    assert code == 1 and "channel is archived" in out
    code, out = _run("test", "teams")  # not a channel type: no USEROPS_TEAMS_WEBHOOK_URL to set
    assert code == 2 and "no such channel" in out and "slack, dingtalk, wecom" in out and "USEROPS_TEAMS" not in out


def test_alert_test_a_malformed_webhook_is_a_configuration_error(warehouse, use_channels, slack, monkeypatch):
    """'htps:/…' or no scheme at all is the operator's typo: a configuration error naming the
    setting to check (a retry would never fix it), with no part of the URL printed; a built-in
    channel left unset names its variable."""
    for bad in ("htps:/hooks.slack.test/services/T000/B000/XXXXSECRET", "hooks.slack.test/services/T000/B000/XXXXSECRET"):
        monkeypatch.setenv("USEROPS_SLACK_WEBHOOK_URL", bad)
        use_channels(language="en")
        code, out = _run("test", "slack")
        assert code == 1 and "configuration error" in out and "webhook URL is not a valid address" in out, out
        assert "unavailable" not in out and "XXXXSECRET" not in out
    use_channels(language="zh-CN")
    code, out = _run("test", "slack")
    assert code == 1 and "配置错误" in out and "webhook 地址无效" in out
    code, out = _run("test", "wecom")
    assert code == 2 and "USEROPS_WECOM_WEBHOOK_URL" in out


def test_alert_deliver_and_list(warehouse, use_channels, slack, clock):
    use_channels(slack=slack, language="en")
    enqueue_alert("health_breach", "满意度 82% < 85%", "x", subject="sat", day=DAY)
    enqueue_alert("flow_failed", "Flow failed: nightly", "y", subject="r1", day=DAY)
    slack.outage = "503"
    code, out = _run("deliver")
    assert code == 0 and "sent 0 alert(s)" in out and "2 waiting" in out and "slack: Slack unavailable (503" in out
    code, out = _run("list", "--status", "pending")
    assert code == 0 and "满意度 82% < 85%" in out and "last error: Slack unavailable (503" in out
    slack.outage = None
    clock.advance(3600)
    code, out = _run("deliver")
    assert "sent 2 alert(s)" in out
    code, out = _run("list")
    assert out.count(" sent ") == 2
    code, out = _run("channels")
    assert code == 0 and "slack (slack, settings, 20/min)" in out and "digest" in out
    assert slack.token not in out


def test_alert_commands_speak_chinese_by_default(warehouse, use_channels, slack, dingtalk, clock):
    """zh-CN is the default: the list's headers, the deliver and test lines, the channels'
    verdicts and errors are Chinese; an unknown --status is named with the statuses the
    outbox has (exit 2), not "no alerts"."""
    use_channels(slack=slack, dingtalk=dingtalk, alerts__routes=json.dumps({"*": ["slack"]}))
    enqueue_alert("health_breach", "满意度 82% < 85%", "x", subject="sat", day=DAY)
    code, out = _run("list")
    assert code == 0 and "编号" in out and "创建时间（UTC）" in out and "状态" in out and "标题" in out
    for english in ("created (UTC)", "severity", "tries", "next (UTC)", "title"):
        assert english not in out
    slack.outage = "503"
    code, out = _run("deliver")
    assert code == 0 and "已发送 0 条告警" in out and "1 条等待" in out and "仍有 1 条告警在队列中" in out and "alert(s)" not in out
    assert "slack：Slack 暂不可用（503 " in out and "unavailable" not in out  # the channel's verdict
    code, out = _run("list", "--status", "pending")
    assert code == 0 and "最近错误：Slack 暂不可用（503 " in out and "last error" not in out
    code, out = _run("list", "--status", "bogus")
    assert code == 2 and "bogus" in out and "no alerts" not in out and "没有告警" not in out
    assert "--status" in out and all(s in out for s in ("pending", "sending", "sent", "failed"))  # (rich wraps the box)
    slack.outage = None
    code, out = _run("test", "slack")
    assert code == 0 and "slack：成功" in out and "accepted" not in out
    slack.channel_state = "archived"
    code, out = _run("test", "slack")
    assert code == 1 and "slack：配置错误：Slack 频道已归档（410 channel_is_archived）：请取消归档，或为其他频道创建 webhook" in out
    slack.channel_state = "ok"
    dingtalk.keyword = "监控"  # the robot only takes messages with its custom keyword
    code, out = _run("test", "dingtalk")
    assert code == 1 and "dingtalk：配置错误：钉钉机器人安全校验未通过（310000：" in out
    assert "请检查机器人的加签密钥、自定义关键词或 IP 白名单" in out and "configuration error" not in out
    code, out = _run("test", "teams")
    assert code == 2 and "没有这个渠道" in out and "USEROPS_TEAMS_WEBHOOK_URL" not in out
    code, out = _run("list", "--status", "failed")
    assert code == 0 and out.strip() == "没有告警。"


def test_no_secrets_or_personal_data_anywhere(warehouse, use_channels, slack, dingtalk, wecom, clock, caplog, capsys, monkeypatch):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    monkeypatch.setenv("USEROPS_ALERTS__DINGTALK_AT_MOBILES", json.dumps([AT_MOBILE]))
    use_channels(slack=slack, dingtalk=dingtalk, wecom=wecom)
    secrets = [slack.token, slack.path, dingtalk.token, DING_SECRET, wecom.key]
    body = "客户 13812345678 / li.lei@example.com 投诉;webhook " + slack.url + " key=" + wecom.key
    cli_out = []
    # success (with an @-mention on DingTalk)
    enqueue_alert("flow_failed", "流程失败 li.lei@example.com", body, severity="error", subject="ok", day=DAY)
    deliver_pending(now=clock.utc())
    # every kind of failure: refused config, wrong signature, rate limit, outage, connection refused
    slack.channel_state = "prohibited"
    dingtalk.secret = "SEC" + "2" * 64
    wecom.script(200, {"errcode": 45009, "errmsg": f"api freq out of limit, key {wecom.key}"})
    enqueue_alert("health_breach", "投诉率 13812345678", body, subject="b", day=DAY)
    deliver_pending(now=clock.utc())
    slack.stop()
    wecom.outage = "reset"
    clock.advance(7200)
    enqueue_alert("model_drift", "drift", body, subject="c", day=DAY)
    deliver_pending(now=clock.utc())
    for args in (["test", "slack"], ["test", "dingtalk"], ["test", "wecom"], ["list"], ["channels"], ["deliver"]):
        cli_out.append(_run(*args)[1])
    captured = capsys.readouterr()
    everything = "\n".join([caplog.text, captured.out, captured.err, *cli_out])
    for r in outbox(warehouse):
        everything += "\n" + "\n".join(str(x) for x in (r.title, r.body, r.payload, r.last_error))
    assert "/services/***" in caplog.text  # urllib3 logged its request line: redacted at the source
    for s in secrets + PII:
        assert s not in everything, f"leaked: {s[:6]}…"
    # what reached the services: no personal data and no secrets in the messages
    posted = [json.loads(r["body"]) for x in (slack, dingtalk, wecom) for r in x.requests if r["body"]]
    assert len(posted) >= 3
    for p in posted:
        at = p.pop("at", None)
        text = json.dumps(p, ensure_ascii=False)
        if at:  # the @-mention: the API's at field and, for DingTalk to notify, "@<mobile>" in the text
            assert at["atMobiles"] == [AT_MOBILE]
            assert f"@{AT_MOBILE}" in text
            text = text.replace(f"@{AT_MOBILE}", "@")
        for s in secrets + PII:
            assert s not in text, f"posted: {s[:6]}…"
    assert any("at" in json.loads(r["body"]) for r in dingtalk.requests if r["body"])


@pytest.mark.parametrize("text", ["https://oapi.dingtalk.com/robot/send?access_token=abcdef0123&timestamp=1&sign=xyz", "https://hooks.slack.com/services/T000/B000/XXXXXXXX", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx"])
def test_redaction_of_webhook_urls(text):
    from tasks.alerts.safety import clean

    out = clean(f"error posting to {text}")
    for part in ("abcdef0123", "XXXXXXXX", "693a91f6", "sign=xyz"):
        assert part not in out
