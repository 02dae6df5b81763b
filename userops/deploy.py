"""Running userops like production on Prefect: the deployments in ``prefect.yaml``, a
Prefect server, the process work pool and its workers.

Used by ``userops serve`` and by the deploy tests; everything here talks to Prefect the
way an operator would (``prefect server start``, ``prefect deploy --all``,
``prefect worker start``) so what is tested is what runs.

* :func:`render_prefect_yaml` applies the settings' overrides (timezone, crons, work pool)
  to ``prefect.yaml``; :func:`deployable` keeps the deployments whose flow can be loaded
  (the others are reported, not deployed, so one unfinished flow does not block the rest).
* :class:`PrefectServer` / :class:`Worker`: subprocesses in their own process group,
  stopped cleanly.
* :func:`deploy` = ensure the work pool + ``prefect deploy --all`` on the rendered file.
* :func:`describe_deployments`: what the UI shows (schedules, triggers, concurrency).
"""
from __future__ import annotations

import asyncio
import copy
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

from userops.settings import PROJECT_ROOT, Settings, get_settings

PREFECT_YAML = PROJECT_ROOT / "prefect.yaml"
DEFAULT_POOL = "userops-pool"
# deployment name in prefect.yaml -> field of ``settings.deploy`` overriding its cron
CRON_OVERRIDES = {"nightly": "nightly_cron", "weekly-retrain": "retrain_cron", "hourly-monitor": "monitor_cron"}


def prefect_bin() -> str:
    """The ``prefect`` executable next to this Python (the project's venv)."""
    exe = Path(sys.executable).with_name("prefect")
    return str(exe) if exe.exists() else "prefect"


# ----------------------------------------------------------------------------- prefect.yaml
def load_prefect_yaml(path: str | Path = PREFECT_YAML) -> dict:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), list):
        raise ValueError(f"{path}: expected a mapping with a `deployments` list")
    return data


def render_prefect_yaml(config: dict | None = None, settings: Settings | None = None) -> dict:
    """``prefect.yaml`` with the operator's settings applied: every schedule in the shop's
    timezone (``USEROPS_DEPLOY__SCHEDULE_TIMEZONE`` or ``USEROPS_TIMEZONE``), the nightly /
    retrain / monitor crons when set, the deliver-alerts interval
    (``USEROPS_ALERTS__DELIVER_EVERY_MINUTES``), the work pool name when set, and each
    deployment's description in the shop's language (``deploy.description.<name>``,
    flows/texts.py; a deployment without one keeps prefect.yaml's)."""
    from userops.i18n import t_or

    s = settings or get_settings()
    cfg = copy.deepcopy(config if config is not None else load_prefect_yaml())
    tz = s.deploy.schedule_timezone or s.timezone
    for d in cfg["deployments"]:
        text = t_or(f"deploy.description.{d.get('name')}", None, s.language)
        if text is not None:  # else prefect.yaml's own
            d["description"] = text
        cron = getattr(s.deploy, CRON_OVERRIDES.get(d.get("name"), ""), None)
        for sched in d.get("schedules") or []:
            if "cron" in sched:
                sched["timezone"] = tz
                if cron:
                    sched["cron"] = cron
            elif "interval" in sched and d.get("name") == "deliver-alerts":  # one setting for its interval
                sched["interval"] = int(s.alerts.deliver_every_minutes) * 60
        if s.deploy.work_pool:
            d.setdefault("work_pool", {})
            d["work_pool"] = {**(d["work_pool"] or {}), "name": s.deploy.work_pool}
    return cfg


def work_pool_name(config: dict | None = None, settings: Settings | None = None) -> str:
    cfg = render_prefect_yaml(config, settings)
    names = {((d.get("work_pool") or {}).get("name") or DEFAULT_POOL) for d in cfg["deployments"]}
    if len(names) != 1:
        raise ValueError(f"prefect.yaml uses several work pools ({', '.join(sorted(names))}); userops serve expects one")
    return names.pop()


