"""Data-path commands: demo, import, run nightly, quarantine, db upgrade."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

from userops.i18n import register as register_messages
from userops.clock import to_shop_str
from userops.i18n import is_missing, join_list, labelled, or_dash, pad, t, t_or

quarantine_app = typer.Typer(help="What validation rejected, by which rule, in which run.", no_args_is_help=True)
run_app = typer.Typer(help="Run a flow now against the configured sources.", no_args_is_help=True)
db_app = typer.Typer(help="Warehouse schema.", no_args_is_help=True)

IMPORT_TABLES = {"customers": "customers", "orders": "orders", "order-items": "order_items", "feedback": "feedback", "events": "events"}

register_messages(
    {
        "data.unknown_table": {"zh-CN": "没有表 {table!r}：请从 {tables} 中选择", "en": "unknown table {table!r}: choose one of {tables}"},
        "import.bad_map": {"zh-CN": "--map {value!r}：请写成 SOURCE_HEADER=canonical_column（源表头=标准列名）",
                           "en": "--map {value!r}: write it as SOURCE_HEADER=canonical_column"},
        "import.error": {"zh-CN": "错误：{error}", "en": "error: {error}"},
        "import.nothing_loaded": {"zh-CN": "错误：{path}：没有一行入库，{quarantined} 行全部被隔离；请查看下面的命令列出的规则，改好文件后再导入",
                                  "en": "error: {path}: nothing was loaded, all {quarantined} rows were quarantined; see the rules with the command below, fix the file and import it again"},
        "demo.generating": {"zh-CN": "正在生成 {customers:,} 个示例会员（随机种子 {seed}）……",
                            "en": "Generating {customers:,} sample members (seed {seed}) ..."},
        "demo.services": {"zh-CN": "示例 CRM 与订单系统：{url}；示例短信/推送/邮件服务商在本机回环地址上运行",
                          "en": "Sample CRM and order system at {url}; sample SMS/push/email providers on loopback"},
        "demo.warehouse": {"zh-CN": "数据仓库：{url}", "en": "Warehouse: {url}"},
        "db.up_to_date": {"zh-CN": "数据库结构已是最新：{url}", "en": "schema up to date: {url}"},
        "run.stage_time": {"zh-CN": "{stage} {seconds} 秒", "en": "{stage} {seconds}s"},
        "run.failed.step": {"zh-CN": "夜间任务失败：{step}出错：{reason}", "en": "Nightly run failed while {step}: {reason}"},
        # after alert.cli.prefect_unreachable (userops/cli/alert.py), on the same line
        "run.prefect_unset": {"zh-CN": "；或取消设置 PREFECT_API_URL，夜间任务会在临时的本地 Prefect 服务器上运行",
                              "en": "; or unset PREFECT_API_URL to run the night on a temporary local Prefect server"},
        "run.failed.fix": {"zh-CN": "处理：{fix}", "en": "What to do: {fix}"},
        "run.failed.details": {"zh-CN": "详情：Prefect 界面中的本次运行 {link}（运行日志里有完整的错误堆栈）",
                               "en": "Details: this run in the Prefect UI, {link} (its log has the full traceback)"},
        "run.failed.no_ui": {"zh-CN": "详情：本次运行在临时的本地 Prefect 服务器上（未设置 PREFECT_API_URL），服务器已随命令结束，没有可打开的运行页面；"
                                      "要在 Prefect 界面查看运行日志，请把 PREFECT_API_URL 指向常驻的 Prefect 服务器（如 `userops serve`）后再运行",
                             "en": "Details: this run ran on a temporary local Prefect server (PREFECT_API_URL is not set) that stopped with the command, "
                                   "so it has no page to open; to read run logs in the Prefect UI, point PREFECT_API_URL at a lasting Prefect server (e.g. `userops serve`) and run again"},
        "quarantine.field.id": {"zh-CN": "编号", "en": "id"},
        "quarantine.field.source_table": {"zh-CN": "来源表", "en": "source table"},
        "quarantine.field.source_id": {"zh-CN": "来源编号", "en": "source id"},
        "quarantine.field.rule": {"zh-CN": "规则", "en": "rule"},
        "quarantine.field.reason": {"zh-CN": "原因", "en": "reason"},
        "quarantine.field.run_id": {"zh-CN": "运行编号", "en": "run id"},
        "quarantine.field.seen_at": {"zh-CN": "发现时间（店铺时间）", "en": "seen at (shop time)"},
        "quarantine.field.resolved_at": {"zh-CN": "处理时间（店铺时间）", "en": "settled at (shop time)"},
        "quarantine.field.resolved_run_id": {"zh-CN": "处理运行", "en": "settled by run"},
        "quarantine.field.record": {"zh-CN": "原始记录", "en": "record"},
        "quarantine.settled_hidden": {"zh-CN": "另有 {n} 条记录已处理（客户或订单到达后重新校验放行，或被新版本取代），加 --all 查看。",
                                      "en": "{n} more records are settled (released once their customer or order arrived, or superseded); --all lists them."},
    }
)
# ``quarantine show``: the record's fields in this order, each with its label
QUARANTINE_FIELDS = ("id", "source_table", "source_id", "rule", "reason", "run_id", "seen_at", "resolved_at", "resolved_run_id")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.command("import")(import_cmd)
    app.add_typer(run_app, name="run")
    app.add_typer(quarantine_app, name="quarantine")
    app.add_typer(db_app, name="db")


def _print_stats(stats: dict) -> None:
    for table, res in (stats.get("ingest") or {}).items():
        # counts in operator lines carry thousands separators (29,961), as every other line does
        typer.echo("  " + t("ingest.line", table=table, read=f"{res['read']:,}", loaded=f"{res['loaded']:,}", quarantined=f"{res['quarantined']:,}"))
    for name, res in stats.items():
        if isinstance(res, dict) and res.get("summary"):
            for line in res["summary"]:
                typer.echo(f"  {line}")
    if stats.get("stages"):
        from tasks.runs import stage_name

        typer.echo("  " + t("list.sep").join(t("run.stage_time", stage=stage_name(k), seconds=v) for k, v in stats["stages"].items()))


@contextmanager
def _env(**values):
    """Set environment variables for the block and restore what was there before."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def demo(
    customers: int = typer.Option(5000, "--customers", help="How many sample members to generate."),
    seed: int = typer.Option(7, "--seed", help="Random seed of the sample data (same seed, same data)."),
    orders_per_customer: Optional[float] = typer.Option(None, "--orders-per-customer", help="Average orders a member (default ~6)."),
    reset: bool = typer.Option(False, "--reset", help="Start from an empty warehouse."),
) -> None:
    """Start the sample CRM + order system on loopback and run the nightly flow against it."""
    from userops.cli.options import at_least

    at_least(customers, 1, "--customers")  # 0 or fewer: one line naming the option, before anything runs
    from userops.clock import sample_history_end, shop_today
    from userops.db import dispose_engines, get_engine
    from userops.sample.generator import generate
    from userops.sample.server import SampleServer
    from userops.settings import get_settings, reset_settings

    settings = get_settings()
    if reset and settings.database_url.startswith("sqlite"):
        db = Path(settings.database_url.split("///", 1)[1])
        for p in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            p.unlink(missing_ok=True)
    today = shop_today()
    with get_engine().connect():  # an unreachable warehouse is one line (userops.cli.main) before any data or service
        pass
    typer.echo(t("demo.generating", customers=customers, seed=seed))
    data = generate(customers, seed=seed, as_of=str(sample_history_end()), orders_per_customer=orders_per_customer)
    from userops.sample.provider import SampleSmtpServer, SampleWebhookProvider

    with SampleServer(data) as server, SampleWebhookProvider() as hook, SampleSmtpServer() as smtp, _env(
        USEROPS_CRM__URL=server.url,
        USEROPS_ORDERS__URL=server.url,
        # customer messages go to loopback sample providers unless real ones are configured
        USEROPS_SMS_WEBHOOK_URL=os.environ.get("USEROPS_SMS_WEBHOOK_URL") or hook.url,
        USEROPS_PUSH_WEBHOOK_URL=os.environ.get("USEROPS_PUSH_WEBHOOK_URL") or hook.url,
        USEROPS_SMTP_URL=os.environ.get("USEROPS_SMTP_URL") or smtp.url,
    ):
        reset_settings()
        dispose_engines()
        typer.echo(t("demo.services", url=server.url))
        from flows.nightly import nightly

        from userops.clock import utcnow

        started = utcnow()
        # as `userops run nightly` tells a failed night: which step, why, what to do; no traceback
        state = _run_night(nightly, as_of=today)
        if not state.is_completed():
            _nightly_failed(state)
            raise typer.Exit(1)
        stats = state.result()
        delivered = dict(hook.by_channel, email=len(smtp.message_ids))
        staff = _staff_listed_since(started)
    reset_settings()  # the sample services are gone; settings point where they did before
    dispose_engines()
    typer.echo(t("nightly.done", as_of=today, duration=stats.get("duration_s")))
    _print_stats(stats)
    typer.echo("  " + t("demo.delivered", counts=t("list.sep").join(f"{t_or(f'channel.word.{k}', k)} {v:,}" for k, v in sorted(delivered.items()))))
    if staff:  # "sent" on the staff channel = a row in the staff-outreach list, not a provider's message
        typer.echo("  " + t("demo.staff_listed", n=f"{staff:,}", path="output/outreach/"))
    typer.echo(t("demo.warehouse", url=get_engine().url.render_as_string(hide_password=True)))


