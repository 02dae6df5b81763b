"""The ``--help`` of every ``userops`` command in zh-CN (the default) and en.

The command modules keep their English docstrings and ``help="..."`` (what a developer reads);
what an operator reads comes from ``HELP`` below, keyed by command path:

* ``""`` is ``userops`` itself, ``"tags"`` a group, ``"tags show"`` a command,
* ``"tags show --as-of"`` an option (its first long name), ``"tags show CUSTOMER_ID"`` an
  argument (its name in capitals).

``localize(command, lang)`` sets these texts on the click command built from the typer app
(``userops.cli.command``), and ``use_typer_texts(lang)`` typer's own words (panel titles,
``[default: …]``, ``[required]``, …). ``tests/datapath/test_cli_help_languages.py`` fails when a
command, option or argument has no entry in both languages, when an entry names nothing that
exists, or when the English in the code and the ``en`` here differ (the zh-CN then is stale).

zh-CN: full-width punctuation next to Chinese (，：；（）); command names, flags, file
formats, ids and numbers as they are; the product's words (标签、沉默、流失、隔离区、活动、
触达、危机事件、冠军模型…) as the output catalogues use them. A command's first paragraph is
its one-line summary in the listings: keep it one line.
"""
from __future__ import annotations

from typing import Any, Iterator

LANGUAGES = ("zh-CN", "en")

_AS_OF_SHOP = {"zh-CN": "业务日 YYYY-MM-DD（默认：店铺时间的今天）。", "en": "Business day YYYY-MM-DD (default: today in the shop)."}
_AS_OF_TODAY = {"zh-CN": "业务日 YYYY-MM-DD（默认今天）。", "en": "Business day YYYY-MM-DD (default today)."}
_AS_OF_TAGS = {"zh-CN": "按当天（YYYY-MM-DD）的数据状态重新计算。", "en": "Recompute for this day (YYYY-MM-DD) from the data as it stood."}
_FIGURES_JSON = {"zh-CN": "以 JSON 输出数据。", "en": "Print the figures as JSON."}
_RESULT_JSON = {"zh-CN": "以一个 JSON 对象输出结果。", "en": "Print the result as one JSON object."}
_INCIDENT_ID = {"zh-CN": "事件编号。", "en": "Incident id."}
_BY = {"zh-CN": "记录中的操作人姓名（默认：当前登录名）。", "en": "Your name for the record (default: your login)."}

