"""``userops incident``: open, list, show and approve crisis incidents (3C).

* ``open --sku SKU [--sku SKU2] --reason TEXT [--severity LEVEL]`` starts the served
  ``crisis-response`` deployment — the same as the Run form in the Prefect UI (``--local``
  runs the flow in this terminal instead).
* ``list`` / ``show ID``: the incidents; one incident's timeline (every step, who, when,
  deadline met or not), the record of reminders and approvals, compensation per tier.
* ``approve ID``: what the incident waits for — the statement (``--statement-file`` to
  publish your edited text), the core customers' apologies (``--core``, ``--exclude``), a
  manual take-down (``--takedown``). When the flow is paused for it, the flow is resumed
  with your answer (as in the UI); otherwise the approval is recorded and carried out here.
* ``close ID``: close it now (its customers become marketable again) and print the report;
  with compensation unfinished it says what is left and asks for a confirmation (default no).
"""
from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Optional

import typer

from userops.i18n import register as register_messages
from userops.i18n import join_list, pad, parens, t

DEPLOYMENT = "crisis-response/crisis-response"

app = typer.Typer(help="Crisis incidents (3C: control 2h, clarify 4h, compensate 24h).", no_args_is_help=True)

register_messages(
    {
        "incident.none": {"zh-CN": "没有危机事件。", "en": "No incidents."},
        "incident.unknown": {"zh-CN": "没有事件 {incident_id}", "en": "No incident {incident_id}"},
        "incident.not_open": {"zh-CN": "没有处理中的事件 {incident_id}", "en": "No incident {incident_id} (open)"},
        "incident.started": {
            "zh-CN": "已启动危机处理流程（flow run {flow_run_id}）。在 Prefect 界面查看与审批：{url}",
            "en": "Crisis response started (flow run {flow_run_id}). Follow and approve it in the Prefect UI: {url}",
        },
        "incident.no_deployment": {
            "zh-CN": "Prefect 上没有 {name} 部署。请先运行 `userops serve`，或加 --local 在本终端运行。",
            "en": "There is no {name} deployment on Prefect. Run `userops serve` first, or add --local to run it in this terminal.",
        },
        "incident.opened_id": {"zh-CN": "事件编号：{incident_id}", "en": "Incident: {incident_id}"},
        "incident.nothing_pending": {"zh-CN": "事件 {incident_id} 没有等待审批的事项。", "en": "Incident {incident_id} waits for no approval."},
        "incident.approved.statement": {"zh-CN": "声明已批准并发布。", "en": "Statement approved and published."},
        "incident.unknown_sku": {"zh-CN": "仓库里没有任何订单含这些 SKU：{skus}。请检查编码；确实要开启，加 --unknown-ok",
                                 "en": "no order in the warehouse has these SKUs: {skus}. Check the codes; to open it anyway, add --unknown-ok"},
        "incident.list.head": {
            "zh-CN": "事件编号                 状态    级别     开启（店铺时间）  控制     澄清     补偿        SKU  原因",
            "en": "incident                 status  severity opened (shop)     control  clarify  compensate  skus  reason",
        },
        "incident.list.foot": {"zh-CN": "（! = 错过截止时间）", "en": "(! = deadline missed)"},
        "incident.mark.done": {"zh-CN": "完成", "en": "done"},
        "incident.mark.waiting": {"zh-CN": "待人工", "en": "WAIT"},
        "incident.mark.in_progress": {"zh-CN": "进行中", "en": "running"},
        "incident.mark.expired": {"zh-CN": "超时", "en": "EXPIRED"},
        "incident.mark.pending": {"zh-CN": "…", "en": "..."},
        "incident.mark.open": {"zh-CN": "处理中", "en": "open"},
        "incident.mark.closed": {"zh-CN": "已关闭", "en": "closed"},
        "incident.record": {"zh-CN": "## 操作记录", "en": "## Record"},
        "incident.not_continued": {"zh-CN": "已恢复的流程运行没有继续（运行它的终端可能已关闭），改为在这里完成；不会重复发送。",
                                   "en": "The resumed flow run did not carry on (the terminal running it may be closed); finishing it from here instead. Nothing is sent twice."},
        "incident.approved.statement_resumed": {"zh-CN": "声明已批准，流程已继续（发布由流程完成）。",
                                                "en": "Statement approved; the flow was resumed and publishes it."},
        "incident.approved.core": {"zh-CN": "核心客户致歉已复核：放行 {released}，暂缓 {held}。",
                                   "en": "Core apologies reviewed: {released} released, {held} held."},
        "incident.approved.core_resumed": {"zh-CN": "核心客户致歉已复核，流程已继续发送。",
                                           "en": "Core apologies reviewed; the flow was resumed and sends them."},
        "incident.approved.takedown": {"zh-CN": "已确认人工下架。", "en": "Manual take-down confirmed."},
        "incident.exclude_needs_core": {"zh-CN": "--exclude 只能与 --core 一起用（复核核心客户的致歉时排除客户）",
                                        "en": "--exclude goes with --core (it leaves customers out at the core review)"},
        "incident.next": {"zh-CN": "下一步待审批：{what}（再次运行 approve）", "en": "Next waiting: {what} (run approve again)"},
        "incident.closed": {"zh-CN": "事件 {incident_id} 已关闭。", "en": "Incident {incident_id} closed."},
        "incident.unfinished": {
            "zh-CN": "事件 {incident_id} 的补偿尚未完成：{apologies} 条致歉未发出（其中 {awaiting} 条等待核心客户复核），"
            "{unplanned} 位受影响客户尚未安排致歉，{calls} 个回访电话尚未列入回访清单。",
            "en": "Incident {incident_id}: compensation is unfinished: {apologies} apologies not sent ({awaiting} of them await "
            "the core review), {unplanned} affected customers without a planned apology, {calls} calls not yet on the call list.",
        },
        "incident.unfinished.steps": {
            "zh-CN": "事件 {incident_id} 尚未完成：{steps}。关闭后 3C 清单即结束，不再下架确认、发布声明或发送致歉。",
            "en": "Incident {incident_id} is not finished: {steps}. Closing ends its 3C checklist: nothing more is confirmed, published or sent.",
        },
        "incident.closed.run_released": {
            "zh-CN": "等待审批的流程运行 {flow_run_id} 已被告知事件关闭，将自行结束。",
            "en": "The flow run {flow_run_id} waiting for an approval was told the incident is closed and finishes by itself.",
        },
        "incident.unfinished.confirm": {"zh-CN": "仍要关闭吗？", "en": "Close it anyway?"},
        "incident.unfinished.refused": {
            "zh-CN": "未关闭（已记入审计日志）。请先完成补偿（`userops incident approve {incident_id}`），"
            "确实要关闭请再次运行 close 并确认。",
            "en": "Not closed (recorded in the audit log). Finish the compensation first (`userops incident approve {incident_id}`), "
            "or run close again and confirm.",
        },
        "incident.unfinished.forced": {
            "zh-CN": "已确认关闭，未完成的补偿已记入审计日志。",
            "en": "Closed as confirmed; the unfinished compensation is recorded in the audit log.",
        },
    }
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="incident")


