"""The incremental aggregate equals a full recompute after each night's delta; stage
history records each change once per day; re-running a day changes nothing."""
from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tasks import tags
from tests.tags.factory import AS_OF, Shop, local, set_order
from userops.db import read_frame


def stored_aggregates(engine) -> pd.DataFrame:
    with engine.connect() as conn:
        df = tags.fetch_frame(conn, f"SELECT {', '.join(tags.AGG_COLUMNS)} FROM customer_aggregates", parse_dates=tags._DATES[1:], numeric=tags._BASE_NUMERIC)
    return df.sort_values("customer_id").reset_index(drop=True)


def recomputed_aggregates(engine, as_of) -> pd.DataFrame:
    with engine.connect() as conn:
        base = tags.base_frame(conn, as_of, stored=False)
    base = base[base["customer_id"].isin(stored_aggregates(engine)["customer_id"])]
    return base[tags.AGG_COLUMNS].reset_index(drop=True)


def assert_same(stored: pd.DataFrame, fresh: pd.DataFrame) -> None:
    a = stored[tags.AGG_COLUMNS].copy()
    b = fresh[tags.AGG_COLUMNS].copy()
    for df in (a, b):
        for c in tags._BASE_NUMERIC:
            df[c] = pd.to_numeric(df[c]).astype("float64").round(2)
        for c in ("favourite_category", "preferred_channel", "customer_id"):
            df[c] = df[c].astype(object).where(df[c].notna(), None)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_dtype=False)


def history(engine) -> list[tuple]:
    df = read_frame(engine, "SELECT customer_id, from_stage, to_stage, changed_on FROM stage_history ORDER BY customer_id, changed_on")
    return [(r.customer_id, None if pd.isna(r.from_stage) else r.from_stage, r.to_stage, str(pd.Timestamp(r.changed_on).date())) for r in df.itertuples()]


def test_incremental_equals_full_recompute(warehouse):
    s = Shop()
    for i in range(12):
        cid = s.customer(f"M{i:02d}")
        for k in range(i % 5):
            s.order(cid, local(AS_OF, -30 * k - i), amount=50 + 10 * k, discount=20 if k % 2 else 0, channel=["app", "web"][k % 2], category=["skincare", "makeup", "gift"][k % 3])
    s.customer("W_window")  # an order that leaves the 365-day window on the next night
    s.order("W_window", local(AS_OF, -365))
    s.order("W_window", local(AS_OF, -5))
    s.customer("F_future")
    # known on the first night but paid two days later: counted only once that day comes
    future = s.order("F_future", local(AS_OF, 2), updated_at=local(AS_OF, 0, hour=8))
    s.load(warehouse)
    first = tags.refresh(AS_OF, "n1", engine=warehouse)
    assert first["aggregates"]["mode"] == "full"
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, AS_OF))

    # next night: a refund, a new order, a new member, a changed amount
    day2 = AS_OF + timedelta(days=1)
    stamp = local(day2, 0, hour=10)
    set_order(warehouse, "O000002", status="refunded", updated_at=stamp)
    set_order(warehouse, "O000005", amount=999.0, updated_at=stamp)
    s.customer("NEW1", registered=local(day2, 0, hour=9))
    s.order("NEW1", local(day2, 0, hour=9, minute=30))
    s.order("M03", local(day2, 0, hour=11), category="gift", qty=5)
    s.load(warehouse)
    second = tags.refresh(day2, "n2", engine=warehouse)
    assert second["aggregates"]["mode"] == "incremental"
    # M03 (new order), NEW1, the owners of O000002/O000005, W_window (window) -- not everyone
    assert 3 <= second["aggregates"]["delta_customers"] <= 6
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day2))
    agg = stored_aggregates(warehouse).set_index("customer_id")
    assert agg.loc["W_window", "window_orders"] == 1
    assert agg.loc["M03", "favourite_category"] == "gift"
    assert "F_future" not in agg.index

    # two nights later: the future order's day has come
    day3 = AS_OF + timedelta(days=2)
    third = tags.refresh(day3, "n3", engine=warehouse)
    assert third["aggregates"]["mode"] == "incremental"
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day3))
    assert stored_aggregates(warehouse).set_index("customer_id").loc["F_future", "paid_orders"] == 1

    # the stored tags equal tags recomputed from scratch for the same day
    frame, _, _ = tags.tags_frame(day3, engine=warehouse)
    tags._LAST.clear()
    with warehouse.connect() as conn:
        base = tags.base_frame(conn, day3, stored=False)
        fresh, _ = tags.compute_tags(base, day3)
    cols = ["customer_id", "lifecycle_stage", "rfm_r", "rfm_f", "rfm_m", "rfm_segment", "value_tier", "crisis_priority", "price_sensitive", "ltv", "paid_orders"]
    pd.testing.assert_frame_equal(frame[cols].reset_index(drop=True), fresh[cols].reset_index(drop=True), check_dtype=False)
    assert future


