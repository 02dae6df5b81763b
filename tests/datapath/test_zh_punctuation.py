"""zh-CN text built by code, outside the catalogues, is typeset like the catalogues' texts
(test_messages.test_chinese_texts_use_full_width_punctuation): no half-width , : ; ( ) next
to a Chinese character, lists joined with ``list.sep``; the en text keeps ASCII punctuation.
Rendered: every quarantine rule's reason, every kind of churn reason, the crisis report and
the command line's label/value lines."""
from __future__ import annotations

import json
import re
from datetime import datetime
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.datapath.test_messages import _HALF_BESIDE_HAN, _NOT_PROSE
from userops.settings import PROJECT_ROOT

runner = CliRunner()
_FULL_WIDTH = re.compile("[，：；（）！？、。]")


def _half_width_beside_chinese(text: str) -> list[str]:
    return _HALF_BESIDE_HAN.findall(_NOT_PROSE.sub("\x00", text))


def assert_zh_typeset(text: str) -> None:
    assert not _half_width_beside_chinese(text), (_half_width_beside_chinese(text), text)
    assert ", " not in text or not re.search("[\u3400-\u9fff]", text), text  # a list in a zh line: list.sep


def assert_en_ascii(text: str) -> None:
    assert not _FULL_WIDTH.findall(text), text


@pytest.fixture
def lang_settings(monkeypatch, tmp_path):
    """Settings of one language, nothing else configured."""
    from userops.settings import reset_settings

    (tmp_path / "none.yaml").write_text("{}\n")
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))

    def use(lang: str) -> None:
        monkeypatch.setenv("USEROPS_LANGUAGE", lang)
        reset_settings()

    yield use
    reset_settings()


# ----------------------------------------------------------------------------- quarantine
def _quarantine_reasons(lang: str) -> dict[str, str]:
    from tasks.validate import _parse_reason, _ref_reason

    reasons = {}
    for path in sorted((PROJECT_ROOT / "expectations").glob("*.json")):
        for e in json.loads(path.read_text(encoding="utf-8"))["expectations"]:
            meta = e.get("meta") or {}
            if "rule" in meta:
                reasons[f"{path.stem}.{meta['rule']}"] = meta[lang]
    for col in ("registered_at", "paid_at", "amount", "marketing_consent"):
        reasons[f"{col}_unparseable"] = _parse_reason(f"{col}_unparseable", lang)
    reasons["customer_unknown"] = _ref_reason("customer_id", lang)
    reasons["order_unknown"] = _ref_reason("order_id", lang)
    return reasons


def test_every_quarantine_reason_is_typeset():
    zh, en = _quarantine_reasons("zh-CN"), _quarantine_reasons("en")
    assert len(zh) > 40 and zh.keys() == en.keys()
    bad = {k: v for k, v in zh.items() if _half_width_beside_chinese(v) or ", " in v}
    assert not bad, bad
    assert zh["customer_unknown"] == "客户不存在（CRM 中没有该客户）"
    assert en["customer_unknown"] == "the customer is unknown (not in the CRM)"
    for v in en.values():
        assert_en_ascii(v)


def test_a_quarantined_unknown_customer_is_given_the_typeset_reason():
    """As validation stores it (the reason column of the quarantine)."""
    from tasks.validate import load_suites, validate_frame

    raw = pd.DataFrame({"order_id": ["O1"], "customer_id": ["C-NOPE"], "paid_at": ["2025-06-01 12:00:00"],
                        "amount": ["10.00"], "status": ["paid"]})
    out = validate_frame("orders", raw, load_suites(), known_refs={"customer_id": set()}, language="zh-CN",
                         now=datetime(2026, 1, 1))
    assert list(out.bad["reason"]) == ["客户不存在（CRM 中没有该客户）"]


