"""`userops import`: CSV and Excel, canonical and zh-CN headers, dirty rows quarantined."""
from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tasks.extract import FileImportError
from tasks.ingest import import_file
from userops.cli import app
from userops.db import read_frame

runner = CliRunner()

CUSTOMERS_CSV = """customer_id,name,phone,email,registered_at,city,marketing_consent
C1,张三,13800138000,zhang@example.com,2025-01-02 10:00:00,上海,true
C2,李四,13900139000,li@example.com,2025-02-03,北京,是
C3,王五,12,wang@example.com,2025-03-04,杭州,false
C4,赵六,13700137000,not-an-email,2025-04-05,深圳,1
,无名,13600136000,x@example.com,2025-05-06,成都,0
C6,钱七,13500135000,qian@example.com,2099-01-01,南京,yes
"""

# zh-CN headers as an operator's export would have them
ORDERS_ZH_CSV = """订单号,客户ID,下单时间,金额,订单状态
O1,C1,2025-06-01 12:00:00,199.00,已支付
O2,C1,2025-07-01 12:00:00,-5,已支付
O3,C2,2025-07-02 12:00:00,88.5,已退款
O4,C9,2025-07-03 12:00:00,10,paid
O5,C2,2025-07-04 12:00:00,10,shipped
O1,C1,2025-06-01 12:00:00,199.00,已支付
"""


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def quarantine(engine, table):
    return read_frame(engine, "SELECT source_id, rule FROM quarantine WHERE source_table = :t ORDER BY source_id, rule", {"t": table})


def test_import_customers_rules(warehouse, tmp_path):
    res = import_file("customers", write(tmp_path, "c.csv", CUSTOMERS_CSV))
    q = quarantine(warehouse, "customers")
    got = set(zip(q["source_id"].fillna("<none>"), q["rule"]))
    assert got == {
        ("C3", "phone_malformed"),
        ("C4", "email_malformed"),
        ("<none>", "id_missing"),
        ("C6", "registered_at_out_of_range"),
    }
    assert (res.read, res.loaded, res.quarantined) == (6, 2, 4)
    loaded = read_frame(warehouse, "SELECT customer_id, marketing_consent, registered_at FROM customers ORDER BY customer_id", parse_dates=["registered_at"])
    assert loaded["customer_id"].tolist() == ["C1", "C2"]
    assert [bool(x) for x in loaded["marketing_consent"]] == [True, True]  # "true" and "是"
    # naive times in a file are shop-local (Asia/Shanghai): 10:00 +08:00 = 02:00 UTC
    assert loaded["registered_at"].iloc[0] == pd.Timestamp("2025-01-02 02:00:00")


def test_import_orders_zh_headers_and_values(warehouse, tmp_path):
    import_file("customers", write(tmp_path, "c.csv", CUSTOMERS_CSV))
    res = import_file("orders", write(tmp_path, "o.csv", ORDERS_ZH_CSV))
    q = quarantine(warehouse, "orders")
    got = set(zip(q["source_id"], q["rule"]))
    assert got == {
        ("O2", "amount_negative"),
        ("O4", "customer_unknown"),
        ("O5", "status_unknown"),
    }
    orders = read_frame(warehouse, "SELECT order_id, status, CAST(amount AS FLOAT) AS amount FROM orders ORDER BY order_id")
    assert orders["order_id"].tolist() == ["O1", "O3"]  # O1's second line is a copy of the first: one row
    assert orders["status"].tolist() == ["paid", "refunded"]  # 已支付, 已退款
    assert (res.read, res.loaded, res.quarantined, res.superseded) == (6, 2, 3, 1)


def test_reimport_is_idempotent(warehouse, tmp_path):
    p = write(tmp_path, "c.csv", CUSTOMERS_CSV)
    import_file("customers", p)
    snap = lambda: (
        read_frame(warehouse, "SELECT * FROM customers ORDER BY customer_id").to_dict("records"),
        read_frame(warehouse, "SELECT source_table, source_id, rule, record FROM quarantine ORDER BY id").to_dict("records"),
    )
    before = snap()
    import_file("customers", p)
    assert snap() == before


def test_excel_with_column_mapping(warehouse, tmp_path):
    df = pd.DataFrame({"会员号": ["C1", "C2"], "手机号": ["13800138000", "13900139000"], "注册时间": ["2025-01-01", "2025-01-02"]})
    p = tmp_path / "members.xlsx"
    df.to_excel(p, index=False)
    res = import_file("customers", p, mapping={"会员号": "customer_id"})
    assert (res.loaded, res.quarantined) == (2, 0)


