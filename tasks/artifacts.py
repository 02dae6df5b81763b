"""Artifacts the operator reads in the Prefect UI, under stable keys.

Every nightly run publishes its reports under the *same* key each night, so the UI's
Artifacts page shows one entry per report with its full history (one version per run).
The keys live here so every part of the product uses the same ones:

| report | key |
|---|---|
| quarantine summary (this module) | ``nightly-quarantine`` |
| nightly digest (alerts) | ``nightly-digest`` |
| health report (tags/health) | ``health-report`` |
| campaign read-out (campaigns) | ``campaign-<campaign>`` e.g. ``campaign-awakening`` |
| communication calendar (campaigns) | ``campaign-calendar`` |
| churn model report (churn) | ``churn-model`` |
| crisis incident (crisis) | ``incident-<incident id>`` |
| the hourly watch's summary (crisis) | ``hourly-monitor`` |
| churn-warning recall plan (campaigns) | ``recall-plan`` |

The delivery flows that run every few minutes (``deliver-alerts``, ``deliver-messages``)
attach their summary to the run only (no key, :func:`publish_run_summary`), and only when
they delivered something: the Artifacts page is not flooded with "nothing due".

Use :func:`artifact_key` to build a key. Artifacts hold counts and rules, never a phone,
email, name, token or webhook URL (``userops.privacy`` masks record values where needed).

Plain functions first (testable without a Prefect server), the ``@task`` at the bottom.
"""
from __future__ import annotations

import re
from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE

from userops.db import get_engine, read_frame
from userops.i18n import labelled, register, t

ARTIFACT_KEYS: dict[str, str] = {
    "quarantine": "nightly-quarantine",
    "digest": "nightly-digest",
    "health": "health-report",
    "campaign": "campaign-{name}",
    "calendar": "campaign-calendar",
    "churn": "churn-model",
    "incident": "incident-{name}",
    "monitor": "hourly-monitor",
    "recall_plan": "recall-plan",
}

_KEY_OK = re.compile(r"^[a-z0-9-]+$")


def artifact_key(kind: str, name: str | None = None) -> str:
    """The stable artifact key for a report ``kind`` (see ``ARTIFACT_KEYS``).

    ``name`` fills the per-campaign / per-incident part; it is lower-cased and anything
    Prefect does not allow in a key (only ``a-z``, ``0-9`` and ``-``) becomes ``-``."""
    try:
        pattern = ARTIFACT_KEYS[kind]
    except KeyError:
        raise KeyError(f"no artifact kind {kind!r}; known: {', '.join(sorted(ARTIFACT_KEYS))}") from None
    if "{name}" in pattern:
        if not name:
            raise ValueError(f"artifact kind {kind!r} needs a name, e.g. artifact_key({kind!r}, 'awakening')")
        slug = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-") or "unnamed"
        pattern = pattern.replace("{name}", slug)
    if not _KEY_OK.match(pattern):  # pragma: no cover - guarded by the table above
        raise ValueError(f"invalid artifact key {pattern!r}")
    return pattern


