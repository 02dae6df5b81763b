"""Operator- and customer-facing words of the campaigns, zh-CN and en."""
from __future__ import annotations

from userops.i18n import join_list, register, t

EXCLUSION_REASONS = ("unsubscribed", "no_consent", "no_contact", "open_crisis", "campaign_cap", "global_cap", "budget")

register(
    {
        # customer-facing pieces of a message
        "campaign.shop": {"zh-CN": "本店", "en": "our shop"},
        "campaign.member": {"zh-CN": "会员", "en": "member"},
        "campaign.category_fallback": {"zh-CN": "好物", "en": "favourites"},
        "campaign.unsubscribe.email": {
            "zh-CN": "不想再收到此类邮件？点此退订：{url}",
            "en": "Don't want these emails? Unsubscribe: {url}",
        },
        "campaign.unsubscribe.sms": {"zh-CN": "回T退订", "en": "Reply T to unsubscribe"},
        "campaign.unsubscribe.push": {"zh-CN": "退订：{url}", "en": "Unsubscribe: {url}"},
        "campaign.unsubscribe.staff": {
            "zh-CN": "（如您不希望再收到此类消息，回复T即可退订）",
            "en": "(If you'd rather not hear from us like this, reply T to unsubscribe.)",
        },
        # exclusion reasons
        "campaign.reason.already_planned": {"zh-CN": "本周期已安排", "en": "already planned this period"},
        "campaign.reason.unsubscribed": {"zh-CN": "已退订", "en": "unsubscribed"},
        "campaign.reason.no_consent": {"zh-CN": "未同意营销", "en": "no marketing consent"},
        "campaign.reason.no_contact": {"zh-CN": "缺少联系方式", "en": "no address for the channel"},
        "campaign.reason.open_crisis": {"zh-CN": "处于未关闭的危机事件中", "en": "inside an open crisis"},
        "campaign.reason.campaign_cap": {"zh-CN": "本活动频次上限", "en": "campaign frequency cap"},
        "campaign.reason.global_cap": {"zh-CN": "全局频次上限", "en": "global frequency cap"},
        "campaign.reason.budget": {"zh-CN": "礼品/优惠券预算用完", "en": "gift/coupon budget used up"},
        # plan / run read-out
        "campaign.plan.header": {
            "zh-CN": "活动 {name}（{title}）周期 {period}：受众 {audience} 人",
            "en": "Campaign {name} ({title}) period {period}: audience {audience}",
        },
        # audience = excluded + already planned this period + control + planned: every member
        # of the audience in exactly one bucket (a re-run's already planned ones included)
        "campaign.plan.line": {
            "zh-CN": "{name}：受众 {audience} = 排除 {excluded} + 本周期已安排 {already} + 对照组 {control} + 计划发送 {planned}（其中 {deferred} 条在免打扰时段结束后发送）",
            "en": "{name}: audience {audience} = excluded {excluded} + already planned this period {already} + control {control} + planned {planned} ({deferred} held until quiet hours end)",
        },
        "campaign.plan.disabled": {
            "zh-CN": "{name} 已停用（enabled: false）：这次按手动运行照常计划和发送；夜间任务不会运行它",
            "en": "{name} is disabled (enabled: false): run by hand, it is planned and sent all the same; the nightly run skips it",
        },
        "campaign.plan.excluded": {"zh-CN": "排除原因：", "en": "Excluded, by reason:"},
        "campaign.plan.split": {
            "zh-CN": "可触达 {eligible} 人 → 对照组 {control} 人，实验组 {treatment} 人（其中预算排除 {budget}）",
            "en": "Contactable {eligible} → control {control}, treatment {treatment} (budget cut {budget})",
        },
        "campaign.plan.planned": {
            "zh-CN": "计划发送 {planned} 条（因免打扰时段延后 {deferred} 条），礼品成本 {cost}",
            "en": "Planned {planned} messages ({deferred} deferred by quiet hours), gift cost {cost}",
        },
        "campaign.plan.variants": {"zh-CN": "版本分布：{variants}；渠道：{channels}", "en": "Variants: {variants}; channels: {channels}"},
        "campaign.plan.sample": {"zh-CN": "消息样例（个人信息已脱敏）：", "en": "Sample messages (personal data masked):"},
        "campaign.plan.dry_run": {"zh-CN": "预演：未写入任何数据，未发送任何消息。", "en": "Dry run: nothing written, nothing sent."},
        "campaign.delivery.line": {
            "zh-CN": "发送 {sent} 条，失败 {failed}，待重试 {retry}，发送前拦截 {suppressed}，崩溃后补发 {resent}",
            "en": "Sent {sent}, failed {failed}, retry scheduled {retry}, suppressed at send {suppressed}, resent after crash {resent}",
        },
        "campaign.delivery.waiting": {
            "zh-CN": "等待渠道配置 {n} 条（{channels}），配置后的下一次发送会发出",
            "en": "waiting for a provider {n} ({channels}); they go out with the first send after it is set",
        },
        "campaign.delivery.channel_unconfigured": {
            "zh-CN": "渠道 {channel} 没有配置发送服务：请设置 {setting}，或不指定 --channel 按各活动自己的渠道发送",
            "en": "no provider is configured for the {channel} channel: set {setting}, or leave out --channel to use each campaign's own channel",
        },
        "campaign.delivery.waiting.channel": {"zh-CN": "{channel} {n}：请设置 {setting}", "en": "{channel} {n}: set {setting}"},
        # the sender's log line (stderr of `userops campaign run`, the run's log in Prefect)
        "campaign.delivery.no_provider": {
            "zh-CN": "未配置发送服务，{n} 条消息在等待、没有发出（{channels}）；配置后的下一次发送会发出",
            "en": "no provider configured: {n} message(s) wait, not sent ({channels}); they go out with the first send after it is set",
        },
        # the sender's other run-log lines (tasks/messaging.py): channels, counts and days only, never a recipient
        "log.messaging.rate_limited": {
            "zh-CN": "{channel} 发送服务限流（429）：暂停发送 {pause} 秒",
            "en": "{channel} provider rate-limited the sender (429): requests pause {pause} s",
        },
        "log.messaging.rate_limited_long": {
            "zh-CN": "{channel} 发送服务要求暂停 {pause} 秒（429 Retry-After），超过消息的最长排队等待（{wait} 秒）：这些消息改在暂停结束后发送",
            "en": "{channel} provider asked for a {pause} s pause (429 Retry-After), longer than a message waits in line ({wait} s): "
            "its messages are rescheduled until then",
        },
        "log.messaging.staff_lists_deleted": {
            "zh-CN": "已删除超过 {days} 天的人工回访清单：{folders}",
            "en": "staff-outreach lists older than {days} days deleted: {folders}",
        },
        "log.messaging.resending": {
            "zh-CN": "{n} 条消息的发送程序已中断（进程结束或租约到期），现重新发送",
            "en": "resending {n} touch(es) left in flight by a sender that is gone (process ended or lease ran out)",
        },
        "log.messaging.email_held": {
            "zh-CN": "{n} 封邮件的发送程序已中断，转为等待审核（`userops campaign approve`）：邮件服务器可能已经收到",
            "en": "{n} email touch(es) left in flight by a sender that is gone wait for review (`userops campaign approve`): "
            "the mail server may already have them",
        },
        "log.messaging.claim_lost": {
            "zh-CN": "消息 {touch}：本发送程序记录结果前，它已被另一发送程序接管；本次结果（{what}）未记录",
            "en": "touch {touch}: its claim was taken over before this sender settled it; its result ({what}) was not recorded",
        },
        "log.messaging.outcome.sent": {"zh-CN": "已发送", "en": "sent"},
        "log.messaging.outcome.held": {"zh-CN": "转为等待审核", "en": "held for review"},
        "log.messaging.outcome.retry": {"zh-CN": "待重试", "en": "retry"},
        "log.messaging.outcome.failed": {"zh-CN": "失败", "en": "failed"},
        "campaign.recall.note": {
            "zh-CN": "沉默会员占比 {share} 超过阈值 {threshold}，启动流失预警召回计划",
            "en": "Silent share {share} is above {threshold}: churn-warning recall plan started",
        },
        "campaign.recall.note_manual": {"zh-CN": "手动启动召回计划", "en": "Recall plan started by hand"},
        # report
        "campaign.report.title": {"zh-CN": "活动效果：{name}（{title}）", "en": "Campaign read-out: {name} ({title})"},
        "campaign.report.window": {
            "zh-CN": "转化 = 触达后 {days} 天内有已支付订单；{open} 个客户的归因窗口尚未结束",
            "en": "Converted = a paid order within {days} days of the touch; {open} customer(s) still inside the window",
        },
        "campaign.report.group": {"zh-CN": "分组", "en": "group"},
        "campaign.report.customers": {"zh-CN": "人数", "en": "customers"},
        "campaign.report.reached": {"zh-CN": "已触达", "en": "reached"},
        "campaign.report.converted": {"zh-CN": "已转化", "en": "converted"},
        "campaign.report.rate": {"zh-CN": "转化率", "en": "conversion"},
        "campaign.report.uplift": {"zh-CN": "提升（对比对照组）", "en": "uplift vs control"},
        "campaign.report.ci": {"zh-CN": "95%置信区间", "en": "95% interval"},
        "campaign.report.rpc": {"zh-CN": "人均收入", "en": "revenue / customer"},
        "campaign.report.gift": {"zh-CN": "礼品成本", "en": "gift cost"},
        "campaign.report.verdict": {"zh-CN": "结论", "en": "verdict"},
        "campaign.report.treatment": {"zh-CN": "实验组", "en": "treatment"},
        "campaign.report.control": {"zh-CN": "对照组", "en": "control"},
        "campaign.report.variant": {"zh-CN": "版本 {variant}", "en": "variant {variant}"},
        "campaign.verdict.too_small": {
            "zh-CN": "样本太少，暂不显著（每组至少需 {min_n} 人）",
            "en": "not significant yet: too few customers (need {min_n} per group)",
        },
        "campaign.verdict.not_significant": {"zh-CN": "暂不显著（区间包含0）", "en": "not significant yet (the interval includes 0)"},
        "campaign.verdict.up": {"zh-CN": "显著提升", "en": "significant uplift"},
        "campaign.verdict.down": {"zh-CN": "显著下降", "en": "significant drop"},
        "campaign.verdict.no_control": {"zh-CN": "无对照组，无法评估提升", "en": "no control group: uplift cannot be measured"},
        "campaign.verdict.open": {"zh-CN": "尚无结论：{why}", "en": "no conclusion yet: {why}"},
        "campaign.verdict.open.open_window": {"zh-CN": "{n} 位客户的归因窗口未结束", "en": "{n} customer(s) still inside the attribution window"},
        "campaign.verdict.open.pending": {"zh-CN": "{n} 位尚未发送", "en": "{n} not sent yet"},
        "campaign.verdict.open.control_open_window": {"zh-CN": "对照组 {n} 位的归因窗口未结束", "en": "{n} control customer(s) still inside the attribution window"},
        "campaign.verdict.open.sep": {"zh-CN": "，", "en": "; "},
        "campaign.report.open": {
            "zh-CN": "尚无结论：{why}。这些客户还可能下单，现在按未转化计算会把两组的差异压向0，所以提升、置信区间和结论要等归因窗口全部结束后才给出{until}。",
            "en": "No conclusion yet: {why}. They may still buy; counted as not converted now, they would pull the difference between the groups toward 0, so the uplift, its interval and the verdict wait until every attribution window has closed{until}.",
        },
        "campaign.report.legend": {"zh-CN": "说明：{items}。", "en": "Key: {items}."},
        "campaign.report.legend.sep": {"zh-CN": "；", "en": "; "},
        "campaign.report.legend.rate": {"zh-CN": "转化率 = 已转化人数 ÷ 人数", "en": "conversion = converted ÷ customers"},
        "campaign.report.legend.uplift": {
            "zh-CN": "提升 = 实验组转化率减去对照组转化率，单位 pp 即百分点（20.0% 对 10.0% 是 +10.0pp，不是提升 10%）",
            "en": "uplift = the treatment's conversion minus the control's, in pp, percentage points (20.0% vs 10.0% is +10.0pp, not 10% more)",
        },
        "campaign.report.legend.ci": {
            "zh-CN": "95%置信区间 = 真实提升有 95% 的把握落在这个范围内，区间全部大于0才算显著提升，全部小于0才算显著下降，包含0就还不能说有没有效果",
            "en": "95% interval = the range the true uplift lies in with 95% confidence: wholly above 0 is a significant uplift, wholly below 0 a significant drop, one that includes 0 cannot tell yet",
        },
        "campaign.report.basis": {
            "zh-CN": "提升、置信区间和结论只计已结束的计划日的客户（实验组 {treatment} 位、对照组 {control} 位：当天安排的消息都已发出，归因窗口都已结束）；较新的计划日里{why}，结束后计入。",
            "en": "The uplift, its interval and the verdict count only the customers of finished planning days ({treatment} treatment, {control} control: every message planned that day out, every attribution window closed); on the newer days {why}: counted once they finish.",
        },
        "campaign.report.open.until": {"zh-CN": "（{when} 之后）", "en": " (after {when})"},
        "campaign.report.open.until_pending": {"zh-CN": "（待发送的消息发出 {days} 天后）", "en": " ({days} days after the pending messages go out)"},
        "campaign.report.incremental": {
            "zh-CN": "增量收入（实验组对比对照组）：{revenue}，礼品成本 {cost}",
            "en": "Incremental revenue (treatment vs control): {revenue}; gift cost {cost}",
        },
        "campaign.report.itt": {
            "zh-CN": "人数 = 随机分到该组的全部受众（意向处理：计划时被排除的客户也留在原组，两组才可比；{periods} 个周期合计）。夜间计划行的“对照组”“计划发送”只计当晚可联系的客户。",
            "en": "Customers = everyone the random split put in the group (intention to treat: customers excluded at planning stay in their group, so the groups compare; {periods} period(s) together). The nightly plan line's control and planned count only the customers contactable that night.",
        },
        "campaign.report.control_split": {
            "zh-CN": "对照组 {n} = 可联系（不发送）{contactable} + 计划时被排除 {excluded}",
            "en": "control {n} = contactable (not messaged) {contactable} + excluded at planning {excluded}",
        },
        "campaign.report.treatment_split": {
            "zh-CN": "实验组 {n} = 已触达 {reached} + 未发送（被抑制）{suppressed} + 发送失败 {failed} + 待发送 {pending}",
            "en": "treatment {n} = reached {reached} + suppressed {suppressed} + failed {failed} + pending {pending}",
        },
        "campaign.report.other": {"zh-CN": " + 其他 {n}", "en": " + other {n}"},
        "campaign.report.empty": {"zh-CN": "活动 {name} 还没有触达记录。", "en": "Campaign {name} has no touches yet."},
        # calendar
        "campaign.calendar.title": {"zh-CN": "沟通日历", "en": "Communication calendar"},
        "campaign.calendar.desc": {
            "zh-CN": "过去 {past} 天已发送与未来 {ahead} 天计划发送的消息数（按天、活动、渠道）",
            "en": "Messages sent in the last {past} days and planned for the next {ahead} (per day, campaign and channel)",
        },
        "campaign.calendar.day": {"zh-CN": "日期", "en": "day"},
        "campaign.calendar.campaign": {"zh-CN": "活动", "en": "campaign"},
        "campaign.calendar.channel": {"zh-CN": "渠道", "en": "channel"},
        "campaign.calendar.sent": {"zh-CN": "已发送", "en": "sent"},
        "campaign.calendar.planned": {"zh-CN": "计划", "en": "planned"},
        "campaign.calendar.empty": {"zh-CN": "这段时间没有消息。", "en": "No messages in this period."},
        "campaign.invalid": {"zh-CN": "活动定义无效，未发送任何消息：", "en": "Invalid campaign definition(s); nothing was sent:"},
        # problems of a campaign definition (tasks.campaigns.definitions): <file>: <field>: <reason>
        "campaign.def.invalid": {"zh-CN": "活动定义无效：", "en": "invalid campaign definition(s):"},
        "campaign.def.no_directory": {"zh-CN": "活动定义目录不存在", "en": "the campaigns directory does not exist"},
        "campaign.def.line": {"zh-CN": "第 {line} 行", "en": "line {line}"},
        "campaign.def.yaml": {"zh-CN": "不是有效的 YAML：{error}", "en": "not valid YAML: {error}"},
        "campaign.def.not_mapping": {"zh-CN": "文件内容必须是活动字段的映射（字段名：值）", "en": "the file must be a mapping of campaign fields"},
        "campaign.def.duplicate": {"zh-CN": "{name} 已在 {other} 中定义", "en": "{name} is already defined in {other}"},
        "campaign.def.unknown": {"zh-CN": "没有活动 {name}；已定义：{defined}", "en": "no campaign {name}; defined: {defined}"},
        "campaign.def.empty_list": {
            "zh-CN": "{field}：空列表不匹配任何人；要匹配所有人请删掉这一项",
            "en": "{field}: an empty list matches nobody; leave it out to match everyone",
        },
        "campaign.def.sql.empty": {"zh-CN": "查询为空", "en": "the query is empty"},
        "campaign.def.sql.several": {
            "zh-CN": "只允许一条 SELECT 语句（发现了多条语句）",
            "en": "only a single SELECT statement is allowed (found more than one statement)",
        },
        "campaign.def.sql.starts_with": {
            "zh-CN": "只允许只读的 SELECT（查询以 {word} 开头）",
            "en": "only a read-only SELECT is allowed (the query starts with {word})",
        },
        "campaign.def.sql.forbidden": {"zh-CN": "只允许只读的 SELECT（发现 {word}）", "en": "only a read-only SELECT is allowed (found {word})"},
        "campaign.def.sql.with_select": {"zh-CN": "WITH 查询必须以 SELECT 结尾", "en": "a WITH query must end in a SELECT"},
        "campaign.def.audience_one_of": {
            "zh-CN": "'rule'（按标签、阶段和评分筛选）与 'sql'（只读 SELECT）必须且只能给一个",
            "en": "give exactly one of 'rule' (over tags, stages and scores) or 'sql' (a read-only SELECT)",
        },
        "campaign.def.entry.to": {
            "zh-CN": "stage_change 触发需要 'to'（进入的阶段）",
            "en": "a stage_change entry needs 'to' (the stage(s) entered)",
        },
        "campaign.def.entry.event": {
            "zh-CN": "event 触发需要 'event'（例如 {example}）",
            "en": "an event entry needs 'event' (e.g. {example})",
        },
        "campaign.def.entry.audience": {"zh-CN": "触发方式里的 'audience' 只用于 event 触发", "en": "'audience' on an entry is only for event entries"},
        "campaign.def.time_of_day": {"zh-CN": "{value} 不是 21:00 这样的时刻", "en": "{value} is not a time of day like 21:00"},
        "campaign.def.reserved": {"zh-CN": "{name} 是保留名称", "en": "{name} is reserved"},
        "campaign.def.unique.variants": {"zh-CN": "版本名称必须唯一（{names} 重复）", "en": "variant names must be unique ({names} repeated)"},
        "campaign.def.unique.segments": {"zh-CN": "分群名称必须唯一（{names} 重复）", "en": "segment names must be unique ({names} repeated)"},
        "campaign.def.unique.segment_variants": {
            "zh-CN": "分群 {segment} 的版本名称必须唯一（{names} 重复）",
            "en": "variant names of segment {segment} must be unique ({names} repeated)",
        },
        "campaign.def.segment_subject": {
            "zh-CN": "分群 {segment} 通过邮件发送：每个版本都需要 subject（邮件标题）",
            "en": "segment {segment} sends email: every variant needs a subject",
        },
        "campaign.def.email_subject": {
            "zh-CN": "渠道为 email：每个版本都需要 subject（邮件标题）",
            "en": "channel email: every variant needs a subject",
        },
        "campaign.def.budget_without_gift": {
            "zh-CN": "没有礼品成本的预算限制不了任何东西；请加上 gift.cost，或去掉 budget",
            "en": "a budget without a gift cost caps nothing; add gift.cost or drop the budget",
        },
        "campaign.def.template.syntax": {"zh-CN": "模板语法错误，第 {line} 行：{error}", "en": "template syntax error on line {line}: {error}"},
        "campaign.def.template.unknown": {
            "zh-CN": "未知的模板变量 {names}；可用的变量：{known}",
            "en": "unknown template variable(s) {names}; known: {known}",
        },
        "campaign.def.template.render": {
            "zh-CN": "模板无法渲染（{error}）；个人信息变量（{fields}）只能原样输出，例如 {{{{ name }}}}",
            "en": "template cannot be rendered ({error}); personal values ({fields}) are printed as they are, e.g. {{{{ name }}}}",
        },
        "campaign.def.template.filter": {
            "zh-CN": "个人信息变量（{fields}）被过滤器改动了；请原样输出，例如 {{{{ name }}}}",
            "en": "a personal value ({fields}) is changed by a filter; print it as it is, e.g. {{{{ name }}}}",
        },
        # pydantic's checks of a field (the English follows pydantic's own words)
        "campaign.def.pydantic.missing": {"zh-CN": "缺少必填字段", "en": "Field required"},
        "campaign.def.pydantic.extra": {"zh-CN": "不认识的字段（不允许出现；检查拼写）", "en": "Extra inputs are not permitted"},
        "campaign.def.pydantic.literal": {"zh-CN": "取值应为以下之一：{expected}", "en": "Input should be one of {expected}"},
        "campaign.def.pydantic.pattern": {"zh-CN": "格式不符合要求，应匹配 '{pattern}'", "en": "String should match pattern '{pattern}'"},
        "campaign.def.pydantic.string_too_short": {"zh-CN": "至少需要 {min_length} 个字符", "en": "String should have at least {min_length} character(s)"},
        "campaign.def.pydantic.string_too_long": {"zh-CN": "最多 {max_length} 个字符", "en": "String should have at most {max_length} character(s)"},
        "campaign.def.pydantic.too_short": {
            "zh-CN": "至少需要 {min_length} 项，现在是 {actual_length} 项",
            "en": "List should have at least {min_length} item(s), not {actual_length}",
        },
        "campaign.def.pydantic.too_long": {
            "zh-CN": "最多 {max_length} 项，现在是 {actual_length} 项",
            "en": "List should have at most {max_length} item(s), not {actual_length}",
        },
        "campaign.def.pydantic.gt": {"zh-CN": "应大于 {gt}", "en": "Input should be greater than {gt}"},
        "campaign.def.pydantic.ge": {"zh-CN": "应大于或等于 {ge}", "en": "Input should be greater than or equal to {ge}"},
        "campaign.def.pydantic.lt": {"zh-CN": "应小于 {lt}", "en": "Input should be less than {lt}"},
        "campaign.def.pydantic.le": {"zh-CN": "应小于或等于 {le}", "en": "Input should be less than or equal to {le}"},
        "campaign.def.pydantic.int": {"zh-CN": "应为整数", "en": "Input should be a valid integer"},
        "campaign.def.pydantic.number": {"zh-CN": "应为数字", "en": "Input should be a valid number"},
        "campaign.def.pydantic.bool": {"zh-CN": "应为 true 或 false", "en": "Input should be a valid boolean (true or false)"},
        "campaign.def.pydantic.string": {"zh-CN": "应为文本", "en": "Input should be a valid string"},
        "campaign.def.pydantic.list": {"zh-CN": "应为列表", "en": "Input should be a valid list"},
        "campaign.def.pydantic.mapping": {"zh-CN": "应为字段映射（字段名：值）", "en": "Input should be a mapping of fields"},
        "campaign.def.pydantic.other": {"zh-CN": "取值无效：{msg}", "en": "{msg}"},
    }
)


