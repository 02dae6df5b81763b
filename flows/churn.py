"""Churn model flows: the nightly scoring stage and the weekly (or on-demand) retrain.

    score_churn:  train first if there is no champion (or it is older than
                  churn.retrain_every_days; only then are the orders read) -> score every
                  customer with the champion from customer_aggregates (maintained by the
                  tags stage that runs before) -> drift check (PSI vs the training profile;
                  a breach is a health breach + alert) -> at-risk overlay on the lifecycle tags
    retrain_churn_model: train on the latest complete window -> champion or challenger, and why

Scale-out: with ``USEROPS_TASK_RUNNER=dask`` the scoring itself runs as a few Prefect tasks,
one per partition of customers (stable hash of customer_id), on prefect-dask's
DaskTaskRunner (``userops/runners.py``); the rows written are the same. By default the
stage scores in one piece in the flow's process.
"""
from __future__ import annotations

from datetime import date
from typing import Annotated

from prefect import flow, get_run_logger

from flows import texts  # noqa: F401  (registers the Run form's words)
from models.messages import localized
from tasks.churn import high_risk_by_stage_task, load_frames_task, needs_training_task, score_task, summary_lines, train_task
from userops import run_names
from userops.clock import shop_today
from userops.forms import param
from userops.i18n import t
from userops.runners import dask_enabled, default_partitions, partition_runner


@flow(name="score-churn", log_prints=True)
def score_churn(as_of: date | None = None, run_id: str | None = None) -> dict:
    """Nightly churn scoring of every customer for ``as_of`` (default: today in the shop)."""
    logger = get_run_logger()
    as_of = as_of or shop_today()
    result: dict = {"as_of": str(as_of)}
    want, why = needs_training_task(as_of)
    frames = None
    if want:  # training needs point-in-time features at past cutoffs: it reads the orders
        frames = load_frames_task(as_of)
        result["read_seconds"] = frames.seconds
        try:
            result["training"] = {**train_task(frames), "why": why}
            logger.info("%s", _model_line(result["training"]))
        except ValueError as exc:  # not enough history for a complete training window yet
            result["training"] = {"error": localized(exc), "why": why}
            logger.warning("%s", t("churn.train.failed", error=result["training"]["error"]))
    if dask_enabled():
        from tasks.churn_partitions import score_partitioned

        with partition_runner() as runner:
            result.update(score_partitioned(as_of, frames, runner, default_partitions()))
        if result.get("scoring"):
            result["high_risk_by_stage"] = high_risk_by_stage_task()
    else:
        result.update(score_task(as_of, frames))
    result["summary"] = summary_lines(result)
    for line in result["summary"]:
        logger.info(line)
    return result


@flow(name="retrain-churn-model", log_prints=True, flow_run_name=run_names.retrain_churn_model)
def retrain_churn_model(as_of: Annotated[date | None, param("param.retrain.as_of")] = None) -> dict:
    """Train a new churn model on the latest complete window; it becomes champion only if it
    does not lose to the current champion on the same holdout. The result says why.

    The Run form shows the catalogue's ``param.retrain.*`` (flows/texts.py) in the shop's language.

    Args:
        as_of: The day to train as of, YYYY-MM-DD (labels need a full horizon before it).
            Leave empty for today in the shop's timezone.
    """
    logger = get_run_logger()
    as_of = as_of or shop_today()
    frames = load_frames_task(as_of)
    out = train_task(frames)
    logger.info("%s", _model_line(out))
    out["summary"] = [out["reason_text"]]
    return out


def _model_line(out: dict) -> str:
    """A training's outcome for the run log, in the operator's language: the version, champion
    or challenger, and why (``reason_text``; ``reason`` is the registry's English sentence)."""
    status = out.get("status")
    return t("log.churn.model", version=out.get("version") or "—",
             status=t(f"model.status.{status}") if status else "—",
             reason=out.get("reason_text") or out.get("reason") or "")
