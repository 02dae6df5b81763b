"""Incidents: open or join (one open incident per SKU), steps with deadlines, the timeline.

An incident is a checklist of three steps whose deadlines count from its opening
(``crisis.control_hours`` 2h, ``clarify_hours`` 4h, ``compensate_hours`` 24h). Step status:
``pending`` (nobody started), ``waiting`` (a human's turn: manual take-down, statement
approval, core review), ``in_progress`` (Compensate: under way, no human awaited — the
apologies are being sent), ``done``, ``expired`` (the wait for a human ran out; the step can
still be finished from the CLI). Whether a step met its deadline is ``done_at <= deadline_at``.

``incident_skus`` holds one row per SKU of an open incident (primary key = the SKU), so two
triggers racing for the same SKU cannot both open an incident: the loser joins the winner.
"""
from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime, timedelta

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Connection, Engine

from tasks.crisis.util import execute, read
from userops.clock import utcnow
from userops.db import audit, get_engine, is_postgres
from userops.privacy import scrub_text
from userops.settings import get_settings

STEPS = ("control", "clarify", "compensate")
SEVERITIES = ("low", "medium", "high", "critical")
OPEN, CLOSED = "open", "closed"
# touches.reason of an apology or call withdrawn because its incident was closed before it went out
CLOSED_REASON = "incident closed"

log = logging.getLogger("userops.crisis.incidents")


class IncidentConflict(Exception):
    """Another trigger took one of the SKUs at the same moment; retry as a join."""


def normalize_skus(skus) -> list[str]:
    if isinstance(skus, str):
        skus = [skus]
    out = sorted({str(s).strip() for s in (skus or []) if str(s).strip()})
    if not out:
        raise ValueError("an incident needs at least one product SKU")
    return out


def unknown_skus(bind: Engine | Connection, skus) -> list[str]:
    """Which of ``skus`` no order in the warehouse has (``order_items``), in their order: a typo
    would open a real incident (take-down, statement, alerts) with nobody affected. The one check
    used by ``userops incident open`` (``--unknown-ok``) and the crisis flow (``unknown_ok``)."""
    skus = normalize_skus(skus)
    known = set(read(bind, "SELECT DISTINCT sku FROM order_items WHERE sku IN :s", {"s": list(skus)})["sku"])
    return [x for x in skus if x not in known]


def clean_reason(reason: str | None) -> tuple[str | None, bool]:
    """The operator's free-text reason as it may be stored and used: phone numbers and emails
    masked (``userops.privacy.scrub_text``, as the report and the alerts show them) — it goes
    into the incident, the audit log, the take-down hook, the alerts and the public statement.
    Returns ``(text, masked)``: ``masked`` tells whether anything was masked."""
    if not reason:
        return reason, False
    text = scrub_text(str(reason))
    return text, text != reason


def step_hours() -> dict[str, float]:
    c = get_settings().crisis
    return {"control": c.control_hours, "clarify": c.clarify_hours, "compensate": c.compensate_hours}


def new_incident_id(now: datetime) -> str:
    """``INC-<shop date>-<shop HHMM>-<4 hex>``: the opening in shop time (``settings.timezone``),
    as every other time the operator sees; the random suffix keeps ids unique (``_open`` draws
    again when an incident already has the id)."""
    from tasks.crisis.util import to_shop

    return f"INC-{to_shop(now):%Y%m%d-%H%M}-{uuid.uuid4().hex[:4].upper()}"


def open_or_join(
    skus,
    reason: str,
    severity: str = "high",
    source: str = "manual",
    actor: str = "operator",
    flow_run_id: str | None = None,
    engine: Engine | None = None,
    now: datetime | None = None,
) -> dict:
    """Open an incident for ``skus`` or join the open one that holds any of them.

    Returns ``{"incident_id", "joined", "new_skus", "skus", "owner_flow_run_id", "opened_at"}``.
    A join adds the SKUs no open incident holds yet to the joined incident. Contact details in
    ``reason`` are masked before anything is stored (``clean_reason``)."""
    engine = engine or get_engine()
    skus = normalize_skus(skus)
    reason, _masked = clean_reason(reason)
    severity = (severity or "high").lower()
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    now = now or utcnow()
    for _attempt in range(5):
        try:
            with engine.begin() as conn:
                held = _held(conn, skus)
                if not held.empty:
                    return _join(conn, held, skus, reason, source, actor, now)
                out = _open(conn, skus, reason, severity, source, actor, flow_run_id, now)
        except IncidentConflict:
            continue
        _warn_templates(engine, out["incident_id"])
        return out
    raise RuntimeError(f"could not open or join an incident for {skus}: too much contention")


