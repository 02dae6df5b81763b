"""`userops model backtest --orders FILE` reads and checks the file by the import's rules:
no date guessed (--date-order as the import), a row the import would quarantine refuses
the file (exit 2) naming its line, order_id and rule in the operator's language, GB18030
and zh-CN headers accepted, an empty file and a cutoff after the data said plainly."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from models.backtest import read_orders_file
from tests.cli_inprocess import run_userops

HEADER = "order_id,customer_id,paid_at,amount,status\n"
# raw English a library would say about these rows; none may reach the operator
LIBRARY_TEXT = ("month must be in", "No columns to parse", "must have no negative", "Traceback", "unconverted data", "doesn't match format")


def _env(tmp_path, lang=None):
    (tmp_path / "none.yaml").write_text("{}\n")
    return {"USEROPS_CONFIG_FILE": str(tmp_path / "none.yaml"), "USEROPS_LANGUAGE": lang}


def _backtest(tmp_path, path, *extra, lang=None, cutoff="2024-06-01", horizon="90"):
    return run_userops(["model", "backtest", "--orders", str(path), "--cutoff", cutoff, "--horizon", horizon, *extra], _env(tmp_path, lang))


@pytest.fixture(scope="module")
def good_csv(synthetic, tmp_path_factory):
    """The synthetic orders as an operator's CSV (ISO times, canonical headers)."""
    orders, _ = synthetic
    path = tmp_path_factory.mktemp("orders") / "orders.csv"
    out = orders.copy()
    out["paid_at"] = out["paid_at"].dt.strftime("%Y-%m-%d %H:%M:%S")
    out.to_csv(path, index=False)
    return path


def test_ambiguous_date_refuses_the_file_and_date_order_reads_it(tmp_path, good_csv):
    """04/02/2025 10:48 is 4 February or April 2: never guessed, as the import. The command
    prints no figures; --date-order dmy / mdy reads it as the import would."""
    text = good_csv.read_text(encoding="utf-8").splitlines()
    lines = text[:1] + text[1:3] + [f"999999,1,04/02/2024 10:48,12.5,paid"] + text[3:]
    path = tmp_path / "ambiguous.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for lang, want in ((None, ["第 4 行（订单号 999999）", "paid_at 的日期有歧义", "paid_at_ambiguous_date", "--date-order"]),
                       ("en", ["line 4 (order_id 999999)", "paid_at is an ambiguous date", "paid_at_ambiguous_date", "--date-order"])):
        res = _backtest(tmp_path, path, "--json", lang=lang)
        assert res.returncode == 2, res.stdout + res.stderr
        assert res.stdout == ""  # no figures from a guessed date
        for w in want:
            assert w in res.stderr, (w, res.stderr)
    small = tmp_path / "small.csv"
    small.write_text(HEADER + "1,100,04/02/2025 10:48,12.5,paid\n2,101,2025-01-05 12:00,3,paid\n", encoding="utf-8")
    # times without an offset in the zone of the backtest's cutoff (UTC) unless told otherwise
    assert read_orders_file(small, date_order="dmy")["paid_at"].iloc[0] == pd.Timestamp("2025-02-04 10:48")
    assert read_orders_file(small, date_order="mdy")["paid_at"].iloc[0] == pd.Timestamp("2025-04-02 10:48")
    assert read_orders_file(small, date_order="mdy", assume_tz="Asia/Shanghai")["paid_at"].iloc[0] == pd.Timestamp("2025-04-02 02:48")
    res = _backtest(tmp_path, small, "--date-order", "sometimes", lang="en")
    assert res.returncode == 2 and "--date-order 'sometimes': use ymd, dmy or mdy" in res.stderr


BAD_ROWS = {
    # name: (row, rule, zh-CN reason, en reason)
    "bad_date": ("2,101,2025-13-45 10:00,3,paid", "paid_at_unparseable", "paid_at", "paid_at"),
    "unknown_status": ("2,101,2025-01-05,3,shipped", "status_unknown", "status 不在允许的取值中", "status is not one of paid, refunded, cancelled"),
    "blank_customer": ("2,,2025-01-05,3,paid", "customer_id_missing", "customer_id 为空", "customer_id is empty"),
    "negative_amount": ("2,101,2025-01-05,-3,paid", "amount_negative", "金额为负数", "amount is negative"),
    "duplicate_order_id": ("1,101,2025-01-05,3,paid", "duplicate_order_id", "order_id 在本批次中重复出现", "order_id appears more than once"),
    "blank_paid_at": ("2,101,,3,paid", "paid_at_missing", "paid_at 为空", "paid_at is empty"),
}


