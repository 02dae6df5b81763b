"""Behaviour clusters: k-means on scaled behaviour features of the buyers.

Refitted weekly (``settings.tags.cluster_refresh_days``); every other night each buyer is
assigned to the nearest stored centroid. Numbering is stable: a refit's centroids are
matched to the previous ones (Hungarian assignment on the distance between centroids) and
inherit their numbers. Each cluster is described in words (zh-CN and en), e.g.
"price-sensitive weekend buyers, 3.0 orders/year, avg basket ¥180, last order ~40 days ago".
"""
from __future__ import annotations

import json
import logging
from datetime import date, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userops.db import bulk_upsert, null_ints, read_frame
from userops.i18n import t
from userops.settings import Settings, get_settings

log = logging.getLogger("userops.tags")

FEATURES = ["orders_per_year", "avg_basket", "discount_share", "weekend_share", "recency_days", "window_orders"]
_LOG_FEATURES = {"orders_per_year", "avg_basket", "recency_days", "window_orders"}


def behaviour_features(base: pd.DataFrame, as_of: date, settings: Settings | None = None) -> pd.DataFrame:
    """Natural-unit behaviour features of the buyers in ``base`` (index = row in base)."""
    from tasks.tags import days_ago

    s = settings or get_settings()
    buyers = base[base["paid_orders"] > 0]
    paid = buyers["paid_orders"].to_numpy(dtype="float64")
    tenure_days = days_ago(buyers["first_paid_at"], as_of, s.timezone).to_numpy() + 1
    years = np.maximum(tenure_days, 30) / 365.0
    return pd.DataFrame(
        {
            "orders_per_year": paid / years,
            "avg_basket": buyers["paid_amount"].to_numpy(dtype="float64") / paid,
            "discount_share": buyers["discounted_orders"].to_numpy() / paid,
            "weekend_share": buyers["weekend_orders"].to_numpy() / paid,
            "recency_days": days_ago(buyers["last_paid_at"], as_of, s.timezone).to_numpy(),
            "window_orders": buyers["window_orders"].to_numpy(dtype="float64"),
        },
        index=buyers.index,
    ).fillna(0.0)


def _transform(feat: pd.DataFrame) -> np.ndarray:
    x = feat[FEATURES].to_numpy(dtype="float64").copy()
    for j, name in enumerate(FEATURES):
        if name in _LOG_FEATURES:
            x[:, j] = np.log1p(np.clip(x[:, j], 0, None))
    return x


def _nearest(x_scaled: np.ndarray, centers_scaled: np.ndarray) -> np.ndarray:
    """Index of the nearest center for each row (one pass per center: no n x k x d array)."""
    best = np.full(len(x_scaled), np.inf)
    out = np.zeros(len(x_scaled), dtype="int64")
    for j, c in enumerate(centers_scaled):
        d = ((x_scaled - c) ** 2).sum(axis=1)
        closer = d < best
        best = np.where(closer, d, best)
        out[closer] = j
    return out


def read_clusters(conn: Connection) -> pd.DataFrame:
    df = read_frame(conn, "SELECT cluster_id, fitted_on, size, centroid, description_zh, description_en FROM clusters ORDER BY cluster_id")
    if not df.empty:
        df["centroid"] = df["centroid"].map(json.loads)
        df["fitted_on"] = pd.to_datetime(df["fitted_on"]).dt.date
    return df


def _stored_model(stored: pd.DataFrame):
    c0 = stored["centroid"].iloc[0]
    centers = np.array([c["center"] for c in stored["centroid"]], dtype="float64")
    return c0.get("features"), np.array(c0["scaler_mean"]), np.array(c0["scaler_scale"]), centers, stored["cluster_id"].to_numpy()


def assign_stored(conn: Connection, base: pd.DataFrame, as_of: date, settings: Settings | None = None) -> np.ndarray | None:
    """Cluster of every row of ``base`` with the stored centroids (None when none fitted)."""
    stored = read_clusters(conn)
    if stored.empty:
        return None
    feats, mean, scale, centers, ids = _stored_model(stored)
    if feats != FEATURES:
        return None
    feat = behaviour_features(base, as_of, settings)
    labels = null_ints(len(base))
    if len(feat):
        x = (_transform(feat) - mean) / scale
        labels[feat.index.to_numpy()] = ids[_nearest(x, (centers - mean) / scale)]
    return labels


