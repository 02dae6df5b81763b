"""The crisis flow against a real Prefect server: manual opening, the approval pauses and
their resumption (UI-style and from the CLI), nobody approving in time, the spike event
starting the deployment, and exactly-once compensation across a killed and resumed run."""
from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.crisis.conftest import NOW, shop
from userops.db import read_frame
from userops.settings import PROJECT_ROOT

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect, pytest.mark.slow]

CUSTOMERS = {"C1": "ordinary", "C2": "core", "C3": "potential"}


def wait_for(pred, timeout=90.0, interval=0.25, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def run_state(flow_run_id):
    from tasks.crisis.runs import run_state as rs

    return rs(flow_run_id)


def incident_row(engine):
    df = read_frame(engine, "SELECT incident_id, flow_run_id, source, opened_by FROM incidents ORDER BY opened_at")
    return None if df.empty else df.iloc[-1].to_dict()


def wait_paused(engine, key, timeout=90):
    def paused():
        inc = incident_row(engine)
        if inc is None or not inc["flow_run_id"]:
            return None
        state, k = run_state(inc["flow_run_id"])
        return inc if state == "PAUSED" and k == key else None

    return wait_for(paused, timeout, what=f"the flow to pause for {key}")


def start_flow(**params):
    from flows.crisis import crisis_response

    box = {}

    def target():
        try:
            box["state"] = crisis_response(**params, return_state=True)
        except BaseException as exc:  # pragma: no cover - surfaced by the test
            box["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, box


def use(monkeypatch, **env):
    from userops.settings import reset_settings

    for k, v in env.items():
        monkeypatch.setenv(k, str(v))
    reset_settings()


@pytest.fixture
def order_system(sample_data, monkeypatch):
    from userops.sample.server import SampleServer

    with SampleServer(sample_data) as server:
        use(monkeypatch, USEROPS_CRISIS__TAKEDOWN_URL=f"{server.url}/orders/takedown")
        yield server


@pytest.fixture
def crisis_env(monkeypatch, pinned_now, provider, order_system, tmp_path):
    use(monkeypatch, USEROPS_CRISIS__PAUSE_POLL_SECONDS=1, USEROPS_OUTPUT_DIR=tmp_path / "out")
    return provider


def cli(*args):
    from userops.cli import app

    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


def read_input_schema(flow_run_id, key):
    """What the Prefect UI shows for a pause: the form (JSON schema with the draft as default)."""
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_base_key
    from uuid import UUID

    with get_client(sync_client=True) as client:
        fr = client.read_flow_run(UUID(flow_run_id))
        base = fr.state.state_details.run_input_keyset["schema"].rsplit("-", 1)[0]
        ks = keyset_from_base_key(base)
        schema = client.read_flow_run_input(UUID(flow_run_id), ks["schema"])
        desc = client.read_flow_run_input(UUID(flow_run_id), ks["description"])
    return json.loads(schema), json.loads(desc)


def test_manual_opening_approval_pauses_and_resume(prefect_server, warehouse, crisis_env, order_system):
    from prefect.flow_runs import resume_flow_run
    from uuid import UUID

    provider = crisis_env
    shop(warehouse, CUSTOMERS)
    with run_log() as logged:
        th, box = start_flow(skus=["SKU-BAD"], reason="部分批次杯盖漏水", severity="high")
        inc = wait_paused(warehouse, "statement-1")
    iid, fr_id = inc["incident_id"], inc["flow_run_id"]
    assert inc["source"] == "manual"
    # the run log says, in the operator's language, where to act
    waiting = [m for m in logged if "等待人工审批官方声明" in m]
    assert len(waiting) == 1 and "Resume" in waiting[0] and f"userops incident approve {iid} --statement" in waiting[0]
    # a statement approved by nobody: Prefect's resume refuses it (every step records who did it)
    for nobody in ("", "  "):
        with pytest.raises(RuntimeError, match="Cannot resume"):
            resume_flow_run(UUID(fr_id), run_input={"statement": "x", "approve": True, "approver": nobody})
    assert run_state(fr_id) == ("PAUSED", "statement-1")

    # Control ran before the pause: the hook took the SKU down
    assert order_system.takedowns and order_system.takedowns[0]["skus"] == ["SKU-BAD"]
    steps = read_frame(warehouse, "SELECT step, status, done_by FROM incident_steps WHERE incident_id = :i", {"i": iid}).set_index("step")
    assert steps.loc["control", "status"] == "done" and steps.loc["clarify", "status"] == "waiting"
    # the affected customers are protected from marketing from the start
    assert len(read_frame(warehouse, "SELECT 1 FROM incident_customers WHERE incident_id = :i", {"i": iid})) == 3
    # the UI form: the draft statement as the editable default, with a description
    schema, desc = read_input_schema(fr_id, "statement-1")
    draft = schema["properties"]["statement"]["default"]
    assert "水杯（SKU-BAD）可能存在质量问题" in draft and "部分批次杯盖漏水" not in draft  # the reason is internal
    assert iid in desc and "勾选「批准发布」" in desc  # names the field by its form title, not "approve"
    # the form's fields in the shop's language (flows/texts.py form.statement.*), names unchanged
    assert schema["properties"]["approver"]["title"] == "批准人" and schema["properties"]["statement"]["title"] == "官方声明"

    # sent back with an edit: nothing published, the flow waits again with the edited text
    resume_flow_run(UUID(fr_id), run_input={"statement": "初稿已修改:杯盖漏水。", "approve": False, "approver": "pr-zhao"})
    wait_paused(warehouse, "statement-2")
    schema, _ = read_input_schema(fr_id, "statement-2")
    assert schema["properties"]["statement"]["default"].startswith("初稿已修改")
    assert read_frame(warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'crisis_statement'").empty

    # approved: published, then compensation; core apologies wait for review
    final = "关于杯盖漏水的说明:我们已下架并全额退款。"
    resume_flow_run(UUID(fr_id), run_input={"statement": final, "approve": True, "approver": "pr-zhao"})
    wait_paused(warehouse, "core-review-1")
    with pytest.raises(RuntimeError, match="Cannot resume"):  # nor a review by nobody
        resume_flow_run(UUID(fr_id), run_input={"approve": True, "reviewer": ""})
    assert run_state(fr_id) == ("PAUSED", "core-review-1")
    pub = read_frame(warehouse, "SELECT body FROM alert_outbox WHERE kind = 'crisis_statement'")
    assert len(pub) == 1 and pub["body"].iloc[0].strip() == final
    got = {p["touch_key"].split("|")[1] for p in provider.delivered.values()}
    assert got == {"C1", "C3"}  # not the core customer C2 yet

    # the reviewer approves from the CLI: the paused flow is resumed with the answer
    out = cli("incident", "approve", iid, "--core", "--by", "lead-li")
    assert "resumed" in out or "继续" in out
    th.join(120)
    assert not th.is_alive() and "error" not in box
    state = box["state"]
    assert state.is_completed(), state
    got = {p["touch_key"].split("|")[1] for p in provider.delivered.values()}
    assert got == {"C1", "C2", "C3"} and provider.stats()["duplicates"] == 0

    tl = read_frame(warehouse, "SELECT step, status, done_by, done_at, deadline_at FROM incident_steps WHERE incident_id = :i",
                    {"i": iid}, parse_dates=["done_at", "deadline_at"]).set_index("step")
    assert tl.loc["control", "done_by"] == "userops:takedown-hook"
    assert tl.loc["clarify", "done_by"] == "pr-zhao"
    assert set(tl["status"]) == {"done"}
    reviewed = read_frame(warehouse, "SELECT actor FROM audit_log WHERE action = 'compensation.core_reviewed'")
    assert reviewed["actor"].tolist() == ["lead-li"]
    # the call list for the core customer went to the staff-outreach list
    files = list((Path(os.environ["USEROPS_OUTPUT_DIR"]) / "outreach").rglob("*.csv"))
    assert files and "C2" in files[0].read_text(encoding="utf-8-sig")

    # the incident artifact (timeline) is in the UI under its stable key
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"incident-{iid.lower()}"])))
    assert arts and "pr-zhao" in arts[0].data
    assert not any(re.search(r"1380000|客户\d|@example", a.data) for a in arts)  # no phone, name or email

    # the CLI timeline
    shown = cli("incident", "show", iid)
    assert "pr-zhao" in shown and "userops:takedown-hook" in shown
    listed = cli("incident", "list")
    assert iid in listed