# ----------------------------------------------------------------------------- churn reasons
def _every_reason_kind() -> pd.DataFrame:
    from models.explain import NO_ORDERS, NUMBER_COLUMNS, REASON_CODES

    rows = []
    for code in REASON_CODES:
        for sign in (1, -1):
            rows.append({"reason_1": code, "reason_1_sign": sign})
    rows += [{"reason_1": NO_ORDERS, "reason_1_sign": 1}] * 2
    df = pd.DataFrame(rows)
    numbers = {"recency_days": 75, "usual_gap_days": 20, "n_orders": 6, "window_orders": 1, "prev_window_orders": 12,
               "window_days": 365, "monetary_mean": 1234.5, "tenure_days": 400, "returned_pct": 67, "days_since_registration": 12}
    assert set(numbers) == set(NUMBER_COLUMNS)
    for col, v in numbers.items():
        df[col] = float(v)
    df.loc[len(df) - 1, "days_since_registration"] = np.nan  # no order and no registration day known
    # a second and third reason for the first row: the reasons joined into one line
    df["reason_2"], df["reason_2_sign"] = None, 0
    df["reason_3"], df["reason_3_sign"] = None, 0
    df.loc[0, ["reason_2", "reason_2_sign", "reason_3", "reason_3_sign"]] = ["spend", 1, "frequency", 1]
    return df


def test_every_churn_reason_kind_is_typeset():
    from models.explain import render_reasons

    frame = _every_reason_kind()
    zh = render_reasons(frame, lang="zh-CN")
    en = render_reasons(frame, lang="en")
    assert zh.notna().all() and en.notna().all() and len(set(zh)) > 10  # every kind rendered
    for text in zh:
        assert_zh_typeset(text)
    for text in en:
        assert_en_ascii(text)
    assert "客单价偏低（1,234.50）" in zh[0] and "；" in zh[0]
    assert "low average order value (1,234.50)" in en[0] and "; " in en[0]


# ----------------------------------------------------------------------------- crisis report
def _report() -> dict:
    at = datetime(2026, 11, 21, 2, 0)
    step = {"deadline_at": at, "status": "done", "done_at": at, "done_by": "ops-wang", "met_deadline": True, "reminders_sent": []}
    return {
        "incident_id": "INC-1", "skus": ["SKU-A", "SKU-B"], "reason": "杯盖漏水（批次 B12）", "severity": "high",
        "source": "spike", "status": "closed", "opened_at": at, "opened_by": "值班经理", "closed_at": datetime(2026, 11, 28, 2, 0),
        "steps": [{**step, "step": "control"},
                  {**step, "step": "clarify", "done_at": datetime(2026, 11, 21, 7, 0), "met_deadline": False,
                   "reminders_sent": ["50", "80", "escalated"]},
                  {**step, "step": "compensate", "status": "waiting", "done_at": None, "met_deadline": None}],
        "compensated": {"core": {"customers": 2, "compensated": 1, "call_list": 2, "coupon_cost": 50.0, "refund_exposure": 11.0},
                        "potential": {"customers": 3, "compensated": 3, "call_list": 0, "coupon_cost": 90.0, "refund_exposure": 0.0}},
        "cost": {"coupons": 140.0, "refund_exposure": 11.0},
        "complaint_rate": {"before": {"complaints": 9, "paid_orders": 25, "rate": 0.36, "sku_complaints": 8},
                           "after": {"complaints": 1, "paid_orders": 30, "rate": 0.0333, "sku_complaints": 1}},
        "call_list": ["C1", "C2"],
    }


def test_the_crisis_report_is_typeset():
    from tasks.crisis.report import report_markdown

    zh = report_markdown(_report(), "zh-CN")
    assert_zh_typeset(zh)
    for line in ("- SKU：SKU-A，SKU-B", "- 原因：杯盖漏水（批次 B12）", "- 级别：高 · 来源：投诉激增自动开启 · 状态：已关闭",
                 "（值班经理） · 关闭：", "否（+", "50%，80%，已升级", "成本合计：券 ¥140.00 + 退款敞口 ¥11.00",
                 "## 每单投诉（投诉 / 已支付订单）", "## 核心客户电话回访清单（客户编号）", "C1，C2"):
        assert line in zh, (line, zh)
    en = report_markdown(_report(), "en")
    assert_en_ascii(en.replace("杯盖漏水（批次 B12）", "").replace("值班经理", ""))
    for line in ("- SKU: SKU-A, SKU-B", "- Severity: high · Source: complaint spike · Status: closed",
                 " (值班经理) · Closed: ", "no (+", "50%, 80%, escalated", "Total cost: coupons ¥140.00 + refund exposure ¥11.00", "C1, C2"):
        assert line in en, (line, en)


