"""An ordinary outbox row delivered on the ``log`` channel (no alert channel configured: the
alert was only written to the run log) is listed by `userops alert list` with a note that it
was not sent, as a direct post to the log channel is (alert.cli.logged_directly); it showed
``sent`` with no note. A row sent on a real channel has no such note; the stored status stays
``sent``. SQLite and PostgreSQL, zh-CN and en."""
from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from tests.alerts.conftest import outbox


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_an_alert_delivered_to_the_log_channel_is_listed_as_not_sent(lang, warehouse, monkeypatch):
    from tasks.alerts import enqueue_alert, routing
    from tasks.alerts.outbox import deliver_pending
    from userops.cli import alert
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    routing.clear_channel_cache()
    assert set(routing.load_channels(refresh=True)) == {"log"}

    enqueue_alert("validation", "隔离 3 行", "orders: 3 rows quarantined", severity="warning", subject="t1")
    deliver_pending()
    rows = outbox(warehouse)
    assert [(r.channel, r.status) for r in rows] == [("log", "sent")]  # stored as before

    app = typer.Typer()
    alert.register(app)
    res = CliRunner().invoke(app, ["alert", "list"])
    assert res.exit_code == 0, res.output
    if lang == "zh-CN":
        assert "只写入了运行日志，没有发出" in res.output, res.output
        assert "直接发送于" not in res.output and "数据仓库不可用" not in res.output, res.output
    else:
        assert "only written to the run log, not sent" in res.output, res.output
        assert "posted directly" not in res.output and "warehouse was down" not in res.output, res.output
    assert [(r.channel, r.status) for r in outbox(warehouse)] == [("log", "sent")]


def test_an_alert_sent_on_a_real_channel_has_no_log_note(warehouse, slack, monkeypatch):
    from tasks.alerts import enqueue_alert, routing
    from tasks.alerts.outbox import deliver_pending
    from userops.cli import alert
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_SLACK_WEBHOOK_URL", slack.url)
    reset_settings()
    routing.clear_channel_cache()
    assert "slack" in routing.load_channels(refresh=True)

    enqueue_alert("validation", "隔离 3 行", "orders: 3 rows quarantined", severity="warning", subject="t2")
    deliver_pending()
    assert {(r.channel, r.status) for r in outbox(warehouse)} == {("slack", "sent")}
    app = typer.Typer()
    alert.register(app)
    res = CliRunner().invoke(app, ["alert", "list"])
    assert res.exit_code == 0, res.output
    assert "运行日志" not in res.output, res.output
