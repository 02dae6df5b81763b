"""Operator alerts. Everything goes through the ``alert_outbox`` table first; delivery
(Slack, DingTalk, WeCom) is a separate step that retries and never fails a pipeline run."""
from __future__ import annotations

import json
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userops.db import get_engine, is_postgres


def enqueue_alert(
    kind: str,
    title: str,
    body: str,
    *,
    severity: str = "warning",
    subject: str = "",
    day: date | None = None,
    payload: dict | None = None,
    channels: list[str] | None = None,
    conn: Connection | None = None,
) -> int:
    """Queue an alert for the channels that ``kind`` is routed to (default: every configured
    channel, or ``"log"`` when none is). The same (kind, subject, day) is queued once per
    channel, so re-running a night does not alert twice. Returns the number of new rows.

    ``title`` and ``body`` must not contain personal data or secrets."""
    from tasks.alerts.routing import channels_for

    day = day or datetime.utcnow().date()
    dedupe = f"{kind}|{subject}|{day.isoformat()}"
    rows = [
        {
            "dedupe_key": dedupe,
            "kind": kind,
            "channel": ch,
            "severity": severity,
            "title": title,
            "body": body,
            "payload": json.dumps(payload or {}, ensure_ascii=False, default=str),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": datetime.utcnow(),
            "created_at": datetime.utcnow(),
        }
        for ch in (channels or channels_for(kind))
    ]
    if not rows:
        return 0

    def _insert(c: Connection) -> int:
        cols = list(rows[0])
        ins = f"INSERT INTO alert_outbox ({', '.join(cols)}) VALUES ({', '.join(':' + k for k in cols)}) ON CONFLICT (dedupe_key, channel) DO NOTHING"
        n = 0
        for r in rows:
            n += c.execute(sa.text(ins), r).rowcount or 0
        return n

    if conn is not None:
        return _insert(conn)
    with get_engine().begin() as c:
        return _insert(c)
