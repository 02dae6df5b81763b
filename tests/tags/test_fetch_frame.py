"""fetch_frame's plain-object read (SQLite): the same rows and values as the default read,
strings as plain objects with None for NULL, numbers as numbers; an empty result keeps
its columns. PostgreSQL reads text either way."""
from __future__ import annotations

import pandas as pd
import pytest

from tasks import tags


def test_plain_objects_hold_the_same_values(warehouse):
    with warehouse.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t_rows (k VARCHAR(10), n INTEGER, x FLOAT, s VARCHAR(10))")
        conn.exec_driver_sql("INSERT INTO t_rows VALUES ('a', 1, 1.5, 'gift'), ('b', NULL, NULL, NULL), ('c', 3, 0.25, 'app')")
    sql = "SELECT k, n, x, s FROM t_rows ORDER BY k"
    with warehouse.connect() as conn:
        plain = tags.fetch_frame(conn, sql, objects=True)
        text = tags.fetch_frame(conn, sql)
        empty = tags.fetch_frame(conn, sql.replace("ORDER BY", "WHERE k = 'z' ORDER BY"), objects=True)
    assert list(plain.columns) == ["k", "n", "x", "s"] and len(plain) == 3
    assert list(empty.columns) == ["k", "n", "x", "s"] and empty.empty
    assert pd.to_numeric(plain["n"]).tolist()[::2] == [1, 3] and pd.isna(plain["n"].iloc[1])
    assert pd.to_numeric(plain["x"]).tolist()[::2] == [1.5, 0.25]
    assert plain["k"].tolist() == text["k"].tolist() == ["a", "b", "c"]
    if warehouse.dialect.name == "sqlite":
        assert all(t == object for t in plain.dtypes)  # no text inference
        assert plain["s"].tolist() == ["gift", None, "app"] and plain["n"].tolist()[0] == 1


@pytest.mark.postgres
def test_postgres_copy_reads_text_as_pandas_would(pg_url):
    """PostgreSQL's COPY output is parsed by Arrow: the same frame as pandas' own CSV reader
    (text columns; NULL and '' missing), values with newlines, quotes, commas and Chinese
    intact, a header-only result keeps its columns."""
    import io

    from userops.db import get_engine

    engine = get_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t_text (k VARCHAR(10), s TEXT, n INTEGER, at TIMESTAMP)")
        conn.exec_driver_sql(
            "INSERT INTO t_text VALUES ('a', E'two\\nlines, \"quoted\"', 1, '2026-11-20 16:00:00.5'), ('b', NULL, NULL, NULL), "
            "('c', '', 3, '2026-11-21 00:00:00'), ('d', '上海', -4, '2026-01-01 08:30:00')"
        )
    sql = "SELECT k, s, n, at FROM t_text ORDER BY k"
    with engine.connect() as conn:
        got = tags.fetch_frame(conn, sql)
        typed = tags.fetch_frame(conn, sql, parse_dates=["at"], numeric=["n"])
        empty = tags.fetch_frame(conn, sql.replace("ORDER BY", "WHERE k = 'z' ORDER BY"))
        buf = io.BytesIO()
        with conn.connection.driver_connection.cursor() as cur:
            cur.copy_expert(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", buf)
    expected = pd.read_csv(io.BytesIO(buf.getvalue()), dtype=str, keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(got, expected)
    assert got["s"].iloc[0] == 'two\nlines, "quoted"' and got["s"].iloc[3] == "上海"
    assert pd.isna(got["s"].iloc[1]) and pd.isna(got["s"].iloc[2])
    assert typed["n"].tolist()[::2] == [1, 3] and typed["n"].iloc[3] == -4
    assert typed["at"].iloc[0] == pd.Timestamp("2026-11-20 16:00:00.5") and pd.isna(typed["at"].iloc[1])
    assert str(typed["at"].dtype) == "datetime64[us]"
    assert list(empty.columns) == ["k", "s", "n", "at"] and empty.empty
    # a stamp Arrow does not read as a naive timestamp (an offset): read as text, parsed by pandas
    with engine.connect() as conn:
        conn.exec_driver_sql("SET TIME ZONE 'Asia/Shanghai'")
        zoned = tags.fetch_frame(conn, "SELECT k, at, CAST(at AS TIMESTAMPTZ) AS tz FROM t_text ORDER BY k", parse_dates=["at", "tz"])
    assert zoned["tz"].tolist()[::2] == [pd.Timestamp("2026-11-20 08:00:00.5"), pd.Timestamp("2026-11-20 16:00:00")]  # naive UTC
    assert zoned["at"].iloc[0] == pd.Timestamp("2026-11-20 16:00:00.5") and str(zoned["tz"].dtype) == "datetime64[us]"


def test_copy_csv_frame_reads_what_pandas_reads_across_blocks():
    """The Arrow reader on COPY-style CSV larger than its 1 MB blocks, with quoted values that
    hold newlines and commas, NULL (unquoted empty) and '' (quoted empty): the frame pandas'
    own reader gives; a header alone (with or without its newline) gives the columns."""
    import io

    import numpy as np

    from userops.db import copy_csv_frame

    rng = np.random.default_rng(7)
    n = 200_000
    notes = np.array(['"line one\nline two"', '"a, b"', '""', "", "plain", '"上海\n北京"'])[rng.integers(0, 6, n)]
    lines = [f"C{i:07d},{note},{i % 97}" for i, note in enumerate(notes)]
    data = ("customer_id,note,n\n" + "\n".join(lines) + "\n").encode()
    assert len(data) > 3 * (1 << 20)
    got = copy_csv_frame(data)
    expected = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(got, expected)
    assert got["note"].str.contains("\n").sum() == int(((notes == '"line one\nline two"') | (notes == '"上海\n北京"')).sum())
    for header in (b"k,s", b"k,s\n"):
        empty = copy_csv_frame(header)
        assert list(empty.columns) == ["k", "s"] and empty.empty
