"""Alerts about runs: a flow failed or crashed, a batch was rejected, quarantine spiked.

Plain functions used by the state hooks in ``flows/hooks.py`` and by the crash automation's
flow (``flows/alerts.py``). A failure is alerted once per *root* run and day: a failing
subflow and the parent it fails share the dedupe key, so the operator gets the innermost
(most specific) error once, with a link to that run in the Prefect UI.
"""
from __future__ import annotations

import logging
from datetime import date

from tasks.alerts import enqueue_alert
from tasks.alerts.safety import clean, error_summary
from userops.clock import shop_today
from userops.i18n import join_list, t
from userops.settings import get_settings

log = logging.getLogger("userops.alerts")


def flow_run_link(flow_run_id) -> str | None:
    """The run's page in the Prefect UI (``prefect_ui_url()``). None when the run has no server
    to outlive it: with no ``PREFECT_API_URL`` (``make demo``, a local ``userops run``) Prefect
    runs the flow on a temporary server that stops with the process, and a link would lead
    nowhere."""
    from prefect.settings import get_current_settings

    if not flow_run_id or get_current_settings().api.url is None:
        return None
    return f"{prefect_ui_url()}/runs/flow-run/{flow_run_id}"


def prefect_ui_url() -> str:
    """The Prefect UI of the server the runs go to: ``USEROPS_PREFECT_UI_URL`` when set, else
    the UI beside ``PREFECT_API_URL`` (its host and port, ``/api`` dropped; Prefect's own
    ``PREFECT_UI_URL`` when set; the machine's name for a server on every address), else the
    setting's default. A server on port 4317 was linked at port 4200, where nothing knows the run."""
    from urllib.parse import urlsplit, urlunsplit

    from prefect.settings import get_current_settings

    settings = get_settings()
    if "prefect_ui_url" in settings.model_fields_set:
        return settings.prefect_ui_url.rstrip("/")
    prefect = get_current_settings()
    ui = prefect.ui_url if prefect.api.url else None
    if not ui:
        return settings.prefect_ui_url.rstrip("/")
    parts = urlsplit(str(ui).rstrip("/"))
    if parts.hostname in ("0.0.0.0", "::"):
        import socket

        parts = parts._replace(netloc=f"{socket.getfqdn()}:{parts.port}" if parts.port else socket.getfqdn())
    return urlunsplit(parts)


def root_run(flow_run, max_depth: int = 10):
    """(root flow run id, root flow name, root run name) of a flow run; the run itself when
    it is not a subflow or the API cannot tell."""
    current = flow_run
    names = {}
    if not getattr(flow_run, "parent_task_run_id", None):  # not a subflow: no API call needed
        return str(flow_run.id), None, getattr(flow_run, "name", None)
    try:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            for _ in range(max_depth):
                parent_task = getattr(current, "parent_task_run_id", None)
                if not parent_task:
                    break
                task_run = client.read_task_run(parent_task)
                if not task_run.flow_run_id:
                    break
                current = client.read_flow_run(task_run.flow_run_id)
            if current is not flow_run:
                flow = client.read_flow(current.flow_id)
                names["flow"] = flow.name
    except Exception as exc:  # the API is down: alert about the run itself
        log.debug("alerts: could not walk up to the root run (%s)", type(exc).__name__)
        current = flow_run
    return str(current.id), names.get("flow"), getattr(current, "name", None)


def state_exception(state) -> BaseException | None:
    try:
        res = state.result(raise_on_failure=False)
    except Exception as exc:  # the result itself is unreadable
        return exc
    return res if isinstance(res, BaseException) else None


def queue_flow_failure(flow_name: str, flow_run, state=None, crashed: bool = False, exc: BaseException | None = None, day: date | None = None, lang: str | None = None, read_result: bool = True) -> int:
    """Queue a ``flow_failed`` alert (and a ``validation`` one when a batch was rejected).
    Returns the number of new outbox rows. ``read_result``: take the exception from the
    state (in a hook); off for a state read back from the API (no result there)."""
    return queue_alerts(flow_failure_alerts(flow_name, flow_run, state, crashed=crashed, exc=exc, day=day, lang=lang, read_result=read_result))


def queue_alerts(alerts: list[dict]) -> int:
    """Queue alerts built by ``flow_failure_alerts`` (``enqueue_alert`` keyword sets)."""
    return sum(enqueue_alert(**a) for a in alerts)


