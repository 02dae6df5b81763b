"""Churn scoring in partitions of customers: the scale-out path of the nightly scoring stage.

Used by ``flows/churn.py:score_churn`` when ``USEROPS_TASK_RUNNER=dask`` (see
``userops/runners.py``); by default the stage scores in one piece (``tasks.churn.score_task``).

    night features     read in one piece, exactly as the default path reads them
                       (``models.scoring.load_features``: customer_aggregates, or the orders)
    split_features     cut by a stable hash of customer_id into a few partitions
    score_partition    probability -> band -> reasons of one partition (the model's own
                       predict_proba / explain and ``models.scoring.encode_reasons``; no DB),
                       one Prefect task each on the configured runner (Dask)
    write              the partial results back together, then what ``models.scoring.score``
                       does after scoring: replace churn_scores, drift check, at-risk overlay
                       (one transaction)

Every scoring step is per customer (the model row by row, reasons from that row), so the
rows written do not depend on the partitioning: ``tests/scaleout`` scores the same
warehouse both ways and compares churn_scores row for row.
"""
from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import registry, scoring
from models.drift import MAIN_FEATURES
from userops.clock import utcnow
from userops.db import bulk_upsert, get_engine, is_postgres
from userops.i18n import t
from userops.runners import partition_labels, submit_partitions

# feature columns the drift check and the figures read after scoring (the rest stays on the worker)
_KEEP = list(dict.fromkeys([*MAIN_FEATURES, "has_orders"]))


def night_features(conn, as_of: date, model, frames: scoring.Frames | None):
    """(features indexed by dense code, code -> customer_id, seconds, extra figures): what the
    default path scores, read the same way (``models.scoring.load_features``)."""
    night = scoring.load_features(conn, as_of, model, frames)
    extra = {"source": night.source}
    if getattr(night, "why", ""):
        extra["source_why"] = night.why
    return night.features, np.asarray(night.ids, dtype=object), dict(night.seconds), extra


def split_features(features: pd.DataFrame, ids: np.ndarray, n: int) -> list[dict]:
    """``features`` (index: code into ``ids``) cut into ``n`` partitions by a stable hash of
    the stored customer_id; rows keep their order; each partition carries its own ids."""
    codes = features.index.to_numpy()
    labels = partition_labels(pd.Series(ids[codes], dtype=object), n)
    parts = []
    for i in range(max(1, n)):
        sel = labels == i
        parts.append({"features": features[sel], "ids": ids[codes[sel]], "partition": i})
    return parts


def score_partition(features: pd.DataFrame, ids: np.ndarray, model, partition: int = 0) -> pd.DataFrame:
    """One partition scored: customer_id, probability (6 decimals, as stored), risk_band,
    reasons (stored JSON), ``raw_probability`` and the drift features. No database."""
    t0 = time.perf_counter()
    prob = model.predict_proba(features)
    explained = model.explain(features, prob, cuts=scoring.band_cuts())
    reasons = scoring.encode_reasons(explained)
    out = pd.DataFrame(
        {
            "customer_id": np.asarray(ids, dtype=object),
            "probability": np.round(prob, 6),
            "risk_band": explained["risk_band"].to_numpy(dtype=object),
            "reasons": reasons,
            "raw_probability": np.asarray(prob, dtype=float),
        }
    )
    for col in _KEEP:
        if col in features.columns:
            out[col] = features[col].to_numpy()
    out.attrs["seconds"] = round(time.perf_counter() - t0, 2)
    return out


@task(name="churn-score-partition", cache_policy=NO_CACHE, task_run_name="churn-score-partition-{partition}")
def score_partition_task(features: pd.DataFrame, ids: np.ndarray, model, partition: int = 0) -> pd.DataFrame:
    return score_partition(features, ids, model, partition)


