"""A nightly run for a day after the shop's today is refused before anything runs: it wrote
that day's stage history and health snapshot ahead of time and planned the month's touches a
second time (customers recalled twice). Refused by `userops run nightly --as-of` (one line,
exit 2) and by the flow itself (the Run form, a deployment run), naming the day and the shop's
today; today in the shop's timezone (ahead of UTC) is fine."""
from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from tests.cli_inprocess import run_userops

NOW = "2026-11-20T18:00:00"  # UTC: already 2026-11-21 in Asia/Shanghai
SHOP_TODAY = date(2026, 11, 21)


def _rows(engine) -> dict:
    with engine.connect() as conn:
        return {tb: conn.execute(sa.text(f"SELECT COUNT(*) FROM {tb}")).scalar()
                for tb in ("pipeline_runs", "stage_history", "health_snapshots", "touches")}


def test_run_nightly_refuses_a_day_still_to_come(sqlite_warehouse):
    before = _rows(sqlite_warehouse)
    for lang, words in (("zh-CN", "2026-11-22 在今天（店铺时间 2026-11-21）之后"), ("en", "2026-11-22 is after today (2026-11-21, shop time)")):
        res = run_userops(["run", "nightly", "--as-of", "2026-11-22"],
                          {"USEROPS_DATABASE_URL": str(sqlite_warehouse.url), "USEROPS_NOW": NOW, "USEROPS_LANGUAGE": lang})
        flat = "".join(res.stderr.replace("│", " ").split())  # typer's error box wraps lines
        assert res.returncode == 2, res.stdout + res.stderr
        assert "".join(words.split()) in flat and "--as-of" in res.stderr and "Traceback" not in res.stderr
        assert "".join("2026-11-21".split()) in flat
    assert _rows(sqlite_warehouse) == before


def test_the_flow_refuses_a_day_still_to_come(sqlite_warehouse, monkeypatch):
    from flows.nightly import FutureDay, nightly, refuse_future_day
    from tasks.alerts.problems import describe_failure
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_NOW", NOW)
    monkeypatch.setenv("USEROPS_LANGUAGE", "zh-CN")
    reset_settings()
    refuse_future_day(SHOP_TODAY)  # the shop's today, though UTC's is a day earlier
    before = _rows(sqlite_warehouse)
    with pytest.raises(FutureDay) as info:
        nightly.fn(as_of=date(2030, 1, 1))  # the body, as a form's or a deployment's run runs it
    assert _rows(sqlite_warehouse) == before
    assert "2030-01-01 在今天（店铺时间 2026-11-21）之后" in str(info.value)
    problem = describe_failure(info.value)
    assert problem.kind == "as_of" and "as_of" in problem.step and "2030-01-01" in problem.reason
    assert "店铺今天或更早" in problem.fix and "Prefect 界面" not in problem.fix
    assert "set as_of to the shop's today or earlier" in describe_failure(info.value, lang="en").fix
