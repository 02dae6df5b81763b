"""The warehouse goes down during the night, after the digest stage started (or the digest
cannot read it at all): the night still gets its ``nightly-digest`` artifact in the Prefect
UI - what the run holds in memory (status, why it failed, stage times and each stage's
summary, rows extracted/loaded/quarantined), that the warehouse could not be read and which
figures are missing - in the shop's language. Since 64fbcef the stage's draft is held for
the run's hook, and the hook gave up when the outbox could not be written: no artifact.

A real nightly run on the session's Prefect server (ingest replaced by a stand-in: the data
path is not the subject); "unreachable" is a PostgreSQL URL to a closed port."""
from __future__ import annotations

import socket
import uuid
from datetime import date

import pytest

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect]

AS_OF = date(2026, 11, 20)
INGEST = {"customers": {"read": 1234, "loaded": 1200, "quarantined": 34}, "orders": {"read": 5678, "loaded": 5678, "quarantined": 0}}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def night(prefect_server, sqlite_warehouse, monkeypatch):
    """``night(down_before_build)``: run the nightly with ingest stood in, a tags stage with a
    summary line, and the digest stage; the warehouse goes down as the digest stage starts
    (before it reads anything) or after it built its draft. Returns (state, run id)."""
    import flows.digest as digest_flow
    import flows.nightly as nightly_mod
    import flows.stages as stages
    from userops.db import dispose_engines
    from userops.settings import reset_settings

    def go_down():
        monkeypatch.setenv("USEROPS_DATABASE_URL", f"postgresql://ops:pw@127.0.0.1:{_closed_port()}/shop")
        reset_settings()
        dispose_engines()

    def run(down_before_build: bool):
        monkeypatch.setattr(nightly_mod, "ingest_sources", lambda run_id, full_refresh=False: {k: dict(v) for k, v in INGEST.items()})

        def tags(as_of, run_id):
            return {"summary": ["客户标签已更新：1,234 位客户"]}

        real_queue = digest_flow.queue_digest_task

        def queue_after_outage(d, hold_seconds=0):
            go_down()
            return real_queue(d, hold_seconds)

        def digest(as_of, run_id):
            if down_before_build:
                go_down()
            else:
                monkeypatch.setattr(digest_flow, "queue_digest_task", queue_after_outage)
            return digest_flow.nightly_digest.fn(as_of=as_of, run_id=run_id)

        monkeypatch.setattr(stages, "NIGHTLY_STAGES", [("tags", tags), ("digest", digest)])
        state = nightly_mod.nightly(as_of=AS_OF, return_state=True)
        return state, str(state.state_details.flow_run_id)

    yield run
    dispose_engines()


def _digest_artifacts(run_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["nightly-digest"]), flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(run_id)])))


def _says_what_is_known_and_what_is_missing(md: str) -> None:
    assert "# 夜间摘要 2026-11-20" in md, md
    assert "**运行**：失败" in md, md
    assert "连不上数据仓库 postgresql+psycopg2://ops:***@127.0.0.1:" in md and ":pw@" not in md, md
    assert "阶段用时：导入数据" in md and "客户标签" in md, md
    assert "客户标签已更新：1,234 位客户" in md, md  # the stage's outcome, from the run's memory
    assert "customers：抽取 1,234，入库 1,200，隔离 34" in md, md
    assert "数据仓库读不到" in md and "缺少以下数字" in md, md
    for missing in ("隔离规则", "进行中的危机事件", "待复核的消息", "未送达的告警"):
        assert missing in md, (missing, md)
    assert "**需要人工处理**" in md and "请检查 USEROPS_DATABASE_URL" in md, md


def test_the_digest_cannot_read_the_warehouse_at_all(night):
    state, run_id = night(down_before_build=True)
    assert state.is_failed()
    versions = _digest_artifacts(run_id)
    assert len(versions) == 1, [a.data for a in versions]
    md = versions[0].data
    _says_what_is_known_and_what_is_missing(md)
    for missing in ("生命周期变化", "健康指标", "流失风险", "活动触达"):
        assert missing in md.split("缺少以下数字", 1)[1], (missing, md)


def test_the_warehouse_goes_down_after_the_digest_read_it(night):
    """The stage's draft read the warehouse before it went away: its sections are in the
    artifact, marked as read before; the rest is what the run holds in memory."""
    state, run_id = night(down_before_build=False)
    assert state.is_failed()
    versions = _digest_artifacts(run_id)
    assert len(versions) == 1, [a.data for a in versions]
    md = versions[0].data
    _says_what_is_known_and_what_is_missing(md)
    assert "数据仓库断开之前读到的" in md and "尚无健康快照" in md and "今晚无触达" in md, md
    assert "健康指标" not in md.split("缺少以下数字", 1)[1].split("\n", 1)[0], md


def test_the_offline_digest_in_english(monkeypatch):
    """No Prefect, no warehouse: the digest of what the run holds, in the shop's other language."""
    from datetime import datetime

    from tasks.alerts.digest import build_digest
    from userops.db import dispose_engines
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_DATABASE_URL", f"postgresql://ops:pw@127.0.0.1:{_closed_port()}/shop")
    reset_settings()
    dispose_engines()
    known = {"status": "failed", "error": "boom", "started_at": datetime(2026, 11, 20, 18, 0),
             "stats": {"stages": {"ingest": 4.2, "tags": 1.0}, "ingest": INGEST, "tags": {"summary": ["tags refreshed: 1,234 customers"]}, "failed_stage": "digest"}}
    d = build_digest(AS_OF, "nightly-x", lang="en", known=known)
    dispose_engines()
    assert d.title == "Nightly digest 2026-11-20" and d.severity == "error"
    assert "**Run**: failed" in d.body and "tags refreshed: 1,234 customers" in d.body, d.body
    assert "customers: 1,234 extracted, 1,200 loaded, 34 quarantined" in d.body, d.body
    assert "the warehouse could not be read: cannot reach the warehouse postgresql+psycopg2://ops:***@" in d.body, d.body
    assert "these figures are missing:" in d.body and "health figures" in d.body and "undelivered alerts" in d.body, d.body
    assert ":pw@" not in d.body and "未" not in d.body, d.body