def test_missing_required_column_names_it(warehouse, tmp_path):
    p = write(tmp_path, "o.csv", "order_id,customer_id,paid_at,status\nO1,C1,2025-01-01,paid\n")
    with pytest.raises(FileImportError, match=r"required column\(s\) missing: amount"):
        import_file("orders", p)


def test_cli_import_exit_codes_and_messages(warehouse, tmp_path, monkeypatch):
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    ok = runner.invoke(app, ["import", "customers", str(write(tmp_path, "c.csv", CUSTOMERS_CSV))])
    assert ok.exit_code == 0, ok.output
    assert "6" in ok.output and "2" in ok.output and "4" in ok.output
    bad = runner.invoke(app, ["import", "orders", str(write(tmp_path, "o.csv", "order_id,amount\nO1,3\n"))])
    assert bad.exit_code == 1
    assert "customer_id" in bad.output and "missing" in bad.output
    gone = runner.invoke(app, ["import", "orders", str(tmp_path / "nope.csv")])
    assert gone.exit_code == 1 and "no such file" in gone.output
    garbage = tmp_path / "g.xlsx"
    garbage.write_bytes(b"this is not a workbook")
    res = runner.invoke(app, ["import", "customers", str(garbage)])
    assert res.exit_code == 1 and "cannot read" in res.output and res.output.startswith("error: ")
    res = runner.invoke(app, ["import", "oders", str(garbage)])
    assert res.exit_code == 2 and "unknown table 'oders': choose one of customers, orders, order-items" in res.output
    res = runner.invoke(app, ["import", "customers", str(garbage), "--map", "会员号"])
    assert res.exit_code == 2 and "--map '会员号': write it as SOURCE_HEADER=canonical_column" in res.output
    reset_settings()


def test_cli_import_errors_in_chinese_by_default(warehouse, tmp_path):
    bad = runner.invoke(app, ["import", "orders", str(write(tmp_path, "o.csv", "order_id,amount\nO1,3\n"))])
    assert bad.exit_code == 1 and bad.output.startswith("错误：") and "customer_id" in bad.output
    # the file's own problem in zh-CN too, with the --map syntax that fixes it
    assert "缺少必需列 customer_id，paid_at，status" in bad.output and "--map '会员号=customer_id'" in bad.output
    gone = runner.invoke(app, ["import", "orders", str(tmp_path / "nope.csv")])
    assert gone.exit_code == 1 and "文件不存在" in gone.output
    assert not bad.output.startswith("error")
    res = runner.invoke(app, ["import", "oders", str(tmp_path / "o.csv")])
    assert res.exit_code == 2 and "没有表 'oders'" in res.output and "order-items" in res.output and "unknown table" not in res.output
    res = runner.invoke(app, ["import", "customers", str(tmp_path / "o.csv"), "--map", "会员号"])
    assert res.exit_code == 2 and "请写成 SOURCE_HEADER=canonical_column" in res.output and "write it as" not in res.output


def test_cli_quarantine_list_and_show_mask_personal_data(warehouse, tmp_path):
    runner.invoke(app, ["import", "customers", str(write(tmp_path, "c.csv", CUSTOMERS_CSV))])
    out = runner.invoke(app, ["quarantine", "list"]).output
    assert "phone_malformed" in out and "email_malformed" in out
    qid = read_frame(warehouse, "SELECT id FROM quarantine WHERE rule = 'email_malformed'")["id"].iloc[0]
    show = runner.invoke(app, ["quarantine", "show", str(int(qid))])
    assert show.exit_code == 0
    assert "email_malformed" in show.output
    assert "13700137000" not in show.output  # phone masked
    assert "赵六" not in show.output  # name masked
    assert runner.invoke(app, ["quarantine", "show", "999999"]).exit_code == 1

    # a phone number or an email inside free text (a feedback's words) is masked too
    fb = "feedback_id,kind,created_at,customer_id,text\nF1,grumble,2025-06-01 10:00:00,C1,请联系我 13512345678 或 chen.wei@example.com\n"
    runner.invoke(app, ["import", "feedback", str(write(tmp_path, "f.csv", fb))])
    fid = read_frame(warehouse, "SELECT id FROM quarantine WHERE source_table = 'feedback'")["id"].iloc[0]
    show = runner.invoke(app, ["quarantine", "show", str(int(fid))]).output
    assert "请联系我" in show and "13512345678" not in show and "chen.wei@example.com" not in show

    # tables as the import command spells them; an unknown one is named, not "empty"
    assert "F1" in runner.invoke(app, ["quarantine", "list", "--table", "feedback"]).output
    assert runner.invoke(app, ["quarantine", "list", "--table", "order-items"]).exit_code == 0
    assert runner.invoke(app, ["quarantine", "list", "--table", "order_items"]).exit_code == 0  # as stored
    bad = runner.invoke(app, ["quarantine", "list", "--table", "oders"])
    assert bad.exit_code == 2 and "没有表 'oders'：请从 customers，orders，order-items，feedback，events 中选择" in bad.output


