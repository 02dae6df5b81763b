"""Pipeline-run bookkeeping: one row per flow run in ``pipeline_runs`` with its stats."""
from __future__ import annotations

import json
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userops.db import get_engine


def start_run(run_id: str, flow: str, as_of: date | None, engine: Engine | None = None) -> None:
    engine = engine or get_engine()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM pipeline_runs WHERE run_id = :r"), {"r": run_id})
        conn.execute(
            sa.text("INSERT INTO pipeline_runs (run_id, flow, as_of, started_at, status) VALUES (:r, :f, :a, :s, 'running')"),
            {"r": run_id, "f": flow, "a": as_of, "s": datetime.utcnow()},
        )


def finish_run(run_id: str, status: str, stats: dict | None = None, error: str | None = None, engine: Engine | None = None) -> None:
    engine = engine or get_engine()
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE pipeline_runs SET finished_at = :t, status = :s, stats = :st, error = :e WHERE run_id = :r"),
            {"t": datetime.utcnow(), "s": status, "st": json.dumps(stats or {}, ensure_ascii=False, default=str), "e": error, "r": run_id},
        )


def stage_name(name: str, lang: str | None = None) -> str:
    """A nightly stage in the operator's words (``nightly.stage_name.*``, flows/texts.py; a stage
    added to flows/stages.py without one keeps its code name): the run log and the digest."""
    from userops.i18n import t

    try:
        return t(f"nightly.stage_name.{name}", lang)
    except KeyError:
        return name
