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
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE  # batches are DataFrames: never hash them for a cache key
from sqlalchemy.engine import Engine

from tasks.extract import TABLE_PATHS, RestSource, SourceError, SqlSource, canonical_values, malformed_rows, read_table_file
from tasks.load import LoadResult, get_watermark, known_ids, record_quarantine, set_watermark
from tasks.quarantine import settle_quarantine
from tasks.validate import (
    ID_COLUMN,
    KEY_COLUMNS,
    BatchRejected,
    ValidationOutcome,
    ValidationProcessDied,
    enforce_threshold,
    load_suites,
    validate_frame,
)
from userops.clock import utcnow
from userops.db import after_bulk_load, bulk_upsert, deferred_indexes, get_engine
from userops.i18n import t
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
        return SqlSource(s.crm_sql.url, s.crm_sql.customers_query or "SELECT * FROM customers", s.crm_sql.naive_timezone)
    service, _path = TABLE_PATHS[table]
    cfg = s.crm if service == "crm" else s.orders
    if not cfg.url:
        raise SourceError(key="source.no_url", service=service, env=service.upper())
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


def source_settings(table: str, settings: Settings | None = None):
    """The settings group of ``table``'s source (``crm_sql``, ``crm`` or ``orders``): its
    ``naive_timezone`` and ``overlap_minutes``."""
    s = settings or get_settings()
    if table == "customers" and s.crm_sql.url:
        return s.crm_sql
    return s.crm if TABLE_PATHS[table][0] == "crm" else s.orders


# ----------------------------------------------------------------------------- steps
def extract_chunks(table: str, since, rows: int, settings: Settings | None = None):
    """Raw records of ``table`` changed since ``since`` as DataFrames of about ``rows`` rows,
    known zh-CN values mapped (状态 已支付 -> paid) as a file import maps them."""
    src = make_source(table, settings)
    frames = src.chunks(since, rows) if isinstance(src, SqlSource) else src.chunks(TABLE_PATHS[table][1], since, rows)
    return (canonical_values(df) for df in frames)


