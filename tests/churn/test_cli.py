"""userops model backtest/train/status/score through the CLI."""
from __future__ import annotations

import json
import math

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
    res = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(tmp_path / "missing.csv"), "--cutoff", "2026-06-01", "--horizon", "60"])
    assert res.exit_code == 2
    res = CliRunner().invoke(_app(), ["model", "backtest", "--orders", str(orders_csv), "--cutoff", "2030-01-01", "--horizon", "90", "--json"])
    assert res.exit_code == 1  # nothing to evaluate that late: a message, not a traceback
    reset_settings()


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
    res = runner.invoke(_app(), ["model", "status", "--json"])
    st = json.loads(res.stdout)
    assert st["versions"][0]["status"] == "champion" and st["last_drift"]["model_version"] == st["versions"][0]["version"]
