"""Model registry: round trip, promotion both ways on the same holdout, weekly retrain."""
from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import numpy as np
import pandas as pd

from models import registry, scoring
from models.train import evaluate_model
from tests.churn.conftest import AS_OF
from userops.db import read_frame


def _frames(engine, as_of=AS_OF):
    with engine.connect() as conn:
        return scoring.load_frames(conn, as_of)


def _worse(model, frames):
    """The same model with its logistic coefficients reversed: ranks customers backwards."""
    bad = dataclasses.replace(model, coef=-model.coef, version=model.version[:-8] + "badbadba")
    bad.metrics = evaluate_model(bad, frames.orders, frames.customers, bad.eval_cutoff, bad.horizon_days)
    return bad


def test_round_trip(loaded):
    frames = _frames(loaded)
    model = scoring.train(frames)
    with loaded.begin() as conn:
        decision = registry.register(conn, model, frames.orders, frames.customers, trained_as_of=AS_OF)
    assert decision.promoted and decision.status == "champion"
    registry._CACHE.clear()  # force reading the artifact back from the warehouse
    with loaded.connect() as conn:
        back = registry.load_champion(conn)
        row = read_frame(conn, "SELECT * FROM model_versions")
    assert back is not model and back.version == model.version
    feats = scoring.build_features(frames.orders, frames.customers, frames.cutoff)
    np.testing.assert_allclose(back.predict_proba(feats), model.predict_proba(feats))
    r = row.iloc[0]
    assert r["status"] == "champion" and r["horizon_days"] == 90
    # shop-local days: the holdout's labels [T, T + 90 days) end where scoring starts (the end
    # of AS_OF, 2026-11-21 00:00 in Asia/Shanghai), so T is 2026-08-23 and training's T - 90
    assert str(r["eval_cutoff"])[:10] == "2026-08-23" and str(r["train_cutoff"])[:10] == "2026-05-25"
    assert model.eval_cutoff + timedelta(days=90) == frames.cutoff  # every label day used, none unobserved
    assert model.version.startswith("churn-20260525-h90-")  # named by the same shop-local day
    metrics = json.loads(r["metrics"])
    for k in ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile"):
        assert isinstance(metrics[k], float), k
    assert 0.5 < metrics["roc_auc"] <= 1
    assert json.loads(r["features"]) == list(model.model_features)
    # stored as a code (no words), worded when read: the operator's language (zh-CN) here
    assert json.loads(r["reason"]) == {"code": "first"}
    assert registry.reason_text(r["reason"]) == decision.text and "首个训练的模型成为冠军模型" in decision.text
    # registering the same model again changes nothing
    with loaded.begin() as conn:
        again = registry.register(conn, model, frames.orders, frames.customers)
    assert not again.new and again.status == "champion"


def test_worse_candidate_stays_challenger(loaded):
    frames = _frames(loaded)
    good = scoring.train(frames)
    bad = _worse(good, frames)
    with loaded.begin() as conn:
        registry.register(conn, good, frames.orders, frames.customers, trained_as_of=AS_OF)
        d = registry.register(conn, bad, frames.orders, frames.customers, trained_as_of=AS_OF, lang="en")
    assert not d.promoted and d.status == "challenger"
    assert d.previous_champion == good.version
    assert "Kept as challenger" in d.reason and "ROC AUC is lower" in d.reason
    assert "ROC AUC" in d.text
    # the champion was re-evaluated on the candidate's holdout
    assert d.champion_metrics["roc_auc"] > d.metrics["roc_auc"] + 0.1
    with loaded.connect() as conn:
        vs = registry.versions(conn, lang="en").set_index("version")
    assert vs.loc[good.version, "status"] == "champion"
    assert vs.loc[bad.version, "status"] == "challenger"
    assert vs.loc[bad.version, "reason"] == d.text  # worded in the reader's language (en here)
    assert "ROC AUC is lower" in vs.loc[bad.version, "reason"] and vs.loc[bad.version, "reason_data"]["code"] == "no"
    assert vs.loc[bad.version, "champion_metrics"]["roc_auc"] == d.champion_metrics["roc_auc"]


def test_better_candidate_replaces_champion(loaded):
    frames = _frames(loaded)
    good = scoring.train(frames)
    bad = _worse(good, frames)
    with loaded.begin() as conn:
        registry.save(conn, bad, "champion", "test: a weak champion", trained_as_of=AS_OF)
        d = registry.register(conn, good, frames.orders, frames.customers, trained_as_of=AS_OF, lang="zh-CN")
    assert d.promoted and d.status == "champion" and d.previous_champion == bad.version
    assert "已晋升" in d.text
    with loaded.connect() as conn:
        vs = registry.versions(conn).set_index("version")
        assert registry.load_champion(conn).version == good.version
    assert vs.loc[good.version, "status"] == "champion"
    assert vs.loc[bad.version, "status"] == "retired"
    assert vs.loc[bad.version, "reason"].startswith(f"已退役：由 {good.version} 取代。已晋升")
    assert (vs["status"] == "champion").sum() == 1


def test_retrain_weekly(loaded, monkeypatch):
    with loaded.begin() as conn:
        assert scoring.needs_training(conn, AS_OF) == (True, "no_champion")
    first = scoring.retrain(AS_OF, loaded)
    assert first["promoted"] and first["status"] == "champion"
    with loaded.connect() as conn:
        assert scoring.needs_training(conn, AS_OF + timedelta(days=6)) == (False, "fresh")
        assert scoring.needs_training(conn, AS_OF + timedelta(days=7)) == (True, "stale")
    # a week later on the same data: a new window, a new model, promoted or kept with a reason
    later = scoring.retrain(AS_OF + timedelta(days=7), loaded)
    assert later["version"] != first["version"] and later["new"]
    assert later["champion_metrics"] is not None  # compared on the new holdout
    assert later["reason"].startswith("Promoted" if later["promoted"] else "Kept as challenger")
    with loaded.connect() as conn:
        vs = registry.versions(conn)
    assert len(vs) == 2 and (vs["status"] == "champion").sum() == 1


def test_a_champion_on_an_older_feature_set_is_replaced_and_the_reason_says_so(loaded, monkeypatch):
    """A champion built on another feature set cannot be measured on today's features: the new
    model replaces it, and the reason names that champion (it said "there is no champion yet")."""
    frames = _frames(loaded)
    old = scoring.train(frames)
    with loaded.begin() as conn:
        registry.register(conn, old, frames.orders, frames.customers, trained_as_of=AS_OF)
    new = dataclasses.replace(old, version=old.version[:-8] + "newfeats")
    monkeypatch.setattr(registry, "features_compatible", lambda model: model.version != old.version)
    with loaded.begin() as conn:
        decision = registry.register(conn, new, frames.orders, frames.customers, trained_as_of=AS_OF)
    assert decision.promoted and decision.status == "champion"
    assert old.version in decision.text and "旧的特征集" in decision.text and "没有冠军模型" not in decision.text, decision.text
    with loaded.connect() as conn:
        rows = registry.versions(conn, "en").set_index("version")
    assert rows.loc[new.version, "reason"].startswith(f"Promoted: the champion {old.version} was built on an older feature set")
    assert rows.loc[old.version, "status"] == "retired" and new.version in rows.loc[old.version, "reason"]
