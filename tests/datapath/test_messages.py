"""Operator-facing texts: every key the code renders exists in both languages, whatever
module was imported first."""
from __future__ import annotations

import re
import subprocess
import sys

from userops.i18n import LANGUAGES, _CATALOG, load_catalogues
from userops.settings import PROJECT_ROOT

# t("key", ...) with a literal key (keys built at run time are checked where they are built)
_USE = re.compile(r"""\bt\(\s*["']([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)["']""")


def _used_keys() -> dict[str, str]:
    used = {}
    for folder in ("flows", "tasks", "models", "userops"):
        for path in (PROJECT_ROOT / folder).rglob("*.py"):
            for key in _USE.findall(path.read_text(encoding="utf-8")):
                used.setdefault(key, str(path.relative_to(PROJECT_ROOT)))
    return used


def test_every_rendered_key_is_registered_in_both_languages():
    load_catalogues()
    import userops.cli  # noqa: F401  the command line registers its own texts
    used = _used_keys()
    assert len(used) > 100  # the scan found the code's texts
    missing = {k: where for k, where in used.items() if k not in _CATALOG}
    assert not missing, f"t() keys with no registered text: {missing}"
    for k in used:
        assert set(LANGUAGES) <= set(_CATALOG[k]), k


def test_a_text_is_found_before_its_module_is_imported():
    """A night that fails before the stage importing the alert texts still renders its
    failure alert (it raised KeyError and the alert was lost)."""
    code = (
        "import sys; from userops.i18n import t\n"
        "assert 'tasks.alerts.messages' not in sys.modules and 'tasks.campaigns.texts' not in sys.modules\n"
        "print(t('alert.flow.run', 'zh-CN', run='nightly-1'))\n"
        "print(t('campaign.delivery.line', 'en', sent=1, failed=0, retry=0, suppressed=2, resent=0))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first == "运行：nightly-1" and "1" in second and "2" in second


# what the punctuation rule leaves alone: code in backticks, {placeholders} with their format
# spec ({n:,} {table!r}), {{ escaped braces }}, and URLs (postgresql://用户@主机:5432/库名)
_NOT_PROSE = re.compile(r"`[^`\n]*`|\{\{+[^{}]*\}\}+|\{[^{}]*\}|[A-Za-z][A-Za-z0-9+.\-]*://[^\s,;()（），；]*")
_HAN = "\u3400-\u9fff\uf900-\ufaff"
_HALF_BESIDE_HAN = re.compile(f"[{_HAN}][,:;()]|[,:;()][{_HAN}]")


def test_chinese_texts_use_full_width_punctuation():
    """zh-CN texts are typeset as Chinese: no half-width , : ; ( ) next to a Chinese character
    ("抽取 {read} 行，入库 {loaded} 行", "（客户或订单到达后…）"); the demo showed both kinds
    on one screen. Placeholders, code in backticks and URLs keep their ASCII."""
    load_catalogues()
    import userops.cli  # noqa: F401  the command line registers its own texts
    bad = {}
    for key, texts in _CATALOG.items():
        prose = _NOT_PROSE.sub("\x00", texts["zh-CN"])
        hits = _HALF_BESIDE_HAN.findall(prose)
        if hits:
            bad[key] = (texts["zh-CN"], hits)
    assert not bad, f"{len(bad)} zh-CN texts with half-width punctuation beside Chinese: {bad}"


def test_a_missing_value_is_shown_as_a_dash():
    """One rule for the quarantine's tables and the incident report: None, a float NaN and
    pandas' NA/NaT have no value to show; anything else (0, False, '', a list) is its text."""
    import numpy as np
    import pandas as pd

    from userops.i18n import is_missing, or_dash

    for v in (None, float("nan"), np.nan, np.float32("nan"), pd.NA, pd.NaT, np.datetime64("NaT")):
        assert is_missing(v), repr(v)
        assert or_dash(v) == "—" and or_dash(v, "-") == "-"
    for v, text in ((0, "0"), (0.0, "0.0"), (False, "False"), ("", ""), ("C1", "C1"), ([1, None], "[1, None]"),
                    ({"a": None}, "{'a': None}"), (pd.Timestamp("2026-01-02 03:04"), "2026-01-02 03:04:00")):
        assert not is_missing(v) and or_dash(v) == text
    # as the quarantine reads them: a frame's empty cells
    row = next(pd.DataFrame({"s": ["x", None], "t": pd.to_datetime(["2026-01-02", None])}).iloc[[1]].itertuples())
    assert or_dash(row.s) == "—" and or_dash(row.t) == "—"
