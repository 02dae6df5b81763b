"""Links to a run's page in the Prefect UI exist only where the run's server outlives it.
With no PREFECT_API_URL (``make demo``, a local ``userops run``) Prefect runs the flow on a
temporary server that stops with the process: the digest and the failure alert carry no link
there (it pointed at prefect_ui_url, where nothing knows the run)."""
from __future__ import annotations

import uuid

from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.alerts.digest import run_link
from tasks.alerts.failures import flow_run_link


def test_a_run_on_a_lasting_server_is_linked():
    rid = str(uuid.uuid4())
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        assert run_link(rid) == flow_run_link(rid) == f"http://127.0.0.1:4200/runs/flow-run/{rid}"
        assert run_link("nightly-20261207-abc") is None  # not a Prefect run id


def test_a_run_on_prefects_temporary_server_is_not_linked():
    rid = str(uuid.uuid4())
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert run_link(rid) is None
        assert flow_run_link(rid) is None
