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
