"""prefect.yaml declares what DEVELOPING.md's contracts say, and the settings' overrides
apply (no Prefect server needed)."""
from __future__ import annotations

import importlib

import pytest

from userops.deploy import (
    PREFECT_YAML,
    deployable,
    entrypoint_problem,
    load_prefect_yaml,
    render_prefect_yaml,
    work_pool_name,
)
from userops.settings import Settings

CONFIG = load_prefect_yaml()
BY_NAME = {d["name"]: d for d in CONFIG["deployments"]}

# Parameters an operator must fill in by hand (no sensible default): what happened in a crisis.
REQUIRED_BY_DESIGN = {"crisis-response": {"skus", "reason"}, "alert-crashed-run": {"flow_run_ref"}}


def test_every_contract_flow_has_a_deployment_on_the_process_pool():
    entrypoints = {d["entrypoint"] for d in CONFIG["deployments"]}
    assert {
        "flows/nightly.py:nightly",
        "flows/churn.py:retrain_churn_model",
        "flows/monitor.py:hourly_monitor",
        "flows/campaigns.py:run_campaign",
        "flows/campaigns.py:recall_plan",
        "flows/crisis.py:crisis_response",
        "flows/alerts.py:alert_crashed_run",
        "flows/alerts.py:deliver_alerts",
    } <= entrypoints
    assert {d["parameters"]["name"] for d in CONFIG["deployments"] if d["entrypoint"].endswith(":run_campaign")} >= {"awakening", "retention", "recall"}
    assert len(BY_NAME) == len(CONFIG["deployments"]), "deployment names must be unique"
    assert {d["work_pool"]["name"] for d in CONFIG["deployments"]} == {"userops-pool"}
    assert work_pool_name(CONFIG, Settings()) == "userops-pool"
    for d in CONFIG["deployments"]:
        assert d.get("description"), f"{d['name']}: the UI shows a description"


def test_schedules_and_concurrency():
    nightly = BY_NAME["nightly"]
    assert nightly["schedules"] == [{"cron": "0 2 * * *", "timezone": "Asia/Shanghai", "slug": "nightly-0200"}]
    assert nightly["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    assert BY_NAME["weekly-retrain"]["schedules"][0]["cron"] == "0 5 * * 0"  # weekly
    assert BY_NAME["hourly-monitor"]["schedules"][0]["cron"] == "0 * * * *"  # hourly
    assert BY_NAME["hourly-monitor"]["concurrency_limit"]["collision_strategy"] == "CANCEL_NEW"
    assert BY_NAME["deliver-alerts"]["schedules"][0]["interval"] == 300  # every 5 minutes
    # the file and the setting that deploys it without prefect.yaml agree
    assert Settings().alerts.deliver_every_minutes * 60 == 300
    for name in ("awakening", "retention", "recall", "silent-share-recall", "crisis-response", "alert-crashed-run"):
        assert not BY_NAME[name].get("schedules"), f"{name} runs by hand or on its event"


def test_workers_run_the_flows_from_the_project_directory():
    (build,) = CONFIG["build"]
    assert build["prefect.deployments.steps.run_shell_script"] == {"id": "project-dir", "script": "pwd", "stream_output": False}
    assert CONFIG["pull"] == [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ project-dir.stdout }}"}}]


def test_event_triggers_template_their_parameters_from_the_payload():
    (recall,) = BY_NAME["silent-share-recall"]["triggers"]
    assert recall["match"] == {"prefect.resource.id": "userops.health"}
    assert recall["expect"] == ["userops.health.silent-share-high"]
    assert recall["parameters"] == {"silent_share": "{{ event.payload.silent_share }}", "as_of": "{{ event.payload.as_of }}"}

    (spike,) = BY_NAME["crisis-response"]["triggers"]
    assert spike["match"] == {"prefect.resource.id": "userops.sku.*"}
    assert spike["expect"] == ["userops.complaints.spike"]
    assert spike["parameters"]["skus"] == "{{ event.payload.skus }}"  # one expression: the list stays a list


def test_crisis_trigger_matches_the_crisis_modules_own_definition():
    import flows.crisis as crisis

    (spike,) = BY_NAME["crisis-response"]["triggers"]
    own = crisis.SPIKE_TRIGGER
    assert {k: spike[k] for k in ("match", "expect", "parameters")} == {k: own[k] for k in ("match", "expect", "parameters")}


