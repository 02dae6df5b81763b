"""The incident report: timeline, compensated per tier, cost, complaint rate before/after.

Published as a Prefect markdown artifact under the stable key ``incident-<incident id>``
(every update is a new version of the same artifact) while the flow runs, and as the
closing report when the incident closes. Complaint rate = complaints / paid orders in a
window of ``health.complaint_window_days`` before the opening vs. after it (up to the
close). Cost = apology coupons actually sent (touch ``gift_cost``) plus the refund exposure
(the affected items' value for customers offered a refund). No names, phones or emails:
customers appear by id only, contact data quoted in the reason is masked.
"""
from __future__ import annotations

import functools
import json
import logging
from datetime import datetime, timedelta

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Connection, Engine

from tasks.crisis.messages import STEP_STATUSES
from tasks.crisis.compensate import EXCLUDED_REMEDY, campaign_name
from tasks.crisis.incidents import close_incident_row, get_incident, timeline
from tasks.crisis.runs import UI_OPERATOR
from tasks.crisis.spike import reason_text
from tasks.crisis.util import fmt_duration, read, to_shop_str
from userops.clock import utcnow
from userops.db import audit, get_engine
from userops.i18n import is_missing, join_list, labelled, money, or_dash, parens, t
from userops.privacy import scrub_text
from userops.settings import get_settings

log = logging.getLogger("userops.crisis.report")

# a customer the core reviewer excluded (``compensate.release_core``): their
# incident_customers row says so — remedy EXCLUDED_REMEDY, not on the call list
_EXCLUDED = "(ic.remedy IS NOT NULL AND ic.remedy = :excl)"


def complaint_rate(bind: Engine | Connection, start: datetime, end: datetime, skus: list[str] | None = None) -> dict:
    """Complaints / paid orders in [start, end); with ``skus``: complaints about them too."""
    c = read(bind, "SELECT COUNT(*) AS n FROM feedback WHERE kind = 'complaint' AND created_at >= :a AND created_at < :b",
                   {"a": start, "b": end})["n"].iloc[0]
    o = read(bind, "SELECT COUNT(*) AS n FROM orders WHERE status = 'paid' AND paid_at >= :a AND paid_at < :b",
                   {"a": start, "b": end})["n"].iloc[0]
    out = {"start": start, "end": end, "complaints": int(c), "paid_orders": int(o),
           "rate": round(float(c) / float(o), 4) if o else None}
    if skus:
        out["sku_complaints"] = int(read(
            bind,
            "SELECT COUNT(*) AS n FROM feedback WHERE kind = 'complaint' AND created_at >= :a AND created_at < :b AND sku IN :skus",
            {"a": start, "b": end, "skus": skus},
        )["n"].iloc[0])
    return out


