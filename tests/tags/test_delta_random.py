"""The nightly delta path (additions folded into the aggregate, the stored nightly frame,
only changed tag rows written) ends every night exactly where a full recompute would, on
random shops over several simulated nights: new orders, refunds, edited amounts, an older
order whose payment time moves into the new day, orders known before they are paid, new
and removed members."""
from __future__ import annotations

import random
from datetime import timedelta

import pandas as pd
import sqlalchemy as sa

from tasks import tags
from tests.tags.factory import AS_OF, Shop, local, set_order
from tests.tags.test_incremental import assert_same, recomputed_aggregates, stored_aggregates
from userops.db import read_frame

CATS = ["skincare", "makeup", "gift"]
CHANNELS = ["app", "web", "store"]
TAG_COLS = ["customer_id", "lifecycle_stage", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "value_tier", "crisis_priority",
            "price_sensitive", "favourite_category", "preferred_channel", "ltv", "paid_orders"]


def _random_order(s: Shop, rng: random.Random, cid: str, paid_at, **kw) -> str:
    return s.order(
        cid, paid_at,
        amount=round(rng.uniform(20, 300), 2),
        status=kw.pop("status", rng.choices(["paid", "refunded", "cancelled"], [8, 1, 1])[0]),
        discount=rng.choice([0.0, 0.0, 15.0, 40.0]),
        channel=rng.choice(CHANNELS),
        category=rng.choice(CATS),
        qty=rng.randint(1, 3),
        **kw,
    )


def stored_tags(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        df = tags.fetch_frame(conn, f"SELECT {', '.join(TAG_COLS)} FROM tags ORDER BY customer_id", numeric=["rfm_r", "rfm_f", "rfm_m", "ltv", "paid_orders"])
    df["price_sensitive"] = df["price_sensitive"].map(lambda v: None if v is None or pd.isna(v) else bool(tags.as_bool(pd.Series([v])).iloc[0]))
    return df.reset_index(drop=True)


def fresh_tags(engine, day) -> pd.DataFrame:
    with engine.connect() as conn:
        base = tags.base_frame(conn, day, stored=False)
    fresh, _ = tags.compute_tags(base, day)
    fresh = fresh[TAG_COLS].sort_values("customer_id").reset_index(drop=True)
    fresh["price_sensitive"] = fresh["price_sensitive"].astype(object).map(lambda v: None if v is None or pd.isna(v) else bool(v))
    return fresh


def assert_tags_equal(engine, day) -> None:
    a, b = stored_tags(engine), fresh_tags(engine, day)
    for df in (a, b):
        for c in ("rfm_r", "rfm_f", "rfm_m", "paid_orders", "ltv"):
            df[c] = pd.to_numeric(df[c]).astype("float64").round(2)
        for c in ("favourite_category", "preferred_channel", "rfm_segment"):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


def test_delta_nights_equal_full_recompute(warehouse):
    rng = random.Random(7)
    s = Shop()
    ids = [s.customer(f"R{i:03d}", registered=local(AS_OF, -rng.randint(0, 500))) for i in range(40)]
    s.customer("LATER", registered=local(AS_OF, 3))  # a member only once that day comes
    for cid in ids:
        for _ in range(rng.randint(0, 5)):
            _random_order(s, rng, cid, local(AS_OF, -rng.randint(0, 420), hour=rng.randint(0, 23)))
    future = _random_order(s, rng, ids[0], local(AS_OF, 2), status="paid", updated_at=local(AS_OF, 0, hour=6))
    s.load(warehouse)
    first = tags.refresh(AS_OF, "r0", engine=warehouse)
    assert first["aggregates"]["mode"] == "full"
    orders = read_frame(warehouse, "SELECT order_id, customer_id FROM orders ORDER BY order_id")["order_id"].tolist()

    day = AS_OF
    for night in range(1, 6):
        day = day + timedelta(days=1 if night != 3 else 2)  # one night skipped: two days at once
        stamp = local(day, 0, hour=1)
        for cid in rng.sample(ids, 6):  # tonight's orders
            orders.append(_random_order(s, rng, cid, local(day, 0, hour=rng.randint(8, 22))))
        s.customer(f"N{night}", registered=local(day, 0, hour=7))
        orders.append(_random_order(s, rng, f"N{night}", local(day, 0, hour=9), status="paid"))
        s.load(warehouse)
        set_order(warehouse, rng.choice(orders[:-8]), status="refunded", updated_at=stamp)
        set_order(warehouse, rng.choice(orders[:-8]), amount=round(rng.uniform(20, 300), 2), updated_at=stamp)
        if night == 2:  # an older order's payment time corrected into tonight: counted once
            set_order(warehouse, orders[3], paid_at=local(day, 0, hour=5), updated_at=stamp)
        if night == 4:  # a member removed from the CRM: leaves the tags
            gone = ids.pop(5)
            with warehouse.begin() as conn:
                conn.execute(sa.text("DELETE FROM customers WHERE customer_id = :c"), {"c": gone})
        stats = tags.refresh(day, f"r{night}", engine=warehouse)
        assert stats["aggregates"]["mode"] == "incremental"
        assert stats["frame"]["reused"]
        assert stats["aggregates"]["added"] >= 6
        members = set(read_frame(warehouse, "SELECT customer_id FROM customers")["customer_id"])
        stored = stored_aggregates(warehouse)
        assert_same(stored[stored["customer_id"].isin(members)], recomputed_aggregates(warehouse, day))
        assert_tags_equal(warehouse, day)
    assert "LATER" in set(stored_tags(warehouse)["customer_id"])
    assert gone not in set(stored_tags(warehouse)["customer_id"])
    assert future in orders


def test_a_rerun_of_a_delta_night_writes_nothing(warehouse):
    rng = random.Random(3)
    s = Shop()
    ids = [s.customer(f"Q{i:02d}") for i in range(15)]
    for cid in ids:
        for _ in range(rng.randint(1, 4)):
            _random_order(s, rng, cid, local(AS_OF, -rng.randint(0, 200)))
    s.load(warehouse)
    tags.refresh(AS_OF, "q0", engine=warehouse)
    day = AS_OF + timedelta(days=1)
    _random_order(s, rng, ids[1], local(day, 0), status="paid")
    s.load(warehouse)
    tags.refresh(day, "q1", engine=warehouse)
    before = read_frame(warehouse, "SELECT * FROM tags ORDER BY customer_id")
    again = tags.refresh(day, "q1-again", engine=warehouse)
    assert again["frame"]["reused"] and again["tags_written"] == 0 and again["stage_changes"] == 0
    assert again["aggregates"]["recomputed"] == 0 and again["aggregates"]["added"] == 0
    pd.testing.assert_frame_equal(before, read_frame(warehouse, "SELECT * FROM tags ORDER BY customer_id"))
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))