@pytest.mark.parametrize("name", list(BAD_ROWS))
def test_a_row_breaking_an_import_rule_refuses_the_file(tmp_path, name):
    """Each names the line, the order_id and the rule, in zh-CN and en, with no library text."""
    from models.messages import ModelDataError

    row, rule, zh, en = BAD_ROWS[name]
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "1,100,2025-01-02 10:00,12.5,paid\n" + row + "\n3,102,2025-01-06,4,paid\n", encoding="utf-8")
    with pytest.raises(ModelDataError) as ei:
        read_orders_file(path)
    order_id = row.split(",")[0]
    line = 3
    zh_text, en_text = ei.value.localized("zh-CN"), ei.value.localized("en")
    assert f"第 {line} 行（订单号 {order_id}）" in zh_text and zh in zh_text and f"（规则 {rule}）" in zh_text, zh_text
    assert f"line {line} (order_id {order_id})" in en_text and en in en_text and f"(rule {rule})" in en_text, en_text
    assert "行订单不符合导入规则，未做回测" in zh_text and "no backtest was run" in en_text
    assert str(ei.value) == en_text and ei.value.localized() == zh_text  # the settings' default: zh-CN
    for junk in LIBRARY_TEXT:
        assert junk not in zh_text + en_text


def test_the_command_refuses_with_exit_2_listing_the_first_rows_and_the_count(tmp_path):
    rows = [f"{i},{100 + i},2025-01-{i:02d} 10:00,-{i},paid" for i in range(1, 9)]  # 8 negative amounts
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    zh = _backtest(tmp_path, path)
    en = _backtest(tmp_path, path, lang="en")
    assert zh.returncode == en.returncode == 2
    assert zh.stdout == en.stdout == ""
    assert zh.stderr.startswith(f"回测失败：{path}：8 行订单不符合导入规则"), zh.stderr
    assert "第 2 行（订单号 1）：金额为负数（规则 amount_negative）" in zh.stderr and "第 6 行（订单号 5）" in zh.stderr
    assert "第 7 行" not in zh.stderr and "……另有 3 行" in zh.stderr
    assert en.stderr.startswith(f"Backtest failed: {path}: rows breaking the import rules: 8"), en.stderr
    assert "line 2 (order_id 1): amount is negative (rule amount_negative)" in en.stderr and "… and 3 more\n" in en.stderr
    for junk in LIBRARY_TEXT:
        assert junk not in zh.stderr + en.stderr


def test_gb18030_and_zh_headers_as_the_import_reads_them(tmp_path, good_csv):
    """Excel on zh-CN Windows: GB18030 with 订单号/客户ID/支付时间/实付金额/订单状态 and 已支付…
    The same orders as the canonical UTF-8 file, and the same figures."""
    canonical = read_orders_file(good_csv)
    df = pd.read_csv(good_csv, dtype=str)
    df["status"] = df["status"].map({"paid": "已支付", "refunded": "已退款", "cancelled": "已取消"})
    df.columns = ["订单号", "客户ID", "支付时间", "实付金额", "订单状态"]
    path = tmp_path / "订单.csv"
    df.to_csv(path, index=False, encoding="gb18030")
    zh = read_orders_file(path)
    pd.testing.assert_frame_equal(zh, canonical)
    res = _backtest(tmp_path, path, "--json")
    assert res.returncode == 0, res.stderr
    ref = _backtest(tmp_path, good_csv, "--json")
    assert json.loads(res.stdout) == json.loads(ref.stdout)
    assert set(json.loads(res.stdout)) == {"model", "recency", "bgnbd"}


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf\r\n", HEADER.encode()], ids=["empty", "bom-only", "header-only"])
def test_an_empty_file_says_so(tmp_path, content):
    path = tmp_path / "orders.csv"
    path.write_bytes(content)
    zh = _backtest(tmp_path, path)
    en = _backtest(tmp_path, path, lang="en")
    assert zh.returncode == en.returncode == 2
    assert zh.stderr.strip() == f"回测失败：{path}：订单文件是空的，没有可回测的数据"
    assert en.stderr.strip() == f"Backtest failed: {path}: the orders file is empty: nothing to backtest"


