"""Where the operator opens the HTML reports (``<output_dir>/reports/``) from.

A Prefect artifact or a chat alert is read in a browser, often on another machine than the
worker that wrote the report: a ``file://`` link opens nothing there (browsers refuse
file:// links from an http page). So:

* ``settings.reports_url`` (``USEROPS_REPORTS_URL``) is the base URL under which the
  reports folder is served; a report's link is that URL plus the file's name.
* ``userops serve`` serves the reports folder itself, read-only, on
  ``deploy.reports_port`` (default 4201, same address as the Prefect server), and hands its
  URL to the worker it starts, unless ``reports_url`` is set (then whoever serves that URL
  does) or the port is 0.
* With no URL (a night run by hand without ``userops serve``), the artifact names the file
  and where it lies instead of giving a link that does not open.

Only the reports folder is served, never the rest of the output folder (the staff-outreach
lists there hold phones and emails).
"""
from __future__ import annotations

import logging
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

from userops.i18n import register
from userops.settings import get_settings

log = logging.getLogger("userops.reports")

register(
    {
        "report.link": {"zh-CN": "[{name}]({url})", "en": "[{name}]({url})"},
        "report.where": {
            "zh-CN": "{name}（未设置报告地址 USEROPS_REPORTS_URL，文件在生成它的机器上：`{path}`；`userops serve` 会自动提供报告地址）",
            "en": "{name} (no report address USEROPS_REPORTS_URL is set; the file is on the machine that wrote it: `{path}`; `userops serve` provides the address)",
        },
    }
)


def reports_dir() -> Path:
    return Path(get_settings().output_dir) / "reports"


def report_url(path: Path | str) -> str | None:
    """The URL of a report under the reports folder, or None when no base URL is set (or
    the file lies outside the reports folder)."""
    base = get_settings().reports_url
    if not base:
        return None
    try:
        rel = Path(path).resolve().relative_to(reports_dir().resolve())
    except ValueError:
        return None
    return base.rstrip("/") + "/" + quote(rel.as_posix())


def report_reference(path: Path | str, lang: str | None = None) -> str:
    """Markdown for a report: a link when it has a URL, else its name and where it lies."""
    from userops.i18n import t

    path = Path(path)
    url = report_url(path)
    if url:
        return t("report.link", lang, name=path.name, url=url)
    return t("report.where", lang, name=path.name, path=path.resolve())


# ----------------------------------------------------------------------------- server
class _Handler(SimpleHTTPRequestHandler):
    """GET/HEAD of the files in one folder; no other method, no hidden files."""

    server_version = "userops-reports"
    sys_version = ""
    # the reports are UTF-8 (zh-CN text): say so, whatever the browser would guess
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8"}

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self._hidden():
            self.send_error(404)
            return
        super().do_GET()

    def do_HEAD(self):  # noqa: N802
        if self._hidden():
            self.send_error(404)
            return
        super().do_HEAD()

    def _hidden(self) -> bool:
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        return any(p.startswith(".") or p.startswith("%2E") or p.startswith("%2e") for p in parts)

    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        log.debug("reports: " + format, *args)


class ReportServer:
    """The reports folder over HTTP (read-only) in a background thread.

    ``ReportServer(directory, host, port).start()``; ``.url`` is the base URL (the bound
    port when ``port`` is 0); ``.stop()``. Also a context manager."""

    name = "reports"

    def __init__(self, directory: Path | str, host: str = "127.0.0.1", port: int = 4201):
        self.directory = Path(directory)
        self.host = host
        self.port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "ReportServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        handler = partial(_Handler, directory=str(self.directory))
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="userops-reports", daemon=True)
        self._thread.start()
        return self

    def url_for(self, host: str | None = None) -> str:
        """The base URL, with ``host`` for the address (e.g. the machine's name when the
        server listens on every address)."""
        h = host or self.host
        if ":" in h and not h.startswith("["):
            h = f"[{h}]"
        return f"http://{h}:{self.port}/"

    @property
    def url(self) -> str:
        return self.url_for()

    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ReportServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