def test_an_order_moved_into_the_new_day_is_counted_once(warehouse):
    """Tonight's orders are added to the aggregate; an older order whose payment time was
    corrected into tonight looks like one of them: its previous values (order_changes) are
    taken back, so it is counted once. Without that trace (a writer whose change the triggers
    did not see), the counted-orders check sends its customer to a recompute instead."""
    s = Shop()
    s.customer("MOVE")
    first = s.order("MOVE", local(AS_OF, -40), amount=100.0)
    s.order("MOVE", local(AS_OF, -10), amount=50.0)
    s.customer("ADD")
    s.order("ADD", local(AS_OF, -5), amount=70.0)
    s.load(warehouse)
    tags.refresh(AS_OF, "m0", engine=warehouse)
    day = AS_OF + timedelta(days=1)
    set_order(warehouse, first, paid_at=local(day, 0, hour=9), updated_at=local(day, 0, hour=9))
    s.order("ADD", local(day, 0, hour=10), amount=30.0)
    s.load(warehouse)
    stats = tags.refresh(day, "m1", engine=warehouse)
    assert stats["aggregates"]["recomputed"] == 0 and stats["aggregates"]["added"] == 2 and stats["aggregates"]["removed_orders"] == 1
    agg = stored_aggregates(warehouse).set_index("customer_id")
    assert agg.loc["MOVE", "paid_orders"] == 2 and round(agg.loc["MOVE", "paid_amount"], 2) == 150.0
    assert agg.loc["ADD", "paid_orders"] == 2 and round(agg.loc["ADD", "paid_amount"], 2) == 100.0
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))
    # the same move again, but its trace lost: a recompute, still counted once
    day = day + timedelta(days=1)
    set_order(warehouse, first, paid_at=local(day, 0, hour=9), updated_at=local(day, 0, hour=9))
    with warehouse.begin() as conn:
        assert conn.execute(sa.text("DELETE FROM order_changes")).rowcount == 1
    stats = tags.refresh(day, "m2", engine=warehouse)
    assert stats["aggregates"]["recomputed"] == 1 and stats["aggregates"]["removed_orders"] == 0
    agg = stored_aggregates(warehouse).set_index("customer_id")
    assert agg.loc["MOVE", "paid_orders"] == 2 and round(agg.loc["MOVE", "paid_amount"], 2) == 150.0
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))


def _paid_times(engine, cid: str) -> list:
    df = read_frame(engine, "SELECT order_id, paid_at FROM orders WHERE customer_id = :c AND status = 'paid' ORDER BY paid_at, order_id", {"c": cid}, parse_dates=["paid_at"])
    return list(zip(df["order_id"], df["paid_at"]))


