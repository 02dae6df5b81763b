"""Affected customers in priority order, remedies per tier, apologies exactly once."""
from __future__ import annotations

import pandas as pd

from tasks.crisis.compensate import (
    affected_customers,
    awaiting_review,
    campaign_name,
    plan_compensation,
    refresh_compensated,
    release_core,
    send_apologies,
)
from tasks.crisis.incidents import get_step
from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame

CUSTOMERS = {"C1": "ordinary", "C2": "core", "C3": "potential", "C4": None, "C5": "core", "C6": "potential"}


def test_priority_order_and_look_back(warehouse):
    shop(warehouse, CUSTOMERS)
    df = affected_customers(warehouse, ["SKU-BAD"], NOW, NOW)
    # not C-OLD (45 days ago), not C-OTHER (other SKU; its SKU-BAD order was refunded)
    assert set(df["customer_id"]) == set(CUSTOMERS)
    # core > potential > ordinary; within a tier the bigger amount first (C5 paid 14, C2 11)
    assert df["customer_id"].tolist() == ["C5", "C2", "C6", "C3", "C4", "C1"]
    assert df["priority"].tolist() == ["core", "core", "potential", "potential", "ordinary", "ordinary"]
    assert df["rank"].tolist() == [1, 2, 3, 4, 5, 6]


def test_remedies_per_tier_and_core_review(warehouse, provider, pinned_now, monkeypatch):
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_CRISIS__REMEDIES__ORDINARY__COUPON_VALUE", "5")
    monkeypatch.setenv("USEROPS_CRISIS__REMEDIES__ORDINARY__REFUND_OFFER", "false")
    reset_settings()
    shop(warehouse, CUSTOMERS)
    inc = open_incident(warehouse)
    iid = inc["incident_id"]
    out = plan_compensation(iid, warehouse)
    assert out["customers"] == 6 and out["per_tier"] == {"core": 2, "potential": 2, "ordinary": 2}

    ic = read_frame(warehouse, "SELECT * FROM incident_customers WHERE incident_id = :i ORDER BY rank", {"i": iid})
    by = ic.set_index("customer_id")
    assert by.loc["C2", "remedy"] == "coupon50+refund+call" and bool(by.loc["C2", "call_list"])
    assert by.loc["C3", "remedy"] == "coupon30+refund" and not bool(by.loc["C3", "call_list"])
    assert by.loc["C1", "remedy"] == "coupon5" and float(by.loc["C1", "coupon_value"]) == 5.0
    assert not bool(by.loc["C1", "refund_offer"])

    t = read_frame(warehouse, "SELECT * FROM touches WHERE campaign = :c", {"c": campaign_name(iid)})
    apologies = t[t["channel"] == "sms"].set_index("customer_id")
    calls = t[t["channel"] == "staff"]
    assert sorted(calls["customer_id"]) == ["C2", "C5"]  # the personal call list: core only
    assert (apologies.loc[["C2", "C5"], "status"] == "awaiting_review").all()
    assert (apologies.loc[["C1", "C3", "C4", "C6"], "status"] == "planned").all()
    assert not apologies["is_marketing"].astype(bool).any()
    # personalised: the customer's name, the product, the remedy of their tier
    assert apologies.loc["C2", "body"].startswith("客户1，您好")
    assert "水杯(SKU-BAD)" in apologies.loc["C2", "body"] and "50元" in apologies.loc["C2", "body"]
    assert "专属客服" in apologies.loc["C2", "body"]
    assert "5元" in apologies.loc["C1", "body"] and "退款" not in apologies.loc["C1", "body"]
    assert apologies["body"].nunique() == len(apologies)
    assert float(apologies.loc["C3", "gift_cost"]) == 30.0

    # planning again changes nothing
    assert plan_compensation(iid, warehouse)["planned"] == 0
    assert len(read_frame(warehouse, "SELECT touch_key FROM touches")) == len(t)

    # non-core go out; core wait for a human
    res = send_apologies(iid, warehouse)
    assert res["sent"] >= 4
    delivered = {p["touch_key"].split("|")[1] for p in provider.delivered.values()}
    assert delivered == {"C1", "C3", "C4", "C6"}
    # queued in the service order (core, then potential, then ordinary; bigger amount first)
    queued = t[t["channel"] == "sms"].sort_values("planned_at")["customer_id"].tolist()
    assert queued == ["C5", "C2", "C6", "C3", "C4", "C1"]
    prog = refresh_compensated(iid, warehouse)
    assert prog["awaiting_review"] == 2
    assert get_step(warehouse, iid, "compensate")["status"] == "waiting"
    assert len(awaiting_review(iid, warehouse)) == 2

    # the reviewer holds C5 (staff will call) and releases C2
    r = release_core(iid, "reviewer-li", exclude=["C5"], engine=warehouse)
    assert r == {"released": 1, "held": 1, "not_excluded": [], "not_in_incident": []}
    send_apologies(iid, warehouse)
    prog = refresh_compensated(iid, warehouse)
    delivered = {p["touch_key"].split("|")[1] for p in provider.delivered.values()}
    assert delivered == {"C1", "C2", "C3", "C4", "C6"}
    assert provider.stats()["duplicates"] == 0
    step = get_step(warehouse, iid, "compensate")
    assert step["status"] == "done" and prog["pending"] == 0
    ic = read_frame(warehouse, "SELECT customer_id, compensated_at FROM incident_customers WHERE incident_id = :i", {"i": iid},
                    parse_dates=["compensated_at"]).set_index("customer_id")
    assert pd.notna(ic.loc["C2", "compensated_at"]) and pd.isna(ic.loc["C5", "compensated_at"])
    audit = read_frame(warehouse, "SELECT actor, action FROM audit_log WHERE action = 'compensation.core_reviewed'")
    assert audit["actor"].tolist() == ["reviewer-li"]


