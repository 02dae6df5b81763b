"""Complaint-spike monitor on fixtures: fires once per spike, never on noise."""
from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from tasks.crisis.spike import EVENT, check_spikes, detect_hot
from tests.crisis.conftest import NOW, add_feedback
from tests.prefect_events import wait_events


class Recorder:
    """An emitter for Prefect being unreachable (``fail``); the other tests emit to the
    session's Prefect server."""

    def __init__(self, fail=False):
        self.events = []
        self.fail = fail

    def __call__(self, event, resource, payload, id):
        if self.fail:
            return None
        self.events.append({"event": event, "resource": resource, "payload": payload, "id": id})
        return object()


def burst(engine, sku, n, end, span_minutes=90):
    times = [end - timedelta(minutes=span_minutes * k / max(n - 1, 1)) for k in range(n)]
    with engine.begin() as conn:
        add_feedback(conn, sku, times)


def _spike_events(sku: str, n: int, timeout: float = 30) -> list:
    """The spike events of ``sku`` on the session's server (a SKU of the test's own: the
    event ids are deterministic per spike, and the server is shared by both databases' runs)."""
    return wait_events(EVENT, lambda e: e.resource.id == f"userops.sku.{sku}", n, timeout)


@pytest.mark.xdist_group("prefect")
def test_fires_once_per_spike_and_not_on_noise(warehouse, prefect_server):
    rng = np.random.default_rng(1)
    bad = f"SKU-BAD-{uuid.uuid4().hex[:8]}"
    # noise 1: 20 complaints spread over three days
    with warehouse.begin() as conn:
        add_feedback(conn, "SKU-SPREAD", [NOW - timedelta(hours=float(h)) for h in np.linspace(1, 72, 20)])
        # noise 2: a popular product that always gets ~3 complaints per 2 hours; 9 today
        usual = NOW - timedelta(days=2) - pd.to_timedelta(rng.uniform(0, 26 * 24, 900), unit="h")
        add_feedback(conn, "SKU-BUSY", list(usual))
        add_feedback(conn, "SKU-BUSY", [NOW - timedelta(minutes=10 * k) for k in range(9)])
        # suggestions and praise are not complaints
        add_feedback(conn, "SKU-PRAISED", [NOW - timedelta(minutes=k) for k in range(30)], kind="praise")
    burst(warehouse, bad, 12, NOW - timedelta(minutes=5))

    out = check_spikes(warehouse, NOW)  # emitted to the Prefect server
    assert out["new_spikes"] == [bad]
    (ev,) = _spike_events(bad, 1)
    assert ev.event == EVENT == "userops.complaints.spike"
    assert ev.resource.id == f"userops.sku.{bad}"
    assert ev.payload["skus"] == [bad]
    assert ev.payload["complaints"] == 12
    assert ev.payload["window_hours"] == 2.0

    # the same spike seen again: by the next hourly check, the nightly rescan, more complaints
    check_spikes(warehouse, NOW)
    burst(warehouse, bad, 5, NOW + timedelta(minutes=50), span_minutes=20)
    check_spikes(warehouse, NOW + timedelta(hours=1))
    check_spikes(warehouse, NOW + timedelta(hours=20))
    assert len(_spike_events(bad, 2, timeout=4)) == 1  # waits (after the emitter drained) for a second one: none comes

    with warehouse.connect() as conn:
        rows = conn.exec_driver_sql("SELECT sku, peak_complaints, rule FROM complaint_spikes").fetchall()
    assert [(r[0], r[2]) for r in rows] == [(bad, "count")]
    assert rows[0][1] >= 12

    # a new burst well after the cooldown is a new spike
    burst(warehouse, bad, 11, NOW + timedelta(hours=40))
    check_spikes(warehouse, NOW + timedelta(hours=40, minutes=1))
    evs = _spike_events(bad, 2)
    assert len(evs) == 2 and evs[0].id != evs[1].id


@pytest.mark.xdist_group("prefect")
def test_rate_far_above_usual(warehouse, prefect_server):
    # six complaints in an hour for a product that never gets any: below 10, far above usual
    quiet = f"SKU-QUIET-{uuid.uuid4().hex[:8]}"
    burst(warehouse, quiet, 6, NOW - timedelta(minutes=1), span_minutes=60)
    hot = detect_hot(warehouse, NOW)
    assert set(hot["sku"]) == {quiet}
    assert set(hot["rule"]) == {"rate"}
    check_spikes(warehouse, NOW)
    (ev,) = _spike_events(quiet, 1)
    assert ev.payload["skus"] == [quiet] and ev.payload["rule"] == "rate"


def test_thresholds_are_configurable(warehouse, monkeypatch):
    from userops.settings import reset_settings

    burst(warehouse, "SKU-A", 12, NOW - timedelta(minutes=1))
    monkeypatch.setenv("USEROPS_CRISIS__SPIKE_COMPLAINTS", "20")
    monkeypatch.setenv("USEROPS_CRISIS__SPIKE_RATE_MIN_COMPLAINTS", "15")
    reset_settings()
    assert detect_hot(warehouse, NOW).empty
    monkeypatch.setenv("USEROPS_CRISIS__SPIKE_COMPLAINTS", "12")
    reset_settings()
    assert set(detect_hot(warehouse, NOW)["sku"]) == {"SKU-A"}


def test_emission_retried_when_events_are_unavailable(warehouse):
    burst(warehouse, "SKU-BAD", 10, NOW - timedelta(minutes=1))
    down = Recorder(fail=True)
    out = check_spikes(warehouse, NOW, emit=down)
    assert out["new_spikes"] == ["SKU-BAD"] and out["emitted"] == []
    up = Recorder()
    check_spikes(warehouse, NOW + timedelta(hours=1), emit=up)
    check_spikes(warehouse, NOW + timedelta(hours=2), emit=up)
    assert len(up.events) == 1


def test_a_complaint_at_the_check_instant_counts(warehouse):
    # whole-second timestamps compare the same on SQLite (text) and PostgreSQL
    burst(warehouse, "SKU-EDGE", 10, NOW)
    assert detect_hot(warehouse, NOW)["complaints"].max() == 10
