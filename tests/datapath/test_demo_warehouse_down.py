"""`userops demo` with a warehouse it cannot reach: the documented one line (which warehouse,
password masked, the driver's first line, what to check) and exit 1, before generating data
or starting the sample services; not two tracebacks and the raw psycopg2 error."""
from __future__ import annotations

import socket

from tests.cli_inprocess import run_userops


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_with_the_warehouse_down_is_one_line():
    url = f"postgresql+psycopg2://postgres:pw@127.0.0.1:{_closed_port()}/test"
    for lang, words, fix in (("zh-CN", "连不上数据仓库 postgresql+psycopg2://postgres:***@127.0.0.1", "请检查 USEROPS_DATABASE_URL"),
                             ("en", "cannot reach the warehouse postgresql+psycopg2://postgres:***@127.0.0.1", "check USEROPS_DATABASE_URL")):
        res = run_userops(["demo", "--customers", "200"], {"USEROPS_DATABASE_URL": url, "USEROPS_LANGUAGE": lang})
        out = res.stdout + res.stderr
        assert res.returncode == 1, out
        assert words in res.stderr and fix in res.stderr, out
        assert "Traceback" not in out and "psycopg2.OperationalError" not in out and ":pw@" not in out
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert res.stdout == ""  # nothing generated, no sample service started
