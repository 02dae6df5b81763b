"""The sample CRM and order system: a small real HTTP service on loopback.

Paths (all JSON, rows ordered by updated_at then id):
  GET /crm/customers, /crm/feedback, /orders/orders, /orders/order_items, /orders/events
  filter   ?updated_since=ISO-8601   rows with updated_at >= the value
  paging   ?page=1&page_size=N        -> {"data": [...], "page": 1, "total_pages": T}
           ?offset=0&limit=N          -> {"data": [...], "total": T}
           ?cursor=&limit=N           -> {"data": [...], "next_cursor": "..." | null}
                                         (a keyset cursor: the next page starts after the last
                                         row's (updated_at, id), so a row edited during the read
                                         moves to the end without shifting an unread one past it)
           ?per_page=N[&page=K]       -> [...] with a ``Link: <...>; rel="next"`` header
  auth     Authorization: Bearer TOKEN or X-API-Key: KEY (when configured), else 401
  POST /orders/takedown               {"skus": [...]} -> {"ok": true, "taken_down": [...]}

Faults for tests (``SampleServer.faults`` or POST /_admin/faults): ``fail_next`` answers the
next N data requests with 500, ``rate_limit_next`` with 429 + Retry-After, ``slow_seconds``
delays every data response, ``always_fail`` answers 500 forever, ``fail_after`` answers
500 forever after that many more successful data requests, ``malformed`` turns
that many rows of every page into bad records (of ``malformed_tables`` only, when given).
"""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlparse

import numpy as np
import pandas as pd

from userops.sample.generator import SampleData

ROUTES = {
    "/crm/customers": ("customers", "customer_id"),
    "/crm/feedback": ("feedback", "feedback_id"),
    "/orders/orders": ("orders", "order_id"),
    "/orders/order_items": ("order_items", "order_id"),
    "/orders/events": ("events", "event_id"),
}


