"""Warehouse access: engine, migrations, set-based reads and bulk upserts.

Everything that touches the warehouse goes through here so that SQLite and PostgreSQL
behave the same. Heavy writes are bulk: ``executemany`` of one upsert statement on SQLite,
``COPY`` into a temporary table plus one ``INSERT .. ON CONFLICT`` on PostgreSQL.
"""
from __future__ import annotations

import io
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from userops.i18n import register, t
from userops.settings import PROJECT_ROOT, get_settings

log = logging.getLogger(__name__)

register(
    {
        # a warning in the nightly run's log (the operator reads it in the Prefect UI)
        "log.db.checkpoint_failed": {
            "zh-CN": "数据库预写日志未能在夜间运行旁合并入数据库（{error}）；下一次提交时会自动合并，无需处理",
            "en": "the database's write-ahead log could not be folded in beside the nightly run ({error}); "
            "the next commit does it, nothing to do",
        },
    }
)

MIGRATIONS_DIR = PROJECT_ROOT / "sql" / "migrations"
QUERIES_DIR = PROJECT_ROOT / "sql" / "queries"
SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # what SQLAlchemy's DateTime stores on SQLite

_engines: dict[str, Engine] = {}


def get_engine(url: str | None = None) -> Engine:
    """One engine per URL for the process (default: settings.database_url)."""
    url = url or get_settings().database_url
    eng = _engines.get(url)
    if eng is None:
        eng = _make_engine(url)
        _engines[url] = eng
    return eng


def dispose_engines() -> None:
    for eng in _engines.values():
        eng.dispose()
    _engines.clear()


class WarehouseLocationError(RuntimeError):
    """A SQLite warehouse whose directory does not exist (a mistyped path): nothing is created."""

    def __init__(self, path: Path):
        self.path = path
        super().__init__(f"the SQLite warehouse's directory {path.parent} does not exist (database file {path})")

    def source(self, lang: str | None = None) -> str:
        """Where the warehouse URL came from, in the operator's language: the environment
        variable (USEROPS_DATABASE_URL) or the settings file's ``database_url:`` key."""
        from userops.settings import setting_source

        return setting_source(("database_url",), lang)


def _sqlite_directory(path: Path) -> None:
    """The project's own default location (``output/`` under the project, where the default
    ``userops.db`` and the benchmarks' files live) is created when missing; any other SQLite
    path must be in a directory that exists (SQLite then creates the file itself on first use,
    e.g. by ``userops db upgrade``): a mistyped ``database_url`` (USEROPS_DATABASE_URL or the
    settings file's key) is an error naming the path and where it was set, never a new empty
    warehouse somewhere."""
    from userops.settings import DEFAULT_DATABASE_PATH

    if path.parent.is_dir():
        return
    if path.parent.resolve() == DEFAULT_DATABASE_PATH.parent.resolve():
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    raise WarehouseLocationError(path)


def _make_engine(url: str) -> Engine:
    # hide_parameters: a failed statement's error names the SQL but not its bound values
    # (an incident's reason, an audit detail, a customer's contact data); that text goes to
    # the flow-run log, the run's state message and the CLI (tests/datapath/test_engine_privacy.py)
    if url.startswith("sqlite"):
        db_path = sa.engine.make_url(url).database
        if db_path and db_path != ":memory:":
            _sqlite_directory(Path(db_path))
        eng = sa.create_engine(url, connect_args={"timeout": 60}, hide_parameters=True)

        @sa.event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA cache_size=-200000")
            cur.execute("PRAGMA temp_store=MEMORY")
            cur.close()

        return eng
    eng = sa.create_engine(url, pool_pre_ping=True, hide_parameters=True)

    @sa.event.listens_for(eng, "connect")
    def _session(dbapi_conn, _record):  # pragma: no cover - trivial
        # Work tables of the nightly tag delta (~100k rows each at 1M members) stay in
        # this session's memory: with the default 8 MB their per-customer look-ups read
        # and wrote temp files (260k local block reads in one step). Allocated only as
        # used; settable only before the session's first temporary table, hence here.
        cur = dbapi_conn.cursor()
        cur.execute("SET temp_buffers = '256MB'")
        cur.close()
        dbapi_conn.commit()

    return eng


def is_postgres(bind: Engine | Connection) -> bool:
    return bind.dialect.name == "postgresql"


