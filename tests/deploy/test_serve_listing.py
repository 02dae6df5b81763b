"""How `userops serve` and `userops serve --check` list each deployment (how it starts, its
concurrency limit) in the shop's language: in process, on DeploymentInfo values (no server;
tests/deploy/test_ops.py covers the real listing in en)."""
from __future__ import annotations

import pytest

from userops.deploy import DeploymentInfo


def _info(name: str, schedules=(), triggers=(), concurrency=None) -> DeploymentInfo:
    return DeploymentInfo(full_name=f"{name}/{name}", name=name, flow_name=name, work_pool="userops-pool",
                          schedules=list(schedules), triggers=list(triggers), concurrency=concurrency,
                          paused=False, parameters={}, id=name)


NIGHTLY = _info("nightly", [{"cron": "0 2 * * *", "timezone": "Asia/Shanghai", "active": True}], concurrency="1 (ENQUEUE)")
MONITOR = _info("hourly-monitor", [{"cron": "0 * * * *", "timezone": None, "active": False}], concurrency="1 (CANCEL_NEW)")
DELIVER = _info("deliver-messages", [{"interval": 600.0, "timezone": None, "active": True}])
CRASHED = _info("alert-crashed-run", triggers=["prefect.flow-run.Crashed"])
CRISIS = _info("crisis-response", [{"interval": 300, "active": True}], triggers=["userops.complaints.spike"])
RECALL = _info("recall")


def test_how_a_deployment_starts_in_zh_cn():
    assert NIGHTLY.how("zh-CN") == "每天 02:00（时区 Asia/Shanghai）"
    assert MONITOR.how("zh-CN") == "每小时整点（时区 UTC）（已停用）"
    assert DELIVER.how("zh-CN") == "每 10 分钟"
    assert CRASHED.how("zh-CN") == "事件 prefect.flow-run.Crashed 触发"
    assert CRISIS.how("zh-CN") == "每 5 分钟；事件 userops.complaints.spike 触发"
    assert RECALL.how("zh-CN") == "手动启动"
    assert NIGHTLY.concurrency_text("zh-CN") == "并发上限 1（超出时排队等待）"
    assert MONITOR.concurrency_text("zh-CN") == "并发上限 1（超出时取消新运行）"
    assert RECALL.concurrency_text("zh-CN") == ""


def test_how_a_deployment_starts_in_en():
    assert NIGHTLY.how("en") == "daily at 02:00 (Asia/Shanghai)"
    assert MONITOR.how("en") == "hourly on the hour (UTC) [inactive]"
    assert DELIVER.how("en") == "every 10 min"
    assert CRASHED.how("en") == "on event prefect.flow-run.Crashed"
    assert CRISIS.how("en") == "every 5 min; on event userops.complaints.spike"
    assert RECALL.how("en") == "by hand"
    assert NIGHTLY.concurrency_text("en") == "concurrency 1 (ENQUEUE)"
    assert MONITOR.concurrency_text("en") == "concurrency 1 (CANCEL_NEW)"
    assert _info("x", concurrency="2 (SOMETHING_NEW)").concurrency_text("zh-CN") == "并发上限 2（SOMETHING_NEW）"


def test_schedules_in_words_and_the_rest_as_they_are():
    """The cron patterns prefect.yaml uses read as words; any other expression, and an
    interval that is no whole number of minutes, is shown as it is."""
    from userops.deploy import cron_words, interval_words

    assert cron_words("0 5 * * 0", "Asia/Shanghai", "zh-CN") == "每周日 05:00（时区 Asia/Shanghai）"
    assert cron_words("30 5 * * 7", "UTC", "en") == "Sundays at 05:30 (UTC)"
    assert cron_words("15 * * * *", "UTC", "zh-CN") == "每小时第 15 分（时区 UTC）"
    assert cron_words("15 * * * *", "UTC", "en") == "hourly at :15 (UTC)"
    for odd in ("*/5 * * * *", "0 2 1 * *", "0 5 * * 1-5", "0 24 * * *", "61 * * * *", "0 2 * *"):
        assert cron_words(odd, "UTC", "en") == f"cron {odd} (UTC)"
    assert interval_words(7200, "zh-CN") == "每 2 小时" and interval_words(90, "zh-CN") == "每 90 秒"
    assert interval_words(45, "en") == "every 45s"


def test_serve_check_lists_the_deployments_in_the_shop_language(shop_language, monkeypatch, capsys):
    """`userops serve --check` (and serve's own listing, the same lines) in the default
    language zh-CN: no English words around the schedules; en as before."""
    import userops.cli.serve as serve
    import userops.deploy as deploy

    infos = [CRASHED, DELIVER, NIGHTLY, RECALL]
    monkeypatch.setattr(deploy, "api_healthy", lambda url: True)
    monkeypatch.setattr(deploy, "describe_deployments", lambda url: infos)
    monkeypatch.setattr(serve, "_expected_deployments", lambda: [i.name for i in infos])

    assert serve.check("http://127.0.0.1:4200/api") == 0  # the shop's default language: zh-CN
    out = capsys.readouterr().out
    lines = {i.name: next(ln for ln in out.splitlines() if f"{i.full_name} " in ln) for i in infos}
    assert "每天 02:00（时区 Asia/Shanghai）" in lines["nightly"] and "并发上限 1（超出时排队等待）" in lines["nightly"]
    assert "每 10 分钟" in lines["deliver-messages"]
    assert "事件 prefect.flow-run.Crashed 触发" in lines["alert-crashed-run"]
    assert "手动启动" in lines["recall"]
    for word in ("by hand", "every ", "on event", "concurrency", "ENQUEUE"):
        assert word not in out, (word, out)

    shop_language("en")
    assert serve.check("http://127.0.0.1:4200/api") == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "nightly/nightly " in ln)
    assert "daily at 02:00 (Asia/Shanghai)" in line and "concurrency 1 (ENQUEUE)" in line
    assert "by hand" in out and "every 10 min" in out and "on event prefect.flow-run.Crashed" in out
