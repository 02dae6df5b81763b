"""The run's link in the failure account and alerts is built from the Prefect API the run went
to (its host and port), not the default UI address: a server on port 4317 was linked at 4200.
With no lasting server (Prefect's temporary one) `userops run nightly` says so instead of
printing "…本次运行 None"."""
from __future__ import annotations

import types
import uuid

from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.alerts.failures import flow_run_link


def _state(run_id):
    """A failed nightly state as `_nightly_failed` reads it."""
    return types.SimpleNamespace(result=lambda raise_on_failure=True: RuntimeError("boom"), message="boom",
                                 state_details=types.SimpleNamespace(flow_run_id=run_id))


def _settings(monkeypatch, **env):
    from userops.settings import reset_settings

    monkeypatch.delenv("USEROPS_PREFECT_UI_URL", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    reset_settings()


def test_the_link_follows_the_api_url(monkeypatch):
    rid = str(uuid.uuid4())
    _settings(monkeypatch)
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4317/api"}):
        assert flow_run_link(rid) == f"http://127.0.0.1:4317/runs/flow-run/{rid}"
    with temporary_settings(updates={PREFECT_API_URL: "http://ops-server:4200/api/"}):
        assert flow_run_link(rid) == f"http://ops-server:4200/runs/flow-run/{rid}"
    _settings(monkeypatch, USEROPS_PREFECT_UI_URL="https://prefect.shop.example/")  # set: it wins
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4317/api"}):
        assert flow_run_link(rid) == f"https://prefect.shop.example/runs/flow-run/{rid}"


def test_run_nightly_failure_account_links_or_says_there_is_no_ui(monkeypatch, capsys):
    from userops.cli.data import _nightly_failed

    rid = str(uuid.uuid4())
    _settings(monkeypatch, USEROPS_LANGUAGE="zh-CN")
    with temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:4317/api"}):
        _nightly_failed(_state(rid))
    err = capsys.readouterr().err
    assert f"详情：Prefect 界面中的本次运行 http://127.0.0.1:4317/runs/flow-run/{rid}" in err and "4200" not in err
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        _nightly_failed(_state(rid))
    err = capsys.readouterr().err
    assert "None" not in err and "/runs/flow-run/" not in err
    assert "详情：本次运行在临时的本地 Prefect 服务器上" in err and "PREFECT_API_URL" in err
