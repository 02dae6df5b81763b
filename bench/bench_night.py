"""The 1M-member night: the whole nightly flow, first night and a steady-state night.

    .venv/bin/python bench/bench_night.py [--customers 1000000] [--db sqlite|postgres|both]
        [--delta 0.01] [--seed 7] [--as-of 2026-11-20] [--step-timeout 3600] [--json out.json]

Heavy: run it alone (``flock /tmp/userops-heavy.lock ...`` on a shared machine).
Settings pass through: ``USEROPS_TASK_RUNNER=dask`` measures the night with scoring and
audience planning on a local Dask cluster.

For each warehouse (SQLite file in a temp dir; PostgreSQL: a fresh schema at
USEROPS_BENCH_POSTGRES_URL, default postgresql+psycopg2://postgres@127.0.0.1:5432/test):

1. generate the member base (sample generator: customers, ~10 orders each, items, a year+
   of feedback, events) and serve it from the sample CRM + order system over HTTP (in this
   harness process);
2. the first night on the empty warehouse (08:30 in Shanghai: the sample history ends at
   00:00 UTC = 08:00 there, and a source cannot send records stamped after the night's
   clock; at 02:30 11k orders were stamped in the night's future, which the next night
   rightly treats as changed without a trace and recomputes their customers);
3. the morning's delivery: quiet hours end at 09:00, the ``deliver-messages`` flow sends
   what the night planned to the local SMS/push provider (a separate process) — the first
   night's large backlog goes out here, after the night, never holding it up;
4. the source advances one day with ``--delta`` (1%) of customers and orders changed/new;
5. the steady-state night, then its morning delivery.

Each night and delivery runs in its own process (what a process worker does with a flow run)
against a real Prefect server (temporary PREFECT_HOME, SQLite, started here). Printed: wall
time of the flow run (and of the process, imports included), each stage's time with
extract / validate / load (busy seconds of each; they overlap, chunk by chunk) and every
campaign's planning split out, peak RSS of the night's
process and its children (sampled every 100 ms; the harness — the source system's data and
the Prefect server — is reported apart), and Prefect's own overhead = wall time not spent
inside task bodies (1 − Σ task-run time ÷ wall, task runs read from the server).
Targets (issue 8, 2 cores): steady night ≤ 60 s on SQLite and on PostgreSQL, peak RSS ≤ 4 GB,
overhead ≤ 10%. Prints figures; never a pass/fail test.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_URL = os.environ.get("USEROPS_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
LOCAL_NIGHT = "08:30"  # Shanghai time of the night: after the sample history ends (00:00 UTC), still in quiet hours
LOCAL_MORNING = "09:30"  # after the quiet hours (21:00-09:00): the morning delivery


# ----------------------------------------------------------------------------- memory
class PeakRSS:
    """Peak resident memory of a process plus its children, sampled every 100 ms.

    ``tree=False``: that process alone, plus the processes (with their children) whose pids
    ``extra()`` returns — the harness counts itself, the Prefect server and the provider, not
    the night processes it starts."""

    def __init__(self, pid: int | None = None, tree: bool = True, extra=None):
        import psutil

        self.proc = psutil.Process(pid)
        self.tree = tree
        self.extra = extra or (lambda: [])
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def _tree_rss(proc) -> int:
        import psutil

        try:
            total = proc.memory_info().rss
            kids = proc.children(recursive=True)
        except psutil.Error:
            return 0
        for c in kids:
            try:
                total += c.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _rss(self) -> int:
        import psutil

        if self.tree:
            total = self._tree_rss(self.proc)
        else:
            try:
                total = self.proc.memory_info().rss
            except psutil.Error:
                total = 0
        for pid in self.extra():
            if pid:
                try:
                    total += self._tree_rss(psutil.Process(pid))
                except psutil.Error:
                    pass
        return total

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.1)

    def __enter__(self):
        self.peak = self._rss()
        self._stop.clear()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.t.join()


# ----------------------------------------------------------------------------- child: one step
def task_runs_between(since, until) -> tuple[list, list]:
    """Task runs and flow runs that started between ``since`` and ``until`` (all pages)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterStartTime, TaskRunFilter, TaskRunFilterStartTime

    async def all_pages(read, **kw):
        out, offset = [], 0
        while True:
            page = await read(limit=200, offset=offset, **kw)
            out += page
            if len(page) < 200:
                return out
            offset += 200

    async def go():
        async with get_client() as c:
            tr = await all_pages(c.read_task_runs, task_run_filter=TaskRunFilter(start_time=TaskRunFilterStartTime(after_=since, before_=until)))
            fr = await all_pages(c.read_flow_runs, flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since, before_=until)))
            return tr, fr

    return asyncio.run(go())


