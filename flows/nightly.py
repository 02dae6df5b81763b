"""The nightly pipeline: what a user-operations team does every night, in order.

    pull customers and orders  ->  check them  ->  store them
    -> refresh tags and health  ->  score churn  ->  run campaigns  ->  tell the operator

Each stage is a flow of its own (deployable and runnable alone) whose body runs here, inside
the nightly run: its coarse tasks from ``tasks/`` are the nightly run's task runs. A nested
subflow costs about a second of API round trips by itself (flow run, three state changes),
which was a quarter of a steady night; as task runs of one flow run the stages cost
milliseconds each. This file only orchestrates.
"""
from __future__ import annotations

import time
from datetime import date
from typing import Annotated

from prefect import flow, get_run_logger

from flows import texts  # noqa: F401  (registers the Run form's words)
from flows.hooks import ALERT_HOOKS
from tasks.ingest import SOURCE_TABLES, check_suites_task, ingest_task, new_run_id
from tasks.runs import finish_run, stage_name, start_run
from userops import run_names
from userops.clock import shop_today
from userops.db import migrate
from userops.forms import param
from userops.i18n import t as text


@flow(name="ingest-sources", log_prints=True)
def ingest_sources(run_id: str, full_refresh: bool = False) -> dict:
    """Extract -> validate -> load, table by table (customers first: orders refer to them).
    Each table is one task run that streams its batch chunk by chunk, all or nothing."""
    check_suites_task()
    loaded = {}
    for table in SOURCE_TABLES:
        loaded[table] = ingest_task(table, run_id, full_refresh or False)
    return loaded


@flow(name="nightly", log_prints=True, flow_run_name=run_names.nightly, **ALERT_HOOKS)
def nightly(
    as_of: Annotated[date | None, param("param.nightly.as_of")] = None,
    full_refresh: Annotated[bool, param("param.nightly.full_refresh")] = False,
) -> dict:
    """The nightly run: pull customers and orders, check and store them, then run every
    nightly stage (tags, health, churn scores, campaigns, crisis check, digest).

    The Run form shows the catalogue's ``param.nightly.*`` (flows/texts.py) in the shop's language.

    Args:
        as_of: The business day to compute for, YYYY-MM-DD. Leave empty for today in the
            shop's timezone (Asia/Shanghai by default).
        full_refresh: Re-read every source from the beginning instead of only the records
            changed since the last run. Slower; use it after fixing data at the source.
    """
    as_of = as_of or shop_today()
    refuse_future_day(as_of)  # a form or deployment run as well as `userops run nightly --as-of`
    logger = get_run_logger()
    run_id = new_run_id("nightly")
    migrate()
    stats: dict = {"as_of": str(as_of), "stages": {}}
    start_run(run_id, "nightly", as_of, stats=stats)  # also kept in memory: the digest has it when the warehouse is down
    t0 = time.perf_counter()
    current = "ingest"
    try:
        t = time.perf_counter()
        stats["ingest"] = _body(ingest_sources)(run_id, full_refresh)
        stats["stages"]["ingest"] = round(time.perf_counter() - t, 2)
        for name, stage in _later_stages():
            current = name
            t = time.perf_counter()
            stats[name] = run_stage(name, stage, as_of, run_id, logger)
            stats["stages"][name] = round(time.perf_counter() - t, 2)
    except Exception as exc:
        stats["failed_stage"] = current
        stats["duration_s"] = round(time.perf_counter() - t0, 2)
        finish_run(run_id, "failed", stats, error=str(exc))
        raise
    stats["duration_s"] = round(time.perf_counter() - t0, 2)
    finish_run(run_id, "completed", stats)
    logger.info("%s", text("log.nightly.done", as_of=as_of, seconds=f"{stats['duration_s']:.1f}"))
    return stats


class FutureDay(ValueError):
    """The nightly run asked for a day after the shop's today. It would write that day's
    stage history and health snapshot ahead of time and plan the month's touches a second
    time (a recall in period 2030-01 on top of this month's): refused before anything runs."""

    key = "nightly.future_day"

    def __init__(self, day: date, today: date):
        self.day, self.today = day, today
        super().__init__(self.localized())

    def localized(self, lang: str | None = None) -> str:
        return text(self.key, lang, day=self.day.isoformat(), today=self.today.isoformat())


def refuse_future_day(as_of: date) -> None:
    """Raise :class:`FutureDay` when ``as_of`` is after today in the shop's timezone
    (``userops.clock.shop_today``: ``USEROPS_NOW`` pins it in tests); today itself is fine."""
    today = shop_today()
    if as_of > today:
        raise FutureDay(as_of, today)


# stages whose flow logs its own summary lines (flows/churn.py score_churn): not logged twice
LOGS_OWN_SUMMARY = {"churn"}


def run_stage(name: str, stage, as_of: date, run_id: str, logger) -> dict:
    """Run one stage inside the nightly run; its ``summary`` lines go to the run's log (the
    operator reads the night there), after the line naming the stage."""
    logger.info("%s", text("log.nightly.stage", stage=stage_name(name)))
    out = _body(stage)(as_of=as_of, run_id=run_id)
    if name not in LOGS_OWN_SUMMARY and isinstance(out, dict):
        for line in out.get("summary") or []:
            logger.info("%s", line)
    return out


def _body(stage):
    """The function a stage flow wraps, to run inside the nightly run (see the module doc)."""
    return getattr(stage, "fn", stage)


def _later_stages():
    """Stages after ingest, in order. Each is a subflow ``f(as_of=..., run_id=...) -> dict``."""
    from flows import stages

    return stages.NIGHTLY_STAGES
