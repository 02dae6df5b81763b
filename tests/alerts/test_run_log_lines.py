"""The operator's lines of the ``userops.*`` loggers reach the flow run's log in Prefect (what
the UI shows). Prefect gives these loggers its API handler (PREFECT_LOGGING_EXTRA_LOGGERS) but
not a level: they inherited the root's WARNING, and every INFO line (ingest per table, the
crisis steps, …) was dropped before it reached the run log."""
from __future__ import annotations

import logging
import time

import pytest
from prefect import flow

import userops  # noqa: F401  (sets the userops loggers' level, as every userops process does)

pytestmark = [pytest.mark.xdist_group("prefect")]


def _messages(run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return [log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))]


def test_userops_info_lines_reach_the_run_log_and_debug_lines_do_not(prefect_server):
    @flow(name="run-log-probe")
    def probe():
        from prefect.runtime import flow_run

        logging.getLogger("userops.ingest").info("customers：抽取 %s 行", "300")
        logging.getLogger("userops.tags").debug("engineer-only detail")
        return flow_run.id

    run_id = probe()
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    deadline = time.time() + 20
    while True:
        messages = _messages(run_id)
        if any("抽取 300 行" in m for m in messages) or time.time() > deadline:
            break
        time.sleep(0.3)
    assert any(m == "customers：抽取 300 行" for m in messages), messages
    assert not any("engineer-only" in m for m in messages)
