"""Customer tags: order aggregates, RFM, value tier, lifecycle stage, crisis priority,
behaviour tags and clusters, and the stage history.

How a night goes (``refresh_tags``), all inside one transaction:

1. ``refresh_aggregates``: bring ``customer_aggregates`` to the business day ``as_of``.
   Only the customers in the nightly delta are touched (set-based SQL steps): orders new or
   changed at the source since the last refresh are folded in (added, and their previous
   values taken back), orders whose payment time entered the counted range added, orders
   that left the loyalty window subtracted; a customer is recomputed from all their orders
   only when a counted order changed without a trace (see docs/tags.md). A full recompute happens the
   first time, when the settings that shape the aggregate change, when ``as_of`` goes back
   in time, and weekly as a safety net (``settings.tags.full_recompute_days``).
2. ``compute_tags``: vectorized pandas over one row per customer (never per order).
3. ``write_tags``: rewrite only the rows whose values changed (a hash per row), and record
   every lifecycle-stage change in ``stage_history`` (one row per customer per day).

``tags_frame(as_of)`` answers for any past day from the data as it stood (orders paid after
the end of that day are ignored), without touching the stored tags: the CLI's ``--as-of``
and backfills use it; the same day always gives the same tags.

Definitions (defaults from the spec, all in settings): "N days ago" counts shop-local
calendar days (``settings.timezone``) between the order's payment and ``as_of``.

* prospect: no paid order.
* new: first paid order <= ``new_days`` (30) days ago (takes precedence over active/loyal).
* active: last paid order <= ``active_days`` (60) days ago.
* loyal: active and (>= ``loyal_orders`` (4) paid orders <= ``loyal_window_days`` (365)
  days ago, or RFM segment in ``loyal_segments`` (champions)).
* silent: last paid order ``active_days``+1 .. ``silent_days`` (61..180) days ago.
* churned: last paid order > ``silent_days`` (180) days ago.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prefect import task
from sqlalchemy.engine import Connection, Engine

from userops.clock import utcnow
from userops.db import SQLITE_TS_FORMAT, begin_checkpoint_beside, bulk_upsert, copy_csv_frame, copy_out, deferred_primary_key, get_engine, is_postgres, key_order, load_query, null_ints, read_frame, shared_across_connections, to_naive_utc
from userops.i18n import labelled, register, t, t_or
from userops.settings import Settings, get_settings

log = logging.getLogger("userops.tags")

STAGES = ["prospect", "new", "active", "loyal", "silent", "churned"]
ACTIVE_STAGES = ("new", "active", "loyal")
SEGMENTS = [
    "champions", "loyal", "potential_loyalist", "new", "promising", "need_attention",
    "about_to_sleep", "at_risk", "cant_lose", "hibernating", "lost",
]
TIERS = ["high", "mid", "low"]
PRIORITIES = ["core", "potential", "ordinary"]

# RFM segment by recency score R (rows) and FM = round-half-up((F + M) / 2) (columns).
# The usual R x FM grid (champions top right, lost bottom left); every cell is named.
SEGMENT_GRID: dict[int, list[str]] = {
    #     FM=1              2                     3                     4            5
    5: ["new", "potential_loyalist", "potential_loyalist", "champions", "champions"],
    4: ["promising", "potential_loyalist", "potential_loyalist", "loyal", "loyal"],
    3: ["about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"],
    2: ["hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"],
    1: ["lost", "hibernating", "at_risk", "at_risk", "cant_lose"],
}

AGG_COLUMNS = [
    "customer_id", "first_paid_at", "second_paid_at", "last_paid_at", "paid_orders", "paid_amount",
    "discounted_orders", "purchase_days", "weekend_orders", "window_orders", "window_amount",
    "returned_orders", "favourite_category", "favourite_category_qty", "items_qty",
    "preferred_channel", "preferred_channel_orders",
]
TAG_VALUE_COLUMNS = [
    "lifecycle_stage", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "value_tier", "crisis_priority",
    "price_sensitive", "favourite_category", "preferred_channel", "cluster_id", "ltv", "paid_orders",
    "first_paid_at", "last_paid_at",
]
TAG_COLUMNS = ["customer_id", "as_of", *TAG_VALUE_COLUMNS[:1], "at_risk", *TAG_VALUE_COLUMNS[1:], "tag_hash", "updated_at"]
# Tag values that move while the customer's own figures stay: scores relative to the day
# (recency) or to everyone else (quintile and tier edges, clusters). The others follow the
# customer's own aggregate; ``own_hash`` covers them, so a night rewrites only the relative
# columns of a customer whose own values it left alone.
RELATIVE_COLUMNS = ["lifecycle_stage", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "value_tier", "crisis_priority", "cluster_id"]
OWN_COLUMNS = [c for c in TAG_VALUE_COLUMNS if c not in RELATIVE_COLUMNS]
_DATES = ["registered_at", "first_paid_at", "second_paid_at", "last_paid_at"]
_BASE_NUMERIC = [
    "paid_orders", "paid_amount", "discounted_orders", "purchase_days", "weekend_orders", "window_orders",
    "window_amount", "returned_orders", "favourite_category_qty", "items_qty", "preferred_channel_orders",
]


# ----------------------------------------------------------------------------- time
@dataclass(frozen=True)
class Window:
    """The instants that define "as of" a business day, in naive UTC."""

    as_of: date
    cutoff: datetime  # end of as_of in the shop's timezone: orders paid before this count
    window_start: datetime  # start of (as_of - loyal_window_days): loyalty window
    offset_minutes: int  # the shop's UTC offset on as_of (local day / weekday in SQL)


def local_midnight_utc(day: date, tz: str) -> datetime:
    local = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz))
    return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def window_for(as_of: date, settings: Settings | None = None) -> Window:
    s = settings or get_settings()
    as_of = pd.Timestamp(as_of).date()
    off = ZoneInfo(s.timezone).utcoffset(datetime(as_of.year, as_of.month, as_of.day, 12))
    return Window(
        as_of=as_of,
        cutoff=local_midnight_utc(as_of + timedelta(days=1), s.timezone),
        window_start=local_midnight_utc(as_of - timedelta(days=s.lifecycle.loyal_window_days), s.timezone),
        offset_minutes=int(off.total_seconds() // 60),
    )


def days_ago(ts: pd.Series, as_of: date, tz: str) -> pd.Series:
    """Shop-local calendar days from each (naive UTC) timestamp to ``as_of`` (NaN if none)."""
    local = pd.to_datetime(ts).dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    return (pd.Timestamp(as_of) - local).dt.days.astype("float64")


# ----------------------------------------------------------------------------- SQL glue
def _sql_param(conn: Connection, v):
    """A bind value both backends compare like the stored column (SQLite keeps text)."""
    if isinstance(v, datetime) and not is_postgres(conn):
        return v.strftime(SQLITE_TS_FORMAT)
    if isinstance(v, date) and not isinstance(v, datetime) and not is_postgres(conn):
        return v.isoformat()
    return v


def _params(conn: Connection, params: dict) -> dict:
    return {k: _sql_param(conn, v) for k, v in params.items()}


def _render(conn: Connection, name: str, win: Window, **parts) -> str:
    off = win.offset_minutes
    if is_postgres(conn):
        pieces = {
            "paid_day": f"CAST(o.paid_at + INTERVAL '{off} minutes' AS DATE)",
            "paid_day2": f"CAST(o2.paid_at + INTERVAL '{off} minutes' AS DATE)",
            # each order's items by the order's key (OFFSET 0 keeps the planner from hashing every item)
            "items_join": "CROSS JOIN LATERAL (SELECT i.category, i.quantity FROM order_items i WHERE i.order_id = x.order_id OFFSET 0) i",
            "paid_dow": f"EXTRACT(DOW FROM o.paid_at + INTERVAL '{off} minutes')",
            "float": "DOUBLE PRECISION",
            "no_index": "",
        }
    else:
        # integer local day numbers: unixepoch() is the cheapest parse SQLite has
        day = f"((unixepoch(o.paid_at) + {off * 60}) / 86400)"
        pieces = {
            "paid_day": day,
            "paid_day2": f"((unixepoch(o2.paid_at) + {off * 60}) / 86400)",
            "items_join": "JOIN order_items i ON i.order_id = x.order_id",
            "paid_dow": f"(({day} + 4) % 7)",  # 1970-01-01 was a Thursday: 0 = Sunday
            "float": "REAL",
            "no_index": "+",  # a unary + before a column: no index of it serves the term
        }
    pieces.update(parts)
    if name == "tags_agg_orders" and "facts" not in parts:  # the order facts as a derived table
        pieces["facts"] = "(\n" + query("tags_agg_order_facts").format(**pieces) + "\n)"
    return query(name).format(**pieces)


def query(name: str) -> str:
    """``sql/queries/<name>.sql`` without its comment lines (they may mention :params)."""
    return "\n".join(line for line in load_query(name).splitlines() if not line.lstrip().startswith("--"))


def fetch_frame(conn: Connection, sql: str, params: dict | None = None, parse_dates=(), numeric=(), objects: bool = False) -> pd.DataFrame:
    """A query's rows as a DataFrame, fast for O(customers) rows: ``COPY ... TO STDOUT`` on
    PostgreSQL, the raw DB-API cursor on SQLite (no SQLAlchemy row objects). Columns come
    back as text except ``parse_dates`` (naive UTC) and ``numeric`` (float64 / int64).
    ``objects``: on SQLite, every column as the driver's Python objects (no text inference:
    strings stay plain objects, numbers numbers) for a caller that types them itself."""
    params = _params(conn, params or {})
    if is_postgres(conn):
        df = copy_csv_frame(copy_out(conn, _pyformat(sql), params, header=True), timestamps=parse_dates)
    else:
        cur = conn.connection.driver_connection.cursor()
        cur.execute(sql, params)
        cols = [d[0] for d in cur.description]
        rows = cur.fetchall()
        cur.close()
        if objects:
            values = np.empty((len(rows), len(cols)), dtype=object)
            if rows:
                values[:] = rows
            df = pd.DataFrame({c: _obj(values[:, j].copy()) for j, c in enumerate(cols)})
        else:
            df = pd.DataFrame.from_records(rows, columns=cols)
    for c in parse_dates:
        if c in df.columns:
            df[c] = parse_ts(df[c])
    for c in numeric:
        if c in df.columns:
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def _pyformat(sql: str) -> str:
    """``:name`` parameters as psycopg2's ``%(name)s`` (for ``copy_out``)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql.replace("%", "%%"))


