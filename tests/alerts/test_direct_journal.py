"""A night the warehouse is down: the failure alert posted straight to the channels is
journalled under the output folder and, once the warehouse is back, recorded in the alert
history by the next delivery - as delivered, never posted twice, never recorded twice; one
whose direct post failed is delivered by the outbox then. Real HTTP to the fake Slack on
loopback; the state hooks are called as Prefect calls them; SQLite and PostgreSQL."""
from __future__ import annotations

import json
import socket
import uuid
from types import SimpleNamespace

import pytest
import typer
from typer.testing import CliRunner

from flows.hooks import alert_on_failure
from tests.alerts.conftest import outbox
from tests.alerts.test_outbox_down import _State  # a failed flow's state, as the hook gets it

PII = ("13812345678", "li.lei@example.com")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fail(run=None, flow_name: str = "refresh-tags"):  # not the nightly: its digest would publish an artifact
    run = run or SimpleNamespace(id=uuid.uuid4(), name=f"{flow_name}-2026-11-20", parent_task_run_id=None, parameters={})
    alert_on_failure(SimpleNamespace(name=flow_name), run, _State(RuntimeError("warehouse gone while serving li.lei@example.com 13812345678")))
    return run


# the failing runs here stand for deployed runs, on a Prefect server that outlives them: their
# alerts link to the run's page (a run on Prefect's temporary server gets none)
pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def outage(warehouse, monkeypatch):
    """``outage(True)``: the warehouse unreachable; ``outage(False)``: back (the migrated one)."""
    from userops.db import dispose_engines
    from userops.settings import reset_settings

    url = warehouse.url.render_as_string(hide_password=False)

    def _set(down: bool):
        monkeypatch.setenv("USEROPS_DATABASE_URL", f"postgresql://ops:pw@127.0.0.1:{_closed_port()}/shop" if down else url)
        reset_settings()
        dispose_engines()

    return _set


def _journal():
    from tasks.alerts.journal import entries

    return [e for _, e in entries()]


def test_a_direct_post_is_recorded_as_delivered_when_the_warehouse_is_back(warehouse, outage, use_channels, slack):
    from tasks.alerts import deliver_pending
    from tasks.alerts.journal import journal_dir

    use_channels(slack=slack, language="en")
    outage(True)
    run = _fail()
    assert len(slack.received) == 1
    [entry] = _journal()
    assert entry["status"] == "sent" and entry["channel"] == "slack" and entry["kind"] == "flow_failed"
    raw = "\n".join(p.read_text(encoding="utf-8") for p in journal_dir().glob("*.json"))
    for secret in (*PII, slack.token, slack.url):
        assert secret not in raw

    outage(False)
    deliver_pending()  # the next delivery (next run's hooks, the digest, the deliver-alerts deployment)
    rows = outbox(warehouse)
    assert [(r.kind, r.channel, r.status) for r in rows] == [("flow_failed", "slack", "sent")]
    assert rows[0].sent_at is not None and f"/runs/flow-run/{run.id}" in json.loads(rows[0].payload)["link"]
    direct = json.loads(rows[0].payload)["sent_directly"]
    assert direct["at"] and direct["reason"] == "OperationalError"  # why the outbox was passed by
    assert len(slack.received) == 1 and _journal() == []  # not posted again; the journal emptied
    deliver_pending()
    assert len(outbox(warehouse)) == 1 and len(slack.received) == 1  # not recorded twice

    # the alert history says what happened
    from userops.cli import alert

    app = typer.Typer()
    alert.register(app)
    res = CliRunner().invoke(app, ["alert", "list"])
    assert res.exit_code == 0 and "posted directly at" in res.output and "while the warehouse was down" in res.output, res.output


def test_a_retry_in_another_process_does_not_post_again(warehouse, outage, use_channels, slack, monkeypatch):
    import tasks.alerts.outbox as outbox_mod

    use_channels(slack=slack, language="en")
    outage(True)
    run = _fail()
    monkeypatch.setattr(outbox_mod, "_SENT_DIRECTLY", set())  # a new process: its in-memory guard is empty
    _fail(run)
    assert len(slack.received) == 1 and len(_journal()) == 1


def test_the_same_alert_queued_meanwhile_is_not_posted_twice(warehouse, outage, use_channels, slack):
    """The run is retried once the warehouse is back and fails again: its failure alert (same
    key) is queued; the journal's record marks it sent - the channel already has it."""
    use_channels(slack=slack, language="en")
    outage(True)
    run = _fail()
    outage(False)
    _fail(run)  # queues + delivers; the delivery records the journal first
    rows = outbox(warehouse)
    assert [(r.channel, r.status) for r in rows] == [("slack", "sent")] and len(slack.received) == 1


def test_a_failed_direct_post_is_delivered_by_the_outbox_later(warehouse, outage, use_channels, slack):
    from tasks.alerts import deliver_pending

    use_channels(slack=slack, language="en")
    slack.channel_state = "archived"
    outage(True)
    _fail()
    assert slack.received == [] and _journal()[0]["status"] == "failed"
    slack.channel_state = "ok"
    outage(False)
    deliver_pending()
    rows = outbox(warehouse)
    assert [(r.kind, r.status) for r in rows] == [("flow_failed", "sent")] and len(slack.received) == 1
    assert "sent_directly" not in json.loads(rows[0].payload)
    deliver_pending()
    assert len(slack.received) == 1 and len(outbox(warehouse)) == 1


def test_a_post_of_unknown_outcome_is_listed_not_resent(warehouse, use_channels, slack):
    """The process stopped while posting (the entry says "posting"): recorded as failed with
    what to check, not posted again by itself (it may have arrived)."""
    from datetime import datetime

    from tasks.alerts import deliver_pending
    from tasks.alerts.journal import claim

    use_channels(slack=slack, language="en")
    claim("flow_failed|r1|2026-11-20", "slack", kind="flow_failed", severity="error", title="Flow failed: nightly",
          body="boom", payload={"mentions": ["13812345678"]}, posted_at=datetime(2026, 11, 20, 18, 0))
    deliver_pending()
    [row] = outbox(warehouse)
    assert row.status == "failed" and "unknown" in row.last_error and slack.received == []
    assert "13812345678" not in row.payload