HELP: dict[str, dict[str, str]] = {
    "": {"zh-CN": "userops：自动运行的用户运营中心。", "en": "userops: the user-operations center that runs itself."},
    # --- alert -------------------------------------------------------------------------------
    "alert": {"zh-CN": "运营告警：Slack、钉钉、企业微信（告警队列、渠道、夜间摘要）。",
              "en": "Operator alerts: Slack, DingTalk, WeCom (outbox, channels, digest)."},
    "alert automation": {"zh-CN": "创建或更新 Prefect 自动化：流程运行崩溃时发出告警。",
                         "en": "Create or update the Prefect automation that alerts on crashed flow runs."},
    "alert channels": {"zh-CN": "已配置的渠道，以及每类告警发往哪里（不显示 webhook 地址）。",
                       "en": "The configured channels and where each alert kind goes (never the webhook URLs)."},
    "alert deliver": {"zh-CN": "立即投递队列中所有到期的告警（含重试、限流、合并）。",
                      "en": "Deliver every due alert of the outbox now (retries, rate limits, merging)."},
    "alert list": {"zh-CN": "队列中最新的告警及其投递状态。", "en": "The newest alerts in the outbox with their delivery state."},
    "alert list --status": {"zh-CN": "只看此状态：pending、sending、sent、failed、obsolete（不再需要，未发送）。",
                            "en": "Only this status: pending, sending, sent, failed, obsolete."},
    "alert list --kind": {"zh-CN": "只看此类告警（flow_failed、validation、digest 等）。",
                          "en": "Only this alert kind (flow_failed, validation, digest, ...)."},
    "alert list --limit": {"zh-CN": "显示条数，最新的在前。", "en": "How many, newest first."},
    "alert register-blocks": {
        "zh-CN": "把已配置的告警渠道保存为 Prefect block（之后可在界面中修改）。\n\n会先在 Prefect 服务器上注册告警渠道的 block 类型。",
        "en": "Save the configured alert channels as Prefect blocks (editable in the UI afterwards).\n\n"
              "Registers the alert-channel block types on the Prefect server first.",
    },
    "alert register-blocks --overwrite": {"zh-CN": "用配置中的值覆盖已有的渠道 block。",
                                          "en": "Replace existing channel blocks with the settings' values."},
    "alert test": {"zh-CN": "立即向 CHANNEL 发送一条测试消息，并显示渠道的答复。",
                   "en": "Send a test message to CHANNEL now and print the channel's verdict."},
    "alert test CHANNEL": {"zh-CN": "渠道名（slack、dingtalk、wecom，或 Prefect block 的名称）。",
                           "en": "Channel name (slack, dingtalk, wecom, or a Prefect block's name)."},
    # --- campaign ----------------------------------------------------------------------------
    "campaign": {"zh-CN": "生命周期活动：沉睡唤醒、流失预警关怀、流失召回（计划、运行、效果、沟通日历）。",
                 "en": "Lifecycle campaigns: awakening, retention, recall (plan, run, report, calendar)."},
    "campaign approve": {"zh-CN": "放行某活动所有待审核的触达；它们随下一次发送发出。",
                         "en": "Release every touch of a campaign that waits for review; they go out with the next send."},
    "campaign approve CAMPAIGN": {"zh-CN": "有待审核触达的活动（如 crisis-<id>）。",
                                  "en": "Campaign whose touches wait for review (e.g. crisis-<id>)."},
    "campaign calendar": {"zh-CN": "沟通日历：按天、活动和渠道统计。",
                          "en": "The communication calendar (沟通日历): per day, campaign and channel."},
    "campaign calendar --past": {"zh-CN": "往前看的天数（已发送）。", "en": "Days back (sent)."},
    "campaign calendar --ahead": {"zh-CN": "往后看的天数（计划发送）。", "en": "Days ahead (planned)."},
    "campaign calendar --json": {"zh-CN": "以 JSON 输出。", "en": "Print as JSON."},
    "campaign list": {"zh-CN": "campaigns/ 中定义的活动（名称、是否启用、进入条件、渠道、优先级）。",
                      "en": "The campaigns defined in campaigns/ (name, on/off, entry, channel, priority)."},
    "campaign plan": {"zh-CN": "为活动生成发送计划（或用 --dry-run 预览）。", "en": "Plan a campaign (or preview it with --dry-run)."},
    "campaign plan NAME": {"zh-CN": "活动名，如 awakening", "en": "Campaign name, e.g. awakening"},
    "campaign plan --dry-run": {"zh-CN": "显示谁会收到什么以及原因；不写入、不发送。",
                                "en": "Show who would get what and why; write and send nothing."},
    "campaign plan --as-of": _AS_OF_TODAY,
    "campaign plan --channel": {"zh-CN": "改用此渠道计划发送。", "en": "Plan through this channel instead."},
    "campaign plan --sample": {"zh-CN": "显示多少条消息样例。", "en": "How many sample messages to show."},
    "campaign plan --json": _FIGURES_JSON,
    "campaign report": {"zh-CN": "按版本统计已触达、已转化、对照组与实验组对比，以及提升及其 95% 置信区间。",
                        "en": "Reached, converted, control vs treatment, uplift with a 95% interval, per variant."},
    "campaign report NAME": {"zh-CN": "活动名", "en": "Campaign name"},
    "campaign report --json": _FIGURES_JSON,
    "campaign run": {"zh-CN": "立即计划并发送一个活动（作为 `campaign` 流程的一次运行，可在 Prefect 界面查看）。",
                     "en": "Plan and send one campaign now (a run of the `campaign` flow, visible in the Prefect UI)."},
    "campaign run NAME": {"zh-CN": "活动名，如 recall", "en": "Campaign name, e.g. recall"},
    "campaign run --channel": {"zh-CN": "改用此渠道发送（email、sms、push、staff）。",
                               "en": "Send through this channel instead (email, sms, push, staff)."},
    "campaign run --as-of": _AS_OF_TODAY,
    "campaign run --local": {"zh-CN": "不经 Prefect，在本终端计划并发送（界面中没有这次运行，也没有 artifact）。",
                             "en": "Plan and send in this terminal without Prefect (no run in the UI, no artifacts)."},
    "campaign send": {"zh-CN": "发送所有已到期的触达，每条只发一次。", "en": "Deliver every touch that is due now, exactly once."},
    "campaign send --channel": {"zh-CN": "改用此渠道发送。", "en": "Send through this channel instead."},
    "campaign validate": {"zh-CN": "检查所有活动定义；有无效定义时以退出码 2 结束，并指出文件、字段和原因。",
                          "en": "Check every definition; exit 2 and name file, field and reason if one is invalid."},
    # --- data: db, demo, import, quarantine, run ---------------------------------------------
    "db": {"zh-CN": "数据仓库表结构。", "en": "Warehouse schema."},
    "db upgrade": {"zh-CN": "创建或升级数据仓库表结构（Alembic）。", "en": "Create or upgrade the warehouse schema (Alembic)."},
    "demo": {"zh-CN": "在本机回环地址上启动示例 CRM 与订单系统，并对其运行夜间任务。",
             "en": "Start the sample CRM + order system on loopback and run the nightly flow against it."},
    "demo --customers": {"zh-CN": "生成多少个示例会员。", "en": "How many sample members to generate."},
    "demo --seed": {"zh-CN": "示例数据的随机种子（种子相同，数据相同）。", "en": "Random seed of the sample data (same seed, same data)."},
    "demo --orders-per-customer": {"zh-CN": "每个会员的平均订单数（默认约 6）。", "en": "Average orders a member (default ~6)."},
    "demo --reset": {"zh-CN": "从空的数据仓库开始。", "en": "Start from an empty warehouse."},
    "import": {"zh-CN": "导入 CSV 或 Excel 文件：合格行入库，不合格行连同所违反的规则进入隔离区。",
               "en": "Import a CSV or Excel file: good rows loaded, bad rows quarantined with their rule."},
    "import TABLE": {"zh-CN": "数据表：customers | orders | order-items | feedback | events",
                     "en": "customers | orders | order-items | feedback | events"},
    "import PATH": {"zh-CN": "含标准列的 .csv 或 .xlsx 文件（见 README）。",
                    "en": "A .csv or .xlsx file with the canonical columns (see README)."},
    "import --map": {"zh-CN": "重命名源文件的列名：--map '会员号=customer_id'（可重复）。",
                     "en": "Rename a source header: --map '会员号=customer_id' (repeatable)."},
    "import --timezone": {"zh-CN": "不带时区偏移的时间所用的时区（默认：店铺时区）。",
                          "en": "Timezone of times without an offset (default: the shop's)."},
    "import --date-order": {"zh-CN": "日和月在前的日期（如 01/11/2026）怎么读：dmy（11 月 1 日）或 mdy（1 月 11 日）。默认 ymd：两种读法都说得通的日期进入隔离区（ambiguous_date），绝不猜测。",
                            "en": "How to read dates written day and month first, e.g. 01/11/2026: dmy (1 November) or mdy (January 11). "
                                  "Default ymd: such a date that reads both ways is quarantined (ambiguous_date), never guessed."},
    "quarantine": {"zh-CN": "校验拒绝了哪些记录、按哪条规则、在哪次运行中。",
                   "en": "What validation rejected, by which rule, in which run."},
    "quarantine list": {"zh-CN": "仍待处理的被拒记录，按数据表和规则分组，再列出最新的记录。",
                        "en": "Rejected records still open, grouped by table and rule, then the latest ones."},
    "quarantine list --table": {"zh-CN": "数据表：customers、orders、order-items、feedback 或 events。",
                                "en": "customers, orders, order-items, feedback or events."},
    "quarantine list --run": {"zh-CN": "只看在此运行编号中首次出现的记录。", "en": "Only records first seen in this run id."},
    "quarantine list --limit": {"zh-CN": "最多列出多少条最新记录。", "en": "How many of the latest records to list."},
    "quarantine list --all": {"zh-CN": "也包括已处理的记录（其客户或订单到达后已放行，或已被更新的版本取代）。",
                              "en": "Also records already settled (released once their customer or order arrived, or superseded)."},
    "quarantine show": {"zh-CN": "一条被拒记录的原始内容（手机号和邮箱已脱敏）、所违反的规则及所在运行。",
                        "en": "One rejected record as received (phone and email masked), its rule and run."},
    "quarantine show RECORD_ID": {"zh-CN": "隔离记录的编号（#）。", "en": "The # of a quarantined record."},
    "run": {"zh-CN": "立即对已配置的数据源运行流程。", "en": "Run a flow now against the configured sources."},
    "run nightly": {"zh-CN": "立即对已配置的数据源运行夜间任务。", "en": "Run the nightly flow now against the configured sources."},
    "run nightly --as-of": {"zh-CN": "业务日 YYYY-MM-DD（默认：店铺时区的今天）。",
                            "en": "Business day YYYY-MM-DD (default: today in the shop's timezone)."},
    "run nightly --full-refresh": {"zh-CN": "忽略水位，重新读取所有数据源。", "en": "Ignore watermarks and re-read every source."},
    # --- incident ----------------------------------------------------------------------------
    "incident": {"zh-CN": "危机事件（3C：2 小时内控制扩散，4 小时内澄清事实，24 小时内补偿用户）。",
                 "en": "Crisis incidents (3C: control 2h, clarify 4h, compensate 24h)."},
    "incident approve": {"zh-CN": "批准事件等待审批的事项（不带选项时：有待批的声明则批准声明，否则批准核心客户的致歉消息）。",
                         "en": "Approve what the incident waits for (without flags: the statement, else the core apologies)."},
    "incident approve INCIDENT_ID": _INCIDENT_ID,
    "incident approve --statement-file": {"zh-CN": "发布此文件中（修改过的）文本，而不是草稿。",
                                          "en": "Publish this (edited) text instead of the draft."},
    "incident approve --statement": {"zh-CN": "批准声明。", "en": "Approve the statement."},
    "incident approve --core": {"zh-CN": "批准核心客户的致歉消息。", "en": "Approve the core customers' apologies."},
    "incident approve --exclude": {"zh-CN": "与 --core 一起用：这位客户不会收到本事件的任何联系（不发致歉消息，也不进电话回访清单）；可重复。",
                                   "en": "With --core: a customer id to leave out: nothing from this incident (no apology, not on the call list); repeatable."},
    "incident approve --takedown": {"zh-CN": "确认商品已人工下架。", "en": "Confirm the products were taken off sale by hand."},
    "incident approve --by": _BY,
    "incident close": {"zh-CN": "立即关闭事件：其客户恢复可营销；并打印结案报告。",
                       "en": "Close the incident now: its customers are marketable again; prints the closing report."},
    "incident close INCIDENT_ID": _INCIDENT_ID,
    "incident close --by": _BY,
    "incident list": {"zh-CN": "危机事件，最新的在前，附三个步骤的状态。",
                      "en": "Incidents, newest first, with the state of their three steps."},
    "incident list --all": {"zh-CN": "全部事件（默认）或只看未关闭的事件。", "en": "All incidents (default) or only the open ones."},
    "incident open": {"zh-CN": "为商品开启危机事件：与界面中 crisis-response 的运行表单相同。",
                      "en": "Open an incident for products: the same as the crisis-response Run form in the UI."},
    "incident open --sku": {"zh-CN": "涉及的商品 SKU（多个时重复此选项）。", "en": "Product SKU concerned (repeat for several)."},
    "incident open --reason": {  # the Run form's words (flows/texts.py param.crisis.reason.description)
        "zh-CN": "用一句话说明发生了什么，记入事件和告警（默认的官方声明模板不引用它）。其中的手机号和邮箱会被遮蔽（本次运行的参数在开始时也会替换）；请勿粘贴客户的联系方式。",
        "en": "What happened, in one sentence; it goes into the incident and its alerts (the default statement templates do not "
        "quote it). Phone numbers and emails in it are masked (also in this run's parameters, replaced at its start); do "
        "not paste customers' contact details.",
    },
    "incident open --severity": {"zh-CN": "级别：low | medium | high | critical", "en": "low | medium | high | critical"},
    "incident open --local": {"zh-CN": "在本终端运行流程，而不是在已部署的服务上运行。",
                              "en": "Run the flow in this terminal instead of on the served deployment."},
    "incident open --by": {"zh-CN": "开启人（默认：当前登录名）。", "en": "Who opens it (default: your login)."},
    "incident open --unknown-ok": {"zh-CN": "即使仓库中没有任何订单含该 SKU 也开启。",
                                   "en": "Open it even for a SKU no order in the warehouse has."},
    "incident show": {"zh-CN": "一个事件的时间线：每个步骤、由谁完成、何时完成、是否在时限内。",
                      "en": "One incident's timeline: every step, who did it, when, deadline met or not."},
    "incident show INCIDENT_ID": {"zh-CN": "事件编号，如 INC-20261122-0930-AB12。", "en": "Incident id, e.g. INC-20261122-0930-AB12."},
    # --- model -------------------------------------------------------------------------------
    "model": {"zh-CN": "流失模型：训练、状态、评分、回测。", "en": "Churn model: train, status, score, backtest."},
    "model backtest": {"zh-CN": "在截止日减去预测窗口处训练、在截止日评估，并与 recency 和 BG/NBD 基线对比。",
                       "en": "Train at cutoff−horizon, evaluate at cutoff, beside recency and BG/NBD baselines."},
    "model backtest --orders": {"zh-CN": "订单文件（CSV/.parquet/.xlsx，UTF-8 或 GB18030，列名同导入，如 订单号、支付时间）：order_id、customer_id、paid_at、amount、status。不符合导入规则的行使文件被拒绝。",
                                "en": "Orders file (CSV/.parquet/.xlsx, UTF-8 or GB18030, headers as the import, e.g. 订单号, 支付时间): order_id, customer_id, paid_at, amount, status. A row breaking an import rule refuses the file."},
    "model backtest --cutoff": {"zh-CN": "评估截止日 T，YYYY-MM-DD（训练用 T 减去预测窗口）。",
                                "en": "Evaluation cutoff T, YYYY-MM-DD (training uses T minus the horizon)."},
    "model backtest --horizon": {"zh-CN": "预测窗口 H，单位：天。", "en": "Horizon H in days."},
    "model backtest --json": {"zh-CN": "只输出一个 JSON 对象：model、recency、bgnbd。",
                              "en": "Print exactly one JSON object: model, recency, bgnbd."},
    "model backtest --date-order": {"zh-CN": "日和月在前的日期（如 01/11/2026）怎么读：dmy（11 月 1 日）或 mdy（1 月 11 日）。默认 ymd：两种读法都说得通的日期不被猜测，文件被拒绝（ambiguous_date）。",
                                    "en": "How to read dates written day and month first, e.g. 01/11/2026: dmy (1 November) or mdy (January 11). "
                                          "Default ymd: such a date that reads both ways refuses the file (ambiguous_date), never guessed."},
    "model score": {"zh-CN": "用冠军模型为每位客户评分（没有冠军模型时先训练），并检查漂移。",
                    "en": "Score every customer with the champion (training first if there is none), check drift."},
    "model score --as-of": _AS_OF_SHOP,
    "model score --no-train": {"zh-CN": "从不训练，即使没有冠军模型或冠军模型已过期。",
                               "en": "Never train, even without a champion or with a stale one."},
    "model score --json": _RESULT_JSON,
    "model status": {"zh-CN": "每个模型版本的指标和状态、冠军模型，以及最近一次漂移检查。",
                     "en": "Every model version with its metrics and status, the champion, and the last drift check."},
    "model status --json": {"zh-CN": "以 JSON 输出。", "en": "Print as JSON."},
    "model train": {"zh-CN": "在最近的完整窗口上训练；只有不逊于冠军模型时才晋升。",
                    "en": "Train on the latest complete window; promote only if it does not lose to the champion."},
    "model train --as-of": _AS_OF_SHOP,
    "model train --json": _RESULT_JSON,
    # --- serve -------------------------------------------------------------------------------
    "serve": {
        "zh-CN": "启动 Prefect 服务器，部署 prefect.yaml，启动工作进程；按 Ctrl-C 全部停止。\n\n同时注册告警 block，并打印界面地址。",
        "en": "Start the Prefect server, deploy prefect.yaml, start a worker; Ctrl-C stops it all.\n\n"
              "Registers the alert blocks too, and prints the UI's address.",
    },
    "serve --host": {"zh-CN": "Prefect 服务器监听的地址（默认 127.0.0.1；设为 0.0.0.0 可让其他机器上的工作进程连接）。",
                     "en": "Address the Prefect server listens on (default 127.0.0.1; 0.0.0.0 to let workers on other machines connect)."},
    "serve --port": {"zh-CN": "Prefect 服务器和界面的端口（默认 4200）。", "en": "Port of the Prefect server and UI (default 4200)."},
    "serve --check": {"zh-CN": "只列出服务器上的部署及其调度和触发器；缺少部署时以退出码 1 结束。",
                      "en": "Only list the deployments on the server with their schedules and triggers; exit 1 if one is missing."},
    "serve --worker-only": {"zh-CN": "只启动一个工作池的工作进程，连接 PREFECT_API_URL 所指的服务器（用于增加机器）。",
                            "en": "Only start a worker for the work pool, against the server at PREFECT_API_URL (for extra machines)."},
    "serve --no-worker": {"zh-CN": "启动服务器并部署，但不启动工作进程。", "en": "Start the server and deploy, but no worker."},
    # --- tags --------------------------------------------------------------------------------
    "tags": {"zh-CN": "客户标签：生命周期阶段、RFM、价值分层、危机优先级、行为标签。",
             "en": "Customer tags: lifecycle stage, RFM, value tier, crisis priority, behaviour."},
    "tags show": {"zh-CN": "一位客户的每个标签及其背后的数据。", "en": "Each tag of one customer with the numbers behind it."},
    "tags show CUSTOMER_ID": {"zh-CN": "客户编号。", "en": "The customer's id."},
    "tags show --as-of": _AS_OF_TAGS,
    "tags summary": {"zh-CN": "每个标签各有多少客户。", "en": "How many customers carry each tag."},
    "tags summary --as-of": _AS_OF_TAGS,
}

