"""Prefect-UI audit: the nightly run's log names each stage in the operator's language and
shows the stage's ``summary`` lines (the CLI printed them, the run log did not); churn logs its
own summary (flows/churn.py), so it is not logged twice. The SQLite checkpoint's warning is
catalogued, its routine INFO line is debug."""
from __future__ import annotations

import logging
from datetime import date


class _Logger:
    def __init__(self):
        self.lines = []

    def info(self, msg, *args):
        self.lines.append(msg % args if args else msg)


def test_every_stage_has_a_name_in_both_languages():
    from flows import stages
    from flows.nightly import stage_name

    for name, _flow in stages.NIGHTLY_STAGES:
        zh, en = stage_name(name, "zh-CN"), stage_name(name, "en")
        assert zh != name and en, name
    assert stage_name("some-new-stage", "zh-CN") == "some-new-stage"  # no text yet: its code name


def test_stage_summary_lines_go_to_the_run_log(monkeypatch):
    from flows.nightly import run_stage
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", "zh-CN")
    reset_settings()

    def tags(as_of, run_id):
        return {"summary": ["标签：1 位客户", "阶段变化：2"]}

    def churn(as_of, run_id):
        return {"summary": ["流失评分：已记录"]}  # score_churn logs these itself

    log = _Logger()
    out = run_stage("tags", tags, date(2026, 11, 20), "r1", log)
    assert out["summary"] == ["标签：1 位客户", "阶段变化：2"]
    run_stage("churn", churn, date(2026, 11, 20), "r1", log)
    run_stage("crisis", lambda as_of, run_id: {"spikes": {}}, date(2026, 11, 20), "r1", log)
    assert log.lines == ["开始阶段：客户标签", "标签：1 位客户", "阶段变化：2", "开始阶段：流失评分", "开始阶段：危机检查"]
    reset_settings()


def test_checkpoint_warning_is_catalogued_and_the_routine_line_is_debug(caplog):
    from userops import db

    class Broken:
        def connect(self):
            raise OSError("disk gone")

    result: dict = {}
    with caplog.at_level(logging.INFO, logger="userops.db"):
        db._checkpoint(Broken(), result)
    assert "OSError: disk gone" in result["error"]
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "数据库预写日志未能在夜间运行旁合并入数据库（OSError: disk gone）" in caplog.text
    import inspect

    src = inspect.getsource(db._checkpoint)
    assert 'log.debug("write-ahead log folded' in src
