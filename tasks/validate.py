"""Validate: type the raw records and check them against the Great Expectations suites.

Every table has a suite in ``expectations/<table>.json``. Table-level expectations
(required columns, empty full extract) fail the whole batch; row-level ones send the
offending rows to quarantine with the rule that caught them, and the good rows go on.
Rows whose values cannot even be parsed (an amount of "abc") are quarantined too, under
``<column>_unparseable``. References (an order's customer, an item's order) are checked
against the warehouse plus the batch itself.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from tasks.extract import LocalizedError
from userops.i18n import register, t
from userops.settings import PROJECT_ROOT, get_settings

log = logging.getLogger("userops.validate")
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

ID_COLUMN = {"customers": "customer_id", "orders": "order_id", "order_items": "order_id", "feedback": "feedback_id", "events": "event_id"}
KEY_COLUMNS = {"customers": ["customer_id"], "orders": ["order_id"], "order_items": ["order_id", "sku"], "feedback": ["feedback_id"], "events": ["event_id"]}
COLUMN_TYPES = {
    "customers": {"ts": ["registered_at", "unsubscribed_at", "updated_at"], "bool": ["marketing_consent"], "num": [], "int": [],
                  "str": ["customer_id", "name", "phone", "email", "city", "member_level", "timezone"]},
    "orders": {"ts": ["paid_at", "updated_at"], "bool": [], "num": ["amount", "discount_amount"], "int": [],
               "str": ["order_id", "customer_id", "status", "store", "channel"]},
    "order_items": {"ts": ["updated_at"], "bool": [], "num": ["unit_price"], "int": ["quantity"], "str": ["order_id", "sku", "category"]},
    "feedback": {"ts": ["created_at", "first_response_at", "resolved_at", "updated_at"], "bool": [], "num": [], "int": ["satisfaction", "nps"],
                 "str": ["feedback_id", "customer_id", "kind", "sku", "text"]},
    "events": {"ts": ["occurred_at"], "bool": [], "num": [], "int": [], "str": ["event_id", "customer_id", "kind"]},
}
TABLES = list(COLUMN_TYPES)
SOURCE_ID_MAX = 200  # quarantine.source_id VARCHAR(200): a longer id is kept cut, ending in "…"
TRUE_WORDS = {"true", "t", "1", "yes", "y", "是", "同意", "on"}
FALSE_WORDS = {"false", "f", "0", "no", "n", "否", "不同意", "off"}


class SuiteError(RuntimeError):
    """An expectation suite file is missing or does not parse."""


class ValidationProcessDied(LocalizedError, RuntimeError):
    """The process validating a big batch (``tasks.ingest._validated_chunks_in_process``)
    ended without a word (killed, usually for memory): nothing of the batch was loaded. The
    message says so in the operator's language and what to do (smaller chunks, the run log)."""

    def __init__(self, table: str, exitcode, chunk_rows: int):
        super().__init__(None, "validate.process_died", table=table, code=exitcode, chunk_rows=f"{chunk_rows:,}")
        self.table = table
        self.exitcode = exitcode


register(
    {
        "validate.process_died": {
            "zh-CN": "{table}：校验子进程意外退出（退出码 {code}），本批次的任何数据都未入库。最常见的原因是内存不足："
                     "请调小 USEROPS_VALIDATION__CHUNK_ROWS（现为每块 {chunk_rows} 行）后重试；其他原因请查看本次运行的日志",
            "en": "{table}: the validation process stopped unexpectedly (exit code {code}); nothing was loaded. The usual cause is "
                  "running out of memory: lower USEROPS_VALIDATION__CHUNK_ROWS (now {chunk_rows} rows per chunk) and run again; "
                  "otherwise see the run's log",
        },
    }
)


class BatchRejected(LocalizedError, RuntimeError):
    """A batch failed a table-level rule or has too many bad rows; nothing of it was loaded.
    The message is a catalogue text in the operator's language (``key``/``values``), or the
    plain ``message`` given (an error sent back from the validation process)."""

    def __init__(self, table: str, message: str | None = None, counts: dict | None = None, key: str | None = None, **values):
        super().__init__(message, key, table=table, **values) if key else super().__init__(message)
        self.table = table
        self.counts = counts or {}



