"""Where heavy per-partition work runs: in the flow's process, or on a Dask cluster.

Scoring and audience planning are set-based per partition of customers (a few partitions,
never a task per customer). A flow that does such work takes its task runner from here::

    from userops.runners import run_partitioned, task_runner

    @flow(task_runner=task_runner())
    def score_churn(as_of, run_id):
        scores = run_partitioned(score_partition, features, key="customer_id")

Configured by settings (env vars):

* ``USEROPS_TASK_RUNNER=default`` (the default): Prefect's thread pool in the flow's process.
* ``USEROPS_TASK_RUNNER=dask`` with ``USEROPS_DASK_ADDRESS=tcp://host:8786``: prefect-dask's
  ``DaskTaskRunner`` on that running Dask cluster (``dask scheduler`` / ``dask worker``
  on several machines, each with this project installed).
* ``USEROPS_TASK_RUNNER=dask`` without an address: a local Dask cluster of
  ``USEROPS_DASK_WORKERS`` (default 2) processes (threads with ``USEROPS_DASK_PROCESSES=false``),
  started for the flow run and stopped after.

The result does not depend on the runner: partitions are a stable hash of the key, and
the partial results are put back together in partition order.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import numpy as np
import pandas as pd

from userops.settings import Settings, get_settings


def task_runner(settings: Settings | None = None):
    """The configured task runner (a new instance: a runner is used by one flow run)."""
    s = settings or get_settings()
    if s.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if s.dask_address:
            return DaskTaskRunner(address=s.dask_address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": max(1, int(s.dask_workers)),
                "threads_per_worker": 1,
                "processes": bool(s.dask_processes),
                "dashboard_address": None,
            }
        )
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner()


def dask_enabled(settings: Settings | None = None) -> bool:
    """True when heavy per-partition work should go to Dask (``USEROPS_TASK_RUNNER=dask``)."""
    return (settings or get_settings()).task_runner == "dask"


def default_partitions(settings: Settings | None = None) -> int:
    """How many partitions to cut the work into: one per thread is pointless for pandas
    work in one process, so 1 by default; on Dask ``USEROPS_DASK_PARTITIONS`` or two per
    Dask worker (coarse: tens of tasks, never one per customer)."""
    s = settings or get_settings()
    if s.task_runner != "dask":
        return 1
    fixed = int(getattr(s, "dask_partitions", 0) or 0)
    return max(1, fixed) if fixed > 0 else max(1, 2 * int(s.dask_workers))


@contextmanager
def partition_runner(settings: Settings | None = None) -> Iterator[Any]:
    """The configured task runner, started for a block of partitioned work and shut down
    after it (a local Dask cluster lives only that long; a remote one is only connected to).

    Tasks submitted to it from inside a flow run are task runs of that flow run (the
    Prefect context travels with each submission), wherever Dask runs them."""
    runner = task_runner(settings)
    with runner:
        yield runner


def submit_partitions(runner, task, partitions: list[dict[str, Any]], **common: Any) -> list[Any]:
    """Submit ``task(**partition, **common)`` for each partition to ``runner`` (see
    ``partition_runner``) and return the results in partition order. A failed partition
    raises its exception here (the whole step fails, nothing is half-written by the caller)."""
    futures = [runner.submit(task, parameters={**p, **common}) for p in partitions]
    return [f.result() for f in futures]


def partition_labels(keys: pd.Series, n_partitions: int) -> np.ndarray:
    """A stable partition number 0..n-1 per key (same key, same partition, any machine)."""
    if n_partitions <= 1:
        return np.zeros(len(keys), dtype=np.int64)
    h = pd.util.hash_pandas_object(keys.astype("string"), index=False).to_numpy()
    return (h % np.uint64(n_partitions)).astype(np.int64)


def partition_frame(df: pd.DataFrame, key: str, n_partitions: int) -> list[pd.DataFrame]:
    """``df`` cut into ``n_partitions`` frames by a stable hash of ``df[key]``; every row of a
    key lands in the same partition and rows keep their order. Empty partitions are kept."""
    labels = partition_labels(df[key], n_partitions)
    return [df[labels == i] for i in range(max(1, n_partitions))]


def run_partitioned(task, df: pd.DataFrame, key: str, n_partitions: int | None = None, **kwargs: Any) -> pd.DataFrame:
    """Run ``task(partition, **kwargs)`` on each partition of ``df`` with the flow's task
    runner, and concatenate the partial frames in partition order.

    Call it inside a flow; ``task`` is a Prefect task taking a DataFrame first and
    returning a DataFrame. Per-key work (aggregations by customer, scores, audiences) gives
    the same rows whatever the number of partitions; sort the result if order matters."""
    n = n_partitions or default_partitions()
    parts = partition_frame(df, key, n)
    futures = [task.submit(p, **kwargs) for p in parts]
    results = [f.result() for f in futures]
    results = [r for r in results if r is not None and len(r.columns)]
    if not results:
        return pd.DataFrame()
    return pd.concat(results, ignore_index=True)


class PartitionMap:
    """``pm(task, df, **kwargs)``: ``task(df=partition, **kwargs)`` on each partition of
    ``df`` (stable hash of ``key``) on a started runner, the partial frames put back
    together in ``df``'s own row order (index kept). What ``plan_campaign`` takes as
    ``map_partitions`` to plan an audience on Dask."""

    def __init__(self, runner, n_partitions: int | None = None, key: str = "customer_id"):
        self.runner = runner
        self.n = n_partitions or default_partitions()
        self.key = key

    def __call__(self, task, df: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        parts = [{"df": p} for p in partition_frame(df, self.key, self.n)]
        results = submit_partitions(self.runner, task, parts, **kwargs)
        nonempty = [r for r in results if len(r)] or results[:1]
        out = pd.concat(nonempty) if len(nonempty) > 1 else nonempty[0]
        return out.loc[df.index]


_PARTITION_MAP: ContextVar[PartitionMap | None] = ContextVar("userops_partition_map", default=None)


@contextmanager
def use_partition_map(pm: PartitionMap) -> Iterator[PartitionMap]:
    """Make ``pm`` the partition map of this block (``current_partition_map``)."""
    token = _PARTITION_MAP.set(pm)
    try:
        yield pm
    finally:
        _PARTITION_MAP.reset(token)


def current_partition_map() -> PartitionMap | None:
    """The PartitionMap a flow set with ``use_partition_map`` (None: work in one piece)."""
    return _PARTITION_MAP.get()
