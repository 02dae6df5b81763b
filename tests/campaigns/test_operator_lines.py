"""What the operator reads about a campaign adds up ("every number explained"): the nightly
plan line accounts for the whole audience (a re-run's already planned ones included), a
disabled campaign run by hand says so, the delivery line counts the messages waiting for a
provider and names the setting, and the read-out says why its groups are larger than the
plan line's control (intention to treat: the excluded stay in their group)."""
from __future__ import annotations

import re

from tests.campaigns.conftest import AS_OF, NOON, campaign, write_campaign
from tests.campaigns.factory import load_members, make_members


def _load(cdir, **over):
    from tasks.campaigns.definitions import load_campaigns

    write_campaign(cdir, campaign(**over))
    return {c.name: c for c in load_campaigns(include_disabled=True)}["wake"]


def _members(warehouse, n=200):
    frames = make_members(n, seed=3, stages={"silent": 1.0}, consent_share=0.8)  # some excluded: no consent
    with warehouse.begin() as conn:
        load_members(conn, frames)


def _buckets(line: str) -> list[int]:
    return [int(x.replace(",", "")) for x in re.findall(r"\d[\d,]*", line.split("：", 1)[1].split("（其中")[0])]


def test_the_plan_line_accounts_for_every_member_of_the_audience_on_a_rerun(warehouse, cdir):
    from flows.campaigns import _summary
    from tasks.campaigns.engine import plan_campaign

    _members(warehouse)
    c = _load(cdir, holdout_share=0.2)
    first = plan_campaign(c, AS_OF, engine=warehouse, now=NOON).stats
    again = plan_campaign(c, AS_OF, engine=warehouse, now=NOON).stats  # the same period: everyone planned already
    for s in (first, again):
        (line,) = _summary({"wake": s}, None)
        audience, excluded, already, control, planned = _buckets(line)
        assert audience == s["audience"] == excluded + already + control + planned, line
        assert "本周期已安排" in line, line
    assert again["planned"] == again["control"] == 0 and again["already_planned"] == first["control"] + first["planned"] > 0
    assert f"本周期已安排 {again['already_planned']}" in _summary({"wake": again}, None)[0]


def test_a_disabled_campaign_run_by_hand_says_so(warehouse, cdir):
    from flows.campaigns import _summary
    from tasks.campaigns.engine import plan_campaign

    _members(warehouse, 20)
    c = _load(cdir, enabled=False)
    lines = _summary({"wake": plan_campaign(c, AS_OF, engine=warehouse, now=NOON, dry_run=True).stats}, None)
    assert "已停用" in lines[0] and "夜间任务不会运行它" in lines[0], lines
    enabled = _load(cdir)
    assert not any("已停用" in x for x in _summary({"wake": plan_campaign(enabled, AS_OF, engine=warehouse, now=NOON, dry_run=True).stats}, None))


def test_the_delivery_line_counts_what_waits_for_a_provider_and_names_the_setting(warehouse, cdir, monkeypatch):
    from flows.campaigns import _summary
    from tasks.campaigns.engine import plan_campaign
    from tasks.messaging import send_due
    from userops.settings import reset_settings

    monkeypatch.delenv("USEROPS_SMTP_URL", raising=False)
    reset_settings()
    _members(warehouse)
    variants = [{"name": "A", "subject": {"zh-CN": "你好", "en": "Hi"}, "body": {"zh-CN": "{{ name }}，好久不见！", "en": "Hi {{ name }}"}}]
    c = _load(cdir, channel="email", holdout_share=0.0, variants=variants)
    other = _load(cdir, name="other", channel="email", holdout_share=0.0, variants=variants)  # another campaign's waiting touches
    plan = plan_campaign(c, AS_OF, engine=warehouse, now=NOON).stats
    plan_campaign(other, AS_OF, engine=warehouse, now=NOON)
    d = send_due(warehouse, now=NOON, campaign="wake")
    assert d["sent"] == 0 and d["waiting_for_provider"] == {"email": plan["planned"]} and plan["planned"] > 100
    line = _summary({}, d)[0]
    assert f"等待渠道配置 {plan['planned']:,} 条" in line and "USEROPS_SMTP_URL" in line, line


def test_the_report_says_what_its_group_counts_mean(warehouse, cdir):
    from tasks.campaigns.engine import plan_campaign
    from tasks.campaigns.readout import campaign_report, report_markdown, report_rows

    _members(warehouse)
    c = _load(cdir, holdout_share=0.3)
    s = plan_campaign(c, AS_OF, engine=warehouse, now=NOON).stats
    rep = campaign_report(warehouse, "wake", now=NOON)
    gc, gt = rep["groups"]["control"], rep["groups"]["treatment"]
    assert gc["customers"] > s["control"]  # the excluded stay in their group (intention to treat)
    md = report_markdown(rep, "唤醒", "zh-CN")
    assert f"对照组 {gc['customers']} = 可联系（不发送）{s['control']} + 计划时被排除 {gc['customers'] - s['control']}" in md, md
    assert f"实验组 {gt['customers']} = 已触达 0 + 未发送（被抑制）{gt['suppressed']} + 发送失败 0 + 待发送 {s['planned']}" in md, md
    assert "意向处理" in md and "夜间计划行" in md
    en = report_markdown(rep, "Wake", "en")
    assert f"control {gc['customers']} = contactable (not messaged) {s['control']} + excluded at planning" in en, en
    assert any(r.get("待发送") == s["planned"] for r in report_rows(rep, "zh-CN"))