def entrypoint_problem(entrypoint: str, root: Path = PROJECT_ROOT) -> str | None:
    """Why the flow at ``path/to/file.py:function`` cannot be deployed yet, or None."""
    from prefect.flows import Flow

    try:
        path, func = entrypoint.split(":", 1)
    except ValueError:
        return f"entrypoint {entrypoint!r} is not of the form path/to/file.py:function"
    file = root / path
    if not file.exists():
        return f"{path} does not exist yet"
    module = path[:-3].replace("/", ".") if path.endswith(".py") else path.replace("/", ".")
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a flow file that does not import is reported, not deployed
        return f"{path} cannot be imported: {type(exc).__name__}: {exc}"
    obj = getattr(mod, func, None)
    if obj is None:
        return f"{path} has no {func!r} yet"
    if not isinstance(obj, Flow):
        return f"{path}:{func} is not a Prefect flow"
    return None


def deployable(config: dict, root: Path = PROJECT_ROOT, load: bool = True) -> tuple[dict, list[tuple[str, str]]]:
    """(config with only the deployments whose flow loads, [(name, reason) skipped]).

    ``load=False`` only checks that the flow files exist (fast: nothing is imported)."""
    cfg = copy.deepcopy(config)
    keep, skipped = [], []
    for d in cfg["deployments"]:
        if load:
            problem = entrypoint_problem(d.get("entrypoint", ""), root)
        else:
            path = d.get("entrypoint", "").split(":", 1)[0]
            problem = None if (root / path).is_file() else f"{path} does not exist yet"
        if problem:
            skipped.append((d.get("name", "?"), problem))
        else:
            keep.append(d)
    cfg["deployments"] = keep
    return cfg, skipped


# ----------------------------------------------------------------------------- processes
def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def prefect_env(api_url: str | None = None, home: str | Path | None = None, extra: dict | None = None) -> dict:
    """The environment for a Prefect subprocess: this one, quiet and offline, plus overrides."""
    env = dict(os.environ)
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env["PREFECT_CLI_PROMPT"] = "false"
    env.setdefault("PYTHONUNBUFFERED", "1")
    if home:
        env["PREFECT_HOME"] = str(home)
    if api_url:
        env["PREFECT_API_URL"] = api_url
    env.update({k: str(v) for k, v in (extra or {}).items()})
    return env


def api_healthy(api_url: str, timeout: float = 2.0) -> bool:
    try:
        r = requests.get(f"{api_url.rstrip('/')}/health", timeout=timeout)
        return r.status_code == 200
    except requests.RequestException:
        return False


