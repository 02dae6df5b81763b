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


@pytest.mark.parametrize("sep, zh, en", [(";", "分号（;）", "semicolons (;)"), ("\t", "制表符", "tabs")])
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_csv_separated_by_semicolons_or_tabs(sqlite_warehouse, tmp_path, sep, zh, en, lang):
    p = tmp_path / "orders.csv"
    p.write_text(sep.join(["订单号", "会员编号", "支付时间", "金额", "状态"]) + "\n" + sep.join(["O1", "C1", "2026-11-01", "3", "已支付"]) + "\n", encoding="utf-8")
    res = run_userops(["import", "orders", str(p)], {"USEROPS_LANGUAGE": lang, "USEROPS_DATABASE_URL": str(sqlite_warehouse.url)})
    out = res.stdout + res.stderr
    assert res.returncode == 1
    if lang == "zh-CN":
        assert f"文件的列用{zh}分隔，而不是逗号" in out and "另存为“CSV UTF-8（逗号分隔）”" in out
        assert "缺少必需列" not in out
    else:
        assert f"separated by {en}, not commas" in out and "Comma delimited" in out
    assert "--map" not in out  # no mapping would help
