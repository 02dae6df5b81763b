"""The flows' words in the Prefect UI (zh-CN default, en): the Run forms' fields of every
deployed flow (``param.<flow>.<parameter>.title/description``, see ``userops.forms.param``),
the crisis pause forms' fields (``form.statement.*``, ``form.review.*``, see
``userops.forms.form_texts``) and the run-log lines the flows write themselves (``log.*``).

A parameter's text says what to type and what leaving it empty does; the engineers' notes stay
in the flows' docstrings."""
from __future__ import annotations

from userops.i18n import register

_TODAY_ZH = "留空则为店铺时区的今天。"
_TODAY_EN = "Leave empty for today in the shop's timezone."

register(
    {
        # ------------------------------------------------------------ Run forms (deployments)
        # nightly
        "param.nightly.as_of.title": {"zh-CN": "业务日期", "en": "Business day"},
        "param.nightly.as_of.description": {
            "zh-CN": "要计算的营业日，格式 YYYY-MM-DD。" + _TODAY_ZH,
            "en": "The business day to compute, YYYY-MM-DD. " + _TODAY_EN,
        },
        "param.nightly.full_refresh.title": {"zh-CN": "全量刷新", "en": "Full refresh"},
        "param.nightly.full_refresh.description": {
            "zh-CN": "从头重新读取所有数据来源，而不只是上次运行以来变更的记录。较慢；在源系统中修正数据后使用。",
            "en": "Re-read every source from the beginning instead of only the records changed since the last run. Slower; use it after fixing data at the source.",
        },
        # weekly-retrain
        "param.retrain.as_of.title": {"zh-CN": "训练日期", "en": "Train as of"},
        "param.retrain.as_of.description": {
            "zh-CN": "按此日期训练，格式 YYYY-MM-DD（标签需要此日期之前一个完整的观察期）。" + _TODAY_ZH,
            "en": "The day to train as of, YYYY-MM-DD (labels need a full horizon before it). " + _TODAY_EN,
        },
        # awakening / retention / recall
        "param.campaign.name.title": {"zh-CN": "活动", "en": "Campaign"},
        "param.campaign.name.description": {
            "zh-CN": "活动名称，即 campaigns/ 下的文件名，如 awakening（唤醒）、retention（留存）、recall（召回）。",
            "en": "The campaign: its file name in campaigns/, e.g. awakening, retention, recall.",
        },
        "param.campaign.channel.title": {"zh-CN": "改用渠道", "en": "Send through"},
        "param.campaign.channel.description": {
            "zh-CN": "本次改用此渠道发送（email 邮件、sms 短信、push 推送、staff 员工联系），用于一次性发送。留空则按每条消息自己的渠道。",
            "en": "Send through this channel instead (email, sms, push, staff), for one-off sends. Leave empty to use each message's own channel.",
        },
        "param.campaign.as_of.title": {"zh-CN": "业务日期", "en": "Business day"},
        "param.campaign.as_of.description": {
            "zh-CN": "按此营业日计划活动，格式 YYYY-MM-DD。" + _TODAY_ZH,
            "en": "The business day to plan for, YYYY-MM-DD. " + _TODAY_EN,
        },
        # silent-share-recall
        "param.recall_plan.silent_share.title": {"zh-CN": "沉默客户占比", "en": "Silent share"},
        "param.recall_plan.silent_share.description": {
            "zh-CN": "健康检查看到的沉默客户占比（如 0.38），写入本次运行的备注。手动启动时留空。",
            "en": "The silent share the health check saw (e.g. 0.38); it goes into the run's notes. Leave empty when starting it by hand.",
        },
        "param.recall_plan.as_of.title": {"zh-CN": "健康检查日期", "en": "Health-check day"},
        "param.recall_plan.as_of.description": {
            "zh-CN": "触发本计划的健康检查的营业日，格式 YYYY-MM-DD。" + _TODAY_ZH,
            "en": "The business day of the health check, YYYY-MM-DD. " + _TODAY_EN,
        },
        # crisis-response
        "param.crisis.skus.title": {"zh-CN": "商品 SKU", "en": "Product SKUs"},
        "param.crisis.skus.description": {
            "zh-CN": "涉及的商品 SKU，一个或多个（如 SKU-0042）。其中任一商品已有未结事件时加入该事件，不会重复开启。",
            "en": "The products concerned, one or more SKUs (e.g. SKU-0042). An open incident for any of them is joined, never duplicated.",
        },
        "param.crisis.reason.title": {"zh-CN": "事件原因", "en": "What happened"},
        "param.crisis.reason.description": {
            "zh-CN": "用一句话说明发生了什么，记入事件和告警（默认的官方声明模板不引用它）。其中的手机号和邮箱会被遮蔽（本次运行的参数在开始时也会替换）；请勿粘贴客户的联系方式。",
            "en": "What happened, in one sentence; it goes into the incident and its alerts (the default statement templates do not quote it). Phone numbers and emails in it are masked (also in this run's parameters, replaced at its start); do not paste customers' contact details.",
        },
        "param.crisis.severity.title": {"zh-CN": "严重程度", "en": "Severity"},
        "param.crisis.severity.description": {
            "zh-CN": "low 低、medium 中、high 高、critical 严重。high 和 critical 的开启告警为最高级别。",
            "en": "How bad it is: low, medium, high or critical. High and critical open the incident with a critical alert.",
        },
        "param.crisis.unknown_ok.title": {"zh-CN": "允许未知 SKU", "en": "Allow unknown SKUs"},
        "param.crisis.unknown_ok.description": {
            "zh-CN": "保持不勾选：仓库中没有任何订单的 SKU（通常是输入错误）会在开启事件、下架或发布声明之前终止本次运行。仅当确需为这样的 SKU 开启事件时勾选（该商品尚未通过店铺订单销售）。",
            "en": "Leave unticked: a SKU that no order in the warehouse has (usually a typo) stops the run before anything is opened, taken down or announced. Tick it only to open the incident for such a SKU anyway (a product not sold through the shop's orders yet).",
        },
        # alert-crashed-run
        "param.crash_alert.flow_run_ref.title": {"zh-CN": "崩溃的运行", "en": "Crashed run"},
        "param.crash_alert.flow_run_ref.description": {
            "zh-CN": "崩溃的流程运行 ID，或自动化传入的事件资源 ID prefect.flow-run.<ID>。",
            "en": "The crashed flow run's id, or the event resource id prefect.flow-run.<id> the automation passes.",
        },
        # ------------------------------------------------------------ pause forms (crisis-response)
        "form.statement.statement.title": {"zh-CN": "官方声明", "en": "Official statement"},
        "form.statement.statement.description": {
            "zh-CN": "在此编辑：批准的内容即原样发布。",
            "en": "Edit it here: exactly what you approve is published.",
        },
        "form.statement.approve.title": {"zh-CN": "批准发布", "en": "Approve and publish"},
        "form.statement.approve.description": {
            "zh-CN": "勾选即发布。不勾选则退回：您的修改会保留，流程再次等待。",
            "en": "Tick to publish. Leave unticked to send it back: your edits are kept and the flow waits again.",
        },
        "form.statement.approver.title": {"zh-CN": "批准人", "en": "Approver"},
        "form.statement.approver.description": {
            "zh-CN": "您的姓名（必填）：谁批准（或退回）了声明，会记入审计日志和该步骤。",
            "en": "Your name, required: who approved (or sent back) the statement is recorded in the audit log and on the step.",
        },
        "form.statement.takedown_confirmed.title": {"zh-CN": "已确认下架", "en": "Take-down confirmed"},
        "form.statement.takedown_confirmed.description": {
            "zh-CN": "仅当下架是人工任务时：商品下架后勾选。",
            "en": "Only if the take-down is a manual task: tick once the products are off sale.",
        },
        "form.statement.note.title": {"zh-CN": "备注", "en": "Note"},
        "form.statement.note.description": {"zh-CN": "可选，记入记录。", "en": "Optional note for the record."},
        "form.review.approve.title": {"zh-CN": "批准发送", "en": "Approve and send"},
        "form.review.approve.description": {
            "zh-CN": "勾选即发送已审核的致歉消息。",
            "en": "Tick to send the reviewed apologies.",
        },
        "form.review.reviewer.title": {"zh-CN": "审核人", "en": "Reviewer"},
        "form.review.reviewer.description": {
            "zh-CN": "您的姓名（必填）：谁审核了核心客户的致歉消息，会记入审计日志和该步骤。",
            "en": "Your name, required: who reviewed the core customers' apologies is recorded in the audit log and on the step.",
        },
        "form.review.exclude_customers.title": {"zh-CN": "排除的客户", "en": "Excluded customers"},
        "form.review.exclude_customers.description": {
            "zh-CN": "不从本次事件获得任何内容的客户 ID：不发致歉，也不在电话名单上。",
            "en": "Customer ids who get nothing from this incident: no apology, not on the call list.",
        },
        "form.review.note.title": {"zh-CN": "备注", "en": "Note"},
        "form.review.note.description": {"zh-CN": "可选，记入记录。", "en": "Optional note for the record."},
        # ------------------------------------------------------------ run-log lines (crisis-response)
        "log.crisis.take_over": {
            "zh-CN": "事件 {incident_id}：原先推进它的运行已不在（崩溃、取消或已结束），由本次运行接管",
            "en": "Incident {incident_id}: the run that drove it is gone (crashed, cancelled or finished); this run takes over",
        },
        "log.crisis.joined": {
            "zh-CN": "已加入事件 {incident_id}（由运行 {owner} 推进）；新加入的 SKU：{new_skus}",
            "en": "Joined incident {incident_id} (driven by flow run {owner}); new SKUs: {new_skus}",
        },
        "log.crisis.joined.none": {"zh-CN": "无", "en": "none"},
    }
)
