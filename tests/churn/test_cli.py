"""userops model backtest/train/status/score through the CLI."""
from __future__ import annotations

import json
import math
import re

import pytest
from typer.testing import CliRunner

from tests.churn.conftest import AS_OF


@pytest.fixture
def orders_csv(tmp_path, member_base):
    path = tmp_path / "orders.csv"
    o = member_base.orders[["order_id", "customer_id", "paid_at", "amount", "status"]]
    o.to_csv(path, index=False)
    return path


def _app():
    from userops.cli import app

    return app


def test_backtest_json(orders_csv):
    res = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(orders_csv), "--cutoff", "2026-06-01", "--horizon", "90", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)  # exactly one JSON object on stdout
    assert set(out) == {"model", "recency", "bgnbd"}
    for name, m in out.items():
        assert set(m) == {"roc_auc", "pr_auc", "brier", "log_loss", "n", "churn_rate"}, name
        for k, v in m.items():
            assert isinstance(v, (int, float)) and math.isfinite(v), (name, k, v)
        assert 0.5 < m["roc_auc"] <= 1 and 0 < m["brier"] < 0.25 and m["n"] > 1000
    assert out["model"]["n"] == out["recency"]["n"] == out["bgnbd"]["n"]


def test_backtest_text_and_errors(orders_csv, tmp_path, monkeypatch):
    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    from userops.settings import reset_settings

    reset_settings()
    res = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(orders_csv), "--cutoff", "2026-06-01", "--horizon", "60"])
    assert res.exit_code == 0, res.output
    assert "ROC AUC" in res.output and "recency" in res.output and "BG/NBD" in res.output
    assert re.search(r"churn rate \d+\.\d%", res.output), res.output  # a share in percent, as elsewhere
    res = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(tmp_path / "missing.csv"), "--cutoff", "2026-06-01", "--horizon", "60"])
    assert res.exit_code == 2
    res = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(orders_csv), "--cutoff", "2030-01-01", "--horizon", "90", "--json"])
    assert res.exit_code == 1  # after the data: its last order day and the latest cutoff it supports, not a traceback
    assert "Backtest failed: the cutoff 2030-01-01 is after the data: the last paid order is on " in res.output
    assert "the cutoff must be on or before " in res.output
    reset_settings()


def test_backtest_table_lines_up_in_chinese(orders_csv, monkeypatch):
    """zh-CN row labels take two terminal columns per character: every figure still ends in
    the same column as its header, and the header is Chinese."""
    from rich.cells import cell_len

    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", "zh-CN")
    reset_settings()
    res = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(orders_csv), "--cutoff", "2026-06-01", "--horizon", "60"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    head = next(i for i, line in enumerate(lines) if "ROC AUC" in line)
    table = lines[head:head + 4]
    assert "对数损失" in table[0] and "log loss" not in res.output
    assert [line.split()[0] for line in table[1:]] == ["模型", "最近购买", "BG/NBD"]
    assert len({cell_len(line) for line in table}) == 1, table  # every row as wide as the header
    reset_settings()