def build_report(incident_id: str, engine: Engine | Connection | None = None, now: datetime | None = None) -> dict:
    engine = engine or get_engine()
    now = now or utcnow()
    s = get_settings()
    inc = get_incident(engine, incident_id)
    tl = timeline(engine, incident_id, now)
    steps = [
        {
            "step": r.step,
            "deadline_at": r.deadline_at,
            "status": r.status,
            "done_at": None if pd.isna(r.done_at) else r.done_at,
            "done_by": r.done_by,
            "met_deadline": None if pd.isna(r.met_deadline) else bool(r.met_deadline),
            "reminders_sent": r.reminders_sent,
        }
        for r in tl.itertuples(index=False)
    ]
    # a customer the core reviewer excluded gets nothing from the incident: ``release_core``
    # takes them off the call list in incident_customers (remedy "excluded"), so they are
    # counted here as excluded, never as a call
    tiers = read(
        engine,
        f"SELECT ic.priority, COUNT(*) AS customers, "
        f"SUM(CASE WHEN ic.compensated_at IS NOT NULL THEN 1 ELSE 0 END) AS compensated, "
        f"SUM(CASE WHEN ic.call_list THEN 1 ELSE 0 END) AS call_list, "
        f"SUM(CASE WHEN {_EXCLUDED} THEN 1 ELSE 0 END) AS excluded, "
        f"SUM(CASE WHEN ic.refund_offer THEN ic.affected_amount ELSE 0 END) AS refund_exposure, "
        f"SUM(CASE WHEN ic.refund_offer AND {_EXCLUDED} THEN ic.affected_amount ELSE 0 END) AS excluded_refund_exposure, "
        f"SUM(CASE WHEN t.status = 'sent' THEN CAST(t.gift_cost AS FLOAT) ELSE 0 END) AS coupon_cost "
        f"FROM incident_customers ic LEFT JOIN touches t ON t.touch_key = ic.touch_key "
        f"WHERE ic.incident_id = :i GROUP BY ic.priority",
        {"i": incident_id, "excl": EXCLUDED_REMEDY},
    )
    per_tier = {
        r.priority: {"customers": int(r.customers), "compensated": int(r.compensated or 0), "call_list": int(r.call_list or 0),
                     "excluded": int(r.excluded or 0),
                     "coupon_cost": round(float(r.coupon_cost or 0), 2), "refund_exposure": round(float(r.refund_exposure or 0), 2),
                     "excluded_refund_exposure": round(float(r.excluded_refund_exposure or 0), 2)}
        for r in tiers.itertuples(index=False)
    }
    window = timedelta(days=s.health.complaint_window_days)
    opened = inc["opened_at"]
    end = inc["closed_at"] or now
    before = complaint_rate(engine, opened - window, opened, inc["skus"])
    after = complaint_rate(engine, opened, max(min(end, opened + window), opened + timedelta(seconds=1)), inc["skus"])
    calls = read(
        engine,
        "SELECT ic.customer_id, ic.affected_orders, ic.affected_amount, ic.remedy FROM incident_customers ic "
        "WHERE ic.incident_id = :i AND ic.call_list ORDER BY ic.rank",
        {"i": incident_id},
    )
    return {
        "incident_id": incident_id,
        "skus": inc["skus"],
        "reason": inc["reason"],
        "severity": inc["severity"],
        "source": inc["source"],
        "status": inc["status"],
        "opened_at": opened,
        "opened_by": inc["opened_by"],
        "closed_at": inc["closed_at"],
        "statement_published_at": inc["statement_published_at"],
        "steps": steps,
        "compensated": per_tier,
        "cost": {
            "coupons": round(sum(v["coupon_cost"] for v in per_tier.values()), 2),
            "refund_exposure": round(sum(v["refund_exposure"] for v in per_tier.values()), 2),
            # of which: customers the reviewer excluded (told nothing, but they bought the
            # product and may still ask for a refund)
            "excluded_refund_exposure": round(sum(v["excluded_refund_exposure"] for v in per_tier.values()), 2),
        },
        "excluded": sum(v["excluded"] for v in per_tier.values()),
        "complaint_rate": {"before": before, "after": after},
        "call_list": calls["customer_id"].tolist(),
        "campaign": campaign_name(incident_id),
    }


def _pct(v) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def code_words(lang: str | None = None) -> dict:
    """The incident's stored codes (severity, source, status, step status, priority) in the
    operator's words: the report, ``incident show`` and the opening alert say the same."""
    return dict(_code_words(lang or get_settings().language))


@functools.lru_cache(maxsize=8)
def _code_words(lang: str) -> dict:
    """``code_words`` of one resolved language, built once (the words are fixed catalogue texts;
    the language setting is resolved by the caller, so a change of it picks the other entry)."""
    L = (lambda zh_s, en_s: zh_s if lang == "zh-CN" else en_s)
    return {
        "low": L("低", "low"), "medium": L("中", "medium"), "high": L("高", "high"), "critical": L("紧急", "critical"),
        "manual": L("人工开启", "opened by hand"), "spike": L("投诉激增自动开启", "complaint spike"),
        "open": L("处理中", "open"), "closed": L("已关闭", "closed"),
        **{code: t(f"crisis.step_status.{code}", lang) for code in STEP_STATUSES},
        # the crisis priorities as the tags name them
        **{tier: t(f"tags.priority.{tier}", lang) for tier in ("core", "potential", "ordinary")},
    }


def code_word(code, lang: str | None = None) -> str:
    """One stored code in the operator's words ("-" when missing, the code itself when unknown)."""
    return "-" if is_missing(code) else _code_words(lang or get_settings().language).get(str(code), str(code))


# the actors stored as a fixed word (not a name), and their catalogue text
_ACTOR_WORDS = {UI_OPERATOR: "crisis.actor.ui_operator", "operator": "crisis.actor.operator"}
# the actors stored as ``<prefix>:<name>`` (tasks.crisis.runs.current_run), and their catalogue
# text around the name
_ACTOR_PREFIXES = {"cli": "crisis.actor.cli", "automation": "crisis.actor.automation"}


