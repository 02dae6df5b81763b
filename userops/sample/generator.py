"""A seeded synthetic member base with believable dynamics, generated vectorized.

Each member registers at some point in the last three years, has a personal purchase rate
and a personal lifetime after which they stop buying (so some go silent and churn), buys
in a Poisson process in between, sometimes refunds or cancels, and sometimes complains,
suggests or praises. Used by the demo, the tests and the benchmarks; the same seed gives
the same data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

CITIES = ["上海", "北京", "杭州", "深圳", "广州", "成都", "南京", "武汉", "Singapore", "Hong Kong"]
CHANNELS = np.array(["app", "miniprogram", "web", "store"])
STORES = np.array([f"S{i:03d}" for i in range(1, 41)])
CATEGORIES = np.array(["skincare", "makeup", "haircare", "fragrance", "body", "tools", "men", "gift"])
N_SKUS = 400
FEEDBACK_TEXT = {
    "complaint": ["包装破损", "发货太慢", "用后过敏", "与描述不符", "客服回复慢"],
    "suggestion": ["希望有小样", "希望增加色号", "希望包装更环保"],
    "praise": ["很好用", "物流很快", "客服很耐心"],
}


@dataclass
class SampleData:
    customers: pd.DataFrame
    orders: pd.DataFrame
    order_items: pd.DataFrame
    feedback: pd.DataFrame
    events: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        return {
            "customers": self.customers,
            "orders": self.orders,
            "order_items": self.order_items,
            "feedback": self.feedback,
            "events": self.events,
        }


def sku_catalogue() -> pd.DataFrame:
    skus = np.array([f"SKU{i:04d}" for i in range(1, N_SKUS + 1)])
    cats = CATEGORIES[np.arange(N_SKUS) % len(CATEGORIES)]
    prices = np.round(29 + (np.arange(N_SKUS) * 37 % 470), 0)
    return pd.DataFrame({"sku": skus, "category": cats, "price": prices})


def generate(
    n_customers: int = 5000,
    seed: int = 7,
    as_of: str | pd.Timestamp = "2026-11-21",
    years: float = 3.0,
    with_events: bool = True,
    orders_per_customer: float | None = None,
) -> SampleData:
    """Generate a member base whose history ends just before ``as_of`` (UTC midnight).

    ``orders_per_customer`` scales every member's buying rate so that the base averages
    about that many orders a member (default: ~6, the natural rate of the model)."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(as_of).normalize()
    start = end - pd.Timedelta(days=int(365 * years))
    span_s = (end - start).total_seconds()
    n = int(n_customers)

    # --- customers ---------------------------------------------------------------------
    ids = np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 8))
    # registrations skew recent (growing member base)
    reg_frac = rng.beta(1.6, 1.0, n)
    registered = start + pd.to_timedelta(reg_frac * span_s, unit="s")
    phone = np.char.add("1", (rng.integers(3_000_000_000, 9_999_999_999, n)).astype(str))
    email = np.char.add(np.char.add("member", np.arange(1, n + 1).astype(str)), "@example.com")
    consent = rng.random(n) < 0.82
    unsub = (rng.random(n) < 0.04) & consent
    levels = np.array(["普通", "银卡", "金卡", "黑金"])[np.minimum(rng.geometric(0.55, n) - 1, 3)]
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "name": np.char.add("会员", np.arange(1, n + 1).astype(str)),
            "phone": phone,
            "email": email,
            "registered_at": registered.floor("s"),
            "city": np.array(CITIES)[rng.integers(0, len(CITIES), n)],
            "member_level": levels,
            "marketing_consent": consent,
        }
    )
    customers["unsubscribed_at"] = pd.NaT
    unsub_at = registered + (end - registered) * rng.random(n)
    customers.loc[unsub, "unsubscribed_at"] = unsub_at[unsub].floor("s")
    customers["unsubscribed_at"] = customers["unsubscribed_at"].astype("datetime64[us]")
    customers["registered_at"] = customers["registered_at"].astype("datetime64[us]")
    customers["updated_at"] = customers[["registered_at", "unsubscribed_at"]].max(axis=1)

    # --- orders: Poisson process between registration and personal end of life ---------
    prospect = rng.random(n) < 0.15  # never buy
    rate_per_day = rng.gamma(1.2, 1 / 40.0, n)  # mean ~ one order every 33 days
    lifetime_days = rng.exponential(420, n)
    reg_days = ((registered - start).total_seconds() / 86400).to_numpy()
    total_days = span_s / 86400
    stop_days = np.minimum(reg_days + lifetime_days, total_days)
    active_span = np.clip(stop_days - reg_days, 0, None)
    if orders_per_customer:
        natural = float((rate_per_day * active_span)[~prospect].sum()) / max(n, 1)
        rate_per_day = rate_per_day * (orders_per_customer / natural if natural > 0 else 1.0)
    n_orders = rng.poisson(rate_per_day * active_span)
    # each buyer who registered buys at least once shortly after registering (conversion)
    n_orders = np.where(prospect, 0, np.maximum(n_orders, (active_span > 1).astype(int)))
    total = int(n_orders.sum())
    cust_idx = np.repeat(np.arange(n), n_orders)
    # the first order of a customer falls soon after registration; later ones uniformly
    is_first = np.ones(total, dtype=bool)
    is_first[1:] = cust_idx[1:] != cust_idx[:-1]
    u = rng.random(total)
    first_gap = np.minimum(rng.exponential(6, total), active_span[cust_idx])
    day = np.where(is_first, reg_days[cust_idx] + first_gap, reg_days[cust_idx] + u * active_span[cust_idx])
    paid_at = start + pd.to_timedelta(day * 86400, unit="s")
    paid_at = paid_at.floor("s")
    status_r = rng.random(total)
    status = np.where(status_r < 0.05, "refunded", np.where(status_r < 0.08, "cancelled", "paid"))
    price_sensitive = rng.random(n) < 0.3
    discount_share = np.where(price_sensitive[cust_idx], rng.uniform(0.1, 0.35, total), rng.uniform(0, 0.08, total))
    n_items = 1 + rng.binomial(2, 0.25, total)
    cat = sku_catalogue()
    fav = rng.integers(0, N_SKUS, n)  # favourite sku family per customer
    order_ids = np.char.add("O", np.char.zfill(np.arange(1, total + 1).astype(str), 9))
    # items
    item_order = np.repeat(np.arange(total), n_items)
    k = len(item_order)
    pick_fav = rng.random(k) < 0.6
    sku_i = np.where(pick_fav, (fav[cust_idx[item_order]] + rng.integers(0, 8, k) * 8) % N_SKUS, rng.integers(0, N_SKUS, k))
    # one line per (order, sku): drop duplicate skus inside an order
    item_df = pd.DataFrame({"o": item_order, "s": sku_i}).drop_duplicates()
    qty = rng.integers(1, 3, len(item_df))
    unit_price = cat["price"].to_numpy()[item_df["s"].to_numpy()]
    line = qty * unit_price
    gross = np.bincount(item_df["o"].to_numpy(), weights=line, minlength=total)
    discount = np.round(gross * discount_share, 2)
    amount = np.round(gross - discount, 2)
    updated_at = paid_at + pd.to_timedelta(np.where(status == "paid", 0, rng.integers(3600, 86400 * 7, total)), unit="s")
    cap = end - pd.Timedelta(seconds=1)
    updated_at = pd.DatetimeIndex(updated_at)
    updated_at = updated_at.where(updated_at <= cap, cap)
    orders = pd.DataFrame(
        {
            "order_id": order_ids,
            "customer_id": ids[cust_idx],
            "paid_at": paid_at.astype("datetime64[us]"),
            "status": status,
            "amount": amount,
            "discount_amount": discount,
            "store": STORES[rng.integers(0, len(STORES), total)],
            "channel": CHANNELS[np.where(rng.random(total) < 0.7, cust_idx % 4, rng.integers(0, 4, total))],
            "updated_at": pd.DatetimeIndex(updated_at).astype("datetime64[us]"),
        }
    )
    orders = orders.sort_values(["updated_at", "order_id"], kind="stable").reset_index(drop=True)
    order_items = pd.DataFrame(
        {
            "order_id": order_ids[item_df["o"].to_numpy()],
            "sku": cat["sku"].to_numpy()[item_df["s"].to_numpy()],
            "quantity": qty,
            "unit_price": unit_price,
            "category": cat["category"].to_numpy()[item_df["s"].to_numpy()],
            "updated_at": paid_at[item_df["o"].to_numpy()].astype("datetime64[us]"),
        }
    )

    # --- feedback: ~4% of paid orders, complaints more likely on some skus -------------
    fb_mask = rng.random(total) < 0.04
    fo = np.flatnonzero(fb_mask)
    m = len(fo)
    # most feedback is praise; complaints are the minority a healthy shop has (satisfaction ~ 90%)
    kind = rng.choice(["complaint", "suggestion", "praise"], m, p=[0.10, 0.20, 0.70])
    sat = np.where(kind == "complaint", rng.integers(1, 4, m), np.where(kind == "praise", 5, rng.integers(4, 6, m)))
    nps = np.where(kind == "complaint", rng.integers(0, 7, m), np.where(kind == "praise", rng.integers(9, 11, m), rng.integers(6, 10, m)))
    created = paid_at[fo] + pd.to_timedelta(rng.integers(3600, 86400 * 10, m), unit="s")
    created = pd.DatetimeIndex(created)
    created = created.where(created <= end - pd.Timedelta(hours=1), end - pd.Timedelta(hours=1))
    resp_delay = pd.to_timedelta(rng.exponential(6 * 3600, m), unit="s")
    first_resp = pd.Series(created + resp_delay)
    unanswered = rng.random(m) < 0.03
    first_resp[unanswered | (first_resp >= end).to_numpy()] = pd.NaT
    resolved = first_resp + pd.to_timedelta(rng.integers(3600, 86400 * 3, m), unit="s")
    resolved[resolved >= end] = pd.NaT
    first_sku = order_items.drop_duplicates("order_id").set_index("order_id")["sku"]
    fb_text = np.array([FEEDBACK_TEXT[k_][i % len(FEEDBACK_TEXT[k_])] for i, k_ in enumerate(kind)]) if m else np.array([], dtype=str)
    feedback = pd.DataFrame(
        {
            "feedback_id": np.char.add("F", np.char.zfill(np.arange(1, m + 1).astype(str), 8)),
            "customer_id": ids[cust_idx[fo]],
            "kind": kind,
            "sku": first_sku.reindex(order_ids[fo]).to_numpy(),
            "created_at": pd.DatetimeIndex(created).floor("s").astype("datetime64[us]"),
            "first_response_at": pd.DatetimeIndex(first_resp).floor("s").astype("datetime64[us]"),
            "resolved_at": pd.DatetimeIndex(resolved).floor("s").astype("datetime64[us]"),
            "satisfaction": sat,
            "nps": nps,
            "text": fb_text,
        }
    )
    feedback["updated_at"] = feedback[["created_at", "first_response_at", "resolved_at"]].max(axis=1)

    # --- events: app visits in the last 35 days for members active recently -------------
    if with_events:
        recent = np.flatnonzero((stop_days > total_days - 60) & ~prospect)
        visits = rng.poisson(6, len(recent))
        ev_c = np.repeat(recent, visits)
        ev_t = end - pd.to_timedelta(rng.random(len(ev_c)) * 35 * 86400, unit="s")
        events = pd.DataFrame(
            {
                "event_id": np.char.add("E", np.char.zfill(np.arange(1, len(ev_c) + 1).astype(str), 9)),
                "customer_id": ids[ev_c],
                "kind": np.array(["visit", "login", "click"])[rng.integers(0, 3, len(ev_c))],
                "occurred_at": pd.DatetimeIndex(ev_t).floor("s").astype("datetime64[us]"),
            }
        )
    else:
        events = pd.DataFrame({"event_id": [], "customer_id": [], "kind": [], "occurred_at": pd.Series([], dtype="datetime64[us]")})
    return SampleData(customers, orders, order_items, feedback, events)


