"""Second crisis audit: a take-down reminder queued before Control was confirmed is never
posted after it; ``approve --exclude`` never ignored silently; ``open --reason`` help says what
the Run form says; the opening alert's level and source in words; the statement's wording."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from tasks.alerts.channels import LogChannel
from tasks.crisis.compensate import plan_compensation, release_core, send_apologies
from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame

CUSTOMERS = {"C1": "ordinary", "C2": "core", "C5": "core"}


class _Recorder(LogChannel):
    def __init__(self, name="log"):
        super().__init__(name)
        self.posted = []

    def post(self, payload: dict) -> None:
        self.posted.append(payload)


def _outbox(engine, kind):
    return read_frame(engine, "SELECT id, status, title, last_error FROM alert_outbox WHERE kind = :k ORDER BY id", {"k": kind})


def test_confirmed_takedown_drops_the_queued_reminder(warehouse, pinned_now, monkeypatch):
    """Item 1: no hook, nobody delivered the "please take down" task alert; the operator confirms
    the take-down: the alert is ``obsolete`` (audited) and the next delivery does not post it."""
    from tasks.alerts.outbox import deliver_pending
    from tasks.crisis.control import confirm_manual_takedown, run_control
    from userops.settings import reset_settings

    monkeypatch.delenv("USEROPS_CRISIS__TAKEDOWN_URL", raising=False)
    reset_settings()
    shop(warehouse, CUSTOMERS)
    iid = open_incident(warehouse)["incident_id"]
    run_control(iid, engine=warehouse, now=NOW)
    task = _outbox(warehouse, "crisis_task")
    assert len(task) >= 1 and set(task["status"]) == {"pending"}, task

    assert confirm_manual_takedown(iid, "ops-wang", engine=warehouse, now=NOW)
    task = _outbox(warehouse, "crisis_task")
    assert set(task["status"]) == {"obsolete"}, task
    audit = read_frame(warehouse, "SELECT actor, detail FROM audit_log WHERE action = 'alert.obsolete' AND entity_id = :i", {"i": iid})
    assert audit["actor"].tolist() == ["ops-wang"]
    assert sorted(json.loads(audit["detail"].iloc[0])["alerts"]) == sorted(task["id"].tolist())

    ch = _Recorder()
    deliver_pending(warehouse, now=NOW, channels={name: ch for name in ("log", "slack", "dingtalk", "wecom")})
    assert not [p for p in ch.posted if iid in (p.get("title") or "") and "下架" in (p.get("title") or "")], ch.posted
    assert set(_outbox(warehouse, "crisis_task")["status"]) == {"obsolete"}


def _core_planned(engine):
    shop(engine, CUSTOMERS)
    iid = open_incident(engine)["incident_id"]
    plan_compensation(iid, engine, NOW)
    send_apologies(iid, engine, NOW)
    return iid


def test_exclude_with_nothing_waiting_is_not_ignored(warehouse, provider, pinned_now):
    """Item 2: ``--core --exclude`` when the core review is already done names the customers
    not excluded and fails; ``--exclude`` without ``--core`` is a usage error."""
    from userops.cli import app

    iid = _core_planned(warehouse)
    release_core(iid, "lead-li", engine=warehouse, now=NOW)
    runner = CliRunner()
    res = runner.invoke(app, ["incident", "approve", iid, "--core", "--exclude", "C5", "--by", "lead-li"])
    assert res.exit_code == 1, res.output
    assert "以下客户未被排除" in res.output and "C5" in res.output

    res = runner.invoke(app, ["incident", "approve", iid, "--exclude", "C5", "--by", "lead-li"])
    assert res.exit_code == 2, res.output
    assert "--exclude" in res.output and "--core" in res.output


def test_exclude_not_excluded_reaches_the_terminal_when_resuming(warehouse, provider, pinned_now, monkeypatch):
    """Item 2: on the paused-run path the flow releases; its "not excluded" warning is printed
    here too (read from the review's audit record), not only in the run log."""
    import userops.cli.incident as cli_incident
    from tasks.crisis import runs
    from userops.cli import app

    iid = _core_planned(warehouse)  # C2, C5 wait for the review; C1 is no core customer
    with warehouse.begin() as conn:
        conn.exec_driver_sql(f"UPDATE incidents SET flow_run_id = 'fr-1' WHERE incident_id = '{iid}'")

    def fake_resume(flow_run_id, answer):  # the paused run carries on: release_core in the flow
        release_core(iid, answer["reviewer"], answer["exclude_customers"], engine=warehouse, now=NOW)

    monkeypatch.setattr(runs, "run_state", lambda fr: ("PAUSED", "core-review-1"))
    monkeypatch.setattr(runs, "resume", fake_resume)
    monkeypatch.setattr(cli_incident, "_continued", lambda done, seconds=None: True)
    res = CliRunner().invoke(app, ["incident", "approve", iid, "--core", "--exclude", "C1", "--by", "lead-li"])
    assert "流程已继续" in res.output, res.output
    assert "以下客户未被排除" in res.output and "C1" in res.output


def test_exclude_an_unknown_id_says_it_is_no_customer_of_the_incident(warehouse, provider, pinned_now, monkeypatch, caplog):
    """An id that is no customer of the incident (or none at all) is named as such, apart from
    the incident's customers whose apology was not held for the review (C1: no core customer)."""
    import logging

    import userops.cli.incident as cli_incident
    from tasks.crisis import runs
    from userops.cli import app

    iid = _core_planned(warehouse)  # C2, C5 wait for the review; C1 is no core customer
    with warehouse.begin() as conn:
        conn.exec_driver_sql(f"UPDATE incidents SET flow_run_id = 'fr-1' WHERE incident_id = '{iid}'")

    def fake_resume(flow_run_id, answer):  # the paused run carries on: release_core in the flow
        with caplog.at_level(logging.WARNING, logger="userops.crisis.compensate"):
            release_core(iid, answer["reviewer"], answer["exclude_customers"], engine=warehouse, now=NOW)

    monkeypatch.setattr(runs, "run_state", lambda fr: ("PAUSED", "core-review-1"))
    monkeypatch.setattr(runs, "resume", fake_resume)
    monkeypatch.setattr(cli_incident, "_continued", lambda done, seconds=None: True)
    res = CliRunner().invoke(app, ["incident", "approve", iid, "--core", "--exclude", "C99999999", "--exclude", "C1",
                                   "--exclude", "C5", "--by", "lead-li"])
    unknown = f"事件 {iid}：以下编号不是本事件的客户（或客户不存在），未做任何处理：C99999999。请核对客户编号。"
    for out in (res.output.splitlines(), [r.getMessage() for r in caplog.records]):  # the terminal and the run log
        assert [x for x in out if "C99999999" in x] == [unknown], out
        released = [x for x in out if "以下客户未被排除" in x]
        assert len(released) == 1 and "：C1。" in released[0] and "核心客户" in released[0], out


def test_open_reason_help_is_the_run_forms(monkeypatch):
    """Item 3: the statement does not quote the reason; ``--help`` says what the Run form says."""
    import flows.texts  # noqa: F401  (the Run form's catalogue)
    from userops.cli.help_texts import HELP
    from userops.i18n import t

    for lang in ("zh-CN", "en"):
        assert HELP["incident open --reason"][lang] == t("param.crisis.reason.description", lang)
        assert "草稿" not in HELP["incident open --reason"][lang] and "draft" not in HELP["incident open --reason"][lang]


def test_opening_alert_says_level_and_source_in_words(warehouse, pinned_now):
    """Item 4: the crisis_opened alert says 级别：高 / 来源：人工开启, as ``incident show`` does."""
    from flows.crisis import _announce_opening

    shop(warehouse, CUSTOMERS)
    iid = open_incident(warehouse)["incident_id"]
    _announce_opening(iid)
    body = read_frame(warehouse, "SELECT body FROM alert_outbox WHERE kind = 'crisis_opened'")["body"].iloc[0]
    assert "级别：高" in body and "来源：人工开启" in body, body
    assert "high" not in body and "manual" not in body


def test_statement_wording_and_signature_without_brand(warehouse, pinned_now, monkeypatch):
    """Item 5: the call is on the phone (电话里听取, not 当面); no brand = no leading space."""
    from tasks.crisis.clarify import draft_statement
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_CRISIS__BRAND", "")
    reset_settings()
    shop(warehouse, CUSTOMERS)
    iid = open_incident(warehouse)["incident_id"]
    for lang in ("zh-CN", "en"):
        text = draft_statement(iid, lang, warehouse, NOW)
        last = [line for line in text.splitlines() if line.strip()][-1]
        assert last == last.lstrip() and last[:2].isdigit(), repr(last)
    zh = draft_statement(iid, "zh-CN", warehouse, NOW)
    assert "电话里听取您的意见" in zh and "当面" not in zh


def test_template_fallback_log_names_the_variables_as_a_list(caplog, monkeypatch):
    """Item 5: several unchecked claims: the variables joined with 、 and 这些话 (one: 这句话)."""
    import logging

    from tasks.crisis import compensate

    monkeypatch.setattr(compensate, "audit", lambda *a, **k: None)  # the audit line is not the subject here
    with caplog.at_level(logging.WARNING, logger="userops.crisis.compensate"):
        compensate._note_fallbacks(None, "INC-1", {"*": 3, "taken_down": 2, "coupon_placed": 1}, "zh-CN")
        compensate._note_fallbacks(None, "INC-2", {"*": 1, "taken_down": 1}, "zh-CN")
    several, one = [r.getMessage() for r in caplog.records if "INC-" in r.getMessage()]
    assert "coupon_placed、taken_down" in several and "这些话还不成立" in several, several
    assert "这句话还不成立" in one, one
