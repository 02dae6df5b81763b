"""models/README.md documents the risk band cut-offs once, as the code and the settings have them."""
from __future__ import annotations

import re

from models.explain import DEFAULT_BAND_CUTS
from userops.settings import PROJECT_ROOT, ChurnSettings


def test_readme_band_cuts_match_the_code_and_the_settings():
    text = (PROJECT_ROOT / "models" / "README.md").read_text(encoding="utf-8")
    medium, high = DEFAULT_BAND_CUTS
    assert (medium, high) == (ChurnSettings().medium_risk, ChurnSettings().high_risk)
    # every cut-off pair written out in the API section is the code's default
    pairs = [(float(a), float(b)) for a, b in re.findall(r"cuts\s*=\s*\(\s*([0-9.]+)\s*,\s*([0-9.]+)\s*\)", text)]
    assert all(p == (medium, high) for p in pairs), pairs
    # the decision names the same bands
    assert f"low < {medium:g} ≤ medium < {high:g} ≤ high" in text
    pairs_in_words = re.findall(r"\(([0-9.]+), ([0-9.]+)\)", text[text.index("Risk bands"):text.index("**Drift**")])
    assert all((float(a), float(b)) == (medium, high) for a, b in pairs_in_words), pairs_in_words
