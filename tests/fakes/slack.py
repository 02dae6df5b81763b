"""A local Slack incoming webhook.

``POST /services/T…/B…/<token>`` with JSON ``{"text": …, "blocks": […]}``; answers as Slack
documents for incoming webhooks:

* ``200 ok`` - posted;
* ``400 invalid_payload`` (not JSON), ``400 no_text`` (neither text nor blocks),
  ``400 invalid_blocks`` (unknown block type, header > 150 chars, section > 3000 chars,
  more than 50 blocks);
* ``403 invalid_token`` (wrong token), ``403 action_prohibited``, ``404 channel_not_found``,
  ``410 channel_is_archived`` (``channel_state``), ``404 no_service`` (unknown path);
* ``429 rate_limited`` with ``Retry-After`` above ``rate_per_minute`` messages a minute.
"""
from __future__ import annotations

import json
import secrets as _secrets

from tests.fakes.chat_base import ChatServer, Response

BLOCK_TYPES = {"header", "section", "context", "actions", "divider", "image", "rich_text"}
STATES = {
    "ok": None,
    "archived": (410, "channel_is_archived"),
    "not_found": (404, "channel_not_found"),
    "prohibited": (403, "action_prohibited"),
}


class FakeSlack(ChatServer):
    def __init__(self, clock=None, rate_per_minute: int | None = 60):
        super().__init__(clock, rate_per_minute)
        self.token = "xoxwebhooktoken" + _secrets.token_hex(8)
        self.path = f"/services/T0ALERTS/B0USEROPS/{self.token}"
        self.channel_state = "ok"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    def _refuse(self, status: int, code: str, headers: dict | None = None) -> Response:
        self.rejected.append((status, code))
        return Response(status, code, headers)

    def handle(self, path, query, raw, headers):
        if not path.startswith("/services/"):
            return self._refuse(404, "no_service")
        if path != self.path:
            return self._refuse(403, "invalid_token")
        state = STATES[self.channel_state]
        if state:
            return self._refuse(*state)
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return self._refuse(400, "invalid_payload")
        if not isinstance(payload, dict):
            return self._refuse(400, "invalid_payload")
        text = payload.get("text")
        blocks = payload.get("blocks")
        if not text and not blocks:
            return self._refuse(400, "no_text")
        if blocks is not None and not self._blocks_ok(blocks):
            return self._refuse(400, "invalid_blocks")
        wait = self.over_rate()
        if wait is not None:
            return self._refuse(429, "rate_limited", {"Retry-After": str(int(wait + 0.999))})
        self.received.append(payload)
        return Response(200, "ok")

    @staticmethod
    def _blocks_ok(blocks) -> bool:
        if not isinstance(blocks, list) or len(blocks) > 50:
            return False
        for b in blocks:
            if not isinstance(b, dict) or b.get("type") not in BLOCK_TYPES:
                return False
            if b["type"] == "header":
                tx = b.get("text") or {}
                if tx.get("type") != "plain_text" or not tx.get("text") or len(tx["text"]) > 150:
                    return False
            if b["type"] == "section":
                tx = b.get("text") or {}
                if tx.get("type") not in ("mrkdwn", "plain_text") or not tx.get("text") or len(tx["text"]) > 3000:
                    return False
            if b["type"] == "actions":
                for el in b.get("elements") or []:
                    if el.get("type") == "button" and (len((el.get("text") or {}).get("text", "")) > 75 or len(el.get("url", "")) > 3000):
                        return False
        return True
