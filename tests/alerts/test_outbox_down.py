"""The warehouse (and so the alert outbox) is down when a flow fails: the failure hook posts
the alert straight to the configured channels - once, formatted as the outbox would, with
no personal data or secret - and the log says what really happened. Real HTTP to the fake
Slack / DingTalk robots on loopback; the state hooks are called as Prefect calls them."""
from __future__ import annotations

import logging
import socket
import uuid
from types import SimpleNamespace

import pytest

from flows.hooks import alert_on_failure


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


# the failing runs here stand for deployed runs, on a Prefect server that outlives them: their
# alerts link to the run's page (a run on Prefect's temporary server gets none)
pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def warehouse_down(monkeypatch):
    """The warehouse unreachable. The nightly's hook publishes the digest of what the run
    knows as an artifact: kept in ``PUBLISHED`` here (outside a flow run Prefect would start
    a temporary server for it; tests/alerts/test_digest_warehouse_down.py runs the real one)."""
    import tasks.alerts.digest as digest_mod
    from userops.db import dispose_engines
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_DATABASE_URL", f"postgresql://ops:pw@127.0.0.1:{_closed_port()}/shop")
    monkeypatch.setattr(digest_mod, "publish_digest_artifact", PUBLISHED.append)
    PUBLISHED.clear()
    reset_settings()
    dispose_engines()
    yield
    dispose_engines()


PUBLISHED: list = []  # the digests the hook published (warehouse_down)


class _State:
    name = "Failed"

    def __init__(self, exc):
        self.exc = exc
        self.message = f"Flow run encountered an exception: {exc}"

    def result(self, raise_on_failure=True):
        return self.exc


def _fail(flow_name: str = "nightly", exc: BaseException | None = None):
    run = SimpleNamespace(id=uuid.uuid4(), name=f"{flow_name}-2026-11-20", parent_task_run_id=None, parameters={})
    exc = exc or RuntimeError("warehouse gone while serving li.lei@example.com 13812345678")
    alert_on_failure(SimpleNamespace(name=flow_name), run, _State(exc))
    return run


def test_failure_alert_goes_straight_to_the_channels_when_the_outbox_is_down(warehouse_down, use_channels, slack, dingtalk, caplog):
    use_channels(slack=slack, dingtalk=dingtalk)
    caplog.set_level(logging.INFO, logger="userops.alerts")
    run = _fail()
    # the hook again for the same run (a failing subflow and its parent share the root run): nothing more
    alert_on_failure(SimpleNamespace(name="nightly"), run, _State(RuntimeError("again")))
    assert len(slack.received) == 1 and len(dingtalk.received) == 1 and not slack.rejected and not dingtalk.rejected
    text = slack.received[0]["text"]
    assert "流程失败：nightly" in text and "RuntimeError" in text and f"/runs/flow-run/{run.id}" in text
    assert "13812345678" not in text and "li.lei@example.com" not in text
    ding = str(dingtalk.received[0])
    assert "流程失败：nightly" in ding and "13812345678" not in ding
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "直接发送到 slack，dingtalk" in logged or "直接发送到 dingtalk，slack" in logged
    assert "留在发件箱" not in logged and "stay in the outbox" not in logged
    assert slack.token not in logged and dingtalk.secret not in logged
    # the night's digest: in the Prefect UI only (no outbox), once, saying the warehouse could not be read
    assert len(PUBLISHED) == 1 and "数据仓库读不到" in PUBLISHED[0].body and "**运行**：失败" in PUBLISHED[0].body, PUBLISHED
    assert "只发布在 Prefect 界面" in logged and "无法生成本次夜间摘要" not in logged, logged


def test_rejected_batch_alerts_both_kinds_directly(warehouse_down, use_channels, slack):
    from tasks.validate import BatchRejected

    use_channels(slack=slack, language="en")
    _fail(exc=BatchRejected("orders", "orders: 300 of 3106 rows (9.7%) failed validation, above the 5% limit", {"amount_negative": 300}))
    titles = sorted(p["blocks"][0]["text"]["text"] for p in slack.received)
    assert len(titles) == 2 and any("Flow failed: nightly" in x for x in titles) and any("orders batch was rejected" in x for x in titles)


def test_the_log_says_so_when_the_direct_send_fails_too(warehouse_down, use_channels, slack, caplog):
    use_channels(slack=slack, language="en")
    slack.channel_state = "archived"
    caplog.set_level(logging.INFO, logger="userops.alerts")
    _fail()
    assert slack.received == [] and slack.rejected
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "could not be sent directly either" in logged and "archived" in logged
    assert "stay in the outbox" not in logged
    assert slack.token not in logged


def test_a_direct_send_failure_names_each_channel_once(warehouse_down, use_channels, slack, caplog):
    """The channel's error already starts with the channel ("slack 连接失败…"): the log line
    said "slack slack 连接失败…"; a verdict that does not name it ("未配置") gets "渠道：" before it."""
    use_channels(slack=slack, slack_webhook_url=f"http://127.0.0.1:{_closed_port()}/services/T0/B0/x",
                 alerts__routes='{"flow_failed": ["slack", "wecom"]}')
    caplog.set_level(logging.INFO, logger="userops.alerts")
    _fail()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "slack 连接失败" in logged and "slack slack" not in logged.lower(), logged
    assert "wecom：未配置" in logged, logged


