"""`userops … --help` speaks the operator's language: zh-CN (the default) or en, for every
command, group, option and argument (`userops/cli/help_texts.py`), typer's panel titles and
markers included; a broken configuration still gives readable help."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from userops.settings import PROJECT_ROOT


def _help_texts():
    from userops.cli import help_texts  # a module of its own: the old code has none

    return help_texts


def test_every_command_option_and_argument_has_help_in_both_languages():
    """Adding a command, option or argument without its zh-CN and en help turns this red, as
    does an entry for something that no longer exists, or English changed in the code but not
    here (its zh-CN would be stale)."""
    from userops.cli import app

    help_texts = _help_texts()
    tree = dict(help_texts.walk(get_command(app)))
    assert {"", "tags", "tags show", "tags show CUSTOMER_ID", "tags show --as-of", "incident list --all",
            "serve --check"} <= set(tree) and len(tree) > 100  # the walk found the whole tree
    missing = [key for key in tree if key not in help_texts.HELP]
    assert not missing, f"no zh-CN/en help in userops/cli/help_texts.py for: {missing}"
    gone = [key for key in help_texts.HELP if key not in tree]
    assert not gone, f"help_texts.py has help for commands/options that do not exist: {gone}"
    for key, texts in help_texts.HELP.items():
        for lang in ("zh-CN", "en"):
            assert (texts.get(lang) or "").strip(), (key, lang)
        assert re.search(r"[\u4e00-\u9fff]", texts["zh-CN"]), (key, texts["zh-CN"])
        assert texts["zh-CN"] != texts["en"], key
        code = (tree[key].help or "").strip()
        assert not code or code == texts["en"].strip(), (
            f"the English help of {key!r} changed in the code: update its en and zh-CN in help_texts.py", code, texts["en"])


def test_zh_cn_texts_keep_full_width_punctuation_next_to_chinese():
    """Typeset as the message catalogues (test_messages): no half-width , : ; ( ) beside a
    Chinese character in zh-CN, no full-width punctuation in en."""
    from tests.datapath.test_messages import _HALF_BESIDE_HAN, _NOT_PROSE

    help_texts = _help_texts()
    for key, texts in help_texts.HELP.items():
        zh = texts["zh-CN"]
        bad = _HALF_BESIDE_HAN.findall(_NOT_PROSE.sub("\x00", zh))
        assert not bad, (key, zh, bad)
        assert not re.search("[，：；（）、。]", texts["en"]), (key, texts["en"])
        for paragraph in (zh.split("\n\n")[0], texts["en"].split("\n\n")[0]):
            assert "\n" not in paragraph, (key, paragraph)  # a listing's summary is one line


def _help(lang: str, args: list[str]) -> str:
    """``userops <args> --help`` as ``main()`` runs it (``command(lang)``), in this process."""
    import typer.testing

    from userops.cli import app, command

    help_texts = _help_texts()
    before = help_texts.use_typer_texts(lang)
    try:
        with pytest.MonkeyPatch.context() as mp:  # typer's runner builds the command from the app itself
            mp.setattr(typer.testing, "_get_command", lambda _app: command(lang))
            res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    finally:
        help_texts.restore_typer_texts(before)
    assert res.exit_code == 0, res.output
    return res.output


def test_tags_show_help_in_chinese_and_english():
    zh = _help("zh-CN", ["tags", "show"])
    for text in ("用法：", "一位客户的每个标签及其背后的数据。", "客户编号。", "按当天（YYYY-MM-DD）的数据状态重新计算。",
                 "参数", "选项", "[必填]", "显示此帮助并退出。"):
        assert text in zh, (text, zh)
    assert not re.search(r"Usage|Options|Arguments|\[required\]|Show this message|The customer's id|Recompute", zh), zh

    en = _help("en", ["tags", "show"])
    for text in ("Usage:", "Each tag of one customer with the numbers behind it.", "The customer's id.",
                 "Recompute for this day (YYYY-MM-DD) from the data as it stood.", "Arguments", "Options", "[required]",
                 "Show this message and exit."):
        assert text in en, (text, en)
    assert not re.search(r"[\u4e00-\u9fff]", en), en

    listing = _help("zh-CN", [])
    assert "命令" in listing and "客户标签：生命周期阶段、RFM、价值分层、危机优先级、行为标签。" in listing, listing
    assert "[默认：50]" in _help("zh-CN", ["quarantine", "list"])


def test_localizing_leaves_the_typer_app_as_written():
    """The English of the code stays what `app` builds (the other CLI tests invoke it)."""
    from userops.cli import app, command

    help_texts = _help_texts()
    before = help_texts.use_typer_texts("en")
    try:
        command("zh-CN")
    finally:
        help_texts.restore_typer_texts(before)
    fresh = get_command(app)
    assert fresh.commands["tags"].commands["show"].help == "Each tag of one customer with the numbers behind it."


def _userops(tmp_path, args, **env) -> subprocess.CompletedProcess:
    e = {**os.environ, "COLUMNS": "200", "PREFECT_HOME": str(tmp_path / "prefect"), **env}
    for k in ("USEROPS_LANGUAGE", "USEROPS_CONFIG_FILE", "USEROPS_TIMEZONE"):
        if k not in env:
            e.pop(k, None)
    return subprocess.run([sys.executable, "-m", "userops.cli", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=e, timeout=180)


@pytest.mark.parametrize("lang, summary, title", [
    ("zh-CN", "一位客户的每个标签及其背后的数据。", "选项"),
    ("en", "Each tag of one customer with the numbers behind it.", "Options"),
])
def test_the_installed_command_speaks_the_settings_language(tmp_path, lang, summary, title):
    """As an operator runs it, the language from the settings file."""
    config = tmp_path / "userops.yaml"
    config.write_text(f"language: {lang}\n", encoding="utf-8")
    out = _userops(tmp_path, ["tags", "show", "--help"], USEROPS_CONFIG_FILE=str(config))
    assert out.returncode == 0, out.stderr
    assert summary in out.stdout and title in out.stdout, out.stdout


def _userops_here(args, **env):
    """The same, run in this process (tests/cli_inprocess.py): the installed script is run above."""
    from tests.cli_inprocess import run_userops

    e = {k: v for k, v in os.environ.items() if k.startswith("USEROPS_") and k not in ("USEROPS_LANGUAGE", "USEROPS_CONFIG_FILE", "USEROPS_TIMEZONE")}
    return run_userops(args, {**e, **env})


@pytest.mark.parametrize("config_text, env, lang", [
    ("language: [zh-CN\n  broken: :\n", {}, "zh-CN"),  # not YAML
    ("timezone: Mars/Base\n", {}, "zh-CN"),  # a wrong value
    ("language: klingon\n", {}, "zh-CN"),  # a language there is not
    ("timezone: Mars/Base\n", {"USEROPS_LANGUAGE": "en"}, "en"),  # the language as written in the environment
    ("", {"USEROPS_TIMEZONE": "Mars/Base"}, "zh-CN"),  # a wrong USEROPS_* value
])
def test_help_works_with_broken_settings(tmp_path, config_text, env, lang):
    config = tmp_path / "userops.yaml"
    config.write_text(config_text, encoding="utf-8")
    out = _userops_here(["tags", "show", "--help"], USEROPS_CONFIG_FILE=str(config), **env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    expected = "一位客户的每个标签及其背后的数据。" if lang == "zh-CN" else "Each tag of one customer with the numbers behind it."
    assert expected in out.stdout and ("选项" if lang == "zh-CN" else "Options") in out.stdout, out.stdout


@pytest.mark.parametrize("args, zh, en", [
    (["tags", "shw"], "没有命令 'shw'。您是不是想用 'show'？", "No such command 'shw'. Did you mean 'show'?"),
    (["tags", "show"], "缺少参数 'customer_id'。", "Missing argument 'customer_id'."),
    (["tags", "summary", "--as-f", "2026-01-01"], "没有选项 --as-f（可用选项：--as-of）", "No such option: --as-f"),
    (["tags", "show", "A", "B"], "多了无法识别的参数（B）", "Got unexpected extra argument"),
    (["model", "backtest", "--orders", "x.csv", "--cutoff", "2026-01-01", "--horizon", "abc"], "'--horizon' 的取值无效：应为整数", "Invalid value for '--horizon'"),
])
def test_a_mistyped_command_line_is_answered_in_the_settings_language(tmp_path, args, zh, en):
    """typer's own usage errors (its click copy writes them in English) in zh-CN by default,
    unchanged in en; exit 2 either way."""
    for lang, expected in (("zh-CN", zh), ("en", en)):
        out = _userops_here(args, USEROPS_LANGUAGE=lang)
        flat = "".join(out.stderr.replace("│", " ").split())  # the error box wraps lines
        assert out.returncode == 2 and "".join(expected.split()) in flat, out.stderr
        if lang == "zh-CN":
            assert "Did you mean" not in out.stderr and "Missing" not in out.stderr and "Invalid value" not in out.stderr
