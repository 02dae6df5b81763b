"""The daily health snapshot, its thresholds, and the nightly report.

Definitions (as of the end of business day ``as_of`` in the shop's timezone; members are
the customers registered by then; windows end at that instant):

* members: customers registered by the end of ``as_of`` (or already buying).
* active: members whose stage is new, active or loyal (a paid order <= 60 days ago).
* DAU / MAU: distinct customers with an event on ``as_of`` / in the last ``mau_days`` days;
  empty when the warehouse has no events at all.
* repeat_rate: buyers with >= 2 paid orders / buyers.
* retention_<N>d by monthly cohort (month of the first paid order): the share of the
  cohort's customers whose first order is at least N days old that paid again within N days
  of their first order; the headline figure pools the last ``retention_cohorts`` cohorts.
* conversion: of the members who registered ``conversion_days``..``conversion_days``+90
  days ago, the share whose first paid order came within ``conversion_days`` days.
* avg_ltv: mean lifetime paid amount of the buyers (refunds and cancellations excluded).
* nps: % promoters (9-10) - % detractors (0-6) of the NPS answers of the last
  ``feedback_window_days`` days, -100..100.
* satisfaction: the share of the satisfaction scores (1-5) given in the last
  ``feedback_window_days`` days that are >= ``satisfaction_good`` (4).
* silent_share: silent members / members.
* complaint_rate: complaints created in the last ``complaint_window_days`` (7) days /
  active customers.

A threshold breach (silent share > 35%, complaint rate > 5%, satisfaction < 85%) is recorded
in ``health_breaches`` and, once per breach day, emitted as a Prefect event
(``userops.health.silent-share-high`` ...) and queued as an operator alert.
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prefect import task
from sqlalchemy.engine import Engine

from tasks.tags import STAGES, SEGMENTS, days_ago, fetch_frame, tags_frame, window_for
from userops.db import bulk_upsert, get_engine, read_frame
from userops.i18n import money, parens, register, t
from userops.settings import get_settings

log = logging.getLogger("userops.health")

EVENT_RESOURCE = {"prefect.resource.id": "userops.health"}
# metric, event suffix, direction, settings field
CHECKS = [
    ("silent_share", "silent-share-high", ">", "silent_share_max"),
    ("complaint_rate", "complaint-rate-high", ">", "complaint_rate_max"),
    ("satisfaction", "satisfaction-low", "<", "satisfaction_min"),
]
HEADLINE = ["members", "active", "silent_share", "complaint_rate", "satisfaction", "nps", "repeat_rate",
            "retention_30d", "retention_90d", "conversion", "avg_ltv", "dau", "mau"]
_EVENT_NS = uuid.UUID("5b0c2f8e-3c1e-4d59-9d7a-6f1f0e1a7c11")

register(
    {
        "health.metric.members": {"zh-CN": "会员数", "en": "members"},
        # not the stage "active" (tags.stage.active): new + active + loyal, named so (issue: the
        # tags line's 活跃 284 beside the health line's 活跃 1,284)
        "health.metric.active": {"zh-CN": "活跃会员（新客+活跃+忠诚）", "en": "active members (new + active + loyal)"},
        "health.metric.silent_share": {"zh-CN": "沉默占比", "en": "silent share"},
        "health.metric.complaint_rate": {"zh-CN": "投诉率（7天）", "en": "complaint rate (7 days)"},
        "health.metric.satisfaction": {"zh-CN": "满意度", "en": "satisfaction"},
        "health.metric.nps": {"zh-CN": "NPS", "en": "NPS"},
        "health.metric.repeat_rate": {"zh-CN": "复购率", "en": "repeat-purchase rate"},
        "health.metric.retention_30d": {"zh-CN": "30天留存", "en": "30-day retention"},
        "health.metric.retention_90d": {"zh-CN": "90天留存", "en": "90-day retention"},
        "health.metric.conversion": {"zh-CN": "首单转化率", "en": "first-order conversion"},
        "health.metric.avg_ltv": {"zh-CN": "平均LTV", "en": "average LTV"},
        "health.metric.dau": {"zh-CN": "DAU", "en": "DAU"},
        "health.metric.mau": {"zh-CN": "MAU", "en": "MAU"},
        # a count of people (DAU, MAU): the label is an abbreviation, the unit says what is counted
        "health.count.people": {"zh-CN": "{n} 人", "en": "{n}"},
        "health.summary": {
            "zh-CN": "健康度 {as_of}：会员 {members}，活跃会员（新客+活跃+忠诚）{active}，沉默占比 {silent_share}，投诉率 {complaint_rate}，满意度 {satisfaction}",
            "en": "health {as_of}: {members} members, {active} active members (new + active + loyal), silent share {silent_share}, complaint rate {complaint_rate}, satisfaction {satisfaction}",
        },
        "health.breach": {
            "zh-CN": "健康度告警：{metric} {value}，阈值 {op} {threshold}",
            "en": "health breach: {metric} {value}, threshold {op} {threshold}",
        },
        "health.breach.title": {
            "zh-CN": "健康度告警 {as_of}：{metric}",
            "en": "Health breach {as_of}: {metric}",
        },
        # the health stage's run-log lines, one per breach emitted
        "log.health.breach": {
            "zh-CN": "健康度告警 {as_of}：{metric} {value}（阈值 {threshold}），已发出事件 {event} 并加入告警队列",
            "en": "health breach {as_of}: {metric} {value} (threshold {threshold}); event {event} emitted and the alert queued",
        },
        "log.health.breach_late": {
            "zh-CN": "{as_of} 的健康度告警「{metric}」已记录但未发出（当晚在健康快照之后失败），现在补发",
            "en": "the {metric} health breach of {as_of} was recorded but never emitted (that night failed after its snapshot): emitted now",
        },
        # the recall plan starts from the event only where the deployments are served (the
        # silent-share-recall trigger in prefect.yaml): say so instead of claiming it started
        "health.breach.body.silent_share": {
            "zh-CN": "沉默会员占比 {value}（阈值 {threshold}）。已发出事件 userops.health.silent-share-high：部署运行时（`userops serve`）它会自动启动流失预警召回计划；"
            "未运行部署时请手动执行 `userops campaign run recall`。",
            "en": "Silent members are {value} of all members (threshold {threshold}). The event userops.health.silent-share-high was emitted: "
            "where the deployments are served (`userops serve`) it starts the churn-warning recall plan; without them run `userops campaign run recall`.",
        },
        "health.breach.body.complaint_rate": {
            "zh-CN": "近 {days} 天投诉率 {value}（阈值 {threshold}）：请做质量溯源并升级服务。",
            "en": "Complaint rate over the last {days} days is {value} (threshold {threshold}): trace quality and upgrade service.",
        },
        "health.breach.body.satisfaction": {
            "zh-CN": "满意度 {value}（阈值 {threshold}），低于目标。",
            "en": "Satisfaction is {value} (threshold {threshold}), below target.",
        },
        "health.report.title": {"zh-CN": "## 用户健康度日报 {as_of}", "en": "## Customer health report {as_of}"},
        "health.report.header": {
            "zh-CN": "| 指标 | 今日 | 较昨日 | 较上周 |",
            "en": "| metric | today | vs yesterday | vs last week |",
        },
        "health.report.breaches": {"zh-CN": "**告警：** {items}", "en": "**Breaches:** {items}"},
        "health.report.link": {"zh-CN": "图表报告：{report}", "en": "Report with charts: {report}"},
        "health.report.open": {"zh-CN": "查看健康度报告", "en": "Open the health report"},
        "health.report.key_charts": {"zh-CN": "### 关键图表", "en": "### Key charts"},
        "health.report.stages": {"zh-CN": "生命周期阶段", "en": "Lifecycle stages"},
        "health.report.stages.header": {"zh-CN": "| 生命周期阶段 | 人数 |", "en": "| lifecycle stage | members |"},
        "health.report.active_sum": {
            "zh-CN": "活跃会员（新客+活跃+忠诚）{active} = 新客 {new} + 活跃 {active_stage} + 忠诚 {loyal}",
            "en": "active members (new + active + loyal) {active} = new {new} + active {active_stage} + loyal {loyal}",
        },
        "health.report.segments": {"zh-CN": "RFM 分群", "en": "RFM segments"},
        "health.report.retention": {"zh-CN": "按首单月份的留存曲线", "en": "Retention curves by month of first order"},
        "health.report.trend": {"zh-CN": "近 {days} 天趋势", "en": "Trend over the last {days} days"},
        "health.report.days_after": {"zh-CN": "首单后天数", "en": "days after the first order"},
        "health.report.repurchased": {"zh-CN": "已复购占比", "en": "share who bought again"},
        "health.report.html_title": {"zh-CN": "用户健康度日报 {as_of}", "en": "Customer health report {as_of}"},
        # no CJK font: the artifact's chart images fall back to English labels (said once in the
        # artifact and the run log); the HTML report's charts keep their text for the browser to draw
        "health.report.no_cjk_font": {
            "zh-CN": "注意：本机未安装中文字体，以下图表中的文字以英文显示（HTML 报告中的图表不受影响）。安装 Noto Sans CJK SC（Debian/Ubuntu：`apt-get install fonts-noto-cjk`）后，这里的图表也将以中文显示。",
            "en": "Note: no CJK font is installed on this machine, so the labels of the charts below are in English (the HTML report's charts are not affected). Install Noto Sans CJK SC (Debian/Ubuntu: `apt-get install fonts-noto-cjk`) for Chinese labels here too.",
        },
        "log.health.no_cjk_font": {
            "zh-CN": "健康度报告：未安装中文字体，Prefect 中的图表文字以英文显示（HTML 报告不受影响）；请安装 Noto Sans CJK SC（Debian/Ubuntu：apt-get install fonts-noto-cjk）",
            "en": "health report: no CJK font installed, the charts in Prefect are labelled in English (the HTML report is not affected); install Noto Sans CJK SC (Debian/Ubuntu: apt-get install fonts-noto-cjk)",
        },
    }
)


# ----------------------------------------------------------------------------- snapshot
def _ratio(a, b):
    return None if not b else float(a) / float(b)


# a retention curve's point at day d counts the cohort's customers whose first order is at
# least d days old: the curve stops where fewer than half the cohort, or fewer than
# CURVE_MIN_ELIGIBLE customers (the whole cohort when it is smaller), are that old (docs/tags.md)
CURVE_MIN_ELIGIBLE = 30
CURVE_MIN_ELIGIBLE_SHARE = 0.5


def curve_min_eligible(size: int) -> int:
    """How many of a cohort of ``size`` customers must be eligible for a curve's point."""
    return max(1, int(np.ceil(CURVE_MIN_ELIGIBLE_SHARE * size)), min(CURVE_MIN_ELIGIBLE, size))


