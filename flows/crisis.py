"""3C crisis response: Control within 2h, Clarify within 4h, Compensate within 24h.

    open the incident (or join the open one for these products)
    -> Control:    take the products off sale (hook, or a task for a human), confirm
    -> Clarify:    draft the official statement; a human edits and approves it; publish it
    -> Compensate: affected customers core > potential > ordinary; remedies per tier;
                   personal apologies (core ones reviewed by a human first); exactly once

Started from the Prefect UI (parameters below), by ``userops incident open``, or by the
``userops.complaints.spike`` event (``SPIKE_TRIGGER``). Every step, who did it and when is
recorded in ``incident_steps`` / ``audit_log``; the deadline watch (``flows/monitor.py``)
reminds and escalates. The run is a resumable state machine over the warehouse: a second
run for the same products joins the incident, and takes over only when the run driving it
is gone (crashed, cancelled, finished) — then it skips what is done and never sends twice.
The work left is read from the warehouse, never from what a trigger brought: the incident's
SKUs that Control has not taken down, its affected customers without a planned apology —
so a joining run that died after adding its SKUs is finished by whichever run comes next.

When nobody acts in time: a human wait lasts until ``crisis.statement_wait_hours`` (20h)
resp. ``crisis.core_review_wait_hours`` (24h) after the opening; meanwhile the deadline
watch reminds at 50%/90% and escalates when a step is late. When the wait runs out the step
is recorded ``expired`` and escalated again (critical): an unapproved statement is never
published (compensation still goes ahead, it has its own deadline), unreviewed core
apologies are never sent. The run then ends *Failed* naming the expired steps, and the
step can still be finished with ``userops incident approve ID``.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count
from typing import Annotated, Literal

from prefect import flow, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import ConfigDict, Field, field_validator

from flows import texts  # noqa: F401  (registers the forms' and log lines' words)
from flows.hooks import ALERT_HOOKS
from tasks.alerts import enqueue_alert
from tasks.crisis import messages  # noqa: F401
from tasks.crisis.clarify import (
    approve_statement,
    draft_statement_task,
    expire_step,
    refresh_draft,
    reject_statement,
    statement_changed,
)
from tasks.crisis.compensate import (
    awaiting_review,
    finish_left_work_task,
    plan_compensation_task,
    record_affected,
    release_core_task,
    review_sample,
    send_apologies_task,
    unplanned_customers,
)
from tasks.crisis.control import confirm_manual_takedown, run_control_task, skus_to_take_down
from tasks.crisis.incidents import (
    clean_reason,
    get_incident,
    get_step,
    joined_skus,
    open_or_join_task,
    take_over,
    unknown_skus,
)
from tasks.crisis.report import build_report, code_word, publish_artifact, report_markdown
from tasks.crisis.runs import current_run, force_running, is_alive
from tasks.crisis.spike import EVENT as SPIKE_EVENT
from tasks.crisis.spike import REASON as SPIKE_REASON
from tasks.crisis.spike import link_spikes, reason_text
from tasks.crisis.util import to_shop_str
from userops import run_names
from userops.clock import utcnow
from userops.db import get_engine
from userops.forms import form_texts, param
from userops.i18n import join_list, t
from userops.settings import get_settings

Severity = Literal["low", "medium", "high", "critical"]

# How the crisis deployment is triggered by the spike monitor (prefect.yaml / `userops serve`
# use this): one flow run per event, parameters from the event payload.
SPIKE_TRIGGER = {
    "enabled": True,
    "match": {"prefect.resource.id": "userops.sku.*"},
    "expect": [SPIKE_EVENT],
    "parameters": {
        "skus": "{{ event.payload.skus }}",
        # one fixed text (the incident's record), shown in the operator's language (reason_text)
        "reason": SPIKE_REASON,
        "severity": "high",
        # the SKUs come from customers' feedback, not typed by an operator: a product with
        # complaints but no order in the warehouse (sold elsewhere, orders not imported yet)
        # still needs its incident, so the typo guard does not apply
        "unknown_ok": True,
    },
}


def spike_trigger():
    """``SPIKE_TRIGGER`` as a Prefect ``DeploymentEventTrigger`` (for ``to_deployment``)."""
    from prefect.events import DeploymentEventTrigger

    return DeploymentEventTrigger(name="complaint-spike", **SPIKE_TRIGGER)


# who acted is recorded for every step (audit log, incident_steps.done_by): the forms' name
# fields are required and must hold more than blanks (minLength + pattern reach the form's
# JSON schema, so Prefect's resume refuses an empty name; the validator strips it)
_NAME_PATTERN = r"\S"


def _stripped(value: str) -> str:
    return value.strip() if isinstance(value, str) else value


class StatementApproval(RunInput):
    """The official statement, for a human to edit and approve. The form's titles and
    descriptions are the catalogue's ``form.statement.<field>.*`` in the run's language
    (flows/texts.py); the descriptions below are the engineers' notes."""

    # titles/descriptions in the shop's language when the run pauses (userops.forms)
    model_config = ConfigDict(json_schema_extra=form_texts("form.statement"))

    statement: str = Field(description="The official statement; what is approved is published as is.")
    approve: bool = Field(default=False, description="Publish; unticked sends it back (edits kept, the flow waits again).")
    approver: str = Field(min_length=1, pattern=_NAME_PATTERN, description="Who approved or sent back the statement (audit log, the step).")
    takedown_confirmed: bool = Field(default=False, description="A manual take-down is done.")
    note: str = Field(default="", description="Optional note for the record.")

    _strip_name = field_validator("approver")(_stripped)


