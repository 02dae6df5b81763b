"""The nightly ingest's run-log lines (userops.* loggers reach the run log under `userops
serve`) are in the operator's language: the per-table line is the CLI import's (ingest.line);
the engineers' figures (timings, chunks) are at debug."""
from __future__ import annotations

import logging

from tasks.ingest import ingest_table


def test_ingest_lines_are_in_the_operators_language(sqlite_warehouse, sample_source, monkeypatch, caplog):
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", "zh-CN")
    monkeypatch.setenv("USEROPS_CRM__PAGE_SIZE", "40")  # chunks of ~100 rows: progress lines
    reset_settings()
    with caplog.at_level(logging.INFO, logger="userops.ingest"):
        res = ingest_table("customers", "run-lang", engine=sqlite_warehouse, chunk_rows=100)
    lines = [r.getMessage() for r in caplog.records if r.name == "userops.ingest" and r.levelno >= logging.INFO]
    assert lines[-1] == f"customers：抽取 {res.read:,} 行，入库 {res.loaded:,} 行，隔离 {res.quarantined:,} 行"
    progress = lines[:-1]
    assert progress and all(line.startswith("customers：已抽取并入库 ") and line.endswith(" 行") for line in progress)
    assert not [line for line in lines if "rows" in line or "wall" in line]
