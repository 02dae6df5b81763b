"""The 24-hour feedback promise and the quality-trace alert.

* Feedback SLA: feedback without a first response (and not resolved) ``health.feedback_sla_hours``
  (default 24h) after it was submitted is *listed* in ``feedback_sla`` and alerted once
  (alert kind ``feedback_sla`` naming only the newly overdue items). With
  ``health.feedback_ack`` the customer is told once "我们收到了，正在努力" / "we received it
  and are working on it": a non-marketing touch of campaign ``feedback-ack`` with the key
  ``feedback-ack|<feedback id>`` through the campaign engine (exactly-once sending).
* Quality trace (质量溯源+服务升级): complaints / paid orders over the last
  ``health.complaint_window_days`` above ``health.complaint_rate_max`` (5%) raises an alert
  (kind ``quality_trace``, once a day) naming the SKUs driving it.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from tasks.alerts import enqueue_alert
from tasks.crisis import messages  # noqa: F401
from tasks.crisis.templates import fill_markers, marker, render
from tasks.crisis.util import execute, read, to_shop, to_shop_str
from userops.clock import utcnow
from userops.db import bulk_upsert, get_engine
from userops.i18n import join_list, t
from userops.settings import get_settings

log = logging.getLogger("userops.crisis.feedback")

ACK_CAMPAIGN = "feedback-ack"


def overdue_feedback(bind, now: datetime | None = None) -> pd.DataFrame:
    """Every feedback item still without a first response past the SLA (listed or not)."""
    now = now or utcnow()
    hours = get_settings().health.feedback_sla_hours
    return read(
        bind,
        "SELECT f.feedback_id, f.customer_id, f.kind, f.sku, f.created_at FROM feedback f "
        "WHERE f.first_response_at IS NULL AND f.resolved_at IS NULL AND f.created_at IS NOT NULL AND f.created_at <= :cut "
        "ORDER BY f.created_at, f.feedback_id",
        {"cut": now - timedelta(hours=hours)},
        parse_dates=["created_at"],
    )


def _ack_touches(new: pd.DataFrame, conn, now: datetime) -> pd.DataFrame:
    s = get_settings()
    lang = s.customer_language  # the customer's message: the customers' language, not the operator's
    df = new[new["customer_id"].notna()].copy()
    if df.empty:
        return df
    names = read(
        conn,
        "SELECT customer_id, name FROM customers WHERE customer_id IN :ids",
        {"ids": df["customer_id"].astype(str).unique().tolist()},
    )
    df = df.merge(names, on="customer_id", how="left")
    if "name" not in df:
        df["name"] = None
    local = df["created_at"].dt.tz_localize("UTC").dt.tz_convert(s.timezone)
    if lang == "zh-CN":
        df["date"] = local.dt.month.astype(str) + "月" + local.dt.day.astype(str) + "日"
        fallback, subject = "尊敬的会员", "我们收到了，正在努力"
    else:
        df["date"] = local.dt.strftime("%d %b")
        fallback, subject = "customer", "We received it and are working on it"
    df["name"] = df["name"].fillna("").astype(str).str.strip()
    df["name"] = df["name"].where(df["name"] != "", fallback)
    text = render("ack", lang, name=marker("name"), date=marker("date"), brand=s.crisis.brand).strip()
    return pd.DataFrame({
        "touch_key": ACK_CAMPAIGN + "|" + df["feedback_id"].astype(str),
        "campaign": ACK_CAMPAIGN,
        "campaign_run_id": None,
        "customer_id": df["customer_id"].astype(str),
        "channel": s.health.feedback_ack_channel,
        "grp": "treatment",
        "variant": "ack",
        "locale": lang,
        "subject": subject,
        "body": fill_markers(text, df),
        "is_marketing": False,
        "gift_cost": 0.0,
        "status": "planned",
        "planned_at": pd.Timestamp(now),
        "feedback_id": df["feedback_id"].astype(str),
    })


def feedback_sla_check(engine: Engine | None = None, now: datetime | None = None, send: bool = True) -> dict:
    """List newly overdue feedback, alert once, acknowledge once. Returns figures and the list."""
    engine = engine or get_engine()
    now = now or utcnow()
    s = get_settings()
    hours = s.health.feedback_sla_hours
    with engine.begin() as conn:
        # what got a first response since it was listed
        execute(conn, (
            "UPDATE feedback_sla SET responded_at = (SELECT f.first_response_at FROM feedback f WHERE f.feedback_id = feedback_sla.feedback_id) "
            "WHERE responded_at IS NULL"))
        overdue = overdue_feedback(conn, now)
        listed = read(conn, "SELECT feedback_id FROM feedback_sla")
        new = overdue[~overdue["feedback_id"].isin(listed["feedback_id"])].copy()
        acks = 0
        if not new.empty:
            rows = new[["feedback_id", "customer_id", "kind", "sku", "created_at"]].copy()
            rows["due_at"] = rows["created_at"] + pd.Timedelta(hours=hours)
            rows["listed_at"] = pd.Timestamp(now)
            rows["ack_touch_key"] = None
            if s.health.feedback_ack:
                touches = _ack_touches(new, conn, now)
                if not touches.empty:
                    from tasks.messaging import plan_touches

                    plan_touches(conn, touches.drop(columns="feedback_id"))
                    keymap = dict(zip(touches["feedback_id"], touches["touch_key"]))
                    rows["ack_touch_key"] = rows["feedback_id"].astype(str).map(keymap)
                    acks = len(touches)
            bulk_upsert(conn, "feedback_sla", rows, ["feedback_id"], on_conflict="nothing")
            kinds = new["kind"].value_counts().to_dict()
            listing = "\n".join(
                f"- {r.feedback_id} · {r.kind} · {r.sku or '-'} · {to_shop_str(r.created_at)}" for r in new.head(30).itertuples(index=False)
            ) + (f"\n- … (+{len(new) - 30})" if len(new) > 30 else "")
            enqueue_alert(
                "feedback_sla",
                t("feedback.sla.title", n=len(new), hours=hours),
                t("feedback.sla.body", kinds=join_list(f"{k} {v}" for k, v in kinds.items()),
                  oldest=to_shop_str(new["created_at"].min()),
                  # planned, not sent: the sending comes after this alert (quiet hours, a channel)
                  acks=t("feedback.sla.acks_planned", n=acks) if acks else "", listing=listing),
                severity="warning",
                subject=f"{now:%Y%m%dT%H%M}|{new['feedback_id'].iloc[0]}",
                day=now.date(),
                payload={"feedback_ids": new["feedback_id"].head(200).tolist(), "count": len(new)},
                conn=conn,
            )
    sent = None
    if send:  # new acknowledgements, and earlier ones deferred by quiet hours or retries
        waiting = read(engine, "SELECT COUNT(*) AS n FROM touches WHERE campaign = :c AND status IN ('planned', 'in_flight')",
                             {"c": ACK_CAMPAIGN})["n"].iloc[0]
        if waiting:
            from tasks.messaging import send_due

            sent = send_due(engine=engine, now=now, campaign=ACK_CAMPAIGN)
    # what the customers were actually told: a planned message is not an acknowledgement
    # (quiet hours defer it, a channel without a provider keeps it waiting)
    n_sent = int((sent or {}).get("sent") or 0)
    no_channel = int(sum(((sent or {}).get("waiting_for_provider") or {}).values()))
    still = int(read(engine, "SELECT COUNT(*) AS n FROM touches WHERE campaign = :c AND status IN ('planned', 'in_flight')",
                     {"c": ACK_CAMPAIGN})["n"].iloc[0]) if acks or sent else 0
    return {
        "overdue": int(len(overdue)),
        "newly_listed": int(len(new)),
        "ack_planned": int(acks),  # acknowledgements planned by this check
        "acknowledged": n_sent,  # acknowledgements sent by this check (new and earlier ones)
        "ack_waiting_for_channel": no_channel,  # waiting for a provider to be configured
        "ack_waiting": max(still - no_channel, 0),  # waiting otherwise (quiet hours, a retry)
        "overdue_ids": overdue["feedback_id"].tolist(),
        "send": sent,
    }


def summary_line(result: dict, lang: str | None = None) -> str:
    """The monitor's summary line for a ``feedback_sla_check`` result: overdue, newly listed,
    and the acknowledgements as they are — planned now, sent, waiting for a channel, waiting
    otherwise (quiet hours, retries)."""
    return t("monitor.summary.feedback_acks", lang, n=result["overdue"], new=result["newly_listed"],
             planned=result.get("ack_planned", 0), sent=result.get("acknowledged", 0),
             no_channel=result.get("ack_waiting_for_channel", 0), waiting=result.get("ack_waiting", 0))


def active_customers(engine: Engine, now: datetime) -> tuple[int, str]:
    """The complaint rate's denominator, as the nightly health snapshot defines it: the
    customers whose stage is new, active or loyal in the stored tags (last night's). Before
    any tags exist: the customers with a paid order in the last ``lifecycle.active_days``
    days. Returns (count, where it came from: "tags" or "orders")."""
    n = int(read(engine, "SELECT COUNT(*) AS n FROM tags WHERE lifecycle_stage IN ('new', 'active', 'loyal')")["n"].iloc[0])
    if n or not read(engine, "SELECT customer_id FROM tags LIMIT 1").empty:
        return n, "tags"
    since = now - timedelta(days=get_settings().lifecycle.active_days)
    n = int(read(engine, "SELECT COUNT(DISTINCT customer_id) AS n FROM orders WHERE status = 'paid' AND paid_at > :a AND paid_at <= :b",
                 {"a": since, "b": now})["n"].iloc[0])
    return n, "orders"


def quality_trace_check(engine: Engine | None = None, now: datetime | None = None, top: int = 5) -> dict:
    """Complaint rate over the window; above the threshold alert once a day with the SKUs
    driving it (most complaints, with each SKU's own complaints per order). The rate is the
    health snapshot's (complaints in the last ``health.complaint_window_days`` days / active
    customers), over the window ending now instead of at last night's cutoff, so the hourly
    alert and the nightly figure measure the same thing against the same threshold."""
    engine = engine or get_engine()
    now = now or utcnow()
    h = get_settings().health
    start = now - timedelta(days=h.complaint_window_days)
    c = int(read(engine, "SELECT COUNT(*) AS n FROM feedback WHERE kind = 'complaint' AND created_at > :a AND created_at <= :b",
                       {"a": start, "b": now})["n"].iloc[0])
    active, basis = active_customers(engine, now)
    rate = (c / active) if active else (1.0 if c else 0.0)
    out = {"complaints": c, "active": active, "active_from": basis, "rate": round(rate, 4), "threshold": h.complaint_rate_max,
           "alerted": False, "skus": []}
    if rate <= h.complaint_rate_max or c == 0:
        return out
    skus = read(
        engine,
        "SELECT f.sku, COUNT(*) AS complaints FROM feedback f WHERE f.kind = 'complaint' AND f.sku IS NOT NULL "
        "AND f.created_at > :a AND f.created_at <= :b GROUP BY f.sku ORDER BY COUNT(*) DESC, f.sku LIMIT :k",
        {"a": start, "b": now, "k": int(top)},
    )
    orders = read(
        engine,
        "SELECT oi.sku, COUNT(DISTINCT o.order_id) AS orders FROM orders o JOIN order_items oi ON oi.order_id = o.order_id "
                "WHERE o.status = 'paid' AND o.paid_at > :a AND o.paid_at <= :b AND oi.sku IN :skus GROUP BY oi.sku",
        {"a": start, "b": now, "skus": skus["sku"].tolist() or ["-"]},
    )
    skus = skus.merge(orders, on="sku", how="left").fillna({"orders": 0})
    skus["share"] = skus["complaints"] / c
    lines = "\n".join(
        t("quality.sku", sku=r.sku, complaints=int(r.complaints), share=f"{r.share * 100:.0f}%")
        + (t("quality.sku_per_order", per_order=f"{r.complaints / r.orders * 100:.1f}%") if r.orders else "")
        for r in skus.itertuples(index=False)
    ) or "-"
    out["skus"] = skus["sku"].tolist()
    n = enqueue_alert(
        "quality_trace",
        t("quality.title", rate=f"{rate * 100:.1f}%", threshold=f"{h.complaint_rate_max * 100:.0f}%"),
        t("quality.body", days=h.complaint_window_days, complaints=c, active=active, skus=lines),
        severity="error",
        subject="complaint-rate",
        day=to_shop(now).date(),
        payload={"rate": rate, "threshold": h.complaint_rate_max, "complaints": c, "active": active, "skus": out["skus"]},
    )
    out["alerted"] = bool(n)
    return out


@task(name="feedback-sla-check", cache_policy=NO_CACHE)
def feedback_sla_task(now: datetime | None = None) -> dict:
    return feedback_sla_check(now=now)


@task(name="quality-trace-check", cache_policy=NO_CACHE)
def quality_trace_task(now: datetime | None = None) -> dict:
    return quality_trace_check(now=now)
