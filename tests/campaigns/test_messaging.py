"""Delivery: SMS/push over the JSON webhook, email over SMTP, the staff-outreach list;
idempotency keys on every request, retries with backoff, 429s, permanent failures,
review before sending, last-moment suppression, resend after an interrupted send (only of
a sender that is gone: a local process that ended, a remote one whose lease ran out; a live
one keeps its lease while it waits out 429s), bounded 429 waits, settle only by the claim's
holder, interrupted email held for review."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.messaging import approve_touches, idempotency_key, message_id, plan_touches, send_due, worker_id
from tests.campaigns.conftest import NOON, touches
from tests.campaigns.factory import load_members, make_members
from tasks.messaging import read_staff_list


@pytest.fixture
def people(warehouse):
    frames = make_members(50, seed=4, stages={"active": 1.0})
    with warehouse.begin() as conn:
        load_members(conn, frames)
    return frames["customers"].set_index("customer_id")


def _plan(engine, ids, channel="sms", campaign="t", status="planned", marketing=True, **extra):
    df = pd.DataFrame({"customer_id": list(ids)})
    df["touch_key"] = campaign + "|" + df["customer_id"] + "|2026-11-20"
    df["campaign"] = campaign
    df["channel"] = channel
    df["status"] = status
    df["subject"] = "主题"
    df["body"] = "正文 " + df["customer_id"]
    df["is_marketing"] = marketing
    df["planned_at"] = pd.Timestamp(NOON)
    for k, v in extra.items():
        df[k] = v
    with engine.begin() as conn:
        return plan_touches(conn, df)


def test_sms_and_push_carry_the_idempotency_key_and_are_sent_once(warehouse, people, provider):
    ids = list(people.index)
    assert _plan(warehouse, ids[:30], "sms") == 30
    assert _plan(warehouse, ids[30:], "push") == 20
    assert _plan(warehouse, ids[:30], "sms") == 0  # idempotent by touch key
    d = send_due(now=NOON)
    assert d["sent"] == 50 and d["failed"] == 0
    assert provider.requests == 50 and len(provider.delivered) == 50
    assert provider.header_body_mismatch == 0 and provider.missing_key == 0
    t = touches(warehouse).set_index("touch_key")
    for key, payload in provider.delivered.items():
        tk = payload["touch_key"]
        assert key == idempotency_key(tk)
        assert t.at[tk, "status"] == "sent" and t.at[tk, "provider_id"] == f"m-{key[:16]}"
        cid = t.at[tk, "customer_id"]
        assert payload["to"] == (people.at[cid, "phone"] if payload["channel"] == "sms" else cid)
        assert payload["text"] == f"正文 {cid}"
    assert send_due(now=NOON)["sent"] == 0 and provider.requests == 50
    with warehouse.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM audit_log WHERE action = 'send_due'")).scalar() == 1


def test_provider_errors_are_retried_with_backoff(warehouse, people, provider):
    # real clock (the run waits for the short backoff, settings: 0.05 s), so no quiet hours:
    # the test must not depend on the time of day it runs at
    _plan(warehouse, list(people.index)[:10], quiet_hours=None)
    provider.fail_next = [500, 503, 502]
    d = send_due()
    assert d["sent"] == 10 and d["failed"] == 0
    t = touches(warehouse)
    assert (t["status"] == "sent").all()
    assert t["attempts"].sum() == 13 and len(provider.delivered) == 10


def test_rate_limit_429_is_respected(warehouse, people, provider):
    provider.rate_limit = 20  # per second
    _plan(warehouse, list(people.index)[:45])
    d = send_due(now=NOON)
    assert d["sent"] == 45 and d["failed"] == 0
    assert provider.status_counts[429] > 0
    assert len(provider.delivered) == 45


def test_permanent_failure_is_recorded_with_reason(warehouse, people, provider):
    ids = list(people.index)[:5]
    provider.reject_to = {people.at[ids[0], "phone"]}
    _plan(warehouse, ids)
    d = send_due(now=NOON)
    assert d["sent"] == 4 and d["failed"] == 1
    t = touches(warehouse).set_index("customer_id")
    assert t.at[ids[0], "status"] == "failed" and t.at[ids[0], "reason"] == "sms provider 422: invalid_recipient"
    assert t.at[ids[0], "attempts"] == 1
    assert send_due(now=NOON)["claimed"] == 0  # never retried


def test_a_provider_error_quoting_the_recipient_is_recorded_masked(warehouse, people, provider):
    # many SMS providers put the number they refused into the error text; the touch's reason
    # keeps the provider's words with the number masked, as the SMTP path already did
    ids = list(people.index)[:3]
    phone = people.at[ids[0], "phone"]
    provider.reject_to = {phone}
    provider.reject_message = "The 'To' number {to} is not a valid phone number."
    _plan(warehouse, ids)
    d = send_due(now=NOON)
    assert d["sent"] == 2 and d["failed"] == 1
    reason = touches(warehouse).set_index("customer_id").at[ids[0], "reason"]
    assert reason.startswith("sms provider 422: The 'To' number ") and "is not a valid phone number" in reason
    assert phone not in reason and phone[-2:] in reason


def test_gives_up_after_max_attempts(warehouse, people, provider):
    provider.fail_share = 1.0
    _plan(warehouse, list(people.index)[:3], quiet_hours=None)  # real clock, any time of day
    d = send_due(max_attempts=2)
    assert d["failed"] == 3
    t = touches(warehouse)
    assert (t["status"] == "failed").all() and (t["attempts"] == 2).all()
    assert t["reason"].str.startswith("gave up after 2 attempts: sms provider 500").all()


def test_awaiting_review_waits_for_approval(warehouse, people, provider):
    ids = list(people.index)
    _plan(warehouse, ids[:5], campaign="crisis-inc1", status="awaiting_review", marketing=False)
    _plan(warehouse, ids[5:10], campaign="crisis-inc1", marketing=False)
    assert send_due(now=NOON)["sent"] == 5
    assert set(touches(warehouse, "status = 'awaiting_review'")["customer_id"]) == set(ids[:5])
    with warehouse.begin() as conn:
        assert approve_touches(conn, "tester", campaign="crisis-inc1") == 5
    assert send_due(now=NOON)["sent"] == 5
    assert len(provider.delivered) == 10


def test_unsubscribe_or_crisis_after_planning_suppresses_at_send(warehouse, people, provider):
    ids = list(people.index)
    _plan(warehouse, ids[:10])
    _plan(warehouse, ids[:10], campaign="crisis-x", marketing=False)  # service messages still go
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE customers SET unsubscribed_at = :t WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True), sa.bindparam("t", type_=sa.DateTime())), {"t": NOON, "ids": ids[:2]})
        conn.execute(sa.text("UPDATE customers SET marketing_consent = :f WHERE customer_id = :c"), {"f": False, "c": ids[2]})
        conn.execute(sa.text("INSERT INTO incidents (incident_id, skus, status, opened_at) VALUES ('i1', '[]', 'open', :t)").bindparams(sa.bindparam("t", type_=sa.DateTime())), {"t": NOON})
        conn.execute(sa.text("INSERT INTO incident_customers (incident_id, customer_id) VALUES ('i1', :c)"), {"c": ids[3]})
    d = send_due(now=NOON)
    assert d["suppressed"] == 4 and d["reasons"] == {"unsubscribed": 2, "no_consent": 1, "open_crisis": 1}
    assert d["sent"] == 6 + 10


def test_email_over_smtp_with_message_id(warehouse, people, smtp):
    # m5 is refused (550), m6 is greylisted once (451) then accepted
    ids = [c for c in people.index if people.at[c, "email"] in ("m5@example.com", "m6@example.com", "m7@example.com", "m8@example.com")]
    _plan(warehouse, ids, "email", quiet_hours=None)  # real clock (greylist retry), any time of day
    d = send_due()
    assert d["sent"] == 3 and d["failed"] == 1
    t = touches(warehouse).set_index("customer_id")
    bad = people.index[people["email"] == "m5@example.com"][0]
    assert t.at[bad, "status"] == "failed" and t.at[bad, "reason"].startswith("smtp 550")
    got = {m["message_id"]: m for m in smtp.messages}
    assert len(got) == 3 and all(n == 1 for n in smtp.by_message_id.values())
    for cid in t.index[t["status"] == "sent"]:
        key = t.at[cid, "touch_key"]
        m = got[message_id(key)]
        assert m["idempotency_key"] == idempotency_key(key) and m["to"] == [people.at[cid, "email"]]
        assert m["subject"] == "主题" and m["body"].strip() == f"正文 {cid}"
    grey = people.index[people["email"] == "m6@example.com"][0]
    assert t.at[grey, "attempts"] == 2


def test_staff_outreach_list_is_written_once(warehouse, people, tmp_path):
    ids = list(people.index)[:6]
    _plan(warehouse, ids, "staff")
    d = send_due(now=NOON)
    assert d["sent"] == 6 and set(d["outreach_files"]) == {"t.csv", "t.xlsx"}
    csv_path = tmp_path / "output" / "outreach" / "2026-11-20" / "t.csv"
    df = read_staff_list(csv_path)
    assert list(df["customer_id"]) == ids and (df["phone"] != "").all()
    assert read_staff_list(csv_path.with_suffix(".xlsx"))["touch_key"].tolist() == df["touch_key"].tolist()
    # a sender that died after writing the list but before settling: resent, not listed twice
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE touches SET status = 'in_flight', claimed_by = 'nohost:1:1', in_flight_at = :t").bindparams(sa.bindparam("t", type_=sa.DateTime())), {"t": NOON - timedelta(hours=1)})
    d2 = send_due(now=NOON)
    assert d2["resent_after_crash"] == 6 and d2["sent"] == 6
    assert len(read_staff_list(csv_path)) == 6


def test_channel_override(warehouse, people, tmp_path):
    _plan(warehouse, list(people.index)[:4], "sms")
    d = send_due(now=NOON, channel_override="staff")
    assert d["per_channel"] == {"staff": 4}
    assert set(touches(warehouse)["channel"]) == {"staff"}


def _hold(engine, ids, claimed_by: str, at: datetime) -> None:
    """Mark the touches of these customers in flight for ``claimed_by`` since ``at``."""
    upd = sa.text("UPDATE touches SET status = 'in_flight', claimed_by = :c, in_flight_at = :t, attempts = attempts + 1 WHERE customer_id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True), sa.bindparam("t", type_=sa.DateTime()))
    with engine.begin() as conn:
        conn.execute(upd, {"c": claimed_by, "t": at, "ids": list(ids)})


def _dead_local_sender() -> str:
    """The identity of a sender on this host whose process has ended."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{worker_id().split(':')[0]}:{int(dead.stdout)}:0"


