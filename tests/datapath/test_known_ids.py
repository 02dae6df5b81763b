"""The referential check's id lookup: keyed IN lists and the whole-table read agree."""
import pandas as pd

from tasks import load
from userops.db import bulk_upsert


def _customers(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "updated_at": pd.Timestamp("2026-11-20 10:00:00"),
        }
    )


def test_known_ids_keyed_and_whole_table_agree(warehouse, monkeypatch):
    with warehouse.begin() as conn:
        bulk_upsert(conn, "customers", _customers(12_000), ["customer_id"])
    # 11,000 that exist (spread over three IN chunks of 5,000), 3,000 unknown, repeats, a null
    cand = pd.Series(
        [f"C{i:06d}" for i in range(1_000, 12_000)] + [f"X{i}" for i in range(3_000)] + ["C001000", None],
        dtype="string",
    )
    keyed = load.known_ids(warehouse, "customers", "customer_id", cand)
    monkeypatch.setattr(load, "WHOLE_TABLE_IDS_FROM", 10)
    whole = load.known_ids(warehouse, "customers", "customer_id", cand)
    assert keyed == whole
    assert len(keyed) == 11_000
    assert "C000999" not in keyed and "X0" not in keyed and "C011999" in keyed