def _warn_templates(engine: Engine, incident_id: str) -> None:
    """At the opening: an operator's crisis template that makes a claim without checking
    whether it holds (``templates.template_problems``) is named, with the claim and the fix, in
    the run log and in an alert (``crisis_task``, once per incident) — hours before the first
    apology is written, in time to fix it."""
    from tasks.alerts import enqueue_alert
    from tasks.crisis.templates import problem_lines, template_problems
    from userops.i18n import t

    problems = template_problems()
    if not problems:
        return
    lines = problem_lines(problems)
    for line in lines:
        log.warning(line)
    with engine.begin() as conn:
        enqueue_alert("crisis_task", t("crisis.template.title", incident_id=incident_id), "\n".join(lines),
                      severity="warning", subject=f"{incident_id}|template", conn=conn,
                      payload={"incident_id": incident_id,
                               "templates": [{"path": p["path"], "variable": p["var"]} for p in problems]})


def _held(conn: Connection, skus: list[str]) -> pd.DataFrame:
    df = read(
        conn,
        "SELECT s.sku, s.incident_id, i.opened_at FROM incident_skus s JOIN incidents i ON i.incident_id = s.incident_id "
                "WHERE s.sku IN :skus",
        {"skus": skus},
        parse_dates=["opened_at"],
    )
    return df


def _claim_skus(conn: Connection, skus: list[str], incident_id: str, now: datetime) -> list[str]:
    got = []
    for sku in skus:  # a handful of SKUs
        n = execute(
            conn, ("INSERT INTO incident_skus (sku, incident_id, added_at) VALUES (:s, :i, :t) ON CONFLICT (sku) DO NOTHING"),
            {"s": sku, "i": incident_id, "t": now},
        ).rowcount
        if n:
            got.append(sku)
    return got


def _open(conn, skus, reason, severity, source, actor, flow_run_id, now) -> dict:
    incident_id = new_incident_id(now)
    for _draw in range(20):  # two openings in the same shop minute: 1 in 65536 share a suffix
        if not execute(conn, "SELECT 1 FROM incidents WHERE incident_id = :i", {"i": incident_id}).first():
            break
        incident_id = new_incident_id(now)
    execute(
        conn,
        "INSERT INTO incidents (incident_id, skus, reason, severity, source, status, opened_at, opened_by, flow_run_id) "
        "VALUES (:i, :skus, :r, :sev, :src, 'open', :t, :by, :fr)",
        {"i": incident_id, "skus": json.dumps(skus), "r": reason, "sev": severity, "src": source, "t": now,
         "by": actor, "fr": flow_run_id},
    )
    got = _claim_skus(conn, skus, incident_id, now)
    if len(got) != len(skus):
        raise IncidentConflict(incident_id)  # rolls the whole opening back
    hours = step_hours()
    for step in STEPS:
        execute(
            conn, (
                "INSERT INTO incident_steps (incident_id, step, deadline_at, status, reminders_sent) "
                "VALUES (:i, :s, :d, 'pending', '[]')"
            ),
            {"i": incident_id, "s": step, "d": now + timedelta(hours=hours[step])},
        )
    audit(conn, actor, "incident.opened", "incident", incident_id,
          {"skus": skus, "reason": reason, "severity": severity, "source": source, "flow_run_id": flow_run_id})
    return {"incident_id": incident_id, "joined": False, "new_skus": skus, "skus": skus,
            "owner_flow_run_id": flow_run_id, "opened_at": now}


def _join(conn, held: pd.DataFrame, skus, reason, source, actor, now) -> dict:
    first = held.sort_values(["opened_at", "incident_id"]).iloc[0]
    incident_id = first["incident_id"]
    free = [s for s in skus if s not in set(held["sku"])]
    if is_postgres(conn):  # serialise joins of one incident: its SKU list is read-modify-write
        execute(conn, ("SELECT incident_id FROM incidents WHERE incident_id = :i FOR UPDATE"), {"i": incident_id})
    got = _claim_skus(conn, free, incident_id, now) if free else []
    if len(got) != len(free):
        raise IncidentConflict(incident_id)
    inc = get_incident(conn, incident_id)
    all_skus = sorted(set(inc["skus"]) | set(got))
    if got:
        execute(conn, ("UPDATE incidents SET skus = :s WHERE incident_id = :i"),
                     {"s": json.dumps(all_skus), "i": incident_id})
    audit(conn, actor, "incident.joined", "incident", incident_id,
          {"trigger_skus": skus, "new_skus": got, "reason": reason, "source": source})
    return {"incident_id": incident_id, "joined": True, "new_skus": got, "skus": all_skus,
            "owner_flow_run_id": inc["flow_run_id"], "opened_at": inc["opened_at"]}