# the --help option of every command (click's own text in en)
HELP_OPTION = {"zh-CN": "显示此帮助并退出。", "en": "Show this message and exit."}
# the usage line's prefix (click writes "Usage: ")
USAGE_PREFIX = {"zh-CN": "用法：", "en": "Usage: "}
# typer's boxed help (typer.rich_utils module constants, read when the help is printed);
# en is typer's own text, captured below before anything changes it
TYPER_TEXTS = {
    "zh-CN": {
        "ARGUMENTS_PANEL_TITLE": "参数",
        "OPTIONS_PANEL_TITLE": "选项",
        "COMMANDS_PANEL_TITLE": "命令",
        "DEFAULT_STRING": "[默认：{}]",
        "REQUIRED_LONG_STRING": "[必填]",
        "ENVVAR_STRING": "[环境变量：{}]",
        "DEPRECATED_STRING": "（已弃用）",
        "ERRORS_PANEL_TITLE": "错误",
        "ABORTED_TEXT": "已中止。",
        "RICH_HELP": "运行 [blue]'{command_path} {help_option}'[/] 查看帮助。",
    },
}


# typer's usage errors (a mistyped command, a missing argument, a value of the wrong type),
# from its own copy of click, are English f-strings: in zh-CN the message is rewritten by these
# patterns, in order, before typer prints it; anything else stays as typer wrote it
USAGE_ERRORS_ZH = [
    (r"^No such command '(.+?)'\.", r"没有命令 '\1'。"),
    (r"^Missing command\.", "缺少命令。"),
    (r"^Missing argument '(.+?)'\.", r"缺少参数 '\1'。"),
    (r"^Missing option '(.+?)'\.", r"缺少选项 '\1'。"),
    (r"^No such option: (\S+)", r"没有选项 \1"),
    (r"^Option '(.+?)' does not take a value\.", r"选项 '\1' 不带取值。"),
    (r"^Option '(.+?)' requires an argument\.", r"选项 '\1' 需要一个取值。"),
    (r"^Got unexpected extra argument\(s\) \((.*)\)$", r"多了无法识别的参数（\1）"),
    (r"^Invalid value for (.+?): ", r"\1 的取值无效："),
    (r"Input should be a valid integer.*$", "应为整数"),
    (r"Input should be a valid number.*$", "应为数字"),
    (r"Input should be a valid boolean.*$", "应为 true 或 false"),
    (r"'(.+?)' is not one of (.+?)\.$", r"'\1' 不是 \2 之一。"),
    (r"(.+?) is not in the range (.+?)\.$", r"\1 不在范围 \2 内。"),
    (r"Input should be greater than or equal to (\S+)$", r"应不小于 \1"),
    (r"Input should be less than or equal to (\S+)$", r"应不大于 \1"),
    (r"\.? ?Did you mean (.+?)\?$", r"。您是不是想用 \1？"),
    (r"\n?\(Possible options: (.+?)\)$", r"（可用选项：\1）"),
    (r"。。", "。"),
]


