"""``userops tags show`` explains each tag with its numbers; ``userops tags summary``."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from typer.testing import CliRunner

from tasks import tags
from tests.tags.factory import AS_OF, Shop, local
from userops.cli import app
from userops.settings import reset_settings

runner = CliRunner()


def shop(warehouse):
    s = Shop()
    s.customer("SIL")
    s.order("SIL", local(AS_OF, -200), amount=300, discount=40, channel="web", category="makeup", qty=2)
    s.order("SIL", local(AS_OF, -97), amount=120, channel="web", category="makeup")
    s.order("SIL", local(AS_OF, -50), status="refunded")
    s.customer("REF")
    s.order("REF", local(AS_OF, -5), status="refunded")
    for i in range(6):
        s.customer(f"X{i}")
        s.order(f"X{i}", local(AS_OF, -10 * i), amount=100 + 50 * i)
    s.load(warehouse)
    tags.refresh(AS_OF, "cli", engine=warehouse)


def run(*args, lang="en", monkeypatch=None):
    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    res = runner.invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_show_explains_with_numbers(warehouse, monkeypatch):
    shop(warehouse)
    out = run("tags", "show", "SIL", monkeypatch=monkeypatch)
    assert f"Tags of customer SIL as of {AS_OF}" in out
    assert "silent: last paid order 97 days ago, threshold 60 (churned after 180)" in out
    assert "2 paid orders, ¥420.00 in total" in out
    assert "price-sensitive: yes — 1 of 2 paid orders at >= 10% off (50%" in out
    assert "favourite category: makeup — 3 of 3 items" in out
    assert "preferred channel: web — 2 of 2 paid orders" in out
    assert "predicted at risk: no" in out
    assert "13800138000" not in out and "@example.com" not in out and "张" not in out
    out = run("tags", "show", "REF", monkeypatch=monkeypatch)
    assert "prospect: no paid order (1 refunded/cancelled orders do not count)" in out
    zh = run("tags", "show", "SIL", lang="zh-CN", monkeypatch=monkeypatch)
    assert "沉默：最近一笔已付款订单在 97 天前，阈值 60 天" in zh
    assert "13800138000" not in zh


def test_show_as_of_a_past_day(warehouse, monkeypatch):
    shop(warehouse)
    out = run("tags", "show", "SIL", "--as-of", str(AS_OF - timedelta(days=40)), monkeypatch=monkeypatch)
    assert "active: last paid order 57 days ago, threshold 60" in out
    # that day's churn scores are not kept: the overlay is unknown, not today's
    assert "predicted at risk: — (churn scores are kept for the latest scoring day only" in out
    res = runner.invoke(app, ["tags", "show", "NOBODY"])  # a script can tell: exit 1
    assert res.exit_code == 1 and "No customer NOBODY" in res.output


def test_summary(warehouse, monkeypatch):
    shop(warehouse)
    out = run("tags", "summary", monkeypatch=monkeypatch)
    assert f"Tag distribution as of {AS_OF}: 8 members, 7 buyers" in out
    assert "silent" in out and "prospect" in out
    zh = run("tags", "summary", "--as-of", str(AS_OF), lang="zh-CN", monkeypatch=monkeypatch)
    assert "生命周期阶段" in zh and "沉默" in zh


def test_past_day_at_risk_only_from_that_days_scores(warehouse, monkeypatch):
    """A past day's at-risk overlay comes from that day's churn scores; once they are gone
    (churn_scores keeps the latest scoring night) it is unknown, never today's."""
    import datetime as dt

    shop(warehouse)
    past = AS_OF - timedelta(days=1)
    with warehouse.begin() as conn:
        conn.exec_driver_sql("INSERT INTO model_versions (version, trained_at, status) VALUES ('m1', '2026-11-01 00:00:00', 'champion')")
        conn.execute(
            sa.text("INSERT INTO churn_scores (customer_id, model_version, probability, risk_band, scored_at, as_of) "
                         "VALUES ('X1', 'm1', 0.9, 'high', :t, :d)"),
            {"t": dt.datetime(2026, 11, 20, 20), "d": AS_OF},
        )
    line = lambda out: next(x for x in out.splitlines() if "predicted at risk" in x)  # noqa: E731
    out = run("tags", "summary", "--as-of", str(past), monkeypatch=monkeypatch)
    assert line(out).split()[-1] == "—" and "this day's are gone" in out
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE churn_scores SET as_of = :d"), {"d": past})
    out = run("tags", "summary", "--as-of", str(past), monkeypatch=monkeypatch)
    assert line(out).split()[-2:] == ["1", "12.5%"]  # X1 (active that day) of 8 members
    assert "predicted at risk: yes" in run("tags", "show", "X1", "--as-of", str(past), monkeypatch=monkeypatch)


def test_a_day_still_to_come_is_refused_with_the_shops_today(warehouse, monkeypatch):
    """Tags as of a future day would show everyone drifting towards churned: refused (exit 2),
    naming today in the shop's time; today itself is fine."""
    from userops.clock import shop_today

    shop(warehouse)
    today = shop_today()
    for lang, text in (("en", f"is after today ({today}, shop time)"), ("zh-CN", f"在今天（店铺时间 {today}）之后")):
        monkeypatch.setenv("USEROPS_LANGUAGE", lang)
        reset_settings()
        for cmd in (["tags", "show", "SIL"], ["tags", "summary"]):
            res = runner.invoke(app, cmd + ["--as-of", str(today + timedelta(days=1))])
            flat = "".join(res.output.replace("│", " ").split())  # the error box wraps lines
            assert res.exit_code == 2 and "".join(text.split()) in flat and "Traceback" not in res.output, res.output
    assert "Tags of customer SIL" in run("tags", "show", "SIL", "--as-of", str(today), monkeypatch=monkeypatch)


def test_summary_columns_line_up_in_chinese(warehouse, monkeypatch):
    """The counts start at the same terminal column whatever the label: labels are padded by
    display width (a Chinese character takes two columns), not by character count."""
    from rich.cells import cell_len as display_width  # what userops.i18n.pad counts

    shop(warehouse)
    zh = run("tags", "summary", "--as-of", str(AS_OF), lang="zh-CN", monkeypatch=monkeypatch)
    rows = [x for x in zh.splitlines() if x.startswith("  ") and x.rstrip().endswith("%")]
    assert any("重要价值" in x for x in rows) and any(x.isascii() for x in rows), zh
    # each row is "  label count  pp.p%": the count ends at one display column in every row
    ends = {display_width(x.rstrip()[: -len("  12.5%")]) for x in rows}
    assert len(ends) == 1, zh
    assert display_width("重要价值（冠军）") == 16 and display_width("at risk") == 7
