"""The data path as steps: extract a source table, validate it, load it.

Plain functions first (testable without Prefect), thin ``@task`` wrappers at the bottom
for the flows. One step handles a whole table batch, so a nightly run is tens of task
runs, not one per customer.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE  # batches are DataFrames: never hash them for a cache key
from sqlalchemy.engine import Engine

from tasks.extract import TABLE_PATHS, RestSource, SourceError, SqlSource, read_table_file
from tasks.load import LoadResult, all_ids, get_watermark, known_ids, load_outcome, quarantine_rejected, record_quarantine
from tasks.validate import (
    ID_COLUMN,
    KEY_COLUMNS,
    BatchRejected,
    ValidationOutcome,
    enforce_threshold,
    load_suites,
    validate_frame,
)
from userops.db import bulk_upsert, deferred_indexes, get_engine
from userops.settings import Settings, get_settings

log = logging.getLogger("userops.ingest")

# Load order matters: references point backwards (orders -> customers, items -> orders).
SOURCE_TABLES = ["customers", "orders", "order_items", "feedback", "events"]
OPTIONAL_TABLES = {"events"}  # a source without events is fine
REFERENCES = {
    "orders": {"customer_id": ("customers", "customer_id")},
    "order_items": {"order_id": ("orders", "order_id")},
    "feedback": {"customer_id": ("customers", "customer_id")},
    "events": {"customer_id": ("customers", "customer_id")},
}


def new_run_id(prefix: str = "run") -> str:
    """The Prefect flow run id when inside a flow, else a fresh id."""
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            return str(flow_run.id)
    except Exception:  # pragma: no cover - outside Prefect
        pass
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def source_name(table: str) -> str:
    return f"{TABLE_PATHS[table][0]}.{table}"


def make_source(table: str, settings: Settings | None = None):
    """The configured source for ``table`` (REST by default, SQL for customers if set)."""
    s = settings or get_settings()
    if table == "customers" and s.crm_sql.url:
        return SqlSource(s.crm_sql.url, s.crm_sql.customers_query or "SELECT * FROM customers")
    service, _path = TABLE_PATHS[table]
    cfg = s.crm if service == "crm" else s.orders
    if not cfg.url:
        raise SourceError(
            f"no URL configured for the {service} source: set USEROPS_{service.upper()}__URL "
            f"(or run `userops demo` to use the sample CRM and order system)"
        )
    return RestSource(
        cfg.url,
        pagination=cfg.pagination,
        page_size=cfg.page_size,
        token=cfg.token.get_secret_value() if cfg.token else None,
        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
        timeout=cfg.timeout_seconds,
        max_retries=cfg.max_retries,
        backoff=cfg.backoff_seconds,
    )


# ----------------------------------------------------------------------------- steps
def extract_table(table: str, full_refresh: bool = False, engine: Engine | None = None) -> tuple[pd.DataFrame, bool]:
    """Raw records changed since the watermark. Returns (frame, is_full_load)."""
    engine = engine or get_engine()
    since = None if full_refresh else get_watermark(engine, source_name(table))
    src = make_source(table)
    try:
        if isinstance(src, SqlSource):
            df = src.fetch(since)
        else:
            df = src.fetch(TABLE_PATHS[table][1], since)
    except SourceError as exc:
        if table in OPTIONAL_TABLES and "HTTP 404" in str(exc):
            log.info("%s: the source does not provide this table; skipped", table)
            return pd.DataFrame(), False
        raise
    log.info("%s: extracted %d rows (since %s)", table, len(df), since or "the beginning")
    return df, since is None


def reference_sets(table: str, typed_ids: dict[str, pd.Series], engine: Engine) -> dict[str, set]:
    """Existing ids the batch may refer to (warehouse rows only: referenced tables load first)."""
    refs = {}
    for col, (ref_table, ref_col) in REFERENCES.get(table, {}).items():
        if col in typed_ids:
            refs[col] = known_ids(engine, ref_table, ref_col, typed_ids[col])
    return refs


def validate_table(table: str, raw: pd.DataFrame, full_load: bool, engine: Engine | None = None, suites: dict | None = None, assume_tz: str = "UTC") -> ValidationOutcome:
    engine = engine or get_engine()
    suites = suites or load_suites()
    ids = {c: raw[c].astype("string").str.strip() for c in REFERENCES.get(table, {}) if c in raw.columns}
    refs = reference_sets(table, ids, engine)
    outcome = validate_frame(table, raw, suites, full_load=full_load, assume_tz=assume_tz, known_refs=refs)
    log.info("%s: %d rows read, %d good, %d quarantined %s", table, outcome.n_read, outcome.n_good, outcome.n_bad, outcome.rule_counts or "")
    return outcome


def load_table(outcome: ValidationOutcome, run_id: str, engine: Engine | None = None) -> LoadResult:
    """Enforce the bad-row limit, then load all-or-nothing (watermark last)."""
    engine = engine or get_engine()
    try:
        enforce_threshold(outcome)
    except BatchRejected:
        quarantine_rejected(engine, outcome, run_id)
        raise
    return load_outcome(engine, outcome, run_id, source_name(outcome.table))


def import_file(
    table: str,
    path: str | Path,
    mapping: dict[str, str] | None = None,
    engine: Engine | None = None,
    run_id: str | None = None,
    chunksize: int = 500_000,
    assume_tz: str | None = None,
    timings: dict | None = None,
    validate_in: str = "auto",
) -> LoadResult:
    """Import a CSV/Excel file: good rows loaded, bad rows quarantined, one transaction.

    The file is read and validated chunk by chunk ahead of the load: in a thread for a
    small file, in a separate process (a second core) for a CSV above
    ``PROCESS_VALIDATION_BYTES`` — ``validate_in`` = "thread" / "process" forces one.
    Raises FileImportError when the file cannot be processed at all."""
    engine = engine or get_engine()
    run_id = run_id or new_run_id("import")
    assume_tz = assume_tz or get_settings().timezone  # exports carry shop-local times
    suites = load_suites()
    clock = time.perf_counter
    t_read = clock()
    is_csv = str(path).lower().endswith((".csv", ".tsv", ".txt"))
    frames = read_table_file(path, table, mapping, chunksize=chunksize if is_csv else None)
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    read = loaded = bad = 0
    timings = timings if timings is not None else {}
    for k in ("read_s", "validate_s", "wait_s", "load_s", "index_s", "commit_s"):
        timings.setdefault(k, 0.0)
    timings["read_s"] += clock() - t_read
    if validate_in == "auto":
        validate_in = "process" if is_csv and Path(path).stat().st_size > PROCESS_VALIDATION_BYTES else "thread"
    if validate_in == "process" and is_csv:
        # the first chunk read above proved the file readable and its columns right
        frames = None
        chunks = _validated_chunks_in_process(engine, table, path, mapping, chunksize, assume_tz, timings)
    else:
        # the thread releases the GIL in pyarrow's parser; the database in its writes
        chunks = _validated_chunks(engine, table, frames, suites, assume_tz, timings)
    with engine.connect() as conn:
        with conn.begin():
            with deferred_indexes(conn, table) as initial_load, _prefetch(chunks) as outcomes:
                for outcome in _timed(outcomes, timings, "wait_s"):
                    t0 = clock()
                    # into an empty table every key is new (duplicates in the file were quarantined)
                    loaded += bulk_upsert(conn, table, outcome.good, KEY_COLUMNS[table], on_conflict="error" if initial_load else "update")
                    record_quarantine(conn, outcome, run_id)
                    timings["load_s"] += clock() - t0
                    read += outcome.n_read
                    bad += outcome.n_bad
                    log.info("%s: %d rows imported so far", table, read)
                t_index = clock()  # leaving the block rebuilds deferred indexes
            timings["index_s"] += clock() - t_index
            t_commit = clock()
        timings["commit_s"] += clock() - t_commit
        if conn.dialect.name == "sqlite" and read > 1_000_000:
            # a big import leaves gigabytes in the write-ahead log: fold them into the
            # database now, so the next night's first write does not pay for it
            t_ckpt = clock()
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            timings["checkpoint_s"] = timings.get("checkpoint_s", 0.0) + clock() - t_ckpt
    return LoadResult(table, read, loaded, bad, None)


def _validated_chunks(engine: Engine, table: str, frames, suites: dict, assume_tz: str, timings: dict):
    """Read and validate a file chunk by chunk; a key repeated across chunks is quarantined."""
    key_cols = KEY_COLUMNS[table]
    seen = np.array([], dtype=np.uint64)
    ref_cache: dict[str, np.ndarray] = {}  # a whole referenced table, read once per import
    for raw in _timed(frames, timings, "read_s"):
        t0 = time.perf_counter()
        refs = _chunk_refs(engine, table, raw, ref_cache)
        outcome = validate_frame(table, raw, suites, full_load=False, assume_tz=assume_tz, known_refs=refs)
        outcome, seen = _drop_cross_chunk_duplicates(outcome, raw, key_cols, seen)
        timings["validate_s"] += time.perf_counter() - t0
        yield outcome


PROCESS_VALIDATION_BYTES = 200 << 20  # ~2M order rows: worth a process start (~3 s of imports)


def _validated_chunks_in_process(engine: Engine, table: str, path, mapping, chunksize: int, assume_tz: str, timings: dict):
    """``_validated_chunks`` run in a child process (spawned: no inherited threads or locks),
    one chunk ahead of the loader. The child reads the referenced ids through its own
    connection; they are committed rows of other tables."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue(maxsize=1)
    url = engine.url.render_as_string(hide_password=False)
    proc = ctx.Process(target=_validation_worker, args=(url, table, str(path), mapping, chunksize, assume_tz, q),
                       name="userops-import-validate", daemon=True)
    proc.start()
    try:
        while True:
            try:
                kind, payload = q.get(timeout=1.0)
            except queue.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"{table}: the validation process stopped unexpectedly (exit code {proc.exitcode}); nothing was loaded") from None
                continue
            if kind == "error":
                raise _rebuild_error(*payload)
            outcome, child_timings = payload
            timings.update(child_timings)
            if kind == "end":
                return
            yield outcome
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=10)
        q.close()


