"""Training, out-of-time evaluation and the TrainedModel artifact.

Time layout for a cutoff T and horizon H (days):

    train:  features at T-H (orders paid before T-H), labels from [T-H, T)
    eval:   features at T   (orders paid before T),   labels from [T, T+H)

So everything the model *learns* comes from orders paid before T, and it is evaluated on a
later, disjoint label window (out of time).  ``backtest`` uses a given T.  The nightly flow
uses the latest T whose evaluation labels are complete, ``labels.latest_complete_cutoff(
today, H)`` = today - H, and then scores today's features with the returned model.

The model
---------
A logistic regression on a small set of robust, mostly log-scaled features plus two
BG/NBD-derived ones (the BG/NBD logit of P(no purchase in H) and log expected purchases;
the BG/NBD parameters are fitted on the training-window customers and stored in the model,
so scoring does not refit anything).  Optionally (``TrainConfig.kind``) a monotone
HistGradientBoosting model on a wider feature set, or a blend of both.  On CDNOW the
logistic model is as good as anything tried (see the README of this package), keeps
scoring trivially fast and gives per-feature contributions for the reasons.

Calibration: Platt scaling ("sigmoid", default) or isotonic, fitted on out-of-fold
predictions of the training window; probabilities are clipped to [clip, 1-clip] so that log
loss stays finite under shift.  The holdout metrics of the uncalibrated model are recorded
too (``metrics["uncalibrated"]``) so a calibration that hurts under shift is visible.

Customers without a paid order
------------------------------
They are not in the label population and the model does not score them.  They get the
"no-order rule": the smoothed share of registered-but-never-bought customers (at T-H) who
still had not bought by T, by age-of-registration band; with no customers table (or nobody
in it) ``TrainConfig.no_order_probability`` (default 0.95) is used.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from models.bgnbd import BGNBD, bgnbd_from_features
from models.drift import MAIN_FEATURES, make_profile
from models.explain import fit_reason_weights
from models.features import (
    FEATURE_COLUMNS,
    FEATURE_VERSION,
    _epoch_seconds,
    _status_mask,
    _ts_seconds,
    as_naive_utc_timestamp,
    build_features,
)
from models.labels import build_labels
from models.messages import ModelDataError

# Columns of the logistic model's design matrix, derived from build_features columns.
LOGISTIC_FEATURES: list[str] = [
    "log_recency",
    "log_frequency",
    "log_tenure",
    "log_monetary_mean",
    "bg_logit_p_no_purchase",
    "log_bg_expected_purchases",
    "log_recency_gap_ratio",
    "one_time_buyer",
    "window_trend",
    "returned_share",
]

# Extra raw columns the gradient-boosting model sees, with monotone constraints
# (+1: more of it means more churn, -1: less churn, 0: free).
HGB_FEATURES: dict[str, int] = {
    "recency_days": 1,
    "frequency": -1,
    "tenure_days": 0,
    "monetary_mean": 0,
    "monetary_total": 0,
    "window_orders": -1,
    "mean_gap_days": 0,
    "orders_per_day": 0,
    "recency_gap_ratio": 1,
    "window_trend": 0,
    "returned_share": 0,
    "bg_logit_p_no_purchase": 1,
    "log_bg_expected_purchases": -1,
}

# Registration-age bands (days) for the no-order rule.
NO_ORDER_BANDS: list[float] = [0, 30, 90, 365, math.inf]


@dataclass
class TrainConfig:
    kind: str = "logistic"  # "logistic" | "hgb" | "blend"
    calibration: str = "sigmoid"  # "sigmoid" | "isotonic" | "none"
    C: float = 1.0  # inverse L2 strength of the logistic model
    max_train_rows: int = 500_000  # random sample above this (keeps training bounded)
    bgnbd_max_rows: int = 50_000  # BG/NBD is fitted on at most this many customers
    calibration_folds: int = 3
    clip: float = 1e-4  # probabilities are kept in [clip, 1 - clip]
    no_order_probability: float = 0.95  # fallback for customers without a paid order
    no_order_prior_strength: float = 20.0  # pseudo-count shrinking band rates to overall
    hgb_max_iter: int = 200
    random_state: int = 0
    # How the features read the data (not tuned): the window of window_orders / the trend
    # (the tags' loyalty window) and the shop's UTC offset for calendar days (0 = UTC).
    window_days: int = 365
    day_offset_minutes: int = 0
    feature_version: int = FEATURE_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def evaluate(y, p, clip: float = 1e-6) -> dict:
    """Holdout metrics for churn probabilities ``p`` against labels ``y`` (1 = churned).

    roc_auc, pr_auc (average precision with churn as the positive class), brier,
    log_loss, lift_top_decile (churn rate among the 10 % highest scores / overall churn
    rate), n, churn_rate.  Metrics that are undefined (one class only) are None.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    n = int(len(y))
    out: dict = {"n": n, "churn_rate": _none_if_nan(y.mean()) if n else None}
    if n == 0:
        out.update(roc_auc=None, pr_auc=None, brier=None, log_loss=None, lift_top_decile=None)
        return out
    pc = np.clip(p, clip, 1 - clip)
    both = 0 < y.sum() < n
    out["roc_auc"] = float(roc_auc_score(y, p)) if both else None
    out["pr_auc"] = float(average_precision_score(y, p)) if both else None
    out["brier"] = float(brier_score_loss(y, pc))
    out["log_loss"] = float(log_loss(y, pc, labels=[0, 1]))
    k = max(1, int(math.ceil(0.1 * n)))
    top = np.argsort(-p, kind="stable")[:k]
    out["lift_top_decile"] = _none_if_nan(y[top].mean() / y.mean()) if y.mean() > 0 else None
    order = ["roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile", "n", "churn_rate"]
    return {key: out[key] for key in order}


