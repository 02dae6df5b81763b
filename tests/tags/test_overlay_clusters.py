"""The at-risk overlay from the champion churn model's scores; behaviour clusters with a
stable numbering and words for each cluster."""
from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from tasks import clusters, tags
from tests.tags.factory import AS_OF, Shop, local
from userops.db import bulk_upsert, read_frame


def _scores(engine, rows: list[tuple[str, str, str]], versions: dict[str, str]) -> None:
    with engine.begin() as conn:
        bulk_upsert(conn, "model_versions", pd.DataFrame(
            [{"version": v, "trained_at": pd.Timestamp("2026-06-01"), "status": st} for v, st in versions.items()]
        ).astype({"trained_at": "datetime64[us]"}), ["version"])
        bulk_upsert(conn, "churn_scores", pd.DataFrame(
            [{"customer_id": c, "model_version": v, "probability": 0.9 if band == "high" else 0.1, "risk_band": band,
              "scored_at": pd.Timestamp("2026-06-30")} for c, v, band in rows]
        ).astype({"scored_at": "datetime64[us]"}), ["customer_id", "model_version"])


def at_risk(engine) -> dict:
    df = read_frame(engine, "SELECT customer_id, at_risk FROM tags ORDER BY customer_id")
    return {r.customer_id: bool(r.at_risk) for r in df.itertuples()}


def test_at_risk_overlay(warehouse):
    s = Shop()
    for cid, days in (("ACT", -10), ("ACT2", -20), ("SIL", -100), ("OLD", -300)):
        s.customer(cid)
        s.order(cid, local(AS_OF, days))
    s.customer("PRO")
    s.load(warehouse)
    tags.refresh(AS_OF, "n1", engine=warehouse)
    with warehouse.begin() as conn:  # no scores yet: a no-op
        assert tags.apply_at_risk_overlay(conn, AS_OF) == 0
    assert not any(at_risk(warehouse).values())
    _scores(
        warehouse,
        [("ACT", "v2", "high"), ("SIL", "v2", "high"), ("ACT2", "v1", "high"), ("ACT2", "v2", "low"), ("OLD", "v2", "high")],
        {"v1": "retired", "v2": "champion"},
    )
    with warehouse.begin() as conn:
        assert tags.apply_at_risk_overlay(conn, AS_OF) == 1
        assert tags.apply_at_risk_overlay(conn, AS_OF) == 0  # idempotent
    # only the active customer the champion rates high; silent/churned are not "at risk"
    assert at_risk(warehouse) == {"ACT": True, "ACT2": False, "OLD": False, "PRO": False, "SIL": False}
    # the next night's refresh keeps the overlay (no flip-flop, no rewrite)
    again = tags.refresh(AS_OF, "n1-again", engine=warehouse)
    assert again["tags_written"] == 0
    assert at_risk(warehouse)["ACT"] is True
    # the champion changes its mind
    _scores(warehouse, [("ACT", "v2", "low")], {"v2": "champion"})
    with warehouse.begin() as conn:
        assert tags.apply_at_risk_overlay(conn, AS_OF) == 1
    assert at_risk(warehouse)["ACT"] is False


def test_match_ids_keeps_numbers_for_moved_centroids():
    rng = np.random.default_rng(0)
    old = rng.normal(size=(5, 4)) * 5
    ids = np.array([3, 1, 4, 2, 5])
    perm = np.array([2, 0, 4, 1, 3])
    new = old[perm] + rng.normal(scale=0.1, size=(5, 4))
    assert clusters.match_ids(old, ids, new).tolist() == ids[perm].tolist()
    # one cluster more: the extra one takes the smallest unused number
    extra = np.vstack([new, np.full((1, 4), 100.0)])
    assert clusters.match_ids(old, ids, extra).tolist() == ids[perm].tolist() + [6]


def test_describe_in_words():
    overall = {"orders_per_year": 2.0, "avg_basket": 200.0, "discount_share": 0.1, "weekend_share": 0.3, "recency_days": 90}
    zh, en = clusters.describe({"orders_per_year": 3.0, "avg_basket": 180.0, "discount_share": 0.6, "weekend_share": 0.7, "recency_days": 40, "window_orders": 3}, overall)
    assert en == "price-sensitive weekend buyers, 3.0 orders/year, avg basket ¥180, last order ~40 days ago"
    assert zh.startswith("价格敏感的周末买家") and "每年 3.0 单" in zh


def test_clusters_weekly_refit_keeps_numbering(warehouse, monkeypatch):
    monkeypatch.setenv("USEROPS_TAGS__CLUSTERS", "3")
    from userops.settings import reset_settings

    reset_settings()
    s = Shop()
    rng = np.random.default_rng(1)
    # three behaviours: frequent small baskets, rare big baskets, discount hunters
    for i in range(60):
        kind = i % 3
        cid = s.customer(f"B{i:03d}", registered=local(AS_OF, -800))
        n = [12, 2, 5][kind]
        for k in range(n):
            day = -int(rng.integers(1, 300)) if kind != 1 else -int(rng.integers(100, 700))
            s.order(cid, local(AS_OF, day), amount=[60, 900, 120][kind] * float(rng.uniform(0.9, 1.1)),
                    discount=[0, 0, 40][kind])
    s.load(warehouse)
    first = tags.refresh(AS_OF, "w0", engine=warehouse)
    assert first["clusters"]["refit"] is True and first["clusters"]["k"] == 3
    before = read_frame(warehouse, "SELECT customer_id, cluster_id FROM tags ORDER BY customer_id")
    groups = before.assign(kind=before["customer_id"].str[1:].astype(int) % 3).groupby("kind")["cluster_id"].nunique()
    assert groups.tolist() == [1, 1, 1]  # each behaviour is one cluster
    desc = read_frame(warehouse, "SELECT cluster_id, description_zh, description_en FROM clusters ORDER BY cluster_id")
    assert desc["description_en"].str.contains("orders/year").all()
    assert desc["description_zh"].str.contains("每年").all()
    assert desc["description_en"].str.contains("price-sensitive").sum() == 1
    # a day later: assigned with the stored centroids, not refitted
    assert tags.refresh(AS_OF + timedelta(days=1), "w1", engine=warehouse)["clusters"]["refit"] is False
    # a week later: refitted (another random start, so k-means may number its clusters
    # differently) and the numbers stay with the behaviours
    import functools

    monkeypatch.setattr(clusters, "fit", functools.partial(clusters.fit, seed=123))
    s.customer("LATE", registered=local(AS_OF, -10))
    s.order("LATE", local(AS_OF, 5), amount=65)
    s.load(warehouse)
    week = tags.refresh(AS_OF + timedelta(days=7), "w7", engine=warehouse)
    assert week["clusters"]["refit"] is True
    after = read_frame(warehouse, "SELECT customer_id, cluster_id FROM tags WHERE customer_id <> 'LATE' ORDER BY customer_id")
    assert after["cluster_id"].tolist() == before["cluster_id"].tolist()