def _staff_listed_since(started) -> int:
    """Touches this run put on the staff-outreach list (channel ``staff``), which no provider sees."""
    import sqlalchemy as sa

    from userops.db import get_engine

    with get_engine().connect() as conn:
        return int(conn.execute(sa.text("SELECT COUNT(*) FROM touches WHERE channel = 'staff' AND status = 'sent' AND sent_at >= :s"),
                                {"s": started}).scalar() or 0)


def import_cmd(
    table: str = typer.Argument(..., help="customers | orders | order-items | feedback | events"),
    path: Path = typer.Argument(..., help="A .csv or .xlsx file with the canonical columns (see README)."),
    map_: list[str] = typer.Option([], "--map", help="Rename a source header: --map '会员号=customer_id' (repeatable)."),
    timezone: Optional[str] = typer.Option(None, "--timezone", help="Timezone of times without an offset (default: the shop's)."),
    date_order: Optional[str] = typer.Option(
        None, "--date-order",
        help="How to read dates written day and month first, e.g. 01/11/2026: dmy (1 November) or mdy (January 11). "
             "Default ymd: such a date that reads both ways is quarantined (ambiguous_date), never guessed.",
    ),
) -> None:
    """Import a CSV or Excel file: good rows loaded, bad rows quarantined with their rule."""
    from tasks.extract import FileImportError
    from tasks.ingest import import_file
    from tasks.validate import SuiteError, ValidationProcessDied
    from userops.cli.options import date_order as parse_date_order
    from userops.cli.options import timezone as _timezone
    from userops.db import WarehouseWriteError, migrate

    stored = _table(table)
    mapping = {}
    for m in map_:
        if "=" not in m:
            typer.echo(t("import.bad_map", value=m), err=True)
            raise typer.Exit(2)
        k, v = m.split("=", 1)
        mapping[k.strip()] = v.strip()
    tz = _timezone(timezone)  # checked before anything is read
    order = parse_date_order(date_order)
    try:
        migrate()
        with _console_without_tracebacks():  # no Great Expectations info lines on the terminal
            res = import_file(stored, path, mapping or None, assume_tz=tz, date_order=order)
    except (FileImportError, SuiteError, ValidationProcessDied, WarehouseWriteError) as exc:  # the validating process killed, e.g. for memory
        # WarehouseWriteError: a value the warehouse refused (its words, no row values); nothing of the file kept
        typer.echo(t("import.error", error=exc.localized() if hasattr(exc, "localized") else exc), err=True)
        raise typer.Exit(1)
    done = t("import.done", path=path, read=f"{res.read:,}", loaded=f"{res.loaded:,}", quarantined=f"{res.quarantined:,}")
    superseded = int(getattr(res, "superseded", 0) or 0)
    # read = loaded + quarantined + superseded: an older version (or a copy) of a key the file holds newer
    typer.echo(done + (t("import.done_superseded", n=f"{superseded:,}") if superseded else ""))
    nothing = res.quarantined and not res.loaded and not res.released
    if nothing:
        typer.echo(t("import.nothing_loaded", path=path, quarantined=res.quarantined), err=True)
    if res.quarantined:
        typer.echo("  userops quarantine list --table " + stored)
    if nothing:
        raise typer.Exit(1)


