"""Third crisis audit: a closed incident ends the checklist; reminders and escalations of a
finished step are never posted; the deadline watch's cadence meets the 2h Control window;
confirming the take-down from the statement form records only that; incident ids in shop time."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.crisis.conftest import NOW, open_incident, shop
from userops.db import read_frame

CUSTOMERS = {"C1": "ordinary", "C2": "potential"}


def _outbox(engine, kind):
    return read_frame(engine, "SELECT id, status, title, body FROM alert_outbox WHERE kind = :k ORDER BY id", {"k": kind})


def test_incident_id_in_shop_time(sqlite_warehouse, pinned_now):
    """Item 5: opened at 00:30 Shanghai on 11-21 (16:30 UTC on 11-20): the id says 20261121-0030."""
    shop(sqlite_warehouse, CUSTOMERS)
    at = datetime(2026, 11, 20, 16, 30)
    ids = {open_incident(sqlite_warehouse, skus=(f"SKU-{k}",), now=at)["incident_id"] for k in range(5)}
    assert len(ids) == 5
    assert all(i.startswith("INC-20261121-0030-") for i in ids), ids
