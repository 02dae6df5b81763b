"""Shared machinery of the fake chat services (Slack, DingTalk, WeCom) used by tests/alerts.

Each fake is a real HTTP server on loopback (a thread) that speaks its service's wire
format, including its errors and rate limit. Time comes from an injectable clock, so a
test can move "a minute later" without sleeping:

    clock = FakeClock()
    with FakeDingTalk(secret="SEC...", clock=clock) as robot:
        ...; clock.advance(61)

Failure modes every fake supports:
* ``outage = "503"`` (HTTP 503), ``"reset"`` (connection dropped without an answer),
  ``None`` (healthy); ``stop()`` then ``start()`` = connection refused, then back on the
  same port;
* ``script(status, body, headers)``: the next request(s) get this answer instead.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakeClock:
    """Seconds since the epoch, moved by hand (starts at the real time)."""

    def __init__(self, start: float | None = None):
        self.t = time.time() if start is None else start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    def utc(self):
        """The clock as a naive UTC datetime (what ``deliver_pending(now=...)`` takes)."""
        from datetime import datetime, timezone

        return datetime.fromtimestamp(self(), tz=timezone.utc).replace(tzinfo=None)


class Response:
    def __init__(self, status: int = 200, body: bytes | str | dict = b"", headers: dict | None = None):
        if isinstance(body, dict):
            body = json.dumps(body, ensure_ascii=False)
            headers = {"Content-Type": "application/json", **(headers or {})}
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.status = status
        self.body = body
        self.headers = headers or {"Content-Type": "text/plain; charset=utf-8"}


DROP = object()  # answer nothing and drop the connection


class ChatServer:
    """Base: subclasses implement ``handle(path, query, body_bytes) -> Response | DROP``."""

    def __init__(self, clock: FakeClock | None = None, rate_per_minute: int | None = None):
        self.clock = clock or FakeClock()
        self.rate_per_minute = rate_per_minute
        self.outage: str | None = None
        self._script: deque = deque()
        self._window: deque = deque()  # times of requests counted against the rate limit
        self._lock = threading.Lock()
        self.requests: list[dict] = []  # every request: {"path", "query", "body"}
        self.received: list[dict] = []  # accepted messages (payloads)
        self.rejected: list[tuple[int | str, str]] = []  # (code, message) of refused requests
        self.rate_violations = 0  # requests beyond the documented limit
        self._server: ThreadingHTTPServer | None = None
        self._port = 0
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self) -> "ChatServer":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no ~40 ms delayed-ACK wait

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                parts = urlsplit(self.path)
                res = fake._dispatch(parts.path, parse_qs(parts.query, keep_blank_values=True), raw, dict(self.headers))
                if res is DROP:
                    self.close_connection = True
                    try:
                        self.connection.shutdown(2)
                    except OSError:
                        pass
                    return
                self.send_response(res.status)
                for k, v in res.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(res.body)))
                self.end_headers()
                self.wfile.write(res.body)

        # a restarted fake comes back on the same port (an outage, then recovery)
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._port = self._server.server_address[1]
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- behaviour
    def script(self, status: int = 200, body: bytes | str | dict = b"", headers: dict | None = None, times: int = 1) -> None:
        for _ in range(times):
            self._script.append(Response(status, body, headers))

    def _dispatch(self, path: str, query: dict, raw: bytes, headers: dict):
        with self._lock:
            self.requests.append({"path": path, "query": {k: v[0] for k, v in query.items()}, "body": raw.decode("utf-8", "replace")})
            if self.outage == "reset":
                return DROP
            if self.outage == "503":
                return Response(503, "service unavailable")
            if self._script:
                return self._script.popleft()
            return self.handle(path, query, raw, headers)

    def over_rate(self) -> float | None:
        """Count this request against the per-minute limit; seconds to wait when over it."""
        if not self.rate_per_minute:
            return None
        now = self.clock()
        while self._window and self._window[0] <= now - 60:
            self._window.popleft()
        if len(self._window) >= self.rate_per_minute:
            self.rate_violations += 1
            return max(1.0, 60 - (now - self._window[0]))
        self._window.append(now)
        return None

    def handle(self, path: str, query: dict, raw: bytes, headers: dict):  # pragma: no cover - abstract
        raise NotImplementedError

    def texts(self) -> str:
        """Everything delivered, as one string (for 'was it sent' assertions)."""
        return "\n".join(json.dumps(p, ensure_ascii=False) for p in self.received)

    def all_request_text(self) -> str:
        return "\n".join(r["body"] for r in self.requests)
