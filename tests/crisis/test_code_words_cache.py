"""``code_word`` builds the stored codes' words once per language (not the whole table on
every call) and still follows the language setting when it changes in one process."""
from __future__ import annotations

import tasks.crisis.report as report
from userops.settings import reset_settings


def _use(monkeypatch, lang: str) -> None:
    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    reset_settings()


def test_code_word_follows_the_language_setting_in_one_process(monkeypatch):
    try:
        for lang, high, spike, core in [("zh-CN", "高", "投诉激增自动开启", "核心"), ("en", "high", "complaint spike", "core"),
                                        ("zh-CN", "高", "投诉激增自动开启", "核心")]:
            _use(monkeypatch, lang)
            assert (report.code_word("high"), report.code_word("spike"), report.code_word("core")) == (high, spike, core), lang
            assert report.code_words()["high"] == high
        assert report.code_word("high", "en") == "high" and report.code_word("high", "zh-CN") == "高"  # explicit, whatever the setting
        assert report.code_word(None) == "-" and report.code_word("whatever") == "whatever"
    finally:
        monkeypatch.delenv("USEROPS_LANGUAGE")
        reset_settings()


def test_code_word_does_not_rebuild_the_table_per_call(monkeypatch):
    report.code_word("high", "en")  # the table of en built (at most once more below for a cold cache)
    calls = []
    real_t = report.t
    monkeypatch.setattr(report, "t", lambda *a, **kw: calls.append(a) or real_t(*a, **kw))
    for _ in range(50):
        assert report.code_word("medium", "en") == "medium"
    assert calls == [], f"{len(calls)} catalogue look-ups for 50 code words"
    words = report.code_words("en")
    words["high"] = "changed"  # a caller's copy: the cached table stays
    assert report.code_word("high", "en") == "high"
