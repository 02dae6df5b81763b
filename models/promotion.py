"""Champion/challenger rule.

A candidate "does not lose to the champion on the same holdout" when, with both models'
metrics computed on the candidate's holdout (features at T, labels [T, T+H)):

    candidate ROC AUC >= champion ROC AUC - tolerance      (ranking not worse)
    candidate Brier   <= champion Brier   + tolerance      (probabilities not worse)

Both must hold.  The first model (no champion) is always promoted.  A candidate whose
metrics are missing (e.g. a holdout with one class only) is never promoted over an
existing champion.  The default tolerance 0.005 absorbs run-to-run noise without letting
a clearly worse model through.
"""

from __future__ import annotations

DEFAULT_TOLERANCE = 0.005


def _num(metrics: dict | None, key: str) -> float | None:
    if not metrics:
        return None
    v = metrics.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if v == v else None  # NaN -> None


def decide_promotion(
    candidate_metrics: dict | None,
    champion_metrics: dict | None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[bool, str]:
    """(promote, reason): reason is one sentence for an operator."""
    if not champion_metrics:
        return True, "Promoted: there is no champion yet, so the first trained model becomes champion."

    c_auc, c_brier = _num(candidate_metrics, "roc_auc"), _num(candidate_metrics, "brier")
    h_auc, h_brier = _num(champion_metrics, "roc_auc"), _num(champion_metrics, "brier")
    if c_auc is None or c_brier is None:
        return False, "Kept as challenger: the candidate has no ROC AUC or Brier score on the holdout, so it cannot be compared."
    if h_auc is None or h_brier is None:
        return True, "Promoted: the champion has no ROC AUC or Brier score on this holdout, so the measurable candidate replaces it."

    auc_ok = c_auc >= h_auc - tolerance
    brier_ok = c_brier <= h_brier + tolerance
    figures = (
        f"ROC AUC {c_auc:.3f} vs {h_auc:.3f}, Brier {c_brier:.3f} vs {h_brier:.3f} "
        f"(candidate vs champion, tolerance {tolerance:g})"
    )
    if auc_ok and brier_ok:
        return True, f"Promoted: the candidate does not lose to the champion on the same holdout: {figures}."
    problems = []
    if not auc_ok:
        problems.append(f"its ROC AUC is lower by {h_auc - c_auc:.3f}")
    if not brier_ok:
        problems.append(f"its Brier score is worse by {c_brier - h_brier:.3f}")
    return False, f"Kept as challenger: {' and '.join(problems)}, more than the tolerance {tolerance:g}: {figures}."
