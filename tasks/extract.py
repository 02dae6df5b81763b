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


class SourceError(RuntimeError):
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

        return t(self.key, lang, **{k: join_list(v, lang) if isinstance(v, list) else v for k, v in self.values.items()})


def _file_texts() -> None:
    from userops.i18n import register

    register(
        {
            "import.file.missing": {"zh-CN": "{path}：文件不存在", "en": "{path}: no such file"},
            "import.file.empty": {"zh-CN": "{path}：文件是空的", "en": "{path}: the file is empty"},
            "import.file.unreadable": {"zh-CN": "{path}：无法读取文件：{error}", "en": "{path}: cannot read the file: {error}"},
            "import.file.unreadable_after": {"zh-CN": "{path}：读到第 {row} 行后无法继续读取：{error}（本文件的任何数据都未入库）",
                                             "en": "{path}: cannot read the file after row {row}: {error} (nothing of it was kept)"},
            "import.file.type": {"zh-CN": "{path}：不支持的文件类型 {suffix}；请用 .csv 或 .xlsx",
                                 "en": "{path}: unsupported file type {suffix}; use .csv or .xlsx"},
            "import.file.columns": {
                "zh-CN": "{table}：缺少必需列 {missing}（文件里的列：{found}）。请改列名，或用 --map '源列名=标准列名' 指定，例如 --map '会员号={first}'",
                "en": "{table}: required column(s) missing: {missing} (found: {found}); rename them or map them with --map 'SOURCE HEADER=column', e.g. --map 'member no={first}'",
            },
        }
    )


_file_texts()


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
                    raise SourceError(f"{_redact_url(url)}: no answer after {attempt} attempts ({type(exc).__name__})") from None
                wait = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                log.warning("%s: %s, retry %d in %.1fs", _redact_url(url), type(exc).__name__, attempt, wait)
                self.retries_made += 1
                self.sleep(wait)
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                if attempt > self.max_retries:
                    raise SourceError(f"{_redact_url(url)}: HTTP {resp.status_code} after {attempt} attempts; the source keeps failing")
                wait = _retry_after(resp) or min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
                log.warning("%s: HTTP %d, retry %d in %.1fs", _redact_url(url), resp.status_code, attempt, wait)
                self.retries_made += 1
                self.sleep(min(wait, self.max_backoff))
                continue
            if resp.status_code in (401, 403):
                raise SourceError(f"{_redact_url(url)}: HTTP {resp.status_code} — check the source's token or API key")
            if resp.status_code >= 400:
                raise SourceError(f"{_redact_url(url)}: HTTP {resp.status_code}: {resp.text[:200]}")
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
            base["updated_since"] = pd.Timestamp(updated_since).isoformat()
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
        """One DataFrame per non-empty page, in the source's order."""
        url = self.base_url + path
        base: dict = {}
        if updated_since is not None:
            base["updated_since"] = pd.Timestamp(updated_since).isoformat()
        if self.pagination == "page":
            page = 1
            while True:
                body = self._get(url, {**base, "page": page, "page_size": self.page_size}).json()
                data = body.get("data", [])
                if data:
                    yield pd.DataFrame.from_records(data)
                if not data or page >= int(body.get("total_pages", page)):
                    break
                page += 1
        elif self.pagination == "offset":
            offset = 0
            while True:
                body = self._get(url, {**base, "offset": offset, "limit": self.page_size}).json()
                data = body.get("data", [])
                if data:
                    yield pd.DataFrame.from_records(data)
                offset += len(data)
                if not data or offset >= int(body.get("total", offset)):
                    break
        elif self.pagination == "cursor":
            cursor = ""
            while True:
                body = self._get(url, {**base, "cursor": cursor, "limit": self.page_size}).json()
                data = body.get("data", [])
                if data:
                    yield pd.DataFrame.from_records(data)
                cursor = body.get("next_cursor")
                if not cursor or not data:
                    break
        elif self.pagination == "link":
            next_url, params = url, {**base, "per_page": self.page_size}
            while next_url:
                resp = self._get(next_url, params)
                data = resp.json()
                if data:
                    yield pd.DataFrame.from_records(data)
                next_url = resp.links.get("next", {}).get("url")
                params = None  # the next link carries its own query
        else:
            raise ValueError(f"unknown pagination style {self.pagination!r}: use page, offset, cursor or link")


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
                    params["updated_since"] = updated_since
                elif ":updated_since" in q:
                    params["updated_since"] = datetime(1970, 1, 1)
                res = conn.execution_options(stream_results=True, max_row_buffer=min(rows, 10_000)).execute(sa.text(q), params)
                cols = list(res.keys())
                sent = False
                for part in res.partitions(rows):
                    sent = True
                    yield pd.DataFrame(part, columns=cols)
                if not sent:
                    yield pd.DataFrame(columns=cols)
        finally:
            eng.dispose()


