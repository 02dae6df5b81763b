"""Alerts wired into Prefect (real test server): failure hooks on failing flows, the
quarantine check on completion, the digest stage with its artifact, the crash automation
and its flow, channel blocks."""
from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from prefect import flow

from flows.hooks import ALERT_HOOKS
from tests.alerts.conftest import outbox

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect]

AS_OF = date(2026, 11, 20)


@flow(name="alert-test-failing", **ALERT_HOOKS)
def failing_flow():
    raise ValueError("customer li.lei@example.com 13812345678 broke it; url http://hook.example/services/T1/B2/sekrit?key=abc")


@flow(name="alert-test-inner", **ALERT_HOOKS)
def inner_flow():
    raise RuntimeError("inner boom")


@flow(name="alert-test-outer", **ALERT_HOOKS)
def outer_flow():
    inner_flow()


@flow(name="alert-test-rejected", **ALERT_HOOKS)
def rejecting_flow():
    from tasks.validate import BatchRejected

    raise BatchRejected("orders", "34 of 400 rows are bad (8.5% > 5%)", {"amount_negative": 30, "customer_unknown": 4})


@flow(name="alert-test-ingest", **ALERT_HOOKS)
def ingest_result_flow(quarantined: int) -> dict:
    return {"ingest": {"customers": {"read": 1000, "loaded": 1000 - quarantined, "quarantined": quarantined}, "orders": {"read": 0, "loaded": 0, "quarantined": 0}}}