def ingest_table(
    table: str,
    run_id: str,
    full_refresh: bool = False,
    engine: Engine | None = None,
    chunk_rows: int | None = None,
    timings: dict | None = None,
    validate_in: str = "auto",
) -> LoadResult:
    """A night's batch of one source table: extract -> validate -> load, chunk by chunk.

    The source is read page by page into chunks of ``chunk_rows`` (setting
    ``validation.chunk_rows``, 500k) in one thread, each chunk validated in a second one
    (the import's ``_validated_chunks``: a key repeated in a later chunk is quarantined) and
    loaded here, so at most a few chunks are in memory whatever the table's size. The
    batch is still all-or-nothing: every chunk goes into ONE transaction (secondary indexes
    deferred on an initial load), and the rules about the whole batch are judged at its
    end, inside that transaction — an empty full extract, and the bad-row share
    (``enforce_threshold``): above the limit the transaction rolls back and only the
    quarantined rows are kept, in their own transaction. A source that fails mid-table
    rolls everything back too.

    The watermark moves in the committing transaction only, to the latest ``updated_at``
    (events: ``occurred_at``) of the rows *accepted* — a quarantined record stamped in the
    future does not move it — and never past the time this extract started (a record
    stamped a few minutes ahead, inside the validation's clock-skew tolerance, would hide
    the changes made in between). A full refresh sets it to what it read, even backwards.
    An incremental extract asks for the rows changed since the watermark minus the
    source's ``overlap_minutes`` (default 10): rows committed late with an earlier stamp,
    or stamped by a clock a little behind, are still read. Re-reading is harmless: the
    upsert rewrites only changed rows, and a record already in quarantine is kept once and
    not counted again (nor against the bad-row limit); the read and loaded counts include
    the good rows read again. Naive times from the source are read in its
    ``naive_timezone`` (default UTC). ``timings`` gets extract/validate/load seconds (the
    three overlap in time) and the wall time.

    ``validate_in="process"`` extracts and validates in a spawned process instead, as the
    import does with a big file (the JSON parsing and validation there, the load here: threads
    share one interpreter lock). "auto" picks it for a full load the source says has more
    than ``PROCESS_VALIDATION_ROWS`` rows — off by default: not measured at 1M members yet."""
    engine = engine or get_engine()
    chunk_rows = chunk_rows or get_settings().validation.chunk_rows
    timings = timings if timings is not None else {}
    for k in ("extract_s", "validate_s", "load_s", "wait_s", "index_s", "commit_s"):
        timings.setdefault(k, 0.0)
    t_start = time.perf_counter()
    source = source_name(table)
    settings = get_settings()
    src_cfg = source_settings(table, settings)
    started = utcnow()  # the watermark never passes the start of the extract
    watermark = None if full_refresh else get_watermark(engine, source)
    since = None if watermark is None else watermark - timedelta(minutes=src_cfg.overlap_minutes)
    full_load = since is None
    assume_tz = src_cfg.naive_timezone
    suites = load_suites()
    bad_rows = _Spill()
    totals = _BatchTotals(table)
    try:
        if validate_in == "auto":
            big = PROCESS_VALIDATION_ROWS is not None and full_load and (_size_hint(table, since, settings) or 0) > PROCESS_VALIDATION_ROWS
            validate_in = "process" if big else "thread"
        timings["validated_in"] = validate_in
        columns: list = []
        if validate_in == "process":
            reader = nullcontext(None)
            chunks = _validated_chunks_in_process(engine, table, partial(_source_frames, table, since, chunk_rows, settings), assume_tz, timings,
                                                  read_key="validate_wait_s", whole_table=full_load, chunk_rows=chunk_rows)
        else:
            reader = _prefetch(_source_frames(table, since, chunk_rows, settings, timings, prefetch=False))
        with reader as raw_chunks:
            if raw_chunks is not None:
                chunks = _validated_chunks(engine, table, _note_columns(raw_chunks, columns), suites, assume_tz, timings,
                                           read_key="validate_wait_s", whole_table=full_load)
            with engine.connect() as conn:
                with conn.begin():
                    with deferred_indexes(conn, table) as initial_load, _prefetch(chunks) as outcomes:
                        for outcome in _timed(outcomes, timings, "wait_s"):
                            t0 = time.perf_counter()
                            # into an empty table every key is new (repeated keys were quarantined)
                            # (a newer version of a key loaded from an earlier chunk: upserted, the key counted once)
                            totals.loaded += bulk_upsert(conn, table, outcome.good, KEY_COLUMNS[table], on_conflict="error" if initial_load and not outcome.replaced else "update") - outcome.replaced
                            timings["load_s"] += time.perf_counter() - t0
                            totals.add(outcome, _already_quarantined(conn, table, outcome.bad))
                            bad_rows.add(outcome.bad)
                            if totals.chunks > 1:
                                log.info("%s", t("log.ingest.progress", table=table, n=f"{totals.n_read:,}"))
                        if totals.n_read == 0 and full_load:
                            # the whole batch is empty: the table rules decide (empty_extract)
                            validate_frame(table, pd.DataFrame(columns=columns), suites, full_load=True)
                        enforce_threshold(totals)  # rolls the batch back when above the limit
                        t_index = time.perf_counter()
                    timings["index_s"] += time.perf_counter() - t_index
                    t0 = time.perf_counter()
                    for part in bad_rows:
                        record_quarantine(conn, _bad_outcome(table, part), run_id, assume_tz)
                    # records held for a reference that is here now (an order of a customer
                    # fixed at the source): their own updated_at did not move, so the
                    # incremental extract will not bring them again
                    totals.released = settle_quarantine(conn, table, run_id, suites, REFERENCES.get(table, {}))["released"]
                    mark = totals.max_updated_at if totals.max_updated_at is None else min(totals.max_updated_at, started)
                    set_watermark(conn, source, mark, run_id, full_refresh=full_load)
                    timings["load_s"] += time.perf_counter() - t0
                    t_commit = time.perf_counter()
                timings["commit_s"] += time.perf_counter() - t_commit
                after_bulk_load(conn, table, totals.n_read, totals.loaded, timings)
    except BatchRejected:
        with engine.begin() as conn:  # the operator sees what to fix; nothing else is kept
            for part in bad_rows:
                record_quarantine(conn, _bad_outcome(table, part), run_id, assume_tz)
        raise
    except SourceError as exc:
        if table in OPTIONAL_TABLES and exc.values.get("status") == 404:
            log.info("%s", t("log.ingest.not_provided", table=table))
            return LoadResult(table, 0, 0, 0, None)
        raise
    finally:
        bad_rows.close()
        timings["wall_s"] = time.perf_counter() - t_start
        timings["chunks"] = totals.chunks
    # the operator's line in the run log (the CLI's import line); the figures for engineers at debug
    log.info("%s", t("ingest.line", table=table, read=f"{totals.n_read:,}", loaded=f"{totals.loaded:,}", quarantined=f"{totals.n_bad:,}"))
    log.debug("%s: %d rows read, %d loaded, %d quarantined %s, %d released from quarantine (since %s; %d chunk(s) validated in a %s, extract %.1fs, validate %.1fs, load %.1fs, wall %.1fs)",
             table, totals.n_read, totals.loaded, totals.n_bad, dict(totals.rule_counts) or "", totals.released, since or "the beginning",
             totals.chunks, validate_in, timings["extract_s"], timings["validate_s"], timings["load_s"], timings["wall_s"])
    return LoadResult(table, totals.n_read, totals.loaded, totals.n_bad, mark, totals.released, totals.superseded)


