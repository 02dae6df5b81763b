"""The churn-model registry in the warehouse (table ``model_versions``).

Every trained model is kept, with its training window, features, holdout metrics, the
joblib artifact and a status:

* ``champion``   the one model that scores customers (at most one row at a time);
* ``challenger`` trained but not promoted (``reason`` says why);
* ``retired``    a former champion (``reason`` says what replaced it).

``reason`` holds the decision as a code with its figures (JSON, ``models.promotion.promotion_decision``), not
words: ``reason_text`` renders it in the reader's language when it is read (``versions``,
``userops model status``). Rows written before hold plain text, shown as written.

Promotion (``register``): the current champion is loaded and re-evaluated on the
*candidate's* holdout (features at the candidate's evaluation cutoff T, labels
[T, T+H)), and ``models.promotion.promotion_decision`` compares the two sets of metrics.
The champion's metrics on that holdout are stored with the candidate
(``champion_metrics``) so the decision can be checked later.

All functions take a SQLAlchemy connection and run inside the caller's transaction.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from datetime import date, datetime

import joblib
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from models.promotion import PROMOTING, promotion_decision
from models.train import TrainedModel, evaluate_model, features_compatible
from userops.clock import utcnow
from userops.db import insert_rows, read_frame
from userops.i18n import register as register_messages
from userops.i18n import t
from userops.settings import get_settings

METRIC_KEYS = ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile", "n", "churn_rate")

_CACHE: dict[str, TrainedModel] = {}  # version -> unpickled model (artifacts are immutable)


@dataclass
class Decision:
    version: str
    status: str  # champion / challenger
    promoted: bool
    reason: str  # the decision in English (the log's); model_versions.reason stores its code and figures
    text: str  # the same decision for the operator, in the configured language
    metrics: dict  # the candidate's holdout metrics
    champion_metrics: dict | None  # the previous champion on the candidate's holdout
    previous_champion: str | None
    new: bool = True  # False when this exact model (same version) was registered before

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "status": self.status,
            "promoted": self.promoted,
            "reason": self.reason,
            "reason_text": self.text,
            "metrics": {k: self.metrics.get(k) for k in METRIC_KEYS},
            "champion_metrics": None if self.champion_metrics is None else {k: self.champion_metrics.get(k) for k in METRIC_KEYS},
            "previous_champion": self.previous_champion,
            "new": self.new,
        }


# ----------------------------------------------------------------------------- JSON
def _clean(v):
    """JSON-safe: numpy scalars -> Python, NaN/inf -> None, Timestamps -> ISO."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_clean(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (pd.Timestamp, datetime, date)):
        return v.isoformat()
    return v


def dumps(v) -> str:
    return json.dumps(_clean(v), ensure_ascii=False, sort_keys=False)


def to_bytes(model: TrainedModel) -> bytes:
    buf = io.BytesIO()
    joblib.dump(model, buf, compress=3)
    return buf.getvalue()


def from_bytes(blob: bytes) -> TrainedModel:
    return joblib.load(io.BytesIO(bytes(blob)))


# ----------------------------------------------------------------------------- reads
def versions(conn: Connection, lang: str | None = None) -> pd.DataFrame:
    """Every registered model (no artifacts), newest first; metrics parsed into dicts;
    ``reason`` in the reader's language (``lang``, default the configured one) and
    ``reason_data`` the stored code and figures (None for a row written as plain text)."""
    df = read_frame(
        conn,
        "SELECT version, trained_at, trained_as_of, train_cutoff, eval_cutoff, horizon_days, kind, features, "
        "metrics, champion_metrics, status, reason, promoted_at, retired_at FROM model_versions "
        "ORDER BY trained_at DESC, version DESC",
        parse_dates=["trained_at", "promoted_at", "retired_at"],
    )
    for col in ("metrics", "champion_metrics", "features"):
        df[col] = [json.loads(x) if isinstance(x, str) and x else None for x in df[col]]  # a few rows
    df["reason_data"] = [_reason_data(x) for x in df["reason"]]
    df["reason"] = [reason_text(x, lang) if isinstance(x, str) else None for x in df["reason"]]
    return df