def usage_error_text(message: str, lang: str | None) -> str:
    """A usage error's message in ``lang`` (en: as typer wrote it)."""
    if language(lang) != "zh-CN":
        return message
    import re

    for pattern, replacement in USAGE_ERRORS_ZH:
        message = re.sub(pattern, replacement, message)
    return message


def use_usage_error_texts(lang: str | None) -> None:
    """Typer's usage errors in ``lang`` for this process (typer prints them through
    ``typer.rich_utils.rich_format_error``, looked up when the error is shown)."""
    from typer import rich_utils

    original = getattr(rich_utils.rich_format_error, "userops_original", rich_utils.rich_format_error)

    def rich_format_error(error) -> None:
        text = usage_error_text(error.format_message(), lang)
        error.format_message = lambda: text
        return original(error)

    rich_format_error.userops_original = original
    rich_utils.rich_format_error = original if language(lang) == "en" else rich_format_error


def _typer_english() -> dict[str, str]:
    from typer import rich_utils

    return {name: getattr(rich_utils, name) for name in TYPER_TEXTS["zh-CN"]}


TYPER_TEXTS["en"] = _typer_english()


def _check() -> None:
    for key, texts in HELP.items():
        missing = [lang for lang in LANGUAGES if not (texts.get(lang) or "").strip()]
        if missing:
            raise ValueError(f"help {key!r} lacks {', '.join(missing)}")


