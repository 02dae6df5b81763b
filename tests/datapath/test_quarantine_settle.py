"""An open quarantine row is closed once the warehouse holds its key with the same
``updated_at`` or a newer one (settle_quarantine): a failed run followed by a clean one leaves
the quarantine as one clean run would, a record fixed at the source without moving its stamp
leaves it, and the rows of a key sent twice close once the key is loaded. Before, only a
strictly newer version closed a row (the same stamp only for a reference rule)."""
from __future__ import annotations

from tasks.ingest import import_file
from userops.db import read_frame

HEAD = "customer_id,name,email,updated_at\n"


def _import(warehouse, tmp_path, text, name="c.csv"):
    p = tmp_path / name
    p.write_text(HEAD + text, encoding="utf-8")
    return import_file("customers", p, engine=warehouse)


def _open(warehouse):
    return read_frame(warehouse, "SELECT source_id, rule FROM quarantine WHERE resolved_at IS NULL ORDER BY source_id, rule").to_dict("records")


def test_a_record_fixed_without_moving_its_stamp_leaves_quarantine(warehouse, tmp_path):
    _import(warehouse, tmp_path, "K1,a,not-an-email,2026-11-01 10:00\nK2,b,b@example.com,2026-11-01 10:00\n")
    assert _open(warehouse) == [{"source_id": "K1", "rule": "email_malformed"}]
    # the source fixed the e-mail; its updated_at did not move
    _import(warehouse, tmp_path, "K1,a,a@example.com,2026-11-01 10:00\n", "fixed.csv")
    assert _open(warehouse) == []
    assert len(read_frame(warehouse, "SELECT * FROM customers")) == 2


def test_conflicting_copies_close_once_the_key_is_loaded(warehouse, tmp_path):
    _import(warehouse, tmp_path, "K5,one,a@example.com,2026-11-01 10:00\nK5,two,a@example.com,2026-11-01 10:00\n")
    assert _open(warehouse) == [{"source_id": "K5", "rule": "duplicate_customer_id"}] * 2
    _import(warehouse, tmp_path, "K5,two,a@example.com,2026-11-02 10:00\n", "newer.csv")
    assert _open(warehouse) == []
    assert read_frame(warehouse, "SELECT name FROM customers")["name"].tolist() == ["two"]


def test_the_summary_names_the_run_that_saw_a_rule_last(warehouse, tmp_path):
    from tasks.quarantine import quarantine_summary

    for run, text in (("run-ffff", "K1,a,bad-1,2026-11-01 10:00\n"), ("run-0000", "K2,b,bad-2,2026-11-01 10:00\n")):
        p = tmp_path / f"{run}.csv"
        p.write_text(HEAD + text, encoding="utf-8")
        import_file("customers", p, engine=warehouse, run_id=run)
    got = quarantine_summary("customers").to_dict("records")
    assert got == [{"source_table": "customers", "rule": "email_malformed", "n": 2, "last_run": "run-0000"}]