def _task_figures(since, until) -> dict:
    """Σ time inside task bodies (subflow wrapper task runs left out), per task kind."""
    import re

    for attempt in range(5):  # the last task runs' final states may still be on their way
        tr, fr = task_runs_between(since, until)
        if all(t.state and t.state.is_final() for t in tr):
            break
        time.sleep(1)
    wrappers = {f.parent_task_run_id for f in fr if f.parent_task_run_id}
    body = [t for t in tr if t.id not in wrappers]
    per: dict[str, float] = {}
    for t in body:
        # task run names end in a 3-hex suffix or a date when no run name was given
        kind = re.sub(r"-([0-9a-f]{3}|\d{4}-\d{2}-\d{2})$", "", t.name)
        per[kind] = per.get(kind, 0.0) + t.total_run_time.total_seconds()
    not_final = sum(1 for t in body if not (t.state and t.state.is_final()))
    return {"body": sum(t.total_run_time.total_seconds() for t in body), "tasks": len(body), "per_task": per,
            "flow_runs": len(fr), "not_final": not_final,
            "failed": sorted({t.name for t in body if t.state and t.state.is_final() and not t.state.is_completed()})}


def child(step: str, as_of: str, out: str) -> None:
    """One step in this process: ``night`` (the nightly flow) or ``deliver`` (deliver-messages)."""
    from datetime import date, datetime, timezone

    t_import = time.perf_counter()
    from flows.campaigns import deliver_messages
    from flows.nightly import nightly

    imports = time.perf_counter() - t_import
    since = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    state = None
    error = None
    try:
        if step == "night":
            state = nightly(as_of=date.fromisoformat(as_of), return_state=True)
        else:
            state = deliver_messages(return_state=True)
        stats = state.result(raise_on_failure=False)
        if isinstance(stats, BaseException):
            error = f"{type(stats).__name__}: {stats}"
            stats = {}
    except Exception as exc:  # noqa: BLE001 - reported by the harness
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        stats = {}
    wall = time.perf_counter() - t0
    until = datetime.now(timezone.utc)
    try:
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=10)
    except Exception:  # noqa: BLE001
        pass
    figures = _task_figures(since, until)
    result = {
        "step": step,
        "as_of": as_of,
        "wall": wall,
        "imports": imports,
        "state": state.type.value if state is not None else None,
        "error": error,
        "stages": (stats or {}).get("stages", {}) if isinstance(stats, dict) else {},
        "stats": stats if isinstance(stats, dict) else {},
        **figures,
    }
    Path(out).write_text(json.dumps(result, default=str, ensure_ascii=False))


# ----------------------------------------------------------------------------- harness
def run_step(step: str, as_of, env: dict, tmp: Path, timeout: float) -> dict:
    """``step`` in a child process; its peak RSS (with its children) sampled from here."""
    out = tmp / f"{step}-{as_of}.json"
    log = tmp / f"{step}-{as_of}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step, "--as-of", str(as_of), "--out", str(out)]
    t0 = time.perf_counter()
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=logf, stderr=subprocess.STDOUT)
        with PeakRSS(proc.pid) as mem:
            try:
                rc = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = "timeout"
    process_wall = time.perf_counter() - t0
    res = json.loads(out.read_text()) if out.exists() else {"step": step, "as_of": str(as_of), "wall": float("nan"), "stages": {}, "per_task": {}, "body": 0.0, "tasks": 0}
    res.update(process_wall=process_wall, peak_gb=mem.peak / 1e9, rc=rc)
    if rc != 0 or res.get("error") or res.get("state") != "COMPLETED":
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
        res["error"] = (res.get("error") or f"exit code {rc}") + f"\n--- last lines of {log.name} ---\n{tail}"
    return res


