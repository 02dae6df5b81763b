"""Sample message providers for the demo: an SMS/push JSON webhook and an SMTP server on
loopback that accept what the campaign engine sends and count it (nothing leaves the machine).

The webhook speaks the wire format ``tasks.messaging`` uses: ``POST`` JSON with an
``Idempotency-Key`` header; a repeated key is answered with the same message id and not
counted again, as a provider with idempotency keys does.
"""
from __future__ import annotations

import json
import socket
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SampleWebhookProvider:
    def __init__(self):
        self.delivered: dict[str, str] = {}
        self.by_channel: Counter = Counter()
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/send"

    def _handler(provider):  # noqa: N805
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no ~40 ms delayed-ACK wait

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                key = self.headers.get("Idempotency-Key") or body.get("idempotency_key") or uuid.uuid4().hex
                with provider._lock:
                    dup = key in provider.delivered
                    if not dup:
                        provider.delivered[key] = f"msg-{len(provider.delivered) + 1}"
                        provider.by_channel[body.get("channel", "?")] += 1
                    mid = provider.delivered[key]
                raw = json.dumps({"message_id": mid, "duplicate": dup}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class SampleSmtpServer:
    """A loopback SMTP server (aiosmtpd) that counts messages by Message-ID."""

    def __init__(self):
        self.message_ids: set[str] = set()
        self.controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.controller.port}"

    def __enter__(self):
        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_DATA(self, _srv, _session, envelope):
                text = envelope.content.decode("utf-8", "replace")
                mid = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.lower().startswith("message-id:")), None)
                server.message_ids.add(mid or uuid.uuid4().hex)
                return "250 OK"

        with socket.socket() as probe:  # a free loopback port (aiosmtpd needs a real one)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