def test_nobody_approves_in_time(prefect_server, sqlite_warehouse, crisis_env, monkeypatch, tmp_path):
    provider = crisis_env
    # the waits end 3.6 s (statement) and 7.2 s (core review) after the opening
    use(monkeypatch, USEROPS_CRISIS__STATEMENT_WAIT_HOURS=0.001, USEROPS_CRISIS__CORE_REVIEW_WAIT_HOURS=0.002)
    shop(sqlite_warehouse, CUSTOMERS)
    with run_log() as logged:
        th, box = start_flow(skus=["SKU-BAD"], reason="漏水")
        th.join(120)
    assert not th.is_alive()
    state = box["state"]
    assert state.is_failed()
    iid = incident_row(sqlite_warehouse)["incident_id"]
    assert "以下步骤无人按时处理：澄清事实，补偿用户（已记录并升级）" in str(state.message)
    assert f"userops incident approve {iid}" in str(state.message)  # says what to do
    # the waits' log lines are the operator's language and say where to act
    from userops.i18n import t

    assert t("crisis.timeout.statement", "zh-CN", incident_id=iid) in logged
    assert t("crisis.timeout.review", "zh-CN", incident_id=iid) in logged
    assert any(m.startswith(f"事件 {iid}：") and "核心客户的致歉等待人工复核" in m and "--core" in m for m in logged)
    steps = read_frame(sqlite_warehouse, "SELECT step, status FROM incident_steps WHERE incident_id = :i", {"i": iid}).set_index("step")
    assert steps.loc["clarify", "status"] == "expired" and steps.loc["compensate", "status"] == "expired"
    # nothing unapproved was published; compensation still went out, except the unreviewed core one
    assert read_frame(sqlite_warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'crisis_statement'").empty
    assert {p["touch_key"].split("|")[1] for p in provider.delivered.values()} == {"C1", "C3"}
    esc = read_frame(sqlite_warehouse, "SELECT title, severity FROM alert_outbox WHERE kind = 'crisis_escalation'")
    assert len(esc) == 2 and set(esc["severity"]) == {"critical"}
    assert len(read_frame(sqlite_warehouse, "SELECT 1 FROM audit_log WHERE action LIKE 'step.%.expired'")) == 2

    # later, from the CLI: the statement first (the operator's edited text), then the core apologies
    edited = tmp_path / "statement.txt"
    edited.write_text("关于杯盖漏水的说明(修订稿)", encoding="utf-8")
    out = cli("incident", "approve", iid, "--statement-file", str(edited), "--by", "pr-zhao")
    assert "--core" in out
    pub = read_frame(sqlite_warehouse, "SELECT body FROM alert_outbox WHERE kind = 'crisis_statement'")
    assert pub["body"].tolist() == ["关于杯盖漏水的说明(修订稿)\n"]
    cli("incident", "approve", iid, "--by", "lead-li")
    assert {p["touch_key"].split("|")[1] for p in provider.delivered.values()} == {"C1", "C2", "C3"}
    steps = read_frame(sqlite_warehouse, "SELECT step, status, done_by FROM incident_steps WHERE incident_id = :i", {"i": iid}).set_index("step")
    assert set(steps["status"]) == {"done"} and steps.loc["clarify", "done_by"] == "pr-zhao"
    assert "nothing" in cli("incident", "approve", iid).lower() or "没有" in cli("incident", "approve", iid)


def _deployment(name="crisis-response"):
    from flows.crisis import crisis_response, spike_trigger

    dep = crisis_response.to_deployment(name=name, triggers=[spike_trigger()])
    return dep.apply()


def _flow_runs(deployment_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def _execute(flow_run_id, **popen):
    """Run a scheduled flow run the way a worker does (``python -m prefect.engine``)."""
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT__FLOW_RUN_ID": str(flow_run_id)}
    return subprocess.Popen([sys.executable, "-m", "prefect.engine"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


def test_spike_event_starts_the_deployment_and_a_second_one_joins(prefect_server, sqlite_warehouse, crisis_env, order_system):
    from tasks.crisis.spike import check_spikes
    from tests.crisis.conftest import add_feedback

    provider = crisis_env
    shop(sqlite_warehouse, {"C1": "ordinary", "C3": "potential"})
    dep_id = _deployment()
    existing = {fr.id for fr in _flow_runs(dep_id)}
    with sqlite_warehouse.begin() as conn:
        add_feedback(conn, "SKU-BAD", [NOW - timedelta(minutes=5 * k) for k in range(12)])
    out = check_spikes(sqlite_warehouse, NOW)
    assert [e["skus"] for e in out["emitted"]] == [["SKU-BAD"]]

    fr = wait_for(lambda: next((f for f in _flow_runs(dep_id) if f.id not in existing), None), 90, what="the triggered flow run")
    assert fr.parameters["skus"] == ["SKU-BAD"] and "12 complaints in 2.0h" in fr.parameters["reason"]
    proc = _execute(fr.id)
    try:
        inc = wait_paused(sqlite_warehouse, "statement-1", timeout=120)
        assert inc["source"] == "spike" and inc["opened_by"].startswith("automation:")
        spikes = read_frame(sqlite_warehouse, "SELECT incident_id FROM complaint_spikes")
        assert spikes["incident_id"].tolist() == [inc["incident_id"]]
        cli("incident", "approve", inc["incident_id"], "--by", "pr-zhao")  # resumes the paused run
        assert proc.wait(120) == 0, proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert {p["touch_key"].split("|")[1] for p in provider.delivered.values()} == {"C1", "C3"}

    # a second spike event for the same product (and a sister product of the same batch): a
    # new run that joins the incident - no second incident - takes the new product down and
    # compensates its buyers; nobody already served gets anything twice
    from prefect.events import emit_event

    from tests.crisis.conftest import add_customers, add_orders, add_tags

    with sqlite_warehouse.begin() as conn:
        add_customers(conn, ["C5"])
        add_orders(conn, [("O-C5", "C5", NOW - timedelta(days=3), "paid", "SKU-NEW", 1, 30.0, "水杯")])
        add_tags(conn, {"C5": "potential"})
    seen = {f.id for f in _flow_runs(dep_id)}
    emit_event("userops.complaints.spike", resource={"prefect.resource.id": "userops.sku.SKU-NEW"},
               payload={"skus": ["SKU-BAD", "SKU-NEW"], "complaints": 15, "window_hours": 2.0})
    fr2 = wait_for(lambda: next((f for f in _flow_runs(dep_id) if f.id not in seen), None), 90, what="the second flow run")
    proc = _execute(fr2.id)
    assert proc.wait(120) == 0, proc.stdout.read().decode()
    incidents = read_frame(sqlite_warehouse, "SELECT incident_id, skus FROM incidents")
    assert len(incidents) == 1 and json.loads(incidents["skus"].iloc[0]) == ["SKU-BAD", "SKU-NEW"]
    joined = read_frame(sqlite_warehouse, "SELECT actor FROM audit_log WHERE action = 'incident.joined'")
    assert len(joined) == 1
    assert any("SKU-NEW" in t["skus"] for t in order_system.takedowns)
    assert {p["touch_key"].split("|")[1] for p in provider.delivered.values()} == {"C1", "C3", "C5"}
    assert provider.stats()["duplicates"] == 0
    assert len(read_frame(sqlite_warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'crisis_statement'")) == 1


def test_cli_open_starts_the_deployment_like_the_ui_form(prefect_server, warehouse, monkeypatch):
    dep_id = _deployment()
    shop(warehouse, CUSTOMERS, sku="SKU-1", other_sku="SKU-2")
    before = {f.id for f in _flow_runs(dep_id)}
    # a SKU no order has (a typo) opens nothing: the command names it
    res = CliRunner().invoke(__import__("userops.cli", fromlist=["app"]).app,
                             ["incident", "open", "--sku", "SKU-1", "--sku", "SKU-I", "--reason", "标签印错"])
    assert res.exit_code == 2 and "SKU-I" in res.output and "--unknown-ok" in res.output
    assert {f.id for f in _flow_runs(dep_id)} == before
    out = cli("incident", "open", "--sku", "SKU-1", "--sku", "SKU-2", "--reason", "标签印错", "--severity", "medium", "--by", "ops-wang")
    runs = [f for f in _flow_runs(dep_id) if f.id not in before]
    assert len(runs) == 1 and str(runs[0].id) in out
    assert runs[0].parameters == {"skus": ["SKU-1", "SKU-2"], "reason": "标签印错", "severity": "medium"}
    assert "userops-cli:ops-wang" in runs[0].tags
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        client.delete_flow_run(runs[0].id)
    # --unknown-ok: the flow (which checks the SKUs too) is told the operator accepted them
    before = {f.id for f in _flow_runs(dep_id)}
    cli("incident", "open", "--sku", "SKU-I", "--reason", "标签印错", "--unknown-ok")
    (run,) = [f for f in _flow_runs(dep_id) if f.id not in before]
    assert run.parameters == {"skus": ["SKU-I"], "reason": "标签印错", "severity": "high", "unknown_ok": True}
    with get_client(sync_client=True) as client:
        client.delete_flow_run(run.id)
    res = CliRunner().invoke(__import__("userops.cli", fromlist=["app"]).app,
                             ["incident", "open", "--sku", "X", "--reason", "r", "--severity", "apocalyptic"])
    assert res.exit_code == 2 and "apocalyptic" in res.output and "critical" in res.output


def test_killed_run_resumed_compensates_exactly_once(prefect_server, warehouse, crisis_env, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed
    from uuid import UUID

    from tasks.crisis.clarify import approve_statement, draft_statement
    from tasks.crisis.control import run_control
    from tests.crisis.conftest import open_incident

    provider = crisis_env
    provider.latency_s = 0.05
    use(monkeypatch, USEROPS_CAMPAIGNS__SEND_WORKERS=2, USEROPS_CAMPAIGNS__SEND_BATCH=4)
    customers = {f"K{k:03d}": ("potential" if k % 3 else "ordinary") for k in range(60)}
    shop(warehouse, customers)
    # an incident whose Control and Clarify are done (e.g. the run that did them is gone)
    iid = open_incident(warehouse)["incident_id"]
    run_control(iid, engine=warehouse)
    draft_statement(iid, engine=warehouse)
    approve_statement(iid, None, "pr-zhao", engine=warehouse)

    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    code = "from flows.crisis import crisis_response; crisis_response(skus=['SKU-BAD'], reason='漏水')"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(provider.delivered) >= 10 or proc.poll() is not None, 120, interval=0.02, what="sending to start")
        os.kill(proc.pid, signal.SIGKILL)  # killed mid-compensation
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert 10 <= len(provider.delivered) < 60, "the run must be killed part-way"
    killed_run = incident_row(warehouse)["flow_run_id"]
    assert killed_run
    inflight = read_frame(warehouse, "SELECT COUNT(*) AS n FROM touches WHERE status IN ('planned', 'in_flight')")["n"].iloc[0]
    assert inflight > 0
    # what a worker does when the process of a run dies
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(killed_run), Crashed(message="process killed"), force=True)

    # a new run (a retry, a new trigger or the operator) takes over and finishes
    th, box = start_flow(skus=["SKU-BAD"], reason="漏水")
    th.join(180)
    assert box["state"].is_completed(), box["state"]
    assert incident_row(warehouse)["flow_run_id"] != killed_run
    keys = [p["touch_key"] for p in provider.delivered.values()]
    assert len(keys) == 60 and len(set(keys)) == 60
    assert {k.split("|")[1] for k in keys} == set(customers)
    touches = read_frame(warehouse, "SELECT status, COUNT(*) AS n FROM touches GROUP BY status")
    assert touches.set_index("status")["n"].to_dict() == {"sent": 60}
    left = read_frame(warehouse, "SELECT COUNT(*) AS n FROM incident_customers WHERE compensated_at IS NULL")["n"].iloc[0]
    assert left == 0
    # nothing done twice: one take-down, one statement, one plan
    assert len(read_frame(warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'crisis_statement'")) == 1
    assert len(read_frame(warehouse, "SELECT 1 FROM audit_log WHERE action = 'step.control.takedown'")) == 1
    assert len(read_frame(warehouse, "SELECT 1 FROM audit_log WHERE action = 'incident.taken_over'")) == 2


def test_hourly_monitor_and_nightly_stage(prefect_server, warehouse, crisis_env, pinned_now):
    from datetime import date

    from flows.monitor import crisis_nightly, hourly_monitor
    from flows.stages import NIGHTLY_STAGES
    from tasks.crisis.incidents import open_or_join
    from tests.crisis.conftest import add_customers, add_feedback

    provider = crisis_env
    names = [n for n, _ in NIGHTLY_STAGES]
    assert names == ["quarantine-report", "tags", "health", "churn", "campaigns", "crisis", "digest"]  # crisis after campaigns, right before the digest

    shop(warehouse, {"C1": "ordinary"})
    with warehouse.begin() as conn:
        add_customers(conn, ["F1"], names=["周杰"])
        add_feedback(conn, "SKU-OK", [NOW - timedelta(hours=25)], kind="suggestion", customer_id="F1")
        add_feedback(conn, "SKU-HOT", [NOW - timedelta(minutes=3 * k) for k in range(10)])
    iid = open_or_join(["SKU-BAD"], "x", engine=warehouse, now=NOW - timedelta(minutes=61))["incident_id"]
    # an earlier incident closed from the CLI (no Prefect run there): its report is published by the monitor
    from tasks.crisis.report import close_incident

    old = open_or_join(["SKU-GONE"], "old", engine=warehouse, now=NOW - timedelta(days=9))["incident_id"]
    assert close_incident(old, "ops", warehouse, NOW - timedelta(days=1)) is not None

    out = hourly_monitor()
    assert out["feedback_sla"]["newly_listed"] == 1 and out["feedback_sla"]["acknowledged"] == 1
    assert out["spikes"]["new_spikes"] == ["SKU-HOT"] and len(out["spikes"]["emitted"]) == 1
    assert out["deadlines"]["reminders"] == 1
    # 11 complaints this week / 1 active customer (C1, in the stored tags)
    assert out["quality_trace"]["alerted"] and (out["quality_trace"]["active"], out["quality_trace"]["active_from"]) == (1, "tags")
    assert any("SKU-HOT" in line for line in out["summary"])
    kinds = set(read_frame(warehouse, "SELECT kind FROM alert_outbox")["kind"])
    assert {"feedback_sla", "crisis_deadline", "quality_trace"} <= kinds
    assert len(provider.delivered) == 1  # the acknowledgement

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"incident-{old.lower()}"])))
    assert len(arts) == 1 and "SKU-GONE" in arts[0].data

    again = hourly_monitor()  # an hour later nothing is repeated
    assert again["feedback_sla"]["newly_listed"] == 0 and again["spikes"]["emitted"] == []
    assert again["deadlines"]["reminders"] == 0 and not again["quality_trace"]["alerted"]
    assert len(provider.delivered) == 1
    with get_client(sync_client=True) as client:
        assert len(client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"incident-{old.lower()}"])))) == 1

    pinned_now(NOW + timedelta(minutes=50))  # 90% of Control for the incident
    night = crisis_nightly(as_of=date(2026, 11, 20), run_id="nightly-test")
    assert night["deadlines"]["reminders"] == 1 and night["spikes"]["emitted"] == []
    assert night["summary"]
    assert get_incident_status(warehouse, iid) == "open"


