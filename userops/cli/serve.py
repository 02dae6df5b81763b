"""``userops serve``: the whole operations center on this machine, in one command.

Starts a Prefect server (PREFECT_HOME under the project unless set; SQLite there, or the
PostgreSQL at ``PREFECT_SERVER_DATABASE_CONNECTION_URL``), waits for it, creates the
process work pool, deploys everything in ``prefect.yaml``, registers the alert blocks and
the crash automation, serves the HTML reports folder read-only on ``deploy.reports_port``
(4201; its URL goes to the worker as USEROPS_REPORTS_URL, so the report links in artifacts,
the digest and alerts open; see ``userops.reports``), starts a process worker and prints the
UI's address. Ctrl-C stops the worker, then the server.

``userops serve --check`` lists the deployments on the server with their schedules and
triggers (exit 1 when the server is unreachable or a deployment is missing);
``userops serve --worker-only`` starts just a worker against ``PREFECT_API_URL`` — the way
to add machines (docs/operations.md).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Optional

import typer

from userops.i18n import register as register_messages
from userops.i18n import join_list, t

register_messages(
    {
        "serve.starting": {
            "zh-CN": "正在启动 Prefect 服务器 {url}（数据库：{db}）……",
            "en": "Starting the Prefect server at {url} (database: {db}) ...",
        },
        "serve.up": {"zh-CN": "Prefect 服务器已就绪（{seconds:.1f} 秒）。", "en": "Prefect server is up ({seconds:.1f}s)."},
        "serve.pool": {"zh-CN": "工作池 {pool}：{state}", "en": "Work pool {pool}: {state}"},
        "serve.pool_created": {"zh-CN": "已创建（process 类型）", "en": "created (process type)"},
        "serve.pool_exists": {"zh-CN": "已存在", "en": "exists"},
        "serve.deploying": {"zh-CN": "正在部署 prefect.yaml ……", "en": "Deploying prefect.yaml ..."},
        "serve.warehouse": {"zh-CN": "数据仓库表结构已是最新：{url}", "en": "Warehouse schema up to date: {url}"},
        "serve.warehouse_failed": {
            "zh-CN": "无法更新数据仓库表结构（{url}）：{error}。请检查 USEROPS_DATABASE_URL 后重新运行 userops serve。",
            "en": "Could not bring the warehouse schema up to date ({url}): {error}. Check USEROPS_DATABASE_URL and run userops serve again.",
        },
        "serve.skipped": {
            "zh-CN": "  暂未部署 {name}：{why}",
            "en": "  not deployed yet: {name} ({why})",
        },
        "serve.blocks": {"zh-CN": "告警渠道块：已由 {fn} 注册", "en": "Alert channel blocks: registered by {fn}"},
        "serve.blocks_missing": {
            "zh-CN": "告警渠道块：告警模块尚未提供注册函数（tasks.alerts.register_blocks），已跳过；告警仍按设置中的 Webhook 发送。",
            "en": "Alert channel blocks: the alerts module provides no registration yet (tasks.alerts.register_blocks); skipped — alerts still use the webhooks in the settings.",
        },
        "serve.automation": {"zh-CN": "崩溃告警自动化：已由 {fn} 创建", "en": "Crash automation: created by {fn}"},
        "serve.automation_missing": {
            "zh-CN": "崩溃告警自动化：告警模块尚未提供（tasks.alerts.ensure_crash_automation），已跳过。",
            "en": "Crash automation: the alerts module provides none yet (tasks.alerts.ensure_crash_automation); skipped.",
        },
        "serve.setup_failed": {"zh-CN": "{what} 失败：{error}", "en": "{what} failed: {error}"},
        "serve.worker": {
            "zh-CN": "工作进程已启动，监听工作池 {pool}（日志：{log}）",
            "en": "Worker started on work pool {pool} (log: {log})",
        },
        "serve.ready": {
            "zh-CN": "userops 已运行。打开 Prefect 界面：{url}  （按 Ctrl-C 停止）",
            "en": "userops is running. Open the Prefect UI: {url}  (Ctrl-C to stop)",
        },
        "serve.already": {
            "zh-CN": "userops serve 已经在运行（进程 {pid}，{url}），使用同一个 PREFECT_HOME {home}。先停止它，或为另一套服务设置另一个 PREFECT_HOME。检查现有服务：userops serve --check",
            "en": "userops serve already runs from this PREFECT_HOME {home} (pid {pid}, {url}). Stop it first, or give another set-up its own PREFECT_HOME. To look at the running one: userops serve --check",
        },
        "serve.stopping": {"zh-CN": "正在停止工作进程和服务器……", "en": "Stopping the worker and the server ..."},
        "serve.stopped": {"zh-CN": "已停止。", "en": "Stopped."},
        "serve.died": {
            "zh-CN": "{what} 意外退出（退出码 {code}），日志 {log} 末尾：\n{tail}",
            "en": "The {what} exited unexpectedly (code {code}); end of its log {log}:\n{tail}",
        },
        "serve.unreachable": {
            "zh-CN": "无法连接 Prefect API {url}。先运行 `userops serve`，或设置 PREFECT_API_URL。",
            "en": "Cannot reach the Prefect API at {url}. Run `userops serve` first, or set PREFECT_API_URL.",
        },
        "serve.check_head": {
            "zh-CN": "Prefect API {url}：{n} 个部署",
            "en": "Prefect API {url}: {n} deployments",
        },
        "serve.check_missing": {
            "zh-CN": "缺少部署：{names}（运行 `userops serve` 或 `prefect deploy --all`）",
            "en": "Missing deployments: {names} (run `userops serve` or `prefect deploy --all`)",
        },
        "serve.other_dir": {
            "zh-CN": "注意：部署的流程在目录 {dirs} 中运行，而本机项目在 {here}。请把项目放在相同路径，否则此工作进程上的运行会失败。",
            "en": "Warning: the deployments run their flows from {dirs}, but this checkout is at {here}. Put the project at the same path on every worker machine, or runs on this worker fail.",
        },
        "serve.reports": {
            "zh-CN": "健康度等 HTML 报告（只读）：{url}（目录 {dir}；工作进程的链接指向这里）",
            "en": "HTML reports (read-only): {url} (folder {dir}; the worker's report links point here)",
        },
        "serve.reports_elsewhere": {
            "zh-CN": "HTML 报告的链接指向 USEROPS_REPORTS_URL={url}（由那里提供目录 {dir}）",
            "en": "HTML report links point at USEROPS_REPORTS_URL={url} (it serves the folder {dir})",
        },
        "serve.reports_failed": {
            "zh-CN": "无法在端口 {port} 提供 HTML 报告（{error}）：报告链接将改为写出文件位置。换一个端口：USEROPS_DEPLOY__REPORTS_PORT，或设为 0 不提供。",
            "en": "Cannot serve the HTML reports on port {port} ({error}): report links name the file's location instead. Use another port with USEROPS_DEPLOY__REPORTS_PORT, or 0 not to serve them.",
        },
        "serve.need_api": {
            "zh-CN": "--worker-only 需要 PREFECT_API_URL 指向 Prefect 服务器，例如 http://ops-server:4200/api",
            "en": "--worker-only needs PREFECT_API_URL pointing at the Prefect server, e.g. http://ops-server:4200/api",
        },
    }
)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


def _db_label() -> str:
    from sqlalchemy.engine import make_url

    url = os.environ.get("PREFECT_SERVER_DATABASE_CONNECTION_URL") or os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL")
    if not url:
        return f"SQLite in {os.environ.get('PREFECT_HOME', '~/.prefect')}"
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - only a label
        return "configured by PREFECT_SERVER_DATABASE_CONNECTION_URL"


def _configured_api_url() -> str | None:
    """PREFECT_API_URL from the environment or the active Prefect profile."""
    from prefect.settings import get_current_settings

    return os.environ.get("PREFECT_API_URL") or get_current_settings().api.url


def _print_deployments(infos, lang: str | None = None) -> None:
    """One line per deployment: its name, how it starts and its concurrency limit, in the
    operator's language (DeploymentInfo.how / concurrency_text)."""
    width = max([len(i.full_name) for i in infos] + [20])
    for i in infos:
        extra = f"  {i.concurrency_text(lang)}" if i.concurrency else ""
        typer.echo(f"  {i.full_name:<{width}}  {i.how(lang)}{extra}")