@dataclass
class ValidationOutcome:
    table: str
    good: pd.DataFrame
    bad: pd.DataFrame  # source_id, rule, reason, record, record_hash (one row per record and rule)
    n_read: int
    max_updated_at: datetime | None = None  # the latest change stamp of the accepted rows (the watermark)
    rule_counts: dict = field(default_factory=dict)
    # older versions of a key dropped for the newest one (``select_versions``): read =
    # good + bad records + superseded
    n_superseded: int = 0
    # good rows that replace a version loaded from an earlier chunk of the same batch (the
    # loader upserts them and counts the key once)
    replaced: int = 0
    # the change stamp each good row came with (NaT: none; ``good["updated_at"]`` may be the
    # load time then), for the choice between chunks
    stamps: pd.Series | None = None

    @property
    def n_bad(self) -> int:
        return int(self.bad["record_hash"].nunique()) if len(self.bad) else 0

    @property
    def n_good(self) -> int:
        return len(self.good)


# --------------------------------------------------------------------------- suites
def load_suites(directory: Path | None = None) -> dict:
    """Load and check every suite; a suite that is missing or fails to parse is an error."""
    import great_expectations as gx

    directory = directory or EXPECTATIONS_DIR
    suites = {}
    for table in TABLES:
        path = Path(directory) / f"{table}.json"
        if not path.exists():
            raise SuiteError(f"expectation suite {path} is missing: every source table needs one")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            with _quiet_gx():
                suite = gx.ExpectationSuite(**data)
        except Exception as exc:  # GE raises several kinds; all mean "fix this file"
            raise SuiteError(f"expectation suite {path} does not load: {exc}") from None
        # GE logs and DROPS an expectation it cannot build; we refuse instead.
        loaded = {e.expectation_type for e in suite.expectations}
        dropped = [e.get("type") for e in data.get("expectations", []) if e.get("type") not in loaded]
        if len(suite.expectations) != len(data.get("expectations", [])) or dropped:
            raise SuiteError(f"expectation suite {path} does not load: unknown or invalid expectation(s) {', '.join(map(str, dropped)) or '(see kwargs)'}")
        for exp in suite.expectations:
            if not exp.expectation_type.startswith("expect_table_") and not (exp.meta or {}).get("rule"):
                raise SuiteError(f"expectation suite {path}: {exp.expectation_type} has no meta.rule naming its quarantine rule")
        suites[table] = suite
    return suites


@contextmanager
def _quiet_gx():
    """GE logs a traceback for an expectation it cannot build; we report it ourselves."""
    lg = logging.getLogger("great_expectations")
    old = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        lg.setLevel(old)


@lru_cache(maxsize=1)
def _gx_batch_definition():
    import great_expectations as gx

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.CRITICAL)
    ctx = gx.get_context(mode="ephemeral")
    try:  # no tqdm bars in logs
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    except Exception:  # pragma: no cover - older/newer GE
        pass
    bd = ctx.data_sources.add_pandas("userops").add_dataframe_asset("batch").add_batch_definition_whole_dataframe("whole")
    _skip_gx_fingerprint()
    return ctx, bd


def _skip_gx_fingerprint() -> None:
    """GE's pandas engine md5-hashes every batch below 1 GB only to put a fingerprint in its
    batch markers — a third of the validation time on a 1M-row chunk, for a marker we never
    read. A unique token per batch keeps the markers distinct without hashing the data."""
    import itertools

    from great_expectations.execution_engine import pandas_execution_engine as pee

    if getattr(pee.hash_pandas_dataframe, "_userops", False):
        return
    counter = itertools.count()

    def token(_df) -> str:
        return f"userops-batch-{os.getpid()}-{next(counter)}"

    token._userops = True
    pee.hash_pandas_dataframe = token


_GX_LOCK = threading.Lock()


def _run_suite(name: str, expectations: list, df: pd.DataFrame, params: dict, result_format: str = "COMPLETE"):
    """Validate ``df`` against the given expectations (or their configurations) in the
    process's GE context."""
    import great_expectations as gx

    configs = [(e.configuration if hasattr(e, "configuration") else e).to_json_dict() for e in expectations]
    with _GX_LOCK:
        ctx, bd = _gx_batch_definition()
        try:
            ctx.suites.delete(name)
        except Exception:
            pass
        suite = ctx.suites.add(gx.ExpectationSuite(name=name, expectations=configs))
        return bd.get_batch(batch_parameters={"dataframe": df}).validate(
            suite, expectation_parameters=params, result_format={"result_format": result_format}
        )


