"""Churn steps for the flows: plain functions live in ``models.scoring`` / ``models.registry``;
these are the thin Prefect task wrappers (``NO_CACHE``: they pass DataFrames around)."""
from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE

from models import registry, scoring
from userops.db import get_engine
from userops.i18n import t

# the words (churn.high_split*) are registered with the tags' (tasks/tags.py: a catalogue module)
_STAGE_GROUP = {"new": "at_risk", "active": "at_risk", "loyal": "at_risk", "silent": "gone", "churned": "gone", "prospect": "prospect"}


def high_risk_by_stage(conn) -> dict:
    """The champion's high-risk customers counted by lifecycle stage (``untagged``: no tag
    row yet): new/active/loyal ones are the at-risk overlay, the rest are prospects or
    already silent/churned. One grouped query."""
    rows = conn.execute(sa.text(
        "SELECT t.lifecycle_stage, COUNT(*) FROM churn_scores s "
        "JOIN model_versions v ON v.version = s.model_version AND v.status = 'champion' "
        "LEFT JOIN tags t ON t.customer_id = s.customer_id "
        "WHERE s.risk_band = 'high' GROUP BY t.lifecycle_stage"
    )).fetchall()
    out = {"at_risk": 0, "gone": 0, "prospect": 0, "untagged": 0}
    for stage, n in rows:
        out[_STAGE_GROUP.get(stage, "untagged")] += int(n)
    return out


def high_split_lines(result: dict, lang: str | None = None) -> list[str]:
    """The operator's line under the scored line: how many of the high risk are still
    new/active/loyal (actionable, the at-risk overlay) and how many are not."""
    sp = result.get("high_risk_by_stage")
    if not sp:
        return []
    high = sum(sp.values())
    line = t("churn.high_split", lang, high=f"{high:,}", at_risk=f"{sp['at_risk']:,}", gone=f"{sp['gone']:,}", prospect=f"{sp['prospect']:,}")
    if sp.get("untagged"):
        line += t("churn.high_split.untagged", lang, n=f"{sp['untagged']:,}")
    return [line]


def summary_lines(result: dict, lang: str | None = None) -> list[str]:
    """``models.scoring.summary_lines`` with the high-risk split right after the scored line
    (before the drift line, the last one when there is a drift check)."""
    lines = scoring.summary_lines(result, lang)
    extra = high_split_lines(result, lang)
    if extra:
        at = len(lines) - (1 if result.get("drift") else 0)
        lines[at:at] = extra
    return lines


@task(name="churn-high-risk-by-stage", cache_policy=NO_CACHE)
def high_risk_by_stage_task() -> dict:
    with get_engine().connect() as conn:
        return high_risk_by_stage(conn)


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
        out["high_risk_by_stage"] = high_risk_by_stage(conn)
    return out
