"""The journal of alerts posted straight to the channels while the warehouse was down.

When the outbox cannot be written (the warehouse is down), ``send_direct`` posts the
failure alert to its channels. So that such a night is not missing from the alert history,
each direct post is journalled in a small local file under
``<output_dir>/alerts/direct/`` — one JSON file per (alert, channel): the alert's dedupe
key, kind, channel, severity, scrubbed title and body, link, when it was posted and how it
went. No personal data (title and body are scrubbed as in the outbox; ``mentions`` are
dropped), no webhook URL or secret.

* **Once across processes.** The file is created exclusively before the post: a second
  process (a retry of the run while the warehouse is still down) finds it and does not
  post again.
* **Recorded when the warehouse is back.** Every outbox delivery (``deliver_pending``: the
  next run's hooks, the digest, ``userops alert deliver``, the deliver-alerts deployment)
  first records the journal in ``alert_outbox`` and removes the files it recorded:

  - posted: a row ``sent`` at the time of the post (payload ``sent_directly``), never
    posted again; an alert with the same key already waiting in the outbox is marked sent
    by it (the channel has it);
  - the post failed: a row ``pending`` with the error, so the outbox delivers it with its
    retries (within ``alerts.give_up_hours`` of the post, like any alert);
  - the process stopped while posting (outcome unknown): a row ``failed`` saying so, not
    posted again by itself (it may have arrived).

  Recording is idempotent: the outbox's unique (dedupe key, channel) makes a second
  recording of the same file (two deliverers, a file that could not be removed) a no-op.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Engine

from tasks.alerts.safety import clean, redact
from userops.i18n import register, t
from userops.settings import get_settings

log = logging.getLogger("userops.alerts")

VERSION = 1
_DROP_KEYS = ("mentions",)  # who is @-mentioned: user ids / phones, never written down

register(
    {
        "alert.journal.unknown": {
            "zh-CN": "数据仓库不可用时直接发送，发送中进程中断，无法确认是否送达：请在渠道中查看（不会自动重发）",
            "en": "posted directly while the warehouse was down, but the process stopped while posting: whether it arrived is unknown, check the channel (not resent automatically)",
        },
        "alert.journal.failed": {
            "zh-CN": "数据仓库不可用时直接发送失败（{error}），已转入发件箱重试",
            "en": "the direct post while the warehouse was down failed ({error}); queued in the outbox to retry",
        },
        "alert.log.journal_recorded": {
            "zh-CN": "已补记数据仓库不可用时直接发送的告警：{sent} 条已送达，{queued} 条未送达（转入发件箱重试），{unknown} 条结果未知{logged}",
            "en": "recorded the alerts posted directly while the warehouse was down: {sent} delivered, {queued} not delivered (queued to retry), {unknown} of unknown outcome{logged}",
        },
        "alert.log.journal_logged": {
            "zh-CN": "；另有 {n} 条只写入了运行日志，没有发出（当时未配置告警渠道）",
            "en": "; {n} more only written to the run log, not sent (no alert channel was configured)",
        },
        "alert.log.journal_unwritable": {
            "zh-CN": "直接发送的告警无法记入本地日志 {dir}（{error}）：仍然发送，但数据仓库恢复后告警历史中不会有它",
            "en": "the direct post cannot be journalled in {dir} ({error}): it is posted anyway, but will not appear in the alert history when the warehouse is back",
        },
        "alert.log.posted_unwritable": {
            "zh-CN": "告警：发送记录无法写入本地目录 {dir}（{error}）：照常发送，但若发送后数据仓库写入失败，该告警可能被重复发送",
            "en": "alerts: the record of posts cannot be written in {dir} ({error}): alerts are posted anyway, but one whose warehouse update fails after the post may be posted again",
        },
        "alert.outbox.unknown": {
            "zh-CN": "发送中进程中断或出错（第 {part}/{parts} 部分），无法确认是否送达：请在渠道中查看（不会自动重发）",
            "en": "the process stopped or failed while posting (part {part}/{parts}): whether it arrived is unknown, check the channel (not resent automatically)",
        },
        "alert.log.posted_recovered": {
            "zh-CN": "告警：{n} 条告警此前已发出但未记为已发送（数据仓库写入失败或进程中断），现已补记，不再重发",
            "en": "alerts: {n} alert(s) had been posted but not recorded as sent (a failed warehouse write or a stopped process); recorded now, not posted again",
        },
        "alert.cli.sent_directly": {
            "zh-CN": "数据仓库不可用时直接发送于 {at}（UTC），恢复后补记",
            "en": "posted directly at {at} (UTC) while the warehouse was down; recorded when it was back",
        },
        # the same on the log channel (no alert channel configured): nothing went anywhere
        # (the words of the log-only verdict, alert.deliver.log_only)
        "alert.cli.logged_directly": {
            "zh-CN": "数据仓库不可用时（{at}，UTC）未配置告警渠道，告警只写入了运行日志，没有发出；恢复后补记",
            "en": "no alert channel was configured while the warehouse was down ({at} UTC): the alert was only written to the run log, not sent; recorded when it was back",
        },
    }
)


class AlreadyPosted(Exception):
    """The journal already holds this (alert, channel): another process posted it."""

    def __init__(self, entry: dict):
        super().__init__(entry.get("status", "?"))
        self.entry = entry


def journal_dir() -> Path:
    return Path(get_settings().output_dir) / "alerts" / "direct"


def _entry_path(dedupe_key: str, channel: str) -> Path:
    digest = hashlib.sha256(f"{dedupe_key}\n{channel}".encode()).hexdigest()[:32]
    return journal_dir() / f"{digest}.json"


def _write(path: Path, entry: dict) -> None:
    """Replace the file atomically (a reader never sees half an entry)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(entry, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)


