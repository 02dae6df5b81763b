"""A wrong setting is refused with one message naming where it came from (the settings file and
its key, or the environment variable), what is allowed and, for a typo, the closest valid key;
a broken or missing settings file, an unsupported database and a mistyped SQLite directory are
one message (exit 2), never a traceback and never silently ignored."""
from __future__ import annotations

import os
import pydantic
import pytest

from tests.cli_inprocess import Result, run_userops
from userops.settings import Settings, reset_settings, settings_problems


def _userops(args: list[str], tmp_path, config: str | None = "{}\n", **env) -> Result:
    cfg = tmp_path / "userops.yaml"
    if config is not None:
        cfg.write_text(config, encoding="utf-8")
    e = {"USEROPS_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "USEROPS_OUTPUT_DIR": str(tmp_path / "out"),
         "USEROPS_CONFIG_FILE": str(cfg), **env}
    return run_userops(args, e)  # a variable given as None is left out


def _refused(out: Result) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr


@pytest.fixture
def settings_env(monkeypatch, tmp_path):
    """Settings read in this process from a file and the environment given by the test."""
    for k in list(os.environ):
        if k.startswith("USEROPS_"):
            monkeypatch.delenv(k)
    cfg = tmp_path / "userops.yaml"
    monkeypatch.setenv("USEROPS_CONFIG_FILE", str(cfg))

    def use(config: str = "{}\n", **env) -> pydantic.ValidationError | None:
        cfg.write_text(config, encoding="utf-8")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        reset_settings()
        try:
            Settings()
        except pydantic.ValidationError as exc:
            return exc
        return None

    use.path = cfg
    yield use
    reset_settings()


# ----------------------------------------------------------------------------- unknown keys
def test_a_typo_in_the_file_names_the_file_the_key_and_the_closest_key(tmp_path):
    err = _refused(_userops(["tags", "summary", "--as-of", "2026-12-06"], tmp_path, "lifecycle: {silent_day: 90}\n", USEROPS_LANGUAGE="en"))
    assert str(tmp_path / "userops.yaml") in err
    assert "lifecycle.silent_day" in err and "did you mean lifecycle.silent_days?" in err
    err = _refused(_userops(["tags", "summary"], tmp_path, "languag: en\n"))
    assert err.startswith("配置有误") and "languag：没有这个设置项；是不是 language？" in err


def test_unknown_keys_of_every_depth_are_reported_together(settings_env):
    exc = settings_env("crm: {tokn: x}\ncrisis: {remedies: {core: {coupon_valu: 5}}}\nalerts: {routes: {'*': [slack]}}\n")
    lines = settings_problems(exc, "en")
    assert len(lines) == 2, lines
    assert any("crm.tokn" in l and "did you mean crm.token?" in l for l in lines), lines
    assert any("crisis.remedies.core.coupon_valu" in l and "crisis.remedies.core.coupon_value?" in l for l in lines), lines
    assert settings_env("alerts: {routes: {'*': [slack]}, rate_per_minute: {teams: 5}}\n") is None  # free-form mappings stay free


def test_env_policy_unknown_names_are_not_settings_but_a_groups_typo_is(settings_env):
    # USEROPS_<NAME> that is no setting: another program's variable (USEROPS_NOW, the tests' URLs), not read
    assert settings_env(USEROPS_NOW="2026-12-06T10:00:00", USEROPS_TEST_POSTGRES_URL="postgresql://x@y/z",
                        USEROPS_TEAMS_WEBHOOK_URL="https://example.invalid/hook", USEROPS_NOT_A_SETTING="1") is None
    exc = settings_env(USEROPS_LIFECYCLE__SILENT_DAY="90")
    assert exc is not None
    assert settings_problems(exc, "en") == ["USEROPS_LIFECYCLE__SILENT_DAY: no such setting; did you mean USEROPS_LIFECYCLE__SILENT_DAYS?"]


# ----------------------------------------------------------------------------- ranges
@pytest.mark.parametrize("config, key, allowed", [
    ("health: {silent_share_max: 1.5}\n", "health.silent_share_max=1.5", "0 ≤ value ≤ 1"),
    ("lifecycle: {silent_days: -5}\n", "lifecycle.silent_days=-5", "value ≥ 1"),
    ("campaigns: {holdout_share: 1.0}\n", "campaigns.holdout_share=1.0", "0 ≤ value < 1"),
    ("tags: {value_high_share: -0.1}\n", "tags.value_high_share=-0.1", "0 ≤ value ≤ 1"),
    ("health: {retention_days: [30, 0]}\n", "health.retention_days[1]=0", "value ≥ 1"),
    ("crisis: {remedies: {core: {coupon_value: -1}}}\n", "crisis.remedies.core.coupon_value=-1", "value ≥ 0"),
    ("churn: {high_risk: 2}\n", "churn.high_risk=2", "0 ≤ value ≤ 1"),
])
def test_out_of_range_in_the_file_names_file_key_and_range(settings_env, config, key, allowed):
    exc = settings_env(config)
    assert exc is not None, config
    assert settings_problems(exc, "en") == [f"settings file {settings_env.path}, {key}: out of range; allowed: {allowed}"]