class CoreReview(RunInput):
    """Apologies to core customers, for a human to review before they go out. The form's words
    are the catalogue's ``form.review.<field>.*`` in the run's language (flows/texts.py)."""

    model_config = ConfigDict(json_schema_extra=form_texts("form.review"))

    approve: bool = Field(default=False, description="Send the reviewed apologies.")
    reviewer: str = Field(min_length=1, pattern=_NAME_PATTERN, description="Who reviewed the core customers' apologies (audit log, the step).")
    exclude_customers: list[str] = Field(default_factory=list, description="Customers who get nothing from this incident.")
    note: str = Field(default="", description="Optional note for the record.")

    _strip_name = field_validator("reviewer")(_stripped)


@flow(name="crisis-response", log_prints=True, flow_run_name=run_names.crisis_response, **ALERT_HOOKS)
def crisis_response(
    skus: Annotated[list[str], param("param.crisis.skus")],
    reason: Annotated[str, param("param.crisis.reason")],
    severity: Annotated[Severity, param("param.crisis.severity")] = "high",
    unknown_ok: Annotated[bool, param("param.crisis.unknown_ok")] = False,
) -> dict:
    """Run the 3C checklist for a product incident: Control 2h, Clarify 4h, Compensate 24h.

    The Run form's titles and descriptions are the catalogue's ``param.crisis.*`` in the shop's
    language (flows/texts.py, ``userops.forms.param``); the notes below are for engineers.

    Args:
        skus: Product SKUs concerned, one or more (e.g. ["SKU-0042"]). An open incident for any of them is joined, never duplicated.
        reason: What happened, in one sentence. It goes into the incident and its alerts (the default statement templates do not quote it). Phone numbers and emails in it are masked (also in this run's parameters, replaced at its start); do not paste customers' contact details.
        severity: How bad it is: low, medium, high or critical.
        unknown_ok: Leave unticked: a SKU that no order in the warehouse has (usually a typo) stops the run before anything is opened, taken down or announced. Tick it only to open the incident for such a SKU anyway (a product not sold through the shop's orders yet).
    """
    logger = get_run_logger()
    engine = get_engine()
    me = current_run()
    # the reason goes into the incident, the alerts and the public statement: contact details a
    # customer gave (phone, email) are masked before any of it; the operator is told once
    reason, masked = clean_reason(reason)
    if masked:
        # Prefect keeps a run's parameters as typed: the raw text is replaced there too
        _replace_reason_parameter(me["flow_run_id"], reason, logger)
        logger.warning(t("crisis.reason.masked", reason=reason))
    # a SKU no order has (a typo) would open a real incident, take it down and announce it
    unknown = unknown_skus(engine, skus)
    if unknown and not unknown_ok:
        raise ValueError(unknown_sku_text(unknown))

    inc = open_or_join_task(skus, reason, severity, me["source"], me["actor"], me["flow_run_id"])
    incident_id = inc["incident_id"]
    with engine.begin() as conn:
        link_spikes(conn, inc["skus"], incident_id)
        record_affected(conn, incident_id)

    if inc["joined"]:
        owner = inc["owner_flow_run_id"]
        if owner and owner != me["flow_run_id"] and is_alive(owner):
            return _join_running_incident(inc, skus, owner, reason, logger)
        if owner != me["flow_run_id"] and not take_over(incident_id, me["flow_run_id"], owner, actor=me["actor"]):
            return _join_running_incident(inc, skus, owner, reason, logger)
        logger.info("%s", t("log.crisis.take_over", incident_id=incident_id))
    # the run driving the incident announces its opening; queued once per incident (its key), so
    # a run taking over from one that died before announcing it still does, and never twice
    _announce_opening(incident_id)

    expired: list[str] = []
    try:
        _run_checklist(incident_id, engine, me, logger, expired)
    except IncidentClosed:
        # closed by an operator (``incident close``) while this run worked or waited: the 3C
        # checklist ends there, the run finishes cleanly (its closing report is published)
        closed = get_incident(engine, incident_id)
        logger.warning("%s", t("log.crisis.closed_stop", incident_id=incident_id, closed_at=to_shop_str(closed["closed_at"]),
                               closed_by=closed["closed_by"] or "-"))
        steps = {s: get_step(engine, incident_id, s)["status"] for s in ("control", "clarify", "compensate")}
        return {"incident_id": incident_id, "joined": inc["joined"], "closed": True, "steps": steps}

    rep = build_report(incident_id, engine)
    publish_artifact(incident_id, report_markdown(rep), t("crisis.artifact.description", incident_id=incident_id))
    summary = {
        "incident_id": incident_id,
        "joined": inc["joined"],
        "steps": {s["step"]: s["status"] for s in rep["steps"]},
        "compensated": rep["compensated"],
    }
    if expired:
        raise RuntimeError(t("crisis.timeout.failed", incident_id=incident_id,
                             steps=join_list(t(f"crisis.step.{s}") for s in expired)))
    return summary


