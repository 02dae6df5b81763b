"""BG/NBD (Fader, Hardie & Lee 2005) and a recency baseline (``RecencyBaseline``).

Implemented directly with numpy/scipy (closed forms of the paper) rather than through
``lifetimes`` so that it is vectorized, fast on a million customers and independent of
that package's pandas/numpy compatibility.  ``lifetimes`` is used only in a test to
cross-check the fitted parameters.

Per customer (time in days, as built by ``models.features``):
    x   = frequency    = repeat purchase days (n_days - 1)
    t_x = span_days    = day of last purchase - day of first purchase
    T   = tenure_days  = cutoff - day of first purchase

Log-likelihood of one customer:
    ln Γ(r+x) - ln Γ(r) + r ln α + ln B(a, b+x) - ln B(a, b)
      + ln[ (α+T)^-(r+x) + 1{x>0} a/(b+x-1) (α+t_x)^-(r+x) ]

P(alive at T)            = 1 / (1 + 1{x>0} a/(b+x-1) ((α+T)/(α+t_x))^(r+x))
P(no purchase in (T,T+t]) = 1 - P(alive) + P(alive) ((α+T)/(α+T+t))^(r+x)
  (while alive the posterior of λ is Gamma(r+x, α+T); dropping out only happens right
   after a purchase, so a customer alive at T with no purchase stays alive).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

# Time is rescaled by this many days inside the optimizer for better conditioning.
_TIME_SCALE = 7.0


@dataclass(frozen=True)
class BGNBD:
    """Fitted BG/NBD parameters (alpha in days)."""

    r: float
    alpha: float
    a: float
    b: float
    n_fit: int = 0
    converged: bool = True

    def _arrays(self, frequency, span_days, tenure_days):
        x = np.asarray(frequency, dtype=float)
        t_x = np.asarray(span_days, dtype=float)
        T = np.asarray(tenure_days, dtype=float)
        return x, t_x, T

    def prob_alive(self, frequency, span_days, tenure_days) -> np.ndarray:
        x, t_x, T = self._arrays(frequency, span_days, tenure_days)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_ratio = (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
            log_term = np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-12)) + log_ratio
            p = np.where(x > 0, special.expit(-log_term), 1.0)
        return p

    def prob_no_purchase(self, frequency, span_days, tenure_days, horizon_days: float) -> np.ndarray:
        """P(no purchase in the next ``horizon_days`` | history): the churn probability."""
        x, t_x, T = self._arrays(frequency, span_days, tenure_days)
        p_alive = self.prob_alive(x, t_x, T)
        stay_quiet = np.exp((self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + T + horizon_days)))
        return (1.0 - p_alive) + p_alive * stay_quiet

    def expected_purchases(self, frequency, span_days, tenure_days, horizon_days: float) -> np.ndarray:
        """E[number of purchase days in the next ``horizon_days`` | history] (paper eq. 10).

        The closed form is valid for a != 1 (for a < 1 both factors are negative); when
        2F1 overflows, Euler's transformation is used instead, as ``lifetimes`` does.
        """
        x, t_x, T = self._arrays(frequency, span_days, tenure_days)
        r, alpha, b = self.r, self.alpha, self.b
        a = self.a if abs(self.a - 1.0) > 1e-6 else 1.0 + 1e-6
        t = float(horizon_days)
        with np.errstate(all="ignore"):
            A, B, C = r + x, b + x, a + b + x - 1.0
            z = t / (alpha + T + t)
            ln_hyp = _ln_hyp2f1(A, B, C, z, x, T)
            num = C / (a - 1.0) * (1.0 - np.exp(ln_hyp + A * np.log((alpha + T) / (alpha + T + t))))
            den = 1.0 + np.where(x > 0, a / np.maximum(b + x - 1.0, 1e-12) * ((alpha + T) / (alpha + t_x)) ** A, 0.0)
            out = num / den
        bad = ~np.isfinite(out) | (out < 0)
        if bad.any():
            # Numerical trouble only: fall back to P(alive) x posterior mean rate x t.
            rate = (r + x) / (alpha + T)
            out = np.where(bad, self.prob_alive(x, t_x, T) * rate * t, out)
        return out

    def to_dict(self) -> dict:
        return {"r": self.r, "alpha": self.alpha, "a": self.a, "b": self.b, "n_fit": self.n_fit}


def _ln_hyp2f1(A, B, C, z, x, T) -> np.ndarray:
    """ln 2F1(A, B; C; z) where A, B, C, z depend only on (x, T): computed once per
    distinct (x, T) pair (customers share them a lot), Euler's transformation where
    the direct series overflows."""
    A, B, C, z = np.broadcast_arrays(A, B, C, z)
    codes, _ = pd.factorize(np.broadcast_to(x, A.shape) + 1j * np.broadcast_to(T, A.shape))
    first = np.zeros(codes.max() + 1 if len(codes) else 0, dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]  # a representative row per pair
    a_, b_, c_, z_ = A[first], B[first], C[first], z[first]
    ln_hyp = np.log(special.hyp2f1(a_, b_, c_, z_))
    bad = ~np.isfinite(ln_hyp)
    if bad.any():
        ln_hyp[bad] = np.log(special.hyp2f1(c_[bad] - a_[bad], c_[bad] - b_[bad], c_[bad], z_[bad])) + (
            c_[bad] - a_[bad] - b_[bad]
        ) * np.log(1.0 - z_[bad])
    return ln_hyp[codes]


def _neg_log_likelihood(log_params, x, t_x, T, weights, penalty):
    r, alpha, a, b = np.exp(log_params)
    ll = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
    )
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1.0, 1e-12)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    ll = ll + np.logaddexp(a3, a4)
    return -(weights @ ll) / weights.sum() + penalty * float(np.sum(np.exp(log_params) ** 2))


def fit_bgnbd(
    frequency,
    span_days,
    tenure_days,
    max_rows: int = 50_000,
    penalizer: float = 0.0,
    random_state: int = 0,
) -> BGNBD:
    """Maximum-likelihood BG/NBD fit.

    Identical (x, t_x, T) triples are collapsed into weights; if there are still more
    than ``max_rows`` of them a random sample of customers is fitted (the parameters
    are population-level, a sample estimates them well and keeps 1 M customers fast).
    """
    x = np.asarray(frequency, dtype=float)
    t_x = np.asarray(span_days, dtype=float)
    T = np.asarray(tenure_days, dtype=float)
    ok = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(T) & (T > 0)
    x, t_x, T = x[ok], t_x[ok], T[ok]
    if len(x) == 0:
        raise ValueError("BG/NBD needs at least one customer with a purchase")
    if len(x) > max_rows:
        idx = np.random.default_rng(random_state).choice(len(x), size=max_rows, replace=False)
        x, t_x, T = x[idx], t_x[idx], T[idx]
    triples = pd.DataFrame({"x": x, "t_x": t_x, "T": T}).value_counts().reset_index()
    xs = triples["x"].to_numpy(float)
    txs = triples["t_x"].to_numpy(float) / _TIME_SCALE
    Ts = triples["T"].to_numpy(float) / _TIME_SCALE
    w = triples["count"].to_numpy(float)

    best = None
    # A second starting point is tried only if the first does not converge.
    for start in ([np.log(0.25), np.log(4.0), np.log(0.8), np.log(2.5)], [0.0, 0.0, 0.0, 0.0]):
        res = optimize.minimize(
            _neg_log_likelihood,
            np.array(start),
            args=(xs, txs, Ts, w, penalizer),
            method="L-BFGS-B",
            bounds=[(-9.0, 9.0)] * 4,
        )
        if best is None or res.fun < best.fun:
            best = res
        if best.success:
            break
    r, alpha, a, b = np.exp(best.x)
    return BGNBD(
        r=float(r), alpha=float(alpha * _TIME_SCALE), a=float(a), b=float(b),
        n_fit=int(w.sum()), converged=bool(best.success),
    )


def bgnbd_from_features(features: pd.DataFrame, **kwargs) -> BGNBD:
    """Fit BG/NBD on the customers of a feature frame that have a paid order."""
    f = features[features["has_orders"] > 0]
    return fit_bgnbd(f["frequency"], f["span_days"], f["tenure_days"], **kwargs)


def bgnbd_churn_probability(model: BGNBD, features: pd.DataFrame, horizon_days: float) -> np.ndarray:
    """BG/NBD P(no purchase in horizon) for every row with a paid order (NaN otherwise)."""
    has = features["has_orders"].to_numpy() > 0
    out = np.full(len(features), np.nan)
    out[has] = model.prob_no_purchase(
        features["frequency"].to_numpy()[has],
        features["span_days"].to_numpy()[has],
        features["tenure_days"].to_numpy()[has],
        horizon_days,
    )
    return out


@dataclass(frozen=True)
class RecencyBaseline:
    """Churn probability from recency alone: a one-feature logistic regression on
    log(1 + days since the last paid order), fitted on a training window.  Its ranking
    is recency itself; the fit only turns it into probabilities."""

    coef: float
    intercept: float

    @classmethod
    def fit(cls, features: pd.DataFrame, labels: pd.Series) -> "RecencyBaseline":
        from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

        f = features.loc[labels.index]
        x = np.log1p(f[["recency_days"]].to_numpy(dtype=float))
        lr = LogisticRegression(max_iter=1000).fit(x, labels.to_numpy(dtype=int))
        return cls(coef=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]))

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        x = np.log1p(features["recency_days"].to_numpy(dtype=float))
        return 1.0 / (1.0 + np.exp(-(self.coef * x + self.intercept)))