register(
    {
        "artifact.churn.title": {"zh-CN": "## 流失模型 {version}：{status}", "en": "## Churn model {version}: {status}"},
        "artifact.churn.window": {
            "zh-CN": "训练：特征截至 {train}，标签取其后 {h} 天；验证（跨时间）：特征截至 {eval}，标签取其后 {h} 天。训练样本 {n} 人。",
            "en": "Trained on features as of {train}, labels over the next {h} days; validated out of time on features as of {eval}, labels over the next {h} days. {n} customers trained on.",
        },
        "artifact.churn.header": {
            "zh-CN": "| 指标（同一验证集） | 新模型 | {champion} | 含义 |",
            "en": "| metric (same holdout) | this model | {champion} | what it means |",
        },
        # the champion column: the champion the new model was measured against, or the new
        # model itself when it became the first champion (nothing to compare with)
        "artifact.churn.col.current": {"zh-CN": "当前冠军模型 {version}", "en": "champion {version}"},
        "artifact.churn.col.previous": {"zh-CN": "原冠军模型 {version}", "en": "previous champion {version}"},
        "artifact.churn.col.self": {"zh-CN": "当前冠军模型（即新模型）", "en": "champion (this model)"},
        "artifact.churn.col.none": {"zh-CN": "当前冠军模型（无）", "en": "champion (none)"},
        "artifact.churn.description": {"zh-CN": "流失模型 {version}：{status}", "en": "Churn model {version}: {status}"},
        "artifact.health.description": {"zh-CN": "客户健康度 {as_of}", "en": "Customer health {as_of}"},
        "artifact.quarantine.description": {"zh-CN": "数据隔离区汇总，夜间运行 {as_of}", "en": "Quarantine summary, nightly run {as_of}"},
        # the churn model's holdout figures in the operator's words: the churn-model artifact and
        # `userops model status` (its legend, model.cli.legend) read the same definitions
        "model.metric.roc_auc": {"zh-CN": "ROC AUC", "en": "ROC AUC"},
        "model.metric.pr_auc": {"zh-CN": "PR AUC", "en": "PR AUC"},
        "model.metric.brier": {"zh-CN": "Brier 分数", "en": "Brier score"},
        "model.metric.log_loss": {"zh-CN": "对数损失", "en": "log loss"},
        "model.metric.lift_top_decile": {"zh-CN": "前 10% 提升度", "en": "top-decile lift"},
        "model.metric.churn_rate": {"zh-CN": "流失率", "en": "churn rate"},
        "model.metric.n": {"zh-CN": "验证客户数", "en": "holdout customers"},
        "model.metric.window.help": {
            "zh-CN": "窗口 = 训练截止→验证截止；各指标都在验证期（验证截止后的预测期）上计算",
            "en": "window = training cutoff → holdout cutoff; every figure is measured on the holdout (the horizon after the holdout cutoff)",
        },
        "model.metric.roc_auc.help": {
            "zh-CN": "ROC AUC 衡量区分流失与留存客户的能力（0.5 相当于随机，1 为完美，越高越好）",
            "en": "ROC AUC: how well the model tells churners from stayers (0.5 = chance, 1 = perfect; higher is better)",
        },
        "model.metric.pr_auc.help": {
            "zh-CN": "PR AUC 衡量找出流失客户的精准度（越高越好）",
            "en": "PR AUC: how precisely it finds the churners (higher is better)",
        },
        "model.metric.brier.help": {
            "zh-CN": "Brier 分数衡量预测概率准不准（越低越好）",
            "en": "Brier score: how close the probabilities are (lower is better)",
        },
        "model.metric.log_loss.help": {
            "zh-CN": "对数损失也衡量预测概率准不准（越低越好）",
            "en": "log loss: also how close the probabilities are (lower is better)",
        },
        "model.metric.lift_top_decile.help": {
            "zh-CN": "提升度 = 风险最高的 10% 客户的流失率是全体流失率的几倍",
            "en": "lift: how many times the average churn rate the riskiest 10% of customers churn at",
        },
        "model.metric.churn_rate.help": {
            "zh-CN": "流失率 = 验证期内实际流失的客户占比",
            "en": "churn rate: the share of holdout customers who actually churned",
        },
        "model.metric.n.help": {
            "zh-CN": "验证客户数 = 参与验证的客户人数",
            "en": "holdout customers: how many customers the figures are measured on",
        },
        "model.metric.legend": {"zh-CN": "说明：{items}。", "en": "Key: {items}."},
        "model.metric.legend_sep": {"zh-CN": "；", "en": "; "},
        # run-log lines an operator reads in the Prefect UI
        "log.nightly.stage": {"zh-CN": "开始阶段：{stage}", "en": "stage {stage}"},
        "log.nightly.done": {"zh-CN": "夜间运行 {as_of} 完成，用时 {seconds} 秒", "en": "nightly {as_of} done in {seconds}s"},
        "log.churn.model": {"zh-CN": "流失模型 {version}：{status}。{reason}", "en": "Churn model {version}: {status}. {reason}"},
        "log.alerts.crash_queued": {
            "zh-CN": "运行 {run} 崩溃告警：已排队 {n} 条",
            "en": "crash alert for {run}: {n} queued",
        },
        "log.alerts.delivery_failed": {
            "zh-CN": "告警：发送失败（{error}），告警留在队列中，下次发送时重试",
            "en": "alerts: delivery failed ({error}); the alerts stay queued for the next delivery",
        },
        "log.alerts.quarantine_check_failed": {
            "zh-CN": "告警：{flow} 的隔离检查失败（{error}）",
            "en": "alerts: quarantine check of {flow} failed ({error})",
        },
        "artifact.quarantine.title": {
            "zh-CN": "## 数据隔离区 {as_of}",
            "en": "## Quarantine summary {as_of}",
        },
        "artifact.quarantine.none": {
            "zh-CN": "本次运行没有被拒绝的记录。",
            "en": "No record was rejected in this run.",
        },
        "artifact.quarantine.new": {
            "zh-CN": "本次运行新隔离 {n} 条记录（隔离区待处理共 {total} 条）。",
            "en": "{n} records quarantined in this run ({total} open in the quarantine).",
        },
        "artifact.quarantine.released": {
            "zh-CN": "本次运行处理了 {n} 条此前被隔离的记录（其客户或订单已入库，重新校验后放行；或已被更新的版本取代）。",
            "en": "{n} previously quarantined records settled in this run (validated again and loaded once their customer or order arrived, or superseded by a newer version).",
        },
        "artifact.quarantine.header": {
            "zh-CN": "| 数据表 | 规则 | 条数 | 原因示例 |",
            "en": "| table | rule | records | example reason |",
        },
        "artifact.quarantine.hint": {
            "zh-CN": "查看明细：`userops quarantine list --run {run_id}`（手机号、邮箱已脱敏）。",
            "en": "Details: `userops quarantine list --run {run_id}` (phone and email masked).",
        },
        "artifact.quarantine.line": {
            "zh-CN": "隔离：{table} 按规则 {rule} 拒绝 {n} 条",
            "en": "quarantine: {table} rejected {n} by rule {rule}",
        },
        "artifact.run.nothing": {"zh-CN": "本次运行没有需要处理的事项。", "en": "Nothing to do in this run."},
        "artifact.run.monitor": {"zh-CN": "每小时巡检 {when}", "en": "Hourly watch {when}"},
        "artifact.run.recall_plan": {"zh-CN": "流失预警召回计划 {as_of}", "en": "Churn-warning recall plan {as_of}"},
        "artifact.run.deliver_alerts": {"zh-CN": "告警投递 {when}", "en": "Alert delivery {when}"},
        "artifact.run.deliver_messages": {"zh-CN": "消息投递 {when}", "en": "Message delivery {when}"},
        "artifact.run.alerts_logged_line": {
            "zh-CN": "另有 {logged} 条告警只写入了运行日志，没有发出（未配置告警渠道）",
            "en": "{logged} more alert(s) only written to the run log, not sent (no alert channel configured)",
        },
        "artifact.run.alerts_line": {
            "zh-CN": "告警：发送 {sent} 条（合并 {merged} 条），推迟 {deferred} 条，失败 {failed} 条，过期 {expired} 条",
            "en": "Alerts: {sent} sent ({merged} merged), {deferred} deferred, {failed} failed, {expired} expired",
        },
        "artifact.run.channel_line": {"zh-CN": "渠道 {channel}：{verdict}", "en": "Channel {channel}: {verdict}"},
        "artifact.quarantine.line_none": {
            "zh-CN": "隔离：本次无拒绝记录",
            "en": "quarantine: nothing rejected",
        },
    }
)


