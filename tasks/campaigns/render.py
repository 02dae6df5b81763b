"""Personalized messages for a whole audience, set-based.

Jinja2 renders each template once per *group* (segment, variant, locale, channel, stage,
value tier) with the group's values; personal values (name, last order, ...) are left in
as markers and then filled in column-wise with vectorized string concatenation. So 200,000
messages cost a few hundred template renders, not 200,000.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd

from tasks.campaigns import texts  # noqa: F401  (registers the words)
from tasks.campaigns.definitions import JINJA, PERSONAL_FIELDS, SENTINEL, Campaign, Gift, Variant
from userops.i18n import t
from userops.privacy import mask_name, scrub_text
from userops.settings import get_settings

_SPLIT = re.compile("\x00([a-z_]+)\x00")
CN_ZONES = {"Asia/Shanghai", "Asia/Chongqing", "Asia/Chungking", "Asia/Harbin", "Asia/Urumqi", "Asia/Kashgar", "Asia/Hong_Kong", "Asia/Macau", "Asia/Taipei", "PRC", "ROC"}


def _hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def unit_hash(ids: pd.Series, salt: str, key: str = "userops-split-01") -> np.ndarray:
    """A deterministic number in [0, 1) per id (same inputs, same numbers, every run)."""
    keys = (salt + "|" + ids.astype(str)).to_numpy(dtype=object)
    h = pd.util.hash_array(keys, hash_key=key, categorize=False)
    return (h % np.uint64(1_000_000)).astype(np.float64) / 1_000_000.0


def unsubscribe_tokens(ids: pd.Series) -> pd.Series:
    """Per-customer token for the unsubscribe link, keyed by settings.campaigns.unsubscribe_secret."""
    secret = get_settings().campaigns.unsubscribe_secret.get_secret_value()
    keys = ("unsubscribe|" + ids.astype(str)).to_numpy(dtype=object)
    h = pd.util.hash_array(keys, hash_key=_hash_key(secret), categorize=False)
    return pd.Series(np.char.mod("%016x", h), index=ids.index).astype(object)


def unsubscribe_token(customer_id: str) -> str:
    """The token of one customer (for the landing page that verifies the link)."""
    return unsubscribe_tokens(pd.Series([customer_id])).iloc[0]


def _fill(template: str, columns: dict[str, pd.Series], index) -> pd.Series:
    """Vectorized ``template.format(**columns)`` for {placeholders} in the URL template."""
    parts = re.split(r"\{(\w+)\}", template)
    out = pd.Series(parts[0], index=index, dtype=object)
    for i in range(1, len(parts), 2):
        out = out + columns[parts[i]].astype(str) + parts[i + 1]
    return out


def locales(c: Campaign, zones: pd.Series) -> pd.Series:
    """zh-CN for customers in a Chinese timezone, en for other known timezones, else the
    customers' default language (``customer_language``, never the operator's ``language``:
    an operator reading the command line in English changes no customer's message); or the
    campaign's fixed locale."""
    if c.locale != "auto":
        return pd.Series(c.locale, index=zones.index, dtype=object)
    default = get_settings().customer_language
    z = zones.astype(object)
    out = pd.Series(default, index=zones.index, dtype=object)
    known = z.notna() & (z.astype(str).str.len() > 0)
    out[known] = np.where(z[known].isin(CN_ZONES), "zh-CN", "en")
    return out


