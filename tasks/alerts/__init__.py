"""Operator alerts. Everything goes through the ``alert_outbox`` table first; delivery
(Slack, DingTalk, WeCom) is a separate step that retries and never fails a pipeline run.

    enqueue_alert(kind, title, body, severity=, subject=, day=, payload=)   # anyone
    deliver_pending(engine=None, now=None) -> dict                         # hooks, digest, CLI

``payload`` may carry ``link`` (and ``link_label``): shown as a button / link. Title and
body are scrubbed of phone numbers, emails and webhook credentials when queued, except the
body of a text a human approved for the public (``PUBLIC_KINDS``: the crisis statement).
"""
from __future__ import annotations

import json
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from userops.clock import shop_today, utcnow
from userops.db import get_engine

SEVERITIES = ("info", "warning", "error", "critical")
# Text a human approved for the public goes out exactly as approved (the crisis statement):
# its body is not scrubbed. Every other body is, except the brand's own configured service
# contact (``crisis.service_contact``), which is public.
PUBLIC_KINDS = frozenset({"crisis_statement"})


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
    channel, so re-running a night does not alert twice. ``day`` defaults to today in the
    shop's timezone. Returns the number of new rows.

    ``title`` and ``body`` must not contain personal data or secrets (they are scrubbed
    again here as a safety net)."""
    from tasks.alerts.routing import channels_for
    from tasks.alerts.safety import clean, redact
    from userops.privacy import scrub_text
    from userops.settings import get_settings

    day = day or shop_today()
    now = utcnow()
    severity = severity if severity in SEVERITIES else "warning"
    dedupe = f"{kind}|{subject}|{day.isoformat()}"[:200]
    body_text = (body or "") if kind in PUBLIC_KINDS else scrub_text(redact(body), keep=(get_settings().crisis.service_contact,))
    rows = [
        {
            "dedupe_key": dedupe,
            "kind": kind,
            "channel": ch,
            "severity": severity,
            "title": clean(title)[:2000],
            "body": body_text,
            "payload": json.dumps(payload or {}, ensure_ascii=False, default=str),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for ch in (channels or channels_for(kind))
    ]
    if not rows:
        return 0

    def _insert(c: Connection) -> int:
        from tasks.alerts.outbox import OUTBOX

        if c.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        n = 0
        for r in rows:
            stmt = insert(OUTBOX).values(**r).on_conflict_do_nothing(index_elements=["dedupe_key", "channel"])
            n += c.execute(stmt).rowcount or 0
        return n

    if conn is not None:
        return _insert(conn)
    with get_engine().begin() as c:
        return _insert(c)


def deliver_pending(engine=None, now=None, **kw) -> dict:
    """Deliver due alerts (see ``tasks.alerts.outbox``). Never raises for a channel problem."""
    from tasks.alerts.outbox import deliver_pending as _deliver

    return _deliver(engine=engine, now=now, **kw)


def alert_and_deliver(kind: str, title: str, body: str, **kw) -> dict:
    """Queue one alert and try to deliver right away; never raises (for hooks and stages)."""
    import logging

    from userops.i18n import t

    log = logging.getLogger("userops.alerts")
    out = {"queued": 0}
    try:
        out["queued"] = enqueue_alert(kind, title, body, **kw)
    except Exception as exc:
        log.warning("%s", t("alert.log.not_queued", kind=kind, error=type(exc).__name__))
        return out
    try:
        out.update(deliver_pending())
    except Exception as exc:
        log.warning("%s", t("alert.log.delivery_failed", error=type(exc).__name__))
    return out
