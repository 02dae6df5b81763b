"""Backtest: the model beside two baselines on one cutoff, plus order-file readers.

``backtest(orders, cutoff, horizon_days)`` trains exactly as the nightly flow does
(``train_model``: features at T-H, labels [T-H, T)) and evaluates at T (labels
[T, T+H)), next to

* ``recency``: a one-feature logistic regression on log(1 + days since last order),
  trained on the same training window (its ranking is recency itself);
* ``bgnbd``: BG/NBD fitted on the customers' histories before T (no labels needed),
  scored as P(no purchase in [T, T+H)).

It returns ``{"model": m, "recency": m, "bgnbd": m}`` where each m holds exactly
roc_auc, pr_auc, brier, log_loss, n, churn_rate: what
``userops model backtest --json`` prints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from models.bgnbd import RecencyBaseline, bgnbd_churn_probability, bgnbd_from_features
from models.features import as_naive_utc_timestamp
from models.messages import ModelDataError
from models.train import TrainConfig, evaluate, prepare_windows, train_model
from userops.i18n import t

log = logging.getLogger("userops.churn")

BACKTEST_KEYS = ("roc_auc", "pr_auc", "brier", "log_loss", "n", "churn_rate")
ORDER_COLUMNS = ("order_id", "customer_id", "paid_at", "amount", "status")
STATUSES = ("paid", "refunded", "cancelled")


def _pick(metrics: dict) -> dict:
    return {k: metrics[k] for k in BACKTEST_KEYS}


def backtest(
    orders_df: pd.DataFrame,
    cutoff,
    horizon_days: int = 90,
    config: TrainConfig | dict | None = None,
    customers: pd.DataFrame | None = None,
    return_model: bool = False,
):
    """Model vs recency vs BG/NBD at one cutoff (see module docstring).

    Raises ValueError (``ModelDataError``: ``localized()`` for the operator) when the
    cutoff is after the data's last paid order (it names that day and the latest cutoff
    the data supports), the evaluation labels are empty (cutoff before the data) or the
    training window cannot be trained on.
    """
    _check_cutoff_within_data(orders_df, cutoff, horizon_days)
    w = prepare_windows(orders_df, customers, cutoff, horizon_days, config)
    if len(w.eval_labels) == 0:
        raise ModelDataError("model.backtest.no_eval", cutoff=w.cutoff.date())
    model = train_model(orders_df, customers, w.cutoff, w.horizon_days, config, windows=w)
    y_eval = w.eval_labels.to_numpy(dtype=int)
    F_eval = w.eval_features.loc[w.eval_labels.index]

    # Recency baseline, trained on the same training window as the model.
    p_rec = RecencyBaseline.fit(w.train_features, w.train_labels).predict_proba(F_eval)

    # BG/NBD fitted on histories before T.
    bg = bgnbd_from_features(F_eval)
    p_bg = bgnbd_churn_probability(bg, F_eval, w.horizon_days)

    result = {
        "model": _pick(model.metrics),
        "recency": _pick(evaluate(y_eval, p_rec)),
        "bgnbd": _pick(evaluate(y_eval, p_bg)),
    }
    if return_model:
        return result, model
    return result


def _last_paid_at(orders_df: pd.DataFrame):
    paid_at = pd.to_datetime(orders_df.loc[orders_df["status"] == "paid", "paid_at"], utc=True).dt.tz_localize(None)
    return None if paid_at.empty else paid_at.max()


def _check_cutoff_within_data(orders_df: pd.DataFrame, cutoff, horizon_days: int) -> None:
    """A cutoff after the last paid order has nothing to evaluate (every label window lies
    past the data): say so with the data's last order day and the latest cutoff the data
    supports, the data's end minus the horizon (labels [T, T+H) inside the data)."""
    T = as_naive_utc_timestamp(cutoff)
    last = _last_paid_at(orders_df)
    if last is None or T <= last:
        return
    latest = last.normalize() + pd.Timedelta(days=1) - pd.Timedelta(days=int(horizon_days))
    raise ModelDataError("model.backtest.after_data", cutoff=T.date(), last=last.date(), horizon=int(horizon_days), latest=latest.date())


