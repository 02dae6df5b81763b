"""Customer tags and the daily health check, as the nightly stages ``tags`` and ``health``.

    refresh the order aggregate from tonight's delta -> recompute every tag -> keep the
    stage changes -> (weekly) refit the behaviour clusters
    take the health snapshot -> raise each threshold breach once (event + alert)
    -> publish the health report

Each stage takes ``as_of`` (the business day) and ``run_id`` and returns its figures with
``summary`` lines for the digest.
"""
from __future__ import annotations

from datetime import date

from prefect import flow

from tasks.health import emit_breaches_task, report_task, snapshot_task, summary_lines
from tasks.tags import refresh_tags_task, tags_summary_lines
from userops.clock import shop_today


@flow(name="refresh-tags", log_prints=True)
def refresh_tags(as_of: date | None = None, run_id: str | None = None) -> dict:
    """Tags, lifecycle stages and stage history for ``as_of`` (default: today in the shop)."""
    as_of = as_of or shop_today()
    stats = refresh_tags_task(as_of, run_id)
    stats["summary"] = tags_summary_lines(stats)
    return stats


@flow(name="health-check", log_prints=True)
def health_check(as_of: date | None = None, run_id: str | None = None) -> dict:
    """The daily health snapshot; a breached threshold raises its event and alert once."""
    as_of = as_of or shop_today()
    metrics = snapshot_task(as_of)
    emitted = emit_breaches_task(as_of)
    report = report_task(as_of, metrics)
    keep = ("members", "active", "buyers", "silent_share", "complaint_rate", "satisfaction", "nps", "repeat_rate",
            "retention_30d", "retention_90d", "conversion", "avg_ltv", "dau", "mau", "stages", "breaches")
    out = {k: metrics.get(k) for k in keep}
    out.update(as_of=str(as_of), emitted=[e["event"] for e in emitted], **report)
    out["summary"] = summary_lines(metrics)
    return out
