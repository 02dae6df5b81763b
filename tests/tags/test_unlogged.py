"""The aggregate tables are derived state, UNLOGGED on PostgreSQL (migration
0012_unlogged_aggregates): PostgreSQL empties them after a crash. The tags stage then
computes them again from every order, and churn scoring does not read them meanwhile."""
from __future__ import annotations

from datetime import timedelta

import pytest
from alembic import command

from models.scoring import aggregates_ready, scoring_cutoff
from tasks import tags
from tests.tags.factory import AS_OF, Shop, local
from tests.tags.test_incremental import assert_same, recomputed_aggregates, stored_aggregates
from userops.db import alembic_config, get_engine, is_postgres, migrate, read_frame

AGGREGATE_TABLES = ("customer_aggregates", "customer_category_qty", "customer_channel_orders")


def _persistence(engine) -> dict:
    df = read_frame(
        engine,
        "SELECT relname, relpersistence FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'",
    )
    return dict(zip(df["relname"], df["relpersistence"]))


@pytest.mark.postgres
def test_only_the_aggregate_tables_are_unlogged_and_downgrade_logs_them(pg_url):
    engine = get_engine(pg_url)
    migrate(engine)
    kinds = _persistence(engine)
    assert {t: kinds[t] for t in AGGREGATE_TABLES} == dict.fromkeys(AGGREGATE_TABLES, "u")
    # what operators, campaigns and the churn stage read stays crash-safe
    assert {t for t, k in kinds.items() if k == "u"} == set(AGGREGATE_TABLES)
    assert kinds["tags"] == kinds["stage_history"] == kinds["tag_state"] == kinds["orders"] == "p"

    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0011_byte_order_text")
    assert {t: _persistence(engine)[t] for t in AGGREGATE_TABLES} == dict.fromkeys(AGGREGATE_TABLES, "p")


def _crash(engine) -> None:
    """What PostgreSQL's crash recovery does to unlogged tables: empties them (the logged
    tag_state still says the aggregate is at its day)."""
    with engine.begin() as conn:
        for t in AGGREGATE_TABLES:
            conn.exec_driver_sql(f"TRUNCATE {t}" if is_postgres(conn) else f"DELETE FROM {t}")


def test_an_emptied_aggregate_is_computed_again_and_not_scored_from(warehouse):
    s = Shop()
    for i in range(8):
        cid = s.customer(f"M{i:02d}")
        for k in range(1 + i % 3):
            s.order(cid, local(AS_OF, -40 * k - i), amount=60 + 5 * k, channel=["app", "web"][k % 2], category=["gift", "makeup"][k % 2])
    s.customer("P_prospect")
    s.load(warehouse)
    assert tags.refresh(AS_OF, "n1", engine=warehouse)["aggregates"]["mode"] == "full"
    buyers = len(stored_aggregates(warehouse))
    assert buyers == 8

    day2 = AS_OF + timedelta(days=1)
    s.order("M01", local(day2, 0, hour=10), category="tools")
    s.load(warehouse)
    _crash(warehouse)
    with warehouse.connect() as conn:
        assert tags.aggregates_lost(conn, tags.read_state(conn, "aggregates"))
        # the night's scoring would read an empty aggregate as "no orders": it reads the orders
        ready, why = aggregates_ready(conn, AS_OF, {"window_days": 365, "day_offset_minutes": 480})
    assert scoring_cutoff(AS_OF) == tags.window_for(AS_OF).cutoff
    assert not ready and "emptied" in why

    night = tags.refresh(day2, "n2", engine=warehouse)
    assert (night["aggregates"]["mode"], night["aggregates"]["reason"]) == ("full", "aggregate tables emptied")
    # the operator reads why this night took longer, and that nothing needs doing
    assert "emptied" in tags.tags_summary_lines(night, "en")[-1] and "nothing to do" in tags.tags_summary_lines(night, "en")[-1]
    assert "聚合表已被清空" in tags.tags_summary_lines(night, "zh-CN")[-1]
    assert len(stored_aggregates(warehouse)) == buyers  # every buyer, not only tonight's
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day2))
    assert stored_aggregates(warehouse).set_index("customer_id").loc["M01", "paid_orders"] == 3
    with warehouse.connect() as conn:
        assert not tags.aggregates_lost(conn, tags.read_state(conn, "aggregates"))
    # the next night folds its delta in again
    day3 = day2 + timedelta(days=1)
    s.order("M02", local(day3, 0, hour=10))
    s.load(warehouse)
    third = tags.refresh(day3, "n3", engine=warehouse)
    assert third["aggregates"]["mode"] == "incremental"
    assert len(tags.tags_summary_lines(third, "en")) == 1  # an ordinary night: no recompute line
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day3))


def test_an_aggregate_that_was_never_filled_is_not_lost(warehouse):
    """No order was paid before the state's cutoff: an empty aggregate is right, nothing to redo."""
    s = Shop()
    s.customer("P_only")
    s.load(warehouse)
    tags.refresh(AS_OF, "n1", engine=warehouse)
    with warehouse.connect() as conn:
        state = tags.read_state(conn, "aggregates")
        assert state is not None and not tags.aggregates_lost(conn, state)
    s.order("P_only", local(AS_OF + timedelta(days=1), 0))  # paid after the cutoff: not counted yet
    s.load(warehouse)
    with warehouse.connect() as conn:
        assert not tags.aggregates_lost(conn, tags.read_state(conn, "aggregates"))


@pytest.mark.postgres
def test_a_table_published_for_logical_replication_stays_logged(pg_url):
    """PostgreSQL refuses to unlog a published table: the upgrade leaves it logged and goes on."""
    engine = get_engine(pg_url)
    migrate(engine, "0011_byte_order_text")
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
    name = f"pub_{schema}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE PUBLICATION {name} FOR TABLE {schema}.customer_aggregates")
    try:
        migrate(engine)
        kinds = _persistence(engine)
        assert kinds["customer_aggregates"] == "p"
        assert kinds["customer_category_qty"] == kinds["customer_channel_orders"] == "u"
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP PUBLICATION IF EXISTS {name}")