def parse_ts(s: pd.Series) -> pd.Series:
    """Warehouse timestamps (ISO text from SQLite or COPY) as naive UTC datetime64[us]:
    the fast ISO 8601 parser first, the general one only for anything it can't read."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return to_naive_utc(s)
    out = pd.to_datetime(s, errors="coerce", format="ISO8601")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    out = out.astype("datetime64[us]")
    bad = out.isna() & s.notna()
    if bad.any():
        out[bad] = to_naive_utc(s[bad])
    return out


def as_bool(s: pd.Series) -> pd.Series:
    """Booleans as stored (True/1/'t'/'true') -> True, anything else False."""
    return s.isin([True, 1, "t", "true", "1", "True"]) & s.notna()


def _ids(values) -> np.ndarray:
    """Customer ids as a plain object array (hash lookups; Arrow strings take a slow path)."""
    return np.asarray(values, dtype=object)


def _obj(values, index=None) -> pd.Series:
    """Strings as a plain object column: pandas 3 would infer its Arrow-backed ``str`` for an
    object array (a conversion per column, and another back to objects for every key lookup
    or write: ~0.1 s per column at a million rows). An object array is taken over, not copied
    (a copy touches every string it refers to: ~0.05 s per million): pass arrays of your own."""
    return pd.Series(np.asarray(values, dtype=object), dtype=object, index=index, copy=False)


def _obj_column(column: pd.Series) -> pd.Series:
    """A column of a frame as a plain object column on a fresh range index: an object column
    is shared, copy-on-write (no copy of its strings), anything else converted."""
    return column.reset_index(drop=True) if column.dtype == object else _obj(column.to_numpy(dtype=object))


def _frame_of(columns: dict, n: int) -> pd.DataFrame:
    """A DataFrame of ``n`` rows from whole columns (arrays, Series on a range index, scalars),
    each kept as its own block: the dict constructor stacks columns of one type into a 2-D
    block, copying each (for object columns, touching every string)."""
    out = pd.DataFrame(index=pd.RangeIndex(n))
    for name, values in columns.items():
        out[name] = values
    return out


def _positions(index_ids, ids) -> np.ndarray:
    """Position of each of ``ids`` in ``index_ids`` (-1 where absent), by hash."""
    index = index_ids if isinstance(index_ids, pd.Index) and index_ids.dtype == object else pd.Index(_ids(index_ids), dtype=object)
    return index.get_indexer(_ids(ids))


def _exec(conn: Connection, sql: str, params: dict | None = None) -> int:
    return conn.execute(sa.text(sql), _params(conn, params or {})).rowcount


# ----------------------------------------------------------------------------- state
def read_state(bind: Engine | Connection, name: str) -> dict | None:
    df = read_frame(bind, "SELECT * FROM tag_state WHERE name = :n", {"n": name}, parse_dates=["cutoff", "orders_watermark", "updated_at"])
    if df.empty:
        return None
    row = df.iloc[0].to_dict()
    row["as_of"] = pd.Timestamp(row["as_of"]).date()
    row["full_as_of"] = pd.Timestamp(row["full_as_of"]).date() if row.get("full_as_of") is not None and not pd.isna(row["full_as_of"]) else None
    for k in ("cutoff", "orders_watermark"):
        row[k] = None if pd.isna(row[k]) else pd.Timestamp(row[k]).to_pydatetime()
    row["params"] = json.loads(row["params"]) if row.get("params") else {}
    return row


def write_state(conn: Connection, name: str, as_of: date, cutoff=None, watermark=None, full_as_of=None, params=None) -> None:
    df = pd.DataFrame(
        {
            "name": [name],
            "as_of": [as_of],
            "cutoff": pd.Series([pd.Timestamp(cutoff) if cutoff else pd.NaT], dtype="datetime64[us]"),
            "orders_watermark": pd.Series([pd.Timestamp(watermark) if watermark else pd.NaT], dtype="datetime64[us]"),
            "full_as_of": [full_as_of],
            "params": [json.dumps(params or {}, ensure_ascii=False, sort_keys=True, default=str)],
            "updated_at": pd.Series([pd.Timestamp(datetime.utcnow())], dtype="datetime64[us]"),
        }
    )
    bulk_upsert(conn, "tag_state", df, ["name"], update_only_changed=False)


def _aggregate_fingerprint(s: Settings) -> dict:
    """Settings that shape the stored aggregate: a change means a full recompute."""
    return {
        "timezone": s.timezone,
        "loyal_window_days": s.lifecycle.loyal_window_days,
        "discount_min_rate": s.tags.discount_min_rate,
        "version": AGGREGATE_VERSION,
    }


# ----------------------------------------------------------------------------- aggregates
AGGREGATE_VERSION = 2  # bumped when the stored aggregate's shape changes: a full recompute


def _aggregate_params(win: Window, s: Settings) -> dict:
    return {
        "cutoff": win.cutoff,
        "window_start": win.window_start,
        "discount_min_rate": float(s.tags.discount_min_rate),
        "now": datetime.utcnow().replace(microsecond=0),
    }


_AGG_DDL = (
    "customer_id VARCHAR(64) PRIMARY KEY, first_paid_at TIMESTAMP, second_paid_at TIMESTAMP, "
    "last_paid_at TIMESTAMP, paid_orders INTEGER, paid_amount FLOAT, discounted_orders INTEGER, "
    "purchase_days INTEGER, weekend_orders INTEGER, window_orders INTEGER, window_amount FLOAT, "
    "returned_orders INTEGER, favourite_category VARCHAR(100), favourite_category_qty INTEGER, "
    "items_qty INTEGER, preferred_channel VARCHAR(40), preferred_channel_orders INTEGER, "
    "counted_orders INTEGER, updated_at TIMESTAMP"
)
_TEMP_DDL = {
    "tmp_tag_delta": "customer_id VARCHAR(64) PRIMARY KEY",  # recomputed from their orders
    "tmp_tag_add": "customer_id VARCHAR(64) PRIMARY KEY",  # tonight's new orders added
    "tmp_tag_window": "customer_id VARCHAR(64) PRIMARY KEY, n INTEGER, amount FLOAT",  # left the loyalty window
    # orders changed since the watermark, with their current values
    "tmp_tag_changed": "order_id VARCHAR(64) PRIMARY KEY, customer_id VARCHAR(64), paid_at TIMESTAMP, status VARCHAR(16), "
    "amount NUMERIC(14,2), discount_amount NUMERIC(14,2), channel VARCHAR(40)",
    "tmp_tag_cand": "customer_id VARCHAR(64) PRIMARY KEY, changed_before INTEGER, removed INTEGER",  # customers the delta concerns
    # what the previous refresh counted of the orders changed or deleted since (order_changes)
    "tmp_tag_removed": "customer_id VARCHAR(64), order_id VARCHAR(64), paid_at TIMESTAMP, status VARCHAR(16), "
    "amount NUMERIC(14,2), discount_amount NUMERIC(14,2), channel VARCHAR(40), deleted BOOLEAN, PRIMARY KEY (customer_id, order_id)",
    "tmp_day_delta": "customer_id VARCHAR(64) PRIMARY KEY, n INTEGER",  # purchase days gained (+) or lost (-)
    # the orders added tonight (never counted before), by customer
    "tmp_add_orders": "customer_id VARCHAR(64), order_id VARCHAR(64), paid_at TIMESTAMP, status VARCHAR(16), "
    "amount NUMERIC(14,2), discount_amount NUMERIC(14,2), channel VARCHAR(40), PRIMARY KEY (customer_id, order_id)",
    "tmp_tag_touched": "customer_id VARCHAR(64) PRIMARY KEY",  # any of them: the tags re-read these
    "tmp_top_category": "customer_id VARCHAR(64) PRIMARY KEY, category VARCHAR(100), qty INTEGER, total INTEGER",
    "tmp_top_channel": "customer_id VARCHAR(64) PRIMARY KEY, channel VARCHAR(40), n INTEGER",
    "tmp_add_agg": _AGG_DDL,
    # tags_agg_order_facts read on a second connection (a full pass on PostgreSQL); no key: filled once, joined once
    "tmp_order_facts": "customer_id VARCHAR(64), first_paid_at TIMESTAMP, last_paid_at TIMESTAMP, paid_orders INTEGER, "
    "paid_amount FLOAT, discounted_orders INTEGER, purchase_days INTEGER, weekend_orders INTEGER, window_orders INTEGER, "
    "window_amount FLOAT, returned_orders INTEGER, counted_orders INTEGER, second_paid_at TIMESTAMP",
    "tmp_customer_aggregates": _AGG_DDL,
    "tmp_category_qty": "customer_id VARCHAR(64), category VARCHAR(100), qty INTEGER, PRIMARY KEY (customer_id, category)",
    "tmp_channel_orders": "customer_id VARCHAR(64), channel VARCHAR(40), n INTEGER, PRIMARY KEY (customer_id, channel)",
}
# clustered by customer on SQLite: a join driven by one of these reads the customers in key order
_WITHOUT_ROWID = {"tmp_tag_delta", "tmp_tag_add", "tmp_tag_touched", "tmp_category_qty", "tmp_channel_orders", "tmp_tag_cand", "tmp_add_orders", "tmp_tag_removed", "tmp_day_delta"}


def _temp_table(conn: Connection, name: str) -> None:
    """An empty temporary work table (dropped at commit on PostgreSQL)."""
    if is_postgres(conn):  # text by character code, as the warehouse's (migration 0011_byte_order_text)
        ddl = re.sub(r"(VARCHAR\(\d+\))", r'\1 COLLATE "C"', _TEMP_DDL[name])
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({ddl}) ON COMMIT DROP")
    else:
        tail = " WITHOUT ROWID" if name in _WITHOUT_ROWID else ""
        conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {name} ({_TEMP_DDL[name]}){tail}")
    conn.exec_driver_sql(f"DELETE FROM {name}")


_STEP_SECONDS: dict = {}  # seconds per named query of the last aggregate refresh (bench output)


_INSERT_SELECT = re.compile(r"INSERT INTO (\w+) \(([^)]*)\)\s*(SELECT\b.*)", re.S)


def _exec_parallel(conn: Connection, sql: str, params: dict) -> int:
    """PostgreSQL: run ``INSERT INTO t (cols) SELECT ...`` as ``CREATE TEMP TABLE ... AS
    SELECT ...`` (which may run in parallel; an INSERT's select never does) and an insert of
    its rows. For the full pass's per-(customer, category) counts: a hash join of every item
    with every paid order, then an aggregate into ~4M groups (1M members: 25 s serial ->
    15 s on two workers + 2.6 s to insert); and for its picks, a sort of every count. The planner's default parallel costs keep that
    plan serial, so they are zeroed for this statement only. A server that allows no
    parallel workers gets the plain statement."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--")).strip()
    m = _INSERT_SELECT.fullmatch(body)
    if m is None:
        raise ValueError(f"not an INSERT ... SELECT: {body[:80]!r}")
    if conn.exec_driver_sql("SELECT current_setting('max_parallel_workers_per_gather')::int").scalar() <= 0:
        return _exec(conn, sql, params)
    table, cols, select = m.groups()
    for knob in ("parallel_setup_cost", "parallel_tuple_cost"):
        conn.exec_driver_sql(f"SET LOCAL {knob} = 0")
    _exec(conn, f"CREATE TEMP TABLE tmp_parallel ON COMMIT DROP AS {select}", params)
    for knob in ("parallel_setup_cost", "parallel_tuple_cost"):
        conn.exec_driver_sql(f"SET LOCAL {knob} TO DEFAULT")
    n = _exec(conn, f"INSERT INTO {table} ({cols}) SELECT {cols} FROM tmp_parallel")
    conn.exec_driver_sql("DROP TABLE tmp_parallel")
    return n


def _run(conn: Connection, name: str, win: Window, params: dict, parallel: bool = False, **parts) -> int:
    """Run the ;-separated statements of a named query; returns the last one's row count.
    ``parallel`` (PostgreSQL): each statement through :func:`_exec_parallel`."""
    n = 0
    t = time.perf_counter()
    statements = [st for st in _render(conn, name, win, **parts).split(";") if st.strip()]
    for i, st in enumerate(statements, 1):
        t_st = time.perf_counter()
        n = _exec_parallel(conn, st, params) if parallel and is_postgres(conn) else _exec(conn, st, params)
        if len(statements) > 1:  # each statement of a multi-step query too (bench output)
            key = f"{name}#{i}"
            _STEP_SECONDS[key] = round(_STEP_SECONDS.get(key, 0) + time.perf_counter() - t_st, 2)
    _STEP_SECONDS[name] = round(_STEP_SECONDS.get(name, 0) + time.perf_counter() - t, 2)
    return n


def _parts(conn: Connection, driver: str | None, cat_table: str, ch_table: str, top_driver: str | None) -> dict:
    """Pieces of the aggregate queries: every order (``driver`` None) or the orders of the
    customers in the work table ``driver``; tags_agg_top over everyone or ``top_driver``."""
    pg = is_postgres(conn)
    # a customer set as IN (work table): SQLite walks it in key order and reads each
    # customer's orders from the covering index alone (a CROSS JOIN with a further filter
    # on the orders gets a Bloom filter and a table lookup per order)
    scope = f"o.customer_id IN (SELECT customer_id FROM {driver}) AND " if driver else ""
    return {
        "orders": "orders o",
        "scope": scope,
        "plus": "" if (driver or pg) else "+",
        "cat_table": cat_table,
        "ch_table": ch_table,
        "items": "order_items i CROSS JOIN orders o" if not (driver or pg) else "orders o JOIN order_items i ON i.order_id = o.order_id",
        "items_scope": scope if (driver or pg) else "i.order_id = o.order_id AND ",
        "top_driver": f"{top_driver} d CROSS JOIN " if top_driver else "",
        "top_scope": "c.customer_id = d.customer_id AND " if top_driver else "",
        "top_group": "d.customer_id" if top_driver else "c.customer_id",
    }


def _top(conn: Connection) -> str:
    """The favourite category / preferred channel picks: PostgreSQL ranks each customer's
    counts in one window (a sub-plan per customer costs more there); SQLite groups them in key
    order and seeks the first holding the largest count (no sort)."""
    return "tags_agg_top" if is_postgres(conn) else "tags_agg_top_keyed"


def _analyze(conn: Connection, *tables: str) -> None:
    """PostgreSQL: statistics for freshly filled work tables. Without them the planner guesses
    their size and scans every order (or every category count) to probe a few customers."""
    if is_postgres(conn):
        for t in tables:
            conn.exec_driver_sql(f"ANALYZE {t}")


def build_aggregates(
    conn: Connection,
    win: Window,
    s: Settings,
    target: str,
    delta: bool,
    cat_table: str = "customer_category_qty",
    ch_table: str = "customer_channel_orders",
) -> int:
    """Compute the aggregate of every customer (or of those in ``tmp_tag_delta``) into
    ``target`` and their per-category item / per-channel order counts into ``cat_table`` /
    ``ch_table``: named SQL steps, all set-based. Returns the rows written."""
    params = _aggregate_params(win, s)
    driver = "tmp_tag_delta" if delta else None
    parts = _parts(conn, driver, cat_table, ch_table, driver)
    for name in ("tmp_top_category", "tmp_top_channel"):
        _temp_table(conn, name)
    if delta:
        _analyze(conn, "tmp_tag_delta")
    # a full pass on PostgreSQL: the order facts (a scan of every order, ~10 s at 1M members)
    # are read on a second connection, on this transaction's snapshot, while the counts run here
    beside = not delta and is_postgres(conn)
    with ExitStack() as rebuilt, ThreadPoolExecutor(max_workers=1) as pool:  # emptied tables filled whole: their keys are indexed once at the end
        if not delta:
            for table in (cat_table, ch_table, target):
                rebuilt.enter_context(deferred_primary_key(conn, table))
        facts = None
        if beside:
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            sql = _pyformat(_render(conn, "tags_agg_order_facts", win, **parts))
            facts = pool.submit(_order_facts_beside, conn.engine, snapshot, sql, _params(conn, params), int(s.tags.full_work_mem_mb))
        # every item joined to its order, and the picks' sort of every count: on PostgreSQL a
        # full pass runs them on parallel workers (picks at 1M members: 10.5-11.1 -> 7.5-7.9 s;
        # the channel counts read only the orders: 5.8 s serial, 6.1 s that way)
        _run(conn, "tags_agg_category", win, params, parallel=not delta, **parts)
        _run(conn, "tags_agg_channel", win, params, **parts)
        _run(conn, _top(conn), win, params, parallel=not delta, **parts)
        if facts is not None and _order_facts_in(conn, facts):
            parts = {**parts, "facts": "tmp_order_facts"}
        return _run(conn, "tags_agg_orders", win, params, target=target, **parts)