def test_spike_triggers_reason_reads_in_the_shop_language():
    """The trigger's reason stays one fixed text (the run's parameter, the incident's record);
    rendered from an event the way Prefect renders it, the crisis module recognises it and
    shows it in the operator's language (alerts, report, incident list)."""
    from types import SimpleNamespace

    from prefect.server.utilities.user_templates import render_user_template_sync

    from tasks.crisis.spike import reason_text

    (spike,) = BY_NAME["crisis-response"]["triggers"]
    event = SimpleNamespace(payload={"skus": ["SKU0007"], "complaints": 12, "window_hours": 2.0})  # as the monitor emits it
    reason = render_user_template_sync(spike["parameters"]["reason"], {"event": event})
    assert reason == "complaint spike: 12 complaints in 2.0h"
    assert reason_text(reason, "zh-CN") == "投诉激增：2 小时内 12 条投诉"
    assert reason_text(reason, "en") == "Complaint spike: 12 complaints in 2h"
    # as test_ops sees it when the event says 2 (an int)
    assert reason_text("complaint spike: 12 complaints in 2h", "zh-CN") == "投诉激增：2 小时内 12 条投诉"


def _flow(entrypoint: str):
    path, func = entrypoint.split(":")
    return getattr(importlib.import_module(path[:-3].replace("/", ".")), func)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_run_form_explains_itself(name):
    """Every parameter has a description (from the flow's docstring, ``Args:``) and a default,
    unless the deployment or its trigger sets it or the operator must say it."""
    from prefect.utilities.callables import parameter_schema

    d = BY_NAME[name]
    problem = entrypoint_problem(d["entrypoint"])
    assert problem is None, f"{name}: {problem}"  # every flow is written: one that does not load is a failure
    schema = parameter_schema(_flow(d["entrypoint"])).model_dump()
    for param, spec in schema["properties"].items():
        assert spec.get("description"), f"{d['entrypoint']}: parameter {param!r} has no description (add it under Args: in the docstring)"
    given = set(d.get("parameters") or {})
    for trig in d.get("triggers") or []:
        unknown = set(trig.get("parameters") or {}) - set(schema["properties"])
        assert not unknown, f"{name}: trigger sets unknown parameters {unknown}"
    required = set(schema.get("required") or []) - given - REQUIRED_BY_DESIGN.get(name, set())
    assert not required, f"{name}: parameters without a default: {required}"
    assert set(d.get("parameters") or {}) <= set(schema["properties"])


