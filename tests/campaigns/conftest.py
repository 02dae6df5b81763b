"""Fixtures for campaign tests: a campaigns directory, members, the local providers."""
from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

AS_OF = date(2026, 11, 20)
NOON = datetime(2026, 11, 20, 4, 0)  # 12:00 in Shanghai: not quiet


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Retries back off for 50 ms instead of 30 s; a run waits up to 5 s for them."""
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_CAMPAIGNS__RETRY_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("USEROPS_CAMPAIGNS__RETRY_WAIT_SECONDS", "5")
    reset_settings()
    yield
    reset_settings()


@pytest.fixture
def cdir(tmp_path, monkeypatch):
    """An empty campaigns directory the settings point at."""
    from userops.settings import reset_settings

    d = tmp_path / "campaigns"
    d.mkdir()
    monkeypatch.setenv("USEROPS_CAMPAIGNS__DEFINITIONS_DIR", str(d))
    reset_settings()
    yield d
    reset_settings()


def campaign(name: str = "wake", **over) -> dict:
    """A small valid definition; keyword arguments replace top-level fields."""
    d = {
        "name": name,
        "title": {"zh-CN": "唤醒测试", "en": "Wake test"},
        "audience": {"rule": {"lifecycle_stage": ["silent"]}},
        "channel": "sms",
        "period": "day",
        "variants": [
            {"name": "A", "body": {"zh-CN": "{{ name }},好久不见!", "en": "Hi {{ name }}, long time no see!"}},
            {"name": "B", "body": {"zh-CN": "{{ name }},送您{{ gift }}", "en": "{{ name }}, here is {{ gift }}"}, "gift": {"cost": 5, "text": {"zh-CN": "5元券", "en": "a 5 yuan voucher"}}},
        ],
    }
    d.update(over)
    return d


def write_campaign(d: Path, data: dict, filename: str | None = None) -> Path:
    p = d / (filename or f"{data.get('name', 'x')}.yaml")
    p.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return p


@pytest.fixture
def members(warehouse):
    """400 silent members with consent, in Shanghai; returns the frames."""
    from tests.campaigns.factory import load_members, make_members

    frames = make_members(400, seed=1, stages={"silent": 1.0})
    with warehouse.begin() as conn:
        load_members(conn, frames)
    return frames


@pytest.fixture
def provider(monkeypatch):
    from tests.fakes.message_provider import FakeProvider
    from userops.settings import reset_settings

    with FakeProvider() as p:
        monkeypatch.setenv("USEROPS_SMS_WEBHOOK_URL", p.url)
        monkeypatch.setenv("USEROPS_PUSH_WEBHOOK_URL", p.url)
        reset_settings()
        yield p
    reset_settings()


@pytest.fixture
def smtp(monkeypatch):
    from tests.fakes.smtp_server import FakeSmtp
    from userops.settings import reset_settings

    with FakeSmtp(reject={"m5@example.com"}, transient={"m6@example.com"}) as s:
        monkeypatch.setenv("USEROPS_SMTP_URL", s.url)
        reset_settings()
        yield s
    reset_settings()


def touches(engine, where: str = "1 = 1", params: dict | None = None) -> pd.DataFrame:
    from userops.db import read_frame

    return read_frame(engine, f"SELECT * FROM touches WHERE {where} ORDER BY touch_key", params or {}, parse_dates=["planned_at", "not_before", "sent_at", "in_flight_at"])


def plan_staff(engine, ids, campaign="retention"):
    """Staff-channel touches for ``ids``, planned at NOON (the outreach list's rows)."""
    from tasks.messaging import plan_touches

    df = pd.DataFrame({"customer_id": list(ids)})
    df["touch_key"] = campaign + "|" + df["customer_id"] + "|2026-11-20"
    df["campaign"] = campaign
    df["channel"] = "staff"
    df["status"] = "planned"
    df["subject"] = "主题"
    df["body"] = "正文 " + df["customer_id"]
    df["is_marketing"] = True
    df["planned_at"] = pd.Timestamp(NOON)
    with engine.begin() as conn:
        return plan_touches(conn, df)
