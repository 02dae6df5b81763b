"""The health figure "active" counts new + active + loyal members; the operator reads it
under a name that says so (CLI line, artifact, HTML report), never as a bare 活跃 beside the
tags line's stage 活跃; the zh-CN report names the stages in Chinese, and the stage table
shows how the figure is made up."""
from __future__ import annotations

from tasks import health, tags
from tests.tags.factory import AS_OF
from tests.tags.test_health import unhealthy_shop


def _metrics(warehouse):
    unhealthy_shop().load(warehouse)
    tags.refresh(AS_OF, "h1", engine=warehouse)
    return health.snapshot(AS_OF, engine=warehouse)


def test_the_health_line_names_what_active_counts(sqlite_warehouse):
    m = _metrics(sqlite_warehouse)
    zh, en = health.summary_lines(m, "zh-CN")[0], health.summary_lines(m, "en")[0]
    assert "活跃会员（新客+活跃+忠诚）3" in zh and "，活跃 3" not in zh, zh
    assert "3 active members (new + active + loyal)" in en, en


def test_the_zh_report_names_stages_in_chinese_and_adds_up_active(sqlite_warehouse):
    m = _metrics(sqlite_warehouse)
    md = health.report_markdown(m, health.history(sqlite_warehouse, AS_OF, 8), None, lang="zh-CN")
    assert "| 活跃会员（新客+活跃+忠诚） | 3 |" in md, md
    assert "| 生命周期阶段 | 人数 |" in md
    for zh in ("| 潜客 | 1 |", "| 新客 | 1 |", "| 活跃 | 2 |", "| 忠诚 | 0 |", "| 沉默 | 4 |", "| 流失 | 2 |"):
        assert zh in md, (zh, md)
    for en in ("prospect", "churned", "| new |", "| silent |"):
        assert en not in md, (en, md)
    assert "活跃会员（新客+活跃+忠诚）3 = 新客 1 + 活跃 2 + 忠诚 0" in md, md
    en = health.report_markdown(m, health.history(sqlite_warehouse, AS_OF, 8), None, lang="en")
    assert "| lifecycle stage | members |" in en and "| active members (new + active + loyal) | 3 |" in en, en
    html = health.write_report(AS_OF, m, engine=sqlite_warehouse, lang="zh-CN").read_text(encoding="utf-8")
    assert "<td>潜客</td>" in html and "活跃会员（新客+活跃+忠诚）3 = 新客 1" in html


def test_the_health_labels_use_the_stage_names_of_the_tags_line():
    from userops.i18n import t

    for lang in ("zh-CN", "en"):
        names = [t(f"tags.stage.{s}", lang) for s in ("new", "active", "loyal")]
        label = t("health.metric.active", lang)
        assert all(n in label for n in names), (label, names)
