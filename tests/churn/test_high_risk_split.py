"""The churn line's high-risk count covers prospects and already silent/churned customers;
the next line says how many of them are still new/active/loyal (the at-risk overlay, the
actionable ones) and how many are not, adding up to the high-risk count."""
from __future__ import annotations

from tasks.churn import high_risk_by_stage, summary_lines
from tests.tags.factory import AS_OF, Shop, local
from tests.tags.test_overlay_clusters import _scores


def test_high_risk_split_by_stage(warehouse):
    from tasks import tags

    s = Shop()
    for cid, days in (("ACT", -10), ("ACT2", -20), ("SIL", -100), ("OLD", -300)):
        s.customer(cid)
        s.order(cid, local(AS_OF, days))
    s.customer("PRO")
    s.load(warehouse)
    tags.refresh(AS_OF, "n1", engine=warehouse)
    _scores(
        warehouse,
        [("ACT", "v2", "high"), ("SIL", "v2", "high"), ("OLD", "v2", "high"), ("PRO", "v2", "high"), ("ACT2", "v2", "low"),
         ("ACT2", "v1", "high"), ("GHOST", "v2", "high")],
        {"v1": "retired", "v2": "champion"},
    )
    with warehouse.connect() as conn:
        split = high_risk_by_stage(conn)
    assert split == {"at_risk": 1, "gone": 2, "prospect": 1, "untagged": 1}
    result = {"model_version": "v2", "scoring": {"customers": 6, "bands": {"high": 5, "medium": 0, "low": 1}},
              "drift": {"breach": False, "max_psi": 0.01, "threshold": 0.2, "breached": []}, "high_risk_by_stage": split}
    zh = summary_lines(result, "zh-CN")
    assert "高风险 5" in zh[0]
    assert zh[1] == "高风险 5 人中：仍为新客/活跃/忠诚（已标为流失预警）1，已沉默/流失 2，潜客（未下单）1，尚无标签 1", zh
    assert zh[2].startswith("模型漂移检查正常")
    en = summary_lines(result, "en")
    assert en[1] == "of the 5 high risk: still new/active/loyal (flagged at risk) 1, already silent/churned 2, prospects (no order yet) 1, not tagged yet 1", en


def test_thousands_in_the_split():
    line = summary_lines({"model_version": "v", "scoring": {"customers": 5000, "bands": {"high": 3700, "medium": 662, "low": 638}},
                          "high_risk_by_stage": {"at_risk": 185, "gone": 2703, "prospect": 812, "untagged": 0}}, "zh-CN")[-1]
    assert line == "高风险 3,700 人中：仍为新客/活跃/忠诚（已标为流失预警）185，已沉默/流失 2,703，潜客（未下单）812"
