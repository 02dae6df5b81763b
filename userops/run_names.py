"""Flow run names the operator can find in the Prefect UI's run list.

Prefect names a run after a random adjective and animal unless the flow says otherwise; an
operator looking for "last night's run" or "the 14:00 watch" reads these instead:

    nightly-2026-12-07            nightly-2026-12-07-full-refresh
    campaign-awakening-2026-12-07 crisis-high-SKU-0042
    hourly-monitor-2026-12-07 14:00

Each is a callable for ``@flow(flow_run_name=...)``, evaluated when the run starts, reading the
run's parameters: an empty ``as_of`` is named after the day the flow will compute (today in
the shop's timezone), never "None". Only ids, days and choices go into a name, never free text
(a crisis ``reason`` may name a customer). A name never fails a run: anything unexpected falls
back to the flow's own name.
"""
from __future__ import annotations

import functools
from datetime import datetime, timezone
from zoneinfo import ZoneInfo


def _parameters() -> dict:
    from prefect.runtime import flow_run

    return dict(flow_run.parameters or {})


def _day(value) -> str:
    if value in (None, ""):
        from userops.clock import shop_today

        return shop_today().isoformat()
    return str(value)[:10]


def scheduled_start() -> datetime | None:
    """The current run's scheduled start (naive UTC) when it has one: a run of a deployment
    (the slot its schedule made it for, or the moment someone asked for it). ``None`` for a
    flow called directly, or outside a run (the clock, ``USEROPS_NOW`` included, names those).

    Prefect starts a scheduled run a little before or after its slot: the 18:00 watch began
    at 17:59:58 and was named ``17:59`` while its artifact, written later, said 18:00."""
    try:
        from prefect.context import FlowRunContext

        run = getattr(FlowRunContext.get(), "flow_run", None)
        if run is not None:  # inside the run (names are made here): no API round trip
            start = run.expected_start_time if run.deployment_id else None
        else:  # a process started for a deployment's run, or the runtime's env overrides
            from prefect.runtime import deployment, flow_run

            start = flow_run.scheduled_start_time if deployment.id else None
    except Exception:  # a name is a convenience: the clock will do
        return None
    if start is None:
        return None
    if start.tzinfo is not None:
        start = start.astimezone(timezone.utc)
    return datetime(start.year, start.month, start.day, start.hour, start.minute, start.second, start.microsecond)


def shop_minute() -> str:
    """The run's scheduled start (else now) in the shop's timezone, to the minute
    (``2026-12-07 14:00``): the run's name and its artifact's title agree with the schedule."""
    from userops.clock import utcnow
    from userops.settings import get_settings

    when = scheduled_start() or utcnow()
    return when.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(get_settings().timezone)).strftime("%Y-%m-%d %H:%M")


def _safe(fallback: str):
    def wrap(fn):
        @functools.wraps(fn)
        def name() -> str:
            try:
                return fn(_parameters())
            except Exception:  # a name is a convenience: never the reason a run fails
                return fallback

        return name

    return wrap


@_safe("nightly")
def nightly(p: dict) -> str:
    return f"nightly-{_day(p.get('as_of'))}" + ("-full-refresh" if p.get("full_refresh") else "")


@_safe("campaign")
def campaign(p: dict) -> str:
    return f"campaign-{p['name']}-{_day(p.get('as_of'))}" + (f"-{p['channel']}" if p.get("channel") else "")


@_safe("crisis-response")
def crisis_response(p: dict) -> str:
    skus = [str(s) for s in (p.get("skus") or [])]
    shown = ",".join(skus[:3]) + (f"+{len(skus) - 3}" if len(skus) > 3 else "")
    return f"crisis-{p.get('severity') or 'high'}-{shown or '?'}"


@_safe("alert-crashed-run")
def alert_crashed_run(p: dict) -> str:
    return f"alert-crashed-run-{str(p['flow_run_ref']).removeprefix('prefect.flow-run.')}"


def daily(prefix: str):
    """For the flows that compute one day (``as_of``): the flow's name and that day."""

    @_safe(prefix)
    def name(p: dict) -> str:
        return f"{prefix}-{_day(p.get('as_of'))}"

    return name


def every(prefix: str):
    """For the scheduled watches without parameters: the flow's name and the shop's minute."""

    @_safe(prefix)
    def name(p: dict) -> str:
        return f"{prefix}-{shop_minute()}"

    return name


hourly_monitor = every("hourly-monitor")
deliver_alerts = every("deliver-alerts")
deliver_messages = every("deliver-messages")
retrain_churn_model = daily("retrain-churn-model")
recall_plan = daily("recall-plan")
nightly_digest = daily("nightly-digest")