def _me(by: Optional[str]) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover
        return "operator"


def _engine():
    from userops.db import get_engine, migrate

    engine = get_engine()
    migrate(engine)
    return engine


def _template_warnings(out: bool = True) -> None:
    """The operator's crisis templates that make a claim without checking whether it holds:
    which template, which claim, the fix (``tasks.crisis.templates.template_problems``).
    ``out``: on stderr before a command's own output; else a section of ``show``."""
    from tasks.crisis.templates import problem_lines, template_problems

    lines = problem_lines(template_problems())
    if not lines:
        return
    if not out:
        typer.echo(t("crisis.template.show") + "\n")
    for line in lines:
        typer.echo(("- " if not out else "") + line, err=out)
    if not out:
        typer.echo("")


@app.command("open")
def open_cmd(
    sku: list[str] = typer.Option(..., "--sku", help="Product SKU concerned (repeat for several)."),
    reason: str = typer.Option(..., "--reason", help=(
        "What happened, in one sentence; it goes into the incident and its alerts (the default statement templates do not "
        "quote it). Phone numbers and emails in it are masked (also in this run's parameters, replaced at its start); do "
        "not paste customers' contact details.")),
    severity: str = typer.Option("high", "--severity", help="low | medium | high | critical"),
    local: bool = typer.Option(False, "--local", help="Run the flow in this terminal instead of on the served deployment."),
    by: Optional[str] = typer.Option(None, "--by", help="Who opens it (default: your login)."),
    unknown_ok: bool = typer.Option(False, "--unknown-ok", help="Open it even for a SKU no order in the warehouse has."),
) -> None:
    """Open an incident for products: the same as the crisis-response Run form in the UI."""
    from tasks.crisis.incidents import SEVERITIES, normalize_skus, unknown_skus
    from userops.cli.options import choice

    choice(severity.lower(), SEVERITIES, "--severity")
    skus = normalize_skus(sku)
    unknown = unknown_skus(_engine(), skus)
    if unknown and not unknown_ok:  # a typo would open a real incident with nobody affected
        typer.echo(t("incident.unknown_sku", skus=join_list(unknown)), err=True)
        raise typer.Exit(2)
    # Prefect keeps a flow run's parameters as typed: phone numbers and emails in the reason
    # are masked before they become one (as the flow itself does for every other start)
    from tasks.crisis import messages  # noqa: F401  (the crisis texts)
    from tasks.crisis.incidents import clean_reason

    reason, masked = clean_reason(reason)
    if masked:
        typer.echo(t("crisis.reason.masked", reason=reason), err=True)
    params = {"skus": skus, "reason": reason, "severity": severity.lower()}
    if unknown and unknown_ok:  # the flow checks the SKUs too: tell it the operator accepted them
        params["unknown_ok"] = True
    if not local:  # (a local run logs it here itself, at the opening)
        _template_warnings()
    if local:
        from prefect import tags

        from flows.crisis import crisis_response

        with tags(f"userops-cli:{_me(by)}"):  # the opener on record, as for a deployment run
            result = crisis_response(**params)
        typer.echo(t("incident.opened_id", incident_id=result["incident_id"]))
        return
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from userops.settings import get_settings

    try:
        fr = run_deployment(DEPLOYMENT, parameters=params, timeout=0, tags=[f"userops-cli:{_me(by)}"])
    except ObjectNotFound:
        typer.echo(t("incident.no_deployment", name=DEPLOYMENT), err=True)
        raise typer.Exit(1)
    url = f"{get_settings().prefect_ui_url.rstrip('/')}/runs/flow-run/{fr.id}"
    typer.echo(t("incident.started", flow_run_id=fr.id, url=url))


