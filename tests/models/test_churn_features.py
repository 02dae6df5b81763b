"""Features: hand-checked values and the no-leakage guarantee."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.features import FEATURE_COLUMNS, build_features
from tests.models.conftest import orders_frame

CUTOFF = pd.Timestamp("2024-03-01")


@pytest.fixture
def small():
    orders = orders_frame(
        [
            (1, "2024-01-01", 10, "paid"),
            (1, "2024-01-11", 20, "paid"),
            (1, "2024-01-31 15:00", 30, "paid"),
            (1, "2024-02-10", 99, "refunded"),
            (2, "2024-02-20 09:00", 5, "paid"),  # two orders on one day: one purchase day
            (2, "2024-02-20 18:00", 7, "paid"),
            (3, "2024-02-01", 50, "refunded"),  # refund only: no paid order
            (6, "2024-03-01 00:00", 40, "paid"),  # exactly at the cutoff: not known yet
            (1, "2024-03-05", 1000, "paid"),  # after the cutoff
        ]
    )
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5],
            "registered_at": pd.to_datetime(["2023-12-25", None, "2024-01-15", "2024-02-10", "2024-03-10"]),
        }
    )
    return orders, customers


def test_hand_checked_values(small):
    orders, customers = small
    f = build_features(orders, customers, CUTOFF)
    assert list(f.columns) == FEATURE_COLUMNS
    # 5 registered after the cutoff, 6 only ordered at the cutoff: neither is known.
    assert list(f.index) == [1, 2, 3, 4]
    c1 = f.loc[1]
    assert c1.has_orders == 1 and c1.n_orders == 3 and c1.n_days == 3 and c1.frequency == 2
    assert c1.recency_days == 30 and c1.tenure_days == 60 and c1.span_days == 30
    assert c1.monetary_total == 60 and c1.monetary_mean == 20
    assert c1.mean_gap_days == 15 and c1.recency_gap_ratio == pytest.approx(2.0)
    assert c1.window_orders == 3 and c1.window_amount == 60  # everything within the last year
    assert np.isnan(c1.prev_window_orders) and c1.window_trend == 0  # no history before it
    assert c1.returned_share == pytest.approx(0.25)
    assert c1.days_since_registration == pytest.approx(67)
    c2 = f.loc[2]
    assert c2.n_orders == 2 and c2.n_days == 1 and c2.frequency == 0 and c2.orders_per_day == 2
    assert np.isnan(c2.mean_gap_days) and np.isnan(c2.recency_gap_ratio)
    assert c2.recency_days == 10 and np.isnan(c2.days_since_registration)
    for cid in (3, 4):  # no paid order: a row, flagged, with empty purchase timing
        row = f.loc[cid]
        assert row.has_orders == 0 and row.n_orders == 0 and np.isnan(row.recency_days)
    assert f.loc[3].returned_share == 1.0
    assert f.loc[4].days_since_registration == pytest.approx(20)


def test_without_customers_table(small):
    orders, _ = small
    f = build_features(orders, None, CUTOFF)
    assert list(f.index) == [1, 2, 3]


def test_timezone_aware_input_is_converted_to_utc(small):
    orders, customers = small
    aware = orders.copy()
    aware["paid_at"] = aware["paid_at"].dt.tz_localize("UTC").dt.tz_convert("Asia/Shanghai")
    f_aware = build_features(aware, customers, pd.Timestamp(CUTOFF, tz="UTC"))
    pd.testing.assert_frame_equal(f_aware, build_features(orders, customers, CUTOFF))


def _alter_after(orders: pd.DataFrame, cutoff: pd.Timestamp, seed: int) -> pd.DataFrame:
    """Shuffle, modify, drop and add orders at or after the cutoff; keep the rest."""
    rng = np.random.default_rng(seed)
    before = orders[orders["paid_at"] < cutoff]
    after = orders[orders["paid_at"] >= cutoff].copy()
    after["customer_id"] = rng.permutation(after["customer_id"].to_numpy())
    after["amount"] = after["amount"] * rng.uniform(0.1, 10, len(after))
    after["status"] = rng.permutation(after["status"].to_numpy())
    after = after.sample(frac=0.7, random_state=seed)
    extra = after.head(50).copy()
    extra["paid_at"] = cutoff  # exactly at the cutoff
    extra["customer_id"] = extra["customer_id"] + 10**6  # brand-new customers
    out = pd.concat([after, before, extra]).sample(frac=1.0, random_state=seed)  # row order shuffled
    return out.reset_index(drop=True)


def test_orders_at_or_after_cutoff_change_no_feature(synthetic):
    orders, customers = synthetic
    cutoff = pd.Timestamp("2024-01-01")
    base = build_features(orders, customers, cutoff)
    assert (base["has_orders"] == 1).sum() > 1000
    for seed in range(3):
        altered = build_features(_alter_after(orders, cutoff, seed), customers, cutoff)
        pd.testing.assert_frame_equal(base, altered, check_exact=True)


def test_features_do_change_with_pre_cutoff_orders(synthetic):
    """The leakage test above could pass trivially if features ignored orders: guard it."""
    orders, customers = synthetic
    cutoff = pd.Timestamp("2024-01-01")
    base = build_features(orders, customers, cutoff)
    earlier = orders[orders["paid_at"] < cutoff - pd.Timedelta(days=30)]
    assert not base.equals(build_features(earlier, customers, cutoff))


def test_vectorized_matches_a_naive_groupby(synthetic):
    """Cross-check a few columns against straightforward pandas."""
    orders, customers = synthetic
    cutoff = pd.Timestamp("2023-10-01")
    f = build_features(orders, customers, cutoff)
    paid = orders[(orders["status"] == "paid") & (orders["paid_at"] < cutoff)]
    g = paid.groupby("customer_id")
    days = paid.assign(d=paid["paid_at"].dt.floor("D")).groupby("customer_id")["d"]
    expect_recency = (cutoff - days.max()).dt.days
    expect_ndays = days.nunique()
    # the window: the cutoff's day and the 365 days before it
    expect_win = paid[paid["paid_at"] >= cutoff - pd.Timedelta(days=366)].groupby("customer_id").size()
    idx = expect_recency.index
    np.testing.assert_array_equal(f.loc[idx, "recency_days"], expect_recency)
    np.testing.assert_array_equal(f.loc[idx, "n_days"], expect_ndays)
    np.testing.assert_allclose(f.loc[idx, "monetary_total"], g["amount"].sum())
    np.testing.assert_array_equal(f.loc[idx, "window_orders"], expect_win.reindex(idx, fill_value=0))
    gaps = days.apply(lambda s: s.sort_values().drop_duplicates().diff().dt.days.mean())
    np.testing.assert_allclose(f.loc[idx, "mean_gap_days"].fillna(-1), gaps.fillna(-1))


def test_shop_local_days_and_window_trend():
    """Calendar days in the shop's timezone (+08:00): 16:30 UTC is the next local day."""
    orders = orders_frame(
        [
            (1, "2023-01-10 10:00", 10, "paid"),  # before the window: 2 orders in ~50 days of earlier history
            (1, "2023-02-01 10:00", 10, "paid"),
            (1, "2024-02-28 10:00", 10, "paid"),  # local 2024-02-28 18:00
            (1, "2024-02-28 16:30", 10, "paid"),  # local 2024-02-29 00:30: another purchase day
        ]
    )
    cutoff = pd.Timestamp("2024-02-29 16:00")  # local midnight 2024-03-01
    utc = build_features(orders, None, cutoff)
    local = build_features(orders, None, cutoff, day_offset_minutes=480)
    assert utc.loc[1, "n_days"] == 3 and local.loc[1, "n_days"] == 4
    assert local.loc[1, "recency_days"] == 1  # bought on the local day before the cutoff
    assert local.loc[1, "window_orders"] == 2
    prior_days = local.loc[1, "tenure_days"] - 366
    assert local.loc[1, "prev_window_orders"] == pytest.approx(2 / prior_days * 366)
    assert -1 < local.loc[1, "window_trend"] < 0  # fewer orders per day in the window than before