def get_incident_status(engine, iid):
    return read_frame(engine, "SELECT status FROM incidents WHERE incident_id = :i", {"i": iid})["status"].iloc[0]


def test_approve_finishes_from_the_cli_when_the_paused_run_is_gone(prefect_server, warehouse, crisis_env, monkeypatch):
    """`incident open --local` stopped while waiting leaves a PAUSED run nobody continues:
    approving resumes it, sees it does not carry on, and publishes from the CLI, once."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Paused

    from tasks.crisis.clarify import draft_statement
    from tests.crisis.conftest import open_incident

    @flow(name="crisis-run-whose-terminal-closed")
    def gone():
        pass

    use(monkeypatch, USEROPS_CRISIS__PAUSE_POLL_SECONDS=1)  # waits 2 polls + 5 s for it
    shop(warehouse, CUSTOMERS)
    with get_client(sync_client=True) as c:
        fr = c.create_flow_run(flow=gone, name="gone")
        c.set_flow_run_state(fr.id, Paused(pause_key="statement-1", timeout_seconds=3600), force=True)
    iid = open_incident(warehouse, flow_run_id=str(fr.id))["incident_id"]
    draft_statement(iid, engine=warehouse)
    assert run_state(str(fr.id)) == ("PAUSED", "statement-1")

    out = cli("incident", "approve", iid, "--by", "pr-zhao")
    assert "没有继续" in out and "声明已批准并发布" in out  # said so, and did it
    pub = read_frame(warehouse, "SELECT body FROM alert_outbox WHERE kind = 'crisis_statement'")
    assert len(pub) == 1
    step = read_frame(warehouse, "SELECT status, done_by FROM incident_steps WHERE incident_id = :i AND step = 'clarify'", {"i": iid})
    assert step.iloc[0].tolist() == ["done", "pr-zhao"]
    cli("incident", "approve", iid, "--statement", "--by", "pr-zhao")  # again: nothing twice
    assert len(read_frame(warehouse, "SELECT 1 FROM alert_outbox WHERE kind = 'crisis_statement'")) == 1


@contextlib.contextmanager
def run_log():
    """The messages a flow run logs (its run log in the Prefect UI), as they are logged."""
    import logging

    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("prefect.flow_runs")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def test_contact_details_in_the_reason_are_masked_everywhere_and_the_operator_told(
        prefect_server, sqlite_warehouse, crisis_env, order_system, monkeypatch):
    """An operator pastes the complaining customer's phone and email into the reason: the run
    masks them before anything is stored or used (incident, audit log, take-down hook, alerts,
    statement draft, report artifact) and says so once in its log, in the operator's language."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.crisis import crisis_response
    from tasks.crisis.report import build_report, report_markdown
    from tests.crisis.test_incidents import REASON_MASKED, REASON_WITH_CONTACTS
    from userops.i18n import t

    # nobody waits for a human here: the statement and the core review expire at once
    use(monkeypatch, USEROPS_CRISIS__STATEMENT_WAIT_HOURS=0, USEROPS_CRISIS__CORE_REVIEW_WAIT_HOURS=0)
    shop(sqlite_warehouse, CUSTOMERS)
    with run_log() as logged:
        state = crisis_response(skus=["SKU-BAD"], reason=REASON_WITH_CONTACTS, return_state=True)
    assert state.is_failed()  # (the waits ran out; everything before them is done)
    notices = [m for m in logged if "Parameters" in m]
    assert notices == [t("crisis.reason.masked", "zh-CN", reason=REASON_MASKED)], notices
    assert "已打码" in notices[0] and not any("13812345678" in m or "li.si@" in m for m in logged)

    iid = incident_row(sqlite_warehouse)["incident_id"]
    inc = read_frame(sqlite_warehouse, "SELECT reason, statement FROM incidents WHERE incident_id = :i", {"i": iid}).iloc[0]
    assert inc["reason"] == REASON_MASKED and REASON_MASKED not in inc["statement"]  # the reason is internal
    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"incident-{iid.lower()}"])))
    everything = [inc["statement"], report_markdown(build_report(iid, sqlite_warehouse)), *(a.data for a in arts),
                  *read_frame(sqlite_warehouse, "SELECT title || body AS x FROM alert_outbox")["x"],
                  *read_frame(sqlite_warehouse, "SELECT detail FROM audit_log")["detail"].dropna(),
                  *(json.dumps(b, ensure_ascii=False) for b in order_system.takedowns)]
    assert arts and any(REASON_MASKED in a.data for a in arts)
    assert any(REASON_MASKED in b["reason"] for b in order_system.takedowns)
    for text in everything:
        assert "13812345678" not in text and "li.si@" not in text, text

    # in English too, once; a reason without contact details says nothing
    use(monkeypatch, USEROPS_LANGUAGE="en")
    with run_log() as logged:
        crisis_response(skus=["SKU-OK"], reason="towels shed: call 13812345678", return_state=True)
        crisis_response(skus=["SKU-OK"], reason="towels shed", return_state=True)
    notices = [m for m in logged if "Parameters" in m]
    assert notices == [t("crisis.reason.masked", "en", reason="towels shed: call 138****78")], notices