def _expected_deployments() -> list[str]:
    """Deployment names in prefect.yaml whose flow exists (what a complete deploy holds)."""
    from userops.deploy import deployable, render_prefect_yaml

    ready, _ = deployable(render_prefect_yaml(), load=False)
    return [d["name"] for d in ready["deployments"]]


def check(api_url: str) -> int:
    from userops.deploy import api_healthy, describe_deployments

    if not api_healthy(api_url):
        typer.echo(t("serve.unreachable", url=api_url), err=True)
        return 1
    infos = describe_deployments(api_url)
    typer.echo(t("serve.check_head", url=api_url, n=len(infos)))
    _print_deployments(infos)
    missing = sorted(set(_expected_deployments()) - {i.name for i in infos})
    if missing:
        typer.echo(t("serve.check_missing", names=join_list(missing)), err=True)
        return 1
    return 0


def _setup_alerts(api_url: str) -> None:
    from userops.deploy import BLOCK_REGISTRATION, CRASH_AUTOMATION, call_setup, find_setup

    for candidates, ok_key, missing_key in (
        (BLOCK_REGISTRATION, "serve.blocks", "serve.blocks_missing"),
        (CRASH_AUTOMATION, "serve.automation", "serve.automation_missing"),
    ):
        try:
            label, fn = find_setup(candidates)
        except Exception as exc:  # noqa: BLE001 - a broken alerts module must not stop serve
            typer.echo(t("serve.setup_failed", what=candidates[0][0], error=exc), err=True)
            continue
        if fn is None:
            typer.echo(t(missing_key))
            continue
        try:
            call_setup(api_url, fn)
            typer.echo(t(ok_key, fn=label))
        except Exception as exc:  # noqa: BLE001
            typer.echo(t("serve.setup_failed", what=label, error=exc), err=True)


