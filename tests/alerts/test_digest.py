"""Nightly digest content from the warehouse (SQLite and PostgreSQL), zh-CN and en."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pytest
import sqlalchemy as sa
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.alerts.digest import build_digest, queue_digest
from tests.alerts.conftest import outbox
from userops.db import insert_rows

AS_OF = date(2026, 11, 20)
RUN = "7aa1c7ad-8a09-4725-b429-691c3870a040"
NOW = datetime(2026, 11, 20, 18, 30, 0)  # 02:30 shop time next morning


@pytest.fixture(autouse=True)
def _lasting_prefect_server():
    """The runs here are on a Prefect server that outlives them: their digest links to the
    run's page (a run on Prefect's temporary server gets none, tests/alerts/test_run_links.py)."""
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4200/api"}):
        yield


def _fill(engine):
    started = NOW - timedelta(minutes=12, seconds=5)
    with engine.begin() as conn:
        insert_rows(conn, "pipeline_runs", [{"run_id": RUN, "flow": "nightly", "as_of": AS_OF, "started_at": started, "status": "running"}])
        insert_rows(conn, "pipeline_runs", [{"run_id": "older", "flow": "nightly", "as_of": AS_OF - timedelta(days=1), "started_at": started - timedelta(days=1), "finished_at": started - timedelta(days=1) + timedelta(minutes=9), "status": "completed", "stats": "{}"}])
        insert_rows(
            conn,
            "quarantine",
            [
                {"source_table": "orders", "source_id": f"o{i}", "record_hash": f"h{i}", "rule": "amount_negative", "reason": "amount < 0", "record": json.dumps({"phone": "13812345678"}), "run_id": RUN, "seen_at": NOW}
                for i in range(3)
            ]
            + [{"source_table": "customers", "source_id": "c1", "record_hash": "hc", "rule": "email_invalid", "reason": "bad email", "record": "{}", "run_id": RUN, "seen_at": NOW}],
        )
        insert_rows(
            conn,
            "stage_history",
            [{"customer_id": f"a{i}", "from_stage": "active", "to_stage": "silent", "changed_on": AS_OF, "run_id": RUN} for i in range(5)]
            + [{"customer_id": f"n{i}", "from_stage": None, "to_stage": "new", "changed_on": AS_OF, "run_id": RUN} for i in range(2)]
            + [{"customer_id": "old", "from_stage": "new", "to_stage": "active", "changed_on": AS_OF - timedelta(days=1), "run_id": "older"}],
        )
        for d, members, silent, compl, sat in [(AS_OF - timedelta(days=1), 5000, 0.34, 0.04, 0.86), (AS_OF, 5037, 0.381, 0.041, 0.83)]:
            insert_rows(conn, "health_snapshots", [{"as_of": d, "metrics": "{}", "members": members, "active": 2000, "silent_share": silent, "complaint_rate": compl, "satisfaction": sat, "created_at": NOW}])
        insert_rows(conn, "health_breaches", [{"as_of": AS_OF, "metric": "silent_share", "value": 0.381, "threshold": 0.35, "event": "userops.health.silent-share-high", "emitted_at": NOW}])
        insert_rows(
            conn,
            "touches",
            [
                {"touch_key": f"awakening|c{i}|2026-11-20", "campaign": "awakening", "customer_id": f"c{i}", "channel": "sms", "grp": "treatment", "status": "sent", "planned_at": NOW - timedelta(minutes=5), "sent_at": NOW - timedelta(minutes=4)}
                for i in range(7)
            ]
            + [{"touch_key": "awakening|k|2026-11-20", "campaign": "awakening", "customer_id": "k", "channel": "sms", "grp": "control", "status": "control", "planned_at": NOW - timedelta(minutes=5), "sent_at": None}]
            + [{"touch_key": "crisis-INC1|v|x", "campaign": "crisis-INC1", "customer_id": "v", "channel": "staff", "grp": "treatment", "status": "awaiting_review", "planned_at": NOW - timedelta(minutes=3), "sent_at": None}]
            + [{"touch_key": "awakening|old|2026-11-10", "campaign": "awakening", "customer_id": "old", "channel": "sms", "grp": "treatment", "status": "sent", "planned_at": NOW - timedelta(days=10), "sent_at": NOW - timedelta(days=10)}],
        )
        insert_rows(conn, "incidents", [{"incident_id": "INC1", "skus": '["SKU-9"]', "status": "open", "opened_at": NOW - timedelta(hours=3)}])
        insert_rows(
            conn,
            "incident_steps",
            [
                {"incident_id": "INC1", "step": "control", "deadline_at": NOW - timedelta(hours=1), "status": "done"},
                {"incident_id": "INC1", "step": "clarify", "deadline_at": NOW + timedelta(hours=1), "status": "waiting"},
                {"incident_id": "INC1", "step": "compensate", "deadline_at": NOW + timedelta(hours=21), "status": "pending"},
            ],
        )


def test_digest_content_zh_and_en(warehouse):
    _fill(warehouse)
    d = build_digest(AS_OF, RUN, lang="zh-CN", now=NOW)
    body = d.body
    assert d.title == "夜间摘要 2026-11-20"
    assert "各阶段完成" in body and "12 分 5 秒" in body
    assert "orders：隔离 3 行" in body and "customers：隔离 1 行" in body and "amount_negative 3" in body
    assert "活跃 → 沉默：5" in body and "（首次） → 新客：2" in body and "新客 → 活跃" not in body  # only tonight
    assert "活跃会员（新客+活跃+忠诚）2,000" in body.replace(" ", "")  # the health figure, not the stage of that name
    assert "会员 5,037 (+37)" in body and "沉默占比 38.1% (+4.1pp)" in body and "满意度 83.0% (-3.0pp)" in body
    assert "对比 2026-11-19" in body
    assert "超阈值：沉默占比 = 38.1%（阈值 35.0%）" in body
    assert "awakening：已发送 7，对照组 1" in body  # tonight only: the 10-day-old touch is not counted
    assert "进行中的危机事件：1" in body
    assert "事件 INC1 的「澄清事实」截止 11-21 03:30（等待人工）" in body  # deadline in shop time, status in words
    assert "控制扩散" not in body  # done steps are not listed
    assert "待审核的触达：1" in body and "今日超阈值指标：1" in body
    assert "13812345678" not in body and "138" not in body
    assert d.severity == "warning"
    assert d.link == f"http://127.0.0.1:4200/runs/flow-run/{RUN}"
    assert d.figures["quarantined"] == 4 and d.figures["open_incidents"] == 1
    assert d.figures["health"]["members"] == {"value": 5037.0, "previous": 5000.0}
    assert f"[在 Prefect 中查看本次运行]({d.link})" in d.markdown

    en = build_digest(AS_OF, RUN, lang="en", now=NOW)
    assert en.title == "Nightly digest 2026-11-20"
    for s in ["all stages done, took 12m 5s", "active → silent: 5", "members 5,037 (+37)", "silent share 38.1% (+4.1pp)", "awakening: sent 7, control 1", "open incidents: 1", "touches awaiting review: 1"]:
        assert s in en.body, s


def test_a_section_the_warehouse_cannot_answer_says_so_and_needs_a_human(warehouse):
    """A section whose table is missing or changed (a warehouse not upgraded, a lost connection)
    is named in its place and under "needs a human"; the rest of the digest goes out."""
    _fill(warehouse)
    with warehouse.begin() as conn:
        conn.exec_driver_sql("DROP TABLE churn_scores")
    d = build_digest(AS_OF, RUN, lang="zh-CN", now=NOW)
    assert "⚠️ 流失风险：未能从数据仓库读取" in d.body and "本节缺失" in d.body
    human = d.body.split("**需要人工处理**", 1)[1]
    assert "摘要的「流失风险」未能读取" in human and "userops db upgrade" in human
    assert "awakening：已发送 7，对照组 1" in d.body  # the other sections are there
    en = build_digest(AS_OF, RUN, lang="en", now=NOW)
    assert "⚠️ churn risk: could not be read from the warehouse" in en.body


def test_digest_on_an_empty_warehouse(warehouse):
    d = build_digest(AS_OF, "nightly-abc123", lang="zh-CN", now=NOW)
    assert d.title == "夜间摘要 2026-11-20"
    for s in ["未知（无运行记录）", "本次运行无隔离记录", "今日无阶段变化", "尚无健康快照", "今晚无触达", "**需要人工处理**\n- 无"]:
        assert s in d.body, s
    assert d.link is None  # not a Prefect run id: no link
    assert d.severity == "info"


def test_digest_uses_run_stats_when_present(warehouse):
    with warehouse.begin() as conn:
        insert_rows(
            conn,
            "pipeline_runs",
            [
                {
                    "run_id": RUN, "flow": "nightly", "as_of": AS_OF, "started_at": NOW - timedelta(seconds=95), "finished_at": NOW, "status": "completed",
                    "stats": json.dumps({"ingest": {"customers": {"read": 1200, "loaded": 1199, "quarantined": 1}}, "stages": {"ingest": 30.5, "tags": 12.0}}),
                }
            ],
        )
    d = build_digest(AS_OF, RUN, lang="en", now=NOW)
    assert "**Run**: completed, took 1m 35s" in d.body
    assert "customers: 1,200 extracted, 1,199 loaded, 1 quarantined" in d.body
    assert "Stage times: ingest 30s, customer tags 12s" in d.body or "Stage times: ingest 31s, customer tags 12s" in d.body
    zh = build_digest(AS_OF, RUN, lang="zh-CN", now=NOW).body
    assert "阶段用时：导入数据 " in zh and "客户标签 12 秒" in zh  # the stages in words, not their code names


def test_digest_is_queued_once_per_day_and_lists_undelivered_alerts(warehouse):
    from tasks.alerts import enqueue_alert

    enqueue_alert("flow_failed", "Flow failed: nightly", "x", subject="r", day=AS_OF)
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE alert_outbox SET attempts = 3, last_error = 'Slack unavailable (503)'"))
    d = build_digest(AS_OF, RUN, lang="en", now=NOW)
    assert "undelivered alerts: 1" in d.body
    assert queue_digest(d) == 1 and queue_digest(d) == 0
    rows = outbox(warehouse, kind="digest")
    assert len(rows) == 1 and rows[0].dedupe_key == f"digest|{RUN}|2026-11-20"  # one digest per nightly run
    assert json.loads(rows[0].payload)["link"] == d.link


# -- a failed night says why and what to do (the run's error, scrubbed, under "needs a human")
REJECTED_ORDERS = (
    "orders: 300 of 3106 rows (9.7%) failed validation, above the 5% limit; nothing from this batch was loaded. "
    "Rules: amount_negative 300. Customer 13812345678 li.lei@example.com"
)


def _failed_run(engine, error: str):
    with engine.begin() as conn:
        insert_rows(
            conn,
            "pipeline_runs",
            [{"run_id": RUN, "flow": "nightly", "as_of": AS_OF, "started_at": NOW - timedelta(seconds=40), "finished_at": NOW, "status": "failed",
              "stats": json.dumps({"stages": {}}), "error": error}],
        )


def _human(body: str) -> list[str]:
    part = body.split("需要人工处理" if "需要人工处理" in body else "Needs a human", 1)[1]
    return [ln[2:] for ln in part.splitlines() if ln.startswith("- ")]


def test_failed_night_with_a_rejected_batch_says_why_and_needs_a_human(warehouse):
    from tasks.validate import BatchRejected

    _failed_run(warehouse, REJECTED_ORDERS)
    exc = BatchRejected("orders", REJECTED_ORDERS, {"amount_negative": 300})
    for error in (None, exc):  # from the stored error text, or from the failure hook's exception
        d = build_digest(AS_OF, RUN, lang="zh-CN", now=NOW, **({"error": error} if error is not None else {}))
        assert "**运行**：失败" in d.body
        assert "校验 orders 数据失败：" in d.body and "300 of 3106 rows" in d.body
        human = _human(d.body)
        assert human and human[0].startswith("夜间任务失败（校验 orders 数据）：") and "userops quarantine list" in human[0]
        assert "无" not in human
        assert "13812345678" not in d.body and "li.lei@example.com" not in d.body
        assert d.severity == "error"
    d = build_digest(AS_OF, RUN, lang="en", now=NOW, error=exc)
    assert "validating orders failed: " in d.body
    assert _human(d.body)[0].startswith("the nightly run failed (validating orders): ")


def test_failed_night_without_a_source_url_says_what_to_set(warehouse):
    _failed_run(warehouse, "no URL configured for the crm source: set USEROPS_CRM__URL (or run `userops demo` to use the sample CRM and order system)")
    d = build_digest(AS_OF, RUN, lang="zh-CN", now=NOW)
    assert "读取数据源失败：" in d.body and "USEROPS_CRM__URL" in d.body
    human = _human(d.body)
    assert human[0].startswith("夜间任务失败（读取数据源）：") and "USEROPS_CRM__URL" in human[0]
    assert "无" not in human
