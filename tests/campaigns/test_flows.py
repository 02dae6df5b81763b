"""The flows on a real Prefect test server: the nightly stage plans every campaign that is
on, sends, and publishes a read-out per campaign and the calendar; the recall plan records
why it ran; an invalid definition fails the stage before anything is sent."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import shutil

import pytest
import sqlalchemy as sa

from tests.campaigns.conftest import AS_OF, touches
from tests.campaigns.factory import load_members, make_members
from userops.settings import PROJECT_ROOT

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect]


@pytest.fixture
def shop(warehouse, cdir, provider, monkeypatch):
    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T04:00:00")  # 12:00 in Shanghai
    for f in ("awakening.yaml", "retention.yaml", "recall.yaml", "onboarding.yaml", "vip-care.yaml"):
        shutil.copy(PROJECT_ROOT / "campaigns" / f, cdir / f)
    frames = make_members(600, seed=11, stages={"active": 0.3, "loyal": 0.1, "silent": 0.35, "churned": 0.25}, consent_share=0.9)
    frames["churn_scores"].loc[frames["tags"]["lifecycle_stage"].isin(["active", "loyal"]).to_numpy()[:], "risk_band"] = "high"
    with warehouse.begin() as conn:
        load_members(conn, frames)
    return frames


def test_nightly_stage_plans_sends_and_publishes(shop, warehouse, provider, prefect_server):
    from prefect.artifacts import Artifact

    from flows.campaigns import run_campaigns

    started = datetime.now(timezone.utc)  # the session's server holds the other database's run's artifacts too
    out = run_campaigns(as_of=AS_OF, run_id="nightly-test")
    assert set(out["campaigns"]) == {"awakening", "retention", "recall"}  # the examples are off
    t = touches(warehouse)
    assert set(t["campaign"]) == {"awakening", "retention", "recall"}
    assert out["delivery"]["sent"] == (t["status"] == "sent").sum() > 0
    assert not t["status"].isin(["planned", "in_flight"]).any()
    assert len(provider.delivered) == (t["status"].eq("sent") & t["channel"].isin(["sms", "push"])).sum()
    assert out["summary"] and any("awakening" in line for line in out["summary"])
    for name in ("awakening", "retention", "recall"):
        art = Artifact.get(f"campaign-{name}")
        assert art is not None and art.type == "table" and art.created >= started  # published by this run
        assert "@" not in str(art.data) and "138" not in str(art.data)  # no personal data
    cal = Artifact.get("campaign-calendar")
    assert cal is not None and cal.created >= started
    with warehouse.connect() as conn:
        runs = conn.execute(sa.text("SELECT campaign, status, stats FROM campaign_runs")).fetchall()
    assert {r[0] for r in runs} == {"awakening", "retention", "recall"} and {r[1] for r in runs} == {"completed"}
    # each run records its own touches' fate, not the whole night's send
    for name, _, stats in runs:
        d = json.loads(stats)["delivery"]
        mine = t[t["campaign"] == name]
        assert d["sent"] == (mine["status"] == "sent").sum() and d["control"] == (mine["status"] == "control").sum()
    assert sum(json.loads(r[2])["delivery"]["sent"] for r in runs) == out["delivery"]["sent"]
    # the same night again: nothing new is planned or sent
    again = run_campaigns(as_of=AS_OF, run_id="nightly-test")
    assert all(p["planned"] == 0 for p in again["campaigns"].values()) and again["delivery"]["sent"] == 0


def test_recall_plan_records_the_silent_share(shop, warehouse, prefect_server):
    from flows.campaigns import recall_plan

    out = recall_plan(silent_share=0.382, as_of="2026-11-20")
    assert out["notes"] == "沉默会员占比 38.2% 超过阈值 35%，启动流失预警召回计划"
    assert out["campaigns"]["recall"]["entry"] == "event"
    with warehouse.connect() as conn:
        notes = conn.execute(sa.text("SELECT notes FROM campaign_runs WHERE campaign = 'recall'")).scalar()
    assert notes == out["notes"]
    stages = set(touches(warehouse).merge(shop["tags"][["customer_id", "lifecycle_stage"]], on="customer_id")["lifecycle_stage"])
    assert stages == {"silent", "churned"}
    # the operator reads why it ran and what it planned in the UI, on a run named after its day
    from prefect.artifacts import Artifact
    from prefect.client.orchestration import get_client

    art = Artifact.get("recall-plan")
    assert art is not None and "## 流失预警召回计划 2026-11-20" in art.data and out["notes"] in art.data and "recall" in art.data
    assert "@" not in art.data and "138" not in art.data
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(art.flow_run_id).name == "recall-plan-2026-11-20"


def test_invalid_definition_fails_before_anything_is_sent(shop, warehouse, cdir, provider, prefect_server):
    from flows.campaigns import run_campaigns
    from tasks.campaigns.definitions import CampaignDefinitionError

    (cdir / "zz-broken.yaml").write_text((cdir / "awakening.yaml").read_text(encoding="utf-8").replace("name: awakening", "name: broken").replace("{{ name }}", "{{ nmae }}"), encoding="utf-8")
    with pytest.raises(CampaignDefinitionError, match=r"^活动定义无效：\n.*zz-broken.yaml：variants\[0\].body.zh-CN：未知的模板变量 nmae；"):
        run_campaigns(as_of=AS_OF, run_id="nightly-bad")
    assert touches(warehouse).empty and provider.requests == 0


def test_a_night_in_quiet_hours_says_what_waits_for_the_morning(shop, warehouse, provider, prefect_server, monkeypatch):
    """Planned at 22:00 in Shanghai: the summary says how many messages wait for the morning."""
    from flows.campaigns import run_campaigns

    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T14:00:00")
    out = run_campaigns(as_of=AS_OF, run_id="nightly-quiet")
    t = touches(warehouse)
    waiting = t[t["status"] == "planned"].groupby("campaign").size()
    assert waiting.sum() > 0 and out["delivery"]["sent"] == (t["status"] == "sent").sum()  # channels without quiet hours go now
    for name, n in waiting.items():
        assert out["campaigns"][name]["deferred_quiet_hours"] == n
        line = next(x for x in out["summary"] if x.startswith(f"{name}："))
        assert f"其中 {n} 条在免打扰时段结束后发送" in line, line


def test_the_morning_delivery_sends_what_waited_and_says_so_in_the_ui(shop, warehouse, provider, prefect_server, monkeypatch):
    """Planned at 22:00 (quiet hours), delivered by the 10-minute delivery run the next morning:
    everything deferred goes out once, and the run leaves a summary on itself (no personal data)
    and a name with the shop's minute."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.campaigns import deliver_messages, run_campaigns

    monkeypatch.setenv("USEROPS_NOW", "2026-11-20T14:00:00")  # 22:00 in Shanghai
    run_campaigns(as_of=AS_OF, run_id="nightly-quiet")
    waiting = (touches(warehouse)["status"] == "planned").sum()
    assert waiting > 0
    sent_before = len(provider.delivered)

    monkeypatch.setenv("USEROPS_NOW", "2026-11-21T01:30:00")  # 09:30 the next morning
    state = deliver_messages(return_state=True)
    assert state.is_completed()
    out = state.result()
    t = touches(warehouse)
    assert not t["status"].isin(["planned", "in_flight"]).any()
    assert out["delivery"]["sent"] == waiting == len(provider.delivered) - sent_before
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        arts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert run.name == "deliver-messages-2026-11-21 09:30"
    (art,) = arts
    assert art.key is None and art.type == "markdown"  # on the run only: every 10 minutes would flood the Artifacts page
    assert "## 消息投递 2026-11-21 09:30" in art.data and f"发送 {waiting} 条" in art.data.replace(",", ""), art.data
    assert "@" not in art.data and "138" not in art.data

    # the next round has nothing due: no second send, no artifact
    again = deliver_messages(return_state=True)
    assert again.result()["delivery"]["sent"] == 0 and len(provider.delivered) - sent_before == waiting


