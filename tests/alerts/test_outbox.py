"""Outbox delivery on SQLite and PostgreSQL: dedupe, routing, rate limits with merging,
outage and recovery, retries with backoff, configuration errors, concurrent deliverers."""
from __future__ import annotations

import json
import threading
from datetime import date, timedelta

import pytest
import sqlalchemy as sa

from tasks.alerts import deliver_pending, enqueue_alert
from tasks.alerts.outbox import OUTBOX, SENDS
from tests.alerts.conftest import outbox

DAY = date(2026, 11, 20)


def _sends(engine, channel):
    with engine.connect() as conn:
        return conn.execute(sa.select(SENDS).where(SENDS.c.channel == channel).order_by(SENDS.c.id)).all()


def test_enqueue_dedupes_per_alert_and_day_and_scrubs(warehouse, use_channels, slack):
    use_channels(slack=slack)
    assert enqueue_alert("health_breach", "沉默占比 38% > 35%", "联系 13812345678 / li.lei@example.com", subject="silent_share", day=DAY) == 1
    assert enqueue_alert("health_breach", "again", "again", subject="silent_share", day=DAY) == 0
    assert enqueue_alert("health_breach", "next day", "x", subject="silent_share", day=DAY + timedelta(days=1)) == 1
    rows = outbox(warehouse)
    assert len(rows) == 2 and {r.channel for r in rows} == {"slack"}
    assert "13812345678" not in rows[0].body and "li.lei@example.com" not in rows[0].body
    res = deliver_pending(now=None)
    assert res["sent"] == 2
    assert deliver_pending()["sent"] == 0  # nothing twice
    assert len(slack.received) == 2


def test_several_channels_and_routes_per_kind(warehouse, use_channels, slack, dingtalk, wecom, clock):
    use_channels(slack=slack, dingtalk=dingtalk, wecom=wecom, alerts__routes=json.dumps({"digest": ["slack"], "flow_failed": ["slack", "dingtalk"], "*": ["wecom"]}))
    enqueue_alert("digest", "夜间摘要", "ok", day=DAY)
    enqueue_alert("flow_failed", "流程失败:nightly", "err", subject="run-1", day=DAY)
    enqueue_alert("model_drift", "模型漂移", "psi 0.3", day=DAY)
    by_kind = {}
    for r in outbox(warehouse):
        by_kind.setdefault(r.kind, set()).add(r.channel)
    assert by_kind == {"digest": {"slack"}, "flow_failed": {"slack", "dingtalk"}, "model_drift": {"wecom"}}
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 4 and res["channels"] == {"slack": "成功", "dingtalk": "成功", "wecom": "成功"}  # verdicts: zh-CN by default
    assert len(slack.received) == 2 and len(dingtalk.received) == 1 and len(wecom.received) == 1
    assert "模型漂移" in wecom.contents()[0]


def test_no_channel_configured_goes_to_the_log(warehouse, caplog):
    enqueue_alert("health_breach", "complaint rate 6% > 5%", "details", day=DAY)
    rows = outbox(warehouse)
    assert [r.channel for r in rows] == ["log"]
    with caplog.at_level("INFO", logger="userops.alerts"):
        res = deliver_pending()
    assert (res["sent"], res["logged"]) == (0, 1) and "complaint rate 6% > 5%" in caplog.text  # written to the log, not sent
    assert outbox(warehouse)[0].status == "sent"


def test_burst_of_100_alerts_is_merged_within_the_robots_limit(warehouse, use_channels, dingtalk, clock):
    """100 alerts at once to a robot that allows 20 messages a minute: nothing lost,
    nothing over the limit, everything merged into a few messages."""
    use_channels(dingtalk=dingtalk)
    for i in range(100):
        enqueue_alert("health_breach", f"门店 {i:03d} 投诉率超阈值", f"投诉率 {5 + i / 100:.2f}% > 5%", subject=f"store-{i}", day=DAY)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 100 and res["merged"] == 100 and res["deferred"] == 0
    assert dingtalk.rate_violations == 0 and dingtalk.rejected == []
    assert 1 <= len(dingtalk.received) <= 20
    text = "\n".join(dingtalk.message_texts())
    for i in range(100):
        assert f"门店 {i:03d} 投诉率超阈值" in text
    rows = outbox(warehouse)
    assert {r.status for r in rows} == {"sent"} and len({r.send_id for r in rows}) == len(dingtalk.received)
    assert "100" in dingtalk.received[0]["markdown"]["title"] or "条告警" in dingtalk.received[0]["markdown"]["title"]


