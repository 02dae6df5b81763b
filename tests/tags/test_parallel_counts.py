"""PostgreSQL: the full pass's (customer, category) counts and its picks (favourite category,
preferred channel) run as CREATE TABLE AS (parallel workers allowed) + insert, and give
exactly what the plain INSERT ... SELECT gives."""
from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from tasks import tags
from tests.tags.factory import load_sample
from userops.db import read_frame
from userops.sample.generator import generate
from userops.settings import get_settings

pytestmark = pytest.mark.postgres

AS_OF = date(2026, 11, 20)


@pytest.fixture
def pg(pg_url):
    return load_sample(pg_url, generate(n_customers=400, seed=11, as_of=AS_OF))


def _full_pass_step(conn, name: str, parallel: bool = False, workers: int | None = None) -> int:
    """One named step of the full pass, as build_aggregates runs it; ``workers``: the
    server's max_parallel_workers_per_gather for this transaction."""
    if workers is not None:
        conn.exec_driver_sql(f"SET LOCAL max_parallel_workers_per_gather = {workers}")
        conn.exec_driver_sql("SET LOCAL min_parallel_table_scan_size = 0")  # small tables: parallel all the same
    win = tags.window_for(AS_OF, get_settings())
    parts = tags._parts(conn, None, "customer_category_qty", "customer_channel_orders", None)
    return tags._run(conn, name, win, tags._aggregate_params(win, get_settings()), parallel=parallel, **parts)


def _counts(conn, parallel: bool, workers: int = 2) -> pd.DataFrame:
    conn.exec_driver_sql("DELETE FROM customer_category_qty")
    n = _full_pass_step(conn, "tags_agg_category", parallel, workers)
    df = read_frame(conn, "SELECT customer_id, category, qty FROM customer_category_qty ORDER BY customer_id, category")
    assert n == len(df) > 0
    return df


def test_parallel_counts_equal_the_plain_insert(pg):
    with pg.connect() as conn:
        with conn.begin():
            plain = _counts(conn, parallel=False)
        with conn.begin():
            before = conn.exec_driver_sql("SELECT current_setting('parallel_tuple_cost')").scalar()
            par = _counts(conn, parallel=True)
            # the zeroed parallel costs hold for that statement only
            assert conn.exec_driver_sql("SELECT current_setting('parallel_tuple_cost')").scalar() == before
            assert conn.exec_driver_sql("SELECT to_regclass('pg_temp.tmp_parallel')").scalar() is None
        with conn.begin():
            serial_server = _counts(conn, parallel=True, workers=0)  # no workers allowed: the plain statement
    pd.testing.assert_frame_equal(plain, par)
    pd.testing.assert_frame_equal(plain, serial_server)
    assert plain["qty"].sum() > len(plain)


