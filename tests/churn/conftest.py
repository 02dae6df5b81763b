"""Churn warehouse tests: a generated member base (a few thousand customers) loaded with
bulk_upsert into the ``warehouse`` fixture (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import date

import pytest

AS_OF = date(2026, 11, 20)


@pytest.fixture(scope="session")
def member_base():
    from userops.sample.generator import generate

    return generate(3000, seed=3, as_of="2026-11-21", with_events=False)


def load(engine, data) -> None:
    from userops.db import bulk_upsert

    with engine.begin() as conn:
        bulk_upsert(conn, "customers", data.customers, ["customer_id"])
        bulk_upsert(conn, "orders", data.orders, ["order_id"])


@pytest.fixture
def loaded(warehouse, member_base):
    """The warehouse with the member base loaded; returns the engine."""
    load(warehouse, member_base)
    from models import registry

    registry._CACHE.clear()
    return warehouse
