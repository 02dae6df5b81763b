"""Top-3 reasons per customer, in words an operator reads (en and zh-CN), and risk bands.

How reasons are chosen
----------------------
The churn model mixes strongly correlated inputs (recency, frequency and BG/NBD terms), so
its individual coefficients are not readable on their own (one can carry the opposite sign
of its marginal effect).  Reasons are therefore computed from a small set of *reason
drivers*, each a plain customer fact with its own marginal weight learned on the training
window (a one-feature logistic regression on the standardized driver):

    score[customer, reason] = weight[reason] * (value - training mean) / training std

``recency`` combines days since the last order with "later than usual" (recency divided by
the customer's mean gap) so that the text can say "no order for 75 days, usually buys every
20 days".  For customers in the medium/high band the three reasons with the highest scores
(pushing towards churn) are shown; for low-band customers the three most negative (why
they are safe).  Customers without a paid order get the single reason ``no_orders``.

Everything is vectorized: scores are an (n x 7) matrix, the top 3 come from one argsort,
and rendering builds strings column-wise per (slot, reason code).

``explain`` returns reason *codes* plus the numbers the sentences need, so a warehouse can
store codes and numbers and render in any language later; ``render_reasons`` turns them
into text for "en" or "zh-CN".
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from userops.settings import ChurnSettings

LANGUAGES = ("en", "zh-CN")
# medium from 0.3, high from 0.6: the defaults of the settings (USEROPS_CHURN__MEDIUM_RISK /
# USEROPS_CHURN__HIGH_RISK), so a model explained outside the nightly scoring bands alike
DEFAULT_BAND_CUTS = (float(ChurnSettings().medium_risk), float(ChurnSettings().high_risk))

REASON_CODES: list[str] = ["recency", "frequency", "slowing", "spend", "tenure", "returns"]
NO_ORDERS = "no_orders"
# A reason is shown only if its score pushes at least this much (in logit units) in
# the direction of the customer's band.
MIN_SCORE = 0.15
# Standardized deviations are clipped so that a driver far outside the training range
# (e.g. tenure after months of shift) cannot crowd out the others.
Z_CLIP = 3.0

# Driver columns (derived in _drivers) and the reason each one feeds.
_DRIVERS: dict[str, str] = {
    "log_recency": "recency",
    "log_overdue": "recency",
    "log_orders": "frequency",
    "slowing": "slowing",
    "log_monetary_mean": "spend",
    "log_tenure": "tenure",
    "returned_share": "returns",
}

# Numbers carried with the codes (all rounded for display).
NUMBER_COLUMNS = [
    "recency_days",
    "usual_gap_days",
    "n_orders",
    "window_orders",
    "prev_window_orders",
    "window_days",
    "monetary_mean",
    "tenure_days",
    "returned_pct",
    "days_since_registration",
]


# --------------------------------------------------------------------------------------
# Risk band
# --------------------------------------------------------------------------------------


def risk_band(prob, cuts: tuple[float, float] = DEFAULT_BAND_CUTS):
    """'high' if prob >= cuts[1], 'medium' if prob >= cuts[0], else 'low'.

    Scalar in -> str out; array-like in -> numpy array of str.
    """
    medium, high = cuts
    if not 0 <= medium <= high <= 1:
        raise ValueError("risk band cuts must satisfy 0 <= medium <= high <= 1")
    p = np.asarray(prob, dtype=float)
    out = np.select([p >= high, p >= medium], ["high", "medium"], default="low").astype(object)
    return str(out) if out.ndim == 0 else out


# --------------------------------------------------------------------------------------
# Weights (fitted at training time)
# --------------------------------------------------------------------------------------


def _drivers(features: pd.DataFrame) -> pd.DataFrame:
    f = features
    recency = np.nan_to_num(f["recency_days"].to_numpy(dtype=float))
    rgr = f["recency_gap_ratio"].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            "log_recency": np.log1p(recency),
            # log(recency / usual gap), 0 for customers without a gap (one purchase day)
            "log_overdue": np.where(np.isfinite(rgr), np.log(np.clip(rgr, 1e-2, 1e2)), 0.0),
            "log_orders": np.log1p(f["n_orders"].to_numpy(dtype=float)),
            "slowing": -f["window_trend"].to_numpy(dtype=float),  # positive = slowing down
            "log_monetary_mean": np.log1p(np.clip(np.nan_to_num(f["monetary_mean"].to_numpy(dtype=float)), 0, None)),
            "log_tenure": np.log1p(np.nan_to_num(f["tenure_days"].to_numpy(dtype=float))),
            "returned_share": f["returned_share"].to_numpy(dtype=float),
        },
        index=f.index,
    )


def fit_reason_weights(features: pd.DataFrame, y, max_rows: int = 200_000, random_state: int = 0) -> dict:
    """Mean, std and marginal logistic weight of every driver on the training window."""
    D = _drivers(features)
    y = np.asarray(y, dtype=int)
    if len(D) > max_rows:
        idx = np.random.default_rng(random_state).choice(len(D), size=max_rows, replace=False)
        D, y = D.iloc[idx], y[idx]
    weights = {}
    for col in _DRIVERS:  # eight one-feature fits, not a loop over customers
        x = D[col].to_numpy(dtype=float)
        mean, std = float(x.mean()), float(x.std())
        w = 0.0
        if std > 1e-12 and 0 < y.sum() < len(y):
            z = ((x - mean) / std)[:, None]
            w = float(LogisticRegression(max_iter=500).fit(z, y).coef_[0, 0])
        weights[col] = {"mean": mean, "std": std if std > 1e-12 else 1.0, "weight": w}
    return weights


# --------------------------------------------------------------------------------------
# Codes + numbers
# --------------------------------------------------------------------------------------


def reason_scores(features: pd.DataFrame, weights: dict) -> pd.DataFrame:
    """(n x len(REASON_CODES)) churn-pushing score of each reason."""
    D = _drivers(features)
    scores = pd.DataFrame(0.0, index=features.index, columns=REASON_CODES)
    for col, reason in _DRIVERS.items():
        p = weights[col]
        z = np.clip((D[col].to_numpy() - p["mean"]) / p["std"], -Z_CLIP, Z_CLIP)
        scores[reason] += p["weight"] * z
    # Without history before the window there is nothing to slow down from: not a reason
    # (NaN: never picked).
    scores.loc[~np.isfinite(features["prev_window_orders"].to_numpy(dtype=float)), "slowing"] = np.nan
    return scores


def explain(
    features: pd.DataFrame,
    probs,
    weights: dict,
    cuts: tuple[float, float] = DEFAULT_BAND_CUTS,
    top: int = 3,
    min_score: float = MIN_SCORE,
    window_days: int = 365,
) -> pd.DataFrame:
    """Reason codes (reason_1..reason_top), their signs (+1 pushes to churn, -1 protects),
    the risk band and the numbers the sentences use, indexed like ``features``.

    ``weights`` is ``TrainedModel.reason_weights``; ``probs`` the model's probabilities.
    """
    probs = np.asarray(probs, dtype=float)
    band = risk_band(probs, cuts)
    S = reason_scores(features, weights).to_numpy()
    at_risk = band != "low"
    # Highest scores first for at-risk customers, lowest first for the others.
    signed = np.where(at_risk[:, None], S, -S)
    signed = np.where(np.isnan(signed), -np.inf, signed)  # unavailable reasons come last
    order = np.argsort(-signed, axis=1, kind="stable")[:, :top]
    codes = np.asarray(REASON_CODES, dtype=object)[order]
    picked = np.take_along_axis(S, order, axis=1)
    picked_signed = np.take_along_axis(signed, order, axis=1)
    signs = np.where(picked >= 0, 1, -1).astype(np.int8)
    # The first reason is always the strongest in the band's direction; the next ones
    # are shown only if they really push that way (score >= min_score).
    weak = picked_signed < min_score
    weak[:, 0] = False
    codes[weak] = None
    signs[weak] = 0

    no_orders = features["has_orders"].to_numpy() <= 0
    signs[no_orders, :] = 0
    codes[no_orders, 0] = NO_ORDERS
    codes[no_orders, 1:] = None
    signs[no_orders, :] = 1

    # Object columns on purpose: pandas 3 would store strings as Arrow and every consumer
    # (encoding, rendering) reads them back as numpy objects.
    out = pd.DataFrame(index=features.index)
    out["risk_band"] = pd.Series(band, index=features.index, dtype=object)
    for i in range(top):
        out[f"reason_{i + 1}"] = pd.Series(codes[:, i], index=features.index, dtype=object)
        out[f"reason_{i + 1}_sign"] = signs[:, i]
    f = features
    # Day counts in the words are the tags' (``tasks.tags.days_ago``): shop-local days from the
    # order's day to the last day the data covers (the day before a local-midnight cutoff,
    # i.e. ``as_of`` in scoring).  The features count to the cutoff's own day (one more on
    # scoring's end-of-day cutoff); they stay as they are (the model is trained on them).
    out["recency_days"] = _days_to_data_day(f["recency_days"])
    out["usual_gap_days"] = _round(f["mean_gap_days"])
    out["n_orders"] = _round(f["n_orders"])
    out["window_orders"] = _round(f["window_orders"])
    out["prev_window_orders"] = _round(f["prev_window_orders"])
    out["window_days"] = pd.Series(window_days, index=f.index, dtype="Int64")
    out["monetary_mean"] = f["monetary_mean"].round(2)
    out["tenure_days"] = _days_to_data_day(f["tenure_days"])
    out["returned_pct"] = _round(100 * f["returned_share"])
    out["days_since_registration"] = _days_to_data_day(f["days_since_registration"])
    return out


def _round(s: pd.Series) -> pd.Series:
    return s.round().astype("Int64")


def _days_to_data_day(s: pd.Series) -> pd.Series:
    """Days counted by the features up to the cutoff -> calendar days up to the last day
    before the cutoff (the day the data is "as of").

    Only data strictly before the cutoff is folded in, so a feature count ``x`` from a
    purchase day to the cutoff is > 0, and the day before the cutoff is ``ceil(x) - 1`` days
    after the purchase day, whether the cutoff is a local midnight (``x`` whole: scoring's
    end-of-day cutoff) or within a day.  ``days_since_registration`` is measured from the
    registration time: ``ceil(x) - 1`` is the calendar count for a local-midnight cutoff.
    """
    v = s.to_numpy(dtype=float, na_value=np.nan)
    # a whole count computed in floating point may carry a rounding error: ceil(61 + 1e-12) is 62
    days = np.maximum(np.ceil(v - 1e-6) - 1, 0)
    return pd.Series(days, index=s.index).round().astype("Int64")


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _labels(x, fmt) -> np.ndarray:
    """Numbers -> object array of strings ("?" for missing).

    Each distinct value is formatted once (a loop over distinct values, not customers)
    and gathered back, which is far faster than per-row string conversion.
    """
    v = pd.Series(x).to_numpy(dtype=float, na_value=np.nan)
    out = np.full(len(v), "?", dtype=object)
    ok = np.isfinite(v)
    if ok.any():
        codes, uniques = pd.factorize(v[ok])
        out[ok] = np.array([fmt(u) for u in uniques], dtype=object)[codes]
    return out


def _int_label(u: float) -> str:
    return f"{int(round(u)):,}"  # 1,234 days: thousands separated as every count an operator reads


class _Rows:
    """The numbers of explain()'s output, formatted once per render call, viewed through
    a row mask (so each (slot, reason) sentence only gathers and concatenates)."""

    def __init__(self, explained: pd.DataFrame):
        self._df = explained
        self._labels: dict[str, np.ndarray] = {}
        self._values: dict[str, np.ndarray] = {}
        self.mask = np.ones(len(explained), dtype=bool)

    def at(self, mask: np.ndarray) -> "_Rows":
        view = object.__new__(_Rows)
        view._df, view._labels, view._values, view.mask = self._df, self._labels, self._values, mask
        return view

    def value(self, col: str) -> np.ndarray:
        if col not in self._values:
            self._values[col] = self._df[col].to_numpy(dtype=float, na_value=np.nan)
        return self._values[col][self.mask]

    def s(self, col: str) -> np.ndarray:
        if col not in self._labels:
            fmt = "{:,.2f}".format if col == "monetary_mean" else _int_label
            self._labels[col] = _labels(self._df[col], fmt)
        return self._labels[col][self.mask]

    def plural(self, col: str, one: str, many: str) -> np.ndarray:
        return np.where(self.value(col) == 1, one, many).astype(object)

    def known(self, col: str) -> np.ndarray:
        return np.isfinite(self.value(col))


def _sentence(code: str, positive: bool, e: _Rows, lang: str) -> np.ndarray:
    """Text of one reason for the rows selected in ``e``."""
    zh = lang == "zh-CN"
    if code == "recency":
        if positive:
            has_gap = e.known("usual_gap_days") & (e.value("n_orders") > 1)
            if zh:
                base = "已 " + e.s("recency_days") + " 天未下单"
                usual = base + "，平时约每 " + e.s("usual_gap_days") + " 天购买一次"
            else:
                base = "no order for " + e.s("recency_days") + e.plural("recency_days", " day", " days")
                usual = base + ", usually buys every " + e.s("usual_gap_days") + e.plural("usual_gap_days", " day", " days")
            return np.where(has_gap, usual, base)
        if zh:
            return e.s("recency_days") + " 天前刚下过单"
        return "ordered " + e.s("recency_days") + e.plural("recency_days", " day ago", " days ago")
    if code == "frequency":
        if zh:
            return ("累计仅 " if positive else "累计已 ") + e.s("n_orders") + " 单"
        return ("only " if positive else "") + e.s("n_orders") + e.plural("n_orders", " order", " orders") + " so far"
    if code == "slowing":
        # window_days is the window as counted (the day itself and window_days before): a
        # 365-day window reads "the last 365 days".
        if zh:
            return (
                "近 " + e.s("window_days") + " 天 " + e.s("window_orders") + " 单，此前平均每 "
                + e.s("window_days") + " 天 " + e.s("prev_window_orders") + " 单"
            )
        return (
            e.s("window_orders") + e.plural("window_orders", " order", " orders") + " in the last "
            + e.s("window_days") + " days vs about " + e.s("prev_window_orders") + " per "
            + e.s("window_days") + " days before"
        )
    if code == "spend":
        if zh:
            return ("客单价偏低（" if positive else "客单价较高（") + e.s("monetary_mean") + "）"
        return ("low" if positive else "high") + " average order value (" + e.s("monetary_mean") + ")"
    if code == "tenure":
        if zh:
            return "首单在 " + e.s("tenure_days") + " 天前"
        return "first order " + e.s("tenure_days") + e.plural("tenure_days", " day ago", " days ago")
    if code == "returns":
        if zh:
            return e.s("returned_pct") + "% 的订单已退款或取消"
        return e.s("returned_pct") + "% of orders refunded or cancelled"
    if code == NO_ORDERS:
        known = e.known("days_since_registration")
        if zh:
            return np.where(known, "注册 " + e.s("days_since_registration") + " 天，尚未下单", "尚未有已支付订单")
        return np.where(
            known,
            "registered " + e.s("days_since_registration")
            + e.plural("days_since_registration", " day ago", " days ago") + ", no order yet",
            "no paid order yet",
        )
    raise ValueError(f"unknown reason code {code!r}")


def render_reason_columns(explained: pd.DataFrame, lang: str = "en") -> pd.DataFrame:
    """reason_1_text .. reason_k_text (object columns, None where there is no reason)."""
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}")
    slots = sorted(int(c.split("_")[1]) for c in explained.columns if c.startswith("reason_") and c.count("_") == 1)
    out = pd.DataFrame(index=explained.index)
    rows = _Rows(explained)
    for i in slots:
        code_idx, code_names = pd.factorize(explained[f"reason_{i}"].to_numpy(dtype=object))  # None -> -1
        positive = explained[f"reason_{i}_sign"].to_numpy() > 0
        text = np.full(len(explained), None, dtype=object)
        for k, code in enumerate(code_names):  # a handful of codes
            is_code = code_idx == k
            for sign in (True, False):
                mask = is_code & (positive == sign)
                if mask.any():
                    text[mask] = _sentence(code, sign, rows.at(mask), lang)
        out[f"reason_{i}_text"] = pd.Series(text, index=explained.index, dtype=object)
    return out


def render_reasons(explained: pd.DataFrame, lang: str = "en", sep: str | None = None) -> pd.Series:
    """All reasons of each customer joined into one string ("; " in en, "；" in zh-CN)."""
    cols = render_reason_columns(explained, lang)
    sep = sep if sep is not None else ("；" if lang == "zh-CN" else "; ")
    joined = np.full(len(explained), "", dtype=object)
    for c in cols.columns:
        part = cols[c].to_numpy(dtype=object)
        has = pd.notna(part)
        empty = joined == ""
        first = has & empty
        more = has & ~empty
        joined[first] = part[first]
        joined[more] = joined[more] + sep + part[more]
    return pd.Series(joined, index=explained.index, dtype=object, name=f"reasons_{lang}")
