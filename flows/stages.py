"""The nightly stages after ingest, in the order they run.

Each entry is (name, subflow) where the subflow takes ``as_of`` and ``run_id`` and returns a
dict of figures for the digest. Stages are appended here as they land.
"""
from __future__ import annotations

from flows.reports import quarantine_report

NIGHTLY_STAGES: list = [
    ("quarantine-report", quarantine_report),  # right after ingest: tonight's rejected records
]