def _migrate_warehouse() -> None:
    """The warehouse's schema to the latest migration (idempotent), so any deployment run
    first — not only the nightly run, which migrates itself — finds its tables."""
    from userops.db import get_engine, migrate

    engine = get_engine()
    url = engine.url.render_as_string(hide_password=True)
    try:
        migrate(engine)
    except Exception as exc:  # noqa: BLE001 - the server and deployments are still useful
        typer.echo(t("serve.warehouse_failed", url=url, error=exc), err=True)
        return
    typer.echo(t("serve.warehouse", url=url))


def _ui_env(api_url: str) -> dict:
    """The UI address the flows put in alert and digest links: this server's (its port, and
    the machine's name when it listens on every address), unless USEROPS_PREFECT_UI_URL is set."""
    import socket
    from urllib.parse import urlsplit, urlunsplit

    from userops.settings import get_settings

    if "prefect_ui_url" in get_settings().model_fields_set:
        return {}
    parts = urlsplit(api_url.rstrip("/").removesuffix("/api"))
    if parts.hostname in ("0.0.0.0", "::"):
        parts = parts._replace(netloc=f"{socket.getfqdn()}:{parts.port}" if parts.port else socket.getfqdn())
    return {"USEROPS_PREFECT_UI_URL": urlunsplit(parts)}


def _public_host(host: str) -> str:
    """The address others reach a server bound to ``host`` at (the machine's name for 0.0.0.0)."""
    import socket

    return socket.getfqdn() if host in ("0.0.0.0", "::") else host


