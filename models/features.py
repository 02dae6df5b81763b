"""Per-customer churn features as of a cutoff.

``build_features(orders, customers, cutoff)`` turns the raw order log into one row per
customer, using only what was known strictly before ``cutoff``:

* only orders whose ``paid_at`` is strictly before the cutoff are read (orders at or
  after the cutoff cannot change any feature: that is the leakage guarantee tested in
  ``tests/models``);
* "paid" orders drive every purchase feature; "refunded" and "cancelled" orders before
  the cutoff only feed the refund/cancel shares;
* a customer is in the frame if they registered before the cutoff (``customers``) or
  placed any order before it.  Customers without a paid order get ``has_orders = 0``
  and NaN for the purchase-timing features; the model scores them with a separate rule
  (see ``models.train``).

Everything is vectorized over numpy arrays (factorize + bincount + one sort for the
distinct purchase days); there is no per-customer Python code, so 10 M orders for 1 M
customers take a few seconds.

Time unit: days.  Purchase "days" are calendar days (UTC for tz-aware input), so two
orders on the same day count as one purchase day, which is what the BG/NBD features
(``frequency``, ``span_days``, ``tenure_days``) expect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
WINDOWS = (30, 90, 180, 365)

# Columns produced by build_features, in order.  The model may use a subset.
FEATURE_COLUMNS: list[str] = [
    "has_orders",  # 1 if at least one paid order before the cutoff
    "n_orders",  # paid orders
    "n_days",  # distinct purchase days
    "frequency",  # repeat purchase days = n_days - 1 (BG/NBD "x")
    "recency_days",  # days since the last paid order
    "tenure_days",  # days since the first paid order (BG/NBD "T")
    "span_days",  # last - first purchase day (BG/NBD "t_x")
    "monetary_total",
    "monetary_mean",  # mean amount per paid order
    "log_n_orders",
    "log_recency",
    "log_tenure",
    "log_monetary_total",
    "log_monetary_mean",
    "purchase_rate",  # purchase days per 30 days of tenure
    "mean_gap_days",  # mean days between purchase days (NaN with one purchase day)
    "gap_std_days",  # std of the gaps (NaN with fewer than two gaps)
    "gap_cv",  # gap_std / mean_gap: irregularity
    "max_gap_days",
    "last_gap_days",  # the gap that ended with the last purchase
    "recency_gap_ratio",  # recency / mean gap: > 1 means "later than usual"
    "recency_maxgap_ratio",  # recency / longest gap seen so far
    "orders_30d",
    "orders_90d",
    "orders_180d",
    "orders_365d",
    "amount_90d",
    "amount_365d",
    "trend_90d",  # (orders last 90d - orders 90..180d ago) / (sum + 1), in (-1, 1)
    "recent_share_90d",  # share of all paid orders placed in the last 90 days
    "refund_share",  # refunded / (paid + refunded) orders before the cutoff
    "cancel_share",  # cancelled / all orders before the cutoff
    "days_since_registration",  # NaN when registered_at is unknown
]


def as_naive_utc_timestamp(value) -> pd.Timestamp:
    """A cutoff as a tz-naive UTC Timestamp (accepts str, date, datetime, Timestamp)."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