# A full load of more rows than this is validated in a process ("auto"); None: never. The
# thread pipeline is what was measured at 1M members (docs/operations.md).
PROCESS_VALIDATION_ROWS: int | None = None


def _size_hint(table: str, since, settings: Settings) -> int | None:
    """Rows the source says the batch has (one tiny request), or None when it cannot say."""
    src = make_source(table, settings)
    if isinstance(src, SqlSource):
        return None
    try:
        return src.size_hint(TABLE_PATHS[table][1], since)
    except SourceError:
        return None  # the extract itself will report it


def _source_frames(table: str, since, chunk_rows: int, settings: Settings, timings: dict, prefetch: bool = True):
    """The batch's raw chunks, timed into ``timings["extract_s"]``; with ``prefetch`` read
    one chunk ahead in a thread (waiting on the source overlaps validating)."""
    timings.setdefault("extract_s", 0.0)
    frames = _timed(extract_chunks(table, since, chunk_rows, settings), timings, "extract_s")
    if not prefetch:
        yield from frames
        return
    with _prefetch(frames) as ahead:
        yield from ahead


@dataclass
class _BatchTotals:
    """What the whole batch's rules are judged on (``enforce_threshold`` reads these)."""

    table: str
    n_read: int = 0
    n_bad: int = 0
    loaded: int = 0
    chunks: int = 0
    released: int = 0  # quarantined earlier, loaded tonight (settle_quarantine)
    superseded: int = 0  # older versions (and copies) of a key the batch sent again: read = loaded + quarantined + superseded
    max_updated_at: object = None  # of the accepted rows (``validate_frame``)
    rule_counts: dict = field(default_factory=dict)

    def add(self, outcome: ValidationOutcome, repeated: set | frozenset = frozenset()) -> None:
        """``repeated``: record hashes of bad records kept in quarantine before (re-read by
        the extract's overlap): counted the night they came, not again."""
        self.chunks += 1
        self.n_read += outcome.n_read - len(repeated)
        self.n_bad += outcome.n_bad - len(repeated)
        self.superseded += outcome.n_superseded
        if len(outcome.bad):
            new = outcome.bad[~outcome.bad["record_hash"].isin(repeated)] if repeated else outcome.bad
            for rule, n in new["rule"].value_counts().items():
                self.rule_counts[rule] = self.rule_counts.get(rule, 0) + int(n)
        if outcome.max_updated_at is not None and (self.max_updated_at is None or outcome.max_updated_at > self.max_updated_at):
            self.max_updated_at = outcome.max_updated_at


