"""``userops campaign``: lifecycle campaigns from the terminal.

* ``list`` / ``validate``: the definitions in ``campaigns/`` (invalid ones named by file, field, reason).
* ``plan NAME --dry-run``: who would get what and why (counts per exclusion reason, a sample of
  rendered messages with personal data masked); without ``--dry-run`` the touches are planned
  (written) but nothing is sent.
* ``run NAME [--channel CHANNEL] [--local]``: plan and send now (the ``campaign`` flow;
  ``--local`` without Prefect).
* ``send``: deliver whatever is due (after quiet hours, retries, approvals).
* ``report NAME``: reached, converted, treatment vs control, uplift with a 95% interval.
* ``calendar``: the communication calendar (沟通日历): sent per day in the last 30 days, planned for the next 14.
* ``approve CAMPAIGN``: release touches waiting for review.
"""
from __future__ import annotations

import getpass
import json
import numbers
import os
from datetime import date
from typing import Optional

import typer

from userops.i18n import register as register_messages
from userops.i18n import join_list, labelled, money, pad, parens, t

# `run` starts a temporary Prefect server when none is configured; on a busy machine it needs
# more than Prefect's default 20 s to come up.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

app = typer.Typer(help="Lifecycle campaigns: awakening, retention, recall (plan, run, report, calendar).", no_args_is_help=True)


register_messages(
    {
        "campaign.cli.unknown": {"zh-CN": "没有活动 {name!r}；已定义：{defined}", "en": "no campaign {name!r}; defined: {defined}"},
        "campaign.cli.valid": {"zh-CN": "{n} 个活动定义有效：{names}", "en": "{n} campaign definition(s) valid: {names}"},
        "campaign.cli.released": {"zh-CN": "已放行 {n} 条触达", "en": "{n} touch(es) released"},
        "campaign.cli.col.name": {"zh-CN": "名称", "en": "name"},
        "campaign.cli.col.title": {"zh-CN": "标题", "en": "title"},
        "campaign.cli.col.enabled": {"zh-CN": "状态", "en": "enabled"},
        "campaign.cli.col.entry": {"zh-CN": "触发方式", "en": "entry"},
        "campaign.cli.col.channel": {"zh-CN": "渠道", "en": "channel"},
        "campaign.cli.col.period": {"zh-CN": "周期", "en": "period"},
        "campaign.cli.col.holdout": {"zh-CN": "对照组比例", "en": "holdout"},
        "campaign.cli.col.priority": {"zh-CN": "优先级", "en": "priority"},
        "campaign.cli.col.file": {"zh-CN": "文件", "en": "file"},
        "campaign.cli.entry.nightly": {"zh-CN": "每晚", "en": "nightly"},
        "campaign.cli.entry.stage_change": {"zh-CN": "阶段变化", "en": "stage change"},
        "campaign.cli.entry.stage_change_to": {"zh-CN": "进入{stages}", "en": "to {stages}"},
        "campaign.cli.entry.event": {"zh-CN": "事件 {event}", "en": "event {event}"},
        "campaign.cli.period.day": {"zh-CN": "每天", "en": "daily"},
        "campaign.cli.period.week": {"zh-CN": "每周", "en": "weekly"},
        "campaign.cli.period.month": {"zh-CN": "每月", "en": "monthly"},
        "campaign.cli.period.quarter": {"zh-CN": "每季度", "en": "quarterly"},
        "campaign.cli.period.once": {"zh-CN": "仅一次", "en": "once"},
        "campaign.cli.on": {"zh-CN": "启用", "en": "on"},
        "campaign.cli.off": {"zh-CN": "停用", "en": "off"},
    }
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="campaign")


def _counts(counts: dict) -> str:
    """``{"A": 3, "B": 2}`` as ``A 3, B 2`` (``A 3，B 2`` in zh-CN); nothing as ``—``."""
    return join_list(f"{k} {v:,}" for k, v in counts.items()) if counts else "—"


