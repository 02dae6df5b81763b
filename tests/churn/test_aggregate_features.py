"""Nightly scoring reads its features from ``customer_aggregates`` (maintained incrementally
by the tags stage): they must equal the features training computes from the raw orders for
the same day, after a full build and after an incremental night (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from models import scoring
from models.features import FEATURE_COLUMNS, build_features
from tasks import tags
from tests.tags.factory import set_order
from userops.db import bulk_upsert

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="module")
def random_base():
    from userops.sample.generator import generate

    return generate(400, seed=11, as_of=str(AS_OF + timedelta(days=1)), with_events=False)


def from_orders(conn, as_of: date) -> pd.DataFrame:
    frames = scoring.load_frames(conn, as_of)
    f = build_features(frames.orders, frames.customers, frames.cutoff, **scoring.feature_params(as_of))
    return f.set_axis(pd.Index(frames.ids[f.index.to_numpy()], name="customer_id")).sort_index()


def from_aggregates(conn, as_of: date) -> pd.DataFrame:
    night = scoring.load_features(conn, as_of)
    assert night.source == "aggregates", night.why
    f = night.features
    return f.set_axis(pd.Index(night.ids[f.index.to_numpy()], name="customer_id")).sort_index()


def assert_same_features(engine, as_of: date) -> pd.DataFrame:
    with engine.connect() as conn:
        a, b = from_aggregates(conn, as_of), from_orders(conn, as_of)
    assert list(a.columns) == FEATURE_COLUMNS
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-12, atol=1e-9)
    return a


def night_delta(engine, data, day: date, rng: np.random.Generator) -> None:
    """Random changes at the source for ``day``: new orders (some in the evening UTC, i.e.
    the next local day in Shanghai), refunds and cancellations of old orders, a changed
    amount, a new member without orders."""
    ids = data.customers["customer_id"].to_numpy()
    start = pd.Timestamp(day) - pd.Timedelta(hours=8)  # local midnight of ``day`` in UTC
    n = 25
    new = pd.DataFrame(
        {
            "order_id": [f"N{day:%m%d}{i:03d}" for i in range(n)],
            "customer_id": rng.choice(ids, n),
            "paid_at": (start + pd.to_timedelta(rng.integers(0, 86_399, n), unit="s")).astype("datetime64[us]"),
            "status": rng.choice(["paid", "paid", "paid", "refunded", "cancelled"], n),
            "amount": np.round(rng.uniform(5, 500, n), 2),
            "discount_amount": 0.0,
            "store": "online",
            "channel": "app",
            "updated_at": pd.Timestamp(day) + pd.Timedelta(hours=2),
        }
    )
    new["updated_at"] = new["updated_at"].astype("datetime64[us]")
    member = data.customers.iloc[:1].copy()
    member["customer_id"] = f"NEW{day:%m%d}"
    member["registered_at"] = (start + pd.Timedelta(hours=3)).to_datetime64()
    with engine.begin() as conn:
        bulk_upsert(conn, "customers", member, ["customer_id"])
        bulk_upsert(conn, "orders", new, ["order_id"])
    stamp = (pd.Timestamp(day) + pd.Timedelta(hours=3)).to_pydatetime()
    old = data.orders["order_id"].to_numpy()
    for oid, status in zip(rng.choice(old, 4, replace=False), ["refunded", "cancelled", "refunded", "paid"]):
        set_order(engine, oid, status=status, updated_at=stamp)
    set_order(engine, str(rng.choice(old)), amount=123.45, updated_at=stamp)


def test_features_from_the_aggregate_equal_features_from_the_orders(warehouse, random_base):
    from tests.churn.conftest import load

    load(warehouse, random_base)
    rng = np.random.default_rng(5)
    with warehouse.begin() as conn:
        assert tags.refresh_aggregates(conn, AS_OF)["mode"] == "full"
    first = assert_same_features(warehouse, AS_OF)
    assert first["has_orders"].sum() > 200 and (first["has_orders"] == 0).sum() > 20
    assert (first["returned_share"] > 0).any() and (first["frequency"] > 0).any()

    for k in (1, 2):  # two incremental nights with random changes
        day = AS_OF + timedelta(days=k)
        night_delta(warehouse, random_base, day, rng)
        with warehouse.begin() as conn:
            assert tags.refresh_aggregates(conn, day)["mode"] == "incremental"
        f = assert_same_features(warehouse, day)
        assert f.loc[f"NEW{day:%m%d}", "has_orders"] == 0


def test_scoring_falls_back_to_the_orders_when_the_aggregate_is_stale(warehouse, random_base):
    from tests.churn.conftest import load

    load(warehouse, random_base)
    with warehouse.begin() as conn:
        tags.refresh_aggregates(conn, AS_OF - timedelta(days=1))
    with warehouse.connect() as conn:
        night = scoring.load_features(conn, AS_OF)
    assert night.source == "orders" and "not 2026-11-20" in night.why
    with warehouse.connect() as conn:
        expected = from_orders(conn, AS_OF)
    got = night.features.set_axis(pd.Index(night.ids[night.features.index.to_numpy()], name="customer_id")).sort_index()
    pd.testing.assert_frame_equal(got, expected)
