"""A local SMTP server (aiosmtpd) that records every message it accepted.

``reject`` recipients get ``550 5.1.1`` (permanent), ``transient`` ones ``451 4.3.0`` for
their first ``transient_times`` attempts (then accepted). Messages are kept with their
Message-ID, so a test can count deliveries per Message-ID (what a mail client de-duplicates on).
"""
from __future__ import annotations

import socket
import threading
from collections import Counter
from email import message_from_bytes
from email.policy import default as default_policy

from aiosmtpd.controller import Controller


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, owner: "FakeSmtp"):
        self.owner = owner

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        o = self.owner
        with o.lock:
            if address in o.reject:
                return "550 5.1.1 mailbox unavailable"
            if address in o.transient and o.transient_seen[address] < o.transient_times:
                o.transient_seen[address] += 1
                return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.content, policy=default_policy)
        rec = {
            "to": list(envelope.rcpt_tos),
            "from": envelope.mail_from,
            "message_id": msg["Message-ID"],
            "idempotency_key": msg["Idempotency-Key"],
            "subject": str(msg["Subject"] or ""),
            "body": msg.get_content() if not msg.is_multipart() else "",
        }
        with self.owner.lock:
            self.owner.messages.append(rec)
            self.owner.by_message_id[rec["message_id"]] += 1
        return "250 Message accepted for delivery"


class FakeSmtp:
    def __init__(self, reject: set[str] | None = None, transient: set[str] | None = None, transient_times: int = 1):
        self.reject = set(reject or ())
        self.transient = set(transient or ())
        self.transient_times = transient_times
        self.transient_seen: Counter = Counter()
        self.messages: list[dict] = []
        self.by_message_id: Counter = Counter()
        self.lock = threading.Lock()
        self.port = _free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> "FakeSmtp":
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()
