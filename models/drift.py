"""Population stability index (PSI) of features and of the score.

    PSI = sum over bins of (cur% - ref%) * ln(cur% / ref%)

Bins are the reference's quantiles (10 by default; duplicate edges from discrete features
are merged), plus one bin for missing values.  Empty bins get a small epsilon share so
PSI stays finite.  Rules of thumb: < 0.1 stable, 0.1-0.2 moderate, >= 0.2 breach
(``DEFAULT_THRESHOLD``).

A reference can be kept as a JSON-friendly *profile* (edges + shares per column), so the
nightly check does not need yesterday's raw sample: ``make_profile`` at training time,
``drift_report(profile, today)`` each night.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_THRESHOLD = 0.2
DEFAULT_BINS = 10
EPSILON = 1e-4

# The main features watched each night, besides the score.
MAIN_FEATURES: list[str] = [
    "recency_days",
    "frequency",
    "tenure_days",
    "monetary_mean",
    "window_orders",
    "mean_gap_days",
]


def _edges(ref: np.ndarray, bins: int) -> np.ndarray:
    finite = ref[np.isfinite(ref)]
    if len(finite) == 0:
        return np.array([])
    qs = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    return np.unique(qs)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of len(edges)+1 value bins plus a final missing-value bin."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    finite = np.isfinite(values)
    idx = np.searchsorted(edges, values[finite], side="right")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(float)
    counts = np.append(counts, float((~finite).sum()))
    return counts / n if n else counts


def _psi(ref_share: np.ndarray, cur_share: np.ndarray) -> float:
    r = np.clip(np.asarray(ref_share, dtype=float), EPSILON, None)
    c = np.clip(np.asarray(cur_share, dtype=float), EPSILON, None)
    return float(np.sum((c - r) * np.log(c / r)))


def psi(reference, current, bins: int = DEFAULT_BINS) -> float:
    """PSI of one variable between a reference sample and a current sample."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    edges = _edges(ref, bins)
    return _psi(_shares(ref, edges), _shares(cur, edges))


def make_profile(reference: pd.DataFrame, columns: list[str] | None = None, bins: int = DEFAULT_BINS) -> dict:
    """{column: {"edges": [...], "shares": [...], "n": int}} for later PSI checks."""
    columns = list(columns or reference.columns)
    profile = {}
    for col in columns:  # per column, not per customer
        ref = reference[col].to_numpy(dtype=float)
        edges = _edges(ref, bins)
        profile[col] = {"edges": edges.tolist(), "shares": _shares(ref, edges).tolist(), "n": int(len(ref))}
    return profile


def drift_report(
    reference: pd.DataFrame | dict,
    current: pd.DataFrame,
    columns: list[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    bins: int = DEFAULT_BINS,
) -> pd.DataFrame:
    """Per-column PSI and breach flag (psi >= threshold), worst first.

    ``reference`` is a DataFrame sample or a ``make_profile`` dict; ``current`` a
    DataFrame with the same columns (e.g. today's features plus a ``score`` column).
    """
    profile = reference if isinstance(reference, dict) else make_profile(reference, columns or list(reference.columns), bins)
    columns = [c for c in (columns or list(profile)) if c in profile and c in current.columns]
    rows = []
    for col in columns:
        p = profile[col]
        cur = _shares(current[col].to_numpy(dtype=float), np.asarray(p["edges"], dtype=float))
        value = _psi(p["shares"], cur)
        rows.append({"feature": col, "psi": value, "breach": bool(value >= threshold)})
    report = pd.DataFrame(rows, columns=["feature", "psi", "breach"])
    return report.sort_values("psi", ascending=False, ignore_index=True)


def drift_summary(report: pd.DataFrame, threshold: float = DEFAULT_THRESHOLD) -> dict:
    """{"breach": bool, "breached": [...], "max_psi": float, "psi": {feature: psi}, "message": str}."""
    breached = report.loc[report["breach"], "feature"].tolist()
    max_psi = float(report["psi"].max()) if len(report) else 0.0
    if breached:
        worst = report.iloc[0]
        message = (
            f"Drift: {len(breached)} of {len(report)} monitored inputs moved beyond PSI {threshold:g} "
            f"(worst: {worst['feature']} at {worst['psi']:.2f})."
        )
    else:
        message = f"No drift: every monitored input has PSI below {threshold:g} (max {max_psi:.2f})."
    return {
        "breach": bool(breached),
        "breached": breached,
        "max_psi": max_psi,
        "psi": dict(zip(report["feature"], map(float, report["psi"]))),
        "message": message,
    }
