"""Deadline watch: reminders at 50% / 90% of each step's window, escalation when late.

Runs every 5 minutes (``crisis-watch`` deployment, ``watch_open_incidents``: one query when
no incident is open), and hourly (``flows/monitor.py``) and nightly as a backstop. For every
step of an open incident that is not done: when the time since opening passes a fraction of
the step's window (``crisis.reminder_fractions``, default 0.5 and 0.9) the operator is
reminded (alert kind
``crisis_deadline``); when the deadline has passed it escalates once (alert kind
``crisis_escalation``, severity critical, to ``crisis.escalation_channels`` when set —
the second contact list — @-mentioning ``crisis.escalation_mentions``, resolved when the
alert is posted: the payload holds ``"mentions": "escalation"``, never the numbers). Each
reminder is recorded in ``incident_steps.reminders_sent`` and ``audit_log`` and is sent at
most once; when the watch was down for a while and several levels are due at once, all are
recorded and only the most urgent is sent. Time comes from ``userops.clock.utcnow``.
"""
from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from tasks.alerts import enqueue_alert
from tasks.crisis.messages import step_status
from tasks.crisis.util import execute, read, to_shop_str
from userops.clock import utcnow
from userops.db import audit, get_engine
from userops.i18n import t
from userops.settings import get_settings


def level_name(fraction: float) -> str:
    return str(int(round(fraction * 100)))


def watch_deadlines(engine: Engine | None = None, now: datetime | None = None) -> dict:
    engine = engine or get_engine()
    now = now or utcnow()
    cfg = get_settings().crisis
    fractions = sorted(cfg.reminder_fractions)
    steps = read(
        engine,
        "SELECT s.incident_id, s.step, s.deadline_at, s.status, s.reminders_sent, i.opened_at, i.skus "
        "FROM incident_steps s JOIN incidents i ON i.incident_id = s.incident_id "
        "WHERE i.status = 'open' AND s.status <> 'done'",
        parse_dates=["deadline_at", "opened_at"],
    )
    sent = {"reminders": 0, "escalations": 0, "recorded": []}
    if steps.empty:
        return sent
    for r in steps.itertuples(index=False):  # open steps: a handful, never per customer
        done_levels = json.loads(r.reminders_sent or "[]")
        window = r.deadline_at - r.opened_at
        elapsed = pd.Timestamp(now) - r.opened_at
        due = [level_name(f) for f in fractions if elapsed >= f * window and level_name(f) not in done_levels]
        late = pd.Timestamp(now) > r.deadline_at and "escalated" not in done_levels
        if not due and not late:
            continue
        new_levels = due + (["escalated"] if late else [])
        step_label = t(f"crisis.step.{r.step}")
        with engine.begin() as conn:
            # compare-and-set on the recorded list: two watchers never both send; nor for a step
            # done (or an incident closed) since it was read
            n = execute(
                conn, ("UPDATE incident_steps SET reminders_sent = :new WHERE incident_id = :i AND step = :s "
                        "AND COALESCE(reminders_sent, '[]') = :old AND status <> 'done' "
                        "AND EXISTS (SELECT 1 FROM incidents i WHERE i.incident_id = :i AND i.status = 'open')"),
                {"new": json.dumps(done_levels + new_levels), "i": r.incident_id, "s": r.step,
                 "old": r.reminders_sent or "[]"},
            ).rowcount
            if not n:
                continue
            day = r.opened_at.date()
            if late:
                enqueue_alert(
                    "crisis_escalation",
                    t("crisis.escalation.title", incident_id=r.incident_id, step=step_label),
                    t("crisis.escalation.body", due=to_shop_str(r.deadline_at), at=to_shop_str(now),
                      status=step_status(r.status)),
                    severity="critical",
                    subject=f"{r.incident_id}|{r.step}|escalated",
                    day=day,
                    payload={"incident_id": r.incident_id, "step": r.step, "mentions": "escalation",  # resolved at send time: no number stored
                             "escalation": True},
                    channels=cfg.escalation_channels or None,
                    conn=conn,
                )
                sent["escalations"] += 1
            else:
                pct = due[-1]
                enqueue_alert(
                    "crisis_deadline",
                    t("crisis.reminder.title", incident_id=r.incident_id, step=step_label, pct=pct),
                    t("crisis.reminder.body", due=to_shop_str(r.deadline_at), at=to_shop_str(now),
                      status=step_status(r.status)),
                    severity="warning" if int(pct) < 90 else "error",
                    subject=f"{r.incident_id}|{r.step}|{pct}",
                    day=day,
                    payload={"incident_id": r.incident_id, "step": r.step, "level": pct},
                    conn=conn,
                )
                sent["reminders"] += 1
            for lv in new_levels:
                audit(conn, "userops:deadline-watch", "step.escalated" if lv == "escalated" else "step.reminder",
                      "incident", r.incident_id,
                      {"step": r.step, "level": lv, "sent": lv == ("escalated" if late else due[-1]), "at": now,
                       "deadline_at": r.deadline_at})
            sent["recorded"].append({"incident_id": r.incident_id, "step": r.step, "levels": new_levels})
    return sent


def watch_open_incidents(engine: Engine | None = None, now: datetime | None = None) -> dict:
    """The crisis watch (``crisis-watch`` deployment, every 5 minutes): one query when no
    incident is open (the usual case: nothing else runs); else ``watch_deadlines``, and what it
    queued is delivered at once rather than at the next delivery pass, so a Control 90%
    reminder (1h48 after the opening) and its escalation (2h) reach the operator within the
    watch's interval. Returns ``{"open", "reminders", "escalations", ...}``."""
    engine = engine or get_engine()
    n = int(read(engine, "SELECT COUNT(*) AS n FROM incidents WHERE status = 'open'")["n"].iloc[0])
    if not n:
        return {"open": 0, "reminders": 0, "escalations": 0, "recorded": []}
    out = watch_deadlines(engine, now)
    if out["reminders"] or out["escalations"]:
        from tasks.alerts import deliver_pending

        out["delivery"] = deliver_pending(engine, now=now)
    return {"open": n, **out}


def drop_deadline_alerts(conn, incident_id: str, steps, actor: str) -> int:
    """``steps`` of the incident are done (or the incident closed): their reminders and
    escalations still queued (``crisis_deadline`` / ``crisis_escalation``, subject
    ``<incident>|<step>|…``) are marked ``obsolete`` — never posted "not started" for a step
    that is done — and the audit log says which. Returns how many."""
    from tasks.alerts.outbox import mark_obsolete

    n = 0
    for step in steps:
        why = t("crisis.deadline.alert_obsolete", incident_id=incident_id, step=t(f"crisis.step.{step}"))
        for kind in ("crisis_deadline", "crisis_escalation"):
            ids = mark_obsolete(conn, kind, f"{incident_id}|{step}|", why)
            if ids:
                audit(conn, actor, "alert.obsolete.deadline", "incident", incident_id,
                      {"step": step, "kind": kind, "alerts": ids})
            n += len(ids)
    return n


@task(name="crisis-deadline-watch", cache_policy=NO_CACHE)
def watch_deadlines_task(now: datetime | None = None) -> dict:
    return watch_deadlines(now=now)
