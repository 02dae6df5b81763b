"""A local SMS / app-push provider speaking the documented JSON webhook, recording what it got.

Wire format (what ``tasks.messaging`` sends and a real provider adapter would accept):

    POST <webhook url>
    Content-Type: application/json
    Idempotency-Key: <touch key digest>
    {"idempotency_key": "...", "channel": "sms"|"push", "to": "...", "subject": "...",
     "text": "...", "campaign": "...", "touch_key": "..."}

Answers:
* ``200 {"message_id": "...", "duplicate": false}``: accepted. A repeated idempotency key
  is answered with the *same* message id and ``"duplicate": true`` and is not delivered again
  (that is what a provider with idempotency keys does; the test counts it separately).
* ``429 {"error": "rate_limited"}`` with ``Retry-After: <retry_after>`` (seconds, default 1)
  above ``rate_limit`` requests/s, or when ``fail_next`` says 429.
* ``500``/``503`` for injected transient faults, ``422 {"error": "invalid_recipient"}`` for
  recipients in ``reject_to`` (a permanent failure); with ``reject_message`` (a template
  with ``{to}``) the error quotes the recipient, as many providers' errors do
  ("The 'To' number 139… is not a valid phone number").

The server is a small asyncio HTTP/1.1 server with keep-alive, fast enough for the
throughput benchmark. It runs in a background thread (``with FakeProvider() as p``) or as
its own process (``python -m tests.fakes.message_provider --port 0`` prints its URL; ``GET
/_stats`` returns the counts as JSON).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import threading
import time
from collections import Counter


class FakeProvider:
    def __init__(
        self,
        rate_limit: float | None = None,
        fail_share: float = 0.0,
        fail_status: int = 500,
        reject_to: set[str] | frozenset = frozenset(),
        seed: int = 0,
        record_bodies: bool = True,
        latency_s: float = 0.0,
    ):
        self.rate_limit = rate_limit
        self.fail_share = fail_share
        self.fail_status = fail_status
        self.reject_to = set(reject_to)
        self.reject_message: str | None = None  # e.g. "invalid recipient {to}": the 422 quotes the number
        self.record_bodies = record_bodies
        self.latency_s = latency_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.requests = 0  # every POST seen
        self.delivered: dict[str, dict] = {}  # idempotency key -> first accepted payload
        self.delivery_order: list[str] = []
        self.duplicates: Counter = Counter()  # key -> repeated requests after delivery
        self.header_body_mismatch = 0  # Idempotency-Key header != body field
        self.missing_key = 0
        self.status_counts: Counter = Counter()
        self.fail_next: list[int] = []  # statuses to answer the next requests with (429: with Retry-After)
        self.retry_after = "1"  # the Retry-After header of a 429
        self._window_start = time.monotonic()
        self._window_count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self._writers: set = set()
        self.port: int | None = None
        self.host = "127.0.0.1"

    # ------------------------------------------------------------------ behaviour
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1/messages"

    def _respond(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, dict, dict]:
        if method == "GET" and path.startswith("/_stats"):
            return 200, self.stats(), {}
        if method != "POST":
            return 405, {"error": "method_not_allowed"}, {}
        with self._lock:
            self.requests += 1
            if self.rate_limit:
                now = time.monotonic()
                if now - self._window_start >= 1.0:
                    self._window_start, self._window_count = now, 0
                self._window_count += 1
                if self._window_count > self.rate_limit:
                    self.status_counts[429] += 1
                    return 429, {"error": "rate_limited"}, {"Retry-After": self.retry_after}
            if self.fail_next:
                st = self.fail_next.pop(0)
                self.status_counts[st] += 1
                if st == 429:
                    return 429, {"error": "rate_limited"}, {"Retry-After": self.retry_after}
                return st, {"error": "injected"}, {}
            if self.fail_share and self._rng.random() < self.fail_share:
                self.status_counts[self.fail_status] += 1
                return self.fail_status, {"error": "injected"}, {}
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                self.status_counts[400] += 1
                return 400, {"error": "bad_json"}, {}
            key = headers.get("idempotency-key")
            if not key:
                self.missing_key += 1
                self.status_counts[400] += 1
                return 400, {"error": "missing_idempotency_key"}, {}
            if payload.get("idempotency_key") != key:
                self.header_body_mismatch += 1
            if str(payload.get("to")) in self.reject_to:
                self.status_counts[422] += 1
                error = self.reject_message.format(to=payload.get("to")) if self.reject_message else "invalid_recipient"
                return 422, {"error": error}, {}
            if key in self.delivered:
                self.duplicates[key] += 1
                self.status_counts[200] += 1
                return 200, {"message_id": f"m-{key[:16]}", "duplicate": True}, {}
            self.delivered[key] = payload if self.record_bodies else {"to": payload.get("to"), "touch_key": payload.get("touch_key")}
            self.delivery_order.append(key)
            self.status_counts[200] += 1
            return 200, {"message_id": f"m-{key[:16]}", "duplicate": False}, {}

    def stats(self) -> dict:
        with self._lock:
            return {
                "requests": self.requests,
                "delivered": len(self.delivered),
                "duplicates": sum(self.duplicates.values()),
                "status": {str(k): v for k, v in self.status_counts.items()},
                "header_body_mismatch": self.header_body_mismatch,
                "missing_key": self.missing_key,
            }

    def delivered_touch_keys(self) -> list[str]:
        with self._lock:
            return [p.get("touch_key") for p in self.delivered.values()]

    # ------------------------------------------------------------------ server
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    method, path, _ = line.decode("latin-1").split(" ", 2)
                except ValueError:
                    break
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length") or 0)
                body = await reader.readexactly(n) if n else b""
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                status, payload, extra = self._respond(method, path, headers, body)
                data = json.dumps(payload).encode()
                head = [f"HTTP/1.1 {status} {'OK' if status < 400 else 'ERR'}", "Content-Type: application/json", f"Content-Length: {len(data)}"]
                head += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            try:
                writer.close()
            except Exception:  # pragma: no cover
                pass

    async def _start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, port, backlog=512)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self, port: int = 0) -> "FakeProvider":
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._start(port))
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def _shutdown():
            self._server.close()
            for w in list(self._writers):  # clients see EOF; handlers end on their own
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:
                await asyncio.wait(tasks, timeout=2)

        try:
            asyncio.run_coroutine_threadsafe(_shutdown(), self._loop).result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
            self._loop = None

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Local SMS/push provider for tests and benchmarks")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--rate-limit", type=float, default=None)
    args = ap.parse_args(argv)
    prov = FakeProvider(rate_limit=args.rate_limit, record_bodies=False)

    async def serve():
        await prov._start(args.port)
        print(prov.url, flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(0)


if __name__ == "__main__":
    main()
