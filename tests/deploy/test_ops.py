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

import pandas as pd
import pytest
import requests
from prefect import flow, task

from tests.deploy.conftest import PREFECT, USEROPS, run_id_from_cli
from userops.deploy import deployable, render_prefect_yaml
from userops.runners import run_partitioned, task_runner
from userops.settings import PROJECT_ROOT

pytestmark = [pytest.mark.xdist_group("deploy"), pytest.mark.slow]

TERMINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _expected_names() -> list[str]:
    ready, _ = deployable(render_prefect_yaml())
    return [d["name"] for d in ready["deployments"]]


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

    # the operator's view: `userops serve --check`
    chk = subprocess.run([USEROPS, "serve", "--check"], cwd=PROJECT_ROOT, env=ops.env(), capture_output=True, text=True, timeout=120)
    assert chk.returncode == 0, chk.stdout + chk.stderr
    line = next(ln for ln in chk.stdout.splitlines() if "nightly/nightly" in ln)
    assert "cron 0 2 * * * (Asia/Shanghai)" in line and "concurrency 1 (ENQUEUE)" in line


def test_deployments_whose_flow_is_missing_are_reported_not_deployed(ops):
    _, skipped = deployable(render_prefect_yaml())
    for name, why in skipped:
        assert f"not deployed yet: {name} ({why})" in ops.output


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


@pytest.fixture(scope="module")
def nightly_runs(ops, second_worker):
    """Two nightly runs started one after the other — through the API, then through
    `prefect deployment run` — while the first is still running, with two workers polling."""
    with ops.client() as c:
        dep = _deployment(c, "nightly")
        api_run = c.create_flow_run_from_deployment(dep.id, parameters={})
        cli = subprocess.run([PREFECT, "deployment", "run", "nightly/nightly"], cwd=PROJECT_ROOT, env=ops.env(), capture_output=True, text=True, timeout=120)
        assert cli.returncode == 0, cli.stdout + cli.stderr
        cli_id = uuid.UUID(run_id_from_cli(cli.stdout))
        runs = _wait_terminal(c, [api_run.id, cli_id])
        states = {rid: c.read_flow_run_states(rid) for rid in runs}
    return {"api": runs[api_run.id], "cli": runs[cli_id], "states": states}


def _worker_log(ops) -> str:
    p = ops.home / "worker.log"
    return p.read_text(errors="replace")[-6000:] if p.exists() else ""


def test_nightly_run_through_the_api_completes_on_the_worker(ops, nightly_runs):
    run = nightly_runs["api"]
    assert run.state.is_completed(), f"{run.state}\n{_worker_log(ops)}"


def test_nightly_run_through_prefect_deployment_run_completes(ops, nightly_runs):
    run = nightly_runs["cli"]
    assert run.state.is_completed(), f"{run.state}\n{_worker_log(ops)}"


def test_two_overlapping_nightly_runs_do_not_both_proceed(nightly_runs):
    spans = {}
    for rid, states in nightly_runs["states"].items():
        ordered = sorted(states, key=lambda s: s.timestamp)
        running = [s.timestamp for s in ordered if s.type.value == "RUNNING"]
        end = [s.timestamp for s in ordered if s.type.value in TERMINAL]
        assert running and end
        spans[rid] = (running[0], end[-1], [s.name for s in ordered])
    (first_start, first_end, _), (second_start, _second_end, second_states) = sorted(spans.values(), key=lambda x: x[0])
    created = min(nightly_runs["api"].created, nightly_runs["cli"].created), max(nightly_runs["api"].created, nightly_runs["cli"].created)
    assert created[1] < first_end, "precondition: the second run was created while the first was still going"
    assert second_start >= first_end, "the second nightly run started before the first one finished"
    assert "AwaitingConcurrencySlot" in second_states, second_states


def test_nightly_artifacts_have_stable_keys(ops, nightly_runs):
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterParentFlowRunId

    with ops.client() as c:
        arts = c.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-quarantine"])))
        # one version per nightly run (the history of the key), each in a subflow of a nightly run
        assert len(arts) >= 2
        parents = set()
        for a in arts:
            sub = c.read_flow_run(a.flow_run_id)
            parents.add(sub.parent_task_run_id and c.read_task_run(sub.parent_task_run_id).flow_run_id)
        assert {nightly_runs["api"].id, nightly_runs["cli"].id} <= parents
        assert all("13800" not in (a.data or "") and "@" not in (a.data or "") for a in arts)


