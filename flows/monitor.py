"""The hourly watch over customers' voices, and the crisis stage of the nightly run.

    hourly:  feedback past the 24h promise -> listed, alerted once, acknowledged once
             complaint spikes per SKU      -> one event each (the crisis flow is triggered by it)
             crisis deadlines              -> reminders at 50% / 90%, escalation when late
             a dead join's leftovers       -> its SKUs taken down, its buyers' apologies planned
             crisis apologies              -> deferred ones sent, Compensate marked done
             complaint rate > 5%           -> the quality-trace alert with the SKUs driving it
             incidents done and quiet      -> closed, closing report published
    nightly: complaint spikes + crisis deadlines (so a night without the hourly watch still catches them)
"""
from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.hooks import ALERT_HOOKS
from tasks.crisis.compensate import advance_open_incidents, finish_orphaned_work
from tasks.crisis.deadlines import watch_deadlines_task
from tasks.crisis.feedback import feedback_sla_task, quality_trace_task
from tasks.crisis.feedback import summary_line as feedback_summary_line
from tasks.crisis.report import auto_close_task
from tasks.artifacts import run_summary_task
from tasks.crisis.spike import check_spikes_task
from userops import run_names
from userops.i18n import join_list, t


@task(name="crisis-finish-orphaned-work", cache_policy=NO_CACHE)
def finish_orphaned_work_task() -> dict:
    return finish_orphaned_work()


@task(name="crisis-advance-compensation", cache_policy=NO_CACHE)
def advance_compensation_task() -> dict:
    return advance_open_incidents()


@flow(name="hourly-monitor", log_prints=True, flow_run_name=run_names.hourly_monitor, **ALERT_HOOKS)
def hourly_monitor() -> dict:
    """Every hour: the 24h feedback promise, complaint spikes, crisis deadlines and the complaint-rate alert."""
    logger = get_run_logger()
    feedback = feedback_sla_task()
    spikes = check_spikes_task()
    deadlines = watch_deadlines_task()
    orphaned = finish_orphaned_work_task()  # before the sends and the closing: a dead join's SKU and buyers
    compensation = advance_compensation_task()
    quality = quality_trace_task()
    closed = auto_close_task()
    summary = _summary(spikes, deadlines, feedback)
    for line in summary:
        logger.info(line)
    run_summary_task(t("artifact.run.monitor", when=run_names.shop_minute()), summary, "monitor")  # readable in the UI, "nothing to do" included
    return {
        "feedback_sla": {k: v for k, v in feedback.items() if k != "overdue_ids"},
        "spikes": spikes,
        "deadlines": {k: v for k, v in deadlines.items() if k != "recorded"},
        "compensation": compensation,
        "orphaned_work": orphaned,
        "quality_trace": quality,
        "closed_incidents": closed,
        "summary": summary,
    }


@flow(name="crisis-nightly", log_prints=True)
def crisis_nightly(as_of: date, run_id: str) -> dict:
    """Nightly stage: complaint-spike check and crisis deadline watch."""
    spikes = check_spikes_task()
    deadlines = watch_deadlines_task()
    return {"spikes": spikes, "deadlines": {k: v for k, v in deadlines.items() if k != "recorded"},
            "summary": _summary(spikes, deadlines, None)}


def _summary(spikes: dict, deadlines: dict, feedback: dict | None) -> list[str]:
    lines = []
    if spikes.get("new_spikes"):
        lines.append(t("monitor.summary.spikes", n=len(spikes["new_spikes"]), skus=join_list(spikes["new_spikes"])))
    if deadlines.get("reminders") or deadlines.get("escalations"):
        lines.append(t("monitor.summary.deadlines", r=deadlines["reminders"], e=deadlines["escalations"]))
    if feedback and feedback.get("overdue"):
        lines.append(feedback_summary_line(feedback))  # planned / sent / waiting for a channel
    return lines

