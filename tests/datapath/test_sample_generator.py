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


def test_a_sample_history_never_reaches_past_the_clock(monkeypatch):
    """At 02:00 in Shanghai (18:00 UTC the day before) the shop's today is a day ahead of
    UTC: a sample up to its midnight held orders stamped in the future, which validation
    rejects (the demo and the deployment tests failed in those hours)."""
    from userops.clock import sample_history_end, shop_today
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_NOW", "2026-12-06T18:00:00")
    monkeypatch.setenv("USEROPS_TIMEZONE", "Asia/Shanghai")
    reset_settings()
    assert str(shop_today()) == "2026-12-07"
    assert pd.Timestamp(sample_history_end()) <= pd.Timestamp("2026-12-06T18:00:00")  # the history's end (UTC midnight)
    data = generate(200, seed=2, as_of=str(sample_history_end()))
    newest = max(data.orders["paid_at"].max(), data.orders["updated_at"].max())
    assert newest <= pd.Timestamp("2026-12-06T18:00:00")
