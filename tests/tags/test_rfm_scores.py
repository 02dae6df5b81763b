"""Quintile scores: counting (whole numbers or whole cents in a compact range), sorting (other
finite values) and ranking (anything else) give the same counts strictly below, ties included."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks import tags


def test_counts_below_agree_with_ranking():
    rng = np.random.default_rng(3)
    cases = [
        -rng.integers(0, 900, 5000).astype("float64"),  # minus days since the last order
        rng.integers(1, 40, 5000).astype("int64"),  # paid orders, many ties
        np.round(rng.lognormal(5, 1, 5000), 2),  # lifetime value: ranked
        np.array([3.0, 3.0, 3.0]),
        np.array([7.0]),
        np.array([0.0, 1e9, 5.0]),  # too wide a range to count: sorted
        np.round(rng.lognormal(4.8, 0.6, (5000, 3)).sum(axis=1), 2),  # lifetime value in cents, narrow: counted
        rng.lognormal(5, 1, 5000),  # not whole cents: sorted
        np.array([0.1, 0.2, 0.3, 0.1 + 0.2, 0.3]),  # 0.1 + 0.2 is not 0.3: never folded into a cent
        np.array([-2.5, -2.5, 1.25, -0.01, 0.0]),  # negative cents, ties
        np.array([np.nan, 2.0, 1.0, 2.0]),  # a missing value: ranked as pandas ranks it
    ]
    for v in cases:
        expected = pd.Series(np.asarray(v, dtype="float64")).rank(method="min").to_numpy() - 1
        np.testing.assert_array_equal(tags._below(v), expected)


def test_quintile_edges():
    # 10 distinct values: two per quintile; ties share the lower score
    np.testing.assert_array_equal(tags.quintile_scores(np.arange(10)), [1, 1, 2, 2, 3, 3, 4, 4, 5, 5])
    np.testing.assert_array_equal(tags.quintile_scores(np.array([5, 5, 5, 5, 9])), [1, 1, 1, 1, 5])
    assert len(tags.quintile_scores(np.array([]))) == 0