# ----------------------------------------------------------------------------- command line
def _cli(*args: str) -> str:
    from userops.cli import app

    res = runner.invoke(app, list(args))
    return res.output


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_campaign_plan_lines_are_typeset(lang, lang_settings, monkeypatch):
    """``campaign plan``: the already-planned and excluded counts ('已退订：0'), the variant and
    channel counts, and an invalid definition's file: field: reason."""
    import tasks.campaigns.engine as engine
    import userops.cli.campaign as cli
    from tasks.campaigns.definitions import CampaignDefinitionError

    lang_settings(lang)
    stats = {"audience": 400, "already_planned": 3, "excluded": {"unsubscribed": 0, "no_consent": 5, "global_cap": 0, "budget": 0},
             "eligible": 395, "control": 40, "treatment": 355, "planned": 355, "deferred_quiet_hours": 0, "gift_cost_planned": 0.0,
             "per_variant": {"A": 200, "B": 155}, "per_channel": {"sms": 300, "push": 55}}
    monkeypatch.setattr(cli, "_load", lambda name=None: SimpleNamespace(name="wake", title={"zh-CN": "唤醒", "en": "Wake"}))
    monkeypatch.setattr(engine, "plan_campaign", lambda *a, **k: SimpleNamespace(period="2026-11-20", stats=stats, sample=[]))
    out = _cli("campaign", "plan", "wake", "--as-of", "2026-11-20")
    if lang == "zh-CN":
        assert "已退订：0" in out and "全局频次上限：0" in out and "A 200，B 155" in out, out
        for line in out.splitlines():
            assert_zh_typeset(line)
    else:
        assert "unsubscribed: 0" in out and "A 200, B 155" in out, out
        assert_en_ascii(out)

    def invalid(*a, **k):
        raise CampaignDefinitionError([("broken.yaml", "channel", "不是可用的渠道" if lang == "zh-CN" else "not a channel"),
                                       ("other.yaml", "", "缺少 name" if lang == "zh-CN" else "no name")])

    monkeypatch.undo()
    lang_settings(lang)
    monkeypatch.setattr("tasks.campaigns.definitions.load_campaigns", invalid)
    out = _cli("campaign", "validate")
    if lang == "zh-CN":
        assert "broken.yaml：channel：不是可用的渠道" in out and "other.yaml：缺少 name" in out, out
        for line in out.splitlines():
            assert_zh_typeset(line)
    else:
        assert "broken.yaml: channel: not a channel" in out and "other.yaml: no name" in out, out
        assert_en_ascii(out)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_alert_deliver_verdicts_are_typeset(lang, lang_settings, monkeypatch):
    import tasks.alerts.outbox as outbox
    import userops.db as db
    from userops.i18n import t

    lang_settings(lang)
    monkeypatch.setattr(db, "migrate", lambda *a, **k: None)
    verdicts = {"slack": t("alert.deliver.ok"), "dingtalk": t("alert.deliver.not_configured")}
    monkeypatch.setattr(outbox, "deliver_pending", lambda *a, **k: {"sent": 2, "posts": 1, "merged": 0, "deferred": 0, "failed": 0,
                                                                    "expired": 0, "channels": verdicts})
    monkeypatch.setattr(outbox, "pending_count", lambda *a, **k: 0)
    out = _cli("alert", "deliver")
    if lang == "zh-CN":
        assert "  slack：成功" in out and "  dingtalk：未配置" in out, out
        for line in out.splitlines():
            assert_zh_typeset(line)
    else:
        assert "  slack: ok" in out and "  dingtalk: not configured" in out, out
        assert_en_ascii(out)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_quarantine_show_fields_are_typeset(lang, lang_settings, monkeypatch):
    import tasks.quarantine as quarantine
    from tasks.validate import _ref_reason

    lang_settings(lang)
    rec = {"id": 7, "source_table": "orders", "source_id": "O1", "rule": "customer_unknown", "reason": _ref_reason("customer_id", lang),
           "run_id": "nightly-2026-11-20", "seen_at": pd.Timestamp("2026-11-20 02:00"), "resolved_at": None, "resolved_run_id": None,
           "record": {"order_id": "O1", "customer_id": "C-NOPE", "客户备注": "加急"}}
    monkeypatch.setattr(quarantine, "quarantine_record", lambda record_id: rec)
    out = _cli("quarantine", "show", "7")
    if lang == "zh-CN":
        assert re.search(r"原因：客户不存在（CRM 中没有该客户）", out) and re.search(r"原始记录：\n", out), out
        assert "客户备注：加急" in out and "customer_id：C-NOPE" in out, out
        # stored in UTC, shown in shop time (Asia/Shanghai: +8 h), and the label says so
        assert "发现时间（店铺时间）：2026-11-20 10:00" in out and "02:00" not in out, out
        for line in out.splitlines():
            assert_zh_typeset(line)
    else:
        assert "reason: the customer is unknown (not in the CRM)" in out and "record:\n" in out, out
        assert "seen at (shop time): 2026-11-20 10:00" in out and "seen_at" not in out, out
        assert_en_ascii(out)


