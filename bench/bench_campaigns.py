"""Campaign benchmark: 1,000,000 members with tags, an audience of 200,000.

    .venv/bin/python bench/bench_campaigns.py [--customers 1000000] [--audience 200000]
        [--send 30000] [--db sqlite|postgres|both] [--workers 8] [--batch 500]

Per warehouse (SQLite file output/bench_campaigns.db; PostgreSQL schema bench_campaigns at
USEROPS_BENCH_POSTGRES_URL, default postgresql+psycopg2://postgres@127.0.0.1:5432/test):

  load   1,000,000 customers + tags + champion churn scores (exactly --audience of them
         silent), 2% unsubscribed, 10% without consent, an open crisis with 1,000 members,
         50,000 marketing touches sent in the last week (the global cap has data to read)
  plan   plan the campaign for the silent audience: audience query, exclusions with counts,
         holdout, A/B variant, budget, rendering (zh-CN/en), quiet hours, bulk insert of
         every touch (planned, control and suppressed)                   target <= 20 s
  send   deliver --send of the planned messages to the local HTTP provider (a separate
         process) with the exactly-once bookkeeping on (in flight before, settled after,
         bulk UPDATEs); one worker process, --workers sender threads   target >= 1,000/s

Peak RSS of this process (data generation included) is printed at the end (target <= 4 GB).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402

PG_URL = os.environ.get("USEROPS_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
SCHEMA = "bench_campaigns"
AS_OF = date(2026, 11, 20)
NOON = datetime(2026, 11, 20, 4, 0)  # 12:00 in Shanghai

CAMPAIGN = """
name: bench-awakening
title: {zh-CN: 沉睡唤醒, en: Wake-up}
audience: {rule: {lifecycle_stage: [silent]}}
channel: sms
period: month
frequency_cap: {messages: 1, days: 30}
budget: {amount: 1000000, per: month}
variants:
  - name: content
    body:
      zh-CN: "【{{ shop }}】{{ name }},好久不见!距您上次下单已有{{ days_since_last_order }}天。这段时间我们上新了不少{{ favourite_category }},有空回来看看~"
      en: "[{{ shop }}] Hi {{ name }}, it's been {{ days_since_last_order }} days! New {{ favourite_category }} since your last visit."
  - name: coupon
    gift: {cost: 10, text: {zh-CN: 10元无门槛券, en: 10-yuan voucher}}
    body:
      zh-CN: "【{{ shop }}】{{ name }},我们很想念您!一张{{ gift }}已放进您的账户,7天内有效。"
      en: "[{{ shop }}] {{ name }}, we've missed you! A {{ gift }} is in your account, valid for 7 days."
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup_env(db: str, tmp: Path) -> str:
    if db == "sqlite":
        path = ROOT / "output" / "bench_campaigns.db"
        path.parent.mkdir(exist_ok=True)
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            conn.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
        admin.dispose()
        sep = "&" if "?" in PG_URL else "?"
        url = f"{PG_URL}{sep}options=-csearch_path%3D{SCHEMA}"
    (tmp / "campaigns").mkdir(exist_ok=True)
    (tmp / "campaigns" / "bench.yaml").write_text(CAMPAIGN, encoding="utf-8")
    (tmp / "none.yaml").write_text("{}\n")
    os.environ.update(
        USEROPS_DATABASE_URL=url,
        USEROPS_OUTPUT_DIR=str(tmp / "output"),
        USEROPS_CONFIG_FILE=str(tmp / "none.yaml"),
        USEROPS_CAMPAIGNS__DEFINITIONS_DIR=str(tmp / "campaigns"),
    )
    from userops.db import dispose_engines
    from userops.settings import reset_settings

    reset_settings()
    dispose_engines()
    return url


