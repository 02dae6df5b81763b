"""Data-path benchmark: 1,000,000 customers and 10,000,000 orders.

    .venv/bin/python bench/bench_datapath.py [--customers 1000000] [--orders-per-customer 10]
        [--db sqlite|postgres|both] [--skip-import]

Stage 1 — full import from CSV (`userops import customers|orders`): read, validate (Great
Expectations), bulk upsert, per stage wall time, rows/s and peak RSS.
Stage 2 — a nightly incremental run after 1% of customers and orders changed at the source:
extract over HTTP from the sample service, validate, load (``ingest_table``, what the nightly
flow's ingest-<table> tasks run). Targets (issue 2): full import <= 3 min, incremental <= 15 s, peak RSS <= 4 GB.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT / "bench" / "data"
PG_URL = os.environ.get("USEROPS_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


class PeakRSS:
    """Samples the RSS of this process plus its children (the import's validation
    process) every 50 ms."""

    def __init__(self, pid: int | None = None):
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss
            except psutil.Error:
                break
            for child in self.proc.children(recursive=True):
                try:
                    rss += child.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, rss)
            time.sleep(0.05)

    def __enter__(self):
        self.peak = self.base = self.proc.memory_info().rss
        self.t = threading.Thread(target=self._run, daemon=True)
        self._stop.clear()
        self.t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.t.join()


def make_data(n_customers: int, per_customer: int, seed: int = 1):
    """Vectorized synthetic source: customers, orders (as of 2026-11-20), and a 1% delta."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp("2026-11-20")
    n = n_customers
    cid = np.char.add("C", np.char.zfill(np.arange(1, n + 1).astype(str), 8))
    reg = end - pd.to_timedelta(rng.integers(86400, 3 * 365 * 86400, n), unit="s")
    customers = pd.DataFrame(
        {
            "customer_id": cid,
            "name": np.char.add("会员", np.arange(1, n + 1).astype(str)),
            "phone": np.char.add("1", rng.integers(3_000_000_000, 9_999_999_999, n).astype(str)),
            "email": np.char.add(np.char.add("m", np.arange(1, n + 1).astype(str)), "@example.com"),
            "registered_at": reg,
            "city": np.array(["上海", "北京", "杭州", "深圳"])[rng.integers(0, 4, n)],
            "marketing_consent": rng.random(n) < 0.8,
            "updated_at": reg,
        }
    )
    m = n * per_customer
    owner = rng.integers(0, n, m)
    paid = reg[owner] + pd.to_timedelta((rng.random(m) * (end - reg[owner]).total_seconds()).astype(np.int64), unit="s")
    status = np.array(["paid", "refunded", "cancelled"])[np.searchsorted([0.92, 0.97], rng.random(m))]
    orders = pd.DataFrame(
        {
            "order_id": np.char.add("O", np.char.zfill(np.arange(1, m + 1).astype(str), 9)),
            "customer_id": cid[owner],
            "paid_at": paid,
            "amount": np.round(rng.gamma(2.0, 80.0, m), 2),
            "status": status,
            "updated_at": paid,
        }
    )
    return customers, orders


def write_csvs(customers: pd.DataFrame, orders: pd.DataFrame, tag: str) -> tuple[Path, Path]:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    DATA.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in (("customers", customers), ("orders", orders)):
        p = DATA / f"{name}_{tag}.csv"
        if not p.exists():
            out = df.copy()
            for c in out.columns:
                if pd.api.types.is_datetime64_any_dtype(out[c]):
                    out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
            pacsv.write_csv(pa.Table.from_pandas(out, preserve_index=False), p)
        paths.append(p)
    return paths[0], paths[1]


