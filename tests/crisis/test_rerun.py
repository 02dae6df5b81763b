"""A crisis run that failed part-way, run again: it converges to what one clean run leaves."""
from __future__ import annotations

import json

import pytest

from tests.crisis.conftest import shop
from tests.crisis.test_flow import crisis_env, order_system, use  # noqa: F401  (fixtures)
from userops.db import read_frame

pytestmark = [pytest.mark.xdist_group("prefect"), pytest.mark.prefect, pytest.mark.slow]


def test_a_run_that_died_after_opening_is_announced_once_by_the_next(prefect_server, warehouse, crisis_env, monkeypatch):
    """The incident is committed, then the run fails before it announced the opening (here:
    finding the affected customers raises; a killed process is the same). The next run joins
    the incident, takes it over and announces it: once, however often it is run."""
    from flows.crisis import crisis_response

    # nobody waits for a human here: the statement and the core review expire at once
    use(monkeypatch, USEROPS_CRISIS__STATEMENT_WAIT_HOURS=0, USEROPS_CRISIS__CORE_REVIEW_WAIT_HOURS=0)
    shop(warehouse, {"C1": "ordinary", "C3": "potential"})
    _dies_once(monkeypatch)
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


# --------------------------------------------------------------------------- a join that died
def _buyers_of_new_sku(engine):
    """C5 (potential) and C6 (core) bought SKU-NEW, a sister product of the same batch."""
    from datetime import timedelta

    from tests.crisis.conftest import NOW, add_customers, add_orders, add_tags

    with engine.begin() as conn:
        add_customers(conn, ["C5", "C6"])
        add_orders(conn, [("O-C5", "C5", NOW - timedelta(days=3), "paid", "SKU-NEW", 1, 30.0, "水杯"),
                          ("O-C6", "C6", NOW - timedelta(days=4), "paid", "SKU-NEW", 1, 80.0, "水杯")])
        add_tags(conn, {"C5": "potential", "C6": "core"})


def _dies_once(monkeypatch):
    """The next crisis run fails right after its incident (or a join's SKUs) was saved (here:
    finding the affected customers raises once; a killed process is the same)."""
    import flows.crisis as crisis

    real = crisis.record_affected
    calls = []

    def dies_once(conn, incident_id, *a, **kw):
        calls.append(incident_id)
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return real(conn, incident_id, *a, **kw)

    monkeypatch.setattr(crisis, "record_affected", dies_once)


def _compensation_under_way(iid, engine):
    """The run driving the incident got this far: the SKU taken down, the statement approved,
    the apologies planned and the non-core ones sent."""
    from tasks.crisis.clarify import approve_statement, draft_statement
    from tasks.crisis.compensate import plan_compensation, send_apologies
    from tasks.crisis.control import run_control

    run_control(iid, engine=engine)
    draft_statement(iid, engine=engine)
    approve_statement(iid, None, "pr-zhao", engine=engine)
    plan_compensation(iid, engine=engine)
    send_apologies(iid, engine=engine)


def _takedowns_of(order_system, sku):
    return [t for t in order_system.takedowns if sku in t["skus"]]


def _delivered(provider):
    keys = [p["touch_key"] for p in provider.delivered.values()]
    assert len(keys) == len(set(keys)) and provider.stats()["duplicates"] == 0, keys
    return sorted(k.split("|")[1] for k in keys)


