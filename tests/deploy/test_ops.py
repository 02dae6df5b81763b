"""userops run like production, against a real Prefect server (on PostgreSQL) started by
``userops serve``: deployments from prefect.yaml, runs through the API and the CLI
executed by a process worker, event triggers, the nightly concurrency limit, Ctrl-C.

The tests of this module run in order on one pytest worker (the last one stops serve).
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone

import pytest
import requests

from tests.deploy.conftest import PREFECT, USEROPS, run_id_from_cli
from userops.deploy import deployable, render_prefect_yaml
from userops.settings import PROJECT_ROOT

pytestmark = [pytest.mark.xdist_group("deploy"), pytest.mark.slow]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _expected_names() -> list[str]:
    """Every deployment of prefect.yaml: a flow that does not load must fail the test, not
    drop out of what it expects."""
    return [d["name"] for d in render_prefect_yaml()["deployments"]]


def _deployment(c, name: str):
    for d in c.read_deployments():
        if d.name == name:
            return d
    raise AssertionError(f"deployment {name!r} is not on the server")


def _wait_terminal(c, run_ids, timeout: float = 240.0):
    deadline = time.monotonic() + timeout
    while True:
        runs = {rid: c.read_flow_run(rid) for rid in run_ids}
        if all(r.state and r.state.type.value in TERMINAL for r in runs.values()):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError("flow runs did not finish in time: " + ", ".join(f"{r.name}={r.state.name if r.state else None}" for r in runs.values()))
        time.sleep(1.0)


def _emit(ops, event: str, resource_id: str, payload: dict) -> str:
    """Emit one event to the server (POST /api/events, what emit_event's client does)."""
    eid = str(uuid.uuid4())
    body = [
        {
            "id": eid,
            "occurred": datetime.now(timezone.utc).isoformat(),
            "event": event,
            "resource": {"prefect.resource.id": resource_id},
            "payload": payload,
        }
    ]
    r = requests.post(f"{ops.api_url}/events", json=body, timeout=10)
    assert r.status_code in (200, 204), r.text
    return eid


def _runs_of(c, deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return c.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))


def _wait_for_run(c, deployment_id, match, timeout: float = 60.0):
    """The first run of the deployment whose parameters satisfy ``match`` (the nightly runs
    may have triggered runs of their own with other figures)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [r for r in _runs_of(c, deployment_id) if match(r.parameters)]
        if runs:
            return runs[0]
        time.sleep(0.5)
    return None


def _wait_picked_up(c, run_id, timeout: float = 90.0):
    """Until the worker has taken the run (it left Scheduled)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.read_flow_run(run_id)
        if r.state and r.state.type.value != "SCHEDULED":
            return r
        time.sleep(0.5)
    return c.read_flow_run(run_id)


def _cancel(c, run_id) -> None:
    """Stop a triggered run we only needed to see start (it may wait for a human)."""
    from prefect.states import Cancelling

    try:
        r = c.read_flow_run(run_id)
        if r.state and r.state.type.value not in TERMINAL:
            c.set_flow_run_state(run_id, Cancelling(), force=True)
    except Exception:  # noqa: BLE001 - best effort; serve's stop ends it anyway
        pass


# ----------------------------------------------------------------------------- deployed
def test_serve_deploys_every_deployment_with_its_schedule(ops):
    out = ops.output
    assert "Prefect server is up" in out and "Work pool userops-pool: created (process type)" in out
    assert "postgresql+asyncpg://" in out  # the server's database: the PostgreSQL one
    with ops.client() as c:
        pool = c.read_work_pool("userops-pool")
        assert pool.type == "process"
        names = {d.name for d in c.read_deployments()}
        missing = set(_expected_names()) - names
        assert not missing, f"not deployed: {missing}\n{out}"

        nightly = _deployment(c, "nightly")
        assert nightly.work_pool_name == "userops-pool"
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in nightly.schedules] == [("0 2 * * *", "Asia/Shanghai", True)]
        assert nightly.global_concurrency_limit.limit == 1
        assert nightly.concurrency_options.collision_strategy.value == "ENQUEUE"
        # the UI's Run form explains itself
        props = nightly.parameter_openapi_schema["properties"]
        assert set(props) == {"as_of", "full_refresh"}
        assert all(p.get("description") for p in props.values())
        assert props["full_refresh"]["default"] is False
        # workers run the flows from the project directory
        assert nightly.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}]
    # the warehouse's tables exist before the worker starts: a deliver-messages run started
    # from the UI first (before any nightly run migrated) found no touches table
    assert "Warehouse schema up to date" in out and "Worker started" in out
    assert out.index("Warehouse schema up to date") < out.index("Worker started")
    # the listing names how each deployment starts: the crash alert on its automation's event
    # (listed before serve created the automation, it said "by hand" while --check named the event)
    crashed = next(ln for ln in out.splitlines() if "/alert-crashed-run" in ln)
    assert "on event prefect.flow-run.Crashed" in crashed and "by hand" not in crashed, out