def _digest_artifacts(run_id: str) -> list:
    """The nightly-digest artifact's versions published by the run ``run_id``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-digest"]), flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)])))


def _run_id(state) -> str:
    return str(state.state_details.flow_run_id)


def test_failure_hook_alerts_with_link_and_scrubbed_error(prefect_server, warehouse, use_channels, slack):
    use_channels(slack=slack)
    state = failing_flow(return_state=True)
    assert state.is_failed()
    rows = outbox(warehouse, kind="flow_failed")
    assert len(rows) == 1 and rows[0].status == "sent" and rows[0].channel == "slack"
    from prefect.settings import PREFECT_API_URL

    # the UI beside the API the run went to (the session's test server), not the default :4200
    link = f"{PREFECT_API_URL.value().rstrip('/').removesuffix('/api')}/runs/flow-run/{_run_id(state)}"
    assert json.loads(rows[0].payload)["link"] == link and ":4200/" not in link
    msg = slack.received[-1]
    text = json.dumps(msg, ensure_ascii=False)
    assert "alert-test-failing" in msg["text"] and link in text
    assert "ValueError" in text
    for secret in ("li.lei@example.com", "13812345678", "sekrit", "key=abc"):
        assert secret not in text and secret not in rows[0].body


def test_subflow_failure_alerts_once_for_the_run(prefect_server, warehouse, use_channels, slack):
    use_channels(slack=slack)
    state = outer_flow(return_state=True)
    assert state.is_failed()
    rows = outbox(warehouse, kind="flow_failed")
    assert len(rows) == 1  # the parent's failure shares the root run's dedupe key
    assert rows[0].dedupe_key.startswith(f"flow_failed|{_run_id(state)}|")
    assert "alert-test-inner" in rows[0].title and "alert-test-outer" in rows[0].body
    assert len(slack.received) == 1


def test_rejected_batch_alerts_validation(prefect_server, warehouse, use_channels, dingtalk):
    use_channels(dingtalk=dingtalk)
    assert rejecting_flow(return_state=True).is_failed()
    kinds = sorted(r.kind for r in outbox(warehouse))
    assert kinds == ["flow_failed", "validation"]
    v = outbox(warehouse, kind="validation")[0]
    assert "orders" in v.title and "amount_negative 30" in v.body and v.status == "sent"
    assert len(dingtalk.received) == 2 and dingtalk.rejected == []


def test_channel_down_never_changes_the_runs_outcome(prefect_server, warehouse, use_channels, slack):
    use_channels(slack=slack)
    slack.outage = "reset"
    state = failing_flow(return_state=True)
    assert state.is_failed() and "ValueError" in state.message  # failed for its own reason only
    row = outbox(warehouse, kind="flow_failed")[0]
    assert row.status == "pending" and row.attempts == 1
    ok = ingest_result_flow(0, return_state=True)
    assert ok.is_completed()


def test_quarantine_spike_on_completion(prefect_server, warehouse, use_channels, slack):
    use_channels(slack=slack)
    assert ingest_result_flow(5).get("ingest")  # 0.5 %: under the 1 % default
    assert outbox(warehouse) == []
    state = ingest_result_flow(25, return_state=True)  # 2.5 %
    assert state.is_completed()
    rows = outbox(warehouse, kind="quarantine_spike")
    assert len(rows) == 1 and "customers" in rows[0].title and "2.5%" in rows[0].body and rows[0].status == "sent"


def test_digest_stage_publishes_artifact_and_delivers(prefect_server, warehouse, use_channels, slack):
    from prefect.client.orchestration import get_client

    from flows.digest import nightly_digest
    from flows.stages import NIGHTLY_STAGES

    assert NIGHTLY_STAGES[-1][0] == "digest" and NIGHTLY_STAGES[-1][1] is nightly_digest
    use_channels(slack=slack)
    run_id = str(uuid.uuid4())  # this run's own: the session's server holds the other database's digest too
    res = nightly_digest(AS_OF, run_id)
    assert res["queued"] == 1 and res["delivery"]["sent"] == 1 and res["artifact_key"] == "nightly-digest"
    assert len(slack.received) == 1 and "夜间摘要 2026-11-20" in slack.received[0]["text"]
    with get_client(sync_client=True) as client:
        art = client.read_latest_artifacts()
    digest = [a for a in art if a.key == "nightly-digest"]
    assert digest and "夜间摘要 2026-11-20" in digest[0].data and run_id in digest[0].data
    # re-running the night does not send the digest twice
    assert nightly_digest(AS_OF, run_id)["queued"] == 0 and len(slack.received) == 1


def test_digest_stage_completes_when_the_channel_is_down(prefect_server, warehouse, use_channels, dingtalk):
    from flows.digest import nightly_digest

    use_channels(dingtalk=dingtalk)
    dingtalk.outage = "503"
    state = nightly_digest(AS_OF, "run-x", return_state=True)
    assert state.is_completed()
    row = outbox(warehouse, kind="digest")[0]
    assert row.status == "pending" and row.last_error == "钉钉暂不可用（HTTP 503）"  # the operator's language (zh-CN default)


def test_crash_automation_and_its_flow(prefect_server, warehouse, use_channels, slack):
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    from flows.alerts import alert_crashed_run
    from tasks.alerts.automations import AUTOMATION_NAME, ensure_crash_automation

    first = ensure_crash_automation(work_pool="userops-pool")
    again = ensure_crash_automation(work_pool="userops-pool")
    assert not again["created"] and first["automation_id"] == again["automation_id"]  # idempotent
    with get_client(sync_client=True) as client:
        autos = client.read_automations_by_name(AUTOMATION_NAME)
        assert len(autos) == 1
        a = autos[0]
        assert a.enabled and a.trigger.expect == {"prefect.flow-run.Crashed"}
        assert a.actions[0].type == "run-deployment" and str(a.actions[0].deployment_id) == first["deployment_id"]
        assert a.actions[0].parameters == {"flow_run_ref": "{{ event.resource.id }}"}
        dep = client.read_deployment_by_name("alert-crashed-run/alert-crashed-run")
        assert dep.entrypoint == "flows/alerts.py:alert_crashed_run" and dep.work_pool_name == "userops-pool"
        deliver = client.read_deployment_by_name("deliver-alerts/deliver-alerts")
        assert deliver.entrypoint == "flows/alerts.py:deliver_alerts"
        # the setting's interval (default 5 minutes), as prefect.yaml's schedule
        assert [s.schedule.interval.total_seconds() for s in deliver.schedules] == [300.0]
        # a run whose process died: the server marks it Crashed, no hook ran
        fr = client.create_flow_run(flow=failing_flow.with_options(name="alert-test-killed"), name="killed-run")
        client.set_flow_run_state(fr.id, Crashed(message="Flow run infrastructure exited with non-zero status code -9."), force=True)
    use_channels(slack=slack)
    res = alert_crashed_run(f"prefect.flow-run.{fr.id}")
    assert res["queued"] == 1
    rows = outbox(warehouse, kind="flow_failed")
    assert len(rows) == 1 and "alert-test-killed" in rows[0].title and rows[0].status == "sent"
    assert "-9" in rows[0].body and str(fr.id) in json.loads(rows[0].payload)["link"]
    assert "崩溃" in rows[0].title  # crashed, said as such
    # the same crash seen again (hook and automation both fired): no second alert
    assert alert_crashed_run(str(fr.id))["queued"] == 0
    assert len(slack.received) == 1


def test_channel_blocks_registered_and_used(prefect_server, warehouse, use_channels, monkeypatch, slack, wecom):
    from tasks.alerts.blocks import SlackAlertChannel, WeComAlertChannel, register_blocks
    from tasks.alerts.routing import clear_channel_cache, load_channels

    use_channels(slack=slack)
    done = register_blocks(overwrite=True)
    assert any("saved block userops-slack-alert-channel/slack" in d for d in done)
    assert all(slack.token not in d for d in done)
    assert SlackAlertChannel.load("slack").webhook_url.get_secret_value() == slack.url
    # a channel configured only in the Prefect UI (a block), editable there
    WeComAlertChannel(webhook_url=wecom.url, msgtype="text").save("ops-wecom", overwrite=True)
    monkeypatch.setenv("USEROPS_ALERTS__USE_BLOCKS", "true")
    monkeypatch.setenv("USEROPS_ALERTS__ROUTES", json.dumps({"*": ["ops-wecom", "slack"]}))
    from userops.settings import reset_settings

    reset_settings()
    clear_channel_cache()
    try:
        chans = load_channels(refresh=True)
        assert chans["ops-wecom"].source == "block" and chans["slack"].source == "block"
        from tasks.alerts import deliver_pending, enqueue_alert

        enqueue_alert("model_drift", "模型漂移", "psi 0.3", day=AS_OF)
        res = deliver_pending()
        assert res["sent"] == 2 and "模型漂移" in wecom.contents()[0] and len(slack.received) == 1
        assert "kept existing block" in " ".join(register_blocks(overwrite=False))
    finally:
        # The session's Prefect server is shared: channels saved here must not route the
        # alerts of tests that run after this one in the same worker.
        for cls, name in ((SlackAlertChannel, "slack"), (WeComAlertChannel, "ops-wecom")):
            try:
                cls.delete(name)
            except Exception:
                pass
        from tasks.alerts.blocks import DingTalkAlertChannel

        for name in ("dingtalk", "wecom"):
            for cls in (DingTalkAlertChannel, WeComAlertChannel):
                try:
                    cls.delete(name)
                except Exception:
                    pass
        clear_channel_cache()


def test_nightly_run_ends_with_the_digest(prefect_server, sqlite_warehouse, sample_source, use_channels, slack, monkeypatch):
    """A real nightly run (sample CRM + order system): the digest is its last stage, is held
    until the run finishes, then goes out once with the run's final figures and a link."""
    import flows.stages as stages
    from flows.digest import nightly_digest
    from flows.nightly import nightly

    monkeypatch.setattr(stages, "NIGHTLY_STAGES", [("digest", nightly_digest)])  # the other parts' stages are theirs to test
    use_channels(slack=slack)
    state = nightly(as_of=AS_OF, return_state=True)
    assert state.is_completed(), state.message
    stats = state.result()
    run_id = str(state.state_details.flow_run_id)
    assert stats["digest"]["delivery"] == {"held": "until the nightly run finishes"}
    digest_rows = outbox(sqlite_warehouse, kind="digest")
    assert len(digest_rows) == 1 and digest_rows[0].status == "sent"
    assert json.loads(digest_rows[0].payload)["link"].endswith(f"/runs/flow-run/{run_id}")
    assert len(slack.received) == 1
    text = slack.received[0]["text"]
    customers = stats["ingest"]["customers"]
    # one version of the digest artifact for the night: the final one (no draft without ingest lines beside it)
    versions = _digest_artifacts(run_id)
    assert len(versions) == 1 and "**运行**：完成" in versions[0].data and "阶段用时" in versions[0].data, [a.data for a in versions]
    assert f"customers：抽取 {customers['read']:,}" in versions[0].data
    assert "夜间摘要 2026-11-20" in text and "运行：完成" in text and "阶段用时" in text
    assert f"customers：抽取 {customers['read']:,}，入库 {customers['loaded']:,}，隔离 {customers['quarantined']:,}" in text
    spikes = outbox(sqlite_warehouse, kind="quarantine_spike")
    shares = {t: r["quarantined"] / r["read"] for t, r in stats["ingest"].items() if r["read"]}
    assert bool(spikes) == any(s > 0.01 for s in shares.values())


def test_failed_nightly_alerts_and_still_sends_a_digest(prefect_server, sqlite_warehouse, use_channels, slack, monkeypatch):
    from flows.nightly import nightly

    monkeypatch.delenv("USEROPS_CRM__URL", raising=False)
    use_channels(slack=slack)  # no source configured: the run fails in extract
    state = nightly(as_of=AS_OF, return_state=True)
    assert state.is_failed()
    kinds = sorted(r.kind for r in outbox(sqlite_warehouse))
    assert kinds == ["digest", "flow_failed"]
    assert all(r.status == "sent" for r in outbox(sqlite_warehouse))
    digest = next(p for p in slack.received if "夜间摘要" in p["text"])
    assert "运行：失败" in digest["text"]
    versions = _digest_artifacts(str(state.state_details.flow_run_id))  # the failure hook publishes it
    assert len(versions) == 1 and "**运行**：失败" in versions[0].data, [a.data for a in versions]
    failure = next(p for p in slack.received if "流程失败" in p["text"])
    assert "no URL configured" in failure["text"] or "USEROPS_CRM__URL" in failure["text"]