@run_app.command("nightly")
def run_nightly(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Business day YYYY-MM-DD (default: today in the shop's timezone)."),
    full_refresh: bool = typer.Option(False, "--full-refresh", help="Ignore watermarks and re-read every source."),
) -> None:
    """Run the nightly flow now against the configured sources."""
    from flows.nightly import FutureDay, nightly, refuse_future_day

    from userops.cli.options import day as parse_day

    day = parse_day(as_of)
    if day is not None:
        try:
            refuse_future_day(day)  # one line naming the option (exit 2), before anything runs
        except FutureDay as exc:
            raise typer.BadParameter(exc.localized(), param_hint="--as-of")
    state = _run_night(nightly, as_of=day, full_refresh=full_refresh)
    if not state.is_completed():
        _nightly_failed(state)
        raise typer.Exit(1)
    stats = state.result()
    typer.echo(t("nightly.done", as_of=stats["as_of"], duration=stats.get("duration_s")))
    _print_stats(stats)


def _run_night(nightly, **params):
    """The nightly flow's final state, its failure's traceback kept off the terminal (the
    run's log has it); a Prefect API that cannot be reached is one line (exit 1)."""
    try:
        with _console_without_tracebacks():
            return nightly(**params, return_state=True)
    except Exception as exc:
        cause = _prefect_connection_error(exc)
        if cause is None:
            raise
        # the same words as the alert commands', and that a night can also run on a temporary local server
        from userops.cli.alert import _prefect_api_url

        typer.echo(t("alert.cli.prefect_unreachable", url=_prefect_api_url(), error=type(cause).__name__)
                   + t("run.prefect_unset"), err=True)
        raise typer.Exit(1)


def _prefect_connection_error(exc: BaseException) -> BaseException | None:
    """The httpx connection error under ``exc`` when the Prefect API itself cannot be reached
    (Prefect raises ``RuntimeError("Failed to reach API at …")`` from it), else None."""
    import httpx

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


@contextmanager
def _console_without_tracebacks():
    """Prefect logs a failed run's traceback (flow and task run) to the terminal and to the
    run's log in Prefect. While the block runs, the terminal's copy is the log line without
    the traceback, and the lines meant for engineers are left off the terminal (see
    ``_OperatorConsole``); Prefect's run log (and a log file) keep them whole."""
    import logging

    quiet = _OperatorConsole()
    try:
        from prefect.logging.configuration import ensure_logging_setup

        ensure_logging_setup()
    except Exception:  # pragma: no cover - another Prefect version
        pass
    wrapped = []
    for lg in [logging.getLogger()] + [v for v in list(logging.root.manager.loggerDict.values()) if isinstance(v, logging.Logger)]:
        for h in lg.handlers:
            if isinstance(h, logging.FileHandler) or not isinstance(h, logging.StreamHandler):
                continue  # a log file keeps its tracebacks; Prefect's API handler is no StreamHandler
            if "format" in vars(h):
                continue  # already wrapped (the same handler on two loggers)
            wrapped.append(h)
            h.format = _format_without_traceback(h)
            h.addFilter(quiet)
    try:
        yield
    finally:
        for h in wrapped:
            vars(h).pop("format", None)
            h.removeFilter(quiet)


class _OperatorConsole:
    """Log records kept off the operator's terminal (zh-CN or en lines of their own are
    printed instead); Prefect's run log, a log file and debug handlers still get them:
    - the flow/task engine's raw exception lines: "Encountered exception during execution:
      OperationalError('(psycopg2.OperationalError) …')", "Finished in state Failed('Flow run
      encountered an exception: BatchRejected: …')", "Task run failed with exception: … -
      Retries are exhausted" (the command's own failure account says which step, why, what to do);
    - Great Expectations' info lines ("Created temporary directory '/tmp/…' for ephemeral docs
      site": its module logger is set to INFO whatever the package's level);
    - Prefect's temporary-server notice ("Starting temporary server on …", "See
      https://docs.prefect.io/v3/concepts/server…"): the failure account says when a run had
      no lasting server."""

    ENGINE_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
    ENGINE_LINES = ("Encountered exception during execution", "Finished in state Failed(", "Finished in state Crashed(")

    def filter(self, record) -> bool:
        import logging

        name = record.name or ""
        if name == "great_expectations" or name.startswith("great_expectations."):
            return record.levelno >= logging.WARNING
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot render: leave it to the handler
            return True
        if name.startswith(self.ENGINE_LOGGERS):
            if message.startswith(self.ENGINE_LINES):
                return False
            if message.startswith("Task run failed with") and "Retry " not in message:  # a retry to come stays
                return False
        if name.startswith("prefect") and message.startswith("Starting temporary server on") and "docs.prefect.io" in message:
            return False
        return True


def _format_without_traceback(handler):
    cls_format = type(handler).format

    def format(record):
        saved = (record.exc_info, record.exc_text, record.stack_info)
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return cls_format(handler, record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved

    return format


def _nightly_failed(state) -> None:
    """The operator's account of a failed nightly run: which step, why, what to do, where the
    details are (the run in the Prefect UI; its log has the traceback)."""
    from tasks.alerts.failures import flow_run_link, state_exception
    from tasks.alerts.problems import describe_failure

    exc = state_exception(state)
    problem = describe_failure(exc, None if exc is not None else getattr(state, "message", None))
    if problem.kind == "warehouse":
        from tasks.alerts.problems import warehouse_unreachable_text

        typer.echo(t("nightly.failed", error=warehouse_unreachable_text(problem.detail, fix=True)), err=True)
    else:
        typer.echo(t("run.failed.step", step=problem.step, reason=problem.reason), err=True)
        typer.echo("  " + t("run.failed.fix", fix=problem.fix), err=True)
    run_id = getattr(getattr(state, "state_details", None), "flow_run_id", None)
    link = flow_run_link(run_id) if run_id else None
    if link:
        typer.echo("  " + t("run.failed.details", link=link), err=True)
    elif run_id:  # Prefect's temporary server: it stopped with the run, no page to link
        typer.echo("  " + t("run.failed.no_ui"), err=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the warehouse schema (Alembic)."""
    from userops.db import get_engine, migrate

    migrate()
    typer.echo(t("db.up_to_date", url=get_engine().url.render_as_string(hide_password=True)))


def _table(table: str, *, stored_ok: bool = False) -> str:
    """The stored name of a table given as the import command spells it (order-items), or
    with ``stored_ok`` also as stored (order_items, as the quarantine lists it); anything else
    is one line naming the tables (exit 2)."""
    name = IMPORT_TABLES.get(table, table if stored_ok else None)
    if name not in IMPORT_TABLES.values():
        typer.echo(t("data.unknown_table", table=table, tables=join_list(IMPORT_TABLES)), err=True)
        raise typer.Exit(2)
    return name


@quarantine_app.command("list")
def quarantine_list(
    table: Optional[str] = typer.Option(None, "--table", help="customers, orders, order-items, feedback or events."),
    run: Optional[str] = typer.Option(None, "--run", help="Only records first seen in this run id."),
    limit: int = typer.Option(50, "--limit"),
    show_all: bool = typer.Option(False, "--all", help="Also records already settled (released once their customer or order arrived, or superseded)."),
) -> None:
    """Rejected records still open, grouped by table and rule, then the latest ones."""
    from tasks.quarantine import quarantine_records, quarantine_summary

    table = None if table is None else _table(table, stored_ok=True)
    summary = quarantine_summary(table=table, run_id=run, open_only=not show_all)
    if not show_all:
        settled = int(quarantine_summary(table=table, run_id=run, open_only=False)["n"].sum()) - int(summary["n"].sum())
        if settled > 0:
            typer.echo(t("quarantine.settled_hidden", n=settled))
    if summary.empty:
        typer.echo(t("quarantine.none"))
        return
    typer.echo(t("quarantine.head"))
    for r in summary.itertuples():
        typer.echo(f"{r.source_table:<14} {r.rule:<33} {r.n:>7}  {or_dash(r.last_run)}")
    typer.echo("")
    typer.echo(t("quarantine.latest"))
    recs = quarantine_records(table=table, run_id=run, limit=limit, open_only=not show_all)
    for r in recs.itertuples():
        typer.echo(f"#{r.id:<6} {r.source_table:<12} {or_dash(r.source_id):<14} {r.rule:<28} {or_dash(r.reason)}")


@quarantine_app.command("show")
def quarantine_show(record_id: int = typer.Argument(..., help="The # of a quarantined record.")) -> None:
    """One rejected record as received (phone and email masked), its rule and run."""
    from tasks.quarantine import quarantine_record

    rec = quarantine_record(record_id)
    if rec is None:
        typer.echo(t("quarantine.unknown", id=record_id), err=True)
        raise typer.Exit(1)
    labels = {k: t(f"quarantine.field.{k}") for k in (*QUARANTINE_FIELDS, "record")}  # registered above
    from rich.cells import cell_len  # the terminal width of a label (a Chinese character takes two columns)

    width = max(13, *(cell_len(v) for v in labels.values()))
    for k in QUARANTINE_FIELDS:
        value = to_shop_str(rec[k]) if k in ("seen_at", "resolved_at") and not is_missing(rec[k]) else rec[k]  # stored in UTC
        typer.echo(labelled(pad(labels[k], width, ">"), or_dash(value)))
    typer.echo(labelled(pad(labels["record"], width, ">")))
    for k, v in rec["record"].items():
        typer.echo("    " + labelled(k, or_dash(v)))
