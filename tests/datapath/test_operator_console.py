"""The operator's terminal during `userops run nightly`, `userops demo` and `userops import`:
the engine's raw exception reprs, Great Expectations' info lines and Prefect's temporary-server
notice are left off it (the command's own zh-CN/en lines say what happened); Prefect's run log
(and any non-console handler) still gets every record."""
from __future__ import annotations

import io
import logging

from tests.cli_inprocess import run_userops

DROPPED = [
    ("prefect.flow_runs", logging.ERROR, "Encountered exception during execution: %r",
     (RuntimeError("(psycopg2.OperationalError) connection to server failed"),)),
    ("prefect.flow_runs", logging.ERROR, "Finished in state Failed('Flow run encountered an exception: BatchRejected: orders: 6 of 7 rows')", ()),
    ("prefect.task_runs", logging.ERROR, "Finished in state Failed('Task run encountered an exception OperationalError: …')", ()),
    ("prefect.task_runs", logging.ERROR, "Task run failed with exception: OperationalError('database is locked') - Retries are exhausted", ()),
    ("great_expectations.data_context.types.base", logging.INFO, "Created temporary directory '/tmp/tmpx' for ephemeral docs site", ()),
    ("prefect", logging.INFO, "Starting temporary server on http://127.0.0.1:8123\nSee https://docs.prefect.io/v3/concepts/server#how-to-guides "
                              "for more information on running a dedicated Prefect server.", ()),
]
KEPT = [
    ("prefect.flow_runs", logging.INFO, "Finished in state Completed()", ()),
    ("prefect.task_runs", logging.WARNING, "Task run failed with exception: TimeoutError() - Retry 1/3 will start 10 second(s) from now", ()),
    ("userops.ingest", logging.INFO, "customers：已读取 2 行", ()),
    ("great_expectations.core", logging.WARNING, "a warning worth reading", ()),
    ("userops.test", logging.ERROR, "Encountered exception during execution", ()),  # only the engine's own loggers' lines go
]


def test_engine_reprs_and_library_notices_stay_off_the_terminal():
    from userops.cli.data import _console_without_tracebacks

    class RunLog(logging.Handler):  # stands for Prefect's API log handler
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    terminal = io.StringIO()
    console, run_log = logging.StreamHandler(terminal), RunLog()
    holder = logging.getLogger("userops.test.operator_console")
    holder.propagate = False
    holder.handlers = [console, run_log]
    try:
        with _console_without_tracebacks():
            for name, level, msg, args in DROPPED + KEPT:
                record = logging.LogRecord(name, level, __file__, 1, msg, args, None)
                for h in holder.handlers:
                    h.handle(record)
        shown = terminal.getvalue()
        for name, level, msg, args in DROPPED:
            assert (msg % args if args else msg).splitlines()[0] not in shown, shown
        for name, level, msg, args in KEPT:
            assert msg in shown, shown
        assert len(run_log.lines) == len(DROPPED) + len(KEPT)  # the run log keeps them all
        assert not console.filters  # the command's filter is gone afterwards
    finally:
        holder.handlers = []


def test_import_prints_no_great_expectations_line(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("customer_id,name,phone,email,registered_at,city,marketing_consent\n"
                    "C1,张三,13800138000,zhang@example.com,2025-01-02 10:00:00,上海,true\n"
                    "C3,王五,12,wang@example.com,2025-03-04,杭州,false\n", encoding="utf-8")
    from tasks.validate import _gx_batch_definition

    _gx_batch_definition.cache_clear()  # GE's context (and its info line) is made once a process
    terminal = io.StringIO()
    console = logging.StreamHandler(terminal)  # the terminal's handler (pytest holds Prefect's own)
    logging.getLogger().addHandler(console)
    try:
        res = run_userops(["import", "customers", str(path)],
                          {"USEROPS_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "USEROPS_OUTPUT_DIR": str(tmp_path / "out")})
    finally:
        logging.getLogger().removeHandler(console)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "读取 2 行，入库 1 行，隔离 1 行" in res.stdout
    shown = terminal.getvalue()
    assert "customers：已读取 2 行" in shown  # the operator's own log lines still show
    assert "ephemeral docs site" not in shown, shown