def _picks(conn, parallel: bool, workers: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    for name in ("tmp_top_category", "tmp_top_channel"):
        tags._temp_table(conn, name)
        conn.exec_driver_sql(f"DELETE FROM {name}")
    _full_pass_step(conn, "tags_agg_top", parallel, workers)
    return (
        read_frame(conn, "SELECT customer_id, category, qty, total FROM tmp_top_category ORDER BY customer_id"),
        read_frame(conn, "SELECT customer_id, channel, n FROM tmp_top_channel ORDER BY customer_id"),
    )


def test_parallel_picks_equal_the_plain_insert(pg):
    with pg.begin() as conn:  # the counts as a full pass leaves them, and a tie on both sides
        _counts(conn, parallel=False)
        conn.exec_driver_sql("DELETE FROM customer_channel_orders")
        _full_pass_step(conn, "tags_agg_channel")
        conn.exec_driver_sql("INSERT INTO customer_category_qty VALUES ('TIE', 'makeup', 3), ('TIE', 'Zeta', 3), ('TIE', 'gift', 1)")
        conn.exec_driver_sql("INSERT INTO customer_channel_orders VALUES ('TIE', 'web', 2), ('TIE', 'app', 2)")
    with pg.connect() as conn:
        with conn.begin():
            plain = _picks(conn, parallel=False)
        with conn.begin():
            par = _picks(conn, parallel=True)
    for a, b in zip(plain, par):
        pd.testing.assert_frame_equal(a, b)
    cat, ch = (df.set_index("customer_id") for df in par)
    assert (cat.loc["TIE", "category"], cat.loc["TIE", "qty"], cat.loc["TIE", "total"]) == ("Zeta", 3, 7)  # by character code
    assert ch.loc["TIE", "channel"] == "app"
    assert len(cat) > 300 and len(ch) > 300


def test_only_an_insert_select_is_accepted(pg):
    with pg.connect() as conn, conn.begin():
        with pytest.raises(ValueError, match="not an INSERT"):
            tags._exec_parallel(conn, "UPDATE customers SET name = 'x'", {})


def _aggregates(engine) -> pd.DataFrame:
    return read_frame(engine, "SELECT * FROM customer_aggregates ORDER BY customer_id").drop(columns="updated_at")


def test_order_facts_read_beside_the_counts_equal_the_inline_pass(pg, monkeypatch):
    """A full pass reads the order facts on a second connection, on its own snapshot, while
    the counts run; the aggregate is exactly the one the single-connection pass writes (a
    second connection that fails is a slower pass, never a failed one)."""
    with pg.begin() as conn:
        tags.refresh_aggregates(conn, AS_OF, full=True)
    assert "tags_agg_order_facts_copy" in tags._STEP_SECONDS  # the facts came from the other connection
    beside = _aggregates(pg)

    def broken(*args, **kwargs):
        raise RuntimeError("no second connection")

    monkeypatch.setattr(tags, "copy_out", broken)
    with pg.begin() as conn:
        tags.refresh_aggregates(conn, AS_OF, full=True)
    assert "tags_agg_order_facts_copy" not in tags._STEP_SECONDS  # computed inline
    pd.testing.assert_frame_equal(beside, _aggregates(pg))
    assert len(beside) > 300 and beside["second_paid_at"].notna().sum() > 100 and beside["purchase_days"].sum() > len(beside)


def test_order_facts_are_read_on_the_refresh_snapshot(pg, monkeypatch):
    """An order committed after the full pass took its snapshot is not in the facts read beside it."""
    real = tags._order_facts_beside

    def late_order_first(engine, snapshot, sql, params, work_mem_mb):
        with engine.begin() as other:  # committed while the refresh's transaction is open
            other.exec_driver_sql(
                "INSERT INTO orders (order_id, customer_id, paid_at, status, amount, discount_amount, channel, updated_at) "
                "SELECT 'LATE-1', customer_id, TIMESTAMP '2026-11-19 03:00:00', 'paid', 10, 0, 'web', TIMESTAMP '2026-11-19 03:00:00' "
                "FROM customers ORDER BY customer_id LIMIT 1"
            )
        return real(engine, snapshot, sql, params, work_mem_mb)

    first = read_frame(pg, "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 1")["customer_id"].iloc[0]

    def counted() -> int:
        n = read_frame(pg, "SELECT counted_orders FROM customer_aggregates WHERE customer_id = :c", {"c": first})["counted_orders"]
        return int(n.iloc[0]) if len(n) else 0

    with pg.begin() as conn:
        tags.refresh_aggregates(conn, AS_OF, full=True)
    before = counted()
    monkeypatch.setattr(tags, "_order_facts_beside", late_order_first)
    with pg.begin() as conn:
        tags.refresh_aggregates(conn, AS_OF, full=True)
    assert counted() == before  # committed after the snapshot: not in the facts
    monkeypatch.setattr(tags, "_order_facts_beside", real)
    with pg.begin() as conn:
        tags.refresh_aggregates(conn, AS_OF, full=True)
    assert counted() == before + 1  # the next pass sees it
