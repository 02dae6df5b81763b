"""Crisis texts for customers — apologies, call scripts, the public statement draft and the
24-hour feedback acknowledgements — are in the customers' language (``customer_language``,
zh-CN by default), not the operator's (``language``): with ``USEROPS_LANGUAGE=en`` an operator
reading the command line in English sent English apologies to the customers of a Chinese shop."""
from __future__ import annotations

from datetime import timedelta

import pytest

from tasks.crisis.clarify import draft_statement
from tasks.crisis.compensate import campaign_name, plan_compensation
from tasks.crisis.feedback import feedback_sla_check
from tests.crisis.conftest import NOW, add_customers, add_feedback, open_incident, shop
from userops.db import read_frame
from userops.settings import reset_settings

CASES = [  # (operator's language, customers' language or None = default) -> the customers' texts
    ("en", None, "zh-CN"),
    ("zh-CN", "en", "en"),
]


def _use(monkeypatch, operator: str, customers: str | None) -> None:
    monkeypatch.setenv("USEROPS_LANGUAGE", operator)
    if customers is None:
        monkeypatch.delenv("USEROPS_CUSTOMER_LANGUAGE", raising=False)
    else:
        monkeypatch.setenv("USEROPS_CUSTOMER_LANGUAGE", customers)
    reset_settings()


@pytest.mark.parametrize("operator,customers,expected", CASES)
def test_apologies_and_call_scripts_in_the_customers_language(sqlite_warehouse, monkeypatch, operator, customers, expected):
    _use(monkeypatch, operator, customers)
    shop(sqlite_warehouse, {"C1": "ordinary", "C2": "core"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    plan_compensation(iid, sqlite_warehouse, now=NOW)
    t = read_frame(sqlite_warehouse, "SELECT customer_id, channel, locale, subject, body FROM touches WHERE campaign = :c",
                   {"c": campaign_name(iid)})
    assert len(t) == 3 and set(t["locale"]) == {expected}, t  # two apologies, one call
    apology = t[(t["customer_id"] == "C1") & (t["channel"] == "sms")].iloc[0]
    if expected == "zh-CN":
        assert apology["body"].startswith("客户0，您好") and apology["subject"] == "致歉与补偿说明", apology["body"]
        assert "sorry" not in " ".join(t["body"])
    else:
        assert apology["body"].startswith("Dear 客户0,") and apology["subject"] == "Our apology, and what we will do"
        assert "您好" not in " ".join(t["body"])


@pytest.mark.parametrize("operator,customers,expected", CASES)
def test_the_statement_draft_is_in_the_customers_language(sqlite_warehouse, monkeypatch, operator, customers, expected):
    _use(monkeypatch, operator, customers)
    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    text = draft_statement(iid, engine=sqlite_warehouse, now=NOW)
    lang = read_frame(sqlite_warehouse, "SELECT statement_lang FROM incidents WHERE incident_id = :i", {"i": iid})
    assert lang["statement_lang"].iloc[0] == expected
    assert ("质量问题" in text) == (expected == "zh-CN") and ("quality problem" in text) == (expected == "en"), text


@pytest.mark.parametrize("operator,customers,expected", CASES)
def test_feedback_acknowledgements_in_the_customers_language(sqlite_warehouse, monkeypatch, operator, customers, expected):
    _use(monkeypatch, operator, customers)
    with sqlite_warehouse.begin() as conn:
        add_customers(conn, ["C1"], names=["王芳"])
        add_feedback(conn, "SKU-A", [NOW - timedelta(hours=30)], customer_id="C1")
    feedback_sla_check(sqlite_warehouse, NOW, send=False)
    t = read_frame(sqlite_warehouse, "SELECT locale, subject, body FROM touches WHERE campaign LIKE '%ack%'")
    assert len(t) == 1 and t["locale"].iloc[0] == expected, t
    if expected == "zh-CN":
        assert t["body"].iloc[0].startswith("王芳，您好") and t["subject"].iloc[0] == "我们收到了，正在努力"
    else:
        assert t["body"].iloc[0].startswith("Dear 王芳,") and t["subject"].iloc[0] == "We received it and are working on it"