def test_trickle_never_exceeds_the_limit_and_waits_for_the_next_minute(warehouse, use_channels, dingtalk, clock):
    """Alerts arriving one by one (one delivery each) cannot be merged: after 20 posts in a
    minute the rest wait - none lost, none sent twice, the robot never says 130101."""
    use_channels(dingtalk=dingtalk)
    for i in range(30):
        enqueue_alert("feedback_sla", f"SLA {i}", "no first response after 24h", subject=f"fb-{i}", day=DAY)
        deliver_pending(now=clock.utc())
        clock.advance(1)
    assert len(dingtalk.received) == 20 and dingtalk.rate_violations == 0
    pending = outbox(warehouse, status="pending")
    assert len(pending) == 10
    # next attempt: when the oldest post leaves the window, not before
    assert deliver_pending(now=clock.utc())["sent"] == 0 and len(dingtalk.received) == 20
    clock.advance(35)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 10 and dingtalk.rate_violations == 0
    # every alert exactly once across the two minutes
    assert sorted(int(x.split()[1]) for t in dingtalk.message_texts() for x in _titles(t)) == list(range(30))


def _titles(text: str) -> list[str]:
    import re

    return re.findall(r"SLA \d+", text)


def test_robot_says_send_too_fast_then_recovers(warehouse, use_channels, dingtalk, clock):
    """Someone else used the robot's budget: 130101 throttles the robot for 10 minutes (as
    DingTalk documents); nothing is posted to it meanwhile, no attempt is burnt, nothing lost."""
    use_channels(dingtalk=dingtalk)
    for _ in range(20):  # another sender filled this minute
        dingtalk.over_rate()
    enqueue_alert("model_drift", "模型漂移", "psi 0.31", day=DAY)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 0 and res["deferred"] == 1 and res["channels"]["dingtalk"].startswith("被限流：钉钉：发送过快（130101：")
    row = outbox(warehouse)[0]
    assert row.status == "pending" and row.attempts == 0 and "130101" in row.last_error
    assert row.next_attempt_at >= clock.utc() + timedelta(seconds=600)
    clock.advance(61)
    assert deliver_pending(now=clock.utc())["sent"] == 0  # still throttled: no request made
    clock.advance(4 * 60)
    enqueue_alert("model_drift", "模型漂移（二）", "psi 0.35", subject="again", day=DAY)
    res = deliver_pending(now=clock.utc())  # a new alert waits for the throttle's end too
    assert res["sent"] == 0 and res["channels"]["dingtalk"].startswith("被限流")
    assert len(dingtalk.requests) == 1 and dingtalk.rate_violations == 1
    clock.advance(6 * 60)
    assert deliver_pending(now=clock.utc())["sent"] == 2
    assert len(dingtalk.received) == 2 and dingtalk.rate_violations == 1
    assert {r.attempts for r in outbox(warehouse)} == {1}


@pytest.mark.parametrize("mode", ["503", "reset", "down"])
def test_outage_then_recovery_nothing_lost_nothing_doubled(warehouse, use_channels, slack, clock, mode):
    use_channels(slack=slack, alerts__backoff_seconds=30)
    for i in range(3):
        enqueue_alert("validation", f"orders batch rejected {i}", "bad rows", subject=f"r{i}", day=DAY)
    if mode == "down":
        slack.stop()
    else:
        slack.outage = mode
    res = deliver_pending(now=clock.utc())  # never raises
    assert res["sent"] == 0 and res["deferred"] == 3
    rows = outbox(warehouse)
    assert all(r.status == "pending" for r in rows)
    # the channel is tried once per pass, not hammered: one failed post for three alerts
    assert sum(r.attempts for r in rows) == 1
    assert min(r.next_attempt_at for r in rows) >= clock.utc() + timedelta(seconds=29)
    # still down on the next attempts: backoff grows (30 s, 60 s, ...)
    clock.advance(31)
    deliver_pending(now=clock.utc())
    r0 = outbox(warehouse)[0]
    assert r0.attempts == 2 and r0.next_attempt_at >= clock.utc() + timedelta(seconds=59)
    # before the backoff expires nothing is attempted
    n_requests = len(slack.requests)
    assert deliver_pending(now=clock.utc() + timedelta(seconds=10))["sent"] == 0
    assert len(slack.requests) == n_requests
    # the channel comes back
    if mode == "down":
        slack.start()
    slack.outage = None
    clock.advance(61)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 3 and res["channels"]["slack"] == "成功"
    assert deliver_pending(now=clock.utc() + timedelta(hours=1))["sent"] == 0
    titles = [p["blocks"][0]["text"]["text"] for p in slack.received]
    assert sorted(t.split()[-1] for t in titles) == ["0", "1", "2"]  # each exactly once
    assert all(r.status == "sent" and r.last_error is None for r in outbox(warehouse))


