"""After big loads PostgreSQL tables are vacuumed and analyzed, as autovacuum would (the
server these tests use runs with autovacuum off); SQLite is left as it is."""
from __future__ import annotations

from tasks.ingest import import_file
from userops.db import refresh_statistics

HEADER = "customer_id,name,registered_at,city,marketing_consent\n"


def _last_analyze(engine):
    with engine.connect() as c:
        return c.exec_driver_sql("SELECT last_analyze FROM pg_stat_user_tables WHERE relid = to_regclass('customers')").scalar()


def _last_vacuum(engine):
    with engine.connect() as c:
        return c.exec_driver_sql("SELECT last_vacuum FROM pg_stat_user_tables WHERE relid = to_regclass('customers')").scalar()


def test_tables_analyzed_after_big_loads_only(warehouse, tmp_path):
    p = tmp_path / "c.csv"
    p.write_text(HEADER + "".join(f"C{i},会员{i},2025-01-02 10:00:00,上海,true\n" for i in range(1, 201)), encoding="utf-8")
    res = import_file("customers", p)
    assert res.loaded == 200
    if warehouse.dialect.name != "postgresql":
        with warehouse.connect() as c:
            assert refresh_statistics(c, "customers", 10_000) is False
            assert c.exec_driver_sql("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'").scalar() == 0
        return
    first = _last_analyze(warehouse)
    assert first is not None  # never analyzed before: the import's load analyzes it
    assert _last_vacuum(warehouse) is not None  # and vacuums it (visibility map for index-only scans)
    with warehouse.connect() as c:
        assert refresh_statistics(c, "customers", 10) is False  # 10 of 200 rows: below 10% + 50
    assert _last_analyze(warehouse) == first
    with warehouse.connect() as c:
        assert refresh_statistics(c, "customers", 100) is True  # half the table changed
    assert _last_analyze(warehouse) > first
