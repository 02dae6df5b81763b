"""What an operator sees of each deployment in the Prefect UI, without a server: the Run
form built from the flow's signature and docstring (``Flow.parameters``, the schema
``prefect deploy`` sends)."""
from __future__ import annotations

import importlib
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
    schema = flow.parameters.model_dump()
    # what `prefect deploy` sends (prefect/cli/deploy/_core.py: parameter_schema(flow)) is the same
    assert parameter_schema(flow).model_dump() == schema
    defs = schema.get("definitions") or {}
    for name, spec in schema["properties"].items():
        where = f"{entrypoint}: parameter {name!r}"
        assert spec.get("title"), f"{where} has no title"
        assert (spec.get("description") or "").strip(), f"{where} has no description (Args: in the docstring, Google style)"
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
