"""The quarantine: what was rejected, by which rule, in which run — and what left it.

A quarantined row is *open* until the record no longer needs the operator
(``resolved_at`` / ``resolved_run_id``, set by ``settle_quarantine``):

* released: it was held only because what it refers to was missing (an order's customer,
  an item's order: rules ``customer_unknown`` / ``order_unknown``), that is in the warehouse
  now, and the record, validated again, passed: it is loaded;
* superseded: the key is in the warehouse with the same ``updated_at`` or a later one (the
  source fixed it, with or without moving its stamp, or a failed run was run again, and the
  night loaded it).

The readers below list open rows unless asked for all.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tasks.load import known_ids, record_quarantine
from tasks.validate import ID_COLUMN, KEY_COLUMNS, ValidationOutcome, _parse_ts, record_hashes, validate_frame
from userops.db import bulk_upsert, get_engine, read_frame
from userops.i18n import t
from userops.privacy import mask_record, scrub_text

log = logging.getLogger("userops.quarantine")

# the rules validate_frame gives a row whose reference is missing, by referencing column
REFERENCE_RULES = {"customer_id": "customer_unknown", "order_id": "order_unknown"}


def _where(table: str | None, run_id: str | None, open_only: bool = True) -> tuple[str, dict]:
    clauses, params = (["resolved_at IS NULL"] if open_only else []), {}
    if table:
        clauses.append("source_table = :t")
        params["t"] = table
    if run_id:
        clauses.append("run_id = :r")
        params["r"] = run_id
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def quarantine_summary(table: str | None = None, run_id: str | None = None, open_only: bool = True) -> pd.DataFrame:
    where, params = _where(table, run_id, open_only)
    return read_frame(
        get_engine(),
        # the latest run is the run of the row seen last (run ids are uuids or prefixed ids:
        # MAX(run_id) compared their text)
        f"SELECT source_table, rule, COUNT(*) AS n, MAX(CASE WHEN latest = 1 THEN run_id END) AS last_run FROM ("
        f"SELECT source_table, rule, run_id, ROW_NUMBER() OVER (PARTITION BY source_table, rule ORDER BY seen_at DESC, id DESC) AS latest "
        f"FROM quarantine {where}) seen GROUP BY source_table, rule ORDER BY source_table, n DESC",
        params,
    )


def reason_text(table: str, rule: str, stored: str | None, lang: str | None = None) -> str | None:
    """A quarantined row's reason in the reader's language. The reason is stored in the
    language of the run that wrote it; where the rule alone words it (a suite rule's own
    words, an unparseable or ambiguous value, an unknown customer or order) it is worded
    again in ``lang``; a reason with figures of its own (a malformed row's line and field
    counts, a conflict's details) stays as stored."""
    from tasks.validate import _parse_reason, _ref_reason, load_suites
    from userops.settings import get_settings

    lang = lang or get_settings().language
    if rule in ("customer_unknown", "order_unknown"):
        return _ref_reason("customer_id" if rule == "customer_unknown" else "order_id", lang)
    if rule.endswith(("_ambiguous_date", "_unparseable")):
        return _parse_reason(rule, lang)
    suite = _suites(load_suites).get(table)
    for exp in getattr(suite, "expectations", None) or []:
        meta = exp.meta or {}
        if meta.get("rule") == rule and meta.get(lang):
            return meta[lang]
    return stored


def _suites(load) -> dict:
    if not _SUITES:
        _SUITES.update(load())
    return _SUITES


_SUITES: dict = {}  # the expectation suites' words, read once a process


def quarantine_records(table: str | None = None, run_id: str | None = None, limit: int = 50, open_only: bool = True, lang: str | None = None) -> pd.DataFrame:
    where, params = _where(table, run_id, open_only)
    df = read_frame(
        get_engine(),
        f"SELECT id, source_table, source_id, rule, reason, run_id, seen_at FROM quarantine {where} ORDER BY id DESC LIMIT {int(limit)}",
        params,
    )
    if len(df):  # worded per (table, rule, stored reason), not per row
        words = {k: reason_text(*k, lang) for k in set(zip(df["source_table"], df["rule"], df["reason"]))}
        df["reason"] = [words[k] for k in zip(df["source_table"], df["rule"], df["reason"])]
    return df


def quarantine_record(record_id: int) -> dict | None:
    df = read_frame(get_engine(), "SELECT * FROM quarantine WHERE id = :i", {"i": record_id})
    if df.empty:
        return None
    rec = df.iloc[0].to_dict()
    # phone, email and name masked; a phone number or email inside any other text (a
    # feedback's words, an address) too
    masked = mask_record(json.loads(rec["record"]))
    rec["record"] = {k: scrub_text(v) if isinstance(v, str) and k not in ("phone", "email", "name") else v for k, v in masked.items()}
    rec["reason"] = reason_text(rec["source_table"], rec["rule"], rec.get("reason"))
    if isinstance(rec.get("reason"), str):
        rec["reason"] = scrub_text(rec["reason"])
    return rec


# ----------------------------------------------------------------------------- settling
def settle_quarantine(conn: Connection, table: str, run_id: str, suites: dict, references: dict) -> dict:
    """Release or close the open quarantined records of ``table``, set-based, inside the
    caller's transaction (the night's batch of ``table``, after its rows and its new bad rows
    are written: a record quarantined again tonight in a newer version is seen).

    Why here and not in the extract: a record held for a missing reference (an order of a
    quarantined customer) is never read again by the incremental extract — its own
    ``updated_at`` did not move when the operator fixed the customer. The quarantine keeps
    the record as received, so it is validated again from there, no second request to the
    source and no watermark moved back. Per key only the newest quarantined version counts:

    * superseded (every open row, whatever its rule): the warehouse holds the same version
      of the key (the same ``updated_at``) or a newer one, loaded and so valid -> resolved,
      nothing loaded (rows first seen in this run stay until the next);
    * released: the newest version has an open reference rule, is not older than what the
      warehouse holds, and every id it refers to is in the warehouse now -> validated again
      (all rules, the zone it was read in); passing: loaded (upsert by key) and all open rows
      of the key resolved; failing: it stays, under the rules that fail now (a new rule gets
      its row in this run). ``updated_at`` of a released row is moved just past the newest
      one of the table (never back), so incremental readers that look for rows changed
      since their last run (the tags' delta) see it as the new row it is.

    Only counts are logged. Returns {"released", "superseded", "still_quarantined"}."""
    out = {"released": 0, "superseded": 0, "still_quarantined": 0}
    key_cols, id_col = KEY_COLUMNS[table], ID_COLUMN[table]
    # only what can settle: a record held for a reference, or one whose id the warehouse holds
    # (a newer version may have arrived). A standing quarantine of records bad in themselves
    # and never loaded (an amount < 0 nobody fixed) is not parsed again every night (100k
    # such orders: 1.3 -> 0.05 s a night)
    ref_rules = [REFERENCE_RULES[c] for c in references if c in REFERENCE_RULES] or ["-"]
    q = read_frame(
        conn,
        sa.text(
            "SELECT id, source_id, record_hash, rule, record, run_id, assume_tz, resolved_at, seen_at FROM quarantine "
            "WHERE source_table = :t AND source_id IN ("
            "SELECT q2.source_id FROM quarantine q2 WHERE q2.source_table = :t AND q2.resolved_at IS NULL "
            f"AND (q2.rule IN :refs OR EXISTS (SELECT 1 FROM {table} w WHERE w.{id_col} = q2.source_id)))"
        ).bindparams(sa.bindparam("refs", expanding=True)),
        {"t": table, "refs": ref_rules},
    )
    if q.empty:
        return out
    ts_col = "occurred_at" if table == "events" else "updated_at"
    recs = pd.DataFrame.from_records([json.loads(r) for r in q["record"]], index=q.index)
    if any(c not in recs.columns for c in key_cols):
        return out
    recs = recs.astype(object).where(recs.notna(), None)
    keys = pd.DataFrame({c: recs[c].astype("string").str.strip() for c in key_cols})
    keyed = keys.notna().all(axis=1) & (keys != "").fillna(False).all(axis=1)
    q, recs, keys = q[keyed].copy(), recs[keyed], keys[keyed]
    if q.empty:
        return out
    q["k"] = _key_hash(keys)
    q["open"] = q["resolved_at"].isna()
    q["ref_rule"] = q["rule"].isin([REFERENCE_RULES[c] for c in references if c in REFERENCE_RULES])
    # the newest quarantined version of each key: the row seen last (a new version of a
    # record always has a new hash: its updated_at moved)
    newest = q.loc[q.groupby("k")["id"].idxmax(), ["k", "record_hash"]].set_index("k")["record_hash"]
    q["newest"] = q["record_hash"].to_numpy() == q["k"].map(newest).to_numpy()
    q["rec_ts"] = _record_ts(recs, q["assume_tz"], ts_col)
    wh = _warehouse_versions(conn, table, key_cols, id_col, ts_col, keys[id_col].dropna().unique())
    wh_ts = q["k"].map(wh) if len(wh) else pd.Series(pd.NaT, index=q.index, dtype="datetime64[us]")
    in_wh = q["k"].isin(wh.index)
    newer_in_wh = in_wh & q["rec_ts"].notna() & (wh_ts > q["rec_ts"]).fillna(False)
    # a record with no change stamp of its own (a file's row without updated_at: an ambiguous
    # date, a malformed row) is superseded by a version of its key written after it was seen
    # (the file imported again, fixed or with --date-order; a file's rows are stamped to the
    # second, so the same second counts as after)
    seen = pd.to_datetime(q["seen_at"]).astype("datetime64[us]").dt.floor("s")
    newer_in_wh |= in_wh & q["rec_ts"].isna() & (wh_ts >= seen).fillna(False)
    same_in_wh = in_wh & q["rec_ts"].notna() & (wh_ts == q["rec_ts"]).fillna(False)
    # the warehouse holds this version of the key (the same stamp) or a newer one, and what it
    # holds passed validation: every open row of it is done, whatever its rule — a run that
    # failed and was run again, a record fixed at the source without moving its updated_at,
    # the older copies of a key sent twice. A row first seen tonight is the operator's to see
    # at least once (a conflict between two versions with the same stamp)
    superseded = q["open"] & (q["run_id"] != run_id) & (newer_in_wh | same_in_wh)
    done_keys = set(q.loc[superseded & q["newest"], "k"])
    to_resolve = set(q.loc[superseded, "id"])

    # released: the newest version, held for a reference, not older than the warehouse's
    eligible = ~in_wh | (in_wh & (wh_ts < q["rec_ts"]).fillna(False))
    cand = q["open"] & q["newest"] & q["ref_rule"] & eligible & ~q["k"].isin(done_keys)
    first = q[q["k"].isin(q.loc[cand, "k"].unique()) & q["newest"]].drop_duplicates("k")
    loaded_keys: set = set()
    if len(first):
        raw = recs.loc[first.index]
        ready = pd.Series(True, index=raw.index)
        refs: dict[str, set] = {}
        for col, (ref_table, ref_col) in references.items():
            if col not in raw.columns:
                continue
            vals = raw[col].astype("string").str.strip()
            refs[col] = known_ids(conn, ref_table, ref_col, vals)
            ready &= (vals.isna() | vals.isin(refs[col])).fillna(False).astype(bool)
        first, raw = first[ready.to_numpy()], raw[ready.to_numpy()]
        for tz, part in first.groupby(first["assume_tz"].fillna("UTC"), sort=True):  # one group per zone, usually one
            rows = raw.loc[part.index].reset_index(drop=True)
            outcome = validate_frame(table, rows, suites, full_load=False, assume_tz=tz, known_refs=refs)
            if len(outcome.bad):  # kept under the stored record and hash: the same bad record stays one row per rule
                stored = pd.Series(part["record_hash"].to_numpy(), index=record_hashes(rows).to_numpy())
                record = pd.Series(part["record"].to_numpy(), index=part["record_hash"].to_numpy())
                bad = outcome.bad.assign(record_hash=outcome.bad["record_hash"].map(stored))
                bad = bad.assign(record=bad["record_hash"].map(record))
                record_quarantine(conn, ValidationOutcome(table, pd.DataFrame(), bad, len(rows)), run_id, tz)
                out["still_quarantined"] += int(bad["record_hash"].nunique())
            good = outcome.good
            if good.empty:
                continue
            if ts_col == "updated_at":
                good = good.assign(updated_at=_past_newest(conn, table, good["updated_at"]))
            out["released"] += bulk_upsert(conn, table, good, key_cols)
            loaded_keys |= set(_key_hash(good[key_cols]))
    out["superseded"] = len(done_keys)
    to_resolve |= set(q.loc[q["open"] & q["k"].isin(loaded_keys), "id"])
    _resolve(conn, sorted(int(i) for i in to_resolve), run_id)
    if any(out.values()):
        log.info("%s", t("log.quarantine.settled", table=table, released=f"{out['released']:,}",
                         superseded=f"{out['superseded']:,}", failing=f"{out['still_quarantined']:,}"))
    return out


def _key_hash(keys: pd.DataFrame) -> pd.Series:
    k = pd.DataFrame({c: keys[c].astype("string").str.strip() for c in keys.columns})
    return pd.Series(pd.util.hash_pandas_object(k, index=False).to_numpy(), index=keys.index)


def _record_ts(recs: pd.DataFrame, zones: pd.Series, ts_col: str) -> pd.Series:
    """The records' change stamp as naive UTC, each read in the zone it was received in."""
    out = pd.Series(pd.NaT, index=recs.index, dtype="datetime64[us]")
    if ts_col not in recs.columns:
        return out
    zones = zones.fillna("UTC")
    for tz in zones.unique():  # one per zone, usually one
        m = (zones == tz).to_numpy()
        out[m] = _parse_ts(recs.loc[m, ts_col], tz).to_numpy()
    return out


def _warehouse_versions(conn: Connection, table: str, key_cols: list[str], id_col: str, ts_col: str, ids) -> pd.Series:
    """The warehouse's change stamp of every stored row of ``ids``, indexed by key hash."""
    if not len(ids):
        return pd.Series(dtype="datetime64[us]")
    stmt = sa.text(f"SELECT {', '.join(key_cols)}, {ts_col} AS ts FROM {table} WHERE {id_col} IN :ids").bindparams(
        sa.bindparam("ids", expanding=True))
    ids = sorted(str(i) for i in ids)
    parts = [read_frame(conn, stmt, {"ids": ids[i : i + 1000]}, parse_dates=["ts"]) for i in range(0, len(ids), 1000)]
    df = pd.concat(parts, ignore_index=True)
    if df.empty:
        return pd.Series(dtype="datetime64[us]")
    return pd.Series(df["ts"].astype("datetime64[us]").to_numpy(), index=_key_hash(df[key_cols]).to_numpy())


def _past_newest(conn: Connection, table: str, stamps: pd.Series) -> pd.Series:
    """``stamps`` moved to just past the newest ``updated_at`` of ``table`` (never back)."""
    newest = read_frame(conn, f"SELECT MAX(updated_at) AS w FROM {table}", parse_dates=["w"])["w"].iloc[0]
    stamps = stamps.astype("datetime64[us]")
    if pd.isna(newest):
        return stamps
    floor = pd.Timestamp(newest) + pd.Timedelta(microseconds=1)
    return stamps.where(stamps > floor, floor).astype("datetime64[us]")


def _resolve(conn: Connection, ids: list[int], run_id: str) -> None:
    if not ids:
        return
    stmt = sa.text("UPDATE quarantine SET resolved_at = :at, resolved_run_id = :r WHERE id IN :ids AND resolved_at IS NULL").bindparams(
        sa.bindparam("ids", expanding=True))
    at = datetime.utcnow().replace(microsecond=0)
    for i in range(0, len(ids), 1000):
        conn.execute(stmt, {"at": at, "r": run_id, "ids": ids[i : i + 1000]})
