"""Operator- and customer-facing texts of the crisis module (zh-CN default, en)."""
from __future__ import annotations

from userops.i18n import register

STEP_STATUSES = ("pending", "waiting", "in_progress", "done", "expired")  # incident_steps.status


def step_status(code: str, lang: str | None = None) -> str:
    """A step's stored status in the operator's words (an unknown code as it is)."""
    from userops.i18n import t

    return t(f"crisis.step_status.{code}", lang) if code in STEP_STATUSES else str(code)


# the incident's audit log actions (audit_log.action, entity 'incident') and their words in the
# operator's language (``incident show``'s record): the codes stay stored as they are
ACTION_WORDS = {
    "incident.opened": {"zh-CN": "开启事件", "en": "incident opened"},
    "incident.joined": {"zh-CN": "新的 SKU 并入事件", "en": "SKUs joined the incident"},
    "incident.taken_over": {"zh-CN": "由新的流程运行接管", "en": "taken over by a new flow run"},
    "incident.close_refused": {"zh-CN": "未关闭（补偿尚未完成）", "en": "not closed (compensation unfinished)"},
    "incident.closed_unfinished": {"zh-CN": "确认关闭（补偿尚未完成）", "en": "closed as confirmed (compensation unfinished)"},
    "incident.closed": {"zh-CN": "关闭事件", "en": "incident closed"},
    "incident.report_published": {"zh-CN": "结案报告已发布", "en": "closing report published"},
    "step.reminder": {"zh-CN": "截止提醒", "en": "deadline reminder"},
    "step.escalated": {"zh-CN": "超时升级", "en": "escalated (deadline missed)"},
    "step.control.takedown": {"zh-CN": "下架接口已下架商品", "en": "products taken down by the take-down hook"},
    "step.control.manual_task": {"zh-CN": "需人工下架", "en": "manual take-down needed"},
    "step.control.confirmed": {"zh-CN": "已确认人工下架", "en": "manual take-down confirmed"},
    "alert.obsolete": {"zh-CN": "撤回待发的下架告警", "en": "queued take-down alerts withdrawn"},
    "alert.obsolete.deadline": {"zh-CN": "撤回待发的截止提醒/升级", "en": "queued deadline reminders/escalations withdrawn"},
    "step.clarify.drafted": {"zh-CN": "声明草稿已生成", "en": "statement drafted"},
    "statement.sent_back": {"zh-CN": "声明退回修改", "en": "statement sent back"},
    "statement.approved": {"zh-CN": "声明已批准并发布", "en": "statement approved and published"},
    "step.clarify.expired": {"zh-CN": "澄清事实超时", "en": "Clarify missed its deadline"},
    "compensation.planned": {"zh-CN": "补偿已安排", "en": "compensation planned"},
    "step.compensate.planned": {"zh-CN": "补偿用户已开始", "en": "Compensate started"},
    "compensation.template_fallback": {"zh-CN": "致歉改用默认模板", "en": "apologies written from the default template"},
    "compensation.core_reviewed": {"zh-CN": "核心客户致歉已复核", "en": "core apologies reviewed"},
    "step.compensate.core_reviewed": {"zh-CN": "补偿用户继续（复核完成）", "en": "Compensate carries on (review done)"},
    "compensation.calls_released": {"zh-CN": "回访电话已列入回访清单", "en": "calls put on the call list"},
    "step.compensate.expired": {"zh-CN": "补偿用户超时", "en": "Compensate missed its deadline"},
    "step.compensate.done": {"zh-CN": "补偿用户已完成", "en": "Compensate done"},
}


def action_word(action, lang: str | None = None) -> str:
    """An audit action of an incident in the operator's words (an unknown code as it is)."""
    from userops.i18n import t

    return t(f"crisis.action.{action}", lang) if action in ACTION_WORDS else str(action)


# the parts of an incident audit detail ``incident show``'s record shows (the rest is the flow's
# bookkeeping, and free text such as a note or a reason may quote a customer): counts, codes
# and SKUs only, never a phone or an email
DETAIL_KEYS = ("step", "status", "level", "new_skus", "released", "held", "per_tier", "customers")


