"""Complaint-spike monitor: complaints per SKU, one Prefect event per spike.

A SKU is *hot* at the moment of a complaint when, in the window ending there
(``crisis.spike_window_hours``, default 2h), it has

* at least ``crisis.spike_complaints`` complaints (default 10), or
* at least ``crisis.spike_rate_min_complaints`` complaints (default 5) and at least
  ``crisis.spike_rate_factor`` (default 5x) its usual number per window, the usual being its
  complaints over the ``crisis.spike_baseline_days`` (default 28) before the scan.

Hot moments of one SKU that lie within ``crisis.spike_cooldown_hours`` of each other form one
spike (a row of ``complaint_spikes``); each spike is emitted exactly once as
``userops.complaints.spike`` (resource ``userops.sku.<SKU>``, payload ``skus``,
``complaints``, ``window_hours``) and the crisis deployment is triggered by that event.
Each check rescans the last ``crisis.spike_scan_hours`` (default 26h), so the nightly run
also catches a spike the hourly monitor did not see. Everything is set-based: one query for
the recent complaints, one for the baselines, a grouped rolling count in pandas.
"""
from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Connection, Engine

from tasks.crisis.util import execute, read
from userops.clock import utcnow
from userops.db import get_engine
from userops.settings import get_settings

log = logging.getLogger("userops.crisis.spike")

EVENT = "userops.complaints.spike"

# The reason the spike trigger gives the crisis run (``flows.crisis.SPIKE_TRIGGER``, the same in
# prefect.yaml), templated by Prefect from the event's payload. It stays one fixed text, whatever
# the shop's language: it is the run's parameter and the incident's record (``incidents.reason``,
# the take-down hook's ``reason``), and ``reason_text`` recognises it and shows it in the language
# of whoever reads it (alerts, report, ``incident list``/``show``) — also for incidents opened
# before the language changed.
REASON = "complaint spike: {{ event.payload.complaints }} complaints in {{ event.payload.window_hours }}h"
_REASON_RE = re.compile(r"complaint spike: (\d+) complaints in (\d+(?:\.\d+)?)h")
_NS = uuid.UUID("6f1c1a52-9a57-4d0e-9a7e-3b2f0c1d7e11")


def reason_text(reason: str | None, lang: str | None = None) -> str | None:
    """An incident's reason as the operator reads it: the spike trigger's fixed text
    (``REASON``, e.g. "complaint spike: 12 complaints in 2.0h") in the operator's language
    ("投诉激增：2 小时内 12 条投诉"); any other reason (typed by a person) as it is."""
    from tasks.crisis import messages  # noqa: F401  the texts
    from userops.i18n import t

    m = _REASON_RE.fullmatch(reason.strip()) if isinstance(reason, str) else None
    if not m:
        return reason
    return t("crisis.reason.spike", lang, n=int(m.group(1)), window=f"{float(m.group(2)):g}")


def detect_hot(bind: Engine | Connection, now: datetime | None = None) -> pd.DataFrame:
    """Every hot moment in the scan period: one row per (sku, at) with the window's count.

    Columns: ``sku``, ``at`` (the complaint that closed the window), ``complaints``,
    ``baseline`` (usual complaints per window), ``rule`` (``count`` / ``rate``)."""
    cfg = get_settings().crisis
    now = now or utcnow()
    window = timedelta(hours=cfg.spike_window_hours)
    scan_start = now - timedelta(hours=cfg.spike_scan_hours)
    base_start = scan_start - timedelta(days=cfg.spike_baseline_days)
    recent = read(
        bind,
        "SELECT sku, created_at FROM feedback WHERE kind = 'complaint' AND sku IS NOT NULL "
        "AND created_at > :a AND created_at <= :b",
        {"a": scan_start - window, "b": now},
        parse_dates=["created_at"],
    )
    empty = pd.DataFrame({"sku": pd.Series(dtype=object), "at": pd.Series(dtype="datetime64[us]"),
                          "complaints": pd.Series(dtype=int), "baseline": pd.Series(dtype=float),
                          "rule": pd.Series(dtype=object)})
    if recent.empty:
        return empty
    base = read(
        bind,
        "SELECT sku, COUNT(*) AS n FROM feedback WHERE kind = 'complaint' AND sku IS NOT NULL "
        "AND created_at > :a AND created_at <= :b GROUP BY sku",
        {"a": base_start, "b": scan_start - window},
    )
    windows_in_baseline = max(cfg.spike_baseline_days * 24.0 / cfg.spike_window_hours, 1.0)

    recent = recent.dropna(subset=["created_at"]).sort_values(["sku", "created_at"], kind="stable")
    recent["one"] = 1
    rolled = (
        recent.set_index("created_at")
        .groupby("sku", sort=False)["one"]
        .rolling(pd.Timedelta(window))
        .sum()
        .reset_index()
        .rename(columns={"created_at": "at", "one": "complaints"})
    )
    rolled = rolled[rolled["at"] > scan_start]
    # several complaints at the same instant: keep the window's full count once
    rolled = rolled.groupby(["sku", "at"], as_index=False)["complaints"].max()
    rolled["complaints"] = rolled["complaints"].astype(int)
    rolled = rolled.merge(base, on="sku", how="left")
    rolled["baseline"] = rolled["n"].fillna(0).astype(float) / windows_in_baseline
    by_count = rolled["complaints"] >= cfg.spike_complaints
    by_rate = (rolled["complaints"] >= cfg.spike_rate_min_complaints) & (
        rolled["complaints"] >= cfg.spike_rate_factor * rolled["baseline"]
    )
    hot = rolled[by_count | by_rate].copy()
    if hot.empty:
        return empty
    hot["rule"] = np.where(by_count[hot.index], "count", "rate")
    return hot[["sku", "at", "complaints", "baseline", "rule"]].reset_index(drop=True)


