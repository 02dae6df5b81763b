"""Thin Prefect task wrappers for the alert steps (the work is in the plain functions)."""
from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE


@task(name="deliver-alerts", retries=0, cache_policy=NO_CACHE)  # a side effect: never cached
def deliver_task() -> dict:
    """Deliver due alerts; a channel that is down is reported, never raised."""
    import logging

    from tasks.alerts.outbox import deliver_pending

    try:
        return deliver_pending()
    except Exception as exc:  # e.g. the warehouse is unreachable: alerts stay queued
        from userops.i18n import t

        logging.getLogger("userops.alerts").warning("%s", t("log.alerts.delivery_failed", error=type(exc).__name__))
        return {"error": type(exc).__name__}


@task(name="queue-crash-alert", cache_policy=NO_CACHE)
def queue_crash_task(flow_run_ref: str) -> int:
    from tasks.alerts.failures import queue_crashed_run

    return queue_crashed_run(flow_run_ref)
