"""The Prefect UI speaks the shop's language: the Run forms of the deployments (titles and
descriptions decided when the deployment's schema is built, not when the flows were imported),
the crisis pause forms (when the run pauses), the flows' and the churn model's run-log lines,
and the digest's stage names (the tags catalogue's). In-process, no server, well under a second."""
from __future__ import annotations

import importlib
import logging
from datetime import date, datetime
from types import SimpleNamespace

import pytest

from userops.deploy import load_prefect_yaml
from userops.i18n import t

ENTRYPOINTS = sorted({d["entrypoint"] for d in load_prefect_yaml()["deployments"]})


@pytest.fixture
def language(monkeypatch):
    """Set the shop's language (``USEROPS_LANGUAGE``) for what follows; settings reset after."""
    from userops.settings import reset_settings

    def set_language(lang: str) -> None:
        monkeypatch.setenv("USEROPS_LANGUAGE", lang)
        reset_settings()

    yield set_language
    monkeypatch.delenv("USEROPS_LANGUAGE", raising=False)
    reset_settings()


def _flow(entrypoint: str):
    path, func = entrypoint.split(":")
    return getattr(importlib.import_module(path[:-3].replace("/", ".")), func)


def _deployed_schema(flow) -> dict:
    """What ``prefect deploy`` stores as the deployment's parameter_openapi_schema
    (prefect/cli/deploy/_core.py: ``parameter_schema(flow)``, called while deploying)."""
    from prefect.utilities.callables import parameter_schema

    return parameter_schema(flow).model_dump_for_openapi()


def test_run_forms_are_titled_in_the_language_of_the_deploy(language):
    for e in ENTRYPOINTS:
        _flow(e)  # imported in the default language (zh-CN) ...
    seen = {}
    for lang in ("en", "zh-CN"):  # ... and deployed in each language in turn
        language(lang)
        for e in ENTRYPOINTS:
            for name, spec in _deployed_schema(_flow(e))["properties"].items():
                where = f"{e}: {name} ({lang})"
                assert spec["title"] != name, f"{where}: the form's title is the parameter's name"
                seen.setdefault((e, name), {})[lang] = (spec["title"], spec["description"])
    assert seen, "no deployed flow has parameters?"
    for (e, name), by_lang in seen.items():
        assert by_lang["zh-CN"] != by_lang["en"], f"{e}: {name} reads the same in both languages"
    # the words are the catalogue's, e.g. the crisis form an operator fills in by hand
    crisis = {n: seen[("flows/crisis.py:crisis_response", n)] for n in ("skus", "reason", "severity", "unknown_ok")}
    assert crisis["reason"]["zh-CN"] == (t("param.crisis.reason.title", "zh-CN"), t("param.crisis.reason.description", "zh-CN"))
    assert crisis["reason"]["zh-CN"][0] == "事件原因" and crisis["reason"]["en"][0] == "What happened"
    assert "输入错误" in crisis["unknown_ok"]["zh-CN"][1] and "typo" in crisis["unknown_ok"]["en"][1]
    night = {n: seen[("flows/nightly.py:nightly", n)]["zh-CN"][0] for n in ("as_of", "full_refresh")}
    assert night == {"as_of": "业务日期", "full_refresh": "全量刷新"}
    for (_, _), by_lang in seen.items():  # full-width punctuation in zh-CN, as the catalogue's other texts
        zh = by_lang["zh-CN"][1]
        assert not any(p in zh for p in ("(", ")", ":", ";")), zh


def test_run_form_keeps_its_types_and_the_flow_still_validates(language):
    """The annotation only adds words: types, choices, defaults and validation are Prefect's as before."""
    from flows.crisis import crisis_response
    from flows.nightly import nightly

    language("zh-CN")
    props = _deployed_schema(crisis_response)["properties"]
    assert props["severity"]["enum"] == ["low", "medium", "high", "critical"] and props["severity"]["default"] == "high"
    assert props["skus"]["type"] == "array" and props["unknown_ok"]["default"] is False
    assert [p["position"] for p in props.values()] == [0, 1, 2, 3]
    assert crisis_response.validate_parameters({"skus": ["SKU-1"], "reason": "x"}) == {
        "skus": ["SKU-1"], "reason": "x", "severity": "high", "unknown_ok": False}
    assert nightly.validate_parameters({"as_of": "2026-12-01"})["as_of"] == date(2026, 12, 1)


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_pause_forms_are_in_the_language_of_the_run(lang, language):
    """What Prefect stores for the UI when the run pauses (RunInput.asave: create_v2_schema of
    the form with its initial data) is titled and described in the run's language; the
    names and the non-blank name rule are unchanged."""
    from prefect._internal.pydantic.v2_schema import create_v2_schema

    from flows.crisis import CoreReview, StatementApproval

    language(lang)
    forms = {
        "statement": StatementApproval.with_initial_data(description="d", statement="草稿"),
        "review": CoreReview.with_initial_data(description="d"),
    }
    for prefix, form in forms.items():
        schema = create_v2_schema(form.__name__, model_base=form)
        for name, spec in schema["properties"].items():
            assert spec["title"] == t(f"form.{prefix}.{name}.title", lang), (prefix, name)
            assert spec["description"] == t(f"form.{prefix}.{name}.description", lang), (prefix, name)
        who = "approver" if prefix == "statement" else "reviewer"
        assert schema["required"] == [who]
        assert schema["properties"][who]["minLength"] == 1 and schema["properties"][who]["pattern"] == r"\S"
    statement = create_v2_schema("StatementApproval", model_base=forms["statement"])["properties"]["statement"]
    assert statement["default"] == "草稿"  # the draft to edit, and (no longer lost by with_initial_data) its description
    if lang == "zh-CN":
        assert statement["title"] == "官方声明"
    # the resume answers keep their field names
    assert forms["statement"](statement="s", approve=True, approver=" pr ").approver == "pr"