def fresh_db(kind: str) -> str:
    import sqlalchemy as sa

    if kind == "sqlite":
        p = DATA / "bench_datapath.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(p) + suffix).unlink(missing_ok=True)
        return f"sqlite:///{p}"
    eng = sa.create_engine(PG_URL)
    with eng.begin() as c:
        c.exec_driver_sql("DROP SCHEMA IF EXISTS bench_datapath CASCADE")
        c.exec_driver_sql("CREATE SCHEMA bench_datapath")
    eng.dispose()
    return f"{PG_URL}?options=-csearch_path%3Dbench_datapath"


def _full_import(url: str, cpath: str, opath: str, q) -> None:
    try:
        os.environ["USEROPS_DATABASE_URL"] = url
        from tasks.ingest import import_file

        t0 = time.perf_counter()
        tc: dict = {}
        rc = import_file("customers", cpath, timings=tc)
        t1 = time.perf_counter()
        to: dict = {}
        ro = import_file("orders", opath, timings=to)
        t2 = time.perf_counter()
        q.put({
            "customers": {"rows": rc.read, "loaded": rc.loaded, "s": round(t1 - t0, 1), **{k: round(v, 1) for k, v in tc.items()}},
            "orders": {"rows": ro.read, "loaded": ro.loaded, "s": round(t2 - t1, 1), **{k: round(v, 1) for k, v in to.items()}},
            "total_s": round(t2 - t0, 1),
            "rows_per_s": round((rc.read + ro.read) / (t2 - t0)),
        })
    except Exception as exc:  # reported by the parent
        q.put({"error": repr(exc)})


def run(kind: str, customers: pd.DataFrame, orders: pd.DataFrame, cpath: Path, opath: Path, night: int = 1) -> dict:
    """``night`` > 1 skips the import and runs another incremental night on the warehouse an
    earlier run of this script left (other rows change, a day later)."""
    url = fresh_db(kind) if night == 1 else existing_db(kind)
    os.environ["USEROPS_DATABASE_URL"] = url
    from userops.db import dispose_engines, get_engine, migrate
    from userops.settings import reset_settings

    reset_settings()
    dispose_engines()
    engine = get_engine()
    migrate(engine)
    res: dict = {"db": kind, "import": None}
    if night == 1:
        res["import"] = full_import(kind, url, cpath, opath)
    incremental(res, engine, customers, orders, night)
    dispose_engines()
    return res


