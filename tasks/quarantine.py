"""Reading the quarantine: what was rejected, by which rule, in which run."""
from __future__ import annotations

import json

import pandas as pd

from userops.db import get_engine, read_frame
from userops.privacy import mask_record, scrub_text


def _where(table: str | None, run_id: str | None) -> tuple[str, dict]:
    clauses, params = [], {}
    if table:
        clauses.append("source_table = :t")
        params["t"] = table
    if run_id:
        clauses.append("run_id = :r")
        params["r"] = run_id
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def quarantine_summary(table: str | None = None, run_id: str | None = None) -> pd.DataFrame:
    where, params = _where(table, run_id)
    return read_frame(
        get_engine(),
        f"SELECT source_table, rule, COUNT(*) AS n, MAX(run_id) AS last_run FROM quarantine {where} "
        f"GROUP BY source_table, rule ORDER BY source_table, n DESC",
        params,
    )


def quarantine_records(table: str | None = None, run_id: str | None = None, limit: int = 50) -> pd.DataFrame:
    where, params = _where(table, run_id)
    return read_frame(
        get_engine(),
        f"SELECT id, source_table, source_id, rule, reason, run_id, seen_at FROM quarantine {where} ORDER BY id DESC LIMIT {int(limit)}",
        params,
    )


def quarantine_record(record_id: int) -> dict | None:
    df = read_frame(get_engine(), "SELECT * FROM quarantine WHERE id = :i", {"i": record_id})
    if df.empty:
        return None
    rec = df.iloc[0].to_dict()
    # phone, email and name masked; a phone number or email inside any other text (a
    # feedback's words, an address) too
    masked = mask_record(json.loads(rec["record"]))
    rec["record"] = {k: scrub_text(v) if isinstance(v, str) and k not in ("phone", "email", "name") else v for k, v in masked.items()}
    if isinstance(rec.get("reason"), str):
        rec["reason"] = scrub_text(rec["reason"])
    return rec
