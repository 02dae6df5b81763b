"""Messages to customers: plan them in ``touches``, deliver each exactly once.

The contract (DEVELOPING.md): ``plan_touches(conn, df) -> int`` inserts planned touches,
idempotent by ``touch_key``; ``send_due(engine=None, now=None, channel_override=None) -> dict``
delivers the due ones. Campaigns (issue 6) and crisis compensation (issue 7) both use them.

Exactly once, as the provider sees it:

1. a batch of due touches is marked ``in_flight`` (with the sender's identity,
   ``host:pid:process start``, in ``claimed_by``) and committed *before* any request goes
   out (while a batch's requests are on the wire the next batch is claimed and the previous
   one settled, so at most two batches are ever in flight);
2. every request carries the touch's idempotency key: an ``Idempotency-Key`` header and an
   ``idempotency_key`` body field for the JSON webhook, a ``Message-ID`` derived from it for
   SMTP, a ``touch_key`` column in the staff-outreach list (which is de-duplicated on it);
3. the batch is settled (``sent`` / back to ``planned`` with a backoff / ``failed`` with the
   reason) in one bulk UPDATE after its requests, only for the touches this sender still
   holds (``claimed_by`` is still its own). A result for a touch whose claim was taken over
   is not recorded; a warning names the touch key.

While ``send_due`` runs, a background thread renews the sender's lease (``in_flight_at``
of every touch it holds, every quarter of ``campaigns.in_flight_lease_seconds``), so a live
sender keeps its claims whatever it is waiting for: a slow provider, its pacing, or a
429's Retry-After. A rate-limited message waits in line at most
``campaigns.retry_wait_seconds`` (the longest a run waits for a retry anyway); a provider
that asks for a longer pause gets none of this run's requests until then, and the message
goes back to ``planned`` with ``not_before`` at the end of the pause.

A sender killed between 1 and 3 leaves its batch ``in_flight``. The next ``send_due`` takes
it over only once the sender is known to be gone: a sender on this host when its process
no longer exists (a live one is never taken over, however old its claim: touches left by
an aborted ``send_due`` in a process that keeps running wait until it exits); a sender on
another machine when its lease ran out (no renewal for ``in_flight_lease_seconds``,
default 600 s). So at most the messages in flight at the crash are ever sent again:

* SMS / push go back to ``planned`` and are resent with the same idempotency key; a
  provider that honours the key (``Idempotency-Key``) answers the repeat without delivering
  it again;
* email is different: SMTP servers do not de-duplicate on ``Message-ID`` (a second
  copy reaches the customer's mailbox), so an interrupted email touch is *not* resent on
  its own. It waits in ``awaiting_review`` (reason says why) until an operator decides
  (``userops campaign approve CAMPAIGN`` resends it; leaving it sends nothing). The same
  holds for an email whose connection broke after the message was handed to the server
  (the acceptance went unseen): it may have been delivered, so it is held, not retried;
* staff-list rows are de-duplicated on ``touch_key``, so a resend never lists anyone twice.

Touches in ``awaiting_review`` are not sent until ``approve_touches`` releases them. Quiet
hours (per touch: ``quiet_hours`` in ``timezone``) defer a touch via ``not_before``; they
never drop it. Marketing touches of a customer who unsubscribed, withdrew consent or is
inside an open crisis are suppressed at the last moment too.
"""
from __future__ import annotations

import csv
import hashlib
import http.client
import json
import logging
import math
import os
import shutil
import smtplib
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import sqlalchemy as sa
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Connection, Engine

from tasks.campaigns.texts import no_provider_warning
from userops.i18n import join_list, register, t
from userops.clock import utcnow
from userops.db import SQLITE_TS_FORMAT, audit, copy_frame, get_engine, is_postgres, row_values_hidden
from userops.settings import get_settings

log = logging.getLogger("userops.messaging")

PENDING = ("planned", "awaiting_review", "in_flight")
COUNTED = ("planned", "awaiting_review", "in_flight", "sent")  # count toward frequency caps
CHANNELS = ("email", "sms", "push", "staff")
TOUCH_COLUMNS = [
    "touch_key", "campaign", "campaign_run_id", "customer_id", "channel", "grp", "variant", "locale",
    "subject", "body", "is_marketing", "gift_cost", "status", "reason", "attempts", "planned_at",
    "not_before", "period", "quiet_hours", "timezone",
]
TS_COLUMNS = ("planned_at", "not_before")


# --------------------------------------------------------------------------- helpers
def idempotency_key(touch_key: str) -> str:
    """The key a provider sees for a touch: stable, ASCII, 40 hex characters."""
    return hashlib.sha256(touch_key.encode("utf-8")).hexdigest()[:40]


def message_id(touch_key: str) -> str:
    return f"<{idempotency_key(touch_key)}@userops.idempotency>"


def _ts_params(*names: str) -> list:
    return [sa.bindparam(n, type_=sa.DateTime()) for n in names]


def _db_ts(bind, v: datetime | None):
    """A timestamp for raw DB-API statements, stored as SQLAlchemy stores it."""
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    return v if is_postgres(bind) else v.strftime(SQLITE_TS_FORMAT)


def shop_zone() -> str:
    return get_settings().timezone


def shop_day(now: datetime) -> date:
    """The shop's calendar day of ``now`` (naive UTC)."""
    return now.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(shop_zone())).date()


def valid_zones(zones: pd.Series) -> pd.Series:
    """Each timezone name if it is a real IANA zone, else the shop's timezone."""
    shop = shop_zone()
    zones = zones.astype(object).where(zones.notna() & (zones.astype(str).str.len() > 0), shop)
    ok: dict[str, str] = {}
    for z in pd.unique(zones):
        try:
            ZoneInfo(str(z))
            ok[z] = z
        except (ZoneInfoNotFoundError, ValueError):
            ok[z] = shop
    return zones.map(ok)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def quiet_not_before(when: pd.Series, zones: pd.Series, quiet: pd.Series | str | None) -> pd.Series:
    """For each naive-UTC time, the first moment after it that is outside the quiet hours in
    that timezone; NaT where the time is not quiet. ``quiet`` like ``"21:00-09:00"``.
    Vectorized per (timezone, quiet hours) group, never per customer."""
    out = pd.Series(pd.NaT, index=when.index, dtype="datetime64[us]")
    if when.empty:
        return out
    when = pd.to_datetime(when).astype("datetime64[us]")
    if quiet is None:
        return out
    q = pd.Series(quiet, index=when.index) if isinstance(quiet, str) else quiet
    keys = pd.DataFrame({"q": q.astype(object), "tz": zones.astype(object)})
    for (spec, zone), idx in keys.groupby(["q", "tz"], dropna=True).groups.items():
        if not spec or "-" not in str(spec):
            continue
        start, end = (_minutes(x) for x in str(spec).split("-"))
        if start == end:
            continue
        local = when.loc[idx].dt.tz_localize("UTC").dt.tz_convert(zone)
        mins = local.dt.hour * 60 + local.dt.minute
        quiet_mask = ((mins >= start) | (mins < end)) if start > end else ((mins >= start) & (mins < end))
        if not quiet_mask.any():
            continue
        loc_q = local[quiet_mask]
        mins_q = mins[quiet_mask]
        day = loc_q.dt.tz_localize(None).dt.normalize()
        add_day = (mins_q >= end).astype(int)
        target = day + pd.to_timedelta(add_day, unit="D") + pd.Timedelta(minutes=end)
        target = target.dt.tz_localize(zone, ambiguous=np.zeros(len(target), dtype=bool), nonexistent="shift_forward")
        out.loc[target.index] = target.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[us]")
    return out


def default_quiet_hours() -> str:
    cs = get_settings().campaigns
    return f"{cs.quiet_start}-{cs.quiet_end}"


