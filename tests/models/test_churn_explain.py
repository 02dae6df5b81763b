"""Reasons in words (en, zh-CN) with the right numbers; risk bands."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.explain import DEFAULT_BAND_CUTS, explain, render_reason_columns, render_reasons, risk_band
from models.features import build_features
from tests.models.conftest import orders_frame

CUTOFF = pd.Timestamp("2024-06-01")
# The words count days to the last day before the cutoff (2024-05-31, the "as_of" of a
# scoring run), as the tags do: one day less than the features, which count to the cutoff.

# Marginal weights as train_model would fit them: recency/overdue push to churn, more
# orders protect, etc.  Means/stds put a "typical" customer at 30 days and 3 orders.
WEIGHTS = {
    "log_recency": {"mean": np.log1p(30), "std": 1.0, "weight": 0.8},
    "log_overdue": {"mean": 0.0, "std": 1.0, "weight": 0.3},
    "log_orders": {"mean": np.log1p(3), "std": 0.5, "weight": -0.6},
    "slowing": {"mean": 0.0, "std": 0.5, "weight": 0.2},
    "log_monetary_mean": {"mean": np.log1p(30), "std": 0.5, "weight": -0.2},
    "log_tenure": {"mean": np.log1p(200), "std": 1.0, "weight": 0.0},
    "returned_share": {"mean": 0.02, "std": 0.1, "weight": 0.3},
}


@pytest.fixture
def features():
    # Customer 1 bought every 20 days and then stopped 75 days before the cutoff.
    rows = [(1, str((CUTOFF - pd.Timedelta(days=75 + 20 * k)).date()), 40, "paid") for k in range(6)]
    rows += [(2, "2024-05-28", 30, "paid"), (2, "2024-05-10", 30, "paid"), (2, "2024-04-20", 30, "paid"), (2, "2024-04-01", 30, "paid")]
    rows += [(3, "2023-11-15", 8, "paid")]  # one small order long ago
    rows += [(5, "2024-05-01", 30, "paid"), (5, "2024-05-05", 30, "refunded"), (5, "2024-05-06", 30, "cancelled")]
    # Customer 6 bought monthly for two years, then only once in the last year.
    rows += [(6, str((CUTOFF - pd.Timedelta(days=400 + 30 * k)).date()), 30, "paid") for k in range(24)]
    rows += [(6, "2024-01-15", 30, "paid")]
    orders = orders_frame(rows)
    customers = pd.DataFrame({"customer_id": [4], "registered_at": [CUTOFF - pd.Timedelta(days=12)]})
    return build_features(orders, customers, CUTOFF)


def test_reasons_en_and_zh_with_the_right_numbers(features):
    probs = np.array([0.9, 0.1, 0.95, 0.8, 0.7, 0.9])
    e = explain(features, probs, WEIGHTS)
    assert list(e["risk_band"]) == ["high", "low", "high", "high", "high", "high"]
    en = render_reasons(e, "en")
    zh = render_reasons(e, "zh-CN")
    assert en[1].startswith("no order for 74 days, usually buys every 20 days")
    assert zh[1].startswith("已 74 天未下单，平时约每 20 天购买一次")
    assert "ordered 3 days ago" in en[2] and "3 天前刚下过单" in zh[2]  # low risk: why safe
    assert "no order for 198 days" in en[3] and "only 1 order so far" in en[3]
    assert "已 198 天未下单" in zh[3] and "累计仅 1 单" in zh[3]
    assert "low average order value (8.00)" in en[3] and "客单价偏低（8.00）" in zh[3]
    assert en[4] == "registered 11 days ago, no order yet" and zh[4] == "注册 11 天，尚未下单"
    assert "67% of orders refunded or cancelled" in en[5] and "67% 的订单已退款或取消" in zh[5]
    assert "1 order in the last 365 days vs about 12 per 365 days before" in en[6]
    assert "近 365 天 1 单，此前平均每 365 天 12 单" in zh[6]
    # nobody else has history before the window: "slowing" is never their reason
    assert not e.loc[[1, 2, 3, 5], ["reason_1", "reason_2", "reason_3"]].isin(["slowing"]).any().any()


def test_at_most_three_reasons_and_reason_columns(features):
    e = explain(features, np.full(len(features), 0.9), WEIGHTS)
    cols = render_reason_columns(e, "en")
    assert list(cols.columns) == ["reason_1_text", "reason_2_text", "reason_3_text"]
    assert cols["reason_1_text"].notna().all()
    assert cols.loc[4, "reason_2_text"] is None  # a customer without orders has one reason
    with pytest.raises(ValueError):
        render_reasons(e, "fr")


def test_reason_numbers_follow_the_data(features):
    """Same customer, 10 more days of silence: the sentence's numbers move with it."""
    later = features.copy()
    later.loc[1, "recency_days"] += 10
    later.loc[1, "recency_gap_ratio"] = later.loc[1, "recency_days"] / later.loc[1, "mean_gap_days"]
    e = explain(later, np.full(len(later), 0.9), WEIGHTS)
    assert render_reasons(e, "en")[1].startswith("no order for 84 days, usually buys every 20 days")


def test_risk_band_cut_points():
    assert list(risk_band([0.1, 0.29, 0.3, 0.59, 0.6, 1.0])) == ["low", "low", "medium", "medium", "high", "high"]
    assert list(risk_band([0.2, 0.5], cuts=(0.2, 0.5))) == ["medium", "high"]
    assert risk_band(0.55) == "medium"
    # the defaults are the settings' (what nightly scoring bands by), not a second copy
    from models.scoring import band_cuts

    assert DEFAULT_BAND_CUTS == band_cuts() == (0.3, 0.6)
    with pytest.raises(ValueError):
        risk_band(0.5, cuts=(0.8, 0.2))


def test_trained_model_explains(synthetic):
    from models.train import train_model

    orders, customers = synthetic
    m = train_model(orders, customers, "2024-06-01", 90)
    f = build_features(orders, customers, "2024-06-01")
    e = m.explain(f)
    assert len(e) == len(f) and e["reason_1"].notna().all()
    # The learnt marginal directions are the intuitive ones.
    assert m.reason_weights["log_recency"]["weight"] > 0
    assert m.reason_weights["log_orders"]["weight"] < 0
    high = e["risk_band"] == "high"
    assert (e.loc[high, "reason_1"] == "recency").mean() > 0.5
