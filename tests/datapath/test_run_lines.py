"""Counts in the operator's nightly lines carry thousands separators, like every other
line of the demo (抽取 29,961 行 beside 会员 5,000)."""
from __future__ import annotations


def test_ingest_lines_use_thousands_separators(capsys, monkeypatch):
    from userops.cli.data import _print_stats
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", "zh-CN")
    reset_settings()
    try:
        _print_stats({"ingest": {"orders": {"read": 29961, "loaded": 29961, "quarantined": 1234}}})
    finally:
        reset_settings()
    out = capsys.readouterr().out
    assert "orders：抽取 29,961 行，入库 29,961 行，隔离 1,234 行" in out, out