# --------------------------------------------------------------------------- planning
def plan_touches(conn: Connection, df: pd.DataFrame, *, quiet_hours: bool = True) -> int:
    """Insert planned touches inside the caller's transaction; returns rows written.

    Required columns: ``touch_key``, ``campaign``, ``customer_id``, ``channel``. Optional:
    ``grp`` (treatment), ``status`` (planned; or awaiting_review / control / suppressed),
    ``subject``, ``body``, ``variant``, ``locale``, ``is_marketing`` (True), ``gift_cost`` (0),
    ``reason``, ``planned_at`` (now), ``not_before``, ``period``, ``campaign_run_id``,
    ``quiet_hours`` (settings default except for staff lists), ``timezone`` (the customer's).

    Idempotent by ``touch_key``: an existing touch is never replanned or resent; only a
    touch that was *suppressed* may be replaced by a newer decision in the same period.
    Quiet hours: ``not_before`` is set for a touch planned inside them (deferred, never dropped).
    """
    if df is None or df.empty:
        return 0
    missing = [c for c in ("touch_key", "campaign", "customer_id", "channel") if c not in df.columns]
    if missing:
        raise ValueError(f"plan_touches needs columns {', '.join(missing)}")
    bad = set(df["channel"].unique()) - set(CHANNELS)
    if bad:
        raise ValueError(f"unknown channel(s) {', '.join(map(str, bad))}; use {', '.join(CHANNELS)}")
    if df["touch_key"].duplicated().any():
        raise ValueError("touch_key must be unique within one plan")
    now = utcnow()
    out = pd.DataFrame(index=df.index)
    for c in TOUCH_COLUMNS:
        out[c] = df[c] if c in df.columns else None
    defaults = {"grp": "treatment", "status": "planned", "is_marketing": True, "gift_cost": 0.0, "attempts": 0}
    for c, v in defaults.items():
        out[c] = out[c].where(out[c].notna(), v) if c in df.columns else v
    out["planned_at"] = pd.to_datetime(out["planned_at"]).astype("datetime64[us]") if "planned_at" in df.columns else pd.Timestamp(now)
    out["planned_at"] = out["planned_at"].fillna(pd.Timestamp(now)).astype("datetime64[us]")
    out["not_before"] = pd.to_datetime(out["not_before"]).astype("datetime64[us]")
    out["is_marketing"] = out["is_marketing"].astype(bool)
    out["gift_cost"] = pd.to_numeric(out["gift_cost"]).fillna(0.0).astype(float)
    out["attempts"] = 0
    if quiet_hours:
        if "quiet_hours" not in df.columns:
            out["quiet_hours"] = np.where(out["channel"] == "staff", None, default_quiet_hours())
        if "timezone" not in df.columns or out["timezone"].isna().any():
            tz = _customer_zones(conn, out["customer_id"])
            out["timezone"] = out["timezone"].where(out["timezone"].notna(), tz)
        out["timezone"] = valid_zones(out["timezone"])
        sendable = out["status"].isin(["planned", "awaiting_review"]) & out["quiet_hours"].notna() & out["not_before"].isna()
        if sendable.any():
            nb = quiet_not_before(out.loc[sendable, "planned_at"], out.loc[sendable, "timezone"], out.loc[sendable, "quiet_hours"])
            out.loc[sendable, "not_before"] = nb
    return _insert_touches(conn, out)


def _customer_zones(conn: Connection, ids: pd.Series) -> pd.Series:
    uniq = pd.unique(ids.astype(str))
    zones: dict[str, str] = {}
    for start in range(0, len(uniq), 5000):
        chunk = list(uniq[start : start + 5000])
        stmt = sa.text("SELECT customer_id, timezone FROM customers WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
        for cid, tz in conn.execute(stmt, {"ids": chunk}).fetchall():
            zones[cid] = tz
    return ids.astype(str).map(zones)


def _insert_touches(conn: Connection, df: pd.DataFrame) -> int:
    cols = TOUCH_COLUMNS
    col_list = ", ".join(cols)
    updatable = [c for c in cols if c != "touch_key"]
    sets = ", ".join(f"{c} = excluded.{c}" for c in updatable)
    pg = is_postgres(conn)
    distinct = "IS DISTINCT FROM" if pg else "IS NOT"
    # Only a suppressed touch may change; and only when the new decision differs.
    cond = (
        f"touches.status = 'suppressed' AND (excluded.status <> 'suppressed' "
        f"OR touches.reason {distinct} excluded.reason)"
    )
    frame = df[cols]
    written = 0
    if pg:
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS _stage_touches (LIKE touches INCLUDING DEFAULTS) ON COMMIT DROP")
        with row_values_hidden("touches"):  # a refused row would be printed whole (names in the bodies)
            for start in range(0, len(frame), 200_000):
                conn.exec_driver_sql("TRUNCATE _stage_touches")
                copy_frame(conn, "_stage_touches", frame.iloc[start : start + 200_000])
                res = conn.exec_driver_sql(
                    f"INSERT INTO touches ({col_list}) SELECT {col_list} FROM _stage_touches "
                    f"ON CONFLICT (touch_key) DO UPDATE SET {sets} WHERE {cond}"
                )
                written += res.rowcount or 0
        return written
    rows = _sqlite_rows(frame)
    stmt = (
        f"INSERT INTO touches ({col_list}) VALUES ({', '.join('?' for _ in cols)}) "
        f"ON CONFLICT (touch_key) DO UPDATE SET {sets} WHERE {cond}"
    )
    cur = conn.connection.driver_connection.cursor()
    before = conn.connection.driver_connection.total_changes
    for start in range(0, len(rows), 100_000):
        cur.executemany(stmt, rows[start : start + 100_000])
    written = conn.connection.driver_connection.total_changes - before
    cur.close()
    return written


def _sqlite_rows(df: pd.DataFrame) -> list[tuple]:
    cols = []
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):  # as SQLAlchemy stores them: 2026-11-20 04:00:00.000000
            text = np.datetime_as_string(s.to_numpy(dtype="datetime64[us]"), unit="us")
            v = pd.Series(np.char.replace(text, "T", " "), index=s.index).astype(object).where(s.notna(), None)
        elif pd.api.types.is_bool_dtype(s):
            v = s.astype(int).astype(object)
        elif pd.api.types.is_float_dtype(s):
            v = s.astype(object).where(s.notna(), None)
        elif pd.api.types.is_integer_dtype(s):
            v = s.astype("int64").astype(object)
        else:
            v = s.astype(object).where(s.notna(), None)
        cols.append(v.tolist())
    return list(zip(*cols))


def approve_touches(conn: Connection, actor: str, *, campaign: str | None = None, touch_keys: list[str] | None = None) -> int:
    """Release touches waiting for review (e.g. crisis apologies to core customers)."""
    if campaign is None and not touch_keys:
        raise ValueError("approve a campaign or a list of touch keys, not everything")
    sql = "UPDATE touches SET status = 'planned' WHERE status = 'awaiting_review'"
    params: dict = {}
    binds = []
    if campaign is not None:
        sql += " AND campaign = :campaign"
        params["campaign"] = campaign
    if touch_keys:
        sql += " AND touch_key IN :keys"
        params["keys"] = list(touch_keys)
        binds.append(sa.bindparam("keys", expanding=True))
    n = conn.execute(sa.text(sql).bindparams(*binds), params).rowcount or 0
    audit(conn, actor, "approve_touches", "touches", campaign, {"approved": n, "keys": len(touch_keys or [])})
    return n


# --------------------------------------------------------------------------- channels
@dataclass
class Outbound:
    touch_key: str
    campaign: str
    customer_id: str
    channel: str
    subject: str | None
    body: str | None
    locale: str | None
    attempts: int
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    member_level: str | None = None
    churn_reasons: str | None = None  # staff list only: the champion's top reasons for an at-risk customer

    @property
    def key(self) -> str:
        return idempotency_key(self.touch_key)