def test_backtest_problems_in_the_operators_language(tmp_path, monkeypatch):
    """A bad orders file and a cutoff before the data: zh-CN by default, English with
    USEROPS_LANGUAGE=en; each names the value / cutoff and the rule."""
    from userops.settings import reset_settings

    monkeypatch.delenv("USEROPS_LANGUAGE", raising=False)
    (tmp_path / "none.yaml").write_text("{}\n")
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))  # no userops.yaml choosing a language
    bad = tmp_path / "orders.csv"
    bad.write_text("order_id,customer_id,paid_at,amount,status\n1,100,2026-01-02,12.5,shipped\n2,101,2026-01-05,3,paid\n")
    ok = tmp_path / "ok.csv"
    ok.write_text("order_id,customer_id,paid_at,amount,status\n1,100,2026-01-02,12.5,paid\n2,101,2026-01-05,3,paid\n")
    runs = {}
    for lang in (None, "en"):
        if lang:
            monkeypatch.setenv("USEROPS_LANGUAGE", lang)
        reset_settings()
        status = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(bad), "--cutoff", "2026-06-01"])
        early = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(ok), "--cutoff", "2025-06-01", "--json"])
        assert status.exit_code == 2 and early.exit_code == 1 and "Traceback" not in status.output + early.output  # 2: the file refused
        runs[lang or "zh-CN"] = (status.output.strip(), early.output.strip())
    reset_settings()
    assert runs["zh-CN"] == (
        f"回测失败：{bad}：1 行订单不符合导入规则，未做回测（不在被改动过的数据上给出指标）：\n"
        "  第 2 行（订单号 1）：status 不在允许的取值中（paid，refunded，cancelled）（规则 status_unknown）\n"
        "请修正这些行后重试（导入时它们会进入隔离区）",
        "回测失败：截止 2025-06-01 之前没有任何客户有已支付订单：没有可评估的客户",
    )
    assert runs["en"] == (
        f"Backtest failed: {bad}: rows breaking the import rules: 1; no backtest was run (no figures from altered data):\n"
        "  line 2 (order_id 1): status is not one of paid, refunded, cancelled (rule status_unknown)\n"
        "fix these rows and run again (an import would quarantine them)",
        "Backtest failed: no customer with a paid order before 2025-06-01: nothing to evaluate",
    )


def test_train_score_status(loaded):
    runner = CliRunner()
    res = runner.invoke(_app(), ["model", "status"])
    assert res.exit_code == 0 and "模型库为空" in res.output
    res = runner.invoke(_app(), ["model", "train", "--as-of", str(AS_OF)])
    assert res.exit_code == 0, res.output
    assert "ROC AUC" in res.output and "已晋升" in res.output
    res = runner.invoke(_app(), ["model", "score", "--as-of", str(AS_OF)])
    assert res.exit_code == 0, res.output
    assert "已为" in res.output and "模型漂移检查正常" in res.output
    res = runner.invoke(_app(), ["model", "status"])
    assert res.exit_code == 0, res.output
    assert "冠军模型：churn-" in res.output and "最近漂移检查 2026-11-20" in res.output
    assert "ROC AUC 衡量区分流失与留存客户的能力（0.5 相当于随机" in res.output and "越低越好" in res.output  # the figures explained
    res = runner.invoke(_app(), ["model", "status", "--json"])
    st = json.loads(res.stdout)
    assert st["versions"][0]["status"] == "champion" and st["last_drift"]["model_version"] == st["versions"][0]["version"]


def test_a_night_without_enough_history_says_why_in_the_operators_language(warehouse, member_base, monkeypatch, caplog):
    """A shop with 100 days of orders cannot train: the night's summary and its warning name
    the training window and the rule, in zh-CN by default and in English when asked."""
    import pandas as pd

    from models import registry, scoring
    from userops.db import bulk_upsert
    from userops.settings import reset_settings

    recent = member_base.orders[pd.to_datetime(member_base.orders["paid_at"]) >= pd.Timestamp(AS_OF) - pd.Timedelta(days=100)]
    with warehouse.begin() as conn:
        bulk_upsert(conn, "customers", member_base.customers, ["customer_id"])
        bulk_upsert(conn, "orders", recent, ["order_id"])
    registry._CACHE.clear()
    with caplog.at_level("WARNING", logger="userops.churn"):
        zh = scoring.score_night(AS_OF, warehouse, overlay=False)
    assert zh["summary"][0].startswith("流失模型训练失败：无法训练：训练窗口（特征取 ") and "有 0 位客户" in zh["summary"][0]
    assert zh["summary"][0] in caplog.text
    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    en = scoring.score_night(AS_OF, warehouse, overlay=False)
    reset_settings()
    assert en["summary"][0].startswith("Churn model training failed: cannot train: the training window (features at ")
    assert en["summary"][0].endswith("has 0 customers and needs both classes")