def compute_metrics(tags: pd.DataFrame, base: pd.DataFrame, as_of: date, engine: Engine) -> dict:
    """Every figure of the snapshot (see the module docstring for the definitions)."""
    s = get_settings()
    h = s.health
    as_of = pd.Timestamp(as_of).date()
    win = window_for(as_of, s)
    cutoff = win.cutoff
    stage_counts = tags["lifecycle_stage"].value_counts().reindex(STAGES, fill_value=0).astype(int)
    members = int(len(tags))
    active = int(stage_counts[["new", "active", "loyal"]].sum())
    buyers_mask = base["paid_orders"].to_numpy() > 0
    buyers = int(buyers_mask.sum())
    m: dict = {
        "as_of": str(as_of),
        "members": members,
        "buyers": buyers,
        "active": active,
        "stages": stage_counts.to_dict(),
        "segments": tags["rfm_segment"].value_counts().reindex(SEGMENTS, fill_value=0).astype(int).to_dict(),
        "value_tiers": tags["value_tier"].value_counts().astype(int).to_dict(),
        # unknown (None) for a past day whose churn scores are no longer kept
        "at_risk": None if len(tags) and tags["at_risk"].isna().all() else int(tags["at_risk"].fillna(False).astype(bool).sum()),
        "silent_share": _ratio(stage_counts["silent"], members),
        "repeat_rate": _ratio(int((base["paid_orders"] >= 2).sum()), buyers),
        "avg_ltv": float(base.loc[buyers_mask, "paid_amount"].mean()) if buyers else None,
        "buyer_share": _ratio(buyers, members),
    }

    # retention by monthly cohort of the first paid order
    b = base.loc[buyers_mask, ["first_paid_at", "second_paid_at"]].copy()
    local_first = b["first_paid_at"].dt.tz_localize("UTC").dt.tz_convert(s.timezone).dt.tz_localize(None)
    b["cohort"] = (local_first.dt.year * 100 + local_first.dt.month).to_numpy()  # yyyymm, cheap to group
    b["age"] = days_ago(b["first_paid_at"], as_of, s.timezone).to_numpy()
    b["gap"] = (b["second_paid_at"] - b["first_paid_at"]).dt.total_seconds().to_numpy() / 86400.0
    periods = pd.period_range(end=pd.Period(as_of, "M"), periods=h.retention_cohorts, freq="M")
    codes = [p.year * 100 + p.month for p in periods]
    months = [str(p) for p in periods]
    b = b[b["cohort"].isin(codes)]
    groups = {code: g for code, g in b.groupby("cohort")}
    empty = b.iloc[0:0]
    cohorts = []
    for code, month in zip(codes, months):  # a dozen months: a loop over cohorts, not customers
        c = groups.get(code, empty)
        row = {"cohort": month, "size": int(len(c))}
        for n in h.retention_days:
            elig = c["age"] >= n
            row[f"eligible_{n}d"] = int(elig.sum())
            row[f"retention_{n}d"] = _ratio(int((elig & (c["gap"] <= n)).sum()), int(elig.sum()))
        cohorts.append(row)
    m["cohorts"] = cohorts
    for n in h.retention_days:
        elig = b["age"] >= n
        m[f"retention_{n}d"] = _ratio(int((elig & (b["gap"] <= n)).sum()), int(elig.sum()))
    # retention curves for the report: share bought again by day 0..max(N), per cohort
    horizon = max(h.retention_days) if h.retention_days else 90
    curves = {}
    for code, month in list(zip(codes, months))[-7:-1] if len(months) > 1 else zip(codes, months):
        c = groups.get(code, empty)
        if len(c) == 0:
            continue
        gaps = c["gap"].to_numpy()
        ages = c["age"].to_numpy()
        days = np.arange(0, horizon + 1)
        curve = []
        need = curve_min_eligible(len(c))
        for d in days[:: max(1, horizon // 30)]:
            elig = ages >= d
            n_elig = int(elig.sum())
            if n_elig < need:  # survivor bias: the curve stops where too few customers are old enough
                break
            curve.append([int(d), _ratio(int((elig & (gaps <= d)).sum()), n_elig)])
        curves[month] = curve
    m["retention_curves"] = curves

    # conversion: registered conversion_days..conversion_days+90 days ago, first order within N days
    reg_days = days_ago(base["registered_at"], as_of, s.timezone)
    in_cohort = (reg_days >= h.conversion_days) & (reg_days <= h.conversion_days + 90)
    took = (base["first_paid_at"] - base["registered_at"]).dt.total_seconds() / 86400.0
    converted = in_cohort & base["first_paid_at"].notna() & (took <= h.conversion_days)
    m["conversion"] = _ratio(int(converted.sum()), int(in_cohort.sum()))
    m["conversion_cohort"] = int(in_cohort.sum())

    # feedback: complaints, satisfaction, NPS (windows end at the cutoff)
    with engine.connect() as conn:
        fb = fetch_frame(
            conn,
            "SELECT SUM(CASE WHEN kind = 'complaint' AND created_at >= :c_from THEN 1 ELSE 0 END) AS complaints, "
            "SUM(CASE WHEN satisfaction IS NOT NULL AND created_at >= :s_from THEN 1 ELSE 0 END) AS scored, "
            "SUM(CASE WHEN satisfaction >= :good AND created_at >= :s_from THEN 1 ELSE 0 END) AS satisfied, "
            "SUM(CASE WHEN nps IS NOT NULL AND created_at >= :s_from THEN 1 ELSE 0 END) AS nps_n, "
            "SUM(CASE WHEN nps >= 9 AND created_at >= :s_from THEN 1 ELSE 0 END) AS promoters, "
            "SUM(CASE WHEN nps <= 6 AND created_at >= :s_from THEN 1 ELSE 0 END) AS detractors "
            "FROM feedback WHERE created_at >= :f_from AND created_at < :cutoff",
            {
                "c_from": cutoff - timedelta(days=h.complaint_window_days),
                "s_from": cutoff - timedelta(days=h.feedback_window_days),
                "f_from": cutoff - timedelta(days=max(h.feedback_window_days, h.complaint_window_days)),
                "good": h.satisfaction_good,
                "cutoff": cutoff,
            },
            numeric=["complaints", "scored", "satisfied", "nps_n", "promoters", "detractors"],
        ).fillna(0).iloc[0]
        has_events = not read_frame(conn, "SELECT event_id FROM events LIMIT 1").empty
        if has_events:
            ev = fetch_frame(
                conn,
                "SELECT COUNT(DISTINCT CASE WHEN occurred_at >= :d_from THEN customer_id END) AS dau, "
                "COUNT(DISTINCT customer_id) AS mau FROM events WHERE occurred_at >= :m_from AND occurred_at < :cutoff",
                {"d_from": window_for(as_of - timedelta(days=1), s).cutoff, "m_from": window_for(as_of - timedelta(days=h.mau_days), s).cutoff, "cutoff": cutoff},
                numeric=["dau", "mau"],
            ).fillna(0).iloc[0]
    m["complaints"] = int(fb["complaints"])
    m["complaint_rate"] = _ratio(m["complaints"], active)
    m["satisfaction_responses"] = int(fb["scored"])
    m["satisfaction"] = _ratio(int(fb["satisfied"]), int(fb["scored"]))
    m["nps_responses"] = int(fb["nps_n"])
    m["nps"] = None if not fb["nps_n"] else round(100.0 * (float(fb["promoters"]) - float(fb["detractors"])) / float(fb["nps_n"]), 1)
    m["dau"] = int(ev["dau"]) if has_events else None
    m["mau"] = int(ev["mau"]) if has_events else None
    m["dau_mau"] = _ratio(m["dau"], m["mau"]) if has_events else None
    m["thresholds"] = {metric: getattr(h, field) for metric, _, _, field in CHECKS}
    return m


def snapshot(as_of: date, engine: Engine | None = None) -> dict:
    """Compute and store the health snapshot of ``as_of`` (one row per day, replaced on a
    re-run) and record threshold breaches. Returns the metrics with ``breaches``."""
    engine = engine or get_engine()
    as_of = pd.Timestamp(as_of).date()
    tags, base, _ = tags_frame(as_of, engine)
    m = compute_metrics(tags, base, as_of, engine)
    row = pd.DataFrame(
        [
            {
                "as_of": as_of,
                "metrics": json.dumps(m, ensure_ascii=False, sort_keys=True, default=str),
                "members": m["members"],
                "active": m["active"],
                "silent_share": m["silent_share"],
                "complaint_rate": m["complaint_rate"],
                "satisfaction": m["satisfaction"],
                "nps": m["nps"],
                "repeat_rate": m["repeat_rate"],
                "conversion": m["conversion"],
                "avg_ltv": m["avg_ltv"],
                "dau": m["dau"],
                "mau": m["mau"],
                "created_at": pd.Timestamp(datetime.utcnow()).floor("s"),
            }
        ]
    )
    row["created_at"] = row["created_at"].astype("datetime64[us]")
    with engine.begin() as conn:
        bulk_upsert(conn, "health_snapshots", row, ["as_of"], update_only_changed=False)
        m["breaches"] = record_breaches(conn, as_of, m)
    return m


def breached(metrics: dict) -> list[dict]:
    """The thresholds ``metrics`` break (a missing figure breaks nothing)."""
    h = get_settings().health
    out = []
    for metric, suffix, op, field in CHECKS:
        v = metrics.get(metric)
        thr = float(getattr(h, field))
        if v is None:
            continue
        if (op == ">" and v > thr) or (op == "<" and v < thr):
            out.append({"metric": metric, "value": float(v), "threshold": thr, "op": op, "event": f"userops.health.{suffix}"})
    return out


def record_breaches(conn, as_of: date, metrics: dict) -> list[dict]:
    """Insert today's breaches (a day's breach is recorded once; a re-run keeps the first)."""
    rows = breached(metrics)
    if not rows:
        return []
    df = pd.DataFrame(
        [
            {
                "as_of": as_of,
                "metric": r["metric"],
                "value": r["value"],
                "threshold": r["threshold"],
                "event": r["event"],
                "detail": json.dumps(_payload(as_of, r, metrics), ensure_ascii=False, default=str),
            }
            for r in rows
        ]
    )
    bulk_upsert(conn, "health_breaches", df, ["as_of", "metric"], on_conflict="nothing")
    return rows


def _payload(as_of: date, r: dict, metrics: dict) -> dict:
    p = {"as_of": str(as_of), r["metric"]: round(r["value"], 6), "threshold": r["threshold"]}
    if r["metric"] == "complaint_rate":
        p.update(complaints=metrics.get("complaints"), active=metrics.get("active"), window_days=get_settings().health.complaint_window_days)
    elif r["metric"] == "satisfaction":
        p.update(responses=metrics.get("satisfaction_responses"))
    elif r["metric"] == "silent_share":
        p.update(silent=metrics.get("stages", {}).get("silent"), members=metrics.get("members"))
    return p


def _fmt(metric: str, v, lang: str | None = None) -> str:
    if v is None:
        return "—"
    if metric in ("dau", "mau"):
        return t("health.count.people", lang, n=f"{int(v):,}")
    if metric in ("silent_share", "complaint_rate", "satisfaction", "repeat_rate", "retention_30d", "retention_90d", "conversion", "dau_mau"):
        return f"{100 * v:.1f}%"
    if metric == "avg_ltv":
        return money(v)
    if metric == "nps":
        return f"{v:.1f}"
    return f"{int(v):,}"


CATCH_UP_DAYS = 7  # a breach recorded but never emitted goes out with a later night within this many days


def emit_pending_breaches(as_of: date, engine: Engine | None = None) -> list[dict]:
    """Emit the Prefect event and queue the alert of every breach of ``as_of`` not emitted
    yet, then mark it emitted: exactly once per breach day, however often the night re-runs.
    A breach of one of the ``CATCH_UP_DAYS`` days before, recorded but never emitted (that
    night failed after its snapshot and was not re-run), goes out now too, under its own day
    (payload, event id and alert are that day's): late, never lost. Older ones are stale."""
    from prefect.events import emit_event

    from tasks.alerts import enqueue_alert

    engine = engine or get_engine()
    h = get_settings().health
    as_of = pd.Timestamp(as_of).date()
    with engine.connect() as conn:
        pending = read_frame(
            conn,
            sa.text(
                "SELECT as_of, metric, value, threshold, event, detail FROM health_breaches "
                "WHERE as_of > :since AND as_of <= :d AND emitted_at IS NULL AND metric IN :mine "  # model_drift is the churn stage's
                "ORDER BY as_of, metric"
            ).bindparams(sa.bindparam("mine", expanding=True)),
            {"since": as_of - timedelta(days=CATCH_UP_DAYS + 1), "d": as_of, "mine": [c[0] for c in CHECKS]},
        )
    done = []
    for r in pending.itertuples():  # at most three per day
        day = pd.Timestamp(r.as_of).date()
        if day != as_of:
            log.warning("%s", t("log.health.breach_late", metric=t(f"health.metric.{r.metric}"), as_of=day))
        payload = json.loads(r.detail or "{}")
        emit_event(
            event=r.event,
            resource=dict(EVENT_RESOURCE),
            payload=payload,
            # a re-delivery of the same breach day carries the same id
            id=uuid.uuid5(_EVENT_NS, f"{r.event}|{day.isoformat()}|{engine.url.render_as_string(hide_password=True)}"),
        )
        name = t(f"health.metric.{r.metric}")
        body = t(
            f"health.breach.body.{r.metric}",
            value=_fmt(r.metric, r.value),
            threshold=_fmt(r.metric, r.threshold),
            days=h.complaint_window_days,
        )
        # each breach in its own transaction: a failure on the second keeps the first
        # recorded as emitted (one transaction for all re-emitted the first on the re-run)
        with engine.begin() as conn:
            enqueue_alert(
                "health_breach",
                t("health.breach.title", as_of=day, metric=name),
                body,
                severity="warning",
                subject=r.metric,
                day=day,
                payload={"event": r.event, **payload, **_report_link(day, as_of)},
                conn=conn,
            )
            conn.execute(
                sa.text("UPDATE health_breaches SET emitted_at = :t WHERE as_of = :d AND metric = :m AND emitted_at IS NULL"),
                {"t": datetime.utcnow().replace(microsecond=0), "d": day, "m": r.metric},
            )
        done.append({"metric": r.metric, "event": r.event, "payload": payload, "as_of": str(day)})
        log.warning("%s", t("log.health.breach", as_of=day, metric=name, value=_fmt(r.metric, r.value),
                            threshold=_fmt(r.metric, r.threshold), event=r.event))
    return done


def _report_link(day: date, as_of: date) -> dict:
    """The alert's button to the day's HTML report, when the reports have a URL (tonight's is
    written right after the breaches go out; an older day's only if it was written)."""
    from userops.reports import report_url

    url = report_url(report_path(day))
    if not url or (day != as_of and not report_path(day).exists()):
        return {}
    return {"link": url, "link_label": t("health.report.open")}


def summary_lines(m: dict, lang: str | None = None) -> list[str]:
    lines = [
        t(
            "health.summary",
            lang,
            as_of=m["as_of"],
            members=f"{m['members']:,}",
            active=f"{m['active']:,}",
            silent_share=_fmt("silent_share", m.get("silent_share")),
            complaint_rate=_fmt("complaint_rate", m.get("complaint_rate")),
            satisfaction=_fmt("satisfaction", m.get("satisfaction")),
        )
    ]
    for b in m.get("breaches") or []:
        lines.append(
            t("health.breach", lang, metric=t(f"health.metric.{b['metric']}", lang), value=_fmt(b["metric"], b["value"]), op=b["op"], threshold=_fmt(b["metric"], b["threshold"]))
        )
    return lines


# ----------------------------------------------------------------------------- report
def history(engine: Engine, as_of: date, days: int) -> pd.DataFrame:
    df = read_frame(
        engine,
        "SELECT as_of, metrics FROM health_snapshots WHERE as_of > :a AND as_of <= :b ORDER BY as_of",
        {"a": as_of - timedelta(days=days), "b": as_of},
    )
    if df.empty:
        return pd.DataFrame(columns=["as_of", *HEADLINE])
    rows = [{"as_of": pd.Timestamp(a).date(), **{k: json.loads(mj).get(k) for k in HEADLINE}} for a, mj in zip(df["as_of"], df["metrics"])]
    return pd.DataFrame(rows)


def _stage_order(stages: dict) -> list[tuple[str, int]]:
    return [(k, stages[k]) for k in STAGES if k in stages] + [(k, v) for k, v in stages.items() if k not in STAGES]


def report_markdown(m: dict, hist: pd.DataFrame, report_path: Path | None, lang: str | None = None) -> str:
    """Key figures with their change vs yesterday and vs the same day last week."""
    as_of = pd.Timestamp(m["as_of"]).date()
    by_day = {r["as_of"]: r for r in hist.to_dict("records")}
    y = by_day.get(as_of - timedelta(days=1), {})
    w = by_day.get(as_of - timedelta(days=7), {})

    def delta(metric, prev):
        v, p = m.get(metric), prev.get(metric)
        if v is None or p is None or (isinstance(p, float) and np.isnan(p)):
            return "—"
        d = v - p
        if metric in ("silent_share", "complaint_rate", "satisfaction", "repeat_rate", "retention_30d", "retention_90d", "conversion"):
            return f"{100 * d:+.1f} pp"
        if metric == "avg_ltv":
            return f"{d:+,.2f}"
        if metric == "nps":
            return f"{d:+.1f}"
        return f"{int(d):+,}"

    lines = [t("health.report.title", lang, as_of=as_of), "", t("health.report.header", lang), "|---|---:|---:|---:|"]
    for metric in HEADLINE:
        if metric in ("dau", "mau") and m.get(metric) is None:
            continue
        lines.append(f"| {t(f'health.metric.{metric}', lang)} | {_fmt(metric, m.get(metric), lang)} | {delta(metric, y)} | {delta(metric, w)} |")
    if m.get("breaches"):
        zh = (lang or get_settings().language) == "zh-CN"
        items = ("；" if zh else "; ").join(
            f"{t(f'health.metric.' + b['metric'], lang)} {_fmt(b['metric'], b['value'])}{'' if zh else ' '}"
            + parens(f"{b['op']} {_fmt(b['metric'], b['threshold'])}", lang)
            for b in m["breaches"]
        )
        lines += ["", t("health.report.breaches", lang, items=items)]
    lines += ["", t("health.report.stages.header", lang), "|---|---:|"]
    for stage, n in _stage_order(m["stages"]):  # the funnel's order (a stored snapshot's keys come back sorted)
        lines.append(f"| {t(f'tags.stage.{stage}', lang)} | {n:,} |")
    st = m["stages"]
    if all(k in st for k in ("new", "active", "loyal")):  # the headline's active members, from the rows above
        lines += ["", t("health.report.active_sum", lang, active=f"{m['active']:,}", new=f"{st['new']:,}", active_stage=f"{st['active']:,}", loyal=f"{st['loyal']:,}")]
    if report_path is not None:  # a link the operator's browser opens, or where the file is (never file://)
        from userops.reports import report_reference

        lines += ["", t("health.report.link", lang, report=report_reference(report_path, lang))]
    return "\n".join(lines) + "\n"


def _plot_lang(lang: str | None) -> str:
    """Chart labels in the operator's language when a CJK font is installed, else English
    (the HTML text around the charts stays in the operator's language)."""
    lang = lang or get_settings().language
    if lang == "en":
        return lang
    from matplotlib import font_manager, rcParams

    cjk = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC")
    names = {f.name for f in font_manager.fontManager.ttflist}
    found = [n for n in cjk if n in names]
    if not found:
        log.warning("%s", t("log.health.no_cjk_font", lang))
        return "en"
    rcParams["font.sans-serif"] = found + list(rcParams["font.sans-serif"])
    return lang


ARTIFACT_CHART_DPI = 60  # the artifact's copies are small PNGs (the Prefect database keeps one per night)


def _png(fig, dpi: int = ARTIFACT_CHART_DPI) -> str:
    """The figure as base64 PNG (the artifact's copies of the key charts); closes it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    with _no_glyph_warnings():
        fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _svg(fig) -> str:
    """The figure as inline SVG markup with its text kept as text (``svg.fonttype: none``):
    the reader's browser draws the labels with its own fonts, so the report's charts are in
    the operator's language whether or not this machine has a CJK font. Closes it."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with _no_glyph_warnings():
        fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # inline in HTML: no XML prolog or doctype


@contextlib.contextmanager
def _no_glyph_warnings():
    """Drawing zh-CN text without a CJK font warns once per missing glyph; the SVG keeps
    the text and the browser draws it, so those warnings say nothing there."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


def _figures(m: dict, hist: pd.DataFrame, as_of: date, days: int, lang: str, only: tuple = ("stages", "segments", "retention", "trend")) -> dict:
    """The report's charts as matplotlib figures, labelled in ``lang``: stage funnel, segment
    sizes, retention curves by cohort, the health metrics' trend over ``days`` days."""
    import matplotlib.pyplot as plt

    figs = {}
    with _no_glyph_warnings():
        if "stages" in only:
            fig, ax = plt.subplots(figsize=(7, 3.2))
            stages = [k for k, _ in _stage_order(m["stages"])]
            ax.barh([t(f"tags.stage.{k}", lang) for k in stages][::-1], [m["stages"][k] for k in stages][::-1], color="#4C78A8")
            ax.set_title(t("health.report.stages", lang))
            figs["stages"] = fig
        if "segments" in only:
            fig, ax = plt.subplots(figsize=(7, 3.6))
            segs = [k for k in m["segments"]]
            seg_names = [t(f"tags.segment.{k}", lang) if k in SEGMENTS else k for k in segs]
            ax.barh(seg_names[::-1], [m["segments"][k] for k in segs][::-1], color="#F58518")
            ax.set_title(t("health.report.segments", lang))
            figs["segments"] = fig
        if "retention" in only:
            fig, ax = plt.subplots(figsize=(7, 3.6))
            for month, curve in (m.get("retention_curves") or {}).items():
                pts = [(d, v) for d, v in curve if v is not None]
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], label=month)
            ax.set_xlabel(t("health.report.days_after", lang))
            ax.set_ylabel(t("health.report.repurchased", lang))
            ax.set_title(t("health.report.retention", lang))
            if m.get("retention_curves"):
                ax.legend(fontsize=7)
            figs["retention"] = fig
        if "trend" in only:
            fig, axes = plt.subplots(2, 2, figsize=(9, 5.5))
            for ax, metric in zip(axes.ravel(), ["silent_share", "complaint_rate", "satisfaction", "active"]):
                if not hist.empty:
                    ax.plot(pd.to_datetime(hist["as_of"]), pd.to_numeric(hist[metric], errors="coerce"), marker=".")
                thr = m.get("thresholds", {}).get(metric)
                if thr is not None:
                    ax.axhline(thr, color="red", linestyle="--", linewidth=1)
                ax.set_title(t(f"health.metric.{metric}", lang), fontsize=9)
                # the window the title names, whatever the history holds (one snapshot spanned years)
                ax.set_xlim(pd.Timestamp(as_of - timedelta(days=days)), pd.Timestamp(as_of))
                ax.tick_params(axis="x", labelrotation=30, labelsize=7)
            fig.tight_layout()
            figs["trend"] = fig
    return figs