def joined_skus(bind: Engine | Connection, incident_id: str, skus) -> list[str]:
    """Which of a trigger's ``skus`` the incident holds by a join (not among the SKUs it was
    opened with, as its opening recorded them): what a joining run announces, the same on its
    re-run (whose own join adds nothing)."""
    opened = read(bind, "SELECT detail FROM audit_log WHERE entity = 'incident' AND entity_id = :i AND action = 'incident.opened'",
                  {"i": incident_id})
    at_opening = set(json.loads(opened["detail"].iloc[0]).get("skus", [])) if not opened.empty else set()
    inc = get_incident(bind, incident_id)
    return sorted((set(inc["skus"]) - at_opening) & set(normalize_skus(skus)))


def take_over(incident_id: str, flow_run_id: str, previous: str | None, engine: Engine | None = None, actor: str = "userops") -> bool:
    """Make ``flow_run_id`` the run that drives the incident when ``previous`` still does
    (compare-and-set: of two runs taking over at once, exactly one wins)."""
    engine = engine or get_engine()
    with engine.begin() as conn:
        if previous is None:
            n = execute(conn, ("UPDATE incidents SET flow_run_id = :me WHERE incident_id = :i AND flow_run_id IS NULL"),
                             {"me": flow_run_id, "i": incident_id}).rowcount
        else:
            n = execute(conn, ("UPDATE incidents SET flow_run_id = :me WHERE incident_id = :i AND flow_run_id = :p"),
                             {"me": flow_run_id, "i": incident_id, "p": previous}).rowcount
        if n:
            audit(conn, actor, "incident.taken_over", "incident", incident_id, {"flow_run_id": flow_run_id, "previous": previous})
    return bool(n)


# --------------------------------------------------------------------------- reads
def get_incident(bind: Engine | Connection, incident_id: str) -> dict | None:
    df = read(bind, "SELECT * FROM incidents WHERE incident_id = :i", {"i": incident_id},
                    parse_dates=["opened_at", "closed_at", "statement_published_at"])
    if df.empty:
        return None
    rec = df.iloc[0].to_dict()
    rec["skus"] = json.loads(rec["skus"] or "[]")
    for k in ("opened_at", "closed_at", "statement_published_at"):
        rec[k] = None if pd.isna(rec[k]) else pd.Timestamp(rec[k]).to_pydatetime()
    return rec


def get_steps(bind: Engine | Connection, incident_id: str) -> pd.DataFrame:
    df = read(bind, "SELECT * FROM incident_steps WHERE incident_id = :i", {"i": incident_id},
                    parse_dates=["deadline_at", "done_at"])
    order = {s: k for k, s in enumerate(STEPS)}
    return df.sort_values("step", key=lambda s: s.map(order)).reset_index(drop=True)


def get_step(bind: Engine | Connection, incident_id: str, step: str) -> dict:
    df = get_steps(bind, incident_id)
    row = df[df["step"] == step]
    if row.empty:
        raise KeyError(f"incident {incident_id} has no step {step}")
    rec = row.iloc[0].to_dict()
    rec["result"] = json.loads(rec["result"]) if isinstance(rec.get("result"), str) and rec["result"] else {}
    rec["reminders_sent"] = json.loads(rec["reminders_sent"]) if isinstance(rec.get("reminders_sent"), str) else []
    for k in ("deadline_at", "done_at"):
        rec[k] = None if pd.isna(rec[k]) else pd.Timestamp(rec[k]).to_pydatetime()
    rec["done_by"] = None if pd.isna(rec.get("done_by")) else rec["done_by"]
    return rec


def list_incidents(bind: Engine | Connection | None = None, status: str | None = None) -> pd.DataFrame:
    bind = bind or get_engine()
    where = "WHERE status = :s" if status else ""
    return read(
        bind,
        f"SELECT incident_id, skus, reason, severity, source, status, opened_at, closed_at, opened_by FROM incidents {where} ORDER BY opened_at DESC",
        {"s": status} if status else {},
        parse_dates=["opened_at", "closed_at"],
    )


def incident_audit(bind: Engine | Connection, incident_id: str) -> pd.DataFrame:
    return read(
        bind,
        "SELECT at, actor, action, detail FROM audit_log WHERE entity = 'incident' AND entity_id = :i ORDER BY at, id",
        {"i": incident_id},
        parse_dates=["at"],
    )


