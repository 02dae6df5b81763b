"""State hooks shared by every flow: ``@flow(..., **ALERT_HOOKS)``.

* on_failure / on_crashed: queue a ``flow_failed`` alert (flow name, scrubbed error
  summary, link to the run in the Prefect UI) - plus a ``validation`` alert when a source
  batch was rejected - and try to deliver it right away.
* on_completion: when the flow returned a nightly ingest result (``{"ingest": {table:
  {"read", "loaded", "quarantined"}}}``), alert on a quarantine share above
  ``alerts.quarantine_share_max``.
* the nightly run (flow ``nightly``), completed or failed: finalize its digest with the
  run's final figures and deliver it (a failed night gets a digest too). With the warehouse
  down, the digest of what the run holds in memory is published in the Prefect UI only.

Hooks never raise and never block a run on a channel that is down: what cannot be
delivered stays in the outbox for the next delivery pass. When the outbox itself cannot be
written (the warehouse is down), the failure alert is posted straight to its channels
once, best effort (``tasks.alerts.outbox.send_direct``), and the log says what happened.
Crashes that kill the process (so no hook runs) are caught by the Prefect automation in
``tasks.alerts.automations``.
"""
from __future__ import annotations

import logging

from userops.i18n import t

log = logging.getLogger("userops.alerts")


def _deliver() -> None:
    try:
        from tasks.alerts import deliver_pending

        deliver_pending()
    except Exception as exc:
        log.warning("%s", t("alert.log.hook_delivery_failed", error=type(exc).__name__))


def alert_on_failure(flow, flow_run, state) -> None:
    _flow_problem(flow, flow_run, state, crashed=False)


def alert_on_crashed(flow, flow_run, state) -> None:
    _flow_problem(flow, flow_run, state, crashed=True)


NIGHTLY_FLOW = "nightly"


def _is_nightly_root(flow, flow_run) -> bool:
    return getattr(flow, "name", None) == NIGHTLY_FLOW and not getattr(flow_run, "parent_task_run_id", None)


def _finalize_digest(flow_run, as_of=None, error: BaseException | None = None) -> bool:
    try:
        from tasks.alerts.digest import finalize_digest

        finalize_digest(str(flow_run.id), as_of, error=error)
        return True
    except Exception as exc:
        log.warning("%s", t("alert.log.digest_not_finalized", error=type(exc).__name__))
        return False


def _flow_problem(flow, flow_run, state, crashed: bool) -> None:
    name = getattr(flow, "name", "?")
    exc = None
    alerts: list = []
    try:
        from tasks.alerts.failures import flow_failure_alerts, queue_alerts, state_exception

        exc = state_exception(state)
        alerts = flow_failure_alerts(name, flow_run, state, crashed=crashed, exc=exc)
        queue_alerts(alerts)
    except Exception as outbox_exc:
        if not alerts:  # a bug while writing the alert: say so, the rest goes on as usual
            log.warning("%s", t("alert.log.failure_not_built", flow=name, error=type(outbox_exc).__name__))
        else:  # the outbox cannot be written (the warehouse is down): post the alert straight to its channels
            _send_directly(name, alerts, outbox_exc)
            if _is_nightly_root(flow, flow_run):  # no outbox: the digest of what the run knows, in the Prefect UI only
                _finalize_digest(flow_run, (getattr(flow_run, "parameters", None) or {}).get("as_of"), error=exc)
            return
    if _is_nightly_root(flow, flow_run):
        _finalize_digest(flow_run, (getattr(flow_run, "parameters", None) or {}).get("as_of"), error=exc)
    _deliver()


def _send_directly(flow_name: str, alerts: list, outbox_exc: BaseException) -> None:
    from userops.i18n import join_list

    try:
        from tasks.alerts.outbox import send_direct

        verdicts = send_direct(alerts, reason=type(outbox_exc).__name__)  # why the outbox was passed by, kept in the journal
    except Exception as exc:  # pragma: no cover - send_direct does not raise
        verdicts = {"?": type(exc).__name__}
    code = {ch: getattr(v, "code", "failed") for ch, v in verdicts.items()}  # decided on the code, the words are for the log
    sent = [ch for ch in verdicts if code[ch] == "ok"]
    logged_only = [ch for ch in verdicts if code[ch] == "log_only"]  # the log channel: no alert channel configured
    posted_before = [ch for ch in verdicts if code[ch] == "already_direct"]  # the hook again for the same run: done before
    failed = {ch: v for ch, v in verdicts.items() if code[ch] not in ("ok", "log_only", "already_direct")}
    error = type(outbox_exc).__name__
    if posted_before and not (sent or logged_only or failed):  # nothing left to post: not an error
        log.info("%s", t("alert.log.already_direct", flow=flow_name, channels=join_list(posted_before)))
        return
    if sent:
        log.warning("%s", t("alert.log.sent_directly", flow=flow_name, error=error, channels=join_list(sent)))
    elif logged_only:  # nothing was sent anywhere: say so, and where to configure a channel (as the outbox path does)
        log.error("%s", t("alert.log.direct_log_only", flow=flow_name, error=error, verdict=verdicts[logged_only[0]]))
    if failed or not (sent or logged_only):
        # a channel's error already names it ("slack 连接失败…", "Slack 频道已归档…"): not twice
        verdict = join_list(v if str(v).lower().startswith(str(ch).lower()) else t("alert.log.channel_verdict", channel=ch, verdict=v)
                            for ch, v in failed.items()) or "—"
        log.error("%s", t("alert.log.direct_failed", flow=flow_name, error=error, verdicts=verdict))


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
            log.warning("%s", t("log.alerts.quarantine_check_failed", flow=getattr(flow, "name", "?"), error=type(exc).__name__))
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
