"""Training: out-of-time layout, no leakage into predictions, no-order scoring, artifact."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest

from models.features import build_features
from models.train import TrainConfig, evaluate, evaluate_model, train_model
from tests.models.test_churn_features import _alter_after

T = pd.Timestamp("2024-06-01")
H = 90


@pytest.fixture(scope="module")
def trained(synthetic):
    orders, customers = synthetic
    return train_model(orders, customers, T, H)


def test_windows_and_metrics(trained):
    m = trained
    assert m.train_cutoff == T - pd.Timedelta(days=H)
    assert m.train_label_end == T == m.eval_cutoff
    assert m.eval_label_end == T + pd.Timedelta(days=H)
    met = m.metrics
    assert 0 < met["churn_rate"] < 1 and met["n"] > 1000
    # PR AUC above the base rate (what a random ranking gets), lift in the top decile above 1
    # and at most 1 / churn rate, log loss below that of always saying the base rate
    assert met["churn_rate"] < met["pr_auc"] <= 1
    assert 1 < met["lift_top_decile"] <= 1 / met["churn_rate"] + 1e-9
    p0 = met["churn_rate"]
    assert 0 < met["log_loss"] < -(p0 * np.log(p0) + (1 - p0) * np.log(1 - p0))
    # Synthetic buyers are predictable: the model must rank far better than chance and
    # its probabilities must be roughly calibrated out of time.
    assert m.metrics["roc_auc"] > 0.75
    assert m.metrics["brier"] < m.metrics["churn_rate"] * (1 - m.metrics["churn_rate"])
    assert m.metrics["uncalibrated"]["n"] == m.metrics["n"]
    assert m.version.startswith("churn-20240303-h90-")


def test_post_cutoff_orders_change_no_prediction(synthetic, trained):
    """Everything the model learns comes from orders before T: altering orders at or
    after T changes its evaluation metrics but no parameter and no score at T."""
    orders, customers = synthetic
    altered = _alter_after(orders, T, seed=7)
    other = train_model(altered, customers, T, H)
    features = build_features(orders, customers, T)
    np.testing.assert_array_equal(trained.predict_proba(features), other.predict_proba(features))
    assert trained.version == other.version
    assert trained.metrics["roc_auc"] != other.metrics["roc_auc"]  # labels did change


def test_customers_without_orders_get_a_defined_score(synthetic, trained):
    orders, customers = synthetic
    features = build_features(orders, customers, T)
    p = trained.predict_proba(features)
    assert np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
    no_orders = features["has_orders"].to_numpy() == 0
    assert no_orders.sum() > 50
    # Their score is the no-order rule, estimated from registered customers at T-H:
    rule = trained.no_order
    assert rule.n > 0
    np.testing.assert_allclose(p[no_orders], rule.predict(features.loc[no_orders, "days_since_registration"]))
    # and in the synthetic data most registered-only customers never buy.
    assert 0.5 < np.mean(p[no_orders]) < 1.0


def test_no_customers_table_falls_back_to_the_configured_probability(synthetic):
    orders, _ = synthetic
    # a customer whose only order before T was refunded: known from the orders, never a buyer
    refunded = pd.DataFrame({"order_id": [orders["order_id"].max() + 1], "customer_id": [10**6], "paid_at": [T - pd.Timedelta(days=20)],
                             "amount": [50.0], "status": ["refunded"]})
    orders = pd.concat([orders, refunded], ignore_index=True)
    m = train_model(orders, None, T, H, {"no_order_probability": 0.9})
    f = build_features(orders, None, T)
    refund_only = f.index[f["has_orders"] == 0]
    assert list(refund_only) == [10**6]
    assert m.predict_proba(f.loc[refund_only])[0] == pytest.approx(0.9)
    row = f.iloc[[0]].copy()
    row["has_orders"] = 0
    assert m.predict_proba(row)[0] == pytest.approx(0.9)


def test_artifact_is_picklable(tmp_path, synthetic, trained):
    orders, customers = synthetic
    path = tmp_path / "model.joblib"
    joblib.dump(trained, path)
    loaded = joblib.load(path)
    f = build_features(orders, customers, T)
    np.testing.assert_array_equal(loaded.predict_proba(f), trained.predict_proba(f))
    summary = loaded.summary()
    assert summary["features"] == trained.model_features and summary["train_cutoff"] == "2024-03-03"


def test_champion_on_the_same_holdout(synthetic, trained):
    orders, customers = synthetic
    again = evaluate_model(trained, orders, customers, T, H)
    assert again["roc_auc"] == pytest.approx(trained.metrics["roc_auc"])
    assert again["n"] == trained.metrics["n"]


@pytest.mark.parametrize("kind", ["hgb", "blend"])
def test_other_model_kinds_train(synthetic, kind):
    orders, customers = synthetic
    m = train_model(orders, customers, T, H, TrainConfig(kind=kind, hgb_max_iter=30))
    assert m.metrics["roc_auc"] > 0.7 and m.calibrator is not None


def test_training_window_needs_both_classes():
    from tests.models.conftest import orders_frame

    orders = orders_frame([(1, "2024-01-01", 5, "paid"), (2, "2024-01-02", 5, "paid")])
    with pytest.raises(ValueError, match="needs both classes"):
        train_model(orders, None, "2024-03-01", 30)


def test_evaluate():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 1, 0])
    perfect = evaluate(y, y * 0.9 + 0.05)
    assert perfect["roc_auc"] == 1.0 and perfect["pr_auc"] == 1.0
    assert perfect["lift_top_decile"] == pytest.approx(2.0)  # top 10 % all churn, base rate 0.5
    assert perfect["n"] == 10 and perfect["churn_rate"] == 0.5
    flat = evaluate(y, np.full(10, 0.5))
    assert flat["roc_auc"] == 0.5 and flat["brier"] == pytest.approx(0.25)
    assert evaluate(np.ones(4), np.full(4, 0.7))["roc_auc"] is None


def test_score_frame_and_row_order(synthetic, trained):
    import json

    from models.score import score_frame

    orders, customers = synthetic
    f = build_features(orders, customers, T)
    shuffled = f.sample(frac=1.0, random_state=3)
    p = pd.Series(trained.predict_proba(f), index=f.index)
    np.testing.assert_array_equal(trained.predict_proba(shuffled), p.loc[shuffled.index].to_numpy())
    s = score_frame(trained, shuffled.head(200))
    assert list(s.index) == list(shuffled.head(200).index)
    assert {"model_version", "probability", "risk_band", "reason_1", "reasons_en", "reasons_zh_cn"} <= set(s.columns)
    assert (s["model_version"] == trained.version).all() and s["reasons_en"].str.len().gt(0).all()
    json.dumps(trained.summary())  # the registry stores it as JSON
