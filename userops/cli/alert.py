"""Alert commands: test a channel, flush the outbox, list alerts, set up Prefect."""
from __future__ import annotations

import typer

alert_app = typer.Typer(help="Operator alerts: Slack, DingTalk, WeCom (outbox, channels, digest).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(alert_app, name="alert")


@alert_app.command("channels")
def channels_cmd() -> None:
    """The configured channels and where each alert kind goes (never the webhook URLs)."""
    from tasks.alerts.routing import KNOWN_KINDS, channels_for, load_channels

    chans = load_channels(refresh=True)
    for name, ch in chans.items():
        typer.echo(f"  {ch.describe()}")
    typer.echo("routes:")
    for kind in KNOWN_KINDS:
        typer.echo(f"  {kind:<18} -> {', '.join(channels_for(kind))}")


@alert_app.command("test")
def test_cmd(
    channel: str = typer.Argument(..., help="Channel name (slack, dingtalk, wecom, or a Prefect block's name)."),
) -> None:
    """Send a test message to CHANNEL now and print the channel's verdict."""
    from tasks.alerts.channels import DeliveryError, Message
    from tasks.alerts.routing import load_channels
    from tasks.alerts.safety import clean
    from userops.clock import utcnow
    from userops.i18n import t

    chans = load_channels(refresh=True)
    ch = chans.get(channel)
    if ch is None:
        known = ", ".join(n for n in chans if n != "log") or "none"
        typer.echo(f"{channel}: not configured (configured: {known}). Set USEROPS_{channel.upper()}_WEBHOOK_URL or create a block with `userops alert register-blocks`.", err=True)
        raise typer.Exit(2)
    msg = Message(title=t("alert.test.title"), body=t("alert.test.body", channel=channel), severity="info", kind="test")
    try:
        parts = ch.send(msg)
    except DeliveryError as exc:
        typer.echo(f"{channel}: {exc.verdict}: {clean(str(exc), ch.secrets())}", err=True)
        _record(channel, utcnow(), "refused" if exc.reached else None)
        raise typer.Exit(1)
    _record(channel, utcnow(), "sent")
    typer.echo(f"{channel}: ok - {ch.type} accepted the test message ({parts} post{'s' if parts != 1 else ''})")


def _record(channel: str, at, outcome: str | None) -> None:
    """Count the test post against the channel's rate limit (when the warehouse is there)."""
    if outcome is None:
        return
    try:
        from tasks.alerts.outbox import record_send
        from userops.db import get_engine

        record_send(get_engine(), channel, at, alerts=1, outcome=outcome)
    except Exception:  # no warehouse yet: nothing to count against
        pass


@alert_app.command("deliver")
def deliver_cmd() -> None:
    """Deliver every due alert of the outbox now (retries, rate limits, merging)."""
    from tasks.alerts.outbox import deliver_pending, pending_count
    from userops.db import migrate

    migrate()
    res = deliver_pending()
    typer.echo(
        f"sent {res['sent']} alert(s) in {res['posts']} message(s)"
        + (f" ({res['merged']} merged)" if res["merged"] else "")
        + f"; {res['deferred']} waiting, {res['failed']} failed, {res['expired']} given up"
    )
    for name, verdict in res["channels"].items():
        typer.echo(f"  {name}: {verdict}")
    left = pending_count()
    if left:
        typer.echo(f"{left} alert(s) still queued (next attempt: `userops alert list --status pending`)")


@alert_app.command("list")
def list_cmd(
    status: str = typer.Option(None, "--status", help="Only this status: pending, sending, sent, failed."),
    kind: str = typer.Option(None, "--kind", help="Only this alert kind (flow_failed, validation, digest, ...)."),
    limit: int = typer.Option(20, "--limit", help="How many, newest first."),
) -> None:
    """The newest alerts in the outbox with their delivery state."""
    import sqlalchemy as sa

    from tasks.alerts.outbox import OUTBOX
    from userops.db import get_engine, migrate

    migrate()
    q = sa.select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit)
    if status:
        q = q.where(OUTBOX.c.status == status)
    if kind:
        q = q.where(OUTBOX.c.kind == kind)
    with get_engine().connect() as conn:
        rows = conn.execute(q).all()
    if not rows:
        typer.echo("no alerts")
        return
    typer.echo(f"{'id':>5}  {'created (UTC)':<16}  {'kind':<16} {'channel':<10} {'severity':<8} {'status':<8} {'tries':>5}  {'next (UTC)':<16}  title")
    for r in rows:
        created = r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else ""
        nxt = r.next_attempt_at.strftime("%Y-%m-%d %H:%M") if r.next_attempt_at and r.status in ("pending", "sending") else ""
        title = (r.title or "").replace("\n", " ")
        typer.echo(f"{r.id:>5}  {created:<16}  {r.kind[:16]:<16} {r.channel[:10]:<10} {r.severity:<8} {r.status:<8} {r.attempts:>5}  {nxt:<16}  {title[:70]}")
        if r.last_error and r.status != "sent":
            typer.echo(f"{'':>7}last error: {r.last_error[:200]}")


@alert_app.command("register-blocks")
def register_blocks_cmd(
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing channel blocks with the settings' values."),
) -> None:
    """Register the alert-channel block types on the Prefect server and save the channels
    configured in the settings as blocks (editable in the Prefect UI afterwards)."""
    from tasks.alerts.blocks import register_blocks

    for line in register_blocks(overwrite=overwrite):
        typer.echo(f"  {line}")


@alert_app.command("automation")
def automation_cmd() -> None:
    """Create or update the Prefect automation that alerts on crashed flow runs."""
    from tasks.alerts.automations import ensure_crash_automation

    res = ensure_crash_automation()
    typer.echo(f"{'created' if res['created'] else 'updated'} automation '{res['name']}' (runs deployment {res['deployment_id']})")
