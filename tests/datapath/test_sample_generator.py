"""The sample member base: reproducible, and sized the way the benchmarks ask."""
from __future__ import annotations

import pandas as pd

from userops.sample.generator import generate


def test_same_seed_same_data_and_orders_per_customer_knob():
    a = generate(3000, seed=11, as_of="2026-11-20")
    b = generate(3000, seed=11, as_of="2026-11-20")
    pd.testing.assert_frame_equal(a.orders, b.orders)
    natural = len(a.orders) / 3000
    assert 4 < natural < 9  # the model's own rate, ~6 orders a member
    dense = generate(3000, seed=11, as_of="2026-11-20", orders_per_customer=10)
    assert 9.0 < len(dense.orders) / 3000 < 11.0
    # every order still belongs to a member and was paid by the as-of day
    assert dense.orders["customer_id"].isin(dense.customers["customer_id"]).all()
    assert (dense.orders["paid_at"] <= pd.Timestamp("2026-11-20")).all()
