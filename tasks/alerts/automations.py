"""The Prefect automation that catches crashed flow runs the state hooks cannot see.

A hook runs inside the flow's process. When that process is killed (OOM, SIGKILL, the
machine reboots, the worker loses it) no hook runs; Prefect marks the run ``Crashed`` and
emits ``prefect.flow-run.Crashed``. This automation reacts to that event by **running a
small flow** - the deployment ``alert-crashed-run/alert-crashed-run`` of
``flows/alerts.py:alert_crashed_run`` with ``flow_run_ref = "{{ event.resource.id }}"`` -
which queues a ``flow_failed`` alert through the outbox and delivers it.

Why a flow and not a webhook action: the outbox dedupes it with the hook's alert (same
root run, same day: an in-process crash that the hook did see is not alerted twice),
applies routes and rate limits, signs DingTalk requests (a templated webhook cannot
compute a time-based signature) and keeps the webhook secrets in our blocks/settings.

``ensure_crash_automation()`` is idempotent (``userops serve`` calls it after deploying): it
finds that deployment - creating it on the configured work pool when ``prefect.yaml`` did
not - and creates or updates the automation by name. It also makes sure the
``deliver-alerts/deliver-alerts`` deployment (every ``alerts.deliver_every_minutes``) exists,
so alerts held back by an outage go out once the channel is back.
"""
from __future__ import annotations

import logging

from userops.settings import PROJECT_ROOT, get_settings

log = logging.getLogger("userops.alerts")

AUTOMATION_NAME = "userops: alert on crashed flow runs"
FLOW_NAME = "alert-crashed-run"
DEPLOYMENT_NAME = "alert-crashed-run"
ENTRYPOINT = "flows/alerts.py:alert_crashed_run"
DELIVER_FLOW_NAME = "deliver-alerts"
DELIVER_ENTRYPOINT = "flows/alerts.py:deliver_alerts"
CRASHED_EVENT = "prefect.flow-run.Crashed"


def _work_pool() -> str:
    deploy = getattr(get_settings(), "deploy", None)
    return getattr(deploy, "work_pool", None) or "userops-pool"


def _ensure_pool(client, pool: str) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_work_pool(pool)
    except ObjectNotFound:  # serve creates it first; by hand it may not exist yet
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))


def _ensure_deployment(client, flow_name: str, name: str, entrypoint: str, pool: str, description: str, parameters_schema: dict, schedules: list | None = None):
    """A deployment of a flow in this checkout on the process work pool (kept when it
    exists, e.g. because prefect.yaml defines it)."""
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{flow_name}/{name}").id
    except ObjectNotFound:
        pass
    _ensure_pool(client, pool)
    flow_id = client.create_flow_from_name(flow_name)
    dep_id = client.create_deployment(
        flow_id=flow_id,
        name=name,
        entrypoint=entrypoint,
        path=str(PROJECT_ROOT),
        work_pool_name=pool,
        pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT_ROOT)}}],
        description=description,
        tags=["userops", "alerts"],
        parameter_openapi_schema=parameters_schema,
        schedules=schedules,
    )
    log.debug("alerts: created deployment %s/%s on work pool %s", flow_name, name, pool)  # one-off setup, engineers'
    return dep_id


def ensure_crash_deployment(client, work_pool: str | None = None):
    """The id of the deployment the crash automation runs (created when missing)."""
    return _ensure_deployment(
        client,
        FLOW_NAME,
        DEPLOYMENT_NAME,
        ENTRYPOINT,
        work_pool or _work_pool(),
        "Queues and delivers an operator alert for a crashed flow run (started by the crash automation).",
        {
            "type": "object",
            "title": "Parameters",
            "properties": {"flow_run_ref": {"type": "string", "title": "flow_run_ref", "position": 0}},
            "required": ["flow_run_ref"],
        },
    )


def ensure_delivery_deployment(client, work_pool: str | None = None):
    """``deliver-alerts`` every ``alerts.deliver_every_minutes``: what an outage or a rate
    limit held back goes out when the channel is back, even on a quiet day."""
    from datetime import timedelta

    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import IntervalSchedule

    every = max(1, int(get_settings().alerts.deliver_every_minutes))
    return _ensure_deployment(
        client,
        DELIVER_FLOW_NAME,
        DELIVER_FLOW_NAME,
        DELIVER_ENTRYPOINT,
        work_pool or _work_pool(),
        f"Delivers the operator alerts waiting in the outbox (retries after outages, rate limits), every {every} minutes.",
        {"type": "object", "title": "Parameters", "properties": {}},
        schedules=[DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(minutes=every)), active=True, slug="deliver-alerts")],
    )


def crash_automation(deployment_id):
    from prefect.automations import AutomationCore
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import EventTrigger, Posture

    return AutomationCore(
        name=AUTOMATION_NAME,
        description=(
            "A flow run crashed (its process died, so its own hooks could not alert): run "
            f"{FLOW_NAME}, which queues a flow_failed alert for Slack/DingTalk/WeCom."
        ),
        enabled=True,
        trigger=EventTrigger(
            expect={CRASHED_EVENT},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                parameters={"flow_run_ref": "{{ event.resource.id }}"},
            )
        ],
    )


def ensure_crash_automation(work_pool: str | None = None) -> dict:
    """Create or update the crash automation (and its deployment), and make sure the
    periodic ``deliver-alerts`` deployment exists. Needs PREFECT_API_URL."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        dep_id = ensure_crash_deployment(client, work_pool)
        deliver_id = ensure_delivery_deployment(client, work_pool)
        automation = crash_automation(dep_id)
        existing = client.read_automations_by_name(AUTOMATION_NAME)
        if existing:
            client.update_automation(existing[0].id, automation)
            for extra in existing[1:]:
                client.delete_automation(extra.id)
            auto_id, created = existing[0].id, False
        else:
            auto_id, created = client.create_automation(automation), True
    return {"automation_id": str(auto_id), "deployment_id": str(dep_id), "deliver_deployment_id": str(deliver_id), "created": created, "name": AUTOMATION_NAME}