# ----------------------------------------------------------------------------- files
def canonicalize_columns(df: pd.DataFrame, table: str, mapping: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename source headers to canonical names (explicit mapping first, then known aliases)
    and translate known zh-CN values (已退款 -> refunded). Raises FileImportError naming any
    required column that is missing."""
    if table not in CANONICAL:
        raise FileImportError(f"unknown table {table!r}; choose one of {', '.join(CANONICAL)}")
    rename = {}
    for col in df.columns:
        c = str(col).strip()
        if mapping and c in mapping:
            rename[col] = mapping[c]
        elif c in HEADER_ALIASES:
            rename[col] = HEADER_ALIASES[c]
        else:
            rename[col] = c.lower().replace(" ", "_")
    out = df.rename(columns=rename)
    missing = [c for c in CANONICAL[table]["required"] if c not in out.columns]
    if missing:
        raise FileImportError(
            f"{table}: required column(s) missing: {', '.join(missing)} "
            f"(found: {', '.join(map(str, df.columns))}); rename them or pass a column mapping",
            "import.file.columns", table=table, missing=list(missing), found=[str(c) for c in df.columns], first=missing[0],
        )
    for col, aliases in VALUE_ALIASES.items():
        if col in out.columns:
            out[col] = out[col].map(lambda v: aliases.get(v.strip(), v.strip()) if isinstance(v, str) else v)
    return out


def read_table_file(path: str | Path, table: str, mapping: dict[str, str] | None = None, chunksize: int | None = None):
    """Read a CSV or .xlsx file as strings (validation types them). With ``chunksize`` a
    CSV is returned as an iterator of frames."""
    p = Path(path)
    if not p.exists():
        raise FileImportError(f"{p}: no such file", "import.file.missing", path=p)
    suffix = p.suffix.lower()
    try:
        if suffix in (".xlsx", ".xlsm"):
            df = pd.read_excel(p, dtype=str, engine="openpyxl")
            return canonicalize_columns(df, table, mapping)
        if suffix in (".csv", ".txt", ".tsv"):
            sep = "\t" if suffix == ".tsv" else ","
            enc = _sniff_encoding(p)
            if chunksize:
                it = _csv_chunks(p, sep, enc, chunksize)
                first = next(it, None)
                if first is None:
                    raise FileImportError(f"{p}: the file is empty", "import.file.empty", path=p)
                first = canonicalize_columns(first, table, mapping)

                def gen():
                    yield first
                    read = len(first)
                    try:
                        for chunk in it:
                            yield canonicalize_columns(chunk, table, mapping)
                            read += len(chunk)
                    except (ArrowError, UnicodeDecodeError, ValueError, OSError) as exc:
                        raise FileImportError(f"{p}: cannot read the file after row {read:,}: {exc}", "import.file.unreadable_after",
                                              path=p, row=f"{read:,}", error=exc) from None

                return gen()
            df = pd.read_csv(p, dtype=str, sep=sep, encoding=enc, keep_default_na=False, na_values=[""])
            return canonicalize_columns(df, table, mapping)
    except FileImportError:
        raise
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError, zipfile.BadZipFile, KeyError, ArrowError) as exc:
        raise FileImportError(f"{p}: cannot read the file: {exc}", "import.file.unreadable", path=p, error=exc) from None
    raise FileImportError(f"{p}: unsupported file type {suffix or '(none)'}; use .csv or .xlsx", "import.file.type", path=p, suffix=suffix or "(none)")


def _csv_chunks(p: Path, sep: str, encoding: str, chunksize: int):
    """Stream a CSV as DataFrames of about ``chunksize`` rows, every column a string
    (pyarrow's multithreaded reader: several times faster than pandas' C parser)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with p.open("r", encoding=encoding, newline="") as fh:
        header = fh.readline().rstrip("\r\n")
    if not header:
        return
    names = next(iter(__import__("csv").reader([header], delimiter=sep)))
    reader = pacsv.open_csv(
        p,
        # blocks of ~100 bytes per wanted row (at most 32 MiB): a chunk is a few blocks
        read_options=pacsv.ReadOptions(encoding=encoding, block_size=max(4 << 10, min(32 << 20, chunksize * 100))),
        parse_options=pacsv.ParseOptions(delimiter=sep),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, strings_can_be_null=True, null_values=[""]),
    )
    pending: list = []
    rows = 0
    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= chunksize:
            yield pa.Table.from_batches(pending).to_pandas()
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending).to_pandas()


def _sniff_encoding(p: Path) -> str:
    head = p.open("rb").read(4096)
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"  # Excel on zh-CN Windows saves CSV in GBK