def test_out_of_range_from_the_environment_names_the_variable(tmp_path):
    err = _refused(_userops(["campaign", "plan", "onboarding", "--dry-run"], tmp_path, USEROPS_CAMPAIGNS__HOLDOUT_SHARE="1.5"))
    assert "环境变量 USEROPS_CAMPAIGNS__HOLDOUT_SHARE='1.5'：超出范围，允许 0 ≤ 值 < 1" in err
    err = _refused(_userops(["tags", "summary"], tmp_path, USEROPS_HEALTH__SILENT_SHARE_MAX="1.5", USEROPS_LANGUAGE="en"))
    assert "USEROPS_HEALTH__SILENT_SHARE_MAX='1.5': out of range; allowed: 0 ≤ value ≤ 1" in err
    assert "settings file" not in err


def test_the_environment_wins_and_is_named_over_the_file(settings_env):
    exc = settings_env("health: {silent_share_max: 0.4}\n", USEROPS_HEALTH__SILENT_SHARE_MAX="-1")
    assert settings_problems(exc, "en") == ["USEROPS_HEALTH__SILENT_SHARE_MAX='-1': out of range; allowed: 0 ≤ value ≤ 1"]


def test_inverted_lifecycle_windows_are_refused_naming_each_source(tmp_path, settings_env):
    exc = settings_env("lifecycle: {active_days: 200}\n")
    assert settings_problems(exc, "en") == [
        f"lifecycle must satisfy new_days ≤ active_days < silent_days; now new_days=30 (default), "
        f"active_days=200 (settings file {settings_env.path}), silent_days=180 (default)"]
    exc = settings_env("{}\n", USEROPS_LIFECYCLE__NEW_DAYS="90")
    assert "new_days=90（环境变量 USEROPS_LIFECYCLE__NEW_DAYS）" in settings_problems(exc, "zh-CN")[0]
    err = _refused(_userops(["tags", "show", "C1"], tmp_path, "lifecycle: {silent_days: 60}\n"))
    assert "new_days ≤ active_days < silent_days" in err


def test_other_orders_the_spec_implies(settings_env):
    assert "medium_risk ≤ high_risk" in settings_problems(settings_env("churn: {medium_risk: 0.7}\n"), "en")[0]
    assert "value_high_share + value_mid_share ≤ 1" in settings_problems(settings_env("tags: {value_high_share: 0.8}\n"), "en")[0]
    assert "control_hours ≤ clarify_hours ≤ compensate_hours" in settings_problems(settings_env("crisis: {clarify_hours: 1}\n"), "en")[0]
    assert settings_env("lifecycle: {new_days: 61, active_days: 61, silent_days: 181}\n") is None  # equal new/active is fine


def test_every_default_is_within_its_bounds():
    Settings()  # the spec's defaults


# ----------------------------------------------------------------------------- the file itself
def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    err = _refused(_userops(["tags", "summary"], tmp_path, "language: en\nlifecycle: [\n", USEROPS_LANGUAGE="en"))
    assert f"the settings file {tmp_path / 'userops.yaml'} is not valid YAML (line 3" in err
    # the parser notices the unclosed [ on line 3; the line to look at is 2, where it opens
    err = _refused(_userops(["tags", "summary"], tmp_path, "language: en\nlifecycle: [a, b\nfoo: 1\n", USEROPS_LANGUAGE="en"))
    assert f"the settings file {tmp_path / 'userops.yaml'} is not valid YAML: what begins on line 2 is still not closed at line 3" in err
    zh = _refused(_userops(["tags", "summary"], tmp_path, "language: zh-CN\nlifecycle: [a, b\nfoo: 1\n"))
    assert "不是有效的 YAML：从第 2 行开始的内容到第 3 行第 4 列仍未正确结束，请检查第 2 行起的括号、引号和缩进" in zh, zh
    plain = _refused(_userops(["tags", "summary"], tmp_path, "language: en\nlifecycle: a: b\n", USEROPS_LANGUAGE="en"))
    assert "is not valid YAML (line 2, column" in plain  # an error where it is noticed: its own line


def test_a_settings_file_that_is_not_a_mapping(tmp_path):
    err = _refused(_userops(["tags", "summary"], tmp_path, "- language\n"))
    assert "应是设置名到值的映射" in err