def _safe_payload(payload: dict, secrets: list[str]) -> dict:
    out = {}
    for k, v in (payload or {}).items():
        if k in _DROP_KEYS or any(w in k.lower() for w in ("secret", "token", "webhook", "password")):
            continue
        out[k] = redact(v, secrets) if isinstance(v, str) else v  # links/ids as the outbox keeps them, credentials masked
    return out


def claim(dedupe_key: str, channel: str, *, kind: str, severity: str, title: str, body: str, payload: dict,
          posted_at: datetime, reason: str | None = None, secrets: list[str] | None = None) -> Path | None:
    """Reserve the direct post of one alert to one channel: write its entry (``posting``)
    before the post. Raises AlreadyPosted when the journal has it; returns None (after a
    warning) when the journal cannot be written - the caller posts anyway."""
    path = _entry_path(dedupe_key, channel)
    secrets = secrets or []
    entry = {
        "version": VERSION,
        "dedupe_key": dedupe_key,
        "kind": kind,
        "channel": channel,
        "severity": severity,
        "title": clean(title, secrets)[:2000],
        "body": clean(body, secrets),
        "payload": _safe_payload(payload, secrets),
        "posted_at": posted_at.replace(microsecond=0).isoformat(),
        "reason": reason,
        "status": "posting",
        "error": None,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise AlreadyPosted(_read(path) or {"status": "posting"}) from None
    except OSError as exc:
        log.warning("%s", t("alert.log.journal_unwritable", dir=path.parent, error=exc.strerror or type(exc).__name__))
        return None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(entry, ensure_ascii=False, default=str))
    return path


def settle(path: Path | None, status: str, error: str | None = None) -> None:
    """The post's outcome (``sent`` or ``failed`` with the scrubbed error)."""
    if path is None:
        return
    entry = _read(path)
    if entry is None:
        return
    entry.update(status=status, error=error)
    try:
        _write(path, entry)
    except OSError as exc:  # the entry stays "posting": recorded as of unknown outcome
        log.warning("%s", t("alert.log.journal_unwritable", dir=path.parent, error=exc.strerror or type(exc).__name__))


def _read(path: Path) -> dict | None:
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("dedupe_key") and entry.get("channel") else None


def entries() -> list[tuple[Path, dict]]:
    d = journal_dir()
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.json")):
        e = _read(p)
        if e is not None:
            out.append((p, e))
    return sorted(out, key=lambda pe: (pe[1].get("posted_at") or "", pe[0].name))


