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
        # ------------------------------------------------------------ run-log lines (nightly)
        # the nightly run's stages as its run log names them (flows/stages.py NIGHTLY_STAGES)
        "nightly.stage_name.ingest": {"zh-CN": "导入数据", "en": "ingest"},
        "nightly.stage_name.quarantine-report": {"zh-CN": "隔离区报告", "en": "quarantine report"},
        "nightly.stage_name.tags": {"zh-CN": "客户标签", "en": "customer tags"},
        "nightly.stage_name.health": {"zh-CN": "健康检查", "en": "health check"},
        "nightly.stage_name.churn": {"zh-CN": "流失评分", "en": "churn scoring"},
        "nightly.stage_name.campaigns": {"zh-CN": "营销活动", "en": "campaigns"},
        "nightly.stage_name.crisis": {"zh-CN": "危机检查", "en": "crisis check"},
        "nightly.stage_name.digest": {"zh-CN": "夜间摘要", "en": "nightly digest"},
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


# The deployments' descriptions (the UI's Deployments page) in the shop's language, set by
# userops.deploy.render_prefect_yaml (`userops serve`); en is prefect.yaml's own text (tested equal).
register(
    {
        "deploy.description.nightly": {
            "zh-CN": "夜间任务：从 CRM 和订单系统拉取客户、订单与反馈，校验后入库，刷新标签与健康度，计算流失风险，运行各项活动，检查投诉激增，发送夜间摘要。默认每天店铺时间 02:00 运行；同一时间只运行一个（第二个会等第一个结束）。",
            "en": "The nightly pipeline (夜间任务): pull customers, orders and feedback from the CRM and the order system, validate and store them, refresh tags and health, score churn, run the campaigns, check for complaint spikes, send the digest. Runs at 02:00 shop time; never two at once (a second run waits for the first to finish).",
        },
        "deploy.description.weekly-retrain": {
            "zh-CN": "流失模型每周重训：用最近一个标签完整的时间窗训练，与当前冠军模型在同一留出集上比较，不输于冠军才晋升。",
            "en": "Weekly churn-model retrain (流失模型每周重训): train on the latest complete window, compare with the current champion on the same holdout, promote only if it does not lose.",
        },
        "deploy.description.hourly-monitor": {
            "zh-CN": "每小时巡检：超过 24 小时仍未首次回复的反馈（告警，可选给客户发确认）和各商品的投诉激增（发出事件 userops.complaints.spike，自动开启危机事件）。",
            "en": "Hourly watch (每小时巡检): feedback without a first response after 24 hours (alert, optional acknowledgement to the customer) and complaint spikes per product (emits userops.complaints.spike, which opens a crisis incident).",
        },
        "deploy.description.awakening": {
            "zh-CN": "唤醒活动：沉默会员。夜间任务中会自动运行；在这里启动即立刻运行。",
            "en": "Awakening campaign (唤醒): silent members. Runs inside the nightly pipeline; start it here to run it now.",
        },
        "deploy.description.retention": {
            "zh-CN": "留存活动：流失风险高的活跃与忠诚会员；高价值会员由专人关怀。夜间任务中会自动运行；在这里启动即立刻运行。",
            "en": "Retention campaign (留存): active and loyal members with a high churn risk; VIP care for high value. Runs inside the nightly pipeline; start it here to run it now.",
        },
        "deploy.description.recall": {
            "zh-CN": "召回活动：历史价值为中、高的流失会员。夜间任务中会自动运行；在这里启动即立刻运行。",
            "en": "Recall campaign (召回): churned members with mid or high past value. Runs inside the nightly pipeline; start it here to run it now.",
        },
        "deploy.description.silent-share-recall": {
            "zh-CN": "流失预警召回计划：健康检查报告沉默占比超过阈值时自动启动（事件 userops.health.silent-share-high）。",
            "en": "Churn-warning recall plan (流失预警召回计划): started automatically when the health check reports a silent share above the threshold (event userops.health.silent-share-high).",
        },
        "deploy.description.crisis-response": {
            "zh-CN": "3C 危机处理：2 小时内控制（下架商品），4 小时内澄清（声明由人在此界面审批），24 小时内补偿（受影响的客户，核心客户优先）。手动启动时填写商品、事件经过和严重程度；投诉激增（事件 userops.complaints.spike）会自动启动。",
            "en": "3C crisis response (危机处理): control within 2h (take the product down), clarify within 4h (statement approved by a human here in the UI), compensate within 24h (affected customers, core first). Start it by hand with the products, what happened and the severity; a complaint spike (event userops.complaints.spike) starts it by itself.",
        },
        "deploy.description.crisis-watch": {
            "zh-CN": "危机截止巡检：每 5 分钟检查处理中的危机事件——各步骤用去 50%/90% 时间时提醒，超过截止时间时升级，并立即投递这些告警；没有处理中的事件时只做一次查询。",
            "en": "Crisis deadline watch (危机截止巡检) every 5 minutes: for open incidents, a reminder when a step is 50%/90% through its window and an escalation when its deadline passes, delivered at once; with no open incident it only looks.",
        },
        "deploy.description.alert-crashed-run": {
            "zh-CN": "进程崩溃告警：某次运行的进程在发出告警前就已终止时，由自动化规则“userops: alert on crashed flow runs”启动，通知运营人员。",
            "en": 'Alert the operator about a crashed flow run (进程崩溃告警). Started by the automation "userops: alert on crashed flow runs" when a run\'s process died before its hooks could alert.',
        },
        "deploy.description.deliver-messages": {
            "zh-CN": "消息投递：每 10 分钟发送到期的客户消息——因免打扰时段推迟的、服务商出错后重试的，以及审核通过的（核心客户致歉、VIP 关怀）。每条只发送一次：每次触达都带幂等键。",
            "en": "Send customer messages that are due (消息投递) every 10 minutes: touches deferred by quiet hours, retries after a provider error, and reviewed touches (core customers' apologies, VIP care) once approved. Exactly once: every touch carries its idempotency key.",
        },
        "deploy.description.deliver-alerts": {
            "zh-CN": "告警投递：默认每 5 分钟投递发件箱中等待的告警，因渠道故障或限流而暂缓的告警会在渠道恢复后发出。",
            "en": "Deliver the alerts waiting in the outbox (告警投递) every 5 minutes, so alerts held back by a channel outage or its rate limit go out when the channel is back.",
        },
    }
)


