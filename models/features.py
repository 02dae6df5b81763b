"""Per-customer churn features as of a cutoff, from a per-customer order *aggregate*.

Two steps, so that nightly scoring and training compute the very same function of the data:

1. ``aggregate_orders(orders, cutoff, ...)``: the raw order log folded into one row per
   customer (``AGGREGATE_COLUMNS``).  These are exactly the columns of the warehouse's
   ``customer_aggregates`` table (issue 3), which the tags stage maintains incrementally from
   the nightly delta: first / last paid order time, paid orders, paid amount, distinct
   shop-local purchase days, paid orders and amount in the loyalty window, refunded or
   cancelled orders.  Every column is a fold over the customer's orders that an incremental
   refresh can carry, so nightly scoring never reads the order table
   (``models.scoring.load_features``).
2. ``features_from_aggregates(aggregates, customers, cutoff, ...)``: the aggregate (plus the
   registration date) -> ``FEATURE_COLUMNS``, vectorized over customers.

``build_features(orders, customers, cutoff)`` is 2 after 1: what training and backtests use
(they need point-in-time features at past cutoffs, so they read the orders).  A test in
``tests/churn`` proves that features from the maintained ``customer_aggregates`` equal
``build_features`` on the raw orders, on SQLite and PostgreSQL.

Leakage: only orders with ``paid_at`` strictly before the cutoff are folded in; orders at or
after it cannot change any feature (tested in ``tests/models``).  "paid" orders drive every
purchase feature; refunded and cancelled ones only feed ``returned_share``.

A customer is in the frame if they registered before the cutoff (``customers``) or placed
any order before it.  Customers without a paid order get ``has_orders = 0`` and NaN timing
features; the model scores them with the no-order rule (see ``models.train``).

Days: a purchase day is a calendar day in the shop's timezone, given as a fixed UTC offset
``day_offset_minutes`` (the tags use the same: the offset on the business day), 0 = UTC.
Recency, tenure and span count whole days between purchase days and the cutoff's day.
The window (``window_days``, the tags' loyalty window, default 365) is the cutoff's day and
the ``window_days`` days before it: paid_at >= cutoff - (window_days + 1) days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
DEFAULT_WINDOW_DAYS = 365
# Bumped when the meaning of the features changes: a champion trained on another version
# is retrained before it scores (``models.scoring.needs_training``).
FEATURE_VERSION = 2

# The per-customer aggregate (index customer_id).  Times are epoch seconds (float, NaN if none).
AGGREGATE_COLUMNS: list[str] = [
    "first_paid_s",  # first paid order (customer_aggregates.first_paid_at)
    "last_paid_s",  # last paid order (last_paid_at)
    "paid_orders",
    "paid_amount",
    "purchase_days",  # distinct shop-local days with a paid order
    "window_orders",  # paid orders in the window
    "window_amount",
    "returned_orders",  # refunded or cancelled orders
]

# Columns produced by build_features / features_from_aggregates, in order.
FEATURE_COLUMNS: list[str] = [
    "has_orders",  # 1 if at least one paid order before the cutoff
    "n_orders",  # paid orders
    "n_days",  # distinct purchase days
    "frequency",  # repeat purchase days = n_days - 1 (BG/NBD "x")
    "recency_days",  # days since the last purchase day
    "tenure_days",  # days since the first purchase day (BG/NBD "T")
    "span_days",  # last - first purchase day (BG/NBD "t_x")
    "monetary_total",
    "monetary_mean",  # mean amount per paid order
    "log_n_orders",
    "log_recency",
    "log_tenure",
    "log_monetary_total",
    "log_monetary_mean",
    "purchase_rate",  # purchase days per 30 days of tenure
    "mean_gap_days",  # usual days between purchase days: span / (n_days - 1) (NaN with one day)
    "recency_gap_ratio",  # recency / mean gap: > 1 means "later than usual"
    "orders_per_day",  # paid orders per purchase day
    "window_orders",  # paid orders in the window (the cutoff's day and window_days before)
    "window_amount",
    "prev_window_orders",  # paid orders per window length before the window (NaN: too little history)
    "window_trend",  # (window rate - earlier rate) / (sum), in [-1, 1]; 0 without earlier history
    "returned_share",  # refunded or cancelled / all orders before the cutoff
    "days_since_registration",  # NaN when registered_at is unknown
]

# Earlier history needed before the window for a rate to compare with (days).
MIN_PRIOR_DAYS = 30


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


def window_start_seconds(cut_s: int, window_days: int) -> int:
    """Start of the window: the cutoff's day and the ``window_days`` days before it."""
    return int(cut_s) - (int(window_days) + 1) * SECONDS_PER_DAY


def _cents(x: np.ndarray) -> np.ndarray:
    """Money rounded to whole cents (sums of cents are exact, whatever the row order)."""
    return np.rint(np.nan_to_num(np.asarray(x, dtype=float), nan=0.0) * 100.0)