def test_a_missing_settings_file_is_named(tmp_path):
    err = _refused(_userops(["tags", "summary"], tmp_path, None, USEROPS_CONFIG_FILE=str(tmp_path / "missing.yaml"), USEROPS_LANGUAGE="en"))
    assert f"USEROPS_CONFIG_FILE names the settings file {tmp_path / 'missing.yaml'}, which does not exist" in err


def test_the_files_language_is_used_for_its_own_errors(tmp_path):
    err = _refused(_userops(["tags", "summary"], tmp_path, "language: en\nhealth: {satisfaction_min: 85}\n"))
    assert err.startswith("The configuration is wrong") and "health.satisfaction_min=85: out of range; allowed: 0 ≤ value ≤ 1" in err


# ----------------------------------------------------------------------------- the warehouse
def test_an_unsupported_database_says_which_are_supported(tmp_path):
    err = _refused(_userops(["tags", "summary"], tmp_path, USEROPS_DATABASE_URL="mysql://ops:s3cret@db.example/shop", USEROPS_LANGUAGE="en"))
    assert "not a usable database URL" in err and "PostgreSQL" in err and "SQLite" in err and "not mysql" in err
    assert "s3cret" not in err and "MySQLdb" not in err


@pytest.mark.parametrize("url, zh, en", [
    ("postgresql+asyncpg://ops:s3cret@h/db", "数据仓库只能用已安装的驱动：请把 postgresql+asyncpg:// 改写为 postgresql+psycopg2://",
     "the warehouse needs the installed driver: write postgresql+psycopg2:// instead of postgresql+asyncpg://"),
    ("sqlite+pysqlite:////tmp/x.db", "数据仓库只能用已安装的驱动：请把 sqlite+pysqlite:// 改写为 sqlite://",
     "the warehouse needs the installed driver: write sqlite:// instead of sqlite+pysqlite://"),
])
def test_another_driver_is_refused_in_the_operators_language(tmp_path, url, zh, en):
    """The driver refusals were plain English inside a zh-CN message."""
    err = _refused(_userops(["alert", "channels"], tmp_path, USEROPS_DATABASE_URL=url))
    assert err.startswith("配置有误") and f"环境变量 USEROPS_DATABASE_URL={url.replace('s3cret', '***')!r}：{zh}" in err, err
    assert "s3cret" not in err and "installed driver" not in err
    err = _refused(_userops(["alert", "channels"], tmp_path, USEROPS_DATABASE_URL=url, USEROPS_LANGUAGE="en"))
    assert f"USEROPS_DATABASE_URL={url.replace('s3cret', '***')!r}: {en}" in err and "s3cret" not in err, err


@pytest.mark.parametrize("url, shown, zh, en", [
    ("file:///srv/reports", "file:///srv/reports", "应为提供报告目录的 http(s) 地址", "must be an http(s) address"),
    ("http://", "http://", "地址里缺少主机名", "names no host"),
    ("https://:443/r", "https://:443/r", "地址里缺少主机名", "names no host"),
    ("http://ops-server:port/", "http://ops-server:port/", "地址里缺少主机名", "names no host"),
    ("http://viewer:s3cret@ops-server:4201/r", "http://***@ops-server:4201/r", "地址里不能带用户名或密码", "must not contain a user name or password"),
    ("https://s3cret@ops-server/r", "https://***@ops-server/r", "地址里不能带用户名或密码", "must not contain a user name or password"),
])
def test_a_wrong_reports_url_is_refused_in_the_operators_language(tmp_path, url, shown, zh, en):
    """The reports' address goes into every digest and alert link: no host, or a user name and
    password in it (published with every link), is refused; the refusal is catalogue text and
    never shows the password."""
    err = _refused(_userops(["alert", "channels"], tmp_path, USEROPS_REPORTS_URL=url))
    assert err.startswith("配置有误") and f"环境变量 USEROPS_REPORTS_URL={shown!r}：{zh}" in err, err
    assert "s3cret" not in err and "must" not in err
    err = _refused(_userops(["alert", "channels"], tmp_path, USEROPS_REPORTS_URL=url, USEROPS_LANGUAGE="en"))
    assert f"USEROPS_REPORTS_URL={shown!r}: {en}" in err and "s3cret" not in err, err


def test_a_wrong_timezone_is_refused_in_the_operators_language(tmp_path):
    """The time zone refusal was plain English inside a zh-CN message."""
    err = _refused(_userops(["alert", "channels"], tmp_path, USEROPS_TIMEZONE="Mars/Olympus"))
    assert err.startswith("配置有误") and "环境变量 USEROPS_TIMEZONE='Mars/Olympus'：没有这个时区；请写 IANA 时区名称，如 Asia/Shanghai" in err, err
    assert "give an IANA name" not in err
    err = _refused(_userops(["alert", "channels"], tmp_path, "timezone: Mars/Olympus\n", USEROPS_LANGUAGE="en"))
    assert "timezone='Mars/Olympus': no such time zone; give an IANA name such as Asia/Shanghai" in err, err


