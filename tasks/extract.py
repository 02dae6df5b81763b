"""Extract: pull source tables from the CRM and the order system.

Three kinds of source, all returning a pandas DataFrame of raw records — or, for a table
too big to hold at once, a generator of DataFrames of about N rows (``chunks``):
  * ``RestSource``: a generic REST API (page/offset, cursor or Link-header pagination,
    ``updated_since`` watermark, bearer token or API key, retries with backoff on 429/5xx
    honouring Retry-After, one ``requests.Session``, timeouts);
  * ``SqlSource``: a CRM's own database read by SQLAlchemy URL and query;
  * ``read_table_file``: a CSV or Excel file as small teams hand data over, with column
    mapping and the common zh-CN headers recognised.
"""
from __future__ import annotations

import codecs
import logging
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pandas as pd
import requests
from pyarrow.lib import ArrowException as ArrowError
import sqlalchemy as sa

log = logging.getLogger("userops.extract")

# Which service serves which table, and its path there.
TABLE_PATHS = {
    "customers": ("crm", "/crm/customers"),
    "feedback": ("crm", "/crm/feedback"),
    "orders": ("orders", "/orders/orders"),
    "order_items": ("orders", "/orders/order_items"),
    "events": ("orders", "/orders/events"),
}

# Canonical columns per table (README documents them); the first ones are required.
CANONICAL = {
    "customers": {
        "required": ["customer_id"],
        "optional": ["name", "phone", "email", "registered_at", "city", "marketing_consent", "member_level", "unsubscribed_at", "timezone", "updated_at"],
    },
    "orders": {
        "required": ["order_id", "customer_id", "paid_at", "amount", "status"],
        "optional": ["discount_amount", "store", "channel", "updated_at"],
    },
    "order_items": {
        "required": ["order_id", "sku", "quantity", "unit_price"],
        "optional": ["category", "updated_at"],
    },
    "feedback": {
        "required": ["feedback_id", "kind", "created_at"],
        "optional": ["customer_id", "sku", "first_response_at", "resolved_at", "satisfaction", "nps", "text", "updated_at"],
    },
    "events": {"required": ["event_id", "customer_id", "kind", "occurred_at"], "optional": []},
}

# Common headers seen in zh-CN exports (and a few English variants) -> canonical names.
HEADER_ALIASES = {
    "客户ID": "customer_id", "客户id": "customer_id", "会员ID": "customer_id", "会员id": "customer_id", "会员编号": "customer_id", "客户编号": "customer_id", "用户ID": "customer_id",
    "姓名": "name", "客户姓名": "name", "会员姓名": "name",
    "手机号": "phone", "手机": "phone", "手机号码": "phone", "电话": "phone", "联系电话": "phone",
    "邮箱": "email", "电子邮箱": "email", "邮件": "email",
    "注册时间": "registered_at", "注册日期": "registered_at", "入会时间": "registered_at",
    "城市": "city", "所在城市": "city",
    "营销同意": "marketing_consent", "是否同意营销": "marketing_consent", "接收营销": "marketing_consent",
    "会员等级": "member_level", "退订时间": "unsubscribed_at",
    "订单号": "order_id", "订单ID": "order_id", "订单id": "order_id", "订单编号": "order_id",
    "下单时间": "paid_at", "支付时间": "paid_at", "付款时间": "paid_at",
    "金额": "amount", "订单金额": "amount", "实付金额": "amount", "支付金额": "amount",
    "状态": "status", "订单状态": "status", "优惠金额": "discount_amount", "门店": "store", "渠道": "channel",
    "商品编码": "sku", "商品ID": "sku", "SKU": "sku", "数量": "quantity", "单价": "unit_price", "品类": "category", "类目": "category",
    "反馈ID": "feedback_id", "反馈编号": "feedback_id", "类型": "kind", "反馈类型": "kind",
    "创建时间": "created_at", "反馈时间": "created_at", "首次响应时间": "first_response_at", "解决时间": "resolved_at",
    "满意度": "satisfaction", "NPS": "nps", "推荐值": "nps", "内容": "text", "反馈内容": "text",
    "更新时间": "updated_at",
}
VALUE_ALIASES = {
    "status": {"已支付": "paid", "已付款": "paid", "支付": "paid", "已退款": "refunded", "退款": "refunded", "已取消": "cancelled", "取消": "cancelled", "canceled": "cancelled"},
    "kind": {"投诉": "complaint", "建议": "suggestion", "表扬": "praise", "好评": "praise"},
}


class LocalizedError(Exception):
    """An error whose message is a catalogue text: ``str()`` is rendered in the operator's
    language (``settings.language``) when raised — alerts, the run's state and the command
    line show it as it is — and ``localized(lang)`` renders it in another one. A list value
    is joined with the language's list separator; a (label, value) pair in it is shown as
    ``label：value`` / ``label: value``. Built from a plain message (an error sent back from
    the validation process) it is that message."""

    def __init__(self, message: str | None = None, key: str | None = None, **values):
        self.key, self.values = key, values
        super().__init__(message if key is None else self.localized())

    def localized(self, lang: str | None = None) -> str:
        if not self.key:
            return str(self)
        from userops.i18n import join_list, t

        def item(x):
            return t("label.value", lang, label=x[0], value=x[1]) if isinstance(x, (tuple, list)) and len(x) == 2 else x

        return t(self.key, lang, **{k: join_list([item(x) for x in v], lang) if isinstance(v, list) else v for k, v in self.values.items()})


