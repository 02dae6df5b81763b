"""A customer excluded at the core review is off the call list in ``incident_customers``
itself (remedy ``excluded``, no coupon; the report reads it from there, no longer from the
suppressed touches), and a repeated release (the form then the command, a re-run) changes
nothing: a customer whose apology is already out is never half excluded."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd

from tasks.crisis.compensate import campaign_name, plan_compensation, record_affected, release_core, send_apologies
from tasks.crisis.report import build_report
from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame


def _customers(engine, iid) -> pd.DataFrame:
    return read_frame(engine, "SELECT customer_id, remedy, coupon_value, refund_offer, call_list, touch_key FROM incident_customers "
                              "WHERE incident_id = :i ORDER BY customer_id", {"i": iid})


def _touches(engine, iid) -> pd.DataFrame:
    return read_frame(engine, "SELECT touch_key, customer_id, channel, status, reason, body FROM touches WHERE campaign = :c "
                              "ORDER BY touch_key", {"c": campaign_name(iid)})


def test_excluded_customer_is_off_the_call_list_in_incident_customers(warehouse, provider, pinned_now):
    shop(warehouse, {"C1": "ordinary", "C2": "core", "C5": "core"})
    iid = open_incident(warehouse)["incident_id"]
    plan_compensation(iid, warehouse, now=NOW)
    send_apologies(iid, warehouse)
    release_core(iid, "lead-li", exclude=["C5"], engine=warehouse, now=NOW + timedelta(hours=1))
    ic = _customers(warehouse, iid).set_index("customer_id")
    assert not bool(ic.loc["C5", "call_list"])  # the old code left it True (the report worked around it)
    assert ic.loc["C5", "remedy"] == "excluded" and float(ic.loc["C5", "coupon_value"]) == 0
    assert bool(ic.loc["C5", "refund_offer"])  # what they bought still counts in the refund exposure
    assert bool(ic.loc["C2", "call_list"]) and ic.loc["C2", "remedy"] == "coupon50+refund+call"
    # the report reads the stored state: C2 is the call, C5 the exclusion
    rep = build_report(iid, warehouse, now=NOW + timedelta(hours=2))
    assert rep["call_list"] == ["C2"] and rep["excluded"] == 1
    assert rep["compensated"]["core"]["call_list"] == 1 and rep["compensated"]["core"]["excluded"] == 1


def test_repeated_release_changes_nothing(warehouse, provider, pinned_now):
    """A second release (the CLI after the form, a re-run) excludes nobody whose apology is
    already out — the old code suppressed C2's still-held call while C2's apology went out, so
    C2 stayed counted on the call list and was never called — and counts nothing twice."""
    shop(warehouse, {"C1": "ordinary", "C2": "core", "C5": "core"})
    iid = open_incident(warehouse)["incident_id"]
    plan_compensation(iid, warehouse, now=NOW)
    send_apologies(iid, warehouse)
    first = release_core(iid, "lead-li", exclude=["C5"], engine=warehouse)
    assert (first["released"], first["held"]) == (1, 1)
    customers, touches = _customers(warehouse, iid), _touches(warehouse, iid)
    rep = build_report(iid, warehouse, now=NOW)

    again = release_core(iid, "lead-li", exclude=["C5", "C2"], engine=warehouse)  # C5: excluded already; C2: released
    third = release_core(iid, "lead-li", exclude=["C5"], engine=warehouse)
    with warehouse.begin() as conn:  # a re-run recomputes the affected customers and plans again
        record_affected(conn, iid)
    plan_compensation(iid, warehouse)
    pd.testing.assert_frame_equal(_touches(warehouse, iid), touches)
    pd.testing.assert_frame_equal(_customers(warehouse, iid), customers)
    assert build_report(iid, warehouse, now=NOW) == rep
    assert again == {"released": 0, "held": 0, "not_excluded": ["C2"], "not_in_incident": []}
    assert third == {"released": 0, "held": 0, "not_excluded": [], "not_in_incident": []}
    send_apologies(iid, warehouse)  # C2's call is listed now, C5's never
    calls = _touches(warehouse, iid).query("channel == 'staff'").set_index("customer_id")["status"]
    assert calls["C2"] == "sent" and calls["C5"] == "suppressed"