def _already_quarantined(conn, table: str, bad: pd.DataFrame) -> set:
    """Record hashes of ``bad`` already in quarantine: the same record as received before
    (an incremental extract re-reads the minutes before its watermark). Looked up by
    (source_table, record_hash): the quarantine's unique index, 1,000 hashes a query."""
    if bad is None or bad.empty:
        return set()
    import sqlalchemy as sa

    hashes = sorted(set(bad["record_hash"].dropna()))
    query = sa.text("SELECT DISTINCT record_hash FROM quarantine WHERE source_table = :t AND record_hash IN :h").bindparams(
        sa.bindparam("h", expanding=True))
    found: set = set()
    for i in range(0, len(hashes), 1000):
        found.update(r[0] for r in conn.execute(query, {"t": table, "h": hashes[i : i + 1000]}))
    return found


def _bad_outcome(table: str, bad: pd.DataFrame) -> ValidationOutcome:
    return ValidationOutcome(table, pd.DataFrame(), bad, len(bad))


class _Spill:
    """Frames kept until the end of a batch: in memory up to ``limit`` rows, then pickled to
    a temporary directory (a batch of mostly bad rows must not hold them all in memory)."""

    def __init__(self, limit: int = 200_000):
        self.limit, self.rows, self.frames, self.files, self.dir = limit, 0, [], [], None

    def add(self, df: pd.DataFrame) -> None:
        if df is None or df.empty:
            return
        self.frames.append(df)
        self.rows += len(df)
        if self.rows > self.limit:
            import tempfile

            self.dir = self.dir or tempfile.mkdtemp(prefix="userops-bad-rows-")
            path = Path(self.dir) / f"{len(self.files)}.pkl"
            pd.concat(self.frames, ignore_index=True).to_pickle(path)
            self.files.append(path)
            self.frames, self.rows = [], 0

    def __iter__(self):
        for path in self.files:
            yield pd.read_pickle(path)
        yield from self.frames

    def close(self) -> None:
        if self.dir:
            import shutil

            shutil.rmtree(self.dir, ignore_errors=True)
        self.frames, self.files, self.dir = [], [], None


def _note_columns(frames, columns: list):
    """Pass ``frames`` through, keeping the first one's column names in ``columns``."""
    for df in frames:
        if not columns:
            columns.extend(df.columns)
        yield df