class SourceError(LocalizedError, RuntimeError):
    """A source could not be read; the message says which and why, never a secret."""


class FileImportError(ValueError):
    """A file could not be processed at all (unreadable, a required column missing).
    ``str()`` is English (logs); ``localized()`` the operator's language (``key``: an
    ``import.file.*`` text, ``values`` its placeholders; a list is joined with the language's
    list separator)."""

    def __init__(self, message: str, key: str | None = None, **values):
        super().__init__(message)
        self.key, self.values = key, values

    def localized(self, lang: str | None = None) -> str:
        if not self.key:
            return str(self)
        from userops.i18n import join_list, t

        return t(self.key, lang, **{k: join_list(v, lang) if isinstance(v, list) else t(v.key, lang) if isinstance(v, _Cause) else v
                                    for k, v in self.values.items()})


def _file_texts() -> None:
    from userops.i18n import register

    register(
        {
            "import.file.missing": {"zh-CN": "{path}：文件不存在", "en": "{path}: no such file"},
            "import.file.empty": {"zh-CN": "{path}：文件是空的", "en": "{path}: the file is empty"},
            # {cause}: what is wrong and what to do, in the operator's words (import.file.cause.*);
            # {error}: the reader's own text (English, record content cut and masked), for whoever digs further
            "import.file.unreadable": {"zh-CN": "{path}：无法读取文件：{cause}（读取程序的原话：{error}）",
                                       "en": "{path}: cannot read the file: {cause} (the reader said: {error})"},
            "import.file.unreadable_after": {"zh-CN": "{path}：读到第 {row} 行后无法继续读取：{cause}（读取程序的原话：{error}）；本文件的任何数据都未入库",
                                             "en": "{path}: cannot read the file after row {row}: {cause} (the reader said: {error}); nothing of it was kept"},
            "import.file.cause.not_xlsx": {
                "zh-CN": "它不是有效的 .xlsx 工作簿（文件已损坏、没有传完整，或是其他格式改了扩展名）；请在 Excel 中重新另存为 .xlsx，或导出为 CSV",
                "en": "it is not a valid .xlsx workbook (damaged, cut short, or another format renamed to .xlsx); save it again from Excel as .xlsx, or export it as CSV",
            },
            "import.file.cause.encoding": {
                "zh-CN": "文件的文字编码无法识别；请另存为 UTF-8 或 GB18030 编码的 CSV",
                "en": "its text encoding was not recognized; save it as a UTF-8 or GB18030 CSV",
            },
            "import.file.cause.no_header": {"zh-CN": "文件里没有表头行", "en": "it has no header row"},
            "import.file.cause.csv": {
                "zh-CN": "CSV 的结构无法解析；请检查它是否用逗号分隔（.tsv 用制表符）、引号是否成对",
                "en": "its CSV structure could not be parsed; check that it is comma-separated (a .tsv tab-separated) and that its quotes are paired",
            },
            "import.file.cause.os": {
                "zh-CN": "文件无法打开（权限或磁盘问题）；请检查运行导入的账号能否读取它",
                "en": "the file could not be opened (permissions or disk); check that the account running the import can read it",
            },
            "import.file.directory": {"zh-CN": "{path} 是一个目录，不是文件；请指定要导入的文件，例如 {example}",
                                      "en": "{path} is a directory, not a file; give the file to import, e.g. {example}"},
            # a CSV whose header splits on ';' or a tab into the required columns (Excel in a
            # locale that writes ';' lists): read with commas it is one column
            "import.file.separator": {
                "zh-CN": "{table}：文件的列用{sep}分隔，而不是逗号（表头：{header}）；请在 Excel 中另存为“CSV UTF-8（逗号分隔）”，或把分隔符换成逗号后重新导入",
                "en": "{table}: the file's columns are separated by {sep}, not commas (header: {header}); save it from Excel as \"CSV UTF-8 (Comma delimited)\", or replace the separator with commas, and import it again",
            },
            "import.file.sep.semicolon": {"zh-CN": "分号（;）", "en": "semicolons (;)"},
            "import.file.sep.tab": {"zh-CN": "制表符", "en": "tabs"},
            "import.file.type": {"zh-CN": "{path}：不支持的文件类型 {suffix}；请用 .csv 或 .xlsx",
                                 "en": "{path}: unsupported file type {suffix}; use .csv or .xlsx"},
            "import.file.unclosed_quote": {
                "zh-CN": "{path}：第 {line} 行开始的引号（\"）未闭合，之后的所有行都会被读进同一个字段；请检查这一行的引号是否成对（值里的引号要写成两个 \"\"）。本文件的任何数据都未入库",
                "en": "{path}: the quote (\") opened on line {line} is never closed, so every later row would be read into that one field; check that this line's quotes are paired (a quote inside a value is written as two, \"\"). Nothing of the file was kept",
            },
            "import.file.malformed": {
                "zh-CN": "{path}：第 {line} 行有 {found} 个字段，表头有 {expected} 个，且这一行跨了多行（可能有未闭合的引号）；本文件的任何数据都未入库",
                "en": "{path}: line {line} has {found} fields where the header has {expected}, and it runs over several lines (an unclosed quote?); nothing of the file was kept",
            },
            # a row whose field count differs from the header's, quarantined (tasks/ingest.py)
            "quarantine.reason.malformed_row": {"zh-CN": "第 {line} 行有 {found} 个字段，表头有 {expected} 个",
                                                "en": "line {line} has {found} fields where the header has {expected}"},
            # a source that cannot be read (SourceError): the message alerts and the command line show
            "source.no_answer": {"zh-CN": "{url}：尝试 {attempts} 次仍无应答（{error}）",
                                 "en": "{url}: no answer after {attempts} attempts ({error})"},
            "source.keeps_failing": {"zh-CN": "{url}：尝试 {attempts} 次后仍返回 HTTP {status}；数据源持续出错",
                                     "en": "{url}: HTTP {status} after {attempts} attempts; the source keeps failing"},
            "source.unauthorized": {"zh-CN": "{url}：HTTP {status}——请检查数据源的令牌或 API 密钥",
                                    "en": "{url}: HTTP {status} — check the source's token or API key"},
            "source.http_error": {"zh-CN": "{url}：HTTP {status}：{body}", "en": "{url}: HTTP {status}: {body}"},
            # the run-log line of a request retried (RestSource._get): the address without credentials or query
            "log.source.retry_error": {"zh-CN": "数据源 {url} 无应答（{error}）；{wait} 秒后第 {attempt} 次重试（最多 {max} 次）",
                                       "en": "source {url}: no answer ({error}); retry {attempt} of at most {max} in {wait}s"},
            "log.source.retry_status": {"zh-CN": "数据源 {url} 返回 HTTP {status}；{wait} 秒后第 {attempt} 次重试（最多 {max} 次）",
                                        "en": "source {url}: HTTP {status}; retry {attempt} of at most {max} in {wait}s"},
            # the demo's sample systems live only while `userops demo` runs: a served deployment
            # (the worker's environment or userops.yaml) needs the real source's address
            "source.no_url": {
                "zh-CN": "没有配置 {service} 数据源的地址：请设置 USEROPS_{env}__URL（部署运行时写在 worker 的环境变量或 userops.yaml 中），然后重新运行。"
                "`userops demo` 的示例 CRM 和订单系统只在 demo 运行期间存在",
                "en": "no URL configured for the {service} source: set USEROPS_{env}__URL (for served deployments in the worker's environment or userops.yaml), then run again. "
                "The sample CRM and order system of `userops demo` exist only while the demo runs",
            },
            # BatchRejected (tasks/validate.py) and a date that reads both ways
            "batch.required_columns": {"zh-CN": "{table}：抽取的数据缺少必需列 {missing}（规则 {rule}）",
                                       "en": "{table}: required column(s) missing from the extract: {missing} (rule {rule})"},
            "batch.table_rule": {"zh-CN": "{table}：表级规则 {rule} 未通过（实际值 {observed}）",
                                 "en": "{table}: table rule {rule} failed (observed {observed})"},
            "batch.rule_error": {"zh-CN": "{table}：规则 {rule} 无法执行：{error}",
                                 "en": "{table}: rule {rule} could not be evaluated: {error}"},
            "batch.too_many_bad": {
                "zh-CN": "{table}：{read} 行中有 {bad} 行（{share}）未通过校验，超过 {limit} 的上限；本批次的任何数据都未入库。规则：{rules}。请查看 `userops quarantine list`。",
                "en": "{table}: {bad} of {read} rows ({share}) failed validation, above the {limit} limit; nothing from this batch was loaded. "
                      "Rules: {rules}. See `userops quarantine list`.",
            },
            # a day/month date that reads both ways (01/11/2026): see normalize
            "quarantine.reason.ambiguous_date": {
                "zh-CN": "{column} 的日期有歧义：日和月都不大于 12，无法判断是“日/月”还是“月/日”；请改用 YYYY-MM-DD，或在导入时用 --date-order dmy 或 mdy 指明",
                "en": "{column} is an ambiguous date: day and month are both 12 or less, so it reads as day/month and as month/day; "
                      "write YYYY-MM-DD, or say which with --date-order dmy or mdy when importing",
            },
            "import.file.columns": {
                "zh-CN": "{table}：缺少必需列 {missing}（文件里的列：{found}）。请改列名，或用 --map '源列名=标准列名' 指定，例如 --map '会员号={first}'",
                "en": "{table}: required column(s) missing: {missing} (found: {found}); rename them or map them with --map 'SOURCE HEADER=column', e.g. --map 'member no={first}'",
            },
        }
    )