def test_reclaim_takes_over_only_senders_that_are_gone(warehouse, people):
    from tasks.messaging import reclaim_in_flight

    ids = list(people.index)
    _plan(warehouse, ids[:8])
    lease = 600.0
    _hold(warehouse, ids[0:2], worker_id(), NOON - timedelta(minutes=11))  # this process: alive, claim past the lease
    _hold(warehouse, ids[2:4], _dead_local_sender(), NOON - timedelta(seconds=5))  # gone, however fresh its claim
    _hold(warehouse, ids[4:6], "elsewhere:4242:1700000000", NOON - timedelta(minutes=11))  # another host, lease ran out
    _hold(warehouse, ids[6:8], "elsewhere:4243:1700000000", NOON - timedelta(minutes=9))  # another host, within its lease
    got = reclaim_in_flight(warehouse, NOON, lease)
    assert got["resent"] == 4 and got["held"] == 0
    t = touches(warehouse).set_index("customer_id")
    assert set(t.index[t["status"] == "planned"]) == set(ids[2:6])
    assert (t.loc[ids[2:6], "claimed_by"].isna()).all() and (t.loc[ids[2:6], "reason"] == "resent after an interrupted send").all()
    assert set(t.index[t["status"] == "in_flight"]) == set(ids[:2]) | set(ids[6:8])
    assert (t.loc[ids[:2], "claimed_by"] == worker_id()).all()
    # a day later: the remote sender's lease has run out; this live process is still never taken over
    got = reclaim_in_flight(warehouse, NOON + timedelta(days=1), lease)
    assert got["resent"] == 2
    t = touches(warehouse).set_index("customer_id")
    assert set(t.index[t["status"] == "in_flight"]) == set(ids[:2])


