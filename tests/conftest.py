"""Shared fixtures.

* ``db_url`` / ``warehouse``: every warehouse test runs twice, on a fresh SQLite file and
  on a fresh schema of the PostgreSQL server at ``USEROPS_TEST_POSTGRES_URL`` (default
  ``postgresql+psycopg2://postgres@127.0.0.1:5432/test``). An unreachable PostgreSQL
  FAILS the test (never a silent skip). ``sqlite_warehouse`` is the SQLite-only variant.
* ``prefect_server``: one real Prefect test server per test session (worker), ~20 s.
* ``sample_source``: the sample CRM + order system on loopback, pointed at by the settings.
"""
from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "userops")
# userops lines outside a flow run (a CLI command) stay on the terminal; not a warning each
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
# the test servers (the session's and those the deploy tests start) write received events every
# 0.5 s instead of 5: a test that waits for an event (spike, health breach, automation) waited
# up to 5 s for each
os.environ.setdefault("PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL", "0.5")
# the project's output/ folder is the operator's (the demo's warehouse, reports, call lists, the
# tags' frame files): a test that does not name its own output folder, or a process it starts,
# writes to this session's scratch folder instead (tag frame files from the tests were found in a
# clean clone's output/state after `make test`)
if "USEROPS_OUTPUT_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _scratch_output = tempfile.mkdtemp(prefix="userops-test-output-")
    os.environ["USEROPS_OUTPUT_DIR"] = _scratch_output
    atexit.register(shutil.rmtree, _scratch_output, ignore_errors=True)

# Prefect sets up its logging handlers on its first import, writing to the sys.stderr of that
# moment. Import it now, so that moment is never inside a CliRunner.invoke: the runner closes its
# captured stream afterwards, and every later log line of that worker became a "--- Logging
# error ---" traceback in the next CLI test's output.
from prefect import flow  # noqa: E402,F401  (prefect.main runs setup_logging on import)

PG_URL = os.environ.get("USEROPS_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


# xdist groups that may spread over the workers: the session Prefect test server starts once
# per worker (~20 s), far less than running every Prefect test on one worker (~9 min).
SPREAD_GROUPS = {"prefect"}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """``--dist loadgroup`` for pytest 9: pytest-xdist 3.8 tags each grouped test by setting
    ``item._nodeid`` to ``<nodeid>@<group>``, which pytest 9 no longer reads (the nodeid comes
    from ``item._id``), so every ``xdist_group`` was silently ignored: e.g. the deploy tests'
    session fixtures (``userops serve`` on PostgreSQL, two nightly runs) ran on both workers.
    Set it the way pytest 9 reads it — except for ``SPREAD_GROUPS``, which keep running on
    whichever worker is free (how the suite has run so far)."""
    if not getattr(config.option, "loadgroup", False):  # set on xdist workers with --dist loadgroup
        return
    from _pytest.nodeid import NodeId

    for item in items:
        if "@" in item.nodeid:  # xdist did it (a pytest that still reads _nodeid)
            continue
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")} - SPREAD_GROUPS)
        if names:
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


def _pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL schema for one test; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc.orig}); set USEROPS_TEST_POSTGRES_URL")
    try:
        yield _pg_schema_url(schema)
    finally:
        from userops.db import dispose_engines

        dispose_engines()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def _use_warehouse(url: str, monkeypatch, tmp_path):
    """A migrated, empty warehouse at ``url`` with settings pointing at it, for a fixture to
    ``yield from``; engines and settings are reset afterwards."""
    from userops.db import dispose_engines, get_engine, migrate
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_DATABASE_URL", url)
    monkeypatch.setenv("USEROPS_OUTPUT_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    reset_settings()
    dispose_engines()
    engine = get_engine(url)
    migrate(engine)
    yield engine
    dispose_engines()
    reset_settings()


@pytest.fixture
def warehouse(db_url, monkeypatch, tmp_path):
    """A migrated, empty warehouse (SQLite and PostgreSQL); settings point at it."""
    yield from _use_warehouse(db_url, monkeypatch, tmp_path)


@pytest.fixture
def sqlite_warehouse(monkeypatch, tmp_path):
    yield from _use_warehouse(f"sqlite:///{tmp_path / 'warehouse.db'}", monkeypatch, tmp_path)


@pytest.fixture
def pg_warehouse(pg_url, monkeypatch, tmp_path):
    """A migrated, empty PostgreSQL warehouse (for PostgreSQL-only tests); settings point at it."""
    yield from _use_warehouse(pg_url, monkeypatch, tmp_path)


@pytest.fixture
def shop_language(monkeypatch, tmp_path):
    """The shop's language for one test: no settings file, ``USEROPS_LANGUAGE`` unset (the
    default, zh-CN); call the fixture's value with a code ("en", "zh-CN") to switch."""
    from userops.settings import reset_settings

    (tmp_path / "none.yaml").write_text("{}\n")
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))
    monkeypatch.delenv("USEROPS_LANGUAGE", raising=False)
    reset_settings()

    def use(code: str) -> None:
        monkeypatch.setenv("USEROPS_LANGUAGE", code)
        reset_settings()

    yield use
    reset_settings()


@pytest.fixture(scope="session")
def prefect_server():
    """A real Prefect server for this test session (worker)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def sample_data():
    from userops.sample.generator import generate

    return generate(300, seed=3, as_of="2026-11-20")


@pytest.fixture
def sample_source(sample_data, monkeypatch):
    """The sample CRM + order system on loopback; settings point both sources at it."""
    from userops.sample.server import SampleServer
    from userops.settings import reset_settings

    with SampleServer(sample_data) as server:
        monkeypatch.setenv("USEROPS_CRM__URL", server.url)
        monkeypatch.setenv("USEROPS_ORDERS__URL", server.url)
        monkeypatch.setenv("USEROPS_CRM__BACKOFF_SECONDS", "0.01")
        monkeypatch.setenv("USEROPS_ORDERS__BACKOFF_SECONDS", "0.01")
        monkeypatch.setenv("USEROPS_CRM__PAGE_SIZE", "500")
        monkeypatch.setenv("USEROPS_ORDERS__PAGE_SIZE", "500")
        reset_settings()
        yield server
    reset_settings()


@pytest.fixture
def pg_linguistic_url():
    """A fresh PostgreSQL database whose default collation is ICU's en-US, a linguistic order
    ('apple' < 'Banana'; by character code 'Banana' comes first). Dropped afterwards."""
    name = f"t_icu_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
            )
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc.orig}); set USEROPS_TEST_POSTGRES_URL")
    try:
        yield sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        from userops.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