def _start_reports(host: str):
    """Serve the reports folder read-only next to the Prefect server, unless reports_url is
    set (someone else serves it) or deploy.reports_port is 0. Returns (server or None, the
    environment to hand the worker: USEROPS_REPORTS_URL, so its flows' links open)."""
    from userops.reports import ReportServer, reports_dir
    from userops.settings import get_settings

    s = get_settings()
    folder = reports_dir()
    if s.reports_url:
        typer.echo(t("serve.reports_elsewhere", url=s.reports_url, dir=folder))
        return None, {}
    if not s.deploy.reports_port:
        return None, {}
    try:
        server = ReportServer(folder, host=host, port=s.deploy.reports_port).start()
    except OSError as exc:  # port taken: serve everything else, the links say where the file is
        typer.echo(t("serve.reports_failed", port=s.deploy.reports_port, error=exc.strerror or type(exc).__name__), err=True)
        return None, {}
    url = server.url_for(_public_host(host))
    typer.echo(t("serve.reports", url=url, dir=folder))
    return server, {"USEROPS_REPORTS_URL": url}


def serve(
    host: Optional[str] = typer.Option(None, "--host", help="Address the Prefect server listens on (default 127.0.0.1; 0.0.0.0 to let workers on other machines connect)."),
    port: Optional[int] = typer.Option(None, "--port", help="Port of the Prefect server and UI (default 4200)."),
    check_only: bool = typer.Option(False, "--check", help="Only list the deployments on the server with their schedules and triggers; exit 1 if one is missing."),
    worker_only: bool = typer.Option(False, "--worker-only", help="Only start a worker for the work pool, against the server at PREFECT_API_URL (for extra machines)."),
    no_worker: bool = typer.Option(False, "--no-worker", help="Start the server and deploy, but no worker."),
) -> None:
    """Start the Prefect server, deploy prefect.yaml, start a worker; Ctrl-C stops it all.

    Registers the alert blocks too, and prints the UI's address."""
    from userops.deploy import PrefectServer, Worker, api_healthy, deploy, work_pool_name
    from userops.settings import get_settings

    # Ctrl-C must reach us even when started from a shell that ignores SIGINT for
    # background jobs; the children then inherit the default disposition too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    s = get_settings()
    host = host or s.deploy.host
    port = port or s.deploy.port
    home = Path(os.environ["PREFECT_HOME"])  # set by userops.cli (project .prefect unless given)

    if check_only:
        api_url = _configured_api_url() or f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/api"
        raise typer.Exit(check(api_url))

    pool = work_pool_name()
    if worker_only:
        api_url = _configured_api_url()
        if not api_url:
            typer.echo(t("serve.need_api"), err=True)
            raise typer.Exit(2)
        if not api_healthy(api_url):
            typer.echo(t("serve.unreachable", url=api_url), err=True)
            raise typer.Exit(1)
        from userops.deploy import deployed_project_dirs
        from userops.settings import PROJECT_ROOT

        elsewhere = sorted(deployed_project_dirs(api_url) - {str(PROJECT_ROOT)})
        if elsewhere:
            typer.echo(t("serve.other_dir", dirs=join_list(elsewhere), here=PROJECT_ROOT), err=True)
        reports, reports_env = _start_reports(host)  # this machine's flows write their reports here
        worker = Worker(api_url, pool, home / "worker.log", extra_env={**_ui_env(api_url), **reports_env}).start()
        typer.echo(t("serve.worker", pool=pool, log=worker.log_path))
        try:
            _run_until_interrupted([worker], None)
        finally:
            if reports is not None:
                reports.stop()
        return

    other = _running_serve(home)
    if other:  # a second server and worker on the same Prefect database and work pool
        typer.echo(t("serve.already", pid=other["pid"], url=other.get("url", "?"), home=home), err=True)
        raise typer.Exit(1)
    server = PrefectServer(home, host=host, port=port)
    _claim_home(home, server.url)
    typer.echo(t("serve.starting", url=server.url, db=_db_label()))
    t0 = time.monotonic()
    procs: list = []
    reports = None
    # Load the flows (to see which can be deployed) while the server starts.
    plan: dict = {}
    planner = threading.Thread(target=lambda: plan.update(result=_safe_plan()), daemon=True)
    planner.start()
    try:
        procs.append(server)
        server.start()
        typer.echo(t("serve.up", seconds=time.monotonic() - t0))
        typer.echo(t("serve.deploying"))
        planner.join()
        if isinstance(plan.get("result"), BaseException):
            raise plan["result"]
        res = deploy(server.api_url, home, plan=plan["result"])
        typer.echo(t("serve.pool", pool=pool, state=t("serve.pool_created" if res.pool_created else "serve.pool_exists")))
        _setup_alerts(server.api_url)
        # listed once the crash automation exists: alert-crashed-run runs on its event, not by hand
        from userops.deploy import describe_deployments

        _print_deployments(describe_deployments(server.api_url))
        for name, why in res.skipped:
            typer.echo(t("serve.skipped", name=name, why=why))
        _migrate_warehouse()  # before the worker: a run started from the UI finds every table
        reports, reports_env = _start_reports(host)
        if not no_worker:
            worker = Worker(server.api_url, pool, home / "worker.log", extra_env={**_ui_env(server.api_url), **reports_env})
            worker.start()
            procs.insert(0, worker)
            typer.echo(t("serve.worker", pool=pool, log=worker.log_path))
    except KeyboardInterrupt:
        _stop(procs)
        if reports is not None:
            reports.stop()
        raise typer.Exit(130)
    except Exception as exc:
        typer.echo(str(exc), err=True)
        _stop(procs)
        if reports is not None:
            reports.stop()
        raise typer.Exit(1)
    try:
        _run_until_interrupted(procs, t("serve.ready", url=server.url))
    finally:
        if reports is not None:
            reports.stop()


