"""Alert commands: test a channel, flush the outbox, list alerts, set up Prefect."""
from __future__ import annotations

import unicodedata
from contextlib import contextmanager

import typer

from userops.i18n import register as register_messages
from userops.i18n import join_list, labelled, t

alert_app = typer.Typer(help="Operator alerts: Slack, DingTalk, WeCom (outbox, channels, digest).", no_args_is_help=True)

# what tasks/alerts writes to alert_outbox.status: enqueue_alert -> pending; the deliverer
# (outbox.py) claims pending -> sending, then sent, pending again (retry) or failed;
# obsolete: queued, no longer true, never posted (outbox.mark_obsolete)
STATUSES = ("pending", "sending", "sent", "failed", "obsolete")

register_messages(
    {
        "alert.cli.routes": {"zh-CN": "路由（告警类型 -> 渠道）：", "en": "routes:"},
        "alert.cli.none": {"zh-CN": "无", "en": "none"},
        "alert.cli.not_configured": {
            "zh-CN": "{channel}：未配置（已配置：{known}）。请设置 USEROPS_{upper}_WEBHOOK_URL，或用 `userops alert register-blocks` 创建 block。",
            "en": "{channel}: not configured (configured: {known}). Set USEROPS_{upper}_WEBHOOK_URL or create a block with `userops alert register-blocks`.",
        },
        "alert.cli.unknown_channel": {
            "zh-CN": "{channel}：没有这个渠道（已配置：{known}）。渠道是 {types} 之一，或用 `userops alert register-blocks` 创建的 block 的名称。",
            "en": "{channel}: no such channel (configured: {known}). A channel is one of {types}, or the name of a block created with `userops alert register-blocks`.",
        },
        "alert.cli.test_failed": {"zh-CN": "{channel}：{verdict}：{error}", "en": "{channel}: {verdict}: {error}"},
        "alert.cli.test_ok": {
            "zh-CN": "{channel}：成功 - {type} 已接受测试消息（共 {parts} 条）",
            "en": "{channel}: ok - {type} accepted the test message ({parts} post(s))",
        },
        "alert.cli.delivered": {
            "zh-CN": "已发送 {sent} 条告警，共 {posts} 条消息{merged}；{deferred} 条等待，{failed} 条失败，{expired} 条已放弃",
            "en": "sent {sent} alert(s) in {posts} message(s){merged}; {deferred} waiting, {failed} failed, {expired} given up",
        },
        "alert.cli.logged_only": {
            "zh-CN": "另有 {n} 条告警只写入了运行日志，没有发出（未配置告警渠道，见 docs/alerts.md「Channels」）",
            "en": "{n} more alert(s) were only written to the run log, not sent (no alert channel configured; see docs/alerts.md, Channels)",
        },
        "alert.cli.merged": {"zh-CN": "（其中合并 {merged} 条）", "en": " ({merged} merged)"},
        "alert.cli.queued": {
            "zh-CN": "仍有 {left} 条告警在队列中（查看下次尝试：`userops alert list --status pending`）",
            "en": "{left} alert(s) still queued (next attempt: `userops alert list --status pending`)",
        },
        "alert.cli.none_listed": {"zh-CN": "没有告警。", "en": "no alerts"},
        "alert.cli.col.id": {"zh-CN": "编号", "en": "id"},
        "alert.cli.col.created": {"zh-CN": "创建时间（UTC）", "en": "created (UTC)"},
        "alert.cli.col.kind": {"zh-CN": "类型", "en": "kind"},
        "alert.cli.col.channel": {"zh-CN": "渠道", "en": "channel"},
        "alert.cli.col.severity": {"zh-CN": "级别", "en": "severity"},
        "alert.cli.col.status": {"zh-CN": "状态", "en": "status"},
        "alert.cli.col.tries": {"zh-CN": "尝试", "en": "tries"},
        "alert.cli.col.next": {"zh-CN": "下次尝试（UTC）", "en": "next (UTC)"},
        "alert.cli.col.title": {"zh-CN": "标题", "en": "title"},
        "alert.cli.last_error": {"zh-CN": "最近错误：{error}", "en": "last error: {error}"},
        # an outbox row delivered on the log channel (no alert channel configured): nothing went
        # anywhere (the words of the log-only verdict, alert.deliver.log_only)
        "alert.cli.logged": {
            "zh-CN": "发送时未配置告警渠道，告警只写入了运行日志，没有发出",
            "en": "no alert channel was configured when it was delivered: the alert was only written to the run log, not sent",
        },
        "alert.cli.prefect_unreachable": {
            "zh-CN": "连不上 Prefect 服务器 {url}（{error}）。请先启动它：`userops serve`（或把 PREFECT_API_URL 指向正在运行的 Prefect 服务器），然后重试",
            "en": "The Prefect server is not reachable at {url} ({error}). Start it with `userops serve` (or point PREFECT_API_URL at a running Prefect server), then try again",
        },
        "alert.cli.automation_created": {
            "zh-CN": "已创建自动化 '{name}'（运行部署 {deployment_id}）",
            "en": "created automation '{name}' (runs deployment {deployment_id})",
        },
        "alert.cli.automation_updated": {
            "zh-CN": "已更新自动化 '{name}'（运行部署 {deployment_id}）",
            "en": "updated automation '{name}' (runs deployment {deployment_id})",
        },
    }
)