def existing_db(kind: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{DATA / 'bench_datapath.db'}"
    return f"{PG_URL}?options=-csearch_path%3Dbench_datapath"


def full_import(kind: str, url: str, cpath: Path, opath: Path) -> dict:
    # ---- full import from CSV, in a child process: its peak RSS (with the validation
    # process it starts) is the import's own, not this harness's in-memory source data
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    child = ctx.Process(target=_full_import, args=(url, str(cpath), str(opath), q))
    child.start()
    with PeakRSS(child.pid) as mem:
        out = q.get()
        child.join()
    if "error" in out:
        raise RuntimeError(f"{kind} full import failed: {out['error']}")
    out = {**out, "peak_rss_gb": round(mem.peak / 2**30, 2)}
    print(kind, "full import", out, flush=True)
    return out


def incremental(res: dict, engine, customers: pd.DataFrame, orders: pd.DataFrame, night: int) -> None:
    """A nightly incremental run: 1% of customers and orders changed, over HTTP from the
    sample service, through the nightly flow's ingest step (``ingest_table``)."""
    from userops.settings import reset_settings

    kind = res["db"]
    from tasks.ingest import ingest_table, source_name
    from tasks.load import set_watermark
    from userops.sample.generator import SampleData
    from userops.sample.server import SampleServer

    with engine.begin() as conn:  # the import was the initial load: start watermarks there (never moves back)
        set_watermark(conn, source_name("customers"), customers["updated_at"].max().to_pydatetime(), "bench")
        set_watermark(conn, source_name("orders"), orders["updated_at"].max().to_pydatetime(), "bench")
    rng = np.random.default_rng(8 + night)
    day = pd.Timestamp("2026-11-20 12:00:00") + pd.Timedelta(days=night - 1)
    c2 = customers.copy()
    ci = rng.choice(len(c2), len(c2) // 100, replace=False)
    c2.loc[ci, "city"] = "成都"
    c2.loc[ci, "updated_at"] = day
    o2 = orders.copy()
    oi = rng.choice(len(o2), len(o2) // 100, replace=False)
    o2.loc[oi, "status"] = "refunded"
    o2.loc[oi, "updated_at"] = day
    empty = pd.DataFrame()
    data = SampleData(c2, o2, empty.assign(order_id=[], sku=[], updated_at=pd.Series([], dtype="datetime64[us]")),
                      empty.assign(feedback_id=[], updated_at=pd.Series([], dtype="datetime64[us]")),
                      empty.assign(event_id=[], occurred_at=pd.Series([], dtype="datetime64[us]")))
    with SampleServer(data) as server:
        os.environ["USEROPS_CRM__URL"] = server.url
        os.environ["USEROPS_ORDERS__URL"] = server.url
        os.environ["USEROPS_CRM__PAGE_SIZE"] = "20000"
        os.environ["USEROPS_ORDERS__PAGE_SIZE"] = "20000"
        reset_settings()
        # GE's context starts once per process (~2 s; the nightly flow's check-expectation-
        # suites step pays it): reported apart from the night's extract/validate/load
        from tasks.validate import load_suites, validate_frame

        t_ge = time.perf_counter()
        validate_frame("customers", customers.head(10).astype("string"), load_suites())
        inc = {"ge_startup_s": round(time.perf_counter() - t_ge, 2)}
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            for table in ("customers", "orders"):
                tm: dict = {}
                lr = ingest_table(table, "bench-incremental", timings=tm)  # what the nightly's ingest-<table> task runs
                # extract / validate / load overlap (chunk by chunk, in threads): busy seconds of each, and the wall
                inc[table] = {"rows": lr.read, **{k: round(tm[k], 2) for k in ("extract_s", "validate_s", "load_s", "wall_s")}}
            total = time.perf_counter() - t0
    rows = sum(v["rows"] for v in inc.values() if isinstance(v, dict))
    res["incremental"] = {**inc, "total_s": round(total, 2), "rows_per_s": round(rows / total), "peak_rss_gb": round(mem.peak / 2**30, 2),
                          # this process also holds the sample source's 11M rows: the step's own share is the rise
                          "step_rss_gb": round((mem.peak - mem.base) / 2**30, 2)}
    print(kind, "incremental", res["incremental"], flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders-per-customer", type=int, default=10)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--night", type=int, default=1, help="1: full import, then a 1%% night; N>1: only night N on the warehouse left by an earlier run")
    args = ap.parse_args()
    t = time.perf_counter()
    customers, orders = make_data(args.customers, args.orders_per_customer)
    cpath, opath = write_csvs(customers, orders, f"{args.customers}x{args.orders_per_customer}")
    print(f"generated {len(customers):,} customers / {len(orders):,} orders in {time.perf_counter() - t:.0f}s", flush=True)
    results = []
    for kind in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        results.append(run(kind, customers, orders, cpath, opath, args.night))
    print("\nSUMMARY")
    for r in results:
        i, n = r["import"] or {"total_s": "-", "rows_per_s": 0, "peak_rss_gb": "-", "customers": "skipped", "orders": "skipped"}, r["incremental"]
        print(f"{r['db']:>8}: full import {i['total_s']}s ({i['rows_per_s']:,} rows/s, peak {i['peak_rss_gb']} GB) "
              f"[customers {i['customers']}; orders {i['orders']}] | incremental {n['total_s']}s ({n['rows_per_s']:,} rows/s, +{n['step_rss_gb']} GB over the harness's data, peak {n['peak_rss_gb']} GB) "
              f"[customers {n['customers']}; orders {n['orders']}]")


if __name__ == "__main__":
    main()
