"""Backtest output shape, the order-file readers, and the CDNOW quality target."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.backtest import BACKTEST_KEYS, backtest, backtest_warnings, load_cdnow, read_orders_file


def test_backtest_shape_on_synthetic(synthetic):
    orders, _ = synthetic
    result = backtest(orders, "2024-06-01", 90)
    assert set(result) == {"model", "recency", "bgnbd"}
    for metrics in result.values():
        assert tuple(metrics) == BACKTEST_KEYS
        assert metrics["n"] == result["model"]["n"] > 1000
    json.dumps(result)  # what --json prints
    assert result["model"]["roc_auc"] > result["recency"]["roc_auc"] - 0.01


def test_backtest_warns_when_labels_are_incomplete(synthetic):
    orders, _ = synthetic
    assert backtest_warnings(orders, "2024-06-01", 90) == []
    last = orders.loc[orders["status"] == "paid", "paid_at"].max().date()
    (en,) = backtest_warnings(orders, "2024-12-15", 90, lang="en")
    assert en == f"the data ends {last}, inside the label window [2024-12-15, 2025-03-15): churn is overstated"
    (zh,) = backtest_warnings(orders, "2024-12-15", 90, lang="zh-CN")
    assert zh == f"数据截至 {last}，在标签区间 [2024-12-15, 2025-03-15) 之内结束：流失率被高估"
    (zh_default,) = backtest_warnings(orders, "2024-12-15", 90)  # the settings' language: zh-CN
    assert zh_default == zh
    (early,) = backtest_warnings(orders, "2023-01-15", 30, lang="zh-CN")
    assert early == "训练截止日 2022-12-16 之前没有已支付订单"


def test_backtest_data_problems_in_both_languages(synthetic):
    """A cutoff before the data and a training window without both outcomes: a ValueError
    whose text names the cutoff / window and the rule, in English and in zh-CN."""
    from models.messages import ModelDataError, localized

    orders, _ = synthetic
    with pytest.raises(ModelDataError) as ei:
        backtest(orders, "2022-06-01", 90)
    assert str(ei.value) == "no customer with a paid order before 2022-06-01: nothing to evaluate"
    assert localized(ei.value, "zh-CN") == "截止 2022-06-01 之前没有任何客户有已支付订单：没有可评估的客户"
    from tests.models.conftest import orders_frame

    # customer 1 buys again after the cutoff: the data reaches past it, yet nobody buys in the training labels
    two = orders_frame([(1, "2024-01-01", 5, "paid"), (2, "2024-01-02", 5, "paid"), (1, "2024-03-10", 5, "paid")])
    with pytest.raises(ValueError) as ei:
        backtest(two, "2024-03-01", 30)
    assert localized(ei.value, "en") == (
        "cannot train: the training window (features at 2024-01-31, labels [2024-01-31, 2024-03-01)) has 2 customers and needs both classes"
    )
    assert localized(ei.value, "zh-CN").startswith("无法训练：训练窗口（特征取 2024-01-31，标签区间 [2024-01-31, 2024-03-01)）有 2 位客户")


def test_read_orders_file_csv(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,paid_at,amount,status\n"
        "1,100,2024-01-02 10:00:00,12.5,paid\n"
        "2,100,2024-01-05T08:00:00+08:00,3,refunded\n"
        "3,200,2024-02-01,7.25,cancelled\n"
    )
    df = read_orders_file(path)
    assert list(df.columns) == ["order_id", "customer_id", "paid_at", "amount", "status"]
    assert df["customer_id"].dtype == np.int64
    assert df["paid_at"].iloc[1] == pd.Timestamp("2024-01-05 00:00:00")  # converted to UTC
    assert list(df["status"]) == ["paid", "refunded", "cancelled"]
    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,customer_id,paid_at,amount,status\n1,1,2024-01-01,1,shipped\n")
    with pytest.raises(ValueError, match="rule status_unknown"):  # the import's rule (tests/models/test_backtest_import_rules.py)
        read_orders_file(bad)


@pytest.mark.parametrize(
    "content, en, zh",
    [
        ("order_id,customer_id,paid_at,amount,status\n1,1,2024-01-01,1,shipped\n",
         "line 2 (order_id 1): status is not one of paid, refunded, cancelled (rule status_unknown)",
         "第 2 行（订单号 1）：status 不在允许的取值中（paid，refunded，cancelled）（规则 status_unknown）"),
        ("order_id,paid_at,amount,status\n1,2024-01-01,1,paid\n",  # no customer_id: named, not a KeyError
         "orders are missing columns: customer_id (expected order_id, customer_id, paid_at, amount, status)",
         "订单缺少列：customer_id（需要 order_id，customer_id，paid_at，amount，status）"),
        ("order_id,customer_id,paid_at,amount,status\n1,1,soon,1,paid\n",
         "line 2 (order_id 1): paid_at ",
         "第 2 行（订单号 1）：paid_at "),
    ],
    ids=["status", "column", "paid_at"],
)
def test_bad_orders_file_is_named_in_both_languages(tmp_path, content, en, zh):
    from models.messages import ModelDataError

    path = tmp_path / "orders.csv"
    path.write_text(content)
    with pytest.raises(ModelDataError) as ei:
        read_orders_file(path)
    assert en in str(ei.value) and ei.value.localized("en") == str(ei.value)
    assert zh in ei.value.localized("zh-CN")
    assert ei.value.localized() == ei.value.localized("zh-CN")  # the settings' default language


def test_load_cdnow_format(tmp_path):
    path = tmp_path / "cdnow.txt"
    path.write_text(" customer_id  date number_of_cds  dollar_value\n 00001 19970101  1   11.77\n 00002 19970112  5   77.00\n")
    df = load_cdnow(path)
    assert list(df["customer_id"]) == [1, 2]
    assert list(df["paid_at"]) == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-12")]
    assert list(df["amount"]) == [11.77, 77.0] and set(df["status"]) == {"paid"}


@pytest.mark.slow
def test_cdnow_quality_target():
    """Issue 4: on real CDNOW data the trained model beats the baselines.

    Measured: 1997-10-01/90 AUC 0.7785 (BG/NBD 0.764, recency 0.763), Brier 0.116.
    The issue's AUC >= 0.78 is checked separately below (strict xfail).
    """
    import lifetimes  # noqa: F401  a test dependency (pyproject's `test` extra): CDNOW ships inside it
    orders = load_cdnow()
    assert orders["customer_id"].nunique() == 23_570
    main = backtest(orders, "1997-10-01", 90)
    m, bg, rec = main["model"], main["bgnbd"], main["recency"]
    assert m["n"] == 23_570
    assert m["brier"] <= 0.117
    assert m["roc_auc"] >= bg["roc_auc"] + 0.01
    assert m["roc_auc"] >= rec["roc_auc"] + 0.01
    assert m["roc_auc"] >= 0.775
    assert m["log_loss"] <= bg["log_loss"]
    # Holds up at other cutoffs and horizons (same code, nothing tuned per cutoff).
    for cutoff, horizon in [("1997-08-01", 60), ("1997-12-01", 90), ("1997-11-01", 120)]:
        r = backtest(orders, cutoff, horizon)
        assert r["model"]["roc_auc"] >= r["bgnbd"]["roc_auc"] + 0.005, (cutoff, horizon, r)
        assert r["model"]["roc_auc"] >= r["recency"]["roc_auc"] + 0.005, (cutoff, horizon, r)
        assert r["model"]["brier"] <= r["bgnbd"]["brier"] + 0.002, (cutoff, horizon, r)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue 4 asks ROC AUC >= 0.78 at 1997-10-01/90; the model reaches 0.7785, about the ceiling of purchase histories here (see models/README.md)")
def test_cdnow_issue_auc_target():
    import lifetimes  # noqa: F401  a test dependency (pyproject's `test` extra): CDNOW ships inside it
    assert backtest(load_cdnow(), "1997-10-01", 90)["model"]["roc_auc"] >= 0.78