# the setting that configures each channel's provider (userops/settings.py)
PROVIDER_SETTINGS = {"email": "USEROPS_SMTP_URL", "sms": "USEROPS_SMS_WEBHOOK_URL", "push": "USEROPS_PUSH_WEBHOOK_URL"}


def plan_line(name: str, s: dict, lang: str | None = None) -> str:
    """One campaign's plan in a line whose buckets add up to the audience."""
    return t(
        "campaign.plan.line",
        lang,
        name=name,
        audience=f"{s['audience']:,}",
        excluded=f"{sum(s['excluded'].values()):,}",
        already=f"{s.get('already_planned', 0):,}",
        control=f"{s['control']:,}",
        planned=f"{s['planned']:,}",
        deferred=f"{s.get('deferred_quiet_hours', 0):,}",
    )


def plan_lines(name: str, s: dict, lang: str | None = None) -> list[str]:
    """The plan line, after a note when the campaign is disabled (run by hand)."""
    head = [t("campaign.plan.disabled", lang, name=name)] if s.get("enabled") is False else []
    return head + [plan_line(name, s, lang)]


def _waiting_channels(waiting: dict, lang: str | None = None) -> str:
    """``email 148: set USEROPS_SMTP_URL, sms 3: set …`` in the operator's language."""
    return join_list(
        (t("campaign.delivery.waiting.channel", lang, channel=ch, n=f"{n:,}", setting=PROVIDER_SETTINGS.get(ch, "?")) for ch, n in sorted(waiting.items())),
        lang,
    )


def no_provider_warning(waiting: dict, lang: str | None = None) -> str:
    """The sender's warning when touches of a channel with no provider wait (per channel the
    count and the setting to set)."""
    return t("campaign.delivery.no_provider", lang, n=f"{sum(waiting.values()):,}", channels=_waiting_channels(waiting, lang))


def delivery_line(d: dict, lang: str | None = None) -> str:
    """What a send did, and the messages still waiting for a channel's provider (with the
    setting to set): they are neither sent nor failed."""
    line = t(
        "campaign.delivery.line",
        lang,
        sent=f"{d['sent']:,}",
        failed=f"{d['failed']:,}",
        retry=f"{d['retry_scheduled']:,}",
        suppressed=f"{d['suppressed']:,}",
        resent=f"{d['resent_after_crash']:,}",
    )
    waiting = {k: int(v) for k, v in (d.get("waiting_for_provider") or {}).items() if v}
    if waiting:
        chans = _waiting_channels(waiting, lang)
        line += t("list.sep", lang) + t("campaign.delivery.waiting", lang, n=f"{sum(waiting.values()):,}", channels=chans)
    return line