_check()


def language(lang: str | None) -> str:
    """One of ``LANGUAGES`` (an unknown value: zh-CN, the default)."""
    return lang if lang in LANGUAGES else "zh-CN"


# typer (0.29) builds its commands on its own copy of click (typer._click): the objects below
# are told apart by what they have, not by click's classes


def _is_command(obj: Any) -> bool:
    return hasattr(obj, "get_help_option")


def param_key(param: Any) -> str:
    """An option by its first long name (``--as-of``, ``--all`` of ``--all/--open``), an
    argument by its name in capitals (``CUSTOMER_ID``)."""
    if param.param_type_name == "argument":
        return param.name.upper()
    opts = list(param.opts)
    return next((o for o in opts if o.startswith("--")), opts[0])


def walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """``(key, command or parameter)`` of every command, group, option and argument under
    ``cmd`` (the ``--help`` option aside: ``HELP_OPTION``)."""
    key = " ".join(path)
    yield key, cmd
    for param in cmd.params:
        yield f"{key} {param_key(param)}".strip(), param
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from walk(sub, (*path, name))


def _usage_with(cmd: Any, prefix: str) -> None:
    """The usage line (``--help``'s first line, and a usage error's) starts with ``prefix``."""

    def format_usage(ctx, formatter) -> None:
        formatter.write_usage(ctx.command_path, " ".join(cmd.collect_usage_pieces(ctx)), prefix=prefix)

    cmd.format_usage = format_usage


def localize(cmd: Any, lang: str | None) -> Any:
    """Set the help of ``cmd`` (a fresh click command built from the typer app) and of
    everything under it to ``lang``'s texts; what has no entry keeps its own text."""
    lang = language(lang)
    for key, obj in walk(cmd):
        texts = HELP.get(key)
        if texts is not None:
            obj.help = texts[lang]
        if _is_command(obj):
            ctx = obj.context_class(obj, info_name=obj.name, **(obj.context_settings or {}))
            help_option = obj.get_help_option(ctx)
            if help_option is not None:
                help_option.help = HELP_OPTION[lang]
            _usage_with(obj, USAGE_PREFIX[lang])
    return cmd


def use_typer_texts(lang: str | None) -> dict[str, str]:
    """Typer's own words in its boxed help and errors in ``lang``; returns the texts before
    (for ``restore_typer_texts``)."""
    from typer import rich_utils

    texts = TYPER_TEXTS[language(lang)]
    before = {name: getattr(rich_utils, name) for name in texts}
    for name, text in texts.items():
        setattr(rich_utils, name, text)
    return before


def restore_typer_texts(before: dict[str, str]) -> None:
    from typer import rich_utils

    for name, text in before.items():
        setattr(rich_utils, name, text)