def load(engine, n: int, audience: int) -> float:
    from tests.campaigns.factory import load_members, make_members
    from tasks.messaging import plan_touches
    from userops.db import bulk_upsert

    t0 = time.perf_counter()
    frames = make_members(n, seed=42, stages={"active": 0.4, "loyal": 0.1, "churned": 0.35, "new": 0.15},
                          consent_share=0.9, unsub_share=0.02, timezones={"Asia/Shanghai": 0.9, "Europe/London": 0.1})
    rng = np.random.default_rng(7)
    silent = rng.permutation(n)[:audience]
    tags = frames["tags"]
    stage = tags["lifecycle_stage"].to_numpy(dtype=object)
    stage[silent] = "silent"
    tags["lifecycle_stage"] = stage
    days = rng.integers(61, 181, audience)
    last = tags["last_paid_at"].to_numpy().copy()
    last[silent] = (pd.Timestamp(AS_OF) + pd.Timedelta(hours=2) - pd.to_timedelta(days, unit="D")).to_numpy()
    tags["last_paid_at"] = last
    with engine.begin() as conn:
        load_members(conn, frames)
        ids = frames["customers"]["customer_id"]
        crisis = ids.iloc[silent[:1000]]
        inc = pd.DataFrame([{"incident_id": "bench-inc", "skus": "[]", "status": "open", "opened_at": NOON}])
        inc["opened_at"] = inc["opened_at"].astype("datetime64[us]")
        bulk_upsert(conn, "incidents", inc, ["incident_id"])
        bulk_upsert(conn, "incident_customers", pd.DataFrame({"incident_id": "bench-inc", "customer_id": crisis.to_numpy()}), ["incident_id", "customer_id"])
        prior = ids.iloc[rng.permutation(n)[:50_000]].reset_index(drop=True)
        df = pd.DataFrame({"customer_id": prior, "campaign": "earlier", "channel": "sms", "status": "sent",
                           "planned_at": pd.Timestamp(NOON - timedelta(days=2))})
        df["touch_key"] = "earlier|" + df["customer_id"] + "|2026-W46"
        plan_touches(conn, df, quiet_hours=False)
        conn.exec_driver_sql("UPDATE touches SET sent_at = planned_at WHERE campaign = 'earlier'")
    return time.perf_counter() - t0


def start_provider() -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.message_provider"], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return proc, proc.stdout.readline().strip()


def provider_stats(url: str) -> dict:
    with urllib.request.urlopen(url.replace("/v1/messages", "/_stats"), timeout=10) as r:
        return json.loads(r.read())


def run(db: str, args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-campaigns-"))
    out: dict = {"db": db}
    try:
        url = setup_env(db, tmp)
        from tasks.campaigns.definitions import load_campaigns
        from tasks.campaigns.engine import plan_campaign
        from tasks.messaging import send_due
        from userops.db import get_engine, migrate

        engine = get_engine(url)
        migrate(engine)
        out["load_s"] = round(load(engine, args.customers, args.audience), 1)
        (c,) = load_campaigns()
        t0, c0, l0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        r = plan_campaign(c, AS_OF, now=NOON)
        out["plan_s"] = round(time.perf_counter() - t0, 2)
        out["plan_cpu_s"] = round(time.process_time() - c0, 2)  # this process (SQLite runs in it; PostgreSQL does not)
        out["loadavg_before_plan"] = round(l0, 1)
        out["plan"] = {k: r.stats[k] for k in ("audience", "excluded", "eligible", "control", "treatment", "planned", "written", "gift_cost_planned", "per_variant")}
        proc, purl = start_provider()
        try:
            c0, l0 = time.process_time(), os.getloadavg()[0]
            d = send_due(now=NOON, limit=args.send, workers=args.workers, batch_size=args.batch, sms_url=purl)
            out["send_cpu_s"] = round(time.process_time() - c0, 2)
            out["loadavg_before_send"] = round(l0, 1)
            out["send"] = {k: d[k] for k in ("claimed", "sent", "failed", "duration_s", "per_second")}
            out["provider"] = provider_stats(purl)
        finally:
            proc.kill()
            proc.wait()
        with engine.connect() as conn:
            out["touches_by_status"] = dict(conn.execute(sa.text("SELECT status, COUNT(*) FROM touches WHERE campaign = 'bench-awakening' GROUP BY status")).fetchall())
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--audience", type=int, default=200_000)
    ap.add_argument("--send", type=int, default=30_000, help="messages to send in the throughput test")
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    results = []
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        res = run(db, args)
        results.append(res)
        print(json.dumps(res, ensure_ascii=False, default=str), flush=True)
    print()
    print(f"{'warehouse':<10} {'load':>8} {'plan':>8} {'plan cpu':>9} {'audience':>9} {'planned':>8} {'sent':>7} {'msg/s':>8} {'loadavg':>8}")
    for r in results:
        print(f"{r['db']:<10} {r['load_s']:>7}s {r['plan_s']:>7}s {r['plan_cpu_s']:>8}s {r['plan']['audience']:>9,} {r['plan']['planned']:>8,} "
              f"{r['send']['sent']:>7,} {r['send']['per_second']:>8,.0f} {r['loadavg_before_plan']:>4}/{r['loadavg_before_send']}")
    print("(wall-clock figures; 'plan cpu' is this process's CPU time; loadavg = 1-min load on this 2-core box before plan/send)")
    print("targets: plan <= 20 s for 200,000; send >= 1,000 msg/s per worker; peak RSS <= 4,096 MB")
    print(f"peak RSS of this process: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