def test_the_runs_reason_parameter_is_replaced_by_the_masked_text(prefect_server, sqlite_warehouse, crisis_env, monkeypatch):
    """Prefect keeps a run's parameters as typed (the run's Parameters tab): a reason with a
    phone number / email is replaced there by the masked text at the run's start."""
    from prefect.client.orchestration import get_client

    from flows.crisis import crisis_response
    from tests.crisis.test_incidents import REASON_MASKED, REASON_WITH_CONTACTS

    use(monkeypatch, USEROPS_CRISIS__STATEMENT_WAIT_HOURS=0, USEROPS_CRISIS__CORE_REVIEW_WAIT_HOURS=0)
    shop(sqlite_warehouse, CUSTOMERS)
    state = crisis_response(skus=["SKU-BAD"], reason=REASON_WITH_CONTACTS, severity="medium", return_state=True)
    with get_client(sync_client=True) as client:
        fr = client.read_flow_run(state.state_details.flow_run_id)
    assert fr.parameters["reason"] == REASON_MASKED
    assert fr.parameters["skus"] == ["SKU-BAD"] and fr.parameters["severity"] == "medium"  # the others as they were
    assert "13812345678" not in json.dumps(fr.parameters, ensure_ascii=False)
    assert "li.si@" not in json.dumps(fr.parameters, ensure_ascii=False)