def test_a_join_that_died_after_saving_its_sku_is_finished_by_its_rerun(prefect_server, warehouse, crisis_env, order_system,
                                                                         monkeypatch):
    """The incident is driven by a live run (paused for the core review, its compensation under
    way); a second trigger for it and a sister SKU joins, the SKU is saved into the incident, then the
    joining run fails. Its re-run (and one more) takes the SKU down once and apologises once to
    each of its buyers (the core one held for review); nobody already served hears twice."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Paused

    from flows.crisis import crisis_response
    from tasks.crisis.compensate import release_core, send_apologies
    from tests.crisis.conftest import open_incident

    provider = crisis_env
    shop(warehouse, {"C1": "ordinary", "C2": "core", "C3": "potential"})
    _buyers_of_new_sku(warehouse)

    @flow(name="crisis-run-waiting-for-the-core-review")
    def driver():
        pass

    with get_client(sync_client=True) as c:  # the live run driving the incident, paused for the core review
        fr = c.create_flow_run(flow=driver, name="driver")
        c.set_flow_run_state(fr.id, Paused(pause_key="core-review-1", timeout_seconds=3600), force=True)
    iid = open_incident(warehouse, flow_run_id=str(fr.id))["incident_id"]
    _compensation_under_way(iid, warehouse)
    assert _delivered(provider) == ["C1", "C3"]

    _dies_once(monkeypatch)
    first = crisis_response(skus=["SKU-BAD", "SKU-NEW"], reason="同批次杯盖漏水", return_state=True)
    assert first.is_failed()
    held = read_frame(warehouse, "SELECT sku, incident_id FROM incident_skus ORDER BY sku")
    assert held.values.tolist() == [["SKU-BAD", iid], ["SKU-NEW", iid]]  # saved before the failure

    for _ in range(2):  # the re-run, and one more
        state = crisis_response(skus=["SKU-BAD", "SKU-NEW"], reason="同批次杯盖漏水", return_state=True)
        assert state.is_completed(), state
    assert len(read_frame(warehouse, "SELECT 1 FROM incidents")) == 1
    assert len(_takedowns_of(order_system, "SKU-NEW")) == 1
    assert len(_takedowns_of(order_system, "SKU-BAD")) == 1
    control = read_frame(warehouse, "SELECT status, result FROM incident_steps WHERE incident_id = :i AND step = 'control'", {"i": iid})
    assert control["status"].iloc[0] == "done"
    assert json.loads(control["result"].iloc[0])["taken_down"] == ["SKU-BAD", "SKU-NEW"]
    assert _delivered(provider) == ["C1", "C3", "C5"]
    touches = read_frame(warehouse, "SELECT customer_id, status FROM touches WHERE channel <> 'staff' ORDER BY customer_id")
    assert dict(touches.values.tolist()) == {"C1": "sent", "C2": "awaiting_review", "C3": "sent", "C5": "sent",
                                              "C6": "awaiting_review"}
    joined = read_frame(warehouse, "SELECT channel, body FROM alert_outbox WHERE dedupe_key LIKE :k", {"k": f"%{iid}|joined%"})
    assert len(joined) == len(joined["channel"].unique()) >= 1 and joined["body"].str.contains("SKU-NEW").all(), joined

    release_core(iid, "lead-li", engine=warehouse)  # the reviewer: both core apologies go out, once
    send_apologies(iid, engine=warehouse)
    assert _delivered(provider) == ["C1", "C2", "C3", "C5", "C6"]


def test_the_driving_run_takes_down_what_a_dead_join_left(prefect_server, sqlite_warehouse, crisis_env, order_system,
                                                           monkeypatch):
    """The driving run waits for the statement; a joining run saves a sister SKU and dies, and
    nobody runs it again. When the driver carries on it takes that SKU down (once) and
    compensates its buyers with the others', core ones after the review."""
    from prefect.flow_runs import resume_flow_run
    from uuid import UUID

    from flows.crisis import crisis_response
    from tests.crisis.test_flow import cli, start_flow, wait_paused

    provider = crisis_env
    shop(sqlite_warehouse, {"C1": "ordinary", "C2": "core", "C3": "potential"})
    _buyers_of_new_sku(sqlite_warehouse)
    th, box = start_flow(skus=["SKU-BAD"], reason="部分批次杯盖漏水")
    inc = wait_paused(sqlite_warehouse, "statement-1")
    iid, fr_id = inc["incident_id"], inc["flow_run_id"]

    _dies_once(monkeypatch)
    assert crisis_response(skus=["SKU-BAD", "SKU-NEW"], reason="同批次", return_state=True).is_failed()
    assert not _takedowns_of(order_system, "SKU-NEW")

    resume_flow_run(UUID(fr_id), run_input={"statement": "关于杯盖漏水的说明", "approve": True, "approver": "pr-zhao"})
    wait_paused(sqlite_warehouse, "core-review-1")
    assert len(_takedowns_of(order_system, "SKU-NEW")) == 1
    assert _delivered(provider) == ["C1", "C3", "C5"]
    cli("incident", "approve", iid, "--core", "--by", "lead-li")
    th.join(120)
    assert not th.is_alive() and box["state"].is_completed(), box
    assert _delivered(provider) == ["C1", "C2", "C3", "C5", "C6"]

    # the join run again afterwards: nothing more to do, nothing twice
    assert crisis_response(skus=["SKU-BAD", "SKU-NEW"], reason="同批次", return_state=True).is_completed()
    assert len(_takedowns_of(order_system, "SKU-NEW")) == 1 and len(_takedowns_of(order_system, "SKU-BAD")) == 1
    assert _delivered(provider) == ["C1", "C2", "C3", "C5", "C6"]
    steps = read_frame(sqlite_warehouse, "SELECT step, status FROM incident_steps WHERE incident_id = :i", {"i": iid})
    assert set(steps["status"]) == {"done"}


def test_the_hourly_monitor_finishes_a_dead_join_nobody_reruns(prefect_server, warehouse, crisis_env, order_system,
                                                                monkeypatch):
    """The run that drove the incident has finished (its apologies sent); a joining run saves
    a sister SKU and dies, and nobody runs it again. The hourly monitor takes the SKU down
    (once), apologises to its buyers (the core one held for review) and does not close the
    incident meanwhile; its next hour does nothing twice."""
    from prefect import flow

    from flows.crisis import crisis_response
    from flows.monitor import hourly_monitor
    from tests.crisis.conftest import open_incident

    provider = crisis_env
    shop(warehouse, {"C1": "ordinary", "C3": "potential"})
    _buyers_of_new_sku(warehouse)

    @flow(name="crisis-run-that-finished")
    def driver():
        return "done"

    state = driver(return_state=True)  # a real run, over (not alive)
    iid = open_incident(warehouse, flow_run_id=str(state.state_details.flow_run_id))["incident_id"]
    _compensation_under_way(iid, warehouse)
    assert _delivered(provider) == ["C1", "C3"]

    _dies_once(monkeypatch)
    assert crisis_response(skus=["SKU-BAD", "SKU-NEW"], reason="同批次", return_state=True).is_failed()
    assert not _takedowns_of(order_system, "SKU-NEW")

    first = hourly_monitor()
    assert first["orphaned_work"][iid]["take_down"] == ["SKU-NEW"] and first["orphaned_work"][iid]["planned"] >= 2
    assert len(_takedowns_of(order_system, "SKU-NEW")) == 1 and len(_takedowns_of(order_system, "SKU-BAD")) == 1
    assert _delivered(provider) == ["C1", "C3", "C5"]
    touches = read_frame(warehouse, "SELECT customer_id, status FROM touches WHERE channel <> 'staff' ORDER BY customer_id")
    assert dict(touches.values.tolist())["C6"] == "awaiting_review"
    assert read_frame(warehouse, "SELECT status FROM incidents")["status"].tolist() == ["open"]  # C6 still owed

    again = hourly_monitor()
    assert again["orphaned_work"] == {}
    assert len(_takedowns_of(order_system, "SKU-NEW")) == 1 and _delivered(provider) == ["C1", "C3", "C5"]
