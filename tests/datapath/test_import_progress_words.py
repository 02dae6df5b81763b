"""`userops import`'s progress line counts rows read from the file, quarantined ones included:
it says read (已读取), not imported (已导入), which read as every row loaded right after
"读取 7 行，入库 1 行，隔离 6 行"."""
from __future__ import annotations

import logging

from tasks.ingest import import_file

CUSTOMERS_CSV = """customer_id,name,phone,email,registered_at,city,marketing_consent
C1,张三,13800138000,zhang@example.com,2025-01-02 10:00:00,上海,true
C3,王五,12,wang@example.com,2025-03-04,杭州,false
C4,赵六,13700137000,not-an-email,2025-04-05,深圳,1
"""


def test_import_progress_says_read_not_imported(sqlite_warehouse, tmp_path, monkeypatch, caplog):
    from userops.settings import reset_settings

    path = tmp_path / "c.csv"
    path.write_text(CUSTOMERS_CSV, encoding="utf-8")
    for lang, want, wrong in (("zh-CN", "customers：已读取 3 行", "已导入"), ("en", "customers: 3 rows read so far", "imported")):
        monkeypatch.setenv("USEROPS_LANGUAGE", lang)
        reset_settings()
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="userops.ingest"):
            res = import_file("customers", path)
        assert (res.read, res.loaded, res.quarantined) == (3, 1, 2)
        lines = [r.getMessage() for r in caplog.records if r.name == "userops.ingest" and r.levelno >= logging.INFO]
        assert want in lines, lines
        assert not [line for line in lines if wrong in line], lines
