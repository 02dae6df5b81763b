"""The 1M-member night: the whole nightly flow, first night and a steady-state night.

    .venv/bin/python bench/bench_night.py [--customers 1000000] [--db sqlite|postgres|both]
        [--delta 0.01] [--seed 7]

For each warehouse: generate the member base (sample generator: customers, ~10 orders each,
items, a year+ of feedback, events), serve it from the sample CRM + order system over HTTP,
start a real Prefect server (temporary PREFECT_HOME, SQLite), then

1. the first night (empty warehouse; its campaign backlog is large),
2. advance the source by one day with ``--delta`` (1%) of customers and orders changed/new,
3. the steady-state night.

Printed per night: wall time, each stage's time (ingest and every NIGHTLY_STAGES entry),
peak RSS of this process and its children, and Prefect's own overhead = 1 − (time inside
task bodies ÷ wall time), read from the task runs on the server. Targets (issue 8, 2 cores):
steady night ≤ 60 s on SQLite and on PostgreSQL, peak RSS ≤ 4 GB, overhead ≤ 10%.
Prints figures; never a pass/fail test.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_URL = os.environ.get("USEROPS_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


class PeakRSS:
    """Peak resident memory of this process plus its children, sampled every 100 ms."""

    def __init__(self):
        import psutil

        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        import psutil

        total = self.proc.memory_info().rss
        for c in self.proc.children(recursive=True):
            try:
                total += c.memory_info().rss
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


def task_body_seconds(api_url: str, since, until) -> tuple[float, int]:
    """Seconds spent inside task bodies between ``since`` and ``until`` (task runs of
    subflow wrappers excluded), and how many task runs there were."""
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

    tr, fr = asyncio.run(go())
    wrappers = {f.parent_task_run_id for f in fr if f.parent_task_run_id}
    body = [t for t in tr if t.id not in wrappers]
    return sum(t.total_run_time.total_seconds() for t in body), len(body)


def run_night(as_of, api_url: str) -> dict:
    from datetime import datetime, timezone

    from flows.nightly import nightly

    since = datetime.now(timezone.utc)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        stats = nightly(as_of=as_of)
        wall = time.perf_counter() - t0
    until = datetime.now(timezone.utc)
    body, n_tasks = task_body_seconds(api_url, since, until)
    return {"wall": wall, "stages": stats.get("stages", {}), "peak_gb": mem.peak / 1e9, "body": body, "tasks": n_tasks, "stats": stats}


def bench_db(kind: str, args, api_url: str) -> dict:
    import pandas as pd
    import sqlalchemy as sa

    from userops.db import dispose_engines
    from userops.sample.generator import advance_day, generate
    from userops.sample.server import SampleServer
    from userops.settings import reset_settings

    tmp = Path(tempfile.mkdtemp(prefix="bench-night-"))
    schema = None
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
    data = generate(args.customers, seed=args.seed, as_of=str(day1.date()))
    gen_s = time.perf_counter() - t
    print(f"[{kind}] generated {len(data.customers):,} customers, {len(data.orders):,} orders, "
          f"{len(data.order_items):,} items, {len(data.feedback):,} feedback, {len(data.events):,} events in {gen_s:.0f}s", flush=True)
    try:
        with SampleServer(data) as server:
            os.environ.update(
                USEROPS_DATABASE_URL=url,
                USEROPS_OUTPUT_DIR=str(tmp / "output"),
                USEROPS_CRM__URL=server.url,
                USEROPS_ORDERS__URL=server.url,
                USEROPS_NOW=str(day1 + pd.Timedelta(hours=18, minutes=30)),  # 02:30 Shanghai of day1
            )
            reset_settings()
            dispose_engines()
            first = run_night(day1.date(), api_url)
            print(f"[{kind}] first night {first['wall']:.1f}s", flush=True)
            server.set_data(advance_day(data, str(day1.date()), change_share=args.delta))
            os.environ["USEROPS_NOW"] = str(day2 + pd.Timedelta(hours=18, minutes=30))
            reset_settings()
            steady = run_night(day2.date(), api_url)
            print(f"[{kind}] steady night {steady['wall']:.1f}s", flush=True)
    finally:
        dispose_engines()
        if schema:
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            admin.dispose()
    return {"first": first, "steady": steady}


def report(kind: str, res: dict, customers: int) -> None:
    first, steady = res["first"], res["steady"]
    stages = list(dict.fromkeys(list(first["stages"]) + list(steady["stages"])))
    print(f"\n== {kind}: {customers:,} members ==")
    print(f"{'stage':<24}{'first night':>14}{'steady night':>14}")
    for s in stages:
        print(f"{s:<24}{first['stages'].get(s, float('nan')):>13.1f}s{steady['stages'].get(s, float('nan')):>13.1f}s")
    for label, key, fmt in (("wall", "wall", "{:>13.1f}s"), ("peak RSS (GB)", "peak_gb", "{:>14.2f}")):
        print(f"{label:<24}" + fmt.format(first[key]) + fmt.format(steady[key]))
    for night, r in (("first", first), ("steady", steady)):
        overhead = max(0.0, 1 - r["body"] / r["wall"]) if r["wall"] else 0.0
        print(f"{night} night: {r['tasks']} task runs, {r['body']:.1f}s inside task bodies, Prefect overhead ≤ {overhead:.0%}")
    ok = steady["wall"] <= 60 and max(first["peak_gb"], steady["peak_gb"]) <= 4
    print(f"target (steady ≤ 60 s, peak ≤ 4 GB): {'met' if ok else 'NOT met'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--delta", type=float, default=0.01, help="share of customers/orders changed for the steady night")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--as-of", default="2026-11-20", help="the first night's business day")
    args = ap.parse_args()

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ["USEROPS_CONFIG_FILE"] = str(Path(tempfile.mkdtemp()) / "none.yaml")
    Path(os.environ["USEROPS_CONFIG_FILE"]).write_text("{}\n")
    from userops.deploy import PrefectServer

    home = Path(tempfile.mkdtemp(prefix="bench-prefect-"))
    server = PrefectServer(home, ui=False, extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"})
    print("starting a Prefect server ...", flush=True)
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        kinds = ["sqlite", "postgres"] if args.db == "both" else [args.db]
        results = {k: bench_db(k, args, server.api_url) for k in kinds}
        for k, r in results.items():
            report(k, r, args.customers)
    finally:
        try:  # send the last logs before the server goes away
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=10)
        except Exception:  # noqa: BLE001
            pass
        server.stop()


if __name__ == "__main__":
    main()