# --------------------------------------------------------------------------------------
# Design matrix
# --------------------------------------------------------------------------------------


def add_model_features(features: pd.DataFrame, bg: BGNBD, horizon_days: float, include_hgb: bool = True) -> pd.DataFrame:
    """Derived columns used by the estimators (works for rows without orders too).

    ``include_hgb=False`` skips the extra columns only the gradient-boosting model uses.
    """
    f = features
    has = f["has_orders"].to_numpy() > 0
    freq = f["frequency"].to_numpy(dtype=float)
    span = np.nan_to_num(f["span_days"].to_numpy(dtype=float))
    tenure = np.nan_to_num(f["tenure_days"].to_numpy(dtype=float))
    p0 = bg.prob_no_purchase(freq, span, tenure, horizon_days)
    p0 = np.clip(p0, 1e-6, 1 - 1e-6)
    expected = bg.expected_purchases(freq, span, tenure, horizon_days)
    recency = f["recency_days"].to_numpy(dtype=float)
    # One-time buyers have no gap: their recency relative to tenure is 1 (log 0).
    rgr = f["recency_gap_ratio"].to_numpy(dtype=float)
    rgr = np.where(np.isfinite(rgr), rgr, 1.0)
    out = pd.DataFrame(index=f.index)
    out["log_recency"] = np.log1p(np.nan_to_num(recency))
    out["log_frequency"] = np.log1p(freq)
    out["log_tenure"] = np.log1p(tenure)
    out["log_monetary_mean"] = np.log1p(np.clip(np.nan_to_num(f["monetary_mean"].to_numpy(dtype=float)), 0, None))
    out["bg_logit_p_no_purchase"] = np.where(has, np.log(p0 / (1 - p0)), 0.0)
    out["log_bg_expected_purchases"] = np.where(has, np.log(np.clip(expected, 0, None) + 1e-3), 0.0)
    out["log_recency_gap_ratio"] = np.log(np.clip(rgr, 1e-2, 1e2))
    out["one_time_buyer"] = (freq == 0).astype(float)
    out["window_trend"] = f["window_trend"].to_numpy(dtype=float)
    out["returned_share"] = f["returned_share"].to_numpy(dtype=float)
    if not include_hgb:
        return out
    out["bg_p_alive"] = np.where(has, bg.prob_alive(freq, span, tenure), np.nan)
    out["bg_expected_purchases"] = np.where(has, expected, np.nan)
    for col in HGB_FEATURES:
        if col not in out.columns:
            out[col] = f[col].to_numpy(dtype=float)
    return out


# --------------------------------------------------------------------------------------
# The artifact
# --------------------------------------------------------------------------------------


@dataclass
class NoOrderRule:
    """Churn probability for customers without a paid order, by registration age."""

    band_edges: list[float]
    band_probability: list[float]  # one per band
    unknown_probability: float  # registration date unknown
    n: int = 0  # customers the rule was estimated on (0 = fallback constant)

    def predict(self, days_since_registration: np.ndarray) -> np.ndarray:
        d = np.asarray(days_since_registration, dtype=float)
        idx = np.clip(np.searchsorted(self.band_edges, d, side="right") - 1, 0, len(self.band_probability) - 1)
        out = np.asarray(self.band_probability, dtype=float)[idx]
        return np.where(np.isfinite(d), out, self.unknown_probability)