def test_slack_429_retry_after_is_respected(warehouse, use_channels, slack, clock):
    use_channels(slack=slack)
    enqueue_alert("health_breach", "satisfaction 82% < 85%", "x", day=DAY)
    slack.script(429, "rate_limited", {"Retry-After": "120"})
    res = deliver_pending(now=clock.utc())
    assert res["deferred"] == 1
    row = outbox(warehouse)[0]
    assert row.next_attempt_at >= clock.utc() + timedelta(seconds=119)
    assert deliver_pending(now=clock.utc() + timedelta(seconds=60))["sent"] == 0
    assert deliver_pending(now=clock.utc() + timedelta(seconds=121))["sent"] == 1
    assert len(slack.received) == 1


def test_configuration_error_waits_for_the_operator_then_delivers(warehouse, use_channels, slack, clock, caplog):
    use_channels(slack=slack, alerts__config_error_backoff_seconds=3600)
    enqueue_alert("flow_failed", "Flow failed: nightly", "x", subject="r1", day=DAY)
    slack.channel_state = "archived"
    with caplog.at_level("WARNING", logger="userops.alerts"):
        res = deliver_pending(now=clock.utc())
    zh = "Slack 频道已归档（410 channel_is_archived）：请取消归档，或为其他频道创建 webhook"
    assert res["channels"]["slack"] == zh  # the verdict names the code and what to fix, in zh-CN by default
    row = outbox(warehouse)[0]
    assert row.status == "pending" and row.last_error == zh
    assert f"告警：渠道 slack：{zh}" in caplog.text  # the run log's warning
    assert row.next_attempt_at >= clock.utc() + timedelta(minutes=59)
    # the same verdict in English when the operator reads English
    caplog.clear()
    with caplog.at_level("WARNING", logger="userops.alerts"):
        res = deliver_pending(now=clock.utc() + timedelta(minutes=61), lang="en")
    en = "Slack channel is archived (410 channel_is_archived): unarchive it or create a webhook for another channel"
    assert res["channels"]["slack"] == en and outbox(warehouse)[0].last_error == en
    assert f"alerts: channel slack: {en}" in caplog.text
    slack.channel_state = "ok"  # the operator unarchived it
    assert deliver_pending(now=clock.utc() + timedelta(minutes=122))["sent"] == 1


def test_refused_message_fails_alone(warehouse, use_channels, slack, clock):
    use_channels(slack=slack)
    enqueue_alert("health_breach", "a", "x", subject="a", day=DAY)
    enqueue_alert("health_breach", "b", "x", subject="b", day=DAY)
    slack.script(400, "invalid_payload", times=2)  # blocks refused, then the text fallback too
    res = deliver_pending(now=clock.utc())
    assert res["failed"] == 1 and res["sent"] == 1
    statuses = sorted(r.status for r in outbox(warehouse))
    assert statuses == ["failed", "sent"]


def test_gives_up_after_the_horizon(warehouse, use_channels, slack, clock):
    use_channels(slack=slack, alerts__give_up_hours=72)
    enqueue_alert("flow_failed", "old", "x", subject="r1", day=DAY)
    slack.outage = "503"
    deliver_pending(now=clock.utc())
    res = deliver_pending(now=clock.utc() + timedelta(hours=73))
    assert res["expired"] == 1
    row = outbox(warehouse)[0]
    assert row.status == "failed" and row.last_error == "Slack 暂不可用（503 service） | 72 小时后仍未送达，已放弃"