_file_texts()


def _t(key: str, **values) -> str:
    from userops.i18n import t

    return t(key, **values)


def _redact_url(url: str) -> str:
    from urllib.parse import urlsplit

    p = urlsplit(url)
    return f"{p.scheme}://{p.hostname}{':' + str(p.port) if p.port else ''}{p.path}"


@dataclass
class RestSource:
    """A REST endpoint family with one ``requests.Session``."""

    base_url: str
    pagination: str = "page"  # page | offset | cursor | link
    page_size: int = 5000
    token: str | None = None
    api_key: str | None = None
    timeout: float = 30.0
    max_retries: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    sleep = staticmethod(time.sleep)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"
        if self.api_key:
            self.session.headers["X-API-Key"] = self.api_key
        self.session.headers["Accept"] = "application/json"
        self.requests_made = 0
        self.retries_made = 0

    # -- one request with retries --------------------------------------------------------
    def _get(self, url: str, params: dict | None) -> requests.Response:
        attempt = 0
        while True:
            attempt += 1
            self.requests_made += 1
            try:
                resp = self.session.get(url, params=params, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt > self.max_retries:
                    raise SourceError(key="source.no_answer", url=_redact_url(url), attempts=attempt, error=type(exc).__name__) from None
                wait = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                log.warning("%s", _t("log.source.retry_error", url=_redact_url(url), error=type(exc).__name__, attempt=attempt, max=self.max_retries, wait=f"{wait:.1f}"))
                self.retries_made += 1
                self.sleep(wait)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                if attempt > self.max_retries:
                    raise SourceError(key="source.keeps_failing", url=_redact_url(url), status=resp.status_code, attempts=attempt)
                wait = min(self.max_backoff, _retry_after(resp) or self.backoff * 2 ** (attempt - 1))
                log.warning("%s", _t("log.source.retry_status", url=_redact_url(url), status=resp.status_code, attempt=attempt, max=self.max_retries, wait=f"{wait:.1f}"))
                self.retries_made += 1
                self.sleep(wait)
                continue
            if resp.status_code in (401, 403):
                raise SourceError(key="source.unauthorized", url=_redact_url(url), status=resp.status_code)
            if resp.status_code >= 400:
                raise SourceError(key="source.http_error", url=_redact_url(url), status=resp.status_code, body=_scrub(resp.text[:200]))
            return resp

    # -- pagination ----------------------------------------------------------------------
    def fetch(self, path: str, updated_since: datetime | None = None) -> pd.DataFrame:
        """All records of ``path`` changed since the watermark, as raw records."""
        frames = list(self.pages(path, updated_since))
        if not frames:
            return pd.DataFrame()
        return pd.concat(frames, ignore_index=True)

    def chunks(self, path: str, updated_since: datetime | None = None, rows: int = 500_000):
        """The same records as ``fetch``, as DataFrames of about ``rows`` rows (whole pages):
        a big table never has to fit in memory at once."""
        yield from _group_rows(self.pages(path, updated_since), rows)

    def size_hint(self, path: str, updated_since: datetime | None = None) -> int | None:
        """How many records ``fetch`` would return, from a one-record request, when the
        pagination style reports totals (page: ``total_pages``, offset: ``total``)."""
        base: dict = {}
        if updated_since is not None:
            base["updated_since"] = since_param(updated_since)
        if self.pagination == "page":
            body = self._get(self.base_url + path, {**base, "page": 1, "page_size": 1}).json()
            value = body.get("total", body.get("total_pages"))
        elif self.pagination == "offset":
            value = self._get(self.base_url + path, {**base, "offset": 0, "limit": 1}).json().get("total")
        else:
            return None
        try:
            return int(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    def pages(self, path: str, updated_since: datetime | None = None):
        """One DataFrame per non-empty page, in the source's order.

        Page and offset paging stop where the source says the set ends (``total_pages`` /
        ``total``, or ``has_more: false``); a source that reports neither is read until a
        page comes back empty or shorter than asked for.

        Limit: page/offset paging over a set that changes while it is read can skip a row
        (an earlier row edited moves to the end, the rows after it move one place up). The
        next extract starts ``overlap_minutes`` before the watermark (tasks.ingest), which
        re-reads recent changes but not an old row skipped that way. A cursor the source
        keeps by key (the sample's: the last row's updated_at and id) does not have the gap;
        where the source offers one, prefer ``pagination: cursor``. A full refresh re-reads
        everything."""
        url = self.base_url + path
        base: dict = {}
        if updated_since is not None:
            base["updated_since"] = since_param(updated_since)
        if self.pagination == "page":
            page = 1
            while True:
                body = self._get(url, {**base, "page": page, "page_size": self.page_size}).json()
                data = body.get("data", [])
                if data:
                    yield records_frame(data)
                if not data or not _more(body, len(data), self.page_size, "total_pages", page):
                    break
                page += 1
        elif self.pagination == "offset":
            offset = 0
            while True:
                body = self._get(url, {**base, "offset": offset, "limit": self.page_size}).json()
                data = body.get("data", [])
                if data:
                    yield records_frame(data)
                offset += len(data)
                if not data or not _more(body, len(data), self.page_size, "total", offset):
                    break
        elif self.pagination == "cursor":
            cursor = ""
            while True:
                body = self._get(url, {**base, "cursor": cursor, "limit": self.page_size}).json()
                data = body.get("data", [])
                if data:
                    yield records_frame(data)
                cursor = body.get("next_cursor")
                if not cursor or not data:
                    break
        elif self.pagination == "link":
            next_url, params = url, {**base, "per_page": self.page_size}
            while next_url:
                resp = self._get(next_url, params)
                data = resp.json()
                if data:
                    yield records_frame(data)
                next_url = resp.links.get("next", {}).get("url")
                params = None  # the next link carries its own query
        else:
            raise ValueError(f"unknown pagination style {self.pagination!r}: use page, offset, cursor or link")


def records_frame(records: list) -> pd.DataFrame:
    """A page of JSON records as a frame of the values as received (object columns, no type
    inference): an integer id column with one null stays ``100`` (pandas would make it
    float64 and the id "100.0"); validation types every column from its text."""
    return pd.DataFrame(records, dtype=object)


def since_param(updated_since) -> str:
    """The watermark (naive UTC, or aware) as ISO-8601 with its offset: 2026-11-19T23:59:59+00:00
    (a naive value would be read in the source's own zone)."""
    ts = pd.Timestamp(updated_since)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat()


def _more(body: dict, got: int, asked: int, total_key: str, position: int) -> bool:
    """Whether another page follows: the source's ``has_more`` when it says, else its total
    (pages or rows), else a full page (a short one is the last)."""
    if body.get("has_more") is not None:
        return bool(body["has_more"])
    total = body.get(total_key)
    if total is not None:
        try:
            return position < int(total)
        except (TypeError, ValueError):
            pass
    return got >= asked


def _group_rows(frames, rows: int):
    """Concatenate consecutive frames into frames of at least ``rows`` rows (the last may be
    smaller), index 0..n-1 each."""
    pending: list[pd.DataFrame] = []
    n = 0
    for df in frames:
        pending.append(df)
        n += len(df)
        if n >= rows:
            yield pending[0].reset_index(drop=True) if len(pending) == 1 else pd.concat(pending, ignore_index=True)
            pending, n = [], 0
    if pending:
        yield pending[0].reset_index(drop=True) if len(pending) == 1 else pd.concat(pending, ignore_index=True)


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(parsedate_to_datetime(value).tzinfo)).total_seconds())
        except (TypeError, ValueError):
            return None


