"""Fixtures for running userops like production.

``ops`` (session): ``userops serve`` as a subprocess — a real ``prefect server start`` on a
free loopback port with a temporary PREFECT_HOME, its database a fresh PostgreSQL database
``prefect_test_<random>`` on the CI server (created here, dropped afterwards) — which
deploys prefect.yaml and starts a process worker. The worker's flow runs read the sample
CRM + order system (a few hundred members, served from this process) and write a SQLite
warehouse in a temp dir, both passed through the environment.

Tests using it are marked ``xdist_group("deploy")`` so one pytest worker starts it once.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from userops.settings import PROJECT_ROOT

PG_URL = os.environ.get("USEROPS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
USEROPS = str(Path(sys.executable).with_name("userops"))
PREFECT = str(Path(sys.executable).with_name("prefect"))
READY = "userops is running"


@dataclass
class Ops:
    api_url: str
    ui_url: str
    home: Path
    proc: subprocess.Popen
    warehouse_url: str
    sample_url: str
    database: str
    serve_env: dict = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def env(self, **extra) -> dict:
        """Environment for a CLI subprocess talking to this server."""
        env = dict(os.environ)
        env.update(PREFECT_API_URL=self.api_url, PREFECT_HOME=str(self.home), PREFECT_CLI_PROMPT="false", USEROPS_LANGUAGE="en")
        env.update(extra)
        return env

    @contextmanager
    def client(self):
        """A sync Prefect client on this server (settings restored afterwards)."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            with get_client(sync_client=True) as c:
                yield c

    @contextmanager
    def api(self):
        """Prefect settings pointing at this server (for flows run in the test process)."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield


@pytest.fixture(scope="session")
def prefect_pg_database():
    """A fresh PostgreSQL database for the Prefect server; dropped at the end."""
    name = f"prefect_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc.orig}); set USEROPS_TEST_POSTGRES_URL")
    url = make_url(PG_URL).set(drivername="postgresql+asyncpg", database=name, query={})
    try:
        yield name, url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def ops_sample():
    """The sample CRM + order system (300 members up to today), served from this process."""
    from userops.clock import sample_history_end
    from userops.sample.generator import generate
    from userops.sample.server import SampleServer

    with SampleServer(generate(300, seed=3, as_of=str(sample_history_end()))) as server:
        yield server


@pytest.fixture(scope="session")
def ops(tmp_path_factory, prefect_pg_database, ops_sample):
    """``userops serve`` on a free port, Prefect's database on PostgreSQL."""
    from userops.deploy import free_port

    tmp = tmp_path_factory.mktemp("ops")
    home = tmp / "prefect-home"
    (tmp / "none.yaml").write_text("{}\n")
    warehouse = f"sqlite:///{tmp / 'warehouse.db'}"
    database, db_url = prefect_pg_database
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "USEROPS_"))}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_DATABASE_CONNECTION_URL=db_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",  # no 02:00 runs appearing mid-test
        PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS="2",
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_LOGGING_EXTRA_LOGGERS="userops",
        DO_NOT_TRACK="1",
        GX_ANALYTICS_ENABLED="false",
        PYTHONUNBUFFERED="1",
        USEROPS_LANGUAGE="en",
        USEROPS_DATABASE_URL=warehouse,
        USEROPS_OUTPUT_DIR=str(tmp / "output"),
        USEROPS_CONFIG_FILE=str(tmp / "none.yaml"),
        USEROPS_CRM__URL=ops_sample.url,
        USEROPS_ORDERS__URL=ops_sample.url,
        USEROPS_CRM__BACKOFF_SECONDS="0.01",
        USEROPS_ORDERS__BACKOFF_SECONDS="0.01",
        USEROPS_CRM__PAGE_SIZE="500",
        USEROPS_ORDERS__PAGE_SIZE="500",
    )
    proc = subprocess.Popen(
        [USEROPS, "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    o = Ops(f"http://127.0.0.1:{port}/api", f"http://127.0.0.1:{port}", home, proc, warehouse, ops_sample.url, database, serve_env=env)
    ready = threading.Event()

    def pump():
        for line in proc.stdout:
            o.lines.append(line.rstrip("\n"))
            if READY in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 300
    while not ready.is_set() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        if not ready.is_set():
            time.sleep(0.5)
            pytest.fail(f"userops serve did not get ready (exit code {proc.poll()}):\n{o.output}\n{_tail(home / 'server.log')}")
        yield o
    finally:
        _stop(proc)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return ""


def _stop(proc: subprocess.Popen) -> None:
    """Stop serve (Ctrl-C) if a test did not already; then anything it left behind."""
    import signal

    import psutil

    if proc.poll() is not None:
        return
    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        kids = []
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for k in kids:
        try:
            if k.is_running():
                k.kill()
        except psutil.Error:
            pass


def run_id_from_cli(output: str) -> str:
    m = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert m, f"no flow run id in `prefect deployment run` output:\n{output}"
    return m.group(1)