def write_partitioned_scores(conn, as_of: date, model, parts: list[pd.DataFrame], seconds: dict | None = None, extra: dict | None = None) -> dict:
    """The partial results written as ``models.scoring.score`` writes one piece (replace
    churn_scores in this transaction), then drift check and at-risk overlay.
    Returns what ``tasks.churn.score_task`` returns."""
    version = model.version
    t0 = time.perf_counter()
    used = [p for p in parts if len(p)] or parts[:1]
    allp = pd.concat(used, ignore_index=True) if len(used) > 1 else used[0].reset_index(drop=True)
    now = utcnow().replace(microsecond=0)
    out = pd.DataFrame(
        {
            "customer_id": allp["customer_id"].to_numpy(dtype=object),
            "model_version": version,
            "probability": allp["probability"].to_numpy(dtype=float),
            "risk_band": allp["risk_band"].to_numpy(dtype=object),
            "reasons": allp["reasons"].to_numpy(dtype=object),
            "scored_at": np.full(len(allp), np.datetime64(now, "us")),
            "as_of": as_of,
        }
    )
    stale = conn.execute(
        sa.text("SELECT COUNT(*) FROM churn_scores WHERE model_version <> :v OR as_of IS NULL OR as_of <> :d"),
        {"v": version, "d": as_of if is_postgres(conn) else as_of.isoformat()},
    ).scalar()
    # replace the table's contents in this transaction (as models.scoring does; kept here
    # rather than calling its internal writer, which is being reworked)
    conn.execute(sa.text("DELETE FROM churn_scores"))
    written = bulk_upsert(conn, "churn_scores", out, ["customer_id", "model_version"], on_conflict="error", chunk_rows=250_000)
    feats = allp[[c for c in _KEEP if c in allp.columns]]
    prob = allp["raw_probability"].to_numpy(dtype=float)
    scored = scoring.Scored(as_of, version, feats, prob, out["risk_band"].to_numpy(dtype=object))
    bands = out["risk_band"].value_counts()
    scored.seconds = {**(seconds or {}), "write": round(time.perf_counter() - t0, 2)}
    scored.figures = {  # type: ignore[attr-defined]
        "customers": int(written),
        "removed": int(stale or 0),
        "bands": {b: int(bands.get(b, 0)) for b in ("high", "medium", "low")},
        "no_orders": int((feats["has_orders"].to_numpy() <= 0).sum()) if "has_orders" in feats else 0,
        "mean_probability": float(np.mean(prob)) if len(prob) else None,
        **(extra or {}),
        "partitions": len(parts),
    }
    result = {"model_version": version, "scoring": scored.figures, "seconds": scored.seconds}
    result["drift"] = scoring.drift_check(conn, scored, model)
    result["overlay"] = scoring.apply_overlay(conn, as_of)
    return result


@task(name="churn-night-features", cache_policy=NO_CACHE)
def night_features_task(as_of: date, frames: scoring.Frames | None = None):
    """The champion and the night's features (as the default path reads them)."""
    with get_engine().connect() as conn:
        model = registry.load_champion(conn)
        if model is None:
            return None
        return (model, *night_features(conn, as_of, model, frames))


@task(name="churn-split-partitions", cache_policy=NO_CACHE)
def split_features_task(features: pd.DataFrame, ids: np.ndarray, n: int) -> list[dict]:
    return split_features(features, ids, n)


@task(name="churn-write-partitioned-scores", cache_policy=NO_CACHE)
def write_partitioned_scores_task(as_of: date, model, parts: list[pd.DataFrame], seconds: dict, extra: dict) -> dict:
    """Replace churn_scores, drift check, overlay: one transaction (the overlay never sees
    half-written scores)."""
    with get_engine().begin() as conn:
        return write_partitioned_scores(conn, as_of, model, parts, seconds, extra)


def score_partitioned(as_of: date, frames: scoring.Frames | None, runner, n_partitions: int) -> dict:
    """The scoring stage with the per-partition work on ``runner`` (started; see
    ``userops.runners.partition_runner``). Call it in a flow run (not inside a task: the
    running task's parameters would travel with every submission). ``frames``: the orders
    if training read them already (else the features come from customer_aggregates)."""
    as_of = pd.Timestamp(as_of).date()
    loaded = night_features_task(as_of, frames)
    if loaded is None:
        return {"scored": 0, "skipped": t("churn.no_model")}
    model, features, ids, seconds, extra = loaded
    parts = split_features_task(features, ids, n_partitions)
    del features
    t0 = time.perf_counter()
    results = submit_partitions(runner, score_partition_task, parts, model=model)
    seconds = {**seconds, "partitions": round(time.perf_counter() - t0, 2), "slowest_partition": max((r.attrs.get("seconds", 0) for r in results), default=0)}
    return write_partitioned_scores_task(as_of, model, results, seconds, extra)