def champion_row(conn: Connection) -> dict | None:
    """The champion's registry row (no artifact), or None."""
    df = read_frame(
        conn,
        "SELECT version, trained_at, trained_as_of, eval_cutoff, horizon_days, metrics FROM model_versions "
        "WHERE status = 'champion' ORDER BY trained_at DESC LIMIT 1",
        parse_dates=["trained_at"],
    )
    if df.empty:
        return None
    row = df.iloc[0].to_dict()
    row["metrics"] = json.loads(row["metrics"]) if row.get("metrics") else {}
    for k in ("trained_as_of", "eval_cutoff"):
        v = row.get(k)
        row[k] = None if v is None or (not isinstance(v, (date, str)) and pd.isna(v)) else pd.Timestamp(v).date()
    return row


def load_model(conn: Connection, version: str) -> TrainedModel:
    model = _CACHE.get(version)
    if model is None:
        blob = conn.execute(sa.text("SELECT artifact FROM model_versions WHERE version = :v"), {"v": version}).scalar()
        if blob is None:
            raise LookupError(f"model version {version!r} is not in the registry")
        model = from_bytes(blob)
        _CACHE[version] = model
    return model


def load_champion(conn: Connection) -> TrainedModel | None:
    row = champion_row(conn)
    return None if row is None else load_model(conn, row["version"])


def champion_age_days(conn: Connection, as_of: date) -> int | None:
    """Days between the champion's training day and ``as_of`` (None without a champion)."""
    row = champion_row(conn)
    if row is None:
        return None
    trained = row.get("trained_as_of") or pd.Timestamp(row["trained_at"]).date()
    return (pd.Timestamp(as_of).date() - trained).days


# ----------------------------------------------------------------------------- writes
def save(
    conn: Connection,
    model: TrainedModel,
    status: str,
    reason: str,
    trained_as_of: date | None = None,
    champion_metrics: dict | None = None,
) -> str:
    """Insert (or update the status/reason of) one model version; returns the version."""
    if status not in ("champion", "challenger", "retired"):
        raise ValueError(f"unknown model status {status!r}")
    now = utcnow().replace(microsecond=0)
    row = {
        "version": model.version,
        "trained_at": now,
        "trained_as_of": trained_as_of,
        "train_cutoff": model.local_date(model.train_cutoff),
        "eval_cutoff": model.local_date(model.eval_cutoff),
        "horizon_days": int(model.horizon_days),
        "kind": model.kind,
        "features": dumps(list(model.model_features)),
        "metrics": dumps(model.metrics),
        "champion_metrics": None if champion_metrics is None else dumps(champion_metrics),
        "summary": dumps(model.summary()),
        "status": status,
        "reason": reason,
        "promoted_at": now if status == "champion" else None,
        "retired_at": None,
        "artifact": to_bytes(model),
    }
    # One row with a binary artifact: a plain parameterized INSERT (COPY has no bytea text form here).
    exists = conn.execute(sa.text("SELECT 1 FROM model_versions WHERE version = :v"), {"v": model.version}).first()
    if exists:
        _set_status(conn, model.version, status, reason)
    else:
        insert_rows(conn, "model_versions", [row])
    _CACHE[model.version] = model
    return model.version


def _set_status(conn: Connection, version: str, status: str, reason: str) -> None:
    now = utcnow().replace(microsecond=0)
    extra = ", promoted_at = :t" if status == "champion" else (", retired_at = :t" if status == "retired" else "")
    conn.execute(
        sa.text(f"UPDATE model_versions SET status = :s, reason = :r{extra} WHERE version = :v"),
        {"s": status, "r": reason, "v": version, "t": now},
    )


def _existing(conn: Connection, version: str) -> dict | None:
    df = read_frame(conn, "SELECT status, reason, metrics, champion_metrics FROM model_versions WHERE version = :v", {"v": version})
    if df.empty:
        return None
    r = df.iloc[0].to_dict()
    r["metrics"] = json.loads(r["metrics"]) if r.get("metrics") else {}
    r["champion_metrics"] = json.loads(r["champion_metrics"]) if r.get("champion_metrics") else None
    return r