def _orders_csv(n: int, extra: str = "") -> str:
    rows = [f"O{i:05d},C{1 + i % 2},2025-06-{1 + i % 28:02d} 12:00:00,{10 + i % 7}.50,paid" for i in range(n)]
    return "order_id,customer_id,paid_at,amount,status\n" + "\n".join(rows) + "\n" + extra


def _index_names(engine, table):
    return {ix["name"] for ix in sa.inspect(engine).get_indexes(table)}


@pytest.mark.parametrize("validate_in", ["thread"])  # the process path: test_validation_process_*
def test_multi_chunk_import_quarantines_keys_repeated_across_chunks(warehouse, tmp_path, validate_in):
    """A big file is read, validated and loaded chunk by chunk (reading overlaps loading);
    the same key in a later chunk is a duplicate (first one wins), every other row loads,
    and the indexes dropped for the initial load are back."""
    import_file("customers", write(tmp_path, "c.csv", CUSTOMERS_CSV), engine=warehouse)
    before = _index_names(warehouse, "orders")
    # 600 orders in chunks of 50 rows; O00003 again at the very end with another amount
    text = _orders_csv(600, "O00003,C2,2025-07-01 12:00:00,999.00,paid\n")
    timings: dict = {}
    res = import_file("orders", write(tmp_path, "o.csv", text), engine=warehouse, chunksize=50, timings=timings, validate_in=validate_in)
    assert (res.read, res.loaded, res.quarantined) == (601, 600, 1)
    q = quarantine(warehouse, "orders")
    assert q.to_dict("records") == [{"source_id": "O00003", "rule": "duplicate_order_id"}]
    got = read_frame(warehouse, "SELECT order_id, CAST(amount AS FLOAT) AS amount FROM orders WHERE order_id = 'O00003'")
    assert got["amount"].tolist() == [13.5]  # the first occurrence, not the repeat
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM orders")["n"].iloc[0] == 600
    assert _index_names(warehouse, "orders") == before
    assert timings["read_s"] > 0 and timings["validate_s"] > 0 and timings["load_s"] > 0
    # a second import of the same file into the now non-empty table changes nothing
    again = import_file("orders", write(tmp_path, "o.csv", text), engine=warehouse, chunksize=50, validate_in=validate_in)
    assert (again.read, again.loaded, again.quarantined) == (601, 600, 1)
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM orders")["n"].iloc[0] == 600


@pytest.mark.parametrize("validate_in", ["thread"])  # the process path: test_validation_process_*
def test_file_unreadable_in_a_later_chunk_loads_nothing(warehouse, tmp_path, validate_in):
    """Chunks before the broken one were already validated and written in the open
    transaction: the import fails naming the file and the row, and nothing is kept."""
    import_file("customers", write(tmp_path, "c.csv", CUSTOMERS_CSV), engine=warehouse)
    before = _index_names(warehouse, "orders")
    # a quote left open on line 602 and closed on the next: one record over two lines with the
    # wrong field count (a quote never closed at all fails before any chunk: test_unclosed_quote_*)
    text = _orders_csv(600, 'O99999,C1,"2025-06-01 12:00:00,1.00,paid\nO99998",C1,2025-06-01,1,paid\n')
    with pytest.raises(FileImportError, match=r"o\.csv: line 602 has 7 fields where the header has 5.*unclosed quote"):
        import_file("orders", write(tmp_path, "o.csv", text), engine=warehouse, chunksize=50, validate_in=validate_in)
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM orders")["n"].iloc[0] == 0
    assert _index_names(warehouse, "orders") == before