def test_no_affected_customers_completes_compensate(warehouse):
    shop(warehouse, {})
    inc = open_incident(warehouse, skus=("SKU-NOBODY",))
    assert plan_compensation(inc["incident_id"], warehouse)["customers"] == 0
    assert get_step(warehouse, inc["incident_id"], "compensate")["status"] == "done"


def test_the_work_a_join_leaves_is_done_once_whoever_does_it(warehouse, provider, pinned_now):
    """``finish_left_work`` (a joining run, and the hourly monitor for a join that died): the
    SKUs nobody asked to take down are taken down, the buyers nobody planned an apology for are
    planned once compensation has begun; the monitor's guard leaves an incident alone until a
    run has started Control for it."""
    from datetime import timedelta

    from tasks.crisis.compensate import finish_left_work
    from tasks.crisis.incidents import open_or_join
    from tests.crisis.conftest import add_customers, add_orders, add_tags

    shop(warehouse, {"C1": "ordinary", "C2": "potential"})
    iid = open_incident(warehouse)["incident_id"]
    assert finish_left_work(iid, warehouse, NOW, control_started_only=True) == {}  # nobody started Control
    assert finish_left_work(iid, warehouse, NOW) == {"take_down": ["SKU-BAD"], "confirmed": False}  # no hook: a human's task
    assert finish_left_work(iid, warehouse, NOW) == {}  # asked once: not again
    plan_compensation(iid, warehouse, NOW)

    with warehouse.begin() as conn:  # a sister SKU joins; C5 bought it
        add_customers(conn, ["C5"])
        add_orders(conn, [("O-C5", "C5", NOW - timedelta(days=3), "paid", "SKU-NEW", 1, 30.0, "水杯")])
        add_tags(conn, {"C5": "potential"})
    assert open_or_join(["SKU-BAD", "SKU-NEW"], "同批次", engine=warehouse, now=NOW)["incident_id"] == iid
    done = finish_left_work(iid, warehouse, NOW, control_started_only=True)
    assert done == {"take_down": ["SKU-NEW"], "confirmed": False, "planned": 1}
    assert finish_left_work(iid, warehouse, NOW, control_started_only=True) == {}
    touches = read_frame(warehouse, "SELECT customer_id FROM touches WHERE campaign = :c", {"c": campaign_name(iid)})
    assert sorted(touches["customer_id"]) == ["C1", "C2", "C5"]


def test_the_core_review_sample_names_no_customer(warehouse):
    """The core-review form lives in Prefect: its sample of held apologies masks the customer's
    name wherever it stands (zh-CN greeting '王芳，您好', English 'Dear Fang Wang,'), and a phone
    or email the text quotes; a customer without a name on record is masked before the comma."""
    import pandas as pd

    from tasks.crisis.compensate import review_sample
    from tests.crisis.conftest import add_customers

    with warehouse.begin() as conn:
        add_customers(conn, ["C1", "C2"], names=["王芳", "Fang Wang"])
    pending = pd.DataFrame({
        "customer_id": ["C1", "C2", "C3"],
        "body": ["王芳，您好。您购买的水杯出了问题，王芳女士，真的很抱歉。", "Dear Fang Wang, the cup you bought has a problem; call 13812345678.",
                 "李雷，您好。请联系 li.lei@example.com。"],
    })
    out = review_sample(pending, warehouse)
    for secret in ("王芳", "Fang Wang", "13812345678", "li.lei@example.com", "李雷"):
        assert secret not in out, out
    assert "> C1: 王*，您好。" in out and "王*女士" in out and "> C2: Dear F********," in out and "> C3: 李*，您好。" in out
    assert out.count("> ") == 3 and review_sample(pending.head(0), warehouse) == ""