@dataclass
class TrainedModel:
    kind: str
    horizon_days: int
    feature_columns: list[str]  # columns required from build_features
    model_features: list[str]  # logistic design-matrix columns
    bgnbd: BGNBD
    scaler_mean: np.ndarray
    scaler_scale: np.ndarray
    coef: np.ndarray  # logistic coefficients on standardized features
    intercept: float
    hgb: HistGradientBoostingClassifier | None
    calibrator: object | None  # ("sigmoid", a, b) tuple or IsotonicRegression
    no_order: NoOrderRule
    config: dict
    train_cutoff: pd.Timestamp
    train_label_end: pd.Timestamp
    eval_cutoff: pd.Timestamp
    eval_label_end: pd.Timestamp
    n_train: int
    train_churn_rate: float
    reason_weights: dict = field(default_factory=dict)  # see models.explain
    drift_profile: dict = field(default_factory=dict)  # PSI reference (models.drift)
    metrics: dict = field(default_factory=dict)  # out-of-time holdout metrics
    created_at: str = ""
    version: str = ""

    # ---- scoring ---------------------------------------------------------------------
    def design(self, features: pd.DataFrame) -> pd.DataFrame:
        return add_model_features(features, self.bgnbd, self.horizon_days, include_hgb=self.hgb is not None)

    def _standardized(self, design: pd.DataFrame) -> np.ndarray:
        X = design[self.model_features].to_numpy(dtype=float)
        return (X - self.scaler_mean) / self.scaler_scale

    def raw_score(self, features: pd.DataFrame, design: pd.DataFrame | None = None) -> np.ndarray:
        """Uncalibrated probability from the estimator(s)."""
        d = self.design(features) if design is None else design
        # z = intercept + sum coef_j (x_j - mean_j) / scale_j, accumulated column by column.
        w = self.coef / self.scaler_scale
        z = np.full(len(d), self.intercept - float(w @ self.scaler_mean))
        for j, col in enumerate(self.model_features):  # a dozen columns, not customers
            z += w[j] * d[col].to_numpy(dtype=float)
        p_lr = 1.0 / (1.0 + np.exp(-z))
        if self.kind == "logistic" or self.hgb is None:
            return p_lr
        p_hgb = self.hgb.predict_proba(d[list(HGB_FEATURES)].to_numpy(dtype=float))[:, 1]
        if self.kind == "hgb":
            return p_hgb
        return 0.5 * (p_lr + p_hgb)

    def _calibrate(self, p: np.ndarray) -> np.ndarray:
        return _apply_calibrator(self.calibrator, p)

    def predict_proba(self, features: pd.DataFrame, design: pd.DataFrame | None = None, raw=None) -> np.ndarray:
        """Churn probability for every row of a build_features frame (same order).

        Rows with a paid order get the calibrated model probability; rows without one
        get the no-order rule.  (``design``/``raw`` only let callers reuse work.)
        """
        clip = self.config.get("clip", 1e-4)
        if raw is None:
            raw = self.raw_score(features, self.design(features) if design is None else design)
        p = self._calibrate(raw)
        has = features["has_orders"].to_numpy() > 0
        if not has.all():
            p = np.where(has, p, self.no_order.predict(features["days_since_registration"].to_numpy(dtype=float)))
        return np.clip(p, clip, 1 - clip)

    def explain(self, features: pd.DataFrame, probs=None, cuts: tuple[float, float] | None = None) -> pd.DataFrame:
        """Risk band, top-3 reason codes and their numbers (see models.explain)."""
        from models.explain import DEFAULT_BAND_CUTS, explain

        p = self.predict_proba(features) if probs is None else probs
        window = int(self.config.get("window_days", 365))
        return explain(features, p, self.reason_weights, cuts or DEFAULT_BAND_CUTS, window_days=window)

    def contributions(self, features: pd.DataFrame, design: pd.DataFrame | None = None) -> pd.DataFrame:
        """Per-feature logit contributions of the logistic part: coef * standardized value."""
        d = self.design(features) if design is None else design
        return pd.DataFrame(self._standardized(d) * self.coef, index=features.index, columns=self.model_features)

    def local_date(self, ts: pd.Timestamp) -> "_dt.date":
        """The shop's calendar day of a cutoff (naive UTC; the cutoffs are shop-local midnights)."""
        return (ts + pd.Timedelta(minutes=int(self.config.get("day_offset_minutes") or 0))).date()

    def summary(self) -> dict:
        """JSON-friendly description for the model registry."""
        return {
            "version": self.version,
            "kind": self.kind,
            "horizon_days": self.horizon_days,
            "train_cutoff": str(self.local_date(self.train_cutoff)),
            "train_label_end": str(self.local_date(self.train_label_end)),
            "eval_cutoff": str(self.local_date(self.eval_cutoff)),
            "eval_label_end": str(self.local_date(self.eval_label_end)),
            "n_train": self.n_train,
            "train_churn_rate": self.train_churn_rate,
            "features": list(self.model_features),
            "coefficients": dict(zip(self.model_features, map(float, self.coef))),
            "bgnbd": self.bgnbd.to_dict(),
            "no_order_rule": asdict(self.no_order),
            "metrics": self.metrics,
            "config": self.config,
            "created_at": self.created_at,
        }