def test_a_delivery_run_with_messages_waiting_for_a_provider_says_so_in_the_ui(shop, warehouse, provider, prefect_server):
    """The 10-minute delivery run left a summary only when it sent or failed something: 148
    emails waiting for an SMTP server were invisible in the Prefect UI. It leaves the summary
    (the waiting count and the setting to set) whenever something waits for a provider; a
    run with truly nothing to do still leaves nothing."""
    import pandas as pd
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.campaigns import deliver_messages
    from tasks.messaging import plan_touches
    from tests.campaigns.conftest import NOON

    def artifacts(state):
        with get_client(sync_client=True) as client:
            return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))

    idle = deliver_messages(return_state=True)  # nothing planned at all
    assert idle.is_completed() and artifacts(idle) == []

    c = shop["customers"]
    ids = list(c.loc[c["marketing_consent"].eq(True) & c["unsubscribed_at"].isna(), "customer_id"][:5])  # nothing suppressed at send
    df = pd.DataFrame({"customer_id": ids})
    df["touch_key"] = "onboarding|" + df["customer_id"] + "|2026-11-20"
    df["campaign"], df["channel"], df["status"] = "onboarding", "email", "planned"  # no SMTP server configured
    df["subject"], df["body"], df["is_marketing"], df["planned_at"] = "主题", "正文", True, pd.Timestamp(NOON)
    with warehouse.begin() as conn:
        plan_touches(conn, df)

    state = deliver_messages(return_state=True)
    assert state.is_completed()
    out = state.result()
    waiting = (touches(warehouse)["status"] == "planned").sum()  # still waiting, nothing burned
    assert waiting == 5 and out["delivery"]["waiting_for_provider"] == {"email": 5}
    assert not any(out["delivery"][k] for k in ("sent", "failed", "retry_scheduled", "suppressed", "resent_after_crash"))
    (art,) = artifacts(state)
    assert art.key is None and art.type == "markdown"
    assert f"等待渠道配置 {waiting} 条" in art.data and "请设置 USEROPS_SMTP_URL" in art.data, art.data
    assert "@" not in art.data and "138" not in art.data
