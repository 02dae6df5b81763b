"""The daily health snapshot on hand-built data; thresholds raise their Prefect event and
alert exactly once per breach day; the nightly report (artifact + HTML)."""
from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pandas as pd
import pytest

from tasks import health, tags
from tests.tags.factory import AS_OF, Shop, local
from tests.prefect_events import wait_events
from userops.db import read_frame


def unhealthy_shop() -> Shop:
    """10 members: 2 active, 4 silent, 2 churned, 1 new, 1 prospect; 2 complaints this week;
    satisfaction 1 of 4 good; NPS 1 promoter, 2 detractors of 4."""
    s = Shop()
    for i in range(2):
        s.customer(f"A{i}")
        s.order(f"A{i}", local(AS_OF, -200))
        s.order(f"A{i}", local(AS_OF, -40 - i))  # second order 160 days after the first
    for i in range(4):
        s.customer(f"S{i}")
        s.order(f"S{i}", local(AS_OF, -100 - i))
    for i in range(2):
        s.customer(f"C{i}")
        s.order(f"C{i}", local(AS_OF, -300))
        s.order(f"C{i}", local(AS_OF, -290))  # bought again within 10 days
    s.customer("N0", registered=local(AS_OF, -3))
    s.order("N0", local(AS_OF, -2))
    s.customer("P0")
    s.complaint("A0", local(AS_OF, -1), satisfaction=2, nps=3)
    s.complaint("S0", local(AS_OF, -6, hour=20), satisfaction=1, nps=5)  # inside the 7 days
    s.complaint("S1", local(AS_OF, -7, hour=12), satisfaction=3)  # 7.5 days before the cutoff: outside
    s.complaint("C0", local(AS_OF, -20), kind="praise", satisfaction=5, nps=10)
    s.complaint("C1", local(AS_OF, -40), kind="praise", satisfaction=5, nps=10)  # outside 30 days
    s.complaint("A1", local(AS_OF, 1), satisfaction=1, nps=0)  # after as_of: ignored
    s.complaint("N0", local(AS_OF, -3), kind="suggestion", nps=8)
    return s


def test_health_metrics(warehouse):
    unhealthy_shop().load(warehouse)
    tags.refresh(AS_OF, "h1", engine=warehouse)
    m = health.snapshot(AS_OF, engine=warehouse)
    assert m["members"] == 10 and m["buyers"] == 9
    assert m["stages"] == {"prospect": 1, "new": 1, "active": 2, "loyal": 0, "silent": 4, "churned": 2}
    assert m["active"] == 3
    assert m["silent_share"] == pytest.approx(0.4)
    assert m["complaints"] == 2
    assert m["complaint_rate"] == pytest.approx(2 / 3)
    assert m["satisfaction_responses"] == 4  # A0, S0, S1, C0 (C1 too old, A1 after as_of)
    assert m["satisfaction"] == pytest.approx(1 / 4)
    assert m["nps_responses"] == 4  # A0, S0, C0, N0
    assert m["nps"] == pytest.approx(100 * (1 - 2) / 4)
    assert m["repeat_rate"] == pytest.approx(4 / 9)
    assert m["avg_ltv"] == pytest.approx(1300 / 9)
    assert m["dau"] is None and m["mau"] is None  # no events at all
    # 30-day retention: C0/C1 bought again within 10 days, A0/A1 only after 160 days
    assert m["retention_30d"] == pytest.approx(2 / 8)  # N0's first order is 2 days old: not eligible
    assert m["retention_90d"] == pytest.approx(2 / 8)
    assert {b["metric"] for b in m["breaches"]} == {"silent_share", "complaint_rate", "satisfaction"}
    row = read_frame(warehouse, "SELECT * FROM health_snapshots")
    assert len(row) == 1 and row["members"].iloc[0] == 10
    assert json.loads(row["metrics"].iloc[0])["stages"]["silent"] == 4
    # a re-run replaces the day's snapshot, the breaches stay recorded once
    health.snapshot(AS_OF, engine=warehouse)
    assert len(read_frame(warehouse, "SELECT as_of FROM health_snapshots")) == 1
    assert len(read_frame(warehouse, "SELECT metric FROM health_breaches")) == 3