def _order_facts_beside(engine: Engine, snapshot: str, sql: str, params: dict, work_mem_mb: int) -> io.BytesIO | None:
    """PostgreSQL: the order facts (``sql``: tags_agg_order_facts) as CSV, read on a connection
    of their own on the caller's exported ``snapshot``: exactly the orders the caller's
    transaction sees. None if that connection cannot do it (the caller computes them itself)."""
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as other:
            other.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            other.exec_driver_sql(f"SET LOCAL work_mem = '{work_mem_mb}MB'")
            other.exec_driver_sql("SET LOCAL jit = on")  # its aggregates run over every order
            buf = copy_out(other, sql, params)
            other.rollback()
            return buf
    except Exception as exc:  # noqa: BLE001 - a slower pass, never a failed one
        log.debug("order facts beside the counts not read (%s): computed in the refresh's transaction", exc)
        return None


def _order_facts_in(conn: Connection, facts) -> bool:
    """Load the order facts read beside the counts (``facts``: the future of
    :func:`_order_facts_beside`) into ``tmp_order_facts``; False when there are none."""
    t = time.perf_counter()
    buf = facts.result()
    _STEP_SECONDS["tags_agg_order_facts_wait"] = round(time.perf_counter() - t, 2)
    if buf is None:
        return False
    t = time.perf_counter()
    _temp_table(conn, "tmp_order_facts")
    cols = [c.split()[0] for c in _TEMP_DDL["tmp_order_facts"].split(", ")]
    with conn.connection.driver_connection.cursor() as cur:
        cur.copy_expert(f"COPY tmp_order_facts ({', '.join(cols)}) FROM STDIN WITH (FORMAT csv)", buf, size=1 << 20)
    _STEP_SECONDS["tags_agg_order_facts_copy"] = round(time.perf_counter() - t, 2)
    return True


def _incremental(conn: Connection, win: Window, old_win: Window, state: dict, s: Settings) -> dict:
    """Fold the night's delta into the stored aggregate (see tags_delta_customers,
    tags_delta_check, tags_agg_additions): orders never counted before (the new day's, late
    arrivals paid in a day already counted, the current values of changed orders) are added
    and what was counted of the changed or deleted ones (their previous values, logged by
    the triggers in ``order_changes``) taken back; a customer whose counted orders changed
    without such a trace is recomputed from their orders; the loyalty window of those whose
    orders left it is lowered. Leaves ``tmp_tag_touched``."""
    for name in ("tmp_tag_changed", "tmp_tag_removed", "tmp_tag_cand", "tmp_add_orders", "tmp_day_delta", "tmp_tag_delta",
                 "tmp_tag_add", "tmp_tag_window", "tmp_tag_touched", "tmp_add_agg", "tmp_top_category", "tmp_top_channel"):
        _temp_table(conn, name)
    params = {
        **_aggregate_params(win, s),
        "watermark": state["orders_watermark"] or datetime(1970, 1, 1),
        "old_cutoff": state["cutoff"] or old_win.cutoff,
        "old_window_start": old_win.window_start,
    }
    if params["old_cutoff"] > win.cutoff:  # cannot happen (as_of moved back = full), but never count twice
        params["old_cutoff"] = win.cutoff
    cat, ch = "customer_category_qty", "customer_channel_orders"
    _run(conn, "tags_delta_customers", win, params)
    _analyze(conn, "tmp_tag_changed", "tmp_tag_removed", "tmp_tag_cand")
    _run(conn, "tags_delta_check", win, params)
    _analyze(conn, "tmp_add_orders", "tmp_tag_removed")
    _run(conn, "tags_delta_window", win, params)
    recompute, additions, window, added_orders, removed_orders = (
        int(read_frame(conn, f"SELECT COUNT(*) AS n FROM {t}")["n"].iloc[0])
        for t in ("tmp_tag_delta", "tmp_tag_add", "tmp_tag_window", "tmp_add_orders", "tmp_tag_removed")
    )
    for table in ("customer_aggregates", cat, ch):
        _exec(conn, f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM tmp_tag_delta)")
    _exec(conn, "INSERT INTO tmp_tag_touched (customer_id) SELECT customer_id FROM tmp_tag_delta UNION SELECT customer_id FROM tmp_tag_add")
    _analyze(conn, "tmp_tag_delta", "tmp_tag_add", "tmp_tag_window", "tmp_tag_touched")
    r_parts = _parts(conn, "tmp_tag_delta", cat, ch, "tmp_tag_touched")
    _run(conn, "tags_agg_category", win, params, **r_parts)
    _run(conn, "tags_agg_channel", win, params, **r_parts)
    _run(conn, "tags_agg_additions", win, params, **r_parts)
    _run(conn, _top(conn), win, params, **r_parts)
    written = _run(conn, "tags_agg_orders", win, params, target="customer_aggregates", **r_parts)
    _analyze(conn, "tmp_add_agg", "tmp_top_category", "tmp_top_channel")
    merged = {  # the merged rows (tags_agg_merged): of every customer of tmp_add_agg, of those stored
        "merged_all": _render(conn, "tags_agg_merged", win, ca_join="LEFT"),
        "merged": _render(conn, "tags_agg_merged", win, ca_join=""),
        "window_out": query("tags_agg_window_out"),
    }
    # PostgreSQL: one upsert (updating in place from a join measured slower there); SQLite:
    # update in place, then insert the new
    _run(conn, "tags_agg_merge" if is_postgres(conn) else "tags_agg_merge_update", win, params, **merged)
    if removed_orders:
        _run(conn, "tags_agg_times", win, params)
    _exec(conn, "INSERT INTO tmp_tag_touched (customer_id) SELECT customer_id FROM tmp_tag_window w "
          "WHERE NOT EXISTS (SELECT 1 FROM tmp_tag_touched t WHERE t.customer_id = w.customer_id)")
    touched = int(read_frame(conn, "SELECT COUNT(*) AS n FROM tmp_tag_touched")["n"].iloc[0])
    return {"recomputed": recompute, "added": additions, "added_orders": added_orders, "removed_orders": removed_orders,
            "window": window, "touched": touched,
            "written": int(written or 0) + additions}


def aggregates_lost(conn: Connection, state: dict | None) -> bool:
    """Is the stored aggregate gone although ``state`` (the aggregate's ``tag_state``) says
    orders were counted into it? Every customer with an order paid before the state's cutoff
    has a row. On PostgreSQL the aggregate tables are UNLOGGED (migration
    0012_unlogged_aggregates): crash recovery, or a standby promoted in its place, leaves them
    empty while the logged state stays. Two index probes."""
    if not state or state.get("cutoff") is None:
        return False
    row = read_frame(
        conn,
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM customer_aggregates) THEN 0 "
        "WHEN EXISTS (SELECT 1 FROM orders WHERE paid_at < :c) THEN 1 ELSE 0 END AS lost",
        _params(conn, {"c": pd.Timestamp(state["cutoff"]).to_pydatetime()}),
    )
    return bool(int(row["lost"].iloc[0]))


def refresh_aggregates(conn: Connection, as_of: date, full: bool = False, settings: Settings | None = None) -> dict:
    """Bring ``customer_aggregates`` to ``as_of``; returns what was done."""
    s = settings or get_settings()
    win = window_for(as_of, s)
    state = read_state(conn, "aggregates")
    fingerprint = _aggregate_fingerprint(s)
    watermark = read_frame(conn, "SELECT MAX(updated_at) AS w FROM orders", parse_dates=["w"])["w"].iloc[0]
    watermark = None if pd.isna(watermark) else min(watermark.to_pydatetime(), utcnow())  # a skewed future stamp must not hide later changes
    reason = None
    if full:
        reason = "requested"
    elif state is None:
        reason = "first refresh"
    elif state["params"].get("fingerprint") != fingerprint:
        reason = "settings changed"
    elif win.as_of < state["as_of"]:
        reason = "as_of moved back"
    elif s.tags.full_recompute_days and state["full_as_of"] and (win.as_of - state["full_as_of"]).days >= s.tags.full_recompute_days:
        reason = "weekly safety net"
    elif aggregates_lost(conn, state):
        reason = "aggregate tables emptied"
        log.warning("%s", t("tags.full.line", reason=t("tags.full.aggregate_tables_emptied")))
    t0 = time.perf_counter()
    _STEP_SECONDS.clear()
    if is_postgres(conn):  # sorts and hashes over millions of orders: in memory, this transaction only
        # a full pass hashes every paid order and (customer, category) count: at 256 MB the
        # counts' hash spilled to disk (1M members: 17.0 / 15.5 s -> 13.7 s at 512 MB)
        work_mem = int(s.tags.full_work_mem_mb) if reason else 256
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{work_mem}MB'")
        # JIT-compiled expressions pay off over every order (the full pass's per-customer
        # aggregate at 1M members: 15.6-15.8 -> 13.5-14.4 s); for a night's 100k customers
        # compiling costs more than it saves
        conn.exec_driver_sql(f"SET LOCAL jit = {'on' if reason else 'off'}")
    inc: dict = {}
    if reason:
        for table in ("customer_aggregates", "customer_category_qty", "customer_channel_orders"):
            _exec(conn, f"TRUNCATE {table}" if is_postgres(conn) else f"DELETE FROM {table}")
        n = build_aggregates(conn, win, s, "customer_aggregates", delta=False)
        # rebuilt tables: fresh statistics, or the next nights plan on the old (empty) ones
        _analyze(conn, "customer_aggregates", "customer_category_qty", "customer_channel_orders")
        full_as_of = win.as_of
    else:
        inc = _incremental(conn, win, window_for(state["as_of"], s), state, s)
        n = inc["written"]
        full_as_of = state["full_as_of"]
    # the orders' previous values are consumed: the next night's come from changes after now
    # (a row a concurrent writer adds after this is lost; the next night's check then
    # recomputes that customer)
    _exec(conn, "DELETE FROM order_changes")
    write_state(conn, "aggregates", win.as_of, win.cutoff, watermark, full_as_of, {"fingerprint": fingerprint})
    out = {
        "mode": "full" if reason else "incremental",
        "reason": reason,
        "delta_customers": inc.get("touched"),
        **({k: inc[k] for k in ("recomputed", "added", "added_orders", "removed_orders", "window")} if inc else {}),
        "aggregates_written": int(n or 0),
        "seconds": round(time.perf_counter() - t0, 2),
        "steps": dict(_STEP_SECONDS),
    }
    log.debug("aggregates as of %s: %s", as_of, out)  # the engineers' figures; the operator's line is tags.summary.line
    return out


_MEMBERS = "WHERE c.registered_at IS NULL OR c.registered_at < :cutoff OR a.paid_orders > 0"
_DETAIL = (
    ",\n    COALESCE(a.purchase_days, 0) AS purchase_days, COALESCE(a.window_amount, 0) AS window_amount,"
    " a.favourite_category_qty, a.items_qty, a.preferred_channel_orders"
)


