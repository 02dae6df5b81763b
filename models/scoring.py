"""Warehouse glue of the churn model: read, train, score, drift-check.

    load_features(conn, as_of, model) the night's features of every customer from the
                                      incrementally maintained ``customer_aggregates`` (+ the
                                      customers' registration dates): never the orders table
    load_frames(conn, as_of)          orders + customers, set-based, in one pass each (training:
                                      it needs point-in-time features at past cutoffs)
    train_and_register(conn, frames)  train at the latest complete window, then promote or not
    score(conn, night, model)         every customer -> churn_scores (DELETE + bulk insert / COPY)
    drift_check(conn, scored)         PSI vs the model's training profile -> drift_checks
                                      (+ health_breaches 'model_drift' and an alert on a breach)

Time: ``as_of`` is the shop's business day; the scoring cutoff is the end of that day in
the shop's timezone (naive UTC), the same instant the tags use.  Training uses the latest
window whose labels are complete at that cutoff (``labels.latest_complete_cutoff``):
T = floor(cutoff) - H, features at T - H with labels [T - H, T) to fit, features at T with
labels [T, T + H) as the out-of-time holdout.

Nightly features: ``models.features.features_from_aggregates`` applied to
``customer_aggregates`` (issue 3's table, brought to ``as_of`` by the tags stage that runs
before the churn stage): the same function ``build_features`` applies to the raw orders
(tested equal on SQLite and PostgreSQL). If the aggregate is not at ``as_of`` (tags stage
did not run, or its window / timezone differ from the model's), scoring falls back to
computing the aggregate from the orders (correct, slower) and says so in ``source``.

Reading (training): only the columns the features need.  On PostgreSQL ``COPY (SELECT ..) TO STDOUT``
through the raw psycopg2 connection, parsed by pyarrow (customer ids dictionary-encoded,
so ten million order rows never become Python strings); on SQLite the raw sqlite3
connection with timestamps turned into epoch seconds by SQLite.  Customer ids are mapped
once to dense integer codes (``Frames.ids``) so every build_features call of the night
works on integers; ids go back to strings only when scores are written.

Reasons are stored as compact JSON (reason codes, signs and only the numbers those reasons
need) and rendered in zh-CN or en when read (``reasons_text``), so one night serves both
languages.
"""
from __future__ import annotations

import gc
import io
import json
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from models import registry
from models.drift import MAIN_FEATURES, drift_report, drift_summary
from models.explain import NUMBER_COLUMNS, render_reasons
from models.features import build_features, features_from_aggregates
from models.labels import latest_complete_cutoff
from models.messages import localized
from models.train import TrainConfig, TrainedModel, feature_kwargs, features_compatible, train_model
from userops.clock import utcnow
from userops.db import bulk_upsert, copy_out, get_engine, is_postgres, key_order, read_frame
from userops.i18n import register as register_messages
from userops.i18n import join_list, t
from userops.settings import get_settings

log = logging.getLogger("userops.churn")

STATUSES = ("paid", "refunded", "cancelled")
DRIFT_EVENT = "userops.health.model-drift-breach"
_EVENT_NS = uuid.UUID("5b0f6f3e-7a4c-4f0e-9a57-0c1d2e3f4a5b")

# Which numbers each reason's sentence uses (models.explain._sentence).
REASON_NUMBERS: dict[str, list[str]] = {
    "recency": ["recency_days", "usual_gap_days", "n_orders"],
    "frequency": ["n_orders"],
    "slowing": ["window_orders", "prev_window_orders", "window_days"],
    "spend": ["monetary_mean"],
    "tenure": ["tenure_days"],
    "returns": ["returned_pct"],
    "no_orders": ["days_since_registration"],
}
TOP = 3


