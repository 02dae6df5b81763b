"""Figures carry their unit where the operator reads them: the churn-model artifact's churn
rate is a percentage (as the health report's shares), the health report's DAU / MAU are a
number of people (人 in zh-CN; en figures there have no unit), and the campaign read-out's
row of the customers excluded at planning (never messaged) shows no uplift, interval or
verdict: empty, as the control group's row."""
from __future__ import annotations

import pandas as pd
import pytest


def test_the_churn_model_artifact_gives_the_churn_rate_in_percent(shop_language):
    from tasks.artifacts import churn_model_markdown

    m = {"roc_auc": 0.81234, "pr_auc": 0.5, "brier": 0.12, "log_loss": 0.4, "lift_top_decile": 2.5, "churn_rate": 0.2, "n": 1234}
    champ = {**m, "churn_rate": 0.18345}
    out = {"version": "v2", "status": "champion", "reason": "won", "reason_text": "胜出。", "train_cutoff": "2026-09-01",
           "eval_cutoff": "2026-10-01", "horizon_days": 60, "n_train": 5000, "metrics": m, "champion_metrics": champ,
           "previous_champion": "v1"}
    md = churn_model_markdown(out)
    assert "| 流失率 | 20.0% | 18.3% |" in md, md
    assert "| 2.5000 | 2.5000 |" in md  # the other figures keep their four decimals
    shop_language("en")
    assert "| churn rate | 20.0% | 18.3% |" in churn_model_markdown(out)


def _health(dau, mau) -> dict:
    return {"as_of": "2026-12-07", "members": 1200, "active": 300, "silent_share": 0.25, "complaint_rate": 0.01,
            "satisfaction": 0.9, "nps": 30.0, "repeat_rate": 0.3, "retention_30d": 0.5, "retention_90d": 0.3,
            "conversion": 0.2, "avg_ltv": 100.0, "dau": dau, "mau": mau, "stages": {"new": 100, "active": 150, "loyal": 50},
            "breaches": []}


@pytest.mark.parametrize("code, dau, mau, members", [
    ("zh-CN", "| DAU | 1,234 人 |", "| MAU | 5,678 人 |", "| 会员数 | 1,200 |"),
    ("en", "| DAU | 1,234 |", "| MAU | 5,678 |", "| members | 1,200 |"),
])
def test_the_health_report_counts_dau_and_mau_in_people(shop_language, code, dau, mau, members):
    from tasks import health

    hist = pd.DataFrame(columns=["as_of", *health.HEADLINE])
    md = health.report_markdown(_health(1234, 5678), hist, None, lang=code)
    assert dau in md and mau in md and members in md, md
    md = health.report_markdown(_health(None, None), hist, None, lang=code)
    assert "DAU" not in md and "MAU" not in md  # no events: no rows, as before


def test_the_excluded_at_planning_row_has_no_uplift_interval_or_verdict(shop_language):
    from tasks.campaigns.readout import report_rows, uplift_interval, verdict
    from userops.i18n import t

    def fig(n, converted, reached):
        return {"customers": n, "reached": reached, "suppressed": n - reached, "failed": 0, "pending": 0, "converted": converted,
                "conversion": converted / n, "revenue_per_customer": 10.0, "gift_cost": 0.0}

    t_, c_ = fig(300, 60, 250), fig(200, 20, 0)
    u = uplift_interval(60, 300, 20, 200)
    variants = []
    for name, f in (("A", fig(250, 55, 250)), ("-", fig(50, 5, 0))):
        uv = uplift_interval(f["converted"], f["customers"], 20, 200)
        variants.append({"variant": name, **f, "uplift": uv, "verdict": verdict(uv, f["customers"], 200)})
    rep = {"groups": {"treatment": t_, "control": c_}, "uplift": u, "verdict": verdict(u, 300, 200), "variants": variants}
    for code in ("zh-CN", "en"):
        rows = report_rows(rep, code)
        group, rate, uplift, ci, verdict_col = (t(f"campaign.report.{k}", code) for k in ("group", "rate", "uplift", "ci", "verdict"))
        excluded = next(r for r in rows if r[group] == t("campaign.report.no_variant", code))
        control = rows[1]
        assert (excluded[uplift], excluded[ci], excluded[verdict_col]) == ("", "", ""), excluded
        assert (control[uplift], control[ci], control[verdict_col]) == ("", "", "")
        variant_a = rows[2]
        assert variant_a[uplift].endswith("pp") and variant_a[ci].startswith("[") and variant_a[verdict_col]  # a real variant keeps them
        assert excluded[rate] == "10.0%"  # its conversion is still shown
