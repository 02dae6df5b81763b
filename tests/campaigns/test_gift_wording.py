"""The retention campaign's English gift read "a 20 off orders over 99 is in your account":
no noun, no currency. It says what the zh-CN 满99减20券 says, in the currency words the English
templates use (yuan): a 20-yuan coupon for orders of 99 yuan or more."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tasks.campaigns.definitions import load_campaigns
from userops.settings import PROJECT_ROOT

GIFT_EN = "20-yuan coupon for orders of 99 yuan or more"


def _shipped():
    return load_campaigns(Path(PROJECT_ROOT / "campaigns"), lang="en")


def _render(c, variant: str, locale: str) -> str:
    from tasks.campaigns.render import render_messages

    df = pd.DataFrame({
        "customer_id": ["C1"], "segment": ["default"], "variant": [variant], "locale": [locale],
        "channel": ["push"], "lifecycle_stage": ["active"], "value_tier": ["low"], "name": ["Wang"],
        "days_since_last_order": [20.0], "ltv": [300.0], "favourite_category": ["tea"],
        "last_paid_at": [pd.Timestamp("2026-12-20")],
    })
    return render_messages(c, df)["body"].iloc[0]


@pytest.mark.parametrize("variant,phrase", [
    ("care", f"We saved a {GIFT_EN} for you"),
    ("feedback", f"a {GIFT_EN} is in your account as a thank-you"),
])
def test_the_retention_gift_reads_in_english(variant, phrase):
    (c,) = [c for c in _shipped() if c.name == "retention"]
    body = _render(c, variant, "en")
    assert phrase in body, body
    assert "off orders over" not in body
    assert "满99减20券" in _render(c, variant, "zh-CN")  # the zh-CN wording is unchanged


def test_no_english_gift_carries_its_own_article_or_a_bare_amount():
    """The templates say "a {{ gift }}": a gift text starting with an article reads "a a …";
    an amount must name its currency (yuan), as the other gifts do."""
    gifts = []
    for c in _shipped():
        gifts += [t for _n, _r, _ch, g, vs in c.treatments() for t in [g, *(v.gift for v in vs)] if t and t.text]
    texts = [g.text.get("en") for g in gifts]
    assert GIFT_EN in texts
    for text in texts:
        assert not re.match(r"(?i)(a|an|the) ", text), text
        for m in re.finditer(r"\d+", text):
            assert re.match(r"[- ]yuan\b", text[m.end():]), text