@dataclass
class SqlSource:
    """Read a table straight from a CRM's database (read-only query)."""

    url: str
    query: str
    naive_timezone: str = "UTC"  # the zone of the database's naive times (the watermark is sent in it)

    def fetch(self, updated_since: datetime | None = None) -> pd.DataFrame:
        frames = list(self.chunks(updated_since))  # at least one frame, with the columns
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def chunks(self, updated_since: datetime | None = None, rows: int = 500_000):
        """The query's rows as DataFrames of at most ``rows`` rows (a server-side cursor
        where the driver has one). An empty result yields one empty frame with the columns."""
        eng = sa.create_engine(self.url)
        try:
            with eng.connect() as conn:
                q = self.query
                params = {}
                if updated_since is not None and ":updated_since" in q:
                    params["updated_since"] = _naive_in(updated_since, self.naive_timezone)
                elif ":updated_since" in q:
                    params["updated_since"] = datetime(1970, 1, 1)
                res = conn.execution_options(stream_results=True, max_row_buffer=min(rows, 10_000)).execute(sa.text(q), params)
                cols = list(res.keys())
                sent = False
                for part in res.partitions(rows):
                    sent = True
                    # the values as the driver gave them (an integer id with a NULL stays 100, not 100.0)
                    yield pd.DataFrame(part, columns=cols, dtype=object)
                if not sent:
                    yield pd.DataFrame(columns=cols, dtype=object)
        finally:
            eng.dispose()


