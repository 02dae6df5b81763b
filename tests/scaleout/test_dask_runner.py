"""Scale-out: churn scoring and campaign audience planning give the same rows whether they
run in one piece in the flow's process (the default) or as one Prefect task per partition
of customers on prefect-dask's DaskTaskRunner (``USEROPS_TASK_RUNNER=dask``).

The same warehouse is processed both ways (what the first way wrote is cleared in between)
and the tables compared row for row. The local Dask cluster uses 2 workers as threads
(``USEROPS_DASK_PROCESSES=false``) to keep the suite fast; worker processes or a remote
scheduler (``USEROPS_DASK_ADDRESS``) only change where the same tasks run.
"""
from __future__ import annotations

import shutil
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from userops.db import read_frame
from userops.settings import PROJECT_ROOT, reset_settings

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect]

AS_OF = date(2026, 11, 20)
PARTITIONS = 4


def _use_dask(monkeypatch, on: bool) -> None:
    if on:
        monkeypatch.setenv("USEROPS_TASK_RUNNER", "dask")
        monkeypatch.setenv("USEROPS_DASK_WORKERS", "2")
        monkeypatch.setenv("USEROPS_DASK_PROCESSES", "false")
        monkeypatch.setenv("USEROPS_DASK_PARTITIONS", str(PARTITIONS))
    else:
        for k in ("USEROPS_TASK_RUNNER", "USEROPS_DASK_WORKERS", "USEROPS_DASK_PROCESSES", "USEROPS_DASK_PARTITIONS"):
            monkeypatch.delenv(k, raising=False)
    reset_settings()