def test_a_late_arrival_on_a_day_already_counted_adds_no_purchase_day(warehouse):
    """Late arrivals paid in a day already counted: the day's counted orders are sought by the
    day's range of payment times, whose edges are the shop's midnights."""
    s = Shop()
    day = AS_OF - timedelta(days=3)
    s.customer("A_midnight")  # counted order at the day's first instant
    s.order("A_midnight", local(day, hour=0))
    s.customer("B_last_second")  # ... and at its last second
    s.order("B_last_second", local(day, hour=23, minute=59, second=59))
    s.customer("C_day_before")  # counted order a second before the day starts: another day
    s.order("C_day_before", local(day, -1, hour=23, minute=59, second=59))
    s.customer("D_day_after")  # counted order at the next day's first instant: another day
    s.order("D_day_after", local(day, 1, hour=0))
    s.load(warehouse)
    tags.refresh(AS_OF, "n1", engine=warehouse)
    day2 = AS_OF + timedelta(days=1)
    for cid in ("A_midnight", "B_last_second", "C_day_before", "D_day_after"):
        s.order(cid, local(day, hour=12), updated_at=local(day2, hour=9))  # paid on day, arrived late
    s.load(warehouse)
    second = tags.refresh(day2, "n2", engine=warehouse)
    assert second["aggregates"]["mode"] == "incremental" and second["aggregates"]["recomputed"] == 0
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day2))
    agg = stored_aggregates(warehouse).set_index("customer_id")
    assert agg["purchase_days"].astype(int).to_dict() == {"A_midnight": 1, "B_last_second": 1, "C_day_before": 2, "D_day_after": 2}
    assert agg["paid_orders"].astype(int).tolist() == [2, 2, 2, 2]


def test_second_payment_time_from_a_night_with_several_orders(warehouse):
    """The second payment time when a night adds several orders: a new buyer's first two, a
    stored buyer whose added orders come before the stored second, late arrivals paid before
    the stored first, and two added orders at the same instant (not a second time)."""
    s = Shop()
    s.customer("S_stored")
    s.order("S_stored", local(AS_OF, -20))
    s.order("S_stored", local(AS_OF, -2))
    s.customer("L_late")
    s.order("L_late", local(AS_OF, -1))
    s.customer("T_tie")
    s.order("T_tie", local(AS_OF, -3))
    s.load(warehouse)
    tags.refresh(AS_OF, "n1", engine=warehouse)
    day2 = AS_OF + timedelta(days=1)
    arrived = local(day2, 0, hour=11)
    s.customer("N_new", registered=local(day2, 0, hour=8))
    s.order("N_new", local(day2, 0, hour=9), updated_at=arrived)
    s.order("N_new", local(day2, 0, hour=10), updated_at=arrived)
    s.order("S_stored", local(day2, 0, hour=9), updated_at=arrived)
    s.order("S_stored", local(AS_OF, -10), updated_at=arrived)  # late: between the stored first and second
    s.order("L_late", local(AS_OF, -4), updated_at=arrived)  # late: both before the stored first
    s.order("L_late", local(AS_OF, -3), updated_at=arrived)
    s.order("T_tie", local(day2, 0, hour=9), updated_at=arrived)
    s.order("T_tie", local(day2, 0, hour=9), updated_at=arrived)
    s.load(warehouse)
    night = tags.refresh(day2, "n2", engine=warehouse)
    assert night["aggregates"]["mode"] == "incremental" and night["aggregates"]["recomputed"] == 0
    assert_same(stored_aggregates(warehouse), recomputed_aggregates(warehouse, day2))
    second = stored_aggregates(warehouse).set_index("customer_id")["second_paid_at"]
    assert second["N_new"] == pd.Timestamp(local(day2, 0, hour=10))
    assert second["S_stored"] == pd.Timestamp(local(AS_OF, -10))
    assert second["L_late"] == pd.Timestamp(local(AS_OF, -3))
    assert second["T_tie"] == pd.Timestamp(local(day2, 0, hour=9))