def _naive_in(ts, zone: str) -> datetime:
    """A naive UTC (or aware) time as the naive wall time of ``zone``."""
    t = pd.Timestamp(ts)
    t = t.tz_localize("UTC") if t.tzinfo is None else t
    return t.tz_convert(zone).tz_localize(None).to_pydatetime()


# ----------------------------------------------------------------------------- files
def canonicalize_columns(df: pd.DataFrame, table: str, mapping: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename source headers to canonical names (explicit mapping first, then known aliases)
    and translate known zh-CN values (已退款 -> refunded). Raises FileImportError naming any
    required column that is missing."""
    if table not in CANONICAL:
        raise FileImportError(f"unknown table {table!r}; choose one of {', '.join(CANONICAL)}")
    rename = {col: _canonical_name(col, mapping) for col in df.columns}
    out = df.rename(columns=rename)
    missing = [c for c in CANONICAL[table]["required"] if c not in out.columns]
    if missing:
        for sep, word in ((";", "semicolon"), ("\t", "tab")):
            names = {_canonical_name(n, mapping) for c in df.columns for n in str(c).split(sep)}
            if any(sep in str(c) for c in df.columns) and set(CANONICAL[table]["required"]) <= names:
                header = sep.join(map(str, df.columns))
                raise FileImportError(
                    f"{table}: the file's columns are separated by {word}s, not commas (header: {header}); save it as comma-separated CSV",
                    "import.file.separator", table=table, sep=_Cause("import.file.sep." + word), header=header,
                )
        raise FileImportError(
            f"{table}: required column(s) missing: {', '.join(missing)} "
            f"(found: {', '.join(map(str, df.columns))}); rename them or pass a column mapping",
            "import.file.columns", table=table, missing=list(missing), found=[str(c) for c in df.columns], first=missing[0],
        )
    return canonical_values(out)


def _canonical_name(col, mapping: dict[str, str] | None) -> str:
    """A source header's canonical name: the explicit mapping, a known alias, or itself
    lower-cased with underscores."""
    c = str(col).strip()
    if mapping and c in mapping:
        return mapping[c]
    return HEADER_ALIASES.get(c, c.lower().replace(" ", "_"))


def canonical_values(df: pd.DataFrame) -> pd.DataFrame:
    """Known zh-CN values as the canonical ones (status 已支付 -> paid, kind 投诉 ->
    complaint; ``VALUE_ALIASES``), for every source: a file, a REST page, a SQL result."""
    for col, aliases in VALUE_ALIASES.items():
        if col in df.columns:
            df[col] = df[col].map(lambda v: aliases.get(v.strip(), v.strip()) if isinstance(v, str) else v)
    return df


def read_table_file(path: str | Path, table: str, mapping: dict[str, str] | None = None, chunksize: int | None = None):
    """Read a CSV or .xlsx file as strings (validation types them). With ``chunksize`` a
    CSV is returned as an iterator of frames.

    A CSV row whose field count differs from the header's (``H2,李四,…,北京,朝阳`` under five
    columns) does not stop the import: it is left out of the frame and handed on in
    ``malformed_rows(frame)`` — its line number, the counts and its fields under the
    header's (canonical) names — to be quarantined as ``malformed_row`` while the good rows
    load. Only such a row spanning several lines (an unclosed quote, which would swallow
    the rest of the file) still fails the file. No error message carries record content:
    the reader's own texts quote the row, so they are cut and masked (``_read_error``)."""
    p = Path(path)
    if not p.exists():
        raise FileImportError(f"{p}: no such file", "import.file.missing", path=p)
    if p.is_dir():
        example = p / f"{table}.csv"
        raise FileImportError(f"{p} is a directory, not a file; give the file to import, e.g. {example}", "import.file.directory", path=p, example=example)
    suffix = p.suffix.lower()
    fatal: dict = {}  # the row that made the CSV reader give up, if one did
    try:
        if suffix in (".xlsx", ".xlsm"):
            df = _excel_extra_cells(pd.read_excel(p, dtype=str, engine="openpyxl"))
            return _canonical_chunk(df, table, mapping)
        if suffix in (".csv", ".txt", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            enc = _sniff_encoding(p)
            line = unclosed_quote_line(p)
            if line is not None:  # the reader would take the rest of the file as one field, its rows lost
                raise FileImportError(f"{p}: the quote opened on line {line} is never closed; nothing of the file was kept",
                                      "import.file.unclosed_quote", path=p, line=line)
            if chunksize:
                it = _csv_chunks(p, sep, enc, chunksize, fatal)
                first = next(it, None)
                if first is None:
                    raise FileImportError(f"{p}: the file is empty", "import.file.empty", path=p)
                first = _canonical_chunk(first, table, mapping)

                def gen():
                    yield first
                    read = len(first) + len(malformed_rows(first))
                    try:
                        for chunk in it:
                            out = _canonical_chunk(chunk, table, mapping)
                            yield out
                            read += len(out) + len(malformed_rows(out))
                    except (ArrowError, UnicodeDecodeError, ValueError, OSError) as exc:
                        if fatal:
                            raise _malformed_error(p, fatal) from None
                        err = _read_error(exc)
                        raise FileImportError(f"{p}: cannot read the file after row {read:,}: {err}", "import.file.unreadable_after",
                                              path=p, row=f"{read:,}", error=err, cause=_read_cause(exc, suffix)) from None

                return gen()
            df = pd.read_csv(p, dtype=str, sep=sep, encoding=enc, keep_default_na=False, na_values=[""])
            return canonicalize_columns(df, table, mapping)
    except FileImportError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError, zipfile.BadZipFile, KeyError, ArrowError) as exc:
        if fatal:
            raise _malformed_error(p, fatal) from None
        err = _read_error(exc)
        raise FileImportError(f"{p}: cannot read the file: {err}", "import.file.unreadable", path=p, error=err,
                              cause=_read_cause(exc, suffix)) from None
    raise FileImportError(f"{p}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx", "import.file.type", path=p, suffix=suffix or "(none)")


