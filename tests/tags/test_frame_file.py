"""The nightly frame lives in a file under the output folder, named by a token the
``tag_frames`` row holds: a missing, foreign or damaged file, or one a rolled-back
refresh left, makes the night rebuild the frame from the warehouse (same tags), and each
warehouse keeps one frame file."""
from __future__ import annotations

import json
import random
from datetime import timedelta

from tasks import tags
from tests.tags.factory import AS_OF, Shop, local
from tests.tags.test_delta_random import _random_order, assert_tags_equal
from userops.db import read_frame
from userops.settings import get_settings


def _shop(warehouse, n: int = 12, seed: int = 5):
    rng = random.Random(seed)
    s = Shop()
    ids = [s.customer(f"F{i:02d}") for i in range(n)]
    for cid in ids:
        for _ in range(rng.randint(1, 4)):
            _random_order(s, rng, cid, local(AS_OF, -rng.randint(0, 200)))
    s.load(warehouse)
    return s, ids, rng


def _files():
    return sorted((get_settings().output_dir / "state").glob("tag-frame-*.arrow"))


def _night(s, warehouse, rng, ids, k: int, run: str):
    day = AS_OF + timedelta(days=k)
    _random_order(s, rng, ids[k % len(ids)], local(day, 0), status="paid")
    s.load(warehouse)
    return day, tags.refresh(day, run, engine=warehouse)


def test_the_frame_file_is_reused_and_one_file_is_kept(warehouse):
    s, ids, rng = _shop(warehouse)
    tags.refresh(AS_OF, "f0", engine=warehouse)
    assert len(_files()) == 1
    for k in (1, 2, 3):
        day, stats = _night(s, warehouse, rng, ids, k, f"f{k}")
        assert stats["frame"]["reused"], k
        assert len(_files()) == 1  # the previous night's file is gone once its successor is named
        assert_tags_equal(warehouse, day)
    stamp = read_frame(warehouse, "SELECT stamp, data FROM tag_frames")
    assert stamp["data"].isna().all() and _files()[0].name.endswith(json.loads(stamp["stamp"].iloc[0])["file_token"] + ".arrow")


def test_a_missing_or_damaged_frame_file_is_rebuilt_with_the_same_tags(warehouse):
    s, ids, rng = _shop(warehouse, seed=8)
    tags.refresh(AS_OF, "m0", engine=warehouse)
    _files()[0].unlink()
    day, stats = _night(s, warehouse, rng, ids, 1, "m1")
    assert not stats["frame"]["reused"]
    assert_tags_equal(warehouse, day)
    _files()[0].write_bytes(b"not an arrow stream")
    day, stats = _night(s, warehouse, rng, ids, 2, "m2")
    assert not stats["frame"]["reused"]
    assert_tags_equal(warehouse, day)
    day, stats = _night(s, warehouse, rng, ids, 3, "m3")  # and the night after reuses the rebuilt frame
    assert stats["frame"]["reused"]
    assert_tags_equal(warehouse, day)


def test_a_file_a_rolled_back_refresh_wrote_is_not_used(warehouse, monkeypatch):
    s, ids, rng = _shop(warehouse, seed=9)
    tags.refresh(AS_OF, "r0", engine=warehouse)
    kept = _files()

    real_save = tags.save_frame

    def save_then_fail(*a, **kw):
        real_save(*a, **kw)
        raise RuntimeError("the night fails after the frame file was written")

    monkeypatch.setattr(tags, "save_frame", save_then_fail)
    day = AS_OF + timedelta(days=1)
    _random_order(s, rng, ids[0], local(day, 0), status="paid")
    s.load(warehouse)
    try:
        tags.refresh(day, "r1", engine=warehouse)
    except RuntimeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("the refresh should have failed")
    assert len(_files()) == 2 and kept[0] in _files()  # the committed night's file is still there
    monkeypatch.undo()
    stats = tags.refresh(day, "r1-again", engine=warehouse)
    assert stats["frame"]["reused"]  # yesterday's (committed) frame, not the rolled-back one
    assert_tags_equal(warehouse, day)
    assert len(_files()) == 1


def test_the_same_warehouse_under_another_url_keeps_its_frame(warehouse):
    import sqlalchemy as sa

    s, ids, rng = _shop(warehouse, seed=11)
    tags.refresh(AS_OF, "u0", engine=warehouse)
    extra = {"timeout": "20"} if warehouse.dialect.name == "sqlite" else {"connect_timeout": "10"}
    other = sa.create_engine(warehouse.url.update_query_dict(extra))
    try:
        day = AS_OF + timedelta(days=1)
        _random_order(s, rng, ids[2], local(day, 0), status="paid")
        s.load(warehouse)
        stats = tags.refresh(day, "u1", engine=other)
        assert stats["frame"]["reused"] and len(_files()) == 1
        assert_tags_equal(warehouse, day)
    finally:
        other.dispose()


def test_a_night_rewrites_only_what_moved_and_a_changed_own_tag_reaches_the_table(warehouse, monkeypatch):
    """Customers whose own figures stayed get only their relative tags (recency, quintiles,
    stage) rewritten; a settings change that flips an own tag (price-sensitive) without any
    aggregate changing is still written in full. Stored tags equal a full recompute."""
    from userops.settings import reset_settings

    rng = random.Random(11)
    s = Shop()
    ids = [s.customer(f"P{i:02d}") for i in range(30)]
    for cid in ids:
        for _ in range(rng.randint(1, 5)):
            _random_order(s, rng, cid, local(AS_OF, -rng.randint(0, 300)), status="paid")
    s.load(warehouse)
    tags.refresh(AS_OF, "p0", engine=warehouse)
    # five days later (before the weekly full recompute) everyone has aged and one customer
    # bought: recency scores and stages of others move, their own values do not
    day = AS_OF + timedelta(days=5)
    _random_order(s, rng, ids[0], local(day, 0), status="paid")
    s.load(warehouse)
    stats = tags.refresh(day, "p1", engine=warehouse)
    assert stats["frame"]["reused"] and stats["aggregates"]["delta_customers"] == 1
    assert stats["tags_written"] > 1 and stats["tags_written_narrow"] < stats["tags_written"]
    if warehouse.dialect.name == "sqlite":  # PostgreSQL writes whole rows (COPY + upsert)
        assert stats["tags_written_narrow"] > 0
    assert_tags_equal(warehouse, day)
    before = read_frame(warehouse, "SELECT customer_id, price_sensitive FROM tags ORDER BY customer_id")

    monkeypatch.setenv("USEROPS_TAGS__PRICE_SENSITIVE_SHARE", "0.01")  # nearly every discounted buyer
    monkeypatch.setenv("USEROPS_TAGS__PRICE_SENSITIVE_MIN_ORDERS", "1")
    reset_settings()
    day2 = day + timedelta(days=1)
    stats = tags.refresh(day2, "p2", engine=warehouse)
    assert stats["frame"]["reused"] and stats["aggregates"]["delta_customers"] == 0
    after = read_frame(warehouse, "SELECT customer_id, price_sensitive FROM tags ORDER BY customer_id")
    assert (after["price_sensitive"].astype(bool) != before["price_sensitive"].astype(bool)).any()
    assert_tags_equal(warehouse, day2)
