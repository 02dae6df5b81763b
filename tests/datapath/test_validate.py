"""Validation rules and suite loading (no database, no Prefect)."""
from __future__ import annotations

import json
import re
import shutil

import pandas as pd
import pytest

from tasks.validate import EXPECTATIONS_DIR, BatchRejected, SuiteError, enforce_threshold, load_suites, validate_frame


@pytest.fixture(scope="module")
def suites():
    return load_suites()


def orders(**over):
    base = {
        "order_id": ["O1", "O2", "O3"],
        "customer_id": ["C1", "C1", "C2"],
        "paid_at": ["2026-01-05T10:00:00", "2026-02-01 08:00:00", "2026-03-01T00:00:00+08:00"],
        "amount": ["10.5", "20", "0"],
        "status": ["paid", "refunded", "cancelled"],
    }
    base.update(over)
    return pd.DataFrame(base)


def rules_of(outcome):
    return dict(zip(outcome.bad["source_id"], outcome.bad["rule"]))


def test_good_rows_pass_typed(suites):
    o = validate_frame("orders", orders(), suites, known_refs={"customer_id": {"C1", "C2"}})
    assert o.n_bad == 0 and o.n_good == 3
    assert str(o.good["paid_at"].dtype).startswith("datetime64")
    # an explicit +08:00 offset is converted to UTC
    assert o.good.loc[o.good.order_id == "O3", "paid_at"].iloc[0] == pd.Timestamp("2026-02-28 16:00:00")
    assert o.good["amount"].tolist() == [10.5, 20.0, 0.0]


@pytest.mark.parametrize(
    "column,value,rule",
    [
        ("amount", "-1", "amount_negative"),
        ("amount", "abc", "amount_unparseable"),
        ("status", "shipped", "status_unknown"),
        ("paid_at", "2999-01-01", "paid_at_out_of_range"),
        ("paid_at", "1999-12-31", "paid_at_out_of_range"),
        ("paid_at", "yesterday-ish", "paid_at_unparseable"),
        ("customer_id", "C404", "customer_unknown"),
        ("order_id", None, "id_missing"),
    ],
)
def test_each_bad_row_gets_its_rule(suites, column, value, rule):
    df = orders()
    df.loc[1, column] = value
    o = validate_frame("orders", df, suites, known_refs={"customer_id": {"C1", "C2"}})
    assert o.n_bad == 1 and o.n_good == 2
    assert o.bad["rule"].tolist() == [rule]
    rec = json.loads(o.bad["record"].iloc[0])
    assert rec["status"] == df.loc[1, "status"]  # the record is kept as received
    assert o.bad["reason"].iloc[0]  # a reason in words


def test_duplicate_ids_in_batch_are_quarantined(suites):
    df = orders(order_id=["O1", "O1", "O3"])
    o = validate_frame("orders", df, suites, known_refs={"customer_id": {"C1", "C2"}})
    assert set(o.bad["rule"]) == {"duplicate_order_id"}
    assert o.n_bad == 2 and o.good["order_id"].tolist() == ["O3"]


def test_customer_email_and_phone_format(suites):
    df = pd.DataFrame(
        {
            "customer_id": ["C1", "C2", "C3", "C4"],
            "email": ["a@b.cn", "no-at-sign", None, "x@y.com"],
            "phone": ["13800138000", "+86 138-0013-8000", "12", None],
        }
    )
    o = validate_frame("customers", df, suites)
    assert rules_of(o) == {"C2": "email_malformed", "C3": "phone_malformed"}


def test_missing_required_column_rejects_whole_batch(suites):
    df = orders().drop(columns=["amount"])
    with pytest.raises(BatchRejected, match="缺少必需列 amount") as err:  # the operator's language (zh-CN default)
        validate_frame("orders", df, suites)
    assert re.search("required column.*amount", err.value.localized("en"))


def test_empty_full_extract_is_rejected_but_empty_delta_is_fine(suites):
    empty = orders().iloc[0:0]
    with pytest.raises(BatchRejected, match="empty_extract"):
        validate_frame("orders", empty, suites, full_load=True)
    assert validate_frame("orders", empty, suites, full_load=False).n_read == 0


def test_bad_share_threshold(suites):
    df = pd.concat([orders()] * 10, ignore_index=True)
    df["order_id"] = [f"O{i}" for i in range(len(df))]
    df.loc[0, "amount"] = "-3"
    o = validate_frame("orders", df, suites, known_refs={"customer_id": {"C1", "C2"}})
    enforce_threshold(o, 0.05)  # 1 of 30 = 3.3%: fine
    df.loc[1:2, "amount"] = "-3"
    o = validate_frame("orders", df, suites, known_refs={"customer_id": {"C1", "C2"}})
    with pytest.raises(BatchRejected, match=r"30 行中有 3 行（10.0%）未通过校验，超过 5% 的上限.*amount_negative：3") as err:
        enforce_threshold(o, 0.05)
    assert re.search(r"3 of 30 rows \(10.0%\).*", err.value.localized("en"))


def test_suite_that_does_not_parse_is_an_error(tmp_path):
    d = tmp_path / "exp"
    shutil.copytree(EXPECTATIONS_DIR, d)
    (d / "orders.json").write_text("{ not json")
    with pytest.raises(SuiteError, match="orders.json does not load"):
        load_suites(d)


def test_suite_with_unknown_expectation_is_an_error(tmp_path):
    d = tmp_path / "exp"
    shutil.copytree(EXPECTATIONS_DIR, d)
    data = json.loads((d / "feedback.json").read_text())
    data["expectations"].append({"type": "expect_values_to_be_nice", "kwargs": {}, "meta": {"rule": "nice"}})
    (d / "feedback.json").write_text(json.dumps(data))
    with pytest.raises(SuiteError, match="feedback.json does not load.*expect_values_to_be_nice"):
        load_suites(d)


def test_missing_suite_file_is_an_error(tmp_path):
    d = tmp_path / "exp"
    shutil.copytree(EXPECTATIONS_DIR, d)
    (d / "customers.json").unlink()
    with pytest.raises(SuiteError, match="customers.json is missing"):
        load_suites(d)


def test_rule_without_name_is_an_error(tmp_path):
    d = tmp_path / "exp"
    shutil.copytree(EXPECTATIONS_DIR, d)
    data = json.loads((d / "events.json").read_text())
    data["expectations"].append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "kind"}})
    (d / "events.json").write_text(json.dumps(data))
    with pytest.raises(SuiteError, match="has no meta.rule"):
        load_suites(d)