def test_a_cutoff_after_the_data_names_its_last_day_and_the_latest_cutoff(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(HEADER + "1,100,2026-01-02 12:00,12.5,paid\n2,101,2026-03-05 12:00,3,paid\n3,100,2026-06-29 12:00,4,paid\n"
                    "4,102,2026-06-30 12:00,4,cancelled\n", encoding="utf-8")
    zh = _backtest(tmp_path, path, "--json", cutoff="2030-01-01", horizon="90")
    en = _backtest(tmp_path, path, "--json", cutoff="2030-01-01", horizon="90", lang="en")
    assert zh.returncode == en.returncode == 1 and zh.stdout == en.stdout == ""
    assert "最后一笔已支付订单在 2026-06-29" in zh.stderr and "截止日须不晚于 2026-04-01" in zh.stderr, zh.stderr
    assert "the last paid order is on 2026-06-29" in en.stderr and "the cutoff must be on or before 2026-04-01" in en.stderr, en.stderr
    assert "cutoff 2030-01-01 is after the data" in en.stderr
    assert "needs both classes" not in en.stderr and "既有流失的也有未流失的" not in zh.stderr


def test_history_older_than_the_warehouse_is_read_a_future_time_refused(tmp_path):
    """The import's rules but its earliest-year bound (2000): a backtest may run on old
    history, as on CDNOW (1997). An order in the future still refuses the file."""
    old = tmp_path / "old.csv"
    old.write_text(HEADER + "1,1,1997-01-01,11.77,paid\n2,2,1997-01-12,77,paid\n", encoding="utf-8")
    assert list(read_orders_file(old)["paid_at"]) == [pd.Timestamp("1997-01-01"), pd.Timestamp("1997-01-12")]
    future = tmp_path / "future.csv"
    future.write_text(HEADER + "1,1,1997-01-01,11.77,paid\n2,2,2099-01-12,77,paid\n", encoding="utf-8")
    res = _backtest(tmp_path, future, "--json", lang="en", cutoff="1997-06-01")
    assert res.returncode == 2 and res.stdout == ""
    assert "line 3 (order_id 2): paid_at is in the future" in res.stderr and "(rule paid_at_out_of_range)" in res.stderr, res.stderr


def test_a_quoted_field_over_several_lines_does_not_shift_the_lines_named(tmp_path):
    """A note typed over two lines (a quoted field with a line break, CRLF inside one too) and
    an empty line: each refused row is named by the line of the file it starts on."""
    path = tmp_path / "multiline.csv"
    path.write_bytes((HEADER.rstrip("\n") + ",note\n"
                      '1,1,2024-01-01,10,paid,"two\nlines"\n'
                      "2,2,2024-01-02,11,paid,plain\n"
                      "\n"
                      "3,3,2024-01-03,-5,paid,x\n"              # line 6
                      "4,4,2024-01-04,5,paid\n"                 # line 7: a field short
                      '5,5,2024-01-05,6,paid,"a ""quoted""\r\nnote"\n'
                      "6,6,2099-01-06,6,paid,y\n").encode())    # line 10
    zh = _backtest(tmp_path, path, "--json")
    en = _backtest(tmp_path, path, "--json", lang="en")
    assert zh.returncode == 2 and en.returncode == 2, zh.stdout + zh.stderr
    for want in ("第 6 行（订单号 3）", "第 7 行（订单号 4）：第 7 行有 5 个字段", "第 10 行（订单号 6）"):
        assert want in zh.stderr, (want, zh.stderr)
    for want in ("line 6 (order_id 3)", "line 7 (order_id 4): line 7 has 5 fields", "line 10 (order_id 6)"):
        assert want in en.stderr, (want, en.stderr)


@pytest.mark.parametrize("damage", ["not_parquet", "cut_short"])
def test_a_damaged_parquet_file_is_refused_in_the_operators_words(tmp_path, damage):
    """A .parquet that pyarrow cannot read: the file named and what to do, in zh-CN (default)
    and en; no pyarrow text."""
    path = tmp_path / "orders.parquet"
    if damage == "not_parquet":
        path.write_bytes(b"PAR1 this is not a parquet file at all")
    else:
        good = tmp_path / "good.parquet"
        pd.DataFrame({"order_id": ["1", "2"], "customer_id": ["1", "2"], "paid_at": ["2024-01-01", "2024-01-02"],
                      "amount": ["10", "11"], "status": ["paid", "paid"]}).to_parquet(good)
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    zh = _backtest(tmp_path, path)
    en = _backtest(tmp_path, path, lang="en")
    assert zh.returncode == 2 and en.returncode == 2 and zh.stdout == "" and en.stdout == ""
    assert f"回测失败：{path}：无法读取这个 Parquet 文件" in zh.stderr and "请重新导出或复制该文件，或改用 CSV / .xlsx" in zh.stderr, zh.stderr
    assert f"Backtest failed: {path}: this Parquet file cannot be read" in en.stderr and "give the orders as a CSV or .xlsx file" in en.stderr, en.stderr
    for text in (zh.stderr, en.stderr):
        assert "magic bytes" not in text and "Parquet input source" not in text and "Traceback" not in text and "Arrow" not in text, text