def actor_word(actor, lang: str | None = None) -> str:
    """Who acted, in the operator's words: the Prefect UI's operator and a bare ``operator``
    (an action outside a flow run) as words, ``cli:<user>`` as 命令行（<user>） / command line
    (<user>), ``automation:<name>`` as 自动化（<name>） / automation (<name>); any other name as
    stored ("-" when missing). Only the display: the stored actor stays as it is."""
    if isinstance(actor, str):
        key = _ACTOR_WORDS.get(actor)
        if key:
            return t(key, lang)
        prefix, sep, name = actor.partition(":")
        if sep and name and prefix in _ACTOR_PREFIXES:
            return t(_ACTOR_PREFIXES[prefix], lang, name=name)
    return or_dash(actor, "-")


def report_markdown(rep: dict, lang: str | None = None) -> str:
    lang = lang or get_settings().language
    zh = lang == "zh-CN"
    L = (lambda zh_s, en_s: zh_s if zh else en_s)
    w = lambda code: code_word(code, lang)  # noqa: E731  (the stored codes in the operator's words)
    lines = [f"# {L('危机事件', 'Incident')} {rep['incident_id']}", ""]
    lines.append("- " + labelled("SKU", join_list(rep["skus"], lang), lang))
    # the reason is the operator's free text (it may quote the customer who complained):
    # masked at intake (incidents.clean_reason), and here again as in the crisis alerts
    # (the spike trigger's fixed text in the reader's language: spike.reason_text)
    lines.append("- " + labelled(L("原因", "Reason"), scrub_text(or_dash(reason_text(rep["reason"], lang) or None, "-")), lang))
    lines.append("- " + " · ".join(labelled(label, w(rep[k]), lang) for label, k in (
        (L("级别", "Severity"), "severity"), (L("来源", "Source"), "source"), (L("状态", "Status"), "status"))))
    gap = "" if zh else " "  # （…） takes no space before it
    lines.append("- " + labelled(L("开启", "Opened"), to_shop_str(rep["opened_at"]) + gap + parens(actor_word(rep["opened_by"], lang), lang), lang)
                 + (" · " + labelled(L("关闭", "Closed"), to_shop_str(rep["closed_at"]), lang) if rep.get("closed_at") else ""))
    lines += ["", f"## {L('时间线', 'Timeline')}", "",
              f"| {L('步骤', 'Step')} | {L('截止', 'Deadline')} | {L('状态', 'Status')} | {L('完成时间', 'Done at')} | "
              f"{L('执行人', 'By')} | {L('是否按时', 'On time')} | {L('提醒', 'Reminders')} |",
              "|---|---|---|---|---|---|---|"]
    names = {"control": L("控制扩散", "Control"), "clarify": L("澄清事实", "Clarify"), "compensate": L("补偿用户", "Compensate")}
    for st in rep["steps"]:
        met = st["met_deadline"]
        met_s = "-" if met is None else (L("是", "yes") if met else L("否", "no"))
        if st["done_at"] is not None and met is False:
            met_s += gap + parens("+" + fmt_duration(pd.Timestamp(st["done_at"]) - pd.Timestamp(st["deadline_at"]), lang), lang)
        sent = st["reminders_sent"]
        sent = json.loads(sent) if isinstance(sent, str) and sent.strip() else (sent if isinstance(sent, list) else [])
        lines.append(f"| {names.get(st['step'], st['step'])} | {to_shop_str(st['deadline_at'])} | {w(st['status'])} | "
                     f"{to_shop_str(st['done_at'])} | {actor_word(st['done_by'], lang)} | {met_s} | "
                     f"{join_list((L('已升级', 'escalated') if x == 'escalated' else f'{x}%' for x in sent), lang) or '-'} |")
    excluded = int(rep.get("excluded") or 0)  # a report stored before this field: none shown
    lines += ["", f"## {L('补偿', 'Compensation')}", "",
              f"| {L('层级', 'Tier')} | {L('受影响', 'Affected')} | {L('已补偿', 'Compensated')} | "
              + (f"{L('复核排除', 'Excluded at review')} | " if excluded else "")
              + f"{L('电话回访', 'Call list')} | {L('券成本', 'Coupon cost')} | {L('退款敞口', 'Refund exposure')} |",
              "|---|---|---|---|---|---|" + ("---|" if excluded else "")]
    for tier in ("core", "potential", "ordinary"):
        v = rep["compensated"].get(tier)
        if v:
            lines.append(f"| {w(tier)} | {v['customers']} | {v['compensated']} | "
                         + (f"{v.get('excluded', 0)} | " if excluded else "")
                         + f"{v['call_list']} | {money(v['coupon_cost'])} | {money(v['refund_exposure'])} |")
    lines += ["", labelled(L("成本合计", "Total cost"), f"{L('券', 'coupons')} {money(rep['cost']['coupons'])} + "
                                                         f"{L('退款敞口', 'refund exposure')} {money(rep['cost']['refund_exposure'])}", lang)]
    if excluded:
        lines += ["", t("crisis.report.excluded", lang, n=excluded,
                        exposure=money(float(rep['cost'].get('excluded_refund_exposure') or 0)))]
    b, a = rep["complaint_rate"]["before"], rep["complaint_rate"]["after"]
    # complaints per paid order around the opening: not the health snapshot's complaint rate
    # (complaints / active customers), so it is not called that
    lines += ["", f"## {L('每单投诉（投诉 / 已支付订单）', 'Complaints per paid order')}", "",
              f"| | {L('投诉', 'Complaints')} | {L('已支付订单', 'Paid orders')} | {L('每单投诉', 'Per order')} | {L('本事件 SKU 投诉', 'Complaints on these SKUs')} |",
              "|---|---|---|---|---|",
              f"| {L('开启前', 'Before')} | {b['complaints']} | {b['paid_orders']} | {_pct(b['rate'])} | {b.get('sku_complaints', '-')} |",
              f"| {L('开启后', 'After')} | {a['complaints']} | {a['paid_orders']} | {_pct(a['rate'])} | {a.get('sku_complaints', '-')} |"]
    if rep["call_list"]:
        shown = rep["call_list"][:200]
        lines += ["", f"## {L('核心客户电话回访清单（客户编号）', 'Personal call list (customer ids)')}", "",
                  join_list(shown, lang) + (" …" if len(rep["call_list"]) > len(shown) else "")]
    return "\n".join(lines) + "\n"


