"""userops.privacy.scrub_text masks phone numbers as people write them (separators, +86 /
0086 prefixes, landlines with area codes) and leaves the numbers operators write alone."""
from __future__ import annotations

import pytest

from userops.privacy import scrub_text

MASKED = [
    ("客户 138-1234-5678 投诉", "客户 138****78 投诉"),
    ("客户 138 1234 5678 投诉", "客户 138****78 投诉"),
    ("+86 138 1234 5678", "+86 138****78"),
    ("+86-138-1234-5678", "+86-138****78"),
    ("0086 13812345678", "0086 138****78"),
    ("8613812345678", "86138****78"),
    ("13812345678", "138****78"),
    ("顾客13812345678来电", "顾客138****78来电"),
    ("call 138\u00a01234\u00a05678.", "call 138****78."),
    ("14012345678", "140****78"),  # an unassigned range is still somebody's number
    ("(010) 6552 9988", "(010) ****88"),
    ("(010)65529988", "(010)****88"),
    ("010-65529988", "010-****88"),
    ("0755-8888 9999", "0755-****99"),
    ("021 655 2998", "021 ****98"),
    ("+86 10 6552 9988", "+86 10 ****88"),
    ("+86 (0)10 6552-9988", "+86 (0)10 ****88"),
    ("+1 415 555 0100", "+14****00"),
    ("+852 9123 4567", "+85****67"),
]


@pytest.mark.parametrize("text,expected", MASKED)
def test_phone_numbers_with_separators_are_masked(text, expected):
    out = scrub_text(text)
    assert out == expected
    digits = "".join(ch for ch in text if ch.isdigit())
    assert digits[-8:] not in "".join(ch for ch in out if ch.isdigit())


def test_clean_reason_masks_a_grouped_number():
    from tasks.crisis.incidents import clean_reason

    assert clean_reason("客户 138-1234-5678 投诉") == ("客户 138****78 投诉", True)
    assert clean_reason("客户 (010) 6552 9988 投诉") == ("客户 (010) ****88 投诉", True)


ORDINARY = [
    "日期 2026-12-07，时间 2026-12-07 17:38",
    "2026/12/07 20261207",
    "金额 1,234.50 元；本月 ¥12,345,678.00",
    "订单 O000012345 / O00012345678 / O01234567890",
    "订单 240512345678",
    "SKU0001 SKU-0042 C00000123 F00000123 E000000123",
    "事件 INC-20261120-1630-AB12",
    "共 12345 位顾客，比上周 +3 位，增长 +12.5%，+1,234",
    "Prefect 运行 0b6f3a2c-1d4e-4f5a-9b8c-123456789012",
    "时间戳 1700000000000，比例 13812345678.5",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_numbers_are_left_alone(text):
    assert scrub_text(text) == text


def test_emails_still_masked_next_to_phones():
    assert scrub_text("li.lei@example.com / 138-1234-5678") == "l***@example.com / 138****78"


def test_keep_leaves_a_public_contact_as_written():
    keep = ("客服电话 021-6552 9988",)
    text = "请拨 021-6552 9988（客服电话 021-6552 9988），客户 138-1234-5678，另一位 021-6552 9900"
    assert scrub_text(text, keep=keep) == "请拨 021-6552 9988（客服电话 021-6552 9988），客户 138****78，另一位 021-****00"
    assert scrub_text("13812345678", keep=("",)) == "138****78"