def test_in_flight_of_a_live_sender_is_left_alone(warehouse, people, provider):
    ids = list(people.index)
    _plan(warehouse, ids[:4])
    _hold(warehouse, ids[:2], worker_id(), NOON - timedelta(minutes=11))  # this process: alive
    _hold(warehouse, ids[2:4], _dead_local_sender(), NOON - timedelta(minutes=11))  # gone
    d = send_due(now=NOON)
    assert d["resent_after_crash"] == 2 and d["sent"] == 2 and d["claim_lost"] == 0
    assert {p["touch_key"].split("|")[1] for p in provider.delivered.values()} == set(ids[2:4])
    assert set(touches(warehouse, "status = 'in_flight'")["customer_id"]) == set(ids[:2])
    # ... however old the claim gets: a live local sender is still sending them
    d = send_due(now=NOON + timedelta(hours=1))
    assert d["resent_after_crash"] == 0 and d["sent"] == 0 and provider.requests == 2
    assert set(touches(warehouse, "status = 'in_flight'")["customer_id"]) == set(ids[:2])


def test_a_long_batch_renews_its_lease(warehouse, people, monkeypatch):
    """A sender on another host working through batches that take longer than the lease
    (a slow provider) keeps its claims: another sender meanwhile takes nothing over."""
    import threading

    import tasks.messaging as messaging
    from tests.fakes.message_provider import FakeProvider
    from userops.clock import utcnow
    from userops.settings import reset_settings

    lease = 1.2
    monkeypatch.setenv("USEROPS_CAMPAIGNS__IN_FLIGHT_LEASE_SECONDS", str(lease))
    reset_settings()
    monkeypatch.setattr(messaging, "worker_id", lambda: "elsewhere:4242:1700000000")  # judged by its lease only
    ids = list(people.index)
    _plan(warehouse, ids, quiet_hours=None)  # real clock, any time of day
    with FakeProvider(latency_s=0.05) as prov:
        result: dict = {}
        th = threading.Thread(target=lambda: result.update(send_due(sms_url=prov.url, push_url=prov.url, batch_size=25, workers=1, limit=50)))
        th.start()
        taken, checks = 0, 0
        while th.is_alive():
            taken += messaging.reclaim_in_flight(warehouse, utcnow(), lease)["resent"]
            checks += 1
            time.sleep(0.05)
        th.join()
    assert checks >= 10  # the batches took a while (~2.5 s, each longer than the lease)
    assert taken == 0
    assert result["sent"] == 50 and result["claim_lost"] == 0
    assert len(prov.delivered) == 50 and sum(prov.duplicates.values()) == 0
    assert (touches(warehouse)["status"] == "sent").all()


