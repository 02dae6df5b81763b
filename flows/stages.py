"""The nightly stages after ingest, in the order they run.

Each entry is (name, subflow) where the subflow takes ``as_of`` and ``run_id`` and returns a
dict of figures for the digest. Stages are appended here as they land.
"""
from __future__ import annotations

from flows.reports import quarantine_report
from flows.tags import health_check, refresh_tags

NIGHTLY_STAGES: list = [
    ("quarantine-report", quarantine_report),  # right after ingest: tonight's rejected records
    ("tags", refresh_tags),  # tags, lifecycle stages, stage history (issue 3)
    ("health", health_check),  # health snapshot, breach events, health report (issue 3)
]

# Churn scoring (issue 4): after tags/health, before campaigns (it applies the at-risk overlay).
from flows.churn import score_churn  # noqa: E402

NIGHTLY_STAGES.append(("churn", score_churn))

# Campaigns (issue 6): after churn scoring and the at-risk overlay, before the crisis check.
from flows.campaigns import run_campaigns  # noqa: E402

NIGHTLY_STAGES.append(("campaigns", run_campaigns))

# 3C crisis (issue 7): complaint-spike check + deadline watch, after campaigns, right before the digest.
from flows.monitor import crisis_nightly  # noqa: E402

NIGHTLY_STAGES.append(("crisis", crisis_nightly))

# The digest (issue 5) reads what every stage above wrote: keep it the LAST stage (add yours above).
from flows.digest import nightly_digest  # noqa: E402

NIGHTLY_STAGES.append(("digest", nightly_digest))