def _pid_file(home: Path) -> Path:
    return home / "userops-serve.json"


def _running_serve(home: Path) -> dict | None:
    """The `userops serve` already running from this PREFECT_HOME (its pid is alive), if any."""
    import json

    import psutil

    try:
        info = json.loads(_pid_file(home).read_text())
        proc = psutil.Process(int(info["pid"]))
        if proc.pid != os.getpid() and proc.is_running() and "serve" in " ".join(proc.cmdline()):
            return info
    except (FileNotFoundError, ValueError, KeyError, psutil.Error):
        pass
    return None


def _claim_home(home: Path, url: str) -> None:
    import atexit
    import json

    home.mkdir(parents=True, exist_ok=True)
    _pid_file(home).write_text(json.dumps({"pid": os.getpid(), "url": url}))

    def _release():
        try:
            if json.loads(_pid_file(home).read_text()).get("pid") == os.getpid():
                _pid_file(home).unlink()
        except (FileNotFoundError, ValueError):
            pass

    atexit.register(_release)


def _safe_plan():
    from userops.deploy import plan_deploy

    try:
        return plan_deploy()
    except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
        return exc


def _stop(procs) -> None:
    typer.echo(t("serve.stopping"))
    for p in procs:  # worker first, then the server
        p.stop()
    typer.echo(t("serve.stopped"))


def _run_until_interrupted(procs, ready: str | None) -> None:
    """Wait for Ctrl-C (or SIGTERM); stop everything if one of the processes dies."""
    if ready:
        typer.echo(ready)

    def _term(signum, frame):  # SIGTERM behaves like Ctrl-C
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, _term)
    code = 0
    try:
        while True:
            for p in procs:
                if not p.alive():
                    typer.echo(t("serve.died", what=p.name, code=p.proc.returncode, log=p.log_path, tail=p.log_tail()), err=True)
                    code = 1
                    raise KeyboardInterrupt
            time.sleep(1.0)
    except KeyboardInterrupt:
        _stop(procs)
    finally:
        signal.signal(signal.SIGTERM, old)
    if code:
        raise typer.Exit(code)
