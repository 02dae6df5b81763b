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
    assert actor_word("pr-zhao", "zh-CN") == "pr-zhao" and actor_word(None, "zh-CN") == "-"  # names stay as stored


def test_command_line_and_automation_actors_are_shown_in_words(sqlite_warehouse, pinned_now):
    """``cli:<user>`` (opened or done from the command line) and ``automation:<name>`` (a run
    an automation started: the complaint spike) are shown in the operator's words around the
    name, in the report and `incident show`'s record; the stored actors stay as they are."""
    from typer.testing import CliRunner

    from tasks.crisis.incidents import get_incident, set_step
    from tasks.crisis.report import actor_word, build_report, report_markdown
    from userops.cli import app

    assert actor_word("cli:alice", "zh-CN") == "命令行（alice）"
    assert actor_word("cli:alice", "en") == "command line (alice)"
    assert actor_word("automation:userops: open crisis on spike", "zh-CN") == "自动化（userops: open crisis on spike）"
    assert actor_word("automation:userops: open crisis on spike", "en") == "automation (userops: open crisis on spike)"
    assert actor_word("userops:auto-close", "zh-CN") == "userops:auto-close"  # not one of the prefixes: as stored
    assert actor_word("cli:", "en") == "cli:"  # no name to show

    shop(sqlite_warehouse, {"C1": "ordinary"})
    iid = open_incident(sqlite_warehouse)["incident_id"]
    with sqlite_warehouse.begin() as conn:
        conn.exec_driver_sql("UPDATE incidents SET opened_by = 'automation:crisis-on-spike' WHERE incident_id = ?", (iid,))
        set_step(conn, iid, "control", "done", "cli:alice", now=NOW + timedelta(minutes=30))
    rep = build_report(iid, sqlite_warehouse, now=NOW + timedelta(hours=1))
    zh = report_markdown(rep, "zh-CN")
    assert "（自动化（crisis-on-spike））" in zh and "| 命令行（alice） |" in zh, zh
    assert "cli:" not in zh and "automation:" not in zh, zh
    en = report_markdown(rep, "en")
    assert "(automation (crisis-on-spike))" in en and "| command line (alice) |" in en, en
    assert "cli:" not in en and "automation:" not in en, en

    out = CliRunner().invoke(app, ["incident", "show", iid]).output  # the shop's language: zh-CN
    assert "命令行（alice）" in out and "自动化（crisis-on-spike）" in out and "cli:alice" not in out, out
    # only the display changed: the stored actors are the codes
    assert get_incident(sqlite_warehouse, iid)["opened_by"] == "automation:crisis-on-spike"
    assert build_report(iid, sqlite_warehouse)["steps"][0]["done_by"] == "cli:alice"


def test_alert_delivery_failure_warning_is_catalogued(monkeypatch, caplog):
    import tasks.alerts.outbox as outbox
    from tasks.alerts.tasks import deliver_task

    def down():
        raise ConnectionError("down")

    monkeypatch.setattr(outbox, "deliver_pending", down)
    with caplog.at_level(logging.WARNING, logger="userops.alerts"):
        assert deliver_task.fn() == {"error": "ConnectionError"}
    assert "告警：发送失败（ConnectionError）" in caplog.text and "delivery failed" not in caplog.text