def _run_row_suite(name: str, expectations: list, df: pd.DataFrame, params: dict) -> list:
    """Row-level results: every expectation judged once (BOOLEAN_ONLY), then only the ones
    that failed again with their row indexes (COMPLETE). GE computes a condition once per
    metric a result format asks for: COMPLETE for the whole suite evaluated the uniqueness
    check 7 times a chunk (a 500k-order chunk: 2.3 s -> 0.6 s when nothing fails)."""
    first = _run_suite(name, expectations, df, params, "BOOLEAN_ONLY").results
    failed = [r.expectation_config for r in first if not r.success and not (r.exception_info or {}).get("raised_exception")]
    kept = [r for r in first if r.success or (r.exception_info or {}).get("raised_exception")]
    if failed:
        kept += list(_run_suite(name, failed, df, params, "COMPLETE").results)
    return kept


# --------------------------------------------------------------------------- typing
def _parse_ts(s: pd.Series, assume_tz: str, date_order: str | None = None, ambiguous: list | None = None) -> pd.Series:
    """Strings -> naive UTC. Values without an offset are taken in ``assume_tz``. A
    day/month date that reads both ways is NaT, its index appended to ``ambiguous`` (see
    ``_to_datetime``)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        if getattr(s.dt, "tz", None) is not None:
            return s.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
        if assume_tz != "UTC":  # naive times as typed values are in assume_tz, as naive strings are
            s = s.dt.tz_localize(ZoneInfo(assume_tz), ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC").dt.tz_localize(None)
        return s.astype("datetime64[us]")
    txt = s.astype("string").str.strip()
    has_offset = txt.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True, na=False)
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    if has_offset.any():
        out[has_offset] = _to_datetime(txt[has_offset], utc=True, date_order=date_order, ambiguous=ambiguous).dt.tz_localize(None)
    rest = ~has_offset & txt.notna()
    if rest.any():
        local = _to_datetime(txt[rest], date_order=date_order, ambiguous=ambiguous)
        if assume_tz != "UTC":
            local = local.dt.tz_localize(ZoneInfo(assume_tz), ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC").dt.tz_localize(None)
        out[rest] = local
    return out


# Dates written day and month first, year last (01/11/2026, 1.11.2026, 01-11-26), maybe
# followed by a time: which of the two is the month is a convention, not in the value.
_NUMBER_FIRST_DATE = r"^(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-](?P<y>\d{4}|\d{2})(?P<rest>(?:[ T].*)?)$"
# Year first with slashes or dots (2026/11/01, 2026.11.01 10:00): always year, month, day.
_YEAR_FIRST_DATE = r"^(?P<y>\d{4})[/.](?P<m>\d{1,2})[/.](?P<d>\d{1,2})(?P<rest>(?:[ T].*)?)$"
DATE_ORDERS = ("ymd", "dmy", "mdy")
# The zh-CN way (2026年11月1日, 2026年11月1日 12:30, 2026年11月01号 12时30分): year, month, day.
_ZH_DATE = r"^(?P<y>\d{4})\s*年\s*(?P<m>\d{1,2})\s*月\s*(?P<d>\d{1,2})\s*[日号]\s*(?P<rest>.*)$"


def _to_datetime(txt: pd.Series, utc: bool = False, date_order: str | None = None, ambiguous: list | None = None) -> pd.Series:
    """Fast ISO-8601 parse; only values that are not ISO get a second look, never a guess.

    * ISO forms (2026-11-01, with a time, with an offset) are read as ISO; so are the year-
      first forms with slashes or dots (2026/11/01, 2026.11.01 10:00), which are unambiguous.
    * A date written day and month first (01/11/2026): with ``date_order`` "dmy" or "mdy" it
      is read that way (a month over 12 is then unparseable); otherwise ("ymd", the default)
      it is read only when the value itself says which is which — one of the two is over 12
      (13/01/2026, 01/13/2026) or both are the same (05/05/2026) — and is NaT when both
      could be the month (01/11/2026: 1 November or January 11?), its index appended to
      ``ambiguous`` (the row is quarantined as ``<column>_ambiguous_date``, not guessed).
    * zh-CN dates (2026年11月1日, 2026年11月1日 12:30, 2026年11月01号 12时30分) are year,
      month, day.
    * Anything else (5 Jan 2026) goes to pandas' mixed parser as before.
    All vectorized: string checks over the values that failed the ISO parse only (a night's
    ISO timestamps never reach them)."""
    out = pd.to_datetime(txt, errors="coerce", format="ISO8601", utc=utc)
    retry = out.isna() & txt.notna()
    if not retry.any():
        return out
    rt = txt[retry]
    yf = rt.str.extract(_YEAR_FIRST_DATE)
    iso = yf["y"] + "-" + yf["m"].str.zfill(2) + "-" + yf["d"].str.zfill(2) + yf["rest"]
    zh = rt.str.extract(_ZH_DATE)
    if zh["y"].notna().any():
        clock = (zh["rest"].str.replace(r"\s*[时点]\s*", ":", regex=True).str.replace(r"\s*分\s*", ":", regex=True)
                 .str.replace("秒", "", regex=False).str.rstrip(":"))
        clock = clock.where(~clock.str.fullmatch(r"\d{1,2}", na=False), clock + ":00")  # 12时 -> 12:00
        zh_iso = zh["y"] + "-" + zh["m"].str.zfill(2) + "-" + zh["d"].str.zfill(2) + clock.where(clock == "", " " + clock)
        iso = iso.where(zh["y"].isna(), zh_iso)
    nf = rt.str.extract(_NUMBER_FIRST_DATE)
    is_nf = nf["a"].notna()
    if is_nf.any():
        a, b = pd.to_numeric(nf["a"]), pd.to_numeric(nf["b"])
        year = nf["y"].where(nf["y"].str.len() == 4, "20" + nf["y"])
        if date_order == "dmy":
            day_first = is_nf
        elif date_order == "mdy":
            day_first = pd.Series(False, index=rt.index)
        else:
            day_first = is_nf & ((a > 12) | (a == b))
            month_first = is_nf & (b > 12) & (a <= 12)
            unclear = is_nf & ~day_first & ~month_first & (a <= 12) & (b <= 12)
            if unclear.any() and ambiguous is not None:
                ambiguous.extend(rt.index[unclear.to_numpy()])
            is_nf = is_nf & ~unclear
        day, month = a.where(day_first, b), b.where(day_first, a)
        nf_iso = year + "-" + month.astype("Int64").astype("string").str.zfill(2) + "-" + day.astype("Int64").astype("string").str.zfill(2) + nf["rest"]
        iso = iso.where(~is_nf, nf_iso)
        iso = iso.where(~(nf["a"].notna() & ~is_nf), "")  # an unclear one stays NaT
    known = iso.notna()
    if known.any():
        out[known[known].index] = pd.to_datetime(iso[known], errors="coerce", format="ISO8601", utc=utc)
    other = ~known & ~nf["a"].notna()
    if other.any():
        idx = other[other].index
        out[idx] = pd.to_datetime(rt[idx], errors="coerce", format="mixed", utc=utc)
    return out


def round_cents(v: pd.Series) -> pd.Series:
    """Money to cents, half away from zero as written (123.455 -> 123.46, 0.125 -> 0.13,
    0.005 -> 0.01, 1.999 -> 2.00), before anything is stored: the warehouse's NUMERIC(14,2)
    rounds on PostgreSQL while SQLite kept every decimal, so the two stored different amounts.
    A decimal written with 3 places is usually not exact in binary (123.455 is
    123.45499999…), so a tiny margin, relative to the value, counts it as the half it was
    written as."""
    x = v.to_numpy(dtype="float64", na_value=np.nan)
    c = np.abs(x) * 100
    cents = np.floor(c + 0.5 + 1e-9 + c * 4e-16)  # a few units in the last place
    return pd.Series(np.sign(x) * cents / 100, index=v.index, dtype="float64")


def _parse_bool(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s):
        return s.astype("boolean")
    low = s.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=s.index, dtype="boolean")
    out[low.isin(TRUE_WORDS).fillna(False).astype(bool)] = True
    out[low.isin(FALSE_WORDS).fillna(False).astype(bool)] = False
    return out


def normalize(table: str, raw: pd.DataFrame, assume_tz: str = "UTC", date_order: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Typed frame with canonical columns, and a frame of (row index, rule) parse failures:
    ``<column>_unparseable``, or ``<column>_ambiguous_date`` for a day/month date that reads
    both ways (``date_order``: "dmy" / "mdy" says how to read them; see ``_to_datetime``)."""
    types = COLUMN_TYPES[table]
    out = pd.DataFrame(index=raw.index)
    failures = []
    for kind, cols in types.items():
        for c in cols:
            if c not in raw.columns:
                continue
            col = raw[c]
            present = col.notna() & (col.astype("string").str.strip() != "").fillna(False).astype(bool)
            ambiguous: list = []
            if kind == "ts":
                v = _parse_ts(col, assume_tz, date_order, ambiguous)
            elif kind == "bool":
                v = _parse_bool(col)
            elif kind == "num":
                if not pd.api.types.is_numeric_dtype(col):
                    # Excel's thousands separators (1,200 / 12,345.50): only the unambiguous form
                    txt = col.astype("string").str.strip()
                    grouped = txt.str.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", na=False).astype(bool)
                    if grouped.any():
                        col = col.astype(object).where(~grouped, txt.str.replace(",", "", regex=False))
                v = pd.to_numeric(col, errors="coerce").astype("float64")
                v = v.mask(~np.isfinite(v.fillna(0)))  # inf / -inf: no column holds them (unparseable)
                v = round_cents(v)
            elif kind == "int":
                f = pd.to_numeric(col, errors="coerce")
                f = f.mask(~np.isfinite(f.astype("float64").fillna(0)))
                nonint = f.notna() & (f != np.floor(f.fillna(0)))
                f = f.mask(nonint)
                v = f.astype("Int64")
            else:
                v = col.astype("string").str.strip()
                v = v.mask(v == "")
                out[c] = v.astype(object).where(v.notna(), None)
                continue
            bad = present & v.isna()
            if ambiguous:
                amb = pd.Series(False, index=raw.index)
                amb[ambiguous] = True
                failures.append(pd.DataFrame({"idx": raw.index[amb.to_numpy()], "rule": f"{c}_ambiguous_date", "column": c}))
                bad &= ~amb
            if bad.any():
                failures.append(pd.DataFrame({"idx": raw.index[bad.to_numpy()], "rule": f"{c}_unparseable", "column": c}))
            out[c] = v
    fails = pd.concat(failures, ignore_index=True) if failures else pd.DataFrame({"idx": [], "rule": [], "column": []})
    return out, fails


