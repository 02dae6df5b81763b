"""Lifecycle campaigns: awakening (唤醒), retention (留存), recall (召回), and friends.

Every night, after tags, health and churn scores are fresh:

    read the campaign definitions (all valid, or nothing is sent)
    -> plan each campaign that runs nightly, highest priority first
       (audience -> who may not be contacted -> holdout -> variant -> message -> touches)
    -> send what is due, exactly once
    -> publish each campaign's read-out and the communication calendar (沟通日历)

``run_campaign`` runs one campaign now (by hand, from the UI or the CLI); ``recall_plan``
is started by the health check's silent-share event (``event_campaigns`` does the same for
any other event a definition listens to); ``deliver_messages`` sends what became due later
(quiet hours ended, retries, approved reviews) and is meant to run every few minutes.

Scale-out: with ``USEROPS_TASK_RUNNER=dask`` each campaign's per-customer decisions
(exclusions, holdout, variant, rendering, quiet hours) run as a few Prefect tasks, one per
partition of the audience (stable hash of customer_id), on prefect-dask's DaskTaskRunner;
campaigns are still planned one after the other (caps see the earlier ones' touches) and
the touches planned are the same. By default everything runs in the flow's process.
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from typing import Annotated

from prefect import flow, get_run_logger

from flows import texts as flow_texts  # noqa: F401  (registers the Run forms' words)
from flows.hooks import ALERT_HOOKS
from tasks.artifacts import run_summary_task
from tasks.campaigns.definitions import SILENT_SHARE_EVENT, Channel, load_campaigns_task
from tasks.campaigns.engine import finish_campaign_runs_task, plan_campaign_task
from tasks.campaigns.readout import publish_calendar_task, publish_readouts_task
from tasks.campaigns import texts  # noqa: F401  (registers the words)
from tasks.ingest import new_run_id
from tasks.messaging import send_due_task
from userops import run_names
from userops.clock import shop_today
from userops.forms import param
from userops.i18n import join_list, t
from userops.runners import PartitionMap, dask_enabled, partition_runner, use_partition_map
from userops.settings import get_settings


@contextmanager
def _audience_partitions():
    """By default nothing (plan_campaign decides in one piece, in this process); with the
    Dask runner configured, plan_campaign_task calls in this block plan each audience in
    partitions on a runner started for the block."""
    if not dask_enabled():
        yield None
        return
    with partition_runner() as runner, use_partition_map(PartitionMap(runner)) as pm:
        yield pm


def _summary(plans: dict, delivery: dict | None) -> list[str]:
    """Per campaign its plan line (audience = excluded + already planned this period +
    control + planned; a disabled one run by hand says so first), then the delivery line
    (messages waiting for a provider included, with the setting to set)."""
    lines = [line for name, p in plans.items() for line in texts.plan_lines(name, p)]
    if delivery is not None:
        lines.append(texts.delivery_line(delivery))
    return lines


@flow(name="campaigns", log_prints=True, **ALERT_HOOKS)
def run_campaigns(as_of: date | None = None, run_id: str | None = None) -> dict:
    """The nightly campaigns stage.

    Args:
        as_of: business day to plan for (default: today in the shop's timezone).
        run_id: the nightly run this stage belongs to.
    """
    as_of = as_of or shop_today()
    run_id = run_id or new_run_id("campaigns")
    campaigns = load_campaigns_task()
    plans = {}
    nightly = [c for c in campaigns if c.enabled and c.runs_nightly()]
    if nightly:
        with _audience_partitions():
            for c in nightly:
                plans[c.name] = plan_campaign_task(c, as_of, run_id, "nightly")
    delivery = send_due_task()
    finish_campaign_runs_task([p["run_id"] for p in plans.values()], delivery)
    readouts = publish_readouts_task([(c.name, c.title.get(get_settings().language)) for c in campaigns if c.enabled])
    publish_calendar_task(as_of)
    return {"as_of": str(as_of), "campaigns": plans, "delivery": delivery, "readouts": readouts, "summary": _summary(plans, delivery)}


@flow(name="campaign", log_prints=True, flow_run_name=run_names.campaign, **ALERT_HOOKS)
def run_campaign(
    name: Annotated[str, param("param.campaign.name")],
    channel: Annotated[Channel | None, param("param.campaign.channel")] = None,
    as_of: Annotated[date | None, param("param.campaign.as_of")] = None,
) -> dict:
    """Run one campaign now: plan it for today and send what is due.

    The Run form shows the catalogue's ``param.campaign.*`` (flows/texts.py) in the shop's language.

    Args:
        name: the campaign (file name in campaigns/, e.g. awakening, retention, recall).
        channel: send through this channel instead (email, sms, push, staff), for one-off
            sends. Leave empty to use each message's own channel.
        as_of: business day, YYYY-MM-DD. Leave empty for today in the shop's timezone.
    """
    logger = get_run_logger()
    as_of = as_of or shop_today()
    campaigns = {c.name: c for c in load_campaigns_task()}
    if name not in campaigns:
        raise ValueError(t("campaign.def.unknown", name=repr(name), defined=join_list(sorted(campaigns)) or "—"))
    c = campaigns[name]
    with _audience_partitions():
        plan = plan_campaign_task(c, as_of, new_run_id("campaign"), "manual", None, channel)
    delivery = send_due_task(channel_override=channel, campaign=name)
    finish_campaign_runs_task([plan["run_id"]], delivery)
    readouts = publish_readouts_task([(c.name, c.title.get(get_settings().language))])
    publish_calendar_task(as_of)
    summary = _summary({name: plan}, delivery)
    for line in summary:
        logger.info(line)
    return {"campaign": name, "plan": plan, "delivery": delivery, "readout": readouts[name], "summary": summary}


def _event_run(event: str, day: date, notes: str) -> dict:
    """Plan and send every enabled campaign that listens to ``event``."""
    listeners = [c for c in load_campaigns_task() if c.enabled and c.listens_to(event)]
    parent = new_run_id("event")
    plans = {}
    if listeners:
        with _audience_partitions():
            plans = {c.name: plan_campaign_task(c, day, parent, "event", event, None, notes) for c in listeners}
    deliveries = {}
    for name, p in plans.items():
        deliveries[name] = send_due_task(campaign=name)
        finish_campaign_runs_task([p["run_id"]], deliveries[name])
    summary = [notes] + [line for name in plans for line in _summary({name: plans[name]}, deliveries[name])]
    return {"as_of": str(day), "event": event, "notes": notes, "campaigns": plans, "delivery": deliveries, "summary": summary}


@flow(name="recall-plan", log_prints=True, flow_run_name=run_names.recall_plan, **ALERT_HOOKS)
def recall_plan(
    silent_share: Annotated[float | None, param("param.recall_plan.silent_share")] = None,
    as_of: Annotated[date | None, param("param.recall_plan.as_of")] = None,
) -> dict:
    """Churn-warning recall plan (流失预警召回计划), started when the silent share is too high.

    The Run form shows the catalogue's ``param.recall_plan.*`` (flows/texts.py) in the shop's language.

    Args:
        silent_share: the silent share the health check saw (e.g. 0.38); goes into the run's
            notes. Leave empty when starting it by hand.
        as_of: the business day of the health check, YYYY-MM-DD. Leave empty for today in the
            shop's timezone.
    """
    day = date.fromisoformat(str(as_of)[:10]) if as_of else shop_today()
    threshold = get_settings().health.silent_share_max
    if silent_share is not None:
        notes = t("campaign.recall.note", share=f"{float(silent_share):.1%}", threshold=f"{threshold:.0%}")
    else:
        notes = t("campaign.recall.note_manual")
    out = _event_run(SILENT_SHARE_EVENT, day, notes)
    get_run_logger().info(notes)
    run_summary_task(t("artifact.run.recall_plan", as_of=day), out["summary"], "recall_plan")
    return out


@flow(name="event-campaigns", log_prints=True, **ALERT_HOOKS)
def event_campaigns(event: str, as_of: str | None = None, notes: str | None = None) -> dict:
    """Run the campaigns whose definition has an entry ``{on: event, event: <event>}``
    (wire it to any Prefect event with a deployment trigger).

    Args:
        event: the Prefect event name, e.g. userops.health.silent-share-high.
        as_of: business day (YYYY-MM-DD; default today).
        notes: why it ran; stored with each campaign run.
    """
    day = date.fromisoformat(str(as_of)[:10]) if as_of else shop_today()
    return _event_run(event, day, notes or event)


@flow(name="deliver-messages", log_prints=True, flow_run_name=run_names.deliver_messages, **ALERT_HOOKS)
def deliver_messages() -> dict:
    """Send every touch that is due now (deferred by quiet hours, retries, approved reviews)."""
    delivery = send_due_task()
    summary = _summary({}, delivery)
    for line in summary:
        get_run_logger().info(line)
    did = any(delivery.get(k) for k in ("sent", "failed", "retry_scheduled", "suppressed", "resent_after_crash"))
    stuck = any((delivery.get("waiting_for_provider") or {}).values())
    if did or stuck:
        # every 10 minutes: only a run that did something, or that leaves messages waiting for
        # a provider (the count and the setting to set), leaves an artifact (on the run, no key);
        # a run with truly nothing to do leaves none
        run_summary_task(t("artifact.run.deliver_messages", when=run_names.shop_minute()), summary)
    return {"delivery": delivery, "summary": summary}
