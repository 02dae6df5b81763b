"""Channel clients against local services speaking each wire format (no warehouse)."""
from __future__ import annotations

import json
import urllib.parse

import pytest

from tasks.alerts.channels import (
    ConfigError,
    DingTalkChannel,
    Message,
    PayloadError,
    RateLimited,
    SlackChannel,
    TransientError,
    WeComChannel,
    dingtalk_sign,
    dingtalk_signed_url,
    split_bytes,
)
from tests.alerts.conftest import DING_SECRET
from tests.fakes.dingtalk import FakeDingTalk, expected_sign

LINK = "http://127.0.0.1:4200/runs/flow-run/7aa1c7ad-8a09-4725-b429-691c3870a040"


# ----------------------------------------------------------------------------- DingTalk signing
def test_dingtalk_signature_known_vector():
    # base64(HmacSHA256(key="secret", msg="1700000000000\nsecret")), as in the robot's docs' recipe
    assert dingtalk_sign(1700000000000, "secret") == "OuzzJR5+xZ4/EYwqtNt6sMYZQMTa/HEGvc9miJe7XzY="
    url = dingtalk_signed_url("https://oapi.dingtalk.com/robot/send?access_token=abc", "secret", 1700000000000)
    assert url == "https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1700000000000&sign=OuzzJR5%2BxZ4%2FEYwqtNt6sMYZQMTa%2FHEGvc9miJe7XzY%3D"
    # the query decodes back to the exact signature the robot recomputes
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q["sign"][0] == expected_sign("1700000000000", "secret")


def test_dingtalk_signed_message_accepted(dingtalk, clock):
    ch = DingTalkChannel("dingtalk", dingtalk.url, secret=DING_SECRET, clock=clock)
    assert ch.send(Message("夜间任务失败", "- 表:orders\n- 错误:超时", severity="error")) == 1
    assert len(dingtalk.received) == 1
    p = dingtalk.received[0]
    assert p["msgtype"] == "markdown" and "夜间任务失败" in p["markdown"]["text"]
    req = dingtalk.requests[-1]["query"]
    assert req["timestamp"] == str(int(clock() * 1000))
    assert req["sign"] == expected_sign(req["timestamp"], DING_SECRET)


@pytest.mark.parametrize(
    "mutate, words",
    [
        (lambda ch, robot, clock: setattr(ch, "_secret", "SEC" + "0" * 64), "sign"),  # wrong secret
        (lambda ch, robot, clock: setattr(ch, "clock", lambda: clock() - 7200), "sign"),  # stale timestamp
        (lambda ch, robot, clock: setattr(robot, "keyword", "监控"), "keyword"),
        (lambda ch, robot, clock: setattr(robot, "ip_allowed", False), "IP"),
    ],
)
def test_dingtalk_310000_is_a_configuration_error(dingtalk, clock, mutate, words):
    ch = DingTalkChannel("dingtalk", dingtalk.url, secret=DING_SECRET, clock=clock)
    mutate(ch, dingtalk, clock)
    with pytest.raises(ConfigError) as ei:
        ch.send(Message("t", "b"))
    text = str(ei.value)
    assert "310000" in text and "configuration error" in text and words in text
    assert dingtalk.received == []
    assert DING_SECRET not in text and dingtalk.token not in text


