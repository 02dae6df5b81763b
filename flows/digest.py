"""The nightly digest: the last nightly stage tells the operator how the night went.

    build the digest from the warehouse  ->  publish it in the Prefect UI (``nightly-digest``)
    ->  queue it for the operator's channels  ->  deliver

Inside the nightly run the digest is held until the run finishes: the run's completion (or
failure) hook rebuilds it with the final figures - status, duration, stage times, rows
loaded and quarantined - and delivers it (``tasks.alerts.digest.finalize_digest``). If the
run never finishes, the held digest goes out anyway after ``HOLD_SECONDS``. Run on its own
(``nightly_digest(as_of, run_id)`` by hand) it is delivered right away.

A channel that is down does not fail the night: the digest waits in the outbox.
"""
from __future__ import annotations

from datetime import date

from prefect import flow
from prefect.runtime import flow_run

from flows.hooks import ALERT_HOOKS
from userops import run_names
from userops.i18n import join_list, labelled
from tasks.alerts.digest import build_digest_task, publish_digest_task, queue_digest_task
from tasks.alerts.tasks import deliver_task

HOLD_SECONDS = 900


@flow(name="nightly-digest", log_prints=True, flow_run_name=run_names.nightly_digest, **ALERT_HOOKS)
def nightly_digest(as_of: date, run_id: str) -> dict:
    """Build, publish and send tonight's digest (夜间摘要).

    Args:
        as_of: The business day the nightly run computed.
        run_id: The nightly run's id (its Prefect flow run id links the digest to the run).
    """
    # inside the nightly run (its body runs there, or as its subflow): held until it ends
    inside_the_run = str(run_id) in {str(flow_run.id or ""), str(flow_run.parent_flow_run_id or "")}
    digest = build_digest_task(as_of, run_id)
    artifact = publish_digest_task(digest)
    queued = queue_digest_task(digest, HOLD_SECONDS if inside_the_run else 0)
    delivery = {"held": "until the nightly run finishes"} if inside_the_run else deliver_task()
    verdicts = join_list((f"{ch} {v}" for ch, v in (delivery.get("channels") or {}).items()), digest.lang)
    return {
        "artifact_key": artifact,
        "queued": queued,
        "delivery": delivery,
        "severity": digest.severity,
        "figures": digest.figures,
        "summary": [labelled(digest.title, verdicts, digest.lang) if verdicts else digest.title],
    }