def _validation_worker(url: str, table: str, path: str, mapping, chunksize: int, assume_tz: str, q) -> None:
    timings = {"read_s": 0.0, "validate_s": 0.0}
    try:
        engine = get_engine(url)
        frames = read_table_file(path, table, mapping, chunksize=chunksize)
        for outcome in _validated_chunks(engine, table, frames, load_suites(), assume_tz, timings):
            q.put(("chunk", (outcome, dict(timings))))
        q.put(("end", (None, dict(timings))))
    except BaseException as exc:  # sent back as (type, message, table, counts): always picklable
        q.put(("error", (type(exc).__name__, str(exc), getattr(exc, "table", table), getattr(exc, "counts", None))))
    finally:
        q.close()
        q.join_thread()


def _rebuild_error(kind: str, message: str, table: str, counts) -> Exception:
    from tasks.extract import FileImportError

    if kind == "FileImportError":
        return FileImportError(message)
    if kind == "BatchRejected":
        return BatchRejected(table, message, counts)
    if kind == "SuiteError":
        from tasks.validate import SuiteError

        return SuiteError(message)
    return RuntimeError(f"{table}: validation failed ({kind}): {message}")


@contextmanager
def _prefetch(items, depth: int = 1):
    """Iterate ``items`` in a background thread, at most ``depth`` items ahead. An error in
    the producer is raised in the consumer; leaving the block early stops the producer."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce():
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(("end", done))
        except BaseException as exc:  # handed to the consumer
            q.put(("error", exc))

    worker = threading.Thread(target=produce, name="userops-import-reader", daemon=True)
    worker.start()

    def consume():
        while True:
            kind, item = q.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item

    try:
        yield consume()
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                pass
            worker.join(timeout=0.1)


def _timed(frames, timings: dict, key: str):
    """Iterate ``frames``, adding the time spent producing each to ``timings[key]``."""
    it = iter(frames)
    while True:
        t0 = time.perf_counter()
        item = next(it, None)
        timings[key] += time.perf_counter() - t0
        if item is None:
            return
        yield item


def _chunk_refs(bind, table: str, raw: pd.DataFrame, cache: dict[str, np.ndarray]) -> dict:
    """Ids the chunk's references may point to. A big chunk reads the referenced table's ids
    once for the whole import (it does not change while another table imports); a small
    one asks for just its own ids."""
    refs = {}
    for col, (ref_table, ref_col) in REFERENCES.get(table, {}).items():
        if col not in raw.columns:
            continue
        if col in cache:
            refs[col] = cache[col]
            continue
        cand = raw[col].astype("string").str.strip()
        if cand.nunique() > 50_000:
            cache[col] = refs[col] = np.asarray(all_ids(bind, ref_table, ref_col), dtype=object)
        else:
            refs[col] = known_ids(bind, ref_table, ref_col, cand)
    return refs


def _drop_cross_chunk_duplicates(outcome: ValidationOutcome, raw: pd.DataFrame, key_cols: list[str], seen: np.ndarray):
    """A key already loaded from an earlier chunk of the same file is a duplicate too.

    ``seen`` is the sorted array of key hashes loaded so far: membership is a binary search
    and the merge a stable sort of two sorted runs (linear), so 10M keys stay cheap."""
    if outcome.good.empty:
        return outcome, seen
    keys = outcome.good[key_cols[0]] if len(key_cols) == 1 else outcome.good[key_cols].astype("string")
    h = pd.util.hash_pandas_object(keys, index=False).to_numpy()
    if len(seen):
        pos = np.searchsorted(seen, h).clip(max=len(seen) - 1)
        dup = seen[pos] == h
    else:
        dup = np.zeros(len(h), dtype=bool)
    seen = np.concatenate([seen, np.sort(h[~dup])])
    seen.sort(kind="stable")
    if not dup.any():
        return outcome, seen
    from tasks.validate import record_hashes

    rows = outcome.good[dup]
    rec = rows.astype("string")
    extra = pd.DataFrame(
        {
            "source_id": rows[ID_COLUMN[outcome.table]].to_numpy(),
            "rule": f"duplicate_{ID_COLUMN[outcome.table]}",
            "reason": f"{ID_COLUMN[outcome.table]} appears more than once in the file",
            "record": [pd.Series(r).to_json(force_ascii=False) for r in rec.to_dict("records")],
            "record_hash": record_hashes(rec).to_numpy(),
        }
    )
    outcome.good = outcome.good[~dup].reset_index(drop=True)
    outcome.bad = pd.concat([outcome.bad, extra], ignore_index=True)
    return outcome, seen


# ----------------------------------------------------------------------------- tasks
@task(name="check-expectation-suites", cache_policy=NO_CACHE)
def check_suites_task() -> list[str]:
    """Fail the run at start when a suite file is missing or broken."""
    return sorted(load_suites())


@task(name="extract", task_run_name="extract-{table}", cache_policy=NO_CACHE)
def extract_task(table: str, full_refresh: bool = False) -> tuple[pd.DataFrame, bool]:
    return extract_table(table, full_refresh)


@task(name="validate", task_run_name="validate-{table}", cache_policy=NO_CACHE)
def validate_task(table: str, raw: pd.DataFrame, full_load: bool) -> ValidationOutcome:
    return validate_table(table, raw, full_load)


@task(name="load", task_run_name="load-{table}", cache_policy=NO_CACHE)
def load_task(table: str, outcome: ValidationOutcome, run_id: str) -> dict:
    return asdict(load_table(outcome, run_id))
