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
    assert NIGHTLY.how("zh-CN") == "cron 0 2 * * *（时区 Asia/Shanghai）"
    assert MONITOR.how("zh-CN") == "cron 0 * * * *（时区 UTC）（已停用）"
    assert DELIVER.how("zh-CN") == "每 600 秒"
    assert CRASHED.how("zh-CN") == "事件 prefect.flow-run.Crashed 触发"
    assert CRISIS.how("zh-CN") == "每 300 秒；事件 userops.complaints.spike 触发"
    assert RECALL.how("zh-CN") == "手动启动"
    assert NIGHTLY.concurrency_text("zh-CN") == "并发上限 1（超出时排队等待）"
    assert MONITOR.concurrency_text("zh-CN") == "并发上限 1（超出时取消新运行）"
    assert RECALL.concurrency_text("zh-CN") == ""


def test_how_a_deployment_starts_in_en_is_unchanged():
    assert NIGHTLY.how("en") == "cron 0 2 * * * (Asia/Shanghai)"
    assert MONITOR.how("en") == "cron 0 * * * * (UTC) [inactive]"
    assert DELIVER.how("en") == "every 600s"
    assert CRASHED.how("en") == "on event prefect.flow-run.Crashed"
    assert CRISIS.how("en") == "every 300s; on event userops.complaints.spike"
    assert RECALL.how("en") == "by hand"
    assert NIGHTLY.concurrency_text("en") == "concurrency 1 (ENQUEUE)"
    assert MONITOR.concurrency_text("en") == "concurrency 1 (CANCEL_NEW)"
    assert _info("x", concurrency="2 (SOMETHING_NEW)").concurrency_text("zh-CN") == "并发上限 2（SOMETHING_NEW）"


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
    assert "cron 0 2 * * *（时区 Asia/Shanghai）" in lines["nightly"] and "并发上限 1（超出时排队等待）" in lines["nightly"]
    assert "每 600 秒" in lines["deliver-messages"]
    assert "事件 prefect.flow-run.Crashed 触发" in lines["alert-crashed-run"]
    assert "手动启动" in lines["recall"]
    for word in ("by hand", "every ", "on event", "concurrency", "ENQUEUE"):
        assert word not in out, (word, out)

    shop_language("en")
    assert serve.check("http://127.0.0.1:4200/api") == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "nightly/nightly " in ln)
    assert "cron 0 2 * * * (Asia/Shanghai)" in line and "concurrency 1 (ENQUEUE)" in line
    assert "by hand" in out and "every 600s" in out and "on event prefect.flow-run.Crashed" in out
