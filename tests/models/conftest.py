"""Small synthetic order logs for the churn-model tests (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

DAY_NS = 86_400 * 10**9


def make_orders(n_customers: int = 3000, seed: int = 0, start: str = "2023-01-01", days: int = 730):
    """(orders, customers): BG/NBD-like buyers plus registered customers who never bought
    before the end (some of them buy late, so the no-order rule has both outcomes)."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start)
    first = rng.uniform(0, days * 0.8, n_customers)
    rate = rng.gamma(0.9, 1 / 25.0, n_customers)  # purchases per day
    life = rng.exponential(250.0, n_customers)
    active = np.minimum(life, days - first)
    n = 1 + rng.poisson(rate * active)
    cust = np.repeat(np.arange(n_customers), n)
    is_first = np.zeros(len(cust), dtype=bool)
    is_first[np.concatenate([[0], np.cumsum(n)[:-1]])] = True
    t = first[cust] + np.where(is_first, 0.0, rng.uniform(0, 1, len(cust)) * active[cust])
    u = rng.uniform(size=len(cust))
    status = np.where(u < 0.9, "paid", np.where(u < 0.96, "refunded", "cancelled"))
    status[is_first] = "paid"
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, len(cust) + 1),
            "customer_id": cust + 1,
            "paid_at": t0 + pd.to_timedelta((t * DAY_NS).astype(np.int64), unit="ns"),
            "amount": np.round(rng.lognormal(3.3, 0.7, len(cust)), 2),
            "status": status,
        }
    )
    reg = t0 + pd.to_timedelta(((first - rng.exponential(10.0, n_customers)) * DAY_NS).astype(np.int64), unit="ns")
    buyers = pd.DataFrame({"customer_id": np.arange(1, n_customers + 1), "registered_at": reg})
    # Registered-only customers; 30 % of them place one late order.
    n_reg = n_customers // 5
    reg_only_ids = np.arange(n_customers + 1, n_customers + n_reg + 1)
    reg_t = rng.uniform(0, days, n_reg)
    registered = pd.DataFrame(
        {"customer_id": reg_only_ids, "registered_at": t0 + pd.to_timedelta((reg_t * DAY_NS).astype(np.int64), unit="ns")}
    )
    late = rng.uniform(size=n_reg) < 0.3
    late_t = reg_t[late] + rng.exponential(60.0, late.sum())
    keep = late_t < days
    late_orders = pd.DataFrame(
        {
            "order_id": np.arange(len(orders) + 1, len(orders) + keep.sum() + 1),
            "customer_id": reg_only_ids[late][keep],
            "paid_at": t0 + pd.to_timedelta((late_t[keep] * DAY_NS).astype(np.int64), unit="ns"),
            "amount": 20.0,
            "status": "paid",
        }
    )
    orders = pd.concat([orders, late_orders], ignore_index=True)
    customers = pd.concat([buyers, registered], ignore_index=True)
    return orders, customers


@pytest.fixture(scope="session")
def synthetic():
    return make_orders()


def orders_frame(rows):
    """Canonical orders from (customer_id, 'YYYY-MM-DD[ HH:MM]', amount, status) tuples."""
    df = pd.DataFrame(rows, columns=["customer_id", "paid_at", "amount", "status"])
    df.insert(0, "order_id", np.arange(1, len(df) + 1))
    df["paid_at"] = pd.to_datetime(df["paid_at"], format="ISO8601")
    df["amount"] = df["amount"].astype(float)
    return df