def import_file(
    table: str,
    path: str | Path,
    mapping: dict[str, str] | None = None,
    engine: Engine | None = None,
    run_id: str | None = None,
    chunksize: int | None = None,
    assume_tz: str | None = None,
    timings: dict | None = None,
    validate_in: str = "auto",
    date_order: str | None = None,
) -> LoadResult:
    """Import a CSV/Excel file: good rows loaded, bad rows quarantined, one transaction.
    ``date_order`` ("dmy" / "mdy"): how to read dates written day and month first
    (01/11/2026); unset, one that reads both ways is quarantined (``tasks.validate._to_datetime``).

    The file is read and validated chunk by chunk ahead of the load: in a thread for a
    small file, in a separate process (a second core) for a CSV above
    ``PROCESS_VALIDATION_BYTES`` — ``validate_in`` = "thread" / "process" forces one.
    Raises FileImportError when the file cannot be processed at all."""
    engine = engine or get_engine()
    chunksize = chunksize or get_settings().validation.chunk_rows  # a CSV's rows per chunk
    run_id = run_id or new_run_id("import")
    assume_tz = assume_tz or get_settings().timezone  # exports carry shop-local times
    suites = load_suites()
    clock = time.perf_counter
    t_read = clock()
    is_csv = str(path).lower().endswith((".csv", ".tsv", ".txt"))
    frames = read_table_file(path, table, mapping, chunksize=chunksize if is_csv else None)
    if isinstance(frames, pd.DataFrame):
        frames = [frames]
    read = loaded = bad = superseded = 0
    timings = timings if timings is not None else {}
    for k in ("read_s", "validate_s", "wait_s", "load_s", "index_s", "commit_s"):
        timings.setdefault(k, 0.0)
    timings["read_s"] += clock() - t_read
    if validate_in == "auto":
        validate_in = "process" if is_csv and Path(path).stat().st_size > PROCESS_VALIDATION_BYTES else "thread"
    if validate_in == "process" and is_csv:
        # the first chunk read above proved the file readable and its columns right
        frames = None
        chunks = _validated_chunks_in_process(engine, table, partial(_file_frames, str(path), table, mapping, chunksize), assume_tz, timings,
                                              date_order=date_order, chunk_rows=chunksize)
    else:
        # the thread releases the GIL in pyarrow's parser; the database in its writes
        chunks = _validated_chunks(engine, table, frames, suites, assume_tz, timings, date_order=date_order)
    with engine.connect() as conn:
        with conn.begin():
            with deferred_indexes(conn, table) as initial_load, _prefetch(chunks) as outcomes:
                for outcome in _timed(outcomes, timings, "wait_s"):
                    t0 = clock()
                    # into an empty table every key is new (duplicates in the file were quarantined)
                    loaded += bulk_upsert(conn, table, outcome.good, KEY_COLUMNS[table], on_conflict="error" if initial_load and not outcome.replaced else "update") - outcome.replaced
                    superseded += outcome.n_superseded
                    record_quarantine(conn, outcome, run_id, assume_tz)
                    timings["load_s"] += clock() - t0
                    read += outcome.n_read
                    bad += outcome.n_bad
                    log.info("%s", t("log.import.progress", table=table, n=f"{read:,}"))
                t_index = clock()  # leaving the block rebuilds deferred indexes
            timings["index_s"] += clock() - t_index
            # earlier quarantined records of this table whose customer (order) is here now
            released = settle_quarantine(conn, table, run_id, suites, REFERENCES.get(table, {}))["released"]
            t_commit = clock()
        timings["commit_s"] += clock() - t_commit
        after_bulk_load(conn, table, read, loaded, timings)
    return LoadResult(table, read, loaded, bad, None, released, superseded)


def _validated_chunks(engine: Engine, table: str, frames, suites: dict, assume_tz: str, timings: dict,
                      read_key: str = "read_s", whole_table: bool | None = None, date_order: str | None = None):
    """Read and validate a file (or a night's batch) chunk by chunk; a key repeated across
    chunks is quarantined, and so is a file's row the reader left out for its field count
    (``malformed_row``). ``whole_table``: see ``_chunk_refs``; ``date_order``: see
    ``tasks.validate.normalize``."""
    key_cols = KEY_COLUMNS[table]
    seen = np.array([], dtype=np.uint64)
    ref_cache: dict[str, np.ndarray] = {}  # a whole referenced table, read once per batch
    dup_rule = _duplicate_rule(suites, table)
    timings.setdefault(read_key, 0.0)
    for raw in _timed(frames, timings, read_key):
        t0 = time.perf_counter()
        refs = _chunk_refs(engine, table, raw, ref_cache, whole_table)
        malformed = malformed_rows(raw)
        outcome = validate_frame(table, raw, suites, full_load=False, assume_tz=assume_tz, known_refs=refs, date_order=date_order)
        outcome, seen = _drop_cross_chunk_duplicates(outcome, raw, key_cols, seen, dup_rule)
        if malformed:
            _add_malformed(outcome, malformed)
        timings["validate_s"] += time.perf_counter() - t0
        yield outcome