def backtest_warnings(orders_df: pd.DataFrame, cutoff, horizon_days: int, lang: str | None = None) -> list[str]:
    """Plain-language warnings about a backtest's data (for the CLI to print), in ``lang``
    (default: the settings' language)."""
    cutoff = as_naive_utc_timestamp(cutoff)
    h = int(horizon_days)
    out = []
    paid_at = pd.to_datetime(orders_df.loc[orders_df["status"] == "paid", "paid_at"], utc=True).dt.tz_localize(None)
    if paid_at.empty:
        return [t("model.backtest.no_paid", lang)]
    first, last = paid_at.min(), paid_at.max()
    if last < cutoff + pd.Timedelta(days=h - 1):
        out.append(t("model.backtest.labels_incomplete", lang, last=last.date(), start=cutoff.date(), end=(cutoff + pd.Timedelta(days=h)).date()))
    if first >= cutoff - pd.Timedelta(days=h):
        out.append(t("model.backtest.no_history", lang, cutoff=(cutoff - pd.Timedelta(days=h)).date()))
    return out


# --------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------
#
# An orders file is read and checked by the import's own code (tasks.extract /
# tasks.validate): the same encodings (UTF-8, GB18030), zh-CN headers and values, date rules
# (nothing guessed: a day/month date that reads both ways is ``paid_at_ambiguous_date``
# unless ``date_order`` says how the file writes them; an ISO offset is honoured) and row
# rules (the orders suite). Times without an offset are taken as UTC by default, unlike the
# import (the shop's zone): a backtest runs in UTC, its cutoff T the given date's midnight,
# so the file's calendar days stay the cutoff's days. A row the import would quarantine
# refuses the whole file here: metrics computed on silently altered data would mislead the
# operator evaluating a model on it.

REFUSED_SHOWN = 5  # offending rows listed in the refusal (the count says how many in all)


class OrdersFileRefused(ModelDataError):
    """An orders file with rows the import would quarantine: the count, and the first few
    rows by line and order_id with the rule, in the operator's language."""

    def __init__(self, path: str, offenses: list[dict], n_rows: int):
        self.offenses = offenses  # line, order_id, rule, extra (placeholders of a reason)
        super().__init__("model.orders.refused", path=path, n=n_rows)

    def localized(self, lang: str | None = None) -> str:
        from tasks.validate import load_suites

        orders_suite = load_suites()["orders"]
        lines = [t("model.orders.refused", lang, path=self.values["path"], n=f"{self.values['n']:,}")]
        by_line: dict = {}
        for o in self.offenses:  # in file order; a row breaking several rules is one line
            by_line.setdefault(o["line"], []).append(o)
        for line, rows in list(by_line.items())[:REFUSED_SHOWN]:
            reasons = [t("model.orders.refused_rule", lang, rule=o["rule"], reason=_rule_reason(o["rule"], orders_suite, lang, **o.get("extra", {}))) for o in rows]
            lines.append(t("model.orders.refused_row", lang, line=line, order_id=rows[0]["order_id"] or "—", reasons=t("model.orders.reason_sep", lang).join(reasons)))
        if self.values["n"] > REFUSED_SHOWN:
            lines.append(t("model.orders.refused_more", lang, n=f"{self.values['n'] - REFUSED_SHOWN:,}"))
        lines.append(t("model.orders.refused_hint", lang))
        return "\n".join(lines)

    def __reduce__(self):
        return (OrdersFileRefused, (self.values["path"], self.offenses, self.values["n"]))


class _FileProblem(ModelDataError):
    """The import's own refusal of a file (``FileImportError``: unreadable, a required
    column missing, no such file), in the operator's language."""

    def __init__(self, exc):
        self.exc, self.key, self.values = exc, exc.key, exc.values
        ValueError.__init__(self, exc.localized("en"))

    def localized(self, lang: str | None = None) -> str:
        return self.exc.localized(lang)

    def __reduce__(self):
        return (_FileProblem, (self.exc,))


