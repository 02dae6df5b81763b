"""SQLite and PostgreSQL give the same tags for the same data."""
from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from tasks import tags
from tests.tags.factory import AS_OF, Shop, load_sample, local
from userops.db import dispose_engines, get_engine, migrate, read_frame
from userops.sample.generator import generate
from userops.settings import reset_settings

pytestmark = pytest.mark.postgres

def _stored_tags(engine) -> pd.DataFrame:
    df = read_frame(engine, "SELECT * FROM tags ORDER BY customer_id", parse_dates=["first_paid_at", "last_paid_at", "updated_at"])
    df = df.drop(columns=["updated_at"])
    df["as_of"] = pd.to_datetime(df["as_of"]).dt.date
    for c in ("at_risk", "price_sensitive"):
        df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v)) else bool(v))
    for c in ("rfm_r", "rfm_f", "rfm_m", "cluster_id", "paid_orders", "tag_hash"):
        df[c] = pd.to_numeric(df[c]).astype("Int64")
    for c in ("rfm_segment", "favourite_category", "preferred_channel"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    df["ltv"] = df["ltv"].astype(float).round(2)
    return df.reset_index(drop=True)


def test_sqlite_and_postgres_give_the_same_tags(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    reset_settings()
    data = generate(600, seed=11, as_of="2026-11-20")
    lite = load_sample(f"sqlite:///{tmp_path / 'w.db'}", data)
    pg = load_sample(pg_url, data)
    out = {}
    for name, engine in (("sqlite", lite), ("postgres", pg)):
        tags._LAST.clear()
        tags.refresh(date(2026, 11, 18), "x1", engine=engine)
        tags.refresh(date(2026, 11, 19), "x2", engine=engine)
        out[name] = (
            _stored_tags(engine),
            read_frame(engine, "SELECT customer_id, from_stage, to_stage, changed_on FROM stage_history ORDER BY customer_id, changed_on").astype(str),
            read_frame(engine, "SELECT cluster_id, size, description_en FROM clusters ORDER BY cluster_id"),
        )
    dispose_engines()
    a, b = out["sqlite"], out["postgres"]
    assert len(a[0]) == 600 - (data.customers["registered_at"] >= pd.Timestamp("2026-11-19 16:00")).sum()
    pd.testing.assert_frame_equal(a[0], b[0], check_dtype=False)
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2], check_dtype=False)
    assert set(a[0]["lifecycle_stage"]) >= {"prospect", "active", "loyal", "silent", "churned"}


def test_ties_break_by_character_code_whatever_the_collation(pg_linguistic_url, tmp_path, monkeypatch):
    """Favourite category and preferred channel break ties the same way on SQLite (BINARY) and on
    a PostgreSQL whose collation is linguistic: by character code, in the full pass, on a
    night's fold and in a recompute for a past day."""
    monkeypatch.setenv("USEROPS_OUTPUT_DIR", str(tmp_path / "output"))  # the nightly frame files
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    reset_settings()
    day2 = AS_OF + timedelta(days=1)
    seen = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path / 'w.db'}"), ("postgres", pg_linguistic_url)):
        engine = get_engine(url)
        migrate(engine)
        s = Shop()
        s.customer("T1")
        s.order("T1", local(AS_OF, -9), category="apple", channel="app")
        s.order("T1", local(AS_OF, -8), category="Banana", channel="Store")
        s.customer("T2")
        s.order("T2", local(AS_OF, -9), category="apple", channel="app")
        s.load(engine)
        tags.refresh(AS_OF, "full", engine=engine, full=True)
        s.order("T2", local(day2, 0, hour=9), category="Banana", channel="Store")  # T2 ties tonight
        s.load(engine)
        night = tags.refresh(day2, "night", engine=engine)
        assert night["aggregates"]["mode"] == "incremental"
        stored = read_frame(engine, "SELECT customer_id, favourite_category, preferred_channel FROM tags ORDER BY customer_id")
        past, _, _ = tags.tags_frame(AS_OF, engine=engine)
        seen[name] = (stored.values.tolist(), past.set_index("customer_id").loc["T1", ["favourite_category", "preferred_channel"]].tolist())
        dispose_engines()
    assert seen["sqlite"] == ([["T1", "Banana", "Store"], ["T2", "Banana", "Store"]], ["Banana", "Store"])
    assert seen["postgres"] == seen["sqlite"]