def _stamp(day, hhmm: str) -> str:
    """Naive UTC of ``hhmm`` in Shanghai on ``day`` (ISO)."""
    import pandas as pd

    local = pd.Timestamp(f"{pd.Timestamp(day).date()} {hhmm}").tz_localize("Asia/Shanghai")
    return local.tz_convert("UTC").tz_localize(None).isoformat()


def bench_db(kind: str, args, base_env: dict, harness: PeakRSS) -> dict:
    import pandas as pd
    import sqlalchemy as sa

    from userops.sample.generator import advance_day, generate
    from userops.sample.server import SampleServer

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-night-{kind}-"))
    schema = admin = None
    res: dict = {"kind": kind, "steps": {}}
    try:
        if kind == "sqlite":
            url = f"sqlite:///{tmp / 'warehouse.db'}"
        else:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            admin = sa.create_engine(PG_URL)
            with admin.begin() as conn:
                conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
            sep = "&" if "?" in PG_URL else "?"
            url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
        day1 = pd.Timestamp(args.as_of)
        day2 = day1 + pd.Timedelta(days=1)
        t = time.perf_counter()
        data = generate(args.customers, seed=args.seed, as_of=str(day1.date()), orders_per_customer=args.orders_per_customer)
        res["generate_s"] = time.perf_counter() - t
        res["sizes"] = {k: len(getattr(data, k)) for k in ("customers", "orders", "order_items", "feedback", "events")}
        print(f"[{kind}] generated {res['sizes']['customers']:,} customers, {res['sizes']['orders']:,} orders, "
              f"{res['sizes']['order_items']:,} items, {res['sizes']['feedback']:,} feedback, {res['sizes']['events']:,} events "
              f"in {res['generate_s']:.0f}s", flush=True)
        with SampleServer(data) as server:
            env = dict(base_env, USEROPS_DATABASE_URL=url, USEROPS_OUTPUT_DIR=str(tmp / "output"),
                       USEROPS_CRM__URL=server.url, USEROPS_ORDERS__URL=server.url)
            plan = [("first", "night", day1, LOCAL_NIGHT), ("first_delivery", "deliver", day1, LOCAL_MORNING),
                    ("steady", "night", day2, LOCAL_NIGHT), ("steady_delivery", "deliver", day2, LOCAL_MORNING)]
            if args.from_first and kind == "sqlite":  # iterate on the steady night: the saved first night's warehouse
                shutil.copy(Path(args.from_first) / "warehouse.db", tmp / "warehouse.db")
                if (Path(args.from_first) / "state").exists():  # the nightly tag frame (output/state)
                    shutil.copytree(Path(args.from_first) / "state", tmp / "output" / "state")
                os.sync()  # the copy's dirty pages written back now, not during the night's ingest
                plan = plan[2:]
                print(f"[{kind}] first night: from {args.from_first}", flush=True)
            for label, step, day, hhmm in plan:
                if label == "steady" and args.save_first and kind == "sqlite":
                    import sqlite3

                    Path(args.save_first).mkdir(parents=True, exist_ok=True)
                    con = sqlite3.connect(tmp / "warehouse.db")  # the last commits into the file, then copy it
                    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    con.close()
                    shutil.copy(tmp / "warehouse.db", Path(args.save_first) / "warehouse.db")
                    shutil.rmtree(Path(args.save_first) / "state", ignore_errors=True)
                    if (tmp / "output" / "state").exists():
                        shutil.copytree(tmp / "output" / "state", Path(args.save_first) / "state")
                if label == "steady":
                    t = time.perf_counter()
                    server.set_data(advance_day(data, str(day1.date()), change_share=args.delta))
                    res["advance_s"] = time.perf_counter() - t
                r = run_step(step, day.date(), dict(env, USEROPS_NOW=_stamp(day, hhmm)), tmp, args.step_timeout)
                res["steps"][label] = r
                status = "ok" if not r.get("error") else "FAILED"
                print(f"[{kind}] {label}: {status}, flow run {r['wall']:.1f}s (process {r['process_wall']:.1f}s), peak {r['peak_gb']:.2f} GB", flush=True)
                if r.get("error"):
                    print(r["error"], flush=True)
                    if step == "night":
                        break  # the next steps depend on this night
        res["harness_peak_gb"] = harness.peak / 1e9
    except Exception as exc:  # noqa: BLE001 - one warehouse failing still reports the other
        res["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        print(f"[{kind}] FAILED: {res['error']}", flush=True)
    finally:
        if schema and admin is not None:
            try:
                with admin.begin() as conn:
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                admin.dispose()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"[{kind}] kept {tmp}", flush=True)
    return res