# --------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------


def _apply_calibrator(cal, p: np.ndarray) -> np.ndarray:
    if cal is None:
        return p
    if isinstance(cal, tuple) and cal[0] == "sigmoid":
        _, a, b = cal
        pc = np.clip(p, 1e-9, 1 - 1e-9)
        return 1.0 / (1.0 + np.exp(-(a * np.log(pc / (1 - pc)) + b)))
    return cal.predict(p)


def _fit_calibrator(method: str, p: np.ndarray, y: np.ndarray, random_state: int):
    if method == "none":
        return None
    if method == "sigmoid":
        pc = np.clip(p, 1e-9, 1 - 1e-9)
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.log(pc / (1 - pc))[:, None], y)
        return ("sigmoid", float(lr.coef_[0, 0]), float(lr.intercept_[0]))
    if method == "isotonic":
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    raise ValueError(f"unknown calibration {method!r}")


class _Fitted:
    """The estimators of one fit (used for out-of-fold calibration and the final fit)."""

    def __init__(self, cfg: TrainConfig, X_lr: np.ndarray, X_hgb: np.ndarray | None, y: np.ndarray):
        self.mean = X_lr.mean(axis=0)
        scale = X_lr.std(axis=0)
        self.scale = np.where(scale > 1e-12, scale, 1.0)
        Z = (X_lr - self.mean) / self.scale
        lr = LogisticRegression(C=cfg.C, max_iter=2000).fit(Z, y)
        self.coef = lr.coef_[0].astype(float)
        self.intercept = float(lr.intercept_[0])
        self.kind = cfg.kind
        self.hgb = None
        if cfg.kind in ("hgb", "blend"):
            self.hgb = HistGradientBoostingClassifier(
                max_iter=cfg.hgb_max_iter,
                learning_rate=0.05,
                max_leaf_nodes=15,
                min_samples_leaf=200,
                l2_regularization=1.0,
                monotonic_cst=list(HGB_FEATURES.values()),
                early_stopping=False,
                random_state=cfg.random_state,
            ).fit(X_hgb, y)

    def predict(self, X_lr: np.ndarray, X_hgb: np.ndarray | None) -> np.ndarray:
        z = ((X_lr - self.mean) / self.scale) @ self.coef + self.intercept
        p_lr = 1.0 / (1.0 + np.exp(-z))
        if self.hgb is None:
            return p_lr
        p_hgb = self.hgb.predict_proba(X_hgb)[:, 1]
        return p_hgb if self.kind == "hgb" else 0.5 * (p_lr + p_hgb)


def _fit_no_order_rule(
    customers: pd.DataFrame | None, train_features: pd.DataFrame, orders: pd.DataFrame,
    train_cutoff: pd.Timestamp, label_end: pd.Timestamp, cfg: TrainConfig,
) -> NoOrderRule:
    n_bands = len(NO_ORDER_BANDS) - 1
    fallback = NoOrderRule(list(NO_ORDER_BANDS[:-1]), [cfg.no_order_probability] * n_bands, cfg.no_order_probability, 0)
    no_order = train_features[train_features["has_orders"] <= 0]
    if customers is None or len(no_order) == 0:
        return fallback
    # Who among them bought in [train_cutoff, label_end)?  (Data before the eval cutoff.)
    paid_s, valid = _epoch_seconds(orders["paid_at"])
    in_window = valid & _status_mask(orders["status"], "paid")
    in_window &= (paid_s >= _ts_seconds(train_cutoff)) & (paid_s < _ts_seconds(label_end))
    bought = no_order.index.isin(pd.Index(orders["customer_id"].to_numpy()[in_window]))
    y = (~bought).astype(float)
    k, n = y.sum(), len(y)
    overall = (k + 1.0) / (n + 2.0)
    m = cfg.no_order_prior_strength
    age = no_order["days_since_registration"].to_numpy(dtype=float)
    band = np.searchsorted(NO_ORDER_BANDS, age, side="right") - 1
    probs = []
    for b in range(n_bands):  # a handful of bands, not customers
        sel = np.isfinite(age) & (band == b)
        probs.append(float((y[sel].sum() + m * overall) / (sel.sum() + m)))
    unknown = ~np.isfinite(age)
    unknown_p = float((y[unknown].sum() + m * overall) / (unknown.sum() + m))
    return NoOrderRule(list(NO_ORDER_BANDS[:-1]), probs, unknown_p, int(n))