def aggregate_orders(orders: pd.DataFrame, cutoff, day_offset_minutes: int = 0, window_days: int = DEFAULT_WINDOW_DAYS) -> pd.DataFrame:
    """The raw order log folded into one row per customer with an order before ``cutoff``
    (index customer_id, sorted; ``AGGREGATE_COLUMNS``): what ``customer_aggregates`` holds.

    orders: customer_id, paid_at (datetime64), amount, status.  Vectorized (factorize,
    bincount, one sort of (customer, day) keys)."""
    cut_s = _ts_seconds(as_naive_utc_timestamp(cutoff))
    win_s = window_start_seconds(cut_s, window_days)
    paid_s, valid = _epoch_seconds(orders["paid_at"])
    before = valid & (paid_s < cut_s)
    status = orders["status"]
    is_paid = before & _status_mask(status, "paid")
    is_returned = before & (_status_mask(status, "refunded") | _status_mask(status, "cancelled"))
    cust = orders["customer_id"].to_numpy()
    keep = is_paid | is_returned
    codes, ids = pd.factorize(cust[keep], sort=True)
    ids = np.asarray(ids)
    n = len(ids)
    paid = is_paid[keep]
    pc = codes[paid].astype(np.int64)
    ts = paid_s[keep][paid]
    cents = _cents(orders["amount"].to_numpy(dtype=float, na_value=np.nan)[keep][paid])
    in_win = ts >= win_s

    paid_orders = np.bincount(pc, minlength=n).astype(float)
    paid_amount = np.bincount(pc, weights=cents, minlength=n) / 100.0
    window_orders = np.bincount(pc[in_win], minlength=n).astype(float)
    window_amount = np.bincount(pc[in_win], weights=cents[in_win], minlength=n) / 100.0
    returned = np.bincount(codes[~paid], minlength=n).astype(float)
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    purchase_days = np.zeros(n)
    if len(ts):
        # One sort of (customer, time) keys gives first, last and the distinct purchase days.
        t_min = int(ts.min())
        span = int(ts.max()) - t_min + 1
        key = pc * span + (ts - t_min)
        key.sort()
        c = key // span
        t = key - c * span + t_min
        del key
        start = np.empty(len(c), dtype=bool)
        start[0] = True
        np.not_equal(c[1:], c[:-1], out=start[1:])
        end = np.empty(len(c), dtype=bool)
        end[-1] = True
        end[:-1] = start[1:]
        first[c[start]] = t[start]
        last[c[end]] = t[end]
        day = (t + int(day_offset_minutes) * 60) // SECONDS_PER_DAY
        new_day = start.copy()
        new_day[1:] |= day[1:] != day[:-1]
        purchase_days = np.bincount(c[new_day], minlength=n).astype(float)
    out = pd.DataFrame(
        {
            "first_paid_s": first,
            "last_paid_s": last,
            "paid_orders": paid_orders,
            "paid_amount": paid_amount,
            "purchase_days": purchase_days,
            "window_orders": window_orders,
            "window_amount": window_amount,
            "returned_orders": returned,
        },
        index=pd.Index(ids, name="customer_id"),
    )
    return out


