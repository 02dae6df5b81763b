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

from pathlib import Path

import numpy as np
import pandas as pd

from models.bgnbd import RecencyBaseline, bgnbd_churn_probability, bgnbd_from_features
from models.features import as_naive_utc_timestamp
from models.messages import ModelDataError
from models.train import TrainConfig, evaluate, prepare_windows, train_model
from userops.i18n import t

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
    evaluation labels are empty (cutoff too late for the data) or the training window
    cannot be trained on.
    """
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


def normalize_orders(df: pd.DataFrame) -> pd.DataFrame:
    """Canonical order frame: order_id, customer_id, paid_at (datetime64, tz-naive UTC),
    amount (float), status (lower-case 'paid' / 'refunded' / 'cancelled').
    A problem raises ``ModelDataError`` (a ValueError) naming the column and the rule."""
    missing = [c for c in ORDER_COLUMNS if c not in df.columns]
    if missing:
        raise ModelDataError("model.orders.missing_columns", columns=list(missing), expected=list(ORDER_COLUMNS))
    out = df[list(ORDER_COLUMNS)].copy()
    try:
        paid_at = pd.to_datetime(out["paid_at"], utc=True, format="mixed")
    except (ValueError, TypeError) as exc:  # pandas names the value and its row
        raise ModelDataError("model.orders.bad_paid_at", error=exc) from None
    out["paid_at"] = paid_at.dt.tz_localize(None)
    out["amount"] = pd.to_numeric(out["amount"], errors="coerce").astype(float)
    out["status"] = out["status"].astype(str).str.strip().str.lower()
    bad = ~out["status"].isin(STATUSES)
    if bad.any():
        examples = [str(s) for s in sorted(out.loc[bad, "status"].unique()[:5])]
        raise ModelDataError("model.orders.bad_status", values=examples, expected=list(STATUSES))
    return out


def read_orders_file(path) -> pd.DataFrame:
    """Read an orders file in the canonical import format (CSV, or .parquet/.xlsx by
    extension) with columns order_id, customer_id, paid_at, amount, status. A file that
    cannot be read or lacks a column raises ``ModelDataError`` (a ValueError)."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            df = pd.read_parquet(path)
        elif suffix in (".xlsx", ".xls"):
            df = pd.read_excel(path)
        else:
            df = pd.read_csv(path, dtype={"order_id": str, "customer_id": str, "status": str})
    except (OSError, ValueError) as exc:  # not a table pandas can read
        raise ModelDataError("model.orders.unreadable", path=str(path), error=exc) from None
    if suffix not in (".parquet", ".xlsx", ".xls"):
        # Keep integer-looking ids as integers (faster, and matches the warehouse);
        # a missing id column is named by normalize_orders.
        for col in ("order_id", "customer_id"):
            if col not in df.columns:
                continue
            as_int = pd.to_numeric(df[col], errors="coerce")
            if as_int.notna().all() and (as_int == as_int.round()).all() and not df[col].str.startswith("0").any():
                df[col] = as_int.astype(np.int64)
    return normalize_orders(df)


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
