"""Churn steps for the flows: plain functions live in ``models.scoring`` / ``models.registry``;
these are the thin Prefect task wrappers (``NO_CACHE``: they pass DataFrames around)."""
from __future__ import annotations

from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from models import registry, scoring
from userops.db import get_engine
from userops.i18n import t


@task(name="churn-load-frames", cache_policy=NO_CACHE, task_run_name="churn-load-{as_of}")
def load_frames_task(as_of: date) -> scoring.Frames:
    with get_engine().connect() as conn:
        return scoring.load_frames(conn, as_of)


@task(name="churn-needs-training", cache_policy=NO_CACHE)
def needs_training_task(as_of: date) -> tuple[bool, str]:
    with get_engine().connect() as conn:
        return scoring.needs_training(conn, as_of)


@task(name="churn-train-and-register", cache_policy=NO_CACHE)
def train_task(frames: scoring.Frames) -> dict:
    """Train at the latest complete window; promote or keep as challenger (one transaction);
    the outcome is published as the ``churn-model`` artifact."""
    from tasks.artifacts import publish_churn_model

    out = scoring.retrain(frames.as_of, frames=frames)
    if out.get("version") and out.get("status"):
        out["artifact_key"] = publish_churn_model(out)
    return out


@task(name="churn-score", cache_policy=NO_CACHE)
def score_task(as_of: date, frames: scoring.Frames | None = None) -> dict:
    """Score every customer with the champion from ``customer_aggregates`` (the orders only
    as a fallback, ``frames`` if training read them already), check drift, apply the at-risk
    overlay (one transaction: the overlay never sees half-written scores)."""
    with get_engine().begin() as conn:
        model = registry.load_champion(conn)
        if model is None:
            return {"scored": 0, "skipped": t("churn.no_model")}
        scored = scoring.score(conn, scoring.load_features(conn, as_of, model, frames), model)
        out = {"model_version": scored.model_version, "scoring": scored.figures, "seconds": scored.seconds}
        out["drift"] = scoring.drift_check(conn, scored, model)
        out["overlay"] = scoring.apply_overlay(conn, as_of)
    return out