class SampleServer:
    """Serve ``SampleData`` over HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, data: SampleData, token: str | None = None, api_key: str | None = None, port: int = 0):
        self.token = token
        self.api_key = api_key
        self.faults: dict = {}
        self.requests: list[str] = []  # paths+queries served, for tests
        self.takedowns: list[dict] = []
        self._lock = threading.Lock()
        self.sort_keys: dict[str, list[str]] = {}
        self.set_data(data)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- data -------------------------------------------------------------------------
    def set_data(self, data: SampleData) -> None:
        """Replace what the source holds (e.g. after ``advance_day``)."""
        tables = {}
        for name, df in data.tables().items():
            key = next(k for (t, k) in ROUTES.values() if t == name)
            ts_col = "updated_at" if "updated_at" in df.columns else "occurred_at"
            sort = [ts_col, key] + (["sku"] if name == "order_items" else [])
            tables[name] = (df.sort_values(sort, kind="stable").reset_index(drop=True), ts_col)
            self.sort_keys[name] = sort
        with self._lock:
            self.tables = tables

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "SampleServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- request handling ----------------------------------------------------------------
    def _select(self, table: str, qs: dict) -> pd.DataFrame:
        df, ts_col = self.tables[table]
        since = qs.get("updated_since", [None])[0]
        if since:
            ts = pd.Timestamp(since)
            if ts.tzinfo is not None:
                ts = ts.tz_convert("UTC").tz_localize(None)
            start = int(np.searchsorted(df[ts_col].to_numpy(), np.datetime64(ts), side="left"))
            df = df.iloc[start:]
        return df

    def _key_of(self, table: str, row) -> list:
        """A row's position in the source's order: its (updated_at, id[, sku]) as text."""
        return [v.isoformat() if isinstance(v, pd.Timestamp) else str(v) for v in (row[c] for c in self.sort_keys[table])]

    def _after(self, table: str, df: pd.DataFrame, key: list) -> int:
        """The first row of ``df`` after ``key`` in the (updated_at, id[, sku]) order."""
        cols = self.sort_keys[table]
        after = pd.Series(False, index=df.index)
        same = pd.Series(True, index=df.index)
        for c, v in zip(cols, key):
            col = df[c]
            v = pd.Timestamp(v) if pd.api.types.is_datetime64_any_dtype(col) else v
            col = col if pd.api.types.is_datetime64_any_dtype(col) else col.astype(str)
            after |= same & (col > v)
            same &= col == v
        hit = after.to_numpy().nonzero()[0]
        return int(hit[0]) if len(hit) else len(df)

    def _malform(self, rows: list[dict], table: str) -> list[dict]:
        n = int(self.faults.get("malformed", 0))
        only = self.faults.get("malformed_tables")
        if only and table not in only:
            return rows
        for r in rows[:n]:
            if table == "customers":
                r["email"] = "not-an-email"
            elif table == "orders":
                r["amount"] = -5
            elif table == "feedback":
                r["nps"] = 42
            elif table == "order_items":
                r["quantity"] = -1
        return rows

    def _handler(server_self):  # noqa: N805 - closure over the SampleServer
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # the headers and the body are two writes on a kept-alive connection: with Nagle's
            # algorithm the body waited for the client's delayed ACK, ~40 ms a page
            disable_nagle_algorithm = True

            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, code: int, body, headers: dict | None = None):
                raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(raw)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(raw)

            def _authorized(self) -> bool:
                s = server_self
                if s.token and self.headers.get("Authorization") == f"Bearer {s.token}":
                    return True
                if s.api_key and self.headers.get("X-API-Key") == s.api_key:
                    return True
                return not (s.token or s.api_key)

            def _fault(self) -> bool:
                f = server_self.faults
                if f.get("slow_seconds"):
                    time.sleep(float(f["slow_seconds"]))
                with server_self._lock:
                    if f.get("fail_after") is not None:
                        if f["fail_after"] <= 0:
                            self._send(500, {"error": "internal error (injected)"})
                            return True
                        f["fail_after"] -= 1
                    if f.get("always_fail"):
                        self._send(500, {"error": "internal error (injected)"})
                        return True
                    if f.get("rate_limit_next", 0) > 0:
                        f["rate_limit_next"] -= 1
                        self._send(429, {"error": "too many requests"}, {"Retry-After": str(f.get("retry_after", 1))})
                        return True
                    if f.get("fail_next", 0) > 0:
                        f["fail_next"] -= 1
                        self._send(500, {"error": "internal error (injected)"})
                        return True
                return False

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                path = urlparse(self.path).path
                if path == "/_admin/faults":
                    server_self.faults.update(body)
                    return self._send(200, {"ok": True, "faults": server_self.faults})
                if not self._authorized():
                    return self._send(401, {"error": "unauthorized"})
                if path == "/orders/takedown":
                    server_self.takedowns.append(body)
                    return self._send(200, {"ok": True, "taken_down": body.get("skus", [])})
                self._send(404, {"error": f"no such path {path}"})

            def do_GET(self):
                u = urlparse(self.path)
                if u.path == "/health":
                    return self._send(200, {"ok": True})
                route = ROUTES.get(u.path)
                if route is None:
                    return self._send(404, {"error": f"no such path {u.path}"})
                if not self._authorized():
                    return self._send(401, {"error": "unauthorized"})
                server_self.requests.append(self.path)
                if self._fault():
                    return
                table, _key = route
                qs = parse_qs(u.query, keep_blank_values=True)
                df = server_self._select(table, qs)
                total = len(df)
                headers = {}
                if "cursor" in qs:
                    limit = int(qs.get("limit", ["1000"])[0])
                    cur = qs["cursor"][0]
                    start = server_self._after(table, df, json.loads(base64.urlsafe_b64decode(cur.encode()).decode())) if cur else 0
                    part = df.iloc[start : start + limit]
                    last = server_self._key_of(table, part.iloc[-1]) if len(part) else None
                    body_meta = {"next_cursor": base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if start + limit < total else None}
                elif "offset" in qs:
                    offset, limit = int(qs["offset"][0]), int(qs.get("limit", ["1000"])[0])
                    part = df.iloc[offset : offset + limit]
                    body_meta = {"total": total}
                elif "per_page" in qs:
                    per, page = int(qs["per_page"][0]), int(qs.get("page", ["1"])[0])
                    part = df.iloc[(page - 1) * per : page * per]
                    if page * per < total:
                        q = {k: v[0] for k, v in qs.items()}
                        q["page"] = str(page + 1)
                        host = self.headers.get("Host")
                        headers["Link"] = f'<http://{host}{u.path}?{urlencode(q)}>; rel="next"'
                    body_meta = None
                else:
                    page, size = int(qs.get("page", ["1"])[0]), int(qs.get("page_size", ["1000"])[0])
                    part = df.iloc[(page - 1) * size : page * size]
                    body_meta = {"page": page, "total_pages": max(1, -(-total // size))}
                records = json.loads(part.to_json(orient="records", date_format="iso", date_unit="s", force_ascii=False))
                records = server_self._malform(records, table)
                if body_meta is None:
                    return self._send(200, records, headers)
                return self._send(200, {"data": records, **body_meta}, headers)

        return Handler
