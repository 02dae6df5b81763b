"""The Prefect side of an incident: who started this run, is the driving run alive, resume it.

The crisis flow pauses for humans (``pause_flow_run(wait_for_input=...)``) under pause keys
``statement-<n>`` and ``core-review-<n>``; ``userops incident approve`` reads the key to know
which form to answer and resumes the run with ``resume_flow_run(id, run_input=...)``.
"""
from __future__ import annotations

from uuid import UUID

ALIVE = {"SCHEDULED", "PENDING", "RUNNING", "PAUSED", "CANCELLING"}
# the actor stored for a run started by hand in the Prefect UI (shown in the shop's language:
# tasks.crisis.report.actor_word)
UI_OPERATOR = "operator (Prefect UI)"


def current_run() -> dict:
    """``{"flow_run_id", "source", "actor"}`` of the running flow (manual / spike)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return {"flow_run_id": None, "source": "manual", "actor": "operator"}
    fr = ctx.flow_run
    created = getattr(fr, "created_by", None)
    tags = list(fr.tags or [])
    source, actor = "manual", UI_OPERATOR
    if created is not None and str(getattr(created, "type", "")).upper() == "AUTOMATION":
        source, actor = "spike", f"automation:{created.display_value or created.id}"
    elif any(tg.startswith("userops-cli:") for tg in tags):
        actor = "cli:" + next(tg for tg in tags if tg.startswith("userops-cli:")).split(":", 1)[1]
    elif created is not None and getattr(created, "display_value", None):
        actor = str(created.display_value)
    if any(tg == "userops-spike" for tg in tags):
        source = "spike"
    return {"flow_run_id": str(fr.id), "source": source, "actor": actor}


def run_state(flow_run_id: str | None) -> tuple[str | None, str | None]:
    """(state type, pause key) of a flow run; (None, None) when it does not exist."""
    if not flow_run_id:
        return None, None
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            fr = client.read_flow_run(UUID(str(flow_run_id)))
    except (ObjectNotFound, ValueError):
        return None, None
    if fr.state is None:
        return None, None
    key = fr.state.state_details.pause_key if fr.state.state_details else None
    return fr.state.type.value if hasattr(fr.state.type, "value") else str(fr.state.type), key


def is_alive(flow_run_id: str | None) -> bool:
    state, _ = run_state(flow_run_id)
    return state in ALIVE


def force_running(flow_run_id: str) -> None:
    """After a pause ran out (``FlowPauseTimeout``) the run is still PAUSED on the server; set
    it running again so the flow can record the expiry and go on with the next step."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(str(flow_run_id)), Running(), force=True)


def release_paused(flow_run_id: str | None, actor: str) -> str | None:
    """The incident was closed while its run waits in a pause form: answer the form with nothing
    approved, so the run carries on, finds the incident closed and finishes (Completed, saying
    so). Cancelling instead would leave a run started in a terminal (``incident open --local``)
    polling its pause until the wait ran out. Returns the pause key answered, None when the run
    was not paused for a form."""
    state, key = run_state(flow_run_id)
    if state != "PAUSED" or not key:
        return None
    if key.startswith("statement-"):
        resume(flow_run_id, {"statement": "", "approve": False, "approver": actor, "takedown_confirmed": False, "note": ""})
    elif key.startswith("core-review-"):
        resume(flow_run_id, {"approve": False, "reviewer": actor, "exclude_customers": [], "note": ""})
    else:
        return None
    return key


def resume(flow_run_id: str, run_input: dict) -> None:
    from prefect.flow_runs import resume_flow_run

    resume_flow_run(UUID(str(flow_run_id)), run_input=run_input)
