"""A run that lost the warehouse's lock to another run (two `userops run nightly` started
together: SQLite's "database is locked", PostgreSQL's lock timeout) is told as such: another
run is using the warehouse, wait for it to finish and run again; not "运行 nightly出错：database
is locked" with "read the run's log in the Prefect UI"."""
from __future__ import annotations

import types

import sqlalchemy as sa

from tasks.alerts.problems import describe_failure

SQLITE = sa.exc.OperationalError("INSERT INTO pipeline_runs", {}, Exception("database is locked"))
POSTGRES = sa.exc.OperationalError("UPDATE tags", {}, Exception("canceling statement due to lock timeout"))


def test_a_locked_warehouse_says_another_run_is_using_it():
    for failure in (dict(exc=SQLITE), dict(exc=POSTGRES), dict(text="(sqlite3.OperationalError) database is locked")):
        zh, en = describe_failure(**failure, lang="zh-CN"), describe_failure(**failure, lang="en")
        assert zh.kind == "locked", zh
        assert "另一个运行正在使用数据仓库" in zh.reason and "等正在进行的那个运行" in zh.fix and zh.fix.endswith("然后重新运行 `userops run nightly`")
        assert "Prefect 界面" not in zh.fix and zh.step == "写入数据仓库"
        assert "another run is using the warehouse" in en.reason and en.fix.startswith("wait for the run in progress")
        assert "another run is using the warehouse" in en.line("en")  # the digest's run line


def test_run_nightly_tells_the_locked_warehouse(monkeypatch, capsys):
    from userops.cli.data import _nightly_failed
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", "zh-CN")
    reset_settings()
    state = types.SimpleNamespace(result=lambda raise_on_failure=True: SQLITE, message="database is locked",
                                  state_details=types.SimpleNamespace(flow_run_id=None))
    _nightly_failed(state)
    err = capsys.readouterr().err
    assert "夜间任务失败：写入数据仓库出错：另一个运行正在使用数据仓库" in err
    assert "处理：请等正在进行的那个运行" in err and "Prefect 界面" not in err