def churn_model_markdown(out: dict, lang: str | None = None) -> str:
    """A training's outcome (``models.scoring.train_and_register``) as Markdown: the decision
    in words, the window, and the holdout metrics beside the champion's on the same holdout."""
    champion_header, champion_metrics = _champion_column(out, lang)
    lines = [t("artifact.churn.title", lang, version=out["version"], status=t(f"model.status.{out['status']}", lang)), "",
             out.get("reason_text") or out.get("reason") or "", "",
             t("artifact.churn.window", lang, train=out.get("train_cutoff", "—"), eval=out.get("eval_cutoff", "—"),
               h=out.get("horizon_days", "—"), n=f"{int(out.get('n_train') or 0):,}"), "",
             t("artifact.churn.header", lang, champion=champion_header), "|---|---:|---:|---|"]
    mine, champ = out.get("metrics") or {}, champion_metrics

    def fmt(metrics: dict, k: str) -> str:
        v = metrics.get(k)
        if v is None:
            return "—"
        if k == "n":
            return f"{int(v):,}"
        return f"{100 * float(v):.1f}%" if k == "churn_rate" else f"{float(v):.4f}"  # a share in percent, as the health report

    for k in METRICS:
        lines.append(f"| {t(f'model.metric.{k}', lang)} | {fmt(mine, k)} | {fmt(champ, k)} | {t(f'model.metric.{k}.help', lang)} |")
    return "\n".join(lines) + "\n"