def test_a_sender_waiting_out_429s_keeps_its_lease(warehouse, people, monkeypatch, caplog):
    """The provider answers one message with back-to-back 429s whose Retry-After adds up
    to more than the lease. The sender (on another host: judged by its lease only) is alive
    and waiting, so it keeps its claim: a second sender running meanwhile takes nothing
    over, and the customer gets the message once."""
    import threading

    import tasks.messaging as messaging
    from tests.fakes.message_provider import FakeProvider
    from userops.settings import reset_settings

    lease = 1.0
    monkeypatch.setenv("USEROPS_CAMPAIGNS__IN_FLIGHT_LEASE_SECONDS", str(lease))
    reset_settings()
    a, b = "host-a:4242:1700000000", "host-b:4343:1700000000"
    monkeypatch.setattr(messaging, "worker_id", lambda: a if threading.current_thread().name == "sender-a" else b)
    cid = list(people.index)[0]
    _plan(warehouse, [cid], quiet_hours=None)  # real clock, any time of day
    with caplog.at_level("INFO", logger="userops.messaging"), FakeProvider() as prov:
        prov.fail_next = [429, 429, 429]  # Retry-After: 1 each, ~3 s in all: three leases
        result: dict = {}
        th = threading.Thread(target=lambda: result.update(send_due(sms_url=prov.url, workers=1)), name="sender-a")
        t0 = time.monotonic()
        th.start()
        while prov.requests == 0 and th.is_alive():  # A has claimed the touch and is waiting
            time.sleep(0.01)
        assert touches(warehouse)["claimed_by"].tolist() == [a]
        others = []
        while th.is_alive():  # sender B, run after run (a deliver-messages schedule, compressed)
            others.append(send_due(sms_url=prov.url, wait_for_retries=False))
            time.sleep(0.05)
        th.join()
        waited = time.monotonic() - t0
    assert sum(o["resent_after_crash"] for o in others) == 0 and sum(o["claimed"] for o in others) == 0
    assert len(prov.delivered) == 1 and sum(prov.duplicates.values()) == 0  # once, not resent by B
    assert result["sent"] == 1 and result["claim_lost"] == 0 and result["retry_scheduled"] == 0
    assert prov.status_counts[429] == 3 and prov.requests == 4
    assert waited > 2.5 * lease and len(others) >= 5  # B ran while A's claim was older than the lease
    t = touches(warehouse)
    assert t["status"].tolist() == ["sent"] and t["attempts"].tolist() == [1]
    logged = [r.getMessage() for r in caplog.records if r.name == "userops.messaging"]
    assert "sms 发送服务限流（429）：暂停发送 1.0 秒" in logged  # the operator's language (zh-CN unless set)
    assert not any(str(people.at[cid, "phone"]) in m or cid in m for m in logged)


