"""Read-outs: did a campaign work (treatment vs control), and the communication calendar.

Conversion = a paid order within the attribution window (default 14 days) after the touch:
the send time; for a touch that was not sent (the control group, a treatment customer cut
by the budget, suppressed or failed) the time its message would have gone out, i.e. the
planning time deferred by the same quiet hours (``tasks.messaging.quiet_not_before``) the
planner applies. Groups are compared as assigned (intention to treat): every customer the
planner assigned to treatment counts in treatment whatever happened to the message (sent,
failed, cut by the budget, suppressed at planning or at send time), and every customer
assigned to control counts in control, so both groups are the same random split of the
audience; how many were reached, suppressed, failed or still pending is reported beside.
The uplift is the difference of conversion rates with Newcombe's hybrid score interval
(method 10 of Newcombe 1998, from two Wilson intervals: it keeps its 95% coverage for small
groups and rare or absent conversions, where the Wald interval does not); below ``min_n``
customers per group, or when the interval includes 0, the verdict says "not significant yet".

No verdict and no interval while the comparison is incomplete: while any customer of the two
groups is still inside the attribution window, or a treatment message is still pending (not
sent yet, so its window has not even started), the verdict is ``open`` (尚无结论) with how many
of each. Those customers may still buy; counting them as not converted pulls both rates down
and the difference toward 0, so an interval then would read as "no effect" (or a spurious
drop) whatever the campaign does. So the uplift, its interval, the verdict and the incremental
revenue count only the planning days that are over (every message planned that day out, every
window closed; the holdout is a hash of campaign and customer, so each day's groups stay
comparable), and the report says how many customers that is and what the newer days still wait
for. While no day is over: the conversion rates so far, no uplift, no interval.
"""
from __future__ import annotations

import math
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tasks.campaigns import texts  # noqa: F401
from tasks.messaging import quiet_not_before, valid_zones
from userops.clock import shop_today, utcnow
from userops.db import get_engine, is_postgres, read_frame
from userops.i18n import money, register, t
from userops.settings import get_settings

Z95 = 1.959963984540054
MIN_N = 30

register(
    {
        "campaign.report.suppressed": {"zh-CN": "未发送（被抑制）", "en": "suppressed"},
        "campaign.report.failed": {"zh-CN": "发送失败", "en": "failed"},
        "campaign.report.pending": {"zh-CN": "待发送", "en": "pending"},
        "campaign.report.no_variant": {"zh-CN": "未分版本（计划时被排除）", "en": "no variant (excluded at planning)"},
    }
)


