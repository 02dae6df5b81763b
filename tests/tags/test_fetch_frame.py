"""fetch_frame's plain-object read (SQLite): the same rows and values as the default read,
strings as plain objects with None for NULL, numbers as numbers; an empty result keeps
its columns. PostgreSQL reads text either way."""
from __future__ import annotations

import pandas as pd

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
