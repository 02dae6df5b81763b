"""The nightly churn stage and the retrain flow inside Prefect."""
from __future__ import annotations

from datetime import timedelta

import pytest
from prefect import flow

from tests.churn.conftest import AS_OF
from userops.db import read_frame


@pytest.mark.xdist_group("prefect")
def test_nightly_stage_in_a_flow(prefect_server, loaded):
    from flows.churn import retrain_churn_model, score_churn
    from flows.stages import NIGHTLY_STAGES

    names = [n for n, _ in NIGHTLY_STAGES]
    # right after health (it reads the aggregate the tags stage refreshed), before campaigns
    # (their audiences read the at-risk overlay) and the digest
    assert names == ["quarantine-report", "tags", "health", "churn", "campaigns", "crisis", "digest"]

    @flow(name="test-nightly-churn")
    def parent():
        return dict(NIGHTLY_STAGES)["churn"](as_of=AS_OF, run_id="test-run")

    out = parent()
    assert out["training"]["why"] == "no_champion" and out["training"]["promoted"]
    assert out["scoring"]["customers"] > 2500 and out["drift"]["breach"] is False
    assert out["summary"] and all(isinstance(x, str) for x in out["summary"])
    with loaded.connect() as conn:
        n = conn.exec_driver_sql("SELECT COUNT(*) FROM churn_scores").scalar()
        mv = read_frame(conn, "SELECT version, status FROM model_versions")
        dc = conn.exec_driver_sql("SELECT COUNT(*) FROM drift_checks").scalar()
    assert n == out["scoring"]["customers"] and list(mv["status"]) == ["champion"] and dc == 1

    # next night: the champion is fresh, no training
    nxt = score_churn(as_of=AS_OF + timedelta(days=1), run_id="test-run-2")
    assert "training" not in nxt and nxt["model_version"] == out["model_version"]

    # on demand retrain says whether it promoted and why
    from datetime import datetime, timezone

    started = datetime.now(timezone.utc)  # the session's server holds the other database's artifact too
    res = retrain_churn_model(as_of=AS_OF + timedelta(days=7))
    assert res["status"] in ("champion", "challenger") and res["reason"] and res["reason_text"]
    assert res["promoted"] == (res["status"] == "champion")
    # the decision is published as the churn-model artifact: this retrain's, with both models' metrics
    from prefect.artifacts import Artifact

    art = Artifact.get("churn-model")
    assert art is not None and art.created >= started and res["version"] in art.data and res["reason_text"] in art.data
    # the figures in the operator's words, each with its definition, beside the champion's
    assert f"| ROC AUC | {res['metrics']['roc_auc']:.4f} | {res['champion_metrics']['roc_auc']:.4f} | ROC AUC 衡量区分流失与留存客户的能力" in art.data
    assert "roc_auc" not in art.data and "lift_top_decile" not in art.data
    assert art.description.startswith(f"流失模型 {res['version']}：")