def malformed_rows(df: pd.DataFrame) -> list[dict]:
    """The rows left out of this chunk of a CSV because their field count differs from the
    header's: ``{"line", "expected", "found", "text", "record"}`` each (``line``: the file's
    line the row starts on; ``record``: the fields under the chunk's column names, extra ones
    as ``_extra_1``…; ``text``: the row as received). A CSV's also carry ``record_no``: the
    reader's record number, the header being 1 (a quoted field may span lines)."""
    return df.attrs.get("malformed_rows") or []


def _excel_extra_cells(df: pd.DataFrame) -> pd.DataFrame:
    """A sheet's rows with cells to the right of the last header (pandas names those
    columns ``Unnamed: 5``…) are left out and listed as malformed rows, as a CSV's with
    extra fields: their row in the sheet, the counts and every cell (vectorized; a row
    with fewer cells is just blanks in a sheet)."""
    cols = [str(c) for c in df.columns]
    named = max((i for i, c in enumerate(cols) if not c.startswith("Unnamed: ")), default=-1) + 1
    if named == len(cols) or named == 0:
        return df
    tail = df.iloc[:, named:]
    bad = tail.notna().to_numpy().any(axis=1)
    if not bad.any():
        return df.iloc[:, :named]
    rows = []
    filled = df[bad].notna().to_numpy()
    found = filled.shape[1] - filled[:, ::-1].argmax(axis=1)
    for (idx, rec), n in zip(df[bad].iterrows(), found):  # the bad rows only
        values = ["" if pd.isna(v) else str(v) for v in rec.to_numpy()[: int(n)]]
        rows.append({"line": int(idx) + 2, "expected": named, "found": int(n), "text": ",".join(values), "fields": values})
    out = df.loc[~bad].iloc[:, :named].reset_index(drop=True)
    out.attrs = {"malformed_rows": rows}
    return out


