"""Numbers as an operator writes and reads them: an amount with Excel's thousands separators
(1,200) is read; an amount that is not a number says to write a plain one; the nightly
rejection counts rows with thousands separators in zh-CN and en."""
from __future__ import annotations

import pandas as pd
import pytest

from tasks.validate import BatchRejected, ValidationOutcome, enforce_threshold, load_suites, validate_frame


def test_amounts_with_thousands_separators_are_read_and_a_bad_one_says_what_to_write():
    df = pd.DataFrame({
        "order_id": ["O1", "O2", "O3", "O4"],
        "customer_id": ["C1"] * 4,
        "paid_at": ["2026-01-05T10:00:00"] * 4,
        "amount": ["1,200", "12,345.50", "1,20", "12.000,50"],
        "status": ["paid"] * 4,
    })
    for lang, hint in (("zh-CN", "请写成普通数字"), ("en", "write a plain number")):
        o = validate_frame("orders", df, load_suites(), known_refs={"customer_id": {"C1"}}, language=lang)
        assert o.good["amount"].tolist() == [1200.0, 12345.5]
        assert dict(zip(o.bad["source_id"], o.bad["rule"])) == {"O3": "amount_unparseable", "O4": "amount_unparseable"}
        assert all(hint in r for r in o.bad["reason"]), o.bad["reason"].tolist()


def test_the_rejection_counts_rows_with_thousands_separators():
    out = ValidationOutcome("orders", pd.DataFrame(), pd.DataFrame({"record_hash": [str(i) for i in range(3000)]}), 29961,
                            rule_counts={"amount_negative": 3000})
    with pytest.raises(BatchRejected) as err:
        enforce_threshold(out, 0.05)
    assert err.value.localized("zh-CN").startswith("orders：29,961 行中有 3,000 行（10.0%）未通过校验")
    assert "amount_negative：3,000" in err.value.localized("zh-CN")
    assert err.value.localized("en").startswith("orders: 3,000 of 29,961 rows (10.0%) failed validation")
