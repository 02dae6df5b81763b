"""Compensate (补偿用户, 24h): affected customers, priority order, remedies, apologies.

* Affected = customers with a *paid* order containing one of the incident's SKUs, paid in
  the ``crisis.lookback_days`` (default 30) before the opening (or since). They are written
  to ``incident_customers`` as soon as the incident opens, so campaigns stop marketing to
  them at once (campaigns suppress every customer of an open incident).
* Priority: ``tags.crisis_priority`` core > potential > ordinary (no tag = ordinary), then
  by the amount they spent on the affected items; ``rank`` is that service order.
* Remedy per tier: ``crisis.remedies[tier]`` = coupon value, refund offer, personal call list.
* Apologies go through the campaign engine (``tasks.messaging.plan_touches`` /
  ``send_due``) as non-marketing touches of campaign ``crisis-<incident_id>`` with one
  ``touch_key`` per incident and customer, so a re-run never sends twice. Core customers'
  touches are ``awaiting_review`` until a human approves them (``release_core``); the rest
  are ``planned`` and go out right away. The personal call list (staff-outreach rows with the
  customer's phone and email) follows the apology: a call is listed only once that
  customer's apology is no longer held (after the review for core customers; never for a
  customer the reviewer excluded), its script rendered then with what holds then
  (``release_calls``). The text is personalised (name, product, order
  date, remedy) set-based: one render per tier, then column-wise filling.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import text as sa_text
from sqlalchemy.engine import Connection, Engine

from tasks.crisis.incidents import get_incident, get_step, lock_open, set_step
from tasks.crisis.templates import fill_markers, marker, override_path, render_guarded
from tasks.crisis.util import execute, read
from userops.clock import utcnow
from userops.db import audit, bulk_upsert, get_engine
from userops.i18n import register
from userops.settings import get_settings

log = logging.getLogger("userops.crisis.compensate")

# The core reviewer named customers to exclude who could not be: which, and why, plainly.
register(
    {
        "crisis.review.already_released": {
            "zh-CN": "事件 {incident_id}：以下客户未被排除，他们的致歉没有在等待复核（已在此前放行，或不是需要复核的核心客户）：{customers}。"
            "已放行的致歉不会撤回，电话回访仍会列出；不需要回访的，请告知客服跳过。",
            "en": "Incident {incident_id}: these customers were not excluded: their apology was not waiting for the review "
            "(released before, or they are not core customers needing it): {customers}. A released apology "
            "is not taken back and their call is still listed; tell the staff to skip them if they should not be called.",
        },
        "crisis.review.not_in_incident": {
            "zh-CN": "事件 {incident_id}：以下编号不是本事件的客户（或客户不存在），未做任何处理：{customers}。请核对客户编号。",
            "en": "Incident {incident_id}: these ids are not customers of this incident (or do not exist); nothing was done "
            "for them: {customers}. Check the customer ids.",
        },
    }
)


def split_not_excluded(conn: Connection, incident_id: str, ids) -> tuple[list[str], list[str]]:
    """Customers named for exclusion who could not be excluded, as (customers of the incident
    whose apology was not held for the review, ids that are no customer of the incident)."""
    ids = sorted({str(x) for x in ids})
    if not ids:
        return [], []
    members = set(read(conn, "SELECT customer_id FROM incident_customers WHERE incident_id = :i AND customer_id IN :ids",
                       {"i": incident_id, "ids": ids})["customer_id"].astype(str))
    return [c for c in ids if c in members], [c for c in ids if c not in members]


def warn_not_excluded(incident_id: str, not_excluded, not_in_incident) -> list[str]:
    """The lines (operator's language) naming who could not be excluded and why; none when all were."""
    from userops.i18n import join_list, t

    lines = []
    if not_excluded:
        lines.append(t("crisis.review.already_released", incident_id=incident_id, customers=join_list(sorted(not_excluded))))
    if not_in_incident:
        lines.append(t("crisis.review.not_in_incident", incident_id=incident_id, customers=join_list(sorted(not_in_incident))))
    return lines

TIERS = ("core", "potential", "ordinary")
PENDING_STATUSES = ("planned", "awaiting_review", "in_flight")
# why a call (staff-outreach row) is held (``touches.reason``)
CALL_HELD_CORE = "waits for the core review"
CALL_HELD_APOLOGY = "listed when the apologies go out"
# a customer the core reviewer excluded: their touches are suppressed with the reason
# EXCLUDED_REASON + reviewer, and their incident_customers row has the remedy EXCLUDED_REMEDY
# (and call_list false): they get nothing from the incident (``release_core``)
EXCLUDED_REASON = "held by reviewer "
EXCLUDED_REMEDY = "excluded"


def campaign_name(incident_id: str) -> str:
    return f"crisis-{incident_id}"


def touch_key(incident_id: str, customer_ids: pd.Series) -> pd.Series:
    return f"{campaign_name(incident_id)}|" + customer_ids.astype(str)


def affected_customers(bind: Engine | Connection, skus: list[str], opened_at: datetime, now: datetime | None = None) -> pd.DataFrame:
    """Customers with paid orders of ``skus`` in the look-back window, in service order."""
    cfg = get_settings().crisis
    now = now or utcnow()
    since = opened_at - timedelta(days=cfg.lookback_days)
    df = read(
        bind,
        
            """
            SELECT a.customer_id, a.affected_orders, a.affected_amount, a.last_paid_at, a.sku, a.category,
                   COALESCE(t.crisis_priority, 'ordinary') AS priority
            FROM (
                SELECT o.customer_id,
                       COUNT(DISTINCT o.order_id) AS affected_orders,
                       SUM(CAST(COALESCE(oi.unit_price, 0) AS FLOAT) * COALESCE(oi.quantity, 1)) AS affected_amount,
                       MAX(o.paid_at) AS last_paid_at,
                       MIN(oi.sku) AS sku,
                       MIN(oi.category) AS category
                FROM orders o JOIN order_items oi ON oi.order_id = o.order_id
                WHERE o.status = 'paid' AND o.paid_at >= :since AND o.paid_at <= :until AND oi.sku IN :skus
                GROUP BY o.customer_id
            ) a
            LEFT JOIN tags t ON t.customer_id = a.customer_id
            """
        ,
        {"since": since, "until": max(now, opened_at), "skus": list(skus)},
        parse_dates=["last_paid_at"],
    )
    if df.empty:
        return df.assign(rank=pd.Series(dtype=int))
    df["priority"] = df["priority"].where(df["priority"].isin(TIERS), "ordinary")
    df["tier_order"] = df["priority"].map({k: i for i, k in enumerate(TIERS)})
    df["affected_amount"] = df["affected_amount"].astype(float).round(2)
    df = df.sort_values(["tier_order", "affected_amount", "customer_id"], ascending=[True, False, True], kind="stable")
    df["rank"] = np.arange(1, len(df) + 1)
    return df.drop(columns="tier_order").reset_index(drop=True)


def record_affected(conn: Connection, incident_id: str, now: datetime | None = None) -> int:
    """(Re)compute the incident's affected customers into ``incident_customers``: from now on
    campaigns leave them alone. Idempotent; a join that adds SKUs adds their buyers."""
    now = now or utcnow()
    inc = get_incident(conn, incident_id)
    df = affected_customers(conn, inc["skus"], inc["opened_at"], now)
    if df.empty:
        return 0
    rows = df[["customer_id", "priority", "rank", "affected_orders", "affected_amount"]].copy()
    rows.insert(0, "incident_id", incident_id)
    rows["affected_orders"] = rows["affected_orders"].astype(int)
    bulk_upsert(conn, "incident_customers", rows, ["incident_id", "customer_id"])
    execute(conn, ("UPDATE incident_customers SET added_at = :t WHERE incident_id = :i AND added_at IS NULL"),
                 {"t": now, "i": incident_id})
    return len(rows)


def remedy_label(priority: str) -> str:
    r = get_settings().crisis.remedies.get(priority) or get_settings().crisis.remedies.get("ordinary")
    parts = []
    if r.coupon_value:
        parts.append(f"coupon{r.coupon_value:g}")
    if r.refund_offer:
        parts.append("refund")
    if r.call_list:
        parts.append("call")
    return "+".join(parts) or "apology"


def _personalise(df: pd.DataFrame, lang: str, taken_down: bool = False, call_script: bool = False,
                 fallbacks: dict | None = None) -> pd.DataFrame:
    """Subject and body per customer, one template render per tier (and per
    ``coupon_placed``). The text says only what holds when it is rendered: ``taken_down``
    (Control is done: the products are off sale) and, per customer, ``coupon_placed`` (column;
    default True: the apology message itself carries the coupon, so it is true once it is sent).
    ``call_script``: the text staff read on the call (it does not announce the call).
    An operator's template that makes one of these claims unchecked is replaced by the shipped
    one where the claim does not hold yet (``templates.render_guarded``); ``fallbacks`` (if
    given) counts those texts per unchecked variable, and under ``"*"`` in all."""
    s = get_settings()
    tz = s.timezone
    local = df["last_paid_at"].dt.tz_localize("UTC").dt.tz_convert(tz)
    if lang == "zh-CN":
        df["order_date"] = local.dt.month.astype(str) + "月" + local.dt.day.astype(str) + "日"
        fallback = "尊敬的会员"
        subject = "致歉与补偿说明"
    else:
        df["order_date"] = local.dt.strftime("%d %b")
        fallback = "customer"
        subject = "Our apology, and what we will do"
    df["name"] = df["name"].fillna("").astype(str).str.strip()
    df["name"] = df["name"].where(df["name"] != "", fallback)
    df["product"] = np.where(df["category"].notna() & (df["category"].astype(str) != ""),
                             df["category"].astype(str) + "(" + df["sku"].astype(str) + ")", df["sku"].astype(str))
    df["body"] = ""
    placed = df["coupon_placed"].astype(bool) if "coupon_placed" in df else pd.Series(True, index=df.index)
    for tier in TIERS:
        r = s.crisis.remedies.get(tier) or s.crisis.remedies["ordinary"]
        for coupon_placed in (True, False):
            m = (df["priority"] == tier) & (placed == coupon_placed)
            if not m.any():
                continue
            text, fell_back = render_guarded(
                "apology", lang,
                name=marker("name"), product=marker("product"), order_date=marker("order_date"),
                coupon=(f"{r.coupon_value:g}" if lang == "zh-CN" else f"¥{r.coupon_value:g}") if r.coupon_value else "",
                refund=r.refund_offer, call=r.call_list and not call_script, brand=s.crisis.brand,
                taken_down=taken_down, coupon_placed=coupon_placed, spoken=call_script,
            )
            text = text.strip()
            if fallbacks is not None and fell_back:
                for var in [*fell_back, "*"]:  # "*": the texts, once each
                    fallbacks[var] = fallbacks.get(var, 0) + int(m.sum())
            df.loc[m, "body"] = fill_markers(text, df.loc[m])
    df["subject"] = subject
    return df


def plan_compensation(incident_id: str, engine: Engine | None = None, now: datetime | None = None) -> dict:
    """Plan one apology touch per affected customer (idempotent) and record the remedies.
    Returns counts per tier."""
    from tasks.messaging import plan_touches

    engine = engine or get_engine()
    now = now or utcnow()
    s = get_settings()
    lang = s.customer_language  # the apologies (and call scripts) are the customers': not the operator's language
    with engine.begin() as conn:
        if not lock_open(conn, incident_id):  # closed: its checklist ended, nothing is planned
            return {"customers": 0, "planned": 0, "per_tier": {}, "closed": True}
        record_affected(conn, incident_id, now)
        inc = get_incident(conn, incident_id)
        aff = affected_customers(conn, inc["skus"], inc["opened_at"], now)
        if aff.empty:
            step = get_step(conn, incident_id, "compensate")
            if step["status"] != "done":
                set_step(conn, incident_id, "compensate", "done", "userops",
                         {"planned_at": now, "customers": 0, "note": "no affected customers"}, now,
                         action="step.compensate.done")
            return {"customers": 0, "planned": 0, "per_tier": {}}
        already = read(conn, "SELECT customer_id FROM incident_customers WHERE incident_id = :i AND touch_key IS NOT NULL",
                             {"i": incident_id})
        todo = aff[~aff["customer_id"].isin(already["customer_id"])].copy()
        planned = 0
        if not todo.empty:
            names = read(
                conn,
                "SELECT customer_id, name FROM customers WHERE customer_id IN :ids",
                {"ids": todo["customer_id"].tolist()},
            )
            todo = todo.merge(names, on="customer_id", how="left")
            if "name" not in todo:
                todo["name"] = None
            fallbacks: dict = {}
            todo = _personalise(todo, lang, taken_down=_taken_down(conn, incident_id), fallbacks=fallbacks)
            _note_fallbacks(conn, incident_id, fallbacks, lang)
            rem = s.crisis.remedies
            todo["coupon_value"] = todo["priority"].map(lambda p: float((rem.get(p) or rem["ordinary"]).coupon_value))
            todo["refund_offer"] = todo["priority"].map(lambda p: bool((rem.get(p) or rem["ordinary"]).refund_offer))
            todo["call_list"] = todo["priority"].map(lambda p: bool((rem.get(p) or rem["ordinary"]).call_list))
            todo["remedy"] = todo["priority"].map(remedy_label)
            todo["touch_key"] = touch_key(incident_id, todo["customer_id"])
            touches = pd.DataFrame({
                "touch_key": todo["touch_key"],
                "campaign": campaign_name(incident_id),
                "campaign_run_id": incident_id,
                "customer_id": todo["customer_id"],
                "channel": s.crisis.apology_channel,
                "grp": "treatment",
                "variant": todo["priority"],
                "locale": lang,
                "subject": todo["subject"],
                "body": todo["body"],
                "is_marketing": False,
                "gift_cost": todo["coupon_value"],
                "status": np.where(todo["priority"] == "core", "awaiting_review", "planned"),
                # the service order: core first, then by amount (send_due works oldest first)
                "planned_at": pd.Timestamp(now) + pd.to_timedelta(todo["rank"], unit="us"),
            })
            calls = todo[todo["call_list"]]
            if not calls.empty:
                # the personal call list (the campaign engine's staff-outreach list, with the
                # customer's phone and email): held like the apology it goes with. It is listed
                # once the customer's apology is no longer held (``release_calls``, right after
                # the apologies were sent): after the human review for core customers, never for
                # one the reviewer excluded; its script is rendered then, with what holds then.
                call_subject = "致歉回访" if lang == "zh-CN" else "Apology call"
                touches = pd.concat([touches, pd.DataFrame({
                    "touch_key": calls["touch_key"] + "|call",
                    "campaign": campaign_name(incident_id),
                    "campaign_run_id": incident_id,
                    "customer_id": calls["customer_id"],
                    "channel": "staff",
                    "grp": "treatment",
                    "variant": "call",
                    "locale": lang,
                    "subject": call_subject,
                    "body": calls["body"],
                    "is_marketing": False,
                    "gift_cost": 0.0,
                    "status": "awaiting_review",
                    "reason": np.where(calls["priority"] == "core", CALL_HELD_CORE, CALL_HELD_APOLOGY),
                    "planned_at": pd.Timestamp(now) + pd.to_timedelta(calls["rank"], unit="us"),
                })], ignore_index=True)
            planned = plan_touches(conn, touches)
            rec = todo[["customer_id", "remedy", "coupon_value", "refund_offer", "call_list", "touch_key"]].copy()
            rec.insert(0, "incident_id", incident_id)
            bulk_upsert(conn, "incident_customers", rec, ["incident_id", "customer_id"])
        per_tier = aff.groupby("priority").size().to_dict()
        awaiting = int((todo["priority"] == "core").sum()) if not todo.empty else 0
        audit(conn, "userops", "compensation.planned", "incident", incident_id,
              {"customers": len(aff), "new_touches": int(planned), "per_tier": per_tier, "awaiting_review": awaiting})
        step = get_step(conn, incident_id, "compensate")
        # status only moves forward (pending -> waiting for the core review -> in_progress ->
        # done); new core customers (products that joined) put it back in a human's hands, and a
        # step done before reopens when new buyers are still to be served
        if (step["status"] == "pending" or (planned and step["status"] == "done")
                or (awaiting and step["status"] == "in_progress")):
            set_step(conn, incident_id, "compensate", "waiting" if awaiting else "in_progress", "userops",
                     {"planned_at": step["result"].get("planned_at") or now, "customers": len(aff), "per_tier": per_tier},
                     now, action="step.compensate.planned")
    return {"customers": int(len(aff)), "planned": int(planned), "per_tier": {k: int(v) for k, v in per_tier.items()}}


def unplanned_customers(incident_id: str, bind: Engine | Connection | None = None, now: datetime | None = None) -> list[str]:
    """Affected customers of the incident's SKUs (as stored now) without a planned apology:
    what Compensate still owes them, whichever run plans it. A SKU that joined the incident
    brings its buyers here until a run plans them (``plan_compensation``, idempotent)."""
    bind = bind or get_engine()
    inc = get_incident(bind, incident_id)
    aff = affected_customers(bind, inc["skus"], inc["opened_at"], now)
    if aff.empty:
        return []
    planned = read(bind, "SELECT customer_id FROM incident_customers WHERE incident_id = :i AND touch_key IS NOT NULL",
                   {"i": incident_id})
    return aff.loc[~aff["customer_id"].isin(planned["customer_id"]), "customer_id"].tolist()


def _note_fallbacks(conn: Connection, incident_id: str, fallbacks: dict, lang: str) -> None:
    """Texts written from the shipped template because the operator's makes a claim unchecked
    that does not hold yet: said in the run log (the operator's language) and the audit log."""
    if not fallbacks:
        return
    from userops.i18n import t

    fallbacks = dict(fallbacks)
    n = fallbacks.pop("*", 0)
    names = sorted(fallbacks)  # template variables: joined as a list of names (、), one claim each
    log.warning(t("crisis.template.fallback", incident_id=incident_id, n=n, path=override_path("apology", lang),
                  vars=t("crisis.template.fallback.sep").join(names),
                  claims=t("crisis.template.fallback." + ("one" if len(names) == 1 else "many"))))
    audit(conn, "userops", "compensation.template_fallback", "incident", incident_id,
          {"template": str(override_path("apology", lang)), "unchecked": fallbacks})


def _taken_down(bind: Engine | Connection, incident_id: str) -> bool:
    """Are the incident's products off sale (Control confirmed)?"""
    return get_step(bind, incident_id, "control")["status"] == "done"


def release_calls(incident_id: str, engine: Engine | None = None, now: datetime | None = None) -> int:
    """Put on the staff-outreach list the calls whose customer's apology is no longer held for
    review (a customer the reviewer excluded has their call suppressed with the apology), so a
    core customer's call waits for the human review like their apology; called right after an
    attempt to send the apologies (``send_apologies``). It does not wait for the apology's
    delivery (quiet hours, a provider down): the call may be the first contact. The call
    script is rendered now, saying only what holds now: the coupon is in the account only if
    the apology carrying it was sent; the products are off sale only if Control is done.
    Returns the calls released (the next ``send_due`` lists them)."""
    engine = engine or get_engine()
    now = now or utcnow()
    with engine.begin() as conn:
        if not lock_open(conn, incident_id):  # closed: no call is listed any more
            return 0
        due = read(
            conn,
            "SELECT ic.customer_id, ic.touch_key, a.status AS apology_status FROM incident_customers ic "
            "JOIN touches a ON a.touch_key = ic.touch_key "
            "JOIN touches c ON c.touch_key = ic.touch_key || '|call' "
            "WHERE ic.incident_id = :i AND c.status = 'awaiting_review' AND a.status <> 'awaiting_review'",
            {"i": incident_id},
        )
        if due.empty:
            return 0
        inc = get_incident(conn, incident_id)
        aff = affected_customers(conn, inc["skus"], inc["opened_at"], max(now, inc["opened_at"]))
        df = due.merge(aff, on="customer_id", how="inner")
        if df.empty:
            return 0
        names = read(conn, "SELECT customer_id, name FROM customers WHERE customer_id IN :ids", {"ids": df["customer_id"].tolist()})
        df = df.merge(names, on="customer_id", how="left")
        if "name" not in df:
            df["name"] = None
        df["coupon_placed"] = df["apology_status"] == "sent"
        taken_down = _taken_down(conn, incident_id)
        lang = get_settings().customer_language  # the script is spoken to the customer
        fallbacks: dict = {}
        df = _personalise(df, lang, taken_down=taken_down, call_script=True, fallbacks=fallbacks)
        _note_fallbacks(conn, incident_id, fallbacks, lang)
        rows = [{"k": k + "|call", "b": b} for k, b in zip(df["touch_key"], df["body"])]
        res = conn.execute(
            sa_text("UPDATE touches SET status = 'planned', body = :b, reason = NULL WHERE touch_key = :k AND status = 'awaiting_review'"),
            rows,
        )
        n = int(res.rowcount or 0) if res.rowcount is not None and res.rowcount >= 0 else len(rows)
        audit(conn, "userops", "compensation.calls_released", "incident", incident_id,
              {"released": n, "taken_down": taken_down, "coupon_placed": int(df["coupon_placed"].sum())})
    return n


def awaiting_review(incident_id: str, engine: Engine | None = None) -> pd.DataFrame:
    """Core customers' apologies that wait for a human (customer_id, subject, body)."""
    engine = engine or get_engine()
    return read(
        engine,
        "SELECT customer_id, subject, body, gift_cost FROM touches WHERE campaign = :c AND status = 'awaiting_review' AND channel <> 'staff' ORDER BY planned_at",
        {"c": campaign_name(incident_id)},
    )


def review_sample(pending: pd.DataFrame, engine: Engine | None = None, n: int = 3) -> str:
    """The first ``n`` held apologies as the core-review form shows them (Markdown quotes):
    the customer's name masked wherever the text has it (王**，您好 / Dear F*******, …),
    phone numbers and emails masked, at most 160 characters each. The form lives in Prefect:
    nothing in it may name a customer."""
    from userops.privacy import mask_name, scrub_text

    head = pending.head(n)
    if head.empty:
        return ""
    names = read(engine or get_engine(), "SELECT customer_id, name FROM customers WHERE customer_id IN :ids",
                 {"ids": [str(c) for c in head["customer_id"]]})
    name_of = dict(zip(names["customer_id"].astype(str), names["name"]))
    lines = []
    for cid, body in zip(head["customer_id"].astype(str), head["body"].fillna("")):
        name = name_of.get(cid)
        if isinstance(name, str) and name.strip():
            body = body.replace(name, mask_name(name))
        else:  # no name on record: mask what stands before the greeting's comma
            for sep in ("，", ","):
                first, found, rest = body.partition(sep)
                if found and len(first) <= 40:
                    body = mask_name(first.replace("Dear ", "")) + found + rest
                    break
        lines.append(f"> {cid}: {scrub_text(body)[:160]}")
    return "\n\n".join(lines)


def release_core(incident_id: str, reviewer: str, exclude: list[str] | None = None, engine: Engine | None = None,
                 now: datetime | None = None) -> dict:
    """A human reviewed the core apologies: release them for sending, except ``exclude``
    (those customers get nothing from the incident: every touch of theirs — apology and call —
    is suppressed, and ``incident_customers`` says so: not on the call list, remedy
    ``excluded``, no coupon). Their calls are listed once their apology went out
    (``release_calls``). Compensate moves on to ``in_progress`` (never back to ``pending``).

    Only a customer whose apology is still held for the review can be excluded; a customer named
    whose apology was already released (or never held: no core customer) is left as is and returned
    in ``not_excluded`` — never half excluded (their call suppressed, their apology out); an id
    that is no customer of the incident (or no customer at all) in ``not_in_incident``.
    Idempotent: a repeated release (a re-run, the CLI after the form) changes nothing and
    counts nothing twice; a customer excluded before stays excluded.
    Returns ``released``, ``held`` (excluded now), ``not_excluded`` and ``not_in_incident``."""
    engine = engine or get_engine()
    now = now or utcnow()
    exclude = sorted({str(x).strip() for x in (exclude or []) if str(x).strip()})
    camp = campaign_name(incident_id)
    from tasks.messaging import approve_touches

    with engine.begin() as conn:
        if not lock_open(conn, incident_id):  # closed: nothing is released (its touches were withdrawn)
            return {"released": 0, "held": 0, "not_excluded": [], "not_in_incident": [], "closed": True}
        held, not_excluded, not_in_incident = 0, [], []
        if exclude:
            # an excluded customer gets nothing from this incident: no apology on any channel and
            # no call (the staff-outreach list has their phone and email) — only while their
            # apology is still held for this review
            still_held = read(
                conn,
                "SELECT DISTINCT customer_id FROM touches WHERE campaign = :c AND status = 'awaiting_review' "
                "AND channel <> 'staff' AND customer_id IN :ids",
                {"c": camp, "ids": exclude},
            )["customer_id"].astype(str).tolist()
            if still_held:
                execute(
                    conn,
                    "UPDATE touches SET status = 'suppressed', reason = :r WHERE campaign = :c AND status = 'awaiting_review' "
                    "AND customer_id IN :ids",
                    {"r": EXCLUDED_REASON + reviewer, "c": camp, "ids": still_held},
                )
            held = len(still_held)
            before = read(conn, "SELECT customer_id FROM incident_customers WHERE incident_id = :i AND remedy = :x "
                                "AND customer_id IN :ids", {"i": incident_id, "x": EXCLUDED_REMEDY, "ids": exclude})
            not_excluded, not_in_incident = split_not_excluded(
                conn, incident_id, set(exclude) - set(still_held) - set(before["customer_id"].astype(str)))
        record_exclusions(conn, incident_id)
        # the apologies (not the calls: a call is listed once its customer's apology went out)
        keys = read(conn, "SELECT touch_key FROM touches WHERE campaign = :c AND status = 'awaiting_review' AND channel <> 'staff'",
                    {"c": camp})["touch_key"].tolist()
        released = approve_touches(conn, reviewer, touch_keys=keys) if keys else 0
        execute(conn, "UPDATE touches SET reason = :r WHERE campaign = :c AND status = 'awaiting_review' AND channel = 'staff' "
                      "AND reason = :core",
                {"r": CALL_HELD_APOLOGY, "c": camp, "core": CALL_HELD_CORE})
        audit(conn, reviewer, "compensation.core_reviewed", "incident", incident_id,
              {"released": released, "held": held, "held_customers": held, "not_excluded": not_excluded,
               "not_in_incident": not_in_incident})
        step = get_step(conn, incident_id, "compensate")
        if step["status"] in ("waiting", "expired", "pending"):
            # forward: the human part is done, the apologies are on their way (never back to
            # "not started")
            set_step(conn, incident_id, "compensate", "in_progress", reviewer,
                     {"core_reviewed_by": reviewer, "core_reviewed_at": now, "core_released": released, "core_held": held},
                     now, action="step.compensate.core_reviewed")
    for line in warn_not_excluded(incident_id, not_excluded, not_in_incident):
        log.warning(line)
    return {"released": int(released), "held": int(held), "not_excluded": not_excluded, "not_in_incident": not_in_incident}


def record_exclusions(conn: Connection, incident_id: str) -> int:
    """Make ``incident_customers`` say what the core reviewer decided: a customer whose apology
    the reviewer suppressed is not on the call list, gets no coupon and has the remedy
    ``excluded`` (``refund_offer`` stays: the refund exposure still counts what they bought).
    Read from their suppressed apology, so it is idempotent and also brings rows excluded
    before this was recorded in line. Returns the rows changed."""
    res = execute(
        conn,
        "UPDATE incident_customers SET call_list = :no, coupon_value = 0, remedy = :x "
        "WHERE incident_id = :i AND (remedy IS NULL OR remedy <> :x) AND touch_key IN ("
        "SELECT touch_key FROM touches WHERE campaign = :c AND status = 'suppressed' AND reason LIKE :r)",
        {"no": False, "x": EXCLUDED_REMEDY, "i": incident_id, "c": campaign_name(incident_id), "r": EXCLUDED_REASON + "%"},
    )
    return int(res.rowcount or 0)


def send_apologies(incident_id: str, engine: Engine | None = None, now: datetime | None = None) -> dict:
    """Deliver the incident's due apologies through the campaign engine (its exactly-once
    sending: in-flight marking, idempotency keys, resend of what a killed sender left)."""
    from tasks.messaging import send_due

    engine = engine or get_engine()
    out = send_due(engine=engine, now=now, campaign=campaign_name(incident_id))
    if release_calls(incident_id, engine, now):  # calls of customers cleared (and just sent to): listed now
        more = send_due(engine=engine, now=now, campaign=campaign_name(incident_id))
        for k in ("sent", "failed", "retry_scheduled", "suppressed", "claimed"):
            if k in out and k in more:
                out[k] += more[k]
        for k, v in (more.get("per_channel") or {}).items():
            out.setdefault("per_channel", {})[k] = out.get("per_channel", {}).get(k, 0) + v
        out["pending"] = more.get("pending", out.get("pending"))
        out["outreach_files"] = sorted(set(out.get("outreach_files") or []) | set(more.get("outreach_files") or []))
    return out


def advance_open_incidents(engine: Engine | None = None, now: datetime | None = None) -> dict:
    """Hourly: send apologies that were deferred (quiet hours, retries) or released from the
    CLI, and mark Compensate done when nothing is left. Returns progress per incident."""
    engine = engine or get_engine()
    df = read(
        engine,
        "SELECT s.incident_id FROM incident_steps s JOIN incidents i ON i.incident_id = s.incident_id "
        "WHERE i.status = 'open' AND s.step = 'compensate' AND s.status <> 'done'",
    )
    out = {}
    for incident_id in df["incident_id"]:  # open incidents: a handful
        if not get_step(engine, incident_id, "compensate")["result"].get("planned_at"):
            continue  # the flow has not reached Compensate yet
        send_apologies(incident_id, engine, now)
        out[incident_id] = refresh_compensated(incident_id, engine, now)
    return out


def finish_left_work(incident_id: str, engine: Engine | None = None, now: datetime | None = None,
                     control_started_only: bool = False) -> dict:
    """Do what a join leaves on the incident, read from the warehouse (never from what a
    trigger brought), whichever run comes next: (a) take down the incident's SKUs nobody has
    asked to take down yet; (b) once Compensate is under way (its apologies were planned once),
    plan the apologies of the affected customers nobody planned one for (core ones wait for the
    review as always). Sending is the caller's: a joining run sends at once, the hourly monitor
    leaves it to ``advance_open_incidents``.

    ``control_started_only``: take nothing down unless a run has started Control for the
    incident (some SKU asked to be taken down) — the hourly monitor's guard: an incident no run
    has driven yet is the deadline watch's to escalate, not the monitor's to act on.

    Returns what was done: ``take_down`` (the SKUs) and ``confirmed``, ``planned`` (new
    touches); empty when nothing was left."""
    from tasks.crisis.control import run_control, skus_to_take_down

    engine = engine or get_engine()
    done: dict = {}
    started = not control_started_only or bool(get_step(engine, incident_id, "control")["result"].get("requested"))
    rest = skus_to_take_down(incident_id, engine, retry=False) if started else []
    if rest:
        done["take_down"] = rest
        done["confirmed"] = bool(run_control(incident_id, rest, engine, now)["confirmed"])
    if get_step(engine, incident_id, "compensate")["result"].get("planned_at") and unplanned_customers(incident_id, engine, now):
        done["planned"] = plan_compensation(incident_id, engine, now)["planned"]
    return done


def _done_text(done: dict) -> str:
    """What ``finish_left_work`` did, in the operator's words (SKUs and counts only)."""
    from userops.i18n import join_list, t

    parts = []
    if done.get("take_down"):
        key = "log.crisis.done.take_down_confirmed" if done.get("confirmed") else "log.crisis.done.take_down_manual"
        parts.append(t(key, skus=join_list(done["take_down"])))
    if done.get("planned") is not None:
        parts.append(t("log.crisis.done.planned", n=done["planned"]))
    return join_list(parts)


def finish_orphaned_work(engine: Engine | None = None, now: datetime | None = None) -> dict:
    """Hourly: on an open incident no live run drives, do what a joining run that died left
    undone (it saved its SKUs into the incident, then failed, and nobody re-ran it):
    ``finish_left_work``, only once a run has started Control for it. A live driving run is
    left alone (it re-checks after its waits). Returns what was done per incident."""
    from tasks.crisis.runs import is_alive
    from userops.i18n import t

    engine = engine or get_engine()
    df = read(engine, "SELECT incident_id, flow_run_id FROM incidents WHERE status = 'open'")
    out: dict = {}
    for incident_id, owner in zip(df["incident_id"], df["flow_run_id"]):  # open incidents: a handful
        if owner and is_alive(owner):
            continue
        done = finish_left_work(incident_id, engine, now, control_started_only=True)
        if done:
            log.warning("%s", t("log.crisis.orphaned_work", incident_id=incident_id, done=_done_text(done)))
            out[incident_id] = done
    return out


def progress(incident_id: str, bind: Engine | Connection | None = None) -> pd.DataFrame:
    """Touch counts per tier and status for the incident's apologies."""
    bind = bind or get_engine()
    return read(
        bind,
        "SELECT ic.priority, t.status, COUNT(*) AS n, SUM(CAST(t.gift_cost AS FLOAT)) AS cost FROM incident_customers ic "
        "JOIN touches t ON t.touch_key = ic.touch_key WHERE ic.incident_id = :i GROUP BY ic.priority, t.status",
        {"i": incident_id},
    )


def open_calls(incident_id: str, bind: Engine | Connection | None = None) -> int:
    """Calls of the incident not on the staff-outreach list yet (held or due)."""
    bind = bind or get_engine()
    return int(read(
        bind,
        "SELECT COUNT(*) AS n FROM touches WHERE campaign = :c AND channel = 'staff' AND status IN ('planned', 'awaiting_review', 'in_flight')",
        {"c": campaign_name(incident_id)},
    )["n"].iloc[0])


def unfinished(incident_id: str, bind: Engine | Connection | None = None) -> dict:
    """What the checklist still owes when the incident would close: ``steps`` — Control and
    Clarify when not done (products not confirmed off sale, no statement published); what
    Compensate owes: ``apologies`` not sent yet (planned, in flight or awaiting review), of
    which ``awaiting_review``; affected customers without a planned apology (``unplanned``);
    calls not on the staff list yet (``calls``). All empty: nothing is left."""
    bind = bind or get_engine()
    row = read(
        bind,
        "SELECT SUM(CASE WHEN ic.touch_key IS NULL THEN 1 ELSE 0 END) AS unplanned, "
        "SUM(CASE WHEN t.status IN ('planned', 'awaiting_review', 'in_flight') THEN 1 ELSE 0 END) AS apologies, "
        "SUM(CASE WHEN t.status = 'awaiting_review' THEN 1 ELSE 0 END) AS awaiting_review "
        "FROM incident_customers ic LEFT JOIN touches t ON t.touch_key = ic.touch_key WHERE ic.incident_id = :i",
        {"i": incident_id},
    ).iloc[0]
    return {
        "apologies": int(row["apologies"] or 0),
        "awaiting_review": int(row["awaiting_review"] or 0),
        "unplanned": int(row["unplanned"] or 0),
        "calls": open_calls(incident_id, bind),
        "steps": [s for s in ("control", "clarify") if get_step(bind, incident_id, s)["status"] != "done"],
    }


def refresh_compensated(incident_id: str, engine: Engine | None = None, now: datetime | None = None) -> dict:
    """Stamp ``compensated_at`` from the touches that went out; mark Compensate done when no
    apology is left to send. Returns the progress summary."""
    engine = engine or get_engine()
    now = now or utcnow()
    with engine.begin() as conn:
        execute(
            conn, (
                "UPDATE incident_customers SET compensated_at = (SELECT t.sent_at FROM touches t WHERE t.touch_key = incident_customers.touch_key) "
                "WHERE incident_id = :i AND compensated_at IS NULL AND touch_key IS NOT NULL"
            ),
            {"i": incident_id},
        )
        prog = progress(incident_id, conn)
        total = int(read(conn, "SELECT COUNT(*) AS n FROM incident_customers WHERE incident_id = :i", {"i": incident_id})["n"].iloc[0])
        unplanned = int(read(conn, "SELECT COUNT(*) AS n FROM incident_customers WHERE incident_id = :i AND touch_key IS NULL",
                                   {"i": incident_id})["n"].iloc[0])
        pending = int(prog.loc[prog["status"].isin(PENDING_STATUSES), "n"].sum()) if not prog.empty else 0
        awaiting = int(prog.loc[prog["status"] == "awaiting_review", "n"].sum()) if not prog.empty else 0
        sent = int(prog.loc[prog["status"] == "sent", "n"].sum()) if not prog.empty else 0
        calls_open = open_calls(incident_id, conn)
        summary = {
            "customers": total,
            "sent": sent,
            "pending": pending,
            "awaiting_review": awaiting,
            "calls_open": calls_open,
            "per_tier_status": {f"{r.priority}/{r.status}": int(r.n) for r in prog.itertuples(index=False)},
        }
        step = get_step(conn, incident_id, "compensate")
        planned_once = bool(step["result"].get("planned_at"))
        if step["status"] != "done" and planned_once and pending == 0 and unplanned == 0 and calls_open == 0:
            set_step(conn, incident_id, "compensate", "done", "userops", summary, now, action="step.compensate.done")
    return summary


@task(name="compensate-plan", cache_policy=NO_CACHE)
def plan_compensation_task(incident_id: str) -> dict:
    return plan_compensation(incident_id)


@task(name="compensate-send", cache_policy=NO_CACHE)
def send_apologies_task(incident_id: str) -> dict:
    sent = send_apologies(incident_id)
    return {"send": sent, "progress": refresh_compensated(incident_id)}


@task(name="crisis-finish-left-work", cache_policy=NO_CACHE)
def finish_left_work_task(incident_id: str) -> dict:
    return finish_left_work(incident_id)


@task(name="compensate-release-core", cache_policy=NO_CACHE)
def release_core_task(incident_id: str, reviewer: str, exclude: list[str] | None = None) -> dict:
    return release_core(incident_id, reviewer, exclude)