def test_a_long_retry_after_reschedules_instead_of_waiting(warehouse, people, provider, caplog):
    """A provider asking for a pause longer than a message waits in line
    (``retry_wait_seconds``, 5 s here) gets no more requests from this run: the messages go
    back to planned until the pause ends, and the run ends at once."""
    from tasks.messaging import MAX_RETRY_AFTER, _retry_after_seconds
    from userops.clock import utcnow

    ids = list(people.index)[:5]
    _plan(warehouse, ids, quiet_hours=None)  # real clock, any time of day
    provider.retry_after = "120"
    provider.fail_next = [429]
    start = utcnow()
    with caplog.at_level("INFO", logger="userops.messaging"):
        d = send_due(workers=1)
    assert provider.requests == 1  # the other four are not sent into the pause
    assert d["retry_scheduled"] == 5 and d["sent"] == 0 and d["duration_s"] < 5
    t = touches(warehouse)
    assert (t["status"] == "planned").all() and (t["reason"] == "sms provider 429: rate_limited").all()
    assert ((t["not_before"] - pd.Timestamp(start)).dt.total_seconds().between(110, 130)).all()
    logged = [r.getMessage() for r in caplog.records if r.name == "userops.messaging" and "429" in r.getMessage()]
    assert len(logged) == 1 and "要求暂停 120 秒" in logged[0]
    assert not any(str(people.at[c, "phone"]) in m or c in m for m in logged for c in ids)
    # Retry-After as an HTTP date, and values out of range
    assert _retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 1.0) == 0.0
    soon = (datetime.now(timezone.utc) + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 80 <= _retry_after_seconds(soon, 1.0) <= 91
    assert _retry_after_seconds("86400", None) == MAX_RETRY_AFTER and _retry_after_seconds("-5", None) == 0.0
    assert _retry_after_seconds("nan", 1.0) == 1.0 and _retry_after_seconds("soon", None) is None


def test_a_killed_sender_loses_its_lease(warehouse, people, monkeypatch):
    """The lease is renewed by a thread of the sending process: a sender killed while it
    waits out 429s stops renewing, and its touch is taken over once the lease has run out
    (not before), then delivered once."""
    import tasks.messaging as messaging
    from tests.fakes.message_provider import FakeProvider
    from userops.clock import utcnow
    from userops.settings import reset_settings

    lease = 1.0
    monkeypatch.setenv("USEROPS_CAMPAIGNS__IN_FLIGHT_LEASE_SECONDS", str(lease))
    reset_settings()
    a = "host-a:4242:1700000000"
    _plan(warehouse, list(people.index)[:1], quiet_hours=None)
    with FakeProvider() as prov:
        prov.fail_next = [429] * 5  # ~5 s of waiting, were it not killed
        code = f"import tasks.messaging as m\nm.worker_id = lambda: {a!r}\nm.send_due(sms_url={prov.url!r}, workers=1)\n"
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=root, env=dict(os.environ))
        try:
            deadline = time.monotonic() + 60
            while prov.status_counts[429] < 3 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert prov.status_counts[429] >= 3, "the sender did not get to wait out its 429s"
            held = touches(warehouse)
            assert held["status"].tolist() == ["in_flight"] and held["claimed_by"].tolist() == [a]
        finally:
            proc.kill()
            proc.wait()
        killed = time.monotonic()
        assert messaging.reclaim_in_flight(warehouse, utcnow(), lease)["resent"] == 0  # renewed until killed
        while messaging.reclaim_in_flight(warehouse, utcnow(), lease)["resent"] == 0:
            assert time.monotonic() - killed < 10 * lease, "a dead sender kept its lease"
            time.sleep(0.05)
        assert time.monotonic() - killed > 0.5 * lease
        monkeypatch.setattr(messaging, "worker_id", lambda: "host-b:4343:1700000000")
        d = send_due(sms_url=prov.url)
    assert d["sent"] == 1 and len(prov.delivered) == 1 and sum(prov.duplicates.values()) == 0
    assert touches(warehouse)["attempts"].tolist() == [2]


