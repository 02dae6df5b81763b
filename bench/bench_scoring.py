"""Benchmark: nightly churn scoring on 1,000,000 customers / ~10,000,000 orders in the warehouse.

    .venv/bin/python bench/bench_scoring.py                      # SQLite (output/bench_scoring.db)
    USEROPS_DATABASE_URL='postgresql+psycopg2://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_scoring' \\
        .venv/bin/python bench/bench_scoring.py                  # PostgreSQL, schema bench_scoring (created)

Steps (each in its own process, so peak RSS is that step's own):
  load    generate the member base vectorized (customers + orders: all scoring reads) and
          bulk-load it (COPY on PostgreSQL, executemany on SQLite; indexes built once)
  train   read orders + customers from the warehouse, train on the latest complete window,
          register (the first model becomes champion)
  aggregates  the tags stage's ``refresh_aggregates`` for the night (issue 3's work, timed
          here only so the figures are complete: a full build on the first night, the
          incremental delta on the second); the churn stage runs after it every night
  score   the nightly scoring end to end: read every customer's row of customer_aggregates
          + registration dates (never the orders), features, predict, reasons, replace
          churn_scores (DELETE + INSERT / COPY), drift check, at-risk overlay; two nights
Targets (issue 4): scoring end to end <= 15 s, predict >= 500,000 customers/s,
training <= 60 s, peak RSS <= 4 GB.
Options: --customers N (default 1,000,000), --orders-per-customer X (default 10), --skip-load,
--skip-train (score with the champion already there).
(bench/bench_model.py measures the pure modelling core without a warehouse.)
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AS_OF = date(2026, 11, 20)
SCHEMA = "bench_scoring"


def _url() -> str:
    return os.environ.get("USEROPS_DATABASE_URL") or f"sqlite:///{ROOT / 'output' / 'bench_scoring.db'}"


def _schema(url: str) -> str:
    """The PostgreSQL schema the URL's search_path names (default bench_scoring)."""
    import re
    from urllib.parse import unquote

    m = re.search(r"search_path=([A-Za-z_][A-Za-z0-9_]*)", unquote(url))
    return m.group(1) if m else SCHEMA


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ts_strings(sec):
    import numpy as np

    s = np.datetime_as_string(sec.astype("datetime64[s]"), unit="us")
    return np.char.replace(s, "T", " ")


def make_chunk(rng, first: int, n: int, orders_per_customer: float, end_s: int):
    """Customers registered over three years; 15% never buy; buyers purchase as a Poisson
    process at a gamma-distributed rate until an exponential lifetime ends (so some churn)."""
    import numpy as np

    day = 86_400
    ids = np.char.add("C", np.char.zfill(np.arange(first + 1, first + n + 1).astype(str), 8))
    reg = end_s - (rng.random(n) * 3 * 365 * day).astype("int64")
    prospect = rng.random(n) < 0.15
    rate = rng.gamma(1.2, 1.0, n)
    lifetime = (rng.exponential(500, n) * day).astype("int64")
    stop = np.minimum(reg + lifetime, end_s - 1)
    active_days = np.maximum(stop - reg, day) / day
    # scale the rates so the mean lands near orders_per_customer overall
    lam = rate * active_days
    lam *= (orders_per_customer / 0.85) / max(lam.mean(), 1e-9)
    n_orders = np.where(prospect, 0, 1 + rng.poisson(np.maximum(lam - 1, 0)))
    total = int(n_orders.sum())
    ci = np.repeat(np.arange(n), n_orders)
    span = np.maximum(stop[ci] - reg[ci], 1)
    paid = reg[ci] + (rng.random(total) * span).astype("int64")
    r = rng.random(total)
    status = np.where(r < 0.05, "refunded", np.where(r < 0.08, "cancelled", "paid"))
    amount = np.round(rng.lognormal(4.8, 0.6, total), 2)
    order_ids = np.char.add("O", np.char.zfill(np.arange(first * 40 + 1, first * 40 + total + 1).astype(str), 11))
    customers = {"customer_id": ids, "registered_at": _ts_strings(reg), "updated_at": _ts_strings(reg)}
    orders = {
        "order_id": order_ids,
        "customer_id": ids[ci],
        "paid_at": _ts_strings(paid),
        "status": status,
        "amount": amount,
        "updated_at": _ts_strings(paid),
    }
    return customers, orders


def _insert(conn, table: str, cols: dict) -> None:
    import io

    import pandas as pd

    from userops.db import is_postgres

    names = list(cols)
    raw = conn.connection.driver_connection
    if is_postgres(conn):
        buf = io.StringIO()
        pd.DataFrame(cols).to_csv(buf, index=False, header=False)
        buf.seek(0)
        with raw.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv)", buf)
    else:
        rows = zip(*[c.tolist() for c in cols.values()])
        raw.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})", rows)