# ----------------------------------------------------------------------------- events
def test_complaint_spike_event_starts_the_crisis_deployment(ops):
    pytest.importorskip("flows.crisis", reason="flows/crisis.py (issue 7) is not written yet")
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
    pytest.importorskip("flows.campaigns", reason="flows/campaigns.py (issue 6) is not written yet")
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


def test_worker_only_needs_the_server_address(tmp_path):
    # A fresh process: in this one a session's Prefect test server may already be the API.
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(USEROPS_LANGUAGE="en", PREFECT_HOME=str(tmp_path / "prefect-home"))
    r = subprocess.run(
        [sys.executable, "-m", "userops.cli", "serve", "--worker-only"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stdout + r.stderr
    assert "--worker-only needs PREFECT_API_URL" in r.stdout + r.stderr


# ----------------------------------------------------------------------------- Dask
def _dask_worker() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return ""


@task
def _customer_totals(orders: pd.DataFrame) -> pd.DataFrame:
    """Per-customer figures of one partition (what scoring/audience steps look like)."""
    g = orders.groupby("customer_id").agg(orders=("order_id", "count"), spent=("amount", "sum"), last_paid=("paid_at", "max"))
    return g.reset_index().assign(worker=_dask_worker())


@flow(name="partitioned-totals")
def _totals_flow(orders: pd.DataFrame, n_partitions: int) -> pd.DataFrame:
    out = run_partitioned(_customer_totals, orders, key="customer_id", n_partitions=n_partitions)
    return out.sort_values("customer_id").reset_index(drop=True)


def _drain_prefect_workers() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for drain in (APILogWorker.drain_all, EventsWorker.drain_all):
        try:
            drain(timeout=10)
        except Exception:  # noqa: BLE001 - hygiene only
            pass


def test_dask_task_runner_gives_the_same_results_as_the_default(ops, ops_sample, monkeypatch):
    """The same flow with the default runner (one partition, threads in this process) and
    with a local Dask cluster of 2 workers (4 partitions): the same frame. The cluster uses
    threads here to keep the suite fast; USEROPS_DASK_PROCESSES=true (the default) and
    USEROPS_DASK_ADDRESS only change where the workers live."""
    from userops.settings import reset_settings

    orders = ops_sample.tables["orders"][0][["order_id", "customer_id", "amount", "paid_at"]].copy()
    orders["amount"] = orders["amount"].astype(float)
    assert orders["customer_id"].nunique() > 100

    monkeypatch.setenv("USEROPS_TASK_RUNNER", "default")
    reset_settings()
    with ops.api():
        runner = task_runner()
        assert type(runner).__name__ == "ThreadPoolTaskRunner"
        plain = _totals_flow.with_options(task_runner=runner)(orders, 1)

        monkeypatch.setenv("USEROPS_TASK_RUNNER", "dask")
        monkeypatch.setenv("USEROPS_DASK_WORKERS", "2")
        monkeypatch.setenv("USEROPS_DASK_PROCESSES", "false")
        reset_settings()
        runner = task_runner()
        assert type(runner).__name__ == "DaskTaskRunner"
        assert runner.cluster_kwargs["n_workers"] == 2 and runner.cluster_kwargs["processes"] is False
        dask = _totals_flow.with_options(task_runner=runner)(orders, 4)

        monkeypatch.setenv("USEROPS_DASK_ADDRESS", "tcp://10.0.0.5:8786")
        monkeypatch.delenv("USEROPS_DASK_PROCESSES")
        reset_settings()
        assert task_runner().address == "tcp://10.0.0.5:8786"
        monkeypatch.delenv("USEROPS_DASK_ADDRESS")
        reset_settings()
        assert task_runner().cluster_kwargs["processes"] is True
        _drain_prefect_workers()  # nothing of ours left queued for this server
    reset_settings()

    assert set(plain["worker"]) == {""}
    assert "" not in set(dask["worker"]), "the Dask run did not run on Dask workers"
    pd.testing.assert_frame_equal(plain.drop(columns="worker"), dask.drop(columns="worker"))
    expected = orders.groupby("customer_id")["amount"].sum().sort_index()
    assert plain.set_index("customer_id")["spent"].round(2).equals(expected.round(2))


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