def write_report(as_of: date, m: dict, engine: Engine | None = None, lang: str | None = None) -> Path:
    """The HTML report with plots (stage funnel, segment sizes, retention curves, 90-day
    trends) under ``settings.output_dir/reports/``. Returns its path. Its charts are inline
    SVG in the operator's language; the artifact's copies of the key charts (trend, retention)
    are small PNGs, in English when this machine has no CJK font to draw the labels with."""
    import matplotlib

    matplotlib.use("Agg")
    import html as _h

    engine = engine or get_engine()
    s = get_settings()
    as_of = pd.Timestamp(as_of).date()
    days = s.health.trend_days
    hist = history(engine, as_of, days)
    lang = lang or s.language
    png_lang = _plot_lang(lang)  # the PNGs need a font with the glyphs; the SVGs' text is the browser's to draw
    key = ("retention", "trend")
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "userops"}):
        figs = _figures(m, hist, as_of, days, lang)
        small = {k: _png(figs[k]) for k in key} if png_lang == lang else None  # before the SVG closes them
        images = {k: _svg(f) for k, f in figs.items()}
    if small is None:
        small = {k: _png(f) for k, f in _figures(m, hist, as_of, days, png_lang, only=key).items()}

    md = report_markdown(m, hist, None, lang)
    table_html = _markdown_table_html(md)
    titles = {
        "stages": t("health.report.stages", lang),
        "segments": t("health.report.segments", lang),
        "retention": t("health.report.retention", lang),
        "trend": t("health.report.trend", lang, days=days),
    }
    body = "".join(f"<h2>{_h.escape(titles[k])}</h2><figure role='img' aria-label='{_h.escape(titles[k])}'>{images[k]}</figure>" for k in titles)
    html = (
        f"<!doctype html><html lang='{_h.escape(lang)}'><head><meta charset='utf-8'><title>"
        f"{_h.escape(t('health.report.html_title', lang, as_of=as_of))}</title><style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child{text-align:left}figure{margin:0}figure svg{max-width:100%;height:auto}</style></head><body>"
        f"{table_html}{body}</body></html>"
    )
    path = report_path(as_of)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    # the charts the artifact carries itself (publish_report), kept for this process only
    _CHARTS.clear()  # the latest report's only
    _CHARTS[str(path)] = [(titles["trend"], small["trend"]), (titles["retention"], small["retention"])]
    _CHART_NOTE[str(path)] = png_lang != lang
    return path


