"""Why a run failed, told to an operator: which step, why (scrubbed), what to do.

``describe_failure(exc)`` (or ``describe_failure(text=...)`` for an error stored as text,
e.g. ``pipeline_runs.error``) returns a :class:`Problem` used by the nightly digest (the
run line and its "needs a human" section), the ``flow_failed`` alert (what to do) and
``userops run nightly``. Texts are zh-CN (default) and en (``problem.*`` in
``tasks.alerts.messages``); the reason is one line, with no URL, phone number, email or
secret (``tasks.alerts.safety``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.alerts.safety import error_summary
from userops.i18n import register, t

# the kinds added after tasks.alerts.messages' problem.* texts, registered with their checks
register(
    {
        "problem.step.as_of": {"zh-CN": "检查业务日期 as_of", "en": "checking the business day as_of"},
        "problem.fix.as_of": {"zh-CN": "请把 as_of 改为店铺今天或更早的日期（留空即今天）",
                              "en": "set as_of to the shop's today or earlier (empty means today)"},
        # problem.fix.source_url without its own "then run again": describe_failure adds the re-run
        # (the command to run), which said it twice ("…然后重新运行；…，然后重新运行 `userops run nightly`")
        "problem.fix.no_source": {
            "zh-CN": "请设置数据源地址 USEROPS_CRM__URL 和 USEROPS_ORDERS__URL（部署运行时写在 worker 的环境变量或 userops.yaml 中；"
                     "`userops demo` 的示例系统只在 demo 运行期间存在）",
            "en": "set the source URLs USEROPS_CRM__URL and USEROPS_ORDERS__URL (for served deployments in the worker's environment "
                  "or userops.yaml; the sample systems of `userops demo` exist only while the demo runs)",
        },
        "problem.step.locked": {"zh-CN": "写入数据仓库", "en": "writing to the warehouse"},
        "problem.reason.locked": {"zh-CN": "另一个运行正在使用数据仓库，本次没等到它放开（{detail}）",
                                  "en": "another run is using the warehouse and this one could not wait for it ({detail})"},
        "problem.fix.locked": {
            "zh-CN": "请等正在进行的那个运行（另一个 `userops run nightly`、`userops import` 或计划中的夜间任务）结束",
            "en": "wait for the run in progress (another `userops run nightly`, `userops import` or the scheduled night) to finish",
        },
    }
)

# what a database driver says when the warehouse cannot be reached or entered (the command
# line's error mapping uses the same list, through warehouse_unreachable)
_DB_DOWN = ("Connection refused", "could not connect", "could not translate host name", "unable to open database file",
            "password authentication failed", "timeout expired", "server closed the connection", "Is the server running",
            "does not exist")
# another run holds the lock the write waits for: SQLite's busy timeout ran out, PostgreSQL's
# lock_timeout (LockNotAvailable, 55P03) cancelled the statement
_LOCKED = re.compile(r"database is locked|database table is locked|lock timeout|LockNotAvailable|could not obtain lock")
_NO_URL = re.compile(r"no URL configured for the (\w+) source|没有配置 (\w+) 数据源的地址")
_SOURCE_TEXT = re.compile(r"no answer after \d+ attempts|尝试 \d+ 次|: HTTP \d{3}\b|：HTTP \d{3}")
_REJECTED = re.compile(r"^(\w+)(?:: (?:\d+ of \d+ rows .*failed validation|table rule |required column|rule \S+ could not be evaluated)|：\d+ 行中有 \d+ 行)")


@dataclass
class Problem:
    kind: str  # warehouse / locked / validation / source / as_of / other
    step: str
    reason: str  # one scrubbed line
    fix: str
    detail: str = ""  # the database's own first line (warehouse), for the CLI

    def line(self, lang: str | None = None) -> str:
        return t("problem.line", lang, step=self.step, reason=self.reason)

    def human(self, lang: str | None = None) -> str:
        return t("problem.human", lang, step=self.step, fix=self.fix)


def _db_text(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc)


def warehouse_unreachable(exc: BaseException | None = None, text: str | None = None) -> bool:
    """``exc`` (or an error text) says the warehouse could not be reached at all."""
    if exc is not None:
        try:
            from sqlalchemy.exc import OperationalError
        except Exception:  # pragma: no cover
            return False
        if not isinstance(exc, OperationalError):
            return False
        text = _db_text(exc)
    text = text or ""
    if "OperationalError" not in text and exc is None:
        return False
    return any(m in text for m in _DB_DOWN) and "relation" not in text


def warehouse_url() -> str:
    """The warehouse's URL as the command line shows it, the password masked
    (``postgresql+psycopg2://ops:***@db:5432/userops``); needs no connection."""
    try:
        from sqlalchemy.engine import make_url

        from userops.settings import get_settings

        return make_url(get_settings().database_url).render_as_string(hide_password=True)
    except Exception:  # settings unreadable: name the setting instead
        return "USEROPS_DATABASE_URL"


def warehouse_unreachable_text(detail: str, lang: str | None = None, fix: bool = False) -> str:
    """The warehouse that cannot be reached, in the operator's words (the masked URL and the
    driver's first line); with ``fix`` what to check, as the command line says it. The failure
    alert and the command line share this one wording."""
    text = t("problem.warehouse_unreachable", lang, url=warehouse_url(), detail=detail or "—")
    return t("problem.with_fix", lang, problem=text, fix=t("problem.fix.warehouse", lang)) if fix else text


def describe_failure(exc: BaseException | None = None, text: str | None = None, flow: str = "nightly", lang: str | None = None) -> Problem:
    """The operator's account of a failed run of ``flow`` from its exception or, failing
    that, the error text stored with the run."""
    p = _describe(exc, text, flow, lang)
    if flow == "nightly":
        p.fix = t("problem.rerun.nightly", lang, fix=p.fix)
    else:
        p.fix = t("problem.rerun.flow", lang, fix=p.fix, flow=flow)
    return p


def _describe(exc: BaseException | None, text: str | None, flow: str, lang: str | None) -> Problem:
    raw = text or ""
    if exc is not None:
        raw = str(exc)
    reason = (exc.localized(lang) if exc is not None and hasattr(exc, "localized") else None)
    reason = error_summary(None, reason or raw) or (type(exc).__name__ if exc is not None else "—")
    if warehouse_unreachable(exc, raw if exc is None else None):
        detail = error_summary(None, _db_text(exc) if exc is not None else raw.replace("(psycopg2.OperationalError) ", ""))
        detail = detail.replace("(psycopg2.OperationalError) ", "")
        return Problem("warehouse", t("problem.step.warehouse", lang), detail, t("problem.fix.warehouse", lang), detail=detail)
    locked = _LOCKED.search(_db_text(exc) if exc is not None else raw)
    if locked:
        return Problem("locked", t("problem.step.locked", lang), t("problem.reason.locked", lang, detail=locked.group(0)),
                       t("problem.fix.locked", lang))
    if getattr(exc, "key", None) == "nightly.future_day":  # flows.nightly.FutureDay: nothing ran
        return Problem("as_of", t("problem.step.as_of", lang), reason, t("problem.fix.as_of", lang))
    table = getattr(exc, "table", None) if exc is not None else None
    rejected = False
    if exc is not None:
        try:
            from tasks.validate import BatchRejected

            rejected = isinstance(exc, BatchRejected)
        except Exception:  # pragma: no cover - data path unavailable
            rejected = False
    else:
        m = _REJECTED.match(raw)
        rejected, table = bool(m), (m.group(1) if m else None)
    if rejected:
        step = t("problem.step.validation", lang, table=table) if table else t("problem.step.validation_any", lang)
        return Problem("validation", step, reason, t("problem.fix.validation", lang))
    source = type(exc).__name__ == "SourceError" if exc is not None else False
    no_url = getattr(exc, "key", None) == "source.no_url" or bool(_NO_URL.search(raw))
    if source or no_url or (exc is None and _SOURCE_TEXT.search(raw)):
        fix = t("problem.fix.no_source", lang) if no_url else t("problem.fix.source", lang)
        return Problem("source", t("problem.step.source", lang), reason, fix)
    return Problem("other", t("problem.step.run", lang, flow=flow), reason, t("problem.fix.other", lang))
