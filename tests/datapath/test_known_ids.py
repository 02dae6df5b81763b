"""The referential check's id lookup: keyed IN lists and the whole-table hashes (a first
night's chunks) agree."""
import pandas as pd

import numpy as np

from tasks import ingest, load
from userops.db import bulk_upsert


def _customers(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "updated_at": pd.Timestamp("2026-11-20 10:00:00"),
        }
    )


def test_known_ids_keyed_and_whole_table_agree(warehouse):
    with warehouse.begin() as conn:
        bulk_upsert(conn, "customers", _customers(12_000), ["customer_id"])
    # 11,000 that exist (spread over three IN chunks of 5,000), 3,000 unknown, repeats, a null
    cand = pd.Series(
        [f"C{i:06d}" for i in range(1_000, 12_000)] + [f"X{i}" for i in range(3_000)] + ["C001000", None],
        dtype="string",
    )
    keyed = load.known_ids(warehouse, "customers", "customer_id", cand)
    orders = pd.DataFrame({"customer_id": cand})
    whole = ingest._chunk_refs(warehouse, "orders", orders, {}, whole_table=True)["customer_id"]
    by_key = ingest._chunk_refs(warehouse, "orders", orders, {}, whole_table=False)["customer_id"]
    assert keyed == set(np.asarray(whole).tolist()) == set(by_key)
    assert len(keyed) == 11_000
    assert "C000999" not in keyed and "X0" not in keyed and "C011999" in keyed