class IncidentClosed(Exception):
    """The incident was closed: the checklist ends (``_stop_if_closed``)."""


def _stop_if_closed(incident_id: str) -> None:
    if get_incident(get_engine(), incident_id)["status"] != "open":
        raise IncidentClosed(incident_id)


def _run_checklist(incident_id: str, engine, me: dict, logger, expired: list[str]) -> None:
    """Control, Clarify, Compensate: what is left of them. Raises ``IncidentClosed`` when the
    incident is closed meanwhile (checked before each step and after each wait; the step
    functions themselves refuse to publish, escalate or send for a closed incident)."""
    # What is left to do is read from the warehouse, never from what this run's trigger
    # brought: a SKU saved into the incident by a joining run that died is taken down, and its
    # buyers compensated, by whichever run comes next (driving, taking over or joining).

    # 1. Control (2h): off sale, confirmed (a take-down that failed is tried again)
    _stop_if_closed(incident_id)
    rest = skus_to_take_down(incident_id, engine)
    if rest:
        run_control_task(incident_id, rest)

    # 2. Clarify (4h): a statement a human approved, published
    _stop_if_closed(incident_id)
    if get_step(engine, incident_id, "clarify")["status"] != "done":
        draft_statement_task(incident_id)
        if not _wait_for_statement(incident_id, me["flow_run_id"], logger):
            expired.append("clarify")

    # products that joined while this run waited (and whose joining run died): off sale too
    _stop_if_closed(incident_id)
    _take_down_joined(incident_id)

    # 3. Compensate (24h): apologies and remedies in priority order, core reviewed first
    #    (again for buyers of products that joined a compensated incident and are not served yet)
    if get_step(engine, incident_id, "compensate")["status"] != "done" or unplanned_customers(incident_id, engine):
        review_keys = count(1)
        for _pass in range(3):  # a second pass only for products that joined during the review
            _stop_if_closed(incident_id)
            plan_compensation_task(incident_id)
            progress = send_apologies_task(incident_id)["progress"]
            if progress["awaiting_review"]:
                if not _wait_for_core_review(incident_id, me["flow_run_id"], logger, review_keys):
                    expired.append("compensate")
                    break
                send_apologies_task(incident_id)
            _stop_if_closed(incident_id)
            _take_down_joined(incident_id)
            if not unplanned_customers(incident_id, engine):
                break
    _stop_if_closed(incident_id)  # a wait that ran out after the closing is no expiry: the checklist ended