def features_from_aggregates(
    aggregates: pd.DataFrame,
    customers: pd.DataFrame | None,
    cutoff,
    day_offset_minutes: int = 0,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> pd.DataFrame:
    """One row per customer (index ``customer_id``, sorted) with FEATURE_COLUMNS.

    aggregates: index customer_id, AGGREGATE_COLUMNS (as ``aggregate_orders`` returns or as
    read from ``customer_aggregates``); customers: optional customer_id and registered_at
    (datetime64, may be NaT), or ``reg_s`` (epoch seconds, NaN unknown).
    """
    cut_s = _ts_seconds(as_naive_utc_timestamp(cutoff))
    off_s = int(day_offset_minutes) * 60
    cut_day = (cut_s + off_s) / SECONDS_PER_DAY  # whole when the cutoff is a local midnight

    agg_ids = np.asarray(aggregates.index)
    id_parts = [agg_ids]
    reg_ids = reg_days = None
    if customers is not None and len(customers):
        if "reg_s" in customers.columns:
            reg_s = customers["reg_s"].to_numpy(dtype=float)
            reg_valid = np.isfinite(reg_s)
            reg_s = np.where(reg_valid, reg_s, 0).astype(np.int64)
        else:
            reg_s, reg_valid = _epoch_seconds(customers["registered_at"])
        known = ~reg_valid | (reg_s < cut_s)
        cids = customers["customer_id"].to_numpy()
        id_parts.append(cids[known])
        reg_ids = cids[known & reg_valid]
        reg_days = (cut_s - reg_s[known & reg_valid]) / SECONDS_PER_DAY
    if len(id_parts) > 1:
        all_ids = np.sort(pd.unique(np.concatenate(id_parts)))
    else:
        all_ids = np.sort(agg_ids)
    n_all = len(all_ids)
    pos = np.searchsorted(all_ids, agg_ids)

    def col(name: str, fill: float = 0.0) -> np.ndarray:
        out = np.full(n_all, fill)
        out[pos] = aggregates[name].to_numpy(dtype=float, na_value=np.nan)
        return out

    n_orders = np.nan_to_num(col("paid_orders"))
    n_days = np.nan_to_num(col("purchase_days"))
    has = n_orders > 0
    n_days = np.where(has, np.maximum(n_days, 1.0), 0.0)
    first_s = np.where(has, col("first_paid_s", np.nan), np.nan)
    last_s = np.where(has, col("last_paid_s", np.nan), np.nan)
    first_day = np.floor((first_s + off_s) / SECONDS_PER_DAY)
    last_day = np.floor((last_s + off_s) / SECONDS_PER_DAY)
    monetary_total = _cents(col("paid_amount")) / 100.0
    window_orders = np.nan_to_num(col("window_orders"))
    window_amount = _cents(col("window_amount")) / 100.0
    returned = np.nan_to_num(col("returned_orders"))

    recency = cut_day - last_day
    tenure = cut_day - first_day
    span_days = last_day - first_day
    n_gaps = n_days - 1.0
    mean_gap = np.where(n_gaps >= 1, span_days / np.maximum(n_gaps, 1.0), np.nan)
    # Earlier history: the days of tenure before the window and the orders placed in them.
    w1 = float(window_days) + 1.0
    prior_days = tenure - w1
    prior = has & (prior_days >= MIN_PRIOR_DAYS)
    rate_window = window_orders / w1
    rate_prior = np.where(prior, (n_orders - window_orders) / np.where(prior, prior_days, 1.0), np.nan)
    rate_sum = rate_window + rate_prior

    data = np.empty((n_all, len(FEATURE_COLUMNS)), dtype=float, order="F")
    col_index = {name: j for j, name in enumerate(FEATURE_COLUMNS)}

    def put(name: str, values) -> None:
        data[:, col_index[name]] = values

    with np.errstate(divide="ignore", invalid="ignore"):
        monetary_mean = _safe_div(monetary_total, n_orders)
        put("has_orders", has)
        put("n_orders", n_orders)
        put("n_days", n_days)
        put("frequency", np.where(has, n_gaps, 0.0))
        put("recency_days", recency)
        put("tenure_days", tenure)
        put("span_days", span_days)
        put("monetary_total", monetary_total)
        put("monetary_mean", monetary_mean)
        put("log_n_orders", np.log1p(n_orders))
        put("log_recency", np.log1p(recency))
        put("log_tenure", np.log1p(tenure))
        put("log_monetary_total", np.log1p(np.clip(monetary_total, 0, None)))
        put("log_monetary_mean", np.log1p(np.clip(monetary_mean, 0, None)))
        put("purchase_rate", np.where(has, 30.0 * n_days / np.maximum(tenure, 1.0), 0.0))
        put("mean_gap_days", mean_gap)
        put("recency_gap_ratio", _safe_div(recency, mean_gap))
        put("orders_per_day", np.where(has, n_orders / np.maximum(n_days, 1.0), 0.0))
        put("window_orders", window_orders)
        put("window_amount", window_amount)
        put("prev_window_orders", rate_prior * w1)
        put("window_trend", np.where(prior & (rate_sum > 0), (rate_window - rate_prior) / np.where(rate_sum > 0, rate_sum, 1.0), 0.0))
        put("returned_share", np.nan_to_num(_safe_div(returned, returned + n_orders), nan=0.0))
        reg_col = data[:, col_index["days_since_registration"]]
        reg_col[:] = np.nan
        if reg_ids is not None and len(reg_ids):
            # A registration at or after the cutoff is not known at the cutoff.
            reg_col[np.searchsorted(all_ids, reg_ids)] = np.where(reg_days > 0, reg_days, np.nan)

    return pd.DataFrame(data, index=pd.Index(all_ids, name="customer_id"), columns=FEATURE_COLUMNS, copy=False)


def build_features(
    orders: pd.DataFrame,
    customers: pd.DataFrame | None,
    cutoff,
    day_offset_minutes: int = 0,
    window_days: int = DEFAULT_WINDOW_DAYS,
) -> pd.DataFrame:
    """FEATURE_COLUMNS per customer from the raw orders: ``features_from_aggregates`` of
    ``aggregate_orders`` (the same function nightly scoring applies to customer_aggregates).

    orders: columns order_id, customer_id, paid_at (datetime64), amount, status.
    customers: optional, columns customer_id and registered_at (datetime64, may be NaT).
    cutoff: features use only orders with paid_at < cutoff.
    """
    agg = aggregate_orders(orders, cutoff, day_offset_minutes, window_days)
    return features_from_aggregates(agg, customers, cutoff, day_offset_minutes, window_days)