def test_validation_process_same_result_and_errors_come_back(sqlite_warehouse, tmp_path):
    """A big CSV is validated in a child process: a file broken in a later chunk fails with
    the child's error and keeps nothing; a good one loads exactly as the thread path does.
    (SQLite only: the loader, the part that differs by backend, is the thread path's.)"""
    warehouse = sqlite_warehouse
    import_file("customers", write(tmp_path, "c.csv", CUSTOMERS_CSV), engine=warehouse)
    broken = _orders_csv(300, 'O99999,C1,"2025-06-01 12:00:00,1.00,paid\nO99998",C1,2025-06-01,1,paid\n')
    with pytest.raises(FileImportError, match=r"line 302 has 7 fields where the header has 5.*unclosed quote"):
        import_file("orders", write(tmp_path, "b.csv", broken), engine=warehouse, chunksize=50, validate_in="process")
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM orders")["n"].iloc[0] == 0
    text = _orders_csv(300, "O00003,C2,2025-07-01 12:00:00,999.00,paid\n")
    timings: dict = {}
    res = import_file("orders", write(tmp_path, "o.csv", text), engine=warehouse, chunksize=50, timings=timings, validate_in="process")
    assert (res.read, res.loaded, res.quarantined) == (301, 300, 1)
    assert timings["validate_s"] > 0  # measured in the child, reported here
    assert quarantine(warehouse, "orders").to_dict("records") == [{"source_id": "O00003", "rule": "duplicate_order_id"}]
    got = read_frame(warehouse, "SELECT order_id, CAST(amount AS FLOAT) AS amount FROM orders ORDER BY order_id")
    assert len(got) == 300 and got.loc[got["order_id"] == "O00003", "amount"].tolist() == [13.5]


def test_cli_unreadable_file_says_what_is_wrong_and_what_to_do(warehouse, tmp_path, monkeypatch):
    """A file the reader cannot open is refused with the cause and the fix in the operator's
    words; the reader's own (English) text follows only as a detail."""
    import zipfile

    from userops.settings import reset_settings

    not_xlsx = write(tmp_path, "orders.xlsx", "order_id,customer_id\nO1,C1\n")  # a CSV renamed .xlsx
    with zipfile.ZipFile(tmp_path / "empty.xlsx", "w") as z:  # a zip, but no workbook inside
        z.writestr("readme.txt", "x")
    utf16 = tmp_path / "o.csv"
    utf16.write_bytes("order_id,customer_id\n".encode() + "张三".encode("utf-16"))
    res = runner.invoke(app, ["import", "orders", str(not_xlsx)])
    assert res.exit_code == 1 and "不是有效的 .xlsx 工作簿" in res.output and "另存为 .xlsx，或导出为 CSV" in res.output
    assert res.output.index("另存为") < res.output.index("File is not a zip file")  # the detail comes after the fix
    res = runner.invoke(app, ["import", "orders", str(tmp_path / "empty.xlsx")])
    assert res.exit_code == 1 and "不是有效的 .xlsx 工作簿" in res.output
    res = runner.invoke(app, ["import", "orders", str(utf16)])
    assert res.exit_code == 1 and "文字编码无法识别" in res.output and "UTF-8 或 GB18030" in res.output
    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    res = runner.invoke(app, ["import", "orders", str(not_xlsx)])
    assert res.exit_code == 1 and "not a valid .xlsx workbook" in res.output and "export it as CSV" in res.output
    assert "工作簿" not in res.output
    reset_settings()
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM orders")["n"].iloc[0] == 0


@pytest.mark.parametrize("chunksize", [None, 2])
def test_unclosed_quote_in_the_last_column_fails_the_file(warehouse, tmp_path, chunksize):
    """A quote opened in the last column and never closed: the reader would read every later
    row into that field with the right field count, one row quarantined and the rest lost.
    The file fails naming the line, and nothing is kept."""
    text = ("order_id,customer_id,paid_at,amount,status\nR1,C1,2026-11-01,10,paid\nR2,C1,2026-11-02,10,\"paid\n"
            "R3,C1,2026-11-03,10,paid\nR4,C1,2026-11-03,10,paid\n")
    import_file("customers", write(tmp_path, "c.csv", CUSTOMERS_CSV), engine=warehouse)
    with pytest.raises(FileImportError, match=r"u\.csv: the quote opened on line 3 is never closed") as err:
        import_file("orders", write(tmp_path, "u.csv", text), engine=warehouse, chunksize=chunksize)
    assert "第 3 行开始的引号" in err.value.localized("zh-CN") and "未入库" in err.value.localized("zh-CN")
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM orders")["n"].iloc[0] == 0
    assert read_frame(warehouse, "SELECT COUNT(*) AS n FROM quarantine WHERE source_table = 'orders'")["n"].iloc[0] == 0
    # a quoted value holding a line break is a good row
    ok = "order_id,customer_id,paid_at,amount,status\nR1,C1,2026-11-01,10,\"paid\"\nR2,C1,\"2026-11-02\",10,paid\n"
    res = import_file("orders", write(tmp_path, "ok.csv", ok), engine=warehouse, chunksize=chunksize)
    assert (res.read, res.loaded) == (2, 2)


