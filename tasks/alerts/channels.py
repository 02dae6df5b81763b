"""Channel clients: Slack incoming webhook, DingTalk custom robot, WeCom group robot.

Each client turns a :class:`Message` into one or more wire payloads (``render``) and posts
one payload (``post``), translating the service's answer into a verdict:

* success -> returns normally;
* :class:`ConfigError` - the channel is misconfigured (revoked webhook, archived channel,
  DingTalk 310000 sign/keyword/IP, WeCom bad key): retrying will not help until the
  operator fixes it; the message says what to fix;
* :class:`RateLimited` - the service asked us to slow down (Slack 429 + Retry-After,
  DingTalk 130101, WeCom 45009);
* :class:`TransientError` - outage, timeout, 5xx: retry with backoff;
* :class:`PayloadError` - the service refused this message's content.

An error's ``str()`` is English (logs, tracebacks); ``localized(lang)`` and
``verdict_text(lang)`` are the operator's language (zh-CN/en, ``tasks.alerts.messages``).
No client ever logs or raises with its webhook URL, token, key or secret in the text.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from tasks.alerts.messages import SEVERITY_ICON, kind_words, severity_words
from tasks.alerts.safety import clean
from userops.i18n import t

log = logging.getLogger("userops.alerts")


# ----------------------------------------------------------------------------- model
@dataclass
class Message:
    """What an operator reads. ``body`` is light markdown: lines, ``- `` bullets,
    ``**bold**`` and ``[label](url)`` links. Text is cleaned (no PII, no secrets) by the
    outbox before it gets here; links are built by us from settings and run ids."""

    title: str
    body: str = ""
    severity: str = "warning"
    kind: str = ""
    link: str | None = None
    link_label: str | None = None
    mention: bool = False  # @-mention the channel's configured people (DingTalk at_mobiles / at_user_ids)
    mentions: list[str] = field(default_factory=list)  # extra people to @ (payload "mentions"): mobiles or user ids
    alerts: int = 1  # how many outbox alerts this message carries


class DeliveryError(Exception):
    """The channel's answer as a text key (``alert.channel.*``) and its values."""

    verdict = "error"  # the kind of verdict (English, stable); verdict_text() for the operator

    def __init__(self, key: str, retry_after: float | None = None, reached: bool = True, **values):
        self.key, self.values = key, values
        super().__init__(t(key, "en", **values))
        self.retry_after = retry_after
        self.reached = reached  # the service answered (the post counts against its rate limit)

    def localized(self, lang: str | None = None) -> str:
        return t(self.key, lang, **self.values)

    def verdict_text(self, lang: str | None = None) -> str:
        return t("alert.verdict." + self.verdict.replace(" ", "_"), lang)

    def __reduce__(self):  # pickles with its key, not its English text
        return (_rebuild, (type(self), self.key, self.retry_after, self.reached, self.values))


def _rebuild(cls, key, retry_after, reached, values):
    return cls(key, retry_after=retry_after, reached=reached, **values)


class ConfigError(DeliveryError):
    verdict = "configuration error"


class RateLimited(DeliveryError):
    verdict = "rate limited"


class TransientError(DeliveryError):
    verdict = "unavailable"


class PayloadError(DeliveryError):
    verdict = "message refused"


def _transport_error(kind: str, exc: requests.exceptions.RequestException) -> DeliveryError:
    """A transport failure, described from its type (never ``str(exc)``: it quotes the URL).
    A malformed address (``htps:/…``, no scheme) is a configuration error: no retry fixes it."""
    if isinstance(exc, (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema, requests.exceptions.InvalidURL)):
        return ConfigError("alert.channel.bad_url", reached=False, type=kind)
    if isinstance(exc, requests.exceptions.Timeout):
        return TransientError("alert.channel.timeout", reached=False, type=kind)
    if isinstance(exc, requests.exceptions.SSLError):
        return TransientError("alert.channel.tls", reached=False, type=kind)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransientError("alert.channel.connection", reached=False, type=kind)
    return TransientError("alert.channel.request", reached=False, type=kind, error=type(exc).__name__)


# ----------------------------------------------------------------------------- helpers
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")


def utf8_len(s: str) -> int:
    return len(s.encode("utf-8"))


