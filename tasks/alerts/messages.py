"""Operator-facing alert text (zh-CN default, en)."""
from __future__ import annotations

from collections.abc import Mapping

from userops.i18n import LANGUAGES, register, suffixes, t, t_or

SEVERITY_ICON = {"info": "ℹ️", "warning": "⚠️", "error": "🔴", "critical": "🚨"}
SEVERITY_RANK = {"info": 0, "warning": 1, "error": 2, "critical": 3}


def severity_words(severity: str, lang: str | None = None) -> str:
    """A severity in the operator's words (``严重`` / ``critical``); an unknown code as it is."""
    return t_or(f"alert.severity.{severity}", severity, lang)


def kind_words(kind: str, lang: str | None = None) -> str:
    """An alert kind in the operator's words (``危机升级`` / ``crisis escalation``); a kind with
    no words yet (anyone may queue a new kind): empty, so no code is shown."""
    return t_or(f"alert.kind.{kind}", "", lang) if kind else ""

register(
    {
        # generic
        "alert.view_run": {"zh-CN": "查看运行", "en": "View run"},
        "alert.view": {"zh-CN": "查看详情", "en": "View details"},
        "alert.merged.title": {"zh-CN": "{n} 条告警（已合并发送）", "en": "{n} alerts (merged)"},
        "alert.merged.more": {"zh-CN": "…另有 {n} 条，见 `userops alert list`", "en": "…and {n} more, see `userops alert list`"},
        "alert.part": {"zh-CN": "（第 {i}/{n} 部分）", "en": "(part {i}/{n})"},
        # a message's context line (Slack): severity and kind in words, not their codes
        "alert.severity.info": {"zh-CN": "提示", "en": "info"},
        "alert.severity.warning": {"zh-CN": "警告", "en": "warning"},
        "alert.severity.error": {"zh-CN": "错误", "en": "error"},
        "alert.severity.critical": {"zh-CN": "严重", "en": "critical"},
        "alert.kind.flow_failed": {"zh-CN": "流程运行失败", "en": "flow run failed"},
        "alert.kind.validation": {"zh-CN": "数据校验未通过", "en": "validation failed"},
        "alert.kind.quarantine_spike": {"zh-CN": "隔离记录激增", "en": "quarantine spike"},
        "alert.kind.health_breach": {"zh-CN": "健康指标越过阈值", "en": "health metric breach"},
        "alert.kind.model_drift": {"zh-CN": "模型漂移", "en": "model drift"},
        "alert.kind.crisis_opened": {"zh-CN": "危机事件开启", "en": "crisis opened"},
        "alert.kind.crisis_task": {"zh-CN": "危机待办", "en": "crisis task"},
        "alert.kind.crisis_deadline": {"zh-CN": "危机步骤即将到期", "en": "crisis step due soon"},
        "alert.kind.crisis_escalation": {"zh-CN": "危机升级", "en": "crisis escalation"},
        "alert.kind.crisis_statement": {"zh-CN": "危机官方声明", "en": "crisis statement"},
        "alert.kind.feedback_sla": {"zh-CN": "反馈超时未响应", "en": "feedback SLA breach"},
        "alert.kind.quality_trace": {"zh-CN": "质量溯源", "en": "quality trace"},
        "alert.kind.digest": {"zh-CN": "夜间摘要", "en": "nightly digest"},
        "alert.kind.test": {"zh-CN": "测试消息", "en": "test message"},
        "alert.kind.merged": {"zh-CN": "合并告警", "en": "merged alerts"},
        "alert.context.count": {"zh-CN": "{n} 条告警", "en": "{n} alerts"},
        "alert.test.title": {"zh-CN": "userops 测试消息", "en": "userops test message"},
        "alert.test.body": {
            "zh-CN": "这是一条来自 userops 的测试消息，渠道 `{channel}` 配置正确。",
            "en": "This is a test message from userops: channel `{channel}` is configured correctly.",
        },
        # a channel's verdict on a post (tasks.alerts.channels): what failed and what to fix
        "alert.verdict.error": {"zh-CN": "错误", "en": "error"},
        "alert.verdict.configuration_error": {"zh-CN": "配置错误", "en": "configuration error"},
        "alert.verdict.rate_limited": {"zh-CN": "被限流", "en": "rate limited"},
        "alert.verdict.unavailable": {"zh-CN": "暂不可用", "en": "unavailable"},
        "alert.verdict.message_refused": {"zh-CN": "消息被拒收", "en": "message refused"},
        "alert.channel.timeout": {"zh-CN": "{type} 请求超时", "en": "{type} timed out"},
        "alert.channel.tls": {"zh-CN": "{type} TLS 错误", "en": "{type} TLS error"},
        "alert.channel.connection": {"zh-CN": "{type} 连接失败（被拒绝、被重置或无法访问）", "en": "{type} connection failed (refused, reset or unreachable)"},
        "alert.channel.bad_url": {
            "zh-CN": "{type} 的 webhook 地址无效（应为以 https:// 开头的完整地址）：这是配置错误，请检查该渠道的 webhook 地址设置",
            "en": "the {type} webhook URL is not a valid address (expected a full https:// URL): this is a configuration error - check the channel's webhook URL setting",
        },
        "alert.channel.request": {"zh-CN": "{type} 请求失败（{error}）", "en": "{type} request failed ({error})"},
        "alert.channel.slack.rate_limit": {"zh-CN": "Slack 限流（429 {code}）", "en": "Slack rate limit (429 {code})"},
        "alert.channel.slack.refused": {"zh-CN": "Slack 拒收了这条消息（400 {code}）", "en": "Slack refused the message (400 {code})"},
        "alert.channel.slack.text_refused": {
            "zh-CN": "Slack 拒收了这条消息的区块（{blocks_code}），改发纯文本也被拒收（400 {code}）",
            "en": "Slack refused the message's blocks ({blocks_code}) and its plain-text version too (400 {code})",
        },
        "alert.slack.continued": {"zh-CN": "（续 {i}/{n}）", "en": "(continued {i}/{n})"},
        "alert.channel.slack.forbidden": {
            "zh-CN": "Slack 拒绝了该 webhook（403 {code}）：webhook 或其应用已被撤销或停用，或该频道禁止发消息；请新建一个 incoming webhook",
            "en": "Slack refused the webhook (403 {code}): the webhook or its app was revoked or disabled, or posting is prohibited in that channel; create a new incoming webhook",
        },
        "alert.channel.slack.not_found": {
            "zh-CN": "找不到 Slack webhook 的目标（404 {code}）：频道已被删除或 webhook 地址有误；请让 webhook 指向一个存在的频道",
            "en": "Slack webhook target not found (404 {code}): the channel was deleted or the webhook URL is wrong; point the webhook at an existing channel",
        },
        "alert.channel.slack.archived": {
            "zh-CN": "Slack 频道已归档（410 {code}）：请取消归档，或为其他频道创建 webhook",
            "en": "Slack channel is archived (410 {code}): unarchive it or create a webhook for another channel",
        },
        "alert.channel.slack.unavailable": {"zh-CN": "Slack 暂不可用（{status} {code}）", "en": "Slack unavailable ({status} {code})"},
        "alert.channel.slack.other": {"zh-CN": "Slack 返回 {status} {code}", "en": "Slack answered {status} {code}"},
        "alert.channel.dingtalk.unavailable": {"zh-CN": "钉钉暂不可用（HTTP {status}）", "en": "DingTalk unavailable (HTTP {status})"},
        "alert.channel.dingtalk.no_errcode": {"zh-CN": "钉钉返回 HTTP {status}，但没有 errcode", "en": "DingTalk answered HTTP {status} without an errcode"},
        "alert.channel.dingtalk.security": {
            "zh-CN": "钉钉机器人安全校验未通过（310000：{errmsg}）：这是配置错误 - 请检查机器人的加签密钥、自定义关键词或 IP 白名单",
            "en": "DingTalk refused the robot's security check (310000: {errmsg}): this is a configuration error - check the signing secret (加签), the custom keyword, or the IP allow-list of the robot",
        },
        "alert.channel.dingtalk.too_fast": {"zh-CN": "钉钉：发送过快（130101：{errmsg}）", "en": "DingTalk: send too fast (130101: {errmsg})"},
        "alert.channel.dingtalk.robot": {
            "zh-CN": "钉钉机器人不可用（{code}：{errmsg}）：access_token 有误，或机器人已被停用或移除",
            "en": "DingTalk robot unusable ({code}: {errmsg}): the access token is wrong, or the robot was stopped or removed",
        },
        "alert.channel.dingtalk.refused": {"zh-CN": "钉钉拒收了这条消息（{code}：{errmsg}）", "en": "DingTalk refused the message ({code}: {errmsg})"},
        "alert.channel.dingtalk.other": {"zh-CN": "钉钉返回 errcode {code}：{errmsg}", "en": "DingTalk errcode {code}: {errmsg}"},
        "alert.channel.wecom.unavailable": {"zh-CN": "企业微信暂不可用（HTTP {status}）", "en": "WeCom unavailable (HTTP {status})"},
        "alert.channel.wecom.no_errcode": {"zh-CN": "企业微信返回 HTTP {status}，但没有 errcode", "en": "WeCom answered HTTP {status} without an errcode"},
        "alert.channel.wecom.too_fast": {"zh-CN": "企业微信：调用频率超限（45009）", "en": "WeCom: api freq out of limit (45009)"},
        "alert.channel.wecom.robot": {
            "zh-CN": "企业微信拒绝了该机器人（{code}：{errmsg}）：webhook 的 key 有误，或机器人已被移除",
            "en": "WeCom refused the robot ({code}: {errmsg}): the webhook key is wrong or the robot was removed",
        },
        "alert.channel.wecom.refused": {"zh-CN": "企业微信拒收了这条消息（{code}：{errmsg}）", "en": "WeCom refused the message ({code}: {errmsg})"},
        "alert.channel.wecom.other": {"zh-CN": "企业微信返回 errcode {code}：{errmsg}", "en": "WeCom errcode {code}: {errmsg}"},
        # a delivery pass's verdict per channel (`userops alert deliver`), the outbox's last error, the run log
        "alert.deliver.ok": {"zh-CN": "成功", "en": "ok"},
        # the log channel (no alert channel configured): nothing was sent anywhere
        "alert.deliver.log_only": {
            "zh-CN": "未配置告警渠道，告警只写入了运行日志，没有发出：请配置 Slack、钉钉或企业微信（USEROPS_SLACK_WEBHOOK_URL 等设置，或 Prefect UI 的 Blocks；见 docs/alerts.md「Channels」）",
            "en": "no alert channel is configured: the alerts were only written to the run log, not sent; configure Slack, DingTalk or WeCom (USEROPS_SLACK_WEBHOOK_URL etc., or a block in the Prefect UI; see docs/alerts.md, Channels)",
        },
        "alert.log.log_channel": {
            "zh-CN": "告警（{severity}，未配置告警渠道，仅写入日志）：{title}",
            "en": "alert ({severity}; no alert channel configured, written to the log only): {title}",
        },
        "alert.deliver.ok_waiting": {"zh-CN": "成功，另有 {n} 条告警等下一分钟发送", "en": "ok, {n} alerts wait for the next minute"},
        "alert.deliver.not_configured": {"zh-CN": "未配置", "en": "not configured"},
        # send_direct: this alert was posted directly before (an earlier hook of the same run): nothing to do
        "alert.deliver.already_direct": {"zh-CN": "此前已直接发送，不再重发", "en": "already posted directly, not posted again"},
        "alert.deliver.not_configured_error": {
            "zh-CN": "渠道 '{channel}' 未配置（设置或 Prefect block）",
            "en": "channel '{channel}' is not configured (settings or Prefect block)",
        },
        "alert.deliver.budget_used": {"zh-CN": "已达到限流（{rate} 条/分钟）：等待中", "en": "rate limit reached ({rate}/min): waiting"},
        "alert.deliver.wait_minute": {"zh-CN": "限流：{n} 条告警等下一分钟发送", "en": "rate limit: {n} alerts wait for the next minute"},
        "alert.deliver.rate_limited": {"zh-CN": "被限流：{error}", "en": "rate limited: {error}"},
        "alert.deliver.throttled": {
            "zh-CN": "被限流：渠道暂停接收至 {until}（UTC），期间不发送，告警在队列中等待",
            "en": "rate limited: the channel accepts nothing until {until} UTC; nothing is posted meanwhile, the alerts wait in the queue",
        },
        "alert.deliver.internal": {"zh-CN": "内部错误（{error}）", "en": "internal error ({error})"},
        "alert.deliver.internal_error": {"zh-CN": "内部错误：{error}", "en": "internal error: {error}"},
        "alert.deliver.gave_up": {"zh-CN": "{hours} 小时后仍未送达，已放弃", "en": "gave up after {hours} h"},
        # why a run failed, for the operator (tasks.alerts.problems): step, reason, what to do
        # the one wording of an unreachable warehouse: the failure alert's error line, and with
        # its fix (problem.with_fix) the command line's refusal (warehouse_unreachable_text)
        "problem.warehouse_unreachable": {"zh-CN": "连不上数据仓库 {url}（{detail}）", "en": "cannot reach the warehouse {url} ({detail})"},
        "problem.with_fix": {"zh-CN": "{problem}。{fix}", "en": "{problem}; {fix}"},
        "problem.step.warehouse": {"zh-CN": "连接数据仓库", "en": "connecting to the warehouse"},
        "problem.step.validation": {"zh-CN": "校验 {table} 数据", "en": "validating {table}"},
        "problem.step.validation_any": {"zh-CN": "校验源数据", "en": "validating the source data"},
        "problem.step.source": {"zh-CN": "读取数据源", "en": "reading the sources"},
        "problem.step.run": {"zh-CN": "运行 {flow}", "en": "running {flow}"},
        "problem.fix.warehouse": {
            "zh-CN": "请检查 USEROPS_DATABASE_URL（主机、端口、库名、用户）以及数据库是否在运行",
            "en": "check USEROPS_DATABASE_URL (host, port, database, user) and that the database is running",
        },
        "problem.fix.validation": {
            "zh-CN": "该批次未入库；用 `userops quarantine list` 查看被拒的行和规则，并修复源数据",
            "en": "nothing of the batch was loaded; see the rejected rows and rules with `userops quarantine list` and fix the source data",
        },
        "problem.fix.source": {
            "zh-CN": "请检查数据源是否可用，以及其地址、令牌或 API 密钥",
            "en": "check that the source is up and its URL, token or API key",
        },
        "problem.fix.other": {
            "zh-CN": "请在 Prefect 界面查看本次运行的日志（含完整错误堆栈）并修复原因",
            "en": "read the run's log in the Prefect UI (it has the full traceback) and fix the cause",
        },
        "problem.rerun.nightly": {"zh-CN": "{fix}，然后重新运行 `userops run nightly`", "en": "{fix}, then re-run `userops run nightly`"},
        "problem.rerun.flow": {"zh-CN": "{fix}，然后重新运行 {flow}", "en": "{fix}, then re-run {flow}"},
        # one line each: the digest's run section and its "needs a human" entry
        "problem.line": {"zh-CN": "{step}失败：{reason}", "en": "{step} failed: {reason}"},
        "problem.human": {"zh-CN": "夜间任务失败（{step}）：{fix}", "en": "the nightly run failed ({step}): {fix}"},
        # state hooks (flows/hooks.py): what happened to a failure alert, honestly
        "alert.log.hook_delivery_failed": {
            "zh-CN": "告警：状态钩子中的投递失败（{error}）；已排队的告警留在发件箱，下次投递时发送（`userops alert deliver`）",
            "en": "alerts: delivery from a state hook failed ({error}); queued alerts wait in the outbox for the next delivery pass (`userops alert deliver`)",
        },
        "alert.log.digest_not_finalized": {
            "zh-CN": "告警：无法生成本次夜间摘要（{error}）",
            "en": "alerts: could not finalize the nightly digest ({error})",
        },
        "alert.log.failure_not_built": {
            "zh-CN": "告警：无法生成 {flow} 的失败告警（{error}），未发送；详情见 Prefect 中的运行日志",
            "en": "alerts: could not build the failure alert of {flow} ({error}); nothing was sent; see the run's log in Prefect",
        },
        "alert.log.sent_directly": {
            "zh-CN": "告警：告警发件箱（在数据仓库中）写不进去（{error}），{flow} 的失败告警已直接发送到 {channels}；已记入输出目录下的本地日志 alerts/direct/，数据仓库恢复后的下一次投递会把它补记进告警历史（不会重发）",
            "en": "alerts: the alert outbox (in the warehouse) cannot be written ({error}); sent the failure alert of {flow} directly to {channels}; journalled under the output folder (alerts/direct/), the first delivery once the warehouse is back records it in the alert history (not sent again)",
        },
        # no alert channel configured: the failure alert went to the log channel only (verdict: alert.deliver.log_only)
        "alert.log.direct_log_only": {
            "zh-CN": "告警：告警发件箱（在数据仓库中）写不进去（{error}）；{flow} 的失败告警：{verdict}；已记入输出目录下的本地日志 alerts/direct/，数据仓库恢复后的下一次投递会把它补记进告警历史",
            "en": "alerts: the alert outbox (in the warehouse) cannot be written ({error}); the failure alert of {flow}: {verdict}; journalled under the output folder (alerts/direct/), the first delivery once the warehouse is back records it in the alert history",
        },
        # the hook again for the same run, the warehouse still down: its alert was posted directly before
        "alert.log.already_direct": {
            "zh-CN": "告警：{flow} 的失败告警此前已直接发送过（{channels}），不再重发",
            "en": "alerts: the failure alert of {flow} was already posted directly ({channels}); not posted again",
        },
        "alert.log.channel_verdict": {"zh-CN": "{channel}：{verdict}", "en": "{channel}: {verdict}"},
        "alert.log.direct_failed": {
            "zh-CN": "告警：告警发件箱（在数据仓库中）写不进去（{error}），{flow} 的失败告警直接发送也未成功（{verdicts}）；已记入输出目录下的本地日志 alerts/direct/，数据仓库恢复后由发件箱重试发送；在此之前请查看 Prefect 中的运行日志",
            "en": "alerts: the alert outbox (in the warehouse) cannot be written ({error}) and the failure alert of {flow} could not be sent directly either ({verdicts}); journalled under the output folder (alerts/direct/), the outbox retries it once the warehouse is back; until then see the run's log in Prefect",
        },
        "alert.log.rate_limited": {
            "zh-CN": "告警：渠道 {channel} 被限流；{seconds} 秒后重试",
            "en": "alerts: channel {channel} is rate limited; retrying in {seconds}s",
        },
        "alert.log.config_error": {"zh-CN": "告警：渠道 {channel}：{error}", "en": "alerts: channel {channel}: {error}"},
        "alert.log.refused": {"zh-CN": "告警：渠道 {channel} 拒收了一条消息：{error}", "en": "alerts: channel {channel} refused a message: {error}"},
        "alert.log.unavailable": {
            "zh-CN": "告警：渠道 {channel} 暂不可用（{error}）；{seconds} 秒后重试",
            "en": "alerts: channel {channel} unavailable ({error}); retrying in {seconds}s",
        },
        "alert.log.internal": {
            "zh-CN": "告警：向渠道 {channel} 投递时发生意外错误（{error}）；告警留在队列中稍后重试",
            "en": "alerts: delivering to channel {channel} failed unexpectedly ({error}); the alerts stay queued for a later attempt",
        },
        # run-log lines of alerting that could not do its whole job (routing, alert_and_deliver,
        # the crash automation, direct posts, the digest's artifact)
        "alert.log.blocks_unreadable": {
            "zh-CN": "告警：无法读取 Prefect 中配置的告警渠道（{error}）；本次只使用设置中的渠道",
            "en": "alerts: could not read the alert channels configured in Prefect ({error}); using the channels of the settings only",
        },
        "alert.log.not_queued": {
            "zh-CN": "告警：一条“{kind}”告警未能排入发件箱（{error}），未发送；详情见 Prefect 中的运行日志",
            "en": "alerts: a {kind} alert could not be queued in the outbox ({error}) and was not sent; see the run's log in Prefect",
        },
        "alert.log.delivery_failed": {
            "zh-CN": "告警：投递失败（{error}）；告警留在发件箱，下次投递时发送（`userops alert deliver`）",
            "en": "alerts: delivery failed ({error}); the alert waits in the outbox for the next delivery pass (`userops alert deliver`)",
        },
        "alert.log.crash_flow_crashed": {
            "zh-CN": "告警：发送崩溃告警的流程本身崩溃了（运行 {run}）；为避免循环，不再为它告警，请在 Prefect 中查看该运行",
            "en": "alerts: the crash-alert flow itself crashed (run {run}); not alerting again to avoid a loop, see that run in Prefect",
        },
        "alert.log.no_direct_channel": {
            "zh-CN": "告警：无法读取告警渠道（{error}），告警无法直接发送；详情见 Prefect 中的运行日志",
            "en": "alerts: could not read the alert channels ({error}), so the alert could not be sent directly; see the run's log in Prefect",
        },
        "alert.log.digest_artifact_only": {
            "zh-CN": "告警：数据仓库读不到（{error}），夜间摘要只发布在 Prefect 界面（工件 nightly-digest，内容为本次运行内存中的结果），未排入发件箱，未发送",
            "en": "alerts: the warehouse cannot be read ({error}); the nightly digest is published in the Prefect UI only (artifact nightly-digest, what the run kept in memory), not queued in the outbox and not sent",
        },
        "alert.log.digest_artifact": {
            "zh-CN": "告警：夜间摘要未能发布为 Prefect 界面中的工件（{error}）；摘要本身照常发送",
            "en": "alerts: the nightly digest could not be published as an artifact in the Prefect UI ({error}); the digest itself is sent as usual",
        },
        # the outbox's line after a delivery pass that did something (tasks/alerts/outbox.py)
        "alert.log.logged_only": {
            "zh-CN": "告警：{n} 条只写入了运行日志，没有发出（未配置告警渠道：请配置 Slack、钉钉或企业微信，见 docs/alerts.md「Channels」）",
            "en": "alerts: {n} only written to the run log, not sent (no alert channel configured: configure Slack, DingTalk or WeCom, see docs/alerts.md, Channels)",
        },
        "alert.log.delivered": {
            "zh-CN": "告警：已发送 {sent} 条（共 {posts} 次发送，合并 {merged} 条），推迟 {deferred} 条，失败 {failed} 条",
            "en": "alerts: {sent} sent in {posts} posts ({merged} merged), {deferred} deferred, {failed} failed",
        },
        # flow failures
        "alert.flow_failed.title": {"zh-CN": "流程失败：{flow}", "en": "Flow failed: {flow}"},
        "alert.flow_crashed.title": {"zh-CN": "流程崩溃：{flow}", "en": "Flow crashed: {flow}"},
        "alert.flow.run": {"zh-CN": "运行：{run}", "en": "Run: {run}"},
        "alert.flow.error": {"zh-CN": "错误：{error}", "en": "Error: {error}"},
        "alert.flow.state": {"zh-CN": "状态：{state}", "en": "State: {state}"},
        "alert.flow.fix": {"zh-CN": "处理：{fix}", "en": "What to do: {fix}"},
        "alert.flow.part_of": {"zh-CN": "所属：{flow} 的运行 {run}", "en": "Part of: {flow} run {run}"},
        "alert.flow.crash_hint": {
            "zh-CN": "进程或基础设施中断（被杀死、内存不足、机器重启），运行内的钩子未能执行。",
            "en": "The process or its infrastructure went away (killed, out of memory, reboot); in-run hooks could not run.",
        },
        # validation / quarantine
        "alert.validation.title": {"zh-CN": "数据校验失败：{table} 整批被拒", "en": "Validation failed: the {table} batch was rejected"},
        "alert.validation.body": {
            "zh-CN": "该批次未入库，水位未前移；坏行已进入隔离区。原因：{reason}",
            "en": "Nothing of the batch was loaded and the watermark did not move; bad rows are in quarantine. Reason: {reason}",
        },
        "alert.validation.rules": {"zh-CN": "规则：{rules}", "en": "Rules: {rules}"},
        "alert.validation.hint": {
            "zh-CN": "查看：`userops quarantine list`；修复源数据后重新运行夜间任务。",
            "en": "See `userops quarantine list`; fix the source data and re-run the nightly flow.",
        },
        "alert.quarantine.title": {"zh-CN": "隔离比例偏高：{tables}", "en": "Quarantine spike: {tables}"},
        "alert.quarantine.line": {
            "zh-CN": "{table}：读取 {read} 行，隔离 {quarantined} 行（{share}，阈值 {threshold}）",
            "en": "{table}: {read} read, {quarantined} quarantined ({share}, threshold {threshold})",
        },
        # digest
        "digest.title": {"zh-CN": "夜间摘要 {as_of}", "en": "Nightly digest {as_of}"},
        "digest.run": {"zh-CN": "**运行**：{status}，用时 {duration}", "en": "**Run**: {status}, took {duration}"},
        "digest.status.running": {"zh-CN": "各阶段完成", "en": "all stages done"},
        "digest.status.completed": {"zh-CN": "完成", "en": "completed"},
        "digest.status.failed": {"zh-CN": "失败", "en": "failed"},
        "digest.status.unknown": {"zh-CN": "未知（无运行记录）", "en": "unknown (no run record)"},
        "digest.stages": {"zh-CN": "阶段用时：{stages}", "en": "Stage times: {stages}"},
        "digest.ingest.head": {"zh-CN": "**数据**", "en": "**Data**"},
        "digest.ingest.line": {
            "zh-CN": "{table}：抽取 {read}，入库 {loaded}，隔离 {quarantined}",
            "en": "{table}: {read} extracted, {loaded} loaded, {quarantined} quarantined",
        },
        "digest.ingest.qline": {"zh-CN": "{table}：隔离 {quarantined} 行", "en": "{table}: {quarantined} quarantined"},
        "digest.ingest.none": {"zh-CN": "本次运行无隔离记录", "en": "nothing quarantined in this run"},
        "digest.ingest.rules": {"zh-CN": "隔离规则：{rules}", "en": "Quarantine rules: {rules}"},
        "digest.stage.head": {"zh-CN": "**生命周期变化**", "en": "**Lifecycle changes**"},
        "digest.stage.line": {"zh-CN": "{from_stage} → {to_stage}：{n}", "en": "{from_stage} → {to_stage}: {n}"},
        "digest.stage.none": {"zh-CN": "今日无阶段变化", "en": "no stage changes today"},
        "digest.stage.first": {"zh-CN": "（首次）", "en": "(first seen)"},
        "digest.health.head": {"zh-CN": "**健康指标**（对比 {prev}）", "en": "**Health** (vs {prev})"},
        "digest.health.head_first": {"zh-CN": "**健康指标**（首个快照）", "en": "**Health** (first snapshot)"},
        "digest.health.head_plain": {"zh-CN": "**健康指标**", "en": "**Health**"},
        "digest.health.none": {"zh-CN": "尚无健康快照", "en": "no health snapshot yet"},
        "digest.health.breach": {"zh-CN": "⚠️ 超阈值：{metric} = {value}（阈值 {threshold}）", "en": "⚠️ breach: {metric} = {value} (threshold {threshold})"},
        "digest.churn.drift": {"zh-CN": "⚠️ 流失模型 {version} 出现漂移", "en": "⚠️ churn model {version} drifted"},
        "digest.churn.bands": {"zh-CN": "流失风险：高 {high}，中 {medium}，低 {low}", "en": "Churn risk: high {high}, medium {medium}, low {low}"},
        "digest.campaigns.head": {"zh-CN": "**活动触达**", "en": "**Campaigns**"},
        "digest.campaigns.line": {"zh-CN": "{campaign}：{counts}", "en": "{campaign}: {counts}"},
        "digest.campaigns.none": {"zh-CN": "今晚无触达", "en": "no touches tonight"},
        "digest.human.head": {"zh-CN": "**需要人工处理**", "en": "**Needs a human**"},
        "digest.human.none": {"zh-CN": "无", "en": "nothing"},
        # a section the warehouse could not answer (tasks/alerts/digest.py _Builder.unreadable)
        "digest.section.unreadable": {"zh-CN": "⚠️ {section}：未能从数据仓库读取（{error}），本节缺失",
                                      "en": "⚠️ {section}: could not be read from the warehouse ({error}); this section is missing"},
        "digest.human.unreadable": {"zh-CN": "摘要的「{section}」未能读取（{error}）：请查看本次运行日志，并检查数据仓库是否已升级（userops db upgrade）",
                                    "en": "the digest's {section} could not be read ({error}): see this run's log and check the warehouse is upgraded (userops db upgrade)"},
        "digest.section.run": {"zh-CN": "运行情况", "en": "run summary"},
        "digest.section.stages": {"zh-CN": "生命周期变化", "en": "lifecycle changes"},
        "digest.section.health": {"zh-CN": "健康指标", "en": "health figures"},
        "digest.section.churn": {"zh-CN": "流失风险", "en": "churn risk"},
        "digest.section.campaigns": {"zh-CN": "活动触达", "en": "campaigns"},
        "digest.section.human": {"zh-CN": "需要人工处理", "en": "needs a human"},
        "digest.section.incidents": {"zh-CN": "进行中的危机事件", "en": "open incidents"},
        "digest.section.reviews": {"zh-CN": "待复核的消息", "en": "messages awaiting review"},
        "digest.section.other": {"zh-CN": "一节", "en": "a section"},
        # the warehouse cannot be read at all (tasks/alerts/digest.py offline_digest): what the run holds in memory
        "digest.section.ingest": {"zh-CN": "抽取、入库与隔离行数", "en": "rows extracted, loaded and quarantined"},
        "digest.section.quarantine_rules": {"zh-CN": "隔离规则", "en": "quarantine rules"},
        "digest.section.undelivered": {"zh-CN": "未送达的告警", "en": "undelivered alerts"},
        "digest.offline.status_unknown": {"zh-CN": "未知（本进程没有这次运行的记录）", "en": "unknown (this process holds no record of the run)"},
        "digest.offline.stage_line": {"zh-CN": "{stage}：{line}", "en": "{stage}: {line}"},
        "digest.offline.stage_failed": {"zh-CN": "{stage}：未完成，运行在这一阶段失败", "en": "{stage}: not finished, the run failed in this stage"},
        "digest.offline.note": {
            "zh-CN": "数据仓库读不到：{problem}。本摘要只有本次运行内存中的结果，缺少以下数字：{missing}",
            "en": "the warehouse could not be read: {problem}. This digest holds only what the run kept in memory; these figures are missing: {missing}",
        },
        "digest.offline.earlier": {
            "zh-CN": "以下各节是数据仓库断开之前读到的（{at}）：",
            "en": "These sections were read before the warehouse went away ({at}):",
        },
        "digest.offline.human": {
            "zh-CN": "数据仓库读不到，摘要缺少其中的数字：{fix}",
            "en": "the warehouse could not be read, so the digest lacks its figures: {fix}",
        },
        "digest.human.incidents": {"zh-CN": "进行中的危机事件：{n}", "en": "open incidents: {n}"},
        "digest.human.step": {
            "zh-CN": "事件 {incident} 的「{step}」截止 {deadline}（{status}）",
            "en": "incident {incident}: {step} due {deadline} ({status})",
        },
        "digest.human.reviews": {"zh-CN": "待审核的触达：{n}", "en": "touches awaiting review: {n}"},
        "digest.human.alerts": {"zh-CN": "未送达的告警：{n}（`userops alert list`）", "en": "undelivered alerts: {n} (`userops alert list`)"},
        "digest.human.breaches": {"zh-CN": "今日超阈值指标：{n}", "en": "threshold breaches today: {n}"},
        "digest.link": {"zh-CN": "在 Prefect 中查看本次运行", "en": "View this run in Prefect"},
    }
)

METRIC_LABELS = {
    "members": {"zh-CN": "会员", "en": "members"},
    # new + active + loyal, as the health snapshot counts it: not the "active" stage alone
    "active": {"zh-CN": "活跃会员（新客+活跃+忠诚）", "en": "active members (new + active + loyal)"},
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


class CatalogueLabels(Mapping):
    """A label table (``{key: {lang: text}}``, as ``label`` reads it) whose texts are the
    catalogue's ``<prefix><key>``, read when asked: one source for words another part
    registers, so the digest never says a stage differently from the tags report."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def __getitem__(self, key: str) -> dict[str, str]:
        if not isinstance(key, str):
            raise KeyError(key)
        return {lang: t(self.prefix + key, lang) for lang in LANGUAGES}  # KeyError when not registered

    def __iter__(self):
        return iter(suffixes(self.prefix))

    def __len__(self) -> int:
        return len(suffixes(self.prefix))


# the lifecycle stages as the tags catalogue (tasks/tags.py ``tags.stage.*``) names them
STAGE_LABELS = CatalogueLabels("tags.stage.")

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
