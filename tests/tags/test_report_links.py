"""The health report's link opens in the operator's browser: the artifact, the digest and
the breach alerts link it under the reports' URL (``reports_url``, which ``userops serve``
provides by serving the reports folder read-only); without a URL they name the file and
where it lies - never a file:// link a browser refuses from the Prefect UI. The artifact
carries the key charts itself (data: URIs, which the Prefect UI's Markdown renderer shows).
Real HTTP over loopback."""
from __future__ import annotations

import base64
import http.client
import json
import re
import socket

import pandas as pd
import pytest
import requests

from tasks import health, tags
from tests.tags.factory import AS_OF
from tests.tags.test_health import unhealthy_shop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use(monkeypatch, **env):
    from userops.settings import reset_settings

    for k, v in env.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, str(v))
    reset_settings()


def _raw_get(url: str, path: str, method: str = "GET") -> int:
    """The status of a request for ``path`` exactly as written (no client normalization)."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    try:
        conn.request(method, path)
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_report_link_opens_over_http_from_artifact_digest_and_alert(sqlite_warehouse, monkeypatch):
    from tasks.alerts.digest import build_digest
    from userops.reports import ReportServer, reports_dir

    engine = sqlite_warehouse
    unhealthy_shop().load(engine)
    tags.refresh(AS_OF, "r0", engine=engine)
    m = health.snapshot(AS_OF, engine=engine)
    with ReportServer(reports_dir(), port=0) as server:
        _use(monkeypatch, USEROPS_REPORTS_URL=server.url, USEROPS_LANGUAGE="en")

        # the breach alerts (queued before the report is written) carry its link as their button
        import prefect.events

        monkeypatch.setattr(prefect.events, "emit_event", lambda **kw: None)
        health.emit_pending_breaches(AS_OF, engine)

        # the artifact: the link, and the key charts inline
        published = {}
        import tasks.artifacts as artifacts

        monkeypatch.setattr(artifacts, "publish_markdown", lambda kind, md, description=None: published.setdefault(kind, md) and kind)
        out = health.publish_report(AS_OF, m, engine)
        md = published["health"]
        assert "file://" not in md
        link = re.search(r"Report with charts: \[health-[0-9-]+\.html\]\((http://[^)]+)\)", md).group(1)
        assert link == f"{server.url}health-{AS_OF}.html" and out["report"].endswith(f"health-{AS_OF}.html")
        got = requests.get(link, timeout=5)
        assert got.status_code == 200 and got.headers["Content-Type"].startswith("text/html")
        assert got.text == open(out["report"], encoding="utf-8").read() and got.text.count("<svg") == 4
        charts = re.findall(r"!\[([^\]]+)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md)
        assert [c[0] for c in charts] == ["Trend over the last 90 days", "Retention curves by month of first order"]
        assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for _, img in charts)

        # the digest's health section links it too
        d = build_digest(AS_OF, "run-1", engine=engine, lang="en")
        assert f"Report with charts: [health-{AS_OF}.html]({link})" in d.body and d.figures["health_report"] == link

        from tests.alerts.conftest import outbox

        payloads = [json.loads(r.payload) for r in outbox(engine, kind="health_breach")]
        assert payloads and all(p["link"] == link and p["link_label"] == "Open the health report" for p in payloads)

        # read-only, the reports folder only: not the outreach lists beside it, no hidden file
        outreach = reports_dir().parent / "outreach"
        outreach.mkdir(parents=True, exist_ok=True)
        (outreach / "staff.csv").write_text("phone\n13800138000\n")
        (reports_dir() / ".draft.html").write_text("x")
        for path in ("/../outreach/staff.csv", "/%2e%2e/outreach/staff.csv", "/.draft.html", "/%2Edraft.html"):
            assert _raw_get(server.url, path) == 404, path
        assert _raw_get(server.url, f"/health-{AS_OF}.html", "POST") in (405, 501)
        assert _raw_get(server.url, f"/health-{AS_OF}.html", "PUT") in (405, 501)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_without_a_url_the_report_is_named_with_where_it_lies(monkeypatch, tmp_path, lang):
    _use(monkeypatch, USEROPS_OUTPUT_DIR=tmp_path / "output", USEROPS_REPORTS_URL=None, USEROPS_CONFIG_FILE=tmp_path / "none.yaml")
    (tmp_path / "none.yaml").write_text("{}\n")
    m = {"as_of": "2026-11-20", "members": 10, "active": 6, "stages": {"new": 1, "active": 2, "loyal": 3}}
    path = tmp_path / "output" / "reports" / "health-2026-11-20.html"
    md = health.report_markdown(m, pd.DataFrame(columns=["as_of", *health.HEADLINE]), path, lang=lang)
    line = [x for x in md.splitlines() if "health-2026-11-20.html" in x][0]
    assert "file://" not in md and "](" not in line  # no link that opens nothing
    assert str(path.resolve()) in line and "USEROPS_REPORTS_URL" in line and "userops serve" in line


def test_userops_serve_serves_the_reports_and_hands_the_worker_their_url(monkeypatch, tmp_path):
    from userops.cli.serve import _start_reports

    port = _free_port()
    _use(monkeypatch, USEROPS_OUTPUT_DIR=tmp_path / "output", USEROPS_REPORTS_URL=None, USEROPS_DEPLOY__REPORTS_PORT=port,
         USEROPS_CONFIG_FILE=tmp_path / "none.yaml")
    (tmp_path / "none.yaml").write_text("{}\n")
    server, env = _start_reports("127.0.0.1")
    try:
        assert env == {"USEROPS_REPORTS_URL": f"http://127.0.0.1:{port}/"}
        (tmp_path / "output" / "reports" / "health-2026-11-20.html").write_text("<html>ok</html>", encoding="utf-8")
        _use(monkeypatch, **env)  # what the worker's flows see
        from userops.reports import report_url

        url = report_url(tmp_path / "output" / "reports" / "health-2026-11-20.html")
        got = requests.get(url, timeout=5)
        assert got.status_code == 200 and got.text == "<html>ok</html>"

        # the port taken (a second serve): everything else still starts, links name the file
        _use(monkeypatch, USEROPS_REPORTS_URL=None)
        assert _start_reports("127.0.0.1") == (None, {})
    finally:
        server.stop()

    # someone else serves the folder (reports_url set), or serving is off (port 0): no server
    _use(monkeypatch, USEROPS_REPORTS_URL="https://ops.example.com/reports/")
    assert _start_reports("127.0.0.1") == (None, {})
    _use(monkeypatch, USEROPS_REPORTS_URL=None, USEROPS_DEPLOY__REPORTS_PORT=0)
    assert _start_reports("127.0.0.1") == (None, {})


def test_reports_url_must_be_http(monkeypatch, tmp_path):
    from userops.settings import Settings

    _use(monkeypatch, USEROPS_CONFIG_FILE=tmp_path / "none.yaml", USEROPS_REPORTS_URL="file:///srv/reports")
    (tmp_path / "none.yaml").write_text("{}\n")
    with pytest.raises(Exception, match="http"):
        Settings()
