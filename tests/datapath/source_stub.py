"""A small REST source on loopback for data-path tests: JSON records as given (an integer id,
a null, a Chinese status), page or offset paging with a chosen way of telling the end, the
``updated_since`` filter, and every query it was sent."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pandas as pd


class StubSource:
    """``tables``: path -> list of records (dicts). ``meta``: "totals" (total_pages / total),
    "has_more", or "none" (neither: the client must read until a short page).
    ``on_request(path, qs)``: called before each answer (to change the data mid-extract)."""

    def __init__(self, tables: dict[str, list[dict]], meta: str = "totals"):
        self.tables, self.meta = tables, meta
        self.queries: list[dict] = []
        self.on_request = None
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                u = urlparse(self.path)
                qs = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
                if u.path not in stub.tables:
                    return self._send(404, {"error": "no such path"})
                stub.queries.append({"path": u.path, **qs})
                if stub.on_request:
                    stub.on_request(u.path, qs)
                rows = stub.rows(u.path, qs.get("updated_since"))
                if "offset" in qs:
                    off, lim = int(qs["offset"]), int(qs.get("limit", 1000))
                    part = rows[off : off + lim]
                    meta = {"total": len(rows)} if stub.meta == "totals" else {"has_more": off + lim < len(rows)} if stub.meta == "has_more" else {}
                else:
                    page, size = int(qs.get("page", 1)), int(qs.get("page_size", 1000))
                    part = rows[(page - 1) * size : page * size]
                    pages = max(1, -(-len(rows) // size))
                    meta = {"page": page, "total_pages": pages} if stub.meta == "totals" else {"page": page, "has_more": page < pages} if stub.meta == "has_more" else {"page": page}
                self._send(200, {"data": part, **meta})

            def _send(self, code, body):
                raw = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def rows(self, path: str, since: str | None) -> list[dict]:
        """The path's records with ``updated_at`` >= since (an offset converts; naive is UTC),
        ordered by (updated_at, position)."""
        recs = list(self.tables[path])
        stamp = [pd.Timestamp(r.get("updated_at") or "1970-01-01") for r in recs]
        stamp = [s.tz_convert("UTC").tz_localize(None) if s.tzinfo else s for s in stamp]
        order = sorted(range(len(recs)), key=lambda i: stamp[i])
        if since:
            cut = pd.Timestamp(since)
            cut = cut.tz_convert("UTC").tz_localize(None) if cut.tzinfo else cut
            order = [i for i in order if stamp[i] >= cut]
        return [recs[i] for i in order]

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