def record(engine: Engine, now: datetime) -> dict:
    """Record every journalled direct post in the outbox (see the module docstring) and
    remove its file. Idempotent. Returns ``{"sent", "logged", "queued", "unknown"}`` (rows written; ``logged``: on the
    log channel, written to the run log and sent nowhere)."""
    from tasks.alerts.outbox import OUTBOX, SENDS

    counts = {"sent": 0, "logged": 0, "queued": 0, "unknown": 0}
    found = entries()
    if not found:
        return counts
    insert = _insert_for(engine)
    for path, e in found:
        try:
            posted = datetime.fromisoformat(e["posted_at"])
        except (KeyError, TypeError, ValueError):
            posted = now
        status = e.get("status")
        payload = dict(e.get("payload") or {})
        base = {
            "dedupe_key": e["dedupe_key"][:200],
            "kind": e.get("kind") or "flow_failed",
            "channel": e["channel"],
            "severity": e.get("severity") or "warning",
            "title": e.get("title") or "",
            "body": e.get("body") or "",
            "created_at": posted,
        }
        with engine.begin() as conn:
            if status == "sent":
                payload["sent_directly"] = {"at": e.get("posted_at"), "reason": e.get("reason")}
                sid = conn.execute(SENDS.insert().values(channel=e["channel"], sent_at=posted, alerts=1, part=1, outcome="sent")).inserted_primary_key[0]
                row = dict(base, payload=json.dumps(payload, ensure_ascii=False, default=str), status="sent", attempts=1, sent_at=posted, send_id=sid)
                n = conn.execute(insert(OUTBOX).values(**row).on_conflict_do_nothing(index_elements=["dedupe_key", "channel"])).rowcount or 0
                if not n:  # the same alert queued meanwhile and not delivered yet: the channel has it
                    n = conn.execute(
                        OUTBOX.update()
                        .where(OUTBOX.c.dedupe_key == base["dedupe_key"], OUTBOX.c.channel == base["channel"], OUTBOX.c.status.in_(["pending", "failed"]))
                        .values(status="sent", sent_at=posted, send_id=sid, attempts=OUTBOX.c.attempts + 1, last_error=None, next_attempt_at=None, claim=None)
                    ).rowcount or 0
                if not n:  # recorded before (a second deliverer, a file not removed): no send either
                    conn.execute(SENDS.delete().where(SENDS.c.id == sid))
                counts["logged" if e["channel"] == "log" else "sent"] += n
            elif status == "failed":
                payload["direct_post_failed"] = {"at": e.get("posted_at"), "reason": e.get("reason")}
                row = dict(base, payload=json.dumps(payload, ensure_ascii=False, default=str), status="pending", attempts=1, next_attempt_at=now,
                           last_error=t("alert.journal.failed", error=e.get("error") or "?")[:1000])
                counts["queued"] += conn.execute(insert(OUTBOX).values(**row).on_conflict_do_nothing(index_elements=["dedupe_key", "channel"])).rowcount or 0
            else:  # "posting": the process stopped mid-post
                payload["sent_directly"] = {"at": e.get("posted_at"), "reason": e.get("reason"), "outcome": "unknown"}
                row = dict(base, payload=json.dumps(payload, ensure_ascii=False, default=str), status="failed", attempts=1,
                           last_error=t("alert.journal.unknown")[:1000])
                counts["unknown"] += conn.execute(insert(OUTBOX).values(**row).on_conflict_do_nothing(index_elements=["dedupe_key", "channel"])).rowcount or 0
        path.unlink(missing_ok=True)
    if any(counts.values()):
        logged = t("alert.log.journal_logged", n=counts["logged"]) if counts["logged"] else ""
        log.warning("%s", t("alert.log.journal_recorded", **{**counts, "logged": logged}))
    return counts


def _insert_for(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def posted_directly(payload: dict) -> str | None:
    """When an outbox row's payload says it was posted directly: the time (UTC), else None."""
    info = (payload or {}).get("sent_directly")
    if isinstance(info, dict) and info.get("outcome") != "unknown":
        return str(info.get("at") or "")[:16].replace("T", " ")
    return None



# ----------------------------------------------------------------------------- outbox posts
# The outbox's own posts (``tasks.alerts.outbox``), journalled under
# ``<output_dir>/alerts/posted/`` - one small JSON file per (alert, channel): its outbox id,
# dedupe key, channel, how many parts it has and how many were posted, and ``status``:
# ``posting`` (written just before a part is posted) or ``posted`` (written as soon as the
# channel accepted it). It lives outside the warehouse so that a post is remembered when
# the database write after it fails, or the process dies between the post and the
# ``sent`` row: the next delivery pass reads it before posting anything (``outbox_entry``)
# and marks the alert sent instead of posting it again. Removed once the row is settled.
# No text, no mentions, nothing personal: only ids and counts.
def posted_dir() -> Path:
    return Path(get_settings().output_dir) / "alerts" / "posted"


def _posted_path(dedupe_key: str, channel: str) -> Path:
    digest = hashlib.sha256(f"{dedupe_key}\n{channel}".encode()).hexdigest()[:32]
    return posted_dir() / f"{digest}.json"


_UNWRITABLE_WARNED: set[str] = set()


def outbox_mark(rows: list[tuple[int, str]], channel: str, status: str, posted: int, parts: int) -> bool:
    """Record, for each ``(outbox id, dedupe key)``, that ``posted`` of ``parts`` parts are
    posted to ``channel`` and the next is being posted (``posting``) or not (``posted``).
    Returns False (after one warning) when the folder cannot be written."""
    try:
        d = posted_dir()
        d.mkdir(parents=True, exist_ok=True)
        for rid, key in rows:
            _write(_posted_path(key, channel), {"version": VERSION, "id": rid, "dedupe_key": key, "channel": channel,
                                                "status": status, "posted": posted, "parts": parts})
        return True
    except OSError as exc:
        d = str(posted_dir())
        if d not in _UNWRITABLE_WARNED:
            _UNWRITABLE_WARNED.add(d)
            log.warning("%s", t("alert.log.posted_unwritable", dir=d, error=exc.strerror or type(exc).__name__))
        return False


def outbox_entry(rid: int, dedupe_key: str, channel: str) -> dict | None:
    """The journalled post of this outbox row to this channel, if any (its id must match:
    an entry of another warehouse's row with the same key is not this row's)."""
    path = _posted_path(dedupe_key, channel)
    if not path.exists():
        return None
    e = _read(path)
    return e if e is not None and e.get("id") == rid else None


def outbox_forget(rows: list[tuple[int, str]], channel: str) -> None:
    for _rid, key in rows:
        try:
            _posted_path(key, channel).unlink(missing_ok=True)
        except OSError:  # pragma: no cover - stays; its row is settled, so it is ignored
            pass