def test_thresholds_are_configurable_and_dau_mau(warehouse, monkeypatch):
    from userops.settings import reset_settings

    s = unhealthy_shop()
    s.event("A0", local(AS_OF, 0, hour=9))
    s.event("A0", local(AS_OF, 0, hour=10))
    s.event("S0", local(AS_OF, -10))
    s.event("S1", local(AS_OF, -31))  # outside the month
    s.load(warehouse)
    monkeypatch.setenv("USEROPS_HEALTH__SILENT_SHARE_MAX", "0.5")
    monkeypatch.setenv("USEROPS_HEALTH__COMPLAINT_RATE_MAX", "0.9")
    monkeypatch.setenv("USEROPS_HEALTH__SATISFACTION_MIN", "0.2")
    reset_settings()
    m = health.snapshot(AS_OF, engine=warehouse)  # tags recomputed in memory for the day
    assert m["breaches"] == []
    assert (m["dau"], m["mau"]) == (1, 2)


def test_report_markdown_and_html(warehouse):
    unhealthy_shop().load(warehouse)
    for d in (7, 1, 0):
        day = AS_OF - timedelta(days=d)
        tags.refresh(day, f"r{d}", engine=warehouse)
        m = health.snapshot(day, engine=warehouse)
    md = health.report_markdown(m, health.history(warehouse, AS_OF, 8), None, lang="en")
    assert "| silent share | 40.0% |" in md
    assert "| members | 10 | +0 | +1 |" in md  # N0 registered 3 days ago
    path = health.write_report(AS_OF, m, engine=warehouse, lang="en")
    html = path.read_text(encoding="utf-8")
    assert path.parent.name == "reports" and html.count("<svg") == 4
    assert "13800138000" not in html and "@example.com" not in html


@pytest.mark.xdist_group("prefect")
def test_breach_events_once_per_breach_day(warehouse, prefect_server):
    from prefect.client.orchestration import get_client

    from flows.tags import health_check, refresh_tags

    from datetime import datetime, timezone

    started = datetime.now(timezone.utc)
    unhealthy_shop().load(warehouse)
    refresh_tags(as_of=AS_OF, run_id="n1")
    first = health_check(as_of=AS_OF, run_id="n1")
    assert sorted(first["emitted"]) == [
        "userops.health.complaint-rate-high", "userops.health.satisfaction-low", "userops.health.silent-share-high",
    ]
    assert any("silent share" in line or "沉默占比" in line for line in first["summary"])
    again = health_check(as_of=AS_OF, run_id="n1-again")  # the same night re-run
    assert again["emitted"] == []
    # the server is shared by the session: only this test's events count
    evs = wait_events("userops.health.silent-share-high", lambda e: e.occurred >= started and e.payload.get("as_of") == str(AS_OF), 1)
    assert len(evs) == 1
    ev = evs[0]
    assert ev.resource.id == "userops.health"
    assert ev.payload["silent_share"] == pytest.approx(0.4) and ev.payload["threshold"] == 0.35
    alerts = read_frame(warehouse, "SELECT kind, dedupe_key, title, body FROM alert_outbox ORDER BY dedupe_key")
    assert alerts["kind"].tolist() == ["health_breach"] * 3
    assert not alerts["body"].str.contains("13800138000|example.com").any()
    silent_body = alerts[alerts["dedupe_key"].str.contains("silent_share")]["body"].iloc[0]
    # the alert does not claim the recall plan started: that needs the served trigger
    assert "userops.health.silent-share-high" in silent_body and "userops campaign run recall" in silent_body, silent_body

    # the next day is another breach day: one more event
    nxt = AS_OF + timedelta(days=1)
    refresh_tags(as_of=nxt, run_id="n2")
    assert "userops.health.silent-share-high" in health_check(as_of=nxt, run_id="n2")["emitted"]
    evs = wait_events("userops.health.silent-share-high", lambda e: e.occurred >= started and e.payload.get("as_of") in (str(AS_OF), str(nxt)), 2)
    assert sorted(e.payload["as_of"] for e in evs) == [str(AS_OF), str(nxt)]
    assert len(read_frame(warehouse, "SELECT id FROM alert_outbox")) == 6

    # the report artifact under its stable key links the HTML file
    async def artifact():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        async with get_client() as client:
            return await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["health-report"])))

    arts = [a for a in asyncio.run(artifact()) if a.created >= started]  # this test's (the server is the session's)
    assert arts and f"health-{nxt}.html" in max(arts, key=lambda a: a.created).data
    assert pd.Timestamp(first["as_of"]).date() == AS_OF