def register(app: typer.Typer) -> None:
    app.add_typer(alert_app, name="alert")


@contextmanager
def _prefect_server():
    """Commands that talk to the Prefect server: one line saying it is not reachable (and how
    to start it) instead of an httpx traceback."""
    import httpx

    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.RemoteProtocolError) as exc:
        typer.echo(t("alert.cli.prefect_unreachable", url=_prefect_api_url(), error=type(exc).__name__), err=True)
        raise typer.Exit(1)


def _prefect_api_url() -> str:
    import os

    try:
        from prefect.settings import get_current_settings

        return os.environ.get("PREFECT_API_URL") or get_current_settings().api.url or "—"
    except Exception:  # pragma: no cover - settings unreadable
        return os.environ.get("PREFECT_API_URL") or "—"


def _pad(text: str, width: int, right: bool = False) -> str:
    """``text`` padded to ``width`` terminal columns (a Chinese character takes two)."""
    fill = " " * max(0, width - sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text))
    return fill + text if right else text + fill


@alert_app.command("channels")
def channels_cmd() -> None:
    """The configured channels and where each alert kind goes (never the webhook URLs)."""
    from tasks.alerts.routing import KNOWN_KINDS, channels_for, load_channels

    chans = load_channels(refresh=True)
    for name, ch in chans.items():
        typer.echo(f"  {ch.describe()}")
    typer.echo(t("alert.cli.routes"))
    for kind in KNOWN_KINDS:
        typer.echo(f"  {kind:<18} -> {', '.join(channels_for(kind))}")


@alert_app.command("test")
def test_cmd(
    channel: str = typer.Argument(..., help="Channel name (slack, dingtalk, wecom, or a Prefect block's name)."),
) -> None:
    """Send a test message to CHANNEL now and print the channel's verdict."""
    from tasks.alerts.channels import DeliveryError, Message
    from tasks.alerts.routing import WEBHOOK_TYPES, load_channels
    from tasks.alerts.safety import clean
    from userops.clock import utcnow

    chans = load_channels(refresh=True)
    ch = chans.get(channel)
    if ch is None:
        known = join_list(n for n in chans if n != "log") or t("alert.cli.none")
        if channel in WEBHOOK_TYPES:  # a built-in type not set up: name its setting
            typer.echo(t("alert.cli.not_configured", channel=channel, known=known, upper=channel.upper()), err=True)
        else:  # no such setting exists: say what a channel can be
            typer.echo(t("alert.cli.unknown_channel", channel=channel, known=known, types=join_list(WEBHOOK_TYPES)), err=True)
        raise typer.Exit(2)
    msg = Message(title=t("alert.test.title"), body=t("alert.test.body", channel=channel), severity="info", kind="test")
    try:
        parts = ch.send(msg)
    except DeliveryError as exc:
        typer.echo(t("alert.cli.test_failed", channel=channel, verdict=exc.verdict_text(), error=clean(exc.localized(), ch.secrets())), err=True)
        _record(channel, utcnow(), "refused" if exc.reached else None)
        raise typer.Exit(1)
    _record(channel, utcnow(), "sent")
    typer.echo(t("alert.cli.test_ok", channel=channel, type=ch.type, parts=parts))


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
    merged = t("alert.cli.merged", merged=res["merged"]) if res["merged"] else ""
    typer.echo(t("alert.cli.delivered", sent=res["sent"], posts=res["posts"], merged=merged, deferred=res["deferred"], failed=res["failed"], expired=res["expired"]))
    if res.get("logged"):  # the log channel: nothing sent anywhere
        typer.echo(t("alert.cli.logged_only", n=res["logged"]))
    for name, verdict in res["channels"].items():
        typer.echo("  " + labelled(name, verdict))
    left = pending_count()
    if left:
        typer.echo(t("alert.cli.queued", left=left))


