"""The operator audit of `userops import`: a row with the wrong number of fields is
quarantined with its line number (no personal data in any message), a day/month date that
reads both ways is quarantined instead of guessed, source and batch errors speak the
operator's language, and a file of which nothing loaded exits 1."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tasks.ingest import import_file
from userops.cli import app
from userops.db import read_frame

runner = CliRunner()

PHONE, EMAIL = "13987654321", "ls@example.com"
# five columns; line 3 has six fields (an address split by a stray comma)
CUSTOMERS_EXTRA_FIELD = f"""customer_id,name,phone,email,city
H001,张三,13812345678,zs@example.com,上海
H002,李四,{PHONE},{EMAIL},北京,朝阳
H003,王五,13700000000,ww@example.com,广州
"""


def write(tmp_path, name, text, encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


@pytest.fixture
def english(monkeypatch):
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    yield
    reset_settings()


# ----------------------------------------------------------------------------- 1. malformed rows
def test_row_with_an_extra_field_is_quarantined_with_its_line_and_no_personal_data_is_printed(warehouse, tmp_path):
    p = write(tmp_path, "f.csv", CUSTOMERS_EXTRA_FIELD)
    res = runner.invoke(app, ["import", "customers", str(p)])
    assert res.exit_code == 0, res.output
    assert PHONE not in res.output and EMAIL not in res.output and "李四" not in res.output
    assert "读取 3 行，入库 2 行，隔离 1 行" in res.output
    assert read_frame(warehouse, "SELECT customer_id FROM customers ORDER BY customer_id")["customer_id"].tolist() == ["H001", "H003"]
    q = read_frame(warehouse, "SELECT id, source_id, rule, reason, record FROM quarantine WHERE source_table = 'customers'")
    assert q[["source_id", "rule"]].values.tolist() == [["H002", "malformed_row"]]
    assert q["reason"].iloc[0] == "第 3 行有 6 个字段，表头有 5 个"  # the line and the rule, no content
    # kept as received for the operator: every field, the extra one too
    assert json.loads(q["record"].iloc[0]) == {"customer_id": "H002", "name": "李四", "phone": PHONE, "email": EMAIL,
                                               "city": "北京", "_extra_1": "朝阳"}
    show = runner.invoke(app, ["quarantine", "show", str(int(q["id"].iloc[0]))])
    assert show.exit_code == 0 and "malformed_row" in show.output and "第 3 行" in show.output
    assert PHONE not in show.output and EMAIL not in show.output and "李四" not in show.output  # masked when shown
    listed = runner.invoke(app, ["quarantine", "list"]).output
    assert PHONE not in listed and EMAIL not in listed


def test_row_with_too_few_fields_is_quarantined_too_and_a_second_import_keeps_it_once(warehouse, tmp_path, english):
    text = "customer_id,name,phone,email,city\nH001,张三,13812345678,zs@example.com,上海\nH009,赵九\n"
    for _ in range(2):
        res = import_file("customers", write(tmp_path, "f.csv", text), engine=warehouse)
        assert (res.read, res.loaded, res.quarantined) == (2, 1, 1)
    q = read_frame(warehouse, "SELECT source_id, rule, reason FROM quarantine")
    assert q.values.tolist() == [["H009", "malformed_row", "line 3 has 2 fields where the header has 5"]]


def test_unclosed_quote_fails_the_file_naming_the_line_without_its_content(warehouse, tmp_path):
    text = f'customer_id,name,phone,email,city\nH001,张三,13812345678,zs@example.com,上海\nH002,"李四,{PHONE},{EMAIL},北京\nH003,王五,13700000000,ww@example.com,广州\n'
    res = runner.invoke(app, ["import", "customers", str(write(tmp_path, "q.csv", text))])
    assert res.exit_code == 1
    assert "第 3 行开始的引号（\"）未闭合" in res.output
    assert PHONE not in res.output and EMAIL not in res.output and "李四" not in res.output
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM customers")["n"].iloc[0] == 0


def test_excel_row_with_cells_beyond_the_header_is_quarantined_with_its_sheet_row(warehouse, tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["客户ID", "姓名", "手机号", "邮箱", "城市"])
    ws.append(["H001", "张三", "13812345678", "zs@example.com", "上海"])
    ws.append(["H002", "李四", PHONE, EMAIL, "北京", "朝阳"])  # a cell right of the header
    ws.append(["H003", "王五"])  # fewer cells: blanks, a good row
    wb.save(tmp_path / "c.xlsx")
    res = runner.invoke(app, ["import", "customers", str(tmp_path / "c.xlsx")])
    assert res.exit_code == 0 and "读取 3 行，入库 2 行，隔离 1 行" in res.output, res.output
    q = read_frame(warehouse, "SELECT source_id, rule, reason, record FROM quarantine")
    assert q[["source_id", "rule", "reason"]].values.tolist() == [["H002", "malformed_row", "第 3 行有 6 个字段，表头有 5 个"]]
    assert json.loads(q["record"].iloc[0])["_extra_1"] == "朝阳" and json.loads(q["record"].iloc[0])["phone"] == PHONE


def test_reader_errors_are_cut_before_the_record_and_masked():
    from tasks.extract import _read_error

    arrow = f"CSV parse error: Expected 5 columns, got 6: H002,李四,{PHONE},{EMAIL},…"
    assert _read_error(ValueError(arrow)) == "CSV parse error: Expected 5 columns, got 6"
    # any other reader text quoting a value: phone and email masked
    other = _read_error(ValueError(f"bad value {PHONE} near {EMAIL}"))
    assert PHONE not in other and EMAIL not in other


def test_undecodable_file_error_has_no_record_content(warehouse, tmp_path):
    # UTF-8 start, then bytes that are neither UTF-8 nor GB18030 text further down
    head = "customer_id,name,phone,email,city\n" + "".join(f"H{i},张三,138{i:08d},z{i}@example.com,上海\n" for i in range(300))
    p = tmp_path / "e.csv"
    p.write_bytes(head.encode() + f"H999,李四,{PHONE},{EMAIL},北京".encode() + b"\xff\xfe\x80\n")
    res = runner.invoke(app, ["import", "customers", str(p)])
    assert PHONE not in res.output and EMAIL not in res.output and "李四" not in res.output


# ----------------------------------------------------------------------------- 2. ambiguous dates
ORDERS_HEAD = "订单号,客户ID,支付时间,金额,订单状态\n"


def _customers(warehouse, tmp_path):
    import_file("customers", write(tmp_path, "c.csv", "customer_id\nC1\n"), engine=warehouse)


def test_day_month_date_that_reads_both_ways_is_quarantined_not_guessed(warehouse, tmp_path):
    _customers(warehouse, tmp_path)
    text = ORDERS_HEAD + ("O1,C1,01/11/2025,10,已支付\n"     # 1 November or January 11? -> quarantined
                          "O2,C1,13/01/2025,10,已支付\n"     # only day/month: 13 January
                          "O3,C1,2025-11-01 10:00:00,10,已支付\n"  # ISO
                          "O4,C1,2025/11/02,10,已支付\n"     # year first: year, month, day
                          "O5,C1,2025-11-03T10:00:00+08:00,10,已支付\n")
    res = runner.invoke(app, ["import", "orders", str(write(tmp_path, "o.csv", text))])
    assert res.exit_code == 0, res.output
    q = read_frame(warehouse, "SELECT source_id, rule, reason FROM quarantine WHERE source_table = 'orders'")
    assert q[["source_id", "rule"]].values.tolist() == [["O1", "paid_at_ambiguous_date"]]
    assert "paid_at" in q["reason"].iloc[0] and "--date-order" in q["reason"].iloc[0] and "有歧义" in q["reason"].iloc[0]
    got = read_frame(warehouse, "SELECT order_id, paid_at FROM orders ORDER BY order_id", parse_dates=["paid_at"])
    # shop-local times (Asia/Shanghai) stored as UTC
    assert dict(zip(got["order_id"], got["paid_at"].dt.strftime("%Y-%m-%d %H:%M"))) == {
        "O2": "2025-01-12 16:00", "O3": "2025-11-01 02:00", "O4": "2025-11-01 16:00", "O5": "2025-11-03 02:00"}


@pytest.mark.parametrize("order,expected", [("dmy", "2025-11-01"), ("mdy", "2025-01-11")])
def test_date_order_says_how_to_read_them(warehouse, tmp_path, order, expected):
    _customers(warehouse, tmp_path)
    text = ORDERS_HEAD + "O1,C1,01/11/2025,10,已支付\nO2,C1,2025-11-05,10,已支付\n"
    res = runner.invoke(app, ["import", "orders", str(write(tmp_path, "o.csv", text)), "--date-order", order, "--timezone", "UTC"])
    assert res.exit_code == 0, res.output
    got = read_frame(warehouse, "SELECT order_id, paid_at FROM orders ORDER BY order_id", parse_dates=["paid_at"])
    assert got["paid_at"].dt.strftime("%Y-%m-%d").tolist() == [expected, "2025-11-05"]
    assert runner.invoke(app, ["import", "orders", str(tmp_path / "o.csv"), "--date-order", "dym"]).exit_code == 2


def test_importing_again_with_a_date_order_settles_the_quarantined_row(warehouse, tmp_path):
    _customers(warehouse, tmp_path)
    p = write(tmp_path, "o.csv", ORDERS_HEAD + "O1,C1,01/11/2025,10,已支付\nO2,C1,2025-11-05,10,已支付\n")
    assert runner.invoke(app, ["import", "orders", str(p)]).exit_code == 0
    open_rows = "SELECT source_id, rule FROM quarantine WHERE source_table = 'orders' AND resolved_at IS NULL"
    assert read_frame(warehouse, open_rows).values.tolist() == [["O1", "paid_at_ambiguous_date"]]
    assert runner.invoke(app, ["import", "orders", str(p), "--date-order", "dmy"]).exit_code == 0
    assert read_frame(warehouse, open_rows).empty  # the order is loaded now: no longer the operator's to fix
    assert "paid_at_ambiguous_date" not in runner.invoke(app, ["quarantine", "list"]).output


def test_iso_timestamps_parse_as_before():
    from tasks.validate import _parse_ts

    s = pd.Series(["2026-11-20T10:00:00+08:00", "2026-11-20T02:00:00Z", "2026-11-20 10:00:00", None], dtype="string")
    amb: list = []
    got = _parse_ts(s, "Asia/Shanghai", None, amb)
    assert got.dt.strftime("%Y-%m-%d %H:%M").tolist()[:3] == ["2026-11-20 02:00"] * 3 and pd.isna(got.iloc[3]) and amb == []
    # naive times already typed (a driver's datetime column) are in assume_tz too, as naive strings are
    typed = pd.Series(pd.to_datetime(["2026-11-20 10:00:00", None]))
    assert _parse_ts(typed, "Asia/Shanghai").dt.strftime("%Y-%m-%d %H:%M").tolist()[0] == "2026-11-20 02:00"
    assert _parse_ts(typed, "UTC").dt.strftime("%Y-%m-%d %H:%M").tolist()[0] == "2026-11-20 10:00"


# ----------------------------------------------------------------------------- 3. errors in the operator's language
def test_batch_rejected_and_source_errors_speak_chinese_by_default(warehouse, monkeypatch):
    from tasks.extract import SourceError
    from tasks.ingest import make_source
    from tasks.validate import ValidationOutcome, enforce_threshold
    from userops.settings import reset_settings

    out = ValidationOutcome("orders", pd.DataFrame(), pd.DataFrame(), 3106, rule_counts={"amount_negative": 200, "customer_unknown": 100})
    out.bad = pd.DataFrame({"record_hash": [str(i) for i in range(300)]})
    with pytest.raises(Exception) as err:
        enforce_threshold(out, 0.05)
    msg = str(err.value)
    # counts with thousands separators in both languages
    assert msg.startswith("orders：3,106 行中有 300 行（9.7%）未通过校验，超过 5% 的上限") and "amount_negative：200，customer_unknown：100" in msg
    assert "failed validation" not in msg
    assert err.value.localized("en").startswith("orders: 300 of 3,106 rows (9.7%) failed validation, above the 5% limit")

    monkeypatch.delenv("USEROPS_CRM__URL", raising=False)
    reset_settings()
    with pytest.raises(SourceError) as err:
        make_source("customers")
    assert "没有配置 crm 数据源的地址：请设置 USEROPS_CRM__URL" in str(err.value) and "no URL configured" not in str(err.value)
    assert "no URL configured for the crm source" in err.value.localized("en")
    # an operator who ran the demo and then the served nightly: where to set it, and why the demo's sources are gone
    assert "worker 的环境变量或 userops.yaml" in str(err.value) and "只在 demo 运行期间存在" in str(err.value)


def test_source_error_is_english_when_the_operator_reads_english(english, monkeypatch):
    from tasks.extract import SourceError
    from tasks.ingest import make_source
    from userops.settings import reset_settings

    monkeypatch.delenv("USEROPS_ORDERS__URL", raising=False)
    reset_settings()
    with pytest.raises(SourceError, match="no URL configured for the orders source: set USEROPS_ORDERS__URL"):
        make_source("orders")


# ----------------------------------------------------------------------------- 4. nothing loaded
def test_file_of_which_every_row_was_quarantined_exits_1(warehouse, tmp_path):
    text = "customer_id,email\n,a@example.com\nC2,not-an-email\n"
    res = runner.invoke(app, ["import", "customers", str(write(tmp_path, "c.csv", text))])
    assert res.exit_code == 1
    assert "入库 0 行，隔离 2 行" in res.output and "没有一行入库" in res.output and "quarantine list --table customers" in res.output
    # some rows loaded: exit 0 as before
    ok = runner.invoke(app, ["import", "customers", str(write(tmp_path, "c2.csv", text + "C3,c3@example.com\n"))])
    assert ok.exit_code == 0, ok.output


def test_a_quoted_field_over_several_lines_does_not_shift_the_line_of_a_later_row(warehouse, tmp_path):
    """A quoted field holding line breaks (an address typed on two lines) and an empty line
    before the bad row: the reason names the line of the file the row starts on, not its
    record number."""
    from tasks.extract import record_lines

    text = ('customer_id,name,phone,email,city\n'
            'H001,张三,13812345678,zs@example.com,"上海\n浦东\n新区"\n'
            '\n'
            'H002,李四,13700000001,ls2@example.com,北京,朝阳\n'
            'H003,王五,13700000000,ww@example.com,广州\n')
    p = write(tmp_path, "f.csv", text)
    assert record_lines(p).tolist() == [1, 2, 6, 7]
    res = import_file("customers", p, engine=warehouse)
    assert (res.read, res.loaded, res.quarantined) == (3, 2, 1)
    q = read_frame(warehouse, "SELECT source_id, rule, reason FROM quarantine")
    assert q.values.tolist() == [["H002", "malformed_row", "第 6 行有 6 个字段，表头有 5 个"]]
