"""Synthetic members with tags (and churn scores) for campaign tests and the benchmark.

Vectorized: a million members take a few seconds. Tables written: customers, tags,
model_versions + churn_scores (a champion), all through ``bulk_upsert``.
"""
from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from userops.db import bulk_upsert

STAGE_DAYS = {"new": (1, 30), "active": (1, 60), "loyal": (1, 60), "silent": (61, 180), "churned": (181, 700), "prospect": (None, None)}
SURNAMES = np.array(list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"))
GIVEN = np.array(["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞", "平"])


def make_members(
    n: int,
    *,
    seed: int = 0,
    as_of: date = date(2026, 11, 20),
    stages: dict[str, float] | None = None,
    tiers: dict[str, float] | None = None,
    consent_share: float = 1.0,
    unsub_share: float = 0.0,
    timezones: dict[str, float] | None = None,
    prefix: str = "C",
    start: int = 0,
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ids = pd.Series([f"{prefix}{i:07d}" for i in range(start, start + n)]) if n < 50_000 else (prefix + pd.Series(np.arange(start, start + n)).astype(str).str.zfill(7))
    stages = stages or {"active": 0.3, "loyal": 0.1, "silent": 0.3, "churned": 0.2, "new": 0.1}
    tiers = tiers or {"high": 0.2, "mid": 0.3, "low": 0.5}
    timezones = timezones or {"Asia/Shanghai": 1.0}
    stage = rng.choice(list(stages), size=n, p=np.array(list(stages.values())) / sum(stages.values()))
    tier = rng.choice(list(tiers), size=n, p=np.array(list(tiers.values())) / sum(tiers.values()))
    tz = rng.choice(list(timezones), size=n, p=np.array(list(timezones.values())) / sum(timezones.values()))
    lo = np.array([STAGE_DAYS[s][0] or 0 for s in stage])
    hi = np.array([STAGE_DAYS[s][1] or 0 for s in stage])
    days = (lo + rng.random(n) * (hi - lo)).astype(int)
    asof_ts = pd.Timestamp(as_of) + pd.Timedelta(hours=2)
    last_paid = (asof_ts - pd.to_timedelta(days, unit="D")).astype("datetime64[us]")
    names = pd.Series(SURNAMES[rng.integers(0, len(SURNAMES), n)]) + pd.Series(GIVEN[rng.integers(0, len(GIVEN), n)])
    consent = rng.random(n) < consent_share
    unsub = rng.random(n) < unsub_share
    customers = pd.DataFrame(
        {
            "customer_id": ids,
            "name": names,
            "phone": "138" + pd.Series(rng.integers(10_000_000, 99_999_999, n)).astype(str),
            "email": "m" + pd.Series(np.arange(start, start + n)).astype(str) + "@example.com",
            "registered_at": (asof_ts - pd.Timedelta(days=800)),
            "city": "上海",
            "member_level": np.where(tier == "high", "gold", "normal"),
            "marketing_consent": consent,
            "unsubscribed_at": pd.Series(np.where(unsub, asof_ts - pd.Timedelta(days=3), pd.NaT)).astype("datetime64[us]"),
            "timezone": tz,
            "updated_at": asof_ts,
        }
    )
    customers["registered_at"] = customers["registered_at"].astype("datetime64[us]")
    customers["updated_at"] = customers["updated_at"].astype("datetime64[us]")
    ltv = np.where(tier == "high", 3000, np.where(tier == "mid", 800, 150)) * (0.5 + rng.random(n))
    tags = pd.DataFrame(
        {
            "customer_id": ids,
            "as_of": as_of,
            "lifecycle_stage": stage,
            "at_risk": False,
            "rfm_r": 3, "rfm_f": 3, "rfm_m": 3,
            "rfm_segment": "loyal",
            "value_tier": tier,
            "crisis_priority": np.where(tier == "high", "core", "ordinary"),
            "price_sensitive": rng.random(n) < 0.3,
            "favourite_category": rng.choice(["茶饮", "零食", "护肤"], size=n),
            "preferred_channel": "app",
            "cluster_id": 1,
            "ltv": ltv.round(2),
            "paid_orders": np.where(stage == "prospect", 0, 1 + rng.integers(0, 10, n)),
            "first_paid_at": (last_paid - pd.Timedelta(days=30)).astype("datetime64[us]"),
            "last_paid_at": last_paid,
            "days_since_last_order": days,
            "updated_at": asof_ts,
        }
    )
    tags["updated_at"] = tags["updated_at"].astype("datetime64[us]")
    prob = np.clip(rng.beta(2, 5, n) + np.where(np.isin(stage, ["silent", "churned"]), 0.3, 0.0), 0, 1)
    scores = pd.DataFrame(
        {
            "customer_id": ids,
            "model_version": "v-test",
            "probability": prob.round(4),
            "risk_band": np.where(prob >= 0.6, "high", np.where(prob >= 0.3, "medium", "low")),
            "reasons": "[]",
            "scored_at": asof_ts,
            "as_of": as_of,
        }
    )
    scores["scored_at"] = scores["scored_at"].astype("datetime64[us]")
    return {"customers": customers, "tags": tags, "churn_scores": scores}


def load_members(conn, frames: dict[str, pd.DataFrame], champion: str = "v-test") -> None:
    bulk_upsert(conn, "customers", frames["customers"], ["customer_id"])
    bulk_upsert(conn, "tags", frames["tags"].drop(columns=["days_since_last_order"], errors="ignore"), ["customer_id"])
    if "churn_scores" in frames:
        mv = pd.DataFrame([{"version": champion, "trained_at": datetime(2026, 11, 1), "status": "champion", "horizon_days": 90}])
        mv["trained_at"] = mv["trained_at"].astype("datetime64[us]")
        bulk_upsert(conn, "model_versions", mv, ["version"])
        bulk_upsert(conn, "churn_scores", frames["churn_scores"], ["customer_id", "model_version"])


def set_tags(conn, customer_ids, **values) -> None:
    """Update tag columns of some customers (tests)."""
    import sqlalchemy as sa

    sets = ", ".join(f"{k} = :{k}" for k in values)
    conn.execute(
        sa.text(f"UPDATE tags SET {sets} WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
        {**values, "ids": list(customer_ids)},
    )
