"""The customers' default language is a setting of its own (``customer_language``,
``USEROPS_CUSTOMER_LANGUAGE``, zh-CN by default), not the operator's ``language``: an operator
who switched the command line to English (``USEROPS_LANGUAGE=en``) turned every SMS/push to a
customer without a known time zone into English ("[default/feedback · push · en · active/low]
会****, we'd love your opinion…" for Chinese-named customers of a Chinese shop), and a
terminal run and the nightly worker could disagree. A customer's own locale (their time zone)
still wins; the operator's texts keep following ``language``."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pydantic
import pytest

from userops.settings import PROJECT_ROOT, Settings, get_settings, reset_settings, settings_problems


@pytest.fixture
def env(monkeypatch, tmp_path):
    """No USEROPS_* variable but those the test sets; no settings file."""
    for k in list(os.environ):
        if k.startswith("USEROPS_"):
            monkeypatch.delenv(k)
    (tmp_path / "none.yaml").write_text("{}\n", encoding="utf-8")
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))

    def use(**values: str) -> None:
        for k, v in values.items():
            monkeypatch.setenv(k, v)
        reset_settings()

    use()
    yield use
    reset_settings()


def test_the_setting_defaults_to_zh_cn_and_is_independent_of_the_operators_language(env):
    assert get_settings().customer_language == "zh-CN"
    env(USEROPS_LANGUAGE="en")
    assert (get_settings().language, get_settings().customer_language) == ("en", "zh-CN")
    env(USEROPS_LANGUAGE="zh-CN", USEROPS_CUSTOMER_LANGUAGE="EN")  # spelled like language may be
    assert (get_settings().language, get_settings().customer_language) == ("zh-CN", "en")
    env(USEROPS_CUSTOMER_LANGUAGE="zh_cn")
    assert get_settings().customer_language == "zh-CN"


def test_the_settings_file_sets_it(env, tmp_path):
    (tmp_path / "u.yaml").write_text("language: en\ncustomer_language: zh-CN\n", encoding="utf-8")
    env(USEROPS_CONFIG_FILE=str(tmp_path / "u.yaml"))
    assert (get_settings().language, get_settings().customer_language) == ("en", "zh-CN")


def test_a_wrong_value_is_refused_in_the_operators_language(env):
    env(USEROPS_CUSTOMER_LANGUAGE="fr")
    with pytest.raises(pydantic.ValidationError) as exc:
        Settings()
    (zh,) = settings_problems(exc.value, "zh-CN")
    (en,) = settings_problems(exc.value, "en")
    assert zh.startswith("环境变量 USEROPS_CUSTOMER_LANGUAGE='fr'：只能是") and "'zh-CN'" in zh and "'en'" in zh, zh
    assert en.startswith("USEROPS_CUSTOMER_LANGUAGE='fr': must be one of ") and "'zh-CN'" in en, en


def test_the_command_line_refuses_it_in_the_operators_language(tmp_path):
    from tests.cli_inprocess import run_userops

    (tmp_path / "none.yaml").write_text("{}\n", encoding="utf-8")
    base = {"USEROPS_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "USEROPS_OUTPUT_DIR": str(tmp_path / "out"),
            "USEROPS_CONFIG_FILE": str(tmp_path / "none.yaml"), "USEROPS_CUSTOMER_LANGUAGE": "fr"}
    out = run_userops(["alert", "channels"], base)
    assert out.returncode == 2 and "Traceback" not in out.stderr, (out.returncode, out.stderr)
    assert out.stderr.startswith("配置有误") and "环境变量 USEROPS_CUSTOMER_LANGUAGE='fr'：只能是" in out.stderr, out.stderr
    out = run_userops(["alert", "channels"], {**base, "USEROPS_LANGUAGE": "en"})
    assert out.returncode == 2 and "USEROPS_CUSTOMER_LANGUAGE='fr': must be one of" in out.stderr, out.stderr


def _retention():
    from tasks.campaigns.definitions import load_campaigns

    (c,) = [c for c in load_campaigns(Path(PROJECT_ROOT / "campaigns")) if c.name == "retention"]
    return c


def _audience(c, zones: list) -> pd.DataFrame:
    from tasks.campaigns.render import locales

    df = pd.DataFrame({
        "customer_id": [f"C{i}" for i in range(len(zones))],
        "segment": "default", "variant": "feedback", "channel": "push",
        "lifecycle_stage": "active", "value_tier": "low",
        "name": "会员甲", "days_since_last_order": 20.0, "ltv": 300.0, "favourite_category": "茶饮",
        "last_paid_at": pd.Timestamp("2026-12-20"),
        "timezone": pd.Series(zones, dtype=object),
    })
    df["locale"] = locales(c, df["timezone"])
    return df


@pytest.mark.parametrize("operator", ["zh-CN", "en"])
def test_customers_without_a_time_zone_get_the_customers_language_whatever_the_operator_reads(env, operator):
    from tasks.campaigns.render import render_messages

    env(USEROPS_LANGUAGE=operator)
    c = _retention()
    df = _audience(c, [None, "", "Asia/Shanghai", "Europe/Berlin"])
    # unknown zone: the customers' language (zh-CN by default); a known zone still decides
    assert df["locale"].tolist() == ["zh-CN", "zh-CN", "zh-CN", "en"]
    body = render_messages(c, df)["body"]
    assert body.iloc[0].startswith("会员甲，您是我们很看重的会员") and "we'd love" not in body.iloc[0], body.iloc[0]
    assert body.iloc[3].startswith("会员甲, you matter to us"), body.iloc[3]


def test_the_customers_language_setting_decides_for_unknown_zones(env):
    from tasks.campaigns.render import render_messages

    env(USEROPS_LANGUAGE="zh-CN", USEROPS_CUSTOMER_LANGUAGE="en")
    c = _retention()
    df = _audience(c, [None, "Asia/Shanghai", "America/New_York"])
    assert df["locale"].tolist() == ["en", "zh-CN", "en"]
    body = render_messages(c, df)["body"]
    assert body.iloc[0].startswith("会员甲, you matter to us") and body.iloc[1].startswith("会员甲，您是")


def test_a_campaigns_fixed_locale_still_wins(env):
    from tasks.campaigns.render import locales

    env(USEROPS_CUSTOMER_LANGUAGE="en")
    c = _retention().model_copy(update={"locale": "zh-CN"})
    assert locales(c, pd.Series([None, "Europe/Berlin"], dtype=object)).tolist() == ["zh-CN", "zh-CN"]
