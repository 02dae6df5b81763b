"""Scoring every customer into churn_scores, reasons in zh-CN/en, drift breach -> alert."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from models import registry, scoring
from tests.churn.conftest import AS_OF
from userops.db import bulk_upsert, read_frame


def test_scores_every_customer(loaded, member_base):
    # one more member with no orders and an unknown registration date
    extra = pd.DataFrame({"customer_id": ["X-NO-DATE"], "registered_at": pd.Series([pd.NaT], dtype="datetime64[us]")})
    with loaded.begin() as conn:
        bulk_upsert(conn, "customers", extra, ["customer_id"])
    out = scoring.score_night(AS_OF, loaded, overlay=False)
    with loaded.connect() as conn:
        scores = read_frame(conn, "SELECT * FROM churn_scores")
        champ = registry.champion_row(conn)
    c = member_base.customers
    cutoff = scoring.scoring_cutoff(AS_OF)
    expected = set(c.loc[c["registered_at"] < cutoff, "customer_id"]) | {"X-NO-DATE"}
    assert set(scores["customer_id"]) == expected
    assert len(scores) == len(expected) == out["scoring"]["customers"]
    assert (scores["model_version"] == champ["version"]).all()
    assert scores["probability"].between(0, 1).all()
    buyers = set(member_base.orders.loc[(member_base.orders["status"] == "paid") & (member_base.orders["paid_at"] < cutoff), "customer_id"])
    no_orders = scores[~scores["customer_id"].isin(buyers)]
    assert len(no_orders) > 300  # prospects of the member base + X-NO-DATE
    assert out["scoring"]["no_orders"] == len(no_orders)
    assert all(json.loads(r)["codes"] == ["no_orders"] for r in no_orders["reasons"])
    # bands follow the settings' cuts (0.3 / 0.6)
    p = scores["probability"].to_numpy()
    want = np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low"))
    assert (scores["risk_band"].to_numpy() == want).all()
    assert set(scores["risk_band"]) == {"high", "medium", "low"}
    assert str(scores["as_of"].iloc[0])[:10] == str(AS_OF)


def test_reasons_rendered_from_stored_scores(loaded):
    scoring.score_night(AS_OF, loaded, overlay=False)
    with loaded.connect() as conn:
        s = read_frame(conn, "SELECT customer_id, probability, risk_band, reasons FROM churn_scores ORDER BY customer_id")
    en = scoring.reasons_text(s["reasons"], "en")
    zh = scoring.reasons_text(s["reasons"], "zh-CN")
    assert len(en) == len(zh) == len(s)
    assert (en.str.len() > 0).all() and (zh.str.len() > 0).all()
    high = s["risk_band"].eq("high").to_numpy()
    assert en[high].str.contains(r"no order for \d+ days", regex=True).mean() > 0.5
    assert zh[high].str.contains(r"已 \d+ 天未下单", regex=True).mean() > 0.5
    no_date = en[s["reasons"].str.contains("no_orders").to_numpy()]
    assert no_date.str.match(r"^(registered [\d,]+ days? ago, no order yet|no paid order yet)$").all()  # 1,031 days
    assert not en.str.contains(r"\?|None|nan").any()
    assert zh[s["reasons"].str.contains("no_orders").to_numpy()].str.contains("尚未").all()
    # the numbers in the words are the stored numbers
    parsed = [json.loads(r) for r in s["reasons"][high]]
    rec = [i for i, r in enumerate(parsed) if r["codes"] and r["codes"][0] == "recency"]
    assert rec, "no high-risk customer leads with the recency reason"
    for i in rec[:50]:
        assert en[high].iloc[i].startswith(f"no order for {parsed[i]['recency_days']:,} day")  # written with separators


def test_rescoring_keeps_only_the_champion(loaded):
    scoring.score_night(AS_OF, loaded, overlay=False)
    with loaded.begin() as conn:
        n1 = conn.exec_driver_sql("SELECT COUNT(*) FROM churn_scores").scalar()
        conn.exec_driver_sql("INSERT INTO churn_scores (customer_id, model_version, probability, risk_band, scored_at) "
                             "VALUES ('C00000001', 'old-version', 0.5, 'medium', '2026-01-01 00:00:00')")
    scoring.score_night(AS_OF, loaded, overlay=False)
    with loaded.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM churn_scores").scalar() == n1
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM churn_scores WHERE model_version = 'old-version'").scalar() == 0


def test_drift_breach_recorded_and_alerted(loaded):
    out = scoring.score_night(AS_OF, loaded, overlay=False)
    assert out["drift"]["profiled"] and not out["drift"]["breach"]  # same population: stable
    with loaded.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM health_breaches").scalar() == 0
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM alert_outbox WHERE kind = 'model_drift'").scalar() == 0
    # the reference profile says everyone bought recently; tonight's customers did not
    with loaded.begin() as conn:
        model = registry.load_champion(conn)
        prof = model.drift_profile["recency_days"]
        shares = [0.0] * len(prof["shares"])
        shares[0] = 1.0
        model.drift_profile = {**model.drift_profile, "recency_days": {**prof, "shares": shares}}
        frames = scoring.load_frames(conn, AS_OF)
        scored = scoring.score(conn, frames, model)
        res = scoring.drift_check(conn, scored, model, lang="en")
    assert res["breach"] and "recency_days" in res["breached"] and res["alerted"] >= 1
    with loaded.connect() as conn:
        dc = read_frame(conn, "SELECT * FROM drift_checks")
        hb = read_frame(conn, "SELECT * FROM health_breaches")
        al = read_frame(conn, "SELECT kind, title, body, payload FROM alert_outbox")
    assert len(dc) == 1 and bool(dc["breached"].iloc[0])
    assert json.loads(dc["breached_features"].iloc[0]) == res["breached"]
    assert list(hb["metric"]) == ["model_drift"] and hb["value"].iloc[0] >= 0.2 and hb["threshold"].iloc[0] == 0.2
    assert hb["event"].iloc[0] == "userops.health.model-drift-breach"
    assert set(al["kind"]) == {"model_drift"}
    assert "recency_days" in al["body"].iloc[0]
    assert json.loads(al["payload"].iloc[0])["model_version"] == model.version
    # the same night again: recorded once, alerted once
    with loaded.begin() as conn:
        assert scoring.drift_check(conn, scored, model)["alerted"] == 0
    with loaded.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM health_breaches").scalar() == 1
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM drift_checks").scalar() == 1


def test_a_shop_without_orders_scores_nothing_without_failing(warehouse):
    """A new shop (members imported, no order yet): the nightly churn stage says there is no
    model yet instead of failing (PostgreSQL read an empty COPY as "Empty CSV file"); with
    no champion, nothing is scored. Both databases."""
    members = pd.DataFrame({"customer_id": ["M1", "M2"], "registered_at": pd.Series(["2026-01-05", None], dtype="datetime64[us]")})
    with warehouse.begin() as conn:
        bulk_upsert(conn, "customers", members, ["customer_id"])
    out = scoring.score_night(AS_OF, warehouse, overlay=False)
    assert out["scored"] == 0 and out["skipped"]
    assert "error" in out["training"]  # not enough history for a window, said in words
    with warehouse.connect() as conn:
        assert read_frame(conn, "SELECT COUNT(*) AS n FROM churn_scores")["n"].iloc[0] == 0
    # the readers themselves, with no orders at all
    with warehouse.connect() as conn:
        frames = scoring.load_frames(conn, AS_OF)
    assert len(frames.orders) == 0
    assert len(frames.customers) == 2
    with warehouse.connect() as conn:  # customer_aggregates empty too (a night with no buyer yet)
        if conn.dialect.name == "postgresql":
            agg, cust = scoring._read_aggregates_pg(conn)
            assert agg.num_rows == 0 and cust.num_rows == 2
            assert agg.schema.field("paid_orders").type == "double"
