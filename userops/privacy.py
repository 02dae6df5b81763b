"""Personal data never reaches a log, a message or an artifact unmasked."""
from __future__ import annotations

import functools
import re

PII_FIELDS = {"phone", "email", "name"}
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")

# Phone numbers in free text, as people write them. A careful regex rather than a
# number-metadata library: masking must catch every phone-*shaped* number (a typo or an
# unassigned range is still somebody's data), stay the same across metadata updates, and
# cost microseconds (campaign rendering scrubs every message).
_SEP = r"[ \u00a0\u3000\-\u2010-\u2015\uff0d]?"  # one space or dash (ASCII, NBSP, ideographic, unicode dashes)
# Not the middle of a longer number: no digit, no decimal part (1,234.50 / 12.5) around it.
_NUM_START = r"(?<!\d)(?<!\d[.,])"
_NUM_END = r"(?!\d)(?![.,]\d)"
# Landline and international numbers are also not glued to Latin letters: ids such as
# O01234567890, INC-20261120-1630-AB12 or SKU codes are not phone numbers.
_ID_START = r"(?<![0-9A-Za-z])(?<!\d[.,])"
_ID_END = r"(?![0-9A-Za-z])(?![.,]\d)"
# Mainland mobile: 1[3-9]x xxxx xxxx, optionally +86 / 0086 / 86 before it, grouped 3-4-4 or not.
_MOBILE = (
    rf"(?P<mcc>(?:\+86|0086|86){_SEP})?"
    rf"(?P<m1>1[3-9]\d){_SEP}(?P<m2>\d{{4}}){_SEP}(?P<m3>\d{{4}})"
)
# Mainland landline: area code 0xx/0xxx (in parentheses or not; after +86/0086 written
# without its 0, or as (0)xx), then the 7-8 digit local number (it starts 2-9), grouped or not.
_LANDLINE = (
    rf"(?P<larea>(?:\+86|0086){_SEP}(?:\(0\)|\(?0?)[1-9]\d{{1,2}}\)?|\(0[1-9]\d{{1,2}}\)|0[1-9]\d{{1,2}})(?P<lsep>{_SEP})"
    rf"(?P<l1>[2-9]\d{{2,3}}){_SEP}(?P<l2>\d{{4}})"
)
# Any other international number: + country code and 8-15 digits in all (checked in _mask).
_INTL = r"(?P<intl>\+[1-9](?:[ \-()]?\d){7,14})"
_PHONE = re.compile(
    rf"{_NUM_START}{_MOBILE}{_NUM_END}|{_ID_START}(?:{_LANDLINE}|{_INTL}){_ID_END}"
)


def _mask_phone_match(m: re.Match) -> str:
    if m.group("m1"):
        return (m.group("mcc") or "") + m.group("m1") + "****" + m.group("m3")[-2:]
    if m.group("l1"):
        return m.group("larea") + m.group("lsep") + "****" + m.group("l2")[-2:]
    digits = re.sub(r"\D", "", m.group("intl"))
    return "+" + digits[:2] + "****" + digits[-2:]


def mask_phone(v: str | None) -> str | None:
    if not v:
        return v
    s = str(v)
    return s[:3] + "*" * max(0, len(s) - 5) + s[-2:] if len(s) > 5 else "*" * len(s)


def mask_email(v: str | None) -> str | None:
    if not v or "@" not in str(v):
        return "***" if v else v
    local, domain = str(v).split("@", 1)
    return f"{local[:1]}***@{domain}"


def mask_name(v: str | None) -> str | None:
    if not v:
        return v
    s = str(v)
    return s[:1] + "*" * max(1, len(s) - 1)


def mask_record(rec: dict) -> dict:
    out = dict(rec)
    if out.get("phone"):
        out["phone"] = mask_phone(out["phone"])
    if out.get("email"):
        out["email"] = mask_email(out["email"])
    if out.get("name"):
        out["name"] = mask_name(out["name"])
    return out


def _scrub(text: str) -> str:
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(_mask_phone_match, text)


@functools.lru_cache(maxsize=32)
def _kept(keep: tuple[str, ...]) -> re.Pattern | None:
    """What ``keep`` protects: each value as written and every phone number / email in it
    (a hotline configured as "客服热线 4008201234" is kept where "4008201234" stands alone),
    never as a part of a longer number."""
    tokens = set()
    for v in keep:
        v = (v or "").strip()
        if v:
            tokens.add(v)
            tokens.update(m.group() for m in _PHONE.finditer(v))
            tokens.update(m.group() for m in _EMAIL.finditer(v))
    if not tokens:
        return None
    alts = "|".join(re.escape(x) for x in sorted(tokens, key=len, reverse=True))
    return re.compile(rf"(?<!\d)(?:{alts})(?!\d)")


def scrub_text(text: str, keep: tuple[str, ...] | list[str] = ()) -> str:
    """Mask anything that looks like an email or a phone number in free text: mainland
    mobiles (``138-1234-5678``, ``+86 138 1234 5678``, ``0086 13812345678`` → ``138****78``
    with any prefix kept), landlines (``(010) 6552 9988``, ``010-65529988`` → area code kept,
    ``****88``) and other ``+``-prefixed international numbers. Dates, amounts, order / SKU /
    incident ids and counts are left as written.

    ``keep``: public values that stay as written (the brand's configured service contact,
    ``crisis.service_contact``), with the phone numbers and emails in them."""
    kept = _kept(tuple(keep)) if keep else None
    if kept is None:
        return _scrub(text)
    out, last = [], 0
    for m in kept.finditer(text):
        out += [_scrub(text[last:m.start()]), m.group()]
        last = m.end()
    out.append(_scrub(text[last:]))
    return "".join(out)