@app.command("list")
def list_cmd(all_: bool = typer.Option(True, "--all/--open", help="All incidents (default) or only the open ones.")) -> None:
    """Incidents, newest first, with the state of their three steps."""
    from tasks.crisis.incidents import list_incidents, timeline
    from tasks.crisis.report import code_word
    from tasks.crisis.spike import reason_text
    from userops.clock import to_shop_str
    from userops.privacy import scrub_text

    engine = _engine()
    df = list_incidents(engine, None if all_ else "open")
    if df.empty:
        typer.echo(t("incident.none"))
        return
    typer.echo(t("incident.list.head"))
    for r in df.itertuples(index=False):
        tl = timeline(engine, r.incident_id)
        marks = []
        for s in tl.itertuples(index=False):
            mark = t(f"incident.mark.{s.status}") if s.status in ("done", "waiting", "in_progress", "expired", "pending") else str(s.status)
            if s.met_deadline is False or (not isinstance(s.met_deadline, bool) and str(s.met_deadline) == "False"):
                mark += "!"
            marks.append(mark)
        marks += ["-"] * (3 - len(marks))
        # the reason as the operator reads it (the spike trigger's in their language), one line
        reason = " ".join(scrub_text(reason_text(r.reason) or "-").split())
        reason = reason if len(reason) <= 40 else reason[:39] + "…"
        # the stored codes in the operator's words, as `incident show` says them, padded by
        # display width (a Chinese character takes two columns)
        typer.echo(f"{r.incident_id:<24} {pad(t('incident.mark.' + r.status), 7)} {pad(code_word(r.severity), 8)} {to_shop_str(r.opened_at):<16}  "
                   f"{pad(marks[0], 8)} {pad(marks[1], 8)} {pad(marks[2], 11)} {join_list(json.loads(r.skus))}  {reason}")
    typer.echo(t("incident.list.foot"))


@app.command("show")
def show_cmd(incident_id: str = typer.Argument(..., help="Incident id, e.g. INC-20261122-0930-AB12.")) -> None:
    """One incident's timeline: every step, who did it, when, deadline met or not."""
    from tasks.crisis.incidents import get_incident, incident_audit
    from tasks.crisis.messages import action_word, detail_words
    from tasks.crisis.report import actor_word, build_report, report_markdown
    from userops.clock import to_shop_str

    engine = _engine()
    if get_incident(engine, incident_id) is None:
        typer.echo(t("incident.unknown", incident_id=incident_id), err=True)
        raise typer.Exit(1)
    rep = build_report(incident_id, engine)
    typer.echo(report_markdown(rep))
    if rep["status"] == "open":
        _template_warnings(out=False)
    events = incident_audit(engine, incident_id)
    typer.echo(t("incident.record") + "\n")
    for e in events.itertuples(index=False):
        # the detail in words (澄清事实；已完成；…), counts, levels and SKUs only (detail_words)
        extra = detail_words(e.action, json.loads(e.detail or "{}"))
        typer.echo(f"- {to_shop_str(e.at)}  {actor_word(e.actor):<28} {action_word(e.action)}" + (f"  {parens(extra)}" if extra else ""))


