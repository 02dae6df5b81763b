"""What the operator's terminal shows when a run fails or the Prefect server is not there:
the operator message (which step, why, what to do, where the details are) and a non-zero
exit, never a traceback. The commands run as the operator runs them (a subprocess, Prefect's
own temporary server, the fake Slack webhook on loopback)."""
from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.slack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
USEROPS = str(Path(sys.executable).parent / "userops")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory):
    """One Prefect home for the module: its temporary server's database is set up once."""
    return tmp_path_factory.mktemp("prefect-home")


@pytest.fixture
def _userops(prefect_home):
    return lambda tmp_path, *args, **kw: _run_userops(prefect_home, tmp_path, *args, **kw)


def _run_userops(prefect_home, tmp_path, *args, timeout=240, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("USEROPS_", "PREFECT_"))}
    # the test's own output folder: the project's belongs to the operator (its demo recorded this
    # test's direct-post journal as a real alert)
    base.update(PREFECT_HOME=str(prefect_home), USEROPS_ALERTS__USE_BLOCKS="false", USEROPS_LANGUAGE="zh-CN",
                USEROPS_OUTPUT_DIR=str(tmp_path / "out"))
    base.update(env)
    res = subprocess.run([USEROPS, *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=timeout)
    return res.returncode, res.stdout + res.stderr, res.stderr


@pytest.fixture
def api_url(prefect_server):
    """The session's Prefect server, for the runs below: without PREFECT_API_URL each `run
    nightly` starts Prefect's temporary server first (~10 s; test_run_nightly_without_a_prefect_server
    covers that branch's message)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value()


@pytest.mark.slow
@pytest.mark.xdist_group("prefect")
def test_run_nightly_with_the_warehouse_down(tmp_path, _userops, api_url):
    with FakeSlack() as slack:
        rc, out, err = _userops(tmp_path, "run", "nightly", USEROPS_SLACK_WEBHOOK_URL=slack.url, PREFECT_API_URL=api_url,
                                USEROPS_DATABASE_URL=f"postgresql://ops:pw@127.0.0.1:{_closed_port()}/shop")
    assert rc == 1
    assert "Traceback" not in out
    assert "夜间任务失败：连不上数据仓库" in err and "请检查 USEROPS_DATABASE_URL" in err and "/runs/flow-run/" in err
    assert ":pw@" not in out and slack.token not in out
    # the failure alert reached the channel although the outbox is unreachable, and the log says so
    assert len(slack.received) == 1 and "流程失败：nightly" in slack.received[0]["text"]
    assert "直接发送到 slack" in out
    # journaled in the run's output folder, to be recorded once the warehouse is back
    assert [p.suffix for p in (tmp_path / "out" / "alerts" / "direct").iterdir()] == [".json"]
    assert "留在发件箱" not in out and "stay in the outbox" not in out


@pytest.mark.slow
@pytest.mark.xdist_group("prefect")
def test_run_nightly_without_a_source_url(tmp_path, _userops, api_url):
    with FakeSlack() as slack:
        rc, out, err = _userops(tmp_path, "run", "nightly", USEROPS_SLACK_WEBHOOK_URL=slack.url, PREFECT_API_URL=api_url,
                                USEROPS_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}")
    assert rc == 1
    assert "Traceback" not in out
    assert "夜间任务失败：读取数据源出错" in err and "USEROPS_CRM__URL" in err and "/runs/flow-run/" in err
    digest = next(p["text"] for p in slack.received if "夜间摘要" in p["text"])
    assert "读取数据源失败：" in digest
    human = digest.split("需要人工处理", 1)[1]
    assert "夜间任务失败（读取数据源）" in human and "USEROPS_CRM__URL" in human
    assert "\n- 无" not in human


@pytest.mark.parametrize("command", [["alert", "automation"], ["alert", "register-blocks"]])
def test_alert_commands_without_a_prefect_server(tmp_path, _userops, command):
    url = f"http://127.0.0.1:{_closed_port()}/api"
    rc, out, err = _userops(tmp_path, *command, timeout=120, PREFECT_API_URL=url, USEROPS_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}")
    assert rc == 1
    assert "Traceback" not in out and "ConnectError: [Errno" not in out
    assert f"连不上 Prefect 服务器 {url}" in err and "`userops serve`" in err


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_run_nightly_without_a_prefect_server(tmp_path, _userops, lang):
    """PREFECT_API_URL names a server that is not there: one line (the alert commands' words,
    and that unsetting PREFECT_API_URL runs the night on a temporary local server), exit 1;
    it ended with an httpx traceback."""
    url = f"http://127.0.0.1:{_closed_port()}/api"
    rc, out, err = _userops(tmp_path, "run", "nightly", timeout=120, PREFECT_API_URL=url, USEROPS_LANGUAGE=lang,
                            USEROPS_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}")
    assert rc == 1
    assert "Traceback" not in out and "ConnectError: [Errno" not in out and "Failed to reach API" not in out
    (line,) = err.strip().splitlines()
    if lang == "zh-CN":
        assert line.startswith(f"连不上 Prefect 服务器 {url}（ConnectError）") and "`userops serve`" in line
        assert "或取消设置 PREFECT_API_URL，夜间任务会在临时的本地 Prefect 服务器上运行" in line
    else:
        assert line.startswith(f"The Prefect server is not reachable at {url} (ConnectError)") and "`userops serve`" in line
        assert "unset PREFECT_API_URL to run the night on a temporary local Prefect server" in line


def test_terminal_copy_of_a_log_line_has_no_traceback_the_run_log_keeps_it():
    from userops.cli.data import _console_without_tracebacks

    class Keep(logging.Handler):  # stands for Prefect's API log handler (the run log)
        def __init__(self):
            super().__init__()
            self.lines = []

        def emit(self, record):
            self.lines.append(self.format(record))

    logger = logging.getLogger("userops.test.console")
    logger.propagate = False
    terminal, run_log = io.StringIO(), Keep()
    logger.handlers = [logging.StreamHandler(terminal), run_log]
    try:
        with _console_without_tracebacks():
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("Encountered exception during execution")
        assert terminal.getvalue().strip() == "Encountered exception during execution"
        assert "Traceback" in run_log.lines[0] and "ValueError: boom" in run_log.lines[0]
        assert "format" not in vars(logger.handlers[0])  # restored after the command
    finally:
        logger.handlers = []