def _canonical_chunk(chunk: pd.DataFrame, table: str, mapping: dict[str, str] | None) -> pd.DataFrame:
    """``canonicalize_columns`` keeping the chunk's malformed rows, their fields named by
    the canonical columns (the header's order is kept by the rename)."""
    rows = malformed_rows(chunk)
    out = canonicalize_columns(chunk, table, mapping)
    if rows:
        import csv

        cols = [str(c) for c in out.columns]
        sep = chunk.attrs.get("sep", ",")
        for r in rows:
            fields = r.pop("fields", None)
            if fields is None:
                fields = next(csv.reader([r["text"]], delimiter=sep), [])
            rec = dict(zip(cols, fields))
            rec.update({f"_extra_{i + 1}": v for i, v in enumerate(fields[len(cols):])})
            r["record"] = rec
    out.attrs = {"malformed_rows": rows}
    return out


def _malformed_error(p: Path, row: dict) -> "FileImportError":
    return FileImportError(
        f"{p}: line {row['line']} has {row['found']} fields where the header has {row['expected']}, and it runs over several lines "
        f"(an unclosed quote?); nothing of the file was kept",
        "import.file.malformed", path=p, line=row["line"] or "?", found=row["found"], expected=row["expected"],
    )


class _Cause(str):
    """A placeholder worded in the reader's language when the message is (``localized``)."""

    def __new__(cls, key: str):
        v = super().__new__(cls, key)
        v.key = key
        return v


def _read_cause(exc: BaseException, suffix: str) -> "_Cause":
    """What a reader's failure means for the operator (an ``import.file.cause.*`` key): a
    workbook that is no zip or lacks its parts, an undecodable text, no header, a CSV whose
    structure cannot be parsed, a file that cannot be opened."""
    if suffix in (".xlsx", ".xlsm") and isinstance(exc, (zipfile.BadZipFile, KeyError, ValueError, EOFError)):
        key = "not_xlsx"
    elif isinstance(exc, UnicodeDecodeError):
        key = "encoding"
    elif isinstance(exc, pd.errors.EmptyDataError):
        key = "no_header"
    elif isinstance(exc, OSError) and not isinstance(exc, ArrowError):
        key = "os"
    else:
        key = "csv"
    return _Cause("import.file.cause." + key)


def _read_error(exc: BaseException) -> str:
    """The reader's error without record content: Arrow's CSV errors end in the offending
    row's text ("Expected 5 columns, got 6: H002,李四,139…") — cut after the counts; what
    is left is masked (``scrub_text``) in case a reader quotes a value elsewhere."""
    from userops.privacy import scrub_text

    text = str(exc)
    cut = _ARROW_ROW_TEXT.search(text)
    if cut:
        text = text[: cut.end(1)]
    return scrub_text(text)


_ARROW_ROW_TEXT = __import__("re").compile(r"(Expected \d+ columns, got \d+)(?::|$)")


def _scrub(text: str) -> str:
    from userops.privacy import scrub_text

    return scrub_text(text)