def _task_runs(flow_run_id, prefix: str) -> list:
    """Task runs of a flow run (and of its task runs' nested tasks) whose name starts with ``prefix``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as c:
        runs = c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200)
    return [r for r in runs if r.name.startswith(prefix)]


def _flow_run_id(state) -> str:
    return state.state_details.flow_run_id


# ----------------------------------------------------------------------------- scoring
def _scores(engine) -> pd.DataFrame:
    df = read_frame(engine, "SELECT customer_id, model_version, probability, risk_band, reasons, scored_at, as_of FROM churn_scores ORDER BY customer_id")
    df["as_of"] = df["as_of"].astype(str)
    return df


@pytest.fixture
def churn_base(warehouse, monkeypatch):
    from tests.churn.conftest import load
    from userops.sample.generator import generate

    load(warehouse, generate(2500, seed=5, as_of="2026-11-21", with_events=False))
    from models import registry

    registry._CACHE.clear()
    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T19:00:00")  # 03:00 in Shanghai, the night after AS_OF
    reset_settings()
    yield warehouse
    reset_settings()


def test_churn_scoring_on_dask_writes_the_same_scores(prefect_server, churn_base, monkeypatch):
    from flows.churn import score_churn

    engine = churn_base
    _use_dask(monkeypatch, False)
    plain = score_churn(as_of=AS_OF, run_id="plain")  # trains the champion, scores in one piece
    assert plain["training"]["promoted"] and plain["scoring"]["customers"] > 2000
    plain_rows = _scores(engine)
    plain_drift = read_frame(engine, "SELECT as_of, model_version, psi, max_psi, breached, n FROM drift_checks")
    with engine.begin() as conn:  # what the first way wrote goes; the champion stays
        conn.execute(sa.text("DELETE FROM churn_scores"))
        conn.execute(sa.text("DELETE FROM drift_checks"))

    _use_dask(monkeypatch, True)
    state = score_churn(as_of=AS_OF, run_id="dask", return_state=True)
    dask = state.result()
    assert "training" not in dask and dask["model_version"] == plain["model_version"]
    assert dask["scoring"]["partitions"] == PARTITIONS
    parts = _task_runs(_flow_run_id(state), "churn-score-partition")
    assert len(parts) == PARTITIONS and all(r.state.is_completed() for r in parts)

    dask_rows = _scores(engine)
    assert len(dask_rows) == len(plain_rows) == plain["scoring"]["customers"]
    pd.testing.assert_frame_equal(plain_rows, dask_rows)
    pd.testing.assert_frame_equal(plain_drift, read_frame(engine, "SELECT as_of, model_version, psi, max_psi, breached, n FROM drift_checks"))
    for key in ("customers", "removed", "bands", "no_orders"):
        assert dask["scoring"][key] == plain["scoring"][key], key
    assert dask["scoring"]["mean_probability"] == pytest.approx(plain["scoring"]["mean_probability"], abs=1e-12)
    assert dask["drift"] == plain["drift"]
    assert dask["summary"][-2:] == plain["summary"][-2:]  # scored / drift lines


def test_partitions_cut_by_customer_stably():
    import numpy as np

    from tasks.churn_partitions import split_features

    ids = np.array([f"C{i:05d}" for i in range(1000)], dtype=object)
    feats = pd.DataFrame({"x": np.arange(1000.0)}, index=pd.Index(np.arange(999, -1, -1), name="customer_id"))
    parts = split_features(feats, ids, 4)
    assert len(parts) == 4 and all(150 < len(p["ids"]) < 350 for p in parts)
    got = pd.concat([pd.DataFrame({"id": p["ids"], "x": p["features"]["x"].to_numpy()}) for p in parts])
    assert sorted(got["id"]) == sorted(ids)  # every customer once, with its own row
    assert (got["id"].str[1:].astype(int) == 999 - got["x"].astype(int)).all()  # code 999 - x
    again = split_features(feats, ids, 4)
    assert all((a["ids"] == b["ids"]).all() for a, b in zip(parts, again))  # stable
    for p in parts:  # rows keep their order
        assert (np.diff(p["features"].index.to_numpy()) < 0).all()


# ----------------------------------------------------------------------------- campaigns
TOUCH_COLS = [
    "touch_key", "campaign", "campaign_run_id", "customer_id", "channel", "grp", "variant", "locale", "subject", "body",
    "is_marketing", "gift_cost", "status", "reason", "planned_at", "not_before", "period", "quiet_hours", "timezone",
]


def _touches(engine) -> pd.DataFrame:
    df = read_frame(engine, f"SELECT {', '.join(TOUCH_COLS)} FROM touches ORDER BY touch_key", parse_dates=["planned_at", "not_before"])
    df["is_marketing"] = df["is_marketing"].astype(bool)
    df["gift_cost"] = df["gift_cost"].astype(float)
    return df


def _run_stats(engine) -> dict:
    import json

    runs = read_frame(engine, "SELECT run_id, stats FROM campaign_runs")
    out = {}
    for rid, st in zip(runs["run_id"], runs["stats"]):
        s = json.loads(st)
        s.pop("delivery", None)
        out[rid] = s
    return out


@pytest.fixture
def shop(warehouse, tmp_path, monkeypatch):
    """The three nightly example campaigns + one whose small budget binds; members in several
    timezones at a time that is night for some of them; an open crisis; touches counting
    toward the caps."""
    from tests.campaigns.conftest import campaign, write_campaign
    from tests.campaigns.factory import load_members, make_members

    d = tmp_path / "campaigns"
    d.mkdir()
    for f in ("awakening.yaml", "retention.yaml", "recall.yaml"):
        shutil.copy(PROJECT_ROOT / "campaigns" / f, d / f)
    write_campaign(d, campaign("tight", budget={"amount": 60, "per": "run"}, budget_order="ltv", holdout_share=0.2, frequency_cap={"messages": 1, "days": 30}))
    monkeypatch.setenv("USEROPS_CAMPAIGNS__DEFINITIONS_DIR", str(d))
    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T14:30:00")  # 22:30 in Shanghai (quiet), daytime in Europe
    for k in ("USEROPS_SMS_WEBHOOK_URL", "USEROPS_PUSH_WEBHOOK_URL", "USEROPS_SMTP_URL"):
        monkeypatch.delenv(k, raising=False)  # nothing is sent: the planned touches stay as planned
    reset_settings()
    frames = make_members(
        1500, seed=21, stages={"active": 0.3, "loyal": 0.1, "silent": 0.35, "churned": 0.25},
        consent_share=0.9, unsub_share=0.05, timezones={"Asia/Shanghai": 0.6, "Europe/Berlin": 0.3, "Nowhere/Bad": 0.1},
    )
    ids = frames["customers"]["customer_id"]
    with warehouse.begin() as conn:
        load_members(conn, frames)
        conn.execute(sa.text("INSERT INTO incidents (incident_id, skus, status, reason, severity, opened_at) VALUES ('inc-1', '[\"SKU1\"]', 'open', 'test', 'high', :t)").bindparams(sa.bindparam("t", type_=sa.DateTime())), {"t": pd.Timestamp("2026-11-19").to_pydatetime()})
        conn.execute(sa.text("INSERT INTO incident_customers (incident_id, customer_id) VALUES ('inc-1', :c)"), [{"c": c} for c in ids.iloc[:40]])
    from tasks.messaging import plan_touches

    earlier = pd.DataFrame({"touch_key": "old|" + ids.iloc[100:400], "campaign": "old", "customer_id": ids.iloc[100:400], "channel": "sms", "status": "sent",
                            "planned_at": pd.Timestamp("2026-11-18 04:00").as_unit("us"), "period": "2026-11-18", "is_marketing": True})
    earlier["sent_at"] = earlier["planned_at"]
    with warehouse.begin() as conn:
        plan_touches(conn, earlier.drop(columns=["sent_at"]))
        conn.execute(sa.text("UPDATE touches SET status = 'sent', sent_at = planned_at WHERE campaign = 'old'"))
    yield warehouse
    reset_settings()


def test_audience_planning_on_dask_plans_the_same_touches(prefect_server, shop, monkeypatch):
    from flows.campaigns import run_campaigns

    engine = shop
    _use_dask(monkeypatch, False)
    plain = run_campaigns(as_of=AS_OF, run_id="night-1")
    assert set(plain["campaigns"]) == {"awakening", "retention", "recall", "tight"}
    plain_touches = _touches(engine)
    plain_stats = _run_stats(engine)
    # the data exercises every global and per-customer rule
    tight = plain["campaigns"]["tight"]
    assert tight["excluded"]["budget"] > 0 and tight["control"] > 0
    assert sum(p["excluded"]["open_crisis"] for p in plain["campaigns"].values()) > 0
    assert sum(p["excluded"]["global_cap"] + p["excluded"]["campaign_cap"] for p in plain["campaigns"].values()) > 0
    assert plain_touches["not_before"].notna().any() and plain_touches["not_before"].isna().any()
    assert set(plain_touches["locale"].dropna()) == {"zh-CN", "en"}
    assert (plain_touches["status"] == "planned").sum() > 100
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM touches WHERE campaign <> 'old'"))
        conn.execute(sa.text("DELETE FROM campaign_runs"))

    _use_dask(monkeypatch, True)
    state = run_campaigns(as_of=AS_OF, run_id="night-1", return_state=True)
    dask = state.result()
    parts = _task_runs(_flow_run_id(state), "plan-campaign-partition")
    assert len(parts) == 4 * PARTITIONS and all(r.state.is_completed() for r in parts)

    pd.testing.assert_frame_equal(plain_touches, _touches(engine))
    assert _run_stats(engine) == plain_stats
    assert {k: {**v, "run_id": None} for k, v in dask["campaigns"].items()} == {k: {**v, "run_id": None} for k, v in plain["campaigns"].items()}
