"""`userops model status` says when each model was trained in shop time (settings.timezone),
as the rest of the command line does (incidents: 店铺时间); --json gives times with their UTC
offset and null, not "NaT", for a model never retired."""
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


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_status_times(warehouse, shop_language, lang):
    import sqlalchemy as sa

    with warehouse.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO model_versions (version, trained_at, status, promoted_at, retired_at) VALUES "
            "('v-old', '2026-06-01 17:05:00', 'retired', '2026-06-01 17:05:00', '2026-12-07 15:20:00'), "
            "('v-new', '2026-12-07 15:20:00', 'champion', '2026-12-07 15:20:00', NULL)"
        ))
    shop_language(lang)
    out = _run(["model", "status"]).output
    if lang == "en":  # Asia/Shanghai: UTC + 8
        assert "trained 2026-12-07 23:20 (shop time)" in out and "trained 2026-06-02 01:05 (shop time)" in out
    else:
        assert "训练于 2026-12-07 23:20（店铺时间）" in out and "训练于 2026-06-02 01:05（店铺时间）" in out
    assert "15:20" not in out and "17:05" not in out
    st = json.loads(_run(["model", "status", "--json"]).stdout)
    v = {r["version"]: r for r in st["versions"]}
    assert v["v-new"]["trained_at"] == "2026-12-07T15:20:00+00:00" and v["v-new"]["retired_at"] is None
    assert v["v-old"]["retired_at"] == "2026-12-07T15:20:00+00:00" and v["v-old"]["promoted_at"] == "2026-06-01T17:05:00+00:00"
    assert "NaT" not in json.dumps(st)