def test_every_flow_loads_and_none_is_reported_missing(ops):
    """Every flow is written: serve skips none (the report of one that does not load is
    tested in test_prefect_yaml.py)."""
    _, skipped = deployable(render_prefect_yaml())
    assert skipped == []
    assert "not deployed yet" not in ops.output


# ----------------------------------------------------------------------------- nightly runs
@pytest.fixture(scope="module")
def second_worker(ops):
    """A second machine's worker (`userops serve --worker-only`), started with the nightly
    runs so either worker may take either run."""
    proc = subprocess.Popen(
        [USEROPS, "serve", "--worker-only"],
        cwd=PROJECT_ROOT,
        env={**ops.serve_env, "PREFECT_API_URL": ops.api_url, "PREFECT_HOME": str(ops.home / "second-machine")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    yield {"proc": proc}
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _first_running(states):
    ordered = sorted(states, key=lambda s: s.timestamp)
    return next((s.timestamp for s in ordered if s.type.value == "RUNNING"), None)


def _quarantine_artifacts(c):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    return c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-quarantine"])))


def _nightly_of_artifact(c, a):
    """The nightly run that made artifact ``a`` (its stages run inside it; a stage run as a
    subflow of its own would point to the nightly through its parent task run)."""
    run = c.read_flow_run(a.flow_run_id)
    if run.parent_task_run_id:
        return c.read_task_run(run.parent_task_run_id).flow_run_id
    return run.id


@pytest.fixture(scope="module")
def nightly_runs(ops, second_worker):
    """Two nightly runs started one after the other — through `prefect deployment run`, then
    through the API — while the first is still running, with two workers polling; and a
    deliver-messages run through the API alongside.

    The first nightly run and the deliver-messages run go to completion. The second nightly
    run must wait for the first (concurrency limit 1) and then be started by a worker; once
    it has run its first stages (its quarantine artifact, the second version of that key) it
    is cancelled: the rest of a second night proves nothing the first did not, and this
    fixture is the suite's longest wait. ``userops serve --check`` runs meanwhile."""
    check = subprocess.Popen([USEROPS, "serve", "--check"], cwd=PROJECT_ROOT, env=ops.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with ops.client() as c:
        dep = _deployment(c, "nightly")
        cli = subprocess.run([PREFECT, "deployment", "run", "nightly/nightly"], cwd=PROJECT_ROOT, env=ops.env(), capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        cli_id = uuid.UUID(run_id_from_cli(cli.stdout))
        api_run = c.create_flow_run_from_deployment(dep.id, parameters={})
        deliver = c.create_flow_run_from_deployment(_deployment(c, "deliver-messages").id, parameters={})
        first = _wait_terminal(c, [cli_id, deliver.id])
        # the second night: waits for the slot, then a worker starts it; stop it after its first
        # stage (unless it got the slot first after all: then it has finished already, or does now)
        deadline = time.monotonic() + 240
        second = c.read_flow_run(api_run.id)
        api_first = _first_running(c.read_flow_run_states(api_run.id)) or None
        cli_first = _first_running(c.read_flow_run_states(cli_id))
        if api_first is not None and cli_first is not None and api_first < cli_first:
            second = _wait_terminal(c, [api_run.id])[api_run.id]
        while time.monotonic() < deadline:
            second = c.read_flow_run(api_run.id)
            if second.state and second.state.type.value in TERMINAL:
                break
            if second.state and second.state.type.value == "RUNNING" and any(_nightly_of_artifact(c, a) == api_run.id for a in _quarantine_artifacts(c)):
                break
            time.sleep(1.0)
        second_states = c.read_flow_run_states(api_run.id)
        _cancel(c, api_run.id)
        states = {cli_id: c.read_flow_run_states(cli_id), api_run.id: second_states}
        artifacts = [(a, _nightly_of_artifact(c, a)) for a in _quarantine_artifacts(c)]
    check_out, _ = check.communicate(timeout=120)
    return {"cli": first[cli_id], "api": second, "deliver": first[deliver.id], "states": states, "artifacts": artifacts,
            "check": (check.returncode, check_out)}


def _worker_log(ops) -> str:
    p = ops.home / "worker.log"
    return p.read_text(errors="replace")[-6000:] if p.exists() else ""


def test_serve_check_lists_every_deployment_with_its_schedule(nightly_runs):
    # the operator's view: `userops serve --check` (ran while the nightly runs went on)
    rc, out = nightly_runs["check"]
    assert rc == 0, out
    line = next(ln for ln in out.splitlines() if "nightly/nightly" in ln)
    assert "daily at 02:00 (Asia/Shanghai)" in line and "concurrency 1 (ENQUEUE)" in line


def test_nightly_run_through_prefect_deployment_run_completes(ops, nightly_runs):
    run = nightly_runs["cli"]
    assert run.state.is_completed(), f"{run.state}\n{_worker_log(ops)}"


def test_runs_through_the_api_are_executed_by_a_worker(ops, nightly_runs):
    deliver = nightly_runs["deliver"]
    assert deliver.state.is_completed(), f"{deliver.state}\n{_worker_log(ops)}"
    # the second nightly run (through the API) was started by a worker once the slot was free
    assert _first_running(nightly_runs["states"][nightly_runs["api"].id]) is not None, [s.name for s in nightly_runs["states"][nightly_runs["api"].id]]
    assert nightly_runs["api"].state.type.value in ("RUNNING", "COMPLETED"), nightly_runs["api"].state


def test_two_overlapping_nightly_runs_do_not_both_proceed(nightly_runs):
    runs = {r.id: r for r in (nightly_runs["cli"], nightly_runs["api"])}
    spans = []
    for rid, states in nightly_runs["states"].items():
        ordered = sorted(states, key=lambda s: s.timestamp)
        end = [s.timestamp for s in ordered if s.type.value in TERMINAL]
        spans.append((_first_running(ordered), end[-1] if end else None, [s.name for s in ordered], runs[rid]))
    assert all(start is not None for start, *_ in spans), [names for _, _, names, _ in spans]
    (first_start, first_end, _, first), (second_start, _, second_states, second) = sorted(spans, key=lambda x: x[0])
    assert first_end is not None, "the first nightly run did not finish"
    assert second.created < first_end, "precondition: the second run was created while the first was still going"
    assert second_start >= first_end, "the second nightly run started before the first one finished"
    assert "AwaitingConcurrencySlot" in second_states, second_states


def test_nightly_artifacts_have_stable_keys(ops, nightly_runs):
    arts = nightly_runs["artifacts"]
    # one version per nightly run (the history of the key), each made by a nightly run
    assert len(arts) >= 2
    assert {nightly_runs["api"].id, nightly_runs["cli"].id} <= {parent for _, parent in arts}
    assert all("13800" not in (a.data or "") and "@" not in (a.data or "") for a, _ in arts)


# ----------------------------------------------------------------------------- events
def test_complaint_spike_event_starts_the_crisis_deployment(ops):
    with ops.client() as c:
        dep = _deployment(c, "crisis-response")
        _emit(ops, "userops.complaints.spike", "userops.sku.SKU0007", {"skus": ["SKU0007", "SKU0011"], "complaints": 12, "window_hours": 2})
        run = _wait_for_run(c, dep.id, lambda p: "SKU0011" in str(p.get("skus")))
        assert run is not None, "the complaint-spike event did not start the crisis deployment"
        try:
            assert run.parameters["skus"] == ["SKU0007", "SKU0011"]  # a list, not its text
            assert run.parameters["reason"] == "complaint spike: 12 complaints in 2h"
            assert run.parameters["severity"] == "high"
            picked = _wait_picked_up(c, run.id)
            assert picked.state.type.value != "SCHEDULED", "the worker did not start the crisis run"
        finally:
            _cancel(c, run.id)


def test_silent_share_event_starts_the_recall_plan(ops):
    with ops.client() as c:
        dep = _deployment(c, "silent-share-recall")
        _emit(ops, "userops.health.silent-share-high", "userops.health", {"as_of": "2025-12-31", "silent_share": 0.4137, "threshold": 0.35})
        run = _wait_for_run(c, dep.id, lambda p: str(p.get("as_of")) == "2025-12-31")
        assert run is not None, "the silent-share event did not start the recall plan"
        try:
            assert run.parameters["silent_share"] == pytest.approx(0.4137)  # a number, not its text
            assert str(run.parameters["as_of"]) == "2025-12-31"
            picked = _wait_picked_up(c, run.id)
            assert picked.state.type.value != "SCHEDULED", "the worker did not start the recall run"
        finally:
            _cancel(c, run.id)


# ----------------------------------------------------------------------------- more machines
def test_a_second_worker_joins_with_serve_worker_only(ops, second_worker):
    """What an extra machine runs: `userops serve --worker-only` against PREFECT_API_URL
    (it took part in the nightly runs above); Ctrl-C stops it."""
    proc = second_worker["proc"]
    with ops.client() as c:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline and proc.poll() is None:
            workers = c.read_workers_for_work_pool("userops-pool")
            if len(workers) >= 2:
                break
            time.sleep(1)
    assert len(workers) >= 2, f"the second worker did not join the pool: {[w.name for w in workers]}"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Worker started on work pool userops-pool" in out and "Stopped." in out
    assert "Warning" not in out  # same checkout path as the deployments'


# ----------------------------------------------------------------------------- stop
def test_ctrl_c_stops_the_worker_and_the_server(ops):
    import psutil

    kids = psutil.Process(ops.proc.pid).children(recursive=True)
    assert kids, "serve has no server/worker processes"
    ops.proc.send_signal(signal.SIGINT)
    assert ops.proc.wait(90) == 0, ops.output
    assert "Stopped." in ops.output
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive, f"left running: {[p.pid for p in alive]}"
    with pytest.raises(requests.RequestException):
        requests.get(f"{ops.api_url}/health", timeout=2)
