"""The process that validates a big batch ends without a word (killed, usually for memory):
the error says so in the operator's language and what to do (smaller chunks:
USEROPS_VALIDATION__CHUNK_ROWS; the run's log); it was English only."""
from __future__ import annotations

import os

import pytest

from tests.datapath.test_zh_punctuation import assert_zh_typeset


def _die(timings):  # open_frames run in the spawned child: it ends as the OOM killer ends it
    os._exit(9)


@pytest.fixture
def chunk_rows_250k(monkeypatch):
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_VALIDATION__CHUNK_ROWS", "250000")
    reset_settings()
    yield
    reset_settings()


def test_a_validation_process_that_dies_says_what_to_do_in_the_operators_language(sqlite_warehouse, chunk_rows_250k):
    from tasks.alerts.problems import describe_failure
    from tasks.ingest import _validated_chunks_in_process
    with pytest.raises(RuntimeError) as info:
        list(_validated_chunks_in_process(sqlite_warehouse, "orders", _die, "UTC", {}))
    exc = info.value
    zh = str(exc)  # the operator's language (zh-CN by default), as alerts and the run's state show it
    assert zh.startswith("orders：校验子进程意外退出（退出码 9）") and "任何数据都未入库" in zh, zh
    assert "调小 USEROPS_VALIDATION__CHUNK_ROWS（现为每块 250,000 行）" in zh and "运行的日志" in zh
    assert_zh_typeset(zh)
    en = exc.localized("en")
    assert en.startswith("orders: the validation process stopped unexpectedly (exit code 9); nothing was loaded"), en
    assert "lower USEROPS_VALIDATION__CHUNK_ROWS (now 250,000 rows per chunk)" in en and "run's log" in en
    assert describe_failure(exc, lang="en").reason.startswith("orders: the validation process stopped unexpectedly")


def test_an_import_whose_validation_process_dies_is_one_message_not_a_traceback(sqlite_warehouse, tmp_path, monkeypatch):
    """userops import: the same words, exit 1, no traceback."""
    from typer.testing import CliRunner

    import tasks.ingest
    from tasks.validate import ValidationProcessDied
    from userops.cli import app

    def dies(*a, **k):
        raise ValidationProcessDied("orders", 9, 250_000)

    monkeypatch.setattr(tasks.ingest, "import_file", dies)
    f = tmp_path / "orders.csv"
    f.write_text("order_id,customer_id,paid_at,amount,status\nO1,C1,2026-11-01 10:00,5,paid\n", encoding="utf-8")
    res = CliRunner().invoke(app, ["import", "orders", str(f)])
    assert res.exit_code == 1 and "校验子进程意外退出（退出码 9）" in res.output, res.output
    assert "Traceback" not in res.output and isinstance(res.exception, SystemExit)  # typer.Exit(1), nothing raised past it