def _replace_reason_parameter(flow_run_id: str | None, reason: str, logger) -> None:
    """Replace the run's ``reason`` parameter on the Prefect server with the masked text (the
    run's Parameters tab, ``prefect flow-run inspect``, the API). Best effort: a failure is
    logged, with what to do, and never fails the run."""
    if not flow_run_id:
        return
    try:
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.context import FlowRunContext

        ctx = FlowRunContext.get()
        with get_client(sync_client=True) as client:
            stored = (ctx.flow_run.parameters if ctx and ctx.flow_run else None) or \
                client.read_flow_run(UUID(flow_run_id)).parameters
            params = {**dict(stored or {}), "reason": reason}  # the PATCH replaces them all
            client.update_flow_run(UUID(flow_run_id), parameters=params).raise_for_status()
    except Exception as exc:  # noqa: BLE001 - never fails the run
        logger.warning(t("crisis.reason.param_kept", error=type(exc).__name__, flow_run_id=flow_run_id))


@flow(name="crisis-watch", flow_run_name=run_names.every("crisis-watch"), **ALERT_HOOKS)
def crisis_watch() -> dict:
    """Every 5 minutes (``crisis-watch`` deployment): the crisis deadlines of open incidents —
    reminders at 50% / 90% of each step's window, escalation when late — delivered at once.
    With no open incident it makes one query and ends (no task runs)."""
    from tasks.crisis.deadlines import watch_open_incidents

    out = watch_open_incidents()
    if out.get("reminders") or out.get("escalations"):
        get_run_logger().info("%s", t("monitor.summary.deadlines", r=out["reminders"], e=out["escalations"]))
    return {k: v for k, v in out.items() if k not in ("recorded", "delivery")}


# --------------------------------------------------------------------------- the human waits
# The forms' and the run log's words name a form field by the title the form shows
# (form.* / param.* in flows/texts.py), never by its parameter name.
def unknown_sku_text(skus, lang: str | None = None) -> str:
    return t("crisis.unknown_sku", lang, skus=join_list(skus, lang), unknown_ok=t("param.crisis.unknown_ok.title", lang))


def statement_form_text(incident_id: str, due, manual_takedown: bool, lang: str | None = None) -> str:
    """The statement pause form's description (where the statement goes, the Clarify deadline)."""
    channels = get_settings().crisis.statement_channels
    takedown = t("crisis.statement.form.takedown", lang, confirmed=t("form.statement.takedown_confirmed.title", lang))
    return t("crisis.statement.form", lang, incident_id=incident_id,
             approve=t("form.statement.approve.title", lang),
             channels=join_list(channels, lang) if channels else t("crisis.statement.channels.default", lang),
             due=to_shop_str(due), takedown=takedown if manual_takedown else "")


