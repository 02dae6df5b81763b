"""Planning a campaign: exclusions with their counts, caps, crisis suppression, holdout,
budget, quiet hours, rendering, idempotent re-runs, dry run. SQLite and PostgreSQL."""
from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks.campaigns.definitions import load_campaigns
from tasks.campaigns.engine import plan_campaign
from tasks.messaging import plan_touches, send_due
from tests.campaigns.conftest import AS_OF, NOON, campaign, touches, write_campaign
from tests.campaigns.factory import load_members, make_members, set_tags
from userops.db import bulk_upsert


def _c(name: str):
    return {c.name: c for c in load_campaigns()}[name]


def _ids(frames, n, start=0):
    return list(frames["customers"]["customer_id"].iloc[start : start + n])


def test_exclusions_are_counted_per_reason(warehouse, cdir, members):
    ids = list(members["customers"]["customer_id"])
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE customers SET marketing_consent = :f WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)), {"f": False, "ids": ids[:7]})
        conn.execute(sa.text("UPDATE customers SET marketing_consent = NULL WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)), {"ids": ids[14:16]})
        conn.execute(sa.text("UPDATE customers SET unsubscribed_at = :t WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True), sa.bindparam("t", type_=sa.DateTime())), {"t": datetime(2026, 11, 1), "ids": ids[5:14]})
        conn.execute(sa.text("UPDATE customers SET phone = NULL WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)), {"ids": ids[20:23]})
        bulk_upsert(conn, "incidents", pd.DataFrame([
            {"incident_id": "inc-open", "skus": "[]", "status": "open", "opened_at": datetime(2026, 11, 19)},
            {"incident_id": "inc-closed", "skus": "[]", "status": "closed", "opened_at": datetime(2026, 11, 1)},
        ]).astype({"opened_at": "datetime64[us]"}), ["incident_id"])
        bulk_upsert(conn, "incident_customers", pd.DataFrame(
            [{"incident_id": "inc-open", "customer_id": c} for c in ids[30:34]] + [{"incident_id": "inc-closed", "customer_id": c} for c in ids[40:45]]
        ), ["incident_id", "customer_id"])
    write_campaign(cdir, campaign())
    r = plan_campaign(_c("wake"), AS_OF, now=NOON)
    ex = r.stats["excluded"]
    # the first reason wins: unsubscribed before consent
    assert ex["unsubscribed"] == 9  # ids[5:14]
    assert ex["no_consent"] == 7  # ids[0:5] (5..6 are unsubscribed) + ids[14:16] with unknown consent
    assert ex["no_contact"] == 3
    assert ex["open_crisis"] == 4  # closed incidents do not suppress
    assert r.stats["audience"] == 400
    assert r.stats["eligible"] == 400 - 9 - 7 - 3 - 4
    t = touches(warehouse)
    assert len(t) == 400
    sup = t[t["status"] == "suppressed"].set_index("customer_id")["reason"]
    assert set(sup[sup == "open_crisis"].index) == set(ids[30:34])
    assert set(sup[sup == "no_contact"].index) == set(ids[20:23])
    assert not t.loc[t["status"] == "planned", "customer_id"].isin(ids[:16] + ids[20:23] + ids[30:34]).any()
    assert t.loc[t["status"] == "planned", "customer_id"].isin(ids[40:45]).sum() > 0
    assert r.stats["control"] + r.stats["treatment"] == r.stats["eligible"]


def test_global_and_campaign_caps(warehouse, cdir, members):
    ids = list(members["customers"]["customer_id"])
    now = NOON

    def prior(cid, campaign, days_ago, marketing=True, status="sent"):
        at = now - timedelta(days=days_ago)
        return {"touch_key": f"{campaign}|{cid}|{days_ago}", "campaign": campaign, "customer_id": cid, "channel": "sms", "status": status,
                "is_marketing": marketing, "planned_at": at, "sent_at": at if status == "sent" else None, "grp": "treatment"}

    rows = [prior(c, "other", 1) for c in ids[:10]] + [prior(c, "other2", 3) for c in ids[:10]]  # 2 in 7 days -> capped
    rows += [prior(c, "other", 2) for c in ids[10:20]]  # 1 in 7 days -> fine
    rows += [prior(c, "other", 8) for c in ids[20:30]] + [prior(c, "other2", 9) for c in ids[20:30]]  # too old -> fine
    rows += [prior(c, "crisis-x", 1, marketing=False) for c in ids[30:40]] + [prior(c, "other", 1) for c in ids[30:40]]  # service message does not count
    rows += [prior(c, "other", 1, status="planned") for c in ids[40:50]] + [prior(c, "other2", 1, status="failed") for c in ids[40:50]]
    rows += [prior(c, "wake", 5) for c in ids[50:60]]  # this campaign 5 days ago (another period)
    df = pd.DataFrame(rows)
    df["sent_at"] = pd.to_datetime(df["sent_at"]).astype("datetime64[us]")
    with warehouse.begin() as conn:
        plan_touches(conn, df[[c for c in df.columns if c != "sent_at"]])
        for r in rows:
            if r["sent_at"] is not None:
                conn.execute(sa.text("UPDATE touches SET sent_at = :s WHERE touch_key = :k").bindparams(sa.bindparam("s", type_=sa.DateTime())), {"s": r["sent_at"], "k": r["touch_key"]})
    write_campaign(cdir, campaign(frequency_cap={"messages": 1, "days": 7}))
    r = plan_campaign(_c("wake"), AS_OF, now=now)
    t = touches(warehouse, "campaign = 'wake' AND period = :p", {"p": "2026-11-20"}).set_index("customer_id")
    assert r.stats["excluded"]["global_cap"] == 10
    assert set(t.index[t["reason"] == "global_cap"]) == set(ids[:10])
    assert set(t.index[t["reason"] == "campaign_cap"]) == set(ids[50:60])
    assert r.stats["excluded"]["campaign_cap"] == 10
    assert t.loc[ids[10:50], "reason"].isna().all()


def test_global_cap_across_campaigns_in_one_night(warehouse, cdir, members):
    for n, prio in (("first", 90), ("second", 80), ("third", 70)):
        write_campaign(cdir, campaign(n, priority=prio, holdout_share=0.0))
    for c in load_campaigns():
        plan_campaign(c, AS_OF, now=NOON)
    t = touches(warehouse)
    per_customer = t[t["status"] == "planned"].groupby("customer_id").size()
    assert per_customer.max() == 2  # default: at most 2 marketing messages per 7 days
    third = t[t["campaign"] == "third"]
    assert (third["reason"] == "global_cap").all() and len(third) == 400


def test_holdout_is_deterministic_and_stable(warehouse, cdir):
    frames = make_members(3000, seed=5, stages={"silent": 1.0})
    with warehouse.begin() as conn:
        load_members(conn, frames)
    write_campaign(cdir, campaign(period="day"))
    c = _c("wake")
    r1 = plan_campaign(c, AS_OF, now=NOON)
    again = plan_campaign(c, AS_OF, now=NOON + timedelta(hours=1))
    assert again.stats["already_planned"] == 3000 and again.stats["written"] == 0 and again.stats["planned"] == 0
    next_day = AS_OF + timedelta(days=1)
    r2 = plan_campaign(c, next_day, now=NOON + timedelta(days=1))
    t = touches(warehouse)
    g1 = t[t["period"] == "2026-11-20"].set_index("customer_id")["grp"]
    g2 = t[t["period"] == "2026-11-21"].set_index("customer_id")["grp"]
    assert (g1.sort_index() == g2.sort_index()).all()  # the same customers are held out every run
    share = (g1 == "control").mean()
    assert 0.08 <= share <= 0.12, share
    assert r1.stats["control"] == (g1 == "control").sum()
    assert set(t.loc[t["grp"] == "control", "status"]) == {"control"}
    # a different campaign splits differently (hash of campaign AND customer)
    write_campaign(cdir, campaign("other", period="day"))
    plan_campaign(_c("other"), AS_OF, now=NOON)
    g3 = touches(warehouse, "campaign = 'other'").set_index("customer_id")["grp"]
    assert (g3.sort_index() != g1.sort_index()).sum() > 100
    assert r2.stats["per_variant"].keys() == {"A", "B"}


def test_budget_cap_gives_gifts_to_most_at_risk_first(warehouse, cdir, members):
    write_campaign(cdir, campaign(budget={"amount": 100, "per": "month"}, gift={"cost": 10, "text": {"zh-CN": "10元券", "en": "a voucher"}},
                                  variants=[{"name": "A", "body": {"zh-CN": "{{ name }} {{ gift }}", "en": "{{ name }} {{ gift }}"}}]))
    c = _c("wake")
    r = plan_campaign(c, AS_OF, now=NOON)
    assert r.stats["planned"] == 10 and r.stats["gift_cost_planned"] == 100.0
    t = touches(warehouse)
    planned = t[t["status"] == "planned"]
    budget_cut = t[t["reason"] == "budget"]
    assert len(budget_cut) == r.stats["excluded"]["budget"] == r.stats["treatment"] - 10
    scores = members["churn_scores"].set_index("customer_id")["probability"]
    assert scores[planned["customer_id"]].min() >= scores[budget_cut["customer_id"]].max()
    assert planned["gift_cost"].sum() == 100.0
    # later the same month: the budget is spent
    r2 = plan_campaign(c, AS_OF + timedelta(days=1), now=NOON + timedelta(days=1))
    assert r2.stats["planned"] == 0 and r2.stats["budget_remaining_before"] == 0


def test_two_planners_at_once_never_spend_the_budget_twice(warehouse, cdir, members, monkeypatch):
    """The nightly stage and an event-started run plan the same campaign at the same time
    for different customers: together they stay within the budget."""
    import threading
    import time as _time

    from tasks.campaigns import engine as eng

    write_campaign(cdir, campaign(budget={"amount": 100, "per": "month"}, gift={"cost": 10, "text": {"zh-CN": "10元券", "en": "a voucher"}},
                                  variants=[{"name": "A", "body": {"zh-CN": "{{ name }} {{ gift }}", "en": "{{ name }} {{ gift }}"}}]))
    c = _c("wake")
    audience = eng.select_audience(warehouse, c, AS_OF)
    halves = {"nightly": audience.iloc[::2].reset_index(drop=True), "event": audience.iloc[1::2].reset_index(drop=True)}
    monkeypatch.setattr(eng, "select_audience", lambda engine, c, as_of, entry="nightly", event=None: halves[entry].copy())
    spent = eng._budget_spent

    def slow_spent(*a, **k):  # both read the budget before either writes, unless planning is serialized
        v = spent(*a, **k)
        _time.sleep(1.0)
        return v

    monkeypatch.setattr(eng, "_budget_spent", slow_spent)
    results, errors = {}, []

    def plan(entry):
        try:
            results[entry] = plan_campaign(c, AS_OF, now=NOON, entry=entry, parent_run_id=entry)
        except Exception as exc:  # pragma: no cover - shown by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=plan, args=(e,)) for e in ("nightly", "event")]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors
    t = touches(warehouse)
    assert t.loc[t["status"] == "planned", "gift_cost"].sum() == 100.0
    assert sorted(r.stats["planned"] for r in results.values())[1] > 0
    assert sum(r.stats["planned"] for r in results.values()) == 10


def test_quiet_hours_defer_never_drop(warehouse, cdir, provider):
    frames = make_members(60, seed=2, stages={"silent": 1.0}, timezones={"Asia/Shanghai": 0.5, "America/New_York": 0.5})
    with warehouse.begin() as conn:
        load_members(conn, frames)
    write_campaign(cdir, campaign(holdout_share=0.0))
    evening = datetime(2026, 11, 20, 14, 0)  # 22:00 in Shanghai, 09:00 in New York
    r = plan_campaign(_c("wake"), AS_OF, now=evening)
    t = touches(warehouse).set_index("customer_id")
    tz = frames["customers"].set_index("customer_id")["timezone"]
    sh = tz[tz == "Asia/Shanghai"].index
    ny = tz[tz == "America/New_York"].index
    assert (t.loc[sh, "not_before"] == datetime(2026, 11, 21, 1, 0)).all()  # 09:00 next morning in Shanghai
    assert t.loc[ny, "not_before"].isna().all()
    assert r.stats["deferred_quiet_hours"] == len(sh)
    d1 = send_due(now=evening + timedelta(minutes=30))
    assert d1["sent"] == len(ny)
    assert len(provider.delivered) == len(ny)
    # a touch planned before quiet hours but still due at 23:00 is deferred at send time too
    late = datetime(2026, 11, 21, 4, 30)  # 23:30 in New York, 12:30 in Shanghai
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE touches SET status = 'planned', not_before = NULL, sent_at = NULL WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)), {"ids": list(ny[:3])})
    d2 = send_due(now=late)
    assert d2["sent"] == len(sh) and d2["deferred_quiet_hours"] == 3
    t = touches(warehouse).set_index("customer_id")
    assert (t.loc[ny[:3], "not_before"] == datetime(2026, 11, 21, 14, 0)).all()  # 09:00 in New York
    assert set(t["status"]) == {"sent", "planned"}
    d3 = send_due(now=datetime(2026, 11, 21, 14, 1))
    assert d3["sent"] == 3
    assert set(touches(warehouse)["status"]) == {"sent"}


def test_messages_are_personal_bilingual_and_carry_unsubscribe(warehouse, cdir):
    frames = make_members(40, seed=3, stages={"silent": 1.0}, timezones={"Asia/Shanghai": 0.5, "Europe/Berlin": 0.5})
    with warehouse.begin() as conn:
        load_members(conn, frames)
    write_campaign(cdir, campaign(holdout_share=0.0))
    write_campaign(cdir, campaign("mail", channel="email", holdout_share=0.0, variants=[
        {"name": "A", "subject": {"zh-CN": "{{ name }},想您了", "en": "{{ name }}, we miss you"}, "body": {"zh-CN": "{{ name }},{{ days_since_last_order }}天没见", "en": "{{ name }}, {{ days_since_last_order }} days"}}]))
    for c in load_campaigns():
        plan_campaign(c, AS_OF, now=NOON)
    t = touches(warehouse, "status = 'planned'").merge(frames["customers"][["customer_id", "name"]], on="customer_id")
    zh, en = t[t["timezone"] == "Asia/Shanghai"], t[t["timezone"] == "Europe/Berlin"]
    assert len(zh) > 5 and len(en) > 5
    assert (zh["locale"] == "zh-CN").all() and (en["locale"] == "en").all()
    assert all(n in b for n, b in zip(t["name"], t["body"]))  # personalized
    sms, mail = t[t["channel"] == "sms"], t[t["channel"] == "email"]
    assert sms.loc[sms["locale"] == "zh-CN", "body"].str.endswith("回T退订").all()
    assert sms.loc[sms["locale"] == "en", "body"].str.contains("Reply T to unsubscribe").all()
    assert mail["body"].str.contains("https://shop.example.com/unsubscribe?c=", regex=False).all()
    assert mail["subject"].notna().all() and all(n in s for n, s in zip(mail["name"], mail["subject"]))
    days = (pd.Timestamp(AS_OF) - frames["tags"].set_index("customer_id")["last_paid_at"].dt.tz_localize("UTC").dt.tz_convert("Asia/Shanghai").dt.tz_localize(None).dt.normalize()).dt.days
    m = mail.set_index("customer_id")
    assert all(f"{days[c]}" in m.at[c, "body"] for c in m.index)
    # unsubscribe tokens are per customer
    tokens = mail["body"].str.extract(r"t=([0-9a-f]{16})")[0]
    assert tokens.notna().all() and tokens.nunique() == len(mail)


def test_dry_run_writes_nothing_and_masks_personal_data(warehouse, cdir, members):
    write_campaign(cdir, campaign())
    r = plan_campaign(_c("wake"), AS_OF, now=NOON, dry_run=True, sample_size=4)
    assert touches(warehouse).empty
    assert r.stats["planned"] > 0 and len(r.sample) >= 2
    names = set(members["customers"]["name"])
    phones = set(members["customers"]["phone"])
    for m in r.sample:
        assert not any(n in m["body"] for n in names if len(n) > 1)
        assert not any(p in m["body"] for p in phones)
        assert "*" in m["body"]
    with warehouse.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM campaign_runs")).scalar() == 0


def test_sql_audience_and_stage_change_entry(warehouse, cdir, members):
    ids = _ids(members, 10)
    write_campaign(cdir, campaign("bysql", audience={"sql": f"SELECT customer_id FROM tags WHERE customer_id IN ({', '.join(repr(i) for i in ids[:6])})"}))
    write_campaign(cdir, campaign("onb", entry=[{"on": "stage_change", "to": ["silent"], "within_days": 1}]))
    with warehouse.begin() as conn:
        hist = pd.DataFrame([
            {"customer_id": ids[0], "from_stage": "active", "to_stage": "silent", "changed_on": AS_OF},
            {"customer_id": ids[1], "from_stage": "active", "to_stage": "silent", "changed_on": AS_OF - timedelta(days=3)},  # too old
            {"customer_id": ids[2], "from_stage": "silent", "to_stage": "churned", "changed_on": AS_OF},  # other stage
        ])
        bulk_upsert(conn, "stage_history", hist, ["customer_id", "changed_on"])
    r = plan_campaign(_c("bysql"), AS_OF, now=NOON)
    assert r.stats["audience"] == 6
    r = plan_campaign(_c("onb"), AS_OF, now=NOON)
    assert r.stats["audience"] == 1
    assert set(touches(warehouse, "campaign = 'onb'")["customer_id"]) == {ids[0]}


def test_sql_audience_runs_read_only(warehouse, cdir, members):
    from tasks.campaigns.definitions import Audience, Campaign

    c = Campaign.model_validate(campaign())
    # a definition that slipped past validation still cannot write
    evil = c.model_copy(update={"audience": Audience.model_construct(rule=None, sql="SELECT customer_id FROM tags")})
    r = plan_campaign(evil, AS_OF, now=NOON, dry_run=True)
    assert r.stats["audience"] == 400
    from tasks.campaigns.engine import select_audience

    bad = c.model_copy(update={"audience": Audience.model_construct(rule=None, sql="SELECT customer_id FROM tags WHERE 1 = 1) x; DELETE FROM tags; SELECT * FROM (SELECT customer_id FROM tags")})
    with pytest.raises(Exception):
        select_audience(warehouse, bad, AS_OF)
    with warehouse.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM tags")).scalar() == 400


def test_segments_give_vip_treatment(warehouse, cdir, members):
    ids = _ids(members, 400)
    with warehouse.begin() as conn:
        set_tags(conn, ids[:50], value_tier="high")
        set_tags(conn, ids[50:], value_tier="low")
    write_campaign(cdir, campaign(holdout_share=0.0, segments=[{"name": "vip", "when": {"value_tier": ["high"]}, "channel": "staff",
        "gift": {"cost": 50, "text": {"zh-CN": "礼包", "en": "gift box"}},
        "variants": [{"name": "vip", "body": {"zh-CN": "{{ name }}您好,累计{{ ltv }}元,{{ gift }}", "en": "Hello {{ name }}, {{ ltv }}, {{ gift }}"}}]}]))
    r = plan_campaign(_c("wake"), AS_OF, now=NOON)
    t = touches(warehouse).set_index("customer_id")
    assert (t.loc[ids[:50], "channel"] == "staff").all() and (t.loc[ids[:50], "variant"] == "vip").all()
    assert (t.loc[ids[:50], "gift_cost"] == 50).all()
    assert t.loc[ids[:50], "quiet_hours"].isna().all()
    assert (t.loc[ids[50:], "channel"] == "sms").all()
    assert r.stats["per_segment"]["vip"] == 50


def test_recall_event_uses_its_audience_and_notes(warehouse, cdir, members):
    ids = _ids(members, 400)
    with warehouse.begin() as conn:
        set_tags(conn, ids[:100], lifecycle_stage="churned", value_tier="high")
        set_tags(conn, ids[100:200], value_tier="mid")
        set_tags(conn, ids[200:], value_tier="low")
    import shutil

    from userops.settings import PROJECT_ROOT

    shutil.copy(PROJECT_ROOT / "campaigns" / "recall.yaml", cdir / "recall.yaml")
    c = _c("recall")
    nightly = plan_campaign(c, AS_OF, now=NOON, dry_run=True)
    assert nightly.stats["audience"] == 100  # churned, mid/high
    ev = plan_campaign(c, AS_OF, now=NOON, entry="event", event="userops.health.silent-share-high", notes="silent share 38.0% > 35%")
    assert ev.stats["audience"] == 200  # silent and churned, mid/high
    with warehouse.connect() as conn:
        notes = conn.execute(sa.text("SELECT notes FROM campaign_runs WHERE campaign = 'recall'")).scalar()
    assert notes == "silent share 38.0% > 35%"