def record_spikes(conn: Connection, hot: pd.DataFrame, now: datetime | None = None) -> pd.DataFrame:
    """Fold hot moments into spikes (``complaint_spikes``). Returns the *new* spikes.

    Moments within the cooldown of a SKU's latest spike extend it (no new row); a moment
    further away starts a new spike. Idempotent: rescanning the same moments changes nothing."""
    cfg = get_settings().crisis
    now = now or utcnow()
    if hot.empty:
        return hot.iloc[0:0]
    cooldown = pd.Timedelta(hours=cfg.spike_cooldown_hours)
    last = read(
        conn,
        "SELECT s.sku, s.first_hot_at, s.last_hot_at, s.peak_complaints FROM complaint_spikes s "
        "JOIN (SELECT sku, MAX(first_hot_at) AS m FROM complaint_spikes GROUP BY sku) x "
        "ON x.sku = s.sku AND x.m = s.first_hot_at",
        parse_dates=["first_hot_at", "last_hot_at"],
    )
    h = hot.merge(last, on="sku", how="left")
    # moments inside an already recorded spike are old news
    h = h[h["last_hot_at"].isna() | (h["at"] > h["last_hot_at"])].copy()
    if h.empty:
        return hot.iloc[0:0]
    h = h.sort_values(["sku", "at"], kind="stable")
    prev = h.groupby("sku")["at"].shift(1)
    prev = prev.fillna(h["last_hot_at"])  # the first new moment compares with the recorded spike
    gap = h["at"] - prev
    h["new_session"] = prev.isna() | (gap > cooldown)
    h["session"] = h.groupby("sku")["new_session"].cumsum()
    # session 0 = continuation of the recorded spike (only when the SKU has one and the
    # first new moment is within the cooldown)
    cont = h[h["session"] == 0]
    if not cont.empty:
        ext = cont.groupby("sku").agg(last_hot_at_new=("at", "max"), peak=("complaints", "max")).reset_index()
        ext = ext.merge(last[["sku", "first_hot_at", "peak_complaints"]], on="sku")
        for r in ext.itertuples(index=False):  # one row per SKU (a handful), not per customer
            execute(
                conn, (
                    "UPDATE complaint_spikes SET last_hot_at = :l, peak_complaints = :p "
                    "WHERE sku = :s AND first_hot_at = :f"
                ),
                {"l": r.last_hot_at_new.to_pydatetime(), "p": int(max(r.peak, r.peak_complaints)),
                 "s": r.sku, "f": r.first_hot_at.to_pydatetime()},
            )
    fresh = h[h["session"] > 0]
    if fresh.empty:
        return hot.iloc[0:0]
    peak_idx = fresh.groupby(["sku", "session"])["complaints"].idxmax()
    peaks = fresh.loc[peak_idx, ["sku", "session", "complaints", "baseline", "rule"]]
    spans = fresh.groupby(["sku", "session"]).agg(first_hot_at=("at", "min"), last_hot_at=("at", "max")).reset_index()
    new = spans.merge(peaks, on=["sku", "session"]).rename(columns={"complaints": "peak_complaints"})
    new["window_hours"] = float(cfg.spike_window_hours)
    new["detected_at"] = now
    rows = new[["sku", "first_hot_at", "last_hot_at", "peak_complaints", "window_hours", "rule", "baseline", "detected_at"]]
    for rec in rows.to_dict("records"):  # one row per new spike
        rec = {k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else v) for k, v in rec.items()}
        rec["peak_complaints"] = int(rec["peak_complaints"])
        rec["baseline"] = float(rec["baseline"])
        execute(
            conn, (
                "INSERT INTO complaint_spikes (sku, first_hot_at, last_hot_at, peak_complaints, window_hours, rule, baseline, detected_at) "
                "VALUES (:sku, :first_hot_at, :last_hot_at, :peak_complaints, :window_hours, :rule, :baseline, :detected_at) "
                "ON CONFLICT (sku, first_hot_at) DO NOTHING"
            ),
            rec,
        )
    return rows.reset_index(drop=True)


