"""Pipeline-run bookkeeping: one row per flow run in ``pipeline_runs`` with its stats."""
from __future__ import annotations

import json
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from userops.db import get_engine


# what each run of this process knows of itself, kept in memory beside pipeline_runs: the
# nightly digest still has the run's status and stage outcomes when the warehouse cannot be
# read (tasks.alerts.digest); the last few runs only
_IN_MEMORY: dict[str, dict] = {}
_KEEP = 32


def _remember(run_id: str, **fields) -> None:
    rec = _IN_MEMORY.pop(str(run_id), {})
    rec.update(fields)
    _IN_MEMORY[str(run_id)] = rec
    while len(_IN_MEMORY) > _KEEP:
        _IN_MEMORY.pop(next(iter(_IN_MEMORY)))


def run_in_memory(run_id: str) -> dict | None:
    """The run as this process holds it (``flow``, ``as_of``, ``started_at``, ``status``,
    ``stats`` - the flow's own dict, filled as its stages finish -, ``error``), or None."""
    return _IN_MEMORY.get(str(run_id))


def forget_run(run_id: str) -> None:
    _IN_MEMORY.pop(str(run_id), None)


def start_run(run_id: str, flow: str, as_of: date | None, engine: Engine | None = None, stats: dict | None = None) -> None:
    """``stats``: the run's figures as the flow fills them (kept in memory, see ``run_in_memory``)."""
    _remember(run_id, flow=flow, as_of=as_of, started_at=datetime.utcnow(), status="running", stats=stats if stats is not None else {}, error=None)
    engine = engine or get_engine()
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM pipeline_runs WHERE run_id = :r"), {"r": run_id})
        conn.execute(
            sa.text("INSERT INTO pipeline_runs (run_id, flow, as_of, started_at, status) VALUES (:r, :f, :a, :s, 'running')"),
            {"r": run_id, "f": flow, "a": as_of, "s": datetime.utcnow()},
        )


def finish_run(run_id: str, status: str, stats: dict | None = None, error: str | None = None, engine: Engine | None = None) -> None:
    _remember(run_id, status=status, stats=stats or {}, error=error, finished_at=datetime.utcnow())  # first: the warehouse may be down
    engine = engine or get_engine()
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE pipeline_runs SET finished_at = :t, status = :s, stats = :st, error = :e WHERE run_id = :r"),
            {"t": datetime.utcnow(), "s": status, "st": json.dumps(stats or {}, ensure_ascii=False, default=str), "e": error, "r": run_id},
        )


def stage_name(name: str, lang: str | None = None) -> str:
    """A nightly stage in the operator's words (``nightly.stage_name.*``, flows/texts.py; a stage
    added to flows/stages.py without one keeps its code name): the run log and the digest."""
    from userops.i18n import t_or

    return t_or(f"nightly.stage_name.{name}", name, lang)
