"""Stable artifact keys and the quarantine summary (no Prefect server needed)."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from tasks.artifacts import (
    ARTIFACT_KEYS,
    artifact_key,
    quarantine_markdown,
    quarantine_released,
    quarantine_run_summary,
    quarantine_summary_lines,
)
from userops.db import bulk_upsert


def test_keys_are_stable_and_valid():
    assert artifact_key("quarantine") == "nightly-quarantine"
    assert artifact_key("digest") == "nightly-digest"
    assert artifact_key("health") == "health-report"
    assert artifact_key("campaign", "Awakening") == "campaign-awakening"
    assert artifact_key("campaign", "vip care/2026") == "campaign-vip-care-2026"
    assert artifact_key("calendar") == "campaign-calendar"
    for kind, pattern in ARTIFACT_KEYS.items():
        key = artifact_key(kind, "x") if "{name}" in pattern else artifact_key(kind)
        assert key == key.lower() and " " not in key and "_" not in key
    with pytest.raises(ValueError):
        artifact_key("campaign")
    with pytest.raises(KeyError):
        artifact_key("nope")


def _quarantine(conn, run_id, rows):
    df = pd.DataFrame(
        [
            {
                "source_table": table,
                "source_id": f"{table}-{i}",
                "record_hash": f"{run_id}-{table}-{rule}-{i}",
                "rule": rule,
                "reason": reason,
                "record": '{"phone": "13800138000", "email": "a@b.cn"}',
                "run_id": run_id,
                "seen_at": datetime(2026, 11, 20, 18, 0),
            }
            for i, (table, rule, reason) in enumerate(rows)
        ]
    )
    bulk_upsert(conn, "quarantine", df, ["source_table", "record_hash", "rule"], on_conflict="nothing")


def test_quarantine_summary_counts_this_run_only_and_holds_no_personal_data(warehouse):
    with warehouse.begin() as conn:
        _quarantine(conn, "old-run", [("customers", "email_malformed", "bad email")])
        _quarantine(
            conn,
            "run-1",
            [
                ("orders", "amount_negative", "amount is negative"),
                ("orders", "amount_negative", "amount is negative"),
                ("customers", "phone_malformed", "phone | malformed"),
            ],
        )
        _quarantine(conn, "older-run", [("orders", "customer_unknown", "customer C9 not loaded")])
        # run-1 loaded C9 and released that order (settle_quarantine): no longer open
        conn.exec_driver_sql("UPDATE quarantine SET resolved_at = '2026-11-20 18:05:00', resolved_run_id = 'run-1' "
                             "WHERE run_id = 'older-run'")
    rows, total = quarantine_run_summary("run-1", warehouse)
    assert total == 4  # open: the old run's 1 + this run's 3; the released one is not counted
    assert quarantine_released("run-1", warehouse) == 1 and quarantine_released("old-run", warehouse) == 0
    md_released = quarantine_markdown("2026-11-20", "run-1", rows, total, lang="en", released=1)
    assert "1 previously quarantined records settled in this run" in md_released
    assert rows == [
        {"table": "customers", "rule": "phone_malformed", "n": 1, "reason": "phone / malformed"},
        {"table": "orders", "rule": "amount_negative", "n": 2, "reason": "amount is negative"},
    ]
    md = quarantine_markdown("2026-11-20", "run-1", rows, total, lang="en")
    assert "3 records quarantined in this run (4 open in the quarantine)" in md and "settled" not in md
    assert "| orders | amount_negative | 2 |" in md
    assert "13800138000" not in md and "a@b.cn" not in md
    assert quarantine_summary_lines(rows, lang="en")[1] == "quarantine: orders rejected 2 by rule amount_negative"
    empty, _ = quarantine_run_summary("no-such-run", warehouse)
    assert empty == []
    assert "No record was rejected" in quarantine_markdown("2026-11-20", "x", [], 4, lang="en")
    assert "本次运行没有被拒绝的记录" in quarantine_markdown("2026-11-20", "x", [], 4, lang="zh-CN")


def test_quarantine_report_is_the_first_stage_after_ingest():
    from flows.stages import NIGHTLY_STAGES

    assert NIGHTLY_STAGES[0][0] == "quarantine-report"