def test_channel_verdicts_in_both_languages(dingtalk, wecom, clock):
    """The robot's answer is the operator's text: the errcode, what it means and what to
    fix, in zh-CN (default) and en; str() stays English for logs and tracebacks."""
    import pickle

    dingtalk.keyword = "监控"
    ch = DingTalkChannel("dingtalk", dingtalk.url, secret=DING_SECRET, clock=clock)
    with pytest.raises(ConfigError) as ei:
        ch.send(Message("t", "b"))
    err = ei.value
    assert err.localized() == err.localized("zh-CN") == (
        "钉钉机器人安全校验未通过（310000：keywords not in content）：这是配置错误 - 请检查机器人的加签密钥、自定义关键词或 IP 白名单"
    )
    assert err.localized("en") == str(err) == (
        "DingTalk refused the robot's security check (310000: keywords not in content): this is a configuration error "
        "- check the signing secret (加签), the custom keyword, or the IP allow-list of the robot"
    )
    assert (err.verdict_text(), err.verdict_text("en"), err.verdict) == ("配置错误", "configuration error", "configuration error")
    again = pickle.loads(pickle.dumps(err))  # a task's exception crosses processes with its key
    assert type(again) is ConfigError and again.localized() == err.localized() and again.reached
    wecom.script(200, {"errcode": 93000, "errmsg": "invalid webhook url"})
    with pytest.raises(ConfigError) as ei:
        WeComChannel("wecom", wecom.url).send(Message("t", "b"))
    assert ei.value.localized("zh-CN") == "企业微信拒绝了该机器人（93000：invalid webhook url）：webhook 的 key 有误，或机器人已被移除"
    assert ei.value.localized("en") == "WeCom refused the robot (93000: invalid webhook url): the webhook key is wrong or the robot was removed"