def _continued(done, seconds: float | None = None) -> bool:
    """After resuming a paused run: did it carry on (``done()`` turned true) within two of its
    input polls? A run whose process is gone (``incident open --local`` stopped) never does."""
    import time

    from userops.settings import get_settings

    deadline = time.monotonic() + (seconds if seconds is not None else 2 * get_settings().crisis.pause_poll_seconds + 5)
    while time.monotonic() < deadline:
        if done():
            return True
        time.sleep(0.5)
    return bool(done())


@app.command("approve")
def approve_cmd(
    incident_id: str = typer.Argument(..., help="Incident id."),
    statement_file: Optional[Path] = typer.Option(None, "--statement-file", help="Publish this (edited) text instead of the draft."),
    statement: bool = typer.Option(False, "--statement", help="Approve the statement."),
    core: bool = typer.Option(False, "--core", help="Approve the core customers' apologies."),
    exclude: list[str] = typer.Option([], "--exclude", help="With --core: a customer id to leave out: nothing from this incident (no apology, not on the call list); repeatable."),
    takedown: bool = typer.Option(False, "--takedown", help="Confirm the products were taken off sale by hand."),
    by: Optional[str] = typer.Option(None, "--by", help="Your name for the record (default: your login)."),
) -> None:
    """Approve what the incident waits for (without flags: the statement, else the core apologies)."""
    from tasks.crisis.clarify import approve_statement, refresh_draft
    from tasks.crisis.compensate import awaiting_review, refresh_compensated, release_core, send_apologies
    from tasks.crisis.control import confirm_manual_takedown
    from tasks.crisis.incidents import get_incident, get_step
    from tasks.crisis.runs import resume, run_state

    if exclude and not core:  # an exclusion is a decision of the core review: never dropped silently
        raise typer.BadParameter(t("incident.exclude_needs_core"), param_hint="'--exclude'")
    engine = _engine()
    inc = get_incident(engine, incident_id)
    if inc is None:
        typer.echo(t("incident.unknown", incident_id=incident_id), err=True)
        raise typer.Exit(1)
    if inc["status"] != "open":  # a closed incident's checklist ended: nothing to approve
        typer.echo(t("incident.not_open", incident_id=incident_id), err=True)
        raise typer.Exit(1)
    who = _me(by)
    text = statement_file.read_text(encoding="utf-8") if statement_file else None
    state, key = run_state(inc["flow_run_id"])
    paused_for = (key or "").rsplit("-", 1)[0] if state == "PAUSED" else None
    statement_pending = get_step(engine, incident_id, "clarify")["status"] != "done"
    core_pending = not awaiting_review(incident_id, engine).empty
    explicit = statement or core or takedown or bool(statement_file)
    do_statement = statement_pending and (statement or bool(statement_file) or not explicit)
    do_core = core_pending and (core or (not explicit and not statement_pending))
    did = False

    if takedown:
        if confirm_manual_takedown(incident_id, who, engine=engine):
            refresh_draft(incident_id, engine)  # the draft now says the products are off sale (unless edited)
        typer.echo(t("incident.approved.takedown"))
        did = True
    if do_statement:
        resumed = False
        if paused_for == "statement":
            resume(inc["flow_run_id"], {"statement": text or inc["statement"] or "", "approve": True, "approver": who,
                                        "takedown_confirmed": takedown, "note": "approved from the CLI"})
            resumed = _continued(lambda: get_step(engine, incident_id, "clarify")["status"] == "done")
            typer.echo(t("incident.approved.statement_resumed" if resumed else "incident.not_continued"))
        if not resumed:  # no paused run, or one nobody continues (its terminal closed): publish from here, once
            approve_statement(incident_id, text, who, engine=engine)
            typer.echo(t("incident.approved.statement"))
        did = True
    if do_core:
        resumed = False
        if paused_for == "core-review":
            reviews_before = len(_core_reviews(engine, incident_id))
            resume(inc["flow_run_id"], {"approve": True, "reviewer": who, "exclude_customers": list(exclude),
                                        "note": "approved from the CLI"})
            resumed = _continued(lambda: awaiting_review(incident_id, engine).empty)
            typer.echo(t("incident.approved.core_resumed" if resumed else "incident.not_continued"))
            if resumed and exclude:  # the flow's warning is in the run log: here too
                _warn_not_excluded(incident_id, _core_reviews(engine, incident_id)[reviews_before:])
        if not resumed:
            res = release_core(incident_id, who, list(exclude), engine=engine)
            send_apologies(incident_id, engine)
            refresh_compensated(incident_id, engine)
            # (a customer named who could not be excluded any more: release_core's warning, on stderr)
            typer.echo(t("incident.approved.core", released=f"{res['released']:,}", held=f"{res['held']:,}"))
        did = True
    if exclude and not do_core:  # no core review waits: nobody named is excluded now
        from tasks.crisis.compensate import split_not_excluded

        typer.echo(t("incident.nothing_pending", incident_id=incident_id), err=True)
        with engine.connect() as conn:
            members, others = split_not_excluded(conn, incident_id, exclude)
        _warn_not_excluded(incident_id, [{"not_excluded": members, "not_in_incident": others}])
        raise typer.Exit(1)
    if not did:
        typer.echo(t("incident.nothing_pending", incident_id=incident_id))
        return
    if do_statement and core_pending and not do_core:
        typer.echo(t("incident.next", what="--core"))


