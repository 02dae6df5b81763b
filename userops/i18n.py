"""Operator- and customer-facing text in zh-CN (default) and en.

Modules register their own catalogues: ``register({"key": {"zh-CN": "...", "en": "..."}})``
and render with ``t("key", lang, **values)`` (``str.format`` placeholders).
"""
from __future__ import annotations

import importlib

from userops.settings import get_settings

LANGUAGES = ("zh-CN", "en")
_CATALOG: dict[str, dict[str, str]] = {}
# the modules whose import registers a catalogue: loaded on the first key not registered yet,
# so a text is found whatever was imported before (a night that fails before the stage that
# imports the alert texts still renders its failure alert)
CATALOGUES = (
    "tasks.extract",
    "tasks.artifacts",
    "tasks.tags",
    "tasks.health",
    "tasks.alerts.messages",
    "tasks.alerts.journal",
    "tasks.alerts.problems",
    "tasks.validate",
    "tasks.crisis.compensate",
    "tasks.campaigns.texts",
    "tasks.crisis.messages",
    "models.messages",
    "models.registry",
    "models.scoring",
    "flows.texts",
    "userops.reports",
    "userops.db",
)
# the command line's own texts are registered by its modules (userops/cli/*), used only there


def load_catalogues() -> None:
    for module in CATALOGUES:
        importlib.import_module(module)


def register(messages: dict[str, dict[str, str]]) -> None:
    for key, texts in messages.items():
        missing = [lang for lang in LANGUAGES if lang not in texts]
        if missing:
            raise ValueError(f"message {key!r} lacks {', '.join(missing)}")
        _CATALOG[key] = texts


def t(key: str, lang: str | None = None, **values) -> str:
    lang = lang or get_settings().language
    texts = _CATALOG.get(key)
    if texts is None:
        load_catalogues()
        texts = _CATALOG.get(key)
    if texts is None:
        raise KeyError(f"no message {key!r}")
    return texts.get(lang, texts["en"]).format(**values)


def t_or(key: str, default, lang: str | None = None, **values):
    """``t(key)``, or ``default`` when no message has that key (a code with no words yet:
    a stage or strategy added later keeps its code)."""
    if key not in _CATALOG:
        load_catalogues()
        if key not in _CATALOG:
            return default
    return t(key, lang, **values)


def suffixes(prefix: str) -> list[str]:
    """What follows ``prefix`` in the registered keys, in registration order (every catalogue
    loaded): ``suffixes("tags.stage.")`` -> ``["prospect", "new", ...]``."""
    load_catalogues()
    return [k[len(prefix):] for k in _CATALOG if k.startswith(prefix)]


def labelled(label: str, value="", lang: str | None = None) -> str:
    """A label and its value as one line's text: ``原因：缺货`` in zh-CN, ``Reason: out of stock``
    in en; with no value just the label and its colon (``原始记录：`` / ``Record:``)."""
    text = t("label.value", lang, label=label, value=value)
    return text if value != "" else text.rstrip()


def join_list(items, lang: str | None = None) -> str:
    """Items of a list inside a sentence, joined with the language's ``list.sep`` (，/ , )."""
    return t("list.sep", lang).join(str(x) for x in items)


def parens(text, lang: str | None = None) -> str:
    """``text`` in the language's parentheses: （…） in zh-CN, (…) in en."""
    return t("parens", lang, text=text)


def pad(text, width: int, align: str = "<") -> str:
    """``text`` padded to ``width`` terminal columns for a plain-text table: a Chinese
    character takes two columns, so ``f"{text:<10}"`` would push the next column of a zh-CN
    row out of line. ``align`` ``<`` pads on the right, ``>`` on the left."""
    from rich.cells import cell_len  # typer's rich, already loaded by the command line

    text = str(text)
    fill = " " * max(0, width - cell_len(text))
    return fill + text if align == ">" else text + fill


def money(v, dash: str = "—") -> str:
    """An amount of money as the operator reads it everywhere: ``¥11,880.00`` (``dash`` when
    there is none)."""
    return dash if is_missing(v) else f"¥{float(v):,.2f}"


def is_missing(v) -> bool:
    """No value to show: None, a float NaN, or pandas' missing markers (NA, NaT, a numpy NaN).
    Containers (a record's list or dict) are values, never missing."""
    if v is None or (isinstance(v, float) and v != v):
        return True
    import pandas as pd  # here, not at the top: the command line imports this module first

    return pd.api.types.is_scalar(v) and bool(pd.isna(v))


def or_dash(v, dash: str = "—") -> str:
    """A value as a table or report cell: ``dash`` (an em dash unless told) when there is
    none (see ``is_missing``), else ``str(v)``."""
    return dash if is_missing(v) else str(v)