def test_late_arrivals_refunds_and_reruns_equal_full_recompute(warehouse):
    """Nights whose delta is mostly late arrivals (new to the warehouse but paid in a day
    already counted: on a day the customer already bought on, before their first order,
    between their orders, inside and outside the loyalty window, refunded or cancelled ones),
    refunds of a customer's first and last paid orders, orders edited twice, a customer's
    first order ever arriving late, and every night run twice (a re-run after more data
    arrived the same day)."""
    rng = random.Random(11)
    s = Shop()
    ids = [s.customer(f"L{i:03d}", registered=local(AS_OF, -rng.randint(100, 600))) for i in range(36)]
    for cid in ids[:30]:
        for _ in range(rng.randint(1, 6)):
            _random_order(s, rng, cid, local(AS_OF, -rng.randint(0, 420), hour=rng.randint(0, 23)))
    s.load(warehouse)
    tags.refresh(AS_OF, "l0", engine=warehouse)

    day = AS_OF
    added_before_first = same_day = 0
    for night in range(1, 7):
        day = day + timedelta(days=1)
        stamp = lambda h: local(day, 0, hour=h)  # noqa: E731
        for cid in rng.sample(ids, 10):  # late arrivals
            paid = _paid_times(warehouse, cid)
            kind = rng.choice(["same_day", "before_first", "between", "old", "window_edge"])
            if kind == "same_day" and paid:
                when = paid[rng.randrange(len(paid))][1] + timedelta(minutes=rng.choice([-30, 0, 30]))
                same_day += 1
            elif kind == "before_first" and paid:
                when = paid[0][1] - timedelta(days=rng.randint(1, 30))
                added_before_first += 1
            elif kind == "window_edge":
                when = local(day, -365 + rng.choice([-1, 0, 1]), hour=rng.randint(0, 23))
            else:
                when = local(day, -rng.randint(1, 500), hour=rng.randint(0, 23))
            _random_order(s, rng, cid, when, updated_at=stamp(3))
        for cid in rng.sample(ids, 4):  # tonight's own orders
            _random_order(s, rng, cid, local(day, 0, hour=rng.randint(8, 22)), updated_at=stamp(4))
        s.load(warehouse)
        for cid in rng.sample(ids, 3):  # refund a customer's first or last paid order
            paid = _paid_times(warehouse, cid)
            if paid:
                oid = paid[0][0] if rng.random() < 0.5 else paid[-1][0]
                set_order(warehouse, oid, status=rng.choice(["refunded", "cancelled"]), updated_at=stamp(5))
        stats = tags.refresh(day, f"l{night}", engine=warehouse)
        assert stats["aggregates"]["mode"] == "incremental" and stats["frame"]["reused"]
        assert stats["aggregates"]["added"] >= 5
        # every change was seen by the triggers: folded in, nobody recomputed from all orders
        assert stats["aggregates"]["recomputed"] == 0 and stats["aggregates"]["removed_orders"] >= 1
        assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))
        assert_tags_equal(warehouse, day)
        # more of the same day arrives (a late arrival, an edit of an order added tonight,
        # a refund) and the night is re-run
        cid = rng.choice(ids)
        late = _random_order(s, rng, cid, local(day, -rng.randint(1, 200)), status="paid", updated_at=stamp(6))
        s.load(warehouse)
        set_order(warehouse, late, amount=round(rng.uniform(20, 300), 2), updated_at=stamp(7))
        paid = _paid_times(warehouse, rng.choice(ids))
        if paid:
            set_order(warehouse, paid[-1][0], status="refunded", updated_at=stamp(7))
        again = tags.refresh(day, f"l{night}-again", engine=warehouse)
        assert again["aggregates"]["mode"] == "incremental" and again["aggregates"]["recomputed"] == 0
        assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))
        assert_tags_equal(warehouse, day)
        rerun = tags.refresh(day, f"l{night}-third", engine=warehouse)  # nothing new: nothing to do
        assert rerun["aggregates"]["recomputed"] == 0 and rerun["aggregates"]["added"] == 0 and rerun["tags_written"] == 0
    assert added_before_first and same_day  # the cases the test is about did happen


def test_late_arrivals_are_added_not_recomputed(warehouse):
    """A new order paid in a day already counted is added to the aggregate (no recompute):
    on a day the customer already bought on (no second purchase day), and before their
    first order (first/second paid time move back)."""
    s = Shop()
    s.customer("A")
    s.order("A", local(AS_OF, -20, hour=10), amount=100.0)
    s.order("A", local(AS_OF, -5, hour=10), amount=50.0)
    s.customer("B")
    s.order("B", local(AS_OF, -3), amount=70.0)
    s.load(warehouse)
    tags.refresh(AS_OF, "x0", engine=warehouse)
    day = AS_OF + timedelta(days=1)
    s.order("A", local(AS_OF, -20, hour=15), amount=10.0, updated_at=local(day, 0, hour=1))  # same day as a counted one
    s.order("B", local(AS_OF, -90), amount=30.0, updated_at=local(day, 0, hour=1), category="gift", qty=9)  # before B's first
    s.load(warehouse)
    stats = tags.refresh(day, "x1", engine=warehouse)
    assert stats["aggregates"]["recomputed"] == 0 and stats["aggregates"]["added"] == 2 and stats["aggregates"]["added_orders"] == 2
    agg = stored_aggregates(warehouse).set_index("customer_id")
    assert agg.loc["A", "paid_orders"] == 3 and agg.loc["A", "purchase_days"] == 2
    assert agg.loc["B", "first_paid_at"] == local(AS_OF, -90) and agg.loc["B", "second_paid_at"] == local(AS_OF, -3)
    assert agg.loc["B", "favourite_category"] == "gift"
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day))