def flow_failure_alerts(flow_name: str, flow_run, state=None, crashed: bool = False, exc: BaseException | None = None, day: date | None = None, lang: str | None = None, read_result: bool = True) -> list[dict]:
    """The alerts of a failed or crashed flow run, as ``enqueue_alert`` keyword sets: the
    ``flow_failed`` alert, plus a ``validation`` one when a batch was rejected. Needs no
    warehouse (the hook sends them straight to the channels when the outbox is down)."""
    if exc is None and state is not None and read_result:
        exc = state_exception(state)
    message = getattr(state, "message", None) if state is not None else None
    summary = (error_summary(exc) if exc is not None else error_summary(None, message)) or "—"
    from tasks.alerts.problems import describe_failure, warehouse_unreachable, warehouse_unreachable_text

    if warehouse_unreachable(exc, None if exc is not None else message):
        # as `userops run` says it: the warehouse (password masked) and the driver's first line,
        # not "OperationalError: (psycopg2.OperationalError) connection to server …"
        problem = describe_failure(exc, None if exc is not None else message, flow=flow_name, lang=lang)
        summary = warehouse_unreachable_text(problem.detail, lang)
    root_id, root_flow, root_name = root_run(flow_run)
    run_id = str(flow_run.id)
    state_name = getattr(state, "name", None) or ("Crashed" if crashed else "Failed")
    lines = [
        t("alert.flow.run", lang, run=clean(getattr(flow_run, "name", "") or run_id)),
        t("alert.flow.state", lang, state=state_name),
        t("alert.flow.error", lang, error=summary),
    ]
    if root_id != run_id and root_flow:
        lines.append(t("alert.flow.part_of", lang, flow=root_flow, run=clean(root_name or root_id)))
    if crashed:
        lines.append(t("alert.flow.crash_hint", lang))
    elif exc is not None:
        lines.append(t("alert.flow.fix", lang, fix=describe_failure(exc, flow=flow_name, lang=lang).fix))
    title_key = "alert.flow_crashed.title" if crashed else "alert.flow_failed.title"
    link = flow_run_link(run_id)
    day = day or shop_today()
    alerts = [
        dict(
            kind="flow_failed",
            title=t(title_key, lang, flow=flow_name),
            body="\n".join(lines),
            severity="error",
            subject=root_id,
            day=day,
            payload={"link": link, "link_label": t("alert.view_run", lang), "flow": flow_name, "flow_run_id": run_id, "state": state_name},
        )
    ]
    rejected = batch_rejected_alert(exc, root_id, link, day=day, lang=lang)
    if rejected:
        alerts.append(rejected)
    return alerts


def queue_batch_rejected(exc: BaseException | None, run_id: str, link: str | None = None, day: date | None = None, lang: str | None = None) -> int:
    """A ``validation`` alert when ``exc`` is a rejected batch (tasks.validate.BatchRejected)."""
    alert = batch_rejected_alert(exc, run_id, link, day=day, lang=lang)
    return enqueue_alert(**alert) if alert else 0


def batch_rejected_alert(exc: BaseException | None, run_id: str, link: str | None = None, day: date | None = None, lang: str | None = None) -> dict | None:
    try:
        from tasks.validate import BatchRejected
    except Exception:  # pragma: no cover - data path unavailable
        return None
    if not isinstance(exc, BatchRejected):
        return None
    lines = [t("alert.validation.body", lang, reason=error_summary(None, str(exc)))]
    if exc.counts:
        rules = join_list((f"{k} {v:,}" for k, v in sorted(exc.counts.items(), key=lambda kv: -int(kv[1] or 0))[:8]), lang)
        lines.append(t("alert.validation.rules", lang, rules=clean(rules)))
    lines.append(t("alert.validation.hint", lang))
    return dict(
        kind="validation",
        title=t("alert.validation.title", lang, table=exc.table),
        body="\n".join(lines),
        severity="error",
        subject=f"{run_id}|{exc.table}",
        day=day,
        payload={"link": link, "link_label": t("alert.view_run", lang), "table": exc.table} if link else {"table": exc.table},
    )


def queue_quarantine_spike(ingest: dict, run_id: str, link: str | None = None, threshold: float | None = None, day: date | None = None, lang: str | None = None) -> int:
    """A ``quarantine_spike`` alert when a table of a nightly ingest result
    (``{table: {"read", "loaded", "quarantined"}}``) quarantined more than ``threshold``."""
    threshold = get_settings().alerts.quarantine_share_max if threshold is None else threshold
    spikes = []
    for table, res in (ingest or {}).items():
        if not isinstance(res, dict):
            continue
        read = int(res.get("read") or 0)
        q = int(res.get("quarantined") or 0)
        if read > 0 and q / read > threshold:
            spikes.append((table, read, q, q / read))
    if not spikes:
        return 0
    lines = [
        t("alert.quarantine.line", lang, table=tb, read=f"{r:,}", quarantined=f"{q:,}", share=f"{s:.1%}", threshold=f"{threshold:.1%}")
        for tb, r, q, s in spikes
    ]
    lines.append(t("alert.validation.hint", lang))
    return enqueue_alert(
        "quarantine_spike",
        t("alert.quarantine.title", lang, tables=join_list((tb for tb, *_ in spikes), lang)),
        "\n".join(lines),
        severity="warning",
        subject=run_id,
        day=day,
        payload={"link": link, "link_label": t("alert.view_run", lang)} if link else {},
    )


def queue_crashed_run(flow_run_ref: str, lang: str | None = None) -> int:
    """For the crash automation: queue the alert of a crashed flow run given its id or its
    event resource id (``prefect.flow-run.<id>``). Returns new outbox rows."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    ref = str(flow_run_ref).strip()
    run_id = UUID(ref.rsplit(".", 1)[-1])
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        flow_name = client.read_flow(flow_run.flow_id).name
    if flow_name == "alert-crashed-run":  # never alert about the alerting flow in a loop
        log.warning("%s", t("alert.log.crash_flow_crashed", lang, run=run_id))
        return 0
    return queue_flow_failure(flow_name, flow_run, flow_run.state, crashed=True, read_result=False, lang=lang)