register(
    {
        "ingest.line": {
            "zh-CN": "{table}：抽取 {read} 行，入库 {loaded} 行，隔离 {quarantined} 行",
            "en": "{table}: {read} extracted, {loaded} loaded, {quarantined} quarantined",
        },
        # the nightly ingest's run-log lines (tasks.ingest), beside ingest.line
        "log.ingest.progress": {"zh-CN": "{table}：已抽取并入库 {n} 行", "en": "{table}: {n} rows extracted and loaded so far"},
        # rows read from the file so far (some may be quarantined): "已导入" read as all of them loaded
        "log.import.progress": {"zh-CN": "{table}：已读取 {n} 行", "en": "{table}: {n} rows read so far"},
        "log.ingest.not_provided": {"zh-CN": "{table}：数据来源不提供该表，已跳过", "en": "{table}: the source does not provide this table; skipped"},
        "nightly.done": {
            "zh-CN": "夜间任务 {as_of} 完成，用时 {duration} 秒",
            "en": "Nightly run for {as_of} finished in {duration}s",
        },
        # flows/nightly.py refuse_future_day: `userops run nightly --as-of`, the Run form, a deployment run
        "nightly.future_day": {
            "zh-CN": "{day} 在今天（店铺时间 {today}）之后：夜间任务只能按已经到来的日子运行，请用 {today} 或更早的日期，或不指定日期（默认为今天）",
            "en": "{day} is after today ({today}, shop time): the nightly run can only run for a day that has come; give {today} or earlier, or no date (today by default)",
        },
        "nightly.failed": {
            "zh-CN": "夜间任务失败：{error}",
            "en": "Nightly run failed: {error}",
        },
        "import.done_superseded": {"zh-CN": "，另有 {n} 行是同一记录的旧版本或重复行，以较新的版本为准",
                                   "en": ", {n} older versions or copies of a record the file holds newer (the newest kept)"},
        "import.done": {
            "zh-CN": "{path}：读取 {read} 行，入库 {loaded} 行，隔离 {quarantined} 行",
            "en": "{path}: {read} rows read, {loaded} loaded, {quarantined} quarantined",
        },
        "quarantine.none": {"zh-CN": "隔离区为空。", "en": "Quarantine is empty."},
        "quarantine.head": {
            "zh-CN": "表             规则                              记录数   最近运行",
            "en": "table          rule                              records  last run",
        },
        "quarantine.latest": {"zh-CN": "最近隔离的记录：", "en": "Latest quarantined records:"},
        "quarantine.unknown": {"zh-CN": "没有隔离记录 #{id}（`userops quarantine list` 列出编号）",
                               "en": "no quarantined record #{id} (`userops quarantine list` lists them)"},
        # the nightly re-check of the quarantined records (tasks.quarantine.release_ready), run log
        "log.quarantine.settled": {
            "zh-CN": "{table}：隔离记录复查完成：放行并入库 {released} 条，已被更新版本取代 {superseded} 条，仍未通过 {failing} 条",
            "en": "{table}: quarantine settled: {released} record(s) released and loaded, {superseded} superseded by a newer version, {failing} still failing",
        },
        # between the items of a list inside a sentence ("活跃 284，忠诚 31" / "active 284, loyal 31")
        "list.sep": {"zh-CN": "，", "en": ", "},
        # a label and its value built by code (``labelled``), a remark in parentheses (``parens``)
        "label.value": {"zh-CN": "{label}：{value}", "en": "{label}: {value}"},
        "parens": {"zh-CN": "（{text}）", "en": "({text})"},
        # quarantine reasons not in an expectation suite's meta (tasks/validate.py)
        "quarantine.reason.unparseable": {"zh-CN": "{column} 的值无法解析", "en": "{column} could not be parsed"},
        "quarantine.reason.customer_unknown": {"zh-CN": "客户不存在（CRM 中没有该客户）",
                                               "en": "the customer is unknown (not in the CRM)"},
        "quarantine.reason.order_unknown": {"zh-CN": "订单不存在", "en": "the order is unknown"},
        "demo.staff_listed": {
            "zh-CN": "另有 {n} 位客户进入员工联系名单（由员工电话或当面联系，不经服务商），文件在 {path}",
            "en": "{n} more customers went on the staff-outreach list (staff call or meet them; no provider involved), files under {path}",
        },
        # a message channel as the operator reads it (the demo's summary)
        "channel.word.email": {"zh-CN": "邮件", "en": "email"},
        "channel.word.sms": {"zh-CN": "短信", "en": "SMS"},
        "channel.word.push": {"zh-CN": "推送", "en": "push"},
        "channel.word.staff": {"zh-CN": "员工联系", "en": "staff"},
        "demo.delivered": {
            "zh-CN": "示例消息服务商本次收到：{counts}",
            "en": "Delivered to the sample providers: {counts}",
        },
    }
)
