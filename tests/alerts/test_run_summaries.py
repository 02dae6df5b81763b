"""What an operator reads in the Prefect UI after the runs that have no report of their own
(real test server): the hourly watch and the alert delivery leave a short Markdown summary
(in the settings' language, no personal data), and their runs carry readable names."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect]


def _run(state):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    run_id = state.state_details.flow_run_id
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(run_id).name
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    return name, arts


def test_hourly_watch_publishes_its_summary_even_when_quiet(prefect_server, warehouse, monkeypatch):
    from flows.monitor import hourly_monitor

    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T06:00:00")  # 14:00 in Shanghai
    state = hourly_monitor(return_state=True)
    assert state.is_completed()
    name, arts = _run(state)
    assert name == "hourly-monitor-2026-11-20 14:00"
    (art,) = [a for a in arts if a.key == "hourly-monitor"]
    assert art.type == "markdown"
    assert "每小时巡检 2026-11-20 14:00" in art.data and "本次运行没有需要处理的事项" in art.data


def test_alert_delivery_says_what_it_sent_and_stays_quiet_when_idle(prefect_server, warehouse, use_channels, slack, monkeypatch):
    from flows.alerts import deliver_alerts
    from tasks.alerts import enqueue_alert

    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    use_channels(slack=slack)
    idle = deliver_alerts(return_state=True)
    name, arts = _run(idle)
    assert name.startswith("deliver-alerts-20") and arts == []  # every 5 minutes: nothing due, no artifact

    enqueue_alert("test", "Customer 13812345678 complained", "li.lei@example.com wrote in", severity="warning")
    state = deliver_alerts(return_state=True)
    out = state.result()
    assert out["sent"] == 1 and out["summary"][0].startswith("Alerts: 1 sent")
    _, arts = _run(state)
    (art,) = arts
    assert art.key is None and art.type == "markdown"  # on the run only, not the Artifacts page
    assert "## Alert delivery" in art.data and "Alerts: 1 sent" in art.data and "Channel slack: ok" in art.data
    for secret in ("13812345678", "li.lei@example.com", slack.url):
        assert secret not in art.data


def test_summary_markdown_masks_and_says_nothing_to_do():
    from tasks.artifacts import alert_delivery_happened, alert_delivery_lines, run_summary_markdown

    md = run_summary_markdown("Hourly watch", [], lang="en")
    assert md == "## Hourly watch\n\nNothing to do in this run.\n"
    md = run_summary_markdown("T", ["call 13812345678 or a@b.cn | x"], lang="en")
    assert "13812345678" not in md and "a@b.cn" not in md and "|" not in md
    assert not alert_delivery_happened({"sent": 0, "merged": 0, "deferred": 0, "failed": 0, "expired": 0, "channels": {}})
    assert alert_delivery_happened({"error": "OperationalError"})
    assert alert_delivery_lines({"error": "OperationalError"}, lang="en") == ["Alert delivery: OperationalError"]


def test_message_delivery_with_nothing_due_leaves_only_its_log_line(prefect_server, warehouse):
    from flows.campaigns import deliver_messages

    state = deliver_messages(return_state=True)
    assert state.is_completed()
    out = state.result()
    assert out["delivery"]["sent"] == 0 and len(out["summary"]) == 1
    name, arts = _run(state)
    assert name.startswith("deliver-messages-20") and arts == []