def test_dingtalk_http_200_with_errcode_is_not_success(dingtalk, clock):
    ch = DingTalkChannel("dingtalk", dingtalk.url, secret=DING_SECRET, clock=clock)
    dingtalk.script(200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"})
    with pytest.raises(RateLimited) as ei:
        ch.send(Message("t", "b"))
    assert ei.value.retry_after and ei.value.retry_after >= 60
    dingtalk.script(200, {"errcode": 300001, "errmsg": "token is not exist"})
    with pytest.raises(ConfigError):
        ch.send(Message("t", "b"))
    dingtalk.script(200, {"errcode": 99999, "errmsg": "system busy"})
    with pytest.raises(TransientError):
        ch.send(Message("t", "b"))
    dingtalk.script(200, "<html>gateway</html>")
    with pytest.raises(TransientError):
        ch.send(Message("t", "b"))
    assert dingtalk.received == []


def test_dingtalk_action_card_and_mentions(dingtalk, clock):
    mobiles = ["13800138000"]
    ch = DingTalkChannel("dingtalk", dingtalk.url, secret=DING_SECRET, at_mobiles=mobiles, clock=clock)
    ch.send(Message("Flow failed", "boom", severity="warning", link=LINK, link_label="查看运行"))
    card = dingtalk.received[-1]
    assert card["msgtype"] == "actionCard"
    assert card["actionCard"]["singleURL"] == LINK and card["actionCard"]["singleTitle"] == "查看运行"
    ch.send(Message("Flow failed", "boom", severity="error", link=LINK, mention=True))
    md = dingtalk.received[-1]
    assert md["msgtype"] == "markdown" and md["at"]["atMobiles"] == mobiles and md["at"]["isAtAll"] is False
    assert LINK in md["markdown"]["text"]
    # DingTalk notifies only when the @ is in the markdown text too (as its docs show)
    assert md["markdown"]["text"].rstrip().endswith("@13800138000")
    assert dingtalk.notified == ["13800138000"] and dingtalk.at_not_in_text == []


def test_dingtalk_long_message_split_under_limit(dingtalk, clock):
    ch = DingTalkChannel("dingtalk", dingtalk.url, secret=DING_SECRET, clock=clock)
    body = "\n".join(f"- 第 {i} 行:客户分层变化明细说明" * 3 for i in range(600))
    n = ch.send(Message("很长的消息", body))
    assert n > 1 and len(dingtalk.received) == n and dingtalk.rejected == []
    texts = dingtalk.message_texts()
    assert all(len(x.encode()) <= 20_000 for x in texts)
    assert "第 599 行" in texts[-1] and "第 0 行" in texts[0]


# ----------------------------------------------------------------------------- Slack
def test_slack_text_and_blocks(slack):
    ch = SlackChannel("slack", slack.url)
    ch.send(Message("Nightly digest 2026-11-20", "**Run**: completed\n- customers: 10 loaded", severity="info", kind="digest", link=LINK, link_label="View run"))
    p = slack.received[-1]
    assert "Nightly digest 2026-11-20" in p["text"] and LINK in p["text"]  # notification fallback
    types = [b["type"] for b in p["blocks"]]
    assert types[0] == "header" and "section" in types and types[-1] == "actions"
    section = next(b for b in p["blocks"] if b["type"] == "section")["text"]["text"]
    assert "*Run*" in section and "• customers" in section
    assert p["blocks"][-1]["elements"][0]["url"] == LINK


def test_slack_big_message_is_split_within_block_kit_limits(slack):
    ch = SlackChannel("slack", slack.url)
    n = ch.send(Message("x" * 400, "\n".join("line %d " % i + "y" * 200 for i in range(2000)), link=LINK))
    assert n > 1 and slack.rejected == [] and len(slack.received) == n
    assert all(len(p["blocks"]) <= 50 for p in slack.received)
    sections = "\n".join(b["text"]["text"] for p in slack.received for b in p["blocks"] if b["type"] == "section")
    assert all(f"line {i} " in sections for i in (0, 999, 1999))  # nothing cut off
    assert slack.received[-1]["blocks"][-1]["elements"][0]["url"] == LINK


@pytest.mark.parametrize(
    "state, status, code, words",
    [
        ("archived", 410, "channel_is_archived", "archived"),
        ("not_found", 404, "channel_not_found", "not found"),
        ("prohibited", 403, "action_prohibited", "revoked"),
    ],
)
def test_slack_permanent_errors_are_configuration_errors(slack, state, status, code, words):
    slack.channel_state = state
    with pytest.raises(ConfigError) as ei:
        SlackChannel("slack", slack.url).send(Message("t", "b"))
    text = str(ei.value)
    assert str(status) in text and code in text and words in text
    assert slack.token not in text


def test_slack_wrong_token_is_a_configuration_error(slack):
    with pytest.raises(ConfigError) as ei:
        SlackChannel("slack", slack.url[:-4] + "zzzz").send(Message("t", "b"))
    assert "403" in str(ei.value)


def test_slack_429_retry_after(slack, clock):
    slack.rate_per_minute = 2
    ch = SlackChannel("slack", slack.url)
    ch.send(Message("a", "1"))
    clock.advance(20)
    ch.send(Message("b", "2"))
    with pytest.raises(RateLimited) as ei:
        ch.send(Message("c", "3"))
    assert 39 <= ei.value.retry_after <= 41  # the first message leaves the window in 40 s


def test_slack_invalid_blocks_fall_back_to_text(slack):
    slack.script(400, "invalid_blocks")
    SlackChannel("slack", slack.url).send(Message("t", "body"))
    assert len(slack.received) == 1 and "blocks" not in slack.received[0]
    slack.script(400, "invalid_payload", times=2)
    with pytest.raises(PayloadError):
        SlackChannel("slack", slack.url).send(Message("t", "body"))


def test_outage_is_transient_and_never_quotes_the_url(slack):
    slack.outage = "reset"
    with pytest.raises(TransientError) as ei:
        SlackChannel("slack", slack.url).send(Message("t", "b"))
    assert slack.token not in str(ei.value) and "/services/" not in str(ei.value)
    slack.outage = "503"
    with pytest.raises(TransientError):
        SlackChannel("slack", slack.url).send(Message("t", "b"))
    slack.stop()
    with pytest.raises(TransientError) as ei:
        SlackChannel("slack", slack.url, timeout=1).send(Message("t", "b"))
    assert "connection" in str(ei.value) and slack.token not in str(ei.value)


# ----------------------------------------------------------------------------- WeCom
@pytest.mark.parametrize("msgtype, limit", [("text", 2048), ("markdown", 4096)])
def test_wecom_splits_at_the_byte_limit(wecom, msgtype, limit):
    ch = WeComChannel("wecom", wecom.url, msgtype=msgtype)
    body = "\n".join(f"- 门店 {i:03d}:投诉率上升,需要质量溯源和服务升级" for i in range(300))
    n = ch.send(Message("投诉率告警", body, link=LINK))
    assert n > 1
    assert wecom.rejected == [] and len(wecom.received) == n
    contents = wecom.contents()
    assert all(len(c.encode("utf-8")) <= limit for c in contents)
    assert max(len(c.encode("utf-8")) for c in contents) > limit * 0.8  # parts are full, not tiny
    joined = "\n".join(contents)
    for i in (0, 150, 299):
        assert f"门店 {i:03d}" in joined
    assert LINK in contents[-1]
    assert "（第 1/" in contents[0] or "(part 1/" in contents[0]


def test_wecom_errors(wecom):
    with pytest.raises(ConfigError) as ei:
        WeComChannel("wecom", wecom.url.replace(wecom.key, "00000000-0000-0000-0000-000000000000")).send(Message("t", "b"))
    assert "93000" in str(ei.value) and wecom.key not in str(ei.value)
    wecom.script(200, {"errcode": 45009, "errmsg": "api freq out of limit"})
    with pytest.raises(RateLimited):
        WeComChannel("wecom", wecom.url).send(Message("t", "b"))


def test_split_bytes_never_cuts_a_character():
    text = "汉字" * 5000 + "\n" + "ab" * 10
    parts = split_bytes(text, 1000)
    assert all(len(p.encode("utf-8")) <= 1000 for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    assert len(parts) > 1 and all(parts)  # it did split, into non-empty parts


def test_payload_mentions_per_channel(dingtalk, slack, wecom, clock):
    """Escalations carry people to @: mobiles go in API fields, ids where the service takes
    them; only DingTalk's markdown text names them too (its @ notifies only then); no other
    message text ever holds a mobile number."""
    msg = Message("升级:补偿步骤超时", "事件 INC1", severity="critical", mentions=["13900139000", "manager01", "U024BE7LH"])
    DingTalkChannel("dingtalk", dingtalk.url, secret=DING_SECRET, clock=clock).send(msg)
    at = dingtalk.received[-1]["at"]
    assert at["atMobiles"] == ["13900139000"] and "manager01" in at["atUserIds"]
    assert {"13900139000", "manager01"} <= set(dingtalk.notified) and dingtalk.at_not_in_text == []
    SlackChannel("slack", slack.url).send(msg)
    assert "<@U024BE7LH>" in slack.received[-1]["text"]
    WeComChannel("wecom", wecom.url).send(msg)
    assert "<@manager01>" in wecom.contents()[-1]
    WeComChannel("wecom", wecom.url, msgtype="text").send(msg)
    assert wecom.received[-1]["text"]["mentioned_mobile_list"] == ["13900139000"]
    texts = json.dumps([slack.received[-1]["text"], slack.received[-1]["blocks"], wecom.contents()], ensure_ascii=False)
    assert "13900139000" not in texts


def test_the_log_channel_says_nothing_was_sent_and_where_to_configure(warehouse, caplog):
    """No alert channel configured: the run-log line is a catalogue text and the delivery
    summary (deliver-alerts artifact) says the alerts were only written to the log, never '成功'."""
    from datetime import date

    from tasks.alerts import deliver_pending, enqueue_alert
    from tasks.artifacts import alert_delivery_lines

    enqueue_alert("health_breach", "投诉率 6% 超阈值", "details", severity="critical", day=date(2026, 11, 20))
    with caplog.at_level("INFO", logger="userops.alerts"):
        res = deliver_pending()
    assert (res["sent"], res["logged"]) == (0, 1)  # written to the log, sent nowhere
    line = next(r.getMessage() for r in caplog.records if "投诉率 6% 超阈值" in r.getMessage())
    assert "alert [critical]" not in line and "未配置告警渠道" in line, line
    lines = alert_delivery_lines(res, "zh-CN")
    log_line = next(x for x in lines if x.startswith("渠道 log"))
    assert "成功" not in log_line and "只写入了运行日志" in log_line and "docs/alerts.md" in log_line, log_line
    assert "USEROPS_SLACK_WEBHOOK_URL" in log_line
    assert "告警：发送 0 条" in lines[0] and "另有 1 条告警只写入了运行日志，没有发出" in lines[1], lines
