"""The failure hook a second time for the same run, the warehouse still down: its alert was
posted directly the first time, so there is nothing left to post - the hook logs no error
(it said 直接发送也未成功（—）), only an info line that it was posted before; nothing is
posted twice. The same from another process (the journal has it). Real HTTP to the fake
Slack on loopback; the state hooks are called as Prefect calls them."""
from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace

import pytest

from flows.hooks import alert_on_failure
from tests.alerts.test_outbox_down import _State, warehouse_down  # noqa: F401  (warehouse_down: the fixture)


def _run():
    return SimpleNamespace(id=uuid.uuid4(), name="refresh-tags-2026-11-20", parent_task_run_id=None, parameters={})


def _hook(run):
    alert_on_failure(SimpleNamespace(name="refresh-tags"), run, _State(RuntimeError("boom")))


def _records(caplog, start: int):
    return [r for r in caplog.records[start:] if r.name == "userops.alerts"]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize("new_process", [False, True], ids=["same-process", "other-process"])
def test_the_hook_again_for_the_same_run_logs_no_error(lang, new_process, warehouse_down, use_channels, slack, caplog, monkeypatch):  # noqa: F811
    import tasks.alerts.outbox as outbox_mod
    from userops.i18n import t

    use_channels(slack=slack, language=lang)
    caplog.set_level(logging.DEBUG, logger="userops.alerts")
    run = _run()
    _hook(run)
    assert len(slack.received) == 1
    first = _records(caplog, 0)
    assert any(t("alert.log.sent_directly", lang, flow="refresh-tags", error="OperationalError", channels="slack") == r.getMessage()
               for r in first), [r.getMessage() for r in first]

    if new_process:  # a retry in another process: its in-memory guard is empty, the journal has the post
        monkeypatch.setattr(outbox_mod, "_SENT_DIRECTLY", set())
    mark = len(caplog.records)
    _hook(run)
    assert len(slack.received) == 1  # not posted again
    again = _records(caplog, mark)
    text = "\n".join(r.getMessage() for r in again)
    assert not [r for r in again if r.levelno >= logging.WARNING], text
    assert "直接发送也未成功" not in text and "could not be sent directly" not in text and "—" not in text, text
    assert t("alert.log.already_direct", lang, flow="refresh-tags", channels="slack") in text, text