def wilson_interval(x: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion x/n (no continuity correction); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    z2 = z * z
    centre = (x + z2 / 2) / (n + z2)
    half = z * math.sqrt(x * (n - x) / n + z2 / 4) / (n + z2)
    return max(0.0, centre - half), min(1.0, centre + half)


def uplift_interval(conv_t: int, n_t: int, conv_c: int, n_c: int, z: float = Z95) -> dict:
    """Difference of two conversion rates (treatment - control) with Newcombe's hybrid
    score interval (Newcombe 1998, method 10): from the Wilson intervals (l1, u1), (l2, u2)
    of the two rates, lo = d - sqrt((p1 - l1)^2 + (u2 - p2)^2), hi = d + sqrt((u1 - p1)^2 +
    (p2 - l2)^2). Unlike the Wald interval it never collapses to zero width when a group has
    no (or only) conversions, and keeps about 95% coverage for small groups and rare events."""
    if n_t <= 0 or n_c <= 0:
        return {"p_t": conv_t / n_t if n_t else None, "p_c": conv_c / n_c if n_c else None, "uplift": None, "lo": None, "hi": None, "method": "newcombe"}
    p_t, p_c = conv_t / n_t, conv_c / n_c
    l_t, u_t = wilson_interval(conv_t, n_t, z)
    l_c, u_c = wilson_interval(conv_c, n_c, z)
    d = p_t - p_c
    lo = d - math.sqrt((p_t - l_t) ** 2 + (u_c - p_c) ** 2)
    hi = d + math.sqrt((u_t - p_t) ** 2 + (p_c - l_c) ** 2)
    return {"p_t": p_t, "p_c": p_c, "uplift": d, "lo": lo, "hi": hi, "method": "newcombe"}


def verdict(u: dict, n_t: int, n_c: int, min_n: int = MIN_N, *, control: int | None = None) -> str:
    """The read-out's conclusion, decided here only. ``n_t``, ``n_c``: the customers of the
    finished periods (every message out, every attribution window closed) of the two groups,
    ``u`` their uplift; ``control``: the control group's customers over all periods (default
    ``n_c``). No control customer at all: ``no_control``; none of the two groups has a finished
    period yet: no conclusion yet (``open``), whatever the interval says."""
    if (n_c if control is None else control) == 0:
        return "no_control"
    if n_t == 0 or n_c == 0:
        return "open"
    if min(n_t, n_c) < min_n:
        return "too_small"
    if u["lo"] is not None and u["lo"] > 0:
        return "up"
    if u["hi"] is not None and u["hi"] < 0:
        return "down"
    return "not_significant"


def verdict_text(code: str, lang: str | None = None, min_n: int = MIN_N, waiting: dict | None = None) -> str:
    """The verdict in words; for ``open`` with why (``waiting``: ``open_window``, ``pending``)."""
    if code == "open":
        return t("campaign.verdict.open", lang, why=_why(waiting, lang))
    return t(f"campaign.verdict.{code}", lang, min_n=min_n)


def _why(waiting: dict | None, lang: str | None = None) -> str:
    """"48 位客户的归因窗口未结束，85 位尚未发送，对照组 18 位的归因窗口未结束": what the
    conclusion waits for, the line's own customers first, then the control group's."""
    w = waiting or {}
    parts = [t(f"campaign.verdict.open.{k}", lang, n=f"{int(w.get(k) or 0):,}") for k in WAITING_KEYS if w.get(k)]
    return t("campaign.verdict.open.sep", lang).join(parts)


def withhold(u: dict) -> dict:
    """The uplift figures while there is no conclusion yet: the two rates so far, no
    difference and no interval (they would be biased toward 0, see the module docstring)."""
    return {**u, "uplift": None, "lo": None, "hi": None, "withheld": True}


WAITING_KEYS = ("open_window", "pending", "control_open_window")


def _waiting(group: dict, control: dict) -> dict:
    """What a line's conclusion waits for: its own customers (treatment, or one variant) still
    inside the window or not sent yet, and the control group's still inside the window, each
    counted once (a variant's line never counts the control group as its own)."""
    return {"open_window": group["open_window"], "pending": group["pending"], "control_open_window": control["open_window"]}


def would_go_out(touches: pd.DataFrame) -> pd.Series:
    """When each touch went out, or would have: ``sent_at``; else ``not_before`` (deferred by
    quiet hours); else ``planned_at`` deferred by the touch's quiet hours in its timezone, with
    the planner's own rule (``tasks.messaging.quiet_not_before``), so a control customer's
    window starts when the treatment message planned at the same moment went out."""
    ref = touches["sent_at"].fillna(touches["not_before"]).astype("datetime64[us]")
    todo = ref.isna()
    planned = touches["planned_at"].astype("datetime64[us]")
    if todo.any():
        quiet = touches["quiet_hours"]
        rows = todo & quiet.notna()
        deferred = pd.Series(pd.NaT, index=touches.index, dtype="datetime64[us]")
        if rows.any():
            deferred.loc[rows] = quiet_not_before(planned[rows], valid_zones(touches.loc[rows, "timezone"]), quiet[rows])
        ref = ref.where(~todo, deferred.fillna(planned))
    return ref


def touch_outcomes(engine: Engine, campaign: str, now: datetime | None = None, attribution_days: int | None = None) -> pd.DataFrame:
    """One row per touch of the campaign, treatment and control, whatever its status
    (intention to treat), with converted / revenue inside its attribution window."""
    now = now or utcnow()
    days = attribution_days or get_settings().campaigns.attribution_days
    touches = read_frame(
        engine,
        "SELECT touch_key, customer_id, period, grp, variant, status, reason, channel, CAST(gift_cost AS FLOAT) AS gift_cost, "
        "planned_at, not_before, sent_at, quiet_hours, timezone FROM touches WHERE campaign = :c",
        {"c": campaign},
        parse_dates=["planned_at", "not_before", "sent_at"],
    )
    if touches.empty:
        return touches.assign(ref=pd.Series(dtype="datetime64[us]"), converted=pd.Series(dtype=bool), revenue=pd.Series(dtype=float), window_open=pd.Series(dtype=bool))
    touches["ref"] = would_go_out(touches)
    window = pd.Timedelta(days=days)
    lo, hi = touches["ref"].min(), touches["ref"].max() + window
    orders = read_frame(
        engine,
        sa.text(
            "SELECT o.customer_id, o.paid_at, CAST(o.amount AS FLOAT) AS amount FROM orders o "
            "WHERE o.status = 'paid' AND o.paid_at >= :lo AND o.paid_at < :hi "
            "AND o.customer_id IN (SELECT customer_id FROM touches WHERE campaign = :c)"
        ).bindparams(sa.bindparam("lo", type_=sa.DateTime()), sa.bindparam("hi", type_=sa.DateTime())),
        {"lo": lo.to_pydatetime(), "hi": hi.to_pydatetime(), "c": campaign},
        parse_dates=["paid_at"],
    )
    if orders.empty:
        touches["converted"] = False
        touches["revenue"] = 0.0
    else:
        m = touches[["touch_key", "customer_id", "ref"]].merge(orders, on="customer_id")
        m = m[(m["paid_at"] >= m["ref"]) & (m["paid_at"] < m["ref"] + window)]
        agg = m.groupby("touch_key").agg(orders=("paid_at", "size"), revenue=("amount", "sum"))
        touches["converted"] = touches["touch_key"].map(agg["orders"]).fillna(0) > 0
        touches["revenue"] = touches["touch_key"].map(agg["revenue"]).fillna(0.0).astype(float)
    touches["window_open"] = touches["ref"] + window > pd.Timestamp(now)
    return touches


PENDING = ("planned", "awaiting_review", "in_flight")


def _group_figures(g: pd.DataFrame) -> dict:
    """Everyone assigned to the group counts in ``customers`` (intention to treat); beside it
    what happened to their messages: reached (sent), suppressed (at planning, by the budget
    or at send time; per reason), failed, pending (not sent yet)."""
    n = int(len(g))
    sup = g.loc[g["status"] == "suppressed", "reason"].fillna("-").value_counts()
    pending = g["status"].isin(PENDING)
    return {
        "customers": n,
        "reached": int((g["status"] == "sent").sum()),
        "suppressed": int((g["status"] == "suppressed").sum()),
        "suppressed_by_reason": {str(k): int(v) for k, v in sorted(sup.items())},
        "failed": int((g["status"] == "failed").sum()),
        "pending": int(pending.sum()),
        # still inside the attribution window (pending messages are counted as pending)
        "open_window": int((g["window_open"].astype(bool) & ~pending).sum()),
        "converted": int(g["converted"].sum()),
        "conversion": float(g["converted"].mean()) if n else None,
        "revenue": round(float(g["revenue"].sum()), 2),
        "revenue_per_customer": round(float(g["revenue"].sum()) / n, 2) if n else None,
        "gift_cost": round(float(g.loc[g["status"] == "sent", "gift_cost"].sum()), 2),
    }


def campaign_report(engine: Engine | None = None, name: str = "", *, now: datetime | None = None, attribution_days: int | None = None, min_n: int = MIN_N) -> dict:
    """Figures of one campaign: reached, converted, treatment vs control, uplift with a 95%
    interval, revenue per customer, gift cost, per variant; honest verdicts."""
    engine = engine or get_engine()
    days = attribution_days or get_settings().campaigns.attribution_days
    df = touch_outcomes(engine, name, now, days)
    rep: dict = {"campaign": name, "attribution_days": days, "touches": int(len(df))}
    if df.empty:
        rep.update(groups={}, variants=[], verdict="no_data", open_window=0)
        return rep
    tr, co = df[df["grp"] == "treatment"], df[df["grp"] == "control"]
    gt, gc = _group_figures(tr), _group_figures(co)
    rep["groups"] = {"treatment": gt, "control": gc}
    rep["waiting"] = _waiting(gt, gc)
    done = _concluded(df)
    dt, dc = _group_figures(done[done["grp"] == "treatment"]), _group_figures(done[done["grp"] == "control"])
    rep["basis"] = {"treatment": dt["customers"], "control": dc["customers"]}
    rep["uplift"], rep["verdict"] = _conclusion(dt, dc, gt, gc, min_n)
    # the customers inside their window, as the lines count them: a message not sent yet has
    # not started its window (counted as pending), whatever its planned time
    rep["open_window"] = int(gt["open_window"] + gc["open_window"])
    last = df.loc[df["window_open"], "ref"].max()
    rep["window_closes"] = (last + pd.Timedelta(days=days)).to_pydatetime() if pd.notna(last) else None
    rep["periods"] = int(df["period"].nunique())
    rpc_t, rpc_c = dt["revenue_per_customer"], dc["revenue_per_customer"]
    rep["incremental_revenue"] = round((rpc_t - rpc_c) * dt["customers"], 2) if rpc_t is not None and rpc_c is not None and rep["verdict"] != "open" else None
    variants = []
    done_t = done[done["grp"] == "treatment"]
    for v, g in tr.groupby(tr["variant"].fillna("-"), sort=True):
        fig = _group_figures(g)
        waiting = _waiting(fig, gc)
        uv, code = _conclusion(_group_figures(done_t[done_t["variant"].fillna("-") == v]), dc, fig, gc, min_n)
        variants.append({"variant": v, **fig, "uplift": uv, "verdict": code, "waiting": waiting})
    rep["variants"] = variants
    return rep


def _concluded(df: pd.DataFrame) -> pd.DataFrame:
    """The touches of the planning days that are over: every message planned that day went out
    (or was held back for good) and every customer's attribution window has closed. The holdout
    is a hash of campaign and customer, whatever day a customer is planned, so each day's
    treatment and control stay comparable; a campaign that plans every night (or once per
    customer, as onboarding) concludes on its finished days while the newest ones run."""
    tz = ZoneInfo(get_settings().timezone)
    day = pd.to_datetime(df["planned_at"]).dt.tz_localize("UTC").dt.tz_convert(tz).dt.date
    busy = df["window_open"].astype(bool) | df["status"].isin(PENDING)
    return df[~day.isin(set(day[busy]))]


def _conclusion(t_fig: dict, c_fig: dict, t_all: dict, c_all: dict, min_n: int) -> tuple[dict, str]:
    """(uplift, verdict) of a treatment group against the control, on the finished periods'
    customers (``t_fig``, ``c_fig``: their figures); ``verdict`` decides. While it is ``open``
    the uplift shows the rates so far of everyone (``t_all``, ``c_all``) and no difference or
    interval; with no control group, the treatment's rate alone."""
    u = uplift_interval(t_fig["converted"], t_fig["customers"], c_fig["converted"], c_fig["customers"])
    code = verdict(u, t_fig["customers"], c_fig["customers"], min_n, control=c_all["customers"])
    if code == "no_control":
        u = uplift_interval(t_all["converted"], t_all["customers"], 0, 0)
    elif code == "open":
        u = withhold(uplift_interval(t_all["converted"], t_all["customers"], c_all["converted"], c_all["customers"]))
    return u, code


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _pp(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:+.1f}pp"


def report_rows(rep: dict, lang: str | None = None) -> list[dict]:
    """The read-out as table rows (CLI and Prefect artifact); no personal data."""
    if not rep.get("groups"):
        return []
    L = lambda k, **kw: t(f"campaign.report.{k}", lang, **kw)  # noqa: E731
    rows = []

    def row(label, fig, u=None, code=None, waiting=None):
        rows.append(
            {
                L("group"): label,
                L("customers"): fig["customers"],
                L("reached"): fig["reached"],
                L("suppressed"): fig.get("suppressed", 0),
                L("failed"): fig.get("failed", 0),
                L("pending"): fig.get("pending", 0),
                L("converted"): fig["converted"],
                L("rate"): _pct(fig["conversion"]),
                L("uplift"): _pp(u["uplift"]) if u else "",
                L("ci"): f"[{_pp(u['lo'])}, {_pp(u['hi'])}]" if u and u["lo"] is not None else "",
                L("rpc"): money(fig["revenue_per_customer"], "-"),
                L("gift"): money(fig["gift_cost"]),
                L("verdict"): verdict_text(code, lang, waiting=waiting) if code else "",
            }
        )

    row(L("treatment"), rep["groups"]["treatment"], rep["uplift"], rep["verdict"], rep.get("waiting"))
    row(L("control"), rep["groups"]["control"])
    for v in rep["variants"]:
        if v["variant"] == "-":
            # no variant was drawn (excluded at planning before the A/B draw): never messaged, so
            # no uplift, interval or verdict, empty as the control group's
            row(L("no_variant"), v)
        else:
            row(L("variant", variant=v["variant"]), v, v["uplift"], v["verdict"], v.get("waiting"))
    return rows


# --------------------------------------------------------------------------- calendar
def _hour_bucket(bind, col: str) -> str:
    return f"to_char({col}, 'YYYY-MM-DD HH24')" if is_postgres(bind) else f"substr({col}, 1, 13)"


def calendar_frame(engine: Engine | None = None, today: date | None = None, past_days: int = 30, ahead_days: int = 14) -> pd.DataFrame:
    """Per shop-local day, campaign and channel: messages sent (last ``past_days`` days) and
    planned (today and the next ``ahead_days``; anything overdue shows on today)."""
    engine = engine or get_engine()
    today = today or shop_today()
    tz = ZoneInfo(get_settings().timezone)
    start_local = datetime.combine(today - timedelta(days=past_days - 1), datetime.min.time(), tzinfo=tz)
    start = start_local.astimezone(timezone.utc).replace(tzinfo=None)
    sent_b = _hour_bucket(engine, "sent_at")
    due_b = _hour_bucket(engine, "COALESCE(not_before, planned_at)")
    sql = (
        f"SELECT 'sent' AS kind, campaign, channel, {sent_b} AS hour, COUNT(*) AS n FROM touches "
        f"WHERE status = 'sent' AND sent_at >= :start GROUP BY campaign, channel, {sent_b} "
        f"UNION ALL SELECT 'planned' AS kind, campaign, channel, {due_b} AS hour, COUNT(*) AS n FROM touches "
        f"WHERE status IN ('planned', 'awaiting_review', 'in_flight') GROUP BY campaign, channel, {due_b}"
    )
    raw = read_frame(engine, sa.text(sql).bindparams(sa.bindparam("start", type_=sa.DateTime())), {"start": start})
    cols = ["day", "campaign", "channel", "sent", "planned"]
    if raw.empty:
        return pd.DataFrame(columns=cols)
    hour = pd.to_datetime(raw["hour"].astype(str) + ":00", format="%Y-%m-%d %H:%M")
    raw["day"] = hour.dt.tz_localize("UTC").dt.tz_convert(tz).dt.date
    raw.loc[(raw["kind"] == "planned") & (raw["day"] < today), "day"] = today
    horizon = today + timedelta(days=ahead_days)
    raw = raw[(raw["kind"] == "sent") | (raw["day"] <= horizon)]
    out = raw.pivot_table(index=["day", "campaign", "channel"], columns="kind", values="n", aggfunc="sum", fill_value=0).reset_index()
    for k in ("sent", "planned"):
        if k not in out:
            out[k] = 0
    out["sent"] = out["sent"].astype(int)
    out["planned"] = out["planned"].astype(int)
    out["day"] = out["day"].astype(str)
    return out[cols].sort_values(["day", "campaign", "channel"]).reset_index(drop=True)


def calendar_rows(cal: pd.DataFrame, lang: str | None = None) -> list[dict]:
    L = lambda k: t(f"campaign.calendar.{k}", lang)  # noqa: E731
    return [
        {L("day"): r.day, L("campaign"): r.campaign, L("channel"): r.channel, L("sent"): int(r.sent), L("planned"): int(r.planned)}
        for r in cal.itertuples(index=False)
    ]


# --------------------------------------------------------------------------- artifacts
def count_lines(rep: dict, lang: str | None = None) -> list[str]:
    """What the report's counts mean, and how each group's count is made up: the groups are
    the whole random split (intention to treat), so the control group is larger than the
    nightly plan line's "control" (contactable only) by the customers excluded at planning."""
    g = rep["groups"]
    gc, gt = g["control"], g["treatment"]
    treatment = t("campaign.report.treatment_split", lang, n=f"{gt['customers']:,}", reached=f"{gt['reached']:,}", suppressed=f"{gt['suppressed']:,}", failed=f"{gt['failed']:,}", pending=f"{gt['pending']:,}")
    other = gt["customers"] - gt["reached"] - gt["suppressed"] - gt["failed"] - gt["pending"]
    if other:  # a status none of the columns names: the sum still adds up
        treatment += t("campaign.report.other", lang, n=f"{other:,}")
    return [
        t("campaign.report.itt", lang, periods=rep.get("periods", 1)),
        t("campaign.report.control_split", lang, n=f"{gc['customers']:,}", contactable=f"{gc['customers'] - gc['suppressed']:,}", excluded=f"{gc['suppressed']:,}"),
        treatment,
    ]


def legend(lang: str | None = None) -> str:
    """What the table's figures mean, one sentence (as the churn-model artifact's
    ``tasks.artifacts.metric_legend``): conversion, uplift in percentage points, the 95% interval."""
    items = [t(f"campaign.report.legend.{k}", lang) for k in ("rate", "uplift", "ci")]
    return t("campaign.report.legend", lang, items=t("campaign.report.legend.sep", lang).join(items))


def open_line(rep: dict, lang: str | None = None) -> str:
    """Why there is no conclusion yet, and when there will be: after the last attribution
    window closes (shop time), or, with messages still pending, that many days after they go out."""
    w = rep.get("waiting") or {}
    if w.get("pending"):
        until = t("campaign.report.open.until_pending", lang, days=rep.get("attribution_days"))
    elif rep.get("window_closes") is not None:
        tz = ZoneInfo(get_settings().timezone)
        when = rep["window_closes"].replace(tzinfo=timezone.utc).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        until = t("campaign.report.open.until", lang, when=when)
    else:
        until = ""
    return t("campaign.report.open", lang, why=_why(w, lang), until=until)


def report_markdown(rep: dict, title: str, lang: str | None = None) -> str:
    days = rep.get("attribution_days")
    lines = [f"**{t('campaign.report.title', lang, name=rep['campaign'], title=title)}**", ""]
    if rep.get("groups"):
        lines.append(t("campaign.report.window", lang, days=days, open=f"{int(rep.get('open_window') or 0):,}"))
        if rep.get("verdict") == "open":
            lines += ["", open_line(rep, lang)]
        elif any((rep.get("waiting") or {}).values()) and rep.get("basis"):
            b = rep["basis"]
            lines += ["", t("campaign.report.basis", lang, treatment=f"{b['treatment']:,}",
                            control=f"{b['control']:,}", why=_why(rep["waiting"], lang))]
        lines += ["", *count_lines(rep, lang), "", legend(lang)]
    else:
        lines.append(t("campaign.report.empty", lang, name=rep["campaign"]))
    return "\n".join(lines)


def publish_report(name: str, title: str | None = None, engine: Engine | None = None) -> dict:
    """The campaign read-out as a Prefect table artifact under ``campaign-<name>``."""
    from prefect.artifacts import create_table_artifact

    rep = campaign_report(engine, name)
    rows = report_rows(rep)
    create_table_artifact(
        key=f"campaign-{name}",
        table=rows or [{"campaign": name, "touches": 0}],
        description=report_markdown(rep, title or name),
    )
    return rep


def publish_calendar(today: date | None = None, engine: Engine | None = None, past_days: int = 30, ahead_days: int = 14) -> pd.DataFrame:
    """The communication calendar (沟通日历) as the ``campaign-calendar`` table artifact."""
    from prefect.artifacts import create_table_artifact

    cal = calendar_frame(engine, today, past_days, ahead_days)
    create_table_artifact(
        key="campaign-calendar",
        table=calendar_rows(cal) or [{"day": str(today or shop_today()), "sent": 0, "planned": 0}],
        description=f"**{t('campaign.calendar.title')}**\n\n{t('campaign.calendar.desc', past=past_days, ahead=ahead_days)}",
    )
    return cal


# --------------------------------------------------------------------------- Prefect tasks
from prefect import task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402


@task(name="publish-campaign-readouts", cache_policy=NO_CACHE)
def publish_readouts_task(campaigns: list[tuple[str, str]]) -> dict:
    """One read-out artifact per campaign ((name, title) pairs); returns the verdicts."""
    out = {}
    for name, title in campaigns:
        rep = publish_report(name, title)
        out[name] = {"touches": rep["touches"], "verdict": rep.get("verdict")}
    return out


@task(name="publish-communication-calendar", cache_policy=NO_CACHE)
def publish_calendar_task(today: date | None = None) -> int:
    return int(len(publish_calendar(today)))
