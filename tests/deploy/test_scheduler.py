"""The Prefect server's scheduler creates the deployments' scheduled runs with the pinned
dependencies. (With SQLAlchemy 2.1 beside prefect 3.8.8 it failed every loop with
"Can't evaluate bulk DML statement" and no nightly ever ran on its schedule; the served
set-up of test_ops.py switches the scheduler off so that no 02:00 run appears mid-test.)"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from userops.deploy import free_port, load_prefect_yaml, render_prefect_yaml
from userops.settings import PROJECT_ROOT

pytestmark = [pytest.mark.xdist_group("deploy"), pytest.mark.slow]

PREFECT = str(Path(sys.executable).with_name("prefect"))


def test_scheduler_creates_the_nightly_runs(tmp_path):
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.schedules import CronSchedule

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2", DO_NOT_TRACK="1")
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api"
    try:
        with SyncPrefectClient(api) as c:
            deadline = time.time() + 120
            while c.api_healthcheck() is not None:
                assert proc.poll() is None and time.time() < deadline, (tmp_path / "server.log").read_text()[-3000:]
                time.sleep(0.5)
            nightly = next(d for d in render_prefect_yaml(load_prefect_yaml())["deployments"] if d["name"] == "nightly")
            sched = nightly["schedules"][0]
            dep = c.create_deployment(
                flow_id=c.create_flow_from_name("nightly"), name="nightly", entrypoint=nightly["entrypoint"], path=str(PROJECT_ROOT),
                schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron=sched["cron"], timezone=sched["timezone"]), active=True)],
            )
            runs = []
            while not runs and time.time() < deadline:
                runs = c.read_flow_runs(flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[dep])))
                time.sleep(1)
        assert runs, "the scheduler created no run: " + (tmp_path / "server.log").read_text()[-3000:]
        assert {r.state.type.value for r in runs} == {"SCHEDULED"}
        # 02:00 in the shop's timezone
        assert {r.expected_start_time.in_timezone(sched["timezone"]).strftime("%H:%M") for r in runs} == {"02:00"}
        assert "InvalidRequestError" not in (tmp_path / "server.log").read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