# --------------------------------------------------------------------------- step writes
def set_step(
    conn: Connection,
    incident_id: str,
    step: str,
    status: str,
    actor: str,
    result: dict | None = None,
    now: datetime | None = None,
    action: str | None = None,
) -> None:
    """Record a step's new status (``done`` stamps who and when), with an audit line."""
    now = now or utcnow()
    prev = execute(conn, ("SELECT result FROM incident_steps WHERE incident_id = :i AND step = :s"),
                        {"i": incident_id, "s": step}).scalar()
    merged = json.loads(prev) if prev else {}
    merged.update(result or {})
    params = {"i": incident_id, "s": step, "st": status, "r": json.dumps(merged, ensure_ascii=False, default=str)}
    if status == "done":
        execute(
            conn, ("UPDATE incident_steps SET status = :st, result = :r, done_at = COALESCE(done_at, :t), "
                    "done_by = COALESCE(done_by, :by) WHERE incident_id = :i AND step = :s"),
            {**params, "t": now, "by": actor},
        )
        from tasks.crisis.deadlines import drop_deadline_alerts

        drop_deadline_alerts(conn, incident_id, [step], actor)  # its queued reminders no longer hold
    else:
        execute(conn, ("UPDATE incident_steps SET status = :st, result = :r WHERE incident_id = :i AND step = :s"), params)
    audit(conn, actor, action or f"step.{step}.{status}", "incident", incident_id, {"step": step, "status": status, **(result or {})})


def lock_open(conn: Connection, incident_id: str) -> bool:
    """Inside the transaction of a step's work (publish, escalate, plan, release, list calls):
    whether the incident is still open, holding its row until that transaction ends (PostgreSQL's
    row lock; SQLite's write lock). A closing then waits for the work and sees it; work after a
    closing sees it closed and does nothing: a closed incident ends the checklist."""
    return bool(execute(conn, "UPDATE incidents SET status = status WHERE incident_id = :i AND status = 'open'",
                        {"i": incident_id}).rowcount)


def close_incident_row(conn: Connection, incident_id: str, actor: str, report: dict, now: datetime) -> bool:
    n = execute(
        conn,
        "UPDATE incidents SET status = 'closed', closed_at = :t, closed_by = :by, report = :r "
        "WHERE incident_id = :i AND status = 'open'",
        {"t": now, "by": actor, "r": json.dumps(report, ensure_ascii=False, default=str), "i": incident_id},
    ).rowcount
    if n:
        execute(conn, ("DELETE FROM incident_skus WHERE incident_id = :i"), {"i": incident_id})
        # apologies and calls not out yet are withdrawn: no sender (the flow, the hourly monitor,
        # deliver-messages) sends anything for a closed incident
        withdrawn = execute(
            conn, "UPDATE touches SET status = 'suppressed', reason = :r WHERE campaign = :c AND status IN ('planned', 'awaiting_review')",
            {"r": CLOSED_REASON, "c": f"crisis-{incident_id}"},
        ).rowcount or 0
        from tasks.crisis.deadlines import drop_deadline_alerts

        drop_deadline_alerts(conn, incident_id, STEPS, actor)  # a closed incident has no deadlines left
        audit(conn, actor, "incident.closed", "incident", incident_id,
              {"report": {k: report.get(k) for k in ("compensated", "cost")}, "withdrawn_touches": int(withdrawn)})
    return bool(n)


# --------------------------------------------------------------------------- timeline
def timeline(bind: Engine | Connection, incident_id: str, now: datetime | None = None) -> pd.DataFrame:
    """One row per step: deadline, status, who, when, whether the deadline was met."""
    now = now or utcnow()
    steps = get_steps(bind, incident_id)
    if steps.empty:
        return steps
    done = steps["done_at"].notna()
    steps["met_deadline"] = pd.Series(pd.NA, index=steps.index, dtype="boolean")
    steps.loc[done, "met_deadline"] = steps.loc[done, "done_at"] <= steps.loc[done, "deadline_at"]
    # not done and already past the deadline: missed
    steps.loc[~done & (steps["deadline_at"] < now), "met_deadline"] = False
    steps["late"] = ~done & (steps["deadline_at"] < now)
    return steps


@task(name="open-or-join-incident", cache_policy=NO_CACHE)
def open_or_join_task(skus, reason, severity, source, actor, flow_run_id) -> dict:
    return open_or_join(skus, reason, severity, source, actor, flow_run_id)