def test_a_sku_no_order_has_stops_the_run_before_anything_is_opened(prefect_server, sqlite_warehouse, crisis_env,
                                                                      order_system, monkeypatch):
    """From the UI's Run form, a typo in a SKU would open a real incident (take-down, pause,
    alerts): the flow refuses it as ``userops incident open`` does, unless unknown_ok."""
    from flows.crisis import crisis_response, unknown_sku_text

    use(monkeypatch, USEROPS_CRISIS__STATEMENT_WAIT_HOURS=0, USEROPS_CRISIS__CORE_REVIEW_WAIT_HOURS=0)
    shop(sqlite_warehouse, CUSTOMERS)
    state = crisis_response(skus=["SKU-BAD", "SKU-I"], reason="杯盖漏水", return_state=True)
    assert state.is_failed()
    assert unknown_sku_text(["SKU-I"], "zh-CN") in str(state.message), state.message
    assert "允许未知 SKU" in str(state.message) and "unknown_ok" not in str(state.message)
    for table in ("incidents", "incident_skus", "incident_customers", "audit_log"):
        assert read_frame(sqlite_warehouse, f"SELECT 1 FROM {table}").empty, table
    # no opening announced, no take-down task: only the failed run's own alert (flows/hooks.py)
    assert set(read_frame(sqlite_warehouse, "SELECT kind FROM alert_outbox")["kind"]) <= {"flow_failed"}
    assert not order_system.takedowns

    # ticked: opened anyway (the waits run out at once here)
    state = crisis_response(skus=["SKU-I"], reason="新品标签印错", unknown_ok=True, return_state=True)
    inc = read_frame(sqlite_warehouse, "SELECT skus FROM incidents")
    assert json.loads(inc["skus"].iloc[0]) == ["SKU-I"]
    assert any(t_["skus"] == ["SKU-I"] for t_ in order_system.takedowns)
