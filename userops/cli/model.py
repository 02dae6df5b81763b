"""Churn model commands: ``userops model train|status|score|backtest``."""
from __future__ import annotations

import json
import math
from typing import Optional

import typer

from userops.i18n import register as register_messages
from userops.i18n import join_list, pad, t

model_app = typer.Typer(help="Churn model: train, status, score, backtest.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(model_app, name="model")


from userops.cli.options import date_order as _date_order  # noqa: E402  (dmy / mdy / ymd)
from userops.cli.options import day as _day  # noqa: E402  (a YYYY-MM-DD option)


def _f(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{float(v):.{digits}f}"


def _pct(v) -> str:
    """A share in percent (the churn rate), as the health report and the churn-model artifact show it."""
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * float(v):.1f}%"


_MOMENTS = ("trained_at", "promoted_at", "retired_at")  # naive UTC in the warehouse
_DATES = ("trained_as_of", "train_cutoff", "eval_cutoff")  # shop-local days


def _json_value(key: str, v):
    """One registry field for ``model status --json``: a missing value (None, NaN, NaT) is
    null; dates as YYYY-MM-DD, times in ISO 8601 with their UTC offset (stored in UTC)."""
    import pandas as pd

    if v is None or (not isinstance(v, (dict, list, str)) and pd.isna(v)):
        return None
    if key in _MOMENTS:
        return pd.Timestamp(v).tz_localize("UTC").isoformat()
    return str(v) if key in _DATES else v


@model_app.command("train")
def train(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Business day YYYY-MM-DD (default: today in the shop)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Train on the latest complete window; promote only if it does not lose to the champion."""
    from models.messages import localized
    from models.scoring import retrain

    try:
        out = retrain(_day(as_of))
    except ValueError as exc:
        typer.echo(t("model.cli.train_failed", error=localized(exc)), err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False, default=str))
        return
    m = out["metrics"]
    typer.echo(t("model.cli.trained", version=out["version"], train_cutoff=out["train_cutoff"], eval_cutoff=out["eval_cutoff"], n=f"{out['n_train']:,}"))
    typer.echo(t("model.cli.metrics", auc=_f(m.get("roc_auc")), pr=_f(m.get("pr_auc")), brier=_f(m.get("brier")), ll=_f(m.get("log_loss")), lift=_f(m.get("lift_top_decile"), 2)))
    typer.echo(out["reason_text"])


@model_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Every model version with its metrics and status, the champion, and the last drift check."""
    from models import registry
    from userops.db import get_engine, read_frame

    engine = get_engine()
    with engine.connect() as conn:
        vs = registry.versions(conn)
        drift = read_frame(conn, "SELECT as_of, model_version, max_psi, threshold, breached, breached_features FROM drift_checks ORDER BY as_of DESC, created_at DESC LIMIT 1")
        scored = read_frame(conn, "SELECT model_version, as_of, COUNT(*) AS n FROM churn_scores GROUP BY model_version, as_of")
    if as_json:
        payload = {
            "versions": [{k: _json_value(k, v) for k, v in r.items()} for r in vs.to_dict("records")],
            "last_drift": None if drift.empty else {k: (v if not hasattr(v, "item") else v.item()) for k, v in drift.iloc[0].to_dict().items()},
            "scores": scored.to_dict("records"),
        }
        typer.echo(json.dumps(payload, ensure_ascii=False, default=str))
        return
    if vs.empty:
        typer.echo(t("model.cli.no_models"))
        return
    from userops.clock import to_shop_str

    champ = vs[vs["status"] == "champion"]
    typer.echo(t("model.cli.champion", version=champ["version"].iloc[0]) if len(champ) else t("model.cli.no_champion"))
    typer.echo("")
    for r in vs.itertuples():  # one line per model version
        m = r.metrics or {}
        typer.echo(
            t(
                "model.cli.version_line",
                version=r.version,
                status=t(f"model.status.{r.status}"),
                trained=to_shop_str(r.trained_at),  # stored in UTC, shown in shop time as the rest of the CLI
                window=f"{r.train_cutoff}→{r.eval_cutoff}",
                auc=_f(m.get("roc_auc")),
                pr=_f(m.get("pr_auc")),
                brier=_f(m.get("brier")),
                ll=_f(m.get("log_loss")),
                lift=_f(m.get("lift_top_decile"), 2),
            )
        )
        if r.reason:
            typer.echo("    " + str(r.reason))
    from tasks.artifacts import metric_legend

    typer.echo(metric_legend())  # what each figure means, for an operator: the churn-model artifact's definitions
    typer.echo("")
    if drift.empty:
        typer.echo(t("model.cli.no_drift"))
    else:
        d = drift.iloc[0]
        breached = bool(d["breached"]) if not isinstance(d["breached"], str) else d["breached"] in ("1", "t", "true")
        key = "model.cli.drift_breach" if breached else "model.cli.drift_ok"
        feats = join_list(json.loads(d["breached_features"]) if d["breached_features"] else [])
        typer.echo(t(key, as_of=str(d["as_of"])[:10], version=d["model_version"], max_psi=_f(d["max_psi"], 2), threshold=f"{float(d['threshold']):g}", features=feats))
        typer.echo(t("model.cli.psi_help"))
    for r in scored.itertuples():
        typer.echo(t("model.cli.scores", version=r.model_version, as_of=str(r.as_of)[:10], n=f"{int(r.n):,}"))


@model_app.command("score")
def score(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Business day YYYY-MM-DD (default: today in the shop)."),
    no_train: bool = typer.Option(False, "--no-train", help="Never train, even without a champion or with a stale one."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Score every customer with the champion (training first if there is none), check drift."""
    from models.scoring import score_night

    out = score_night(_day(as_of), train_if_needed=not no_train)
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False, default=str))
        return
    for line in out.get("summary", []):
        typer.echo(line)
    if out.get("drift"):
        typer.echo(t("model.cli.psi_help"))  # what the drift line's PSI is


@model_app.command("backtest")
def backtest(
    orders: str = typer.Option(..., "--orders", help="Orders file (CSV/.parquet/.xlsx, UTF-8 or GB18030, headers as the import, e.g. 订单号, 支付时间): order_id, customer_id, paid_at, amount, status. A row breaking an import rule refuses the file."),
    cutoff: str = typer.Option(..., "--cutoff", help="Evaluation cutoff T, YYYY-MM-DD (training uses T minus the horizon)."),
    horizon: int = typer.Option(90, "--horizon", min=1, help="Horizon H in days."),
    as_json: bool = typer.Option(False, "--json", help="Print exactly one JSON object: model, recency, bgnbd."),
    date_order: Optional[str] = typer.Option(
        None, "--date-order",
        help="How to read dates written day and month first, e.g. 01/11/2026: dmy (1 November) or mdy (January 11). "
             "Default ymd: such a date that reads both ways refuses the file (ambiguous_date), never guessed.",
    ),
) -> None:
    """Train at cutoff−horizon, evaluate at cutoff, beside recency and BG/NBD baselines."""
    from pathlib import Path

    from models.backtest import backtest as run_backtest
    from models.backtest import backtest_warnings, read_orders_file
    from models.messages import localized

    T = _day(cutoff, "--cutoff")
    order = _date_order(date_order)
    path = Path(orders)
    if not path.exists():
        typer.echo(t("model.cli.no_file", path=orders), err=True)
        raise typer.Exit(2)
    try:  # the file read and checked by the import's rules: a row breaking one refuses it
        df = read_orders_file(path, date_order=order)
    except ValueError as exc:
        typer.echo(t("model.cli.backtest_failed", error=localized(exc)), err=True)
        raise typer.Exit(2)
    try:
        result = run_backtest(df, T, horizon)
    except ValueError as exc:  # a bad orders file, a cutoff the data cannot support
        typer.echo(t("model.cli.backtest_failed", error=localized(exc)), err=True)
        raise typer.Exit(1)
    warnings = backtest_warnings(df, T, horizon)
    if as_json:
        for w in warnings:
            typer.echo(t("model.cli.warning", text=w), err=True)
        clean = {k: {m: (None if isinstance(v, float) and not math.isfinite(v) else v) for m, v in d.items()} for k, d in result.items()}
        typer.echo(json.dumps(clean, ensure_ascii=False))
        return
    for w in warnings:
        typer.echo(t("model.cli.warning", text=w))
    first = result["model"]
    typer.echo(t("model.cli.backtest_head", cutoff=str(T), horizon=horizon, n=f"{first['n']:,}", rate=_pct(first["churn_rate"])))
    typer.echo(" ".join([pad("", 10)] + [pad(h, 9, ">") for h in ("ROC AUC", "PR AUC", "Brier", t("model.cli.col.log_loss"))]))
    for name in ("model", "recency", "bgnbd"):
        m = result[name]
        typer.echo(" ".join([pad(t("model.cli.row." + name), 10)] + [pad(_f(m[k]), 9, ">") for k in ("roc_auc", "pr_auc", "brier", "log_loss")]))
    beaten = _baseline_wins(result)
    if beaten:
        typer.echo(t("model.cli.baseline_beats", items=t("model.metric.legend_sep").join(beaten)))
    from tasks.artifacts import metric_legend

    typer.echo(t("model.cli.backtest_rows", horizon=horizon))  # what each row is
    typer.echo(metric_legend(metrics=_BACKTEST_METRICS, window=False))  # and each column: status's legend


_BACKTEST_METRICS = ("roc_auc", "pr_auc", "brier", "log_loss")
_HIGHER_IS_BETTER = {"roc_auc": True, "pr_auc": True, "brier": False, "log_loss": False}


def _baseline_wins(result: dict) -> list[str]:
    """Each metric on which a baseline beats the model, as the table shows the figures (three
    decimals: a difference the table does not show is not claimed)."""
    out = []
    for name in ("recency", "bgnbd"):
        for k in _BACKTEST_METRICS:
            mine, theirs = _f(result["model"].get(k)), _f(result[name].get(k))
            if "—" in (mine, theirs) or mine == theirs:
                continue
            if (float(theirs) > float(mine)) == _HIGHER_IS_BETTER[k]:
                out.append(t("model.cli.baseline_win", baseline=t("model.cli.row." + name), metric=t("model.metric." + k), theirs=theirs, mine=mine))
    return out


register_messages(
    {
        "model.cli.train_failed": {"zh-CN": "无法训练：{error}", "en": "Cannot train: {error}"},
        "model.cli.trained": {
            "zh-CN": "已训练 {version}：训练截止 {train_cutoff}，验证截止 {eval_cutoff}，训练样本 {n} 位客户",
            "en": "Trained {version}: training cutoff {train_cutoff}, holdout cutoff {eval_cutoff}, {n} training customers",
        },
        "model.cli.metrics": {
            "zh-CN": "验证集：ROC AUC {auc}，PR AUC {pr}，Brier {brier}，对数损失 {ll}，前 10% 提升度 {lift}",
            "en": "Holdout: ROC AUC {auc}, PR AUC {pr}, Brier {brier}, log loss {ll}, top-decile lift {lift}",
        },
        "model.cli.no_models": {"zh-CN": "模型库为空：运行 `userops model train`。", "en": "No model yet: run `userops model train`."},
        "model.cli.champion": {"zh-CN": "冠军模型：{version}", "en": "Champion: {version}"},
        "model.cli.no_champion": {"zh-CN": "没有冠军模型。", "en": "No champion."},
        "model.cli.version_line": {
            "zh-CN": "{version}  [{status}]  训练于 {trained}（店铺时间）  窗口 {window}  ROC AUC {auc}  PR AUC {pr}  Brier {brier}  对数损失 {ll}  提升度 {lift}",
            "en": "{version}  [{status}]  trained {trained} (shop time)  window {window}  ROC AUC {auc}  PR AUC {pr}  Brier {brier}  log loss {ll}  lift {lift}",
        },
        "model.cli.no_drift": {"zh-CN": "还没有漂移检查。", "en": "No drift check yet."},
        "model.cli.drift_ok": {
            "zh-CN": "最近漂移检查 {as_of}（{version}）：正常，最大 PSI {max_psi}（阈值 {threshold}）",
            "en": "Last drift check {as_of} ({version}): stable, max PSI {max_psi} (threshold {threshold})",
        },
        "model.cli.drift_breach": {
            "zh-CN": "最近漂移检查 {as_of}（{version}）：⚠️ 漂移，{features}，最大 PSI {max_psi}（阈值 {threshold}）",
            "en": "Last drift check {as_of} ({version}): ⚠️ drift in {features}, max PSI {max_psi} (threshold {threshold})",
        },
        "model.cli.scores": {"zh-CN": "评分：模型 {version}，{as_of}，{n} 位客户", "en": "Scores: model {version}, {as_of}, {n} customers"},
        "model.cli.no_file": {"zh-CN": "找不到文件 {path}", "en": "No such file: {path}"},
        "model.cli.backtest_failed": {"zh-CN": "回测失败：{error}", "en": "Backtest failed: {error}"},
        "model.cli.warning": {"zh-CN": "注意：{text}", "en": "Warning: {text}"},
        "model.cli.backtest_head": {
            "zh-CN": "回测：截止 {cutoff}，窗口 {horizon} 天，{n} 位客户，流失率 {rate}",
            "en": "Backtest at {cutoff}, horizon {horizon} days: {n} customers, churn rate {rate}",
        },
        "model.cli.row.model": {"zh-CN": "模型", "en": "model"},
        "model.cli.col.log_loss": {"zh-CN": "对数损失", "en": "log loss"},
        "model.cli.row.recency": {"zh-CN": "最近购买", "en": "recency"},
        "model.cli.row.bgnbd": {"zh-CN": "BG/NBD", "en": "BG/NBD"},
        "model.cli.backtest_rows": {
            "zh-CN": "各行：模型 = 在截止前 {horizon} 天训练的流失模型；最近购买 = 只按距上次购买天数排序的对照基线；BG/NBD = 经典的购买/流失概率模型（对照基线）。",
            "en": "Rows: model = the churn model, trained {horizon} days before the cutoff; recency = a baseline ranking by days since the last purchase only; BG/NBD = the classic buy-till-you-die probability model (a baseline).",
        },
        "model.cli.baseline_beats": {"zh-CN": "基线胜过模型的指标：{items}。", "en": "Where a baseline beats the model: {items}."},
        "model.cli.baseline_win": {"zh-CN": "{baseline} {metric} {theirs}（模型 {mine}）", "en": "{baseline} {metric} {theirs} (model {mine})"},
        "model.cli.psi_help": {
            "zh-CN": "说明：PSI（群体稳定性指数）衡量今天客户的主要特征和风险分数的分布与模型训练时相比变化了多少；0 表示没有变化，越大变化越大，达到阈值即视为漂移（模型可能不再可靠）。",
            "en": "Key: PSI (population stability index) measures how far the spread of today's customers' main features and risk scores has moved from the model's training population; 0 = unchanged, larger = more, at the threshold it counts as drift (the model may no longer be reliable).",
        },
    }
)