def personal_columns(df: pd.DataFrame, mask: bool = False) -> pd.DataFrame:
    """The printed personal values per customer (strings), masked for previews."""
    cs = get_settings().campaigns
    loc = df["locale"]
    member = loc.map({"zh-CN": t("campaign.member", "zh-CN"), "en": t("campaign.member", "en")})
    cat_fb = loc.map({"zh-CN": t("campaign.category_fallback", "zh-CN"), "en": t("campaign.category_fallback", "en")})
    name = df["name"].astype(object).where(df["name"].notna(), "").astype(str).str.strip()
    if mask:
        name = name.map(lambda v: mask_name(v) if v else v)
    out = pd.DataFrame(index=df.index)
    out["name"] = name.where(name.str.len() > 0, member)
    days = pd.to_numeric(df.get("days_since_last_order"), errors="coerce")
    out["days_since_last_order"] = days.round().astype("Int64").astype(str).replace("<NA>", "")
    ltv = pd.to_numeric(df.get("ltv"), errors="coerce").fillna(0).round(0).astype("int64")
    out["ltv"] = ltv.astype(str)
    cat = df["favourite_category"].astype(object) if "favourite_category" in df else pd.Series(None, index=df.index, dtype=object)
    out["favourite_category"] = cat.where(cat.notna() & (cat.astype(str).str.len() > 0), cat_fb).astype(str)
    last = pd.to_datetime(df.get("last_paid_at"), errors="coerce")
    out["last_order_date"] = last.dt.strftime("%Y-%m-%d").fillna("")
    if mask:
        tokens = pd.Series("***", index=df.index, dtype=object)
        ids = pd.Series("***", index=df.index, dtype=object)
    else:
        tokens = unsubscribe_tokens(df["customer_id"])
        ids = df["customer_id"].astype(str)
    out["unsubscribe_url"] = _fill(cs.unsubscribe_url, {"customer_id": ids, "token": tokens}, df.index)
    return out


def _group_context(c: Campaign, segment: str, variant: Variant, locale: str, channel: str, stage, tier, gift: Gift | None) -> dict:
    cs = get_settings().campaigns
    ctx = {f: SENTINEL.format(f) for f in PERSONAL_FIELDS}
    ctx.update(
        campaign=c.name,
        title=c.title.get(locale),
        locale=locale,
        channel=channel,
        stage=stage or "",
        value_tier=tier or "",
        segment=segment,
        variant=variant.name,
        gift_cost=float(gift.cost) if gift else 0.0,
        shop=cs.shop_name or t("campaign.shop", locale),
    )
    url = SENTINEL.format("unsubscribe_url")
    ctx["unsubscribe"] = t(f"campaign.unsubscribe.{channel}", locale, url=url) if c.marketing else ""
    ctx["gift"] = JINJA.from_string(gift.text.get(locale)).render(**ctx) if gift and gift.text else ""
    return ctx


def _compile(src: str, ctx: dict) -> list[str]:
    return _SPLIT.split(JINJA.from_string(src).render(**ctx))


def _apply(parts: list[str], personal: pd.DataFrame) -> pd.Series:
    out = pd.Series(parts[0], index=personal.index, dtype=object)
    for i in range(1, len(parts), 2):
        out = out + personal[parts[i]] + parts[i + 1]
    return out


def body_source(c: Campaign, variant: Variant, locale: str, channel: str) -> str:
    src = variant.body.get(locale)
    if c.marketing and "unsubscribe" not in src:
        sep = " " if channel in ("sms", "push") else "\n\n"
        src = src.rstrip() + sep + "{{ unsubscribe }}"
    return src


def render_messages(c: Campaign, df: pd.DataFrame, mask: bool = False) -> pd.DataFrame:
    """Subject and body for each row of ``df`` (columns: customer_id, segment, variant,
    locale, channel, lifecycle_stage, value_tier and the personal source columns)."""
    out = pd.DataFrame({"subject": pd.Series(None, index=df.index, dtype=object), "body": pd.Series(None, index=df.index, dtype=object)})
    if df.empty:
        return out
    personal = personal_columns(df, mask=mask)
    treatments = {name: (gift, variants) for name, _rule, _ch, gift, variants in c.treatments()}
    keys = ["segment", "variant", "locale", "channel", "lifecycle_stage", "value_tier"]
    frame = df[keys].astype(object).where(df[keys].notna(), "")
    for (seg, var, loc, ch, stage, tier), idx in frame.groupby(keys, sort=False).groups.items():
        gift, variants = treatments[seg]
        variant = next(v for v in variants if v.name == var)
        ctx = _group_context(c, seg, variant, loc, ch, stage, tier, c.gift_for(variant, gift))
        p = personal.loc[idx]
        out.loc[idx, "body"] = _apply(_compile(body_source(c, variant, loc, ch), ctx), p)
        if variant.subject is not None:
            out.loc[idx, "subject"] = _apply(_compile(variant.subject.get(loc), ctx), p)
    if mask:
        out["body"] = out["body"].map(lambda s: scrub_text(s) if isinstance(s, str) else s)
        out["subject"] = out["subject"].map(lambda s: scrub_text(s) if isinstance(s, str) else s)
    return out
