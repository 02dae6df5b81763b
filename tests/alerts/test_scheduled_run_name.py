"""A scheduled run is named after its slot (real test server): Prefect starts the 14:00
hourly watch a moment early, at 13:59:58; its name and its artifact both say 14:00."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect]


def test_scheduled_hourly_watch_is_named_after_its_slot(prefect_server, warehouse, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.flow_engine import run_flow
    from prefect.states import Scheduled

    from flows.monitor import hourly_monitor

    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T05:59:58")  # 13:59:58 in Shanghai: started early
    slot = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)  # the 14:00 slot
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("hourly-monitor")
        deployment_id = client.create_deployment(flow_id=flow_id, name="test-scheduled-name", entrypoint="flows/monitor.py:hourly_monitor")
        run = client.create_flow_run_from_deployment(deployment_id, state=Scheduled(scheduled_time=slot))
    state = run_flow(hourly_monitor, flow_run=run, return_type="state")
    assert state.is_completed()
    with get_client(sync_client=True) as client:
        name = client.read_flow_run(run.id).name
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert name == "hourly-monitor-2026-11-20 14:00"
    (art,) = [a for a in arts if a.key == "hourly-monitor"]
    assert "每小时巡检 2026-11-20 14:00" in art.data