def _entry_words(e) -> str:
    """One entry of a campaign in the operator's words (每晚, 阶段变化（进入沉默）, 事件 …)."""
    if e.on == "event":
        return t("campaign.cli.entry.event", event=e.event)
    words = t(f"campaign.cli.entry.{e.on}")
    if e.on == "stage_change" and e.to:
        stages = join_list(t(f"tags.stage.{s}") for s in e.to)
        words += parens(t("campaign.cli.entry.stage_change_to", stages=stages))
    return words


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(rows[0].keys())
    cells = [[str(c) for c in cols]] + [[_cell(r.get(c)) for c in cols] for r in rows]
    from rich.cells import cell_len

    widths = [max(cell_len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(cells):
        lines.append("  ".join(pad(v, widths[i]) for i, v in enumerate(row)).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v) -> str:
    """A table cell: counts with thousands separators (12,345), nothing as empty."""
    if v is None:
        return ""
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _load(name: str | None = None):
    from tasks.campaigns.definitions import CampaignDefinitionError, load_campaigns

    try:
        campaigns = load_campaigns()
    except CampaignDefinitionError as exc:
        typer.echo(t("campaign.invalid"), err=True)
        for f, fld, why in exc.problems:
            typer.echo("  " + (labelled(f, labelled(fld, why)) if fld else labelled(f, why)), err=True)
        raise typer.Exit(2)
    if name is None:
        return campaigns
    for c in campaigns:
        if c.name == name:
            return c
    typer.echo(t("campaign.cli.unknown", name=name, defined=join_list(c.name for c in campaigns) or "—"), err=True)
    raise typer.Exit(2)


def _as_of(value: Optional[str]) -> date:
    from userops.cli.options import day
    from userops.clock import shop_today

    return day(value) or shop_today()


def _channel(value: Optional[str]) -> Optional[str]:
    from tasks.messaging import CHANNELS
    from userops.cli.options import choice

    return choice(value, CHANNELS, "--channel")


@app.command("list")
def list_cmd() -> None:
    """The campaigns defined in campaigns/ (name, on/off, entry, channel, priority)."""
    from userops.settings import get_settings

    lang = get_settings().language
    rows = []
    for c in _load():
        rows.append(
            {
                t("campaign.cli.col.name"): c.name,
                t("campaign.cli.col.title"): c.title.get(lang),
                t("campaign.cli.col.enabled"): t("campaign.cli.on") if c.enabled else t("campaign.cli.off"),
                t("campaign.cli.col.entry"): join_list(_entry_words(e) for e in c.entry),
                t("campaign.cli.col.channel"): c.channel + (" +" + "/".join(f"{s.name}:{s.channel or c.channel}" for s in c.segments) if c.segments else ""),
                t("campaign.cli.col.period"): t(f"campaign.cli.period.{c.period}"),
                t("campaign.cli.col.holdout"): f"{c.holdout:.0%}",
                t("campaign.cli.col.priority"): c.priority,
                t("campaign.cli.col.file"): c.source,
            }
        )
    typer.echo(_table(rows))


@app.command("validate")
def validate_cmd() -> None:
    """Check every definition; exit 2 and name file, field and reason if one is invalid."""
    campaigns = _load()
    typer.echo(t("campaign.cli.valid", n=len(campaigns), names=join_list(c.name for c in campaigns) or "—"))


@app.command("plan")
def plan_cmd(
    name: str = typer.Argument(..., help="Campaign name, e.g. awakening"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show who would get what and why; write and send nothing."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Business day YYYY-MM-DD (default today)."),
    channel: Optional[str] = typer.Option(None, "--channel", help="Plan through this channel instead."),
    sample: int = typer.Option(5, "--sample", help="How many sample messages to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Plan a campaign (or preview it with --dry-run)."""
    from tasks.campaigns.engine import plan_campaign
    from tasks.campaigns.texts import plan_line

    c = _load(name)
    from userops.settings import get_settings

    lang = get_settings().language
    r = plan_campaign(c, _as_of(as_of), entry="manual", channel=_channel(channel), dry_run=dry_run, sample_size=sample)
    if as_json:
        typer.echo(json.dumps({"stats": r.stats, "sample": r.sample, "dry_run": dry_run}, ensure_ascii=False, indent=2, default=str))
        return
    s = r.stats
    if getattr(c, "enabled", True) is False:
        typer.echo(t("campaign.plan.disabled", name=c.name))
    typer.echo(t("campaign.plan.header", name=c.name, title=c.title.get(lang), period=r.period, audience=f"{s['audience']:,}"))
    if s["already_planned"]:
        typer.echo("  " + labelled(t("campaign.reason.already_planned"), f"{s['already_planned']:,}"))
    typer.echo("  " + t("campaign.plan.excluded"))
    for reason, n in s["excluded"].items():
        typer.echo("    " + labelled(t("campaign.reason." + reason), f"{n:,}"))
    typer.echo("  " + t("campaign.plan.split", eligible=f"{s['eligible']:,}", control=f"{s['control']:,}", treatment=f"{s['treatment']:,}", budget=f"{s['excluded'].get('budget', 0):,}"))
    typer.echo("  " + t("campaign.plan.planned", planned=f"{s['planned']:,}", deferred=f"{s['deferred_quiet_hours']:,}", cost=money(s['gift_cost_planned'])))
    typer.echo("  " + plan_line(c.name, s))
    typer.echo("  " + t("campaign.plan.variants", variants=_counts(s["per_variant"]), channels=_counts(s["per_channel"])))
    if dry_run:
        if r.sample:
            typer.echo("  " + t("campaign.plan.sample"))
            for m in r.sample:
                head = f"    [{m['segment']}/{m['variant']} · {m['channel']} · {m['locale']} · {m['stage']}/{m['value_tier']}]"
                typer.echo(head)
                if m.get("subject"):
                    typer.echo(f"      {m['subject']}")
                typer.echo(f"      {m['body']}")
        typer.echo(t("campaign.plan.dry_run"))


@app.command("run")
def run_cmd(
    name: str = typer.Argument(..., help="Campaign name, e.g. recall"),
    channel: Optional[str] = typer.Option(None, "--channel", help="Send through this channel instead (email, sms, push, staff)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Business day YYYY-MM-DD (default today)."),
    local: bool = typer.Option(False, "--local", help="Plan and send in this terminal without Prefect (no run in the UI, no artifacts)."),
) -> None:
    """Plan and send one campaign now (a run of the `campaign` flow, visible in the Prefect UI)."""
    c = _load(name)
    channel, day = _channel(channel), _as_of(as_of)  # checked before anything is planned or started
    _provider_for(channel)
    if local:
        from tasks.campaigns.engine import finish_campaign_run, plan_campaign
        from tasks.messaging import send_due
        from userops.db import get_engine

        r = plan_campaign(c, day, entry="manual", channel=channel)
        d = send_due(channel_override=channel, campaign=name)
        finish_campaign_run(get_engine(), r.run_id, d)
        from tasks.campaigns.texts import delivery_line, plan_lines

        for line in plan_lines(name, r.stats):
            typer.echo(line)
        typer.echo(delivery_line(d))
        return
    from flows.campaigns import run_campaign

    out = run_campaign(name=name, channel=channel, as_of=day)
    for line in out["summary"]:
        typer.echo(line)


@app.command("send")
def send_cmd(channel: Optional[str] = typer.Option(None, "--channel", help="Send through this channel instead.")) -> None:
    """Deliver every touch that is due now, exactly once."""
    from tasks.messaging import send_due

    from tasks.campaigns.texts import delivery_line

    d = send_due(channel_override=_provider_for(_channel(channel)))
    typer.echo(delivery_line(d))


def _provider_for(channel: Optional[str]) -> Optional[str]:
    """--channel X with no provider configured for X: one line saying which setting to set,
    exit 2, before anything is planned or sent."""
    from tasks.messaging import ChannelNotConfigured, provider_configured

    if channel and not provider_configured(channel):
        typer.echo(ChannelNotConfigured(channel).localized(), err=True)
        raise typer.Exit(2)
    return channel


@app.command("report")
def report_cmd(
    name: str = typer.Argument(..., help="Campaign name"),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Reached, converted, control vs treatment, uplift with a 95% interval, per variant."""
    from tasks.campaigns.readout import campaign_report, report_markdown, report_rows
    from userops.settings import get_settings

    c = _load(name)
    rep = campaign_report(None, name)
    if as_json:
        typer.echo(json.dumps(rep, ensure_ascii=False, indent=2, default=str))
        return
    typer.echo(report_markdown(rep, c.title.get(get_settings().language)).replace("**", ""))
    rows = report_rows(rep)
    if rows:
        typer.echo(_table(rows))
        if rep.get("incremental_revenue") is not None:
            typer.echo(t("campaign.report.incremental", revenue=money(rep['incremental_revenue']), cost=money(rep['groups']['treatment']['gift_cost'])))


@app.command("calendar")
def calendar_cmd(
    past: int = typer.Option(30, "--past", help="Days back (sent)."),
    ahead: int = typer.Option(14, "--ahead", help="Days ahead (planned)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The communication calendar (沟通日历): per day, campaign and channel."""
    from tasks.campaigns.readout import calendar_frame, calendar_rows

    cal = calendar_frame(None, None, past, ahead)
    if as_json:
        typer.echo(cal.to_json(orient="records", force_ascii=False))
        return
    typer.echo(t("campaign.calendar.title") + " · " + t("campaign.calendar.desc", past=past, ahead=ahead))
    rows = calendar_rows(cal)
    typer.echo(_table(rows) if rows else t("campaign.calendar.empty"))


@app.command("approve")
def approve_cmd(campaign: str = typer.Argument(..., help="Campaign whose touches wait for review (e.g. crisis-<id>).")) -> None:
    """Release every touch of a campaign that waits for review; they go out with the next send."""
    from tasks.messaging import approve_touches
    from userops.db import get_engine

    with get_engine().begin() as conn:
        n = approve_touches(conn, f"cli:{getpass.getuser()}", campaign=campaign)
    typer.echo(t("campaign.cli.released", n=f"{n:,}"))