def _ge_view(typed: pd.DataFrame) -> pd.DataFrame:
    """The typed frame in the dtypes GE's pandas engine vectorizes (datetime64[ns], float64);
    other dtypes fall back to a per-value Python path that is ~100x slower."""
    out = typed.copy(deep=False)
    for c in out.columns:
        dt = out[c].dtype
        if pd.api.types.is_datetime64_any_dtype(dt):
            # beyond datetime64[ns]'s range (1677..2262) clip to its ends: still out of range
            lo, hi = pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-10")
            out[c] = out[c].clip(lower=lo, upper=hi).astype("datetime64[ns]")
        elif isinstance(dt, pd.Int64Dtype) or pd.api.types.is_integer_dtype(dt):
            out[c] = out[c].astype("float64")
    return out


# --------------------------------------------------------------------------- validation
def record_hashes(raw: pd.DataFrame) -> pd.Series:
    """Stable content hash per raw record (quarantine key; the same bad record is kept once)."""
    h = pd.util.hash_pandas_object(raw.astype("string").fillna("\x00"), index=False).astype("uint64")
    return h.map(lambda x: f"{x:016x}")


UNIQUE_TYPES = ("expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique")


def key_hashes(frame: pd.DataFrame, key_cols: list[str]) -> np.ndarray:
    """64-bit hash of each row's key (the same in every chunk of a batch)."""
    keys = frame[key_cols[0]] if len(key_cols) == 1 else frame[key_cols]  # typed: str values (normalize)
    return pd.util.hash_pandas_object(keys, index=False).to_numpy()


