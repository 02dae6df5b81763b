"""Personal data never reaches a log, a message or an artifact unmasked."""
from __future__ import annotations

import re

PII_FIELDS = {"phone", "email", "name"}
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(?<!\d)(\+?\d{3})\d{4,8}(\d{2})(?!\d)")


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


def scrub_text(text: str) -> str:
    """Mask anything that looks like an email or a phone number in free text."""
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: m.group(1) + "****" + m.group(2), text)