def _rule_reason(rule: str, suite, lang: str | None, **extra) -> str:
    """The operator's words for an import rule, as the quarantine says them (``suite``: the
    import's orders suite, whose expectations carry their rules' words)."""
    from tasks.validate import _parse_reason

    lang = lang or _language()
    if rule == "malformed_row":
        return t("quarantine.reason.malformed_row", lang, **extra)
    if rule.endswith(("_ambiguous_date", "_unparseable")):
        return _parse_reason(rule, lang)
    for exp in suite.expectations:
        meta = exp.meta or {}
        if meta.get("rule") == rule:
            return meta.get(lang) or meta.get("en") or rule
    return rule


def _language() -> str:
    from userops.settings import get_settings

    return get_settings().language


def normalize_orders(df: pd.DataFrame, date_order: str | None = None, assume_tz: str | None = None,
                     path: str = "orders", lines=None, malformed: list | None = None) -> pd.DataFrame:
    """Canonical order frame: order_id, customer_id, paid_at (datetime64, tz-naive UTC),
    amount (float), status ('paid' / 'refunded' / 'cancelled'), checked by the import's
    rules (``tasks.validate.validate_frame`` with the orders suite).

    ``df``: the file's rows as read (strings, or typed columns), canonical or zh-CN
    headers. ``date_order`` ("dmy" / "mdy"): how day/month-first dates are written (unset:
    one that reads both ways breaks ``paid_at_ambiguous_date``); ``assume_tz``: the zone of
    times without an offset (default UTC, the zone of a backtest's cutoff). ``lines``: each row's line
    in the file (default: row + 2, under a header), or a function returning them (called only
    when a row is refused). Raises ``ModelDataError`` (a
    ValueError): a required column missing, no rows, or ``OrdersFileRefused`` listing the
    rows that break a rule."""
    from tasks.extract import FileImportError, canonicalize_columns
    from tasks.validate import load_suites, record_hashes, validate_frame
    from userops.clock import utcnow

    try:
        raw = canonicalize_columns(df, "orders")
    except FileImportError as exc:  # the import's required columns are ORDER_COLUMNS
        raise ModelDataError("model.orders.missing_columns", columns=list(exc.values["missing"]), expected=list(ORDER_COLUMNS),
                             found=list(exc.values["found"])) from None
    raw = raw.reset_index(drop=True)
    malformed = malformed or []
    if len(raw) == 0 and not malformed:
        raise ModelDataError("model.orders.no_rows", path=str(path))
    assume_tz = assume_tz or "UTC"  # the cutoff's zone (see above)
    # the import's rules, all but its earliest year: a backtest may run on history older than the shop's
    outcome = validate_frame("orders", raw, load_suites(), now=utcnow(), full_load=False, assume_tz=assume_tz,
                             date_order=date_order, check_earliest=False)
    offenses = [
        {"line": int(r["line"]) if r.get("line") else "?", "order_id": (r.get("record") or {}).get("order_id"),
         "rule": "malformed_row", "extra": {"line": r.get("line") or "?", "found": r["found"], "expected": r["expected"]}}
        for r in malformed
    ]
    if len(outcome.bad):
        lines = np.arange(2, len(raw) + 2) if lines is None else np.asarray(lines() if callable(lines) else lines)
        at = pd.DataFrame({"record_hash": record_hashes(raw).to_numpy(), "line": lines})
        bad = outcome.bad[["source_id", "rule", "record_hash"]].merge(at, on="record_hash").drop_duplicates(["line", "rule"])
        offenses += [{"line": int(b.line), "order_id": b.source_id, "rule": b.rule} for b in bad.itertuples()]
    if offenses:
        offenses.sort(key=lambda o: (o["line"] if isinstance(o["line"], int) else 1 << 62))
        raise OrdersFileRefused(str(path), offenses, len({o["line"] for o in offenses}))
    good = outcome.good
    out = pd.DataFrame({c: good[c] for c in ORDER_COLUMNS})
    out["paid_at"] = out["paid_at"].astype("datetime64[ns]")
    out["amount"] = out["amount"].astype(float)
    for col in ("order_id", "customer_id"):
        # keep integer-looking ids as integers (faster); "007" stays a string
        s = out[col].astype(str)
        as_int = pd.to_numeric(s, errors="coerce")
        if len(s) and as_int.notna().all() and (as_int == as_int.round()).all() and not s.str.startswith("0").any() and (as_int.abs() < 2**62).all():
            out[col] = as_int.astype(np.int64)
    return out


