"""The Prefect-UI audit of the crisis flow, without a server: the pause forms insist on a
name (every step records who did it), the SKU check shared by the CLI and the flow, the
spike trigger's unknown_ok, the catalogued wait/timeout lines saying where to act, and the
best-effort replacement of the run's reason parameter."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.crisis.conftest import shop


@pytest.mark.parametrize("form, field, others", [
    ("StatementApproval", "approver", {"statement": "声明", "approve": True}),
    ("CoreReview", "reviewer", {"approve": True}),
])
def test_pause_forms_refuse_an_empty_name(form, field, others):
    import flows.crisis as crisis
    from prefect.utilities.schema_tools import validate as schema_validate  # what the server's resume runs

    from userops.settings import get_settings
    from prefect.utilities.schema_tools.validation import ValidationError as SchemaError

    cls = getattr(crisis, form)
    for empty in ("", "   "):
        with pytest.raises(ValidationError):
            cls(**others, **{field: empty})
    with pytest.raises(ValidationError):
        cls(**others)  # no name at all
    assert getattr(cls(**others, **{field: "  pr-zhao "}), field) == "pr-zhao"
    # what Prefect's resume validates the answer against (and the UI's form shows): required, non-blank
    schema = cls.model_json_schema()
    assert field in schema["required"]
    spec = schema["properties"][field]
    assert spec["minLength"] == 1 and spec["pattern"] == r"\S"
    assert ("audit log" if get_settings().language == "en" else "审计日志") in spec["description"]
    for empty in ("", "  "):
        with pytest.raises(SchemaError):
            schema_validate({**others, field: empty}, schema, raise_on_error=True)
    schema_validate({**others, field: "pr-zhao"}, schema, raise_on_error=True)


def test_unknown_skus_is_the_one_check(warehouse):
    from tasks.crisis.incidents import unknown_skus

    shop(warehouse, {"C1": "ordinary"}, sku="SKU-1", other_sku="SKU-2")
    assert unknown_skus(warehouse, ["SKU-2", "SKU-I", "SKU-1", "SKU-0"]) == ["SKU-0", "SKU-I"]
    assert unknown_skus(warehouse, "SKU-1") == []


def test_spike_trigger_opens_for_complained_skus_without_orders():
    import flows.crisis as crisis

    assert crisis.SPIKE_TRIGGER["parameters"]["unknown_ok"] is True
    from prefect.utilities.callables import parameter_schema  # what `prefect deploy` stores

    from userops.i18n import t

    form = parameter_schema(crisis.crisis_response).model_dump()["properties"]["unknown_ok"]
    assert form["default"] is False and form["description"] == t("param.crisis.unknown_ok.description")
    assert "typo" in t("param.crisis.unknown_ok.description", "en") and "输入错误" in t("param.crisis.unknown_ok.description", "zh-CN")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_wait_and_timeout_lines_are_catalogued_and_say_where_to_act(lang):
    import tasks.crisis.messages  # noqa: F401
    from userops.i18n import t

    iid = "INC-20261120-1400-AB12"
    wait = t("crisis.wait.statement", lang, incident_id=iid, due="2026-11-20 18:00", until="2026-11-21 10:00")
    review = t("crisis.wait.review", lang, incident_id=iid, n=3, due="2026-11-21 14:00", until="2026-11-21 14:00")
    assert "Resume" in wait and f"userops incident approve {iid} --statement" in wait
    assert "Resume" in review and f"userops incident approve {iid} --core" in review
    assert f"userops incident approve {iid} --statement" in t("crisis.timeout.statement", lang, incident_id=iid)
    assert f"userops incident approve {iid} --core" in t("crisis.timeout.review", lang, incident_id=iid)
    unknown = t("crisis.unknown_sku", lang, skus="SKU-I", unknown_ok=t("param.crisis.unknown_ok.title", lang))
    assert "SKU-I" in unknown and t("param.crisis.unknown_ok.title", lang) in unknown
    if lang == "zh-CN":  # full-width punctuation
        assert "（均为店铺时间）" in wait and "（均为店铺时间）" in review and "SKU：SKU-I" in unknown


def test_replacing_the_reason_parameter_is_best_effort(monkeypatch):
    """Prefect refusing the parameters' replacement is logged with what to do, never fails the run."""
    import logging

    import prefect.client.orchestration as orchestration

    from flows.crisis import _replace_reason_parameter
    from userops.i18n import t

    def refuse(*a, **k):
        raise ConnectionError("server gone")

    monkeypatch.setattr(orchestration, "get_client", refuse)
    logged = []
    logger = logging.getLogger("test.crisis.params")
    monkeypatch.setattr(logger, "warning", lambda msg, *a: logged.append(msg))
    fr = "00000000-0000-0000-0000-000000000001"
    _replace_reason_parameter(fr, "顾客 138****78", logger)  # no exception
    assert logged == [t("crisis.reason.param_kept", error="ConnectionError", flow_run_id=fr)]
    assert f"prefect flow-run delete {fr}" in logged[0]
