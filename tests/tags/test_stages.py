"""The tag stages sit where DEVELOPING.md says: after ingest's reports, tags then health,
before churn scoring, campaigns, crisis and the digest."""
from __future__ import annotations

from flows import stages
from flows.tags import health_check, refresh_tags


def test_tags_and_health_are_nightly_stages_in_order():
    names = [n for n, _ in stages.NIGHTLY_STAGES]
    assert ("tags", refresh_tags) in stages.NIGHTLY_STAGES
    assert ("health", health_check) in stages.NIGHTLY_STAGES
    # every stage exists and runs in this order: one dropped or moved fails here
    assert names == ["quarantine-report", "tags", "health", "churn", "campaigns", "crisis", "digest"]