def read_orders_file(path, date_order: str | None = None, assume_tz: str | None = None) -> pd.DataFrame:
    """Read an orders file as the import reads it (``tasks.extract.read_table_file``: CSV in
    UTF-8 or GB18030, .xlsx; zh-CN headers such as 订单号/支付时间 and values such as
    已支付) — or a .parquet — and check it by the import's rules (``normalize_orders``).
    An empty or unreadable file, a required column missing, or any row the import would
    quarantine raises ``ModelDataError`` (a ValueError) in the operator's language."""
    from tasks.extract import FileImportError, malformed_rows, read_table_file

    path = Path(path)
    suffix = path.suffix.lower()
    if path.exists() and path.is_file() and not path.read_bytes()[:4096].lstrip(b"\xef\xbb\xbf \t\r\n"):
        raise ModelDataError("model.orders.empty", path=str(path))
    try:
        if suffix == ".parquet":
            if not path.exists():
                raise FileImportError(f"{path}: no such file", "import.file.missing", path=path)
            try:
                df = pd.read_parquet(path)
            except Exception as exc:  # noqa: BLE001 - pyarrow's errors are not all OSError/ValueError
                # the reader's own text is English (and may quote the file): for engineers at debug only
                log.debug("orders: %s not read as Parquet (%s)", path.name, type(exc).__name__)
                raise ModelDataError("model.orders.parquet_unreadable", path=str(path)) from None
            return normalize_orders(df, date_order, assume_tz, path=str(path))
        frames = read_table_file(path, "orders", chunksize=500_000 if suffix in (".csv", ".txt", ".tsv") else None)
        frames = [frames] if isinstance(frames, pd.DataFrame) else list(frames)
    except FileImportError as exc:
        if exc.key == "import.file.columns":
            raise ModelDataError("model.orders.missing_columns", columns=list(exc.values["missing"]), expected=list(ORDER_COLUMNS),
                                 found=list(exc.values["found"])) from None
        if exc.key == "import.file.empty":
            raise ModelDataError("model.orders.empty", path=str(path)) from None
        raise _FileProblem(exc) from None
    malformed = [r for f in frames for r in malformed_rows(f)]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    # each row's record number: rows in file order, the ones left out for their field count in between
    # (a CSV's malformed rows carry the reader's record number; a sheet's row is its line)
    bad = sorted(int(r.get("record_no") or r["line"]) for r in malformed if r.get("record_no") or r.get("line"))
    records = np.setdiff1d(np.arange(2, len(df) + len(bad) + 2), bad)[: len(df)]
    if suffix not in (".csv", ".txt", ".tsv"):
        return normalize_orders(df, date_order, assume_tz, path=str(path), lines=records, malformed=malformed)

    def lines() -> np.ndarray:  # the line each record starts on (a quoted field may span lines): read only to name a bad row
        from tasks.extract import record_lines

        starts = record_lines(path)
        return np.where(records <= len(starts), starts[np.minimum(records, len(starts)) - 1], records)

    return normalize_orders(df, date_order, assume_tz, path=str(path), lines=lines, malformed=malformed)


def load_cdnow(path=None) -> pd.DataFrame:
    """CDNOW_master.txt -> canonical order frame (every row a paid order).

    The file is whitespace-separated: customer id, date YYYYMMDD, number of CDs, dollar
    value, with or without a header line.  ``path`` defaults to the copy shipped inside
    the ``lifetimes`` package.
    """
    if path is None:
        import lifetimes  # noqa: PLC0415 - optional, test-only dependency

        path = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"
    raw = pd.read_csv(path, sep=r"\s+", header=None, names=["customer_id", "date", "quantity", "amount"], dtype=str)
    raw = raw[raw["customer_id"].str.fullmatch(r"\d+")]  # drops a header line if present
    return pd.DataFrame(
        {
            "order_id": np.arange(1, len(raw) + 1, dtype=np.int64),
            "customer_id": raw["customer_id"].astype(np.int64).to_numpy(),
            "paid_at": pd.to_datetime(raw["date"], format="%Y%m%d").to_numpy(),
            "amount": raw["amount"].astype(float).to_numpy(),
            "status": "paid",
        }
    )
