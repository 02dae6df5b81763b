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


# the decisions that promote the candidate (a champion built on an older feature set cannot be
# measured on today's features: the registry replaces it without a comparison)
PROMOTING = ("first", "yes", "champion_unmeasurable", "champion_old_features")


def promotion_decision(
    candidate_metrics: dict | None,
    champion_metrics: dict | None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> dict:
    """The rule's decision as a code and its figures: ``first`` (no champion), ``unmeasurable``
    (the candidate has no ROC AUC or Brier), ``champion_unmeasurable``, ``yes`` or ``no``
    (with ``auc_worse`` / ``brier_worse``, what exceeds the tolerance). What the registry
    stores; ``models.registry.reason_text`` words it in any language."""
    if not champion_metrics:
        return {"code": "first"}
    c_auc, c_brier = _num(candidate_metrics, "roc_auc"), _num(candidate_metrics, "brier")
    h_auc, h_brier = _num(champion_metrics, "roc_auc"), _num(champion_metrics, "brier")
    if c_auc is None or c_brier is None:
        return {"code": "unmeasurable"}
    if h_auc is None or h_brier is None:
        return {"code": "champion_unmeasurable"}
    out = {"code": "yes", "c_auc": c_auc, "h_auc": h_auc, "c_brier": c_brier, "h_brier": h_brier, "tol": float(tolerance)}
    if c_auc < h_auc - tolerance:  # ranking worse
        out["auc_worse"] = h_auc - c_auc
    if c_brier > h_brier + tolerance:  # probabilities worse
        out["brier_worse"] = c_brier - h_brier
    if "auc_worse" in out or "brier_worse" in out:
        out["code"] = "no"
    return out


def decide_promotion(
    candidate_metrics: dict | None,
    champion_metrics: dict | None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[bool, str]:
    """(promote, reason): reason is one sentence for an operator (en)."""
    from models.registry import reason_text  # the decision's words live with the registry's texts

    decision = promotion_decision(candidate_metrics, champion_metrics, tolerance)
    return decision["code"] in PROMOTING, reason_text(decision, "en")