# ----------------------------------------------------------------------------- report
SPLIT = (("  extract", "extract-"), ("  validate", "validate-"), ("  load", "load-"))


def _stage_rows(r: dict) -> dict[str, float]:
    """Stage -> seconds, with ingest's extract/validate/load and each campaign's planning split out."""
    rows: dict[str, float] = {}
    per = r.get("per_task", {})
    for stage, secs in r.get("stages", {}).items():
        rows[stage] = secs
        if stage == "ingest":
            ingest = (r.get("stats") or {}).get("ingest") or {}
            tables = [v for v in ingest.values() if isinstance(v, dict) and "extract_s" in v]
            for label, prefix in SPLIT:
                if tables:  # one ingest-<table> task run each; its extract/validate/load overlap in time
                    rows[label] = sum(v.get(prefix.rstrip("-") + "_s", 0.0) for v in tables)
                else:  # older layout: extract-/validate-/load-<table> task runs
                    rows[label] = sum(v for k, v in per.items() if k.startswith(prefix))
        if stage == "campaigns":
            for k in sorted(per):
                if k.startswith("plan-") and k != "plan-campaign-partition":
                    rows[f"  {k}"] = per[k]
            rows["  send (in the night)"] = sum(v for k, v in per.items() if k.startswith("send-due"))
    return rows