def publish_artifact(incident_id: str, markdown: str, description: str = "") -> bool:
    """Markdown artifact ``incident-<id>`` — only inside a Prefect run (Prefect deprecates
    artifacts outside runs; a report closed from the CLI is published by the next hourly
    monitor, see ``publish_pending_reports``)."""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return False
    from prefect.artifacts import create_markdown_artifact

    from tasks.artifacts import artifact_key

    try:
        create_markdown_artifact(markdown=markdown, key=artifact_key("incident", incident_id), description=description or incident_id)
    except Exception as exc:  # the report is kept in incidents.report either way
        log.warning("%s", t("log.crisis.report_not_published", incident_id=incident_id, error=type(exc).__name__))
        return False
    return True


def _publish_closing(incident_id: str, rep: dict, engine: Engine) -> bool:
    if not publish_artifact(incident_id, report_markdown(rep), f"closing report of {incident_id}"):
        return False
    with engine.begin() as conn:
        audit(conn, "userops", "incident.report_published", "incident", incident_id, {})
    return True


def publish_pending_reports(engine: Engine | None = None) -> list[str]:
    """Closing reports not yet published as artifacts (closed from the CLI): publish them."""
    engine = engine or get_engine()
    df = read(
        engine,
        "SELECT i.incident_id, i.report FROM incidents i WHERE i.status = 'closed' AND i.report IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM audit_log a WHERE a.entity = 'incident' AND a.entity_id = i.incident_id AND a.action = 'incident.report_published')",
    )
    done = []
    for r in df.itertuples(index=False):  # closed incidents: a handful
        rep = json.loads(r.report)
        for k in ("opened_at", "closed_at", "statement_published_at"):
            rep[k] = pd.Timestamp(rep[k]).to_pydatetime() if rep.get(k) else None
        for st in rep.get("steps", []):
            for k in ("deadline_at", "done_at"):
                st[k] = pd.Timestamp(st[k]).to_pydatetime() if st.get(k) else None
        if _publish_closing(r.incident_id, rep, engine):
            done.append(r.incident_id)
    return done


