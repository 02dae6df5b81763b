"""A re-run of the churn stage on a drift breach day raises the breach's event once."""
from __future__ import annotations

import pytest

from models import registry, scoring
from tests.churn.conftest import AS_OF
from userops.db import read_frame


@pytest.mark.xdist_group("prefect")
def test_a_rerun_of_a_drift_breach_day_emits_its_event_once(loaded, prefect_server, monkeypatch):
    import prefect.events

    real = prefect.events.emit_event
    emitted = []

    def spy(*a, **kw):  # the real emission to the session's server, counted
        emitted.append(kw.get("event"))
        return real(*a, **kw)

    monkeypatch.setattr(prefect.events, "emit_event", spy)
    scoring.score_night(AS_OF, loaded, overlay=False)
    with loaded.begin() as conn:  # the reference profile says everyone bought recently: drift
        model = registry.load_champion(conn)
        prof = model.drift_profile["recency_days"]
        shares = [0.0] * len(prof["shares"])
        shares[0] = 1.0
        model.drift_profile = {**model.drift_profile, "recency_days": {**prof, "shares": shares}}
        scored = scoring.score(conn, scoring.load_frames(conn, AS_OF), model)
    for _ in range(3):  # the night, then two re-runs of the stage
        with loaded.begin() as conn:
            assert scoring.drift_check(conn, scored, model)["breach"]
    assert emitted.count(scoring.DRIFT_EVENT) == 1
    with loaded.connect() as conn:
        assert len(read_frame(conn, "SELECT 1 FROM health_breaches WHERE metric = 'model_drift'")) == 1
        assert len(read_frame(conn, "SELECT DISTINCT dedupe_key FROM alert_outbox WHERE kind = 'model_drift'")) == 1