def spike_event_id(sku: str, first_hot_at: datetime) -> uuid.UUID:
    """Deterministic event id: a re-emission after a crash is the same event."""
    return uuid.uuid5(_NS, f"{sku}|{pd.Timestamp(first_hot_at).isoformat()}")


def prefect_emit(event: str, resource: dict, payload: dict, id: uuid.UUID):
    from prefect.events import emit_event

    return emit_event(event=event, resource=resource, payload=payload, id=id)


def emit_pending(engine: Engine | None = None, emit: Callable | None = None) -> list[dict]:
    """Emit every recorded spike not emitted yet, once; returns the payloads emitted."""
    engine = engine or get_engine()
    emit = emit or prefect_emit
    pending = read(
        engine,
        "SELECT sku, first_hot_at, peak_complaints, window_hours, rule, baseline FROM complaint_spikes "
        "WHERE emitted_at IS NULL ORDER BY first_hot_at, sku",
        parse_dates=["first_hot_at"],
    )
    out = []
    for r in pending.itertuples(index=False):  # one per spike
        payload = {
            "skus": [r.sku],
            "complaints": int(r.peak_complaints),
            "window_hours": float(r.window_hours),
            "rule": r.rule,
            "usual_per_window": round(float(r.baseline or 0), 3),
            "first_hot_at": r.first_hot_at.isoformat(),
        }
        ev = emit(
            event=EVENT,
            resource={"prefect.resource.id": f"userops.sku.{r.sku}", "prefect.resource.name": str(r.sku)},
            payload=payload,
            id=spike_event_id(r.sku, r.first_hot_at),
        )
        if ev is None:
            from userops.i18n import t

            log.warning("%s", t("log.crisis.spike_pending", sku=r.sku))
            continue
        with engine.begin() as conn:
            execute(
                conn, ("UPDATE complaint_spikes SET emitted_at = :t WHERE sku = :s AND first_hot_at = :f AND emitted_at IS NULL"),
                {"t": utcnow(), "s": r.sku, "f": r.first_hot_at.to_pydatetime()},
            )
        out.append(payload)
    return out


def check_spikes(engine: Engine | None = None, now: datetime | None = None, emit: Callable | None = None) -> dict:
    """Detect, record and emit. Returns figures for the monitor / nightly summary."""
    engine = engine or get_engine()
    now = now or utcnow()
    with engine.begin() as conn:
        hot = detect_hot(conn, now)
        new = record_spikes(conn, hot, now)
    emitted = emit_pending(engine, emit)
    return {
        "hot_skus": sorted(hot["sku"].unique().tolist()) if not hot.empty else [],
        "new_spikes": new["sku"].tolist() if not new.empty else [],
        "emitted": emitted,
    }


def link_spikes(conn: Connection, skus: list[str], incident_id: str) -> int:
    """Remember which incident a SKU's unlinked spikes opened or joined."""
    n = 0
    for sku in skus:
        n += execute(
            conn, ("UPDATE complaint_spikes SET incident_id = :i WHERE sku = :s AND incident_id IS NULL"),
            {"i": incident_id, "s": sku},
        ).rowcount or 0
    return n


@task(name="complaint-spike-check", cache_policy=NO_CACHE)
def check_spikes_task(now: datetime | None = None) -> dict:
    return check_spikes(now=now)
