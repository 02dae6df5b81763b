"""Benchmark: tags + health on 1,000,000 customers / ~10,000,000 orders.

    .venv/bin/python bench/bench_tags.py                      # SQLite (output/bench_tags.db)
    USEROPS_DATABASE_URL='postgresql+psycopg2://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dbench_tags' \\
        .venv/bin/python bench/bench_tags.py                  # PostgreSQL, schema bench_tags

Steps (each measured in its own process, so peak RSS is that step's):
  load    generate the member base vectorized, straight into the warehouse (bulk loads)
  full    full recompute as of day D: aggregates from every order, tags, stage history,
          cluster fit (the first night, or a weekly safety-net night)
  delta   a 1% nightly delta (new paid orders, refunds, new members, stamped in D+1),
          then the incremental refresh + health snapshot for D+1 (the nightly path)
Targets: full <= 60 s, refresh + health after the delta <= 10 s, peak RSS <= 4 GB.
Options: --customers N (default 1,000,000), --orders-per-customer X (default 10), --skip-load.
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
CATEGORIES = ["skincare", "makeup", "haircare", "fragrance", "body", "tools", "men", "gift"]
CHANNELS = ["app", "miniprogram", "web", "store"]


def _url() -> str:
    return os.environ.get("USEROPS_DATABASE_URL") or f"sqlite:///{ROOT / 'output' / 'bench_tags.db'}"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ts_strings(us: "np.ndarray") -> "np.ndarray":
    import numpy as np

    s = np.datetime_as_string(us.astype("datetime64[us]"), unit="us")
    return np.char.replace(s, "T", " ")


# ----------------------------------------------------------------------------- data
def make_chunk(rng, first: int, n: int, orders_per_customer: float, end_us: int):
    """One block of customers with their orders, items, feedback (numpy, vectorized)."""
    import numpy as np

    day = 86_400_000_000
    ids = np.char.add("C", np.char.zfill(np.arange(first + 1, first + n + 1).astype(str), 8))
    reg = end_us - (rng.random(n) * 3 * 365 * day).astype("int64")
    prospect = rng.random(n) < 0.15
    mean_buyer = orders_per_customer / 0.85
    n_orders = np.where(prospect, 0, 1 + rng.poisson(mean_buyer - 1, n))
    lifetime = (rng.exponential(500, n) * day).astype("int64")
    stop = np.minimum(reg + lifetime, end_us - 1)
    total = int(n_orders.sum())
    ci = np.repeat(np.arange(n), n_orders)
    span = np.maximum(stop[ci] - reg[ci], 1)
    paid = reg[ci] + (rng.random(total) * span).astype("int64")
    r = rng.random(total)
    status = np.where(r < 0.05, "refunded", np.where(r < 0.08, "cancelled", "paid"))
    amount = np.round(rng.lognormal(4.8, 0.6, total), 2)
    sensitive = rng.random(n) < 0.3
    disc_p = np.where(sensitive[ci], 0.6, 0.05)
    discount = np.where(rng.random(total) < disc_p, np.round(amount * rng.uniform(0.12, 0.3, total), 2), 0.0)
    pref = rng.integers(0, 4, n)
    channel = np.array(CHANNELS)[np.where(rng.random(total) < 0.7, pref[ci], rng.integers(0, 4, total))]
    updated = paid + np.where(status == "paid", 0, (rng.random(total) * 3 * day).astype("int64"))
    updated = np.minimum(updated, end_us - 1)
    order_ids = np.char.add("O", np.char.zfill(np.arange(first * 20 + 1, first * 20 + total + 1).astype(str), 10))
    orders = {
        "order_id": order_ids,
        "customer_id": ids[ci],
        "paid_at": _ts_strings(paid),
        "status": status,
        "amount": amount,
        "discount_amount": discount,
        "store": np.char.add("S", (rng.integers(1, 41, total)).astype(str)),
        "channel": channel,
        "updated_at": _ts_strings(updated),
    }
    n_items = 1 + (rng.random(total) < 0.3)
    io_ = np.repeat(np.arange(total), n_items)
    second = np.zeros(len(io_), dtype=bool)
    second[1:] = io_[1:] == io_[:-1]
    sku = rng.integers(0, 400, len(io_))
    sku[1:] = np.where(second[1:], (sku[:-1] + 1) % 400, sku[1:])  # distinct skus inside an order
    fav = rng.integers(0, 8, n)
    cat_idx = np.where(rng.random(len(io_)) < 0.6, fav[ci[io_]], sku % 8)
    items = {
        "order_id": order_ids[io_],
        "sku": np.char.add("SKU", np.char.zfill((sku * 8 + cat_idx).astype(str), 4)),
        "quantity": rng.integers(1, 3, len(io_)),
        "unit_price": amount[io_],
        "category": np.array(CATEGORIES)[cat_idx],
        "updated_at": orders["paid_at"][io_],
    }
    customers = {
        "customer_id": ids,
        "registered_at": _ts_strings(reg),
        "city": np.array(["上海", "北京", "杭州", "深圳"])[rng.integers(0, 4, n)],
        "member_level": "普通",
        "marketing_consent": rng.random(n) < 0.8,
        "updated_at": _ts_strings(reg),
    }
    fb_o = np.flatnonzero(rng.random(total) < 0.004)
    m = len(fb_o)
    kind = rng.choice(["complaint", "suggestion", "praise"], m, p=[0.4, 0.2, 0.4])
    created = np.minimum(paid[fb_o] + (rng.random(m) * 5 * day).astype("int64"), end_us - 1)
    feedback = {
        "feedback_id": np.char.add(np.char.add("F", str(first)), np.arange(m).astype(str)),
        "customer_id": ids[ci[fb_o]],
        "kind": kind,
        "created_at": _ts_strings(created),
        "satisfaction": np.where(kind == "complaint", rng.integers(1, 4, m), rng.integers(4, 6, m)),
        "nps": np.where(kind == "complaint", rng.integers(0, 7, m), rng.integers(7, 11, m)),
        "updated_at": _ts_strings(created),
    }
    return customers, orders, items, feedback


def _insert(conn, table: str, cols: dict) -> None:
    """Bulk load columns: COPY on PostgreSQL, executemany on SQLite."""
    import io

    import pandas as pd

    from userops.db import is_postgres

    names = list(cols)
    if is_postgres(conn):
        buf = io.StringIO()
        pd.DataFrame(cols).to_csv(buf, index=False, header=False, na_rep="\\N")
        buf.seek(0)
        raw = conn.connection.driver_connection
        with raw.cursor() as cur:
            cur.copy_expert(f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)
    else:
        raw = conn.connection.driver_connection
        rows = zip(*[c.tolist() if hasattr(c, "tolist") else [c] * len(next(iter(cols.values()))) for c in cols.values()])
        raw.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})", rows)


def step_load(n_customers: int, orders_per_customer: float) -> dict:
    import numpy as np
    import sqlalchemy as sa

    from userops.db import get_engine, is_postgres, migrate

    url = _url()
    if url.startswith("sqlite"):
        path = Path(sa.engine.make_url(url).database)
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            p.unlink(missing_ok=True)
    else:
        import re
        from urllib.parse import unquote

        m = re.search(r"search_path=([A-Za-z_][A-Za-z0-9_]*)", unquote(url))
        schema = m.group(1) if m else "bench_tags"  # the URL's search_path (default bench_tags)
        admin = sa.create_engine(url.split("?")[0])
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            c.exec_driver_sql(f"CREATE SCHEMA {schema}")
        admin.dispose()
    engine = get_engine(url)
    migrate(engine)
    t0 = time.perf_counter()
    rng = np.random.default_rng(42)
    end_us = int(np.datetime64(str(AS_OF + timedelta(days=1)), "us").astype("int64")) - 8 * 3600 * 1_000_000
    counts = {"customers": 0, "orders": 0, "order_items": 0, "feedback": 0}
    # load without the secondary indexes, then build them once
    indexes = {
        "ix_orders_paid_at": "orders (paid_at)",
        "ix_orders_customer_paid": "orders (customer_id, paid_at, status, amount, discount_amount, channel, order_id)",
        "ix_order_items_sku": "order_items (sku)",
        "ix_orders_updated_at": "orders (updated_at)",
        "ix_feedback_created_at": "feedback (created_at)",
        "ix_feedback_customer_id": "feedback (customer_id)",
    }
    with engine.begin() as conn:
        for ix in indexes:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {ix}")
        index_seconds = {}
    block = 100_000
    for first in range(0, n_customers, block):
        n = min(block, n_customers - first)
        cust, orders, items, fb = make_chunk(rng, first, n, orders_per_customer, end_us)
        with engine.begin() as conn:
            _insert(conn, "customers", cust)
            _insert(conn, "orders", orders)
            _insert(conn, "order_items", items)
            _insert(conn, "feedback", fb)
        counts["customers"] += n
        counts["orders"] += len(orders["order_id"])
        counts["order_items"] += len(items["order_id"])
        counts["feedback"] += len(fb["feedback_id"])
        print(f"  loaded {counts['customers']:,} customers, {counts['orders']:,} orders ({time.perf_counter() - t0:.0f}s)", flush=True)
    with engine.begin() as conn:
        for ix, spec in indexes.items():
            t_ix = time.perf_counter()
            conn.exec_driver_sql(f"CREATE INDEX {ix} ON {spec}")
            index_seconds[ix] = round(time.perf_counter() - t_ix, 1)
            print(f"  index {ix}: {index_seconds[ix]}s", flush=True)
        if not is_postgres(conn):
            conn.exec_driver_sql("ANALYZE")
    if is_postgres(engine):  # a loaded warehouse is vacuumed: index-only scans need the visibility map
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    return {**counts, "index_seconds": index_seconds, "seconds": round(time.perf_counter() - t0, 1)}


def apply_delta(engine, day: date, share: float = 0.01, seed: int = 5, late_share: float | None = None) -> dict:
    """The source's next day: share x orders new or changed (90% new paid orders, 10% refunds
    of old ones), plus new members, all stamped inside ``day`` (UTC). ``late_share`` of the
    new orders (default 2/3, env BENCH_TAGS_LATE_SHARE) are late arrivals: paid in the
    business day before ``day`` (already counted by the previous refresh) but new to the
    warehouse, as in bench_night's source day (``advance_day`` stamps a whole UTC day, two
    thirds of it before the shop's midnight); the rest are paid inside ``day``."""
    import numpy as np
    import pandas as pd

    from tasks.tags import fetch_frame
    from userops.db import is_postgres

    rng = np.random.default_rng(seed)
    day_us = int(np.datetime64(str(day), "us").astype("int64"))
    with engine.begin() as conn:
        n_orders = int(fetch_frame(conn, "SELECT COUNT(*) AS n FROM orders", numeric=["n"])["n"].iloc[0])
        n_cust = int(fetch_frame(conn, "SELECT COUNT(*) AS n FROM customers", numeric=["n"])["n"].iloc[0])
        k = int(n_orders * share)
        k_new = int(k * 0.9)
        k_ref = k - k_new
        buyers = np.char.add("C", np.char.zfill(rng.integers(1, n_cust + 1, k_new).astype(str), 8))
        # stamped after everything already loaded (as a source's next night is), before the shop's midnight
        last = fetch_frame(conn, "SELECT MAX(updated_at) AS m FROM orders", parse_dates=["m"])["m"].iloc[0]
        day_us = max(day_us, int(pd.Timestamp(last).value // 1000) + 1_000_000)
        stamp = day_us + (rng.random(k_new) * 3_600_000_000).astype("int64")
        if late_share is None:
            late_share = float(os.environ.get("BENCH_TAGS_LATE_SHARE", 2 / 3))
        # the previous business day: [local midnight of day - 24 h, local midnight of day)
        old_cutoff_us = int(np.datetime64(str(day), "us").astype("int64")) - 8 * 3600 * 1_000_000
        late = rng.random(k_new) < late_share
        paid_us = np.where(late, old_cutoff_us - 1 - (rng.random(k_new) * 86_399_000_000).astype("int64"), stamp)
        import uuid

        token = uuid.uuid4().hex[:6]  # a re-run of the benchmark adds its own orders
        oid = np.char.add(np.char.add("N", day.strftime("%Y%m%d") + token), np.char.zfill(np.arange(k_new).astype(str), 8))
        amount = np.round(rng.lognormal(4.8, 0.6, k_new), 2)
        _insert(conn, "orders", {
            "order_id": oid, "customer_id": buyers, "paid_at": _ts_strings(paid_us), "status": np.full(k_new, "paid"),
            "amount": amount, "discount_amount": np.zeros(k_new), "store": np.full(k_new, "S1"),
            "channel": np.array(CHANNELS)[rng.integers(0, 4, k_new)], "updated_at": _ts_strings(stamp),
        })
        _insert(conn, "order_items", {
            "order_id": oid, "sku": np.full(k_new, "SKU0001"), "quantity": np.ones(k_new, dtype=int),
            "unit_price": amount, "category": np.array(CATEGORIES)[rng.integers(0, 8, k_new)], "updated_at": _ts_strings(stamp),
        })
        new_c = max(1, n_cust // 1000)
        reg = day_us + (rng.random(new_c) * 3_600_000_000).astype("int64")
        _insert(conn, "customers", {
            "customer_id": np.char.add("C", np.char.zfill(np.arange(n_cust + 1, n_cust + new_c + 1).astype(str), 8)),
            "registered_at": _ts_strings(reg), "city": np.full(new_c, "上海"), "member_level": np.full(new_c, "普通"),
            "marketing_consent": np.ones(new_c, dtype=bool), "updated_at": _ts_strings(reg),
        })
        # refunds of existing orders (the generator numbers block b's orders from b * 2,000,000 + 1)
        blocks = max(1, n_cust // 100_000)
        nums = rng.integers(0, blocks, k_ref) * 2_000_000 + rng.integers(1, int(0.8 * n_orders / blocks), k_ref)
        ref_ids = pd.Series(np.char.add("O", np.char.zfill(nums.astype(str), 10))).unique().tolist()
        ts = _ts_strings(np.array([day_us + 3_700_000_000]))[0]
        if is_postgres(conn):
            raw = conn.connection.driver_connection
            with raw.cursor() as cur:
                cur.execute("UPDATE orders SET status = 'refunded', updated_at = %s WHERE order_id = ANY(%s)", (ts, ref_ids))
        else:
            conn.connection.driver_connection.executemany(
                "UPDATE orders SET status = 'refunded', updated_at = ? WHERE order_id = ?", [(ts, i) for i in ref_ids]
            )
    return {"new_orders": k_new, "late_arrivals": int(late.sum()), "refunds": len(ref_ids), "new_members": new_c}


def step_full() -> dict:
    import pandas as pd

    from tasks import tags
    from userops.db import get_engine

    engine = get_engine(_url())
    with engine.begin() as conn:  # the first night: nothing computed yet
        # PostgreSQL: TRUNCATE, not DELETE. Without autovacuum a DELETE leaves a million dead
        # rows and their index entries behind, and a re-run's tag write measured 14 -> 20 s
        for table in ("tags", "stage_history", "customer_aggregates", "clusters", "tag_state", "health_snapshots", "health_breaches"):
            conn.exec_driver_sql(f"{'TRUNCATE' if conn.dialect.name == 'postgresql' else 'DELETE FROM'} {table}")
    # the first night is the day of the newest order (a re-run of the benchmark has added
    # earlier deltas: they become history, the next delta is again 1%)
    with engine.connect() as conn:
        newest = tags.fetch_frame(conn, "SELECT MAX(paid_at) AS m FROM orders", parse_dates=["m"])["m"].iloc[0]
    day = max(AS_OF, (pd.Timestamp(newest) + pd.Timedelta(hours=8)).date())
    t0 = time.perf_counter()
    stats = tags.refresh(day, "bench-full", engine=engine, full=True)
    total = time.perf_counter() - t0
    return {"as_of": str(day), "seconds": round(total, 2), "detail": stats["seconds"], "aggregates": stats["aggregates"]["seconds"], "steps": stats["aggregates"].get("steps"),
            "members": stats["members"], "tags_written": stats["tags_written"], "stage_changes": stats["stage_changes"]}


def step_delta() -> dict:
    from tasks import health, tags
    from userops.db import get_engine

    engine = get_engine(_url())
    day = tags.read_state(engine, "tags")["as_of"] + timedelta(days=1)
    delta = apply_delta(engine, day)
    t0 = time.perf_counter()
    stats = tags.refresh(day, "bench-delta", engine=engine)
    t1 = time.perf_counter()
    snap = health.snapshot(day, engine=engine)
    t2 = time.perf_counter()
    report = health.write_report(day, snap, engine=engine)
    t3 = time.perf_counter()
    from userops.db import wait_for_checkpoints

    checkpoints = wait_for_checkpoints()  # the refresh's checkpoint, run beside health and report
    t4 = time.perf_counter()
    return {
        "delta": delta,
        "refresh_s": round(t1 - t0, 2),
        "health_s": round(t2 - t1, 2),
        "refresh_plus_health_s": round(t2 - t0, 2),
        "report_s": round(t3 - t2, 2),
        "checkpoint": {"seconds": [c.get("seconds") for c in checkpoints], "waited_after_report_s": round(t4 - t3, 2)},
        "detail": stats["seconds"],
        "aggregates": stats["aggregates"],
        "tags_written": stats["tags_written"],
        "stage_changes": stats["stage_changes"],
        "report": str(report),
    }


def _child(step: str, args) -> dict:
    cmd = [sys.executable, __file__, "--step", step, "--customers", str(args.customers), "--orders-per-customer", str(args.orders_per_customer)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"step {step} failed")
    for line in out.stdout.splitlines():
        if not line.startswith("RESULT "):
            print(line)
    return json.loads([l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--orders-per-customer", type=float, default=10.0)
    ap.add_argument("--skip-load", action="store_true")
    ap.add_argument("--step", choices=["load", "full", "delta"])
    args = ap.parse_args()
    os.environ.setdefault("USEROPS_OUTPUT_DIR", str(ROOT / "output" / "bench"))
    if args.step:
        fn = {"load": lambda: step_load(args.customers, args.orders_per_customer), "full": step_full, "delta": step_delta}[args.step]
        res = fn()
        res["peak_rss_mb"] = round(_peak_rss_mb())
        print("RESULT " + json.dumps(res, default=str), flush=True)
        return
    backend = "PostgreSQL" if _url().startswith("postgresql") else "SQLite"
    print(f"bench_tags on {backend}: {args.customers:,} customers, ~{args.orders_per_customer:g} orders each")
    if not args.skip_load:
        load = _child("load", args)
        print(f"load: {load['customers']:,} customers, {load['orders']:,} orders, {load['order_items']:,} items in {load['seconds']}s")
    full = _child("full", args)
    delta = _child("delta", args)
    ok = lambda v, lim: "ok" if v <= lim else "OVER"
    print(f"full recompute:            {full['seconds']:7.2f} s  (target 60 s: {ok(full['seconds'], 60)})  {full['detail']}  peak RSS {full['peak_rss_mb']} MB")
    print(f"  full aggregate steps: {full.get('steps')}")
    print(f"1% delta: {delta['delta']}")
    print(f"refresh + health (delta):  {delta['refresh_plus_health_s']:7.2f} s  (target 10 s: {ok(delta['refresh_plus_health_s'], 10)})  "
          f"refresh {delta['refresh_s']} s {delta['detail']}, health {delta['health_s']} s, peak RSS {delta['peak_rss_mb']} MB")
    print(f"  incremental aggregate: {delta['aggregates']}")
    print(f"html report (not in the target): {delta['report_s']} s -> {delta['report']}")
    print(f"SQLite checkpoint of the refresh's log, beside health and report: {delta['checkpoint']}")
    print(f"peak RSS: {max(full['peak_rss_mb'], delta['peak_rss_mb'])} MB (target 4096 MB: {ok(max(full['peak_rss_mb'], delta['peak_rss_mb']), 4096)})")


if __name__ == "__main__":
    main()
