"""Prefect-UI audit: the crisis run's waits, pause forms, artifact and report speak the shop's
language and name form fields by the titles the forms show (never ``approve``,
``takedown_confirmed``, ``exclude_customers``, ``unknown_ok``); the statement wait's log line
gives the Clarify deadline and how long the run waits for the approval, not only the latter."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from tests.crisis.conftest import NOW, open_incident, shop

RAW_FIELDS = ("approve", "takedown_confirmed", "exclude_customers", "unknown_ok", "operator channels")


class _Logger:
    def __init__(self):
        self.lines = []

    def info(self, msg, *args):
        self.lines.append(msg % args if args else msg)

    warning = info


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_pause_forms_name_fields_by_their_titles(lang, monkeypatch):
    from flows.crisis import review_form_text, statement_form_text, unknown_sku_text
    from userops.i18n import t
    from userops.settings import reset_settings

    monkeypatch.delenv("USEROPS_CRISIS__STATEMENT_CHANNELS", raising=False)
    reset_settings()
    statement = statement_form_text("INC-1", NOW, manual_takedown=True, lang=lang)
    review = review_form_text("INC-1", 2, "- sample", NOW, lang=lang)
    unknown = unknown_sku_text(["SKU-X"], lang=lang)
    for raw in RAW_FIELDS:
        for text in (statement, review, unknown):
            assert raw not in text.split("**")[-1].replace("Approve and", ""), (raw, text)
    assert t("form.statement.approve.title", lang) in statement
    assert t("form.statement.takedown_confirmed.title", lang) in statement
    assert t("crisis.statement.channels.default", lang) in statement
    assert t("form.review.approve.title", lang) in review and t("form.review.exclude_customers.title", lang) in review
    assert t("param.crisis.unknown_ok.title", lang) in unknown and "SKU-X" in unknown
    if lang == "zh-CN":
        assert "勾选「批准发布」后提交即发布到告警渠道" in statement and "请勾选「已确认下架」" in statement
        assert "勾选「批准发送」发送；「排除的客户」中的客户" in review
        assert "请在运行表单中勾选「允许未知 SKU」" in unknown
    monkeypatch.setenv("USEROPS_CRISIS__STATEMENT_CHANNELS", '["slack","dingtalk"]')
    reset_settings()
    assert "slack" + t("list.sep", lang) + "dingtalk" in statement_form_text("INC-1", NOW, False, lang)
    reset_settings()


def test_statement_wait_line_gives_the_clarify_deadline_and_the_wait(sqlite_warehouse, pinned_now, monkeypatch):
    import flows.crisis as crisis
    from prefect.exceptions import FlowPauseTimeout
    from tasks.crisis.util import to_shop_str

    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    forms = []

    def pause(wait_for_input=None, **kw):
        forms.append(wait_for_input)
        raise FlowPauseTimeout("timed out")

    monkeypatch.setattr(crisis, "pause_flow_run", pause)
    log = _Logger()
    assert crisis._wait_for_statement(iid, None, log) is False
    line = log.lines[0]
    due, until = to_shop_str(NOW + timedelta(hours=4)), to_shop_str(NOW + timedelta(hours=20))
    assert due != until and due in line and until in line, line
    assert f"澄清事实截止 {due}；本次运行等待审批至 {until}（均为店铺时间）" in line
    assert "approve" not in line.replace("incident approve", "")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_wait_lines_and_artifact_description_are_catalogued(lang):
    import tasks.crisis.messages  # noqa: F401
    from userops.i18n import t

    review = t("crisis.wait.review", lang, incident_id="INC-1", n=3, due="11-21 06:00", until="11-21 14:00")
    assert "11-21 06:00" in review and "11-21 14:00" in review
    desc = t("crisis.artifact.description", lang, incident_id="INC-1")
    assert "INC-1" in desc and (lang == "en" or "checklist" not in desc)


def test_prefect_ui_operator_is_shown_in_the_shop_language(sqlite_warehouse, pinned_now):
    from tasks.crisis.report import build_report, report_markdown
    from tasks.crisis.runs import UI_OPERATOR, current_run

    assert current_run()["actor"] == "operator"  # outside a run
    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    with sqlite_warehouse.begin() as conn:
        conn.exec_driver_sql("UPDATE incidents SET opened_by = ? WHERE incident_id = ?", (UI_OPERATOR, iid))
    rep = build_report(iid, sqlite_warehouse, now=NOW + timedelta(hours=1))
    zh = report_markdown(rep, "zh-CN")
    assert "（运营人员（Prefect 界面））" in zh and "operator (Prefect UI)" not in zh
    assert "(operator (Prefect UI))" in report_markdown(rep, "en")


def test_a_bare_operator_is_shown_in_the_shop_language(sqlite_warehouse, pinned_now):
    """An action taken outside a flow run (the command line without a user name) is stored as
    ``operator``: the report says it in words, as it does the Prefect UI's operator."""
    from tasks.crisis.report import actor_word, build_report, report_markdown

    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    with sqlite_warehouse.begin() as conn:
        conn.exec_driver_sql("UPDATE incidents SET opened_by = 'operator' WHERE incident_id = ?", (iid,))
    rep = build_report(iid, sqlite_warehouse, now=NOW + timedelta(hours=1))
    zh = report_markdown(rep, "zh-CN")
    assert "（运营人员）" in zh and "operator" not in zh, zh
    assert "(operator)" in report_markdown(rep, "en")
    assert actor_word("cli:alice", "zh-CN") == "cli:alice" and actor_word(None, "zh-CN") == "-"  # names stay as stored


def test_alert_delivery_failure_warning_is_catalogued(monkeypatch, caplog):
    import tasks.alerts.outbox as outbox
    from tasks.alerts.tasks import deliver_task

    def down():
        raise ConnectionError("down")

    monkeypatch.setattr(outbox, "deliver_pending", down)
    with caplog.at_level(logging.WARNING, logger="userops.alerts"):
        assert deliver_task.fn() == {"error": "ConnectionError"}
    assert "告警：发送失败（ConnectionError）" in caplog.text and "delivery failed" not in caplog.text
