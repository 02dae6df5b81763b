"""Operator-facing alert text (zh-CN default, en)."""
from __future__ import annotations

from userops.i18n import register

SEVERITY_ICON = {"info": "ℹ️", "warning": "⚠️", "error": "🔴", "critical": "🚨"}
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}

register(
    {
        # generic
        "alert.view_run": {"zh-CN": "查看运行", "en": "View run"},
        "alert.view": {"zh-CN": "查看详情", "en": "View details"},
        "alert.merged.title": {"zh-CN": "{n} 条告警(已合并发送)", "en": "{n} alerts (merged)"},
        "alert.merged.more": {"zh-CN": "…另有 {n} 条,见 `userops alert list`", "en": "…and {n} more, see `userops alert list`"},
        "alert.part": {"zh-CN": "(第 {i}/{n} 部分)", "en": "(part {i}/{n})"},
        "alert.test.title": {"zh-CN": "userops 测试消息", "en": "userops test message"},
        "alert.test.body": {
            "zh-CN": "这是一条来自 userops 的测试消息,渠道 `{channel}` 配置正确。",
            "en": "This is a test message from userops: channel `{channel}` is configured correctly.",
        },
        # flow failures
        "alert.flow_failed.title": {"zh-CN": "流程失败:{flow}", "en": "Flow failed: {flow}"},
        "alert.flow_crashed.title": {"zh-CN": "流程崩溃:{flow}", "en": "Flow crashed: {flow}"},
        "alert.flow.run": {"zh-CN": "运行:{run}", "en": "Run: {run}"},
        "alert.flow.error": {"zh-CN": "错误:{error}", "en": "Error: {error}"},
        "alert.flow.state": {"zh-CN": "状态:{state}", "en": "State: {state}"},
        "alert.flow.part_of": {"zh-CN": "所属:{flow} 的运行 {run}", "en": "Part of: {flow} run {run}"},
        "alert.flow.crash_hint": {
            "zh-CN": "进程或基础设施中断(被杀死、内存不足、机器重启),运行内的钩子未能执行。",
            "en": "The process or its infrastructure went away (killed, out of memory, reboot); in-run hooks could not run.",
        },
        # validation / quarantine
        "alert.validation.title": {"zh-CN": "数据校验失败:{table} 整批被拒", "en": "Validation failed: the {table} batch was rejected"},
        "alert.validation.body": {
            "zh-CN": "该批次未入库,水位未前移;坏行已进入隔离区。原因:{reason}",
            "en": "Nothing of the batch was loaded and the watermark did not move; bad rows are in quarantine. Reason: {reason}",
        },
        "alert.validation.rules": {"zh-CN": "规则:{rules}", "en": "Rules: {rules}"},
        "alert.validation.hint": {
            "zh-CN": "查看:`userops quarantine list`;修复源数据后重新运行夜间任务。",
            "en": "See `userops quarantine list`; fix the source data and re-run the nightly flow.",
        },
        "alert.quarantine.title": {"zh-CN": "隔离比例偏高:{tables}", "en": "Quarantine spike: {tables}"},
        "alert.quarantine.line": {
            "zh-CN": "{table}:读取 {read} 行,隔离 {quarantined} 行({share},阈值 {threshold})",
            "en": "{table}: {read} read, {quarantined} quarantined ({share}, threshold {threshold})",
        },
        # digest
        "digest.title": {"zh-CN": "夜间摘要 {as_of}", "en": "Nightly digest {as_of}"},
        "digest.run": {"zh-CN": "**运行**:{status},用时 {duration}", "en": "**Run**: {status}, took {duration}"},
        "digest.status.running": {"zh-CN": "各阶段完成", "en": "all stages done"},
        "digest.status.completed": {"zh-CN": "完成", "en": "completed"},
        "digest.status.failed": {"zh-CN": "失败", "en": "failed"},
        "digest.status.unknown": {"zh-CN": "未知(无运行记录)", "en": "unknown (no run record)"},
        "digest.stages": {"zh-CN": "阶段用时:{stages}", "en": "Stage times: {stages}"},
        "digest.ingest.head": {"zh-CN": "**数据**", "en": "**Data**"},
        "digest.ingest.line": {
            "zh-CN": "{table}:抽取 {read},入库 {loaded},隔离 {quarantined}",
            "en": "{table}: {read} extracted, {loaded} loaded, {quarantined} quarantined",
        },
        "digest.ingest.qline": {"zh-CN": "{table}:隔离 {quarantined} 行", "en": "{table}: {quarantined} quarantined"},
        "digest.ingest.none": {"zh-CN": "本次运行无隔离记录", "en": "nothing quarantined in this run"},
        "digest.ingest.rules": {"zh-CN": "隔离规则:{rules}", "en": "Quarantine rules: {rules}"},
        "digest.stage.head": {"zh-CN": "**生命周期变化**", "en": "**Lifecycle changes**"},
        "digest.stage.line": {"zh-CN": "{from_stage} → {to_stage}:{n}", "en": "{from_stage} → {to_stage}: {n}"},
        "digest.stage.none": {"zh-CN": "今日无阶段变化", "en": "no stage changes today"},
        "digest.stage.first": {"zh-CN": "(首次)", "en": "(first seen)"},
        "digest.health.head": {"zh-CN": "**健康指标**(对比 {prev})", "en": "**Health** (vs {prev})"},
        "digest.health.head_first": {"zh-CN": "**健康指标**(首个快照)", "en": "**Health** (first snapshot)"},
        "digest.health.head_plain": {"zh-CN": "**健康指标**", "en": "**Health**"},
        "digest.health.none": {"zh-CN": "尚无健康快照", "en": "no health snapshot yet"},
        "digest.health.breach": {"zh-CN": "⚠️ 超阈值:{metric} = {value}(阈值 {threshold})", "en": "⚠️ breach: {metric} = {value} (threshold {threshold})"},
        "digest.churn.drift": {"zh-CN": "⚠️ 流失模型 {version} 出现漂移", "en": "⚠️ churn model {version} drifted"},
        "digest.churn.bands": {"zh-CN": "流失风险:高 {high},中 {medium},低 {low}", "en": "Churn risk: high {high}, medium {medium}, low {low}"},
        "digest.campaigns.head": {"zh-CN": "**活动触达**", "en": "**Campaigns**"},
        "digest.campaigns.line": {"zh-CN": "{campaign}:{counts}", "en": "{campaign}: {counts}"},
        "digest.campaigns.none": {"zh-CN": "今晚无触达", "en": "no touches tonight"},
        "digest.human.head": {"zh-CN": "**需要人工处理**", "en": "**Needs a human**"},
        "digest.human.none": {"zh-CN": "无", "en": "nothing"},
        "digest.human.incidents": {"zh-CN": "进行中的危机事件:{n}", "en": "open incidents: {n}"},
        "digest.human.step": {
            "zh-CN": "事件 {incident} 的「{step}」截止 {deadline}({status})",
            "en": "incident {incident}: {step} due {deadline} ({status})",
        },
        "digest.human.reviews": {"zh-CN": "待审核的触达:{n}", "en": "touches awaiting review: {n}"},
        "digest.human.alerts": {"zh-CN": "未送达的告警:{n}(`userops alert list`)", "en": "undelivered alerts: {n} (`userops alert list`)"},
        "digest.human.breaches": {"zh-CN": "今日超阈值指标:{n}", "en": "threshold breaches today: {n}"},
        "digest.link": {"zh-CN": "在 Prefect 中查看本次运行", "en": "View this run in Prefect"},
    }
)

