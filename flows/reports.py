"""Reports the operator browses in the Prefect UI after each night.

The quarantine report runs right after ingest: what validation rejected tonight, by
table and rule, published as the ``nightly-quarantine`` artifact (one history per key).
"""
from __future__ import annotations

from datetime import date

from prefect import flow

from tasks.artifacts import quarantine_summary_task


@flow(name="quarantine-report", log_prints=True)
def quarantine_report(as_of: date, run_id: str) -> dict:
    """Publish tonight's quarantine summary (counts by table and rule, no personal data)."""
    return quarantine_summary_task(as_of, run_id)
