"""Outbox delivery: pending alerts -> channels, at most once each, within rate limits.

``deliver_pending()`` is safe to call from anywhere at any time (state hooks, the digest,
``userops alert deliver``, a periodic deployment): it never raises because a channel is
down, and it never sends an alert twice.

* **Claiming.** Due rows are claimed (``status = sending`` with a lease and a claim token)
  in one UPDATE, so two deliverers never pick the same row. A deliverer that dies leaves
  rows whose lease expires; they become pending again.
* **Rate limit.** Every HTTP post that reaches a channel is recorded in ``alert_sends``;
  before posting, the posts of the last 60 s are counted (across processes) against the
  channel's ``rate_per_minute`` (DingTalk/WeCom robots: 20). When more alerts wait than the
  budget allows (or more than ``alerts.merge_over``), they are merged into as few messages
  as the channel's size limit permits; what still does not fit waits for the next minute.
* **Failures.** Rate limited (Slack 429 Retry-After, DingTalk 130101, WeCom 45009): the
  channel's alerts wait as long as asked. Outage/timeout/5xx: retry with exponential
  backoff (``alerts.backoff_seconds`` doubling up to ``backoff_max_seconds``).
  Configuration error (Slack 403/404/410, DingTalk 310000, wrong key): wait
  ``config_error_backoff_seconds``, the error text says what to fix. A message the channel
  refuses as malformed is marked ``failed``. Alerts still undelivered after
  ``give_up_hours`` are marked ``failed`` (they stay listed and counted in the digest).
* **Never posted twice.** Before each post the alert is journalled under the output folder
  (``tasks.alerts.journal`` ``outbox_mark``: ``posting``), and as soon as the channel accepts
  it, ``posted``. The database writes after a post are retried (``DB_RETRIES``); should they
  still fail, or the process die before the row is ``sent`` (its lease then expires), the
  next pass finds the journal before posting anything: a posted alert is marked ``sent``
  (the parts posted of a long one are skipped); one caught mid-post (``posting``: outcome
  unknown) is marked ``failed`` saying so, never posted again by itself.
* **Time.** ``now`` (naive UTC) drives every decision, so tests move time without sleeping.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tasks.alerts.channels import Channel, ConfigError, DeliveryError, Message, PayloadError, RateLimited, TransientError
from tasks.alerts.messages import SEVERITY_ICON, SEVERITY_RANK
from tasks.alerts.safety import clean
from userops.clock import utcnow
from userops.db import get_engine
from userops.i18n import t
from userops.settings import get_settings

log = logging.getLogger("userops.alerts")

_md = sa.MetaData()
OUTBOX = sa.Table(
    "alert_outbox",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("dedupe_key", sa.String(200)),
    sa.Column("kind", sa.String(60)),
    sa.Column("channel", sa.String(40)),
    sa.Column("severity", sa.String(12)),
    sa.Column("title", sa.Text),
    sa.Column("body", sa.Text),
    sa.Column("payload", sa.Text),
    sa.Column("status", sa.String(16)),
    sa.Column("attempts", sa.Integer),
    sa.Column("next_attempt_at", sa.DateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("claim", sa.String(40)),
    sa.Column("send_id", sa.Integer),
)
SENDS = sa.Table(
    "alert_sends",
    _md,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("channel", sa.String(40)),
    sa.Column("sent_at", sa.DateTime),
    sa.Column("alerts", sa.Integer),
    sa.Column("part", sa.Integer),
    sa.Column("outcome", sa.String(16)),
)
WINDOW = timedelta(seconds=60)
LEASE = timedelta(minutes=10)
DB_RETRIES = (0.2, 1.0, 3.0)  # seconds between attempts of a database write after a post
# Never merged with other alerts: their body must reach the channel whole (a merged post
# carries only each alert's first line). The digest; the approved crisis statement (a
# human approved every line of it); a missed crisis deadline (critical, @-mentions the
# escalation contacts, and says what is late and since when). One too long for a post is
# split into parts, never shortened.
STANDALONE_KINDS = {"digest", "crisis_statement", "crisis_escalation"}


@dataclass
class _Row:
    id: int
    kind: str
    channel: str
    severity: str
    title: str
    body: str
    payload: dict
    attempts: int
    created_at: datetime
    dedupe_key: str = ""

    @classmethod
    def of(cls, r) -> "_Row":
        try:
            payload = json.loads(r.payload or "{}")
        except ValueError:
            payload = {}
        return cls(r.id, r.kind, r.channel, r.severity or "warning", r.title or "", r.body or "", payload if isinstance(payload, dict) else {}, r.attempts or 0, r.created_at, r.dedupe_key or "")


@dataclass
class _Plan:
    rows: list[_Row]
    message: Message
    merged: bool = False


@dataclass
class _Report:
    sent: int = 0
    logged: int = 0  # "delivered" on the log channel (no alert channel configured): written to the run log, sent nowhere
    posts: int = 0
    merged: int = 0
    deferred: int = 0
    failed: int = 0
    expired: int = 0
    channels: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"sent": self.sent, "logged": self.logged, "posts": self.posts, "merged": self.merged, "deferred": self.deferred, "failed": self.failed, "expired": self.expired, "channels": self.channels}


def _log_only(chan) -> bool:
    """The log channel (no alert channel configured): what it "delivers" is written to the
    run log and sent nowhere, so it is counted apart from what was sent."""
    return getattr(chan, "ok_code", "ok") == "log_only"


# ----------------------------------------------------------------------------- public
OBSOLETE = "obsolete"  # a queued alert that no longer holds: never posted, kept for the record


def mark_obsolete(conn, kind: str, subject_prefix: str, why: str) -> list[int]:
    """Queued alerts of ``kind`` whose subject starts with ``subject_prefix`` that no longer
    hold (a "please take the product down" once the take-down is confirmed): ``pending`` rows
    (and ``sending`` ones whose deliverer's lease ran out) become ``obsolete`` with ``why`` in
    ``last_error``; the deliverer only claims ``pending`` rows, so they are never posted. A row a
    live deliverer holds is left to it. Returns the ids changed (the caller audits them)."""
    now = utcnow()
    cond = sa.and_(
        OUTBOX.c.kind == kind,
        OUTBOX.c.dedupe_key.startswith(f"{kind}|{subject_prefix}", autoescape=True),
        sa.or_(OUTBOX.c.status == "pending", sa.and_(OUTBOX.c.status == "sending", OUTBOX.c.next_attempt_at < now)),
    )
    ids = [int(i) for i in conn.execute(sa.select(OUTBOX.c.id).where(cond)).scalars()]
    if ids:
        conn.execute(OUTBOX.update().where(OUTBOX.c.id.in_(ids), cond)
                     .values(status=OBSOLETE, claim=None, next_attempt_at=None, last_error=why[:1000]))
    return ids


def deliver_pending(engine: Engine | None = None, now: datetime | None = None, channels: dict[str, Channel] | None = None, lang: str | None = None, max_rows: int = 2000) -> dict:
    """Deliver every due alert of the outbox. Returns counts and a verdict per channel:
    ``{"sent", "posts", "merged", "deferred", "failed", "expired", "channels": {name: verdict}}``
    (verdicts, errors kept in ``last_error`` and warnings in ``lang``, default the settings')."""
    engine = engine or get_engine()
    now = now or utcnow()
    if channels is None:
        from tasks.alerts.routing import load_channels

        channels = load_channels()
    _record_direct_posts(engine, now)
    d = _Deliverer(engine, now, channels, lang)
    return d.run(max_rows).as_dict()


def _record_direct_posts(engine: Engine, now: datetime) -> None:
    """The alerts posted directly while the warehouse was down (``tasks.alerts.journal``)
    into the outbox, before anything is claimed: one posted is recorded as sent and never
    posted again; one whose post failed waits in the outbox like any other."""
    from tasks.alerts import journal

    try:
        journal.record(engine, now)
    except Exception as exc:  # the warehouse still down, a bug: the journal stays for the next pass
        log.debug("alerts: direct posts not recorded yet (%s)", type(exc).__name__)


class Verdict(str):
    """A channel's verdict on a direct post: its words (the ``str``, for display only) and a
    stable ``code`` to decide on - ``ok``, ``log_only``, ``already_direct``, ``not_configured``,
    ``failed`` (the words are the channel's error) or ``internal``."""

    code: str

    def __new__(cls, code: str, text: str):
        v = super().__new__(cls, text)
        v.code = code
        return v

    def __getnewargs__(self):
        return (self.code, str(self))


_SENT_DIRECTLY: set[tuple[str, str]] = set()  # (dedupe key, channel) posted by send_direct in this process


def send_direct(alerts: list[dict], channels: dict[str, Channel] | None = None, lang: str | None = None, reason: str | None = None) -> dict:
    """When the outbox itself cannot be written (the warehouse is down): post alerts - given
    as ``enqueue_alert`` keyword sets - straight to the channels their kind is routed to,
    formatted as the outbox would, once each (a failing subflow and its parent post one
    alert; so does a retry in another process: the journal has it), with no retry or
    rate-limit bookkeeping. Each post is journalled under the output folder
    (``tasks.alerts.journal``) and recorded in the outbox by the first delivery once the
    warehouse is back. Never raises. ``reason``: why the outbox failed (an exception type).
    Returns ``{channel: Verdict}``: words to show and a code to decide on (``ok``;
    ``log_only`` for the ``log`` channel - nothing was sent anywhere; ``already_direct`` when
    it was posted directly before - by this process, or by another as the journal says;
    ``not_configured``; ``failed`` with the channel's error; ``internal``)."""
    from tasks.alerts import journal
    from tasks.alerts.routing import channels_for, load_channels
    from userops.clock import shop_today

    verdicts: dict[str, Verdict] = {}
    try:
        channels = load_channels() if channels is None else channels
    except Exception as exc:  # pragma: no cover - settings unreadable
        log.warning("%s", t("alert.log.no_direct_channel", lang, error=type(exc).__name__))
        return verdicts
    for a in alerts:
        day = a.get("day") or shop_today()
        key = f"{a['kind']}|{a.get('subject', '')}|{day.isoformat()}"[:200]
        row = _Row(0, a["kind"], "", a.get("severity") or "warning", a["title"], a["body"], dict(a.get("payload") or {}), 0, utcnow())
        for name in a.get("channels") or channels_for(a["kind"]):
            chan = channels.get(name)
            if chan is None:
                verdicts[name] = Verdict("not_configured", t("alert.deliver.not_configured", lang))
                continue
            if (key, name) in _SENT_DIRECTLY:  # an earlier call posted it (its outcome logged then)
                verdicts.setdefault(name, Verdict("already_direct", t("alert.deliver.already_direct", lang)))
                continue
            _SENT_DIRECTLY.add((key, name))  # once, even if this post fails half-way
            secrets = chan.secrets()
            try:
                entry = journal.claim(key, name, kind=row.kind, severity=row.severity, title=row.title, body=row.body,
                                      payload=row.payload, posted_at=utcnow(), reason=reason, secrets=secrets)
            except journal.AlreadyPosted as done:  # another process posted it (or tried): not again
                if done.entry.get("status") == "sent":
                    verdicts.setdefault(name, Verdict("already_direct", t("alert.deliver.already_direct", lang)))
                else:
                    verdicts[name] = Verdict("failed", done.entry.get("error") or t("alert.journal.unknown", lang))
                continue
            except Exception as exc:  # the journal must never stop the failure alert
                log.debug("alerts: direct post not journalled (%s)", type(exc).__name__)
                entry = None
            try:
                chan.send(alert_message(row, lang, secrets), lang)
                verdicts[name] = Verdict(chan.ok_code, chan.ok_verdict(lang))  # the log channel: only written to the run log, not sent
                journal.settle(entry, "sent")
            except DeliveryError as exc:
                verdicts[name] = Verdict("failed", clean(exc.localized(lang), secrets))
                journal.settle(entry, "failed", verdicts[name])
            except Exception as exc:  # a bug must not hide the failure alert's fate
                verdicts[name] = Verdict("internal", t("alert.deliver.internal", lang, error=type(exc).__name__))
                journal.settle(entry, "failed", verdicts[name])
    return verdicts


def pending_count(engine: Engine | None = None) -> int:
    engine = engine or get_engine()
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(OUTBOX).where(OUTBOX.c.status.in_(["pending", "sending"]))).scalar() or 0)


