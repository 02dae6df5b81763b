"""A night the warehouse was down and no alert channel was configured: the failure alert went
to the ``log`` channel only (the run log). Recorded in the alert history once the warehouse
is back, `userops alert list` says it was only written to the run log and not sent (the
words of the log-only verdict), not that it was posted directly. SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from tests.alerts.conftest import outbox
from tests.alerts.test_direct_journal import _fail, _journal, outage  # noqa: F401  (outage: the fixture)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_direct_post_to_the_log_channel_is_listed_as_not_sent(lang, warehouse, outage, monkeypatch, caplog):  # noqa: F811
    from tasks.alerts import routing
    from tasks.alerts.outbox import deliver_pending
    from userops.cli import alert
    from userops.settings import reset_settings

    for name in ("SLACK", "DINGTALK", "WECOM"):
        monkeypatch.delenv(f"USEROPS_{name}_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    routing.clear_channel_cache()
    assert set(routing.load_channels(refresh=True)) == {"log"}

    outage(True)
    _fail()
    assert [(e["channel"], e["status"]) for e in _journal()] == [("log", "sent")]
    outage(False)
    with caplog.at_level("WARNING", logger="userops.alerts"):
        deliver_pending()  # the journal recorded in the outbox
    recorded = [r.getMessage() for r in caplog.records if "0 条已送达" in r.getMessage() or "0 delivered" in r.getMessage()]
    assert len(recorded) == 1, [r.getMessage() for r in caplog.records]  # not "1 delivered": nothing went anywhere
    assert ("另有 1 条只写入了运行日志" if lang == "zh-CN" else "1 more only written to the run log") in recorded[0]
    rows = outbox(warehouse)
    assert [(r.channel, r.status) for r in rows] == [("log", "sent")]

    app = typer.Typer()
    alert.register(app)
    res = CliRunner().invoke(app, ["alert", "list"])
    assert res.exit_code == 0, res.output
    if lang == "zh-CN":
        assert "只写入了运行日志，没有发出" in res.output and "直接发送于" not in res.output, res.output
    else:
        assert "only written to the run log, not sent" in res.output and "posted directly at" not in res.output, res.output


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_alerts_delivered_on_the_log_channel_are_not_counted_as_sent(lang, warehouse, monkeypatch, caplog):
    """No alert channel configured: a delivery pass "delivers" on the log channel. The run log
    and `userops alert deliver` say the alerts were only written to the log, not that they
    were sent."""
    from tasks.alerts import enqueue_alert, routing
    from tasks.alerts.outbox import deliver_pending
    from userops.cli import alert
    from userops.settings import reset_settings

    for name in ("SLACK", "DINGTALK", "WECOM"):
        monkeypatch.delenv(f"USEROPS_{name}_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    routing.clear_channel_cache()
    for i in range(2):
        enqueue_alert("threshold", f"silent share high {i}", "body", severity="warning", subject=f"k{i}")
    with caplog.at_level("INFO", logger="userops.alerts"):
        res = deliver_pending()
    assert (res["sent"], res["logged"], res["posts"]) == (0, 2, 0), res
    said = " ".join(r.getMessage() for r in caplog.records)
    assert ("2 条只写入了运行日志，没有发出" if lang == "zh-CN" else "2 only written to the run log, not sent") in said
    assert "已发送 2" not in said and "2 sent" not in said
    enqueue_alert("threshold", "one more", "body", severity="warning", subject="k9")
    app = typer.Typer()
    alert.register(app)
    out = CliRunner().invoke(app, ["alert", "deliver"])
    assert out.exit_code == 0, out.output
    assert ("已发送 0 条告警" if lang == "zh-CN" else "sent 0 alert(s)") in out.output
    assert ("另有 1 条告警只写入了运行日志" if lang == "zh-CN" else "1 more alert(s) were only written to the run log") in out.output
