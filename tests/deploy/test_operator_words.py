"""What an operator reads in the Prefect UI is in their language and explained: the run-log
lines of the flows, the Artifacts page's descriptions, the churn-model artifact's figures
(named and defined, the champion column filled), and run names that follow the schedule."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from uuid import uuid4

import pytest

from userops.settings import PROJECT_ROOT

_HAN = re.compile("[\u3400-\u9fff]")
# flows others own while this is written; their English lines are theirs to route
_NOT_MINE = {"crisis.py", "campaigns.py"}


# ----------------------------------------------------------------------------- run log
def test_flow_run_log_lines_come_from_the_catalogue():
    """A logger.info/warning/error in a flow logs catalogue text (``t(...)``) or lines built
    from it, never an English format string: the Prefect UI's run log is read by the operator."""
    literal = re.compile(r"(?:logger|log|get_run_logger\(\))\.(?:info|warning|error|critical|exception)\(\s*(?:f?\"(?!%s\")|f?')")
    found = []
    for path in sorted((PROJECT_ROOT / "flows").glob("*.py")):
        if path.name in _NOT_MINE:
            continue
        for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if literal.search(line):
                found.append(f"{path.name}:{no}: {line.strip()}")
    assert not found, "\n".join(found)


def test_run_log_texts_in_both_languages(shop_language):
    from flows.churn import _model_line
    from userops.i18n import t

    out = {"version": "v20261207", "status": "champion", "reason": "first model: no champion to compare with",
           "reason_text": "首个模型，直接成为冠军模型。"}
    assert _model_line(out) == "流失模型 v20261207：冠军模型。首个模型，直接成为冠军模型。"
    assert t("log.nightly.stage", stage="tags") == "开始阶段：tags"
    assert t("log.nightly.done", as_of=date(2026, 12, 7), seconds="12.5") == "夜间运行 2026-12-07 完成，用时 12.5 秒"
    shop_language("en")
    assert _model_line({**out, "reason_text": "First model."}) == "Churn model v20261207: champion. First model."
    assert t("log.nightly.done", as_of=date(2026, 12, 7), seconds="12.5") == "nightly 2026-12-07 done in 12.5s"


# ----------------------------------------------------------------------------- artifacts
def _churn_out(**over) -> dict:
    m = {"roc_auc": 0.81234, "pr_auc": 0.5, "brier": 0.12, "log_loss": 0.4, "lift_top_decile": 2.5, "churn_rate": 0.2, "n": 1234}
    out = {"version": "v2", "status": "champion", "reason": "first", "reason_text": "首个模型。", "train_cutoff": "2026-09-01",
           "eval_cutoff": "2026-10-01", "horizon_days": 60, "n_train": 5000, "metrics": m, "champion_metrics": None,
           "previous_champion": None}
    return {**out, **over}


def test_churn_model_artifact_names_and_defines_its_figures(shop_language):
    from tasks.artifacts import churn_model_markdown

    md = churn_model_markdown(_churn_out())
    for raw in ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile", "churn_rate"):
        assert f"| {raw} |" not in md
    assert "| ROC AUC | 0.8123 | 0.8123 | ROC AUC 衡量区分流失与留存客户的能力（0.5 相当于随机，1 为完美，越高越好） |" in md
    assert "| 前 10% 提升度 | 2.5000 | 2.5000 | 提升度 = 风险最高的 10% 客户的流失率是全体流失率的几倍 |" in md
    assert "| 验证客户数 | 1,234 | 1,234 |" in md
    # the first model is the champion: the champion column is its own figures, said so
    assert "当前冠军模型（即新模型）" in md and "| — |" not in md
    shop_language("en")
    md = churn_model_markdown(_churn_out())
    assert "| ROC AUC | 0.8123 | 0.8123 | ROC AUC: how well the model tells churners from stayers" in md
    assert "champion (this model)" in md