# ----------------------------------------------------------------------------- time
def scoring_cutoff(as_of: date) -> pd.Timestamp:
    """End of the business day ``as_of`` in the shop's timezone, as naive UTC."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(get_settings().timezone)
    d = pd.Timestamp(as_of).date() + timedelta(days=1)
    local = datetime(d.year, d.month, d.day, tzinfo=tz)
    return pd.Timestamp(local).tz_convert("UTC").tz_localize(None)


def feature_params(as_of: date) -> dict:
    """How the features read the data on ``as_of`` (what the tags' aggregate uses too): the
    shop's UTC offset for calendar days and the loyalty window."""
    from zoneinfo import ZoneInfo

    s = get_settings()
    d = pd.Timestamp(as_of).date()
    off = ZoneInfo(s.timezone).utcoffset(datetime(d.year, d.month, d.day, 12))
    return {"day_offset_minutes": int(off.total_seconds() // 60), "window_days": int(s.lifecycle.loyal_window_days)}


def training_cutoff(as_of: date, horizon_days: int | None = None) -> pd.Timestamp:
    """T of the latest complete window at ``as_of`` (holdout labels [T, T+H) observed): the
    shop-local midnight H days before the scoring cutoff, as naive UTC. Training features
    at T (and T - H) then count calendar days as scoring's features do (a UTC midnight was
    a third of a day off in Asia/Shanghai, and left the last 16 hours of labels unused).
    In UTC it is ``labels.latest_complete_cutoff``."""
    h = int(horizon_days or get_settings().churn.horizon_days)
    return scoring_cutoff(pd.Timestamp(as_of).date() - timedelta(days=h))


# ----------------------------------------------------------------------------- reading
@dataclass
class Frames:
    """Orders and customers as the modelling core wants them, ids as integer codes."""

    as_of: date
    cutoff: pd.Timestamp  # scoring cutoff (orders read strictly before it)
    orders: pd.DataFrame  # customer_id (int64 code), paid_at (datetime64[s]), amount, status
    customers: pd.DataFrame  # customer_id (int64 code), registered_at (datetime64[s])
    ids: np.ndarray  # code -> customer_id as stored
    seconds: dict = field(default_factory=dict)
    day_offset_minutes: int = 0  # feature_params(as_of)
    window_days: int = 365

    def features(self, model: TrainedModel | None = None) -> pd.DataFrame:
        """Every customer's features at the scoring cutoff from the orders (index: code)."""
        kw = feature_kwargs(model.config) if model is not None else {
            "day_offset_minutes": self.day_offset_minutes, "window_days": self.window_days}
        return build_features(self.orders, self.customers, self.cutoff, **kw)


def _read_copy(buf, names: list[str], types: dict, block_size: int | None = None) -> pa.Table:
    """Headerless ``COPY ... TO STDOUT WITH (FORMAT csv)`` output as an Arrow table of
    ``types``; no rows (a shop without orders yet) is an empty table of that schema, not
    Arrow's "Empty CSV file" error."""
    buf.seek(0, 2)
    empty = buf.tell() == 0
    buf.seek(0)
    if empty:
        return pa.table({n: pa.array([], type=types[n]) for n in names})
    read = pacsv.ReadOptions(column_names=names, **({"block_size": block_size} if block_size else {}))
    return pacsv.read_csv(buf, read_options=read, convert_options=pacsv.ConvertOptions(column_types=types))


def _read_pg(conn: Connection, cutoff: pd.Timestamp) -> tuple[pa.Table, pa.Table]:
    cut = cutoff.to_pydatetime()
    orders_buf = copy_out(
        conn,
        "SELECT customer_id, CAST(EXTRACT(EPOCH FROM paid_at) AS BIGINT), CAST(amount AS FLOAT), "
        "CASE status WHEN 'paid' THEN 0 WHEN 'refunded' THEN 1 ELSE 2 END "
        "FROM orders WHERE paid_at < %(cut)s AND status IN ('paid', 'refunded', 'cancelled')",
        {"cut": cut},
    )
    names = ["customer_id", "paid_s", "amount", "status"]
    orders = _read_copy(
        orders_buf, names,
        {"customer_id": pa.dictionary(pa.int32(), pa.string()), "paid_s": pa.int64(), "amount": pa.float64(), "status": pa.int8()},
        block_size=64 << 20,
    )
    del orders_buf
    cust_buf = copy_out(conn, "SELECT customer_id, CAST(EXTRACT(EPOCH FROM registered_at) AS BIGINT) FROM customers", {})
    customers = _read_copy(cust_buf, ["customer_id", "reg_s"], {"customer_id": pa.string(), "reg_s": pa.int64()})
    return orders, customers


def _epoch_text(values) -> np.ndarray:
    """SQLite timestamp text -> epoch seconds (float, NaN for missing), vectorized."""
    ts = pd.to_datetime(pd.Series(values, dtype=object), format="ISO8601", errors="coerce")
    out = ts.to_numpy(dtype="datetime64[s]").view(np.int64).astype(float)
    out[ts.isna().to_numpy()] = np.nan
    return out


def _read_sqlite(conn: Connection, cutoff: pd.Timestamp, chunk_rows: int = 1_000_000) -> tuple[dict, dict]:
    """Orders paid before ``cutoff`` (customer ids already coded against the customers
    table) and customers, as column arrays. The orders come in chunks of ``chunk_rows``
    turned into arrays at once, so ten million rows never sit in memory as Python tuples."""
    raw = conn.connection.driver_connection
    cut = cutoff.strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = raw.execute("SELECT customer_id, registered_at FROM customers").fetchall()
    ids, reg = zip(*rows) if rows else ((), ())
    del rows
    cust_ids = np.array(ids, dtype=object)
    customers = {"customer_id": cust_ids, "reg_s": _epoch_text(reg)}
    del ids, reg
    index = pd.Index(cust_ids, dtype=object)
    # "+paid_at": a full scan beats walking the paid_at index for (nearly) every row; the
    # timestamps come back as text and are parsed vectorized (SQLite's strftime per row is slower).
    cur = raw.execute(
        "SELECT customer_id, paid_at, CAST(amount AS FLOAT), "
        "CASE status WHEN 'paid' THEN 0 WHEN 'refunded' THEN 1 ELSE 2 END "
        "FROM orders WHERE +paid_at < ? AND status IN ('paid', 'refunded', 'cancelled')",
        (cut,),
    )
    codes, paid, amount, status, missing = [], [], [], [], []
    while True:
        rows = cur.fetchmany(chunk_rows)
        if not rows:
            break
        c_ids, c_paid, c_amount, c_status = zip(*rows)
        del rows
        c_ids = np.array(c_ids, dtype=object)
        c_codes = index.get_indexer(c_ids)
        if (c_codes < 0).any():
            missing.append(c_ids[c_codes < 0])
        codes.append(c_codes)
        paid.append(_epoch_text(c_paid))
        amount.append(np.array(c_amount, dtype=float))
        status.append(np.array(c_status, dtype=np.int8))
        del c_ids, c_paid, c_amount, c_status
    cat = lambda parts, dtype: np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)  # noqa: E731
    orders = {"codes": cat(codes, np.int64), "paid_s": cat(paid, float), "amount": cat(amount, float), "status": cat(status, np.int8)}
    orders["missing"] = cat(missing, object)
    return orders, customers


def _codes(cust_ids: np.ndarray, order_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense integer codes: customers first (in table order), then order-only ids.
    Returns (codes of order_ids, ids by code)."""
    index = pd.Index(cust_ids, dtype=object)
    codes = index.get_indexer(order_ids)
    missing = codes < 0
    ids = cust_ids
    if missing.any():
        extra = pd.unique(order_ids[missing])
        ids = np.concatenate([cust_ids, extra])
        codes[missing] = len(cust_ids) + pd.Index(extra, dtype=object).get_indexer(order_ids[missing])
    return codes.astype(np.int64), ids


def load_frames(conn: Connection, as_of: date) -> Frames:
    """Every order paid before the scoring cutoff of ``as_of`` and every customer."""
    t0 = time.perf_counter()
    as_of = pd.Timestamp(as_of).date()
    cutoff = scoring_cutoff(as_of)
    if is_postgres(conn):
        o, c = _read_pg(conn, cutoff)
        cust_ids = np.asarray(c.column("customer_id").to_numpy(zero_copy_only=False), dtype=object)
        reg_s = c.column("reg_s").to_numpy(zero_copy_only=False)
        t1 = time.perf_counter()
        dict_col = o.column("customer_id").combine_chunks() if o.num_rows else pa.array([], pa.dictionary(pa.int32(), pa.string()))
        if isinstance(dict_col, pa.ChunkedArray):
            dict_col = dict_col.combine_chunks()
        dict_col = dict_col.unify_dictionaries() if hasattr(dict_col, "unify_dictionaries") else dict_col
        dictionary = np.asarray(dict_col.dictionary.to_numpy(zero_copy_only=False), dtype=object)
        indices = dict_col.indices.to_numpy(zero_copy_only=False)
        dict_codes, ids = _codes(cust_ids, dictionary)
        order_codes = dict_codes[indices] if len(indices) else np.zeros(0, dtype=np.int64)
        paid_s = o.column("paid_s").to_numpy(zero_copy_only=False)
        amount = o.column("amount").to_numpy(zero_copy_only=False)
        status_code = o.column("status").to_numpy(zero_copy_only=False)
        del o, c
    else:
        with _no_gc():  # row tuples by the million
            o, c = _read_sqlite(conn, cutoff)
        t1 = time.perf_counter()
        cust_ids, reg_s = c["customer_id"], c["reg_s"]
        order_codes, ids = o["codes"].astype(np.int64), cust_ids
        if len(o["missing"]):  # orders of ids the customers table does not have: coded after them
            extra = pd.unique(o["missing"])
            ids = np.concatenate([cust_ids, extra])
            lost = order_codes < 0
            order_codes[lost] = len(cust_ids) + pd.Index(extra, dtype=object).get_indexer(o["missing"])
        paid_s, amount, status_code = o["paid_s"], o["amount"], o["status"]
        del o, c
    orders = pd.DataFrame(
        {
            "customer_id": order_codes,
            "paid_at": _seconds_to_datetime(paid_s),
            "amount": np.asarray(amount, dtype=float),
            "status": pd.Categorical.from_codes(np.asarray(status_code, dtype=np.int8), categories=list(STATUSES)),
        },
        copy=False,
    )
    customers = pd.DataFrame(
        {"customer_id": np.arange(len(cust_ids), dtype=np.int64), "registered_at": _seconds_to_datetime(reg_s)},
        copy=False,
    )
    frames = Frames(as_of, cutoff, orders, customers, np.asarray(ids, dtype=object), **feature_params(as_of))
    frames.seconds = {"read": round(t1 - t0, 2), "frames": round(time.perf_counter() - t1, 2)}
    return frames


def _seconds_to_datetime(secs) -> np.ndarray:
    """Epoch seconds (int or float with NaN for missing) -> datetime64[s] with NaT."""
    a = np.asarray(secs)
    if a.dtype.kind == "f":
        out = np.full(len(a), np.datetime64("NaT"), dtype="datetime64[s]")
        ok = np.isfinite(a)
        out[ok] = a[ok].astype(np.int64).astype("datetime64[s]")
        return out
    if a.dtype == object:
        return _seconds_to_datetime(pd.to_numeric(pd.Series(a), errors="coerce").to_numpy(dtype=float))
    return a.astype(np.int64).astype("datetime64[s]")


# ----------------------------------------------------------------------------- nightly features
@dataclass
class NightFeatures:
    """Every customer's features at the scoring cutoff of ``as_of`` (index: dense code)."""

    as_of: date
    cutoff: pd.Timestamp
    features: pd.DataFrame
    ids: np.ndarray  # code -> customer_id as stored
    source: str  # "aggregates" (customer_aggregates) or "orders" (fallback)
    seconds: dict = field(default_factory=dict)
    why: str = ""  # why the fallback was taken


_AGG_SQL = (
    "SELECT customer_id, {first}, {last}, paid_orders, paid_amount, purchase_days, "
    "window_orders, window_amount, returned_orders FROM customer_aggregates"
)


def aggregates_ready(conn: Connection, as_of: date, params: dict) -> tuple[bool, str]:
    """Is ``customer_aggregates`` at ``as_of`` with the window and day convention ``params``?"""
    from zoneinfo import ZoneInfo

    from tasks.tags import aggregates_lost, read_state

    try:
        state = read_state(conn, "aggregates")
    except Exception as exc:  # pragma: no cover - no tags schema
        return False, f"no aggregate state ({type(exc).__name__})"
    if state is None:
        return False, "customer_aggregates never built"
    if state["as_of"] != as_of:
        return False, f"customer_aggregates is at {state['as_of']}, not {as_of}"
    cutoff = scoring_cutoff(as_of)
    if state["cutoff"] is None or pd.Timestamp(state["cutoff"]) != cutoff:
        return False, "customer_aggregates has another cutoff"
    fp = (state.get("params") or {}).get("fingerprint") or {}
    if int(fp.get("loyal_window_days", -1)) != int(params["window_days"]):
        return False, f"customer_aggregates window {fp.get('loyal_window_days')} days, the model's {params['window_days']}"
    tz = fp.get("timezone")
    if tz is None:
        return False, "customer_aggregates has no timezone"
    off = ZoneInfo(tz).utcoffset(datetime(as_of.year, as_of.month, as_of.day, 12))
    if int(off.total_seconds() // 60) != int(params["day_offset_minutes"]):
        return False, f"customer_aggregates days are in {tz}, the model's offset {params['day_offset_minutes']} min"
    if aggregates_lost(conn, state):
        return False, "customer_aggregates was emptied (a database restart after a crash?) and is rebuilt by the next tags stage"
    return True, ""


def _read_aggregates_pg(conn: Connection) -> tuple[pa.Table, pa.Table]:
    sql = _AGG_SQL.format(
        first="CAST(EXTRACT(EPOCH FROM first_paid_at) AS BIGINT)", last="CAST(EXTRACT(EPOCH FROM last_paid_at) AS BIGINT)"
    )
    names = ["customer_id", "first_paid_s", "last_paid_s", "paid_orders", "paid_amount", "purchase_days", "window_orders", "window_amount", "returned_orders"]
    types = {n: pa.float64() for n in names[1:]}
    types["customer_id"] = pa.string()
    agg = _read_copy(copy_out(conn, sql, {}), names, types, block_size=64 << 20)
    cust = _read_copy(
        copy_out(conn, "SELECT customer_id, CAST(EXTRACT(EPOCH FROM registered_at) AS BIGINT) FROM customers", {}),
        ["customer_id", "reg_s"], {"customer_id": pa.string(), "reg_s": pa.float64()}, block_size=64 << 20,
    )
    return agg, cust


@contextmanager
def _no_gc():
    """Pause Python's cyclic garbage collector: a million row tuples from sqlite3 would
    trigger dozens of full collections over everything the process holds (measured: the
    fetch took 4x its CPU time with the collector on)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _read_aggregates_sqlite(conn: Connection) -> tuple[dict, dict]:
    """Column arrays of customer_aggregates and customers. SQLite turns the timestamps into
    epoch seconds itself (unixepoch: cheaper than returning text to parse); plain fetchall
    then one array per column is the cheapest way out of sqlite3."""
    with _no_gc():
        return _read_aggregates_sqlite_columns(conn)


def _read_aggregates_sqlite_columns(conn: Connection) -> tuple[dict, dict]:
    raw = conn.connection.driver_connection
    names = ["customer_id", "first_paid_s", "last_paid_s", "paid_orders", "paid_amount", "purchase_days", "window_orders", "window_amount", "returned_orders"]
    rows = raw.execute(_AGG_SQL.format(first="unixepoch(first_paid_at)", last="unixepoch(last_paid_at)")).fetchall()
    cols = list(zip(*rows)) if rows else [()] * len(names)
    del rows
    agg = {"customer_id": np.array(cols[0], dtype=object)}
    for name, values in zip(names[1:], cols[1:]):
        agg[name] = np.array(values, dtype=float)  # None -> NaN
    del cols
    rows = raw.execute("SELECT customer_id, unixepoch(registered_at) FROM customers").fetchall()
    ids, reg = zip(*rows) if rows else ((), ())
    cust = {"customer_id": np.array(ids, dtype=object), "reg_s": np.array(reg, dtype=float)}
    return agg, cust


def load_features(conn: Connection, as_of: date, model: TrainedModel | None = None, frames: Frames | None = None) -> NightFeatures:
    """The night's features of every customer (buyers and registered-only), for ``model``.

    From ``customer_aggregates`` when it is at ``as_of`` with the model's window and day
    convention: one row per customer read, never the orders.  Otherwise from the orders
    (``frames`` if already read, else read now): the same features, slower."""
    as_of = pd.Timestamp(as_of).date()
    cutoff = scoring_cutoff(as_of)
    params = feature_kwargs(model.config) if model is not None else feature_params(as_of)
    ok, why = aggregates_ready(conn, as_of, params)
    t0, c0 = time.perf_counter(), time.process_time()
    if not ok:
        log.debug("churn scoring reads the orders: %s", why)  # same scores, slower; the reasons are the aggregate state's
        frames = frames if frames is not None and frames.as_of == as_of else load_frames(conn, as_of)
        t1 = time.perf_counter()
        kw = {"day_offset_minutes": params["day_offset_minutes"], "window_days": params["window_days"]}
        feats = build_features(frames.orders, frames.customers, frames.cutoff, **kw)
        seconds = {"read": round(t1 - t0, 2), "features": round(time.perf_counter() - t1, 2)}
        return NightFeatures(as_of, cutoff, feats, frames.ids, "orders", seconds, why)
    agg_cols = ["first_paid_s", "last_paid_s", "paid_orders", "paid_amount", "purchase_days", "window_orders", "window_amount", "returned_orders"]
    if is_postgres(conn):
        a, c = _read_aggregates_pg(conn)
        t1, c1 = time.perf_counter(), time.process_time()
        cust_ids = np.asarray(c.column("customer_id").to_numpy(zero_copy_only=False), dtype=object)
        reg_s = c.column("reg_s").to_numpy(zero_copy_only=False)
        agg_ids = np.asarray(a.column("customer_id").to_numpy(zero_copy_only=False), dtype=object)
        agg_values = {k: a.column(k).to_numpy(zero_copy_only=False) for k in agg_cols}
        del a, c
    else:
        a, c = _read_aggregates_sqlite(conn)
        t1, c1 = time.perf_counter(), time.process_time()
        cust_ids, reg_s, agg_ids = c["customer_id"], c["reg_s"], a["customer_id"]
        agg_values = {k: a[k] for k in agg_cols}
        del a, c
    codes, ids = _codes(cust_ids, agg_ids)
    agg = pd.DataFrame(agg_values, index=pd.Index(codes, name="customer_id"), copy=False)
    customers = pd.DataFrame({"customer_id": np.arange(len(cust_ids), dtype=np.int64), "reg_s": np.asarray(reg_s, dtype=float)}, copy=False)
    feats = features_from_aggregates(agg, customers, cutoff, params["day_offset_minutes"], params["window_days"])
    seconds = {
        "read": round(t1 - t0, 2),
        "features": round(time.perf_counter() - t1, 2),
        "cpu": {"read": round(c1 - c0, 2), "features": round(time.process_time() - c1, 2)},
    }
    return NightFeatures(as_of, cutoff, feats, np.asarray(ids, dtype=object), "aggregates", seconds)


# ----------------------------------------------------------------------------- training
def train(frames: Frames, horizon_days: int | None = None, config: TrainConfig | dict | None = None) -> TrainedModel:
    """Train at the latest complete window of ``frames.as_of``."""
    s = get_settings().churn
    h = int(horizon_days or s.horizon_days)
    data = {"day_offset_minutes": frames.day_offset_minutes, "window_days": frames.window_days}
    if config is None:
        cfg = TrainConfig(kind=s.model_kind, **data)
    else:  # the data's own conventions win: the features must mean what the aggregate holds
        cfg = TrainConfig(**{**(config.to_dict() if isinstance(config, TrainConfig) else dict(config)), **data})
    return train_model(frames.orders, frames.customers, training_cutoff(frames.as_of, h), h, cfg)


def train_and_register(conn: Connection, frames: Frames, horizon_days: int | None = None, config=None) -> dict:
    """Train, register, decide promotion. Returns the decision with the timings."""
    t0 = time.perf_counter()
    model = train(frames, horizon_days, config)
    t1 = time.perf_counter()
    decision = registry.register(conn, model, frames.orders, frames.customers, trained_as_of=frames.as_of)
    out = decision.as_dict()
    out.update(
        train_cutoff=str(model.local_date(model.train_cutoff)),  # shop-local days, as the registry
        eval_cutoff=str(model.local_date(model.eval_cutoff)),
        horizon_days=int(model.horizon_days),
        n_train=model.n_train,
        seconds={"train": round(t1 - t0, 2), "register": round(time.perf_counter() - t1, 2)},
    )
    # for engineers: the flows log the outcome in the operator's words (log.churn.model), the
    # CLI prints reason_text; the registry's English sentence is not for the run log
    log.debug("churn model %s: %s", model.version, decision.reason)
    return out


# ----------------------------------------------------------------------------- scoring
@dataclass
class Scored:
    as_of: date
    model_version: str
    features: pd.DataFrame  # indexed by customer code
    probability: np.ndarray
    risk_band: np.ndarray
    seconds: dict = field(default_factory=dict)


def band_cuts() -> tuple[float, float]:
    s = get_settings().churn
    return (float(s.medium_risk), float(s.high_risk))


def encode_reasons(explained: pd.DataFrame) -> np.ndarray:
    """explain() output -> one compact JSON object per row:
    {"codes": [...], "signs": [...], <only the numbers those reasons use>}.

    Rows are grouped by their pattern (the codes and signs of the three slots: a few hundred
    at most, whatever the number of customers); each pattern's rows get the same JSON
    skeleton and only the numbers its reasons use, joined by pyarrow (a loop over patterns,
    never over customers)."""
    n = len(explained)
    if n == 0:
        return np.array([], dtype=object)
    all_codes = list(REASON_NUMBERS)
    code_ix = np.stack(
        [pd.Categorical(explained[f"reason_{i}"].to_numpy(dtype=object), categories=all_codes).codes.astype(np.int64) for i in range(1, TOP + 1)],
        axis=1,
    )  # -1 = no reason in the slot
    sign = np.stack([explained[f"reason_{i}_sign"].to_numpy().astype(np.int64) for i in range(1, TOP + 1)], axis=1)
    key = np.zeros(n, dtype=np.int64)
    for i in range(TOP):  # mixed radix: (code + 1, sign + 1) per slot
        key = key * (3 * (len(all_codes) + 1)) + (code_ix[:, i] + 1) * 3 + (np.clip(sign[:, i], -1, 1) + 1)
    pattern = pd.factorize(key)[0]
    order = np.argsort(pattern, kind="stable")
    bounds = np.flatnonzero(np.r_[True, pattern[order][1:] != pattern[order][:-1], True])

    texts: dict[str, pa.Array] = {}

    def text(col: str) -> pa.Array:  # the number as JSON text, null when unknown
        if col not in texts:
            v = pa.array(explained[col].to_numpy(dtype=float, na_value=np.nan), type=pa.float64(), from_pandas=True)
            if col != "monetary_mean":
                v = pc.cast(v, pa.int64(), safe=False)
            texts[col] = pc.cast(v, pa.string())
        return texts[col]

    out = np.empty(n, dtype=object)
    for lo, hi in zip(bounds[:-1], bounds[1:]):  # one pass per pattern, not per customer
        rows = order[lo:hi]
        r0 = rows[0]
        codes = [all_codes[c] for c in code_ix[r0] if c >= 0]
        signs = [str(int(sign[r0, i])) for i in range(TOP) if code_ix[r0, i] >= 0]
        prefix = '{"codes":[' + ",".join(f'"{c}"' for c in codes) + '],"signs":[' + ",".join(signs) + "]"
        wanted = {col for c in codes for col in REASON_NUMBERS[c]}
        cols = [col for col in NUMBER_COLUMNS if col in wanted]
        if not cols:
            out[rows] = prefix + "}"
            continue
        take = pa.array(rows)
        pieces = [pc.binary_join_element_wise(f',"{col}":', text(col).take(take), "") for col in cols]
        joined = pc.binary_join_element_wise(prefix, *pieces, "}", "", null_handling="replace", null_replacement="")
        out[rows] = joined.to_numpy(zero_copy_only=False)
    return out


def decode_reasons(reasons) -> pd.DataFrame:
    """Stored reasons JSON -> the columns render_reasons() reads (same row order)."""
    vals = pd.Series(reasons, dtype=object).fillna('{"codes":[],"signs":[]}').to_numpy(dtype=object)
    n = len(vals)
    out = pd.DataFrame(index=pd.RangeIndex(n))
    if n == 0:
        for i in range(1, TOP + 1):
            out[f"reason_{i}"] = pd.Series([], dtype=object)
            out[f"reason_{i}_sign"] = pd.Series([], dtype=np.int8)
        for col in NUMBER_COLUMNS:
            out[col] = pd.Series([], dtype=float)
        return out
    table = pajson.read_json(io.BytesIO("\n".join(vals).encode("utf-8")))  # C++ parser, one call
    codes = table.column("codes") if "codes" in table.column_names else None
    signs = table.column("signs") if "signs" in table.column_names else None
    for i in range(TOP):
        out[f"reason_{i + 1}"] = _list_slot(codes, i, n, object)
        out[f"reason_{i + 1}_sign"] = np.nan_to_num(_list_slot(signs, i, n, float), nan=0).astype(np.int8)
    for col in NUMBER_COLUMNS:
        if col in table.column_names:
            out[col] = table.column(col).to_numpy(zero_copy_only=False).astype(float)
        else:
            out[col] = np.nan
    return out


def _list_slot(col, i: int, n: int, kind) -> np.ndarray:
    """Element ``i`` of each list (None/NaN where the list is shorter)."""
    if col is None:
        return np.full(n, None if kind is object else np.nan, dtype=object if kind is object else float)
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy(zero_copy_only=False)
    flat = col.flatten().to_numpy(zero_copy_only=False)
    offsets = col.offsets.to_numpy()[:-1]
    has = lengths > i
    out = np.full(n, None if kind is object else np.nan, dtype=object if kind is object else float)
    out[has] = flat[(offsets[has] - offsets[0]) + i] if len(flat) else []
    return out


def reasons_text(reasons, lang: str | None = None) -> pd.Series:
    """Stored reasons JSON -> operator text ("no order for 75 days, usually buys every 20 days; ...")."""
    lang = lang or get_settings().language
    decoded = decode_reasons(reasons)
    return render_reasons(decoded, lang).reset_index(drop=True)


def score(conn: Connection, night: NightFeatures | Frames, model: TrainedModel, version: str | None = None) -> Scored:
    """Score every customer known at the cutoff (buyers and registered-only) into churn_scores.

    ``night``: ``load_features(conn, as_of, model)`` (or a ``Frames``: features from its
    orders).  ``churn_scores`` keeps the champion's current scores only: rows of other model
    versions, or of customers no longer scored, are removed in the same transaction.
    """
    version = version or model.version
    t0 = time.perf_counter()
    c1 = time.process_time()
    if isinstance(night, Frames):
        night = NightFeatures(night.as_of, night.cutoff, night.features(model), night.ids, "orders")
    feats = night.features
    t1 = time.perf_counter()
    prob = model.predict_proba(feats)
    t2, c2 = time.perf_counter(), time.process_time()
    explained = model.explain(feats, prob, cuts=band_cuts())
    reasons = encode_reasons(explained)
    t3, c3 = time.perf_counter(), time.process_time()
    now = utcnow().replace(microsecond=0)
    # Plain arrays, not a DataFrame: pandas 3 would turn every string column into an Arrow
    # string column and back (a million customer ids and reason texts, twice).
    bands = explained["risk_band"].to_numpy(dtype=object)
    cols = {
        "customer_id": np.asarray(night.ids, dtype=object)[feats.index.to_numpy()],
        "probability": np.round(prob, 6),
        "risk_band": bands,
        "reasons": reasons,
    }
    # Every row is rewritten anyway (scored_at moves), so replace the table's contents in
    # this transaction: emptied, then a plain bulk insert (COPY on PostgreSQL) beat an
    # upsert of a million rows.
    stale = conn.execute(
        sa.text("SELECT COUNT(*) FROM churn_scores WHERE model_version <> :v OR as_of IS NULL OR as_of <> :d"),
        {"v": version, "d": _date_param(conn, night.as_of)},
    ).scalar()
    written = replace_scores(conn, cols, version, now, night.as_of)
    removed = stale
    t4, c4 = time.perf_counter(), time.process_time()
    counts = pd.Series(pd.Categorical(bands, categories=["high", "medium", "low"])).value_counts()
    scored = Scored(night.as_of, version, feats, prob, bands)
    scored.seconds = {
        **night.seconds,
        "predict": round(t2 - t1, 3),
        "explain": round(t3 - t2, 2),
        "write": round(t4 - t3, 2),
        # CPU seconds of this process per step (the machine may be shared; PostgreSQL's own
        # work is in the server, not here)
        "cpu": {**night.seconds.get("cpu", {}), "predict": round(c2 - c1, 3), "explain": round(c3 - c2, 2), "write": round(c4 - c3, 2)},
    }
    scored.figures = {  # type: ignore[attr-defined]
        "customers": int(written),
        "removed": int(removed or 0),
        "bands": {b: int(counts.get(b, 0)) for b in ("high", "medium", "low")},
        "no_orders": int((feats["has_orders"].to_numpy() <= 0).sum()),
        "mean_probability": float(np.mean(prob)) if len(prob) else None,
        "source": night.source,
    }
    if night.why:
        scored.figures["source_why"] = night.why  # type: ignore[attr-defined]
    return scored


def replace_scores(conn: Connection, cols: dict, version: str, scored_at: datetime, as_of: date) -> int:
    """Replace churn_scores' contents inside the caller's transaction with the rows in
    ``cols`` (arrays customer_id, probability, risk_band, reasons; the model version, the
    scoring time and the business day are the same for every row).

    Rows go in primary-key order (SQLite's churn_scores is a WITHOUT ROWID table: appending
    in key order is the cheap case). PostgreSQL: TRUNCATE (no million dead tuples left for
    vacuum; transactional, the table is locked until commit), COPY of a CSV written by
    pyarrow into the table without its primary key, then the key built once from the sorted
    rows (~30 % faster than maintaining the B-tree row by row); a failure (e.g. a duplicate
    key) rolls back to yesterday's scores. SQLite: DELETE (the table is cleared whole) and
    one executemany of plain tuples (constants not formatted per row)."""
    ids = cols["customer_id"]
    n = len(ids)
    if n and not pd.Index(ids, dtype=object).is_monotonic_increasing:
        order = key_order(ids)
        cols = {k: np.asarray(v)[order] for k, v in cols.items()}
    stamp = pd.Timestamp(scored_at).strftime("%Y-%m-%d %H:%M:%S.%f")
    day = pd.Timestamp(as_of).date().isoformat()
    if is_postgres(conn):
        conn.exec_driver_sql("TRUNCATE churn_scores")
        if not n:
            return 0
        pkey = conn.exec_driver_sql(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'churn_scores'::regclass AND contype = 'p'"
        ).scalar()
        if pkey:
            conn.exec_driver_sql(f'ALTER TABLE churn_scores DROP CONSTRAINT "{pkey}"')
        table = pa.table(
            {
                "customer_id": pa.array(cols["customer_id"], type=pa.string()),
                "model_version": pa.repeat(pa.scalar(version, pa.string()), n),
                "probability": pa.array(np.asarray(cols["probability"], dtype=float)),
                "risk_band": pa.array(cols["risk_band"], type=pa.string()),
                "reasons": pa.array(cols["reasons"], type=pa.string()),
                "scored_at": pa.repeat(pa.scalar(stamp, pa.string()), n),
                "as_of": pa.repeat(pa.scalar(day, pa.string()), n),
            }
        )
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False))
        del table
        buf.seek(0)
        with conn.connection.driver_connection.cursor() as cur:
            cur.copy_expert(
                "COPY churn_scores (customer_id, model_version, probability, risk_band, reasons, scored_at, as_of) "
                "FROM STDIN WITH (FORMAT csv)",
                buf,
                size=1 << 20,
            )
        if pkey:
            conn.exec_driver_sql(f'ALTER TABLE churn_scores ADD CONSTRAINT "{pkey}" PRIMARY KEY (customer_id, model_version)')
        return n
    conn.exec_driver_sql("DELETE FROM churn_scores")
    if not n:
        return 0
    from itertools import repeat

    rows = zip(
        cols["customer_id"].tolist(),
        repeat(version, n),
        np.asarray(cols["probability"], dtype=float).tolist(),
        cols["risk_band"].tolist(),
        cols["reasons"].tolist(),
        repeat(stamp, n),
        repeat(day, n),
    )
    cur = conn.connection.driver_connection.cursor()
    with _no_gc():
        cur.executemany(
            "INSERT INTO churn_scores (customer_id, model_version, probability, risk_band, reasons, scored_at, as_of) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
    cur.close()
    return n


def _date_param(conn: Connection, d: date):
    return d if is_postgres(conn) else d.isoformat()


# ----------------------------------------------------------------------------- drift
def drift_check(conn: Connection, scored: Scored, model: TrainedModel, lang: str | None = None) -> dict:
    """PSI of the main features and the score vs the model's reference profile.

    Recorded in drift_checks (one row per day and model); a breach also goes to
    health_breaches (metric ``model_drift``), a Prefect event and an operator alert.
    """
    threshold = float(get_settings().churn.psi_threshold)
    profile = model.drift_profile or {}
    current = scored.features[[c for c in MAIN_FEATURES if c in scored.features.columns]].copy()
    current["score"] = scored.probability
    report = drift_report(profile, current, threshold=threshold)
    summary = drift_summary(report, threshold)
    row = pd.DataFrame(
        [
            {
                "as_of": scored.as_of,
                "model_version": scored.model_version,
                "psi": registry.dumps(summary["psi"]),
                "max_psi": summary["max_psi"],
                "threshold": threshold,
                "breached": bool(summary["breach"]),
                "breached_features": registry.dumps(summary["breached"]),
                "n": int(len(current)),
                "created_at": utcnow().replace(microsecond=0),
            }
        ]
    )
    row["created_at"] = row["created_at"].astype("datetime64[us]")
    # a re-run of the day with the same model: a breach recorded then was raised then (event + alert)
    raised = conn.execute(
        sa.text("SELECT 1 FROM drift_checks WHERE as_of = :d AND model_version = :v AND breached = :t"),
        {"d": _date_param(conn, scored.as_of), "v": scored.model_version, "t": True},
    ).first() is not None
    bulk_upsert(conn, "drift_checks", row, ["as_of", "model_version"], compare_ignore=("created_at",))
    out = {
        "breach": bool(summary["breach"]),
        "breached": summary["breached"],
        "max_psi": round(summary["max_psi"], 4),
        "psi": {k: round(v, 4) for k, v in summary["psi"].items()},
        "threshold": threshold,
        "message": summary["message"],
        "profiled": bool(profile),
    }
    if summary["breach"]:
        out["alerted"] = 0 if raised else _raise_drift(conn, scored, summary, threshold, lang)
    return out


def _raise_drift(conn: Connection, scored: Scored, summary: dict, threshold: float, lang: str | None) -> int:
    from tasks.alerts import enqueue_alert

    as_of = scored.as_of
    features = join_list(summary["breached"], lang)
    payload = {
        "as_of": str(as_of),
        "model_version": scored.model_version,
        "max_psi": round(summary["max_psi"], 4),
        "threshold": threshold,
        "breached": summary["breached"],
        "psi": {k: round(v, 4) for k, v in summary["psi"].items()},
    }
    now = utcnow().replace(microsecond=0)
    breach = pd.DataFrame(
        [
            {
                "as_of": as_of,
                "metric": "model_drift",
                "value": float(summary["max_psi"]),
                "threshold": threshold,
                "event": DRIFT_EVENT,
                "emitted_at": now,  # raised here (event + alert), not by the health stage
                "detail": registry.dumps(payload),
            }
        ]
    )
    breach["emitted_at"] = breach["emitted_at"].astype("datetime64[us]")
    bulk_upsert(conn, "health_breaches", breach, ["as_of", "metric"], on_conflict="nothing")
    try:  # best effort: only inside a Prefect run or with an API configured; never a failed night
        from prefect.context import FlowRunContext, TaskRunContext
        from prefect.events import emit_event
        from prefect.settings import PREFECT_API_URL

        if FlowRunContext.get() or TaskRunContext.get() or PREFECT_API_URL.value():
            emit_event(
                event=DRIFT_EVENT,
                resource={"prefect.resource.id": "userops.health"},
                payload=payload,
                id=uuid.uuid5(_EVENT_NS, f"{DRIFT_EVENT}|{as_of.isoformat()}|{scored.model_version}"),
            )
    except Exception as exc:  # pragma: no cover - depends on the Prefect environment
        log.warning("%s", t("log.churn.drift_event", lang, event=DRIFT_EVENT, error=type(exc).__name__))
    queued = enqueue_alert(
        "model_drift",
        t("churn.drift.title", lang, as_of=as_of, version=scored.model_version),
        t("churn.drift.body", lang, n=len(summary["breached"]), features=features, max_psi=f"{summary['max_psi']:.2f}", threshold=f"{threshold:g}"),
        severity="warning",
        subject=scored.model_version,
        day=as_of,
        payload=payload,
        conn=conn,
    )
    log.warning("%s", t("log.churn.drift", lang, as_of=as_of, version=scored.model_version, features=features,
                         max_psi=f"{summary['max_psi']:.2f}", threshold=f"{threshold:g}"))
    return int(queued)


# ----------------------------------------------------------------------------- the night
def needs_training(conn: Connection, as_of: date) -> tuple[bool, str]:
    """(train?, why): no champion yet, or the champion is older than retrain_every_days."""
    every = int(get_settings().churn.retrain_every_days)
    age = registry.champion_age_days(conn, as_of)
    if age is None:
        return True, "no_champion"
    champion = registry.load_champion(conn)
    if champion is not None and not features_compatible(champion):
        return True, "features_changed"
    if age >= every:
        return True, "stale"
    return False, "fresh"


def retrain(as_of: date | None = None, engine: Engine | None = None, frames: Frames | None = None) -> dict:
    """Train on the latest complete window and promote or keep as challenger (one transaction)."""
    from userops.clock import shop_today

    engine = engine or get_engine()
    as_of = pd.Timestamp(as_of or shop_today()).date()
    with engine.begin() as conn:
        frames = frames or load_frames(conn, as_of)
        out = train_and_register(conn, frames)
    out["as_of"] = str(as_of)
    out["read_seconds"] = frames.seconds
    return out


def score_night(as_of: date | None = None, engine: Engine | None = None, train_if_needed: bool = True, overlay: bool = True) -> dict:
    """The nightly stage without Prefect: (re)train when needed, score, drift-check, overlay."""
    from userops.clock import shop_today

    engine = engine or get_engine()
    as_of = pd.Timestamp(as_of or shop_today()).date()
    result: dict = {"as_of": str(as_of)}
    with engine.connect() as conn:
        want, why = needs_training(conn, as_of)
    frames = None
    if train_if_needed and want:  # only training reads the orders
        with engine.connect() as conn:
            frames = load_frames(conn, as_of)
        result["read_seconds"] = frames.seconds
        try:
            result["training"] = retrain(as_of, engine, frames)
            result["training"]["why"] = why
        except ValueError as exc:  # not enough history yet for a complete window
            result["training"] = {"error": localized(exc), "why": why}
            log.warning("%s", t("churn.train.failed", error=result["training"]["error"]))
    with engine.begin() as conn:
        model = registry.load_champion(conn)
        if model is None:
            result.update(scored=0, skipped=t("churn.no_model"))
            result["summary"] = summary_lines(result)
            return result
        scored = score(conn, load_features(conn, as_of, model, frames), model)
        result.update(model_version=scored.model_version, scoring=scored.figures, seconds=scored.seconds)
        result["drift"] = drift_check(conn, scored, model)
        if overlay:
            result["overlay"] = apply_overlay(conn, as_of)
    result["summary"] = summary_lines(result)
    return result


def apply_overlay(conn: Connection, as_of: date):
    """The tags engineer's at-risk overlay (tasks.tags.apply_at_risk_overlay), if present."""
    try:
        from tasks.tags import apply_at_risk_overlay
    except ImportError:  # pragma: no cover - tags not built
        return None
    return apply_at_risk_overlay(conn, as_of)


def summary_lines(result: dict, lang: str | None = None) -> list[str]:
    lines = []
    tr = result.get("training")
    if tr:
        if tr.get("error"):
            lines.append(t("churn.train.failed", lang, error=tr["error"]))
        else:
            lines.append(t("churn.train.done", lang, version=tr["version"], auc=registry._f(tr["metrics"].get("roc_auc")), brier=registry._f(tr["metrics"].get("brier"))))
            lines.append(tr["reason_text"])
    if result.get("skipped"):
        lines.append(result["skipped"])
    sc = result.get("scoring")
    if sc:
        b = sc["bands"]
        lines.append(t("churn.scored", lang, n=f"{sc['customers']:,}", version=result["model_version"], high=f"{b['high']:,}", medium=f"{b['medium']:,}", low=f"{b['low']:,}"))
    d = result.get("drift")
    if d:
        if d["breach"]:
            lines.append(t("churn.drift.line_breach", lang, features=join_list(d["breached"], lang), max_psi=f"{d['max_psi']:.2f}", threshold=f"{d['threshold']:g}"))
        else:
            lines.append(t("churn.drift.line_ok", lang, max_psi=f"{d['max_psi']:.2f}", threshold=f"{d['threshold']:g}"))
    return lines


register_messages(
    {
        "churn.no_model": {
            "zh-CN": "流失模型：尚无冠军模型（历史数据不足一个完整窗口），今晚不评分。",
            "en": "Churn model: no champion yet (not enough history for a complete window); nothing scored tonight.",
        },
        "churn.train.done": {
            "zh-CN": "流失模型已训练 {version}：ROC AUC {auc}，Brier {brier}",
            "en": "Churn model trained {version}: ROC AUC {auc}, Brier {brier}",
        },
        "churn.train.failed": {"zh-CN": "流失模型训练失败：{error}", "en": "Churn model training failed: {error}"},
        "churn.scored": {
            "zh-CN": "已为 {n} 位客户评分（模型 {version}）：高风险 {high}，中风险 {medium}，低风险 {low}",
            "en": "Scored {n} customers (model {version}): high risk {high}, medium {medium}, low {low}",
        },
        "churn.drift.line_ok": {
            "zh-CN": "模型漂移检查正常：最大 PSI {max_psi}（阈值 {threshold}）",
            "en": "Model drift check passed: max PSI {max_psi} (threshold {threshold})",
        },
        "churn.drift.line_breach": {
            "zh-CN": "⚠️ 模型漂移：{features} 的 PSI 超过阈值 {threshold}（最大 {max_psi}）",
            "en": "⚠️ Model drift: PSI of {features} beyond {threshold} (max {max_psi})",
        },
        # the run log's drift line (models.scoring._raise_drift), beside the summary's line_breach
        "log.churn.drift": {
            "zh-CN": "流失模型 {version} 在 {as_of} 发生漂移：{features} 的 PSI 超过阈值 {threshold}（最大 {max_psi}）；已记录健康异常并排队告警",
            "en": "Churn model {version} drifted on {as_of}: PSI of {features} beyond {threshold} (max {max_psi}); health breach recorded and alert queued",
        },
        # the drift event could not be emitted (models.scoring._raise_drift): automations on it do not run
        "log.churn.drift_event": {
            "zh-CN": "流失模型漂移：Prefect 事件 {event} 未能发出（{error}），依赖该事件的自动化不会触发；漂移告警照常排队",
            "en": "churn model drift: the Prefect event {event} could not be emitted ({error}), so automations on it do not run; the drift alert is queued as usual",
        },
        "churn.drift.title": {
            "zh-CN": "{as_of} 流失模型 {version} 发生漂移",
            "en": "Churn model {version} drifted on {as_of}",
        },
        "churn.drift.body": {
            "zh-CN": "{n} 个监控指标的 PSI 超过 {threshold}：{features}（最大 {max_psi}）。请检查数据来源，必要时执行 `userops model train` 重新训练。",
            "en": "{n} monitored inputs moved beyond PSI {threshold}: {features} (max {max_psi}). Check the data sources; retrain with `userops model train` if needed.",
        },
    }
)
