"""Alert flows that run on their own (deployments served by ``userops serve``).

* ``alert_crashed_run`` - started by the crash automation (``tasks.alerts.automations``)
  when a flow run crashed without its hooks running: queue and deliver the alert.
* ``deliver_alerts`` - flush the outbox (e.g. every 5 minutes), so alerts held back by an
  outage or a rate limit go out when the channel is back, even on a quiet day.
"""
from __future__ import annotations

from typing import Annotated

from prefect import flow, get_run_logger

from flows import texts  # noqa: F401  (registers the Run form's words)

from flows.hooks import ALERT_HOOKS
from tasks.alerts.tasks import deliver_task, queue_crash_task
from tasks.artifacts import alert_delivery_happened, alert_delivery_lines, run_summary_task
from userops import run_names
from userops.forms import param
from userops.i18n import t


@flow(name="alert-crashed-run", flow_run_name=run_names.alert_crashed_run, **ALERT_HOOKS)
def alert_crashed_run(flow_run_ref: Annotated[str, param("param.crash_alert.flow_run_ref")]) -> dict:
    """Alert the operator about a crashed flow run.

    The Run form shows the catalogue's ``param.crash_alert.*`` (flows/texts.py) in the shop's language.

    Args:
        flow_run_ref: the crashed flow run's id, or the event resource id
            ``prefect.flow-run.<id>`` the automation passes.
    """
    queued = queue_crash_task(flow_run_ref)
    delivery = deliver_task()
    get_run_logger().info("%s", t("log.alerts.crash_queued", run=flow_run_ref, n=queued))
    return {"queued": queued, "delivery": delivery}


@flow(name="deliver-alerts", flow_run_name=run_names.deliver_alerts, **ALERT_HOOKS)
def deliver_alerts() -> dict:
    """Deliver every alert waiting in the outbox (retries, rate limits, merging)."""
    delivery = deliver_task()
    summary = alert_delivery_lines(delivery)
    for line in summary:
        get_run_logger().info(line)
    if alert_delivery_happened(delivery):
        # every 5 minutes: only a run that did something leaves an artifact (on the run, no key)
        run_summary_task(t("artifact.run.deliver_alerts", when=run_names.shop_minute()), summary)
    return {**delivery, "summary": summary}