def _core_reviews(engine, incident_id: str) -> list[dict]:
    """The core reviews recorded for the incident (``compensation.core_reviewed``), oldest first."""
    from tasks.crisis.incidents import incident_audit

    ev = incident_audit(engine, incident_id)
    return [json.loads(e.detail or "{}") for e in ev.itertuples(index=False) if e.action == "compensation.core_reviewed"]


def _warn_not_excluded(incident_id: str, reviews: list[dict]) -> None:
    """On stderr, the customers named who were not excluded: the incident's whose apology was not
    held for the review, and the ids that are no customer of the incident (or of the shop)."""
    from tasks.crisis.compensate import warn_not_excluded

    names = sorted({str(c) for r in reviews for c in (r.get("not_excluded") or [])})
    others = sorted({str(c) for r in reviews for c in (r.get("not_in_incident") or [])})
    for line in warn_not_excluded(incident_id, names, others):
        typer.echo(line, err=True)


@app.command("close")
def close_cmd(
    incident_id: str = typer.Argument(..., help="Incident id."),
    by: Optional[str] = typer.Option(None, "--by", help="Your name for the record (default: your login)."),
) -> None:
    """Close the incident now: its customers are marketable again; prints the closing report."""
    # With compensation unfinished it says what is left and asks for a confirmation (default
    # no; no terminal to answer = no): refused -> recorded (incident.close_refused), confirmed ->
    # closed and recorded (incident.closed_unfinished).
    from tasks.crisis import messages  # noqa: F401  (crisis.step.*)
    from tasks.crisis.compensate import unfinished
    from tasks.crisis.incidents import get_incident
    from tasks.crisis.report import UnfinishedWork, close_incident, has_unfinished, report_markdown

    engine = _engine()
    inc = get_incident(engine, incident_id)
    if inc is None:
        typer.echo(t("incident.unknown", incident_id=incident_id), err=True)
        raise typer.Exit(1)
    if inc["status"] != "open":
        typer.echo(t("incident.not_open", incident_id=incident_id), err=True)
        raise typer.Exit(1)
    who = _me(by)
    left = unfinished(incident_id, engine)
    confirmed = False
    if has_unfinished(left):
        if left.get("steps"):  # Control / Clarify not done
            typer.echo(t("incident.unfinished.steps", incident_id=incident_id,
                         steps=join_list(t(f"crisis.step.{s}") for s in left["steps"])), err=True)
        if any(left.get(k) for k in ("apologies", "unplanned", "calls")):
            typer.echo(t("incident.unfinished", incident_id=incident_id, apologies=f"{left['apologies']:,}",
                         awaiting=f"{left['awaiting_review']:,}", unplanned=f"{left['unplanned']:,}", calls=f"{left['calls']:,}"), err=True)
        try:
            confirmed = typer.confirm(t("incident.unfinished.confirm"), default=False, err=True)
        except typer.Abort:  # no terminal to answer
            confirmed = False
    try:
        rep = close_incident(incident_id, who, engine, require_finished=not confirmed)
    except UnfinishedWork:
        typer.echo(t("incident.unfinished.refused", incident_id=incident_id), err=True)
        raise typer.Exit(1)
    if rep is None:
        typer.echo(t("incident.not_open", incident_id=incident_id), err=True)
        raise typer.Exit(1)
    if rep.get("unfinished"):
        typer.echo(t("incident.unfinished.forced"), err=True)
    typer.echo(t("incident.closed", incident_id=incident_id))
    if rep.get("released_run"):
        typer.echo(t("incident.closed.run_released", flow_run_id=rep["released_run"]))
    typer.echo(report_markdown(rep))
