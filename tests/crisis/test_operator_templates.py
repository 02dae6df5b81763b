"""An operator's own apology template (``crisis.template_dir``) written without
``taken_down`` / ``coupon_placed`` / ``spoken`` is named at the opening (run log, alert,
``incident show``) with the claim and the fix, and never makes its claim before it is true:
that text comes from the shipped template; once the claim holds, the operator's is used."""
from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from tasks.crisis.compensate import campaign_name, plan_compensation, release_core, send_apologies
from tests.crisis.conftest import NOW, add_customers, add_orders, open_incident, shop
from userops.db import read_frame

# the apology template as it shipped before taken_down / coupon_placed / spoken existed: what an
# operator who copied it then still has in crisis.template_dir ("【本店】" marks their text)
OLD_APOLOGY_ZH = (
    "【本店】{{ name }}，您好。您在{{ order_date }}购买的{{ product }}出了问题，给您添麻烦了，真的很抱歉。我们已暂停销售并在逐批核查原因。"
    "{% if refund %}如需退款，直接回复本消息即可全额退款，不用寄回商品。{% endif %}"
    "{% if coupon %}另外为您准备了{{ coupon }}元致歉券，已放入您的账户。{% endif %}"
    "{% if call %}您的专属客服会在24小时内给您打电话，听听您的意见。{% endif %}{% if brand %}——{{ brand }}{% endif %}"
)


def _touches(engine, iid):
    return read_frame(engine, "SELECT touch_key, customer_id, channel, status, reason, body FROM touches WHERE campaign = :c "
                              "ORDER BY touch_key", {"c": campaign_name(iid)})


@pytest.fixture
def old_template(tmp_path, monkeypatch):
    from userops.settings import reset_settings

    d = tmp_path / "my-templates"
    d.mkdir()
    (d / "apology.zh-CN.txt.j2").write_text(OLD_APOLOGY_ZH, encoding="utf-8")
    monkeypatch.setenv("USEROPS_CRISIS__TEMPLATE_DIR", str(d))
    monkeypatch.delenv("USEROPS_LANGUAGE", raising=False)
    reset_settings()
    yield d
    reset_settings()


def test_unguarded_override_is_named_with_its_claims_and_the_fix(old_template, tmp_path, monkeypatch):
    from tasks.crisis.templates import BUILTIN_DIR, problem_lines, template_problems
    from userops.settings import reset_settings

    problems = template_problems()
    assert [(p["lang"], p["var"]) for p in problems] == [("zh-CN", "taken_down"), ("zh-CN", "coupon_placed"), ("zh-CN", "spoken")]
    assert {p["path"] for p in problems} == {str(old_template / "apology.zh-CN.txt.j2")}
    zh, en = problem_lines(problems, "zh-CN"), problem_lines(problems, "en")
    assert "我们已暂停销售" in zh[0] and "{% if taken_down %}" in zh[0] and str(old_template) in zh[0]
    assert "已放入您的账户" in zh[1] and "coupon_placed" in zh[1] and "直接回复本消息" in zh[2]
    assert "we have stopped selling it" in en[0] and "{% if spoken %}" in en[2]
    # the shipped template as an override, or one that never mentions a coupon or a refund: nothing to say
    (old_template / "apology.zh-CN.txt.j2").write_text((BUILTIN_DIR / "apology.zh-CN.txt.j2").read_text(encoding="utf-8"), encoding="utf-8")
    assert template_problems() == []
    (old_template / "apology.zh-CN.txt.j2").write_text(
        "{{ name }}，您好。{% if taken_down %}已停售。{% else %}正在下架。{% endif %}", encoding="utf-8")
    assert template_problems() == []
    monkeypatch.delenv("USEROPS_CRISIS__TEMPLATE_DIR")
    reset_settings()
    assert template_problems() == []


def test_old_override_never_claims_what_is_not_true_yet(sqlite_warehouse, old_template, pinned_now, monkeypatch):
    from tasks.crisis.control import confirm_manual_takedown
    from userops.settings import reset_settings

    for k in ("USEROPS_SMS_WEBHOOK_URL", "USEROPS_PUSH_WEBHOOK_URL", "USEROPS_SMTP_URL"):
        monkeypatch.delenv(k, raising=False)  # no provider: the apologies wait, the calls do not
    reset_settings()
    e = sqlite_warehouse
    shop(e, {"C1": "core", "C2": "ordinary"})  # a core customer: on the call list
    iid = open_incident(e)["incident_id"]
    plan_compensation(iid, e, now=NOW)  # Control not confirmed yet: not "已暂停销售"
    apologies = _touches(e, iid).query("channel != 'staff'")
    assert not apologies["body"].str.contains("已暂停销售").any(), apologies["body"].tolist()
    assert apologies["body"].str.contains("正在下架").all() and not apologies["body"].str.contains("【本店】").any()
    release_core(iid, "lead-li", engine=e)
    send_apologies(iid, e)  # the call is listed; its apology waits for a provider: no coupon yet
    calls = _touches(e, iid).query("channel == 'staff' and status != 'awaiting_review'")
    assert len(calls) == 1 and not calls["body"].str.contains("已放入您的账户|直接回复本消息|已暂停销售").any(), calls["body"].tolist()
    fell_back = read_frame(e, "SELECT detail FROM audit_log WHERE action = 'compensation.template_fallback'")
    assert len(fell_back) == 2  # the apologies, the call scripts

    # once it holds, the operator's own text is used as written: a new buyer after the take-down
    confirm_manual_takedown(iid, "ops-wang", engine=e)
    with e.begin() as conn:
        add_customers(conn, ["C3"], names=["王芳"])
        add_orders(conn, [("O-C3", "C3", NOW - timedelta(days=1), "paid", "SKU-BAD", 1, 5.0, "水杯")])
    plan_compensation(iid, e, now=NOW + timedelta(hours=1))
    body = _touches(e, iid).set_index("touch_key").loc[f"{campaign_name(iid)}|C3", "body"]
    assert body.startswith("【本店】王芳") and "我们已暂停销售" in body and "已放入您的账户" in body
    assert len(read_frame(e, "SELECT 1 FROM audit_log WHERE action = 'compensation.template_fallback'")) == 2


def test_opening_alerts_about_the_template(sqlite_warehouse, old_template, pinned_now):
    """Told at the opening (once per incident): which template, which claim, and the fix."""
    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    open_incident(sqlite_warehouse)  # a join: no second alert
    alert = read_frame(sqlite_warehouse, "SELECT title, body FROM alert_outbox WHERE kind = 'crisis_task'")
    assert len(alert) == 1 and iid in alert["title"].iloc[0] and "自定义致歉模板" in alert["title"].iloc[0]
    body = alert["body"].iloc[0]
    assert "apology.zh-CN.txt.j2" in body and all(v in body for v in ("taken_down", "coupon_placed", "spoken"))


def test_incident_show_names_the_template_to_fix(warehouse, old_template, pinned_now):
    from userops.cli import app

    shop(warehouse, {"C1": "ordinary"})
    iid = open_incident(warehouse)["incident_id"]
    out = CliRunner().invoke(app, ["incident", "show", iid]).output
    assert "## 自定义模板" in out and "apology.zh-CN.txt.j2" in out and "{% if coupon and coupon_placed %}" in out
