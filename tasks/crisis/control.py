"""Control (控制扩散, 2h): take the SKUs off sale through the order system's hook.

The hook is ``POST crisis.takedown_url`` with ``{"skus": [...], "incident_id", "reason"}``
(bearer ``crisis.takedown_token`` when set), retried on network errors, 429 and 5xx. It is
*confirmed* when the answer is 2xx and lists every SKU under ``taken_down`` (or just says
``ok`` without a list). Without a hook, or when the hook cannot confirm, the take-down
becomes a task for a human: the step waits, the operator is alerted, and a human confirms
it (statement form in the Prefect UI, or ``userops incident approve ID --takedown``).
"""
from __future__ import annotations

import logging
import time
from datetime import datetime

import requests
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from tasks.alerts import enqueue_alert
from tasks.crisis import messages  # noqa: F401  (registers texts)
from tasks.crisis.incidents import get_incident, get_step, set_step
from userops.clock import utcnow
from userops.db import get_engine
from userops.i18n import join_list, t
from userops.settings import get_settings
from tasks.crisis.util import execute, to_shop_str

log = logging.getLogger("userops.crisis.control")

HOOK_ACTOR = "userops:takedown-hook"


def call_takedown_hook(skus: list[str], incident_id: str, reason: str | None) -> dict:
    """POST the take-down; returns ``{"ok", "confirmed", "taken_down", "status", "error", "attempts"}``.
    Never raises for HTTP trouble: the caller decides what a failure means."""
    cfg = get_settings().crisis
    url = cfg.takedown_url
    if not url:
        return {"ok": False, "confirmed": False, "taken_down": [], "status": None, "error": "no hook", "attempts": 0}
    headers = {"Content-Type": "application/json"}
    if cfg.takedown_token:
        headers["Authorization"] = f"Bearer {cfg.takedown_token.get_secret_value()}"
    body = {"skus": skus, "incident_id": incident_id, "reason": reason}
    last_err, status = None, None
    attempts = 0
    for attempt in range(max(1, cfg.takedown_retries)):
        attempts = attempt + 1
        try:
            resp = requests.post(url, json=body, headers=headers, timeout=cfg.takedown_timeout_seconds)
            status = resp.status_code
            if resp.status_code == 429 or resp.status_code >= 500:
                last_err = f"HTTP {resp.status_code}"
                retry_after = resp.headers.get("Retry-After")
                time.sleep(min(float(retry_after) if retry_after and retry_after.isdigit() else 0.5 * 2**attempt, 30))
                continue
            if resp.status_code >= 400:
                return {"ok": False, "confirmed": False, "taken_down": [], "status": status,
                        "error": f"HTTP {resp.status_code}", "attempts": attempts}
            try:
                data = resp.json()
            except ValueError:
                data = {}
            listed = data.get("taken_down")
            ok = bool(data.get("ok", True))
            taken = [str(s) for s in (listed if isinstance(listed, list) else skus if ok else [])]
            confirmed = ok and set(skus) <= set(taken)
            return {"ok": ok, "confirmed": confirmed, "taken_down": taken, "status": status,
                    "error": None if confirmed else "the hook did not confirm every SKU", "attempts": attempts}
        except requests.RequestException as exc:
            last_err = type(exc).__name__  # no URL (may hold a token) in the record
            time.sleep(min(0.5 * 2**attempt, 30))
    return {"ok": False, "confirmed": False, "taken_down": [], "status": status, "error": last_err, "attempts": attempts}


def skus_to_take_down(incident_id: str, engine: Engine | None = None, retry: bool = True) -> list[str]:
    """The incident's SKUs that the control step's records do not show off sale: the work of
    Control, whichever run does it (the driving run, a joining one, a re-run of either).

    ``retry=False``: only those nobody has asked to take down yet. A SKU whose take-down was
    asked and not confirmed is a human's task (already alerted); ``retry=True`` (the run that
    drives the incident, at its start) tries the hook for it again."""
    engine = engine or get_engine()
    result = get_step(engine, incident_id, "control")["result"]
    done = set(result.get("taken_down", []))
    if not retry:
        done |= set(result.get("requested", []))
    return sorted(set(get_incident(engine, incident_id)["skus"]) - done)


