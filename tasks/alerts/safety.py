"""Keep secrets and personal data out of alert text, errors and logs.

Webhook URLs are credentials (Slack's path, DingTalk's ``access_token``, WeCom's ``key``),
and so are the DingTalk signing secret and ``sign``. Nothing here ever logs a URL; error
descriptions are built from the exception type, never from ``str(exc)`` of an HTTP
library (which quotes the URL).
"""
from __future__ import annotations

import logging
import re

import requests

from userops.privacy import scrub_text

_SECRET_QUERY = re.compile(r"(?i)\b(access_token|key|sign|timestamp|token|secret)=([^&\s\"'<>]+)")
_SLACK_PATH = re.compile(r"(?i)(/services/)[A-Za-z0-9_/\-]+")
_URL = re.compile(r"(?i)\bhttps?://[^\s\"'<>]+")
_SEC = re.compile(r"\bSEC[0-9a-fA-F]{16,}\b")  # a DingTalk signing secret


def redact(text: str | None, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Mask webhook credentials (and the given secret strings) in ``text``."""
    if not text:
        return text or ""
    out = str(text)
    for s in sorted((x for x in secrets if x), key=len, reverse=True):
        out = out.replace(s, "***")
    out = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", out)
    out = _SLACK_PATH.sub(lambda m: m.group(1) + "***", out)
    return _SEC.sub("SEC***", out)


def clean(text: str | None, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Alert text fit for a chat message, a log line or an artifact: no personal data, no secrets."""
    return scrub_text(redact(text, secrets))


def strip_urls(text: str) -> str:
    """For error summaries: drop URLs altogether (an exception may quote a webhook URL)."""
    return _URL.sub("<url>", text)


def describe_exception(exc: BaseException) -> str:
    """A short description of a transport error that never quotes the request URL."""
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connection failed (refused, reset or unreachable)"
    if isinstance(exc, requests.exceptions.RequestException):
        return f"request failed ({type(exc).__name__})"
    return type(exc).__name__


def error_summary(exc: BaseException | None, message: str | None = None, limit: int = 300) -> str:
    """One scrubbed line about a failure, for an operator alert."""
    if exc is not None:
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = message or ""
    text = clean(strip_urls(text)).strip()
    first = text.splitlines()[0] if text else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


class _UrllibRedactor(logging.Filter):
    """urllib3 logs request lines (with the URL) at DEBUG: redact them at the source."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # pragma: no cover - malformed record
            return True
        red = redact(msg)
        if red != msg:
            record.msg, record.args = red, None
        return True


def install_log_redaction() -> None:
    for name in ("urllib3.connectionpool", "urllib3.util.retry", "requests"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _UrllibRedactor) for f in lg.filters):
            lg.addFilter(_UrllibRedactor())


install_log_redaction()