def review_form_text(incident_id: str, n: int, sample: str, due, lang: str | None = None) -> str:
    """The core review pause form's description."""
    return t("crisis.review.form", lang, incident_id=incident_id, n=n, sample=sample, due=to_shop_str(due),
             approve=t("form.review.approve.title", lang), exclude=t("form.review.exclude_customers.title", lang))


def _wait_until(incident_id: str, hours: float) -> datetime:
    return get_incident(get_engine(), incident_id)["opened_at"] + timedelta(hours=hours)


def _wait_for_statement(incident_id: str, flow_run_id: str | None, logger) -> bool:
    """Pause until a human approves the statement. False when the wait ran out."""
    cfg = get_settings().crisis
    engine = get_engine()
    attempt = 0
    while True:
        _stop_if_closed(incident_id)
        if get_step(engine, incident_id, "clarify")["status"] == "done":
            return True  # approved meanwhile (e.g. from the CLI by a previous run)
        until = _wait_until(incident_id, cfg.statement_wait_hours)
        remaining = (until - utcnow()).total_seconds()
        if remaining <= 0:
            expire_step(incident_id, "clarify", "crisis.expired.statement")
            return False
        attempt += 1
        inc = get_incident(engine, incident_id)
        control = get_step(engine, incident_id, "control")
        clarify = get_step(engine, incident_id, "clarify")
        form = StatementApproval.with_initial_data(
            description=statement_form_text(incident_id, clarify["deadline_at"], control["status"] != "done"),
            statement=inc["statement"] or "",
        )
        logger.info(t("crisis.wait.statement", incident_id=incident_id, due=to_shop_str(clarify["deadline_at"]),
                      until=to_shop_str(until)))
        try:
            answer = pause_flow_run(
                wait_for_input=form,
                timeout=max(1, int(remaining)),
                poll_interval=cfg.pause_poll_seconds,
                key=f"statement-{attempt}",
            )
        except FlowPauseTimeout:
            if flow_run_id:
                force_running(flow_run_id)
            expire_step(incident_id, "clarify", "crisis.expired.statement")
            logger.warning(t("crisis.timeout.statement", incident_id=incident_id))
            return False
        _stop_if_closed(incident_id)  # closed while the form waited (``incident close`` answers it)
        who = answer.approver  # required by the form (stripped, never empty)
        if answer.approve:
            if answer.takedown_confirmed:
                confirm_manual_takedown(incident_id, who, answer.note)
            approve_statement(incident_id, answer.statement, who)
            return True
        # not approved: only what the actor did is recorded. Resumed only to confirm the
        # take-down (the pre-filled text unchanged) is no "statement sent back"; the draft is
        # rendered again so the next form says what holds now (a human's edits are kept)
        edited = statement_changed(incident_id, answer.statement)
        if answer.takedown_confirmed:
            if confirm_manual_takedown(incident_id, who, answer.note) and not edited:
                refresh_draft(incident_id)
            if not edited:
                continue
        reject_statement(incident_id, answer.statement, who, answer.note)


def _wait_for_core_review(incident_id: str, flow_run_id: str | None, logger, keys=None) -> bool:
    """Pause until a human reviews the core customers' apologies. False when the wait ran out.
    ``keys`` numbers the pauses (``core-review-<n>``) across calls: a pause key used before in
    the run would not pause again."""
    cfg = get_settings().crisis
    engine = get_engine()
    keys = keys or count(1)
    while True:
        _stop_if_closed(incident_id)
        pending = awaiting_review(incident_id, engine)
        if pending.empty:
            return True
        until = _wait_until(incident_id, cfg.core_review_wait_hours)
        remaining = (until - utcnow()).total_seconds()
        if remaining <= 0:
            expire_step(incident_id, "compensate", "crisis.expired.review")
            return False
        attempt = next(keys)
        sample = review_sample(pending, engine)
        due = get_step(engine, incident_id, "compensate")["deadline_at"]
        form = CoreReview.with_initial_data(
            description=review_form_text(incident_id, len(pending), sample, due),
        )
        logger.info(t("crisis.wait.review", incident_id=incident_id, n=len(pending), due=to_shop_str(due),
                      until=to_shop_str(until)))
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=max(1, int(remaining)),
                                    poll_interval=cfg.pause_poll_seconds, key=f"core-review-{attempt}")
        except FlowPauseTimeout:
            if flow_run_id:
                force_running(flow_run_id)
            expire_step(incident_id, "compensate", "crisis.expired.review")
            logger.warning(t("crisis.timeout.review", incident_id=incident_id))
            return False
        _stop_if_closed(incident_id)  # closed while the form waited (``incident close`` answers it)
        if answer.approve:
            release_core_task(incident_id, answer.reviewer, answer.exclude_customers)
            return True