def content_hashes(frame: pd.DataFrame) -> np.ndarray:
    """64-bit hash of each typed row's values (two copies of one version hash the same)."""
    return pd.util.hash_pandas_object(frame.astype("string").fillna("\x00"), index=False).to_numpy()


def stamp_ns(stamps: pd.Series | None, n: int) -> np.ndarray:
    """Change stamps as int64 (NaT, or no stamp at all: the smallest value)."""
    if stamps is None:
        return np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    return pd.to_datetime(stamps).to_numpy(dtype="datetime64[us]").view("int64")


def select_versions(typed: pd.DataFrame, key_cols: list[str], stamps: pd.Series | None) -> tuple[np.ndarray, np.ndarray]:
    """Which rows of one batch chunk stand when a key comes more than once: per key the
    version with the newest change stamp. Returns (superseded, conflicting) row labels:
    superseded are older versions and further copies of the newest one with the same
    content (dropped, not quarantined); conflicting are two or more versions with the same
    newest stamp and different content (quarantined, none loaded: which one is right is
    not in the data). Set-based; the result does not depend on the rows' order."""
    empty = np.array([], dtype=typed.index.dtype if len(typed.index) else np.int64)
    if len(typed) < 2:
        return empty, empty
    k = key_hashes(typed, key_cols)
    dup = pd.Series(k).duplicated(keep=False).to_numpy()
    if not dup.any():  # the usual batch: only the keys are hashed
        return empty, empty
    sub = typed[dup]
    ts = stamp_ns(None if stamps is None else stamps[dup], len(sub))
    df = pd.DataFrame({"k": k[dup], "ts": ts, "c": content_hashes(sub)}, index=sub.index)
    newest = df.groupby("k")["ts"].transform("max")
    older = df["ts"] < newest
    top = df[~older]
    copies = top.duplicated(["k", "c"])
    distinct = top[~copies]
    conflict = distinct["k"].duplicated(keep=False)
    superseded = df.index[older.to_numpy()].append(top.index[copies.to_numpy()])
    return superseded.to_numpy(), distinct.index[conflict.to_numpy()].to_numpy()


