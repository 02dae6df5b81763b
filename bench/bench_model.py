"""Benchmark of the churn-model core on synthetic data (run by hand, prints figures).

    python bench/bench_model.py [--customers 1000000] [--orders-per-customer 10]

Generates ~10 M orders for 1 M customers with numpy (BG/NBD-like: gamma-distributed
purchase rates, geometric dropout, lognormal amounts, some refunds and cancellations),
then times feature building (from the raw orders: the fold into the per-customer aggregate,
then the features from it; nightly scoring does only the second step, on customer_aggregates),
training (train_model: features at T-2H and T-H, BG/NBD fit,
logistic fit, calibration, holdout evaluation), the predict step, reasons and rendering,
and PSI; finally peak RSS.  Targets (issue 4): training <= 60 s, predict >= 500,000
customers/s, peak memory <= 4 GB.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.drift import MAIN_FEATURES, drift_report  # noqa: E402
from models.explain import render_reason_columns  # noqa: E402
from models.features import aggregate_orders, build_features, features_from_aggregates  # noqa: E402
from models.train import train_model  # noqa: E402

DAY_NS = 86_400 * 10**9


def synth(n_customers: int, orders_per_customer: float, seed: int = 0, end="2024-01-01", years: int = 3):
    """(orders, customers) frames, fully vectorized."""
    rng = np.random.default_rng(seed)
    end_ts = pd.Timestamp(end)
    span_days = 365 * years
    # Customer start (first purchase) day, purchase rate (per day) and lifetime.
    start = rng.uniform(0, span_days, n_customers)
    rate = rng.gamma(shape=0.8, scale=orders_per_customer / 0.8 / 365.0, size=n_customers)
    life = rng.exponential(365.0, n_customers) * rng.uniform(0.3, 3.0, n_customers)
    # Number of orders while alive and inside the window (at least one: the first).
    active = np.minimum(life, span_days - start)
    n = 1 + rng.poisson(rate * active)
    cust = np.repeat(np.arange(n_customers, dtype=np.int64), n)
    # Order times: first at start, the others uniform over the active period.
    first = np.zeros(len(cust), dtype=bool)
    first[np.concatenate([[0], np.cumsum(n)[:-1]])] = True
    t = start[cust] + np.where(first, 0.0, rng.uniform(0, 1, len(cust)) * active[cust])
    paid_at = end_ts - pd.Timedelta(days=span_days) + pd.to_timedelta((t * DAY_NS).astype(np.int64), unit="ns")
    status_draw = rng.uniform(size=len(cust))
    status = np.where(status_draw < 0.93, "paid", np.where(status_draw < 0.98, "refunded", "cancelled"))
    orders = pd.DataFrame(
        {
            "order_id": np.arange(1, len(cust) + 1, dtype=np.int64),
            "customer_id": cust + 1,
            "paid_at": paid_at,
            "amount": np.round(rng.lognormal(3.5, 0.8, len(cust)), 2),
            "status": pd.Categorical(status, categories=["paid", "refunded", "cancelled"]),
        }
    )
    registered = end_ts - pd.Timedelta(days=span_days) + pd.to_timedelta(
        ((start - rng.exponential(20.0, n_customers)) * DAY_NS).astype(np.int64), unit="ns"
    )
    customers = pd.DataFrame({"customer_id": np.arange(1, n_customers + 1, dtype=np.int64), "registered_at": registered})
    # 5 % extra registered customers who never ordered.
    n_extra = n_customers // 20
    extra = pd.DataFrame(
        {
            "customer_id": np.arange(n_customers + 1, n_customers + n_extra + 1, dtype=np.int64),
            "registered_at": end_ts - pd.to_timedelta((rng.uniform(1, span_days, n_extra) * DAY_NS).astype(np.int64), unit="ns"),
        }
    )
    return orders, pd.concat([customers, extra], ignore_index=True), end_ts


class Timer:
    """Wall and CPU time of a block (CPU time is what the step costs on an idle machine;
    the wall time also counts waiting for a busy CPU)."""

    def __enter__(self):
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0

    def __str__(self):
        return f"{self.wall:6.2f} s wall, {self.cpu:6.2f} s cpu"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders-per-customer", type=float, default=10.0)
    ap.add_argument("--horizon", type=int, default=90)
    args = ap.parse_args()

    t0 = time.perf_counter()
    orders, customers, today = synth(args.customers, args.orders_per_customer)
    t_gen = time.perf_counter() - t0
    print(f"synthetic data: {len(customers):,} customers, {len(orders):,} orders ({t_gen:.1f} s to generate)")

    with Timer() as t_build:
        features = build_features(orders, customers, today)
    print(f"build_features (1 cutoff):     {t_build}  ({len(features):,} rows x {features.shape[1]} columns)")
    with Timer() as t_agg:
        agg = aggregate_orders(orders, today)
    print(f"  aggregate_orders:            {t_agg}  (what customer_aggregates holds: {len(agg):,} rows)")
    with Timer() as t_feat:
        from_agg = features_from_aggregates(agg, customers, today)
    assert from_agg.equals(features)
    print(f"  features_from_aggregates:    {t_feat}  (the nightly scoring step)")

    cutoff = today - pd.Timedelta(days=args.horizon)  # latest cutoff whose labels are complete
    with Timer() as t_train:
        model = train_model(orders, customers, cutoff, args.horizon)
    m = model.metrics
    print(
        f"train_model (end to end):      {t_train}  target <= 60 s\n"
        f"    (features at two cutoffs, labels, BG/NBD, logistic fit, holdout; n_train {model.n_train:,}; "
        f"holdout AUC {m['roc_auc']:.3f}, Brier {m['brier']:.3f}, churn rate {m['churn_rate']:.3f})"
    )

    with Timer() as t_pred:
        probs = model.predict_proba(features)
    rate_wall, rate_cpu = len(features) / t_pred.wall, len(features) / max(t_pred.cpu, 1e-9)
    print(f"predict_proba:                 {t_pred}  = {rate_wall:,.0f} customers/s wall ({rate_cpu:,.0f}/s cpu)  target >= 500,000/s")

    with Timer() as t_expl:
        explained = model.explain(features, probs)
    print(f"explain (bands + top-3 codes): {t_expl}")
    for lang in ("en", "zh-CN"):
        with Timer() as t_r:
            text = render_reason_columns(explained, lang)
        print(f"render reasons {lang:6s}:         {t_r}  e.g. {text.iloc[0, 0]!r}")

    with Timer() as t_drift:
        current = features[MAIN_FEATURES].assign(score=probs)
        report = drift_report(model.drift_profile, current)
    print(f"drift (PSI of {len(report)} columns):    {t_drift}  max PSI {report['psi'].max():.3f}")

    wall = t_feat.wall + t_pred.wall + t_expl.wall
    cpu = t_feat.cpu + t_pred.cpu + t_expl.cpu
    print(f"scoring path (features from the aggregate + predict + explain): {wall:.2f} s wall, {cpu:.2f} s cpu")
    print(f"peak RSS: {peak_rss_mb():,.0f} MB   target <= 4,096 MB")


if __name__ == "__main__":
    main()