def test_a_reports_url_with_a_host_is_accepted(settings_env):
    for url in ("http://ops-server:4201/", "https://ops.example.com/reports/", "http://[::1]:4201/r", "http://h/a@b"):
        assert settings_env(USEROPS_REPORTS_URL=url) is None, url


def test_a_nonexistent_sqlite_directory_is_an_error_and_nothing_is_created(tmp_path):
    missing = tmp_path / "nonexistent" / "dir"
    err = _refused(_userops(["tags", "summary"], tmp_path, USEROPS_DATABASE_URL=f"sqlite:///{missing / 'x.db'}", USEROPS_LANGUAGE="en"))
    assert f"the directory {missing} of the SQLite warehouse does not exist" in err and str(missing / "x.db") in err
    assert not (tmp_path / "nonexistent").exists()
    # in a directory that exists, `db upgrade` creates the warehouse file
    out = _userops(["db", "upgrade"], tmp_path, USEROPS_DATABASE_URL=f"sqlite:///{tmp_path / 'new.db'}")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "new.db").exists()


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_nonexistent_sqlite_directory_from_the_settings_file_names_the_file_and_key(tmp_path, lang):
    """The URL came from the settings file's database_url: key, not the environment: the
    error says so (it always named USEROPS_DATABASE_URL, sending the operator to the wrong place)."""
    missing = tmp_path / "nonexistent"
    config = f"language: {lang}\ndatabase_url: sqlite:///{missing / 'x.db'}\n"
    err = _refused(_userops(["tags", "summary"], tmp_path, config, USEROPS_DATABASE_URL=None))
    cfg = tmp_path / "userops.yaml"
    assert "USEROPS_DATABASE_URL" not in err and str(missing / "x.db") in err
    if lang == "zh-CN":
        assert f"SQLite 数据仓库所在的目录 {missing} 不存在（配置文件 {cfg} 中的 database_url 指向 {missing / 'x.db'}）" in err, err
    else:
        assert f"the directory {missing} of the SQLite warehouse does not exist (database_url in the settings file {cfg} names {missing / 'x.db'})" in err, err
    assert not missing.exists()
    # set in the environment, it names the variable (zh-CN: 环境变量 …)
    err = _refused(_userops(["tags", "summary"], tmp_path, "{}\n", USEROPS_DATABASE_URL=f"sqlite:///{missing / 'y.db'}"))
    assert f"（环境变量 USEROPS_DATABASE_URL 指向 {missing / 'y.db'}）" in err, err


def test_only_the_default_sqlite_location_is_created(tmp_path, monkeypatch):
    from userops import db
    from userops.settings import DEFAULT_DATABASE_PATH

    with pytest.raises(db.WarehouseLocationError):
        db._sqlite_directory(tmp_path / "a" / "b" / "w.db")
    assert not (tmp_path / "a").exists()
    made = []
    monkeypatch.setattr(db.Path, "mkdir", lambda self, *a, **k: made.append(self))
    monkeypatch.setattr(db.Path, "is_dir", lambda self: False)
    db._sqlite_directory(DEFAULT_DATABASE_PATH)
    assert made == [DEFAULT_DATABASE_PATH.parent]


# ----------------------------------------------------------------------------- demo
@pytest.mark.parametrize("n", ["0", "-5"])
def test_demo_with_no_customers_is_one_line(tmp_path, n):
    err = _refused(_userops(["demo", "--customers", n], tmp_path, USEROPS_LANGUAGE="en"))
    assert "--customers" in err and "at least 1" in err and "zero-size" not in err


def test_a_choice_setting_lists_its_choices_in_the_operators_language(tmp_path):
    """pydantic words a Literal's choices in English ("'zh-CN' or 'en'"); the refusal joins
    them in the operator's language."""
    err = _refused(_userops(["alert", "channels"], tmp_path, USEROPS_CUSTOMER_LANGUAGE="fr"))
    assert "USEROPS_CUSTOMER_LANGUAGE='fr'：只能是以下之一：'zh-CN'，'en'" in err, err
    assert " or " not in err, err
    err = _refused(_userops(["alert", "channels"], tmp_path, USEROPS_CUSTOMER_LANGUAGE="fr", USEROPS_LANGUAGE="en"))
    assert "USEROPS_CUSTOMER_LANGUAGE='fr': must be one of 'zh-CN', 'en'" in err, err
