"""A wrong value on the command line or in the settings is one line naming it and what to
give (exit 2), never a traceback; a warehouse never set up says how to set it up."""
from __future__ import annotations

import os

import pytest

from tests.cli_inprocess import Result, run_userops


def _userops(args: list[str], tmp_path, **env) -> Result:
    """The test environment's USEROPS_* settings (the language and timezone left to the
    defaults unless given), the warehouse and output under ``tmp_path``."""
    e = {k: v for k, v in os.environ.items() if k.startswith("USEROPS_") and k not in ("USEROPS_LANGUAGE", "USEROPS_TIMEZONE")}
    e.update({"USEROPS_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "USEROPS_OUTPUT_DIR": str(tmp_path / "out"), **env})
    return run_userops(args, e)


@pytest.mark.parametrize(
    "args, option, says",
    [
        (["run", "nightly", "--as-of", "2026/12/01"], "--as-of", "YYYY-MM-DD"),
        (["campaign", "run", "awakening", "--as-of", "2026-13-01"], "--as-of", "YYYY-MM-DD"),
        (["campaign", "run", "awakening", "--channel", "fax"], "--channel", "email, sms, push, staff"),
        (["import", "orders", "missing.csv", "--timezone", "Mars/Base"], "--timezone", "Asia/Shanghai"),
        (["tags", "summary", "--as-of", "yesterday"], "--as-of", "YYYY-MM-DD"),
    ],
)
def test_bad_option_is_one_line_naming_it(args, option, says, tmp_path):
    out = _userops(args, tmp_path, USEROPS_LANGUAGE="en")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and option in out.stderr and says in out.stderr


@pytest.mark.parametrize("lang, line", [
    ("en", "unknown table 'oders': choose one of customers, orders, order-items, feedback, events"),
    ("zh-CN", "没有表 'oders'：请从 customers，orders，order-items，feedback，events 中选择"),
])
def test_an_unknown_table_is_one_message_for_import_and_quarantine(lang, line, tmp_path, monkeypatch):
    """`import` and `quarantine list --table` name a wrong table with the same line (exit 2),
    before anything is read; only the quarantine also takes the stored spelling (order_items)."""
    from typer.testing import CliRunner

    from userops.cli import app
    from userops.settings import reset_settings

    monkeypatch.setenv("USEROPS_LANGUAGE", lang)
    monkeypatch.setenv("USEROPS_DATABASE_URL", f"sqlite:///{tmp_path / 'w.db'}")
    reset_settings()
    try:
        runner = CliRunner()
        for args in (["import", "oders", str(tmp_path / "o.csv")], ["import", "order_items", str(tmp_path / "o.csv")],
                     ["quarantine", "list", "--table", "oders"]):
            res = runner.invoke(app, args)
            bad = args[1] if args[0] == "import" else args[-1]
            assert res.exit_code == 2 and res.output.strip() == line.replace("'oders'", repr(bad)), (args, res.output)
        assert not (tmp_path / "w.db").exists()  # refused before the warehouse is touched
    finally:
        reset_settings()


def test_bad_settings_name_the_variable(tmp_path):
    out = _userops(["tags", "summary"], tmp_path, USEROPS_TIMEZONE="Asia/Shangai")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "USEROPS_TIMEZONE='Asia/Shangai'" in out.stderr and "Asia/Shanghai" in out.stderr
    assert out.stderr.startswith("配置有误")  # zh-CN by default
    out = _userops(["tags", "summary"], tmp_path, USEROPS_LANGUAGE="fr")
    assert out.returncode == 2 and "USEROPS_LANGUAGE='fr'" in out.stderr and "只能是以下之一：'zh-CN'，'en'" in out.stderr


def test_language_spelled_loosely_and_an_empty_warehouse(tmp_path):
    # EN is en; a warehouse without tables names the command that sets it up
    out = _userops(["tags", "summary"], tmp_path, USEROPS_LANGUAGE="EN")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "has no userops tables yet" in out.stderr and "userops db upgrade" in out.stderr


@pytest.mark.parametrize("lang, fix", [
    ("zh-CN", "。请检查 USEROPS_DATABASE_URL（主机、端口、库名、用户）以及数据库是否在运行"),
    ("en", "; check USEROPS_DATABASE_URL (host, port, database, user) and that the database is running"),
])
def test_an_unreachable_warehouse_is_worded_as_the_failure_alert_words_it(lang, fix, tmp_path):
    """The command line's refusal and the failure alert's error line were two copies of one
    wording (cli.db_unreachable, problem.warehouse_unreachable): now one catalogue text, the
    command line adding what to check."""
    from userops.i18n import _CATALOG, load_catalogues, t

    url = "postgresql+psycopg2://ops:pw@127.0.0.1:1/test"
    out = _userops(["db", "upgrade"], tmp_path, USEROPS_DATABASE_URL=url, USEROPS_LANGUAGE=lang)
    assert out.returncode == 1 and "Traceback" not in out.stderr and ":pw@" not in out.stderr, out.stderr
    line = out.stderr.strip()
    head = t("problem.warehouse_unreachable", lang, url="postgresql+psycopg2://ops:***@127.0.0.1:1/test", detail="\x00")
    assert line.startswith(head.split("\x00")[0]) and line.endswith(fix), line
    load_catalogues()
    import userops.cli  # noqa: F401  the command line registers its own texts
    copies = [k for k, texts in _CATALOG.items() if "连不上数据仓库" in texts["zh-CN"] or "cannot reach the warehouse" in texts["en"]]
    assert copies == ["problem.warehouse_unreachable"], copies


def test_database_url_mistakes_are_one_line(tmp_path):
    """What an operator pastes: a wrong port, an async or unknown driver, a password."""
    refused = _userops(["db", "upgrade"], tmp_path, USEROPS_DATABASE_URL="postgresql+psycopg2://postgres@127.0.0.1:1/test", USEROPS_LANGUAGE="en")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "cannot reach the warehouse" in refused.stderr and "USEROPS_DATABASE_URL" in refused.stderr
    wrong = _userops(["tags", "summary"], tmp_path, USEROPS_DATABASE_URL="postgresql+asyncpg://ops:s3cret@127.0.0.1:5432/test")
    assert wrong.returncode == 2 and "postgresql+psycopg2://" in wrong.stderr
    assert "s3cret" not in wrong.stderr and "ops:***@" in wrong.stderr  # never the password
    unknown = _userops(["tags", "summary"], tmp_path, USEROPS_DATABASE_URL="mysqlx://a@b/c", USEROPS_LANGUAGE="en")
    assert unknown.returncode == 2 and "not a usable database URL" in unknown.stderr and "Traceback" not in unknown.stderr


def test_plain_postgresql_url_means_the_installed_driver():
    from userops.settings import Settings

    assert Settings(database_url="postgresql://u@h:5432/d").database_url == "postgresql+psycopg2://u@h:5432/d"
    assert Settings(database_url="postgres://u@h/d").database_url == "postgresql+psycopg2://u@h/d"
    assert Settings(database_url="sqlite:////tmp/x.db").database_url == "sqlite:////tmp/x.db"