_CHARTS: dict[str, list[tuple[str, str]]] = {}
_CHART_NOTE: dict[str, bool] = {}  # the artifact's charts are in English: no CJK font here


def report_path(as_of: date) -> Path:
    """Where the HTML report of ``as_of`` is written: ``<output_dir>/reports/health-<day>.html``."""
    return Path(get_settings().output_dir) / "reports" / f"health-{pd.Timestamp(as_of).date().isoformat()}.html"


def charts_markdown(charts: list[tuple[str, str]], lang: str | None = None, english: bool = False) -> str:
    """The key charts as Markdown images with ``data:`` URIs: the Prefect UI's Markdown
    renderer shows an image token as ``<img src=...>`` and accepts a data: URI, so the
    artifact shows them with no file or server needed. ``english``: drawn with English
    labels (no CJK font on this machine), which the artifact says once."""
    if not charts:
        return ""
    out = ["", t("health.report.key_charts", lang), ""]
    if english:
        out += [t("health.report.no_cjk_font", lang), ""]
    for title, img in charts:
        out += [f"![{title}](data:image/png;base64,{img})", ""]
    return "\n".join(out)


def _markdown_table_html(md: str) -> str:
    """The report's Markdown (title, tables, lines) as simple HTML."""
    import html as _h

    out, in_table = [], False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{_h.escape(c)}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{_h.escape(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("## "):
            out.append(f"<h1>{_h.escape(line[3:])}</h1>")
        elif line.strip():
            out.append(f"<p>{_h.escape(line.replace('**', ''))}</p>")
    if in_table:
        out.append("</table>")
    return "".join(out)


def publish_report(as_of: date, m: dict, engine: Engine | None = None) -> dict:
    """Write the HTML report and publish the ``health-report`` Markdown artifact linking it
    (needs a Prefect run context)."""
    from tasks.artifacts import publish_markdown

    engine = engine or get_engine()
    as_of = pd.Timestamp(as_of).date()
    path = write_report(as_of, m, engine)
    hist = history(engine, as_of, 8)
    md = report_markdown(m, hist, path) + charts_markdown(_CHARTS.pop(str(path), []), english=_CHART_NOTE.pop(str(path), False))
    key = publish_markdown("health", md, description=t("artifact.health.description", as_of=as_of))
    return {"artifact_key": key, "report": str(path)}


# ----------------------------------------------------------------------------- tasks
@task(name="health-snapshot", task_run_name="health-snapshot-{as_of}")
def snapshot_task(as_of: date) -> dict:
    return snapshot(as_of)


@task(name="health-emit-breaches")
def emit_breaches_task(as_of: date) -> list[dict]:
    return emit_pending_breaches(as_of)


@task(name="health-report")
def report_task(as_of: date, metrics: dict) -> dict:
    return publish_report(as_of, metrics)