@dataclass
class Windows:
    """Features and labels of the training and evaluation windows of one cutoff."""

    cutoff: pd.Timestamp
    horizon_days: int
    train_features: pd.DataFrame  # all customers known at T-H
    train_labels: pd.Series  # population at T-H
    eval_features: pd.DataFrame  # all customers known at T
    eval_labels: pd.Series  # population at T (may be all-empty if labels not complete)


def feature_kwargs(config: TrainConfig | dict | None) -> dict:
    """The build_features keyword arguments a config (or a model's stored config) implies."""
    cfg = config.to_dict() if isinstance(config, TrainConfig) else dict(config or {})
    defaults = TrainConfig()
    return {
        "day_offset_minutes": int(cfg.get("day_offset_minutes", defaults.day_offset_minutes)),
        "window_days": int(cfg.get("window_days", defaults.window_days)),
    }


def prepare_windows(
    orders: pd.DataFrame, customers: pd.DataFrame | None, cutoff, horizon_days: int, config: TrainConfig | dict | None = None
) -> Windows:
    cutoff = as_naive_utc_timestamp(cutoff)
    h = int(horizon_days)
    train_cut = cutoff - pd.Timedelta(days=h)
    kw = feature_kwargs(config)
    return Windows(
        cutoff=cutoff,
        horizon_days=h,
        train_features=build_features(orders, customers, train_cut, **kw),
        train_labels=build_labels(orders, train_cut, h),
        eval_features=build_features(orders, customers, cutoff, **kw),
        eval_labels=build_labels(orders, cutoff, h),
    )