def step_load(n_customers: int, orders_per_customer: float) -> dict:
    import numpy as np
    import sqlalchemy as sa

    from userops.db import get_engine, migrate

    url = _url()
    if url.startswith("sqlite"):
        path = Path(sa.engine.make_url(url).database)
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
    else:
        admin = sa.create_engine(url.split("?")[0])
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {_schema(url)} CASCADE")
            c.exec_driver_sql(f"CREATE SCHEMA {_schema(url)}")
        admin.dispose()
    engine = get_engine(url)
    migrate(engine)
    t0 = time.perf_counter()
    rng = np.random.default_rng(42)
    end_s = int(np.datetime64(str(AS_OF + timedelta(days=1)), "s").astype("int64")) - 8 * 3600
    indexes = {}
    with engine.begin() as conn:
        for ix in sa.inspect(conn).get_indexes("orders"):
            indexes[ix["name"]] = f"orders ({', '.join(ix['column_names'])})"
        for ix in indexes:
            conn.exec_driver_sql(f"DROP INDEX {ix}")
    counts = {"customers": 0, "orders": 0}
    block = 100_000
    for first in range(0, n_customers, block):
        n = min(block, n_customers - first)
        cust, orders = make_chunk(rng, first, n, orders_per_customer, end_s)
        with engine.begin() as conn:
            _insert(conn, "customers", cust)
            _insert(conn, "orders", orders)
        counts["customers"] += n
        counts["orders"] += len(orders["order_id"])
    with engine.begin() as conn:
        for ix, target in indexes.items():
            conn.exec_driver_sql(f"CREATE INDEX {ix} ON {target}")
        if url.startswith("sqlite"):
            conn.exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE customers")
            conn.exec_driver_sql("ANALYZE orders")
    return {**counts, "seconds": round(time.perf_counter() - t0, 1)}


def step_train() -> dict:
    from models import scoring
    from userops.db import get_engine

    engine = get_engine(_url())
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM churn_scores")
        conn.exec_driver_sql("DELETE FROM drift_checks")
        conn.exec_driver_sql("DELETE FROM model_versions")
    t0 = time.perf_counter()
    out = scoring.retrain(AS_OF, engine)
    total = time.perf_counter() - t0
    return {
        "total_s": round(total, 2),
        "read_s": out["read_seconds"],
        "train_s": out["seconds"]["train"],
        "register_s": out["seconds"]["register"],
        "version": out["version"],
        "n_train": out["n_train"],
        "holdout": {k: round(out["metrics"][k], 4) for k in ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile")},
    }


def step_aggregates(night: int) -> dict:
    from tasks import tags
    from userops.db import get_engine

    engine = get_engine(_url())
    as_of = AS_OF + timedelta(days=night)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        out = tags.refresh_aggregates(conn, as_of, full=night == 0)
    return {"as_of": str(as_of), "total_s": round(time.perf_counter() - t0, 2), "mode": out["mode"], "delta_customers": out.get("delta_customers")}


def step_score(night: int) -> dict:
    from models import scoring
    from userops.db import get_engine

    import tasks.tags  # noqa: F401 - imported by the nightly flow long before this stage runs (Prefect import ~5 s)

    engine = get_engine(_url())
    as_of = AS_OF + timedelta(days=night)
    t0, c0 = time.perf_counter(), time.process_time()
    out = scoring.score_night(as_of, engine, train_if_needed=False)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    sc = out["scoring"]
    steps = out["seconds"]
    core = sum(steps[k] for k in ("read", "features", "predict", "explain", "write"))
    return {
        "as_of": str(as_of),
        "total_s": round(total, 2),
        "cpu_s": round(cpu, 2),  # this process only (a PostgreSQL server's work is not in it)
        "load_avg": round(os.getloadavg()[0], 1),
        "core_s": round(core, 2),
        "source": sc["source"],
        "steps_s": steps,
        "customers": sc["customers"],
        "predict_per_s": round(sc["customers"] / max(out["seconds"]["predict"], 1e-9)),
        "bands": sc["bands"],
        "drift_max_psi": out["drift"]["max_psi"],
    }


def _child(step: str, *args) -> dict:
    cmd = [sys.executable, __file__, "--child", step, *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if res.returncode:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"step {step} failed")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders-per-customer", type=float, default=10)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--skip-train", action="store_true", help="keep the champion already in the warehouse")
    ap.add_argument("--child", nargs="+")
    a = ap.parse_args()
    os.environ.setdefault("USEROPS_DATABASE_URL", _url())
    if a.child:
        step, *rest = a.child
        fn = {
            "load": lambda: step_load(int(rest[0]), float(rest[1])),
            "train": step_train,
            "aggregates": lambda: step_aggregates(int(rest[0])),
            "score": lambda: step_score(int(rest[0])),
        }[step]
        out = fn()
        out["peak_rss_mb"] = round(_peak_rss_mb())
        print(json.dumps(out, default=str))
        return
    backend = "postgresql" if _url().startswith("postgresql") else "sqlite"
    print(f"backend: {backend}")
    if not a.skip_load:
        r = _child("load", a.customers, a.orders_per_customer)
        print(f"load: {r['customers']:,} customers, {r['orders']:,} orders in {r['seconds']} s (peak RSS {r['peak_rss_mb']} MB)")
    r = _child("train") if not a.skip_train else None
    if r:
        print(
            f"train: {r['total_s']} s total (read {r['read_s']}, train {r['train_s']} s, register {r['register_s']} s), "
            f"{r['n_train']:,} training customers, holdout {r['holdout']}, peak RSS {r['peak_rss_mb']} MB   [target <= 60 s]"
        )
    for night in (0, 1):
        r = _child("aggregates", night)
        print(f"tags stage aggregates night {night + 1} ({r['as_of']}): {r['total_s']} s, {r['mode']}, delta {r['delta_customers']} customers (issue 3's step)")
        r = _child("score", night)
        print(
            f"score night {night + 1} ({r['as_of']}): {r['total_s']} s end to end ({r['cpu_s']} s cpu in this process, "
            f"load average {r['load_avg']}) for {r['customers']:,} customers, "
            f"read+features+predict+reasons+write {r['core_s']} s from {r['source']} {r['steps_s']}, "
            f"predict {r['predict_per_s']:,} customers/s, bands {r['bands']}, max PSI {r['drift_max_psi']}, "
            f"peak RSS {r['peak_rss_mb']} MB   [targets <= 15 s, >= 500,000/s, <= 4096 MB]"
        )


if __name__ == "__main__":
    main()
