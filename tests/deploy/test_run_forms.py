"""What an operator sees of each deployment in the Prefect UI, without a server: the Run
form built from the flow's signature and docstring (``Flow.parameters``, the schema
``prefect deploy`` sends), and the names runs get in the run list."""
from __future__ import annotations

import importlib
from datetime import date

import pytest

from userops.deploy import load_prefect_yaml

CONFIG = load_prefect_yaml()
ENTRYPOINTS = sorted({d["entrypoint"] for d in CONFIG["deployments"]})

# parameters whose values are a fixed set: the form shows them as choices
CHOICES = {"channel": {"email", "sms", "push", "staff"}, "severity": {"low", "medium", "high", "critical"}}
# parameters that are a business day: the form shows a date picker
DAYS = {"as_of"}


def _flow(entrypoint: str):
    path, func = entrypoint.split(":")
    return getattr(importlib.import_module(path[:-3].replace("/", ".")), func)


def _options(spec: dict) -> list[dict]:
    """The typed alternatives of a property (``X | None`` is anyOf [X, null])."""
    alts = spec.get("anyOf") or spec.get("allOf") or [spec]
    return [a for a in alts if a.get("type") != "null"]


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_every_parameter_has_a_title_a_description_and_a_type(entrypoint):
    from prefect.utilities.callables import parameter_schema

    flow = _flow(entrypoint)
    # what `prefect deploy` sends (prefect/cli/deploy/_core.py: parameter_schema(flow), built while
    # deploying); Flow.parameters is the same form built at import, its words in the language of
    # that moment (tests/deploy/test_forms_language.py)
    schema = parameter_schema(flow).model_dump()
    words = ("title", "description")
    assert {n: {k: v for k, v in p.items() if k not in words} for n, p in schema["properties"].items()} == \
        {n: {k: v for k, v in p.items() if k not in words} for n, p in flow.parameters.model_dump()["properties"].items()}
    defs = schema.get("definitions") or {}
    for name, spec in schema["properties"].items():
        where = f"{entrypoint}: parameter {name!r}"
        assert spec.get("title"), f"{where} has no title"
        assert spec.get("title") != name, f"{where} is titled with its name (annotate it with userops.forms.param)"
        assert (spec.get("description") or "").strip(), f"{where} has no description (param.<flow>.<name>.description in flows/texts.py)"
        opts = _options(spec)
        assert opts, f"{where} has no type"
        for opt in opts:
            if "$ref" in opt:
                opt = defs.get(opt["$ref"].rsplit("/", 1)[-1], {})
            assert opt.get("type") or opt.get("enum"), f"{where} is untyped (Any): the form shows a raw JSON box"
        if name in CHOICES:
            enums = [set(o["enum"]) for o in opts if "enum" in o]
            assert enums == [CHOICES[name]], f"{where}: the form should offer the choices {sorted(CHOICES[name])}"
        if name in DAYS:
            assert [o.get("format") for o in opts] == ["date"], f"{where}: a business day should be a date (date picker), got {opts}"


@pytest.mark.parametrize("entrypoint", ENTRYPOINTS)
def test_every_operator_flow_names_its_runs(entrypoint):
    """Runs are found in the UI's run list by their name: not a random 'clever-otter'."""
    assert _flow(entrypoint).flow_run_name, f"{entrypoint}: no flow_run_name"


def _name(flow, params: dict, monkeypatch) -> str:
    import userops.run_names as rn

    monkeypatch.setattr(rn, "_parameters", lambda: params)
    return flow.flow_run_name()


def test_run_names(monkeypatch):
    from flows.alerts import alert_crashed_run, deliver_alerts
    from flows.campaigns import deliver_messages, recall_plan, run_campaign
    from flows.churn import retrain_churn_model
    from flows.crisis import crisis_response
    from flows.digest import nightly_digest
    from flows.monitor import hourly_monitor
    from flows.nightly import nightly

    monkeypatch.setenv("USEROPS_NOW", "2026-12-06T18:05:00")  # 02:05 on 7 December in Shanghai
    from userops.settings import reset_settings

    reset_settings()
    # a scheduled night (as_of empty) is named after the day it computes: today in the shop
    assert _name(nightly, {"as_of": None, "full_refresh": False}, monkeypatch) == "nightly-2026-12-07"
    assert _name(nightly, {}, monkeypatch) == "nightly-2026-12-07"
    assert _name(nightly, {"as_of": "2026-12-01", "full_refresh": True}, monkeypatch) == "nightly-2026-12-01-full-refresh"
    assert _name(nightly, {"as_of": date(2026, 12, 1)}, monkeypatch) == "nightly-2026-12-01"
    assert _name(retrain_churn_model, {"as_of": None}, monkeypatch) == "retrain-churn-model-2026-12-07"
    assert _name(run_campaign, {"name": "awakening", "channel": None, "as_of": None}, monkeypatch) == "campaign-awakening-2026-12-07"
    assert _name(run_campaign, {"name": "recall", "channel": "sms", "as_of": "2026-12-05"}, monkeypatch) == "campaign-recall-2026-12-05-sms"
    assert _name(recall_plan, {"silent_share": 0.38, "as_of": "2026-12-06"}, monkeypatch) == "recall-plan-2026-12-06"
    assert _name(recall_plan, {}, monkeypatch) == "recall-plan-2026-12-07"
    assert _name(crisis_response, {"skus": ["SKU-0042"], "reason": "王先生投诉 13800138000", "severity": "high"}, monkeypatch) == "crisis-high-SKU-0042"
    many = _name(crisis_response, {"skus": [f"SKU-{i}" for i in range(6)], "reason": "x"}, monkeypatch)
    assert many == "crisis-high-SKU-0,SKU-1,SKU-2+3"  # the reason (free text) never goes into the name
    assert _name(nightly_digest, {"as_of": date(2026, 12, 7), "run_id": "nightly-x"}, monkeypatch) == "nightly-digest-2026-12-07"
    assert _name(hourly_monitor, {}, monkeypatch) == "hourly-monitor-2026-12-07 02:05"
    assert _name(deliver_alerts, {}, monkeypatch) == "deliver-alerts-2026-12-07 02:05"
    assert _name(deliver_messages, {}, monkeypatch) == "deliver-messages-2026-12-07 02:05"
    assert _name(alert_crashed_run, {"flow_run_ref": "prefect.flow-run.1234abcd-0000"}, monkeypatch) == "alert-crashed-run-1234abcd-0000"
    # a name never fails a run: anything odd falls back to the flow's name
    monkeypatch.setattr("userops.run_names._parameters", lambda: (_ for _ in ()).throw(RuntimeError("no context")))
    assert nightly.flow_run_name() == "nightly"
    reset_settings()


def test_deployments_are_tagged_from_one_vocabulary():
    """Operators filter the UI's lists by tag: every deployment has tags, and one word per
    topic (``campaign`` and ``campaigns`` side by side would split the list)."""
    tags = {d["name"]: d.get("tags") or [] for d in CONFIG["deployments"]}
    for name, ts in tags.items():
        assert "userops" in ts and len(ts) >= 2, f"{name}: tags {ts}"
    every = {t for ts in tags.values() for t in ts}
    assert not {t for t in every if t + "s" in every}, f"singular and plural tags side by side: {sorted(every)}"
