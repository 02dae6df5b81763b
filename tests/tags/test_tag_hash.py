"""The stored tag hashes keep their values: built one column at a time (each column hashed
once for both the own-values hash and the full one), they equal pandas' row hash of the same
columns, missing values included, so a night after an upgrade rewrites nothing that did not
change."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tasks import tags


def _tags() -> pd.DataFrame:
    n = 7
    return pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(n)],
        "lifecycle_stage": ["new", "active", "loyal", "silent", "churned", "prospect", "active"],
        "rfm_r": pd.array([1, 2, 3, 4, 5, None, 2], dtype="Int64"),
        "rfm_f": pd.array([1, 1, 2, 5, 3, None, 1], dtype="Int64"),
        "rfm_m": pd.array([5, 4, 3, 2, 1, None, 4], dtype="Int64"),
        "rfm_segment": ["新客户", "重要保持客户", None, "一般挽留客户", "流失客户", None, "重要保持客户"],
        "value_tier": ["low", "mid", "high", "low", "low", "low", "mid"],
        "crisis_priority": ["potential", "potential", "core", "ordinary", "ordinary", "ordinary", "potential"],
        "price_sensitive": pd.array([True, False, None, False, True, None, False], dtype="boolean"),
        "favourite_category": ["gift", None, "skincare", "makeup", "gift", None, "gift"],
        "preferred_channel": ["app", "web", None, "store", "app", None, "app"],
        "cluster_id": pd.array([0, 1, 2, None, 1, None, 0], dtype="Int64"),
        "ltv": [10.5, 200.0, 3000.25, 45.0, 12.0, 0.0, 200.0],
        "paid_orders": np.array([1, 3, 12, 2, 1, 0, 3], dtype="int64"),
        "first_paid_at": pd.to_datetime(["2026-01-02", "2025-05-01", "2024-02-03 10:00", "2025-01-01", "2024-01-01", None, "2025-05-01"], format="ISO8601").astype("datetime64[us]"),
        "last_paid_at": pd.to_datetime(["2026-01-02", "2026-05-01", "2026-06-03 10:00", "2025-09-01", "2024-01-01", None, "2026-05-01"], format="ISO8601").astype("datetime64[us]"),
    })


def test_the_hashes_equal_pandas_row_hashes():
    t = _tags()
    for c in tags.TAG_VALUE_COLUMNS:  # C6 holds C1's values
        t.loc[6, c] = t.loc[1, c]
    for columns in (tags.TAG_VALUE_COLUMNS, tags.OWN_COLUMNS, tags.RELATIVE_COLUMNS):
        expected = pd.util.hash_pandas_object(t[columns], index=False).to_numpy().view("int64")
        np.testing.assert_array_equal(tags.tag_hash(t, columns), expected)
    hashed: dict = {}
    own = tags.tag_hash(t, tags.OWN_COLUMNS, hashed)
    assert set(hashed) == set(tags.OWN_COLUMNS)
    full = tags.tag_hash(t, hashed=hashed)
    np.testing.assert_array_equal(own, tags.tag_hash(t, tags.OWN_COLUMNS))
    np.testing.assert_array_equal(full, tags.tag_hash(t))
    # rows 1 and 6 hold the same values: the same hash; any one value changed: another
    assert full[1] == full[6] and len(set(full[:6])) == 6
    t.loc[6, "rfm_r"] = 3
    assert tags.tag_hash(t)[6] != full[1]