def _split(text: str, limit: int, size, head) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` (as ``size`` measures), at line breaks
    where possible; a line longer than a chunk is cut by ``head(line, limit)``."""
    if size(text) <= limit:
        return [text]
    chunks: list[str] = []
    cur = ""
    for line in text.split("\n"):
        piece = line if not cur else "\n" + line
        if size(cur) + size(piece) <= limit:
            cur += piece
            continue
        if cur:
            chunks.append(cur)
            cur = ""
        while size(line) > limit:
            cut = head(line, limit)
            chunks.append(cut)
            line = line[len(cut):]
        cur = line
    if cur:
        chunks.append(cur)
    return chunks


def split_bytes(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` UTF-8 bytes, at line breaks where
    possible and never inside a character."""
    return _split(text, limit, utf8_len, lambda line, n: line.encode("utf-8")[:n].decode("utf-8", errors="ignore"))


def split_chars(text: str, limit: int) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` characters, at line breaks where possible."""
    return _split(text, limit, len, lambda line, n: line[:n])


def to_plain(md: str) -> str:
    md = _LINK.sub(lambda m: f"{m.group(1)} ({m.group(2)})", md)
    return _BOLD.sub(lambda m: m.group(1), md)


def to_slack_mrkdwn(md: str) -> str:
    md = md.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    md = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", md)
    md = _BOLD.sub(lambda m: f"*{m.group(1)}*", md)
    return _bullets(md)


def paragraphs_md(md: str) -> str:
    """Markdown where every plain line is its own paragraph and list items stay a list
    (renderers that join adjacent lines would otherwise run them together)."""
    out: list[str] = []
    prev_item = False
    for line in md.split("\n"):
        if not line.strip():
            prev_item = False
            continue
        item = line.startswith("- ")
        if out:
            out.append("\n" if item and prev_item else "\n\n")
        out.append(line)
        prev_item = item
    return "".join(out)


def _bullets(md: str) -> str:
    return "\n".join(("• " + ln[2:]) if ln.startswith("- ") else ln for ln in md.split("\n"))


_MOBILE = re.compile(r"^\+?\d{6,15}$")
_SLACK_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")


def _is_mobile(m: str) -> bool:
    return bool(_MOBILE.match(str(m).strip()))


def _json_or_none(resp: requests.Response):
    try:
        return resp.json()
    except ValueError:
        return None


