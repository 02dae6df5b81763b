"""A post the channel accepted is never posted again: not when the database write after it
fails (once, or for the whole pass), not when the process dies before the row is sent."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import sqlalchemy as sa

import tasks.alerts.outbox as outbox_mod
from tasks.alerts import deliver_pending, enqueue_alert
from tests.alerts.conftest import outbox

DAY = date(2026, 11, 20)


class Killed(BaseException):
    """The process dies here (not an Exception: nothing in the deliverer catches it)."""


def _locked(*a, **k):
    raise sa.exc.OperationalError("INSERT INTO alert_sends", {}, Exception("database is locked"))


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setattr(outbox_mod, "DB_RETRIES", (0.0, 0.0), raising=False)


def test_db_write_fails_once_after_the_post(warehouse, use_channels, slack, clock, monkeypatch):
    use_channels(slack=slack)
    enqueue_alert("flow_failed", "流程失败", "boom", subject="r1", day=DAY)
    real, calls = outbox_mod.record_send, []

    def flaky(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            _locked()
        return real(*a, **k)

    monkeypatch.setattr(outbox_mod, "record_send", flaky)
    res = deliver_pending(now=clock.utc())
    assert res["sent"] == 1 and len(slack.received) == 1
    assert outbox(warehouse)[0].status == "sent"
    clock.advance(3600)
    assert deliver_pending(now=clock.utc())["sent"] == 0 and len(slack.received) == 1


def test_db_write_fails_for_the_whole_pass(warehouse, use_channels, slack, clock, monkeypatch):
    use_channels(slack=slack)
    enqueue_alert("flow_failed", "流程失败", "boom", subject="r1", day=DAY)
    real = outbox_mod.record_send
    monkeypatch.setattr(outbox_mod, "record_send", _locked)
    res = deliver_pending(now=clock.utc())
    assert len(slack.received) == 1 and "OperationalError" in res["channels"]["slack"]
    assert outbox(warehouse)[0].status == "pending"
    monkeypatch.setattr(outbox_mod, "record_send", real)
    clock.advance(3600)
    res = deliver_pending(now=clock.utc())
    assert len(slack.received) == 1, "posted twice"
    row = outbox(warehouse)[0]
    assert row.status == "sent" and row.send_id is not None and res["sent"] == 1
    clock.advance(3600)
    assert deliver_pending(now=clock.utc())["sent"] == 0 and len(slack.received) == 1


def test_process_dies_between_post_and_sent(warehouse, use_channels, slack, clock, monkeypatch):
    use_channels(slack=slack)
    enqueue_alert("flow_failed", "流程失败", "boom", subject="r1", day=DAY)
    real = outbox_mod._Deliverer._sent

    def die(self, rows, send_id):
        raise Killed()

    monkeypatch.setattr(outbox_mod._Deliverer, "_sent", die)
    with pytest.raises(Killed):
        deliver_pending(now=clock.utc())
    assert len(slack.received) == 1 and outbox(warehouse)[0].status == "sending"
    monkeypatch.setattr(outbox_mod._Deliverer, "_sent", real)
    clock.advance(outbox_mod.LEASE.total_seconds() + 1)  # the dead deliverer's lease runs out
    deliver_pending(now=clock.utc())
    assert len(slack.received) == 1, "posted twice"
    assert outbox(warehouse)[0].status == "sent"


def test_long_alert_resumes_after_its_posted_parts(warehouse, use_channels, dingtalk, clock, monkeypatch):
    """A digest in several parts; the database fails after part 2: parts 1-2 are never posted again."""
    use_channels(dingtalk=dingtalk)
    body = "\n".join(f"- 第 {i:03d} 行:" + "明细" * 60 for i in range(400))
    enqueue_alert("digest", "夜间摘要", body, day=DAY)
    real, calls = outbox_mod.record_send, []

    def fail_after_two(*a, **k):
        calls.append(1)
        if len(calls) >= 2:
            _locked()
        return real(*a, **k)

    monkeypatch.setattr(outbox_mod, "record_send", fail_after_two)
    deliver_pending(now=clock.utc())
    assert len(dingtalk.received) == 2
    monkeypatch.setattr(outbox_mod, "record_send", real)
    clock.advance(3600)
    deliver_pending(now=clock.utc())
    joined = "\n".join(dingtalk.message_texts())
    assert len(dingtalk.received) > 2
    for i in range(400):
        assert joined.count(f"第 {i:03d} 行") == 1, f"line {i} posted {joined.count(f'第 {i:03d} 行')} times"
    assert outbox(warehouse)[0].status == "sent"


def test_process_dies_while_posting_is_not_posted_again(warehouse, use_channels, slack, clock, monkeypatch):
    use_channels(slack=slack)
    enqueue_alert("flow_failed", "流程失败", "boom", subject="r1", day=DAY)
    chans = use_channels(slack=slack)
    real = type(chans["slack"]).post

    def die(self, payload):
        real(self, payload)  # it arrives, then the process dies before the answer is read
        raise Killed()

    monkeypatch.setattr(type(chans["slack"]), "post", die)
    with pytest.raises(Killed):
        deliver_pending(now=clock.utc())
    monkeypatch.setattr(type(chans["slack"]), "post", real)
    clock.advance(outbox_mod.LEASE.total_seconds() + 1)
    deliver_pending(now=clock.utc())
    assert len(slack.received) == 1, "posted twice"
    row = outbox(warehouse)[0]
    assert row.status == "failed" and "无法确认是否送达" in row.last_error