def _add_malformed(outcome: ValidationOutcome, rows: list[dict]) -> None:
    """A file's rows with the wrong number of fields, quarantined as ``malformed_row``: the
    reason names the line and the counts; the record keeps every field as received (under
    the header's names, extras as ``_extra_N``; ``quarantine show`` masks them)."""
    import json

    from userops.i18n import t

    lang = get_settings().language
    id_col = ID_COLUMN[outcome.table]
    texts = np.asarray([r["text"] for r in rows], dtype=object)
    extra = pd.DataFrame(
        {
            "source_id": [(r.get("record") or {}).get(id_col) or None for r in rows],
            "rule": "malformed_row",
            "reason": [t("quarantine.reason.malformed_row", lang, line=r["line"] or "?", found=r["found"], expected=r["expected"]) for r in rows],
            "record": [json.dumps(r.get("record") or {"_text": r["text"]}, ensure_ascii=False) for r in rows],
            "record_hash": [f"{h:016x}" for h in pd.util.hash_array(texts)],
        }
    )
    outcome.bad = extra if outcome.bad.empty else pd.concat([outcome.bad, extra], ignore_index=True)
    outcome.n_read += len(rows)
    outcome.rule_counts["malformed_row"] = outcome.rule_counts.get("malformed_row", 0) + len(rows)


def _duplicate_rule(suites: dict, table: str) -> tuple[str, str] | None:
    """(rule, reason) of the suite's uniqueness expectation, in the operator's language."""
    lang = get_settings().language
    for exp in suites[table].expectations:
        if exp.expectation_type in ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"):
            meta = exp.meta or {}
            if meta.get("rule"):
                return meta["rule"], meta.get(lang) or meta.get("en") or meta["rule"]
    return None


PROCESS_VALIDATION_BYTES = 200 << 20  # ~2M order rows: worth a process start (~3 s of imports)


def _validated_chunks_in_process(engine: Engine, table: str, open_frames, assume_tz: str, timings: dict,
                                 read_key: str = "read_s", whole_table: bool | None = None, date_order: str | None = None,
                                 chunk_rows: int | None = None):
    """``_validated_chunks`` run in a child process (spawned: no inherited threads or locks),
    one chunk ahead of the loader. ``open_frames(timings)`` (picklable: a ``partial`` of a
    module function) gives the raw chunks there — a file's or a source's. The child reads
    the referenced ids through its own connection; they are committed rows of other tables.
    A child that ends without a word (killed, usually for memory) is ValidationProcessDied,
    naming ``chunk_rows`` (the rows per chunk) and the setting that lowers it."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue(maxsize=1)
    url = engine.url.render_as_string(hide_password=False)
    proc = ctx.Process(target=_validation_worker, args=(url, table, open_frames, assume_tz, read_key, whole_table, q, date_order),
                       name="userops-validate", daemon=True)
    proc.start()
    try:
        while True:
            try:
                kind, payload = q.get(timeout=1.0)
            except queue.Empty:
                if not proc.is_alive():
                    raise ValidationProcessDied(table, proc.exitcode, chunk_rows or get_settings().validation.chunk_rows) from None
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


def _file_frames(path: str, table: str, mapping, chunksize: int, timings: dict):
    return read_table_file(path, table, mapping, chunksize=chunksize)


def _validation_worker(url: str, table: str, open_frames, assume_tz: str, read_key: str, whole_table, q, date_order: str | None = None) -> None:
    timings = {read_key: 0.0, "validate_s": 0.0}
    try:
        engine = get_engine(url)
        frames = open_frames(timings)
        for outcome in _validated_chunks(engine, table, frames, load_suites(), assume_tz, timings, read_key, whole_table, date_order):
            q.put(("chunk", (outcome, dict(timings))))
        q.put(("end", (None, dict(timings))))
    except BaseException as exc:  # sent back as (type, message, table, counts, catalogue key, values): picklable
        key, values = getattr(exc, "key", None), getattr(exc, "values", None)
        try:
            import pickle

            pickle.dumps(values)
        except Exception:
            key, values = None, None
        q.put(("error", (type(exc).__name__, str(exc), getattr(exc, "table", table), getattr(exc, "counts", None), key, values)))
    finally:
        q.close()
        q.join_thread()


def _rebuild_error(kind: str, message: str, table: str, counts, key: str | None = None, values: dict | None = None) -> Exception:
    """The child's error as the same kind, with its catalogue text (``localized``) kept."""
    from tasks.extract import FileImportError

    values = dict(values or {}) if key else {}
    if kind == "FileImportError":
        return FileImportError(message, key, **values)
    if kind == "SourceError":
        return SourceError(message, key, **values)
    if kind == "BatchRejected":
        values.pop("table", None)
        return BatchRejected(table, message, counts, key, **values)
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