# ----------------------------------------------------------------------------- base
class Channel:
    """One configured destination. ``name`` is what routes and the outbox refer to."""

    type = "base"
    default_rate_per_minute = 20

    def __init__(self, name: str, *, rate_per_minute: int | None = None, timeout: float = 10.0, source: str = "settings", session: requests.Session | None = None):
        self.name = name
        self.rate_per_minute = rate_per_minute or self.default_rate_per_minute
        self.timeout = timeout
        self.source = source  # settings / block
        self._session = session

    @property
    def session(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def secrets(self) -> list[str]:
        """Strings that must never appear in a log or an error (for redaction)."""
        return []

    def render(self, msg: Message, lang: str | None = None) -> list[dict]:  # pragma: no cover - abstract
        raise NotImplementedError

    def post(self, payload: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def send(self, msg: Message, lang: str | None = None) -> int:
        """Render and post every part (used by ``userops alert test``). Returns parts posted."""
        parts = self.render(msg, lang)
        for p in parts:
            self.post(p)
        return len(parts)

    def _http(self, url: str, payload: dict) -> requests.Response:
        try:
            return self.session.post(
                url,
                data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=(min(5.0, self.timeout), self.timeout),
            )
        except requests.exceptions.RequestException as exc:
            raise _transport_error(self.type, exc) from None

    def describe(self) -> str:
        return f"{self.name} ({self.type}, {self.source}, {self.rate_per_minute}/min)"

    ok_code = "ok"  # the stable code of a delivery pass that posted every alert (alert.deliver.<code>)
    # after the service said "too fast", it refuses everything this long (0: only what the
    # answer's retry_after says); the outbox then posts nothing to the channel that long
    THROTTLE_SECONDS = 0.0

    def ok_verdict(self, lang: str | None = None) -> str:
        """A delivery pass's verdict (words) when every alert was posted."""
        return t("alert.deliver." + self.ok_code, lang)

    def __repr__(self) -> str:  # never the URL
        return f"<{type(self).__name__} {self.name!r}>"


class LogChannel(Channel):
    """No chat channel configured: the alert is written to the log (scrubbed) and kept in
    the outbox, where the digest and ``userops alert list`` show it."""

    type = "log"
    default_rate_per_minute = 10_000

    def render(self, msg: Message, lang: str | None = None) -> list[dict]:
        return [{"title": msg.title, "body": msg.body, "severity": msg.severity}]

    def post(self, payload: dict) -> None:
        level = logging.WARNING if payload["severity"] in ("warning", "error", "critical") else logging.INFO
        log.log(level, "%s", t("alert.log.log_channel", severity=payload["severity"], title=clean(payload["title"])))

    ok_code = "log_only"  # nothing was sent anywhere: only written to the run log


# ----------------------------------------------------------------------------- Slack
class SlackChannel(Channel):
    """Slack incoming webhook: ``text`` (notification fallback) + Block Kit ``blocks``."""

    type = "slack"
    HEADER_MAX = 150  # plain_text in a header block
    SECTION_MAX = 3000  # mrkdwn text in a section block
    TEXT_MAX = 3900
    MAX_BLOCKS = 50

    def __init__(self, name: str, webhook_url: str, **kw):
        super().__init__(name, **kw)
        self._url = webhook_url

    def secrets(self) -> list[str]:
        return [self._url]

    def render(self, msg: Message, lang: str | None = None) -> list[dict]:
        """One payload per message, split into several when the body needs more than the
        50 blocks Slack allows (nothing is cut off)."""
        icon = SEVERITY_ICON.get(msg.severity, "")
        title = f"{icon} {msg.title}".strip()
        ids = list(dict.fromkeys(m for m in msg.mentions if _SLACK_ID.match(str(m))))
        who = " ".join(f"<@{m}>" for m in ids)  # only Slack user ids: never a mobile number
        body = to_slack_mrkdwn(msg.body)
        # split_bytes counts bytes (>= chars), so every chunk is within Slack's character limit
        sections = split_bytes(body, self.SECTION_MAX) if body else []
        room = self.MAX_BLOCKS - 2 - (1 if msg.link else 0) - (1 if who else 0)  # header, context, actions, mentions
        groups = [sections[i : i + room] for i in range(0, len(sections), room)] or [[]]
        n = len(groups)
        out = []
        for i, group in enumerate(groups, 1):
            part = f" {t('alert.part', lang, i=i, n=n)}" if n > 1 else ""
            head = title + part
            header = head if len(head) <= self.HEADER_MAX else title[: self.HEADER_MAX - len(part) - 1] + "…" + part
            text = to_plain(f"{head}\n{msg.body}" if n == 1 else head)
            if msg.link:
                text += f"\n{msg.link}"
            if who:
                text = f"{who} {text}"
            if len(text) > self.TEXT_MAX:  # the notification's preview only: the blocks carry it all
                text = text[: self.TEXT_MAX - 1] + "…"
            blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}]
            if who and i == 1:
                blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": who}})
            blocks += [{"type": "section", "text": {"type": "mrkdwn", "text": sec}} for sec in group]
            kind = kind_words(msg.kind, lang)
            ctx = severity_words(msg.severity, lang) + (f" · {kind}" if kind else "") + (f" · {t('alert.context.count', lang, n=msg.alerts)}" if msg.alerts > 1 else "")
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ctx}]})
            if msg.link and i == n:
                blocks.append(
                    {
                        "type": "actions",
                        "elements": [
                            {"type": "button", "text": {"type": "plain_text", "text": msg.link_label or t("alert.view", lang)}, "url": msg.link}
                        ],
                    }
                )
            # should Slack refuse the blocks: this part whole as text messages (never cut)
            link_line = f"{msg.link_label or t('alert.view', lang)}: <{msg.link}>" if msg.link and i == n else ""
            fallback = self._text_posts(head, [who] if who and i == 1 else [], group, link_line, lang)
            out.append({"text": text, "blocks": blocks, FALLBACK: fallback})
        return out

    def _text_posts(self, head: str, who: list[str], sections: list[str], link_line: str, lang: str | None) -> list[str]:
        """The part as plain ``text`` messages within Slack's text limit: the title, the
        mentions, every section (mrkdwn, as the blocks had it) and the link; several
        messages, each headed with the title and "(continued i/n)", when it does not fit one."""
        lines = [*who, *sections] + ([link_line] if link_line else [])
        body = "\n".join(lines)
        room = self.TEXT_MAX - len(head) - len(t("alert.slack.continued", lang, i=99, n=99)) - 4
        chunks = split_chars(body, room) if body else [""]
        if len(chunks) == 1:
            return [f"{head}\n{chunks[0]}".rstrip("\n")]
        m = len(chunks)
        return [f"{head} {t('alert.slack.continued', lang, i=k, n=m)}\n{c}" for k, c in enumerate(chunks, 1)]

    BLOCKS_REFUSED = ("invalid_payload", "invalid_blocks", "invalid_blocks_format", "too_many_attachments")

    def post(self, payload: dict) -> None:
        fallback = payload.get(FALLBACK)
        wire = {k: v for k, v in payload.items() if k != FALLBACK}
        resp = self._http(self._url, wire)
        body = (resp.text or "").strip()
        status = resp.status_code
        if status == 200 and body.startswith("{"):  # an API-style answer: {"ok": false, "error": ...}
            data = _json_or_none(resp)
            if isinstance(data, dict) and data.get("ok") is False:
                status, body = 400, str(data.get("error") or "ok_false")
        if status == 200:
            return
        code = body.split()[0][:60] if body else str(status)
        if status == 429:
            raise RateLimited("alert.channel.slack.rate_limit", retry_after=_retry_after(resp), code=code)
        if status == 400 and code in self.BLOCKS_REFUSED and "blocks" in wire:
            # the blocks were refused: the same part, whole, as text messages; without the
            # text fallback (a payload built elsewhere) the refusal stands, with its reason
            if not fallback:
                raise PayloadError("alert.channel.slack.refused", code=code)
            for text in fallback:
                self._post_text(text, code)
            return
        if status == 400:
            raise PayloadError("alert.channel.slack.refused", code=code)
        if resp.status_code == 403:
            raise ConfigError("alert.channel.slack.forbidden", code=code)
        if resp.status_code == 404:
            raise ConfigError("alert.channel.slack.not_found", code=code)
        if resp.status_code == 410:
            raise ConfigError("alert.channel.slack.archived", code=code)
        if resp.status_code >= 500:
            raise TransientError("alert.channel.slack.unavailable", status=resp.status_code, code=code)
        raise TransientError("alert.channel.slack.other", status=resp.status_code, code=code)


    def _post_text(self, text: str, blocks_code: str) -> None:
        try:
            self.post({"text": text})
        except PayloadError as exc:  # the text refused too: say both
            raise PayloadError("alert.channel.slack.text_refused", code=exc.values.get("code", "?"), blocks_code=blocks_code) from None