def test_rerunning_a_night_changes_nothing(warehouse):
    s = Shop()
    for i in range(8):
        s.customer(f"K{i}")
        s.order(f"K{i}", local(AS_OF, -20 * i))
    s.load(warehouse)
    tags.refresh(AS_OF, "n1", engine=warehouse)
    before = read_frame(warehouse, "SELECT * FROM tags ORDER BY customer_id")
    hist = history(warehouse)
    again = tags.refresh(AS_OF, "n1-again", engine=warehouse)
    assert again["tags_written"] == 0 and again["stage_changes"] == 0
    pd.testing.assert_frame_equal(before, read_frame(warehouse, "SELECT * FROM tags ORDER BY customer_id"))
    assert history(warehouse) == hist


def test_stage_history_over_several_days(warehouse):
    s = Shop()
    s.customer("H1", registered=local(AS_OF, -3))  # prospect on the first day
    s.customer("H2")
    s.order("H2", local(AS_OF, 0, hour=8))
    s.load(warehouse)
    tags.refresh(AS_OF, "d0", engine=warehouse)
    assert history(warehouse) == [("H1", None, "prospect", str(AS_OF)), ("H2", None, "new", str(AS_OF))]

    d = lambda n: AS_OF + timedelta(days=n)  # noqa: E731
    tags.refresh(d(30), "d30", engine=warehouse)  # H2 still new (30 days)
    tags.refresh(d(31), "d31", engine=warehouse)  # H2 active
    s.order("H1", local(d(40), 0))
    s.load(warehouse)
    tags.refresh(d(40), "d40", engine=warehouse)  # H1 new
    tags.refresh(d(61), "d61", engine=warehouse)  # H2 silent
    tags.refresh(d(61), "d61-again", engine=warehouse)  # nothing new
    tags.refresh(d(181), "d181", engine=warehouse)  # H2 churned, H1 silent
    assert history(warehouse) == [
        ("H1", None, "prospect", str(AS_OF)),
        ("H1", "prospect", "new", str(d(40))),
        ("H1", "new", "silent", str(d(181))),
        ("H2", None, "new", str(AS_OF)),
        ("H2", "new", "active", str(d(31))),
        ("H2", "active", "silent", str(d(61))),
        ("H2", "silent", "churned", str(d(181))),
    ]
    # "who went silent this week": one query on the history
    week = read_frame(
        warehouse,
        "SELECT customer_id FROM stage_history WHERE to_stage = 'silent' AND changed_on > :a AND changed_on <= :b",
        {"a": d(181) - timedelta(days=7), "b": d(181)},
    )
    assert week["customer_id"].tolist() == ["H1"]


def test_a_same_day_rerun_folds_into_one_history_row(warehouse):
    s = Shop()
    s.customer("Z")
    s.order("Z", local(AS_OF, -50))
    s.load(warehouse)
    tags.refresh(AS_OF, "a", engine=warehouse)  # active
    day = AS_OF + timedelta(days=11)
    tags.refresh(day, "b", engine=warehouse)  # 61 days: silent
    assert history(warehouse)[-1] == ("Z", "active", "silent", str(day))
    # a late order of that same day arrives and the night is re-run: back to active,
    # which nets out to no change that day
    s.order("Z", local(day, 0, hour=9), updated_at=local(day, 0, hour=9))
    s.load(warehouse)
    tags.refresh(day, "b-again", engine=warehouse)
    assert history(warehouse) == [("Z", None, "active", str(AS_OF))]
    # and a refund the same day makes it silent again, still one row for the day
    set_order(warehouse, "O000002", status="refunded", updated_at=local(day, 0, hour=10))
    tags.refresh(day, "b-third", engine=warehouse)
    assert history(warehouse) == [("Z", None, "active", str(AS_OF)), ("Z", "active", "silent", str(day))]


