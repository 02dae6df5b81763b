"""Jinja2 templates of statements and customer messages, and set-based personalisation.

Templates live in ``tasks/crisis/templates/<name>.<lang>.<ext>.j2``; a file of the same name
in ``crisis.template_dir`` overrides the built-in one, so operators edit texts without code.

Customer messages are personalised without a Python loop per customer: the template is
rendered once per variant with marker tokens in place of the per-customer values, then the
markers are replaced column-wise (``fill_markers``).
"""
from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pandas as pd

from userops.settings import get_settings

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
_MARK = "\ue000{}\ue001"  # private-use characters: never in a template, never stripped
_MARK_RE = re.compile("\ue000([a-z_]+)\ue001")


def environment() -> jinja2.Environment:
    dirs = []
    custom = get_settings().crisis.template_dir
    if custom:
        dirs.append(str(custom))
    dirs.append(str(BUILTIN_DIR))
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(dirs),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def template_name(kind: str, lang: str) -> str:
    ext = "md" if kind == "statement" else "txt"
    return f"{kind}.{lang}.{ext}.j2"


def render(kind: str, lang: str, **values) -> str:
    return environment().get_template(template_name(kind, lang)).render(**values).strip() + "\n"


def marker(name: str) -> str:
    """A token to pass into a template where a per-customer value goes."""
    return _MARK.format(name)


def fill_markers(text: str, df: pd.DataFrame) -> pd.Series:
    """``text`` with every marker replaced by the matching column of ``df``, row-wise but
    vectorised (Series concatenation)."""
    parts = _MARK_RE.split(text)
    out = pd.Series([parts[0]] * len(df), index=df.index, dtype=object)
    for i in range(1, len(parts), 2):
        col = parts[i]
        out = out + df[col].astype(str) + parts[i + 1]
    return out
