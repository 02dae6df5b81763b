"""A transaction that rewrites much of a SQLite database commits without folding its
write-ahead log into the database; a checkpoint on another thread does that right after.
Readers see the data in between, a failed transaction starts no checkpoint, and the
connection keeps SQLite's automatic checkpoint for everything else. PostgreSQL: a plain
transaction."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from userops import db


def _table(engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t_big (id INTEGER PRIMARY KEY, body TEXT)")


def _fill(conn, n: int = 3000) -> None:
    # a plain INSERT: Python's sqlite3 opens its transaction only before INSERT / UPDATE / DELETE
    conn.execute(sa.text("INSERT INTO t_big (id, body) VALUES (:i, :b)"), [{"i": i, "b": f"{i:02000d}"} for i in range(n)])


def _count(engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT COUNT(*) FROM t_big").scalar()


def test_the_log_is_folded_in_beside_and_readers_see_the_commit_first(warehouse, monkeypatch):
    db.wait_for_checkpoints()
    _table(warehouse)
    if warehouse.dialect.name != "sqlite":
        with db.begin_checkpoint_beside(warehouse) as conn:
            _fill(conn)
        assert _count(warehouse) == 3000 and db.wait_for_checkpoints() == []
        return
    path = Path(warehouse.url.database)
    release, started = threading.Event(), threading.Event()
    real = db._checkpoint

    def held(engine, result):  # the checkpoint waits until the test has looked
        started.set()
        release.wait(30)
        real(engine, result)

    monkeypatch.setattr(db, "_checkpoint", held)
    before = path.stat().st_size
    with db.begin_checkpoint_beside(warehouse) as conn:
        raw = conn.connection.driver_connection
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        _fill(conn)
    assert started.wait(30)
    assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000  # back for the pool's next user
    assert _count(warehouse) == 3000  # committed: another connection reads it from the log
    assert path.stat().st_size - before < 1_000_000  # ~6 MB committed, none of it in the database file yet
    release.set()
    (result,) = db.wait_for_checkpoints()
    assert "error" not in result and result["pages"] >= 1500 and result["checkpointed"] == result["pages"]
    assert path.stat().st_size - before > 6_000_000  # folded in
    assert _count(warehouse) == 3000


def test_a_failed_transaction_starts_no_checkpoint_and_leaves_nothing(warehouse):
    db.wait_for_checkpoints()
    _table(warehouse)
    raw = None
    with pytest.raises(RuntimeError, match="refresh failed"):
        with db.begin_checkpoint_beside(warehouse) as conn:
            raw = conn.connection.driver_connection
            _fill(conn)
            raise RuntimeError("refresh failed")
    assert db.wait_for_checkpoints() == []
    assert _count(warehouse) == 0
    if warehouse.dialect.name == "sqlite":
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