class UnfinishedWork(Exception):
    """Closing was refused: Compensate still owes something (``left``: ``unfinished``'s counts)."""

    def __init__(self, incident_id: str, left: dict):
        super().__init__(f"incident {incident_id}: compensation unfinished {left}")
        self.incident_id = incident_id
        self.left = left


def has_unfinished(left: dict) -> bool:
    return any(left.get(k) for k in ("apologies", "unplanned", "calls", "steps"))


def close_incident(incident_id: str, actor: str, engine: Engine | None = None, now: datetime | None = None,
                   require_finished: bool = False) -> dict | None:
    """Close the incident: its customers are marketable again; write the closing report.

    Compensation unfinished (apologies not sent or awaiting review, affected customers
    without one, calls not listed): with ``require_finished`` (``incident close`` without
    ``--force``, the auto-close) it is refused — ``UnfinishedWork``, recorded in the audit log
    (``incident.close_refused``); otherwise it closes and the audit line
    ``incident.closed_unfinished`` says what was left (the report's ``unfinished``). None when
    it is not open."""
    from tasks.crisis.compensate import unfinished

    engine = engine or get_engine()
    now = now or utcnow()
    inc = get_incident(engine, incident_id)
    if inc is None or inc["status"] != "open":
        return None
    left = unfinished(incident_id, engine)
    if has_unfinished(left) and require_finished:
        with engine.begin() as conn:
            audit(conn, actor, "incident.close_refused", "incident", incident_id, {"unfinished": left})
        raise UnfinishedWork(incident_id, left)
    rep = build_report(incident_id, engine, now)
    rep["closed_at"] = now
    rep["status"] = "closed"
    if has_unfinished(left):
        rep["unfinished"] = left
    with engine.begin() as conn:
        if not close_incident_row(conn, incident_id, actor, rep, now):
            return None
        if has_unfinished(left):
            audit(conn, actor, "incident.closed_unfinished", "incident", incident_id, {"unfinished": left})
    _publish_closing(incident_id, rep, engine)
    rep["released_run"] = _release_run(inc.get("flow_run_id"), actor)
    return rep


def _release_run(flow_run_id: str | None, actor: str) -> str | None:
    """The run driving the incident, when it waits in a pause form, is answered so it finishes
    (``runs.release_paused``). Best effort: a Prefect API out of reach is logged, never fails
    the closing (the run then finds the incident closed when its pause ends). Returns the run
    id when it was released."""
    if not flow_run_id:
        return None
    from tasks.crisis.runs import release_paused

    try:
        return flow_run_id if release_paused(flow_run_id, actor) else None
    except Exception as exc:  # noqa: BLE001 - the incident is closed either way
        log.warning("%s", t("log.crisis.close_run_not_released", flow_run_id=flow_run_id, error=type(exc).__name__))
        return None


def auto_close(engine: Engine | None = None, now: datetime | None = None) -> list[str]:
    """Close incidents whose three steps are done and whose quiet period has passed."""
    engine = engine or get_engine()
    now = now or utcnow()
    days = get_settings().crisis.quiet_days
    df = read(
        engine,
        "SELECT i.incident_id, i.opened_at FROM incidents i WHERE i.status = 'open' AND NOT EXISTS ("
        "SELECT 1 FROM incident_steps s WHERE s.incident_id = i.incident_id AND s.status <> 'done')",
        parse_dates=["opened_at"],
    )
    closed = []
    for r in df.itertuples(index=False):  # open incidents: a handful
        if r.opened_at + timedelta(days=days) <= pd.Timestamp(now):
            try:
                if close_incident(r.incident_id, "userops:auto-close", engine, now, require_finished=True):
                    closed.append(r.incident_id)
            except UnfinishedWork as exc:  # steps done yet something left (recorded): not closed by itself
                left = exc.left
                log.warning("%s", t("log.crisis.not_auto_closed", incident_id=r.incident_id, apologies=left.get("apologies", 0),
                                    awaiting=left.get("awaiting_review", 0), unplanned=left.get("unplanned", 0), calls=left.get("calls", 0)))
    return closed


@task(name="crisis-auto-close", cache_policy=NO_CACHE)
def auto_close_task(now: datetime | None = None) -> list[str]:
    closed = auto_close(now=now)
    publish_pending_reports()
    return closed
