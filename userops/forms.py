"""The forms an operator fills in in the Prefect UI, in the shop's language.

* **Run forms** (a deployment's *Run* ▸ *Custom run*): Prefect builds them from the flow's
  ``parameter_openapi_schema``, which ``prefect deploy`` (and so ``userops serve``) computes
  when it builds the deployment (``prefect.utilities.callables.parameter_schema``). Prefect
  titles every field with the parameter's name (``as_of``) and describes it with the
  docstring's ``Args:`` text, whatever ``Field(title=...)`` says; only a field's
  ``json_schema_extra`` is applied after them. So a flow parameter is annotated
  ``Annotated[date | None, param("param.nightly.as_of")]``: its title and description are the
  catalogue's ``<key>.title`` / ``<key>.description`` in ``settings.language`` **of the moment
  the schema is built** — the deployment's build, in the deploying process (``prefect deploy``
  reads the shop's settings: ``USEROPS_LANGUAGE`` or ``language`` in userops.yaml). A shop that
  changes its language sees the new words after the next deploy (``userops serve`` deploys on
  every start). The docstring's ``Args:`` stay for engineers; the form does not show them.
* **Pause forms** (the crisis flow's statement approval and core review, ``RunInput``
  classes): ``model_config = ConfigDict(json_schema_extra=form_texts("form.statement"))``
  titles and describes each field from ``<prefix>.<field>.title`` / ``.description`` when the
  run pauses (Prefect stores the form's schema then), in the language of that run. Field names,
  types and validation are untouched (``run_input={"approve": ..., "approver": ...}`` resumes).
"""
from __future__ import annotations

from typing import Any, Callable

from userops.i18n import t, t_or

_PARTS = ("title", "description")


class _CatalogueTexts(dict):
    """A field's ``json_schema_extra`` whose ``title`` and ``description`` are read from the
    catalogue each time pydantic reads the mapping (never frozen at import).

    Prefect adds its own field (``title=<name>``, ``json_schema_extra={"position": n}``) after
    the annotation's; pydantic merges the two extras with ``{**ours, **prefect's}`` when the
    parameter model is built — i.e. when the deployment's schema is built — and that merge
    reads ours through ``keys()``/``__getitem__`` (``__iter__`` is overridden, so CPython takes
    the mapping path, not the dict's storage). The stored values are only placeholders that keep
    ``len``/``in``/truthiness right."""

    def __init__(self, key: str):
        super().__init__((part, None) for part in _PARTS)
        self.key = key

    def __getitem__(self, part: str) -> str:
        if part not in _PARTS:
            raise KeyError(part)
        return t(f"{self.key}.{part}")

    def get(self, part: str, default: Any = None) -> Any:
        return self[part] if part in _PARTS else default

    def __iter__(self):
        return iter(_PARTS)

    def keys(self):
        return list(_PARTS)

    def values(self):
        return [self[p] for p in _PARTS]

    def items(self):
        return [(p, self[p]) for p in _PARTS]

    def copy(self) -> dict:
        return dict(self.items())

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (type(self), (self.key,))

    def __eq__(self, other):
        return isinstance(other, _CatalogueTexts) and other.key == self.key

    __hash__ = None  # a dict

    def __repr__(self) -> str:
        return f"catalogue texts {self.key!r}"


def param(key: str):
    """``Annotated`` metadata for a flow parameter: its Run-form title and description are the
    catalogue's ``<key>.title`` / ``<key>.description`` (see the module doc)."""
    from pydantic import Field

    return Field(json_schema_extra=_CatalogueTexts(key))


def form_texts(prefix: str) -> Callable[[dict, type], None]:
    """A ``RunInput``'s ``model_config["json_schema_extra"]``: each field of the form gets the
    catalogue's ``<prefix>.<field>.title`` / ``.description`` when its schema is built (when the
    run pauses), in the run's language. A field without catalogue texts keeps pydantic's."""

    def extra(schema: dict, cls: type | None = None) -> None:
        for name, prop in (schema.get("properties") or {}).items():
            for part in _PARTS:
                text = t_or(f"{prefix}.{name}.{part}", None)
                if text is not None:
                    prop[part] = text

    return extra