def test_lists_in_zh_cli_errors_use_the_list_separator(lang_settings):
    lang_settings("zh-CN")
    out = _cli("import", "nope", "x.csv")
    assert "customers，orders" in out, out
    assert_zh_typeset(out)


# ----------------------------------------------------------------------------- customer texts
_HALF_WIDTH_ANY = re.compile("[\u3400-\u9fff][,:;()!?]|[,:;()!?][\u3400-\u9fff]")


@pytest.mark.parametrize("kind,values", [
    ("ack", {"name": "王芳", "date": "11月20日", "brand": "小店"}),
    ("apology", {"name": "王芳", "order_date": "11月18日", "product": "水杯（SKU-BAD）", "refund": True, "coupon": 20, "call": True,
                 "brand": "小店"}),
    ("statement", {"brand": "小店", "product": "水杯（SKU-BAD）", "date": "2026年11月20日", "complaints": 9, "reason": "杯盖漏水",
                   "taken_down": True, "takedown_time": "11月20日 10:00", "lookback_days": 30, "customers": 12,
                   "compensate_due": "11月21日 10:00", "refund": True, "coupons": "20元", "call": True, "contact": "400-000-0000"}),
])
def test_the_crisis_customer_texts_are_typeset(kind, values, lang_settings):
    """The built-in statement, apology and feedback acknowledgement (the customer reads them)."""
    from tasks.crisis.templates import render

    lang_settings("zh-CN")
    zh = render(kind, "zh-CN", **values)
    assert not _HALF_WIDTH_ANY.findall(_NOT_PROSE.sub("\x00", zh)), (_HALF_WIDTH_ANY.findall(zh), zh)


def test_the_shipped_campaign_texts_are_typeset():
    """Every zh-CN text of the campaigns shipped in campaigns/ (titles, descriptions, subjects,
    message bodies: the customer reads most of them)."""
    import yaml

    def zh_texts(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "zh-CN" and isinstance(v, str):
                    yield v
                else:
                    yield from zh_texts(v)
        elif isinstance(node, list):
            for v in node:
                yield from zh_texts(v)

    texts = [t for path in sorted((PROJECT_ROOT / "campaigns").glob("*.yaml"))
             for t in zh_texts(yaml.safe_load(path.read_text(encoding="utf-8")))]
    assert len(texts) > 15
    bad = [t for t in texts if _HALF_WIDTH_ANY.findall(re.sub(r"\{\{.*?\}\}|\{%.*?%\}", "\x00", t))]
    assert not bad, bad
