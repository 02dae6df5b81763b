"""A key sent more than once in a batch: the newest ``updated_at`` stands, whatever the chunk
size (within a chunk: tasks.validate.select_versions; across chunks:
tasks.ingest._drop_cross_chunk_duplicates). Copies of one version are one row; two different
versions with the same newest stamp are a conflict, quarantined. read = loaded + quarantined
+ superseded."""
from __future__ import annotations

import pandas as pd
import pytest

from tasks.ingest import import_file
from tasks.validate import load_suites, validate_frame
from userops.db import read_frame


@pytest.fixture(scope="module")
def suites():
    return load_suites()


def customers(rows):
    return pd.DataFrame(rows, columns=["customer_id", "name", "email", "updated_at"])


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_newest_version_of_a_key_stands_in_one_chunk(suites, order):
    df = customers([
        ["K1", "old", "a@example.com", "2026-11-01 10:00:00"],
        ["K1", "new", "a@example.com", "2026-11-02 10:00:00"],
        ["K2", "x", "b@example.com", "2026-11-01 10:00:00"],
    ]).iloc[order]
    o = validate_frame("customers", df, suites)
    assert o.bad.empty and o.n_superseded == 1 and o.n_read == 3
    assert dict(zip(o.good["customer_id"], o.good["name"])) == {"K1": "new", "K2": "x"}


def test_copies_are_one_row_and_a_same_stamp_conflict_is_quarantined(suites):
    df = customers([
        ["K1", "same", "a@example.com", "2026-11-01 10:00:00"],
        ["K1", "same", "a@example.com", "2026-11-01 10:00:00"],
        ["K2", "one", "b@example.com", "2026-11-01 10:00:00"],
        ["K2", "two", "b@example.com", "2026-11-01 10:00:00"],
    ])
    o = validate_frame("customers", df, suites)
    assert o.good["customer_id"].tolist() == ["K1"] and o.n_superseded == 1
    assert sorted(o.bad["source_id"]) == ["K2", "K2"] and set(o.bad["rule"]) == {"duplicate_customer_id"}
    assert o.n_good + o.n_bad + o.n_superseded == o.n_read


def test_a_newer_bad_version_is_quarantined_and_the_older_valid_one_loads(suites):
    # as on two nights and across chunks: the versions contend among the valid rows
    df = customers([
        ["K1", "old", "a@example.com", "2026-11-01 10:00:00"],
        ["K1", "new", "not-an-email", "2026-11-02 10:00:00"],
    ])
    o = validate_frame("customers", df, suites)
    assert o.good["name"].tolist() == ["old"] and o.bad["rule"].tolist() == ["email_malformed"]


CSV = "customer_id,name,email,updated_at\n" + "".join(
    f"K{i},n{i},k{i}@example.com,2026-11-01 10:00:00\n" for i in range(1, 11)
) + "K5,newer,k5@example.com,2026-11-02 10:00:00\nK7,n7,k7@example.com,2026-11-01 10:00:00\n"


@pytest.mark.parametrize("chunksize", [1, 3, 50])
def test_file_with_a_key_twice_loads_the_newer_whatever_the_chunks(warehouse, tmp_path, chunksize):
    p = tmp_path / "c.csv"
    p.write_text(CSV, encoding="utf-8")
    res = import_file("customers", p, engine=warehouse, chunksize=chunksize, validate_in="thread")
    assert (res.read, res.loaded, res.quarantined, res.superseded) == (12, 10, 0, 2)
    assert res.read == res.loaded + res.quarantined + res.superseded
    got = read_frame(warehouse, "SELECT customer_id, name FROM customers ORDER BY customer_id")
    assert len(got) == 10 and dict(zip(got["customer_id"], got["name"]))["K5"] == "newer"
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM quarantine")["n"].iloc[0] == 0