def test_route_to_an_unconfigured_channel_waits(warehouse, use_channels, slack, clock):
    use_channels(slack=slack, alerts__routes=json.dumps({"*": ["dingtalk"]}))
    enqueue_alert("model_drift", "drift", "x", day=DAY)
    res = deliver_pending(now=clock.utc())
    assert res["channels"] == {"dingtalk": "未配置"}
    row = outbox(warehouse)[0]
    assert row.status == "pending" and row.last_error == "渠道 'dingtalk' 未配置（设置或 Prefect block）"
    res = deliver_pending(now=clock.utc() + timedelta(hours=1), lang="en")
    assert res["channels"] == {"dingtalk": "not configured"}
    assert outbox(warehouse)[0].last_error == "channel 'dingtalk' is not configured (settings or Prefect block)"


def test_concurrent_deliverers_send_each_alert_once(warehouse, use_channels, slack, clock):
    use_channels(slack=slack, alerts__merge_over=1000)
    slack.rate_per_minute = None
    for i in range(12):
        enqueue_alert("feedback_sla", f"alert {i}", "x", subject=str(i), day=DAY)
    import tasks.alerts.outbox as ob
    from tasks.alerts.routing import load_channels

    chans = load_channels()
    chans["slack"].rate_per_minute = 1000
    barrier = threading.Barrier(3)
    results = []

    def worker():
        barrier.wait()
        results.append(ob.deliver_pending(now=clock.utc(), channels=chans))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sum(r["sent"] for r in results) == 12
    titles = [p["blocks"][0]["text"]["text"] for p in slack.received]
    assert len(titles) == 12 and len(set(titles)) == 12


def test_a_dead_deliverers_claim_expires(warehouse, use_channels, slack, clock):
    use_channels(slack=slack)
    enqueue_alert("flow_failed", "x", "y", subject="r", day=DAY)
    with warehouse.begin() as conn:  # a deliverer claimed it and died
        conn.execute(OUTBOX.update().values(status="sending", claim="dead", next_attempt_at=clock.utc() + timedelta(minutes=10)))
    assert deliver_pending(now=clock.utc())["sent"] == 0
    assert deliver_pending(now=clock.utc() + timedelta(minutes=11))["sent"] == 1
    assert len(slack.received) == 1


def test_split_message_resumes_after_the_parts_already_sent(warehouse, use_channels, wecom, clock):
    use_channels(wecom=wecom, alerts__wecom_msgtype="text")
    body = "\n".join(f"门店 {i:03d}:投诉率上升" for i in range(400))
    enqueue_alert("health_breach", "投诉率", body, day=DAY)
    wecom.script(200, {"errcode": 0, "errmsg": "ok"})  # part 1 accepted (scripted)...
    wecom.script(200, {"errcode": 45009, "errmsg": "api freq out of limit"})  # ...part 2 throttled
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 0
    row = outbox(warehouse)[0]
    assert json.loads(row.payload)["_parts_sent"] == 1
    clock.advance(61)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 1
    contents = wecom.contents()
    assert not any("（第 1/" in c for c in contents)  # part 1 not sent again
    assert "门店 399" in contents[-1]


def test_backlog_after_a_long_outage_goes_out_merged_and_complete(warehouse, use_channels, slack, wecom, clock):
    """600 alerts held back by an outage: once the channels are back every one of them
    arrives, in few messages, within the limits (Slack 50 blocks, WeCom 4096 bytes)."""
    use_channels(slack=slack, wecom=wecom)
    slack.rate_per_minute = 20
    with warehouse.begin() as conn:
        for i in range(600):
            enqueue_alert("feedback_sla", f"反馈超时 {i:04d}", f"门店 {i % 37} 的反馈 24 小时无人回复", subject=str(i), day=DAY, conn=conn)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 1200 and res["deferred"] == 0
    assert slack.rejected == [] and wecom.rejected == [] and slack.rate_violations == 0 and wecom.rate_violations == 0
    assert len(slack.received) <= 20 and len(wecom.received) <= 20
    for fake_text in (json.dumps(slack.received, ensure_ascii=False), "\n".join(wecom.contents())):
        assert all(f"反馈超时 {i:04d}" in fake_text for i in range(600))