def _csv_chunks(p: Path, sep: str, encoding: str, chunksize: int, fatal: dict | None = None):
    """Stream a CSV as DataFrames of about ``chunksize`` rows, every column a string
    (pyarrow's reader: several times faster than pandas' C parser). A row with more or
    fewer fields than the header is skipped and listed in the chunk's
    ``attrs["malformed_rows"]`` with its line number; one spanning several lines (an
    unclosed quote) stops the reader, noted in ``fatal``.

    The reader parses in one thread: only then does Arrow know a bad row's line number
    (2M rows of orders, 112 MB: 0.47 s serial, 0.61 s threaded on the 2-core box — the
    streaming reader gained nothing from threads there)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with p.open("r", encoding=encoding, newline="") as fh:
        header = fh.readline().rstrip("\r\n")
    if not header:
        return
    names = next(iter(__import__("csv").reader([header], delimiter=sep)))
    fatal = fatal if fatal is not None else {}
    bad: list[dict] = []

    starts: list = []  # record_lines(p), read once the first bad row needs it

    def line_of(number: int) -> int:
        """Arrow numbers records (a quoted line break is no new one; an empty line is none):
        the physical line the record starts on."""
        if not starts:
            starts.append(record_lines(p))
        at = starts[0]
        return int(at[number - 1]) if 0 < number <= len(at) else number

    def invalid_row(row) -> str:
        # "line": the file's line the row starts on; "record_no": Arrow's record number (the header is 1)
        entry = {"line": line_of(row.number) if row.number > 0 else None, "record_no": row.number if row.number > 0 else None,
                 "expected": row.expected_columns, "found": row.actual_columns, "text": row.text}
        if "\n" in row.text or "\r" in row.text:
            fatal.update(entry)  # a quoted field ran on: the rest of the file is in this "row"
            return "error"
        bad.append(entry)
        return "skip"

    reader = pacsv.open_csv(
        p,
        # blocks of ~100 bytes per wanted row (at most 32 MiB): a chunk is a few blocks
        read_options=pacsv.ReadOptions(encoding=encoding, use_threads=False, block_size=max(4 << 10, min(32 << 20, chunksize * 100))),
        parse_options=pacsv.ParseOptions(delimiter=sep, invalid_row_handler=invalid_row),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True, null_values=[""]),
    )

    def frame(batches) -> pd.DataFrame:
        df = pa.Table.from_batches(batches, schema=reader.schema).to_pandas() if batches else pd.DataFrame(columns=names, dtype=object)
        df.attrs = {"malformed_rows": bad[:], "sep": sep}
        bad.clear()
        return df

    pending: list = []
    rows = 0
    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows + len(bad)
        if rows >= chunksize:
            yield frame(pending)
            pending, rows = [], 0
    if pending or bad:
        yield frame(pending)


def unclosed_quote_line(path: str | Path, block: int = 16 << 20) -> int | None:
    """The line on which the record holding an unclosed ``"`` starts, or None. An odd number
    of quote characters in the whole file means a quoted field runs on to the end of the
    file: a CSV reader takes every later row into that one field (with the right field count
    when it is the last column, so nothing else notices). One vectorized pass over the bytes
    (~0.1 s per 100 MB); the record's line only when one is found."""
    import numpy as np

    quotes = 0
    with Path(path).open("rb") as fh:
        while buf := fh.read(block):
            quotes += int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8) == 34))
    if quotes % 2 == 0:
        return None
    starts = record_lines(path, block)
    return int(starts[-1]) if len(starts) else 1


def record_lines(path: str | Path, block: int = 16 << 20) -> "np.ndarray":
    """The line of the file (1-based) on which each record of a CSV starts, the header's first:
    ``[k - 1]`` for record ``k`` as Arrow's reader numbers them. A quoted field may hold line
    breaks (its record goes on over several lines) and an empty line is no record, so the
    k-th record is not always on line k. Vectorized over the bytes, a block at a time: a line
    feed ends a record where an even number of ``"`` precede it (UTF-8 and GB18030 never use
    either byte inside a character)."""
    import numpy as np

    nls, odd, cr = [], [], []
    quotes = offset = last = 0
    with Path(path).open("rb") as fh:
        while buf := fh.read(block):
            a = np.frombuffer(buf, dtype=np.uint8)
            nl = np.flatnonzero(a == 10)
            q = np.flatnonzero(a == 34)
            odd.append((quotes + np.searchsorted(q, nl)) % 2 == 1)
            cr.append(np.where(nl > 0, a[np.maximum(nl - 1, 0)], last) == 13)
            nls.append(nl + offset)
            quotes, offset, last = quotes + len(q), offset + len(a), int(a[-1])
    nl = np.concatenate(nls) if nls else np.zeros(0, dtype=np.int64)
    odd = np.concatenate(odd) if odd else np.zeros(0, dtype=bool)
    cr = np.concatenate(cr) if cr else np.zeros(0, dtype=bool)
    ends, cr_end = nl, cr
    if offset and (len(nl) == 0 or nl[-1] != offset - 1):  # a last line without its line feed
        ends, cr_end = np.append(nl, offset), np.append(cr, False)
    begins = np.concatenate(([-1], nl))[: len(ends)]  # the line feed before each line
    inside = np.concatenate(([False], odd))[: len(ends)]  # that line feed is inside a quoted field
    length = ends - begins - 1 - cr_end  # the line's bytes without its line break
    return np.flatnonzero(~inside & (length > 0)) + 1


def _sniff_encoding(p: Path) -> str:
    head = p.open("rb").read(4096)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"  # Excel on zh-CN Windows saves CSV in GBK