@pytest.mark.xdist_group("prefect")
def test_a_breach_left_unemitted_goes_out_with_the_next_night(warehouse, prefect_server):
    """The night of AS_OF failed after its snapshot (breaches recorded, nothing emitted) and
    was not re-run: the next night emits them under their own day, once; a breach older
    than the catch-up days stays unemitted."""
    from datetime import datetime, timezone

    started = datetime.now(timezone.utc)
    unhealthy_shop().load(warehouse)
    tags.refresh(AS_OF, run_id="n1", engine=warehouse)
    assert {b["metric"] for b in health.snapshot(AS_OF, warehouse)["breaches"]} >= {"silent_share"}  # recorded only
    stale = AS_OF - timedelta(days=health.CATCH_UP_DAYS + 1)
    with warehouse.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO health_breaches (as_of, metric, value, threshold, event, detail) "
            f"VALUES ('{stale}', 'silent_share', 0.5, 0.35, 'userops.health.silent-share-high', '{{\"as_of\": \"{stale}\"}}')"
        )
    nxt = AS_OF + timedelta(days=1)
    out = health.emit_pending_breaches(nxt, warehouse)  # the next night (no breach of its own recorded yet)
    assert {(d["as_of"], d["metric"]) for d in out} >= {(str(AS_OF), "silent_share")}
    assert all(d["as_of"] == str(AS_OF) for d in out)
    assert health.emit_pending_breaches(nxt, warehouse) == []  # once
    evs = wait_events("userops.health.silent-share-high", lambda e: e.occurred >= started and e.payload.get("as_of") in (str(AS_OF), str(stale)), 1)
    assert [e.payload["as_of"] for e in evs] == [str(AS_OF)]
    alerts = read_frame(warehouse, "SELECT dedupe_key, title FROM alert_outbox WHERE kind = 'health_breach'")
    assert len(alerts) == len(out) and alerts["title"].str.contains(str(AS_OF)).all()
    left = read_frame(warehouse, "SELECT as_of FROM health_breaches WHERE emitted_at IS NULL")
    assert [str(pd.Timestamp(d).date()) for d in left["as_of"]] == [str(stale)]


@pytest.mark.xdist_group("prefect")
def test_a_failure_on_one_breach_keeps_the_others_emitted(warehouse, prefect_server, monkeypatch):
    """Three breaches on one day; queuing the second one's alert fails: the first stays
    recorded as emitted, so the re-run emits only the two left (each once)."""
    import tasks.alerts as alerts_mod

    unhealthy_shop().load(warehouse)
    tags.refresh(AS_OF, run_id="n1", engine=warehouse)
    health.snapshot(AS_OF, warehouse)
    real = alerts_mod.enqueue_alert
    calls = []

    def flaky(kind, title, body, **kw):
        calls.append(kw["subject"])
        if len(calls) == 2:
            raise RuntimeError("the outbox is unreachable")
        return real(kind, title, body, **kw)

    monkeypatch.setattr(alerts_mod, "enqueue_alert", flaky)
    with pytest.raises(RuntimeError):
        health.emit_pending_breaches(AS_OF, warehouse)
    monkeypatch.setattr(alerts_mod, "enqueue_alert", real)
    rerun = health.emit_pending_breaches(AS_OF, warehouse)
    assert calls == ["complaint_rate", "satisfaction"]  # in (day, metric) order; the second failed
    assert [d["metric"] for d in rerun] == ["satisfaction", "silent_share"]  # the first is not emitted again
    alerts = read_frame(warehouse, "SELECT dedupe_key FROM alert_outbox WHERE kind = 'health_breach'")
    assert len(alerts) == 3 and alerts["dedupe_key"].is_unique
    assert health.emit_pending_breaches(AS_OF, warehouse) == []