METRIC_LABELS = {
    "members": {"zh-CN": "会员", "en": "members"},
    "active": {"zh-CN": "活跃", "en": "active"},
    "silent_share": {"zh-CN": "沉默占比", "en": "silent share"},
    "complaint_rate": {"zh-CN": "投诉率", "en": "complaint rate"},
    "satisfaction": {"zh-CN": "满意度", "en": "satisfaction"},
    "nps": {"zh-CN": "NPS", "en": "NPS"},
    "repeat_rate": {"zh-CN": "复购率", "en": "repeat rate"},
    "conversion": {"zh-CN": "转化率", "en": "conversion"},
    "avg_ltv": {"zh-CN": "平均 LTV", "en": "avg LTV"},
    "dau": {"zh-CN": "DAU", "en": "DAU"},
    "mau": {"zh-CN": "MAU", "en": "MAU"},
    "model_drift": {"zh-CN": "模型漂移", "en": "model drift"},
}

STAGE_LABELS = {
    "prospect": {"zh-CN": "潜客", "en": "prospect"},
    "new": {"zh-CN": "新客", "en": "new"},
    "active": {"zh-CN": "活跃", "en": "active"},
    "loyal": {"zh-CN": "忠诚", "en": "loyal"},
    "silent": {"zh-CN": "沉默", "en": "silent"},
    "churned": {"zh-CN": "流失", "en": "churned"},
}

TOUCH_STATUS_LABELS = {
    "sent": {"zh-CN": "已发送", "en": "sent"},
    "planned": {"zh-CN": "待发送", "en": "planned"},
    "awaiting_review": {"zh-CN": "待审核", "en": "awaiting review"},
    "in_flight": {"zh-CN": "发送中", "en": "in flight"},
    "failed": {"zh-CN": "失败", "en": "failed"},
    "suppressed": {"zh-CN": "已抑制", "en": "suppressed"},
    "control": {"zh-CN": "对照组", "en": "control"},
}

STEP_LABELS = {
    "control": {"zh-CN": "控制扩散", "en": "control"},
    "clarify": {"zh-CN": "澄清事实", "en": "clarify"},
    "compensate": {"zh-CN": "补偿用户", "en": "compensate"},
}


def label(table: dict, key: str | None, lang: str) -> str:
    if key is None:
        return "—"
    return table.get(key, {}).get(lang, key)