@dataclass
class Outcome:
    status: str  # sent / retry / failed / held (email that may have been delivered: awaiting_review)
    provider_id: str | None = None
    reason: str | None = None
    retry_after: float | None = None


class RateLimiter:
    """Shared pacing for one channel: at most ``rate`` requests per second, and a pause
    after the provider answered 429 with Retry-After."""

    def __init__(self, rate: float = 0.0):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = time.monotonic()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def wait(self, max_pause: float = math.inf) -> float:
        """Wait for this request's turn (pacing, and the pause a 429 asked for) and return
        0.0. When the provider's pause still has more than ``max_pause`` seconds to run,
        return at once with what is left of it (the caller reschedules the message rather
        than keep it waiting). Pacing alone is always waited for."""
        with self._lock:
            now = time.monotonic()
            left = self._paused_until - now
            if left > max(0.0, max_pause):
                return left
            at = max(self._next, self._paused_until, now)
            self._next = at + self.interval
        if at > now:
            time.sleep(at - now)
        return 0.0

    def pause(self, seconds: float) -> bool:
        """No request before ``seconds`` from now. True when this starts a pause or makes
        the current one more than a second longer (worth a log line; the 429s that
        concurrent requests get for the same pause are not)."""
        with self._lock:
            now = time.monotonic()
            until = now + seconds
            news = until > (self._paused_until + 1.0 if self._paused_until > now else now)
            self._paused_until = max(self._paused_until, until)
            self._next = max(self._next, self._paused_until)
            return news