def test_settle_by_a_sender_that_lost_its_claim_changes_nothing(warehouse, people, provider, caplog):
    """Sender A's lease ran out, B took the touches over; both reached the provider (which
    answers B's repeat as a duplicate). B records; A's late settle must not overwrite it."""
    from tasks.messaging import HttpChannel, Outbound, claim_batch, reclaim_in_flight, settle

    ids = list(people.index)
    _plan(warehouse, ids[:3])
    a, b = "host-a:11:1700000000", "host-b:22:1700000000"
    claimed_a = claim_batch(warehouse, NOON, 10, a)
    assert len(claimed_a) == 3
    assert reclaim_in_flight(warehouse, NOON + timedelta(minutes=11), 600)["resent"] == 3  # A's lease ran out
    claimed_b = claim_batch(warehouse, NOON + timedelta(minutes=11), 10, b)
    assert {r[0] for r in claimed_b} == {r[0] for r in claimed_a}

    def deliver(rows):
        ch = HttpChannel(provider.url, "sms", 0.0, 5.0)
        try:
            return [(m, ch.send(m)) for m in (Outbound(*r[:7], int(r[7]), phone=people.at[r[2], "phone"]) for r in rows)]
        finally:
            ch.close()

    res_a, res_b = deliver(claimed_a), deliver(claimed_b)
    assert len(provider.delivered) == 3 and sum(provider.duplicates.values()) == 3
    # B is still sending, A settles late: nothing of A's is recorded
    before = touches(warehouse)
    with caplog.at_level("WARNING", logger="userops.messaging"):
        got = settle(warehouse, res_a, NOON + timedelta(minutes=12), 5, 30.0, a)
    assert got == {"claim_lost": 3}
    pd.testing.assert_frame_equal(touches(warehouse), before)
    assert (before["status"] == "in_flight").all() and (before["claimed_by"] == b).all()
    lost = [r.getMessage() for r in caplog.records if "已被另一发送程序接管" in r.getMessage()]
    assert sorted(m[len("消息 "):m.index("：")] for m in lost) == sorted(r[0] for r in claimed_a)
    for cid in ids[:3]:  # a touch key, no contact details
        assert not any(str(people.at[cid, "phone"]) in m for m in lost)
    # the holder records; a second late settle by A (after B's) still changes nothing
    assert settle(warehouse, res_b, NOON + timedelta(minutes=13), 5, 30.0, b) == {"sent": 3}
    after_b = touches(warehouse)
    assert (after_b["status"] == "sent").all() and after_b["claimed_by"].isna().all()
    assert settle(warehouse, res_a, NOON + timedelta(minutes=14), 5, 30.0, a) == {"claim_lost": 3}
    pd.testing.assert_frame_equal(touches(warehouse), after_b)


