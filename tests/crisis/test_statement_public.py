"""The approved crisis statement is published exactly as a human approved it (the brand's
service contact included), while customer numbers in every other alert stay masked."""
from __future__ import annotations

from datetime import timedelta

from tasks.alerts import enqueue_alert
from tasks.crisis.clarify import approve_statement, draft_statement
from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame


def _use(monkeypatch, **env):
    from userops.settings import reset_settings

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()


def _published(engine) -> str:
    pub = read_frame(engine, "SELECT body FROM alert_outbox WHERE kind = 'crisis_statement'")
    assert len(pub) >= 1
    return pub["body"].iloc[0]


def test_hotline_in_the_published_statement_is_not_masked(warehouse, monkeypatch):
    _use(monkeypatch, USEROPS_CRISIS__SERVICE_CONTACT="客服热线 4008201234")
    shop(warehouse, {"C1": "core"})
    iid = open_incident(warehouse)["incident_id"]
    draft = draft_statement(iid, "zh-CN", engine=warehouse)
    assert "请联系客服热线 4008201234。" in draft
    assert approve_statement(iid, None, "pr-zhao", engine=warehouse, now=NOW + timedelta(hours=3))
    body = _published(warehouse)
    assert body.strip() == draft.strip() and "请联系客服热线 4008201234。" in body and "****" not in body


def test_approved_text_goes_out_exactly_as_approved(warehouse, monkeypatch):
    _use(monkeypatch, USEROPS_CRISIS__SERVICE_CONTACT="客服电话 (021) 6552 9988")
    shop(warehouse, {"C1": "core"})
    iid = open_incident(warehouse)["incident_id"]
    draft = draft_statement(iid, "zh-CN", engine=warehouse)
    assert "请联系客服电话 (021) 6552 9988。" in draft
    # the human added another public number (a line of the brand's) and an address
    final = draft.strip() + "\n售后专线 +86 21 6552 9900，邮箱 service@brand.example。"
    assert approve_statement(iid, final, "pr-zhao", engine=warehouse, now=NOW + timedelta(hours=3))
    assert _published(warehouse) == final + "\n"


def test_configured_contact_kept_customer_numbers_masked_in_other_alerts(warehouse, monkeypatch):
    _use(monkeypatch, USEROPS_CRISIS__SERVICE_CONTACT="客服电话 021-6552 9988")
    body = "客户 138-1234-5678（li.lei@example.com）来电，已请其拨打客服电话 021-6552 9988；另一位 (010) 6552 1234"
    assert enqueue_alert("crisis_task", "事件待办", body, subject="x", day=NOW.date()) >= 1
    got = read_frame(warehouse, "SELECT title, body FROM alert_outbox WHERE kind = 'crisis_task'")["body"].iloc[0]
    assert "021-6552 9988" in got
    for secret in ("138-1234-5678", "li.lei@", "6552 1234"):
        assert secret not in got, got
    assert "138****78" in got and "(010) ****34" in got


def test_no_contact_configured_every_number_masked_outside_the_statement(warehouse, monkeypatch):
    _use(monkeypatch, USEROPS_CRISIS__SERVICE_CONTACT="")
    enqueue_alert("health_breach", "沉默占比", "联系 021-6552 9988 / +86 138 1234 5678", subject="y", day=NOW.date())
    got = read_frame(warehouse, "SELECT body FROM alert_outbox WHERE kind = 'health_breach'")["body"].iloc[0]
    assert got == "联系 021-****88 / +86 138****78"