FALLBACK = "_text_fallback"  # in a rendered Slack payload, never sent: the part as text messages


def _retry_after(resp: requests.Response, default: float = 30.0) -> float:
    v = resp.headers.get("Retry-After")
    try:
        return max(1.0, float(v)) if v is not None else default
    except ValueError:
        return default


# ----------------------------------------------------------------------------- DingTalk
def _escalation_contacts() -> list[str]:
    """The configured crisis escalation contacts (resolved into @-mentions at send time):
    redacted from any error text like the channel's own @ list."""
    try:
        from userops.settings import get_settings

        return [str(m) for m in get_settings().crisis.escalation_mentions if m]
    except Exception:  # pragma: no cover - settings unreadable
        return []


def dingtalk_sign(timestamp_ms: int | str, secret: str) -> str:
    """The robot's signature: base64(HMAC-SHA256(key=secret, msg=f"{timestamp}\\n{secret}"))
    (URL-encoding happens when it is put in the query string)."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode("utf-8")
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, digestmod=hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def dingtalk_signed_url(webhook_url: str, secret: str | None, timestamp_ms: int) -> str:
    if not secret:
        return webhook_url
    sep = "&" if "?" in webhook_url else "?"
    sign = urllib.parse.quote_plus(dingtalk_sign(timestamp_ms, secret))
    return f"{webhook_url}{sep}timestamp={timestamp_ms}&sign={sign}"


class DingTalkChannel(Channel):
    """DingTalk custom robot (加签): markdown, or actionCard when there is a link and nobody
    to @. Success is ``errcode == 0``; the HTTP status is 200 either way."""

    type = "dingtalk"
    MAX_BYTES = 18_000  # the robot accepts ~20 000 bytes of content; keep a margin
    # 130101 "send too fast, exceed 20 times per minute": DingTalk's custom-robot docs
    # (open.dingtalk.com/document/robots/custom-robot-access, 消息发送频率限制) say "每个机器人
    # 每分钟最多发送20条消息到群里，如果超过20条，会限流10分钟" - the robot is throttled for
    # 10 minutes, not until the minute is over. Wait that long (and a little more), and
    # post nothing else to this robot meanwhile (THROTTLE_SECONDS, read by the outbox).
    RETRY_TOO_FAST = 610.0
    THROTTLE_SECONDS = RETRY_TOO_FAST

    def __init__(self, name: str, webhook_url: str, secret: str | None = None, at_mobiles: list[str] | None = None, at_user_ids: list[str] | None = None, clock: Callable[[], float] = time.time, **kw):
        super().__init__(name, **kw)
        self._url = webhook_url
        self._secret = secret
        self._at_mobiles = list(at_mobiles or [])
        self._at_user_ids = list(at_user_ids or [])
        self.clock = clock

    def secrets(self) -> list[str]:
        return [x for x in [self._url, self._secret, *self._at_mobiles, *_escalation_contacts()] if x]

    def render(self, msg: Message, lang: str | None = None) -> list[dict]:
        icon = SEVERITY_ICON.get(msg.severity, "")
        title = f"{icon} {msg.title}".strip()
        body = paragraphs_md(msg.body)
        mobiles = (self._at_mobiles if msg.mention else []) + [m for m in msg.mentions if _is_mobile(m)]
        user_ids = (self._at_user_ids if msg.mention else []) + [m for m in msg.mentions if not _is_mobile(m)]
        mention = bool(mobiles or user_ids)
        use_card = bool(msg.link) and not mention
        link_md = f"\n\n[{msg.link_label or t('alert.view', lang)}]({msg.link})" if msg.link and not use_card else ""
        # DingTalk notifies an @-mentioned person only when "@<mobile>" / "@<userId>" is also in
        # a markdown message's text (the custom-robot docs' markdown example puts "@150XXXXXXXX"
        # in the text and the same number in at.atMobiles; SDKs such as DingtalkChatbot append
        # it for that reason): the API field alone shows no @ and sends no notification.
        at_md = ("\n\n" + " ".join(f"@{m}" for m in dict.fromkeys([*mobiles, *user_ids]))) if mention else ""
        head = f"### {title}\n\n"
        chunks = split_bytes(body, self.MAX_BYTES - utf8_len(head) - utf8_len(link_md) - utf8_len(at_md) - 64) if body else [""]
        out = []
        n = len(chunks)
        for i, chunk in enumerate(chunks, 1):
            part = f" {t('alert.part', lang, i=i, n=n)}" if n > 1 else ""
            text = f"### {title}{part}\n\n{chunk}" + (link_md if i == n else "")
            if use_card and i == n:
                out.append(
                    {
                        "msgtype": "actionCard",
                        "actionCard": {
                            "title": msg.title[:60],
                            "text": text,
                            "btnOrientation": "0",
                            "singleTitle": msg.link_label or t("alert.view", lang),
                            "singleURL": msg.link,
                        },
                    }
                )
            else:
                p = {"msgtype": "markdown", "markdown": {"title": msg.title[:60], "text": text + at_md}}
                if mention:
                    # the API field and the @ in the text (above); the numbers are resolved
                    # here, at send time, and never stored, logged or journalled
                    p["at"] = {"atMobiles": list(dict.fromkeys(mobiles)), "atUserIds": list(dict.fromkeys(user_ids)), "isAtAll": False}
                out.append(p)
        return out

    def post(self, payload: dict) -> None:
        url = dingtalk_signed_url(self._url, self._secret, int(self.clock() * 1000))
        resp = self._http(url, payload)
        data = _json_or_none(resp)
        if resp.status_code >= 500:
            raise TransientError("alert.channel.dingtalk.unavailable", status=resp.status_code)
        if not isinstance(data, dict) or "errcode" not in data:
            raise TransientError("alert.channel.dingtalk.no_errcode", status=resp.status_code)
        code = data.get("errcode")
        errmsg = clean(str(data.get("errmsg", "")), self.secrets())[:200]
        if code == 0:
            return
        if code == 310000:
            raise ConfigError("alert.channel.dingtalk.security", errmsg=errmsg)
        if code == 130101:
            raise RateLimited("alert.channel.dingtalk.too_fast", retry_after=self.RETRY_TOO_FAST, errmsg=errmsg)
        if code in (300001, 400101, 400102, 400013, 300005):
            raise ConfigError("alert.channel.dingtalk.robot", code=code, errmsg=errmsg)
        if code in (40035, 430101, 40044):
            raise PayloadError("alert.channel.dingtalk.refused", code=code, errmsg=errmsg)
        raise TransientError("alert.channel.dingtalk.other", code=code, errmsg=errmsg)


# ----------------------------------------------------------------------------- WeCom
class WeComChannel(Channel):
    """WeCom (企业微信) group robot: the key is in the webhook URL; text or markdown,
    split so no part exceeds the content limit (text 2048 bytes, markdown 4096 bytes)."""

    type = "wecom"
    LIMITS = {"text": 2048, "markdown": 4096}
    RETRY_TOO_FAST = 60.0

    def __init__(self, name: str, webhook_url: str, msgtype: str = "markdown", **kw):
        super().__init__(name, **kw)
        self._url = webhook_url
        self.msgtype = msgtype if msgtype in self.LIMITS else "markdown"

    def secrets(self) -> list[str]:
        key = urllib.parse.parse_qs(urllib.parse.urlsplit(self._url).query).get("key", [""])[0]
        return [x for x in (self._url, key) if x]

    def render(self, msg: Message, lang: str | None = None) -> list[dict]:
        icon = SEVERITY_ICON.get(msg.severity, "")
        limit = self.LIMITS[self.msgtype]
        if self.msgtype == "markdown":
            title = f"**{icon} {msg.title}**"
            body = msg.body
            tail = f"\n[{msg.link_label or t('alert.view', lang)}]({msg.link})" if msg.link else ""
        else:
            title = f"{icon} {msg.title}"
            body = to_plain(msg.body)
            tail = f"\n{msg.link}" if msg.link else ""
        ids = [m for m in dict.fromkeys(msg.mentions) if not _is_mobile(m)]
        mobiles = [m for m in dict.fromkeys(msg.mentions) if _is_mobile(m)]
        if ids and self.msgtype == "markdown":  # markdown @s by user id in the text; mobiles cannot be
            tail += "\n" + " ".join(f"<@{m}>" for m in ids)
        whole = f"{title}\n{body}{tail}"
        if utf8_len(whole) <= limit:
            parts = [self._payload(whole)]
        else:
            # room for the title line with a part marker on every part
            marker_room = utf8_len(title) + utf8_len(t("alert.part", lang, i=99, n=99)) + 4
            chunks = split_bytes(f"{body}{tail}", limit - marker_room)
            n = len(chunks)
            parts = [self._payload(f"{title} {t('alert.part', lang, i=i, n=n)}\n{c}") for i, c in enumerate(chunks, 1)]
        if self.msgtype == "text" and (ids or mobiles):  # text @s through the API fields
            if ids:
                parts[0]["text"]["mentioned_list"] = ids
            if mobiles:
                parts[0]["text"]["mentioned_mobile_list"] = mobiles
        return parts

    def _payload(self, content: str) -> dict:
        return {"msgtype": self.msgtype, self.msgtype: {"content": content}}

    def post(self, payload: dict) -> None:
        resp = self._http(self._url, payload)
        data = _json_or_none(resp)
        if resp.status_code >= 500:
            raise TransientError("alert.channel.wecom.unavailable", status=resp.status_code)
        if not isinstance(data, dict) or "errcode" not in data:
            raise TransientError("alert.channel.wecom.no_errcode", status=resp.status_code)
        code = data.get("errcode")
        errmsg = clean(str(data.get("errmsg", "")), self.secrets())[:200]
        errmsg = re.sub(r"(?i)more info at\s*\S+", "", errmsg).strip()
        if code == 0:
            return
        if code == 45009:
            raise RateLimited("alert.channel.wecom.too_fast", retry_after=self.RETRY_TOO_FAST)
        if code in (93000, 40013, 40014, 93004):
            raise ConfigError("alert.channel.wecom.robot", code=code, errmsg=errmsg)
        if code in (40008, 40058, 44004, 40035):
            raise PayloadError("alert.channel.wecom.refused", code=code, errmsg=errmsg)
        raise TransientError("alert.channel.wecom.other", code=code, errmsg=errmsg)


CHANNEL_TYPES = {"slack": SlackChannel, "dingtalk": DingTalkChannel, "wecom": WeComChannel, "log": LogChannel}