def register(
    conn: Connection,
    model: TrainedModel,
    orders: pd.DataFrame,
    customers: pd.DataFrame | None,
    trained_as_of: date | None = None,
    tolerance: float | None = None,
    lang: str | None = None,
) -> Decision:
    """Save a newly trained model and decide whether it replaces the champion.

    The champion is re-evaluated on the candidate's holdout (same customers, same label
    window) from ``orders``/``customers`` (the frames the candidate was trained on).
    """
    tol = get_settings().churn.promotion_tolerance if tolerance is None else float(tolerance)
    prev = _existing(conn, model.version)
    if prev is not None:  # the same data trained the same model again: nothing changes
        return Decision(
            model.version, prev["status"], prev["status"] == "champion", reason_text(prev["reason"], "en"),
            t("model.promotion.same", lang, version=model.version, status=t(f"model.status.{prev['status']}", lang)),
            prev["metrics"], prev["champion_metrics"], None, new=False,
        )
    champ = champion_row(conn)
    champ_metrics = None
    if champ is not None:
        champ_model = load_model(conn, champ["version"])
        # A champion built on an older feature set cannot be measured on today's features:
        # it is replaced like a first model (its own holdout metrics stay in the registry).
        if features_compatible(champ_model):
            champ_metrics = evaluate_model(champ_model, orders, customers, model.eval_cutoff, model.horizon_days)
    if champ is not None and champ_metrics is None:  # not comparable: replaced, and the reason names it
        data = {"code": "champion_old_features", "champion": champ["version"]}
    else:
        data = promotion_decision(model.metrics, champ_metrics, tol)
    promote, reason, text = data["code"] in PROMOTING, reason_text(data, "en"), reason_text(data, lang)
    # the registry keeps the decision's code and figures; `userops model status` words them
    # in the reader's language (not the language of the night that trained it)
    if promote:
        if champ is not None:
            _set_status(conn, champ["version"], "retired", dumps({"code": "retired", "by": model.version, "reason": data}))
        save(conn, model, "champion", dumps(data), trained_as_of, champ_metrics)
    else:
        save(conn, model, "challenger", dumps(data), trained_as_of, champ_metrics)
    return Decision(
        model.version, "champion" if promote else "challenger", promote, reason, text,
        model.metrics, champ_metrics, None if champ is None else champ["version"],
    )


# ----------------------------------------------------------------------------- words
def _f(v) -> str:
    return "—" if v is None else f"{float(v):.3f}"


PROMOTION_CODES = (*PROMOTING, "no", "unmeasurable")  # the codes a stored reason may hold (promotion_decision)


def _reason_data(stored) -> dict | None:
    """A stored reason's code and figures, or None for a plain-text reason (rows written before)."""
    if isinstance(stored, dict):
        data = stored
    elif isinstance(stored, str) and stored.lstrip().startswith("{"):
        try:
            data = json.loads(stored)
        except ValueError:
            return None
    else:
        return None
    if not isinstance(data, dict):
        return None
    if data.get("code") in PROMOTION_CODES:
        return data
    if data.get("code") == "retired" and (data.get("reason") is None or _reason_data(data["reason"]) is not None):
        return data
    return None