def detail_words(action, detail: dict, lang: str | None = None) -> str:
    """An incident audit detail in the operator's words (``incident show``'s record): the step
    and its status as the report names them (澄清事实；已完成), the counts, levels and SKUs in a
    phrase; a value with no word for it as ``key: value``. "" when nothing is shown. Only the
    display: the stored detail stays as it is."""
    from tasks.tags import PRIORITIES  # the crisis priorities (tags.priority.<tier>)
    from userops.i18n import join_list, labelled, t
    from userops.privacy import scrub_text

    def count(v):
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer() else None

    parts = []
    for key, v in detail.items():
        if key not in DETAIL_KEYS or v is None:
            continue
        word = None
        if key == "step" and v in STEP_NAMES:
            word = t(f"crisis.step.{v}", lang)
        elif key == "status" and v in STEP_STATUSES:
            word = step_status(v, lang)
        elif key == "level" and str(v) == "escalated":
            word = t("crisis.detail.level.escalated", lang)
        elif key == "level" and str(v).isdigit():
            word = t("crisis.detail.level", lang, pct=v)
        elif key == "new_skus" and isinstance(v, list):
            word = t("crisis.detail.new_skus", lang, skus=join_list(v, lang)) if v else t("crisis.detail.no_new_skus", lang)
        elif key == "released" and count(v) is not None:
            calls = action == "compensation.calls_released"
            word = t("crisis.detail.calls_released" if calls else "crisis.detail.released", lang, n=count(v))
        elif key in ("held", "customers") and count(v) is not None:
            word = t(f"crisis.detail.{key}", lang, n=count(v))
        elif key == "per_tier" and isinstance(v, dict):
            tiers = join_list((f"{t(f'tags.priority.{k}', lang) if k in PRIORITIES else k} {n}" for k, n in v.items()), lang)
            word = t("crisis.detail.per_tier", lang, tiers=tiers)
        if word is None:  # no word for it: the key and the value as stored
            word = labelled(key, join_list(v, lang) if isinstance(v, list) else v, lang)
        parts.append(word)
    return scrub_text(t("crisis.detail.sep", lang).join(parts))


STEP_NAMES = {
    "control": {"zh-CN": "控制扩散", "en": "Control"},
    "clarify": {"zh-CN": "澄清事实", "en": "Clarify"},
    "compensate": {"zh-CN": "补偿用户", "en": "Compensate"},
}

register({f"crisis.action.{code}": texts for code, texts in ACTION_WORDS.items()})

register(
    {
        # an audit detail's parts in incident show's record (detail_words)
        "crisis.detail.sep": {"zh-CN": "；", "en": "; "},
        "crisis.detail.level": {"zh-CN": "已用去 {pct}% 时间", "en": "{pct}% through its window"},
        "crisis.detail.level.escalated": {"zh-CN": "已过截止时间", "en": "past its deadline"},
        "crisis.detail.new_skus": {"zh-CN": "新增 SKU：{skus}", "en": "new SKUs: {skus}"},
        "crisis.detail.no_new_skus": {"zh-CN": "没有新增 SKU", "en": "no new SKUs"},
        "crisis.detail.released": {"zh-CN": "放行 {n}", "en": "{n} released"},
        "crisis.detail.calls_released": {"zh-CN": "{n} 个回访电话", "en": "calls: {n}"},
        "crisis.detail.held": {"zh-CN": "暂缓 {n}", "en": "{n} held"},
        "crisis.detail.customers": {"zh-CN": "受影响客户 {n} 位", "en": "affected customers: {n}"},
        "crisis.detail.per_tier": {"zh-CN": "按优先级：{tiers}", "en": "by priority: {tiers}"},
    }
)

