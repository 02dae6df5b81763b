"""The staff-outreach lists hold phones and emails: their folders are 0700 and their files
(.csv and .xlsx) 0600 whatever the umask, and a folder or file left wider by an earlier
version is narrowed when the sender writes there again."""
from __future__ import annotations

import os
import stat

import pandas as pd
import pytest

from tasks.messaging import StaffList, send_due
from tests.campaigns.conftest import NOON, plan_staff
from tests.campaigns.factory import load_members, make_members
from tasks.messaging import read_staff_list


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.fixture
def umask():
    """Run with the given umask; put back afterwards."""
    old = os.umask(0o022)
    os.umask(old)

    def use(mask: int) -> None:
        os.umask(mask)

    yield use
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o000])
def test_outreach_folders_and_files_are_private(sqlite_warehouse, tmp_path, umask, mask):
    umask(mask)
    frames = make_members(3, seed=7, stages={"active": 1.0})
    with sqlite_warehouse.begin() as conn:
        load_members(conn, frames)
    plan_staff(sqlite_warehouse, frames["customers"]["customer_id"])
    d = send_due(now=NOON)
    assert d["sent"] == 3 and set(d["outreach_files"]) == {"retention.csv", "retention.xlsx"}
    root = tmp_path / "output" / "outreach"
    day = root / "2026-11-20"
    assert _mode(root) == 0o700 and _mode(day) == 0o700
    assert _mode(day / "retention.csv") == 0o600 and _mode(day / "retention.xlsx") == 0o600
    assert len(pd.read_excel(day / "retention.xlsx", dtype=str)) == 3  # still a readable workbook


def test_wider_folders_and_files_of_before_are_narrowed(sqlite_warehouse, tmp_path, umask):
    umask(0o022)
    frames = make_members(2, seed=8, stages={"active": 1.0})
    ids = list(frames["customers"]["customer_id"])
    with sqlite_warehouse.begin() as conn:
        load_members(conn, frames)
    root = tmp_path / "output" / "outreach"
    day = root / "2026-11-20"
    day.mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)
    os.chmod(day, 0o755)
    plan_staff(sqlite_warehouse, ids[:1])
    assert send_due(now=NOON)["sent"] == 1
    for p in (day / "retention.csv", day / "retention.xlsx"):  # as an earlier version left them
        os.chmod(p, 0o644)
    os.chmod(root, 0o755)
    os.chmod(day, 0o755)
    plan_staff(sqlite_warehouse, ids[1:])
    assert send_due(now=NOON)["sent"] == 1
    assert _mode(root) == 0o700 and _mode(day) == 0o700
    assert _mode(day / "retention.csv") == 0o600 and _mode(day / "retention.xlsx") == 0o600
    assert read_staff_list(day / "retention.csv")["customer_id"].tolist() == ids


def test_staff_list_writer_alone(tmp_path, umask):
    """StaffList itself (what the crisis call list goes through as well): private from the first write."""
    from tasks.messaging import Outbound

    umask(0o022)
    staff = StaffList(tmp_path)
    m = Outbound("crisis-1|C1", "crisis-1", "C1", "staff", None, "致歉", "zh-CN", 1, "张三", "c1@example.com", "13800138000", "普通")
    assert staff.send_batch([m], NOON)[0].status == "sent"
    p = staff.path("crisis-1", "2026-11-20")
    assert _mode(staff.root) == 0o700 and _mode(p.parent) == 0o700 and _mode(p) == 0o600
    files = staff.finish(10)
    assert all(_mode(f) == 0o600 for f in files) and len(files) == 2