def validate_frame(
    table: str,
    raw: pd.DataFrame,
    suites: dict,
    *,
    now: datetime | None = None,
    full_load: bool = False,
    assume_tz: str = "UTC",
    known_refs: dict[str, set] | None = None,
    language: str | None = None,
    date_order: str | None = None,
    check_earliest: bool = True,
) -> ValidationOutcome:
    """Split ``raw`` into good typed rows and quarantined ones.

    ``known_refs`` maps a column (``customer_id``/``order_id``) to ids that exist (warehouse
    plus batch); rows pointing elsewhere are quarantined as ``customer_unknown`` /
    ``order_unknown``. Table-level failures raise ``BatchRejected``. ``check_earliest``:
    times before ``validation.min_year`` break the ``*_out_of_range`` rules (a warehouse's
    sanity check); False for history older than the shop's (a backtest on CDNOW, 1997).
    A time in the future breaks them either way.
    """
    cfg = get_settings()
    language = language or cfg.language
    suite = suites[table]
    now = now or datetime.utcnow()
    n = len(raw)
    raw = raw.reset_index(drop=True)
    params = {
        "min_ts": pd.Timestamp(datetime(cfg.validation.min_year, 1, 1)) if check_earliest else None,  # None: no lower bound
        "max_ts": pd.Timestamp(now + timedelta(minutes=cfg.validation.future_tolerance_minutes)),
        "min_rows": 1 if full_load else 0,
    }
    # Table-level expectations run on the raw frame (column names as received).
    table_exps = [e for e in suite.expectations if e.expectation_type.startswith("expect_table_")]
    # Only names and row count matter here: a cheap stand-in keeps GE's batch hashing fast.
    probe = pd.DataFrame(np.zeros((n, len(raw.columns)), dtype=np.int8), columns=raw.columns) if len(raw.columns) else pd.DataFrame({"_": []})
    tres = _run_suite(f"{table}_table", table_exps, probe, params)
    for r in tres.results:
        if not r.success:
            rule = (r.expectation_config.meta or {}).get("rule", r.expectation_config.type)
            observed = r.result.get("observed_value")
            if rule == "required_columns":
                want = set(r.expectation_config.kwargs["column_set"])
                missing = sorted(want - set(map(str, raw.columns)))
                raise BatchRejected(table, key="batch.required_columns", missing=missing, rule=rule)
            raise BatchRejected(table, key="batch.table_rule", rule=rule, observed=observed)

    typed, parse_fail = normalize(table, raw, assume_tz, date_order)
    # an expectation on an optional column this source does not send has nothing to check
    present = set(typed.columns)
    row_exps = [
        e for e in suite.expectations
        if not e.expectation_type.startswith("expect_table_") and e.configuration.kwargs.get("column") in present | {None}
    ]
    # the uniqueness rule is not GE's "every copy is bad": a key sent twice keeps its newest
    # version (select_versions); only two different versions with the same stamp break it
    unique_exps = [e for e in row_exps if e.expectation_type in UNIQUE_TYPES]
    row_exps = [e for e in row_exps if e.expectation_type not in UNIQUE_TYPES]
    bad_parts = [parse_fail[["idx", "rule"]]] if len(parse_fail) else []
    reasons: dict[str, str] = {r: _parse_reason(r, language) for r in parse_fail["rule"].unique()} if len(parse_fail) else {}
    unparseable = {c: set(g["idx"]) for c, g in parse_fail.groupby("column")} if len(parse_fail) else {}
    if n:
        for r in _run_row_suite(f"{table}_rows", row_exps, _ge_view(typed), params):
            meta = r.expectation_config.meta or {}
            rule = meta.get("rule", r.expectation_config.type)
            if r.exception_info and r.exception_info.get("raised_exception"):
                col = r.expectation_config.kwargs.get("column")
                if col is not None and col not in typed.columns:
                    continue  # optional column absent from this source: nothing to check
                raise BatchRejected(table, key="batch.rule_error", rule=rule, error=r.exception_info.get("exception_message"))
            if r.success:
                continue
            idx = r.result.get("unexpected_index_list") or []
            if idx and isinstance(idx[0], dict):
                idx = [next(iter(d.values())) for d in idx]
            col = r.expectation_config.kwargs.get("column")
            if idx and col in unparseable:
                # a value that could not be parsed is reported once, as unparseable
                idx = [i for i in idx if i not in unparseable[col]]
            if idx:
                bad_parts.append(pd.DataFrame({"idx": idx, "rule": rule}))
                reasons[rule] = meta.get(language) or meta.get("en") or rule
    # References: an order's customer, an item's order, feedback's customer.
    for col, known in (known_refs or {}).items():
        if col not in typed.columns:
            continue
        vals = typed[col]
        unknown = vals.notna() & ~vals.isin(known)
        if unknown.any():
            rule = "customer_unknown" if col == "customer_id" else "order_unknown"
            bad_parts.append(pd.DataFrame({"idx": typed.index[unknown.to_numpy()], "rule": rule}))
            reasons[rule] = _ref_reason(col, language)

    ts_col = "occurred_at" if table == "events" else "updated_at"
    superseded = np.array([], dtype=int)
    if unique_exps and n:
        # the versions contend among the rows valid in themselves: a newer version that is bad
        # is quarantined and an older valid one is loaded, as on two nights (and across chunks)
        flagged = set(pd.concat(bad_parts)["idx"].astype(int)) if bad_parts else set()
        valid = typed.drop(index=sorted(flagged))
        key_cols = [c for c in KEY_COLUMNS[table] if c in valid.columns]
        valid = valid[valid[key_cols].notna().all(axis=1)] if key_cols else valid.iloc[:0]
        superseded, conflicting = select_versions(valid, key_cols, valid[ts_col] if ts_col in valid.columns else None)
        if len(conflicting):
            meta = unique_exps[0].meta or {}
            rule = meta.get("rule", "duplicate_key")
            bad_parts.append(pd.DataFrame({"idx": conflicting.astype(int), "rule": rule}))
            reasons[rule] = meta.get(language) or meta.get("en") or rule
    bad_idx = pd.concat(bad_parts, ignore_index=True).drop_duplicates() if bad_parts else pd.DataFrame({"idx": [], "rule": []})
    bad_rows = np.unique(bad_idx["idx"].to_numpy().astype(int)) if len(bad_idx) else np.array([], dtype=int)
    good = typed.drop(index=np.union1d(bad_rows, superseded.astype(int)))
    stamps = good[ts_col].copy() if ts_col in good.columns else pd.Series(pd.NaT, index=good.index, dtype="datetime64[us]")
    if "updated_at" not in good.columns and table != "events":
        good = good.assign(updated_at=pd.Series(pd.Timestamp(now).floor("s"), index=good.index, dtype="datetime64[us]"))
    # the latest change stamp of the rows accepted: a quarantined record stamped in the future
    # must not move the watermark (tasks.ingest); NaT without the column
    max_ts = stamps.max() if len(stamps) else None
    bad = pd.DataFrame()
    if len(bad_idx):
        bad_idx["idx"] = bad_idx["idx"].astype(int)
        hashes = record_hashes(raw)
        id_col = ID_COLUMN[table]
        src_ids = raw[id_col].astype("string") if id_col in raw.columns else pd.Series(pd.NA, index=raw.index, dtype="string")
        records = raw.loc[bad_rows].astype("string").where(raw.loc[bad_rows].notna(), None)
        rec_json = {i: json.dumps(rec, ensure_ascii=False, default=str) for i, rec in zip(records.index, records.to_dict("records"))}
        bad = pd.DataFrame(
            {
                "source_id": src_ids.loc[bad_idx["idx"]].to_numpy(),
                "rule": bad_idx["rule"].to_numpy(),
                "reason": bad_idx["rule"].map(reasons).fillna(bad_idx["rule"]).to_numpy(),
                "record": bad_idx["idx"].map(rec_json).to_numpy(),
                "record_hash": hashes.loc[bad_idx["idx"]].to_numpy(),
            }
        )
        bad["source_id"] = bad["source_id"].astype(object).where(bad["source_id"].notna(), None)
        long_id = bad["source_id"].str.len().fillna(0) > SOURCE_ID_MAX
        if long_id.any():  # the quarantine's source_id holds 200 characters: cut (the <id>_too_long rule says so)
            bad.loc[long_id, "source_id"] = bad.loc[long_id, "source_id"].str.slice(0, SOURCE_ID_MAX - 1) + "…"
    counts = bad["rule"].value_counts().to_dict() if len(bad) else {}
    return ValidationOutcome(table, good.reset_index(drop=True), bad, n, None if max_ts is None or pd.isna(max_ts) else max_ts.to_pydatetime(), counts,
                             n_superseded=len(superseded), stamps=stamps.reset_index(drop=True))