def run_control(incident_id: str, skus: list[str] | None = None, engine: Engine | None = None, now: datetime | None = None) -> dict:
    """Take ``skus`` (default: all of the incident's) down and record the result.

    Returns the step result; ``confirmed`` tells whether Control is done."""
    engine = engine or get_engine()
    inc = get_incident(engine, incident_id)
    skus = skus or inc["skus"]
    res = call_takedown_hook(skus, incident_id, inc.get("reason"))
    now = now or utcnow()
    with engine.begin() as conn:
        # the step's record is read and written under its row's lock (PostgreSQL; SQLite's write
        # lock): the driving run and a joining one taking SKUs down at once both keep theirs
        execute(conn, "UPDATE incident_steps SET status = status WHERE incident_id = :i AND step = 'control'", {"i": incident_id})
        inc = get_incident(conn, incident_id)  # its SKUs now (a join may have added some)
        step = get_step(conn, incident_id, "control")
        taken_before = list(step["result"].get("taken_down", []))
        result = {
            "mode": "hook" if get_settings().crisis.takedown_url else "manual",
            "requested": sorted(set(step["result"].get("requested", [])) | set(skus)),
            "taken_down": sorted(set(taken_before) | set(res["taken_down"] if res["confirmed"] else [])),
            "hook_status": res["status"],
            "hook_error": res["error"],
            "attempts": res["attempts"],
        }
        all_down = set(inc["skus"]) <= set(result["taken_down"])
        if res["confirmed"]:
            set_step(conn, incident_id, "control", "done" if all_down else "waiting", HOOK_ACTOR,
                     {**result, "confirmed": True}, now, action="step.control.takedown")
            if all_down:  # an earlier "please take it down by hand" no longer holds
                drop_takedown_alerts(conn, incident_id, HOOK_ACTOR)
        else:
            set_step(conn, incident_id, "control", "done" if all_down else "waiting", HOOK_ACTOR,
                     {**result, "confirmed": False, "manual_task": True}, now, action="step.control.manual_task")
            why = t("crisis.takedown.nohook") if result["mode"] == "manual" else t("crisis.takedown.failed", error=res["error"])
            due = to_shop_str(step["deadline_at"])
            enqueue_alert(
                "crisis_task",
                t("crisis.takedown.manual.title", skus=join_list(skus), incident_id=incident_id),
                t("crisis.takedown.manual.body", why=why, due=due, incident_id=incident_id),
                severity="error",
                subject=f"{incident_id}|takedown|{','.join(skus)}",
                day=inc["opened_at"].date(),
                payload={"incident_id": incident_id, "skus": skus},
                conn=conn,
            )
    done = "log.crisis.takedown_confirmed" if res["confirmed"] else "log.crisis.takedown_manual"
    log.info("%s", t(done, incident_id=incident_id, skus=join_list(skus)))
    return {**result, "confirmed": res["confirmed"]}


def confirm_manual_takedown(incident_id: str, actor: str, note: str = "", engine: Engine | None = None, now: datetime | None = None) -> bool:
    """A human says the SKUs are off sale. Returns False when Control was already done."""
    engine = engine or get_engine()
    step = get_step(engine, incident_id, "control")
    if step["status"] == "done":
        return False
    inc = get_incident(engine, incident_id)
    with engine.begin() as conn:
        set_step(conn, incident_id, "control", "done", actor,
                 {"taken_down": inc["skus"], "confirmed": True, "confirmed_by_human": True, "note": note},
                 now or utcnow(), action="step.control.confirmed")
        drop_takedown_alerts(conn, incident_id, actor)
    return True


def drop_takedown_alerts(conn, incident_id: str, actor: str) -> int:
    """Control is confirmed: the incident's manual take-down task alerts still queued (nobody
    delivered them yet, e.g. ``incident open --local`` without a served deliverer) are marked
    ``obsolete`` — never posted "please take down" for a product already off sale — and the
    audit log says which. Returns how many."""
    from tasks.alerts.outbox import mark_obsolete
    from userops.db import audit

    ids = mark_obsolete(conn, "crisis_task", f"{incident_id}|takedown|", t("crisis.takedown.alert_obsolete", incident_id=incident_id))
    if ids:
        audit(conn, actor, "alert.obsolete", "incident", incident_id,
              {"step": "control", "kind": "crisis_task", "alerts": ids, "why": "take-down confirmed"})
    return len(ids)


@task(name="control-take-down", cache_policy=NO_CACHE)
def run_control_task(incident_id: str, skus: list[str] | None = None) -> dict:
    return run_control(incident_id, skus)