def _chunk_refs(bind, table: str, raw: pd.DataFrame, cache: dict[str, np.ndarray], whole_table: bool | None = None) -> dict:
    """Ids the chunk's references may point to (the chunk's own ids that exist).

    With ``whole_table`` (a first night; by default: a chunk of more than 50k distinct ids)
    every id of the referenced table is read once per batch, kept as a sorted array of
    64-bit hashes (80 MB for 10M orders, where the ids as Python strings took ~0.7 GB) and
    each chunk's ids are looked up there by binary search; otherwise the chunk asks for
    just its own ids by key. The referenced table does not change during the batch."""
    refs = {}
    for col, (ref_table, ref_col) in REFERENCES.get(table, {}).items():
        if col not in raw.columns:
            continue
        cand = np.asarray(raw[col].astype("string").str.strip().dropna().unique(), dtype=object)
        whole = col in cache or (len(cand) > 50_000 if whole_table is None else whole_table)
        if whole:
            if col not in cache:
                cache[col] = id_hashes(bind, ref_table, ref_col)
            refs[col] = cand[_sorted_member(cache[col], _hash_ids(cand))]
        else:
            refs[col] = known_ids(bind, ref_table, ref_col, pd.Series(cand, dtype=object))
    return refs


def _hash_ids(values) -> np.ndarray:
    return pd.util.hash_array(np.asarray(values, dtype=object)) if len(values) else np.array([], dtype=np.uint64)


def _sorted_member(sorted_hashes: np.ndarray, h: np.ndarray) -> np.ndarray:
    if not len(sorted_hashes) or not len(h):
        return np.zeros(len(h), dtype=bool)
    pos = np.searchsorted(sorted_hashes, h).clip(max=len(sorted_hashes) - 1)
    return sorted_hashes[pos] == h


def id_hashes(bind, table: str, column: str, batch: int = 1_000_000) -> np.ndarray:
    """Sorted 64-bit hashes of every ``table.column`` value, read a million at a time."""
    sql = f"SELECT {column} FROM {table}"
    parts = []
    with (bind.connect() if isinstance(bind, Engine) else nullcontext(bind)) as conn:
        res = conn.execution_options(stream_results=True, max_row_buffer=10_000).exec_driver_sql(sql)
        for part in res.scalars().partitions(batch):
            parts.append(_hash_ids([str(v) for v in part]))
    out = np.concatenate(parts) if parts else np.array([], dtype=np.uint64)
    out.sort()
    return out


