"""Clarify (澄清事实, 4h): draft the official statement, a human approves it, publish it.

The draft is rendered from ``statement.<lang>.md.j2`` with the incident's facts (products,
what happened, complaints, what was done, who is affected and what they get). A human edits
and approves it (Prefect UI pause form, or ``userops incident approve``); only an approved
text is ever published — to the operator channels through ``enqueue_alert`` kind
``crisis_statement`` (``crisis.statement_channels`` when set).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Connection, Engine

from tasks.alerts import enqueue_alert
from tasks.crisis import messages  # noqa: F401
from tasks.crisis.incidents import get_incident, get_step, lock_open, set_step
from tasks.crisis.spike import reason_text
from tasks.crisis.templates import render
from tasks.crisis.util import execute, read, to_shop, to_shop_str
from userops.clock import utcnow
from userops.db import get_engine
from userops.i18n import parens, t
from userops.settings import get_settings

log = logging.getLogger("userops.crisis.clarify")


def statement_facts(incident_id: str, lang: str | None = None, engine: Engine | None = None) -> dict:
    engine = engine or get_engine()
    s = get_settings()
    lang = lang or s.customer_language  # the statement is public: the customers' language
    inc = get_incident(engine, incident_id)
    skus = inc["skus"]
    cats = read(engine, "SELECT sku, MIN(category) AS category FROM order_items WHERE sku IN :skus GROUP BY sku", {"skus": skus})
    catmap = dict(zip(cats["sku"], cats["category"]))
    sep = "、" if lang == "zh-CN" else ", "
    product = sep.join(catmap[k] + parens(k, lang) if catmap.get(k) else k for k in skus)
    # the complaints that led to the incident: a spike's complaints lie before the spike was
    # first hot, which may be long before the run that opened the incident (the event waits
    # for a worker, a replayed night detects spikes of past days), so the window is counted
    # back from the earlier of the opening and the incident's first spike
    first_hot = read(engine, "SELECT MIN(first_hot_at) AS m FROM complaint_spikes WHERE incident_id = :i",
                     {"i": incident_id}, parse_dates=["m"])["m"].iloc[0]
    anchor = inc["opened_at"]
    if first_hot is not None and not pd.isna(first_hot):
        anchor = min(pd.Timestamp(anchor), pd.Timestamp(first_hot)).to_pydatetime()
    since = anchor - timedelta(days=s.health.complaint_window_days)
    complaints = read(
        engine,
        "SELECT COUNT(DISTINCT COALESCE(customer_id, feedback_id)) AS n FROM feedback "
        "WHERE kind = 'complaint' AND sku IN :skus AND created_at > :a",
        {"skus": skus, "a": since},
    )["n"].iloc[0]
    customers = read(engine, "SELECT COUNT(*) AS n FROM incident_customers WHERE incident_id = :i", {"i": incident_id})["n"].iloc[0]
    control = get_step(engine, incident_id, "control")
    compensate = get_step(engine, incident_id, "compensate")
    rem = s.crisis.remedies
    values = sorted({r.coupon_value for r in rem.values() if r.coupon_value > 0})
    unit = "元" if lang == "zh-CN" else ""
    cur = "" if lang == "zh-CN" else "¥"
    coupons = ""
    if values:
        coupons = f"{cur}{values[0]:g}{unit}" if len(values) == 1 else f"{cur}{values[0]:g}–{values[-1]:g}{unit}"
    opened = to_shop(inc["opened_at"])
    date = f"{opened.year}年{opened.month}月{opened.day}日" if lang == "zh-CN" else opened.strftime("%d %b %Y")
    # ``reason`` is the operator's (or the spike trigger's) internal text: the default templates
    # do not quote it — the public statement names the product issue neutrally — but an
    # operator's template (crisis.template_dir) written for it still gets it
    return {
        "brand": s.crisis.brand,
        "product": product,
        "skus": skus,
        "reason": (reason_text(inc.get("reason"), lang) or "").strip() or ("商品质量问题" if lang == "zh-CN" else "a quality problem"),
        "complaints": int(complaints),
        "customers": int(customers),
        "lookback_days": s.crisis.lookback_days,
        "taken_down": control["status"] == "done",
        "takedown_time": to_shop_str(control["done_at"]) if control["status"] == "done" else "",
        "compensate_due": to_shop_str(compensate["deadline_at"]),
        "refund": any(r.refund_offer for r in rem.values()),
        "coupons": coupons,
        "call": any(r.call_list for r in rem.values()),
        "contact": s.crisis.service_contact,
        "date": date,
    }


def draft_statement(incident_id: str, lang: str | None = None, engine: Engine | None = None, now: datetime | None = None) -> str:
    """Render the draft and keep it on the incident; the Clarify step now waits for a human.
    A draft a human already edited or approved is never overwritten."""
    engine = engine or get_engine()
    lang = lang or get_settings().customer_language  # public text: the customers' language, not the operator's
    inc = get_incident(engine, incident_id)
    step = get_step(engine, incident_id, "clarify")
    if inc.get("statement") and (step["status"] in ("done",) or step["result"].get("edited")):
        return inc["statement"]
    text = render("statement", lang, **statement_facts(incident_id, lang, engine))
    with engine.begin() as conn:
        execute(conn, ("UPDATE incidents SET statement = :s, statement_lang = :l WHERE incident_id = :i"),
                     {"s": text, "l": lang, "i": incident_id})
        if step["status"] == "pending":
            set_step(conn, incident_id, "clarify", "waiting", "userops", {"drafted_at": now or utcnow(), "lang": lang}, now,
                     action="step.clarify.drafted")
    return text


def refresh_draft(incident_id: str, engine: Engine | None = None) -> str | None:
    """Something the draft states changed (the take-down was confirmed): render the draft again
    so it says what holds now — only a draft nobody edited, and only while Clarify is not done
    (``draft_statement``'s rule). None when there is no draft yet (the flow drafts it later)."""
    engine = engine or get_engine()
    if not (get_incident(engine, incident_id) or {}).get("statement"):
        return None
    return draft_statement(incident_id, engine=engine)


def approve_statement(incident_id: str, text: str | None, approver: str, engine: Engine | None = None, now: datetime | None = None) -> bool:
    """Record the approval and publish the statement once. Returns False when it was
    already published (nothing is sent twice) or the incident is closed (nothing is published)."""
    engine = engine or get_engine()
    now = now or utcnow()
    inc = get_incident(engine, incident_id)
    if inc["statement_published_at"] is not None or inc["status"] != "open":
        return False
    text = (text or inc.get("statement") or "").strip()
    if not text:
        raise ValueError("an empty statement cannot be approved")
    text += "\n"
    s = get_settings().crisis
    with engine.begin() as conn:
        n = execute(
            conn, ("UPDATE incidents SET statement = :s, statement_published_at = :t WHERE incident_id = :i "
                   "AND statement_published_at IS NULL AND status = 'open'"),  # a closed incident publishes nothing
            {"s": text, "t": now, "i": incident_id},
        ).rowcount
        if not n:
            return False
        edited = text.strip() != (inc.get("statement") or "").strip()
        set_step(conn, incident_id, "clarify", "done", approver,
                 {"approved_by": approver, "approved_at": now, "edited": edited, "published_at": now,
                  "channels": s.statement_channels or "operator"}, now, action="statement.approved")
        enqueue_alert(
            "crisis_statement",
            t("crisis.statement.title", incident_id=incident_id),
            text,
            severity="info",
            subject=incident_id,
            day=inc["opened_at"].date(),
            payload={"incident_id": incident_id, "approved_by": approver},
            channels=s.statement_channels or None,
            conn=conn,
        )
    log.info("%s", t("log.crisis.statement_published", incident_id=incident_id))
    return True


def statement_changed(incident_id: str, text: str | None, bind: Engine | Connection | None = None) -> bool:
    """Whether ``text`` (what a form or the CLI brought back) differs from the draft kept on
    the incident: the form is pre-filled with the draft, so an untouched form is no edit."""
    inc = get_incident(bind or get_engine(), incident_id)
    return bool(text and text.strip()) and text.strip() != (inc.get("statement") or "").strip()


def reject_statement(incident_id: str, text: str | None, reviewer: str, note: str = "", engine: Engine | None = None) -> None:
    """A human sent the draft back: keep their edits as the new draft; the wait goes on.
    ``edited`` is recorded only when the text differs from the draft (and stays once set): an
    edited draft is never rendered over, an untouched one follows what holds (``draft_statement``)."""
    engine = engine or get_engine()
    with engine.begin() as conn:
        changed = statement_changed(incident_id, text, conn)
        if changed:
            execute(conn, ("UPDATE incidents SET statement = :s WHERE incident_id = :i"),
                         {"s": text.strip() + "\n", "i": incident_id})
        edited = changed or bool(get_step(conn, incident_id, "clarify")["result"].get("edited"))
        set_step(conn, incident_id, "clarify", "waiting", reviewer, {"edited": edited, "last_rejected_by": reviewer, "note": note},
                 action="statement.sent_back")


def expire_step(incident_id: str, step: str, what_key: str, engine: Engine | None = None, now: datetime | None = None) -> None:
    """The wait for a human on ``step`` ran out: record it and escalate (critical). Nothing for
    a closed incident (its checklist ended)."""
    engine = engine or get_engine()
    inc = get_incident(engine, incident_id)
    st = get_step(engine, incident_id, step)
    if st["status"] == "done":
        return
    s = get_settings().crisis
    with engine.begin() as conn:
        if not lock_open(conn, incident_id):
            return
        set_step(conn, incident_id, step, "expired", "userops", {"expired_at": now or utcnow()}, now, action=f"step.{step}.expired")
        enqueue_alert(
            "crisis_escalation",
            t("crisis.expired.title", incident_id=incident_id, step=t(f"crisis.step.{step}")),
            t("crisis.expired.body", what=t(what_key), incident_id=incident_id),
            severity="critical",
            subject=f"{incident_id}|{step}|expired",
            day=inc["opened_at"].date(),
            payload={"incident_id": incident_id, "step": step, "mentions": "escalation"},  # numbers resolved at send time
            channels=s.escalation_channels or None,
            conn=conn,
        )


@task(name="clarify-draft-statement", cache_policy=NO_CACHE)
def draft_statement_task(incident_id: str) -> str:
    return draft_statement(incident_id)


@task(name="clarify-publish-statement", cache_policy=NO_CACHE)
def approve_statement_task(incident_id: str, text: str, approver: str) -> bool:
    return approve_statement(incident_id, text, approver)