# How each deployment starts, as `userops serve` and `userops serve --check` list it
# (userops.deploy.DeploymentInfo.how / concurrency_text); en is the listing's original text.
register(
    {
        "deploy.how.by_hand": {"zh-CN": "手动启动", "en": "by hand"},
        "deploy.how.every": {"zh-CN": "每 {seconds} 秒", "en": "every {seconds}s"},
        "deploy.how.every_minutes": {"zh-CN": "每 {n} 分钟", "en": "every {n} min"},
        "deploy.how.every_hours": {"zh-CN": "每 {n} 小时", "en": "every {n} h"},
        "deploy.how.cron": {"zh-CN": "cron {cron}（时区 {tz}）", "en": "cron {cron} ({tz})"},
        # the cron patterns prefect.yaml uses, in words (any other stays "cron …")
        "deploy.how.daily": {"zh-CN": "每天 {time}（时区 {tz}）", "en": "daily at {time} ({tz})"},
        "deploy.how.weekly": {"zh-CN": "每{weekday} {time}（时区 {tz}）", "en": "{weekday} at {time} ({tz})"},
        "deploy.how.hourly": {"zh-CN": "每小时第 {minute} 分（时区 {tz}）", "en": "hourly at :{minute:0>2} ({tz})"},
        "deploy.how.hourly_sharp": {"zh-CN": "每小时整点（时区 {tz}）", "en": "hourly on the hour ({tz})"},
        "deploy.how.weekday": {"zh-CN": "周日|周一|周二|周三|周四|周五|周六", "en": "Sundays|Mondays|Tuesdays|Wednesdays|Thursdays|Fridays|Saturdays"},
        "deploy.how.on_event": {"zh-CN": "事件 {event} 触发", "en": "on event {event}"},
        "deploy.how.inactive": {"zh-CN": "{what}（已停用）", "en": "{what} [inactive]"},
        "deploy.how.sep": {"zh-CN": "；", "en": "; "},
        "deploy.how.concurrency": {"zh-CN": "并发上限 {limit}（{strategy}）", "en": "concurrency {limit} ({strategy})"},
        # Prefect's collision strategies (what a run beyond the limit does)
        "deploy.how.collision.enqueue": {"zh-CN": "超出时排队等待", "en": "ENQUEUE"},
        "deploy.how.collision.cancel_new": {"zh-CN": "超出时取消新运行", "en": "CANCEL_NEW"},
    }
)
