"""A crisis run that failed part-way, run again: it converges to what one clean run leaves."""
from __future__ import annotations

import pytest

from tests.crisis.conftest import shop
from tests.crisis.test_flow import crisis_env, order_system, use  # noqa: F401  (fixtures)
from userops.db import read_frame

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect, pytest.mark.slow]


def test_a_run_that_died_after_opening_is_announced_once_by_the_next(prefect_server, warehouse, crisis_env, monkeypatch):
    """The incident is committed, then the run fails before it announced the opening (here:
    finding the affected customers raises; a killed process is the same). The next run joins
    the incident, takes it over and announces it: once, however often it is run."""
    import flows.crisis as crisis
    from flows.crisis import crisis_response

    # nobody waits for a human here: the statement and the core review expire at once
    use(monkeypatch, USEROPS_CRISIS__STATEMENT_WAIT_HOURS=0, USEROPS_CRISIS__CORE_REVIEW_WAIT_HOURS=0)
    shop(warehouse, {"C1": "ordinary", "C3": "potential"})
    real = crisis.record_affected
    calls = []

    def dies_once(conn, incident_id, *a, **kw):
        calls.append(incident_id)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real(conn, incident_id, *a, **kw)

    monkeypatch.setattr(crisis, "record_affected", dies_once)
    first = crisis_response(skus=["SKU-BAD"], reason="漏水", return_state=True)
    assert first.is_failed()
    incidents = read_frame(warehouse, "SELECT incident_id FROM incidents")
    assert len(incidents) == 1  # the opening was committed before the failure
    iid = incidents["incident_id"].iloc[0]

    for _ in range(2):  # the re-run, and one more
        crisis_response(skus=["SKU-BAD"], reason="漏水", return_state=True)
    assert len(read_frame(warehouse, "SELECT incident_id FROM incidents")) == 1
    opened = read_frame(warehouse, "SELECT dedupe_key, channel, title FROM alert_outbox WHERE kind = 'crisis_opened'")
    assert len(opened) == len(opened["channel"].unique()) >= 1, opened  # once per channel
    assert (opened["dedupe_key"].str.contains(iid)).all()
    assert not opened["dedupe_key"].str.contains("joined").any()
    sent = read_frame(warehouse, "SELECT customer_id, COUNT(*) AS n FROM touches GROUP BY customer_id")
    assert set(sent["customer_id"]) == {"C1", "C3"} and (sent["n"] == 1).all()