def advance_day(data: SampleData, day: str | pd.Timestamp, seed: int = 11, change_share: float = 0.01) -> SampleData:
    """Simulate one more day at the source: about ``change_share`` of customers and orders
    change or are new, stamped with updated_at inside ``day``. Returns the new full data
    (the source's state after that day)."""
    rng = np.random.default_rng(seed)
    day0 = pd.Timestamp(day).normalize()
    cust = data.customers.copy()
    orders = data.orders.copy()
    n_c = len(cust)
    k = max(1, int(n_c * change_share))
    stamp = lambda size: (day0 + pd.to_timedelta(rng.integers(0, 86399, size), unit="s")).astype("datetime64[us]")
    # some customers change city / consent
    idx = rng.choice(n_c, k, replace=False)
    cust.loc[idx, "city"] = np.array(CITIES)[rng.integers(0, len(CITIES), k)]
    cust.loc[idx, "updated_at"] = stamp(k)
    # new members
    new_ids = np.char.add("C", np.char.zfill(np.arange(n_c + 1, n_c + 1 + k // 2 + 1).astype(str), 8))
    new = pd.DataFrame(
        {
            "customer_id": new_ids,
            "name": [f"会员{i[1:].lstrip('0')}" for i in new_ids],
            "phone": np.char.add("1", rng.integers(3_000_000_000, 9_999_999_999, len(new_ids)).astype(str)),
            "email": [f"member{i[1:].lstrip('0')}@example.com" for i in new_ids],
            "registered_at": stamp(len(new_ids)),
            "city": np.array(CITIES)[rng.integers(0, len(CITIES), len(new_ids))],
            "member_level": "普通",
            "marketing_consent": True,
            "unsubscribed_at": pd.Series([pd.NaT] * len(new_ids), dtype="datetime64[us]"),
        }
    )
    new["updated_at"] = new["registered_at"]
    cust = pd.concat([cust, new], ignore_index=True)
    # new orders from existing buyers, plus some refunds of old orders
    n_o = len(orders)
    ko = max(1, int(n_o * change_share))
    buyers = orders["customer_id"].to_numpy()[rng.integers(0, n_o, ko)]
    start_no = n_o + 1 + int(rng.integers(0, 10**6)) * 0
    new_oids = np.char.add("O", np.char.zfill(np.arange(start_no, start_no + ko).astype(str), 9))
    new_oids = np.char.add(new_oids, f"-{day0:%Y%m%d}")
    t = stamp(ko)
    amt = np.round(rng.uniform(30, 800, ko), 2)
    neworders = pd.DataFrame(
        {
            "order_id": new_oids,
            "customer_id": buyers,
            "paid_at": t,
            "status": "paid",
            "amount": amt,
            "discount_amount": np.round(amt * rng.uniform(0, 0.2, ko), 2),
            "store": STORES[rng.integers(0, len(STORES), ko)],
            "channel": CHANNELS[rng.integers(0, 4, ko)],
            "updated_at": t,
        }
    )
    refund_idx = rng.choice(n_o, max(1, ko // 10), replace=False)
    orders.loc[refund_idx, "status"] = "refunded"
    orders.loc[refund_idx, "updated_at"] = stamp(len(refund_idx))
    orders = pd.concat([orders, neworders], ignore_index=True)
    cat = sku_catalogue()
    si = rng.integers(0, N_SKUS, ko)
    items = pd.DataFrame(
        {
            "order_id": new_oids,
            "sku": cat["sku"].to_numpy()[si],
            "quantity": 1,
            "unit_price": amt,
            "category": cat["category"].to_numpy()[si],
            "updated_at": t,
        }
    )
    order_items = pd.concat([data.order_items, items], ignore_index=True)
    fb = data.feedback
    return SampleData(cust, orders, order_items, fb, data.events)