def test_cli_import_line_adds_up_with_superseded_versions_and_a_refused_write_is_one_line(warehouse, tmp_path, monkeypatch):
    """read = loaded + quarantined + superseded: the import line names the older versions
    (and copies) it set aside; a write the warehouse refuses is one line, no traceback."""
    runner.invoke(app, ["import", "customers", str(write(tmp_path, "c.csv", CUSTOMERS_CSV))])
    text = _orders_csv(3) + "O00001,C2,2025-06-02 12:00:00,99.50,paid\nO00002,C1,2025-06-03 12:00:00,12.50,paid\n"
    res = runner.invoke(app, ["import", "orders", str(write(tmp_path, "o.csv", text))])
    assert res.exit_code == 0, res.output
    # O00002 again as it was: a copy, set aside; O00001 again with other values and no stamp to
    # tell which is newer: a conflict, both quarantined
    assert "读取 5 行，入库 2 行，隔离 2 行，另有 1 行是同一记录的旧版本或重复行，以较新的版本为准" in res.output, res.output

    import tasks.ingest as ingest
    from userops.db import WarehouseWriteError

    def refused(*a, **k):
        raise WarehouseWriteError("写入数据仓库的 orders 表失败：value too long (SQLSTATE 22001；不显示行中的值)")

    monkeypatch.setattr(ingest, "import_file", refused)
    res = runner.invoke(app, ["import", "orders", str(write(tmp_path, "o2.csv", text))])
    assert res.exit_code == 1 and res.output.startswith("错误：") and "写入数据仓库的 orders 表失败" in res.output
    assert "Traceback" not in res.output and res.exception is None or isinstance(res.exception, SystemExit)


def test_quarantine_reasons_are_worded_in_the_readers_language(warehouse, tmp_path, monkeypatch):
    """A reason is stored in the language of the run that wrote it; `quarantine show` and
    `list` word it again in the reader's where the rule alone says it, and keep a reason with
    figures of its own (a malformed row's line) as stored."""
    from userops.settings import reset_settings

    runner.invoke(app, ["import", "customers", str(write(tmp_path, "c.csv", CUSTOMERS_CSV))])
    text = ("order_id,customer_id,paid_at,amount,status\nO1,C1,2025-06-01,abc,paid\nO2,C1,2025-06-01,10,lost\n"
            "O3,C404,2025-06-01,10,paid\nO4,C1,2025-06-01,10,paid,extra\nO5,C1,2025-06-01,10,paid\n")
    assert runner.invoke(app, ["import", "orders", str(write(tmp_path, "o.csv", text))]).exit_code == 0  # written in zh-CN
    ids = dict(read_frame(warehouse, "SELECT rule, id FROM quarantine WHERE source_table = 'orders'").values.tolist())
    assert {"amount_unparseable", "customer_unknown", "malformed_row"} <= set(ids), ids
    monkeypatch.setenv("USEROPS_LANGUAGE", "en")
    reset_settings()
    try:
        shown = {rule: runner.invoke(app, ["quarantine", "show", str(int(i))]).output for rule, i in ids.items()}
        listed = runner.invoke(app, ["quarantine", "list", "--table", "orders"]).output
    finally:
        reset_settings()
    assert "reason: the customer is unknown (not in the CRM)" in shown["customer_unknown"], shown["customer_unknown"]
    assert "reason: amount" in shown["amount_unparseable"] and "无法解析" not in shown["amount_unparseable"]
    assert "客户不存在" not in listed and "the customer is unknown" in listed, listed
    status_rule = next(r for r in ids if r.startswith("status"))
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in shown[status_rule].split("reason:")[1].splitlines()[0]), shown[status_rule]
    assert "第 5 行有 6 个字段" in shown["malformed_row"]  # its own figures: as stored
