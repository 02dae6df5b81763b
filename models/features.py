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

    # Universe of customers, sorted: anyone with an order before the cutoff, plus
    # registered customers (registered before the cutoff or with unknown date).
    paid_cust = cust_all[is_paid]
    codes_paid, paid_uniques = pd.factorize(paid_cust, sort=False)
    paid_uniques = np.asarray(paid_uniques)
    id_parts = [paid_uniques, cust_all[any_before & ~is_paid]]
    reg_ids = reg_days = None
    if customers is not None and len(customers):
        reg_s, reg_valid = _epoch_seconds(customers["registered_at"])
        known = ~reg_valid | (reg_s < cut_s)
        id_parts.append(customers["customer_id"].to_numpy()[known])
        reg_ids = customers["customer_id"].to_numpy()[known & reg_valid]
        reg_days = (cut_s - reg_s[known & reg_valid]) / SECONDS_PER_DAY
    all_ids = np.sort(pd.unique(np.concatenate(id_parts)))
    n_all = len(all_ids)
    # Position of each paid order's customer in the universe.
    codes = np.searchsorted(all_ids, paid_uniques)[codes_paid]

    # --- paid-order aggregates ---------------------------------------------------------
    ts = paid_s[is_paid]
    amount = orders["amount"].to_numpy(dtype=float, na_value=np.nan)[is_paid]
    # Amounts are summed in whole cents: sums of integers are exact in float64, so the
    # features do not depend on the order of the rows (bit for bit).
    cents = np.rint(np.nan_to_num(amount, nan=0.0) * 100.0)
    age_days = (cut_s - ts) / SECONDS_PER_DAY  # > 0 by construction

    # Counts and amounts per (customer, age bucket) in one pass each: bucket b holds the
    # orders with WINDOWS[b-1] < age <= WINDOWS[b] (bucket 0: age <= 30 days, last: older
    # than a year); cumulative sums over buckets give the windows.
    n_buckets = len(WINDOWS) + 1
    bucket = np.searchsorted(np.asarray(WINDOWS, dtype=float), age_days, side="left")
    cell = codes.astype(np.int64) * n_buckets + bucket
    cell_counts = np.bincount(cell, minlength=n_all * n_buckets).reshape(n_all, n_buckets)
    cell_amounts = np.bincount(cell, weights=cents, minlength=n_all * n_buckets).reshape(n_all, n_buckets) / 100.0
    cum_counts = np.cumsum(cell_counts, axis=1, dtype=float)
    cum_amounts = np.cumsum(cell_amounts, axis=1)
    n_orders = cum_counts[:, -1].copy()
    monetary_total = cum_amounts[:, -1].copy()
    window_counts = {w: cum_counts[:, i].copy() for i, w in enumerate(WINDOWS)}
    amount_90 = cum_amounts[:, WINDOWS.index(90)].copy()
    amount_365 = cum_amounts[:, WINDOWS.index(365)].copy()
    del cell, cell_counts, cell_amounts, cum_counts, cum_amounts

    # Distinct purchase days per customer: one sort of (customer, day) keys.
    day = ts // SECONDS_PER_DAY
    if len(day):
        day_min = int(day.min())
        span = int(day.max()) - day_min + 1
        key = codes.astype(np.int64) * span + (day - day_min)
        key.sort()
        keep = np.empty(len(key), dtype=bool)
        keep[0] = True
        np.not_equal(key[1:], key[:-1], out=keep[1:])
        ukey = key[keep]
        ucode = ukey // span
        uday = (ukey % span + day_min).astype(float)
    else:
        ucode = np.zeros(0, dtype=np.int64)
        uday = np.zeros(0)
    n_days = np.bincount(ucode, minlength=n_all).astype(float)
    has = n_days > 0
    ends = (np.cumsum(n_days) - 1).astype(np.int64)
    starts = ends - n_days.astype(np.int64) + 1
    first_day = np.full(n_all, np.nan)
    last_day = np.full(n_all, np.nan)
    first_day[has] = uday[starts[has]]
    last_day[has] = uday[ends[has]]

    # Gaps between consecutive purchase days of the same customer; the first day of
    # each customer gets gap 0, which never wins a max (gaps are >= 1).
    gap = np.zeros(len(uday))
    if len(uday) > 1:
        same = ucode[1:] == ucode[:-1]
        gap[1:] = np.where(same, np.diff(uday), 0.0)
    n_gaps = n_days - 1.0  # -1 for customers without a paid order
    repeat = n_gaps >= 1
    span_days = last_day - first_day
    mean_gap = np.full(n_all, np.nan)
    mean_gap[repeat] = span_days[repeat] / n_gaps[repeat]
    gap_sq = np.bincount(ucode, weights=gap * gap, minlength=n_all)
    gap_std = np.full(n_all, np.nan)
    two = n_gaps >= 2
    gap_std[two] = np.sqrt(np.clip(gap_sq[two] / n_gaps[two] - mean_gap[two] ** 2, 0.0, None))
    max_gap = np.full(n_all, np.nan)
    last_gap = np.full(n_all, np.nan)
    if has.any():
        max_gap[has] = np.maximum.reduceat(gap, starts[has])
        last_gap[has] = gap[ends[has]]
    max_gap[~repeat] = np.nan
    last_gap[~repeat] = np.nan

    recency = cut_day - last_day
    tenure = cut_day - first_day

    # Refund / cancel counts before the cutoff.
    def count_for(mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return np.zeros(n_all)
        return np.bincount(np.searchsorted(all_ids, cust_all[mask]), minlength=n_all).astype(float)

    n_refund = count_for(is_refund)
    n_cancel = count_for(is_cancel)

    # One Fortran-ordered block: each column is contiguous and the DataFrame wraps it
    # without a copy.
    data = np.empty((n_all, len(FEATURE_COLUMNS)), dtype=float, order="F")
    col_index = {name: j for j, name in enumerate(FEATURE_COLUMNS)}

    def put(name: str, values) -> None:
        data[:, col_index[name]] = values

    with np.errstate(divide="ignore", invalid="ignore"):
        put("has_orders", has)
        put("n_orders", n_orders)
        put("n_days", n_days)
        put("frequency", np.where(has, n_gaps, 0.0))
        put("recency_days", recency)
        put("tenure_days", tenure)
        put("span_days", span_days)
        put("monetary_total", monetary_total)
        put("monetary_mean", _safe_div(monetary_total, n_orders))
        put("log_n_orders", np.log1p(n_orders))
        put("log_recency", np.log1p(recency))
        put("log_tenure", np.log1p(tenure))
        put("log_monetary_total", np.log1p(np.clip(monetary_total, 0, None)))
        put("log_monetary_mean", np.log1p(np.clip(data[:, col_index["monetary_mean"]], 0, None)))
        put("purchase_rate", np.where(has, 30.0 * n_days / np.maximum(tenure, 1.0), 0.0))
        put("mean_gap_days", mean_gap)
        put("gap_std_days", gap_std)
        put("gap_cv", _safe_div(gap_std, mean_gap))
        put("max_gap_days", max_gap)
        put("last_gap_days", last_gap)
        put("recency_gap_ratio", _safe_div(recency, mean_gap))
        put("recency_maxgap_ratio", _safe_div(recency, max_gap))
        for w in WINDOWS:
            put(f"orders_{w}d", window_counts[w])
        put("amount_90d", amount_90)
        put("amount_365d", amount_365)
        prev_90 = window_counts[180] - window_counts[90]
        put("trend_90d", (window_counts[90] - prev_90) / (window_counts[90] + prev_90 + 1.0))
        put("recent_share_90d", np.nan_to_num(_safe_div(window_counts[90], n_orders), nan=0.0))
        put("refund_share", np.nan_to_num(_safe_div(n_refund, n_refund + n_orders), nan=0.0))
        put("cancel_share", np.nan_to_num(_safe_div(n_cancel, n_cancel + n_refund + n_orders), nan=0.0))
        reg_col = data[:, col_index["days_since_registration"]]
        reg_col[:] = np.nan
        if reg_ids is not None and len(reg_ids):
            # A registration at or after the cutoff is not known at the cutoff.
            reg_col[np.searchsorted(all_ids, reg_ids)] = np.where(reg_days > 0, reg_days, np.nan)

    return pd.DataFrame(data, index=pd.Index(all_ids, name="customer_id"), columns=FEATURE_COLUMNS, copy=False)
