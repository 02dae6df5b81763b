"""A local DingTalk custom robot (自定义机器人) with signing (加签).

``POST /robot/send?access_token=<token>&timestamp=<ms>&sign=<urlencoded base64>`` with JSON.
The robot answers HTTP 200 with ``{"errcode": …, "errmsg": …}``:

* ``0 ok`` - posted;
* ``300001 token is not exist`` - wrong access token;
* ``310000`` - security settings: ``sign not match`` (the signature is checked exactly as
  the robot does: ``base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret))``,
  URL-decoded from the query), ``timestamp is invalid`` (missing, or more than one hour
  from the robot's clock), ``keywords not in content`` (``keyword``), ``ip … not in
  whitelist`` (``ip_allowed = False``);
* ``130101 send too fast, exceed 20 times per minute`` - more than 20 messages in a minute
  (each one is counted in ``rate_violations``); as documented ("如果超过20条，会限流10分钟"),
  the robot then refuses everything with 130101 for 10 minutes (``THROTTLE_SECONDS``);
* ``40035`` - missing/invalid parameters for the msgtype; ``460101`` - message over 20000 bytes.

@-mentions: a person in ``at.atMobiles`` / ``at.atUserIds`` is notified only when
``@<mobile>`` / ``@<userId>`` is also in the message's text (as the robot's docs show);
``notified`` lists who was, ``at_not_in_text`` who was named in ``at`` but not in the text.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets as _secrets

from tests.fakes.chat_base import ChatServer, Response


def expected_sign(timestamp: str, secret: str) -> str:
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode("utf-8"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


class FakeDingTalk(ChatServer):
    MAX_BYTES = 20_000
    THROTTLE_SECONDS = 600

    def __init__(self, secret: str | None = None, clock=None, rate_per_minute: int = 20, keyword: str | None = None):
        super().__init__(clock, rate_per_minute)
        self.token = _secrets.token_hex(32)
        self.secret = secret
        self.keyword = keyword
        self.ip_allowed = True
        self.throttled_until: float | None = None
        self.notified: list[str] = []
        self.at_not_in_text: list[str] = []

    @property
    def url(self) -> str:
        return f"{self.base_url}/robot/send?access_token={self.token}"

    def _err(self, code: int, msg: str) -> Response:
        if code:
            self.rejected.append((code, msg))
        return Response(200, {"errcode": code, "errmsg": msg})

    def handle(self, path, query, raw, headers):
        if path != "/robot/send":
            return Response(404, "not found")
        q = {k: v[0] for k, v in query.items()}
        if q.get("access_token") != self.token:
            return self._err(300001, "token is not exist")
        if not self.ip_allowed:
            return self._err(310000, "ip 127.0.0.1 not in whitelist")
        if self.secret:
            ts, sign = q.get("timestamp"), q.get("sign")
            if not ts or not ts.isdigit() or abs(int(ts) - int(self.clock() * 1000)) > 3_600_000:
                return self._err(310000, "sign not match, more: timestamp is invalid")
            if not sign or not hmac.compare_digest(sign, expected_sign(ts, self.secret)):
                return self._err(310000, "sign not match, more: sign is invalid")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._err(40035, "缺少参数 json")
        problem = self._check(payload)
        if problem:
            return self._err(*problem)
        if self.keyword and self.keyword not in json.dumps(payload, ensure_ascii=False):
            return self._err(310000, "keywords not in content")
        if self.throttled_until is not None and self.clock() < self.throttled_until:
            self.rate_violations += 1
            return self._err(130101, "send too fast, exceed 20 times per minute")
        if self.over_rate() is not None:
            self.throttled_until = self.clock() + self.THROTTLE_SECONDS
            return self._err(130101, "send too fast, exceed 20 times per minute")
        self.received.append(payload)
        self._notify(payload)
        return self._err(0, "ok")

    def _notify(self, p: dict) -> None:
        at = p.get("at") or {}
        mt = p.get("msgtype")
        text = (p.get(mt) or {}).get("text") or (p.get(mt) or {}).get("content") or ""
        for who in [*(at.get("atMobiles") or []), *(at.get("atUserIds") or [])]:
            (self.notified if f"@{who}" in text else self.at_not_in_text).append(str(who))

    def _check(self, p) -> tuple[int, str] | None:
        if not isinstance(p, dict):
            return 40035, "缺少参数 json"
        mt = p.get("msgtype")
        if mt == "text":
            body = (p.get("text") or {}).get("content")
            if not body:
                return 40035, "缺少参数 text.content"
        elif mt == "markdown":
            md = p.get("markdown") or {}
            if not md.get("title") or not md.get("text"):
                return 40035, "缺少参数 markdown.title/text"
            body = md["text"]
        elif mt == "actionCard":
            ac = p.get("actionCard") or {}
            if not ac.get("title") or not ac.get("text"):
                return 40035, "缺少参数 actionCard.title/text"
            if not ((ac.get("singleTitle") and ac.get("singleURL")) or ac.get("btns")):
                return 40035, "缺少参数 actionCard.singleTitle/singleURL"
            body = ac["text"]
        else:
            return 40035, f"不支持的消息类型 {mt}"
        if len(body.encode("utf-8")) > self.MAX_BYTES:
            return 460101, "message too long, exceed 20000 bytes"
        at = p.get("at")
        if at is not None and (not isinstance(at, dict) or not isinstance(at.get("atMobiles", []), list)):
            return 40035, "缺少参数 at"
        return None

    def message_texts(self) -> list[str]:
        out = []
        for p in self.received:
            mt = p["msgtype"]
            out.append((p.get(mt) or {}).get("text") or (p.get(mt) or {}).get("content") or "")
        return out