def test_joining_a_running_incident_is_logged_in_the_operators_language(language, monkeypatch):
    import flows.crisis as crisis

    language("zh-CN")
    monkeypatch.setattr(crisis, "get_engine", lambda: None)
    monkeypatch.setattr(crisis, "finish_left_work_task", lambda incident_id: {})
    monkeypatch.setattr(crisis, "joined_skus", lambda engine, incident_id, skus: ["SKU-2", "SKU-3"])
    monkeypatch.setattr(crisis, "enqueue_alert", lambda *a, **k: 1)
    logged = []
    logger = SimpleNamespace(info=lambda msg, *a: logged.append(msg % a if a else msg))
    inc = {"incident_id": "INC-1", "opened_at": datetime(2026, 12, 1, 10, 0)}
    crisis._join_running_incident(inc, ["SKU-2"], "run-9", "漏水", logger)
    assert logged == ["已加入事件 INC-1（由运行 run-9 推进）；新加入的 SKU：SKU-2，SKU-3"]
    monkeypatch.setattr(crisis, "joined_skus", lambda engine, incident_id, skus: [])
    language("en")
    logged.clear()
    crisis._join_running_incident(inc, ["SKU-2"], "run-9", "leak", logger)
    assert logged == ["Joined incident INC-1 (driven by flow run run-9); new SKUs: none"]
    for lang in ("zh-CN", "en"):
        assert "INC-1" in t("log.crisis.take_over", lang, incident_id="INC-1")


def test_drift_is_logged_in_the_operators_language(language, monkeypatch, caplog):
    import tasks.alerts
    from models import scoring

    language("zh-CN")
    monkeypatch.setattr(scoring, "bulk_upsert", lambda *a, **k: 1)
    monkeypatch.setattr(tasks.alerts, "enqueue_alert", lambda *a, **k: 1)
    scored = SimpleNamespace(as_of=date(2026, 12, 1), model_version="churn-v7")
    summary = {"breached": ["recency_days", "frequency"], "max_psi": 0.41, "psi": {"recency_days": 0.41, "frequency": 0.3},
               "message": "Drift: 2 of 9 monitored inputs moved beyond PSI 0.2 (worst: recency_days at 0.41)."}
    with caplog.at_level(logging.INFO, logger="userops.churn"):
        assert scoring._raise_drift(None, scored, summary, 0.2, None) == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "userops.churn"]
    assert "流失模型 churn-v7 在 2026-12-01 发生漂移：recency_days，frequency 的 PSI 超过阈值 0.2（最大 0.41）；已记录健康异常并排队告警" in lines
    assert not [line for line in lines if "drift on" in line]  # the English line it replaces


def test_the_registrys_english_verdict_is_not_an_operator_log_line(monkeypatch, caplog):
    """The flows log a training's outcome in the operator's words (log.churn.model); the
    registry's English sentence stays at debug level for engineers."""
    from models import registry, scoring

    model = SimpleNamespace(version="churn-v8", train_cutoff=1, eval_cutoff=2, horizon_days=60, n_train=10, local_date=lambda x: x)
    decision = SimpleNamespace(reason="Promoted: beats the champion on the holdout.", as_dict=lambda: {"version": "churn-v8"})
    monkeypatch.setattr(scoring, "train", lambda *a, **k: model)
    monkeypatch.setattr(registry, "register", lambda *a, **k: decision)
    with caplog.at_level(logging.INFO, logger="userops.churn"):
        scoring.train_and_register(None, SimpleNamespace(orders=None, customers=None, as_of=date(2026, 12, 1)))
    assert not [r for r in caplog.records if r.name == "userops.churn" and r.levelno >= logging.INFO]


def test_digest_stage_names_are_the_tags_catalogues(monkeypatch):
    """One source: the digest's stage names follow the tags catalogue (tags.stage.*)."""
    import userops.i18n as i18n
    from tasks.alerts.messages import STAGE_LABELS, label

    for stage in ("prospect", "new", "active", "loyal", "silent", "churned"):
        for lang in ("zh-CN", "en"):
            assert label(STAGE_LABELS, stage, lang) == t(f"tags.stage.{stage}", lang)
    assert label(STAGE_LABELS, "unknown-stage", "zh-CN") == "unknown-stage" and label(STAGE_LABELS, None, "en") == "—"
    # a word changed in the tags catalogue is the digest's word too
    monkeypatch.setitem(i18n._CATALOG, "tags.stage.silent", {"zh-CN": "沉睡", "en": "dormant"})
    assert label(STAGE_LABELS, "silent", "zh-CN") == "沉睡" and label(STAGE_LABELS, "silent", "en") == "dormant"