def match_ids(old_centers: np.ndarray, old_ids: np.ndarray, new_centers: np.ndarray) -> np.ndarray:
    """Numbers for new centroids: the nearest old centroid's number (one-to-one, minimum
    total distance); centroids without a partner get the smallest unused numbers."""
    from scipy.optimize import linear_sum_assignment

    k = len(new_centers)
    ids = np.full(k, -1, dtype="int64")
    if len(old_centers):
        cost = ((new_centers[:, None, :] - old_centers[None, :, :]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        ids[rows] = old_ids[cols]
    used = set(int(i) for i in ids if i >= 0)
    free = (i for i in range(1, 10_000) if i not in used)
    for j in range(k):
        if ids[j] < 0:
            ids[j] = next(free)
    return ids


def describe(natural: dict, overall: dict) -> tuple[str, str]:
    """(zh-CN, en) words for a centroid in natural units, relative to all buyers."""
    zh, en = [], []
    if natural["recency_days"] >= 180:
        zh.append("久未购买的"), en.append("lapsed")
    elif natural["recency_days"] <= 30:
        zh.append("近期活跃的"), en.append("recent")
    if natural["orders_per_year"] >= 2 * overall["orders_per_year"]:
        zh.append("高频"), en.append("frequent")
    elif natural["orders_per_year"] <= 0.5 * overall["orders_per_year"]:
        zh.append("低频"), en.append("occasional")
    if natural["discount_share"] >= max(0.35, overall["discount_share"] + 0.15):
        zh.append("价格敏感的"), en.append("price-sensitive")
    if natural["avg_basket"] >= 1.5 * overall["avg_basket"]:
        zh.append("大客单"), en.append("big-basket")
    elif natural["avg_basket"] <= 0.67 * overall["avg_basket"]:
        zh.append("小客单"), en.append("small-basket")
    if natural["weekend_share"] >= 0.5:
        zh.append("周末"), en.append("weekend")
    zh_text = ("".join(zh) or "普通") + "买家"
    en_text = (" ".join(en) or "typical") + " buyers"
    figures_zh = f"，每年 {natural['orders_per_year']:.1f} 单，客单价 ¥{natural['avg_basket']:,.0f}，最近一单约 {natural['recency_days']:.0f} 天前"
    figures_en = f", {natural['orders_per_year']:.1f} orders/year, avg basket ¥{natural['avg_basket']:,.0f}, last order ~{natural['recency_days']:.0f} days ago"
    return zh_text + figures_zh, en_text + figures_en


def fit(feat: pd.DataFrame, k: int, sample: int, old: pd.DataFrame | None = None, seed: int = 0):
    """Fit k-means on (a deterministic sample of) the buyers. Returns (centers in the
    transformed space, scaler mean, scaler scale, ids)."""
    from sklearn.cluster import KMeans

    x = _transform(feat)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    xs = (x - mean) / scale
    k = int(min(k, len(np.unique(xs, axis=0)) if len(xs) <= 50_000 else k, len(xs)))
    rng = np.random.default_rng(seed)
    fit_rows = xs if len(xs) <= sample else xs[np.sort(rng.choice(len(xs), sample, replace=False))]
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(fit_rows)
    centers = km.cluster_centers_ * scale + mean  # back to the transformed, unscaled space
    if old is not None and not old.empty:
        o_feats, _, _, o_centers, o_ids = _stored_model(old)
        if o_feats == FEATURES:
            ids = match_ids((o_centers - mean) / scale, o_ids, km.cluster_centers_)
        else:
            ids = np.arange(1, k + 1)
    else:
        ids = np.arange(1, k + 1)
    return centers, mean, scale, ids


def refresh_clusters(conn: Connection, base: pd.DataFrame, as_of: date, settings: Settings | None = None) -> dict:
    """Refit weekly (or when none), otherwise assign with the stored centroids; keeps the
    ``clusters`` table (sizes, descriptions) current. Returns labels aligned with ``base``."""
    s = settings or get_settings()
    as_of = pd.Timestamp(as_of).date()
    feat = behaviour_features(base, as_of, s)
    stored = read_clusters(conn)
    labels = null_ints(len(base))
    if len(feat) < 2:
        return {"labels": labels, "fitted_on": None, "refit": False, "k": 0}
    due = (
        stored.empty
        or _stored_model(stored)[0] != FEATURES
        or len(stored) != min(s.tags.clusters, len(feat))
        or (as_of - stored["fitted_on"].max()).days >= s.tags.cluster_refresh_days
    )
    if due:
        centers, mean, scale, ids = fit(feat, s.tags.clusters, s.tags.cluster_sample, stored)
        fitted_on = as_of
    else:
        _, mean, scale, centers, ids = _stored_model(stored)
        fitted_on = stored["fitted_on"].max()
    x = (_transform(feat) - mean) / scale
    nearest = _nearest(x, (centers - mean) / scale)
    labels[feat.index.to_numpy()] = ids[nearest]
    overall = feat.median().to_dict()
    rows = []
    for j, cid in enumerate(ids):
        members = feat[nearest == j]
        natural = (members.mean() if len(members) else pd.Series(0.0, index=FEATURES)).to_dict()
        zh, en = describe(natural, overall)
        rows.append(
            {
                "cluster_id": int(cid),
                "fitted_on": fitted_on,
                "size": int(len(members)),
                "centroid": json.dumps(
                    {
                        "features": FEATURES,
                        "center": [round(float(v), 10) for v in centers[j]],
                        "scaler_mean": [float(v) for v in mean],
                        "scaler_scale": [float(v) for v in scale],
                        "natural": {k: round(float(v), 4) for k, v in natural.items()},
                    },
                    sort_keys=True,
                ),
                "description_zh": zh,
                "description_en": en,
            }
        )
    df = pd.DataFrame(rows)
    if due:
        conn.execute(sa.text("DELETE FROM clusters"))
    bulk_upsert(conn, "clusters", df, ["cluster_id"], update_only_changed=True)
    if due:
        log.info("%s", t("log.tags.clusters_refitted", as_of=as_of, k=len(ids)))
    return {"labels": labels, "fitted_on": str(fitted_on), "refit": bool(due), "k": int(len(ids))}
