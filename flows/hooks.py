"""State hooks shared by every flow: ``@flow(..., **ALERT_HOOKS)``.

* on_failure / on_crashed: queue a ``flow_failed`` alert (flow name, scrubbed error
  summary, link to the run in the Prefect UI) - plus a ``validation`` alert when a source
  batch was rejected - and try to deliver it right away.
* on_completion: when the flow returned a nightly ingest result (``{"ingest": {table:
  {"read", "loaded", "quarantined"}}}``), alert on a quarantine share above
  ``alerts.quarantine_share_max``.
* the nightly run (flow ``nightly``), completed or failed: finalize its digest with the
  run's final figures and deliver it (a failed night gets a digest too).

Hooks never raise and never block a run on a channel that is down: what cannot be
delivered stays in the outbox for the next delivery pass. Crashes that kill the process
(so no hook runs) are caught by the Prefect automation in ``tasks.alerts.automations``.
"""
from __future__ import annotations

import logging

log = logging.getLogger("userops.alerts")


def _deliver() -> None:
    try:
        from tasks.alerts import deliver_pending

        deliver_pending()
    except Exception as exc:
        log.warning("alerts: delivery from a state hook failed (%s); alerts stay in the outbox", type(exc).__name__)


def alert_on_failure(flow, flow_run, state) -> None:
    _flow_problem(flow, flow_run, state, crashed=False)


def alert_on_crashed(flow, flow_run, state) -> None:
    _flow_problem(flow, flow_run, state, crashed=True)


NIGHTLY_FLOW = "nightly"


def _is_nightly_root(flow, flow_run) -> bool:
    return getattr(flow, "name", None) == NIGHTLY_FLOW and not getattr(flow_run, "parent_task_run_id", None)


def _finalize_digest(flow_run, as_of=None) -> None:
    try:
        from tasks.alerts.digest import finalize_digest

        finalize_digest(str(flow_run.id), as_of)
    except Exception as exc:
        log.warning("alerts: could not finalize the nightly digest (%s)", type(exc).__name__)


def _flow_problem(flow, flow_run, state, crashed: bool) -> None:
    try:
        from tasks.alerts.failures import queue_flow_failure

        queue_flow_failure(getattr(flow, "name", "?"), flow_run, state, crashed=crashed)
    except Exception as exc:
        log.warning("alerts: could not queue the failure alert of %s (%s)", getattr(flow, "name", "?"), type(exc).__name__)
    if _is_nightly_root(flow, flow_run):
        _finalize_digest(flow_run, (getattr(flow_run, "parameters", None) or {}).get("as_of"))
    _deliver()


def check_result_on_completion(flow, flow_run, state) -> None:
    try:
        result = state.result(raise_on_failure=False)
    except Exception:
        return
    if not isinstance(result, dict):
        return
    queued = False
    if isinstance(result.get("ingest"), dict):
        try:
            from tasks.alerts.failures import flow_run_link, queue_quarantine_spike, root_run

            root_id, _, _ = root_run(flow_run)
            queued = bool(queue_quarantine_spike(result["ingest"], root_id, flow_run_link(flow_run.id)))
        except Exception as exc:
            log.warning("alerts: quarantine check of %s failed (%s)", getattr(flow, "name", "?"), type(exc).__name__)
    if _is_nightly_root(flow, flow_run):
        _finalize_digest(flow_run, result.get("as_of"))
        queued = True
    if queued:
        _deliver()


ALERT_HOOKS: dict = {
    "on_failure": [alert_on_failure],
    "on_crashed": [alert_on_crashed],
    "on_completion": [check_result_on_completion],
}