def _champion_column(out: dict, lang: str | None) -> tuple[str, dict]:
    """The champion column's header and figures. Measured against a champion: that champion
    (now the previous one if the new model won). No champion before: a new model that became
    champion is the champion, its own figures fill the column; else there is none."""
    prev, champ = out.get("previous_champion"), out.get("champion_metrics")
    if champ:
        key = "artifact.churn.col.previous" if out.get("status") == "champion" and prev != out.get("version") else "artifact.churn.col.current"
        return t(key, lang, version=prev or "").strip(), champ
    if out.get("status") == "champion":
        return t("artifact.churn.col.self", lang), out.get("metrics") or {}
    return t("artifact.churn.col.none", lang), {}


# the holdout figures a training reports, in the order the artifact lists them
METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile", "churn_rate", "n")


def metric_legend(lang: str | None = None, metrics=("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile"), window: bool = True) -> str:
    """What the window and each figure mean, one sentence: the legend under the churn-model
    artifact, under ``userops model status`` and (no window) under ``userops model backtest``."""
    items = ([t("model.metric.window.help", lang)] if window else []) + [t(f"model.metric.{k}.help", lang) for k in metrics]
    return t("model.metric.legend", lang, items=t("model.metric.legend_sep", lang).join(items))


def publish_churn_model(out: dict) -> str:
    """Publish a training's outcome as ``churn-model``; returns the key (needs a run context)."""
    return publish_markdown("churn", churn_model_markdown(out), description=t("artifact.churn.description", version=out["version"], status=t(f"model.status.{out['status']}")))


def quarantine_run_summary(run_id: str, engine=None) -> tuple[list[dict], int]:
    """This run's newly quarantined records grouped by table and rule, and how many records
    are still open in the quarantine (released ones, whose customer or order has arrived
    since, are not: ``tasks.quarantine.settle_quarantine``).

    Only rule names, counts and the rule's reason text are read: never the record itself."""
    engine = engine or get_engine()
    df = read_frame(
        engine,
        "SELECT source_table, rule, COUNT(*) AS n, MIN(reason) AS reason FROM quarantine "
        "WHERE run_id = :r GROUP BY source_table, rule ORDER BY source_table, rule",
        {"r": run_id},
    )
    total = int(read_frame(engine, "SELECT COUNT(*) AS n FROM quarantine WHERE resolved_at IS NULL")["n"].iloc[0])
    rows = [
        {"table": r.source_table, "rule": r.rule, "n": int(r.n), "reason": _one_line(r.reason)}
        for r in df.itertuples()
    ]
    rows.sort(key=lambda r: (r["table"], -r["n"], r["rule"]))
    return rows, total


def _one_line(text: str | None, limit: int = 120) -> str:
    s = " ".join(str(text or "").split()).replace("|", "/")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def quarantine_released(run_id: str, engine=None) -> int:
    """Quarantined records this run released (validated again and loaded) or closed."""
    engine = engine or get_engine()
    return int(read_frame(engine, "SELECT COUNT(*) AS n FROM quarantine WHERE resolved_run_id = :r", {"r": run_id})["n"].iloc[0])


def quarantine_markdown(as_of: date | str, run_id: str, rows: list[dict], total: int, lang: str | None = None, released: int = 0) -> str:
    """The quarantine summary as Markdown for the Prefect UI."""
    lines = [t("artifact.quarantine.title", lang, as_of=as_of), ""]
    n = sum(r["n"] for r in rows)
    if released:
        lines += [t("artifact.quarantine.released", lang, n=released), ""]
    if not rows:
        lines.append(t("artifact.quarantine.none", lang))
    else:
        lines += [t("artifact.quarantine.new", lang, n=n, total=total), "", t("artifact.quarantine.header", lang), "|---|---|---:|---|"]
        lines += [f"| {r['table']} | {r['rule']} | {r['n']} | {r['reason']} |" for r in rows]
        lines += ["", t("artifact.quarantine.hint", lang, run_id=run_id)]
    return "\n".join(lines) + "\n"