register(
    {
        # a step's status in the operator's words (stored as these codes in incident_steps.status)
        "crisis.step_status.pending": {"zh-CN": "未开始", "en": "pending"},
        "crisis.step_status.waiting": {"zh-CN": "等待人工", "en": "waiting for a human"},
        "crisis.step_status.in_progress": {"zh-CN": "进行中", "en": "in progress"},
        "crisis.step_status.done": {"zh-CN": "已完成", "en": "done"},
        "crisis.step_status.expired": {"zh-CN": "已超时", "en": "missed the deadline"},
        "crisis.step.control": STEP_NAMES["control"],
        "crisis.step.clarify": STEP_NAMES["clarify"],
        "crisis.step.compensate": STEP_NAMES["compensate"],
        "crisis.opened.title": {
            "zh-CN": "危机事件 {incident_id} 已启动：{skus}",
            "en": "Incident {incident_id} opened: {skus}",
        },
        "crisis.opened.body": {
            "zh-CN": "原因：{reason}\n级别：{severity}\n来源：{source}\n受影响客户：{customers} 位\n"
            "控制扩散截止 {control_due}，澄清事实截止 {clarify_due}，补偿用户截止 {compensate_due}（店铺时间）。",
            "en": "Reason: {reason}\nSeverity: {severity}\nSource: {source}\nAffected customers: {customers}\n"
            "Control due {control_due}, Clarify due {clarify_due}, Compensate due {compensate_due} (shop time).",
        },
        "crisis.joined.title": {
            "zh-CN": "危机事件 {incident_id} 有新的触发，已并入（不重复开单）",
            "en": "Incident {incident_id}: a new trigger joined it (no duplicate opened)",
        },
        "crisis.joined.body": {
            "zh-CN": "新触发：{reason}\n新增 SKU：{new_skus}",
            "en": "New trigger: {reason}\nNew SKUs: {new_skus}",
        },
        "crisis.reason.masked": {
            "zh-CN": "事件原因里的手机号、邮箱已打码，事件记录、声明草稿、报告和告警只使用打码后的文本：{reason}。"
            "本次运行在 Prefect 中的参数（运行页面的 Parameters）也只保留打码后的文本。请不要在原因里填写客户的联系方式。",
            "en": "Phone numbers and emails in the reason were masked; the incident, the statement draft, the report "
            "and the alerts only use the masked text: {reason}. The run's parameters in Prefect (the run's Parameters "
            "tab) keep only the masked text too. Do not paste customers' contact details into the reason.",
        },
        "crisis.reason.param_kept": {
            "zh-CN": "未能把本次运行在 Prefect 中的参数 reason 替换为打码后的文本（{error}）：运行页面的 Parameters 仍显示原文。"
            "运行结束后请删除本次运行（`prefect flow-run delete {flow_run_id}`；事件及其记录、报告仍保留在仓库中）。",
            "en": "Could not replace the run's reason parameter in Prefect with the masked text ({error}): the run's "
            "Parameters tab still shows it as typed. Delete this flow run once it has finished "
            "(`prefect flow-run delete {flow_run_id}`; the incident, its record and its report stay in the warehouse).",
        },
        "crisis.unknown_sku": {
            "zh-CN": "仓库里没有任何订单含这些 SKU：{skus}。未开启事件（没有下架、声明或告警）。请检查 SKU 编码后重新运行；"
            "确实要为它们开启事件，请在运行表单中勾选「{unknown_ok}」（命令行：--unknown-ok）。",
            "en": "No order in the warehouse has these SKUs: {skus}. No incident was opened (no take-down, statement or "
            "alert). Check the SKU codes and run again; to open it for them anyway, tick \"{unknown_ok}\" in the Run form "
            "(command line: --unknown-ok).",
        },
        "crisis.wait.statement": {
            "zh-CN": "事件 {incident_id}：等待人工审批官方声明。澄清事实截止 {due}；本次运行等待审批至 {until}（均为店铺时间），"
            "届时仍未审批则不发布声明。请在 Prefect 界面本次运行的页面点 Resume 填写表单，或运行 `userops incident approve {incident_id} --statement`。",
            "en": "Incident {incident_id}: waiting for a human to approve the statement. Clarify is due {due}; this run waits "
            "for the approval until {until} (both shop time), then publishes nothing. Use the "
            "Resume button on this run in the Prefect UI, or run `userops incident approve {incident_id} --statement`.",
        },
        "crisis.wait.review": {
            "zh-CN": "事件 {incident_id}：{n} 位核心客户的致歉等待人工复核。补偿用户截止 {due}；本次运行等待复核至 {until}（均为店铺时间），"
            "届时仍未复核则致歉保持暂缓。请在 Prefect 界面本次运行的页面点 Resume 填写表单，或运行 `userops incident approve {incident_id} --core`。",
            "en": "Incident {incident_id}: apologies to {n} core customers wait for a human review. Compensate is due {due}; "
            "this run waits for the review until {until} (both shop time), then keeps them held. "
            "Use the Resume button on this run in the Prefect UI, or run `userops incident approve {incident_id} --core`.",
        },
        "crisis.timeout.statement": {
            "zh-CN": "事件 {incident_id}：无人按时审批声明，未发布任何声明。仍可运行 `userops incident approve {incident_id} --statement` "
            "审批并发布。",
            "en": "Incident {incident_id}: nobody approved the statement in time; nothing was published. You can still "
            "approve and publish it with `userops incident approve {incident_id} --statement`.",
        },
        "crisis.timeout.review": {
            "zh-CN": "事件 {incident_id}：核心客户的致歉未按时复核，保持暂缓，不会自动发送。仍可运行 "
            "`userops incident approve {incident_id} --core` 复核并发送。",
            "en": "Incident {incident_id}: core apologies were not reviewed in time; they stay held and are never sent "
            "unreviewed. You can still review and send them with `userops incident approve {incident_id} --core`.",
        },
        "crisis.timeout.failed": {
            "zh-CN": "事件 {incident_id}：以下步骤无人按时处理：{steps}（已记录并升级）。请运行 `userops incident approve {incident_id}` 完成。",
            "en": "Incident {incident_id}: nobody acted in time on {steps} (recorded and escalated); finish with "
            "`userops incident approve {incident_id}`.",
        },
        "crisis.takedown.manual.title": {
            "zh-CN": "请手动下架 {skus}（事件 {incident_id}）",
            "en": "Take {skus} off sale by hand (incident {incident_id})",
        },
        "crisis.takedown.manual.body": {
            "zh-CN": "{why}\n请在 {due}（店铺时间）前完成下架，然后在 Prefect 界面的声明审批表单中勾选确认，"
            "或运行 `userops incident approve {incident_id} --takedown`。",
            "en": "{why}\nTake them off sale before {due} (shop time), then tick the confirmation in the "
            "statement form in the Prefect UI, or run `userops incident approve {incident_id} --takedown`.",
        },
        "crisis.takedown.alert_obsolete": {
            "zh-CN": "事件 {incident_id} 的下架已确认，这条人工下架提醒不再需要，未发送。",
            "en": "The take-down of incident {incident_id} is confirmed: this manual take-down reminder is no longer needed and was not sent.",
        },
        "crisis.takedown.nohook": {
            "zh-CN": "未配置下架接口（crisis.takedown_url）。",
            "en": "No take-down hook is configured (crisis.takedown_url).",
        },
        "crisis.takedown.failed": {
            "zh-CN": "下架接口调用失败：{error}",
            "en": "The take-down hook failed: {error}",
        },
        "crisis.statement.title": {
            "zh-CN": "官方声明已发布（事件 {incident_id}）",
            "en": "Official statement published (incident {incident_id})",
        },
        "crisis.statement.form": {
            "zh-CN": "**事件 {incident_id} 的官方声明草稿**\n\n请修改下方声明文本，勾选「{approve}」后提交即发布到{channels}。"
            "澄清事实截止 {due}（店铺时间）。{takedown}",
            "en": "**Draft official statement for incident {incident_id}**\n\nEdit the statement below, tick \"{approve}\" and "
            "submit to publish it to {channels}. Clarify is due {due} (shop time). {takedown}",
        },
        "crisis.actor.ui_operator": {"zh-CN": "运营人员（Prefect 界面）", "en": "operator (Prefect UI)"},
        # an action taken outside a flow run (the command line, no user name known)
        "crisis.actor.operator": {"zh-CN": "运营人员", "en": "operator"},
        # an action from the command line (`userops incident …`) by <user>, or started by a Prefect automation
        "crisis.actor.cli": {"zh-CN": "命令行（{name}）", "en": "command line ({name})"},
        "crisis.actor.automation": {"zh-CN": "自动化（{name}）", "en": "automation ({name})"},
        "crisis.statement.channels.default": {"zh-CN": "告警渠道", "en": "the alert channels"},
        "crisis.artifact.description": {"zh-CN": "事件 {incident_id} 的 3C 处理清单", "en": "3C checklist of incident {incident_id}"},
        "crisis.statement.form.takedown": {
            "zh-CN": "下架仍需人工完成：完成后请勾选「{confirmed}」。",
            "en": "The take-down is a manual task: tick \"{confirmed}\" once it is done.",
        },
        "crisis.review.form": {
            "zh-CN": "**事件 {incident_id}：{n} 位核心客户的致歉消息等待人工复核**\n\n示例（已脱敏）：\n\n{sample}\n\n"
            "勾选「{approve}」发送；「{exclude}」中的客户什么都不会收到（不发致歉，也不列入回访清单）。补偿用户截止 {due}（店铺时间）。",
            "en": "**Incident {incident_id}: apologies to {n} core customers await review**\n\nSample (masked):\n\n{sample}\n\n"
            "Tick \"{approve}\" to send; customers listed in \"{exclude}\" get nothing (no apology, not on the call list). Compensate is due {due} (shop time).",
        },
        "crisis.reminder.title": {
            "zh-CN": "提醒：事件 {incident_id} 的「{step}」已用去 {pct}% 时间",
            "en": "Reminder: incident {incident_id} step {step} is {pct}% through its window",
        },
        # a reminder may be posted later than queued (a channel outage, its rate limit): it
        # names the deadline and when the status was read, never a time left that would be stale
        "crisis.reminder.body": {
            "zh-CN": "截止 {due}（店铺时间）。{at} 时的状态：{status}。",
            "en": "Due {due} (shop time). Status at {at}: {status}.",
        },
        "crisis.escalation.title": {
            "zh-CN": "升级：事件 {incident_id} 的「{step}」已超时",
            "en": "Escalation: incident {incident_id} step {step} is late",
        },
        "crisis.escalation.body": {
            "zh-CN": "截止时间 {due}（店铺时间）已过，{at} 时的状态：{status}。请立即处理。",
            "en": "The deadline {due} (shop time) has passed; status at {at}: {status}. Act now.",
        },
        "crisis.deadline.alert_obsolete": {
            "zh-CN": "事件 {incident_id} 的「{step}」已完成或事件已关闭，这条截止提醒/升级不再需要，未发送。",
            "en": "Incident {incident_id}: step {step} is done or the incident is closed; this deadline reminder/escalation is no longer needed and was not sent.",
        },
        "crisis.expired.title": {
            "zh-CN": "事件 {incident_id} 的「{step}」等待人工超时，未执行",
            "en": "Incident {incident_id}: nobody acted on step {step} in time",
        },
        "crisis.expired.body": {
            "zh-CN": "{what}\n仍可运行 `userops incident approve {incident_id}` 补办。",
            "en": "{what}\nYou can still run `userops incident approve {incident_id}`.",
        },
        "crisis.expired.statement": {
            "zh-CN": "声明未获批准，因此未发布任何声明；补偿照常进行。",
            "en": "The statement was not approved, so nothing was published; compensation goes ahead.",
        },
        "crisis.expired.review": {
            "zh-CN": "核心客户的致歉消息未经复核，保持暂缓，不会自动发送。",
            "en": "Core customers' apologies were not reviewed; they stay held and are never sent unreviewed.",
        },
        "crisis.expired.control": {
            "zh-CN": "下架仍未确认完成。",
            "en": "The take-down is still not confirmed.",
        },
        "crisis.closed.title": {
            "zh-CN": "危机事件 {incident_id} 已关闭",
            "en": "Incident {incident_id} closed",
        },
        "crisis.spike.title": {
            "zh-CN": "投诉激增：{sku} {window} 小时内 {n} 条投诉",
            "en": "Complaint spike: {sku} got {n} complaints in {window}h",
        },
        "feedback.sla.title": {
            "zh-CN": "{n} 条用户反馈超过 {hours} 小时未首次回复",
            "en": "{n} feedback items without a first response after {hours}h",
        },
        "feedback.sla.body": {
            "zh-CN": "按类型：{kinds}\n最早一条提交于 {oldest}（店铺时间）。\n{acks}\n清单：\n{listing}",
            "en": "By kind: {kinds}\nThe oldest was submitted {oldest} (shop time).\n{acks}\nList:\n{listing}",
        },
        "feedback.sla.acks": {
            "zh-CN": "已向 {n} 位用户发送「我们收到了，正在努力」。",
            "en": "{n} customers were told \"we received it and are working on it\".",
        },
        "quality.title": {
            "zh-CN": "投诉率 {rate} 超过 {threshold}：启动质量溯源+服务升级",
            "en": "Complaint rate {rate} above {threshold}: start quality trace + service upgrade",
        },
        "quality.sku": {
            "zh-CN": "- {sku}：{complaints} 条投诉（{share}）",
            "en": "- {sku}: {complaints} complaints ({share})",
        },
        "quality.sku_per_order": {
            "zh-CN": "，每单投诉 {per_order}",
            "en": ", {per_order} per order",
        },
        "quality.body": {
            "zh-CN": "近 {days} 天：{complaints} 条投诉 / {active} 位活跃会员（新客、活跃、忠诚）。\n主要来源 SKU（投诉占比，每单投诉）：\n{skus}",
            "en": "Last {days} days: {complaints} complaints / {active} active customers (new, active, loyal).\nSKUs driving it (share of complaints, complaints per order):\n{skus}",
        },
    }
)

