"""The staff-outreach list says why the churn model rates a customer at risk (``churn_reasons``:
the champion's top reasons from churn_scores.reasons, in the operator's language, with the
customer's figures), so the person who calls knows why; empty for a customer not at risk;
never a phone or an email in it."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from tasks.messaging import send_due
from tests.campaigns.conftest import NOON, plan_staff
from tests.campaigns.factory import load_members, make_members
from userops.db import bulk_upsert
from userops.settings import reset_settings
from tasks.messaging import read_staff_list

REASONS = {"codes": ["recency", "frequency"], "signs": [1, 1], "recency_days": 75, "usual_gap_days": 20, "n_orders": 2}
WORDS = {
    "en": "no order for 75 days, usually buys every 20 days; only 2 orders so far",
    "zh-CN": "已 75 天未下单，平时约每 20 天购买一次；累计仅 2 单",
}


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_retention_list_has_the_reasons(sqlite_warehouse, tmp_path, monkeypatch, lang):
    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()
    frames = make_members(5, seed=5, stages={"active": 1.0})
    del frames["churn_scores"]  # this test's own scores
    ids = list(frames["customers"]["customer_id"])
    risky, medium, low, unscored, odd = ids
    with sqlite_warehouse.begin() as conn:
        load_members(conn, frames)
        mv = pd.DataFrame([{"version": "v-old", "trained_at": pd.Timestamp("2026-10-01"), "status": "retired"},
                           {"version": "v-champ", "trained_at": pd.Timestamp("2026-11-01"), "status": "champion"}])
        bulk_upsert(conn, "model_versions", mv.astype({"trained_at": "datetime64[us]"}), ["version"])
        scores = pd.DataFrame([
            (risky, "v-champ", 0.8, "high", json.dumps(REASONS)),
            (medium, "v-champ", 0.4, "medium", json.dumps(REASONS)),
            (low, "v-champ", 0.1, "low", json.dumps({**REASONS, "signs": [-1, -1]})),
            (low, "v-old", 0.9, "high", json.dumps(REASONS)),  # not the champion's
            (odd, "v-champ", 0.9, "high", "[]"),  # not a reasons object: no words, and the others keep theirs
        ], columns=["customer_id", "model_version", "probability", "risk_band", "reasons"])
        scores["scored_at"] = pd.Timestamp("2026-11-20 01:00")
        bulk_upsert(conn, "churn_scores", scores.astype({"scored_at": "datetime64[us]"}), ["customer_id", "model_version"])
    plan_staff(sqlite_warehouse, ids)
    assert send_due(now=NOON)["sent"] == 5
    csv_path = tmp_path / "output" / "outreach" / "2026-11-20" / "retention.csv"
    df = read_staff_list(csv_path).set_index("customer_id")
    assert df.at[risky, "churn_reasons"] == WORDS[lang]
    assert df.at[medium, "churn_reasons"] == df.at[low, "churn_reasons"] == df.at[unscored, "churn_reasons"] == df.at[odd, "churn_reasons"] == ""
    people = frames["customers"].set_index("customer_id")
    assert df.at[risky, "phone"] == people.at[risky, "phone"]  # the contact columns are still there
    for cid in ids:
        for contact in (people.at[cid, "phone"], people.at[cid, "email"]):
            if isinstance(contact, str) and contact:
                assert contact not in df.at[cid, "churn_reasons"]
    xlsx = read_staff_list(csv_path.with_suffix(".xlsx")).set_index("customer_id")
    assert xlsx.at[risky, "churn_reasons"] == WORDS[lang]


def test_a_list_begun_before_the_column_keeps_its_columns(sqlite_warehouse, tmp_path):
    """A day's list written by the previous version (no churn_reasons column) is appended to
    in its own columns, never shifted."""
    frames = make_members(2, seed=6, stages={"active": 1.0})
    del frames["churn_scores"]
    ids = list(frames["customers"]["customer_id"])
    with sqlite_warehouse.begin() as conn:
        load_members(conn, frames)
    old_cols = ["touch_key", "campaign", "customer_id", "name", "phone", "email", "member_level", "subject", "message", "listed_at", "contacted_by", "outcome"]
    day = tmp_path / "output" / "outreach" / "2026-11-20"
    day.mkdir(parents=True)
    (day / "retention.csv").write_text(",".join(old_cols) + "\nold-key,retention,X1,n,p,e,l,s,m,2026-11-20T03:00:00,,\n", encoding="utf-8-sig")
    plan_staff(sqlite_warehouse, ids)
    assert send_due(now=NOON)["sent"] == 2
    df = pd.read_csv(day / "retention.csv", dtype=str, encoding="utf-8-sig", keep_default_na=False)
    assert list(df.columns) == old_cols
    assert df["customer_id"].tolist() == ["X1"] + ids
    assert df["message"].tolist()[1:] == [f"正文 {c}" for c in ids]
