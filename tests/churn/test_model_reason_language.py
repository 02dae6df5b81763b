"""The churn model's promotion reason is stored as a code with its figures and worded when
it is read, in the reader's language: trained under zh-CN, `model status` under en shows
English (text and --json); a reason stored as words before still shows as written."""
from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from tests.churn.conftest import AS_OF

_HAN = re.compile("[\u3400-\u9fff]")


def _run(args):
    from userops.cli import app

    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    return res


def test_reason_in_the_readers_language(loaded, shop_language):
    """Trained twice under zh-CN (a champion, then a second model replacing or challenging
    it); read under en: every reason in English, in the text and in --json."""
    _run(["model", "train", "--as-of", str(AS_OF)])
    assert "已晋升：目前没有冠军模型，首个训练的模型成为冠军模型。" in _run(["model", "status"]).output
    shop_language("en")
    en = _run(["model", "status"]).output
    assert "Promoted: there is no champion yet, so the first trained model becomes champion." in en and "已晋升" not in en
    assert json.loads(_run(["model", "status", "--json"]).stdout)["versions"][0]["reason"].startswith("Promoted: there is no champion yet")

    shop_language("zh-CN")
    _run(["model", "train", "--as-of", str(AS_OF + timedelta(days=7))])
    shop_language("en")
    en = _run(["model", "status"]).output
    assert not _HAN.search(en), en
    versions = json.loads(_run(["model", "status", "--json"]).stdout)["versions"]
    assert len(versions) == 2
    for v in versions:
        assert v["reason"] and not _HAN.search(v["reason"]), v["reason"]
        assert "    " + v["reason"] in en  # the text's reason lines are the same words
    first, second = versions[-1], versions[0]
    if second["status"] == "champion":  # the first was replaced: retired, saying by which and why
        assert first["status"] == "retired"
        assert first["reason"].startswith(f"Retired: replaced by {second['version']}. Promoted: the candidate does not lose")
        assert first["reason_data"]["code"] == "retired" and first["reason_data"]["reason"]["code"] == "yes"
    else:
        assert first["status"] == "champion" and first["reason"].startswith("Promoted: there is no champion yet")
        assert second["reason"].startswith("Kept as challenger")
    # and back in zh-CN, the same rows in Chinese
    shop_language("zh-CN")
    zh = json.loads(_run(["model", "status", "--json"]).stdout)["versions"]
    assert all(_HAN.search(v["reason"]) for v in zh), zh


def test_a_reason_stored_as_words_before_still_shows(warehouse, shop_language):
    """Rows registered before the reason was stored as a code keep showing their text."""
    import sqlalchemy as sa

    old = "已晋升：目前没有冠军模型，首个训练的模型成为冠军模型。"
    with warehouse.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO model_versions (version, trained_at, status, reason) VALUES ('v-old', '2026-06-01 00:00:00', 'champion', :r)"
        ), {"r": old})
    shop_language("en")
    assert "    " + old in _run(["model", "status"]).output
    assert json.loads(_run(["model", "status", "--json"]).stdout)["versions"][0]["reason"] == old
