"""Fixtures for the alert tests: fake Slack / DingTalk / WeCom on loopback sharing one
hand-moved clock, and a helper pointing the settings at them."""
from __future__ import annotations

import pytest

from tests.fakes.chat_base import FakeClock
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.slack import FakeSlack
from tests.fakes.wecom import FakeWeCom

DING_SECRET = "SEC" + "3f9a" * 16  # what a DingTalk robot's 加签 secret looks like


@pytest.fixture(autouse=True)
def _alert_settings(monkeypatch, tmp_path):
    """No channel from the environment; no Prefect blocks unless a test asks; fast backoff;
    the output folder (the direct posts' journal) is the test's own."""
    from tasks.alerts.routing import clear_channel_cache
    from userops.settings import reset_settings

    for var in ("USEROPS_SLACK_WEBHOOK_URL", "USEROPS_DINGTALK_WEBHOOK_URL", "USEROPS_DINGTALK_SECRET", "USEROPS_WECOM_WEBHOOK_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("USEROPS_ALERTS__USE_BLOCKS", "false")
    monkeypatch.setenv("USEROPS_ALERTS__TIMEOUT_SECONDS", "3")
    monkeypatch.setenv("USEROPS_OUTPUT_DIR", str(tmp_path / "output"))
    reset_settings()
    clear_channel_cache()
    yield
    clear_channel_cache()
    reset_settings()


@pytest.fixture
def clock(monkeypatch):
    """One hand-moved clock for the fakes, the DingTalk signature and the outbox's "now"."""
    import tasks.alerts as alerts_pkg
    import tasks.alerts.digest as digest_mod
    import tasks.alerts.outbox as outbox_mod

    c = FakeClock()
    for mod in (alerts_pkg, outbox_mod, digest_mod):
        monkeypatch.setattr(mod, "utcnow", c.utc)
    return c


@pytest.fixture
def slack(clock):
    with FakeSlack(clock=clock) as s:
        yield s


@pytest.fixture
def dingtalk(clock):
    with FakeDingTalk(secret=DING_SECRET, clock=clock) as d:
        yield d


@pytest.fixture
def wecom(clock):
    with FakeWeCom(clock=clock) as w:
        yield w


@pytest.fixture
def use_channels(monkeypatch, clock):
    """``use_channels(slack=fake, dingtalk=fake, wecom=fake, **settings)``: point the settings
    at the fakes (DingTalk signs with the fake clock) and return the channel clients."""
    from tasks.alerts import routing
    from userops.settings import reset_settings

    def _use(slack=None, dingtalk=None, wecom=None, **env):
        if slack is not None:
            monkeypatch.setenv("USEROPS_SLACK_WEBHOOK_URL", slack.url)
        if dingtalk is not None:
            monkeypatch.setenv("USEROPS_DINGTALK_WEBHOOK_URL", dingtalk.url)
            if dingtalk.secret:
                monkeypatch.setenv("USEROPS_DINGTALK_SECRET", dingtalk.secret)
        if wecom is not None:
            monkeypatch.setenv("USEROPS_WECOM_WEBHOOK_URL", wecom.url)
        for k, v in env.items():
            monkeypatch.setenv(f"USEROPS_{k.upper()}", str(v))
        reset_settings()
        routing.clear_channel_cache()
        # keep these (clock-carrying) clients for every load_channels() of the test
        monkeypatch.setattr(routing, "CACHE_SECONDS", 1e9)
        chans = routing.load_channels(refresh=True)
        if "dingtalk" in chans:
            chans["dingtalk"].clock = clock
        return chans

    return _use


def outbox(engine, **where):
    import sqlalchemy as sa

    from tasks.alerts.outbox import OUTBOX

    q = sa.select(OUTBOX).order_by(OUTBOX.c.id)
    for k, v in where.items():
        q = q.where(getattr(OUTBOX.c, k) == v)
    with engine.connect() as conn:
        return conn.execute(q).all()
