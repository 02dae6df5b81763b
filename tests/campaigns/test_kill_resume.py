"""Exactly once across crashes: real sender processes are killed with SIGKILL at random
points (while planning, between marking in flight and the requests, mid-batch, while
settling), re-run, and the provider must end up with every planned message exactly once.

Only messages that were in flight at a crash may be requested again, and those carry the
same idempotency key, so the provider recognises them (it answers them as duplicates)."""
from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from tasks.messaging import idempotency_key
from tests.campaigns.conftest import AS_OF, NOON, campaign, touches, write_campaign
from tests.campaigns.factory import load_members, make_members
from tests.fakes.message_provider import FakeProvider
from userops.settings import PROJECT_ROOT

ROUNDS = 16
BATCH = 16


class Zygote:
    def __init__(self):
        env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.campaigns.kill_zygote"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, cwd=PROJECT_ROOT, env=env,
        )
        self._buf = b""
        assert self.read(60) == {"ready": True}

    def read(self, timeout: float | None = None) -> dict | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise RuntimeError("zygote exited")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def start(self, cmd: dict) -> int:
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        self.proc.stdin.flush()
        return self.read(30)["pid"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


ENV_KEYS = ("USEROPS_DATABASE_URL", "USEROPS_OUTPUT_DIR", "USEROPS_CONFIG_FILE", "USEROPS_CAMPAIGNS__DEFINITIONS_DIR",
            "USEROPS_CAMPAIGNS__RETRY_BACKOFF_SECONDS", "USEROPS_CAMPAIGNS__RETRY_WAIT_SECONDS")


@pytest.mark.slow
def test_killed_senders_deliver_every_message_exactly_once(warehouse, cdir, zygote):
    frames = make_members(600, seed=9, stages={"silent": 1.0})  # enough work that most rounds are cut short
    with warehouse.begin() as conn:
        load_members(conn, frames)
    write_campaign(cdir, campaign(holdout_share=0.1))
    rng = random.Random(20261120)
    cmd = {"as_of": str(AS_OF), "now": NOON.isoformat(), "batch": BATCH, "workers": 4, "env": {k: os.environ[k] for k in ENV_KEYS}}
    kills, mid_send_kills, in_flight_at_crashes = 0, 0, 0
    exits = Counter()
    with FakeProvider(latency_s=0.004) as prov:
        cmd["sms_url"] = prov.url
        for _ in range(ROUNDS):
            before = prov.requests
            pid = zygote.start(cmd)
            done = None
            if rng.random() < 0.3:  # a random moment: often while planning or claiming
                done = zygote.read(rng.uniform(0.0, 0.8))
            else:  # after a random number of requests: mid-batch
                target = before + rng.randint(1, 2 * BATCH)
                t0 = time.monotonic()
                while prov.requests < target and time.monotonic() - t0 < 20:
                    done = zygote.read(0.0005)
                    if done is not None:
                        break
            if done is None:
                os.kill(pid, signal.SIGKILL)
                done = zygote.read(30)
                kills += 1
                mid_send_kills += prov.requests > before
                with warehouse.connect() as c:
                    in_flight = c.execute(sa.text("SELECT COUNT(*) FROM touches WHERE status = 'in_flight'")).scalar()
                assert in_flight <= 2 * BATCH  # at most the batch on the wire and the next one claimed
                in_flight_at_crashes += in_flight
            exits[done["status"]] += 1
        # the last run is left to finish; one more finds nothing to do
        for _ in range(2):
            zygote.start(cmd)
            assert zygote.read(60)["status"] == 0
        t = touches(warehouse)
        planned = t[t["grp"] == "treatment"]
        assert len(planned) > 200 and (planned["status"] == "sent").all(), planned["status"].value_counts()
        assert (t.loc[t["grp"] == "control", "status"] == "control").all()
        expected = {idempotency_key(k) for k in planned["touch_key"]}
        # nothing lost, nothing extra
        assert set(prov.delivered) == expected
        # one message per customer as the provider saw it (no second key for anyone)
        delivered_customers = Counter(p["touch_key"].split("|")[1] for p in prov.delivered.values())
        assert max(delivered_customers.values()) == 1 and len(delivered_customers) == len(planned)
        # resends only for what was in flight at a crash, recognisable by their key
        duplicates = sum(prov.duplicates.values())
        assert duplicates <= in_flight_at_crashes, (duplicates, in_flight_at_crashes)
        assert prov.requests == len(expected) + duplicates
        assert set(prov.duplicates) <= expected
        print(f"kills={kills} mid_send={mid_send_kills} in_flight_at_crashes={in_flight_at_crashes} duplicates={duplicates} requests={prov.requests} exits={dict(exits)}")
    assert kills >= ROUNDS // 2 and mid_send_kills >= 5, (kills, mid_send_kills, exits)