def test_interrupted_email_is_held_for_review_not_resent(warehouse, people, smtp):
    """SMTP servers do not de-duplicate on Message-ID: an email touch left in flight by a
    sender that died is not resent until an operator approves it."""
    ids = [c for c in people.index if people.at[c, "email"] in ("m7@example.com", "m8@example.com")]
    _plan(warehouse, ids, "email", campaign="mail")
    _hold(warehouse, ids[:1], _dead_local_sender(), NOON - timedelta(minutes=1))
    d = send_due(now=NOON)
    assert d["resent_after_crash"] == 0 and d["held_for_review"] == 1 and d["sent"] == 1
    t = touches(warehouse).set_index("customer_id")
    assert t.at[ids[0], "status"] == "awaiting_review" and t.at[ids[0], "reason"].startswith("email held:")
    assert "SMTP does not de-duplicate" in t.at[ids[0], "reason"] and pd.isna(t.at[ids[0], "claimed_by"])
    assert len(smtp.messages) == 1
    assert send_due(now=NOON)["sent"] == 0 and len(smtp.messages) == 1  # stays held
    with warehouse.begin() as conn:  # the operator's decision (userops campaign approve mail)
        assert approve_touches(conn, "test", campaign="mail") == 1
    assert send_due(now=NOON)["sent"] == 1
    assert smtp.by_message_id[message_id(t.at[ids[0], "touch_key"])] == 1


def test_email_whose_acceptance_went_unseen_is_held(warehouse, people, monkeypatch):
    """The server got the whole message but its answer never arrived (timeout): it may
    have been delivered, so it is held for review rather than retried."""
    import asyncio

    from aiosmtpd.controller import Controller

    from tests.fakes.smtp_server import FakeSmtp, _Handler
    from userops.settings import reset_settings

    class SlowAnswer(_Handler):
        async def handle_DATA(self, server, session, envelope):
            answer = await super().handle_DATA(server, session, envelope)
            await asyncio.sleep(1.5)
            return answer

    monkeypatch.setenv("USEROPS_CAMPAIGNS__REQUEST_TIMEOUT_SECONDS", "0.5")
    reset_settings()
    ids = [c for c in people.index if people.at[c, "email"] == "m7@example.com"]
    _plan(warehouse, ids, "email", campaign="mail")
    srv = FakeSmtp()
    srv._controller = Controller(SlowAnswer(srv), hostname="127.0.0.1", port=srv.port)
    with srv:
        d = send_due(now=NOON, smtp_url=srv.url)
        assert d["held_for_review"] == 1 and d["sent"] == 0 and d["retry_scheduled"] == 0
        t = touches(warehouse)
        assert t["status"].tolist() == ["awaiting_review"] and t["reason"].iloc[0].startswith("email held:")
        assert send_due(now=NOON, smtp_url=srv.url)["claimed"] == 0
        time.sleep(1.2)
        assert len(srv.messages) == 1  # it did reach the server: a resend would have been a second copy


def test_plan_touches_contract(warehouse, people):
    ids = list(people.index)
    with pytest.raises(ValueError, match="needs columns"):
        with warehouse.begin() as conn:
            plan_touches(conn, pd.DataFrame({"customer_id": ids[:1]}))
    with pytest.raises(ValueError, match="unknown channel"):
        _plan(warehouse, ids[:1], "fax")
    # defaults: quiet hours from settings, the customer's timezone, not_before at night
    _plan(warehouse, ids[:2], "sms", planned_at=pd.Timestamp(datetime(2026, 11, 20, 15, 0)))
    t = touches(warehouse)
    assert (t["quiet_hours"] == "21:00-09:00").all() and (t["timezone"] == "Asia/Shanghai").all()
    assert (t["not_before"] == datetime(2026, 11, 21, 1, 0)).all()
    assert (t["grp"] == "treatment").all() and (t["status"] == "planned").all()
    # a suppressed touch may be replaced by a newer decision, a planned one never
    _plan(warehouse, ids[2:3], "sms", status="suppressed", reason="global_cap")
    assert _plan(warehouse, ids[2:3], "sms") == 1
    assert _plan(warehouse, ids[2:3], "sms", status="suppressed", reason="global_cap") == 0
    assert touches(warehouse, "customer_id = :c", {"c": ids[2]})["status"].tolist() == ["planned"]


