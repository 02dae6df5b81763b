"""Churn labels.

Population at cutoff T: customers with at least one *paid* order with paid_at < T.
Label: churned = 1 if the customer has no paid order with T <= paid_at < T + H
(half-open window: an order exactly at T counts as "came back", one exactly at T + H
does not).  Refunded and cancelled orders count for neither the population nor the label.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.features import SECONDS_PER_DAY, _epoch_seconds, _status_mask, _ts_seconds, as_naive_utc_timestamp


def build_labels(orders: pd.DataFrame, cutoff, horizon_days: int) -> pd.Series:
    """Series ``churned`` (int8, 1 = churned) indexed by customer_id (sorted)."""
    cutoff = as_naive_utc_timestamp(cutoff)
    if horizon_days <= 0:
        raise ValueError("horizon_days must be positive")
    cut_s = _ts_seconds(cutoff)
    end_s = cut_s + int(horizon_days) * SECONDS_PER_DAY

    paid_s, valid = _epoch_seconds(orders["paid_at"])
    paid = valid & _status_mask(orders["status"], "paid")
    cust = orders["customer_id"].to_numpy()

    population = pd.Index(cust[paid & (paid_s < cut_s)]).unique()
    came_back = pd.Index(cust[paid & (paid_s >= cut_s) & (paid_s < end_s)]).unique()
    churned = (~population.isin(came_back)).astype(np.int8)
    labels = pd.Series(churned, index=population.rename("customer_id"), name="churned")
    return labels.sort_index()


def labels_complete(last_data_at, cutoff, horizon_days: int) -> bool:
    """True when the label window [cutoff, cutoff + H) is fully observed by last_data_at."""
    end = as_naive_utc_timestamp(cutoff) + pd.Timedelta(days=int(horizon_days))
    return as_naive_utc_timestamp(last_data_at) >= end


def latest_complete_cutoff(as_of, horizon_days: int) -> pd.Timestamp:
    """The latest cutoff T (a midnight) whose labels [T, T+H) are complete at ``as_of``.

    ``as_of`` is the moment the data is known up to (exclusive), e.g. today's midnight
    for a nightly run: T = floor(as_of) - H.
    """
    return as_naive_utc_timestamp(as_of).floor("D") - pd.Timedelta(days=int(horizon_days))
