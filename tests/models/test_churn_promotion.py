"""Champion/challenger rule."""

from __future__ import annotations

from models.promotion import decide_promotion

CHAMPION = {"roc_auc": 0.80, "brier": 0.110}


def test_first_model_is_promoted():
    promote, reason = decide_promotion({"roc_auc": 0.6, "brier": 0.2}, None)
    assert promote and "no champion" in reason


def test_candidate_that_does_not_lose_is_promoted():
    promote, reason = decide_promotion({"roc_auc": 0.798, "brier": 0.112}, CHAMPION, tolerance=0.005)
    assert promote
    assert reason.startswith("Promoted") and "0.798" in reason and "0.800" in reason


def test_lower_auc_beyond_tolerance_keeps_challenger():
    promote, reason = decide_promotion({"roc_auc": 0.79, "brier": 0.100}, CHAMPION, tolerance=0.005)
    assert not promote
    assert "ROC AUC is lower by 0.010" in reason and "Brier" in reason


def test_worse_brier_beyond_tolerance_keeps_challenger():
    promote, reason = decide_promotion({"roc_auc": 0.85, "brier": 0.120}, CHAMPION, tolerance=0.005)
    assert not promote
    assert "Brier score is worse by 0.010" in reason and "ROC AUC is lower" not in reason


def test_tolerance_is_the_boundary():
    assert decide_promotion({"roc_auc": 0.795, "brier": 0.115}, CHAMPION, tolerance=0.005)[0]
    assert not decide_promotion({"roc_auc": 0.7949, "brier": 0.110}, CHAMPION, tolerance=0.005)[0]
    assert not decide_promotion({"roc_auc": 0.80, "brier": 0.1151}, CHAMPION, tolerance=0.005)[0]


def test_unmeasurable_candidate_is_not_promoted():
    promote, reason = decide_promotion({"roc_auc": None, "brier": 0.1}, CHAMPION)
    assert not promote and "cannot be compared" in reason