def test_claim_marks_exactly_one_batch_in_flight(warehouse, people):
    from tasks.messaging import claim_batch

    ids = list(people.index)
    _plan(warehouse, ids[:25], planned_at=pd.Timestamp(NOON))
    _plan(warehouse, ids[25:], campaign="earlier", planned_at=pd.Timestamp(NOON - timedelta(hours=1)))
    rows = claim_batch(warehouse, NOON, 7, worker_id())
    assert len(rows) == 7
    assert {r[1] for r in rows} == {"earlier"}  # oldest planned first
    t = touches(warehouse)
    assert (t["status"] == "in_flight").sum() == 7 and (t.loc[t["status"] == "in_flight", "attempts"] == 1).all()
    assert len(claim_batch(warehouse, NOON, 100, worker_id())) == 43
    assert claim_batch(warehouse, NOON, 100, worker_id()) == []


def test_touches_of_an_unconfigured_channel_wait(warehouse, people, provider):
    ids = list(people.index)
    _plan(warehouse, ids[:3], "email")  # no SMTP server configured
    _plan(warehouse, ids[3:6], "sms")
    d = send_due(now=NOON)
    assert d["sent"] == 3 and d["failed"] == 0 and d["waiting_for_provider"] == {"email": 3}
    t = touches(warehouse, "channel = 'email'")
    assert (t["status"] == "planned").all() and (t["attempts"] == 0).all()
    with pytest.raises(RuntimeError, match="渠道 email 没有配置发送服务：请设置 USEROPS_SMTP_URL") as info:
        send_due(now=NOON, channel_override="email")
    assert info.value.localized("en").startswith("no provider is configured for the email channel: set USEROPS_SMTP_URL")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_warning_about_touches_waiting_for_a_provider_is_in_the_operators_language(warehouse, people, provider, caplog, monkeypatch, lang):
    """`userops campaign run onboarding` with no SMTP server logged an English-only
    'no provider configured for email: 3 touch(es) wait'; it says it in the operator's
    language, with the count and the setting to set."""
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    ids = list(people.index)
    _plan(warehouse, ids[:3], "email")  # no SMTP server configured
    with caplog.at_level("WARNING", logger="userops.messaging"):
        send_due(now=NOON)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "userops.messaging" and r.levelname == "WARNING"]
    assert "USEROPS_SMTP_URL" in line and "email 3" in line and "touch(es)" not in line
    if lang == "zh-CN":
        assert "未配置发送服务" in line and "3 条消息在等待" in line and "请设置 USEROPS_SMTP_URL" in line
    else:
        assert line.startswith("no provider configured: 3 message(s) wait") and "set USEROPS_SMTP_URL" in line


def test_staff_outreach_lists_are_deleted_after_the_keep_days(warehouse, people, tmp_path):
    """The lists hold phones and emails for staff: a sender writing today's removes the day
    folders older than campaigns.outreach_keep_days (30), keeps the recent ones and anything
    that is not a day folder of ours."""
    root = tmp_path / "output" / "outreach"
    for day in ("2026-10-20", "2026-10-21", "2026-11-19"):  # 31, 30 and 1 days before NOON's day
        (root / day).mkdir(parents=True)
        (root / day / "t.csv").write_text("touch_key,phone\nold,13800138000\n", encoding="utf-8-sig")
    (root / "notes").mkdir()
    _plan(warehouse, list(people.index)[:2], "staff")
    assert send_due(now=NOON)["sent"] == 2
    assert sorted(p.name for p in root.iterdir()) == ["2026-10-21", "2026-11-19", "2026-11-20", "notes"]