# the hourly monitor's summary lines (flows/monitor.py)
register(
    {
        "monitor.summary.spikes": {"zh-CN": "投诉激增：新发现 {n} 个 SKU（{skus}）", "en": "Complaint spikes: {n} new ({skus})"},
        "monitor.summary.deadlines": {"zh-CN": "危机时限：提醒 {r} 次，升级 {e} 次", "en": "Crisis deadlines: {r} reminders, {e} escalations"},
        "monitor.summary.feedback": {"zh-CN": "超时未回复反馈 {n} 条（新增 {new}，已致意 {ack}）",
                                     "en": "Feedback past the SLA: {n} ({new} new, {ack} acknowledged)"},
    }
)

# the incident report's line about customers the core reviewer excluded (tasks/crisis/report.py)
# and the feedback acknowledgements as planned / sent / waiting (tasks/crisis/feedback.py)
register(
    {
        "crisis.report.excluded": {
            "zh-CN": "复核排除：{n} 位客户经核心客户复核排除，未收到任何致歉，也不在电话回访清单中（上表「电话回访」不含他们）。"
            "退款敞口仍包含他们购买的金额（其中 {exposure}）：他们买过该商品，仍可能申请退款。",
            "en": "Excluded at review: {n} customer(s) were excluded at the core review; they got no apology and are not on "
            "the call list (the call list column above leaves them out). The refund exposure still includes what they "
            "bought ({exposure} of it): they bought the product and may still ask for a refund.",
        },
        "feedback.sla.acks_planned": {
            "zh-CN": "已安排向 {n} 位用户发送「我们收到了，正在努力」（尚未发出：免打扰时段顺延到早上，未配置发送渠道时等待渠道）。",
            "en": "A \"we received it and are working on it\" message to {n} customers is planned (not sent yet: quiet hours "
            "defer it to the morning; without a configured channel it waits for one).",
        },
        "monitor.summary.feedback_acks": {
            "zh-CN": "超时未回复反馈 {n} 条（新增 {new}）；致意消息：本次安排 {planned}，已发送 {sent}，等待发送渠道 {no_channel}，其他待发 {waiting}",
            "en": "Feedback past the SLA: {n} ({new} new); acknowledgements: {planned} planned now, {sent} sent, "
            "{no_channel} waiting for a channel, {waiting} other waiting",
        },
    }
)

