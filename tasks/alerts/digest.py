"""The nightly digest: one message for the operator after each nightly run.

Reads whatever the warehouse has (tables other parts fill may still be empty - a section
without data says so or is left out):

* run status and duration (``pipeline_runs``; stage times and ingest counts when the run's
  stats are there, otherwise tonight's quarantine counts from ``quarantine``),
* lifecycle-stage changes of the day (``stage_history``),
* health figures vs the previous snapshot (``health_snapshots``), breaches of the day
  (``health_breaches``), churn risk bands and drift (``churn_scores``, ``drift_checks``),
* campaign touches tonight (``touches``),
* what needs a human: open incidents and their due steps, touches awaiting review,
  undelivered alerts, breaches.

Plain functions (no Prefect needed); the ``@task`` wrappers are at the bottom.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from tasks.alerts.messages import METRIC_LABELS, STAGE_LABELS, STEP_LABELS, TOUCH_STATUS_LABELS, label
from tasks.alerts.safety import clean
from tasks.crisis.messages import step_status
from tasks.runs import stage_name
from userops.clock import utcnow
from userops.db import get_engine, read_frame
from userops.i18n import t
from userops.settings import get_settings

log = logging.getLogger("userops.alerts")

DIGEST_KIND = "digest"
DIGEST_ARTIFACT_KEY = "nightly-digest"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# health_snapshots columns shown, and how: share (percent, delta in points) or count
HEALTH_FIGURES = [
    ("members", "count"),
    ("active", "count"),
    ("silent_share", "share"),
    ("complaint_rate", "share"),
    ("satisfaction", "share"),
    ("nps", "number"),
    ("repeat_rate", "share"),
    ("dau", "count"),
    ("mau", "count"),
]


@dataclass
class Digest:
    as_of: date
    run_id: str
    lang: str
    title: str
    body: str  # chat markdown (no link: the link travels separately)
    severity: str
    link: str | None
    figures: dict = field(default_factory=dict)
    # the lines of each section read from the warehouse, by builder method, and when: a
    # digest built later while the warehouse is down shows them as read then
    sections: dict = field(default_factory=dict)
    read_at: datetime | None = None

    @property
    def markdown(self) -> str:
        """The Prefect artifact: the same text with the link inline."""
        out = f"# {self.title}\n\n{_artifact_body(self.body)}\n"
        if self.link:
            out += f"\n[{t('digest.link', self.lang)}]({self.link})\n"
        return out


def _artifact_body(body: str) -> str:
    from tasks.alerts.channels import paragraphs_md

    return paragraphs_md(body)


# ----------------------------------------------------------------------------- formatting
def fmt_duration(seconds: float | None, lang: str) -> str:
    if seconds is None:
        return "—"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if lang == "zh-CN":
        return (f"{h} 小时 " if h else "") + (f"{m} 分 " if h or m else "") + f"{sec} 秒"
    return (f"{h}h " if h else "") + (f"{m}m " if h or m else "") + f"{sec}s"


def _fmt_value(v, how: str) -> str:
    if v is None:
        return "—"
    if how == "share":
        return f"{float(v):.1%}"
    if how == "count":
        return f"{int(round(float(v))):,}"
    return f"{float(v):.1f}"


def _fmt_delta(v, prev, how: str) -> str:
    if v is None or prev is None:
        return ""
    d = float(v) - float(prev)
    if how == "share":
        pts = d * 100
        return f" ({pts:+.1f}pp)" if abs(pts) >= 0.05 else " (±0)"
    if how == "count":
        return f" ({int(round(d)):+,})" if round(d) else " (±0)"
    return f" ({d:+.1f})" if abs(d) >= 0.05 else " (±0)"


def _isnull(v) -> bool:
    try:
        return v is None or v != v  # NaN
    except Exception:  # pragma: no cover
        return False


def run_link(run_id: str | None) -> str | None:
    """The run's page in the Prefect UI, for a Prefect run id on a server that outlives the
    run (tasks.alerts.failures.flow_run_link)."""
    from tasks.alerts.failures import flow_run_link

    return flow_run_link(run_id) if run_id and _UUID.match(str(run_id)) else None


def _local(ts, lang: str) -> str:
    if ts is None or _isnull(ts):
        return "—"
    if isinstance(ts, str):
        ts = datetime.fromisoformat(ts)
    tz = ZoneInfo(get_settings().timezone)
    return ts.replace(tzinfo=timezone.utc).astimezone(tz).strftime("%m-%d %H:%M")


# ----------------------------------------------------------------------------- sections
class _Builder:
    def __init__(self, engine: Engine, as_of: date, run_id: str, lang: str, now: datetime, error: BaseException | None = None):
        self.engine = engine
        self.error = error
        self.as_of = as_of
        self.run_id = run_id
        self.lang = lang
        self.now = now
        self.lines: list[str] = []
        self.figures: dict = {}
        self.human: list[str] = []
        self.run_started: datetime | None = None
        self.failure_human: str | None = None  # first under "needs a human" when the run failed
        self.parts: dict[str, list[str]] = {}  # the lines of each section read, by builder method

    def q(self, sql: str, params: dict | None = None, parse_dates=None):
        return read_frame(self.engine, sql, params or {}, parse_dates=parse_dates)

    def section(self, fn) -> None:
        """One section; one the warehouse cannot answer (a table missing or changed, a lost
        connection) says so in its place and under "needs a human", and the rest goes out."""
        start = len(self.lines)
        try:
            fn()
        except sa.exc.SQLAlchemyError as exc:
            self.unreadable(SECTION_KEYS.get(fn.__name__, "digest.section.other"), exc)
        else:
            self.parts[fn.__name__] = self.lines[start:]

    def unreadable(self, key: str, exc: BaseException) -> None:
        what, error = t(key, self.lang), type(exc).__name__
        self.lines += ["- " + t("digest.section.unreadable", self.lang, section=what, error=error), ""]
        self.human.append(t("digest.human.unreadable", self.lang, section=what, error=error))
        log.warning("%s", t("digest.human.unreadable", self.lang, section=what, error=error))

    # -- run
    def run_section(self) -> None:
        L = self.lang
        df = self.q("SELECT status, started_at, finished_at, stats, error FROM pipeline_runs WHERE run_id = :r", {"r": self.run_id}, parse_dates=["started_at", "finished_at"])
        stats = {}
        if df.empty:
            status, duration = t("digest.status.unknown", L), None
        else:
            row = df.iloc[0]
            raw = str(row["status"])
            key = {"running": "digest.status.running", "completed": "digest.status.completed", "failed": "digest.status.failed"}.get(raw)
            status = t(key, L) if key else raw
            start = None if _isnull(row["started_at"]) else row["started_at"].to_pydatetime()
            end = None if _isnull(row["finished_at"]) else row["finished_at"].to_pydatetime()
            self.run_started = start
            duration = ((end or self.now) - start).total_seconds() if start else None
            try:
                stats = json.loads(row["stats"]) if row["stats"] else {}
            except (TypeError, ValueError):
                stats = {}
            self.figures["run"] = {"status": raw, "duration_s": duration}
        self.lines.append(t("digest.run", L, status=status, duration=fmt_duration(duration, L)))
        failed = (not df.empty and str(df.iloc[0]["status"]) == "failed") or self.error is not None
        if failed:
            self.failure_lines(None if df.empty or _isnull(df.iloc[0]["error"]) else str(df.iloc[0]["error"]))
        stages = stats.get("stages") if isinstance(stats, dict) else None
        if isinstance(stages, dict) and stages:
            self.lines.append(t("digest.stages", L, stages=t("list.sep", L).join(f"{stage_name(k, L)} {fmt_duration(v, L)}" for k, v in stages.items())))
        self.lines.append("")
        self.ingest_section(stats.get("ingest") if isinstance(stats, dict) else None)

    def failure_lines(self, stored_error: str | None) -> None:
        """Why the run failed (the operator's account, scrubbed) and what to do about it."""
        from tasks.alerts.problems import describe_failure

        problem = describe_failure(self.error, None if self.error is not None else stored_error, lang=self.lang)
        self.lines.append("- " + problem.line(self.lang))
        self.failure_human = problem.human(self.lang)
        self.figures["failure"] = {"kind": problem.kind, "step": problem.step, "reason": problem.reason}

    def ingest_section(self, ingest: dict | None) -> None:
        L = self.lang
        self.lines.append(t("digest.ingest.head", L))
        quarantined_total = 0
        if isinstance(ingest, dict) and ingest:
            for table, res in ingest.items():
                if not isinstance(res, dict):
                    continue
                quarantined_total += int(res.get("quarantined") or 0)
                self.lines.append("- " + t("digest.ingest.line", L, table=table, read=f"{int(res.get('read') or 0):,}", loaded=f"{int(res.get('loaded') or 0):,}", quarantined=f"{int(res.get('quarantined') or 0):,}"))
            self.figures["ingest"] = ingest
        else:
            q = self.q("SELECT source_table, COUNT(*) AS n FROM quarantine WHERE run_id = :r GROUP BY source_table ORDER BY source_table", {"r": self.run_id})
            if q.empty:
                self.lines.append("- " + t("digest.ingest.none", L))
            for r in q.itertuples():
                quarantined_total += int(r.n)
                self.lines.append("- " + t("digest.ingest.qline", L, table=r.source_table, quarantined=f"{int(r.n):,}"))
            self.figures["quarantined_by_table"] = {r.source_table: int(r.n) for r in q.itertuples()}
        rules = self.q("SELECT rule, COUNT(*) AS n FROM quarantine WHERE run_id = :r GROUP BY rule ORDER BY COUNT(*) DESC, rule LIMIT 5", {"r": self.run_id})
        if not rules.empty:
            self.lines.append("- " + t("digest.ingest.rules", L, rules=t("list.sep", L).join(f"{r.rule} {int(r.n):,}" for r in rules.itertuples())))
        self.figures["quarantined"] = quarantined_total
        self.lines.append("")

    # -- lifecycle
    def stage_section(self) -> None:
        L = self.lang
        df = self.q(
            "SELECT from_stage, to_stage, COUNT(*) AS n FROM stage_history WHERE changed_on = :d GROUP BY from_stage, to_stage ORDER BY COUNT(*) DESC, to_stage LIMIT 8",
            {"d": self.as_of},
        )
        self.lines.append(t("digest.stage.head", L))
        if df.empty:
            self.lines.append("- " + t("digest.stage.none", L))
        for r in df.itertuples():
            frm = t("digest.stage.first", L) if _isnull(r.from_stage) else label(STAGE_LABELS, r.from_stage, L)
            self.lines.append("- " + t("digest.stage.line", L, from_stage=frm, to_stage=label(STAGE_LABELS, r.to_stage, L), n=f"{int(r.n):,}"))
        self.figures["stage_changes"] = [{"from": None if _isnull(r.from_stage) else r.from_stage, "to": r.to_stage, "n": int(r.n)} for r in df.itertuples()]
        self.lines.append("")

    # -- health
    def health_section(self) -> None:
        L = self.lang
        cols = ", ".join(c for c, _ in HEALTH_FIGURES)
        cur = self.q(f"SELECT as_of, {cols} FROM health_snapshots WHERE as_of = :d", {"d": self.as_of})
        if cur.empty:  # the health stage has not run tonight: the latest snapshot up to as_of
            cur = self.q(f"SELECT as_of, {cols} FROM health_snapshots WHERE as_of <= :d ORDER BY as_of DESC LIMIT 1", {"d": self.as_of})
        if cur.empty:
            self.lines += [t("digest.health.head_plain", L), "- " + t("digest.health.none", L), ""]
            return
        c = cur.iloc[0]
        prev = self.q(f"SELECT as_of, {cols} FROM health_snapshots WHERE as_of < :d ORDER BY as_of DESC LIMIT 1", {"d": c["as_of"]})
        p = prev.iloc[0] if not prev.empty else None
        self.lines.append(t("digest.health.head", L, prev=str(p["as_of"])[:10]) if p is not None else t("digest.health.head_first", L))
        figs = {}
        for col, how in HEALTH_FIGURES:
            v = None if _isnull(c[col]) else c[col]
            if v is None:
                continue
            pv = None if p is None or _isnull(p[col]) else p[col]
            figs[col] = {"value": float(v), "previous": None if pv is None else float(pv)}
            self.lines.append(f"- {label(METRIC_LABELS, col, L)} {_fmt_value(v, how)}{_fmt_delta(v, pv, how)}")
        self.figures["health"] = figs
        br = self.q("SELECT metric, value, threshold FROM health_breaches WHERE as_of = :d ORDER BY metric", {"d": self.as_of})
        for r in br.itertuples():
            how = dict(HEALTH_FIGURES).get(r.metric, "number")
            self.lines.append("- " + t("digest.health.breach", L, metric=label(METRIC_LABELS, r.metric, L), value=_fmt_value(None if _isnull(r.value) else r.value, how), threshold=_fmt_value(None if _isnull(r.threshold) else r.threshold, how)))
        if not br.empty:
            self.human.append(t("digest.human.breaches", L, n=len(br)))
        self.figures["breaches"] = [r.metric for r in br.itertuples()]
        self.report_line(str(c["as_of"])[:10])
        self.lines.append("")

    def report_line(self, day: str) -> None:
        """The day's HTML health report (written by the health stage on this machine): its
        link when the reports are served, else its name and where it lies (never file://)."""
        from tasks.health import report_path
        from userops.reports import report_reference, report_url

        path = report_path(date.fromisoformat(day))
        if not path.exists():
            return
        self.lines.append("- " + t("health.report.link", self.lang, report=report_reference(path, self.lang)))
        self.figures["health_report"] = report_url(path) or str(path)

    def churn_section(self) -> None:
        L = self.lang
        bands = self.q("SELECT risk_band, COUNT(*) AS n FROM churn_scores WHERE as_of = :d GROUP BY risk_band", {"d": self.as_of})
        drift = self.q("SELECT model_version FROM drift_checks WHERE as_of = :d AND breached = :b", {"d": self.as_of, "b": True})
        if bands.empty and drift.empty:
            return
        if not bands.empty:
            counts = {r.risk_band: int(r.n) for r in bands.itertuples()}
            self.figures["churn_bands"] = counts
            self.lines.append("- " + t("digest.churn.bands", L, high=f"{counts.get('high', 0):,}", medium=f"{counts.get('medium', 0):,}", low=f"{counts.get('low', 0):,}"))
        for r in drift.itertuples():
            self.lines.append("- " + t("digest.churn.drift", L, version=r.model_version))
            self.human.append(t("digest.churn.drift", L, version=r.model_version).replace("⚠️ ", ""))
        self.lines.append("")

    # -- campaigns
    def campaign_section(self) -> None:
        L = self.lang
        since = self.run_started or _day_start_utc(self.as_of)
        df = self.q(
            "SELECT campaign, status, COUNT(*) AS n FROM touches WHERE planned_at >= :s OR sent_at >= :s GROUP BY campaign, status ORDER BY campaign, status",
            {"s": since},
        )
        self.lines.append(t("digest.campaigns.head", L))
        if df.empty:
            self.lines.append("- " + t("digest.campaigns.none", L))
        by: dict[str, dict[str, int]] = {}
        for r in df.itertuples():
            by.setdefault(r.campaign, {})[r.status] = int(r.n)
        order = ["sent", "planned", "awaiting_review", "in_flight", "failed", "suppressed", "control"]
        for camp, counts in by.items():
            parts = [f"{label(TOUCH_STATUS_LABELS, s, L)} {counts[s]:,}" for s in order if s in counts]
            parts += [f"{s} {n:,}" for s, n in counts.items() if s not in order]
            self.lines.append("- " + t("digest.campaigns.line", L, campaign=clean(camp), counts=t("list.sep", L).join(parts)))
        self.figures["campaigns"] = by
        self.lines.append("")

    # -- needs a human
    def human_section(self) -> None:
        L = self.lang
        try:
            inc = self.q("SELECT COUNT(*) AS n FROM incidents WHERE status = 'open'")
            n_open = int(inc["n"].iloc[0])
            if n_open:
                self.human.insert(0, t("digest.human.incidents", L, n=n_open))
                steps = self.q(
                    "SELECT s.incident_id, s.step, s.deadline_at, s.status FROM incident_steps s JOIN incidents i ON i.incident_id = s.incident_id "
                    "WHERE i.status = 'open' AND s.status <> 'done' ORDER BY s.deadline_at LIMIT 5",
                    parse_dates=["deadline_at"],
                )
                for r in steps.itertuples():
                    self.human.append(
                        t("digest.human.step", L, incident=clean(r.incident_id), step=label(STEP_LABELS, r.step, L), deadline=_local(None if _isnull(r.deadline_at) else r.deadline_at.to_pydatetime(), L), status=step_status(r.status, L))
                    )
            self.figures["open_incidents"] = n_open
        except sa.exc.SQLAlchemyError as exc:
            self.unreadable("digest.section.incidents", exc)
        try:
            rv = int(self.q("SELECT COUNT(*) AS n FROM touches WHERE status = 'awaiting_review'")["n"].iloc[0])
            if rv:
                self.human.append(t("digest.human.reviews", L, n=f"{rv:,}"))
            self.figures["awaiting_review"] = rv
        except sa.exc.SQLAlchemyError as exc:
            self.unreadable("digest.section.reviews", exc)
        und = int(
            self.q(
                "SELECT COUNT(*) AS n FROM alert_outbox WHERE kind <> 'digest' AND (status = 'failed' OR (status IN ('pending', 'sending') AND attempts > 0))"
            )["n"].iloc[0]
        )
        if und:
            self.human.append(t("digest.human.alerts", L, n=und))
        self.figures["undelivered_alerts"] = und
        self.close_human()

    def close_human(self) -> None:
        """The "needs a human" list that ends the digest, the run's failure first."""
        if self.failure_human:
            self.human.insert(0, self.failure_human)
        self.lines.append(t("digest.human.head", self.lang))
        self.lines += ["- " + h for h in self.human] if self.human else ["- " + t("digest.human.none", self.lang)]
        self.figures["needs_human"] = list(self.human)

    def digest(self, severity: str, **extra) -> Digest:
        """The digest of the lines built (blank runs folded, nothing unsafe)."""
        body = re.sub(r"\n{3,}", "\n\n", clean("\n".join(self.lines).strip()))
        return Digest(as_of=self.as_of, run_id=self.run_id, lang=self.lang, title=t("digest.title", self.lang, as_of=self.as_of.isoformat()),
                      body=body, severity=severity, link=run_link(self.run_id), figures=self.figures, **extra)


def _day_start_utc(d: date) -> datetime:
    tz = ZoneInfo(get_settings().timezone)
    return datetime(d.year, d.month, d.day, tzinfo=tz).astimezone(timezone.utc).replace(tzinfo=None)


# the digest's sections by builder method, named as the operator reads them (digest.section.*)
SECTION_KEYS = {
    "run_section": "digest.section.run",
    "stage_section": "digest.section.stages",
    "health_section": "digest.section.health",
    "churn_section": "digest.section.churn",
    "campaign_section": "digest.section.campaigns",
    "human_section": "digest.section.human",
}


def build_digest(as_of: date, run_id: str, engine: Engine | None = None, lang: str | None = None, now: datetime | None = None,
                 error: BaseException | None = None, known: dict | None = None, draft: Digest | None = None) -> Digest:
    """Build tonight's digest from the warehouse (every section tolerates empty tables).
    ``error``: the exception the run failed with (its failure hook has it); otherwise a
    failed run's reason comes from ``pipeline_runs.error``. When the warehouse cannot be
    reached at all, the digest holds what the run knows in memory (``known``: by default
    ``tasks.runs.run_in_memory``; the sections of an earlier ``draft`` read from the
    warehouse) and says which figures are missing (``offline_digest``)."""
    engine = engine or get_engine()
    lang = lang or get_settings().language
    now = now or utcnow()
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as exc:
        if known is None:
            from tasks.runs import run_in_memory

            known = run_in_memory(run_id)
        return offline_digest(as_of, run_id, exc, known=known, draft=draft, lang=lang, now=now, error=error)
    b = _Builder(engine, as_of, run_id, lang, now, error=error)
    for fn in (b.run_section, b.stage_section, b.health_section, b.churn_section, b.campaign_section, b.human_section):
        b.section(fn)
    attention = bool(b.human) or bool(b.figures.get("quarantined"))
    return b.digest("error" if b.failure_human else "warning" if attention else "info",
                    sections={k: v for k, v in b.parts.items() if k in _LATER_SECTIONS}, read_at=now)


# the sections an offline digest can take from an earlier draft (the run's own come from memory)
_LATER_SECTIONS = ("stage_section", "health_section", "churn_section", "campaign_section")


def offline_digest(as_of: date, run_id: str, exc: BaseException, known: dict | None = None, draft: Digest | None = None,
                   lang: str | None = None, now: datetime | None = None, error: BaseException | None = None) -> Digest:
    """The digest when the warehouse cannot be read at all (``exc``): what the run holds in
    memory - its status, why it failed, stage times and each stage's summary lines, rows
    extracted, loaded and quarantined (``known``, as ``tasks.runs.run_in_memory`` gives it) -,
    the sections an earlier ``draft`` read from the warehouse (marked with the time they were
    read), that the warehouse could not be read, and which figures are missing. No query."""
    from tasks.alerts.problems import describe_failure, warehouse_unreachable_text
    from userops.i18n import join_list

    L = lang or get_settings().language
    now = now or utcnow()
    known = known or {}
    stats = known.get("stats") if isinstance(known.get("stats"), dict) else {}
    b = _Builder(None, as_of, run_id, L, now, error=error)
    raw = "failed" if error is not None else known.get("status")
    key = {"running": "digest.status.running", "completed": "digest.status.completed", "failed": "digest.status.failed"}.get(raw or "")
    started = known.get("started_at")
    duration = stats.get("duration_s")
    if duration is None and isinstance(started, datetime):
        duration = ((known.get("finished_at") or now) - started).total_seconds()
    b.lines.append(t("digest.run", L, status=t(key, L) if key else t("digest.offline.status_unknown", L), duration=fmt_duration(duration, L)))
    b.figures["run"] = {"status": raw, "duration_s": duration}
    if raw == "failed":
        b.failure_lines(known.get("error"))
    stages = stats.get("stages") if isinstance(stats.get("stages"), dict) else {}
    if stages:
        b.lines.append(t("digest.stages", L, stages=t("list.sep", L).join(f"{stage_name(k, L)} {fmt_duration(v, L)}" for k, v in stages.items())))
    for name in stages:  # each finished stage's outcome, as the run log shows it
        out = stats.get(name)
        for line in (out.get("summary") or []) if isinstance(out, dict) else []:
            b.lines.append("- " + t("digest.offline.stage_line", L, stage=stage_name(name, L), line=clean(str(line))))
    if raw == "failed" and stats.get("failed_stage"):
        b.lines.append("- " + t("digest.offline.stage_failed", L, stage=stage_name(str(stats["failed_stage"]), L)))
    b.lines.append("")
    missing = ["digest.section.quarantine_rules"]
    ingest = stats.get("ingest")
    if isinstance(ingest, dict) and ingest:
        b.lines.append(t("digest.ingest.head", L))
        for table, res in ingest.items():
            if isinstance(res, dict):
                b.lines.append("- " + t("digest.ingest.line", L, table=table, read=f"{int(res.get('read') or 0):,}", loaded=f"{int(res.get('loaded') or 0):,}", quarantined=f"{int(res.get('quarantined') or 0):,}"))
        b.figures["ingest"] = ingest
        b.figures["quarantined"] = sum(int(r.get("quarantined") or 0) for r in ingest.values() if isinstance(r, dict))
        b.lines.append("")
    else:
        missing.insert(0, "digest.section.ingest")
    earlier = {k: v for k, v in (draft.sections if draft is not None else {}).items() if k in _LATER_SECTIONS and v}
    missing += [SECTION_KEYS[k] for k in _LATER_SECTIONS if k not in earlier]
    missing += ["digest.section.incidents", "digest.section.reviews", "digest.section.undelivered"]
    detail = describe_failure(exc, lang=L).detail or type(exc).__name__
    missing_words = join_list((t(k, L) for k in missing), L)
    b.lines += ["⚠️ " + t("digest.offline.note", L, problem=warehouse_unreachable_text(detail, L), missing=missing_words), ""]
    if earlier:
        b.lines.append(t("digest.offline.earlier", L, at=_local(draft.read_at, L)))
        for k in _LATER_SECTIONS:
            b.lines += earlier.get(k, [])
    b.figures["warehouse_unreadable"] = {"error": type(exc).__name__, "missing": [k.rsplit(".", 1)[1] for k in missing]}
    if (b.figures.get("failure") or {}).get("kind") != "warehouse":  # else the failure line says it already
        b.human.append(t("digest.offline.human", L, fix=t("problem.fix.warehouse", L)))
    b.close_human()
    return b.digest("error" if b.failure_human else "warning")


def digest_key(run_id: str, as_of: date) -> str:
    return f"{DIGEST_KIND}|{run_id}|{as_of.isoformat()}"


def _digest_payload(d: Digest) -> dict:
    payload = {"link": d.link, "link_label": t("alert.view_run", d.lang)} if d.link else {}
    payload["run_id"] = d.run_id
    return payload


def queue_digest(d: Digest, hold_seconds: float = 0) -> int:
    """Queue the digest: one per nightly run (dedupe key ``digest|<run id>|<as_of>``).
    ``hold_seconds``: do not deliver before then (the run's completion hook finalizes and
    releases it sooner; the hold is the safety net if the run never completes)."""
    from tasks.alerts import enqueue_alert
    from tasks.alerts.outbox import OUTBOX

    with get_engine().begin() as conn:  # queued and held in one transaction: no deliverer sees it early
        n = enqueue_alert(DIGEST_KIND, d.title, d.body, severity=d.severity, subject=d.run_id, day=d.as_of, payload=_digest_payload(d), conn=conn)
        if n and hold_seconds:
            conn.execute(
                OUTBOX.update()
                .where(OUTBOX.c.dedupe_key == digest_key(d.run_id, d.as_of), OUTBOX.c.status == "pending")
                .values(next_attempt_at=utcnow() + timedelta(seconds=hold_seconds))
            )
    return n


def finalize_digest(run_id: str, as_of: date | str | None = None, engine: Engine | None = None, error: BaseException | None = None) -> dict:
    """After the nightly run finished (completion or failure hook): rebuild the digest with
    the run's final figures (status, duration, stage times, rows loaded/quarantined), publish
    the artifact, and update the queued digest - or queue it when the run failed before its
    digest stage. Delivery is the caller's. Returns what it did.

    The warehouse cannot be read (it went down during the night): the artifact is the digest
    of what the run holds in memory (``offline_digest``) and nothing is queued - the outbox
    lives in the warehouse."""
    from tasks.alerts.outbox import OUTBOX
    from tasks.runs import forget_run, run_in_memory

    engine = engine or get_engine()
    known = run_in_memory(run_id)
    if as_of is None and known and known.get("as_of"):
        as_of = known["as_of"]
    if as_of is None:
        try:
            df = read_frame(engine, "SELECT as_of FROM pipeline_runs WHERE run_id = :r", {"r": run_id})
            as_of = df["as_of"].iloc[0] if not df.empty and not _isnull(df["as_of"].iloc[0]) else None
        except sa.exc.SQLAlchemyError:  # the warehouse is down: today's, as the run itself took it
            as_of = None
    if isinstance(as_of, str):
        as_of = date.fromisoformat(as_of[:10])
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    if as_of is None:
        from userops.clock import shop_today

        as_of = shop_today()
    draft = _HELD_DRAFTS.pop(str(run_id), None)
    try:
        d = build_digest(as_of, run_id, engine=engine, error=error, known=known, draft=draft)
    except Exception:
        if draft is not None:  # the final digest cannot be built: the stage's draft is better than none
            _publish_quietly(draft)
        raise
    finally:
        forget_run(run_id)
    if d.figures.get("warehouse_unreadable"):
        if str(run_id) not in _PUBLISHED_OFFLINE:  # once a run (a failing subflow and its parent: one run)
            _PUBLISHED_OFFLINE.add(str(run_id))
            _publish_quietly(d)
            log.warning("%s", t("alert.log.digest_artifact_only", error=d.figures["warehouse_unreadable"]["error"]))
        return {"updated": 0, "queued": 0, "severity": d.severity, "artifact_only": True}
    _publish_quietly(d)  # before the outbox: the Prefect UI has the night's digest whatever happens to it
    with engine.begin() as conn:
        updated = conn.execute(
            OUTBOX.update()
            .where(OUTBOX.c.dedupe_key == digest_key(run_id, as_of), OUTBOX.c.status == "pending")
            .values(title=d.title, body=d.body, severity=d.severity, payload=json.dumps(_digest_payload(d), ensure_ascii=False), next_attempt_at=utcnow())
        ).rowcount or 0
    queued = 0 if updated else queue_digest(d)
    return {"updated": updated, "queued": queued, "severity": d.severity}


def publish_digest_artifact(d: Digest) -> str | None:
    """The digest as a Markdown artifact under the stable key ``nightly-digest``."""
    try:
        from tasks.artifacts import artifact_key

        key = artifact_key("digest")
    except Exception:  # pragma: no cover - artifacts module missing
        key = DIGEST_ARTIFACT_KEY
    from prefect.artifacts import create_markdown_artifact

    create_markdown_artifact(markdown=d.markdown, key=key, description=d.title)
    return key


def _publish_quietly(d: Digest) -> str | None:
    try:
        return publish_digest_artifact(d)
    except Exception as exc:  # the UI copy is a convenience; never fail the night for it
        log.warning("%s", t("alert.log.digest_artifact", error=type(exc).__name__))
        return None


# the digest stage's drafts inside a nightly run, by run id: the run's completion or failure
# hook (finalize_digest, same process) publishes the final digest under the key instead, so
# the Artifacts history holds one version a night, not a draft beside every final one
_HELD_DRAFTS: dict[str, Digest] = {}
# runs whose digest of what they hold in memory (the warehouse down) was published
_PUBLISHED_OFFLINE: set[str] = set()


def finalized_by_the_run(run_id: str) -> bool:
    """True when the digest of ``run_id`` is built inside that run (its stage's body runs in the
    nightly run, or as its subflow): the run's hooks finalize and publish it."""
    try:
        from prefect.runtime import flow_run

        return str(run_id) in {str(flow_run.id or ""), str(flow_run.parent_flow_run_id or "")}
    except Exception:  # pragma: no cover - no run context
        return False


# ----------------------------------------------------------------------------- tasks
@task(name="build-digest", cache_policy=NO_CACHE)
def build_digest_task(as_of: date, run_id: str) -> Digest:
    return build_digest(as_of, run_id)


@task(name="publish-digest-artifact", cache_policy=NO_CACHE)
def publish_digest_task(d: Digest) -> str | None:
    """Publish the digest, or - inside the nightly run - hold it for the run's hook, which
    publishes the final one under the same key (returned)."""
    if finalized_by_the_run(d.run_id):
        _HELD_DRAFTS[str(d.run_id)] = d
        try:
            from tasks.artifacts import artifact_key

            return artifact_key("digest")
        except Exception:  # pragma: no cover - artifacts module missing
            return DIGEST_ARTIFACT_KEY
    return _publish_quietly(d)


@task(name="queue-digest", cache_policy=NO_CACHE)
def queue_digest_task(d: Digest, hold_seconds: float = 0) -> int:
    return queue_digest(d, hold_seconds)