class _Proc:
    """A subprocess in its own process group, output to a log file, stopped with SIGINT
    (Ctrl-C) first, then SIGTERM, then SIGKILL."""

    name = "process"

    def __init__(self, cmd: list[str], env: dict, log_path: Path, cwd: Path = PROJECT_ROOT):
        self.cmd, self.env, self.log_path, self.cwd = cmd, env, Path(log_path), cwd
        self.proc: subprocess.Popen | None = None

    def start(self):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self._log_start = self._log.tell()  # the log is appended to: this run's lines start here
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        """The last lines this process wrote (not an earlier run's, or another server's
        sharing the file)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_log_start", 0))
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> int | None:
        """Stop the process group; then any descendant that outlived it (e.g. flow-run
        processes a worker started in their own session), by pid."""
        if self.proc is None:
            return None
        import psutil

        try:
            descendants = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)  # our own process group (start_new_session)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        # children of the group that outlived the leader
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        alive = [p for p in descendants if p.is_running()]
        for p in alive:
            try:
                p.terminate()
            except psutil.Error:
                pass
        _, alive = psutil.wait_procs(alive, timeout=5)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        self._log.close()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class PrefectServer(_Proc):
    """``prefect server start`` on ``host:port`` with its own PREFECT_HOME.

    The server's database is SQLite under PREFECT_HOME unless
    ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` is set (in ``extra_env`` or the environment),
    e.g. ``postgresql+asyncpg://user:pass@host:5432/prefect``."""

    name = "Prefect server"

    def __init__(self, home: str | Path, host: str = "127.0.0.1", port: int | None = None, extra_env: dict | None = None, ui: bool | None = None):
        self.host, self.port = host, port or free_port(host)
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        extra = dict(extra_env or {})
        if ui is not None:
            extra["PREFECT_UI_ENABLED"] = "true" if ui else "false"
        env = prefect_env(None, self.home, extra)
        env.pop("PREFECT_API_URL", None)
        cmd = [prefect_bin(), "server", "start", "--host", self.host, "--port", str(self.port)]
        super().__init__(cmd, env, self.home / "server.log")

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    def wait_healthy(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if api_healthy(self.api_url):
                return
            if not self.alive():
                raise RuntimeError(f"the Prefect server exited (code {self.proc.returncode}); its log ({self.log_path}):\n{self.log_tail()}")
            time.sleep(0.5)
        raise TimeoutError(f"the Prefect server at {self.api_url} was not healthy after {timeout:.0f}s; its log ({self.log_path}):\n{self.log_tail()}")

    def start(self, timeout: float = 180.0):
        if api_healthy(self.api_url, timeout=1.0):
            raise RuntimeError(f"something already answers at {self.api_url}; choose another port (--port), or see what runs there: userops serve --check")
        super().start()
        self.wait_healthy(timeout)
        return self


class Worker(_Proc):
    """``prefect worker start --pool POOL --type process``. Flow runs inherit its environment
    (warehouse URL, sources, USEROPS_* settings)."""

    name = "worker"

    def __init__(self, api_url: str, pool: str, log_path: Path, home: str | Path | None = None, extra_env: dict | None = None, name: str | None = None):
        env = prefect_env(api_url, home, extra_env)
        cmd = [prefect_bin(), "worker", "start", "--pool", pool, "--type", "process"]
        if name:
            cmd += ["--name", name]
        super().__init__(cmd, env, log_path)


# ----------------------------------------------------------------------------- API helpers
def _run(coro):
    return asyncio.run(coro)


def _client(api_url: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    class _Ctx:
        async def __aenter__(self):
            self._ts = temporary_settings(updates={PREFECT_API_URL: api_url})
            self._ts.__enter__()
            self._c = get_client()
            return await self._c.__aenter__()

        async def __aexit__(self, *exc):
            try:
                await self._c.__aexit__(*exc)
            finally:
                self._ts.__exit__(*exc)

    return _Ctx()


def ensure_work_pool(api_url: str, pool: str = DEFAULT_POOL) -> bool:
    """Create the process work pool when missing; True when it was created."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    async def go() -> bool:
        async with _client(api_url) as c:
            try:
                await c.read_work_pool(pool)
                return False
            except ObjectNotFound:
                await c.create_work_pool(
                    WorkPoolCreate(name=pool, type="process", base_job_template=ProcessWorker.get_default_base_job_template(), description="userops flows, run by `userops serve` / `prefect worker start --pool " + pool + "`")
                )
                return True

    return _run(go())


def interval_words(seconds: int, lang: str | None = None) -> str:
    """An interval schedule as the operator set it: ``每 10 分钟`` / ``every 10 min`` for
    whole minutes, hours for whole hours, else seconds."""
    from userops.i18n import t

    if seconds and seconds % 3600 == 0:
        return t("deploy.how.every_hours", lang, n=seconds // 3600)
    if seconds and seconds % 60 == 0:
        return t("deploy.how.every_minutes", lang, n=seconds // 60)
    return t("deploy.how.every", lang, seconds=seconds)


def cron_words(cron: str, tz: str, lang: str | None = None) -> str:
    """A cron schedule in words for the patterns prefect.yaml uses: daily (``0 2 * * *``:
    每天 02:00), weekly (``0 5 * * 0``: 每周日 05:00), hourly (``0 * * * *``); any other
    expression is shown as it is (``cron … (tz)``)."""
    import re

    from userops.i18n import t

    f = cron.split()
    num = re.compile(r"^\d{1,2}$")
    if len(f) == 5 and num.match(f[0]) and int(f[0]) < 60 and f[2] == "*" and f[3] == "*":
        minute = int(f[0])
        if num.match(f[1]) and int(f[1]) < 24:
            at = f"{int(f[1]):02d}:{minute:02d}"
            if f[4] == "*":
                return t("deploy.how.daily", lang, time=at, tz=tz)
            if re.match(r"^[0-7]$", f[4]):
                day = t("deploy.how.weekday", lang).split("|")[int(f[4]) % 7]
                return t("deploy.how.weekly", lang, weekday=day, time=at, tz=tz)
        if f[1] == "*" and f[4] == "*":
            return t("deploy.how.hourly", lang, minute=minute, tz=tz) if minute else t("deploy.how.hourly_sharp", lang, tz=tz)
    return t("deploy.how.cron", lang, cron=cron, tz=tz)


@dataclass
class DeployResult:
    deployed: list[str] = field(default_factory=list)  # deployment names (prefect.yaml)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    output: str = ""
    prefect_file: Path | None = None
    pool_created: bool = False


def plan_deploy(settings: Settings | None = None, config: dict | None = None) -> tuple[dict, dict, list[tuple[str, str]]]:
    """(rendered prefect.yaml, the part to deploy, [(name, why) skipped]). Imports the flows."""
    rendered = render_prefect_yaml(config, settings)
    ready, skipped = deployable(rendered)
    return rendered, ready, skipped


def deploy(api_url: str, workdir: Path, settings: Settings | None = None, config: dict | None = None, env: dict | None = None, timeout: float = 900.0, plan=None) -> DeployResult:
    """Ensure the work pool, then ``prefect deploy --all`` on prefect.yaml as rendered for
    these settings, limited to the deployments whose flow exists. Raises on failure.
    ``plan``: a :func:`plan_deploy` result computed earlier (e.g. while the server started)."""
    rendered, ready, skipped = plan or plan_deploy(settings, config)
    res = DeployResult(deployed=[d["name"] for d in ready["deployments"]], skipped=skipped)
    res.pool_created = ensure_work_pool(api_url, work_pool_name(rendered))
    if not ready["deployments"]:
        return res
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    res.prefect_file = workdir / "prefect.rendered.yaml"
    res.prefect_file.write_text(
        "# Generated by `userops serve` from prefect.yaml with the settings' overrides; do not edit.\n"
        + yaml.safe_dump(ready, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    proc = subprocess.run(
        [prefect_bin(), "--no-prompt", "deploy", "--all", "--prefect-file", str(res.prefect_file)],
        cwd=PROJECT_ROOT,
        env=prefect_env(api_url, None, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    res.output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"prefect deploy --all failed (exit {proc.returncode}):\n{res.output[-4000:]}")
    return res


@dataclass
class DeploymentInfo:
    full_name: str  # flow-name/deployment-name
    name: str
    flow_name: str
    work_pool: str | None
    schedules: list[dict]  # {"cron"|"interval", "timezone", "active"}
    triggers: list[str]  # event names that start it
    concurrency: str | None  # e.g. "1 (ENQUEUE)": limit (collision strategy); shown by concurrency_text
    paused: bool
    parameters: dict
    id: str

    def how(self, lang: str | None = None) -> str:
        """How it starts, in the operator's language (``deploy.how.*``, flows/texts.py):
        ``cron 0 2 * * * (Asia/Shanghai)``, ``every 600s``, ``on event …``, ``by hand``."""
        from userops.i18n import t

        parts = []
        for s in self.schedules:
            if s.get("cron"):
                what = cron_words(s["cron"], s.get("timezone") or "UTC", lang)
            elif s.get("interval"):
                what = interval_words(int(s["interval"]), lang)
            else:
                what = str(s)
            parts.append(what if s.get("active", True) else t("deploy.how.inactive", lang, what=what))
        parts += [t("deploy.how.on_event", lang, event=e) for e in self.triggers]
        return t("deploy.how.sep", lang).join(parts) or t("deploy.how.by_hand", lang)

    def concurrency_text(self, lang: str | None = None) -> str:
        """Its concurrency limit in the operator's language (``concurrency 1 (ENQUEUE)``,
        ``并发上限 1（超出时排队等待）``); "" without one."""
        from userops.i18n import t, t_or

        if not self.concurrency:
            return ""
        limit, _, strategy = self.concurrency.partition(" (")
        strategy = strategy.removesuffix(")")
        if strategy:  # a strategy Prefect added later: its code
            strategy = t_or(f"deploy.how.collision.{strategy.lower()}", strategy, lang)
        return t("deploy.how.concurrency", lang, limit=limit, strategy=strategy)


def describe_deployments(api_url: str) -> list[DeploymentInfo]:
    """Every deployment on the server with its schedules, triggers and concurrency limit."""

    async def go():
        async with _client(api_url) as c:
            deps = await c.read_deployments()
            flows = {f.id: f.name for f in await c.read_flows()}
            autos = await c.read_automations()
            return deps, flows, autos

    deps, flows, autos = _run(go())
    by_dep: dict[str, list[str]] = {}
    for a in autos:
        if not a.enabled:
            continue
        events = sorted(getattr(a.trigger, "expect", None) or [])
        for act in a.actions:
            dep_id = getattr(act, "deployment_id", None)
            if dep_id is not None:
                by_dep.setdefault(str(dep_id), []).extend(events)
    out = []
    for d in deps:
        scheds = []
        for s in d.schedules or []:
            sch = s.schedule
            scheds.append(
                {
                    "cron": getattr(sch, "cron", None),
                    "interval": getattr(getattr(sch, "interval", None), "total_seconds", lambda: None)(),
                    "timezone": getattr(sch, "timezone", None),
                    "active": s.active,
                }
            )
        conc = None
        if d.global_concurrency_limit is not None:
            strategy = getattr(getattr(d.concurrency_options, "collision_strategy", None), "value", None) or "ENQUEUE"
            conc = f"{d.global_concurrency_limit.limit} ({strategy})"
        flow_name = flows.get(d.flow_id, "?")
        out.append(
            DeploymentInfo(
                full_name=f"{flow_name}/{d.name}",
                name=d.name,
                flow_name=flow_name,
                work_pool=d.work_pool_name,
                schedules=scheds,
                triggers=sorted(set(by_dep.get(str(d.id), []))),
                concurrency=conc,
                paused=bool(d.paused),
                parameters=dict(d.parameters or {}),
                id=str(d.id),
            )
        )
    return sorted(out, key=lambda i: i.full_name)


def deployed_project_dirs(api_url: str) -> set[str]:
    """The directories the deployments' pull steps change into (the deploying checkout)."""

    async def go():
        async with _client(api_url) as c:
            return await c.read_deployments()

    dirs = set()
    for d in _run(go()):
        for step in d.pull_steps or []:
            cfg = step.get("prefect.deployments.steps.set_working_directory")
            if cfg and cfg.get("directory"):
                dirs.add(str(cfg["directory"]))
    return dirs


# ----------------------------------------------------------------------------- alerts setup
# Where `userops serve` looks for the alerts part's Prefect setup (issue 5). The first
# callable found is called with no arguments (sync or async) while PREFECT_API_URL points
# at the server.
BLOCK_REGISTRATION = [
    ("tasks.alerts.blocks", "register_blocks"),
    ("tasks.alerts", "register_blocks"),
    ("tasks.alerts.blocks", "register_alert_blocks"),
    ("tasks.alerts", "register_alert_blocks"),
]
CRASH_AUTOMATION = [
    ("tasks.alerts.automations", "ensure_crash_automation"),
    ("tasks.alerts.automations", "register_crash_automation"),
    ("tasks.alerts", "ensure_crash_automation"),
    ("tasks.alerts", "register_crash_automation"),
    ("flows.hooks", "ensure_crash_automation"),
    ("flows.hooks", "register_crash_automation"),
]


def find_setup(candidates: list[tuple[str, str]]):
    """The first (module, function) of ``candidates`` that exists, as (label, callable)."""
    for module, func in candidates:
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        fn = getattr(mod, func, None)
        if callable(fn):
            return f"{module}.{func}", fn
    return None, None


def call_setup(api_url: str, fn) -> Any:
    """Call a setup function with PREFECT_API_URL pointing at ``api_url``."""
    import inspect

    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        old = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = api_url
        try:
            out = fn()
            if inspect.isawaitable(out):
                out = _run(_await(out))
            return out
        finally:
            if old is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = old


async def _await(aw):
    return await aw