# --------------------------------------------------------------------------- migrations
def alembic_config(engine: Engine | None = None):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def migrate(engine: Engine | None = None, revision: str = "head") -> None:
    """Bring the warehouse schema to ``revision`` (idempotent)."""
    from alembic import command

    engine = engine or get_engine()
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


_TEXT_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
  AND a.attnum > 0 AND NOT a.attisdropped AND t.typcollation <> 0
  AND a.attcollation <> (SELECT oid FROM pg_collation WHERE collname = %(want)s AND collnamespace = 'pg_catalog'::regnamespace)
  AND c.relname = ANY(%(tables)s)
ORDER BY c.relname, a.attnum
"""


def byte_order_text(bind: Engine | Connection, tables: list[str], collation: str = "C") -> list[str]:
    """PostgreSQL: give every text column of ``tables`` (of the current schema) the
    collation ``collation`` ("C": compared and sorted by character code, as
    SQLite's BINARY; migration 0011_byte_order_text), one ``ALTER TABLE`` per table, so its
    indexes are rebuilt once, then ``ANALYZE`` (the statistics of an altered column are
    dropped). No table is rewritten. Returns the tables altered. SQLite: nothing."""
    if bind.dialect.name != "postgresql":
        return []
    rows = bind.exec_driver_sql(_TEXT_COLUMNS, {"want": collation, "tables": list(tables)}).fetchall()
    by_table: dict[str, list[tuple[str, str]]] = {}
    for table, column, sql_type in rows:
        by_table.setdefault(table, []).append((column, sql_type))
    q = bind.dialect.identifier_preparer.quote
    for table, columns in by_table.items():
        changes = ", ".join(f'ALTER COLUMN {q(c)} TYPE {t} COLLATE "{collation}"' for c, t in columns)
        bind.exec_driver_sql(f"ALTER TABLE {q(table)} {changes}")
        # ALTER ... TYPE drops the altered columns' statistics: without them the planner takes
        # status = 'paid' for 0.5% of the orders and hashes all 10M of them to answer a
        # night's per-customer look-ups (a 1M night's purchase days: 3.8 -> 14 s)
        bind.exec_driver_sql(f"ANALYZE {q(table)}")
    return list(by_table)


# --------------------------------------------------------------------------- reads
def load_query(name: str) -> str:
    """Text of ``sql/queries/<name>.sql``."""
    return (QUERIES_DIR / f"{name}.sql").read_text(encoding="utf-8")


def read_frame(
    bind: Engine | Connection,
    sql: str | sa.TextClause,
    params: dict | None = None,
    parse_dates: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Run a query and return a DataFrame; timestamp columns parsed the same on both backends."""
    stmt = sa.text(sql) if isinstance(sql, str) else sql
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            df = _result_frame(conn.execute(stmt, params or {}), stmt)
    else:
        df = _result_frame(bind.execute(stmt, params or {}), stmt)
    for col in parse_dates or ():
        if col in df.columns:
            df[col] = to_naive_utc(df[col])
    return df


def _result_frame(result, stmt) -> pd.DataFrame:
    """A result's rows as a DataFrame. A plain text query has no result types, so its rows
    are the driver's tuples: read them from the DB-API cursor. SQLAlchemy's Row objects
    cost ~4 us each in the DataFrame constructor (pandas probes every row for namedtuple
    fields, which Row answers through its missing-key path): 681k ids took 4.1 s, 0.5 s
    from the cursor."""
    cols = list(result.keys())
    cursor = getattr(result, "cursor", None)
    if type(stmt) is sa.TextClause and cursor is not None:
        rows = cursor.fetchall()
        result.close()
    else:
        rows = result.fetchall()
    return pd.DataFrame.from_records(rows, columns=cols) if rows else pd.DataFrame(columns=cols)


def key_order(keys) -> np.ndarray:
    """Positions that sort ``keys`` (strings, e.g. a million customer ids) ascending,
    stable, in the order the warehouse's text keys sort (code points). Arrow's C++ sort:
    numpy's argsort of Python strings compares objects one by one (0.9 s at 1M, here 0.4 s)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pa.array(np.asarray(keys, dtype=object), type=pa.string())
    return pc.sort_indices(arr).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def null_ints(n: int) -> pd.arrays.IntegerArray:
    """``n`` missing values as a nullable Int64 array, built from arrays (``pd.array([pd.NA] * n)``
    checks a million Python objects one by one: 0.18 s)."""
    return pd.arrays.IntegerArray(np.zeros(n, dtype="int64"), np.ones(n, dtype=bool))


def to_naive_utc(s: pd.Series) -> pd.Series:
    """Parse a column of timestamps (strings, datetimes, tz-aware) into naive UTC datetime64."""
    out = pd.to_datetime(s, errors="coerce", utc=True, format="mixed")
    return out.dt.tz_localize(None).astype("datetime64[us]")


# --------------------------------------------------------------------------- writes
def _frame_rows(df: pd.DataFrame, sqlite: bool) -> list[tuple]:
    """Rows of ``df`` as tuples; timestamps rendered as SQLAlchemy stores them on SQLite."""
    cols = []
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            if sqlite:
                s = s.dt.strftime(SQLITE_TS_FORMAT).astype(object)
            else:
                s = s.astype(object)
            s = s.where(df[c].notna(), None)
        elif pd.api.types.is_bool_dtype(s):
            s = s.astype(object).where(s.notna(), None).map(lambda x: None if x is None else bool(x))
        elif pd.api.types.is_float_dtype(s):
            s = s.astype(object).where(s.notna(), None)
        elif pd.api.types.is_integer_dtype(s):
            s = s.astype(object).where(s.notna(), None).map(lambda x: None if x is None else int(x))
        else:
            s = s.astype(object).where(s.notna(), None)
        cols.append(s.tolist())
    return list(zip(*cols)) if cols else []


class WarehouseWriteError(RuntimeError):
    """A write PostgreSQL refused, told without the rows' values: the server's own text for a
    failed COPY or insert adds them ("DETAIL: Failing row contains (..., 13800138000,
    a@b.cn, ...)", "CONTEXT: COPY ..., column phone: ..."), which the run's traceback, its
    state message and the CLI would print (``hide_parameters`` only covers bound parameters).
    The message keeps the table, the server's first line (phone numbers and emails in it
    masked) and the SQLSTATE."""


@contextmanager
def row_values_hidden(table: str):
    try:
        yield
    except Exception as exc:
        orig = getattr(exc, "orig", None) or exc
        code = getattr(orig, "pgcode", None)
        if code is None:
            raise
        from userops.privacy import scrub_text

        diag = getattr(orig, "diag", None)
        first = getattr(diag, "message_primary", None) or str(orig).strip().splitlines()[0]
        raise WarehouseWriteError(t("db.write_failed", table=table, error=scrub_text(first), code=code)) from None


register(
    {
        # a write the warehouse refused (row_values_hidden): which table, the server's first line,
        # and what to check — usually a value the column cannot hold that no rule caught
        "db.write_failed": {
            "zh-CN": "写入数据仓库的 {table} 表失败：{error}（SQLSTATE {code}；不显示行中的值）。请检查：来源数据中是否有该列装不下的值"
                     "（文本过长、数字过大），expectations/{table}.json 中是否有对应的规则（规则按表结构的列长度和精度设定），"
                     "以及数据仓库的迁移是否已执行（userops db upgrade）",
            "en": "writing the {table} table of the warehouse failed: {error} (SQLSTATE {code}; the rows' values are not shown). Check: "
                  "a value in the source the column cannot hold (text too long, number too large), whether expectations/{table}.json "
                  "has the rule for it (the rules follow the schema's column sizes), and that the warehouse is migrated (userops db upgrade)",
        },
    }
)


def bulk_upsert(
    conn: Connection,
    table: str,
    df: pd.DataFrame,
    key: Sequence[str],
    update_only_changed: bool = True,
    chunk_rows: int = 200_000,
    on_conflict: str = "update",
    compare_ignore: Sequence[str] = ("updated_at",),
) -> int:
    """Insert-or-update ``df`` into ``table`` by ``key`` inside the caller's transaction.

    With ``update_only_changed`` a row whose values did not change is not rewritten, so
    re-running a night leaves the warehouse byte-for-byte the same; columns in
    ``compare_ignore`` (the change stamp) are written with a change but never cause one.
    ``on_conflict="error"`` is a plain insert (``COPY`` straight into the table on
    PostgreSQL) for rows known to be new — an initial load into an empty table; a key that
    exists after all fails the caller's transaction instead of being overwritten.
    Returns rows offered.
    """
    if df.empty:
        return 0
    if is_postgres(conn):
        with row_values_hidden(table):
            return _bulk_upsert(conn, table, df, key, update_only_changed, chunk_rows, on_conflict, compare_ignore)
    return _bulk_upsert(conn, table, df, key, update_only_changed, chunk_rows, on_conflict, compare_ignore)


def _bulk_upsert(conn, table, df, key, update_only_changed, chunk_rows, on_conflict, compare_ignore) -> int:
    if on_conflict == "error":
        return _insert_frame(conn, table, df, chunk_rows)
    cols = list(df.columns)
    non_key = [c for c in cols if c not in key]
    sqlite = not is_postgres(conn)
    q = conn.dialect.identifier_preparer.quote
    col_list = ", ".join(q(c) for c in cols)
    conflict = ", ".join(q(c) for c in key)
    if non_key and on_conflict == "update":
        sets = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in non_key)
        action = f"DO UPDATE SET {sets}"
        if update_only_changed:
            op = "IS NOT" if sqlite else "IS DISTINCT FROM"
            compared = [c for c in non_key if c not in compare_ignore] or non_key
            cond = " OR ".join(f"{q(table)}.{q(c)} {op} excluded.{q(c)}" for c in compared)
            action += f" WHERE {cond}"
    else:
        action = "DO NOTHING"

    if len(df) > 1000 and not (len(key) == 1 and df[key[0]].is_monotonic_increasing):
        # in key order the upsert walks the table's B-tree once instead of jumping around
        # it (a night's 100k changed orders of a 10M-order warehouse land on random pages;
        # PostgreSQL at 1M members: 20 s -> 14 s); rows already in key order stay as they are
        df = df.sort_values(list(key), kind="stable")
    written = 0
    for start in range(0, len(df), chunk_rows):
        part = df.iloc[start : start + chunk_rows]
        if sqlite:
            placeholders = ", ".join("?" for _ in cols)
            stmt = f"INSERT INTO {q(table)} ({col_list}) VALUES ({placeholders}) ON CONFLICT ({conflict}) {action}"
            raw = conn.connection.driver_connection
            cur = raw.cursor()
            cur.executemany(stmt, _frame_rows(part, sqlite=True))
            cur.close()
        else:
            tmp = f"_stage_{table}"
            conn.exec_driver_sql(
                f"CREATE TEMP TABLE IF NOT EXISTS {q(tmp)} (LIKE {q(table)} INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            conn.exec_driver_sql(f"TRUNCATE {q(tmp)}")
            copy_frame(conn, tmp, part)
            conn.exec_driver_sql(
                f"INSERT INTO {q(table)} ({col_list}) SELECT {col_list} FROM {q(tmp)} "
                f"ON CONFLICT ({conflict}) {action}"
            )
        written += len(part)
    return written


def _insert_frame(conn: Connection, table: str, df: pd.DataFrame, chunk_rows: int) -> int:
    q = conn.dialect.identifier_preparer.quote
    cols = list(df.columns)
    for start in range(0, len(df), chunk_rows):
        part = df.iloc[start : start + chunk_rows]
        if is_postgres(conn):
            copy_frame(conn, table, part)
        else:
            stmt = f"INSERT INTO {q(table)} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})"
            cur = conn.connection.driver_connection.cursor()
            cur.executemany(stmt, _frame_rows(part, sqlite=True))
            cur.close()
    return len(df)


def begin_sqlite_transaction(conn: Connection) -> None:
    """Make sure the SQLite transaction has really begun. Python's sqlite3 (3.11) only sends
    BEGIN before the first INSERT/UPDATE/DELETE, so DDL or reads issued earlier in an
    SQLAlchemy transaction would run — and commit — on their own."""
    if is_postgres(conn):
        return
    raw = conn.connection.driver_connection
    if not raw.in_transaction:
        raw.execute("BEGIN")


@contextmanager
def deferred_indexes(conn: Connection, table: str):
    """On an initial load into an EMPTY table, drop its secondary (non-unique) indexes and
    rebuild them once at the end — sorting once beats maintaining a B-tree per row.
    Inside the caller's transaction, which must roll back on an error: that restores them.
    Yields whether the table was empty (every row loaded in the block is new)."""
    q = conn.dialect.identifier_preparer.quote
    begin_sqlite_transaction(conn)  # else pysqlite would run the DROP INDEX outside it
    empty = conn.exec_driver_sql(f"SELECT 1 FROM {q(table)} LIMIT 1").first() is None
    indexes = [ix for ix in sa.inspect(conn).get_indexes(table) if not ix.get("unique")] if empty else []
    for ix in indexes:
        conn.exec_driver_sql(f"DROP INDEX {q(ix['name'])}")
    yield empty  # on an error the caller's rollback brings the dropped indexes back
    sqlite = conn.dialect.name == "sqlite"
    if indexes and sqlite:
        # SQLite sorts an index build on helper threads when allowed (off by default)
        conn.exec_driver_sql(f"PRAGMA threads={SQLITE_SORT_THREADS}")
    try:
        for ix in indexes:
            cols = ", ".join(q(c) for c in ix["column_names"])
            conn.exec_driver_sql(f"CREATE INDEX {q(ix['name'])} ON {q(table)} ({cols})")
    finally:
        if indexes and sqlite:
            conn.exec_driver_sql("PRAGMA threads=0")


SQLITE_SORT_THREADS = 2


def shared_across_connections(engine: Engine) -> bool:
    """Whether a second connection of ``engine`` sees the same database: every warehouse but
    an in-memory SQLite one (each of its connections has a database of its own)."""
    url = engine.url
    return url.get_backend_name() != "sqlite" or url.database not in (None, "", ":memory:")


_CHECKPOINTS: list = []  # the checkpoints started beside: (thread, result dict)


@contextmanager
def begin_checkpoint_beside(engine: Engine):
    """``engine.begin()`` for a transaction that rewrites much of a SQLite database (the
    nightly tag refresh: ~140k pages, ~570 MB of write-ahead log at 1M members). Its commit
    does not fold the log into the database (SQLite's automatic checkpoint: ~1 s of copying
    and fsync there); a checkpoint on its own connection and thread does, right after the
    commit, while the caller goes on (SQLite's documented alternative to the automatic
    checkpoint). Readers see the committed data either way; a later commit's automatic
    checkpoint finds this one running and leaves the log to it. Other databases, and an
    in-memory SQLite: plain ``engine.begin()``."""
    if engine.url.get_backend_name() != "sqlite" or not shared_across_connections(engine):
        with engine.begin() as conn:
            yield conn
        return
    with engine.connect() as conn:
        raw = conn.connection.driver_connection  # a pragma, not a statement of the transaction
        pages = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        raw.execute("PRAGMA wal_autocheckpoint=0")
        try:
            with conn.begin():
                yield conn
        finally:
            try:
                raw.execute(f"PRAGMA wal_autocheckpoint={int(pages)}")
            except sqlite3.Error:  # a connection that broke needs no setting back (the pool drops it)
                pass
    result: dict = {}
    thread = threading.Thread(target=_checkpoint, args=(engine, result), name="userops-sqlite-checkpoint")
    thread.start()  # not a daemon: the process waits for it before exiting
    _CHECKPOINTS[:] = [(t, r) for t, r in _CHECKPOINTS if t.is_alive()]  # a long-lived process keeps no history
    _CHECKPOINTS.append((thread, result))


def _checkpoint(engine: Engine, result: dict) -> None:
    t0 = time.perf_counter()
    try:
        with engine.connect() as conn:
            busy, logged, done = conn.connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        result.update(busy=bool(busy), pages=int(logged), checkpointed=int(done))
        log.debug("write-ahead log folded into the database beside the night: %d of %d pages in %.2f s",
                 int(done), int(logged), time.perf_counter() - t0)
    except Exception as exc:  # the next automatic checkpoint folds the log in instead
        result["error"] = f"{type(exc).__name__}: {exc}"
        log.warning("%s", t("log.db.checkpoint_failed", error=result["error"]))
    result["seconds"] = round(time.perf_counter() - t0, 2)


def wait_for_checkpoints() -> list[dict]:
    """Wait for the checkpoints started beside (``begin_checkpoint_beside``); their results."""
    out = []
    while _CHECKPOINTS:
        thread, result = _CHECKPOINTS.pop(0)
        thread.join()
        out.append(result)
    return out


@contextmanager
def deferred_primary_key(conn: Connection, table: str):
    """PostgreSQL: fill an emptied ``table`` without its primary key and build the key's index
    once at the end (a sorted build; 5M per-(customer, category) counts: 36.6 s with the
    index maintained row by row, 17.0 + 4.3 s this way). Inside the caller's transaction: an
    error rolls the drop back. A duplicate key fails the final ``ADD CONSTRAINT`` (and the
    transaction), as the insert would have. SQLite: nothing."""
    if conn.dialect.name != "postgresql":
        yield
        return
    q = conn.dialect.identifier_preparer.quote
    key = conn.exec_driver_sql(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass(%(t)s) AND contype = 'p'", {"t": table}
    ).first()
    if key is not None:
        conn.exec_driver_sql(f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(key[0])}")
    yield
    if key is not None:
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")
        conn.exec_driver_sql(f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(key[0])} {key[1]}")


ANALYZE_SHARE = 0.1  # PostgreSQL's autovacuum_analyze_scale_factor default


def refresh_statistics(conn: Connection, table: str, changed_rows: int) -> bool:
    """After a committed bulk load of ``changed_rows`` rows into ``table`` (call it outside
    that transaction): on PostgreSQL, ``VACUUM (ANALYZE)`` the table when the load changed
    more than 10% of it or it was never analyzed — PostgreSQL's own advice after a bulk load,
    and what autovacuum would do with its defaults. Done here because a server may run with
    autovacuum off (the one the tests and benchmarks here use does): a 10M-row table then
    has no statistics (blind plans) and no visibility map, so every "index-only" read of the
    next stages fetches its rows from the table (the steady 1M night's tag delta check:
    14 s unvacuumed vs 2.4-3 s vacuumed). Costs a pass over the table on a first night or a
    big import; a normal night (a few % changed) does not trigger it. SQLite: nothing (the
    queries are written for its plans without ``sqlite_stat1``). Returns whether it ran."""
    if conn.dialect.name != "postgresql" or changed_rows <= 0:
        return False
    with conn.begin():
        row = conn.exec_driver_sql(
            "SELECT c.reltuples, s.last_analyze, s.last_autoanalyze FROM pg_class c "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(%(t)s)",
            {"t": table},
        ).first()
    if row is None:
        return False
    reltuples, last, last_auto = row
    if not ((last is None and last_auto is None) or changed_rows > ANALYZE_SHARE * max(reltuples or 0, 0) + 50):
        return False
    q = conn.dialect.identifier_preparer.quote
    # VACUUM cannot run inside a transaction block: its own connection, in autocommit
    with conn.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as ac:
        ac.exec_driver_sql(f"VACUUM (ANALYZE) {q(table)}")
    return True


def after_bulk_load(conn: Connection, table: str, read: int, loaded: int, timings: dict) -> None:
    """What follows a committed bulk load (a night's batch or a file import), outside its
    transaction: on SQLite a batch of more than a million rows leaves gigabytes in the
    write-ahead log, folded into the database now so the next night's first write does not
    pay for it; on PostgreSQL ``refresh_statistics``. Seconds into ``timings``
    (``checkpoint_s``, ``analyze_s``; ``analyzed``: whether it vacuumed)."""
    clock = time.perf_counter
    if conn.dialect.name == "sqlite" and read > 1_000_000:
        t0 = clock()
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        timings["checkpoint_s"] = timings.get("checkpoint_s", 0.0) + clock() - t0
    t0 = clock()
    timings["analyzed"] = refresh_statistics(conn, table, loaded)
    timings["analyze_s"] = clock() - t0


def copy_frame(conn: Connection, table: str, df: pd.DataFrame) -> None:
    """PostgreSQL COPY of a DataFrame into ``table`` (columns named as in ``df``).

    The CSV is written by pyarrow (vectorized, ~10x pandas' ``to_csv``): NULL is an
    unquoted empty field, an empty string is quoted — exactly what COPY's CSV format reads.
    Columns pyarrow cannot type (mixed Python objects) fall back to pandas."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    try:
        buf = io.BytesIO()
        pacsv.write_csv(pa.Table.from_pandas(_arrow_ready(df), preserve_index=False), buf, pacsv.WriteOptions(include_header=False))
        null = ""
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        buf = _csv_pandas(df)
        null = "\\N"
    buf.seek(0)
    q = conn.dialect.identifier_preparer.quote
    cols = ", ".join(q(c) for c in df.columns)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.copy_expert(f"COPY {q(table)} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '{null}')", buf, size=1 << 20)


def copy_out(conn: Connection, sql: str, params: dict | None = None, header: bool = False) -> io.BytesIO:
    """PostgreSQL: a query's rows as ``COPY (sql) TO STDOUT WITH (FORMAT csv)`` output, in a
    buffer positioned at its start (``sql`` takes ``%(name)s`` parameters)."""
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:
        inner = cur.mogrify(sql, params or {}).decode()
        buf = io.BytesIO()
        cur.copy_expert(f"COPY ({inner}) TO STDOUT WITH (FORMAT csv{', HEADER true' if header else ''})", buf)
    buf.seek(0)
    return buf


def copy_csv_frame(data: bytes | io.BytesIO, timestamps: Sequence[str] = ()) -> pd.DataFrame:
    """The output of PostgreSQL's ``COPY ... TO STDOUT WITH (FORMAT csv, HEADER true)``
    (``copy_out(..., header=True)``, read in place, or its bytes) as a DataFrame of text
    columns (pandas' ``str``; NULL and empty fields missing): what
    ``pd.read_csv(dtype=str, keep_default_na=False, na_values=[""])`` gives, parsed by Arrow's
    multi-threaded reader (1M customer rows: 2.8-3.1 -> 0.5 s). Values may hold newlines.
    ``timestamps``: columns of ``timestamp`` values, read as naive datetime64[us] by Arrow
    (~0.2 -> 0.03 s per million); if any does not parse (an offset, a date out of range),
    every column is read as text and the caller parses it."""
    import csv

    import pyarrow as pa
    import pyarrow.csv as pacsv

    buf = data if isinstance(data, io.BytesIO) else io.BytesIO(data)
    buf.seek(0)
    header = buf.readline()
    names = next(csv.reader([header.decode("utf-8").rstrip("\n")]), [])
    text = pd.StringDtype("pyarrow", na_value=np.nan)
    if not header.endswith(b"\n") or not buf.read(1):  # no rows (Arrow cannot read a header alone without its newline)
        return pd.DataFrame({n: pd.Series([], dtype=text) for n in names})

    def read(stamps) -> pa.Table:
        types = {n: pa.timestamp("us") if n in stamps else pa.string() for n in names}
        options = pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True)
        buf.seek(0)
        return pacsv.read_csv(buf, parse_options=pacsv.ParseOptions(newlines_in_values=True), convert_options=options)

    try:
        table = read(set(timestamps))
    except pa.ArrowInvalid:
        table = read(set())
    return table.to_pandas(types_mapper={pa.string(): text}.get)


def _arrow_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns holding only bools become a nullable boolean (pyarrow would refuse
    a mix of bools and None typed as object only when it meets other types)."""
    out = df
    for c in df.columns:
        if df[c].dtype == object and _looks_bool(df[c]):
            if out is df:
                out = df.copy(deep=False)
            out[c] = df[c].astype("boolean")
    return out


def _csv_pandas(df: pd.DataFrame) -> io.BytesIO:
    out = df.copy()
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif pd.api.types.is_bool_dtype(out[c]) or out[c].dtype == object and _looks_bool(out[c]):
            out[c] = out[c].map(lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else ("t" if x else "f"))
    text = io.StringIO()
    out.to_csv(text, index=False, header=False, na_rep="\\N")
    return io.BytesIO(text.getvalue().encode("utf-8"))


def _looks_bool(s: pd.Series) -> bool:
    sample = s.dropna().head(20)
    return len(sample) > 0 and all(isinstance(x, (bool, np.bool_)) for x in sample)


def insert_rows(conn: Connection, table: str, rows: Iterable[dict]) -> int:
    """Plain multi-row insert of dicts (small volumes: audit, quarantine summaries)."""
    rows = list(rows)
    if not rows:
        return 0
    cols = list(rows[0].keys())
    q = conn.dialect.identifier_preparer.quote
    stmt = sa.text(
        f"INSERT INTO {q(table)} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join(':' + c for c in cols)})"
    )
    conn.execute(stmt, rows)
    return len(rows)


def audit(conn: Connection, actor: str, action: str, entity: str, entity_id: str | None = None, detail: dict | None = None) -> None:
    """Append one line to audit_log (who/what changed state)."""
    import json

    from userops.clock import utcnow

    insert_rows(
        conn,
        "audit_log",
        [
            {
                "at": utcnow(),
                "actor": actor,
                "action": action,
                "entity": entity,
                "entity_id": entity_id,
                "detail": json.dumps(detail or {}, ensure_ascii=False, default=str),
            }
        ],
    )
