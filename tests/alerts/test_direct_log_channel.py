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
def test_a_direct_post_to_the_log_channel_is_listed_as_not_sent(lang, warehouse, outage, monkeypatch):  # noqa: F811
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
    deliver_pending()  # the journal recorded in the outbox
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