def record_send(engine: Engine, channel: str, at: datetime, alerts: int = 1, part: int = 1, outcome: str = "sent") -> int:
    with engine.begin() as conn:
        res = conn.execute(SENDS.insert().values(channel=channel, sent_at=at, alerts=alerts, part=part, outcome=outcome))
        return int(res.inserted_primary_key[0])


def sends_in_window(engine: Engine, channel: str, now: datetime) -> tuple[int, datetime | None]:
    """Posts to ``channel`` in the minute before ``now`` and the oldest of them."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(sa.func.count(), sa.func.min(SENDS.c.sent_at)).where(SENDS.c.channel == channel, SENDS.c.sent_at > now - WINDOW)
        ).one()
    oldest = row[1]
    if isinstance(oldest, str):  # pragma: no cover - aggregate over a DateTime on SQLite
        oldest = datetime.fromisoformat(oldest)
    return int(row[0] or 0), oldest


def throttled_until(engine: Engine, chan: Channel) -> datetime | None:
    """When the channel throttles a sender for a while after "too fast" (DingTalk: 10
    minutes, ``THROTTLE_SECONDS``): the end of the throttle that its last refusal started,
    recorded in ``alert_sends`` (so every deliverer and every newly queued alert waits)."""
    secs = float(getattr(chan, "THROTTLE_SECONDS", 0) or 0)
    if secs <= 0:
        return None
    with engine.connect() as conn:
        last = conn.execute(sa.select(sa.func.max(SENDS.c.sent_at)).where(SENDS.c.channel == chan.name, SENDS.c.outcome == "limited")).scalar()
    if isinstance(last, str):  # pragma: no cover - aggregate over a DateTime on SQLite
        last = datetime.fromisoformat(last)
    return last + timedelta(seconds=secs) if last else None


def alert_message(row: _Row, lang: str | None = None, secrets: list[str] | None = None) -> Message:
    s = get_settings().alerts
    link = row.payload.get("link") or row.payload.get("url")
    return Message(
        title=clean(row.title, secrets or []),
        body=clean(row.body, secrets or []),
        severity=row.severity,
        kind=row.kind,
        link=str(link) if link else None,
        link_label=row.payload.get("link_label"),
        mention=row.severity in s.mention_severities,
        mentions=_mentions(row.payload),
        alerts=1,
    )


ESCALATION_MENTIONS = "escalation"  # payload "mentions": the configured crisis.escalation_mentions


def _mentions(payload: dict) -> list[str]:
    """Who to @ for an alert, resolved now (at send time). The outbox stores a reference,
    never the people: ``"mentions": "escalation"`` means ``crisis.escalation_mentions`` as
    configured when the alert is posted (phone numbers are not kept in the warehouse, logs
    or the journal). A list (user ids, or rows queued before) is taken as it is."""
    m = payload.get("mentions") or []
    if m == ESCALATION_MENTIONS:
        m = list(get_settings().crisis.escalation_mentions)
    return [str(x) for x in m if x] if isinstance(m, list) else []


def merged_message(rows: list[_Row], lang: str | None = None, secrets: list[str] | None = None, more: int = 0) -> Message:
    s = get_settings().alerts
    lines = []
    for r in rows:
        icon = SEVERITY_ICON.get(r.severity, "")
        first = clean(r.body, secrets or []).strip().split("\n", 1)[0] if r.body else ""
        if len(first) > 160:
            first = first[:159] + "…"
        line = f"- {icon} **{clean(r.title, secrets or [])}**" + (f": {first}" if first else "")
        link = r.payload.get("link") or r.payload.get("url")
        if link:
            line += f" [{r.payload.get('link_label') or t('alert.view', lang)}]({link})"
        lines.append(line)
    if more:
        lines.append(t("alert.merged.more", lang, n=more))
    severity = max((r.severity for r in rows), key=lambda x: SEVERITY_RANK.get(x, 1))
    return Message(
        title=t("alert.merged.title", lang, n=len(rows)),
        body="\n".join(lines),
        severity=severity,
        kind="merged",
        mention=any(r.severity in s.mention_severities for r in rows),
        mentions=list(dict.fromkeys(m for r in rows for m in _mentions(r.payload))),
        alerts=len(rows),
    )


# ----------------------------------------------------------------------------- machinery
class _Deliverer:
    def __init__(self, engine: Engine, now: datetime, channels: dict[str, Channel], lang: str | None):
        self.engine = engine
        self.now = now
        self.channels = channels
        self.lang = lang
        self.settings = get_settings().alerts
        self.token = uuid.uuid4().hex
        self.t0 = time.monotonic()
        self.report = _Report()

    def clock(self) -> datetime:
        """``now`` plus the real time elapsed in this call (posts spread over the call)."""
        return self.now + timedelta(seconds=time.monotonic() - self.t0)

    # -- bookkeeping
    def _db(self, fn, *args, **kw):
        """A database write after a successful post: retried (a locked or briefly
        unreachable warehouse) before giving up; the journal keeps the post meanwhile."""
        for wait in (*DB_RETRIES, None):
            try:
                return fn(*args, **kw)
            except sa.exc.DBAPIError as exc:
                if wait is None:
                    raise
                log.debug("alerts: database write after a post failed (%s); retrying", type(exc).__name__)
                time.sleep(wait)

    @staticmethod
    def _keys(rows: list[_Row]) -> list[tuple[int, str]]:
        return [(r.id, r.dedupe_key) for r in rows]

    def _reconcile(self, rows: list[_Row]) -> list[_Row]:
        """Before posting anything: the claimed rows whose post the journal holds (the
        database write after it failed, or the process died) are settled from it, never
        posted again. Returns the rows still to deliver."""
        from tasks.alerts import journal

        todo, recovered = [], 0
        for r in rows:
            e = journal.outbox_entry(r.id, r.dedupe_key, r.channel)
            if e is None:
                todo.append(r)
                continue
            posted, parts = int(e.get("posted") or 0), int(e.get("parts") or 1)
            try:
                if e.get("status") == "posted" and posted >= parts:
                    sid = self._db(record_send, self.engine, r.channel, self.now, alerts=1, part=parts, outcome="sent")
                    self._db(self._update, [r], status="sent", sent_at=self.now, claim=None, send_id=sid, attempts=OUTBOX.c.attempts + 1,
                             last_error=None, next_attempt_at=None)
                    self._count_done(self.channels.get(r.channel), 1)
                    recovered += 1
                elif e.get("status") == "posted":  # the first parts went out: go on from the next
                    if posted > int(r.payload.get("_parts_sent", 0) or 0):
                        self._db(self._save_progress, r, posted)
                    todo.append(r)
                    continue
                else:  # caught while posting: it may have arrived
                    err = t("alert.outbox.unknown", self.lang, part=posted + 1, parts=parts)
                    self._db(self._update, [r], status="failed", claim=None, attempts=OUTBOX.c.attempts + 1, last_error=err[:1000])
                    self.report.failed += 1
                journal.outbox_forget([(r.id, r.dedupe_key)], r.channel)
            except Exception as exc:  # the warehouse still failing: keep the claim (its lease expires), post nothing
                log.warning("%s", t("alert.log.internal", self.lang, channel=r.channel, error=type(exc).__name__))
        if recovered:
            log.warning("%s", t("alert.log.posted_recovered", self.lang, n=recovered))
        return todo

    def _claim(self, max_rows: int) -> list[_Row]:
        now = self.now
        give_up = now - timedelta(hours=self.settings.give_up_hours)
        with self.engine.begin() as conn:
            self.report.expired = conn.execute(
                OUTBOX.update()
                .where(OUTBOX.c.status == "pending", OUTBOX.c.created_at < give_up)
                .values(status="failed", claim=None, last_error=sa.func.coalesce(OUTBOX.c.last_error, "") + sa.literal(" | " + t("alert.deliver.gave_up", self.lang, hours=f"{self.settings.give_up_hours:g}")))
            ).rowcount or 0
            conn.execute(
                OUTBOX.update().where(OUTBOX.c.status == "sending", OUTBOX.c.next_attempt_at < now).values(status="pending", claim=None)
            )
            due = (
                sa.select(OUTBOX.c.id)
                .where(OUTBOX.c.status == "pending", sa.or_(OUTBOX.c.next_attempt_at.is_(None), OUTBOX.c.next_attempt_at <= now))
                .order_by(OUTBOX.c.id)
                .limit(max_rows)
            )
            conn.execute(
                OUTBOX.update()
                .where(OUTBOX.c.id.in_(due.scalar_subquery()), OUTBOX.c.status == "pending")
                .values(status="sending", claim=self.token, next_attempt_at=now + LEASE)
            )
            rows = conn.execute(sa.select(OUTBOX).where(OUTBOX.c.claim == self.token, OUTBOX.c.status == "sending").order_by(OUTBOX.c.id)).all()
        return [_Row.of(r) for r in rows]

    def _update(self, rows: list[_Row], **values) -> None:
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(OUTBOX.update().where(OUTBOX.c.id.in_([r.id for r in rows]), OUTBOX.c.claim == self.token).values(**values))

    def _sent(self, rows: list[_Row], send_id: int | None) -> None:
        self._update(rows, status="sent", sent_at=self.clock(), claim=None, send_id=send_id, attempts=OUTBOX.c.attempts + 1, last_error=None, next_attempt_at=None)

    def _release(self, rows: list[_Row], next_at: datetime, error: str | None, count_attempt: bool) -> None:
        if not rows:
            return
        values = dict(status="pending", claim=None, next_attempt_at=next_at)
        if error is not None:
            values["last_error"] = error[:1000]
        if count_attempt:
            values["attempts"] = OUTBOX.c.attempts + 1
        self._update(rows, **values)
        self.report.deferred += len(rows)

    def _failed(self, rows: list[_Row], error: str) -> None:
        from tasks.alerts import journal

        self._update(rows, status="failed", claim=None, attempts=OUTBOX.c.attempts + 1, last_error=error[:1000])
        self.report.failed += len(rows)
        if rows:
            journal.outbox_forget(self._keys(rows), rows[0].channel)

    def _save_progress(self, row: _Row, parts_sent: int) -> None:
        row.payload["_parts_sent"] = parts_sent
        self._update([row], payload=json.dumps(row.payload, ensure_ascii=False, default=str))

    def _backoff(self, attempts: int) -> timedelta:
        s = self.settings
        return timedelta(seconds=min(s.backoff_max_seconds, s.backoff_seconds * 2 ** max(0, attempts - 1)))

    # -- main loop
    def run(self, max_rows: int) -> _Report:
        rows = self._reconcile(self._claim(max_rows))
        by_channel: dict[str, list[_Row]] = {}
        for r in rows:
            by_channel.setdefault(r.channel, []).append(r)
        for name, chan_rows in by_channel.items():
            try:
                self.report.channels[name] = self._deliver_channel(name, chan_rows)
            except Exception as exc:  # a bug or the database: never lose the claim silently
                log.exception("%s", t("alert.log.internal", self.lang, channel=name, error=type(exc).__name__))
                self._release(chan_rows, self.now + self._backoff(1), t("alert.deliver.internal_error", self.lang, error=type(exc).__name__), count_attempt=False)
                self.report.channels[name] = t("alert.deliver.internal", self.lang, error=type(exc).__name__)
        if self.report.sent or self.report.deferred or self.report.failed:
            rep = self.report
            log.info("%s", t("alert.log.delivered", self.lang, sent=rep.sent, posts=rep.posts, merged=rep.merged, deferred=rep.deferred, failed=rep.failed))
        if self.report.logged:  # not "sent": nothing went anywhere (the log channel's own lines say so per alert)
            log.warning("%s", t("alert.log.logged_only", self.lang, n=self.report.logged))
        return self.report

    def _count_done(self, chan, n: int) -> None:
        if _log_only(chan):
            self.report.logged += n
        else:
            self.report.sent += n

    def _deliver_channel(self, name: str, rows: list[_Row]) -> str:
        from tasks.alerts import journal

        chan = self.channels.get(name)
        if chan is None:
            err = t("alert.deliver.not_configured_error", self.lang, channel=name)
            self._release(rows, self.now + timedelta(seconds=self.settings.config_error_backoff_seconds / 4), err, count_attempt=True)
            return t("alert.deliver.not_configured", self.lang)
        secrets = chan.secrets()
        rows.sort(key=lambda r: (-SEVERITY_RANK.get(r.severity, 1), r.id))
        paused = throttled_until(self.engine, chan)
        if paused is not None and paused > self.now:  # the service still throttles us: no post
            self._release(rows, paused, None, count_attempt=False)
            return t("alert.deliver.throttled", self.lang, until=paused.strftime("%H:%M:%S"))
        used, oldest = sends_in_window(self.engine, name, self.now)
        budget = chan.rate_per_minute - used
        window_reset = (oldest + WINDOW if oldest else self.now + WINDOW) + timedelta(seconds=1)
        if budget <= 0:
            self._release(rows, window_reset, None, count_attempt=False)
            return t("alert.deliver.budget_used", self.lang, rate=chan.rate_per_minute)
        plans = self._plan(chan, rows, budget, secrets)
        pending = list(rows)
        last_verdict = chan.ok_verdict(self.lang)
        for plan in plans:
            parts = chan.render(plan.message, self.lang)
            start = int(plan.rows[0].payload.get("_parts_sent", 0)) if len(plan.rows) == 1 else 0
            todo = parts[start:]
            if len(todo) > budget:
                self._release(pending, window_reset, None, count_attempt=False)
                return t("alert.deliver.wait_minute", self.lang, n=len(pending))
            send_id = None
            failed = None
            keys = self._keys(plan.rows)
            for i, payload in enumerate(todo, start + 1):
                journal.outbox_mark(keys, name, "posting", i - 1, len(parts))
                try:
                    chan.post(payload)
                except DeliveryError as exc:  # not posted: the journal as before this part
                    if i - 1 > 0:
                        journal.outbox_mark(keys, name, "posted", i - 1, len(parts))
                    else:
                        journal.outbox_forget(keys, name)
                    failed = (exc, i)
                    break
                journal.outbox_mark(keys, name, "posted", i, len(parts))  # from here on, never posted again
                sid = self._db(record_send, self.engine, name, self.clock(), alerts=len(plan.rows), part=i, outcome="sent")
                send_id = send_id or sid
                budget -= 1
                if not _log_only(chan):
                    self.report.posts += 1
                if i < len(parts) and len(plan.rows) == 1:
                    self._db(self._save_progress, plan.rows[0], i)
            if failed is not None:
                exc, part = failed
                verdict = self._on_error(chan, plan, pending, exc, part, start)
                done = {r.id for r in plan.rows}
                pending = [r for r in pending if r.id not in done]
                if exc.reached:
                    budget -= 1
                if isinstance(exc, PayloadError):  # only this message was refused: go on
                    last_verdict = verdict
                    continue
                return verdict
            self._db(self._sent, plan.rows, send_id)
            journal.outbox_forget(keys, name)
            self._count_done(chan, len(plan.rows))
            if plan.merged:
                self.report.merged += len(plan.rows)
            done = {r.id for r in plan.rows}
            pending = [r for r in pending if r.id not in done]
        if pending:  # alerts that did not fit in this minute's budget
            self._release(pending, window_reset, None, count_attempt=False)
            return t("alert.deliver.ok_waiting", self.lang, n=len(pending))
        return last_verdict

    def _on_error(self, chan: Channel, plan: _Plan, pending: list[_Row], exc: DeliveryError, part: int, start: int) -> str:
        name = chan.name
        msg = clean(exc.localized(self.lang), chan.secrets())
        mine = {r.id for r in plan.rows}
        others = [r for r in pending if r.id not in mine]
        if exc.reached:
            record_send(self.engine, name, self.clock(), alerts=len(plan.rows), part=part, outcome="limited" if isinstance(exc, RateLimited) else "refused")
        if part - 1 > start and len(plan.rows) == 1:
            self._save_progress(plan.rows[0], part - 1)
        if isinstance(exc, RateLimited):  # not a failed attempt: the service asked us to wait
            wait = timedelta(seconds=max(exc.retry_after or 60, getattr(chan, "THROTTLE_SECONDS", 0) or 0))
            log.warning("%s", t("alert.log.rate_limited", self.lang, channel=name, seconds=int(wait.total_seconds())))
            self._release(plan.rows, self.now + wait, msg, count_attempt=False)
            self._release(others, self.now + wait, None, count_attempt=False)
            return t("alert.deliver.rate_limited", self.lang, error=msg)
        if isinstance(exc, ConfigError):
            wait = timedelta(seconds=self.settings.config_error_backoff_seconds)
            log.warning("%s", t("alert.log.config_error", self.lang, channel=name, error=msg))
            self._release(plan.rows, self.now + wait, msg, count_attempt=True)
            self._release(others, self.now + wait, msg, count_attempt=False)
            return msg
        if isinstance(exc, PayloadError):
            log.warning("%s", t("alert.log.refused", self.lang, channel=name, error=msg))
            self._failed(plan.rows, msg)
            return msg
        # outage, timeout, 5xx: back off; the rest of this channel waits as long
        attempts = max(r.attempts for r in plan.rows) + 1
        wait = self._backoff(attempts)
        log.warning("%s", t("alert.log.unavailable", self.lang, channel=name, error=msg, seconds=int(wait.total_seconds())))
        self._release(plan.rows, self.now + wait, msg, count_attempt=True)
        self._release(others, self.now + wait, None, count_attempt=False)
        return msg

    def _plan(self, chan: Channel, rows: list[_Row], budget: int, secrets: list[str]) -> list[_Plan]:
        standalone = [r for r in rows if r.kind in STANDALONE_KINDS]
        others = [r for r in rows if r.kind not in STANDALONE_KINDS]
        plans: list[_Plan] = []
        if others and (len(others) > max(1, self.settings.merge_over) or len(others) + len(standalone) > budget):
            plans += self._merge(chan, others, secrets)
        else:
            plans += [_Plan([r], alert_message(r, self.lang, secrets)) for r in others]
        plans += [_Plan([r], alert_message(r, self.lang, secrets)) for r in standalone]
        return plans

    def _merge(self, chan: Channel, rows: list[_Row], secrets: list[str]) -> list[_Plan]:
        """Pack as many alerts per message as fit in one post of the channel (binary search
        on the group size: O(n log n) renders, fine for thousands of waiting alerts)."""

        def fits(k: int) -> bool:
            return len(chan.render(merged_message(rows[i : i + k], self.lang, secrets), self.lang)) == 1

        plans: list[_Plan] = []
        i = 0
        while i < len(rows):
            lo, hi = 1, len(rows) - i  # lo always fits (a lone alert goes alone anyway)
            if fits(hi):
                lo = hi
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(mid):
                    lo = mid
                else:
                    hi = mid - 1
            plans.append(self._group_plan(rows[i : i + lo], secrets))
            i += lo
        return plans

    def _group_plan(self, group: list[_Row], secrets: list[str]) -> _Plan:
        if len(group) == 1:  # too big to share a post: goes alone (split if it must)
            return _Plan(group, alert_message(group[0], self.lang, secrets))
        return _Plan(group, merged_message(group, self.lang, secrets), merged=True)