def _unreachable() -> BaseException:
    from userops.db import get_engine

    try:
        with get_engine().connect():
            pass
    except Exception as exc:  # the real driver error: OperationalError … Connection refused
        return exc
    raise AssertionError("the warehouse answered")


def test_an_unreachable_warehouse_is_told_as_the_command_line_tells_it(warehouse_down, use_channels, slack):
    """The alert's error line was the driver's raw text ("OperationalError: (psycopg2.OperationalError)
    connection to server …"); it is the operator text `userops run` prints, password masked."""
    from tasks.alerts.failures import flow_failure_alerts
    from userops.settings import get_settings

    use_channels(slack=slack)
    exc = _unreachable()
    _fail(exc=exc)
    text = slack.received[0]["text"]
    port = get_settings().database_url.rsplit(":", 1)[1].split("/")[0]
    assert f"错误：连不上数据仓库 postgresql+psycopg2://ops:***@127.0.0.1:{port}/shop（" in text, text
    assert "Connection refused" in text and "psycopg2.OperationalError" not in text and ":pw@" not in text, text
    assert "请检查 USEROPS_DATABASE_URL" in text
    run = SimpleNamespace(id=uuid.uuid4(), name="nightly-x", parent_task_run_id=None, parameters={})
    body = flow_failure_alerts("nightly", run, exc=exc, lang="en")[0]["body"]
    assert f"cannot reach the warehouse postgresql+psycopg2://ops:***@127.0.0.1:{port}/shop (" in body and ":pw@" not in body, body
    # a crash known only by the state's message text says the same
    state = SimpleNamespace(name="Crashed", message=f"Flow run encountered an exception: {type(exc).__name__}: {exc}")
    body = flow_failure_alerts("nightly", run, state, crashed=True, read_result=False)[0]["body"]
    assert "连不上数据仓库 postgresql+psycopg2://ops:***@" in body and ":pw@" not in body, body


def test_outbox_up_the_hook_still_queues_and_delivers(warehouse, use_channels, slack):
    from tests.alerts.conftest import outbox

    use_channels(slack=slack)
    _fail("alert-test-direct")
    rows = outbox(warehouse)
    assert [r.kind for r in rows] == ["flow_failed"] and rows[0].status == "sent" and len(slack.received) == 1


def test_no_channel_configured_the_direct_post_says_it_was_only_written_to_the_log(warehouse_down, caplog):
    """No alert channel configured and the outbox down: the failure alert goes to the ``log``
    channel only. Its verdict is not 成功 and the log does not say it was sent directly to
    'log': it says (as the outbox path does) the alert was only written to the run log and
    where to configure a channel."""
    from tasks.alerts.outbox import send_direct
    from userops.i18n import t

    caplog.set_level(logging.INFO, logger="userops.alerts")
    _fail()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "直接发送到 log" not in logged and "log：成功" not in logged, logged
    assert "只写入了运行日志" in logged and "没有发出" in logged, logged
    assert "USEROPS_SLACK_WEBHOOK_URL" in logged and "docs/alerts.md" in logged, logged
    assert "直接发送也未成功" not in logged, logged  # nothing failed: there was nowhere to send it
    alert = {"kind": "flow_failed", "title": "Flow failed: x", "body": "b", "severity": "error", "subject": str(uuid.uuid4())}
    verdicts = send_direct([alert], lang="en")
    assert verdicts == {"log": t("alert.deliver.log_only", "en")}, verdicts
    assert "ok" != verdicts["log"] and "only written to the run log" in verdicts["log"]


def test_the_hook_decides_on_the_direct_verdicts_code_not_its_words(warehouse_down, use_channels, slack, caplog, monkeypatch):
    """The hook tells sent / only logged / posted before / failed apart by the verdict's
    stable code, never by comparing its (translated) words: a direct post whose words are in
    another language than the hook's is still a post that went out, not a failure."""
    import tasks.alerts.outbox as outbox_mod
    from userops.i18n import t

    use_channels(slack=slack)  # the operator reads zh-CN
    real = outbox_mod.send_direct
    monkeypatch.setattr(outbox_mod, "send_direct", lambda alerts, **kw: real(alerts, **{**kw, "lang": "en"}))
    caplog.set_level(logging.INFO, logger="userops.alerts")
    _fail("refresh-tags")
    assert len(slack.received) == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "userops.alerts"]
    assert t("alert.log.sent_directly", "zh-CN", flow="refresh-tags", error="OperationalError", channels="slack") in logged, logged
    assert not [m for m in logged if "直接发送也未成功" in m], logged

    alert = {"kind": "flow_failed", "title": "Flow failed: x", "body": "b", "severity": "error", "subject": str(uuid.uuid4())}
    verdicts = real([alert], lang="en")
    assert verdicts["slack"].code == "ok" and verdicts["slack"] == t("alert.deliver.ok", "en")
    again = real([alert], lang="zh-CN")
    assert again["slack"].code == "already_direct" and again["slack"] == t("alert.deliver.already_direct", "zh-CN")