def _drop_cross_chunk_duplicates(outcome: ValidationOutcome, raw: pd.DataFrame, key_cols: list[str], seen,
                                 rule: tuple[str, str] | None = None):
    """A key loaded from an earlier chunk of the same file (batch) comes again: the newest
    version stands, whatever the chunk size (within a chunk: ``tasks.validate.select_versions``).

    * older than the version loaded, or a copy of it: dropped, counted in ``n_superseded``;
    * newer: kept, replacing the loaded one (``outcome.replaced``: the loader upserts it and
      counts the key once; the earlier version counts in ``n_superseded``);
    * the same stamp and different content: a conflict, quarantined under ``rule`` = (rule,
      reason), the suite's uniqueness rule. The copy loaded from the earlier chunk stays (a
      streamed batch cannot take it back); inside one chunk neither is loaded.

    ``seen`` (an empty array at the start of a batch): sorted key hashes with the stamp and
    content hash of the version loaded — binary search, one sort per chunk."""
    from tasks.validate import content_hashes, key_hashes, record_hashes, stamp_ns

    if not isinstance(seen, tuple):
        seen = (np.array([], dtype=np.uint64), np.array([], dtype=np.int64), np.array([], dtype=np.uint64))
    if outcome.good.empty:
        return outcome, seen
    sh, sts, sc = seen
    good = outcome.good
    h = key_hashes(good, key_cols)
    ts = stamp_ns(outcome.stamps if outcome.stamps is not None else good.get("updated_at"), len(good))
    c = content_hashes(good.drop(columns=["updated_at"], errors="ignore"))  # the stamp is compared on its own
    pos = np.searchsorted(sh, h).clip(max=max(len(sh) - 1, 0)) if len(sh) else np.zeros(len(h), dtype=np.int64)
    hit = (sh[pos] == h) if len(sh) else np.zeros(len(h), dtype=bool)
    older, newer, conflict = (np.zeros(len(h), dtype=bool) for _ in range(3))
    p = pos[hit]
    older[hit] = (ts[hit] < sts[p]) | ((ts[hit] == sts[p]) & (c[hit] == sc[p]))
    newer[hit] = ts[hit] > sts[p]
    conflict[hit] = (ts[hit] == sts[p]) & (c[hit] != sc[p])
    sts, sc = sts.copy(), sc.copy()
    sts[pos[newer]], sc[pos[newer]] = ts[newer], c[newer]
    new = ~hit
    sh, sts, sc = np.concatenate([sh, h[new]]), np.concatenate([sts, ts[new]]), np.concatenate([sc, c[new]])
    order = np.argsort(sh, kind="stable")
    seen = (sh[order], sts[order], sc[order])
    outcome.n_superseded += int(older.sum() + newer.sum())
    outcome.replaced += int(newer.sum())
    drop = older | conflict
    if not drop.any():
        return outcome, seen
    rows = good[conflict]
    if len(rows):
        rec = rows.astype("string")
        extra = pd.DataFrame(
            {
                "source_id": rows[ID_COLUMN[outcome.table]].to_numpy(),
                "rule": rule[0] if rule else f"duplicate_{ID_COLUMN[outcome.table]}",
                "reason": rule[1] if rule else f"{ID_COLUMN[outcome.table]}: conflicting versions with the same updated_at",
                "record": [pd.Series(r).to_json(force_ascii=False) for r in rec.to_dict("records")],
                "record_hash": record_hashes(rec).to_numpy(),
            }
        )
        outcome.bad = pd.concat([outcome.bad, extra], ignore_index=True)
    outcome.good = good[~drop].reset_index(drop=True)
    if outcome.stamps is not None:
        outcome.stamps = outcome.stamps[~drop].reset_index(drop=True)
    return outcome, seen


# ----------------------------------------------------------------------------- tasks
@task(name="check-expectation-suites", cache_policy=NO_CACHE)
def check_suites_task() -> list[str]:
    """Fail the run at start when a suite file is missing or broken."""
    return sorted(load_suites())


@task(name="ingest", task_run_name="ingest-{table}", cache_policy=NO_CACHE)
def ingest_task(table: str, run_id: str, full_refresh: bool = False) -> dict:
    """One table's night batch (extract -> validate -> load, chunk by chunk): its counts and
    stage seconds (extract_s / validate_s / load_s overlap in time; wall_s is the step's)."""
    timings: dict = {}
    res = asdict(ingest_table(table, run_id, full_refresh, timings=timings))
    res.update({k: round(v, 2) for k, v in timings.items() if k in ("extract_s", "validate_s", "load_s", "index_s", "commit_s", "checkpoint_s", "wall_s")})
    return res
