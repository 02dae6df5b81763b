"""Jinja2 templates of statements and customer messages, and set-based personalisation.

Templates live in ``tasks/crisis/templates/<name>.<lang>.<ext>.j2``; a file of the same name
in ``crisis.template_dir`` overrides the built-in one, so operators edit texts without code.

Customer messages are personalised without a Python loop per customer: the template is
rendered once per variant with marker tokens in place of the per-customer values, then the
markers are replaced column-wise (``fill_markers``).

Claims that hold only once something happened. The apology says "we have stopped selling
it", "the coupon is in your account" and "reply to this message for a refund"; each is true
only sometimes, and the shipped template checks it with a variable (``GUARDS``):
``taken_down`` (Control confirmed), ``coupon_placed`` (the apology carrying the coupon was
sent), ``spoken`` (the text is the call script staff read out, not a message). An operator's
own template written before these variables existed (or without them) would make the claim
unconditionally. Such an override is found by parsing it (``unguarded``): the operator is told
at the incident's opening (run log, alert ``crisis_task``, ``userops incident open/show``)
which template, which claim and how to fix it, and until it is fixed a message for which the
claim is not yet true is written from the shipped template instead (``render_guarded``); once
the claim holds the operator's template is used as written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2
import jinja2.meta
import pandas as pd

from userops.settings import get_settings

BUILTIN_DIR = Path(__file__).resolve().parent / "templates"
_MARK = "\ue000{}\ue001"  # private-use characters: never in a template, never stripped
_MARK_RE = re.compile("\ue000([a-z_]+)\ue001")
LANGS = ("zh-CN", "en")


@dataclass(frozen=True)
class Guard:
    """A claim of a template that holds only sometimes, and the variable that says when.
    ``needs``: only a template that uses this variable makes the claim (a template without
    ``coupon`` says nothing about a coupon). ``untrue(values)``: the claim does not hold for
    a render with these values."""

    var: str
    needs: str | None
    untrue: object
    snippet: str  # how the shipped template guards it (Jinja), for the fix the operator is told


GUARDS: dict[str, tuple[Guard, ...]] = {
    "apology": (
        Guard("taken_down", None, lambda v: not v.get("taken_down", True),
              "{% if taken_down %}…{% else %}…{% endif %}"),
        Guard("coupon_placed", "coupon", lambda v: bool(v.get("coupon")) and not v.get("coupon_placed", True),
              "{% if coupon and coupon_placed %}…{% endif %}"),
        Guard("spoken", "refund", lambda v: bool(v.get("refund")) and bool(v.get("spoken")),
              "{% if spoken %}…{% else %}…{% endif %}"),
    ),
}


def environment(builtin_only: bool = False) -> jinja2.Environment:
    dirs = []
    custom = get_settings().crisis.template_dir
    if custom and not builtin_only:
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


def override_path(kind: str, lang: str) -> Path | None:
    """The operator's own template of ``kind`` in ``lang`` (``crisis.template_dir``), if any."""
    custom = get_settings().crisis.template_dir
    if not custom:
        return None
    path = Path(custom) / template_name(kind, lang)
    return path if path.is_file() else None


def unguarded(kind: str, lang: str) -> tuple[Guard, ...]:
    """The claims the operator's template of ``kind``/``lang`` makes without checking the
    variable that says whether they hold (none without an override). A template Jinja cannot
    parse is left to ``render`` (which raises the real error)."""
    guards = GUARDS.get(kind, ())
    path = override_path(kind, lang) if guards else None
    if path is None:
        return ()
    try:
        used = jinja2.meta.find_undeclared_variables(environment().parse(path.read_text(encoding="utf-8")))
    except (jinja2.TemplateSyntaxError, OSError, UnicodeDecodeError):
        return ()
    return tuple(g for g in guards if g.var not in used and (g.needs is None or g.needs in used))


def template_problems(langs=LANGS) -> list[dict]:
    """Every claim an operator's template makes unguarded: ``kind``, ``lang``, ``path`` (the
    override), ``var`` (the variable it should check), ``snippet`` (how), ``builtin`` (the
    shipped template to compare with)."""
    return [
        {"kind": kind, "lang": lang, "path": str(override_path(kind, lang)), "var": g.var, "snippet": g.snippet,
         "builtin": str(BUILTIN_DIR / template_name(kind, lang))}
        for kind in GUARDS for lang in langs for g in unguarded(kind, lang)
    ]


def problem_lines(problems: list[dict], lang: str | None = None) -> list[str]:
    """``template_problems`` in the operator's words: one line per claim, with the fix."""
    from tasks.crisis import messages  # noqa: F401  the texts
    from userops.i18n import t

    return [t("crisis.template.unguarded", lang, path=p["path"], var=p["var"],
              claim=t(f"crisis.template.claim.{p['var']}", lang), snippet=p["snippet"], builtin=p["builtin"])
            for p in problems]


def render_guarded(kind: str, lang: str, **values) -> tuple[str, list[str]]:
    """Render ``kind``; returns the text and the guard variables for which the shipped
    template was used instead of the operator's: their template makes a claim without checking
    it, and for these values it does not hold yet (the product not yet off sale, the coupon not
    yet placed, a call script). Otherwise the operator's template, as written."""
    missing = [g.var for g in unguarded(kind, lang) if g.untrue(values)]
    env = environment(builtin_only=bool(missing))
    return env.get_template(template_name(kind, lang)).render(**values).strip() + "\n", missing


def render(kind: str, lang: str, **values) -> str:
    return render_guarded(kind, lang, **values)[0]


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
