"""``userops tags show`` gives an at-risk customer's churn reasons on the at-risk line, in the
operator's language with the customer's own figures (churn_scores.reasons: codes and numbers,
rendered by models.scoring.reasons_text), never a phone or an email; a customer not at risk,
or an unreadable stored value, gets no reasons."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tasks import tags
from tests.tags.factory import AS_OF, Shop, local
from userops.cli import app
from userops.db import bulk_upsert
from userops.settings import reset_settings

runner = CliRunner()

REASONS = {"codes": ["recency", "frequency"], "signs": [1, 1], "recency_days": 75, "usual_gap_days": 20, "n_orders": 2}
WHY = {
    "en": "Why: no order for 75 days, usually buys every 20 days; only 2 orders so far",
    "zh-CN": "主要原因：已 75 天未下单，平时约每 20 天购买一次；累计仅 2 单",
}


def _shop(engine, reasons: dict[str, str | None]) -> None:
    s = Shop()
    for cid in ("RISK", "SAFE", "BAD"):
        s.customer(cid)
        s.order(cid, local(AS_OF, -40))
        s.order(cid, local(AS_OF, -20))
    s.load(engine)
    tags.refresh(AS_OF, "reasons", engine=engine)
    with engine.begin() as conn:
        bulk_upsert(conn, "model_versions", pd.DataFrame(
            [{"version": "v2", "trained_at": pd.Timestamp("2026-06-01"), "status": "champion"}]
        ).astype({"trained_at": "datetime64[us]"}), ["version"])
        bulk_upsert(conn, "churn_scores", pd.DataFrame(
            [{"customer_id": c, "model_version": "v2", "probability": 0.1 if c == "SAFE" else 0.9,
              "risk_band": "low" if c == "SAFE" else "high", "reasons": r, "scored_at": pd.Timestamp("2026-06-30")}
             for c, r in reasons.items()]
        ).astype({"scored_at": "datetime64[us]"}), ["customer_id", "model_version"])
        tags.apply_at_risk_overlay(conn, AS_OF)


def _show(cid: str, lang: str, monkeypatch) -> str:
    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    res = runner.invoke(app, ["tags", "show", cid])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_at_risk_line_says_why(sqlite_warehouse, monkeypatch, lang):
    _shop(sqlite_warehouse, {"RISK": json.dumps(REASONS), "SAFE": json.dumps({**REASONS, "signs": [-1, -1]}), "BAD": "{not json"})
    out = _show("RISK", lang, monkeypatch)
    line = next(x for x in out.splitlines() if x.startswith("预测流失风险" if lang == "zh-CN" else "predicted at risk"))
    if lang == "en":
        assert line == f"predicted at risk: yes — champion model v2 rates the churn risk high (p=0.90). {WHY['en']}"
    else:
        assert line == f"预测流失风险：是——冠军模型 v2 评为高风险（概率 0.90）。{WHY['zh-CN']}"
    assert "13800138000" not in out and "@example.com" not in out and "张" not in out
    assert "recency" not in line and "{" not in line  # words, not the stored codes
    # not at risk: no reasons; an unreadable stored value: the line without reasons, never the raw text
    safe = _show("SAFE", lang, monkeypatch)
    assert "predicted at risk: no" in safe or "预测流失风险：否" in safe
    assert "Why:" not in safe and "主要原因" not in safe and "75" not in safe
    bad = _show("BAD", lang, monkeypatch)
    bad_line = next(x for x in bad.splitlines() if x.startswith("预测流失风险" if lang == "zh-CN" else "predicted at risk"))
    assert bad_line.endswith("（概率 0.90）" if lang == "zh-CN" else "(p=0.90)")


def test_explain_renders_the_customers_own_figures(sqlite_warehouse):
    other = {"codes": ["slowing", "returns"], "signs": [1, 1], "window_orders": 1, "prev_window_orders": 4, "window_days": 365, "returned_pct": 50}
    _shop(sqlite_warehouse, {"RISK": json.dumps(other), "SAFE": None, "BAD": None})
    en = tags.explain("RISK", engine=sqlite_warehouse, lang="en")
    line = next(x for x in en if x.startswith("predicted at risk: yes"))
    assert line.endswith(". Why: 1 order in the last 365 days vs about 4 per 365 days before; 50% of orders refunded or cancelled")
    zh = tags.explain("RISK", engine=sqlite_warehouse, lang="zh-CN")
    assert any(x.endswith("。主要原因：近 365 天 1 单，此前平均每 365 天 4 单；50% 的订单已退款或取消") for x in zh)
    # a score without stored reasons: the line as before
    assert any(x.endswith("(p=0.90)") for x in tags.explain("BAD", engine=sqlite_warehouse, lang="en"))
