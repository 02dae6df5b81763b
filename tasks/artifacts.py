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
        "artifact.churn.header": {"zh-CN": "| 指标（同一验证集） | 新模型 | 当前冠军模型 |", "en": "| metric (same holdout) | this model | champion |"},
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
    lines = [t("artifact.churn.title", lang, version=out["version"], status=t(f"model.status.{out['status']}", lang)), "",
             out.get("reason_text") or out.get("reason") or "", "",
             t("artifact.churn.window", lang, train=out.get("train_cutoff", "—"), eval=out.get("eval_cutoff", "—"),
               h=out.get("horizon_days", "—"), n=f"{int(out.get('n_train') or 0):,}"), "",
             t("artifact.churn.header", lang), "|---|---:|---:|"]
    mine, champ = out.get("metrics") or {}, out.get("champion_metrics") or {}

    def fmt(metrics: dict, k: str) -> str:
        v = metrics.get(k)
        return "—" if v is None else (f"{int(v):,}" if k == "n" else f"{float(v):.4f}")

    for k in ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile", "churn_rate", "n"):
        lines.append(f"| {k} | {fmt(mine, k)} | {fmt(champ, k)} |")
    return "\n".join(lines) + "\n"


def publish_churn_model(out: dict) -> str:
    """Publish a training's outcome as ``churn-model``; returns the key (needs a run context)."""
    return publish_markdown("churn", churn_model_markdown(out), description=f"Churn model {out['version']}: {out['status']}")


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
    lines += [t("artifact.run.channel_line", lang, channel=ch, verdict=v) for ch, v in (delivery.get("channels") or {}).items()]
    return lines


def alert_delivery_happened(delivery: dict) -> bool:
    """Whether a delivery run did or tried anything worth a line in the UI."""
    return "error" in delivery or any(delivery.get(k) for k in ("sent", "merged", "deferred", "failed", "expired"))


def publish_quarantine_summary(as_of: date | str, run_id: str) -> dict:
    """Build this run's quarantine summary, publish it as ``nightly-quarantine``, and return
    the figures for the digest (``summary`` lines, ``quarantined`` count, ``by_rule``)."""
    rows, total = quarantine_run_summary(run_id)
    released = quarantine_released(run_id)
    key = publish_markdown(
        "quarantine",
        quarantine_markdown(as_of, run_id, rows, total, released=released),
        description=f"Quarantine summary, nightly run {as_of}",
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