# an operator's own crisis template that makes a claim without checking whether it holds
# (tasks/crisis/templates.py GUARDS), and the spike trigger's reason in the operator's words
# (tasks/crisis/spike.py reason_text)
register(
    {
        "crisis.template.claim.taken_down": {
            "zh-CN": "「我们已暂停销售」（下架尚未确认时也这样说）",
            "en": "\"we have stopped selling it\" (even before the take-down is confirmed)",
        },
        "crisis.template.claim.coupon_placed": {
            "zh-CN": "「致歉券已放入您的账户」（电话回访早于带券的致歉消息时也这样说，例如消息在免打扰时段顺延到早上）",
            "en": "\"the apology coupon is in your account\" (even when the call comes before the apology carrying the "
            "coupon was sent, e.g. a message deferred by the quiet hours)",
        },
        "crisis.template.claim.spoken": {
            "zh-CN": "「直接回复本消息即可退款」（在客服电话回访时念的话术里也这样说）",
            "en": "\"reply to this message for a refund\" (even in the call script staff read out on the phone)",
        },
        "crisis.template.unguarded": {
            "zh-CN": "自定义模板 {path} 没有用到变量 {var}：它会说{claim}。改法：像系统模板 {builtin} 那样把这句放进 "
            "`{snippet}`。改好之前，凡是这句话还不成立的消息都改用系统模板的文字；成立后才用您的模板。",
            "en": "Your template {path} does not use the variable {var}: it says {claim}. Fix: put that sentence in "
            "`{snippet}`, as the shipped template {builtin} does. Until then every message for which it is not true yet "
            "is written from the shipped template; yours is used once it holds.",
        },
        "crisis.template.title": {
            "zh-CN": "事件 {incident_id}：自定义致歉模板需要修改",
            "en": "Incident {incident_id}: your apology template needs a fix",
        },
        "crisis.template.fallback": {
            "zh-CN": "事件 {incident_id}：{n} 条致歉文字改用了系统模板（您的模板 {path} 未用 {vars} 判断，而此时{claims}还不成立）。"
            "修改方法见 `userops incident show {incident_id}`。",
            "en": "Incident {incident_id}: {n} apology texts were written from the shipped template (your template {path} "
            "does not check {vars}, and {claims} not true yet). How to fix it: `userops incident show {incident_id}`.",
        },
        "crisis.template.fallback.one": {"zh-CN": "这句话", "en": "that is"},
        "crisis.template.fallback.many": {"zh-CN": "这些话", "en": "those are"},
        "crisis.template.fallback.sep": {"zh-CN": "、", "en": ", "},
        "crisis.template.show": {"zh-CN": "## 自定义模板", "en": "## Your templates"},
        "crisis.reason.spike": {
            "zh-CN": "投诉激增：{window} 小时内 {n} 条投诉",
            "en": "Complaint spike: {n} complaints in {window}h",
        },
    }
)

