"""The spike trigger's reason stays one fixed English text (the run's parameter, the
incident's record) and reads in the shop's language where the operator reads it: the opening
alert, the report, ``incident list``."""
from __future__ import annotations

from typer.testing import CliRunner

from tasks.crisis.report import build_report, report_markdown
from tests.crisis.conftest import open_incident, shop
from userops.db import read_frame

SPIKE_REASON = "complaint spike: 12 complaints in 2.0h"  # what the trigger gives the run (window_hours is a float)


def test_spike_reason_reads_in_the_shop_language(warehouse, pinned_now):
    from flows.crisis import _announce_opening
    from userops.cli import app

    shop(warehouse, {"C1": "ordinary"})
    iid = open_incident(warehouse, reason=SPIKE_REASON)["incident_id"]
    zh = report_markdown(build_report(iid, warehouse), "zh-CN")
    assert "- 原因：投诉激增：2 小时内 12 条投诉" in zh and "complaint" not in zh
    assert "- Reason: Complaint spike: 12 complaints in 2h" in report_markdown(build_report(iid, warehouse), "en")
    _announce_opening(iid)
    body = read_frame(warehouse, "SELECT body FROM alert_outbox WHERE kind = 'crisis_opened'")["body"].iloc[0]
    assert "原因：投诉激增：2 小时内 12 条投诉" in body and "complaint spike" not in body
    listed = CliRunner().invoke(app, ["incident", "list"]).output
    assert "投诉激增：2 小时内 12 条投诉" in listed and "原因" in listed
    # the incident keeps the trigger's fixed text (its record, the take-down hook's reason)
    assert read_frame(warehouse, "SELECT reason FROM incidents")["reason"].iloc[0] == SPIKE_REASON


def test_a_typed_reason_is_shown_as_typed():
    from tasks.crisis.spike import reason_text

    assert reason_text("部分批次杯盖漏水", "en") == "部分批次杯盖漏水"
    assert reason_text("complaint spike: lids leak", "zh-CN") == "complaint spike: lids leak"
    assert reason_text(None) is None
