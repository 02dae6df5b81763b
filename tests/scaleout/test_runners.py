"""userops.runners on its own: the configured task runner (default threads, a local Dask
cluster, a remote scheduler) and run_partitioned giving the same frame with 1 partition on
the default runner and 4 partitions on a 2-worker Dask cluster (threads, to keep it fast;
USEROPS_DASK_PROCESSES=true, the default, and USEROPS_DASK_ADDRESS only change where the
workers live)."""
from __future__ import annotations

import pandas as pd
import pytest
from prefect import flow, task

from userops.runners import default_partitions, run_partitioned, task_runner
from userops.settings import reset_settings

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect]


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


def test_dask_task_runner_gives_the_same_results_as_the_default(prefect_server, monkeypatch):
    from userops.sample.generator import generate

    orders = generate(300, seed=3, as_of="2026-11-20", with_events=False).orders[["order_id", "customer_id", "amount", "paid_at"]].copy()
    orders["amount"] = orders["amount"].astype(float)
    assert orders["customer_id"].nunique() > 100

    monkeypatch.setenv("USEROPS_TASK_RUNNER", "default")
    reset_settings()
    runner = task_runner()
    assert type(runner).__name__ == "ThreadPoolTaskRunner" and default_partitions() == 1
    plain = _totals_flow.with_options(task_runner=runner)(orders, 1)

    monkeypatch.setenv("USEROPS_TASK_RUNNER", "dask")
    monkeypatch.setenv("USEROPS_DASK_WORKERS", "2")
    monkeypatch.setenv("USEROPS_DASK_PROCESSES", "false")
    reset_settings()
    runner = task_runner()
    assert type(runner).__name__ == "DaskTaskRunner" and default_partitions() == 4
    assert runner.cluster_kwargs["n_workers"] == 2 and runner.cluster_kwargs["processes"] is False
    dask = _totals_flow.with_options(task_runner=runner)(orders, 4)

    monkeypatch.setenv("USEROPS_DASK_ADDRESS", "tcp://10.0.0.5:8786")
    monkeypatch.setenv("USEROPS_DASK_PARTITIONS", "12")
    monkeypatch.delenv("USEROPS_DASK_PROCESSES")
    reset_settings()
    assert task_runner().address == "tcp://10.0.0.5:8786" and default_partitions() == 12
    monkeypatch.delenv("USEROPS_DASK_ADDRESS")
    reset_settings()
    assert task_runner().cluster_kwargs["processes"] is True
    for k in ("USEROPS_TASK_RUNNER", "USEROPS_DASK_WORKERS", "USEROPS_DASK_PARTITIONS"):
        monkeypatch.delenv(k)
    reset_settings()

    assert set(plain["worker"]) == {""}
    assert "" not in set(dask["worker"]), "the Dask run did not run on Dask workers"
    pd.testing.assert_frame_equal(plain.drop(columns="worker"), dask.drop(columns="worker"))
    expected = orders.groupby("customer_id")["amount"].sum().sort_index()
    assert plain.set_index("customer_id")["spent"].round(2).equals(expected.round(2))


def test_partition_map_keeps_the_frames_row_order(prefect_server):
    from prefect.task_runners import ThreadPoolTaskRunner

    from userops.runners import PartitionMap

    @task
    def double(df: pd.DataFrame, factor: int) -> pd.DataFrame:
        return df.assign(y=df["x"] * factor)

    df = pd.DataFrame({"customer_id": [f"C{i:04d}" for i in range(500)], "x": range(500)}, index=range(1000, 0, -2))
    with ThreadPoolTaskRunner() as runner:
        out = PartitionMap(runner, 4)(double, df, factor=3)
        empty = PartitionMap(runner, 4)(double, df.iloc[:0], factor=3)
    assert out.index.equals(df.index) and (out["y"] == df["x"] * 3).all()
    assert len(empty) == 0
