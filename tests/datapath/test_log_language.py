"""Run-log lines an operator reads (the userops.* loggers reach the run log in the Prefect UI)
are catalogue texts in the operator's language, zh-CN or en, never the code's English; a few
representative ones are triggered here in process (the engineers' lines went to debug)."""
from __future__ import annotations

import logging
from datetime import date, datetime

import pytest
import sqlalchemy as sa

from userops.i18n import t

_ZH = {
    "staff": "已删除超过 30 天的人工回访清单：2026-05-01，2026-05-15",
    "claim": "消息 tk-1：本发送程序记录结果前，它已被另一发送程序接管；本次结果（已发送）未记录",
    "spike": "Prefect 事件不可用：SKU-9 的投诉激增暂未发出，下次检查时再发",
    "overlay": "流失预警标记（截至 2026-06-30）：1 位客户有变化",
}
_EN = {
    "staff": "staff-outreach lists older than 30 days deleted: 2026-05-01, 2026-05-15",
    "claim": "touch tk-1: its claim was taken over before this sender settled it; its result (sent) was not recorded",
    "spike": "Prefect events are not available; the complaint spike of SKU-9 stays pending until the next check",
    "overlay": "at-risk flags as of 2026-06-30: 1 customers changed",
}
# what the code logged before, in English whatever the language (the en catalogue keeps some of
# these words: checked in zh-CN)
_OLD = ("staff-outreach lists older than", "its claim was taken over", "Prefect events are not available", "at-risk overlay as of")


@pytest.fixture
def language(monkeypatch):
    from userops.settings import reset_settings

    def use(lang: str) -> None:
        monkeypatch.setenv("USEROPS_LANGUAGE", lang)
        reset_settings()

    yield use
    reset_settings()


def _lines(caplog, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno >= logging.INFO]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_operator_log_lines_are_catalogue_texts(lang, language, sqlite_warehouse, tmp_path, caplog):
    from tasks import tags
    from tasks.crisis.spike import emit_pending
    from tasks.messaging import Outbound, Outcome, StaffList, settle

    language(lang)
    want = _ZH if lang == "zh-CN" else _EN
    caplog.set_level(logging.DEBUG, logger="userops")

    # messaging: the staff-outreach lists past their keep days are deleted (an info line)
    staff = StaffList(tmp_path)
    for day in ("2026-05-01", "2026-05-15", "2026-06-29"):
        (staff.root / day).mkdir(parents=True)
    assert staff.prune(date(2026, 6, 30), 30) == ["2026-05-01", "2026-05-15"]
    # messaging: a touch whose claim another sender took over (a warning; the touch key only)
    touch = Outbound("tk-1", "welcome", "C1", "sms", None, "hi", "zh-CN", 1)
    assert settle(sqlite_warehouse, [(touch, Outcome("sent"))], datetime(2026, 6, 30, 12), 3, 1.0, "me")["claim_lost"] == 1
    messaging = _lines(caplog, "userops.messaging")
    assert want["staff"] in messaging and want["claim"] in messaging

    # crisis: a recorded spike Prefect's events cannot carry stays pending (a warning)
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO complaint_spikes (sku, first_hot_at, last_hot_at, peak_complaints, window_hours, rule, baseline, detected_at) "
            "VALUES ('SKU-9', '2026-06-30 10:00:00', '2026-06-30 10:00:00', 7, 24, 'count', 1.0, '2026-06-30 10:00:00')"
        ))
    assert emit_pending(sqlite_warehouse, emit=lambda **kw: None) == []
    assert want["spike"] in _lines(caplog, "userops.crisis.spike")

    # tags: the champion's high-risk customer is flagged at risk (an info line)
    with sqlite_warehouse.begin() as conn:
        conn.execute(sa.text("INSERT INTO tags (customer_id, as_of, lifecycle_stage, at_risk) VALUES ('C1', '2026-06-30', 'active', :f)"),
                     {"f": False})
        conn.execute(sa.text("INSERT INTO model_versions (version, trained_at, status) VALUES ('v1', '2026-06-01 00:00:00', 'champion')"))
        conn.execute(sa.text("INSERT INTO churn_scores (customer_id, model_version, probability, risk_band, scored_at) "
                             "VALUES ('C1', 'v1', 0.9, 'high', '2026-06-30 00:00:00')"))
        assert tags.apply_at_risk_overlay(conn, date(2026, 6, 30)) == 1
    assert want["overlay"] in _lines(caplog, "userops.tags")

    # the texts are the catalogue's; in zh-CN nothing at info or above is the old English
    assert want["overlay"] == t("log.tags.at_risk_overlay", lang, as_of=date(2026, 6, 30), n="1")
    if lang == "zh-CN":
        logged = [r.getMessage() for r in caplog.records if r.name.startswith("userops") and r.levelno >= logging.INFO]
        assert not [line for line in logged if any(old in line for old in _OLD)], logged