def _epoch_seconds(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Datetime-like column -> (int64 seconds since epoch, valid mask)."""
    if not pd.api.types.is_datetime64_any_dtype(col.dtype):
        col = pd.to_datetime(col, utc=True)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        col = col.dt.tz_convert("UTC").dt.tz_localize(None)
    values = col.to_numpy(dtype="datetime64[s]")
    valid = ~np.isnat(values)
    return values.view(np.int64), valid


def _ts_seconds(ts: pd.Timestamp) -> int:
    return int(np.datetime64(ts.to_datetime64(), "s").view(np.int64))


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with NaN where den is 0 or NaN."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    ok = np.isfinite(den) & (den != 0)
    np.divide(num, den, out=out, where=ok)
    return out


def _status_mask(status: pd.Series, value: str) -> np.ndarray:
    return (status == value).to_numpy(dtype=bool, na_value=False)


def build_features(
    orders: pd.DataFrame,
    customers: pd.DataFrame | None,
    cutoff,
) -> pd.DataFrame:
    """One row per customer (index ``customer_id``, sorted) with FEATURE_COLUMNS.

    orders: columns order_id, customer_id, paid_at (datetime64), amount, status.
    customers: optional, columns customer_id and registered_at (datetime64, may be NaT).
    cutoff: features use only orders with paid_at < cutoff.
    """
    cutoff = as_naive_utc_timestamp(cutoff)
    cut_s = _ts_seconds(cutoff)
    cut_day = cut_s / SECONDS_PER_DAY  # fractional days since epoch

    # --- keep only what is known before the cutoff ---------------------------------
    paid_s, valid = _epoch_seconds(orders["paid_at"])
    before = valid & (paid_s < cut_s)
    status = orders["status"]
    is_paid = before & _status_mask(status, "paid")
    is_refund = before & _status_mask(status, "refunded")
    is_cancel = before & _status_mask(status, "cancelled")
    any_before = is_paid | is_refund | is_cancel

    cust_all = orders["customer_id"].to_numpy()

    # Universe of customers: anyone with an order before the cutoff, plus registered
    # customers (registered before the cutoff or with unknown registration date).
    # Paid customers come first so that their codes are 0..n_paid-1.
    paid_cust = cust_all[is_paid]
    codes, paid_uniques = pd.factorize(paid_cust, sort=False)
    n_paid = len(paid_uniques)

    extra_ids = [cust_all[any_before & ~is_paid]]
    reg_days = None
    if customers is not None and len(customers):
        reg_s, reg_valid = _epoch_seconds(customers["registered_at"])
        known = ~reg_valid | (reg_s < cut_s)
        extra_ids.append(customers["customer_id"].to_numpy()[known])
    extra = pd.Index(np.concatenate(extra_ids)).unique()
    extra = extra[~extra.isin(paid_uniques)]
    all_ids = np.concatenate([np.asarray(paid_uniques), np.asarray(extra)])
    n_all = len(all_ids)

    # --- paid-order aggregates (codes index 0..n_paid-1) -------------------------------
    ts = paid_s[is_paid]
    amount = orders["amount"].to_numpy(dtype=float, na_value=np.nan)[is_paid]
    amount = np.nan_to_num(amount, nan=0.0)
    age_days = (cut_s - ts) / SECONDS_PER_DAY  # > 0 by construction

    n_orders = np.bincount(codes, minlength=n_paid).astype(float)
    monetary_total = np.bincount(codes, weights=amount, minlength=n_paid)
    window_counts = {}
    for w in WINDOWS:
        window_counts[w] = np.bincount(codes, weights=(age_days <= w), minlength=n_paid)
    amount_90 = np.bincount(codes, weights=amount * (age_days <= 90), minlength=n_paid)
    amount_365 = np.bincount(codes, weights=amount * (age_days <= 365), minlength=n_paid)

    # Distinct purchase days per customer: one sort of (customer, day) keys.
    day = ts // SECONDS_PER_DAY
    if len(day):
        day_min = int(day.min())
        span = int(day.max()) - day_min + 1
        ukey = np.unique(codes.astype(np.int64) * span + (day - day_min))
        ucode = ukey // span
        uday = (ukey % span + day_min).astype(float)
    else:
        ucode = np.zeros(0, dtype=np.int64)
        uday = np.zeros(0)
    n_days = np.bincount(ucode, minlength=n_paid)
    ends = np.cumsum(n_days) - 1
    starts = ends - n_days + 1
    first_day = uday[starts] if n_paid else np.zeros(0)
    last_day = uday[ends] if n_paid else np.zeros(0)

    # Gaps between consecutive purchase days of the same customer; the first day of
    # each customer gets gap 0, which never wins a max (gaps are >= 1).
    gap = np.zeros(len(uday))
    if len(uday) > 1:
        same = ucode[1:] == ucode[:-1]
        gap[1:] = np.where(same, np.diff(uday), 0.0)
    n_gaps = (n_days - 1).astype(float)
    span_days = last_day - first_day
    mean_gap = _safe_div(span_days, n_gaps)
    gap_sq = np.bincount(ucode, weights=gap * gap, minlength=n_paid)
    var = _safe_div(gap_sq, n_gaps) - mean_gap**2
    gap_std = np.where(n_gaps >= 2, np.sqrt(np.clip(var, 0.0, None)), np.nan)
    max_gap = np.maximum.reduceat(gap, starts) if n_paid else np.zeros(0)
    max_gap = np.where(n_gaps >= 1, max_gap, np.nan)
    last_gap = np.where(n_gaps >= 1, gap[ends] if n_paid else 0.0, np.nan)

    recency = cut_day - last_day
    tenure = cut_day - first_day

    # Refund / cancel shares over every customer in the universe.
    all_index = pd.Index(all_ids)

    def count_for(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.zeros(n_all)
        idx = all_index.get_indexer(cust_all[mask])
        return np.bincount(idx, minlength=n_all).astype(float)

    n_refund = count_for(is_refund)
    n_cancel = count_for(is_cancel)

    def pad(values: np.ndarray, fill: float) -> np.ndarray:
        """Extend a paid-customer array to every customer of the universe."""
        out = np.full(n_all, fill, dtype=float)
        out[:n_paid] = values
        return out

    n_orders_a = pad(n_orders, 0.0)
    cols: dict[str, np.ndarray] = {}
    cols["has_orders"] = pad(np.ones(n_paid), 0.0)
    cols["n_orders"] = n_orders_a
    cols["n_days"] = pad(n_days.astype(float), 0.0)
    cols["frequency"] = pad(n_days - 1.0, 0.0)
    cols["recency_days"] = pad(recency, np.nan)
    cols["tenure_days"] = pad(tenure, np.nan)
    cols["span_days"] = pad(span_days, np.nan)
    cols["monetary_total"] = pad(monetary_total, 0.0)
    cols["monetary_mean"] = pad(_safe_div(monetary_total, n_orders), np.nan)
    cols["log_n_orders"] = np.log1p(n_orders_a)
    cols["log_recency"] = np.log1p(cols["recency_days"])
    cols["log_tenure"] = np.log1p(cols["tenure_days"])
    cols["log_monetary_total"] = np.log1p(np.clip(cols["monetary_total"], 0, None))
    cols["log_monetary_mean"] = np.log1p(np.clip(cols["monetary_mean"], 0, None))
    cols["purchase_rate"] = pad(30.0 * n_days / np.maximum(tenure, 1.0), 0.0)
    cols["mean_gap_days"] = pad(mean_gap, np.nan)
    cols["gap_std_days"] = pad(gap_std, np.nan)
    cols["gap_cv"] = pad(_safe_div(gap_std, mean_gap), np.nan)
    cols["max_gap_days"] = pad(max_gap, np.nan)
    cols["last_gap_days"] = pad(last_gap, np.nan)
    cols["recency_gap_ratio"] = pad(_safe_div(recency, mean_gap), np.nan)
    cols["recency_maxgap_ratio"] = pad(_safe_div(recency, max_gap), np.nan)
    for w in WINDOWS:
        cols[f"orders_{w}d"] = pad(window_counts[w], 0.0)
    cols["amount_90d"] = pad(amount_90, 0.0)
    cols["amount_365d"] = pad(amount_365, 0.0)
    prev_90 = window_counts[180] - window_counts[90]
    cols["trend_90d"] = pad((window_counts[90] - prev_90) / (window_counts[90] + prev_90 + 1.0), 0.0)
    cols["recent_share_90d"] = pad(_safe_div(window_counts[90], n_orders), 0.0)
    cols["refund_share"] = _safe_div(n_refund, n_refund + n_orders_a)
    cols["cancel_share"] = _safe_div(n_cancel, n_cancel + n_refund + n_orders_a)
    np.nan_to_num(cols["refund_share"], copy=False, nan=0.0)
    np.nan_to_num(cols["cancel_share"], copy=False, nan=0.0)

    reg_col = np.full(n_all, np.nan)
    if customers is not None and len(customers):
        reg_s, reg_valid = _epoch_seconds(customers["registered_at"])
        reg_series = pd.Series(
            np.where(reg_valid, (cut_s - reg_s) / SECONDS_PER_DAY, np.nan),
            index=pd.Index(customers["customer_id"].to_numpy()),
        )
        reg_series = reg_series[~reg_series.index.duplicated(keep="first")]
        reg_col = reg_series.reindex(all_index).to_numpy(dtype=float)
        # A registration "after" the cutoff is not known at the cutoff.
        reg_col[reg_col <= 0] = np.nan
    cols["days_since_registration"] = reg_col

    out = pd.DataFrame(cols, index=pd.Index(all_ids, name="customer_id"))
    out = out[FEATURE_COLUMNS]
    if not out.index.is_monotonic_increasing:
        out = out.sort_index()
    return out
