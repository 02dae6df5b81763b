"""Operator- and customer-facing words of the campaigns, zh-CN and en."""
from __future__ import annotations

from userops.i18n import register

EXCLUSION_REASONS = ("unsubscribed", "no_consent", "no_contact", "open_crisis", "campaign_cap", "global_cap", "budget")

register(
    {
        # customer-facing pieces of a message
        "campaign.shop": {"zh-CN": "本店", "en": "our shop"},
        "campaign.member": {"zh-CN": "会员", "en": "member"},
        "campaign.category_fallback": {"zh-CN": "好物", "en": "favourites"},
        "campaign.unsubscribe.email": {
            "zh-CN": "不想再收到此类邮件?点此退订:{url}",
            "en": "Don't want these emails? Unsubscribe: {url}",
        },
        "campaign.unsubscribe.sms": {"zh-CN": "回T退订", "en": "Reply T to unsubscribe"},
        "campaign.unsubscribe.push": {"zh-CN": "退订:{url}", "en": "Unsubscribe: {url}"},
        "campaign.unsubscribe.staff": {
            "zh-CN": "(如您不希望再收到此类消息,回复T即可退订)",
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
            "zh-CN": "活动 {name}({title}) 周期 {period}:受众 {audience} 人",
            "en": "Campaign {name} ({title}) period {period}: audience {audience}",
        },
        "campaign.plan.line": {
            "zh-CN": "{name}:受众 {audience},排除 {excluded},对照组 {control},计划发送 {planned}(其中 {deferred} 条在免打扰时段结束后发送)",
            "en": "{name}: audience {audience}, excluded {excluded}, control {control}, planned {planned} ({deferred} held until quiet hours end)",
        },
        "campaign.plan.excluded": {"zh-CN": "排除原因:", "en": "Excluded, by reason:"},
        "campaign.plan.split": {
            "zh-CN": "可触达 {eligible} 人 → 对照组 {control} 人,实验组 {treatment} 人(其中预算排除 {budget})",
            "en": "Contactable {eligible} → control {control}, treatment {treatment} (budget cut {budget})",
        },
        "campaign.plan.planned": {
            "zh-CN": "计划发送 {planned} 条(因免打扰时段延后 {deferred} 条),礼品成本 {cost}",
            "en": "Planned {planned} messages ({deferred} deferred by quiet hours), gift cost {cost}",
        },
        "campaign.plan.variants": {"zh-CN": "版本分布:{variants};渠道:{channels}", "en": "Variants: {variants}; channels: {channels}"},
        "campaign.plan.sample": {"zh-CN": "消息样例(个人信息已脱敏):", "en": "Sample messages (personal data masked):"},
        "campaign.plan.dry_run": {"zh-CN": "预演:未写入任何数据,未发送任何消息。", "en": "Dry run: nothing written, nothing sent."},
        "campaign.delivery.line": {
            "zh-CN": "发送 {sent} 条,失败 {failed},待重试 {retry},发送前拦截 {suppressed},崩溃后补发 {resent}",
            "en": "Sent {sent}, failed {failed}, retry scheduled {retry}, suppressed at send {suppressed}, resent after crash {resent}",
        },
        "campaign.recall.note": {
            "zh-CN": "沉默会员占比 {share} 超过阈值 {threshold},启动流失预警召回计划",
            "en": "Silent share {share} is above {threshold}: churn-warning recall plan started",
        },
        "campaign.recall.note_manual": {"zh-CN": "手动启动召回计划", "en": "Recall plan started by hand"},
        # report
        "campaign.report.title": {"zh-CN": "活动效果:{name}({title})", "en": "Campaign read-out: {name} ({title})"},
        "campaign.report.window": {
            "zh-CN": "转化 = 触达后 {days} 天内有已支付订单;{open} 个客户的归因窗口尚未结束",
            "en": "Converted = a paid order within {days} days of the touch; {open} customer(s) still inside the window",
        },
        "campaign.report.group": {"zh-CN": "分组", "en": "group"},
        "campaign.report.customers": {"zh-CN": "人数", "en": "customers"},
        "campaign.report.reached": {"zh-CN": "已触达", "en": "reached"},
        "campaign.report.converted": {"zh-CN": "已转化", "en": "converted"},
        "campaign.report.rate": {"zh-CN": "转化率", "en": "conversion"},
        "campaign.report.uplift": {"zh-CN": "提升(对比对照组)", "en": "uplift vs control"},
        "campaign.report.ci": {"zh-CN": "95%置信区间", "en": "95% interval"},
        "campaign.report.rpc": {"zh-CN": "人均收入", "en": "revenue / customer"},
        "campaign.report.gift": {"zh-CN": "礼品成本", "en": "gift cost"},
        "campaign.report.verdict": {"zh-CN": "结论", "en": "verdict"},
        "campaign.report.treatment": {"zh-CN": "实验组", "en": "treatment"},
        "campaign.report.control": {"zh-CN": "对照组", "en": "control"},
        "campaign.report.variant": {"zh-CN": "版本 {variant}", "en": "variant {variant}"},
        "campaign.verdict.too_small": {
            "zh-CN": "样本太少,暂不显著(每组至少需 {min_n} 人)",
            "en": "not significant yet: too few customers (need {min_n} per group)",
        },
        "campaign.verdict.not_significant": {"zh-CN": "暂不显著(区间包含0)", "en": "not significant yet (the interval includes 0)"},
        "campaign.verdict.up": {"zh-CN": "显著提升", "en": "significant uplift"},
        "campaign.verdict.down": {"zh-CN": "显著下降", "en": "significant drop"},
        "campaign.verdict.no_control": {"zh-CN": "无对照组,无法评估提升", "en": "no control group: uplift cannot be measured"},
        "campaign.report.incremental": {
            "zh-CN": "增量收入(实验组对比对照组):{revenue},礼品成本 {cost}",
            "en": "Incremental revenue (treatment vs control): {revenue}; gift cost {cost}",
        },
        "campaign.report.empty": {"zh-CN": "活动 {name} 还没有触达记录。", "en": "Campaign {name} has no touches yet."},
        # calendar
        "campaign.calendar.title": {"zh-CN": "沟通日历", "en": "Communication calendar"},
        "campaign.calendar.desc": {
            "zh-CN": "过去 {past} 天已发送与未来 {ahead} 天计划发送的消息数(按天、活动、渠道)",
            "en": "Messages sent in the last {past} days and planned for the next {ahead} (per day, campaign and channel)",
        },
        "campaign.calendar.day": {"zh-CN": "日期", "en": "day"},
        "campaign.calendar.campaign": {"zh-CN": "活动", "en": "campaign"},
        "campaign.calendar.channel": {"zh-CN": "渠道", "en": "channel"},
        "campaign.calendar.sent": {"zh-CN": "已发送", "en": "sent"},
        "campaign.calendar.planned": {"zh-CN": "计划", "en": "planned"},
        "campaign.calendar.empty": {"zh-CN": "这段时间没有消息。", "en": "No messages in this period."},
        "campaign.invalid": {"zh-CN": "活动定义无效,未发送任何消息:", "en": "Invalid campaign definition(s); nothing was sent:"},
    }
)