class _OneWrite:
    """http.client sends the head and the body of a request in two writes; with Nagle's
    algorithm the body can wait for the server's ACK. One write, and TCP_NODELAY."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send_output(self, message_body=None, encode_chunked=False):
        if isinstance(message_body, (bytes, bytearray)):
            self._buffer.extend((b"", b""))
            msg = b"\r\n".join(self._buffer)
            del self._buffer[:]
            self.send(msg + message_body)
        else:  # pragma: no cover - we always send bytes
            super()._send_output(message_body, encode_chunked)


class _HTTPConnection(_OneWrite, http.client.HTTPConnection):
    pass


class _HTTPSConnection(_OneWrite, http.client.HTTPSConnection):
    pass


class _ThreadConnections:
    """One keep-alive provider connection per sending thread, all closed by ``close()``.
    Subclasses say how a connection is opened (``_open``) and ended (``_end``)."""

    def __init__(self):
        self._local = threading.local()
        self._conns: list = []
        self._lock = threading.Lock()

    def _open(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _end(self, c) -> None:
        c.close()

    def _conn(self):
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._open()
            self._local.conn = c
            with self._lock:
                self._conns.append(c)
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            try:
                c.close()
            except Exception:  # pragma: no cover
                pass
            self._local.conn = None

    def close(self) -> None:
        with self._lock:
            for c in self._conns:
                try:
                    self._end(c)
                except Exception:  # pragma: no cover
                    pass
            self._conns.clear()


class HttpChannel(_ThreadConnections):
    """SMS / app push over the provider's JSON webhook (keep-alive connection per thread)."""

    RETRYABLE = {401, 403, 408, 425, 429, 500, 502, 503, 504}  # 401/403: our credentials, not the message

    def __init__(self, url: str, channel: str, rate: float, timeout: float, max_429_waits: int = 5, max_429_wait_seconds: float = 60.0):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the {channel} webhook URL must be http(s)://host[:port]/path")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.auth = None
        if parts.username:
            import base64

            token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
            self.auth = f"Basic {token}"
        self.channel = channel
        self.timeout = timeout
        self.limiter = RateLimiter(rate)
        self.max_429_waits = max_429_waits
        self.max_429_wait_seconds = max(0.0, float(max_429_wait_seconds))
        super().__init__()

    def _open(self) -> http.client.HTTPConnection:
        cls = _HTTPSConnection if self.scheme == "https" else _HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def send(self, m: Outbound) -> Outcome:
        if self.channel == "sms" and not m.phone:
            return Outcome("failed", reason="no phone number")
        key = m.key
        payload = {
            "idempotency_key": key,
            "channel": self.channel,
            "to": m.phone if self.channel == "sms" else m.customer_id,
            "subject": m.subject,
            "text": m.body,
            "campaign": m.campaign,
            "touch_key": m.touch_key,
            "locale": m.locale,
        }
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": key, "Content-Length": str(len(body))}
        if self.auth:
            headers["Authorization"] = self.auth
        # 429: wait in line (the lease is renewed meanwhile, see _Lease) for at most
        # max_429_waits pauses and max_429_wait_seconds from the first attempt; a longer
        # pause reschedules the message (settle: planned, not_before at the pause's end)
        waits, deadline = 0, time.monotonic() + self.max_429_wait_seconds
        while True:
            left = self.limiter.wait(deadline - time.monotonic())
            if left:
                return Outcome("retry", reason=f"{self.channel} provider 429: rate_limited", retry_after=left)
            try:
                conn = self._conn()
                conn.request("POST", self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
                retry_after = resp.getheader("Retry-After")
                if resp.getheader("Connection", "").lower() == "close":
                    self._drop()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                return Outcome("retry", reason=f"{self.channel} provider unreachable: {type(exc).__name__}")
            if status == 429:
                pause = _retry_after_seconds(retry_after, default=1.0)
                if self.limiter.pause(pause):  # once per pause; the channel and figures only, no recipient
                    if pause > self.max_429_wait_seconds:
                        log.warning("%s", t("log.messaging.rate_limited_long", channel=self.channel, pause=f"{pause:.0f}",
                                              wait=f"{self.max_429_wait_seconds:.0f}"))
                    else:
                        log.info("%s", t("log.messaging.rate_limited", channel=self.channel, pause=f"{pause:.1f}"))
                if waits < self.max_429_waits:
                    waits += 1
                    continue
            break
        try:
            answer = json.loads(data or b"{}")
        except ValueError:
            answer = {}
        if 200 <= status < 300 or status == 409:  # 409: the provider already has this key
            return Outcome("sent", provider_id=str(answer.get("message_id") or answer.get("id") or "")[:200] or None)
        # the provider's own words, phone numbers and emails masked (providers quote the
        # recipient they refused), as the SMTP replies are: the reason is kept on the touch
        said = _provider_text(str(answer.get('error') or answer.get('message') or ''))
        reason = f"{self.channel} provider {status}: {said}".rstrip(": ")
        if status in self.RETRYABLE:
            return Outcome("retry", reason=reason, retry_after=_retry_after_seconds(retry_after, None))
        return Outcome("failed", reason=reason)


MAX_RETRY_AFTER = 300.0  # a provider's Retry-After is honoured up to this long


def _retry_after_seconds(value: str | None, default: float | None) -> float | None:
    """Retry-After in seconds (delta-seconds or an HTTP date), within 0..MAX_RETRY_AFTER;
    ``default`` when absent or unreadable."""
    if not value:
        return default
    try:
        secs = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return default
        if when is None:
            return default
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        secs = (when - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(secs):
        return MAX_RETRY_AFTER if secs > 0 else default
    return max(0.0, min(secs, MAX_RETRY_AFTER))


class _MarkData:
    """Notes that the DATA phase began: from then on a lost connection leaves it unknown
    whether the server accepted the message."""

    data_started = False

    def data(self, msg):
        self.data_started = True
        return super().data(msg)


class _Smtp(_MarkData, smtplib.SMTP):
    pass


class _SmtpSsl(_MarkData, smtplib.SMTP_SSL):
    pass


# why an email touch waits in awaiting_review instead of being resent
HELD_EMAIL = "email held: it may have reached the mail server ({why}); SMTP does not de-duplicate, so it is resent only when approved"


class SmtpChannel(_ThreadConnections):
    """Email over SMTP; ``smtp://[user:pass@]host:port`` (``?starttls=1``) or ``smtps://``."""

    def __init__(self, url: str, sender: str, rate: float, timeout: float):
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("the SMTP URL must look like smtp://host:port or smtps://host:port")
        self.ssl = parts.scheme == "smtps"
        self.host = parts.hostname
        self.port = parts.port or (465 if self.ssl else 25)
        self.user = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.starttls = "starttls=1" in (parts.query or "") or "starttls=true" in (parts.query or "")
        self.sender = sender
        self.timeout = timeout
        self.limiter = RateLimiter(rate)
        super().__init__()

    def _open(self) -> smtplib.SMTP:
        c = (_SmtpSsl if self.ssl else _Smtp)(self.host, self.port, timeout=self.timeout)
        if self.starttls:
            c.starttls()
        if self.user:
            c.login(self.user, self.password or "")
        return c

    def _end(self, c: smtplib.SMTP) -> None:
        c.quit()

    def send(self, m: Outbound) -> Outcome:
        if not m.email:
            return Outcome("failed", reason="no email address")
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = m.email
        msg["Subject"] = m.subject or ""
        msg["Message-ID"] = message_id(m.touch_key)
        msg["Idempotency-Key"] = m.key
        msg["Date"] = format_datetime(datetime.now(timezone.utc))
        msg.set_content(m.body or "")
        self.limiter.wait()
        c = None
        try:
            c = self._conn()
            c.data_started = False
            refused = c.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()))[0] if exc.recipients else 550
            self._reset()
            return Outcome("retry" if 400 <= code < 500 else "failed", reason=f"smtp {code}: recipient refused")
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return Outcome("retry" if 400 <= exc.smtp_code < 500 else "failed", reason=f"smtp {exc.smtp_code}: {_provider_text(exc.smtp_error)}")
        except (smtplib.SMTPException, OSError) as exc:
            self._drop()
            if getattr(c, "data_started", False):  # no answer to the message itself: maybe delivered
                return Outcome("held", reason=HELD_EMAIL.format(why=f"connection lost after the message was handed over, {type(exc).__name__}"))
            return Outcome("retry", reason=f"smtp unreachable: {type(exc).__name__}")
        if refused:
            return Outcome("failed", reason="smtp: recipient refused")
        return Outcome("sent", provider_id=message_id(m.touch_key))

    def _reset(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            try:
                c.rset()
            except Exception:
                self._drop()


def _provider_text(err) -> str:
    """A provider's error text (SMTP reply, webhook answer) as kept on a touch: phone numbers and
    emails masked, at most 200 characters."""
    s = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
    from userops.privacy import scrub_text

    return scrub_text(s)[:200]


STAFF_COLUMNS = ["touch_key", "campaign", "customer_id", "name", "phone", "email", "member_level", "churn_reasons", "subject", "message", "listed_at", "contacted_by", "outcome"]
# The staff read the lists: their header row is in the operator's language (the catalogue's
# outreach.col.*). The product reads its own lists back (de-duplication on touch_key, appending
# in a file's own columns, the .xlsx): ``staff_column`` maps a header cell written in either
# language, or a canonical name (lists written before the headers were translated), back to
# the canonical column; ``read_staff_list`` gives a list with the canonical names.
register(
    {
        "outreach.col.touch_key": {"zh-CN": "触达编号", "en": "touch key"},
        "outreach.col.campaign": {"zh-CN": "活动", "en": "campaign"},
        "outreach.col.customer_id": {"zh-CN": "客户编号", "en": "customer ID"},
        "outreach.col.name": {"zh-CN": "姓名", "en": "name"},
        "outreach.col.phone": {"zh-CN": "手机号", "en": "phone"},
        "outreach.col.email": {"zh-CN": "邮箱", "en": "email"},
        "outreach.col.member_level": {"zh-CN": "会员等级", "en": "member level"},
        "outreach.col.churn_reasons": {"zh-CN": "流失风险原因", "en": "churn risk reasons"},
        "outreach.col.subject": {"zh-CN": "标题", "en": "subject"},
        "outreach.col.message": {"zh-CN": "消息内容", "en": "message"},
        "outreach.col.listed_at": {"zh-CN": "列入时间（店铺时间）", "en": "listed at (shop time)"},
        "outreach.col.contacted_by": {"zh-CN": "联系人（员工填写）", "en": "contacted by (staff)"},
        "outreach.col.outcome": {"zh-CN": "联系结果（员工填写）", "en": "outcome (staff)"},
    }
)


def staff_headers(lang: str | None = None) -> list[str]:
    """The header row of a new staff-outreach list, in ``lang`` (default: the operator's)."""
    return [t(f"outreach.col.{c}", lang) for c in STAFF_COLUMNS]


def staff_column(header: str) -> str | None:
    """The canonical column of a list's header cell (zh-CN, en or canonical), None if unknown."""
    h = str(header).strip().lstrip("\ufeff")
    for c in STAFF_COLUMNS:
        if h == c or h in (t(f"outreach.col.{c}", "zh-CN"), t(f"outreach.col.{c}", "en")):
            return c
    return None


def read_staff_list(path) -> pd.DataFrame:
    """A staff-outreach list (.csv or .xlsx, headers in any language) with the canonical column
    names (``STAFF_COLUMNS``; unknown columns keep their header), every cell as text."""
    p = Path(path)
    if p.suffix.lower() == ".xlsx":
        df = pd.read_excel(p, dtype=str, keep_default_na=False)
    else:
        df = pd.read_csv(p, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    return df.rename(columns={h: staff_column(h) or h for h in df.columns})


def listed_at(now: datetime) -> str:
    """When a row was listed, in shop time with its UTC offset (2026-12-08T01:31:22+08:00): the
    list sits in the shop day's folder and staff read it in shop time."""
    return now.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(shop_zone())).isoformat(timespec="seconds")


# The lists hold phones and emails: only the owner (the staff account running the sender) may
# read them, whatever the umask.
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _open_private(path: Path, flags: int):
    """A file descriptor of ``path`` opened with ``flags`` (plus O_CREAT), the file created
    0600 and made 0600 if it existed with a wider mode."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.chmod(path, PRIVATE_FILE_MODE)  # umask cannot widen it, but an older file may be 0644
    except BaseException:
        os.close(fd)
        raise
    return fd


def _churn_reasons(engine: Engine, ids: list[str]) -> dict[str, str]:
    """customer -> the champion churn model's top reasons (``churn_scores.reasons`` in the
    operator's language: "no order for 75 days, usually buys every 20 days; ..."), for the
    customers it rates at risk (high band, as ``tags.at_risk`` and the retention audience).
    Built from the stored codes and figures only, never a contact detail; {} when there are
    none or they cannot be read (the list is still written)."""
    if not ids:
        return {}
    try:
        stmt = sa.text(
            "SELECT s.customer_id, s.reasons FROM churn_scores s JOIN model_versions v ON v.version = s.model_version "
            "WHERE v.status = 'champion' AND s.risk_band = 'high' AND s.reasons IS NOT NULL AND s.customer_id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with engine.connect() as conn:
            rows = conn.execute(stmt, {"ids": ids}).fetchall()
        rows = [r for r in rows if str(r[1]).lstrip().startswith("{")]  # one odd value must not cost the others theirs
        if not rows:
            return {}
        from models.scoring import reasons_text

        text = reasons_text([r[1] for r in rows])
        return {r[0]: w for r, w in zip(rows, text.tolist()) if w}
    except Exception:  # the reasons are a help for the caller, never a reason not to list
        log.debug("churn reasons for the staff-outreach list could not be read", exc_info=True)
        return {}


class StaffList:
    """The staff-outreach list: one CSV (and .xlsx) per campaign and day under
    ``output_dir/outreach/<day>/``, for one-to-one follow-up (e.g. on WeCom). A touch
    is listed once: rows are de-duplicated on ``touch_key``, so a resend after a crash
    never lists a customer twice. The folders are 0700 and the files 0600 (they hold
    phones and emails); ``churn_reasons`` says why the churn model rates the customer at
    risk (empty for others)."""

    def __init__(self, output_dir: Path):
        self.root = Path(output_dir) / "outreach"
        self._keys: dict[Path, set[str]] = {}
        self.touched: set[Path] = set()

    def path(self, campaign: str, day: str) -> Path:
        return self.root / day / f"{campaign}.csv"

    def _private_folder(self, folder: Path) -> None:
        """``folder`` (a day folder under the root) and the root, created and kept 0700."""
        folder.mkdir(parents=True, exist_ok=True)
        for d in (self.root, folder):
            os.chmod(d, PRIVATE_DIR_MODE)

    def send_batch(self, msgs: list[Outbound], now: datetime) -> list[Outcome]:
        day = shop_day(now).isoformat()
        by_file: dict[Path, list[Outbound]] = {}
        for m in msgs:
            by_file.setdefault(self.path(m.campaign, day), []).append(m)
        for p, items in by_file.items():
            keys = self._known(p)
            new = [m for m in items if m.touch_key not in keys]
            if not new:
                continue
            self._private_folder(p.parent)
            fresh = not p.exists()
            columns = STAFF_COLUMNS
            if not fresh:  # append in the file's own columns (one written before a column was
                # added, or in the other language): its header cells mapped back to the columns
                with p.open(encoding="utf-8-sig", newline="") as fh:
                    header = next(csv.reader(fh), None)
                columns = [staff_column(h) for h in header] if header else STAFF_COLUMNS
            fd = _open_private(p, os.O_WRONLY | os.O_APPEND)
            with open(fd, "a", encoding="utf-8-sig" if fresh else "utf-8", newline="") as fh:
                w = csv.writer(fh)
                if fresh:
                    w.writerow(staff_headers())
                for m in new:
                    row = {
                        "touch_key": m.touch_key, "campaign": m.campaign, "customer_id": m.customer_id, "name": m.name or "",
                        "phone": m.phone or "", "email": m.email or "", "member_level": m.member_level or "",
                        "churn_reasons": m.churn_reasons or "", "subject": m.subject or "", "message": m.body or "",
                        "listed_at": listed_at(now),
                    }
                    w.writerow([row.get(c, "") for c in columns])
                fh.flush()
                os.fsync(fh.fileno())
            keys.update(m.touch_key for m in new)
            self.touched.add(p)
        return [Outcome("sent", provider_id=f"staff:{day}") for _ in msgs]

    def _known(self, p: Path) -> set[str]:
        """Keys already listed for this campaign on any day (a resend after a crash may
        fall on the next day)."""
        if p not in self._keys:
            keys: set[str] = set()
            for f in self.root.glob(f"*/{p.name}"):
                keys.update(read_staff_list(f)["touch_key"])
            self._keys[p] = keys
        return self._keys[p]

    def prune(self, today: date, keep_days: int) -> list[str]:
        """Delete the day folders older than ``keep_days`` (0: keep all). The lists hold
        customers' phones and emails for staff follow-up; they are working files, not an
        archive (the touches table keeps who was listed and when). Returns the days removed."""
        if keep_days <= 0 or not self.root.is_dir():
            return []
        gone = []
        for d in sorted(self.root.iterdir()):
            try:
                day = date.fromisoformat(d.name)
            except ValueError:
                continue  # not a day folder of ours
            if d.is_dir() and (today - day).days > keep_days:
                shutil.rmtree(d, ignore_errors=True)
                gone.append(d.name)
        if gone:
            self._keys.clear()
            log.info("%s", t("log.messaging.staff_lists_deleted", days=keep_days, folders=join_list(gone)))
        return gone

    def finish(self, max_rows: int) -> list[str]:
        """Write the .xlsx next to each CSV touched (up to ``max_rows``); returns the files."""
        out = []
        for p in sorted(self.touched):
            out.append(str(p))
            df = pd.read_csv(p, dtype=str, encoding="utf-8-sig", keep_default_na=False)
            if len(df) <= max_rows:
                x = p.with_suffix(".xlsx")
                with os.fdopen(_open_private(x, os.O_WRONLY | os.O_TRUNC), "wb") as fh:
                    df.to_excel(fh, index=False, sheet_name="outreach", engine="openpyxl")
                out.append(str(x))
        return out


# --------------------------------------------------------------------------- sending
def worker_id() -> str:
    try:
        import psutil

        start = int(psutil.Process(os.getpid()).create_time())
    except Exception:  # pragma: no cover
        start = 0
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{start}"


def _sender_state(claimed_by: str | None) -> str:
    """Where the sender that marked a touch in flight is: ``alive`` (a running process on
    this host), ``gone`` (its process on this host no longer exists, or no readable
    identity) or ``remote`` (another host: not decidable here, trusted until its lease
    runs out). ``claimed_by`` is ``host:pid:process start`` (``worker_id``)."""
    if not claimed_by:
        return "gone"
    try:
        host, pid, start = claimed_by.rsplit(":", 2)
        pid_i, start_i = int(pid), int(start)
    except ValueError:
        return "gone"
    if host != socket.gethostname()[:80]:
        return "remote"
    try:
        import psutil

        p = psutil.Process(pid_i)
        alive = abs(int(p.create_time()) - start_i) <= 1 and p.status() != psutil.STATUS_ZOMBIE
    except Exception:
        alive = False
    return "alive" if alive else "gone"


INTERRUPTED = "resent after an interrupted send"


def reclaim_in_flight(engine: Engine, now: datetime, lease_seconds: float) -> Counter:
    """Touches left in flight by a sender that is gone: SMS / push / staff go back to
    ``planned`` (same key, ``resent``); email waits in ``awaiting_review`` for an operator
    (``held``: SMTP does not de-duplicate). A sender on this host is gone when its process
    is; one elsewhere when its lease (``in_flight_at``, renewed while it works) is older
    than ``lease_seconds``. A live local sender's touches are never taken over."""
    out: Counter = Counter(resent=0, held=0)
    with engine.begin() as conn:
        owners = [r[0] for r in conn.execute(sa.text("SELECT DISTINCT claimed_by FROM touches WHERE status = 'in_flight'")).fetchall()]
        if not owners:
            return out
        state = {o: _sender_state(o) for o in owners}
        dead = [o for o, st in state.items() if o is not None and st == "gone"]
        remote = [o for o, st in state.items() if st == "remote"]
        if not dead and not remote and None not in state:
            return out
        cond = (
            "status = 'in_flight' AND (claimed_by IS NULL OR claimed_by IN :dead "
            "OR (claimed_by IN :remote AND (in_flight_at IS NULL OR in_flight_at < :cut)))"
        )
        binds = [sa.bindparam("dead", expanding=True), sa.bindparam("remote", expanding=True), *_ts_params("cut")]
        params = {"dead": dead or ["-"], "remote": remote or ["-"], "cut": now - timedelta(seconds=lease_seconds)}
        held = sa.text(
            "UPDATE touches SET status = 'awaiting_review', reason = :why, claimed_by = NULL "
            f"WHERE {cond} AND channel = 'email'"
        ).bindparams(*binds)
        out["held"] = conn.execute(held, dict(params, why=HELD_EMAIL.format(why="its sender stopped mid-send"))).rowcount or 0
        resend = sa.text(
            f"UPDATE touches SET status = 'planned', reason = :why, claimed_by = NULL WHERE {cond}"
        ).bindparams(*binds)
        out["resent"] = conn.execute(resend, dict(params, why=INTERRUPTED)).rowcount or 0
    if out["resent"]:
        log.warning("%s", t("log.messaging.resending", n=f"{out['resent']:,}"))
    if out["held"]:
        log.warning("%s", t("log.messaging.email_held", n=f"{out['held']:,}"))
    return out


class _Lease:
    """Keeps this sender's claims fresh for as long as its ``send_due`` runs: a background
    thread sets ``in_flight_at`` of every touch the sender holds to now every quarter of
    the lease, whatever the sending threads are doing, so a sender on another host is not
    taken over while it waits (a slow provider, its pacing, 429 Retry-After pauses of up
    to ``retry_wait_seconds`` per message) or works through a long batch.

    Why a thread rather than renewing after each provider call (or between slices of each
    sleep): it covers every wait, present and future, in one place, and it is tied to the
    one thing the lease stands for, the sender being alive. It dies with the process (a
    daemon thread) and stops when ``send_due`` returns or raises, so a sender that is gone
    (or a run that aborted) stops renewing and its touches are taken over once
    ``in_flight_lease_seconds`` have passed. ``send_due`` itself always ends: requests have
    timeouts, in-line 429 waits are bounded, a longer pause reschedules the message.

    A renewal and a settle of the same rows are serialized by ``lock`` (two UPDATEs of one
    row set in different orders could deadlock on PostgreSQL). A renewal that fails is
    logged (type only) and tried again a quarter lease later."""

    def __init__(self, engine: Engine, me: str, clock, lease_seconds: float):
        self.engine, self.me, self.clock = engine, me, clock
        self.every = max(0.05, float(lease_seconds) / 4)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def renew(self) -> None:
        stmt = sa.text("UPDATE touches SET in_flight_at = :now WHERE status = 'in_flight' AND claimed_by = :me").bindparams(*_ts_params("now"))
        try:
            with self.lock, self.engine.begin() as conn:
                conn.execute(stmt, {"now": self.clock(), "me": self.me})
        except Exception as exc:  # never stop sending over it; the next beat tries again
            log.debug("could not renew the in-flight lease: %s", type(exc).__name__)  # retried a quarter lease later

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self.renew()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="send-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def suppress_unreachable(engine: Engine, campaign: str | None = None) -> Counter:
    """Last-moment check for planned marketing touches: unsubscribed, no consent, open crisis."""
    out: Counter = Counter()
    where = "status IN ('planned', 'awaiting_review') AND is_marketing = :t"
    params: dict = {"t": True}
    if campaign:
        where += " AND campaign = :campaign"
        params["campaign"] = campaign
    rules = [
        ("unsubscribed", "SELECT customer_id FROM customers WHERE unsubscribed_at IS NOT NULL"),
        ("no_consent", "SELECT customer_id FROM customers WHERE marketing_consent IS NULL OR marketing_consent = :f"),
        ("open_crisis", "SELECT ic.customer_id FROM incident_customers ic JOIN incidents i ON i.incident_id = ic.incident_id WHERE i.status = 'open'"),
    ]
    with engine.begin() as conn:
        for reason, sub in rules:
            p = dict(params, reason=reason, f=False)
            n = conn.execute(
                sa.text(f"UPDATE touches SET status = 'suppressed', reason = :reason WHERE {where} AND customer_id IN ({sub})"), p
            ).rowcount or 0
            if n:
                out[reason] += n
    return out


def defer_quiet(engine: Engine, now: datetime, campaign: str | None = None) -> int:
    """Due touches whose customer is inside quiet hours right now wait until they end."""
    where = "status = 'planned' AND quiet_hours IS NOT NULL AND (not_before IS NULL OR not_before <= :now)"
    params: dict = {"now": now}
    if campaign:
        where += " AND campaign = :campaign"
        params["campaign"] = campaign
    with engine.begin() as conn:
        combos = conn.execute(sa.text(f"SELECT DISTINCT quiet_hours, timezone FROM touches WHERE {where}").bindparams(*_ts_params("now")), params).fetchall()
        if not combos:
            return 0
        frame = pd.DataFrame(combos, columns=["quiet_hours", "timezone"])
        zones = valid_zones(frame["timezone"])
        nb = quiet_not_before(pd.Series(pd.Timestamp(now), index=frame.index), zones, frame["quiet_hours"])
        n = 0
        for i in frame.index[nb.notna()]:  # one UPDATE per (quiet hours, timezone) pair
            q, tz = frame.at[i, "quiet_hours"], frame.at[i, "timezone"]
            tz_cond = "timezone IS NULL" if tz is None else "timezone = :tz"
            stmt = sa.text(f"UPDATE touches SET not_before = :nb WHERE {where} AND quiet_hours = :q AND {tz_cond}").bindparams(*_ts_params("now", "nb"))
            n += conn.execute(stmt, dict(params, nb=nb[i].to_pydatetime(), q=q, tz=tz)).rowcount or 0
    return n


_CLAIM_COLS = "touch_key, campaign, customer_id, channel, subject, body, locale, attempts"


def claim_batch(engine: Engine, now: datetime, n: int, me: str, campaign: str | None = None, channels: list[str] | None = None) -> list[tuple]:
    """Mark up to ``n`` due touches in flight (committed) and return them, oldest planned
    first (crisis apologies rely on it: core customers are planned first). ``channels``:
    only touches of these channels (the ones that can be delivered right now)."""
    cond = "status = 'planned' AND (not_before IS NULL OR not_before <= :now)"
    params: dict = {"now": now, "n": n, "me": me}
    if campaign:
        cond += " AND campaign = :campaign"
        params["campaign"] = campaign
    if channels is not None:
        cond += " AND channel IN :channels"
        params["channels"] = list(channels) or ["-"]
    sets = "status = 'in_flight', in_flight_at = :now, attempts = attempts + 1, claimed_by = :me"
    if is_postgres(engine):
        # a materialized CTE: the LIMIT applies once (an IN-subquery may be re-run per row)
        cols = ", ".join(f"t.{c.strip()}" for c in _CLAIM_COLS.split(","))
        stmt = sa.text(
            f"WITH due AS (SELECT touch_key FROM touches WHERE {cond} ORDER BY planned_at LIMIT :n FOR UPDATE SKIP LOCKED) "
            f"UPDATE touches AS t SET {sets.replace('attempts + 1', 't.attempts + 1')} FROM due "
            f"WHERE t.touch_key = due.touch_key RETURNING {cols}"
        ).bindparams(*_ts_params("now"), *([sa.bindparam("channels", expanding=True)] if channels is not None else []))
    else:  # SQLite: one writer at a time; the subquery is evaluated once
        stmt = sa.text(
            f"UPDATE touches SET {sets} WHERE touch_key IN (SELECT touch_key FROM touches WHERE {cond} ORDER BY planned_at LIMIT :n) "
            f"AND status = 'planned' RETURNING {_CLAIM_COLS}"
        ).bindparams(*_ts_params("now"), *([sa.bindparam("channels", expanding=True)] if channels is not None else []))
    with engine.begin() as conn:
        return conn.execute(stmt, params).fetchall()


def _contacts(engine: Engine, ids: list[str]) -> dict[str, tuple]:
    stmt = sa.text("SELECT customer_id, name, email, phone, member_level FROM customers WHERE customer_id IN :ids").bindparams(sa.bindparam("ids", expanding=True))
    with engine.connect() as conn:
        return {r[0]: r[1:] for r in conn.execute(stmt, {"ids": ids}).fetchall()}


def settle(engine: Engine, results: list[tuple[Outbound, Outcome]], now: datetime, max_attempts: int, backoff: float, me: str) -> Counter:
    """Record a batch's outcomes in one bulk UPDATE, only for the touches sender ``me``
    still holds (in flight, ``claimed_by = me``). A touch whose claim is gone (taken over
    after the lease ran out, already settled by another sender) keeps what is recorded;
    each is named in a warning and counted as ``claim_lost``."""
    counts: Counter = Counter()
    rows = []
    kind: dict[str, str] = {}
    for m, o in results:
        if o.status == "sent":
            rows.append((m.touch_key, "sent", now, o.provider_id, None, None, m.channel))
            kind[m.touch_key] = "sent"
        elif o.status == "held":
            rows.append((m.touch_key, "awaiting_review", None, None, o.reason, None, m.channel))
            kind[m.touch_key] = "held"
        elif o.status == "retry" and m.attempts < max_attempts:
            wait = o.retry_after if o.retry_after is not None else backoff * (2 ** max(0, m.attempts - 1))
            rows.append((m.touch_key, "planned", None, None, o.reason, now + timedelta(seconds=min(wait, 6 * 3600)), m.channel))
            kind[m.touch_key] = "retry"
        else:
            reason = o.reason if o.status == "failed" else f"gave up after {m.attempts} attempts: {o.reason}"
            rows.append((m.touch_key, "failed", None, None, reason, None, m.channel))
            kind[m.touch_key] = "failed"
    if not rows:
        return counts
    recorded: set[str] = set()
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        if is_postgres(engine):
            from psycopg2.extras import execute_values

            with raw.cursor() as cur:
                got = execute_values(
                    cur,
                    "UPDATE touches AS t SET status = v.status, sent_at = v.sent_at, provider_id = v.provider_id, "
                    "reason = v.reason, not_before = v.not_before, channel = v.channel, claimed_by = NULL "
                    "FROM (VALUES %s) AS v(touch_key, status, sent_at, provider_id, reason, not_before, channel, me) "
                    "WHERE t.touch_key = v.touch_key AND t.status = 'in_flight' AND t.claimed_by = v.me "
                    "RETURNING t.touch_key",
                    [(*r, me) for r in rows],
                    template="(%s, %s, %s::timestamp, %s, %s, %s::timestamp, %s, %s)",
                    page_size=1000,
                    fetch=True,
                )
            recorded = {r[0] for r in got}
        else:  # one statement per row: its rowcount says whether this sender still held it
            cur = raw.cursor()
            sql = (
                "UPDATE touches SET status = ?, sent_at = ?, provider_id = ?, reason = ?, not_before = ?, channel = ?, claimed_by = NULL "
                "WHERE touch_key = ? AND status = 'in_flight' AND claimed_by = ?"
            )
            for k, st, sent, pid, r, nb, ch in rows:
                cur.execute(sql, (st, _db_ts(engine, sent), pid, r, _db_ts(engine, nb), ch, k, me))
                if cur.rowcount:
                    recorded.add(k)
            cur.close()
    for k, what in kind.items():
        if k in recorded:
            counts[what] += 1
        else:
            counts["claim_lost"] += 1
            log.warning("%s", t("log.messaging.claim_lost", touch=k, what=t(f"log.messaging.outcome.{what}")))
    return counts


class _Clock:
    """``now`` fixed when given (or pinned by USEROPS_NOW), else the real clock."""

    def __init__(self, now: datetime | None):
        self.fixed = now or (utcnow() if os.environ.get("USEROPS_NOW") else None)

    def __call__(self) -> datetime:
        return self.fixed or utcnow()


def _next_retry(engine: Engine, now: datetime, campaign: str | None) -> datetime | None:
    sql = "SELECT MIN(not_before) FROM touches WHERE status = 'planned' AND attempts > 0 AND not_before > :now"
    params: dict = {"now": now}
    if campaign:
        sql += " AND campaign = :campaign"
        params["campaign"] = campaign
    with engine.connect() as conn:
        v = conn.execute(sa.text(sql).bindparams(*_ts_params("now")), params).scalar()
    if v is None:
        return None
    return pd.Timestamp(v).to_pydatetime().replace(tzinfo=None)


@dataclass
class _Channels:
    override: str | None
    output_dir: Path
    smtp_url: str | None
    sms_url: str | None
    push_url: str | None
    opened: dict = field(default_factory=dict)

    def configured(self, channel: str) -> bool:
        return {"email": bool(self.smtp_url), "sms": bool(self.sms_url), "push": bool(self.push_url), "staff": True}[channel]

    def get(self, channel: str):
        if channel in self.opened:
            return self.opened[channel]
        s = get_settings()
        cs = s.campaigns
        if channel == "email":
            if not self.smtp_url:
                raise RuntimeError("email touches are due but no SMTP server is configured (USEROPS_SMTP_URL)")
            ch = SmtpChannel(self.smtp_url, cs.email_from, cs.email_rate_per_second, cs.request_timeout_seconds)
        elif channel in ("sms", "push"):
            url = self.sms_url if channel == "sms" else self.push_url
            if not url:
                raise RuntimeError(f"{channel} touches are due but no provider is configured (USEROPS_{channel.upper()}_WEBHOOK_URL)")
            rate = cs.sms_rate_per_second if channel == "sms" else cs.push_rate_per_second
            ch = HttpChannel(url, channel, rate, cs.request_timeout_seconds, max_429_wait_seconds=cs.retry_wait_seconds)
        elif channel == "staff":
            ch = StaffList(self.output_dir)
        else:
            raise ValueError(f"unknown channel {channel!r}")
        self.opened[channel] = ch
        return ch

    def close(self, now: datetime) -> list[str]:
        files = []
        for name, ch in self.opened.items():
            if name == "staff":
                cs = get_settings().campaigns
                files = ch.finish(cs.staff_excel_max_rows)
                ch.prune(shop_day(now), cs.outreach_keep_days)
            else:
                ch.close()
        return files


def _secret(v) -> str | None:
    if v is None:
        return None
    return v.get_secret_value() if hasattr(v, "get_secret_value") else str(v)


class ChannelNotConfigured(RuntimeError):
    """``--channel X`` / ``channel=X`` asked for a channel with no provider configured. Its
    text is the operator's language; ``localized(lang)`` for another."""

    def __init__(self, channel: str):
        from tasks.campaigns.texts import PROVIDER_SETTINGS

        self.channel, self.setting = channel, PROVIDER_SETTINGS.get(channel, "?")
        super().__init__(self.localized())

    def localized(self, lang: str | None = None) -> str:
        from userops.i18n import t

        return t("campaign.delivery.channel_unconfigured", lang, channel=self.channel, setting=self.setting)


def provider_configured(channel: str) -> bool:
    """Whether a provider is configured for ``channel`` in the settings (staff: always)."""
    s = get_settings()
    return {"email": bool(_secret(s.smtp_url)), "sms": bool(_secret(s.sms_webhook_url)),
            "push": bool(_secret(s.push_webhook_url))}.get(channel, True)


def send_due(
    engine: Engine | None = None,
    now: datetime | None = None,
    channel_override: str | None = None,
    *,
    campaign: str | None = None,
    limit: int | None = None,
    batch_size: int | None = None,
    workers: int | None = None,
    max_attempts: int | None = None,
    smtp_url: str | None = None,
    sms_url: str | None = None,
    push_url: str | None = None,
    output_dir: Path | None = None,
    wait_for_retries: bool = True,
) -> dict:
    """Deliver every due touch exactly once (see the module docstring); returns counts.

    ``now``: the clock for due/quiet-hours decisions (default: real time). ``channel_override``:
    deliver through this channel instead (tests, one-off sends). ``campaign``: only this
    campaign's touches. ``limit``: stop after this many touches. Provider URLs default to
    settings (``USEROPS_SMTP_URL``, ``USEROPS_SMS_WEBHOOK_URL``, ``USEROPS_PUSH_WEBHOOK_URL``)."""
    if channel_override is not None and channel_override not in CHANNELS:
        raise ValueError(f"unknown channel {channel_override!r}; use {', '.join(CHANNELS)}")
    s = get_settings()
    cs = s.campaigns
    engine = engine or get_engine()
    clock = _Clock(now)
    batch_size = batch_size or cs.send_batch
    max_attempts = max_attempts or cs.max_attempts
    me = worker_id()
    t0 = time.perf_counter()
    stats: Counter = Counter()
    per_channel: Counter = Counter()
    reasons: Counter = Counter()
    stats_unconfigured: dict = {}
    taken_over = reclaim_in_flight(engine, clock(), cs.in_flight_lease_seconds)
    stats["resent_after_crash"] = taken_over["resent"]
    stats["held"] += taken_over["held"]
    lease = _Lease(engine, me, clock, cs.in_flight_lease_seconds)
    for reason, n in suppress_unreachable(engine, campaign).items():
        stats["suppressed"] += n
        reasons[reason] += n
    channels = _Channels(
        channel_override,
        Path(output_dir or s.output_dir),
        smtp_url or _secret(s.smtp_url),
        sms_url or _secret(s.sms_webhook_url),
        push_url or _secret(s.push_webhook_url),
    )
    if channel_override and not channels.configured(channel_override):
        raise ChannelNotConfigured(channel_override)
    # touches of a channel with no provider configured stay planned (nothing is burned)
    deliverable = None if channel_override else [ch for ch in CHANNELS if channels.configured(ch)]
    if deliverable is not None and len(deliverable) < len(CHANNELS):
        # of this send's touches (one campaign's when ``campaign`` is given): the operator's
        # delivery line counts them beside sent and failed
        only = " AND campaign = :campaign" if campaign else ""
        with engine.connect() as conn:
            stuck = dict(conn.execute(
                sa.text(f"SELECT channel, COUNT(*) FROM touches WHERE status = 'planned' AND channel NOT IN :ch{only} GROUP BY channel").bindparams(sa.bindparam("ch", expanding=True)),
                {"ch": deliverable, **({"campaign": campaign} if campaign else {})},
            ).fetchall())
        if stuck:
            stats_unconfigured.update({k: int(v) for k, v in stuck.items()})
            log.warning("%s", no_provider_warning(stats_unconfigured))
    n_workers = workers or cs.send_workers
    pool = ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="send")
    last_quiet = -1e9
    running: _Job | None = None  # the batch whose requests are out; the next is claimed meanwhile

    def finish(job: _Job) -> None:
        results = job.results()
        for m, o in results:
            per_channel[m.channel] += o.status == "sent"
            if o.status != "sent" and o.reason:
                reasons[o.reason.split(":")[0]] += 1
        with lease.lock:  # not while the lease thread updates the same rows
            settled = settle(engine, results, clock(), max_attempts, cs.retry_backoff_seconds, me)
        for k, v in settled.items():
            stats[k] += v

    lease.start()  # renews this sender's claims until its last batch is settled
    try:
        while True:
            t_now = clock()
            job = None
            if limit is None or stats["claimed"] < limit:
                if time.monotonic() - last_quiet > 30:
                    stats["deferred_quiet_hours"] += defer_quiet(engine, t_now, campaign)
                    last_quiet = time.monotonic()
                n = batch_size if limit is None else min(batch_size, limit - stats["claimed"])
                claimed = claim_batch(engine, t_now, n, me, campaign, deliverable)  # committed before any request
                if claimed:
                    stats["claimed"] += len(claimed)
                    job = _Job.start(engine, claimed, channels, pool, n_workers, clock)
            if running is not None:
                finish(running)  # settle the previous batch while this one is on the wire
                running = None
            if job is not None:
                running = job
                continue
            if (limit is None or stats["claimed"] < limit) and clock.fixed is None and wait_for_retries:
                nxt = _next_retry(engine, t_now, campaign)
                if nxt is not None and (nxt - t_now).total_seconds() <= cs.retry_wait_seconds:
                    time.sleep(max(0.0, (nxt - t_now).total_seconds()) + 0.01)
                    continue
            break
    finally:
        try:
            if running is not None:
                finish(running)
            pool.shutdown(wait=True)
            files = channels.close(clock())
        finally:
            lease.stop()
    with engine.connect() as conn:
        pending = dict(conn.execute(sa.text("SELECT status, COUNT(*) FROM touches WHERE status IN ('planned', 'awaiting_review', 'in_flight') GROUP BY status")).fetchall())
    duration = time.perf_counter() - t0
    out = {
        "sent": stats["sent"],
        "failed": stats["failed"],
        "retry_scheduled": stats["retry"],
        "suppressed": stats["suppressed"],
        "deferred_quiet_hours": stats["deferred_quiet_hours"],
        "resent_after_crash": stats["resent_after_crash"],
        "held_for_review": stats["held"],
        "claim_lost": stats["claim_lost"],
        "claimed": stats["claimed"],
        "per_channel": dict(per_channel),
        "reasons": dict(reasons),
        "pending": {k: int(v) for k, v in pending.items()},
        "waiting_for_provider": stats_unconfigured,
        "outreach_files": [Path(f).name for f in files],
        "duration_s": round(duration, 3),
        "per_second": round(stats["claimed"] / duration, 1) if duration > 0 else None,
    }
    if stats["claimed"] or stats["suppressed"] or stats["resent_after_crash"] or stats["held"]:
        with engine.begin() as conn:
            audit(conn, "sender", "send_due", "touches", campaign, {k: out[k] for k in ("sent", "failed", "retry_scheduled", "suppressed", "resent_after_crash", "held_for_review", "claim_lost", "per_channel")})
    return out