# --------------------------------------------------------------------------- joining
def _announce_opening(incident_id: str) -> None:
    engine = get_engine()
    inc = get_incident(engine, incident_id)
    steps = {s: get_step(engine, incident_id, s) for s in ("control", "clarify", "compensate")}
    from userops.db import read_frame

    n = int(read_frame(engine, "SELECT COUNT(*) AS n FROM incident_customers WHERE incident_id = :i", {"i": incident_id})["n"].iloc[0])
    enqueue_alert(
        "crisis_opened",
        t("crisis.opened.title", incident_id=incident_id, skus=", ".join(inc["skus"])),
        t("crisis.opened.body", reason=reason_text(inc["reason"]) or "-", severity=code_word(inc["severity"]), source=code_word(inc["source"]), customers=n,
          control_due=to_shop_str(steps["control"]["deadline_at"]), clarify_due=to_shop_str(steps["clarify"]["deadline_at"]),
          compensate_due=to_shop_str(steps["compensate"]["deadline_at"])),
        severity="critical" if inc["severity"] in ("high", "critical") else "error",
        subject=incident_id,
        day=inc["opened_at"].date(),
        payload={"incident_id": incident_id, "skus": inc["skus"]},
    )


def _take_down_joined(incident_id: str) -> None:
    """Take down the incident's SKUs nobody has asked to take down yet (they joined it)."""
    rest = skus_to_take_down(incident_id, get_engine(), retry=False)
    if rest:
        run_control_task(incident_id, rest)


def _join_running_incident(inc: dict, trigger_skus: list[str], owner: str, reason: str, logger) -> dict:
    """Another live run drives the incident: take down the incident's SKUs nobody asked to take
    down yet, serve the buyers nobody planned an apology for when the compensation is already
    under way (``finish_left_work``, as the hourly monitor does for a join that died), and leave
    the rest to that run. Read from the warehouse, not from what this join added: a re-run of a
    joining run that died after saving its SKUs finishes its work."""
    incident_id = inc["incident_id"]
    engine = get_engine()
    left = finish_left_work_task(incident_id)  # the same as the hourly monitor does for a dead join
    if "planned" in left:
        send_apologies_task(incident_id)  # this run sends its apologies at once (the monitor leaves it to its next step)
    # the SKUs this trigger brought in by a join (this run's or the one it re-runs): announced once
    new_skus = joined_skus(engine, incident_id, trigger_skus)
    enqueue_alert(
        "crisis_opened",
        t("crisis.joined.title", incident_id=incident_id),
        t("crisis.joined.body", reason=reason_text(reason) or "-", new_skus=", ".join(new_skus) or "-"),
        severity="warning",
        subject=f"{incident_id}|joined|{','.join(new_skus) or utcnow().strftime('%H')}",
        day=inc["opened_at"].date(),
        payload={"incident_id": incident_id, "new_skus": new_skus},
    )
    logger.info("%s", t("log.crisis.joined", incident_id=incident_id, owner=owner,
                        new_skus=join_list(new_skus) if new_skus else t("log.crisis.joined.none")))
    return {"incident_id": incident_id, "joined": True, "driven_by": owner, "new_skus": new_skus}