def test_churn_model_artifact_champion_column_names_the_champion(shop_language):
    from tasks.artifacts import churn_model_markdown

    champ = {"roc_auc": 0.7, "pr_auc": 0.4, "brier": 0.15, "log_loss": 0.45, "lift_top_decile": 2.0, "churn_rate": 0.2, "n": 1234}
    won = churn_model_markdown(_churn_out(champion_metrics=champ, previous_champion="v1"))
    assert "| 指标（同一验证集） | 新模型 | 原冠军模型 v1 | 含义 |" in won and "| ROC AUC | 0.8123 | 0.7000 |" in won
    lost = churn_model_markdown(_churn_out(status="challenger", champion_metrics=champ, previous_champion="v1"))
    assert "| 指标（同一验证集） | 新模型 | 当前冠军模型 v1 | 含义 |" in lost


def test_model_status_legend_is_the_artifact_definitions(shop_language):
    from tasks.artifacts import metric_legend
    from userops.i18n import t

    legend = metric_legend()
    assert legend.startswith("说明：窗口 = 训练截止→验证截止") and legend.endswith("。")
    for k in ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_decile"):
        assert t(f"model.metric.{k}.help") in legend


def test_artifact_descriptions_in_the_operators_language(shop_language, monkeypatch):
    import tasks.artifacts as A
    import tasks.health as H

    seen = {}
    monkeypatch.setattr(A, "publish_markdown", lambda kind, md, description=None: seen.setdefault(kind, description) and kind)
    A.publish_churn_model(_churn_out())
    monkeypatch.setattr(A, "quarantine_run_summary", lambda run_id: ([], 0))
    monkeypatch.setattr(A, "quarantine_released", lambda run_id: 0)
    A.publish_quarantine_summary(date(2026, 12, 7), "nightly-x")
    monkeypatch.setattr(H, "write_report", lambda as_of, m, engine: Path("report.html"))
    monkeypatch.setattr(H, "history", lambda engine, as_of, n: None)
    monkeypatch.setattr(H, "report_markdown", lambda m, hist, path: "")
    H.publish_report(date(2026, 12, 7), {}, engine=object())
    assert seen == {"churn": "流失模型 v2：冠军模型", "quarantine": "数据隔离区汇总，夜间运行 2026-12-07",
                    "health": "客户健康度 2026-12-07"}


# ----------------------------------------------------------------------------- run names
def _in_run(monkeypatch, deployment_id, expected_start):
    from prefect.context import FlowRunContext

    ctx = SimpleNamespace(flow_run=SimpleNamespace(deployment_id=deployment_id, expected_start_time=expected_start))
    monkeypatch.setattr(FlowRunContext, "get", classmethod(lambda cls: ctx))


def test_scheduled_run_is_named_after_its_slot(shop_language, monkeypatch):
    """The 18:00 watch that Prefect started at 17:59:58 is the 18:00 watch (name and artifact)."""
    from flows.monitor import hourly_monitor
    from userops import run_names

    monkeypatch.setattr(run_names, "_parameters", lambda: {})
    monkeypatch.setenv("USEROPS_NOW", "2026-12-07T09:59:58")  # 17:59:58 in Shanghai
    _in_run(monkeypatch, uuid4(), datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc))
    assert hourly_monitor.flow_run_name() == "hourly-monitor-2026-12-07 18:00"
    assert run_names.shop_minute() == "2026-12-07 18:00"
    # a flow called directly (no deployment, no schedule): the clock
    _in_run(monkeypatch, None, datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc))
    assert hourly_monitor.flow_run_name() == "hourly-monitor-2026-12-07 17:59"


def test_scheduled_start_from_the_runtime_outside_the_run_context(shop_language, monkeypatch):
    """Outside the run context (a process started for a deployment's run) prefect.runtime says."""
    import prefect.runtime.flow_run as rt

    from userops import run_names

    monkeypatch.setenv("USEROPS_NOW", "2026-12-07T09:59:58")
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", str(uuid4()))
    monkeypatch.setitem(rt.FIELDS, "scheduled_start_time", lambda: datetime(2026, 12, 7, 10, 0, tzinfo=timezone.utc))
    assert run_names.shop_minute() == "2026-12-07 18:00"
    monkeypatch.delenv("PREFECT__RUNTIME__DEPLOYMENT__ID")
    assert run_names.shop_minute() == "2026-12-07 17:59"