def test_settings_override_timezone_crons_and_work_pool(monkeypatch):
    s = Settings(
        timezone="Europe/Berlin",
        deploy={"nightly_cron": "30 1 * * *", "retrain_cron": "0 4 * * 6", "monitor_cron": "*/30 * * * *", "work_pool": "ops-pool"},
    )
    out = {d["name"]: d for d in render_prefect_yaml(CONFIG, s)["deployments"]}
    assert out["nightly"]["schedules"][0] == {"cron": "30 1 * * *", "timezone": "Europe/Berlin", "slug": "nightly-0200"}
    assert out["weekly-retrain"]["schedules"][0]["cron"] == "0 4 * * 6"
    assert out["hourly-monitor"]["schedules"][0]["cron"] == "*/30 * * * *"
    assert {d["work_pool"]["name"] for d in out.values()} == {"ops-pool"}
    s3 = Settings(alerts={"deliver_every_minutes": 15})
    assert {d["name"]: d for d in render_prefect_yaml(CONFIG, s3)["deployments"]}["deliver-alerts"]["schedules"][0]["interval"] == 900
    assert out["nightly"]["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
    # an explicit schedule timezone wins over the shop's
    s2 = Settings(timezone="Europe/Berlin", deploy={"schedule_timezone": "UTC"})
    assert render_prefect_yaml(CONFIG, s2)["deployments"][0]["schedules"][0]["timezone"] == "UTC"
    # env vars reach the same fields
    monkeypatch.setenv("USEROPS_DEPLOY__NIGHTLY_CRON", "15 3 * * *")
    assert render_prefect_yaml(CONFIG, Settings())["deployments"][0]["schedules"][0] == {"cron": "15 3 * * *", "timezone": "Asia/Shanghai", "slug": "nightly-0200"}
    # the file itself is untouched
    assert load_prefect_yaml(PREFECT_YAML) == CONFIG


def test_every_deployment_of_prefect_yaml_loads():
    """Every flow exists: a flow file that does not import (a syntax error, a missing module)
    must fail here, not drop out of the deployments quietly."""
    ready, skipped = deployable(render_prefect_yaml(CONFIG))
    assert skipped == []
    assert [d["name"] for d in ready["deployments"]] == [d["name"] for d in CONFIG["deployments"]]


def test_flows_not_written_yet_are_skipped_with_a_reason():
    cfg = {
        "deployments": [
            {"name": "ok", "entrypoint": "flows/nightly.py:nightly"},
            {"name": "no-file", "entrypoint": "flows/does_not_exist.py:f"},
            {"name": "no-func", "entrypoint": "flows/nightly.py:no_such_flow"},
            {"name": "not-a-flow", "entrypoint": "flows/nightly.py:migrate"},
        ]
    }
    ready, skipped = deployable(cfg)
    assert [d["name"] for d in ready["deployments"]] == ["ok"]
    assert dict(skipped) == {
        "no-file": "flows/does_not_exist.py does not exist yet",
        "no-func": "flows/nightly.py has no 'no_such_flow' yet",
        "not-a-flow": "flows/nightly.py:migrate is not a Prefect flow",
    }


def test_served_flows_link_to_this_servers_ui(monkeypatch):
    """Alert and digest links point at the UI of the server `userops serve` started (its
    port; the machine's name when it listens on every address), unless the operator set one."""
    import socket

    from userops.cli.serve import _ui_env
    from userops.settings import reset_settings

    monkeypatch.delenv("USEROPS_PREFECT_UI_URL", raising=False)
    reset_settings()
    assert _ui_env("http://127.0.0.1:4311/api") == {"USEROPS_PREFECT_UI_URL": "http://127.0.0.1:4311"}
    assert _ui_env("http://0.0.0.0:4200/api") == {"USEROPS_PREFECT_UI_URL": f"http://{socket.getfqdn()}:4200"}
    monkeypatch.setenv("USEROPS_PREFECT_UI_URL", "https://prefect.shop.example")
    reset_settings()
    assert _ui_env("http://127.0.0.1:4311/api") == {}
    reset_settings()


def test_serve_refuses_a_second_set_up_on_the_same_prefect_home(tmp_path, monkeypatch):
    """A second `userops serve` (another --port) on the same PREFECT_HOME would run a second
    server and worker on one Prefect database and work pool: it is refused, naming the first."""
    import json
    import subprocess
    import sys

    from typer.testing import CliRunner

    from userops.cli import app
    from userops.cli.serve import _running_serve

    home = tmp_path / "home"
    home.mkdir()
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "serve"])
    try:
        (home / "userops-serve.json").write_text(json.dumps({"pid": first.pid, "url": "http://127.0.0.1:4311"}))
        assert _running_serve(home)["pid"] == first.pid
        monkeypatch.setenv("PREFECT_HOME", str(home))
        monkeypatch.setenv("USEROPS_LANGUAGE", "en")
        from userops.settings import reset_settings

        reset_settings()
        res = CliRunner().invoke(app, ["serve", "--port", "4312"])
        assert res.exit_code == 1 and "already runs" in res.output and str(first.pid) in res.output and "4311" in res.output
    finally:
        first.kill()
        first.wait()
    assert _running_serve(home) is None  # that process is gone: a new serve may start
    reset_settings()


def test_a_process_log_tail_is_its_own(tmp_path):
    """The log is appended to by every run: a failure shows this process's lines only."""
    import sys

    from userops.deploy import _Proc

    log = tmp_path / "server.log"
    log.write_text("an earlier server's traceback\n")
    p = _Proc([sys.executable, "-c", "print('Port 4313 is already in use')"], dict(__import__("os").environ), log).start()
    p.proc.wait(30)
    assert p.log_tail() == "Port 4313 is already in use"


def test_deployment_descriptions_in_the_shop_language():
    """The Deployments page describes each deployment in the shop's language (`userops serve`
    renders prefect.yaml); the catalogue's English is prefect.yaml's own text, so the two cannot
    drift apart, and every deployment has both."""
    from userops.i18n import t

    zh = {d["name"]: d["description"] for d in render_prefect_yaml(CONFIG, Settings(language="zh-CN"))["deployments"]}
    en = {d["name"]: d["description"] for d in render_prefect_yaml(CONFIG, Settings(language="en"))["deployments"]}
    assert set(zh) == set(BY_NAME)
    for name, d in BY_NAME.items():
        assert en[name] == " ".join(str(d["description"]).split()), name
        assert zh[name] == t(f"deploy.description.{name}", "zh-CN") and zh[name] != en[name], name
        assert not any(w in zh[name] for w in ("The ", "Runs ", "campaign", "every ")), (name, zh[name])
    assert zh["nightly"].startswith("夜间任务：") and "02:00" in zh["nightly"]