def report(kind: str, res: dict, customers: int) -> dict:
    """Print the table; returns the summary figures (also for --json)."""
    print(f"\n== {kind}: {customers:,} members ==")
    if res.get("error") and not res.get("steps"):
        print(f"failed before the first night: {res['error'].splitlines()[0]}")
        return {"kind": kind, "error": res["error"]}
    steps = res["steps"]
    first, steady = steps.get("first", {}), steps.get("steady", {})
    cols = [("first night", first), ("steady night", steady)]
    rows = list(dict.fromkeys(list(_stage_rows(first)) + list(_stage_rows(steady))))
    print(f"{'stage':<30}{'first night':>14}{'steady night':>14}")
    srows = [_stage_rows(r) for _, r in cols]
    for s in rows:
        print(f"{s:<30}" + "".join(f"{sr.get(s, float('nan')):>13.1f}s" for sr in srows))
    print(f"{'wall (flow run)':<30}" + "".join(f"{r.get('wall', float('nan')):>13.1f}s" for _, r in cols))
    print(f"{'process (imports included)':<30}" + "".join(f"{r.get('process_wall', float('nan')):>13.1f}s" for _, r in cols))
    print(f"{'peak RSS, night process (GB)':<30}" + "".join(f"{r.get('peak_gb', float('nan')):>14.2f}" for _, r in cols))
    for label, key in (("first night", "first_delivery"), ("steady night", "steady_delivery")):
        d = steps.get(key)
        if d:
            dl = (d.get("stats") or {}).get("delivery") or {}
            pending = dl.get("pending")
            pending = sum(pending.values()) if isinstance(pending, dict) else (pending or 0)
            print(f"morning delivery after the {label}: {dl.get('sent', '?')} sent, {dl.get('failed', '?')} failed, "
                  f"{pending} still pending, in {d.get('wall', float('nan')):.1f}s (flow run), peak {d.get('peak_gb', float('nan')):.2f} GB")
    out = {"kind": kind, "customers": customers}
    for night, r in cols:
        if not r:
            continue
        overhead = max(0.0, 1 - r["body"] / r["wall"]) if r.get("wall") else float("nan")
        r["overhead"] = overhead
        print(f"{night}: {r['tasks']} task runs in {r.get('flow_runs', '?')} flow runs, {r['body']:.1f}s inside task bodies, "
              f"Prefect overhead {overhead:.0%} ({r['wall'] - r['body']:.1f}s)")
        out[night.split()[0]] = {"wall": r.get("wall"), "peak_gb": r.get("peak_gb"), "overhead": overhead, "stages": _stage_rows(r)}
    print(f"harness (source system + Prefect server), not counted above: peak {res.get('harness_peak_gb', float('nan')):.2f} GB")
    if steady.get("wall"):
        peak = max(first.get("peak_gb", 0), steady.get("peak_gb", 0))
        met = steady["wall"] <= 60 and peak <= 4 and steady.get("overhead", 1) <= 0.10
        print(f"targets (steady ≤ 60 s: {steady['wall']:.1f}s, peak ≤ 4 GB: {peak:.2f}, overhead ≤ 10%: {steady.get('overhead', 1):.0%}): "
              f"{'met' if met else 'NOT met'}")
    failed = [k for k, r in steps.items() if r.get("error")]
    if failed or res.get("error"):
        print(f"FAILED steps: {', '.join(failed) or 'setup'}")
        out["failed"] = failed or ["setup"]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--delta", type=float, default=0.01, help="share of customers/orders changed for the steady night")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--orders-per-customer", type=float, default=10.0, help="average orders a member (the issue: 10M orders for 1M members)")
    ap.add_argument("--as-of", default="2026-11-20", help="the first night's business day")
    ap.add_argument("--step-timeout", type=float, default=3600, help="seconds before a night/delivery process is killed")
    ap.add_argument("--save-first", metavar="DIR", help="SQLite: keep a copy of the warehouse after the first night and its delivery in DIR")
    ap.add_argument("--from-first", metavar="DIR", help="SQLite: start from the warehouse --save-first kept (same --customers/--seed/--as-of), run the steady night only")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs (warehouse file, step logs)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--child", choices=["night", "deliver"], help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.as_of, args.out)
        return 0

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from userops.deploy import PrefectServer

    work = Path(tempfile.mkdtemp(prefix="bench-night-"))
    (work / "none.yaml").write_text("{}\n")
    server = PrefectServer(work / "prefect-home", ui=False, extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"})
    provider = None
    results, summary = {}, []
    print("starting a Prefect server and the local SMS/push provider ...", flush=True)
    with PeakRSS(tree=False, extra=lambda: [server.pid, provider.pid if provider else None]) as harness:
        try:
            server.start()
            provider = subprocess.Popen([sys.executable, "-m", "tests.fakes.message_provider"], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
            provider_url = provider.stdout.readline().strip()
            assert provider_url.startswith("http"), f"the local provider did not start ({provider_url!r})"
            base_env = {k: v for k, v in os.environ.items() if not k.startswith(("USEROPS_", "PREFECT_"))}
            base_env.update(
                PREFECT_API_URL=server.api_url, PREFECT_HOME=str(work / "client-home"),
                PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW="ignore",
                DO_NOT_TRACK="1", GX_ANALYTICS_ENABLED="false", PYTHONPATH=str(ROOT),
                USEROPS_CONFIG_FILE=str(work / "none.yaml"),
                USEROPS_SMS_WEBHOOK_URL=provider_url, USEROPS_PUSH_WEBHOOK_URL=provider_url,
            )
            base_env.update({k: v for k, v in os.environ.items() if k.startswith("USEROPS_") and k not in ("USEROPS_DATABASE_URL", "USEROPS_NOW")})
            kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
            for k in kinds:
                results[k] = bench_db(k, args, base_env, harness)
        finally:
            if provider is not None:
                provider.terminate()
                try:
                    provider.wait(10)
                except subprocess.TimeoutExpired:
                    provider.kill()
            server.stop()
            shutil.rmtree(work, ignore_errors=True)
    for k, r in results.items():
        summary.append(report(k, r, args.customers))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "raw": results}, default=str, indent=1))
    return 1 if any(s.get("failed") or s.get("error") for s in summary) else 0


if __name__ == "__main__":
    sys.exit(main())
