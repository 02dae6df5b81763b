"""Every benchmark in turn (``make bench``): each script's own figures, then a summary.

    .venv/bin/python bench/run_all.py [--customers N] [--db sqlite|postgres|both]
        [--only night,tags,...] [--skip model,...] [--lock /tmp/userops-heavy.lock]

Runs, one after the other (never two at once: they measure time and memory on the same
machine), each in its own process with its output streamed as it comes:

    datapath   bench_datapath.py   extract/validate/load of the sources, 10M-row file import
    tags       bench_tags.py       tags + health: full recompute and the 1% nightly delta
    model      bench_model.py      the modelling core (features, train, predict) without a warehouse
    scoring    bench_scoring.py    nightly churn scoring in the warehouse
    campaigns  bench_campaigns.py  planning an audience of 200,000 and sending to a local provider
    night      bench_night.py      the whole night under Prefect: first night, 1% delta, steady night

``--customers`` is passed to every script (default: each script's own, 1,000,000). ``--db``
picks the warehouses: scripts with a ``--db`` option get it; bench_tags and bench_scoring,
which read USEROPS_DATABASE_URL, run once per warehouse (PostgreSQL: a schema of their own
at USEROPS_BENCH_POSTGRES_URL). ``--lock FILE`` holds an exclusive lock on FILE for the whole
run (on a shared machine: heavy runs must not overlap). The exit code is non-zero if any
script failed; the summary names it.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("USEROPS_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")

# name, script, how it picks the warehouse: "option" (--db), "env" (USEROPS_DATABASE_URL), None (no warehouse)
BENCHES = [
    ("datapath", "bench_datapath.py", "option"),
    ("tags", "bench_tags.py", "env"),
    ("model", "bench_model.py", None),
    ("scoring", "bench_scoring.py", "env"),
    ("campaigns", "bench_campaigns.py", "option"),
    ("night", "bench_night.py", "option"),
]
# lines worth repeating in the summary
FIGURE = re.compile(r"(target|overhead|peak|wall|met\b|per second|/s\b|seconds|\bs\))", re.IGNORECASE)


def _pg_env(schema: str) -> dict:
    sep = "&" if "?" in PG_URL else "?"
    return {"USEROPS_DATABASE_URL": f"{PG_URL}{sep}options=-csearch_path%3D{schema}"}


def _ensure_schema(schema: str) -> None:
    import sqlalchemy as sa

    eng = sa.create_engine(PG_URL)
    with eng.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    eng.dispose()


def plan_runs(args) -> list[tuple[str, list[str], dict]]:
    only = set(filter(None, (args.only or "").split(",")))
    skip = set(filter(None, (args.skip or "").split(",")))
    runs = []
    for name, script, warehouse in BENCHES:
        if (only and name not in only) or name in skip:
            continue
        cmd = [sys.executable, str(ROOT / "bench" / script)]
        if args.customers:
            cmd += ["--customers", str(args.customers)]
            if name == "campaigns":  # its audience is a fifth of the members (200,000 of 1,000,000)
                cmd += ["--audience", str(max(1, args.customers // 5)), "--send", str(min(30_000, max(1, args.customers // 5)))]
        if warehouse == "option":
            runs.append((name, cmd + ["--db", args.db], {}))
        elif warehouse == "env":
            if args.db in ("sqlite", "both"):
                runs.append((f"{name} [sqlite]", cmd, {"USEROPS_DATABASE_URL": ""}))
            if args.db in ("postgres", "both"):
                runs.append((f"{name} [postgres]", cmd, {**_pg_env(f"bench_{name}"), "_schema": f"bench_{name}"}))
        else:
            runs.append((name, cmd, {}))
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, help="members for every script (default: each script's own, 1,000,000)")
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--only", help="comma-separated: " + ",".join(b[0] for b in BENCHES))
    ap.add_argument("--dry-run", action="store_true", help="print the commands only")
    ap.add_argument("--skip", help="comma-separated names to leave out")
    ap.add_argument("--lock", help="hold an exclusive lock on this file for the whole run")
    args = ap.parse_args()

    lock = None
    if args.lock:
        import fcntl

        lock = open(args.lock, "a")
        print(f"waiting for the lock {args.lock} ...", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)

    runs = plan_runs(args)
    if not runs:
        print("nothing to run", file=sys.stderr)
        return 2
    if args.dry_run:
        for name, cmd, extra in runs:
            print(f"{name}: {' '.join(cmd)} {extra or ''}")
        return 0
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    summary = []
    for name, cmd, extra in runs:
        env = dict(os.environ)
        schema = extra.pop("_schema", None) if extra else None
        for k, v in (extra or {}).items():
            if v:
                env[k] = v
            else:
                env.pop(k, None)
        print(f"\n######## {name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}", flush=True)
        t0 = time.perf_counter()
        figures: list[str] = []
        try:
            if schema:
                _ensure_schema(schema)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
            for line in proc.stdout:
                sys.stdout.write(line)
                if FIGURE.search(line) and "|" not in line[:16]:  # not Prefect's log lines
                    figures.append(line.rstrip())
            rc = proc.wait()
        except KeyboardInterrupt:
            proc.terminate()
            proc.wait()
            raise
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            print(f"{name}: could not run ({type(exc).__name__}: {exc})", flush=True)
            rc = -1
        summary.append((name, rc, time.perf_counter() - t0, figures[-12:]))

    print("\n######## summary")
    for name, rc, secs, figures in summary:
        print(f"{name:<22} {'ok' if rc == 0 else f'FAILED (exit {rc})':<18} {secs:8.0f}s")
        for f in figures:
            print(f"    {f}")
    if lock is not None:
        lock.close()
    return 0 if all(rc == 0 for _, rc, _, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