@alert_app.command("list")
def list_cmd(
    status: str = typer.Option(None, "--status", help="Only this status: pending, sending, sent, failed, obsolete."),
    kind: str = typer.Option(None, "--kind", help="Only this alert kind (flow_failed, validation, digest, ...)."),
    limit: int = typer.Option(20, "--limit", help="How many, newest first."),
) -> None:
    """The newest alerts in the outbox with their delivery state."""
    import sqlalchemy as sa

    from tasks.alerts.journal import posted_directly
    from tasks.alerts.outbox import OUTBOX
    from userops.cli.options import choice
    from userops.db import get_engine, migrate

    choice(status, STATUSES, "--status")  # a typo is named (exit 2), not "no alerts"
    migrate()
    q = sa.select(OUTBOX).order_by(OUTBOX.c.id.desc()).limit(limit)
    if status:
        q = q.where(OUTBOX.c.status == status)
    if kind:
        q = q.where(OUTBOX.c.kind == kind)
    with get_engine().connect() as conn:
        rows = conn.execute(q).all()
    if not rows:
        typer.echo(t("alert.cli.none_listed"))
        return
    typer.echo(
        f"{_pad(t('alert.cli.col.id'), 5, right=True)}  {_pad(t('alert.cli.col.created'), 16)}  {_pad(t('alert.cli.col.kind'), 16)} "
        f"{_pad(t('alert.cli.col.channel'), 10)} {_pad(t('alert.cli.col.severity'), 8)} {_pad(t('alert.cli.col.status'), 8)} "
        f"{_pad(t('alert.cli.col.tries'), 5, right=True)}  {_pad(t('alert.cli.col.next'), 16)}  {t('alert.cli.col.title')}"
    )
    for r in rows:
        created = r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else ""
        nxt = r.next_attempt_at.strftime("%Y-%m-%d %H:%M") if r.next_attempt_at and r.status in ("pending", "sending") else ""
        title = (r.title or "").replace("\n", " ")
        typer.echo(f"{r.id:>5}  {created:<16}  {r.kind[:16]:<16} {r.channel[:10]:<10} {r.severity:<8} {r.status:<8} {r.attempts:>5}  {nxt:<16}  {title[:70]}")
        if r.last_error and r.status != "sent":
            typer.echo(" " * 7 + t("alert.cli.last_error", error=r.last_error[:200]))
        direct = posted_directly(_payload(r.payload)) if r.status == "sent" else None
        if direct:  # recorded from the journal of a night the warehouse was down
            # the log channel (no alert channel configured): only in the run log, sent nowhere
            typer.echo(" " * 7 + t("alert.cli.logged_directly" if r.channel == "log" else "alert.cli.sent_directly", at=direct))
        elif r.status == "sent" and r.channel == "log":  # "sent" to the run log only: nobody got it
            typer.echo(" " * 7 + t("alert.cli.logged"))


def _payload(text) -> dict:
    import json

    try:
        p = json.loads(text or "{}")
    except ValueError:
        return {}
    return p if isinstance(p, dict) else {}


@alert_app.command("register-blocks")
def register_blocks_cmd(
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing channel blocks with the settings' values."),
) -> None:
    """Save the configured alert channels as Prefect blocks (editable in the UI afterwards).

    Registers the alert-channel block types on the Prefect server first."""
    from tasks.alerts.blocks import register_blocks

    with _prefect_server():
        lines = register_blocks(overwrite=overwrite)
    for line in lines:
        typer.echo(f"  {line}")


@alert_app.command("automation")
def automation_cmd() -> None:
    """Create or update the Prefect automation that alerts on crashed flow runs."""
    from tasks.alerts.automations import ensure_crash_automation

    with _prefect_server():
        res = ensure_crash_automation()
    key = "alert.cli.automation_created" if res["created"] else "alert.cli.automation_updated"
    typer.echo(t(key, name=res["name"], deployment_id=res["deployment_id"]))
