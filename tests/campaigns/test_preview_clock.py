"""A dry run for a business day counts the frequency caps as of that day, as the real plan on
that day would: not from today (a preview for next month showed everyone messaged today as
capped: 本活动频次上限：374), and without the touches planned after that day."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from typer.testing import CliRunner

from tests.campaigns.conftest import AS_OF, campaign, touches, write_campaign

TODAY = "2026-11-20T04:00:00"  # 12:00 in Shanghai on AS_OF


@pytest.fixture
def planned_today(sqlite_warehouse, cdir, monkeypatch):
    """60 silent members, the campaign (at most one message in 30 days) planned for real today."""
    from tasks.campaigns.definitions import load_campaigns
    from tasks.campaigns.engine import plan_campaign
    from tests.campaigns.factory import load_members, make_members

    monkeypatch.setenv("USEROPS_NOW", TODAY)
    with sqlite_warehouse.begin() as conn:
        load_members(conn, make_members(60, seed=3, stages={"silent": 1.0}))
    write_campaign(cdir, campaign(frequency_cap={"messages": 1, "days": 30}, holdout_share=0.0))
    c = {c.name: c for c in load_campaigns()}["wake"]
    r = plan_campaign(c, AS_OF)
    assert r.stats["planned"] == 60 and len(touches(sqlite_warehouse)) == 60
    return c


def _capped(c, day) -> int:
    from tasks.campaigns.engine import plan_campaign

    return plan_campaign(c, day, dry_run=True).stats["excluded"]["campaign_cap"]


def test_a_dry_run_counts_caps_as_of_its_day(planned_today):
    c = planned_today
    assert _capped(c, AS_OF + timedelta(days=1)) == 60  # tomorrow: everyone messaged today is still capped
    assert _capped(c, AS_OF + timedelta(days=29)) == 60  # 12:00 on day 29: inside the 30 days
    assert _capped(c, AS_OF + timedelta(days=31)) == 0  # 31 days on: the cap has run out
    assert _capped(c, AS_OF + timedelta(days=49)) == 0
    assert _capped(c, AS_OF - timedelta(days=10)) == 0  # an earlier day: today's touches did not exist yet


def test_the_preview_clock_keeps_the_shop_time_of_day(planned_today):
    from tasks.campaigns.engine import preview_clock

    assert preview_clock(AS_OF) == datetime(2026, 11, 20, 4, 0)  # today: now itself
    assert preview_clock(AS_OF + timedelta(days=49)) == datetime(2027, 1, 8, 4, 0)
    assert preview_clock(AS_OF - timedelta(days=10)) == datetime(2026, 11, 10, 4, 0)


def test_the_cli_dry_run_for_a_later_day(planned_today, monkeypatch):
    from userops.cli import app

    res = CliRunner().invoke(app, ["campaign", "plan", "wake", "--dry-run", "--as-of", "2027-01-08"])
    assert res.exit_code == 0, res.output
    assert "本活动频次上限：0" in res.output and "受众 60 人" in res.output, res.output
    res = CliRunner().invoke(app, ["campaign", "plan", "wake", "--dry-run", "--as-of", "2026-11-21"])
    assert "本活动频次上限：60" in res.output, res.output