def enforce_threshold(outcome: ValidationOutcome, max_bad_share: float | None = None) -> None:
    """Fail the batch when more than ``max_bad_share`` of its rows are bad."""
    share_max = get_settings().validation.max_bad_share if max_bad_share is None else max_bad_share
    if outcome.n_read == 0:
        return
    share = outcome.n_bad / outcome.n_read
    if share > share_max:
        top = [[rule, f"{cnt:,}"] for rule, cnt in sorted(outcome.rule_counts.items(), key=lambda x: -x[1])[:5]]  # shown as rule：n
        raise BatchRejected(
            outcome.table,
            counts={"bad": outcome.n_bad, "read": outcome.n_read, **outcome.rule_counts},
            key="batch.too_many_bad", bad=f"{outcome.n_bad:,}", read=f"{outcome.n_read:,}", share=f"{share:.1%}", limit=f"{share_max:.0%}", rules=top,
        )


def _parse_reason(rule: str, language: str) -> str:
    if rule.endswith("_ambiguous_date"):
        return t("quarantine.reason.ambiguous_date", language, column=rule.removesuffix("_ambiguous_date"))
    column = rule.removesuffix("_unparseable")
    if column in NUMBER_COLUMNS:
        return t("quarantine.reason.number_unparseable", language, column=column)
    return t("quarantine.reason.unparseable", language, column=column)


NUMBER_COLUMNS = {c for kinds in COLUMN_TYPES.values() for c in kinds["num"] + kinds["int"]}
register(
    {
        "quarantine.reason.number_unparseable": {
            "zh-CN": "{column} 的值无法解析：请写成普通数字，如 1200 或 1200.50（可用千分位逗号，如 1,200）",
            "en": "{column} could not be parsed: write a plain number, such as 1200 or 1200.50 (thousands separators as in 1,200 are fine)",
        },
    }
)


def _ref_reason(col: str, language: str) -> str:
    return t("quarantine.reason.customer_unknown" if col == "customer_id" else "quarantine.reason.order_unknown", language)