def test_first_sights_recorded_from_the_tags_just_written(warehouse):
    """The first night records every member's first sight (no from stage, the night's run);
    if the stored tags were not empty after all, only the written rows get a history row."""
    s = Shop()
    s.customer("A")
    s.order("A", local(AS_OF, -5))
    s.customer("B")
    s.load(warehouse)
    tags.refresh(AS_OF, "first", engine=warehouse)
    got = read_frame(warehouse, "SELECT customer_id, from_stage, to_stage, changed_on, run_id FROM stage_history ORDER BY customer_id")
    assert [(r.customer_id, r.from_stage, r.to_stage, str(pd.Timestamp(r.changed_on).date()), r.run_id) for r in got.itertuples()] == [
        ("A", None, "new", str(AS_OF), "first"),
        ("B", None, "prospect", str(AS_OF), "first"),
    ]
    # a caller that believes nothing is stored (old empty) while B's row is: A's row is
    # written as new, and the history records A alone, not every row of the table
    day = AS_OF + timedelta(days=1)
    with warehouse.begin() as conn:
        conn.exec_driver_sql("DELETE FROM tags WHERE customer_id = 'A'")
        stored = tags.read_old_tags(conn)
        row = read_frame(conn, "SELECT * FROM tags WHERE customer_id = 'B'").assign(customer_id="A", lifecycle_stage="active")
        out = tags.write_tags(conn, row, day, "second", old=stored.iloc[0:0])
    assert out["stage_changes"] == 1
    assert [h for h in history(warehouse) if h[3] == str(day)] == [("A", None, "active", str(day))]


def test_an_empty_warehouse(warehouse):
    """The first night of a new shop: no members yet, nothing breaks, nothing is invented."""
    from tasks import health

    stats = tags.refresh(AS_OF, "empty", engine=warehouse)
    assert stats["members"] == 0 and stats["tags_written"] == 0
    m = health.snapshot(AS_OF, engine=warehouse)
    assert m["members"] == 0 and m["silent_share"] is None and m["breaches"] == []


def test_a_backfill_to_an_earlier_day_recomputes_everything(warehouse):
    """as_of moving back: a full recompute; members who did not exist yet leave the tags."""
    s = Shop()
    s.customer("OLD")
    s.order("OLD", local(AS_OF, -40))
    s.customer("LATE", registered=local(AS_OF, -3))
    s.order("LATE", local(AS_OF, -2))
    s.load(warehouse)
    tags.refresh(AS_OF, "now", engine=warehouse)
    back = tags.refresh(AS_OF - timedelta(days=10), "backfill", engine=warehouse)
    assert back["aggregates"]["mode"] == "full" and back["aggregates"]["reason"] == "as_of moved back"
    assert back["tags_removed"] == 1
    stored = read_frame(warehouse, "SELECT customer_id, lifecycle_stage FROM tags ORDER BY customer_id")
    assert stored.values.tolist() == [["OLD", "new"]]  # its only order: 30 days before the backfill day


@pytest.mark.postgres
def test_a_full_recompute_gets_its_own_work_mem(pg_warehouse, monkeypatch):
    """PostgreSQL: the full pass runs with ``tags.full_work_mem_mb`` (its hashes of every order
    stay in memory), a night with 256 MB; both only for the refresh's transaction."""
    from userops.settings import get_settings, reset_settings

    monkeypatch.setenv("USEROPS_TAGS__FULL_WORK_MEM_MB", "300")
    reset_settings()
    engine = pg_warehouse
    s = Shop()
    s.customer("W1")
    s.order("W1", local(AS_OF, -3))
    s.load(engine)
    seen = []
    for day, full in ((AS_OF, False), (AS_OF + timedelta(days=1), False), (AS_OF + timedelta(days=1), True)):
        with engine.begin() as conn:
            out = tags.refresh_aggregates(conn, day, full=full, settings=get_settings())
            seen.append((out["mode"], conn.exec_driver_sql("SHOW work_mem").scalar()))
    with engine.connect() as conn:
        outside = conn.exec_driver_sql("SHOW work_mem").scalar()
    assert seen == [("full", "300MB"), ("incremental", "256MB"), ("full", "300MB")]  # the first refresh is full
    assert outside != "300MB"


def test_full_work_mem_must_be_positive(monkeypatch, tmp_path):
    """A zero or negative ``tags.full_work_mem_mb`` is refused when the settings load, naming the
    setting (PostgreSQL would only fail at the weekly full recompute)."""
    import pydantic

    from userops.settings import get_settings, reset_settings

    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("{}\n")
    monkeypatch.setenv("USEROPS_TAGS__FULL_WORK_MEM_MB", "0")
    reset_settings()
    with pytest.raises(pydantic.ValidationError, match="full_work_mem_mb"):
        get_settings()
    monkeypatch.setenv("USEROPS_TAGS__FULL_WORK_MEM_MB", "64")
    reset_settings()
    assert get_settings().tags.full_work_mem_mb == 64
    reset_settings()