# the crisis steps' run-log lines (tasks/crisis/*.py): incident ids, SKUs and counts only
register(
    {
        "log.crisis.statement_published": {
            "zh-CN": "事件 {incident_id}：声明已经人工审批并发布",
            "en": "Incident {incident_id}: statement approved by a human and published",
        },
        "log.crisis.takedown_confirmed": {
            "zh-CN": "事件 {incident_id}：{skus} 已确认下架",
            "en": "Incident {incident_id}: take-down of {skus} confirmed",
        },
        "log.crisis.takedown_manual": {
            "zh-CN": "事件 {incident_id}：{skus} 的下架交由人工处理",
            "en": "Incident {incident_id}: take-down of {skus} left to a human",
        },
        "log.crisis.report_not_published": {
            "zh-CN": "事件 {incident_id}：未能在 Prefect 中发布报告（{error}），报告仍保存在事件记录中",
            "en": "Incident {incident_id}: could not publish the report artifact in Prefect ({error}); the report is kept with the incident",
        },
        "log.crisis.close_run_not_released": {
            "zh-CN": "事件已关闭，但无法让等待表单的流程运行 {flow_run_id} 结束（{error}）；它在等待结束时会发现事件已关闭，不会再发布、升级或发送任何内容",
            "en": "The incident is closed but its flow run {flow_run_id}, waiting in a form, could not be released ({error}); when its wait ends it finds the incident closed and publishes, escalates and sends nothing",
        },
        "log.crisis.closed_stop": {
            "zh-CN": "事件 {incident_id} 已于 {closed_at}（店铺时间）由 {closed_by} 关闭：3C 清单到此结束，本次运行不再发布声明、升级或发送致歉",
            "en": "Incident {incident_id} was closed at {closed_at} (shop time) by {closed_by}: its 3C checklist ends here; this run publishes, escalates and sends nothing more",
        },
        "log.crisis.not_auto_closed": {
            "zh-CN": "事件 {incident_id}：补偿尚未完成，未自动关闭：{apologies} 条致歉未发出（其中 {awaiting} 条等待核心客户复核），"
            "{unplanned} 位受影响客户尚未安排致歉，{calls} 个回访电话尚未列入回访清单",
            "en": "Incident {incident_id}: not closed by itself, compensation unfinished: {apologies} apologies not sent ({awaiting} of them "
            "await the core review), {unplanned} affected customers without a planned apology, {calls} calls not yet on the call list",
        },
        "log.crisis.spike_pending": {
            "zh-CN": "Prefect 事件不可用：{sku} 的投诉激增暂未发出，下次检查时再发",
            "en": "Prefect events are not available; the complaint spike of {sku} stays pending until the next check",
        },
        "log.crisis.orphaned_work": {
            "zh-CN": "事件 {incident_id}：并入它的运行中途失败、留下了未完成的工作，且没有运行在推进它；现已补做：{done}",
            "en": "Incident {incident_id}: a run that joined it died with work left and no run drives it; done now: {done}",
        },
        "log.crisis.done.take_down_confirmed": {"zh-CN": "下架 {skus}（已确认）", "en": "take-down of {skus} (confirmed)"},
        "log.crisis.done.take_down_manual": {"zh-CN": "下架 {skus}（交由人工）", "en": "take-down of {skus} (left to a human)"},
        "log.crisis.done.planned": {"zh-CN": "新安排致歉 {n} 条", "en": "{n} apologies planned"},
    }
)