def _send_one(sender, m: Outbound) -> Outcome:
    if isinstance(sender, Exception):
        return Outcome("retry", reason=str(sender))
    try:
        return sender.send(m)
    except Exception as exc:  # never lose the bookkeeping over one message
        return Outcome("retry", reason=f"{m.channel} send error: {type(exc).__name__}")


class _Job:
    """One claimed batch on its way out: staff-list rows are written at once; requests go
    out from the thread pool, each thread working through its slice on one keep-alive
    connection."""

    def __init__(self, done: list[tuple[Outbound, Outcome]], futures: list):
        self.done = done
        self.futures = futures

    @classmethod
    def start(cls, engine: Engine, claimed: list[tuple], channels: _Channels, pool: ThreadPoolExecutor, n_workers: int, clock) -> "_Job":
        contacts = _contacts(engine, list({r[2] for r in claimed}))
        msgs: list[Outbound] = []
        for key, camp, cid, channel, subject, body, locale, attempts in claimed:
            name, email, phone, level = contacts.get(cid, (None, None, None, None))
            msgs.append(Outbound(key, camp, cid, channels.override or channel, subject, body, locale, int(attempts), name, email, phone, level))
        done: list[tuple[Outbound, Outcome]] = []
        staff = [m for m in msgs if m.channel == "staff"]
        if staff:
            why = _churn_reasons(engine, list({m.customer_id for m in staff}))
            for m in staff:
                m.churn_reasons = why.get(m.customer_id)
            done += list(zip(staff, channels.get("staff").send_batch(staff, clock())))
        remote = [m for m in msgs if m.channel != "staff"]
        senders = {}
        for ch in {m.channel for m in remote}:
            try:
                senders[ch] = channels.get(ch)
            except RuntimeError as exc:
                senders[ch] = exc

        def run(part: list[Outbound]) -> list[tuple[Outbound, Outcome]]:
            out = []
            for m in part:  # the claims stay fresh meanwhile: send_due's _Lease thread
                out.append((m, _send_one(senders[m.channel], m)))
            return out

        k = max(1, min(n_workers, len(remote)))
        futures = [pool.submit(run, remote[i::k]) for i in range(k)] if remote else []
        return cls(done, futures)

    def results(self) -> list[tuple[Outbound, Outcome]]:
        out = list(self.done)
        for f in self.futures:
            out += f.result()
        return out


# --------------------------------------------------------------------------- Prefect tasks
@task(name="send-due-touches", cache_policy=NO_CACHE)
def send_due_task(channel_override: str | None = None, campaign: str | None = None) -> dict:
    return send_due(channel_override=channel_override, campaign=campaign)