_RETRY = {
    "zh-CN": ("数据源 {url}/crm/feedback 返回 HTTP 429；3.0 秒后第 1 次重试（最多 2 次）",
              "数据源 {url}/crm/feedback 返回 HTTP 500；0.0 秒后第 2 次重试（最多 2 次）",
              "数据源 http://127.0.0.1:{port}/crm/customers 无应答（ConnectionError）；0.0 秒后第 1 次重试（最多 1 次）"),
    "en": ("source {url}/crm/feedback: HTTP 429; retry 1 of at most 2 in 3.0s",
           "source {url}/crm/feedback: HTTP 500; retry 2 of at most 2 in 0.0s",
           "source http://127.0.0.1:{port}/crm/customers: no answer (ConnectionError); retry 1 of at most 1 in 0.0s"),
}


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_source_retry_lines_name_the_source_wait_and_attempt_never_credentials(lang, language, caplog):
    """A REST source retried (the sample server's faults, a port nobody listens on): the run
    log says which source, the wait and the attempt in the operator's language, and never the
    address's user, password or query nor the token."""
    import socket

    from tasks.extract import RestSource, SourceError
    from userops.sample.generator import generate
    from userops.sample.server import SampleServer

    language(lang)
    caplog.set_level(logging.DEBUG, logger="userops")
    with SampleServer(generate(30, seed=5, as_of="2026-11-20")) as server:
        server.faults.update({"rate_limit_next": 1, "retry_after": 3, "fail_next": 1})
        creds = server.url.replace("://", "://ops:pa55word@", 1)
        src = RestSource(creds, token="s3cret-token", backoff=0.0, max_retries=2)
        src.sleep = lambda s: None
        assert len(src.fetch("/crm/feedback")) > 0
        with socket.socket() as sock:  # a port free right now: connection refused
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dead = RestSource(f"http://ops:pa55word@127.0.0.1:{port}", token="s3cret-token", backoff=0.0, max_retries=1)
        dead.sleep = lambda s: None
        with pytest.raises(SourceError):
            dead.fetch("/crm/customers")
    lines = _lines(caplog, "userops.extract")
    for want in _RETRY[lang]:
        assert want.format(url=server.url, port=port) in lines, lines
    assert not [line for line in lines if "pa55word" in line or "s3cret" in line or "ops:" in line or "?" in line], lines


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_alert_not_queued_or_not_delivered_is_said_in_the_operator_language(lang, language, monkeypatch, caplog):
    import tasks.alerts as alerts

    def broken(*a, **kw):
        raise RuntimeError("down")

    language(lang)
    caplog.set_level(logging.DEBUG, logger="userops")
    monkeypatch.setattr(alerts, "enqueue_alert", broken)
    assert alerts.alert_and_deliver("flow_failed", "t", "b") == {"queued": 0}
    monkeypatch.setattr(alerts, "enqueue_alert", lambda *a, **kw: 1)
    monkeypatch.setattr(alerts, "deliver_pending", broken)
    assert alerts.alert_and_deliver("flow_failed", "t", "b") == {"queued": 1}
    lines = _lines(caplog, "userops.alerts")
    assert t("alert.log.not_queued", lang, kind="flow_failed", error="RuntimeError") in lines, lines
    assert t("alert.log.delivery_failed", lang, error="RuntimeError") in lines, lines
    if lang == "zh-CN":
        assert lines == ["告警：一条“flow_failed”告警未能排入发件箱（RuntimeError），未发送；详情见 Prefect 中的运行日志",
                         "告警：投递失败（RuntimeError）；告警留在发件箱，下次投递时发送（`userops alert deliver`）"], lines