def reason_text(stored, lang: str | None = None) -> str:
    """A registry reason in the reader's language: a stored code with its figures is worded
    now; a plain-text reason (written before codes were stored) is shown as written."""
    data = _reason_data(stored)
    if data is None:
        return "" if stored is None else str(stored)
    code = data["code"]
    if code == "retired":
        inner = data.get("reason")
        return t("model.retired", lang, version=data.get("by") or "—", reason=reason_text(inner, lang) if inner else "").rstrip()
    if code in ("first", "unmeasurable", "champion_unmeasurable"):
        return t(f"model.promotion.{code}", lang)
    if code == "champion_old_features":
        return t("model.promotion.champion_old_features", lang, version=data.get("champion") or "—")
    figures = t(
        "model.promotion.figures", lang, c_auc=_f(data.get("c_auc")), h_auc=_f(data.get("h_auc")),
        c_brier=_f(data.get("c_brier")), h_brier=_f(data.get("h_brier")),
        tol="—" if data.get("tol") is None else f"{float(data['tol']):g}",
    )
    if code == "yes":
        return t("model.promotion.yes", lang, figures=figures)
    problems = []
    if data.get("auc_worse") is not None:
        problems.append(t("model.promotion.auc_worse", lang, d=f"{float(data['auc_worse']):.3f}"))
    if data.get("brier_worse") is not None:
        problems.append(t("model.promotion.brier_worse", lang, d=f"{float(data['brier_worse']):.3f}"))
    sep = "，" if (lang or get_settings().language) == "zh-CN" else " and "
    return t("model.promotion.no", lang, problems=sep.join(problems), figures=figures)


register_messages(
    {
        "model.status.champion": {"zh-CN": "冠军模型", "en": "champion"},
        "model.status.challenger": {"zh-CN": "挑战者", "en": "challenger"},
        "model.status.retired": {"zh-CN": "已退役", "en": "retired"},
        "model.retired": {"zh-CN": "已退役：由 {version} 取代。{reason}", "en": "Retired: replaced by {version}. {reason}"},
        "model.promotion.first": {
            "zh-CN": "已晋升：目前没有冠军模型，首个训练的模型成为冠军模型。",
            "en": "Promoted: there is no champion yet, so the first trained model becomes champion.",
        },
        "model.promotion.same": {
            "zh-CN": "同样的数据训练出同一个模型 {version}，登记不变（{status}）。",
            "en": "The same data trained the same model {version} again; the registry is unchanged ({status}).",
        },
        "model.promotion.figures": {
            "zh-CN": "ROC AUC {c_auc} 对 {h_auc}，Brier {c_brier} 对 {h_brier}（新模型对冠军模型，容差 {tol}）",
            "en": "ROC AUC {c_auc} vs {h_auc}, Brier {c_brier} vs {h_brier} (candidate vs champion, tolerance {tol})",
        },
        "model.promotion.yes": {
            "zh-CN": "已晋升：在同一验证集上新模型不劣于冠军模型：{figures}。",
            "en": "Promoted: the candidate does not lose to the champion on the same holdout: {figures}.",
        },
        "model.promotion.no": {
            "zh-CN": "保留为挑战者：{problems}，超出容差：{figures}。",
            "en": "Kept as challenger: {problems}, more than the tolerance: {figures}.",
        },
        "model.promotion.auc_worse": {"zh-CN": "ROC AUC 低 {d}", "en": "its ROC AUC is lower by {d}"},
        "model.promotion.brier_worse": {"zh-CN": "Brier 分数差 {d}", "en": "its Brier score is worse by {d}"},
        "model.promotion.unmeasurable": {
            "zh-CN": "保留为挑战者：新模型在验证集上没有 ROC AUC 或 Brier 分数，无法比较。",
            "en": "Kept as challenger: the candidate has no ROC AUC or Brier score on the holdout, so it cannot be compared.",
        },
        "model.promotion.champion_old_features": {
            "zh-CN": "已晋升：冠军模型 {version} 用的是旧的特征集，无法在今天的特征上与新模型比较，由新模型取代（它自己的验证指标仍留在登记表中）。",
            "en": "Promoted: the champion {version} was built on an older feature set and cannot be measured on today's features, so the new model replaces it (its own holdout metrics stay in the registry).",
        },
        "model.promotion.champion_unmeasurable": {
            "zh-CN": "已晋升：冠军模型在该验证集上没有 ROC AUC 或 Brier 分数，由可度量的新模型取代。",
            "en": "Promoted: the champion has no ROC AUC or Brier score on this holdout, so the measurable candidate replaces it.",
        },
    }
)
