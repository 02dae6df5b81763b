"""`userops import` given something that is not a comma-separated file: a directory, a CSV
saved with ';' (Excel in many locales) or tabs. The operator is told what it is and what to do."""
from __future__ import annotations

import pytest

from tests.cli_inprocess import run_userops


@pytest.mark.parametrize("lang, says", [("zh-CN", "是一个目录，不是文件；请指定要导入的文件"), ("en", "is a directory, not a file; give the file to import")])
def test_a_directory_is_named_as_one(sqlite_warehouse, tmp_path, lang, says):
    res = run_userops(["import", "orders", str(tmp_path)], {"USEROPS_LANGUAGE": lang, "USEROPS_DATABASE_URL": str(sqlite_warehouse.url)})
    out = res.stdout + res.stderr
    assert res.returncode == 1
    assert says in out and str(tmp_path / "orders.csv") in out
    assert "(none)" not in out