def base_frame(conn: Connection, as_of: date, settings: Settings | None = None, stored: bool | None = None, detail: bool = True) -> pd.DataFrame:
    """One row per member as of ``as_of`` with their order aggregate.

    ``stored``: read the maintained ``customer_aggregates`` (must be at ``as_of``); False:
    compute the aggregate from the orders as they stood (any day, nothing written);
    None: stored when it is at ``as_of``."""
    s = settings or get_settings()
    win = window_for(as_of, s)
    if stored is None:
        state = read_state(conn, "aggregates")
        stored = bool(state and state["as_of"] == win.as_of and state["params"].get("fingerprint") == _aggregate_fingerprint(s))
    if stored:
        aggregates = "customer_aggregates"
    else:
        for name in ("tmp_customer_aggregates", "tmp_category_qty", "tmp_channel_orders"):
            _temp_table(conn, name)
        build_aggregates(conn, win, s, "tmp_customer_aggregates", delta=False, cat_table="tmp_category_qty", ch_table="tmp_channel_orders")
        aggregates = "tmp_customer_aggregates"
    sql = query("tags_base").format(aggregates=aggregates, detail=_DETAIL if detail else "", members=_MEMBERS)
    df = fetch_frame(conn, sql, _aggregate_params(win, s), parse_dates=_DATES, numeric=_BASE_NUMERIC)
    for c in ("paid_orders", "discounted_orders", "purchase_days", "weekend_orders", "window_orders", "returned_orders"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c]).fillna(0).astype("int64")
    for c in ("favourite_category_qty", "items_qty", "preferred_channel_orders"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c]).astype("float64")
    for c in ("paid_amount", "window_amount"):
        if c in df.columns:
            df[c] = pd.to_numeric(df[c]).astype("float64").fillna(0.0).round(2)
    for c in ("customer_id", "favourite_category", "preferred_channel"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df.take(key_order(df["customer_id"])).reset_index(drop=True)


# ----------------------------------------------------------------------------- RFM
def _below(values: np.ndarray) -> np.ndarray:
    """For each value, how many values are strictly below it (= rank(method="min") - 1).
    Whole numbers in a compact range (days, order counts) and amounts in whole cents (LTV)
    are counted, not sorted; other finite values are sorted once."""
    v = np.asarray(values, dtype="float64")
    if not len(v) or not np.isfinite(v).all():
        return pd.Series(v).rank(method="min").to_numpy() - 1
    for scale in (1, 100):  # whole numbers, then whole cents
        k = np.rint(v * scale)
        # a count per value in the range: cheaper than a sort while the range is not much wider than n
        if k.max() - k.min() < 2 * len(v) + 1024 and (k / scale == v).all():  # exactly: equal values, equal counts
            k = (k - k.min()).astype("int64")
            counts = np.bincount(k)
            return (np.cumsum(counts) - counts)[k].astype("float64")
    order = np.argsort(v, kind="stable")
    ranked = v[order]
    first = np.r_[True, ranked[1:] != ranked[:-1]]  # the first of each run of equal values
    out = np.empty(len(v), dtype="float64")
    out[order] = np.maximum.accumulate(np.where(first, np.arange(len(v)), 0))
    return out


def quintile_scores(values: pd.Series | np.ndarray, below: np.ndarray | None = None) -> np.ndarray:
    """1..5 by quintile, ties scored alike: 1 + floor(5 * share of values strictly below).

    The lowest value always scores 1; a value above 80% of the others scores 5. ``below``:
    the counts strictly below, when the caller has them (``_below``)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype="int64")
    below = _below(values) if below is None else below
    return (1 + np.floor(5 * below / n + 1e-9)).clip(1, 5).astype("int64")


# SEGMENT_GRID as codes (indexes into SEGMENTS) by [R, FM], FM = round-half-up((F + M) / 2)
_SEGMENT_CODE = np.array([[-1] * 6] + [[-1] + [SEGMENTS.index(x) for x in SEGMENT_GRID[i]] for i in range(1, 6)])
_SEGMENT_NAME = np.array([*SEGMENTS, None], dtype=object)  # code -1 (no paid order) -> None


# ----------------------------------------------------------------------------- tags
def compute_tags(
    base: pd.DataFrame,
    as_of: date,
    settings: Settings | None = None,
    at_risk_ids=None,
    clusters: pd.Series | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Every tag for every member of ``base`` (vectorized). Returns (tags, figures) where the
    figures are the population thresholds used (value tier edges, counts)."""
    s = settings or get_settings()
    lc = s.lifecycle
    as_of = pd.Timestamp(as_of).date()
    df = base
    n = len(df)
    buyer = (df["paid_orders"] > 0).to_numpy()
    d_last = days_ago(df["last_paid_at"], as_of, s.timezone).to_numpy()
    d_first = days_ago(df["first_paid_at"], as_of, s.timezone).to_numpy()
    ltv = df["paid_amount"].to_numpy(dtype="float64").round(2)

    # RFM over buyers: recency (fewer days is better), frequency (paid orders), monetary (LTV)
    r = np.zeros(n, dtype="int64")
    f = np.zeros(n, dtype="int64")
    m = np.zeros(n, dtype="int64")
    ltv_below = _below(ltv[buyer]) if buyer.any() else None  # M and the value tier
    if buyer.any():
        r[buyer] = quintile_scores(-d_last[buyer])
        f[buyer] = quintile_scores(df["paid_orders"].to_numpy()[buyer])
        m[buyer] = quintile_scores(ltv[buyer], below=ltv_below)
    # categorical tags as codes (indexes into SEGMENTS / TIERS / STAGES / PRIORITIES), named
    # at the end by indexing an array of the names (no string built or compared per customer)
    seg = np.full(n, -1, dtype="int64")
    if buyer.any():
        seg[buyer] = _SEGMENT_CODE[r[buyer], (f[buyer] + m[buyer] + 1) // 2]

    # value tier by lifetime value among buyers: top share high, next share mid
    high, mid, low = (TIERS.index(x) for x in ("high", "mid", "low"))
    tier = np.full(n, low, dtype="int64")
    high_min = mid_min = None
    if buyer.any():
        vb = ltv[buyer]
        nb = len(vb)
        below = ltv_below
        t_high = np.floor(nb * (1 - s.tags.value_high_share) + 1e-9)
        t_mid = np.floor(nb * (1 - s.tags.value_high_share - s.tags.value_mid_share) + 1e-9)
        tb = np.where(below >= t_high, high, np.where(below >= t_mid, mid, low))
        tier[buyer] = tb
        high_min = float(vb[tb == high].min()) if (tb == high).any() else None
        mid_min = float(vb[tb == mid].min()) if (tb == mid).any() else None

    # lifecycle stage
    is_new = buyer & (d_first <= lc.new_days)
    is_active = buyer & (d_last <= lc.active_days)
    loyal_by_orders = df["window_orders"].to_numpy() >= lc.loyal_orders
    loyal_by_segment = np.isin(seg, [SEGMENTS.index(x) for x in lc.loyal_segments if x in SEGMENTS])
    code = STAGES.index
    stage = np.select(
        [~buyer, is_new, is_active & (loyal_by_orders | loyal_by_segment), is_active, buyer & (d_last <= lc.silent_days)],
        [code("prospect"), code("new"), code("loyal"), code("active"), code("silent")],
        default=code("churned"),
    )

    # crisis priority: core (high value or loyal) > potential (mid value, new or active) > ordinary
    priority = np.select(
        [(tier == high) | (stage == code("loyal")), (tier == mid) | np.isin(stage, [code("new"), code("active")])],
        [PRIORITIES.index("core"), PRIORITIES.index("potential")],
        default=PRIORITIES.index("ordinary"),
    )
    active_stage = np.isin(stage, [code(x) for x in ACTIVE_STAGES])
    stage_counts = dict(zip(STAGES, np.bincount(stage, minlength=len(STAGES)).tolist()))
    segment = _SEGMENT_NAME[seg]
    tier = np.array(TIERS, dtype=object)[tier]
    stage = np.array(STAGES, dtype=object)[stage]
    priority = np.array(PRIORITIES, dtype=object)[priority]

    paid = df["paid_orders"].to_numpy()
    disc_share = np.divide(df["discounted_orders"].to_numpy(), paid, out=np.zeros(n), where=paid > 0)
    price_sensitive = (paid >= s.tags.price_sensitive_min_orders) & (disc_share >= s.tags.price_sensitive_share - 1e-12)

    out = _frame_of(
        {
            "customer_id": _obj_column(df["customer_id"]),
            "as_of": as_of,
            "lifecycle_stage": _obj(stage),
            "at_risk": False,
            "rfm_r": pd.arrays.IntegerArray(r, ~buyer),  # null for customers without a paid order
            "rfm_f": pd.arrays.IntegerArray(f, ~buyer),
            "rfm_m": pd.arrays.IntegerArray(m, ~buyer),
            "rfm_segment": _obj(segment),
            "value_tier": _obj(tier),
            "crisis_priority": _obj(priority),
            "price_sensitive": pd.arrays.BooleanArray(buyer & price_sensitive, ~buyer),
            "favourite_category": _obj_column(df["favourite_category"]),
            "preferred_channel": _obj_column(df["preferred_channel"]),
            "cluster_id": null_ints(n) if clusters is None else pd.array(clusters, dtype="Int64"),
            "ltv": ltv,
            "paid_orders": paid.astype("int64"),
            "first_paid_at": df["first_paid_at"].astype("datetime64[us]").to_numpy(),
            "last_paid_at": df["last_paid_at"].astype("datetime64[us]").to_numpy(),
        },
        n,
    )
    if at_risk_ids is not None and len(at_risk_ids):
        out["at_risk"] = out["customer_id"].isin(at_risk_ids).to_numpy() & active_stage
    figures = {
        "members": int(n),
        "buyers": int(buyer.sum()),
        "value_high_min_ltv": high_min,
        "value_mid_min_ltv": mid_min,
        "stages": stage_counts,
    }
    return out, figures


def tag_hash(tags: pd.DataFrame, columns: list[str] = TAG_VALUE_COLUMNS, hashed: dict | None = None) -> np.ndarray:
    """A stable 64-bit hash of each row's computed values (``at_risk`` excluded: the overlay
    owns it); ``columns=OWN_COLUMNS``: of the values that follow the customer's own figures.
    The same as ``pd.util.hash_pandas_object(tags[columns], index=False)`` (tested), built
    from one hash per column; ``hashed``: column hashes already computed (filled in), so the
    own values hashed for ``own_hash`` are not hashed again for ``tag_hash``."""
    hashed = {} if hashed is None else hashed
    for c in columns:
        if c not in hashed:
            hashed[c] = pd.util.hash_pandas_object(tags[c], index=False).to_numpy()
    return _combine_hashes([hashed[c] for c in columns], len(tags)).view("int64")


def _combine_hashes(arrays: list[np.ndarray], length: int) -> np.ndarray:
    """Row hashes from column hashes, combined as pandas combines a DataFrame's columns
    (CPython's tuple hash)."""
    if not arrays:
        return np.full(length, 0x345678 + 97531, dtype=np.uint64)
    mult = np.uint64(1000003)
    out = np.zeros_like(arrays[0]) + np.uint64(0x345678)
    for i, a in enumerate(arrays):
        inverse_i = len(arrays) - i
        out ^= a
        out *= mult
        mult += np.uint64(82520 + inverse_i + inverse_i)
    out += np.uint64(97531)
    return out


def champion_high_risk(conn: Connection, scored_on: date | None = None) -> np.ndarray:
    """Customers the champion churn model rates high risk (empty before churn lands);
    ``scored_on``: only scores of that business day (churn_scores keeps the latest night's)."""
    try:
        df = fetch_frame(
            conn,
            "SELECT s.customer_id FROM churn_scores s JOIN model_versions v ON v.version = s.model_version "
            "WHERE v.status = 'champion' AND s.risk_band = 'high'" + (" AND s.as_of = :d" if scored_on else ""),
            {"d": scored_on} if scored_on else None,
        )
    except sa.exc.DBAPIError:  # pragma: no cover - churn tables not migrated
        return np.array([], dtype=object)
    return df["customer_id"].to_numpy(dtype=object)


def read_old_tags(conn: Connection) -> pd.DataFrame:
    """What the stored tags say now: (customer_id, tag_hash, at_risk, lifecycle_stage)."""
    old = fetch_frame(conn, "SELECT customer_id, tag_hash, at_risk, lifecycle_stage FROM tags", numeric=["tag_hash"], objects=True)
    old["at_risk"] = as_bool(old["at_risk"])
    return old


def _sqlite_values(s: pd.Series) -> list:
    """One column as SQLite parameters, converted in bulk (no Python call per value)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        v = s.to_numpy(dtype="datetime64[us]")
        out = np.char.replace(np.datetime_as_string(v, unit="us"), "T", " ").astype(object)
        out[np.isnat(v)] = None
        return out.tolist()
    na = s.isna().to_numpy()
    if isinstance(s.dtype, pd.BooleanDtype) or pd.api.types.is_bool_dtype(s):
        out = s.to_numpy(dtype=bool, na_value=False).astype(object)
    elif pd.api.types.is_integer_dtype(s):
        out = s.to_numpy(dtype="int64", na_value=0).astype(object)
    elif pd.api.types.is_float_dtype(s):
        out = s.to_numpy(dtype="float64", na_value=0.0).astype(object)
    else:
        out = s.map(lambda v: v.isoformat() if isinstance(v, date) else v).to_numpy(dtype=object) if len(s) and isinstance(s.iloc[0], date) else s.to_numpy(dtype=object)
        out = out.copy()
    out[na] = None
    return out.tolist()


def _sqlite_insert(conn: Connection, table: str, rows: pd.DataFrame, constants: dict | None = None) -> None:
    """Plain inserts, columns converted in bulk; ``constants``: columns holding one value for
    every row, written as SQL literals (a million dates are not converted one by one)."""
    constants = {c: _sql_literal(v) for c, v in (constants or {}).items()}
    cols = [c for c in rows.columns if c not in constants]
    values = ", ".join(["?"] * len(cols) + list(constants.values()))
    cur = conn.connection.driver_connection.cursor()
    cur.executemany(f"INSERT INTO {table} ({', '.join([*cols, *constants])}) VALUES ({values})", zip(*(_sqlite_values(rows[c]) for c in cols)))
    cur.close()


def _sql_literal(value) -> str:
    """One value as a SQL literal, formatted as the bulk writers format it (dates, stamps)."""
    v = _sqlite_values(pd.Series([value]))[0]
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def _upsert_tags(
    conn: Connection, rows: pd.DataFrame, new: np.ndarray, narrow: np.ndarray | None = None, same_stage: np.ndarray | None = None, constants: dict | None = None
) -> tuple[int, int]:
    """Write tag rows; ``new``: rows not stored yet. COPY + ON CONFLICT on PostgreSQL; on
    SQLite an UPDATE by key for the stored rows and a plain INSERT for the new ones, columns
    converted in bulk. SQLite updates set only what may have changed: ``narrow`` rows only
    their RELATIVE_COLUMNS (their own values are as stored), ``same_stage`` rows neither
    stage nor at-risk flag (so the stage index is left alone); ``constants`` (as_of,
    updated_at: one value for every row) are written as literals. Returns (rows written, of
    which narrow)."""
    if rows.empty:
        return 0, 0
    constants = constants or {}
    if is_postgres(conn):  # all new (the first night): plain COPY
        # the COPY's Arrow CSV writer takes the nullable Int64 / boolean columns as they are
        # (turning them into Python objects first copied every row and Arrow turned them back)
        rows = rows.assign(**constants)
        return bulk_upsert(conn, "tags", rows, ["customer_id"], update_only_changed=False, on_conflict="error" if new.all() else "update"), 0
    cols = [c for c in rows.columns if c != "customer_id"] + [c for c in constants if c not in rows.columns]
    narrow = np.zeros(len(rows), dtype=bool) if narrow is None else narrow
    same_stage = np.zeros(len(rows), dtype=bool) if same_stage is None else same_stage
    const = {c: _sql_literal(v) for c, v in constants.items()}
    cur = conn.connection.driver_connection.cursor()
    for is_narrow in (False, True):
        for is_same in (False, True):
            part = rows[~new & (narrow == is_narrow) & (same_stage == is_same)]
            if part.empty:
                continue
            keep = [c for c in cols if (not is_narrow or c in RELATIVE_COLUMNS or c in ("as_of", "at_risk", "tag_hash", "updated_at"))
                    and not (is_same and c in ("lifecycle_stage", "at_risk"))]
            sets = ", ".join(f"{c} = {const[c]}" if c in const else f"{c} = ?" for c in keep)
            bound = [c for c in keep if c not in const]
            cur.executemany(f"UPDATE tags SET {sets} WHERE customer_id = ?", zip(*(_sqlite_values(part[c]) for c in [*bound, "customer_id"])))
    cur.close()
    if new.any():
        _sqlite_insert(conn, "tags", rows[new], constants)
    return len(rows), int((narrow & ~new).sum())


def write_tags(
    conn: Connection, tags: pd.DataFrame, as_of: date, run_id: str | None = None, old: pd.DataFrame | None = None, old_pos: np.ndarray | None = None
) -> dict:
    """Write rows whose values changed; record stage changes for ``as_of``. Idempotent.

    ``old``: the stored tags' (customer_id, tag_hash, at_risk, lifecycle_stage, optionally
    own_hash) when the caller knows them (the nightly frame); read from ``tags`` otherwise.
    ``tags`` may carry its ``tag_hash`` (and ``own_hash``) already; where both sides have an
    ``own_hash`` and it is unchanged, only the relative columns are rewritten. ``old_pos``:
    each row's row in ``old`` (-1: none) when the caller knows it; looked up by key otherwise."""
    now = pd.Timestamp(datetime.utcnow()).floor("s")
    if "tag_hash" not in tags.columns:
        tags = tags.assign(tag_hash=tag_hash(tags))
    if old is None:
        old = read_old_tags(conn)
    pos = _positions(old["customer_id"], tags["customer_id"]) if old_pos is None else old_pos
    known = pos >= 0
    at = np.where(known, pos, 0)
    old_hash = old["tag_hash"].to_numpy(dtype="int64", na_value=0)[at] if len(old) else np.zeros(len(tags), dtype="int64")
    old_risk = old["at_risk"].to_numpy(dtype=bool)[at] if len(old) else np.zeros(len(tags), dtype=bool)
    old_stage = old["lifecycle_stage"].to_numpy(dtype=object)[at] if len(old) else np.full(len(tags), None, dtype=object)
    risk = tags["at_risk"].to_numpy(dtype=bool)
    changed = ~known | (old_hash != tags["tag_hash"].to_numpy(dtype="int64")) | (old_risk != risk)
    narrow = np.zeros(len(tags), dtype=bool)
    if len(old) and "own_hash" in old.columns and "own_hash" in tags.columns:
        old_own = old["own_hash"].to_numpy(dtype="int64", na_value=0)[at]
        narrow = known & old["own_hash"].notna().to_numpy()[at] & (old_own == tags["own_hash"].to_numpy(dtype="int64"))
    same_stage = known & (old_stage == tags["lifecycle_stage"].to_numpy(dtype=object)) & (old_risk == risk)
    # the changed rows first, then their columns (a column selection first copies every row)
    rows = tags.take(np.flatnonzero(changed))[[c for c in TAG_COLUMNS if c not in ("as_of", "updated_at")]]
    constants = {"as_of": pd.Timestamp(as_of).date(), "updated_at": now.to_pydatetime()}
    written, written_narrow = _upsert_tags(conn, rows, ~known[changed], narrow[changed], same_stage[changed], constants)
    still = np.zeros(len(old), dtype=bool)
    still[pos[known]] = True
    gone = old.loc[~still, "customer_id"].astype(str).tolist()
    for i in range(0, len(gone), 5000):
        conn.execute(sa.text("DELETE FROM tags WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)), {"ids": gone[i : i + 5000]})

    # stage history: one row per customer per day; a second run the same day folds into it
    old_stage = np.where(known, old_stage, None)
    stage = tags["lifecycle_stage"].to_numpy(dtype=object)
    is_moved = ~known | (old_stage != stage)
    moved = pd.DataFrame({"customer_id": _ids(tags["customer_id"])[is_moved], "lifecycle_stage_old": old_stage[is_moved], "lifecycle_stage": stage[is_moved]})
    # nothing stored before (the first night): every member is a first sight, and the tags
    # just written hold exactly their stages
    hist = _record_stage_changes(conn, moved, as_of, run_id, first_sights=len(old) == 0)
    return {"tags_written": int(written), "tags_written_narrow": written_narrow, "tags_removed": len(gone), **hist}


def _record_stage_changes(conn: Connection, moved: pd.DataFrame, as_of: date, run_id: str | None, first_sights: bool = False) -> dict:
    """One ``stage_history`` row per moved customer for ``as_of``. ``first_sights``: every
    row of ``tags`` was written just now for the first time (``moved`` is all of them)."""
    if moved.empty:
        return {"stage_changes": 0}
    moved = moved.rename(columns={"lifecycle_stage_old": "from_stage", "lifecycle_stage": "to_stage"})
    today = read_frame(
        conn, "SELECT customer_id, from_stage AS first_from FROM stage_history WHERE changed_on = :d", {"d": as_of}
    )
    if first_sights and today.empty:  # copied inside the database, not sent a second time (1M: 2.6 -> 1.2 s on SQLite)
        n = _exec(conn, "INSERT INTO stage_history (customer_id, from_stage, to_stage, changed_on, run_id) "
                        "SELECT customer_id, NULL, lifecycle_stage, :d, :r FROM tags", {"d": as_of, "r": run_id})
        if n == len(moved):
            return {"stage_changes": int(n), "stage_changes_undone": 0}
        # tags held other rows too (not expected): take them back, record the moved ones below
        _exec(conn, "DELETE FROM stage_history WHERE changed_on = :d", {"d": as_of})
    moved = moved.merge(today, on="customer_id", how="left", indicator=True)
    again = moved["_merge"] == "both"
    # a customer that moved earlier today keeps that day's origin
    moved.loc[again, "from_stage"] = moved.loc[again, "first_from"]
    back = again & (moved["from_stage"] == moved["to_stage"])
    if back.any():
        ids = moved.loc[back, "customer_id"].tolist()
        for i in range(0, len(ids), 5000):
            conn.execute(
                sa.text("DELETE FROM stage_history WHERE changed_on = :d AND customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                {"d": as_of, "ids": ids[i : i + 5000]},
            )
    rows = moved[~back].copy()
    rows["from_stage"] = rows["from_stage"].astype(object).where(rows["from_stage"].notna(), None)
    rows = rows.assign(changed_on=as_of, run_id=run_id)[["customer_id", "from_stage", "to_stage", "changed_on", "run_id"]]
    if today.empty and not is_postgres(conn):  # the day's first run: plain inserts, columns converted in bulk
        _sqlite_insert(conn, "stage_history", rows[["customer_id", "from_stage", "to_stage"]], {"changed_on": as_of, "run_id": run_id})
    elif today.empty:  # PostgreSQL: plain COPY
        bulk_upsert(conn, "stage_history", rows, ["customer_id", "changed_on"], on_conflict="error")
    else:
        bulk_upsert(conn, "stage_history", rows, ["customer_id", "changed_on"], update_only_changed=True)
    return {"stage_changes": int(len(rows)), "stage_changes_undone": int(back.sum())}


# ----------------------------------------------------------------------------- at-risk overlay
def apply_at_risk_overlay(conn: Connection, as_of: date | None = None) -> int:
    """Set ``tags.at_risk``: the champion churn model rates the customer high risk and the
    customer is still new/active/loyal. Called by the churn stage after scoring; a no-op
    when there are no scores. Returns the rows changed."""
    risky = (
        "EXISTS (SELECT 1 FROM churn_scores s JOIN model_versions v ON v.version = s.model_version "
        "WHERE s.customer_id = tags.customer_id AND v.status = 'champion' AND s.risk_band = 'high') "
        "AND tags.lifecycle_stage IN ('new', 'active', 'loyal')"
    )
    n = conn.execute(sa.text(f"UPDATE tags SET at_risk = :t WHERE at_risk = :f AND {risky}"), {"t": True, "f": False}).rowcount or 0
    n += conn.execute(sa.text(f"UPDATE tags SET at_risk = :f WHERE at_risk = :t AND NOT ({risky})"), {"t": True, "f": False}).rowcount or 0
    if n:
        _LAST.clear()  # the in-process copy of the tags no longer matches
        log.info("%s", t("log.tags.at_risk_overlay", as_of=as_of, n=f"{n:,}"))
    return int(n)


# ----------------------------------------------------------------------------- the nightly frame
# Every customer's aggregate columns (``tags_base``), membership inputs and last written
# stage and tag hash. The next night starts from it and re-reads only the customers whose
# aggregate changed (``tmp_tag_touched``) or whose CRM record changed: a million rows
# through the DB-API cost more than the whole rest of the night.
# The frame is an Arrow file under the output folder (``state/``); the ``tag_frames`` row,
# written in the refresh's transaction, holds what it is valid for and a random token that
# names the file. A night whose row does not name an existing file with that token (the
# transaction rolled back after the file was written, another machine's worker, a deleted
# folder) rebuilds the frame from the warehouse: slower (~9 s at 1M members), never wrong.
# (Written into the database, 50 MB at 1M members cost 2-3.5 s a night on PostgreSQL.)
FRAME_NAME = "tags"
FRAME_VERSION = 2  # 2: own_hash
_FRAME_BASE = [
    "customer_id", "registered_at", "first_paid_at", "second_paid_at", "last_paid_at", "paid_orders", "paid_amount",
    "discounted_orders", "weekend_orders", "window_orders", "returned_orders", "favourite_category", "preferred_channel",
]
_FRAME_INT = ["paid_orders", "discounted_orders", "weekend_orders", "window_orders", "returned_orders"]


def _normalize_base(df: pd.DataFrame) -> pd.DataFrame:
    """``tags_base`` rows as ``base_frame`` types them (counts int64, money rounded floats,
    strings as objects with None, timestamps naive UTC)."""
    for c in _DATES:
        if c in df.columns:
            df[c] = parse_ts(df[c])
    for c in _FRAME_INT:
        df[c] = pd.to_numeric(df[c]).fillna(0).astype("int64")
    df["paid_amount"] = pd.to_numeric(df["paid_amount"]).astype("float64").fillna(0.0).round(2)
    for c in ("customer_id", "favourite_category", "preferred_channel"):
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def _customers_watermark(conn: Connection):
    w = read_frame(conn, "SELECT MAX(updated_at) AS w FROM customers", parse_dates=["w"])["w"].iloc[0]
    return None if pd.isna(w) else min(w.to_pydatetime(), utcnow())


def _frame_to_blob(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="zstd")) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _frame_from_blob(data: bytes) -> pd.DataFrame:
    import pyarrow as pa

    table = pa.ipc.open_stream(pa.py_buffer(data)).read_all()
    strings = ["customer_id", "favourite_category", "preferred_channel", "lifecycle_stage"]
    df = table.drop_columns(strings).to_pandas()
    for c in strings:  # straight to objects (None for null), no pandas str column in between
        df[c] = _obj(table.column(c).to_numpy(zero_copy_only=False))
    df = df[table.column_names]
    for c in _DATES:
        df[c] = df[c].astype("datetime64[us]")
    for c in ("tag_hash", "own_hash"):
        df[c] = pd.array(df[c], dtype="Int64")
    return df


def _frame_dir() -> Path:
    return Path(get_settings().output_dir) / "state"


def _frame_file(owner: str, token: str) -> Path:
    """The frame file of the warehouse ``owner`` (a random id kept in its ``tag_frames``
    row: the same warehouse under another URL keeps its file) written with ``token``."""
    return _frame_dir() / f"tag-frame-{owner}-{token}.arrow"


def load_frame(conn: Connection, stamp: dict) -> pd.DataFrame | None:
    """The stored frame when it was written with exactly ``stamp`` (else None)."""
    # (frames of version 1 were kept in the row itself, ``data``: the version check sends them
    # to a rebuild like any other stale frame)
    raw = conn.execute(sa.text("SELECT stamp FROM tag_frames WHERE name = :n"), {"n": FRAME_NAME}).scalar()
    if raw is None:
        return None
    stored = json.loads(raw or "{}")
    if any(stored.get(k) != v for k, v in stamp.items()):
        return None
    path = _frame_file(str(stored.get("file_owner")), str(stored.get("file_token")))
    try:
        frame = _frame_from_blob(path.read_bytes())
    except (OSError, ValueError) as exc:  # pyarrow errors are ValueErrors (ArrowInvalid)
        log.debug("tags: the nightly frame file %s is not readable (%s): rebuilt from the warehouse", path.name, type(exc).__name__)
        return None
    frame.attrs["customers_watermark"] = stored.get("customers_watermark")
    return frame


@dataclass(frozen=True)
class FrameFile:
    """The file tonight's frame goes to: the warehouse's frame owner id, a fresh token, and
    the token of the file the ``tag_frames`` row names until tonight commits."""

    owner: str
    token: str
    previous: str | None

    @classmethod
    def next(cls, conn: Connection) -> "FrameFile":
        old = json.loads(conn.execute(sa.text("SELECT stamp FROM tag_frames WHERE name = :n"), {"n": FRAME_NAME}).scalar() or "{}")
        return cls(old.get("file_owner") or uuid.uuid4().hex[:12], uuid.uuid4().hex, old.get("file_token"))

    @property
    def path(self) -> Path:
        return _frame_file(self.owner, self.token)

    def write(self, frame: pd.DataFrame) -> int:
        """Write the frame (no database: the night runs it beside the tag writes); bytes."""
        data = _frame_to_blob(frame[[*_FRAME_BASE, "lifecycle_stage", "tag_hash", "own_hash"]])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)
        return len(data)


def save_frame(conn: Connection, file: FrameFile, as_of: date, stamp: dict) -> None:
    """In the caller's transaction, the row naming the frame ``file`` (written). Files of
    this warehouse other than the new one and the one the row named until now are removed;
    that one stays until this transaction commits (``prune_frame_files`` after the commit)."""
    prune_frame_files(file.owner, keep={file.path.name, _frame_file(file.owner, str(file.previous)).name})
    _exec(conn, "DELETE FROM tag_frames WHERE name = :n", {"n": FRAME_NAME})
    conn.execute(
        sa.text("INSERT INTO tag_frames (name, as_of, stamp, data, updated_at) VALUES (:n, :a, :s, NULL, :u)"),
        {"n": FRAME_NAME, "a": as_of, "s": json.dumps({**stamp, "file_owner": file.owner, "file_token": file.token}, sort_keys=True, default=str),
         "u": datetime.utcnow().replace(microsecond=0)},
    )


def prune_frame_files(owner: str, keep: set[str]) -> None:
    """Remove the frame files of warehouse ``owner`` except ``keep`` (names)."""
    pattern = _frame_file(owner, "*").name
    for other in _frame_dir().glob(pattern):
        if other.name not in keep:
            other.unlink(missing_ok=True)


def _frame_stamp(tags_state: dict | None, agg_state: dict | None, s: Settings) -> dict:
    """What a frame written after a refresh with these states is valid for."""
    return {
        "version": FRAME_VERSION,
        "tags_as_of": str(tags_state["as_of"]) if tags_state else None,
        "aggregates_as_of": str(agg_state["as_of"]) if agg_state else None,
        "fingerprint": json.dumps(_aggregate_fingerprint(s), sort_keys=True),
    }


def _full_frame(conn: Connection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every customer with the stored aggregate, and the stored tags (first night, fallback)."""
    sql = query("tags_base").format(aggregates="customer_aggregates", detail="", members="")
    # SQLite: the driver's objects as they are; typing them here (_normalize_base) skips
    # pandas' inference, which turned a million ids to Arrow strings and back (1M: 5.4-5.5 -> 4.7-5.0 s)
    frame = _normalize_base(fetch_frame(conn, sql, objects=True))
    frame = frame.take(key_order(frame["customer_id"])).reset_index(drop=True)
    old = read_old_tags(conn)
    return frame, old


def _advance_members(conn: Connection, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Index]:
    """Last night's frame brought to tonight's CRM: new or edited customers (registration
    time), any removed. Returns the frame in key order (``prev_row``: each customer's row in
    last night's frame, -1 if new) and its customer index (hash table built). Reads
    committed CRM data only, so it runs beside the aggregate refresh."""
    changed = fetch_frame(
        conn,
        "SELECT customer_id, registered_at FROM customers WHERE updated_at > :w OR updated_at IS NULL",
        {"w": pd.Timestamp(frame.attrs.get("customers_watermark") or "1970-01-01").to_pydatetime()},
        parse_dates=["registered_at"],
    )
    total = int(read_frame(conn, "SELECT COUNT(*) AS n FROM customers")["n"].iloc[0])
    frame = frame.assign(prev_row=np.arange(len(frame), dtype="float64"))  # travels along: -1 for new customers
    frame = frame.set_index(pd.Index(_ids(frame["customer_id"]), dtype=object, name="customer_id")).drop(columns="customer_id")
    new_ids = _ids(changed["customer_id"])[_positions(frame.index, changed["customer_id"]) < 0]
    if len(frame) + len(new_ids) != total:  # customers removed at the source: start from the table
        everyone = fetch_frame(conn, "SELECT customer_id, registered_at FROM customers", parse_dates=["registered_at"])
        frame = frame.reindex(pd.Index(_ids(everyone["customer_id"]), dtype=object, name="customer_id"))
        changed = everyone
    elif len(new_ids):
        extra = pd.DataFrame(index=pd.Index(new_ids, dtype=object, name="customer_id"), columns=frame.columns)
        frame = pd.concat([frame, extra.astype(frame.dtypes.to_dict(), errors="ignore")])
        frame.index = pd.Index(_ids(frame.index), dtype=object, name="customer_id")
    if len(changed):
        rows = _positions(frame.index, changed["customer_id"])
        col = frame["registered_at"].to_numpy().copy()
        col[rows] = changed["registered_at"].to_numpy(dtype="datetime64[us]")
        frame["registered_at"] = col
    ids = frame.index.to_numpy(dtype=object)
    frame = frame.reset_index(drop=True)
    frame.insert(0, "customer_id", _obj(ids))
    if len(new_ids) or len(frame) != total:
        frame = frame.take(key_order(frame["customer_id"])).reset_index(drop=True)
    for c in _FRAME_INT:
        frame[c] = frame[c].fillna(0).astype("int64")
    frame["paid_amount"] = frame["paid_amount"].astype("float64").fillna(0.0)
    for c in ("customer_id", "favourite_category", "preferred_channel", "lifecycle_stage"):
        frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    for c in _DATES:
        frame[c] = frame[c].astype("datetime64[us]")
    frame["prev_row"] = frame["prev_row"].fillna(-1).astype("int64")
    index = pd.Index(_ids(frame["customer_id"]), dtype=object)
    index.get_indexer(index[:1])  # builds the hash table here, beside the aggregate refresh
    return frame, index


def _apply_touched(conn: Connection, frame: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    """The customers whose aggregate tonight's refresh touched (``tmp_tag_touched``) take
    their new aggregate values; ``index``: the frame's customer index."""
    touched = fetch_frame(
        conn,
        "SELECT t.customer_id, " + ", ".join(f"a.{c}" for c in _FRAME_BASE[2:])
        + " FROM tmp_tag_touched t LEFT JOIN customer_aggregates a ON a.customer_id = t.customer_id",
        objects=True,
    )
    rows = _positions(index, touched["customer_id"])
    touched = touched[rows >= 0]
    rows = rows[rows >= 0]
    if len(touched):
        touched = _normalize_base(touched.assign(registered_at=pd.NaT))
        for c in _FRAME_BASE[2:]:  # in place where the column is the frame's own (no copy of a million values)
            frame.iloc[rows, frame.columns.get_loc(c)] = touched[c].to_numpy(dtype=frame[c].dtype)
    return frame


def _stored_rows(old_prev: np.ndarray, prev: np.ndarray) -> np.ndarray:
    """For each of tonight's rows (``prev``: its row in last night's frame, -1 if new), its
    row in the stored tags, whose rows are last night's rows ``old_prev``; -1 where none."""
    lookup = np.full(int(max(prev.max(initial=-1), old_prev.max(initial=-1))) + 2, -1, dtype="int64")
    lookup[old_prev] = np.arange(len(old_prev))
    return lookup[prev]  # -1 reads the last slot, never assigned


def _stored_frame(bind: Engine | Connection, stamp: dict) -> tuple[pd.DataFrame, pd.Index, pd.DataFrame] | None:
    """Last night's frame, when stored for exactly ``stamp``, brought to tonight's CRM
    (``_advance_members``), with the stored tags it records (customer_id, tag_hash,
    own_hash, lifecycle_stage, at_risk; in last night's row order, which ``prev_row``
    refers to). Reads committed data only, on its own connection
    when given an engine: the night runs it beside the aggregate refresh."""
    with (bind.connect() if isinstance(bind, Engine) else nullcontext(bind)) as conn:
        frame = load_frame(conn, stamp)
        if frame is None:
            return None
        was = frame["tag_hash"].notna().to_numpy()  # the stored tags, as last written
        old = pd.DataFrame(
            {
                "customer_id": _obj(frame["customer_id"].to_numpy()[was]),
                "tag_hash": frame["tag_hash"].to_numpy()[was].astype("int64"),
                "lifecycle_stage": _obj(frame["lifecycle_stage"].to_numpy()[was]),
                "own_hash": frame["own_hash"].array[was],
                "prev_row": np.flatnonzero(was),
            }
        )
        at_risk = _at_risk_now(conn)
        old["at_risk"] = old["customer_id"].isin(at_risk) if at_risk else False
        frame, index = _advance_members(conn, frame)
    return frame, index, old


def _members(frame: pd.DataFrame, win: Window) -> np.ndarray:
    reg = frame["registered_at"]
    return (reg.isna() | (reg < pd.Timestamp(win.cutoff)) | (frame["paid_orders"] > 0)).to_numpy()


def _at_risk_now(conn: Connection) -> set:
    """Customers the stored tags flag at risk (the overlay may have changed them since)."""
    return set(fetch_frame(conn, "SELECT customer_id FROM tags WHERE at_risk")["customer_id"])  # ix_tags_at_risk


# ----------------------------------------------------------------------------- the night
class _Laps:
    """Seconds per named step of the refresh (bench output): each call closes a lap."""

    def __init__(self) -> None:
        self.seconds: dict = {}
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0) + now - self._t, 2)
        self._t = now


def _tags_and_clusters(conn: Connection, base: pd.DataFrame, as_of: date, s: Settings, lap: "_Laps") -> tuple[pd.DataFrame, dict, dict]:
    """Every member's tags with their hashes, and the behaviour clusters (refreshed in
    ``clusters``), assigned on a second thread while the other tags are computed: the
    connection is the cluster step's alone meanwhile (the tags are pure computation)."""
    from tasks import clusters as clusters_mod

    at_risk_ids = champion_high_risk(conn)
    with ThreadPoolExecutor(max_workers=1) as pool:
        clustering = pool.submit(clusters_mod.refresh_clusters, conn, base, as_of, s)
        tags, figures = compute_tags(base, as_of, s, at_risk_ids=at_risk_ids)
        hashed: dict = {}  # each column hashed once, for both hashes
        tags["own_hash"] = tag_hash(tags, OWN_COLUMNS, hashed)  # cluster_id is not an own value
        lap("compute_tags")
        cl = clustering.result()
        lap("clusters")  # what the tags did not hide
    tags["cluster_id"] = pd.array(cl["labels"], dtype="Int64")
    tags["tag_hash"] = tag_hash(tags, hashed=hashed)
    lap("tag_hash")
    return tags, figures, cl


def _record_in_frame(frame: pd.DataFrame, member: np.ndarray, tags: pd.DataFrame) -> None:
    """What tonight writes, kept in the frame for the next night: each member's stage and
    hashes (none for the others)."""
    stage = np.full(len(frame), None, dtype=object)
    stage[member] = tags["lifecycle_stage"].to_numpy()
    frame["lifecycle_stage"] = _obj(stage, index=frame.index)
    for c in ("tag_hash", "own_hash"):
        hashes = null_ints(len(frame))
        hashes[member] = tags[c].to_numpy()
        frame[c] = hashes


_LAST: dict = {}  # the last frame computed in this process (health reuses it)


def refresh(as_of: date, run_id: str | None = None, engine: Engine | None = None, full: bool = False) -> dict:
    """The nightly tag refresh (aggregates, tags, clusters, stage history) in one transaction."""
    engine = engine or get_engine()
    s = get_settings()
    as_of = pd.Timestamp(as_of).date()
    win = window_for(as_of, s)
    t0 = time.perf_counter()
    # SQLite: the night rewrites most pages of the tag and aggregate tables; the log is folded
    # into the database on another thread after the commit, while the night goes on
    with begin_checkpoint_beside(engine) as conn:
        prev = _frame_stamp(read_state(conn, "tags"), read_state(conn, "aggregates"), s)
        cw = _customers_watermark(conn)
        # last night's frame is read and brought to tonight's CRM on another connection while
        # the aggregate refresh runs (the database works without the GIL meanwhile); an
        # in-memory SQLite database has no second connection: one after the other there
        beside = shared_across_connections(engine)
        with ThreadPoolExecutor(max_workers=1) as pool:
            stored = pool.submit(_stored_frame, engine, prev) if beside and not full else None  # full: not used
            agg = refresh_aggregates(conn, as_of, full=full, settings=s)
            t1 = time.perf_counter()
            lap = _Laps()
            prepared = None
            if agg["mode"] == "incremental":
                prepared = stored.result() if stored is not None else _stored_frame(conn, prev)
            lap("stored_frame")  # what the aggregate refresh did not hide
        reused = prepared is not None
        old_pos = None
        if reused:
            frame, index, old = prepared
            frame = _apply_touched(conn, frame, index)
            lap("apply_touched")
        else:
            frame, old = _full_frame(conn)
            lap("full_frame")
        member = _members(frame, win)
        if reused:  # each member's stored tags row, by last night's row numbers (no key lookup)
            old_pos = _stored_rows(old["prev_row"].to_numpy(), frame["prev_row"].to_numpy()[member])
        base = frame.loc[member, _FRAME_BASE].reset_index(drop=True)
        lap("members")
        t2 = time.perf_counter()
        tags, figures, cl = _tags_and_clusters(conn, base, as_of, s, lap)
        t3 = time.perf_counter()
        _record_in_frame(frame, member, tags)
        frame_file = FrameFile.next(conn)
        with ThreadPoolExecutor(max_workers=1) as pool:  # the file is written beside the tag writes
            file_job = pool.submit(frame_file.write, frame)
            written = write_tags(conn, tags, as_of, run_id, old=old, old_pos=old_pos)
            lap("write_tags")
            write_state(conn, "tags", as_of, win.cutoff, params={**figures, "clusters_fitted_on": cl["fitted_on"]})
            frame_bytes = file_job.result()
        stamp = _frame_stamp(read_state(conn, "tags"), read_state(conn, "aggregates"), s)
        stamp["customers_watermark"] = str(cw) if cw is not None else None
        save_frame(conn, frame_file, as_of, stamp)
        lap("save_frame")
        t4 = time.perf_counter()
    t5 = time.perf_counter()
    prune_frame_files(frame_file.owner, keep={frame_file.path.name})  # committed: the previous night's file goes
    _LAST.clear()
    _LAST.update({"url": str(engine.url), "as_of": as_of, "base": base, "tags": tags})
    stats = {
        "as_of": str(as_of),
        "aggregates": agg,
        **figures,
        **written,
        "frame": {"reused": reused, "bytes": frame_bytes},
        "clusters": {k: v for k, v in cl.items() if k != "labels"},
        "seconds": {
            "aggregates": round(t1 - t0, 2),
            "read": round(t2 - t1, 2),
            "compute": round(t3 - t2, 2),
            "write": round(t4 - t3, 2),
            "total": round(t4 - t0, 2),
            "commit": round(t5 - t4, 2),
            "steps": lap.seconds,
        },
    }
    return stats


def tags_frame(as_of: date | None = None, engine: Engine | None = None) -> tuple[pd.DataFrame, pd.DataFrame, date]:
    """(tags, base) for ``as_of``: the stored tags when they are at that day, otherwise
    recomputed from the data as it stood (nothing written). Default: the stored day."""
    engine = engine or get_engine()
    s = get_settings()
    with engine.connect() as conn:
        state = read_state(conn, "tags")
        if as_of is None:
            if state is None:
                raise LookupError("no tags yet: run the nightly flow (or `userops tags summary --as-of DATE`)")
            as_of = state["as_of"]
        as_of = pd.Timestamp(as_of).date()
        if _LAST.get("url") == str(engine.url) and _LAST.get("as_of") == as_of and state and state["as_of"] == as_of:
            return _LAST["tags"], _LAST["base"], as_of
        base = base_frame(conn, as_of, s)
        if state and state["as_of"] == as_of:
            tags = fetch_frame(
                conn,
                f"SELECT {', '.join(TAG_COLUMNS[:-2])} FROM tags",
                parse_dates=["first_paid_at", "last_paid_at"],
                numeric=["rfm_r", "rfm_f", "rfm_m", "cluster_id", "ltv", "paid_orders"],
            )
            tags = tags.set_index("customer_id").reindex(base["customer_id"]).reset_index()
            tags["as_of"] = pd.to_datetime(tags["as_of"]).dt.date
            tags["at_risk"] = as_bool(tags["at_risk"])
            ps = tags["price_sensitive"]
            tags["price_sensitive"] = pd.array(np.where(ps.isna(), None, as_bool(ps)), dtype="boolean")
            for c in ("rfm_r", "rfm_f", "rfm_m", "cluster_id", "paid_orders"):
                tags[c] = pd.array(tags[c], dtype="Int64")
        else:
            from tasks import clusters as clusters_mod

            labels = clusters_mod.assign_stored(conn, base, as_of, s)
            # the at-risk overlay of a past day needs that day's churn scores (kept for the
            # latest scoring night only): without them it is unknown, not today's
            risky = champion_high_risk(conn, scored_on=as_of)
            scored = bool(len(risky)) or _scored_on(conn, as_of)
            tags, _ = compute_tags(base, as_of, s, at_risk_ids=risky, clusters=labels)
            if not scored:
                tags["at_risk"] = pd.array([pd.NA] * len(tags), dtype="boolean")
    return tags, base, as_of


def _scored_on(conn: Connection, day: date) -> bool:
    try:
        return not read_frame(conn, "SELECT 1 AS x FROM churn_scores WHERE as_of = :d LIMIT 1", {"d": day}).empty
    except sa.exc.DBAPIError:  # pragma: no cover - churn tables not migrated
        return False


# ----------------------------------------------------------------------------- words
register(
    {
        "tags.stage.prospect": {"zh-CN": "潜客", "en": "prospect"},
        "tags.stage.new": {"zh-CN": "新客", "en": "new"},
        "tags.stage.active": {"zh-CN": "活跃", "en": "active"},
        "tags.stage.loyal": {"zh-CN": "忠诚", "en": "loyal"},
        "tags.stage.silent": {"zh-CN": "沉默", "en": "silent"},
        "tags.stage.churned": {"zh-CN": "流失", "en": "churned"},
        "tags.segment.champions": {"zh-CN": "重要价值（冠军）", "en": "champions"},
        "tags.segment.loyal": {"zh-CN": "忠诚客户", "en": "loyal"},
        "tags.segment.potential_loyalist": {"zh-CN": "潜在忠诚", "en": "potential loyalist"},
        "tags.segment.new": {"zh-CN": "新客户", "en": "new"},
        "tags.segment.promising": {"zh-CN": "有潜力", "en": "promising"},
        "tags.segment.need_attention": {"zh-CN": "需要关注", "en": "need attention"},
        "tags.segment.about_to_sleep": {"zh-CN": "即将沉睡", "en": "about to sleep"},
        "tags.segment.at_risk": {"zh-CN": "有流失风险", "en": "at risk"},
        "tags.segment.cant_lose": {"zh-CN": "不能失去", "en": "can't lose"},
        "tags.segment.hibernating": {"zh-CN": "休眠", "en": "hibernating"},
        "tags.segment.lost": {"zh-CN": "已流失", "en": "lost"},
        "tags.tier.high": {"zh-CN": "高价值", "en": "high value"},
        "tags.tier.mid": {"zh-CN": "中价值", "en": "mid value"},
        "tags.tier.low": {"zh-CN": "低价值", "en": "low value"},
        "tags.priority.core": {"zh-CN": "核心", "en": "core"},
        "tags.priority.potential": {"zh-CN": "潜力", "en": "potential"},
        "tags.priority.ordinary": {"zh-CN": "普通", "en": "ordinary"},
        "tags.full.line": {"zh-CN": "订单聚合已按全部订单重算：{reason}", "en": "order aggregate recomputed from every order: {reason}"},
        "tags.full.requested": {"zh-CN": "按要求全量计算", "en": "requested"},
        "tags.full.first_refresh": {"zh-CN": "首次计算", "en": "first refresh"},
        "tags.full.settings_changed": {"zh-CN": "相关设置已更改", "en": "settings changed"},
        "tags.full.as_of_moved_back": {"zh-CN": "回算到更早的日期", "en": "as_of moved back to an earlier day"},
        "tags.full.weekly_safety_net": {"zh-CN": "每周例行全量校准", "en": "weekly safety net"},
        "tags.full.aggregate_tables_emptied": {
            "zh-CN": "聚合表已被清空（数据库崩溃后重启？），本次已自动重建，无需处理",
            "en": "the aggregate tables had been emptied (a database restart after a crash?); rebuilt tonight, nothing to do",
        },
        # the churn stage's line under its scored line (tasks/churn.py): the high-risk band by
        # lifecycle stage; only the new/active/loyal ones are the at-risk overlay (tags.at_risk)
        "churn.high_split": {
            "zh-CN": "高风险 {high} 人中：仍为新客/活跃/忠诚（已标为流失预警）{at_risk}，已沉默/流失 {gone}，潜客（未下单）{prospect}",
            "en": "of the {high} high risk: still new/active/loyal (flagged at risk) {at_risk}, already silent/churned {gone}, prospects (no order yet) {prospect}",
        },
        "churn.high_split.untagged": {"zh-CN": "，尚无标签 {n}", "en": ", not tagged yet {n}"},
        "tags.summary.line": {
            "zh-CN": "标签 {as_of}：会员 {members}，{stages}；{written} 行有变化，{changes} 人阶段变化",
            "en": "tags {as_of}: {members} members, {stages}; {written} rows changed, {changes} stage changes",
        },
        # run-log lines of the churn stage's at-risk overlay and of the clusters' refit (tasks/clusters.py)
        "log.tags.at_risk_overlay": {
            "zh-CN": "流失预警标记（截至 {as_of}）：{n} 位客户有变化",
            "en": "at-risk flags as of {as_of}: {n} customers changed",
        },
        "log.tags.clusters_refitted": {
            "zh-CN": "客户分群已重新划分（截至 {as_of}）：共 {k} 个分群",
            "en": "customer clusters refitted as of {as_of}: {k} clusters",
        },
    }
)


def tags_summary_lines(stats: dict, lang: str | None = None) -> list[str]:
    stages = t("list.sep", lang).join(f"{t(f'tags.stage.{k}', lang)} {v:,}" for k, v in stats["stages"].items())
    return [
        t(
            "tags.summary.line",
            lang,
            as_of=stats["as_of"],
            members=f"{stats['members']:,}",
            stages=stages,
            written=f"{stats['tags_written']:,}",
            changes=f"{stats['stage_changes']:,}",
        )
    ] + _full_lines(stats.get("aggregates") or {}, lang)


def _full_lines(agg: dict, lang: str | None) -> list[str]:
    """Why a night recomputed the aggregate from every order (it takes longer), if it did."""
    if agg.get("mode") != "full" or not agg.get("reason"):
        return []
    # a reason without a message yet: as the code says it
    reason = t_or("tags.full." + str(agg["reason"]).replace(" ", "_"), str(agg["reason"]), lang)
    return [t("tags.full.line", lang, reason=reason)]


# ----------------------------------------------------------------------------- explain
register(
    {
        "tags.show.header": {
            "zh-CN": "客户 {customer_id} 的标签（截至 {as_of}；注册于 {registered}）",
            "en": "Tags of customer {customer_id} as of {as_of} (registered {registered})",
        },
        "tags.show.unknown": {
            "zh-CN": "截至 {as_of} 没有客户 {customer_id}（不存在或尚未注册）。",
            "en": "No customer {customer_id} as of {as_of} (unknown or not registered yet).",
        },
        "tags.why.prospect": {"zh-CN": "潜客：没有已付款订单{returned}", "en": "prospect: no paid order{returned}"},
        "tags.why.returned": {
            "zh-CN": "（{n} 笔退款/取消订单不算购买）",
            "en": " ({n} refunded/cancelled orders do not count)",
        },
        "tags.why.new": {
            "zh-CN": "新客：首笔已付款订单在 {days} 天前，阈值 {threshold} 天",
            "en": "new: first paid order {days} days ago, threshold {threshold}",
        },
        "tags.why.active": {
            "zh-CN": "活跃：最近一笔已付款订单在 {days} 天前，阈值 {threshold} 天；近 {window} 天 {orders} 笔已付款订单（忠诚需 {loyal} 笔）",
            "en": "active: last paid order {days} days ago, threshold {threshold}; {orders} paid orders in the last {window} days (loyal from {loyal})",
        },
        "tags.why.loyal_orders": {
            "zh-CN": "忠诚：最近一笔已付款订单在 {days} 天前（≤ {threshold} 天），近 {window} 天 {orders} 笔已付款订单（≥ {loyal}）",
            "en": "loyal: last paid order {days} days ago (<= {threshold}) and {orders} paid orders in the last {window} days (>= {loyal})",
        },
        "tags.why.loyal_segment": {
            "zh-CN": "忠诚：最近一笔已付款订单在 {days} 天前（≤ {threshold} 天），RFM 分群为{segment}",
            "en": "loyal: last paid order {days} days ago (<= {threshold}) and RFM segment {segment}",
        },
        "tags.why.silent": {
            "zh-CN": "沉默：最近一笔已付款订单在 {days} 天前，阈值 {threshold} 天（超过 {churn} 天为流失）",
            "en": "silent: last paid order {days} days ago, threshold {threshold} (churned after {churn})",
        },
        "tags.why.churned": {
            "zh-CN": "流失：最近一笔已付款订单在 {days} 天前，阈值 {threshold} 天",
            "en": "churned: last paid order {days} days ago, threshold {threshold}",
        },
        "tags.why.at_risk_yes": {
            "zh-CN": "预测流失风险：是——冠军模型 {version} 评为高风险（概率 {p}）",
            "en": "predicted at risk: yes — champion model {version} rates the churn risk high (p={p})",
        },
        # the champion's top reasons (models.scoring.reasons_text: codes and figures stored with the score)
        "tags.why.at_risk_reasons": {"zh-CN": "。主要原因：{reasons}", "en": ". Why: {reasons}"},
        "tags.why.at_risk_no": {"zh-CN": "预测流失风险：否", "en": "predicted at risk: no"},
        "tags.why.at_risk_unknown": {"zh-CN": "预测流失风险：—（流失评分只保留最近一次评分日，这一天的已不在）",
                                     "en": "predicted at risk: — (churn scores are kept for the latest scoring day only; this day's are gone)"},
        "tags.why.rfm": {
            "zh-CN": "RFM {r}-{f}-{m}（按买家五分位打分 1–5）→ {segment}：最近订单 {days} 天前，{orders} 笔已付款订单，累计 ¥{ltv}",
            "en": "RFM {r}-{f}-{m} (1-5 by quintile among buyers) -> {segment}: last order {days} days ago, {orders} paid orders, ¥{ltv} in total",
        },
        "tags.why.rfm_none": {"zh-CN": "RFM：无（没有已付款订单）", "en": "RFM: none (no paid order)"},
        "tags.why.tier": {
            "zh-CN": "价值分层：{tier}——累计消费（LTV）¥{ltv}；高价值起点 ¥{high}（前 {high_share}% 买家），中价值起点 ¥{mid}",
            "en": "value tier: {tier} — lifetime value ¥{ltv}; high from ¥{high} (top {high_share}% of buyers), mid from ¥{mid}",
        },
        "tags.why.priority": {"zh-CN": "危机优先级：{priority}——{reason}", "en": "crisis priority: {priority} — {reason}"},
        "tags.why.priority.high": {"zh-CN": "高价值", "en": "high value"},
        "tags.why.priority.loyal": {"zh-CN": "忠诚客户", "en": "loyal customer"},
        "tags.why.priority.mid": {"zh-CN": "中价值", "en": "mid value"},
        "tags.why.priority.stage": {"zh-CN": "{stage}客户", "en": "{stage} customer"},
        "tags.why.priority.none": {"zh-CN": "非高/中价值，也不在新客/活跃/忠诚阶段", "en": "neither high/mid value nor new/active/loyal"},
        "tags.why.price_yes": {
            "zh-CN": "价格敏感：是——{paid} 笔已付款订单中 {disc} 笔折扣 ≥ {rate}%（占 {share}%，阈值 {threshold}%，至少 {min} 笔）",
            "en": "price-sensitive: yes — {disc} of {paid} paid orders at >= {rate}% off ({share}%, threshold {threshold}%, at least {min} orders)",
        },
        "tags.why.price_no": {
            "zh-CN": "价格敏感：否——{paid} 笔已付款订单中 {disc} 笔折扣 ≥ {rate}%（占 {share}%，阈值 {threshold}%，至少 {min} 笔）",
            "en": "price-sensitive: no — {disc} of {paid} paid orders at >= {rate}% off ({share}%, threshold {threshold}%, at least {min} orders)",
        },
        "tags.why.category": {
            "zh-CN": "偏好品类：{category}——{qty}/{items} 件商品",
            "en": "favourite category: {category} — {qty} of {items} items",
        },
        "tags.why.channel": {
            "zh-CN": "偏好渠道：{channel}——{n}/{paid} 笔已付款订单",
            "en": "preferred channel: {channel} — {n} of {paid} paid orders",
        },
        "tags.why.cluster": {"zh-CN": "行为分群 {id}：{description}", "en": "behaviour cluster {id}: {description}"},
        "tags.summary.title": {"zh-CN": "标签分布（截至 {as_of}）：会员 {members}，买家 {buyers}", "en": "Tag distribution as of {as_of}: {members} members, {buyers} buyers"},
        "tags.summary.stage": {"zh-CN": "生命周期阶段", "en": "lifecycle stage"},
        "tags.summary.segment": {"zh-CN": "RFM 分群", "en": "RFM segment"},
        "tags.summary.tier": {"zh-CN": "价值分层", "en": "value tier"},
        "tags.summary.priority": {"zh-CN": "危机优先级", "en": "crisis priority"},
        "tags.summary.behaviour": {"zh-CN": "行为标签", "en": "behaviour"},
        "tags.summary.at_risk": {"zh-CN": "预测流失风险", "en": "predicted at risk"},
        "tags.summary.at_risk_unknown": {"zh-CN": "（预测流失风险：流失评分只保留最近一次评分日，这一天的已不在）",
                                         "en": "(predicted at risk: churn scores are kept for the latest scoring day only; this day's are gone)"},
        "tags.summary.price": {"zh-CN": "价格敏感", "en": "price-sensitive"},
        "tags.summary.category": {"zh-CN": "偏好品类", "en": "favourite category"},
        "tags.summary.channel": {"zh-CN": "偏好渠道", "en": "preferred channel"},
        "tags.summary.cluster": {"zh-CN": "行为分群", "en": "behaviour clusters"},
    }
)


def _money(v) -> str:
    return "—" if v is None or pd.isna(v) else f"{float(v):,.2f}"


def _stored_one(conn: Connection, customer_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    one = {"c": customer_id}
    tg = fetch_frame(
        conn,
        f"SELECT {', '.join(TAG_COLUMNS[:-2])} FROM tags WHERE customer_id = :c",
        one,
        parse_dates=["first_paid_at", "last_paid_at"],
        numeric=["rfm_r", "rfm_f", "rfm_m", "cluster_id", "ltv", "paid_orders"],
    )
    if not tg.empty:
        tg["at_risk"] = as_bool(tg["at_risk"])
        ps = tg["price_sensitive"]
        tg["price_sensitive"] = pd.array(np.where(ps.isna(), None, as_bool(ps)), dtype="boolean")
    base = fetch_frame(
        conn,
        "SELECT * FROM (" + query("tags_base").format(aggregates="customer_aggregates", detail=_DETAIL, members=_MEMBERS) + ") one WHERE one.customer_id = :c",
        {**one, "cutoff": datetime(9999, 1, 1)},
        parse_dates=_DATES,
        numeric=_BASE_NUMERIC,
    )
    return tg, base


def explain(customer_id: str, as_of: date | None = None, engine: Engine | None = None, lang: str | None = None) -> list[str]:
    """Each tag of one customer with the numbers behind it (no phone, email or name)."""
    engine = engine or get_engine()
    s = get_settings()
    lc = s.lifecycle
    with engine.connect() as conn:
        state = read_state(conn, "tags")
        stored_day = state["as_of"] if state else None
        if as_of is None and stored_day is None:
            raise LookupError("no tags yet: run the nightly flow, or pass --as-of")
        day = pd.Timestamp(as_of).date() if as_of is not None else stored_day
        if day == stored_day:
            tg, base = _stored_one(conn, customer_id)
            figures = (state or {}).get("params", {})
        else:
            tg = base = None
    if tg is None:
        all_tags, all_base, day = tags_frame(day, engine)
        tg = all_tags[all_tags["customer_id"] == customer_id]
        base = all_base[all_base["customer_id"] == customer_id]
        ltv = all_tags["ltv"]
        figures = {
            "value_high_min_ltv": ltv[all_tags["value_tier"] == "high"].min(),
            "value_mid_min_ltv": ltv[all_tags["value_tier"] == "mid"].min(),
        }
    if tg.empty:  # the command exits 1 with this (a script can tell)
        raise LookupError(t("tags.show.unknown", lang, customer_id=customer_id, as_of=day))
    r = tg.iloc[0]
    b = base.iloc[0]
    d_last = days_ago(base["last_paid_at"], day, s.timezone).iloc[0]
    d_first = days_ago(base["first_paid_at"], day, s.timezone).iloc[0]
    reg = b["registered_at"]
    lines = [t("tags.show.header", lang, customer_id=customer_id, as_of=day, registered="—" if pd.isna(reg) else pd.Timestamp(reg).date())]
    stage = r["lifecycle_stage"]
    paid = int(b["paid_orders"])
    seg = r["rfm_segment"]
    seg_name = t(f"tags.segment.{seg}", lang) if isinstance(seg, str) else "—"
    common = {"window": lc.loyal_window_days, "orders": int(b["window_orders"]), "loyal": lc.loyal_orders}
    if stage == "prospect":
        returned = t("tags.why.returned", lang, n=int(b["returned_orders"])) if b["returned_orders"] else ""
        lines.append(t("tags.why.prospect", lang, returned=returned))
    elif stage == "new":
        lines.append(t("tags.why.new", lang, days=f"{int(d_first):,}", threshold=lc.new_days))
    elif stage == "active":
        lines.append(t("tags.why.active", lang, days=f"{int(d_last):,}", threshold=lc.active_days, **common))
    elif stage == "loyal":
        if b["window_orders"] >= lc.loyal_orders:
            lines.append(t("tags.why.loyal_orders", lang, days=f"{int(d_last):,}", threshold=lc.active_days, **common))
        else:
            lines.append(t("tags.why.loyal_segment", lang, days=f"{int(d_last):,}", threshold=lc.active_days, segment=seg_name))
    elif stage == "silent":
        lines.append(t("tags.why.silent", lang, days=f"{int(d_last):,}", threshold=lc.active_days, churn=lc.silent_days))
    else:
        lines.append(t("tags.why.churned", lang, days=f"{int(d_last):,}", threshold=lc.silent_days))
    if pd.isna(r["at_risk"]):
        lines.append(t("tags.why.at_risk_unknown", lang))
    elif bool(r["at_risk"]):
        with engine.connect() as conn:
            sc = read_frame(
                conn,
                "SELECT s.model_version, s.probability, s.reasons FROM churn_scores s JOIN model_versions v ON v.version = s.model_version "
                "WHERE v.status = 'champion' AND s.customer_id = :c",
                {"c": customer_id},
            )
        v, p = (sc["model_version"].iloc[0], f"{float(sc['probability'].iloc[0]):.2f}") if not sc.empty else ("?", "?")
        line = t("tags.why.at_risk_yes", lang, version=v, p=p)
        why = ""
        if not sc.empty:  # the champion's top reasons, from the codes and figures stored with the score
            from models.scoring import reasons_text

            try:
                why = str(reasons_text(sc["reasons"].iloc[:1], lang).iloc[0] or "")
            except Exception:  # an unreadable stored value: the line says the rest, never the raw JSON
                log.debug("churn reasons of %s could not be rendered", customer_id, exc_info=True)
        lines.append(line + (t("tags.why.at_risk_reasons", lang, reasons=why) if why else ""))
    else:
        lines.append(t("tags.why.at_risk_no", lang))
    if paid:
        lines.append(t("tags.why.rfm", lang, r=int(r["rfm_r"]), f=int(r["rfm_f"]), m=int(r["rfm_m"]), segment=seg_name, days=f"{int(d_last):,}", orders=paid, ltv=_money(b["paid_amount"])))
    else:
        lines.append(t("tags.why.rfm_none", lang))
    lines.append(
        t(
            "tags.why.tier",
            lang,
            tier=t(f"tags.tier.{r['value_tier']}", lang),
            ltv=_money(b["paid_amount"]),
            high=_money(figures.get("value_high_min_ltv")),
            mid=_money(figures.get("value_mid_min_ltv")),
            high_share=round(100 * s.tags.value_high_share),
        )
    )
    prio = r["crisis_priority"]
    if prio == "core":
        reason = t("tags.why.priority.high", lang) if r["value_tier"] == "high" else t("tags.why.priority.loyal", lang)
    elif prio == "potential":
        reason = t("tags.why.priority.mid", lang) if r["value_tier"] == "mid" else t("tags.why.priority.stage", lang, stage=t(f"tags.stage.{stage}", lang))
    else:
        reason = t("tags.why.priority.none", lang)
    lines.append(t("tags.why.priority", lang, priority=t(f"tags.priority.{prio}", lang), reason=reason))
    if paid:
        disc = int(b["discounted_orders"])
        key = "tags.why.price_yes" if bool(r["price_sensitive"]) else "tags.why.price_no"
        lines.append(
            t(key, lang, disc=disc, paid=paid, rate=round(100 * s.tags.discount_min_rate), share=round(100 * disc / paid),
              threshold=round(100 * s.tags.price_sensitive_share), min=s.tags.price_sensitive_min_orders)
        )
        if isinstance(b["favourite_category"], str):
            lines.append(t("tags.why.category", lang, category=b["favourite_category"], qty=int(b["favourite_category_qty"]), items=int(b["items_qty"])))
        if isinstance(b["preferred_channel"], str):
            lines.append(t("tags.why.channel", lang, channel=b["preferred_channel"], n=int(b["preferred_channel_orders"]), paid=paid))
    if not pd.isna(r["cluster_id"]):
        with engine.connect() as conn:
            cl = read_frame(conn, "SELECT description_zh, description_en FROM clusters WHERE cluster_id = :i", {"i": int(r["cluster_id"])})
        if not cl.empty:
            desc = cl["description_en" if (lang or s.language) == "en" else "description_zh"].iloc[0]
            lines.append(t("tags.why.cluster", lang, id=int(r["cluster_id"]), description=desc))
    return lines


def summary(as_of: date | None = None, engine: Engine | None = None, lang: str | None = None, top: int = 8) -> list[str]:
    """The distribution of every tag, as lines for the terminal."""
    from userops.i18n import pad

    engine = engine or get_engine()
    tg, base, day = tags_frame(as_of, engine)
    n = len(tg)
    buyers = int((base["paid_orders"] > 0).sum())

    def block(title: str, counts: pd.Series, label) -> list[str]:
        out = [labelled(title, lang=lang)]
        for k, v in counts.items():
            # padded by display width: a Chinese label is twice as wide as it is long
            name = pad(label(k), 24)
            if isinstance(v, str):  # not known for this day
                out.append(f"  {name} {pad(v, 10, '>')}")
                continue
            out.append(f"  {name} {int(v):>10,}  {100 * v / n if n else 0:5.1f}%")
        return out

    lines = [t("tags.summary.title", lang, as_of=day, members=f"{n:,}", buyers=f"{buyers:,}")]
    lines += block(t("tags.summary.stage", lang), tg["lifecycle_stage"].value_counts().reindex(STAGES, fill_value=0), lambda k: t(f"tags.stage.{k}", lang))
    lines += block(t("tags.summary.segment", lang), tg["rfm_segment"].value_counts().reindex(SEGMENTS, fill_value=0), lambda k: t(f"tags.segment.{k}", lang))
    lines += block(t("tags.summary.tier", lang), tg["value_tier"].value_counts().reindex(TIERS, fill_value=0), lambda k: t(f"tags.tier.{k}", lang))
    lines += block(t("tags.summary.priority", lang), tg["crisis_priority"].value_counts().reindex(PRIORITIES, fill_value=0), lambda k: t(f"tags.priority.{k}", lang))
    risk_known = not tg["at_risk"].isna().all() or not n
    behaviour = pd.Series(
        {
            t("tags.summary.at_risk", lang): int(tg["at_risk"].fillna(False).astype(bool).sum()) if risk_known else "—",
            t("tags.summary.price", lang): int(tg["price_sensitive"].fillna(False).astype(bool).sum()),
        }
    )
    lines += block(t("tags.summary.behaviour", lang), behaviour, str)
    if not risk_known:
        lines.append("  " + t("tags.summary.at_risk_unknown", lang))
    lines += block(t("tags.summary.category", lang), tg["favourite_category"].value_counts().head(top), str)
    lines += block(t("tags.summary.channel", lang), tg["preferred_channel"].value_counts().head(top), str)
    counts = tg["cluster_id"].value_counts()
    if len(counts):
        with engine.connect() as conn:
            cl = read_frame(conn, "SELECT cluster_id, description_zh, description_en FROM clusters ORDER BY cluster_id")
        col = "description_en" if (lang or get_settings().language) == "en" else "description_zh"
        words = dict(zip(pd.to_numeric(cl["cluster_id"]).astype(int), cl[col]))
        lines.append(labelled(t("tags.summary.cluster", lang), lang=lang))
        for cid in sorted(int(c) for c in counts.index):
            v = int(counts.loc[cid])
            lines.append(f"  #{cid:<3} {v:>10,}  {100 * v / n:5.1f}%  {words.get(cid, '')}")
    return lines


# ----------------------------------------------------------------------------- tasks
@task(name="refresh-tags", task_run_name="refresh-tags-{as_of}")
def refresh_tags_task(as_of: date, run_id: str | None = None) -> dict:
    return refresh(as_of, run_id)


@task(name="at-risk-overlay")
def at_risk_overlay_task(as_of: date) -> int:
    with get_engine().begin() as conn:
        return apply_at_risk_overlay(conn, as_of)