def train_model(
    orders: pd.DataFrame,
    customers: pd.DataFrame | None,
    cutoff,
    horizon_days: int = 90,
    config: TrainConfig | dict | None = None,
    windows: Windows | None = None,
) -> TrainedModel:
    """Train at cutoff - H (labels [T-H, T)) and evaluate out of time at T (labels [T, T+H)).

    Everything fitted depends only on orders paid before ``cutoff``.  ``metrics`` holds
    the holdout metrics (``evaluate``) plus ``uncalibrated`` holdout metrics and the
    training-window metrics.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig(**(config or {}))
    if cfg.kind not in ("logistic", "hgb", "blend"):
        raise ValueError(f"unknown model kind {cfg.kind!r}")
    w = windows or prepare_windows(orders, customers, cutoff, horizon_days, cfg)
    h = w.horizon_days
    train_cut = w.cutoff - pd.Timedelta(days=h)

    y_series = w.train_labels
    if len(y_series) == 0 or y_series.nunique() < 2:
        day = pd.Timedelta(minutes=int(cfg.day_offset_minutes or 0))  # shop-local days
        raise ModelDataError("model.train.one_class", start=(train_cut + day).date(), end=(w.cutoff + day).date(), n=len(y_series))
    F_train = w.train_features.loc[y_series.index]
    if len(F_train) > cfg.max_train_rows:
        rng = np.random.default_rng(cfg.random_state)
        keep = np.sort(rng.choice(len(F_train), size=cfg.max_train_rows, replace=False))
        F_train, y_series = F_train.iloc[keep], y_series.iloc[keep]
    y = y_series.to_numpy(dtype=int)

    bg = bgnbd_from_features(F_train, max_rows=cfg.bgnbd_max_rows, random_state=cfg.random_state)
    D_train = add_model_features(F_train, bg, h)
    X_lr = D_train[LOGISTIC_FEATURES].to_numpy(dtype=float)
    X_hgb = D_train[list(HGB_FEATURES)].to_numpy(dtype=float) if cfg.kind != "logistic" else None

    # Calibration.  A logistic regression fitted by maximum likelihood is already
    # calibrated on its training window (Platt scaling of its own logit is the identity),
    # so "sigmoid" is a no-op for kind="logistic".  Otherwise the calibrator is fitted on
    # out-of-fold scores of the training window.
    calibrator = None
    if cfg.calibration != "none" and not (cfg.kind == "logistic" and cfg.calibration == "sigmoid"):
        oof = np.zeros(len(y))
        folds = StratifiedKFold(cfg.calibration_folds, shuffle=True, random_state=cfg.random_state)
        for fit_idx, oof_idx in folds.split(X_lr, y):
            part = _Fitted(cfg, X_lr[fit_idx], None if X_hgb is None else X_hgb[fit_idx], y[fit_idx])
            oof[oof_idx] = part.predict(X_lr[oof_idx], None if X_hgb is None else X_hgb[oof_idx])
        calibrator = _fit_calibrator(cfg.calibration, oof, y, cfg.random_state)

    final = _Fitted(cfg, X_lr, X_hgb, y)
    no_order = _fit_no_order_rule(customers, w.train_features, orders, train_cut, w.cutoff, cfg)
    reason_weights = fit_reason_weights(F_train, y, random_state=cfg.random_state)

    model = TrainedModel(
        kind=cfg.kind,
        horizon_days=h,
        feature_columns=list(FEATURE_COLUMNS),
        model_features=list(LOGISTIC_FEATURES),
        bgnbd=bg,
        scaler_mean=final.mean,
        scaler_scale=final.scale,
        coef=final.coef,
        intercept=final.intercept,
        hgb=final.hgb,
        calibrator=calibrator,
        no_order=no_order,
        config=cfg.to_dict(),
        train_cutoff=train_cut,
        train_label_end=w.cutoff,
        eval_cutoff=w.cutoff,
        eval_label_end=w.cutoff + pd.Timedelta(days=h),
        reason_weights=reason_weights,
        n_train=int(len(y)),
        train_churn_rate=float(y.mean()),
        created_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    )

    # Metrics: training window (in-sample) and the out-of-time holdout.
    p_train = np.clip(model._calibrate(model.raw_score(F_train, D_train)), cfg.clip, 1 - cfg.clip)
    metrics = {"train": evaluate(y, p_train)}
    if len(w.eval_features):
        eval_design = model.design(w.eval_features)
        raw_all = model.raw_score(w.eval_features, eval_design)
        p_all = model.predict_proba(w.eval_features, design=eval_design, raw=raw_all)
        # Drift reference: every customer known at T (the first population it scores).
        ref = w.eval_features[MAIN_FEATURES].copy()
        ref["score"] = p_all
        model.drift_profile = make_profile(ref)
    if len(w.eval_labels):
        pos = w.eval_features.index.get_indexer(w.eval_labels.index)
        y_eval = w.eval_labels.to_numpy(dtype=int)
        metrics.update(evaluate(y_eval, p_all[pos]))
        metrics["uncalibrated"] = evaluate(y_eval, np.clip(raw_all[pos], cfg.clip, 1 - cfg.clip))
    else:
        metrics.update(evaluate([], []))
    model.metrics = metrics
    model.version = _version_of(model)
    return model


def evaluate_model(model: TrainedModel, orders: pd.DataFrame, customers: pd.DataFrame | None, cutoff, horizon_days: int | None = None) -> dict:
    """Metrics of any model on the holdout (features at cutoff, labels [cutoff, cutoff+H)).

    Used to compare the champion with a candidate on the candidate's holdout.
    """
    h = int(horizon_days or model.horizon_days)
    labels = build_labels(orders, cutoff, h)
    feats = build_features(orders, customers, cutoff, **feature_kwargs(model.config)).loc[labels.index]
    return evaluate(labels.to_numpy(dtype=int), model.predict_proba(feats))


def features_compatible(model: TrainedModel) -> bool:
    """True when ``model`` was trained on the current feature set (FEATURE_VERSION)."""
    return int((model.config or {}).get("feature_version", 1)) == FEATURE_VERSION


def _version_of(model: TrainedModel) -> str:
    """A short, content-derived version id: date of the training cutoff + hash."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(model.coef).tobytes())
    h.update(repr((model.intercept, model.bgnbd.to_dict(), model.kind, model.horizon_days, str(model.train_cutoff))).encode())
    return f"churn-{model.local_date(model.train_cutoff):%Y%m%d}-h{model.horizon_days}-{h.hexdigest()[:8]}"  # the shop-local day, as the registry shows it
