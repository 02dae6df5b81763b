"""A local WeCom (企业微信) group robot.

``POST /cgi-bin/webhook/send?key=<key>`` with JSON; HTTP 200 with ``{"errcode", "errmsg"}``:

* ``0 ok``;
* ``93000 invalid webhook url`` - wrong key;
* ``40058`` - content over the limit: ``text.content`` 2048 bytes, ``markdown.content``
  4096 bytes (UTF-8);
* ``44004`` empty content, ``40008`` unknown msgtype;
* ``45009 api freq out of limit`` - more than 20 messages a minute.
"""
from __future__ import annotations

import json
import uuid

from tests.fakes.chat_base import ChatServer, Response

LIMITS = {"text": 2048, "markdown": 4096}


class FakeWeCom(ChatServer):
    def __init__(self, clock=None, rate_per_minute: int = 20):
        super().__init__(clock, rate_per_minute)
        self.key = str(uuid.uuid4())

    @property
    def url(self) -> str:
        return f"{self.base_url}/cgi-bin/webhook/send?key={self.key}"

    def _err(self, code: int, msg: str) -> Response:
        if code:
            self.rejected.append((code, msg))
        return Response(200, {"errcode": code, "errmsg": msg})

    def handle(self, path, query, raw, headers):
        if path != "/cgi-bin/webhook/send":
            return Response(404, "not found")
        if (query.get("key") or [""])[0] != self.key:
            return self._err(93000, "invalid webhook url, hint: [1700000000_1], more info at https://open.work.weixin.qq.com/devtool/query?e=93000")
        try:
            p = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._err(40035, "invalid json")
        mt = p.get("msgtype") if isinstance(p, dict) else None
        if mt not in LIMITS:
            return self._err(40008, "invalid message type")
        content = (p.get(mt) or {}).get("content") or ""
        if not content:
            return self._err(44004, "empty content")
        if len(content.encode("utf-8")) > LIMITS[mt]:
            return self._err(40058, f"{mt}.content exceed max length {LIMITS[mt]}")
        if self.over_rate() is not None:
            return self._err(45009, "api freq out of limit")
        self.received.append(p)
        return self._err(0, "ok")

    def contents(self) -> list[str]:
        return [(p.get(p["msgtype"]) or {}).get("content", "") for p in self.received]