def quarantine_summary_lines(rows: list[dict], lang: str | None = None) -> list[str]:
    """Operator-readable lines for the nightly digest."""
    if not rows:
        return [t("artifact.quarantine.line_none", lang)]
    return [t("artifact.quarantine.line", lang, table=r["table"], rule=r["rule"], n=r["n"]) for r in rows]


def publish_markdown(kind: str, markdown: str, description: str, name: str | None = None) -> str:
    """Publish a Markdown artifact under the stable key of ``kind``; returns the key.

    Needs a Prefect run context (call it from a task or flow)."""
    from prefect.artifacts import create_markdown_artifact

    key = artifact_key(kind, name)
    create_markdown_artifact(markdown=markdown, key=key, description=description)
    return key


def run_summary_markdown(title: str, lines: list[str], lang: str | None = None) -> str:
    """A run's summary lines as Markdown: the title, one bullet per line (or "nothing to
    do"). The lines are the flow's own ``summary`` (counts, SKUs, campaign names; the
    flows never put a phone, email or name in them); they are scrubbed once more anyway."""
    from userops.privacy import scrub_text

    body = [f"- {_one_line(scrub_text(str(line)), 300)}" for line in lines if str(line).strip()]
    return "\n".join([f"## {title}", ""] + (body or [t("artifact.run.nothing", lang)])) + "\n"


def publish_run_summary(title: str, lines: list[str], kind: str | None = None) -> str | None:
    """Publish a run's summary in the Prefect UI: under the stable key of ``kind`` (history
    on the Artifacts page), or with ``kind=None`` on the run's Artifacts tab only. Returns the
    key. Needs a Prefect run context."""
    if kind:
        return publish_markdown(kind, run_summary_markdown(title, lines), description=title)
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=run_summary_markdown(title, lines), description=title)
    return None


def alert_delivery_lines(delivery: dict, lang: str | None = None) -> list[str]:
    """``deliver_pending``'s counts and per-channel verdicts as summary lines."""
    if "error" in delivery:
        return [labelled(t("artifact.run.deliver_alerts", lang, when="").strip(), delivery["error"], lang)]
    lines = [t("artifact.run.alerts_line", lang, **{k: delivery.get(k, 0) for k in ("sent", "merged", "deferred", "failed", "expired")})]
    if delivery.get("logged"):  # the log channel: not sent anywhere
        lines.append(t("artifact.run.alerts_logged_line", lang, logged=delivery["logged"]))
    lines += [t("artifact.run.channel_line", lang, channel=ch, verdict=v) for ch, v in (delivery.get("channels") or {}).items()]
    return lines


def alert_delivery_happened(delivery: dict) -> bool:
    """Whether a delivery run did or tried anything worth a line in the UI."""
    return "error" in delivery or any(delivery.get(k) for k in ("sent", "logged", "merged", "deferred", "failed", "expired"))


def publish_quarantine_summary(as_of: date | str, run_id: str) -> dict:
    """Build this run's quarantine summary, publish it as ``nightly-quarantine``, and return
    the figures for the digest (``summary`` lines, ``quarantined`` count, ``by_rule``)."""
    rows, total = quarantine_run_summary(run_id)
    released = quarantine_released(run_id)
    key = publish_markdown(
        "quarantine",
        quarantine_markdown(as_of, run_id, rows, total, released=released),
        description=t("artifact.quarantine.description", as_of=as_of),
    )
    return {
        "artifact_key": key,
        "quarantined": sum(r["n"] for r in rows),
        "quarantine_total": total,
        "by_rule": [{k: r[k] for k in ("table", "rule", "n")} for r in rows],
        "summary": quarantine_summary_lines(rows),
    }


# ----------------------------------------------------------------------------- tasks
@task(name="publish-run-summary", cache_policy=NO_CACHE)
def run_summary_task(title: str, lines: list[str], kind: str | None = None) -> str | None:
    return publish_run_summary(title, lines, kind)


@task(name="publish-quarantine-summary")
def quarantine_summary_task(as_of: date, run_id: str) -> dict:
    return publish_quarantine_summary(as_of, run_id)
