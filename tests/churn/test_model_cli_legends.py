"""`userops model backtest` explains its rows and columns (the columns in the words of the
legend under `model status`) and says when a baseline beats the model; `model score` says
what the drift figure (PSI) is. --json unchanged."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from tests.churn.conftest import AS_OF

_HAN = re.compile("[\u3400-\u9fff]")


def _run(args):
    from userops.cli import app

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


_RESULT = {
    "model": {"roc_auc": 0.8962, "pr_auc": 0.95, "brier": 0.110, "log_loss": 0.35, "n": 2000, "churn_rate": 0.6},
    "recency": {"roc_auc": 0.85, "pr_auc": 0.90, "brier": 0.140, "log_loss": 0.45, "n": 2000, "churn_rate": 0.6},
    "bgnbd": {"roc_auc": 0.8971, "pr_auc": 0.94, "brier": 0.112, "log_loss": 0.36, "n": 2000, "churn_rate": 0.6},
}


@pytest.fixture
def tiny_orders(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("order_id,customer_id,paid_at,amount,status\n1,100,2026-01-02,12.5,paid\n2,101,2026-01-05,3,paid\n")
    return path


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_backtest_explains_rows_and_columns_and_says_when_a_baseline_wins(tiny_orders, shop_language, monkeypatch, lang):
    import models.backtest

    monkeypatch.setattr(models.backtest, "backtest", lambda *a, **k: json.loads(json.dumps(_RESULT)))
    monkeypatch.setattr(models.backtest, "backtest_warnings", lambda *a, **k: [])
    shop_language(lang)
    from tasks.artifacts import metric_legend

    out = _run(["model", "backtest", "--orders", str(tiny_orders), "--cutoff", "2026-06-01", "--horizon", "90"]).output
    legend = metric_legend(metrics=("roc_auc", "pr_auc", "brier", "log_loss"), window=False)
    assert legend in out  # the columns: the same words as under `model status`
    if lang == "en":
        assert "ROC AUC: how well the model tells churners from stayers" in out
        assert "recency = a baseline ranking by days since the last purchase only" in out and "trained 90 days before the cutoff" in out
        beats = [line for line in out.splitlines() if "beats the model" in line]
        assert beats == ["Where a baseline beats the model: BG/NBD ROC AUC 0.897 (model 0.896)."], out
    else:
        assert "ROC AUC 衡量区分流失与留存客户的能力" in out
        assert "最近购买 = 只按距上次购买天数排序的对照基线" in out and "在截止前 90 天训练的流失模型" in out
        beats = [line for line in out.splitlines() if "胜过模型" in line]
        assert beats == ["基线胜过模型的指标：BG/NBD ROC AUC 0.897（模型 0.896）。"], out
    # --json unchanged: exactly the result
    js = _run(["model", "backtest", "--orders", str(tiny_orders), "--cutoff", "2026-06-01", "--horizon", "90", "--json"])
    assert json.loads(js.stdout) == _RESULT


def test_backtest_says_nothing_when_the_model_wins_everywhere(tiny_orders, shop_language, monkeypatch):
    import models.backtest

    won = json.loads(json.dumps(_RESULT))
    won["bgnbd"]["roc_auc"] = 0.8964  # shown as 0.896 like the model's: no difference claimed
    monkeypatch.setattr(models.backtest, "backtest", lambda *a, **k: won)
    monkeypatch.setattr(models.backtest, "backtest_warnings", lambda *a, **k: [])
    shop_language("en")
    out = _run(["model", "backtest", "--orders", str(tiny_orders), "--cutoff", "2026-06-01", "--horizon", "90"]).output
    assert "beats the model" not in out and "Rows: model" in out


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_score_explains_psi(shop_language, monkeypatch, lang):
    import models.scoring

    shop_language(lang)

    def night(as_of, train_if_needed=True):
        result = {"drift": {"breach": False, "breached": [], "max_psi": 0.02, "threshold": 0.2}}
        return {**result, "summary": models.scoring.summary_lines(result)}

    monkeypatch.setattr(models.scoring, "score_night", night)
    out = _run(["model", "score", "--as-of", str(AS_OF)]).output
    if lang == "en":
        assert "max PSI 0.02 (threshold 0.2)" in out and "PSI (population stability index) measures how far" in out
    else:
        assert "最大 PSI 0.02（阈值 0.2）" in out and "PSI（群体稳定性指数）衡量" in out
