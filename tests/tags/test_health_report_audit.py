"""The health report's charts as the Prefect-UI audit read them: RFM segments by their names
in the report's language, the trend chart spans the days its title names, a missing CJK font
is said (report + run log) instead of silently switching the charts to English, a cohort's
retention curve stops where too few of its customers are old enough (survivor bias), and
the HTML page's title and ``lang`` are the report's language."""
from __future__ import annotations

import logging
import re
from datetime import timedelta

import matplotlib.dates as mdates
import pytest

from tasks import health, tags
from tests.tags.factory import AS_OF, Shop, local
from tests.tags.test_health import unhealthy_shop


@pytest.fixture
def figures(monkeypatch):
    """The report's matplotlib figures as the HTML report draws them (stages, segments,
    retention, trend); ``figures.png``: those the artifact's PNGs were drawn from."""
    import matplotlib.pyplot as plt

    class Figs(list):
        png: list

    figs = Figs()
    figs.png = []

    def capture(into, out):
        def keep(fig, *a, **k):
            into.append(fig)
            plt.close(fig)
            return out
        return keep

    monkeypatch.setattr(health, "_svg", capture(figs, "<svg></svg>"))
    monkeypatch.setattr(health, "_png", capture(figs.png, "x"))
    return figs


def _one_night(engine):
    unhealthy_shop().load(engine)
    tags.refresh(AS_OF, "r0", engine=engine)
    return health.snapshot(AS_OF, engine=engine)


@pytest.mark.filterwarnings("ignore:Glyph")  # zh-CN labels drawn without a CJK font here
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_segment_bars_and_trend_window(sqlite_warehouse, figures, monkeypatch, lang):
    monkeypatch.setattr(health, "_plot_lang", lambda lang: lang)  # as with a CJK font installed
    m = _one_night(sqlite_warehouse)
    health.write_report(AS_OF, m, engine=sqlite_warehouse, lang=lang)
    seg_axis = figures[1].axes[0]
    labels = [x.get_text() for x in seg_axis.get_yticklabels()]
    from userops.i18n import t

    assert t("tags.segment.potential_loyalist", lang) in labels and t("tags.segment.cant_lose", lang) in labels, labels
    assert not {"potential_loyalist", "cant_lose", "need_attention"} & set(labels), labels
    days = health.get_settings().health.trend_days
    for ax in figures[3].axes:  # one snapshot: the axis is still the last `days` days up to as_of
        lo, hi = (mdates.num2date(v).date() for v in ax.get_xlim())
        assert (lo, hi) == (AS_OF - timedelta(days=days), AS_OF), (lo, hi)


def _without_cjk_fonts(monkeypatch):
    from matplotlib import font_manager

    latin = [f for f in font_manager.fontManager.ttflist if "CJK" not in f.name and "Hei" not in f.name and "Han" not in f.name]
    monkeypatch.setattr(font_manager.fontManager, "ttflist", latin)


def test_no_cjk_font_is_said_once_in_the_artifact_and_the_run_log(sqlite_warehouse, figures, monkeypatch, caplog):
    """Without a CJK font only the artifact's PNG copies fall back to English labels (said
    once there and in the run log); the HTML report's charts stay in zh-CN."""
    _without_cjk_fonts(monkeypatch)
    m = _one_night(sqlite_warehouse)
    with caplog.at_level(logging.WARNING, logger="userops.health"):
        path = health.write_report(AS_OF, m, engine=sqlite_warehouse, lang="zh-CN")
    html = path.read_text(encoding="utf-8")
    assert "fonts-noto-cjk" not in html
    warned = [r for r in caplog.records if "fonts-noto-cjk" in r.getMessage()]
    assert len(warned) == 1 and "未安装中文字体" in warned[0].getMessage()
    # the report's charts: zh-CN; the artifact's (retention, trend): English, and it says why
    assert "潜在忠诚" in [x.get_text() for x in figures[1].axes[0].get_yticklabels()]
    assert [f.axes[0].get_title() for f in figures.png] == ["Retention curves by month of first order", "silent share"]
    md = health.charts_markdown(health._CHARTS.pop(str(path)), "zh-CN", english=health._CHART_NOTE.pop(str(path)))
    assert md.count("fonts-noto-cjk") == 1 and "HTML 报告中的图表不受影响" in md
    figures.png.clear()
    en = health.write_report(AS_OF, m, engine=sqlite_warehouse, lang="en")
    assert not health._CHART_NOTE.pop(str(en)) and len(figures.png) == 2


def test_report_charts_are_inline_svg_with_their_text_in_the_report_language(sqlite_warehouse, monkeypatch):
    """The HTML report's charts keep their labels as text (the browser draws them with its
    own fonts), so a zh-CN report has Chinese charts on a machine without a CJK font."""
    _without_cjk_fonts(monkeypatch)
    m = _one_night(sqlite_warehouse)
    html = health.write_report(AS_OF, m, engine=sqlite_warehouse, lang="zh-CN").read_text(encoding="utf-8")
    assert html.count("<svg") == 4 and "data:image/png" not in html and "<?xml" not in html
    texts = " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", html))
    for words in ("生命周期阶段", "首单后天数", "沉默占比", "潜在忠诚"):
        assert words in texts, (words, texts[:500])
    en = health.write_report(AS_OF, m, engine=sqlite_warehouse, lang="en").read_text(encoding="utf-8")
    assert "days after the first order" in " ".join(re.findall(r"<text[^>]*>([^<]*)</text>", en))


def test_html_title_and_lang_follow_the_report_language(sqlite_warehouse, figures):
    m = _one_night(sqlite_warehouse)
    zh = health.write_report(AS_OF, m, engine=sqlite_warehouse, lang="zh-CN").read_text(encoding="utf-8")
    assert "<html lang='zh-CN'>" in zh and f"<title>用户健康度日报 {AS_OF}</title>" in zh
    en = health.write_report(AS_OF, m, engine=sqlite_warehouse, lang="en").read_text(encoding="utf-8")
    assert "<html lang='en'>" in en and f"<title>Customer health report {AS_OF}</title>" in en
    assert "userops health" not in zh + en


def test_retention_curve_stops_where_too_few_customers_are_eligible(sqlite_warehouse):
    """May's cohort (as of 30 June): three first orders on 1 May (bought again 35 days later),
    one on 31 May (30 days old, never again). Past day 30 only the three old customers are
    eligible - the old curve climbed to 100 % on them."""
    s = Shop()
    for i in range(3):
        s.customer(f"O{i}")
        s.order(f"O{i}", local(AS_OF, -60))
        s.order(f"O{i}", local(AS_OF, -25))
    s.customer("Y0")
    s.order("Y0", local(AS_OF, -30))
    s.load(sqlite_warehouse)
    tags.refresh(AS_OF, "r0", engine=sqlite_warehouse)
    m = health.snapshot(AS_OF, engine=sqlite_warehouse)
    curve = m["retention_curves"]["2026-05"]
    assert curve and max(d for d, _ in curve) <= 30, curve
    assert all(v == 0.0 for _, v in curve), curve  # nobody bought again within 30 days


def test_curve_eligibility_rule():
    assert health.curve_min_eligible(4) == 4  # a small cohort: all of it
    assert health.curve_min_eligible(40) == 30
    assert health.curve_min_eligible(100) == 50  # half the cohort
