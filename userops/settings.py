"""One settings object for the whole product.

Values come from (highest wins):
  1. environment variables ``USEROPS_*`` (nested fields with ``__``, e.g.
     ``USEROPS_LIFECYCLE__SILENT_DAYS=90``),
  2. an optional YAML file named by ``USEROPS_CONFIG_FILE`` (default ``userops.yaml`` in the
     project root when it exists),
  3. the defaults below, which are the product spec's defaults.

The embedded default warehouse is a SQLite file under ``output/``; PostgreSQL is one URL away:
``USEROPS_DATABASE_URL=postgresql+psycopg2://user@host:5432/db``.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_PATH = PROJECT_ROOT / "output" / "userops.db"  # the one SQLite location created when missing
_HHMM = r"^([01]\d|2[0-3]):[0-5]\d$"


class _Group(BaseModel):
    """A group of settings (``lifecycle:`` in the file, ``USEROPS_LIFECYCLE__*``): a key that is
    not one of its fields is a mistake (a typo), reported with the closest valid key."""

    model_config = ConfigDict(extra="forbid")


def _in_order(model: BaseModel, rule: str, *fields: str) -> None:
    """Raise the error ``settings_problems`` renders as "``rule`` must hold" naming each field."""
    raise PydanticCustomError(
        "userops_order", "{rule} must hold", {"rule": rule, "fields": list(fields), "values": [getattr(model, f) for f in fields]}
    )


def _known_zone(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("userops_timezone", "no such time zone: give an IANA name such as Asia/Shanghai, Europe/Berlin or UTC") from None
    return v


class SourceSettings(_Group):
    """One HTTP source (CRM or order system)."""

    url: str | None = None  # base URL, e.g. http://127.0.0.1:8765/crm
    token: SecretStr | None = None  # bearer token
    api_key: SecretStr | None = None  # sent as X-API-Key
    pagination: Literal["page", "offset", "cursor", "link"] = "page"
    page_size: int = Field(5000, ge=1)
    timeout_seconds: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_seconds: float = Field(0.5, ge=0)
    naive_timezone: str = "UTC"  # the zone of times the source sends without an offset (IANA name)
    overlap_minutes: int = Field(10, ge=0)  # each incremental extract starts this long before the watermark (late commits, clock skew)

    _zone = field_validator("naive_timezone")(lambda v: _known_zone(v))


class SqlSourceSettings(_Group):
    """Read a CRM's own database instead of its API."""

    url: str | None = None  # SQLAlchemy URL of the CRM database
    customers_query: str | None = None  # must expose the canonical columns
    naive_timezone: str = "UTC"  # the zone of the database's times without an offset (IANA name)
    overlap_minutes: int = Field(10, ge=0)  # each incremental extract starts this long before the watermark

    _zone = field_validator("naive_timezone")(lambda v: _known_zone(v))


class ValidationSettings(_Group):
    max_bad_share: float = Field(0.05, ge=0, le=1)  # a batch with more bad rows than this fails the run
    min_year: int = Field(2000, ge=1900, le=2100)  # timestamps before this year are rejected
    future_tolerance_minutes: int = Field(10, ge=0)  # clock skew allowed for "timestamp in the future"
    chunk_rows: int = Field(500_000, ge=1)  # a night's table batch (and an imported CSV) is extracted, validated and loaded by chunks of this many rows


class LifecycleSettings(_Group):
    new_days: int = Field(30, ge=1)  # first paid order <= 30 days ago
    active_days: int = Field(60, ge=1)  # last paid order <= 60 days ago
    silent_days: int = Field(180, ge=1)  # last paid order 61..180 days ago; beyond that churned
    loyal_orders: int = Field(4, ge=1)  # >= 4 paid orders in loyal_window_days
    loyal_window_days: int = Field(365, ge=1)
    loyal_segments: list[str] = ["champions"]  # "or top RFM segment": active + one of these is loyal

    @model_validator(mode="after")
    def _windows_in_order(self):
        # new is within active, active ends where silent begins, silent ends where churned begins
        if not (self.new_days <= self.active_days < self.silent_days):
            _in_order(self, "new_days ≤ active_days < silent_days", "new_days", "active_days", "silent_days")
        return self


class HealthSettings(_Group):
    silent_share_max: float = Field(0.35, ge=0, le=1)
    complaint_rate_max: float = Field(0.05, ge=0, le=1)
    satisfaction_min: float = Field(0.85, ge=0, le=1)
    complaint_window_days: int = Field(7, ge=1)
    feedback_sla_hours: int = Field(24, ge=1)
    feedback_ack: bool = True  # acknowledge overdue feedback to the customer, once
    feedback_ack_channel: str = "sms"
    satisfaction_good: int = Field(4, ge=1, le=5)  # satisfaction = share of scored feedback with a score >= this
    feedback_window_days: int = Field(30, ge=1)  # satisfaction and NPS over feedback of the last N days
    retention_days: list[Annotated[int, Field(ge=1)]] = [30, 90]  # N-day retention by monthly cohort of first order
    retention_cohorts: int = Field(12, ge=1)  # monthly cohorts shown
    conversion_days: int = Field(30, ge=1)  # registered -> first paid order within N days
    mau_days: int = Field(30, ge=1)
    trend_days: int = Field(90, ge=1)  # the report's trend plots


class TagSettings(_Group):
    value_high_share: float = Field(0.20, ge=0, le=1)  # value tier: top 20% of buyers by lifetime value are high
    value_mid_share: float = Field(0.30, ge=0, le=1)  # the next 30% mid; the rest (and prospects) low
    discount_min_rate: float = Field(0.10, ge=0, le=1)  # an order is "discounted" at >= 10% off its gross
    price_sensitive_share: float = Field(0.5, ge=0, le=1)  # price-sensitive: >= half of paid orders discounted
    price_sensitive_min_orders: int = Field(2, ge=1)  # ... and at least this many paid orders
    clusters: int = Field(6, ge=1)  # behaviour clusters (k-means)
    cluster_refresh_days: int = Field(7, ge=1)  # refit weekly; assign nightly with the stored centroids
    cluster_sample: int = Field(200_000, ge=1)  # fit on at most this many buyers
    full_recompute_days: int = Field(7, ge=1)  # safety net: recompute every aggregate from orders weekly
    # PostgreSQL: memory per hash / sort of the full recompute's transaction (SET LOCAL work_mem,
    # PostgreSQL may use twice this per hash); a night's refresh uses 256 MB
    full_work_mem_mb: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _tiers_fit(self):
        if self.value_high_share + self.value_mid_share > 1 + 1e-9:
            _in_order(self, "value_high_share + value_mid_share ≤ 1", "value_high_share", "value_mid_share")
        return self


class ChurnSettings(_Group):
    horizon_days: int = Field(90, ge=1)
    retrain_every_days: int = Field(7, ge=1)
    high_risk: float = Field(0.6, ge=0, le=1)
    medium_risk: float = Field(0.3, ge=0, le=1)
    psi_threshold: float = Field(0.2, gt=0)
    promotion_tolerance: float = Field(0.005, ge=0, le=1)  # a candidate may trail the champion by this much (ROC AUC / Brier)
    model_kind: Literal["logistic", "hgb", "blend"] = "logistic"  # see models/train.py

    @model_validator(mode="after")
    def _bands_in_order(self):
        if self.medium_risk > self.high_risk:
            _in_order(self, "medium_risk ≤ high_risk", "medium_risk", "high_risk")
        return self


class CampaignSettings(_Group):
    holdout_share: float = Field(0.10, ge=0, lt=1)  # a campaign with everyone held out sends nothing
    global_cap_messages: int = Field(2, ge=0)
    global_cap_days: int = Field(7, ge=1)
    quiet_start: str = Field("21:00", pattern=_HHMM)  # HH:MM, 00:00..23:59
    quiet_end: str = Field("09:00", pattern=_HHMM)
    attribution_days: int = Field(14, ge=1)
    # Definitions, templates and delivery (issue 6).
    definitions_dir: Path = PROJECT_ROOT / "campaigns"  # one YAML file per campaign
    shop_name: str | None = None  # {{ shop }} in templates; default: i18n "our shop"
    email_from: str = "members@shop.example.com"
    unsubscribe_url: str = "https://shop.example.com/unsubscribe?c={customer_id}&t={token}"
    unsubscribe_secret: SecretStr = SecretStr("change-me-unsubscribe-key")  # keys the link token
    send_workers: int = Field(8, ge=1)  # sender threads per worker process
    send_batch: int = Field(500, ge=1)  # touches marked in flight (and settled) together
    max_attempts: int = Field(5, ge=1)  # then the touch is failed with the last reason
    retry_backoff_seconds: float = Field(30.0, ge=0)  # doubled per attempt
    retry_wait_seconds: float = Field(60.0, ge=0)  # a run waits for retries due within this long; a message for a 429 pause too (longer: rescheduled)
    in_flight_lease_seconds: float = Field(600.0, gt=0)  # an in-flight touch of a vanished sender is resent after this
    request_timeout_seconds: float = Field(10.0, gt=0)
    sms_rate_per_second: float = Field(0.0, ge=0)  # provider's limit (0: none known; 429 + Retry-After honoured)
    push_rate_per_second: float = Field(0.0, ge=0)
    email_rate_per_second: float = Field(0.0, ge=0)
    staff_excel_max_rows: int = Field(50_000, ge=0)  # staff-outreach list also as .xlsx up to this size
    outreach_keep_days: int = Field(30, ge=0)  # staff-outreach files (they hold phones and emails, for staff) are deleted after this many days; 0 keeps them


class CrisisRemedy(_Group):
    """What one crisis-priority tier is offered."""

    coupon_value: float = Field(0.0, ge=0)  # apology coupon (0 = none)
    refund_offer: bool = True  # offer a refund of the affected items
    call_list: bool = False  # a person calls them (personal call list)


class CoreRemedy(CrisisRemedy):
    coupon_value: float = Field(50, ge=0)
    call_list: bool = True


class PotentialRemedy(CrisisRemedy):
    coupon_value: float = Field(30, ge=0)


class OrdinaryRemedy(CrisisRemedy):
    coupon_value: float = Field(20, ge=0)


class CrisisRemedies(_Group):
    """Remedy per crisis-priority tier (e.g. USEROPS_CRISIS__REMEDIES__CORE__COUPON_VALUE=80)."""

    core: CoreRemedy = CoreRemedy()
    potential: PotentialRemedy = PotentialRemedy()
    ordinary: OrdinaryRemedy = OrdinaryRemedy()

    def get(self, tier: str, default=None) -> CrisisRemedy | None:
        return getattr(self, tier, default) if tier in ("core", "potential", "ordinary") else default

    def __getitem__(self, tier: str) -> CrisisRemedy:
        return getattr(self, tier)

    def values(self) -> list[CrisisRemedy]:
        return [self.core, self.potential, self.ordinary]


class CrisisSettings(_Group):
    control_hours: float = Field(2, gt=0)
    clarify_hours: float = Field(4, gt=0)
    compensate_hours: float = Field(24, gt=0)
    spike_complaints: int = Field(10, ge=1)  # >= this many complaints for one SKU within spike_window_hours
    spike_window_hours: float = Field(2, gt=0)
    spike_rate_factor: float = Field(5.0, gt=1)  # ... or this many times the SKU's usual rate
    spike_rate_min_complaints: int = Field(5, ge=1)  # (the rate rule needs at least this many complaints)
    spike_baseline_days: int = Field(28, ge=1)  # "usual" = complaints per window over these days
    spike_scan_hours: float = Field(26, gt=0)  # each check looks this far back (covers the nightly gap)
    spike_cooldown_hours: float = Field(24, ge=0)  # a burst this soon after the last one is the same spike
    lookback_days: int = Field(30, ge=1)  # affected = paid orders with the SKUs in this many days
    takedown_url: str | None = None  # HTTP POST {"skus": [...]}; unset = a task for a human
    takedown_token: SecretStr | None = None  # sent as Bearer token
    takedown_timeout_seconds: float = Field(10, gt=0)
    takedown_retries: int = Field(3, ge=0)
    reminder_fractions: list[Annotated[float, Field(gt=0, lt=1)]] = [0.5, 0.9]  # of each step's window
    escalation_channels: list[str] = []  # second contact list; empty = the operator channels
    escalation_mentions: list[str] = []  # who is @-mentioned on escalation (never logged)
    statement_channels: list[str] = []  # where the approved statement goes; empty = operator channels
    statement_wait_hours: float = Field(20, ge=0)  # from opening: how long the flow waits for approval
    core_review_wait_hours: float = Field(24, ge=0)  # from opening: how long core apologies wait for review
    pause_poll_seconds: int = Field(10, ge=1)
    remedies: CrisisRemedies = CrisisRemedies()
    apology_channel: str = "sms"
    brand: str = ""  # name used in statements and apologies; empty = "we"
    service_contact: str = ""  # e.g. a hotline, shown in the statement
    template_dir: Path | None = None  # override statement/apology templates
    quiet_days: float = Field(7, ge=0)  # an incident with every step done closes this long after opening

    @model_validator(mode="after")
    def _steps_in_order(self):
        # the 3C steps' deadlines, each counted from the incident's opening: control, clarify, compensate
        if not (self.control_hours <= self.clarify_hours <= self.compensate_hours):
            _in_order(self, "control_hours ≤ clarify_hours ≤ compensate_hours", "control_hours", "clarify_hours", "compensate_hours")
        return self


class AlertSettings(_Group):
    """Operator alerts (issue 5). Channels: the webhook settings below and/or Prefect blocks."""

    routes: dict[str, list[str]] = {}  # kind -> channel names; "*" = default; empty = every channel
    rate_per_minute: dict[str, Annotated[int, Field(ge=1)]] = {"slack": 20, "dingtalk": 20, "wecom": 20}  # per channel type
    merge_over: int = Field(5, ge=0)  # more pending alerts than this for one channel in one pass -> one merged message
    backoff_seconds: float = Field(30, ge=0)  # first retry delay; doubles per attempt
    backoff_max_seconds: float = Field(1800, ge=0)
    config_error_backoff_seconds: float = Field(3600, ge=0)  # 403/404/410/310000: wait for the operator to fix it
    give_up_hours: float = Field(72, gt=0)  # an alert still undelivered after this is marked failed
    timeout_seconds: float = Field(10, gt=0)
    quarantine_share_max: float = Field(0.01, ge=0, le=1)  # quarantined share of a nightly batch above this alerts
    dingtalk_at_mobiles: list[SecretStr] = []  # @-mentioned on error/critical (never written in text)
    dingtalk_at_user_ids: list[str] = []
    mention_severities: list[str] = ["error", "critical"]
    wecom_msgtype: Literal["markdown", "text"] = "markdown"
    use_blocks: bool = True  # also read channels from Prefect blocks when a Prefect API is configured
    # the deliver-alerts deployment's interval (prefect.yaml's schedule is rendered with it):
    # retries held-back alerts
    deliver_every_minutes: int = Field(5, ge=1)


class DeploySettings(_Group):
    """How ``userops serve`` deploys prefect.yaml (issue 8). Empty = the value in prefect.yaml."""

    work_pool: str | None = None  # default userops-pool
    nightly_cron: str | None = None  # default "0 2 * * *" (02:00 shop time)
    retrain_cron: str | None = None  # default "0 5 * * 0" (Sunday 05:00)
    monitor_cron: str | None = None  # default "0 * * * *" (hourly)
    schedule_timezone: str | None = None  # default: the shop's timezone (``timezone``)
    host: str = "127.0.0.1"  # where `userops serve` binds the Prefect server
    port: int = Field(4200, ge=1, le=65535)
    reports_port: int = Field(4201, ge=0, le=65535)  # `userops serve` serves the reports folder read-only here (same address as the server); 0 = not


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="USEROPS_",
        env_nested_delimiter="__",
        # a key of the settings file (or an argument) that is no setting is an error; an
        # environment variable USEROPS_<NAME> that is no setting is not read at all (USEROPS_NOW,
        # USEROPS_CONFIG_FILE, the tests' USEROPS_TEST_POSTGRES_URL ... are not settings), while
        # USEROPS_<GROUP>__<KEY> with a wrong KEY is an error of the group (see _Group)
        extra="forbid",
    )

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{DEFAULT_DATABASE_PATH}",
        description="SQLAlchemy URL of the warehouse",
    )
    output_dir: Path = PROJECT_ROOT / "output"
    timezone: str = "Asia/Shanghai"  # the shop's timezone: "tonight", quiet hours, cron
    language: Literal["zh-CN", "en"] = "zh-CN"  # the operator's: command line, alerts, reports
    # the customers': messages to a customer whose own language is unknown (campaigns: no time
    # zone; crisis apologies, the statement, feedback acknowledgements); never the operator's
    customer_language: Literal["zh-CN", "en"] = "zh-CN"

    @field_validator("database_url")
    @classmethod
    def _database_driver(cls, v: str) -> str:
        """``postgresql://`` and ``postgres://`` (what a PostgreSQL host hands out) mean the
        installed driver, psycopg2."""
        for prefix in ("postgresql://", "postgres://"):
            if isinstance(v, str) and v.startswith(prefix):
                return "postgresql+psycopg2://" + v[len(prefix):]
        driver = v.split("://", 1)[0] if isinstance(v, str) else ""
        if driver.startswith(("postgresql+", "postgres+")) and driver.split("+", 1)[1] != "psycopg2":
            raise PydanticCustomError("userops_database_driver",
                                      "the warehouse needs the installed driver: write {instead}:// instead of {scheme}://",
                                      {"scheme": driver, "instead": "postgresql+psycopg2"})
        if driver.startswith("sqlite+"):
            raise PydanticCustomError("userops_database_driver", "write {instead}:/// instead of {scheme}://",
                                      {"scheme": driver, "instead": "sqlite"})
        if driver == "postgres+psycopg2":
            return "postgresql+psycopg2://" + v.split("://", 1)[1]
        if driver not in ("sqlite", "postgresql+psycopg2"):
            # MySQL, SQL Server, a path without a scheme ...: the warehouse runs on these two only
            raise PydanticCustomError("userops_database", "not a usable database URL: PostgreSQL or SQLite only, not {scheme}",
                                      {"scheme": driver or "?"})
        return v

    @field_validator("reports_url")
    @classmethod
    def _reports_url(cls, v: str | None) -> str | None:
        """An http(s) address with a host and no user info: the URL goes into every digest and
        alert link, so a password in it would be published (a server that needs one is put
        behind a proxy or on the intranet instead)."""
        from urllib.parse import urlsplit

        v = (v or "").strip() or None
        if not v:
            return v
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        try:
            parts = urlsplit(v)
            host = parts.hostname if parts.port is None or parts.port >= 0 else None
        except ValueError:  # a port that is no number (or out of range), a broken [IPv6] host
            parts, host = None, None
        if scheme not in ("http", "https"):
            raise PydanticCustomError("userops_reports_url", "must be an http(s) address under which the reports folder is served",
                                      {"problem": "scheme"})
        if "@" in re.split(r"[/?#]", v.split("://", 1)[1], maxsplit=1)[0]:  # user[:password]@host
            raise PydanticCustomError("userops_reports_url", "must not carry a user name or password: the address goes into every link",
                                      {"problem": "userinfo"})
        if not host:
            raise PydanticCustomError("userops_reports_url", "must name a host: http(s)://host[:port]/path",
                                      {"problem": "host"})
        return v

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError("userops_timezone", "no such time zone: give an IANA name such as Asia/Shanghai, Europe/Berlin or UTC") from None
        return v

    @field_validator("language", "customer_language", mode="before")
    @classmethod
    def _language(cls, v):
        """zh-CN or en, however it is spelled (EN, zh_cn, zh)."""
        if isinstance(v, str):
            k = v.strip().lower().replace("_", "-")
            v = {"zh": "zh-CN", "zh-cn": "zh-CN", "zh-hans": "zh-CN", "cn": "zh-CN", "en": "en", "en-us": "en", "en-gb": "en"}.get(k, v)
        return v

    crm: SourceSettings = SourceSettings()
    orders: SourceSettings = SourceSettings()
    crm_sql: SqlSourceSettings = SqlSourceSettings()

    validation: ValidationSettings = ValidationSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    health: HealthSettings = HealthSettings()
    tags: TagSettings = TagSettings()
    churn: ChurnSettings = ChurnSettings()
    campaigns: CampaignSettings = CampaignSettings()
    crisis: CrisisSettings = CrisisSettings()

    # Alert channels (issue 5) and customer channels (issue 6); secrets never logged.
    slack_webhook_url: SecretStr | None = None
    dingtalk_webhook_url: SecretStr | None = None
    dingtalk_secret: SecretStr | None = None
    wecom_webhook_url: SecretStr | None = None
    smtp_url: SecretStr | None = None
    sms_webhook_url: SecretStr | None = None
    push_webhook_url: SecretStr | None = None
    prefect_ui_url: str = "http://127.0.0.1:4200"
    # base URL under which <output_dir>/reports/ is served (the health report's link in the
    # artifact, digest and alerts); unset: `userops serve` serves the folder itself on
    # deploy.reports_port and gives its worker that URL; a run without it names the file instead
    reports_url: str | None = None
    alerts: AlertSettings = AlertSettings()
    deploy: DeploySettings = DeploySettings()
    # Heavy per-partition work (scoring, audience planning): "default" = threads in the
    # flow's process; "dask" = prefect-dask's DaskTaskRunner on USEROPS_DASK_ADDRESS, or a
    # local Dask cluster of ``dask_workers`` processes when no address is given.
    task_runner: Literal["default", "dask"] = "default"
    dask_address: str | None = None  # e.g. tcp://10.0.0.5:8786 (a running dask scheduler)
    dask_workers: int = Field(2, ge=1)
    dask_processes: bool = True  # local cluster only: worker processes (True) or threads
    dask_partitions: int = Field(0, ge=0)  # partitions of customers for scoring/audience planning on Dask (0 = 2 per worker)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlFileSource(settings_cls))


class SettingsFileError(ValueError):
    """The settings file cannot be read: missing (when named by USEROPS_CONFIG_FILE), not YAML,
    not a mapping. ``settings_file_problem`` says it in the operator's language."""

    def __init__(self, path: Path, kind: str, detail: str = "", line: int | None = None, column: int | None = None, start: int | None = None):
        self.path, self.kind, self.detail, self.line, self.column = path, kind, detail, line, column
        self.start = start  # the line where the construct the parser was in began (an unclosed [ or quote)
        where = f"{path}" + (f", line {line}, column {column}" if line else "")
        super().__init__(f"settings file {where}: {kind}" + (f" ({detail})" if detail else ""))


def config_file() -> tuple[Path, bool]:
    """The settings file and whether USEROPS_CONFIG_FILE named it (then it must exist)."""
    path = os.environ.get("USEROPS_CONFIG_FILE")
    return (Path(path) if path else PROJECT_ROOT / "userops.yaml"), bool(path)


def read_config_file() -> dict[str, Any]:
    """The settings file's mapping ({} when there is none); SettingsFileError when unreadable."""
    p, named = config_file()
    if not p.exists():
        if named:
            raise SettingsFileError(p, "missing")
        return {}
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsFileError(p, "unreadable", getattr(exc, "strerror", None) or str(exc)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        begun = getattr(exc, "context_mark", None)
        detail = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x) or str(exc)
        start = begun.line + 1 if begun is not None and mark is not None and begun.line != mark.line else None
        raise SettingsFileError(p, "syntax_from" if start else "syntax", detail, mark.line + 1 if mark else None,
                                mark.column + 1 if mark else None, start) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsFileError(p, "not_mapping")
    return data


class _YamlFileSource(PydanticBaseSettingsSource):
    """Optional YAML file: USEROPS_CONFIG_FILE or ./userops.yaml."""

    def _data(self) -> dict[str, Any]:
        return read_config_file()

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return self._data().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self._data()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings. Tests call ``reset_settings()`` after changing the env."""
    return Settings()


def reset_settings() -> None:
    get_settings.cache_clear()


# The texts of a settings problem; registered by userops.cli.options (and on first use here:
# userops.i18n imports this module, so not at import time).
SETTINGS_TEXTS = {
    "settings.line": {"zh-CN": "{where}：{problem}", "en": "{where}: {problem}"},
    "settings.at_env": {"zh-CN": "环境变量 {var}={value}", "en": "{var}={value}"},
    "settings.at_file": {"zh-CN": "配置文件 {path} 中的 {name}={value}", "en": "settings file {path}, {name}={value}"},
    "settings.key_in_file": {"zh-CN": "配置文件 {path} 中的 {name}", "en": "settings file {path}, key {name}"},
    "settings.from_env": {"zh-CN": "环境变量 {var}", "en": "{var}"},
    "settings.from_file": {"zh-CN": "配置文件 {path}", "en": "settings file {path}"},
    "settings.from_default": {"zh-CN": "默认值", "en": "default"},
    # where a value came from, inside a sentence ("{source} names {path}"): setting_source
    "settings.source.file": {"zh-CN": "配置文件 {path} 中的 {name}", "en": "{name} in the settings file {path}"},
    "settings.source.default": {"zh-CN": "默认的 {name}", "en": "the default {name}"},
    "settings.value": {"zh-CN": "值", "en": "value"},
    "settings.range": {"zh-CN": "超出范围，允许 {range}", "en": "out of range; allowed: {range}"},
    "settings.unknown": {"zh-CN": "没有这个设置项；是不是 {suggestion}？", "en": "no such setting; did you mean {suggestion}?"},
    "settings.unknown_choices": {"zh-CN": "没有这个设置项；这里可用的有：{choices}", "en": "no such setting; valid here: {choices}"},
    "settings.order": {"zh-CN": "{group} 的取值必须满足 {rule}；现在是 {values}",
                       "en": "{group} must satisfy {rule}; now {values}"},
    "settings.one_of": {"zh-CN": "只能是以下之一：{expected}", "en": "must be one of {expected}"},
    "settings.not_int": {"zh-CN": "应为整数", "en": "must be a whole number"},
    "settings.not_number": {"zh-CN": "应为数字", "en": "must be a number"},
    "settings.not_bool": {"zh-CN": "应为 true 或 false", "en": "must be true or false"},
    "settings.not_hhmm": {"zh-CN": "应为 00:00 到 23:59 之间的时刻（HH:MM）", "en": "must be a time of day from 00:00 to 23:59 (HH:MM)"},
    "settings.database": {
        "zh-CN": "不是可用的数据库地址：数据仓库只支持 PostgreSQL（postgresql+psycopg2://用户@主机:5432/库名）和 SQLite（sqlite:////绝对路径/userops.db），不支持 {scheme}",
        "en": "not a usable database URL: the warehouse runs on PostgreSQL (postgresql+psycopg2://user@host:5432/dbname) or SQLite (sqlite:////absolute/path/userops.db), not {scheme}",
    },
    "settings.database_driver": {
        "zh-CN": "数据仓库只能用已安装的驱动：请把 {scheme}:// 改写为 {instead}://",
        "en": "the warehouse needs the installed driver: write {instead}:// instead of {scheme}://",
    },
    "settings.reports_url.scheme": {
        "zh-CN": "应为提供报告目录的 http(s) 地址，如 http://ops-server:4201/",
        "en": "must be an http(s) address under which the reports folder is served, e.g. http://ops-server:4201/",
    },
    "settings.reports_url.host": {
        "zh-CN": "地址里缺少主机名，应写成 http://ops-server:4201/ 这样的完整地址（主机名必填，端口和路径可选）",
        "en": "names no host: write http(s)://host[:port]/path, e.g. http://ops-server:4201/",
    },
    "settings.reports_url.userinfo": {
        "zh-CN": "地址里不能带用户名或密码：这个地址会出现在每份日报和告警的链接里，密码会随之泄露；需要登录的服务器请放在内网或反向代理之后",
        "en": "must not contain a user name or password: the address goes into every digest and alert link, which would publish the password; put a server that needs a login behind the intranet or a proxy",
    },
    "settings.timezone": {
        "zh-CN": "没有这个时区；请写 IANA 时区名称，如 Asia/Shanghai、Europe/Berlin、UTC",
        "en": "no such time zone; give an IANA name such as Asia/Shanghai, Europe/Berlin or UTC",
    },
    "settings.file.missing": {"zh-CN": "USEROPS_CONFIG_FILE 指向的配置文件 {path} 不存在",
                              "en": "USEROPS_CONFIG_FILE names the settings file {path}, which does not exist"},
    "settings.file.unreadable": {"zh-CN": "读不了配置文件 {path}（{detail}）", "en": "cannot read the settings file {path} ({detail})"},
    "settings.file.syntax": {"zh-CN": "配置文件 {path} 不是有效的 YAML（第 {line} 行第 {column} 列：{detail}）",
                             "en": "the settings file {path} is not valid YAML (line {line}, column {column}: {detail})"},
    # the parser noticed the error later than where it is: an unclosed [ { or quote from line {start}
    "settings.file.syntax_from": {
        "zh-CN": "配置文件 {path} 不是有效的 YAML：从第 {start} 行开始的内容到第 {line} 行第 {column} 列仍未正确结束，请检查第 {start} 行起的括号、引号和缩进（读取程序的原话：{detail}）",
        "en": "the settings file {path} is not valid YAML: what begins on line {start} is still not closed at line {line}, column {column}; check the brackets, quotes and indentation from line {start} (the reader said: {detail})",
    },
    "settings.file.not_mapping": {"zh-CN": "配置文件 {path} 应是设置名到值的映射（如 language: en）",
                                  "en": "the settings file {path} must be a mapping of setting names to values (e.g. language: en)"},
}


def fallback_language() -> str:
    """The operator's language when the settings cannot be read: USEROPS_LANGUAGE as written,
    else the settings file's ``language`` when the file reads, else zh-CN."""
    v = os.environ.get("USEROPS_LANGUAGE")
    if v is None:
        try:
            v = read_config_file().get("language")
        except Exception:
            v = None
    return "en" if isinstance(v, str) and v.strip().lower().startswith("en") else "zh-CN"


def _texts():
    from userops import i18n

    if "settings.line" not in i18n._CATALOG:
        i18n.register(SETTINGS_TEXTS)
    return i18n


def settings_file_problem(exc: SettingsFileError, lang: str | None = None) -> str:
    i18n = _texts()
    return i18n.t(f"settings.file.{exc.kind}", lang or fallback_language(), path=exc.path, detail=exc.detail,
                  line=exc.line or "?", column=exc.column or "?", start=getattr(exc, "start", None) or "?")


def _env_var(parts: list[str]) -> str | None:
    """The USEROPS_* variable that set ``parts`` (or a group above it), as written."""
    env = {k.upper(): k for k in os.environ}
    for i in range(len(parts), 0, -1):
        name = "USEROPS_" + "__".join(parts[:i]).upper()
        if name in env:
            return env[name]
    return None


def _in_file(data, loc) -> bool:
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def _target(loc):
    """(model or type, field metadata) at ``loc`` of Settings."""
    from typing import get_args, get_origin

    target, meta = Settings, []
    for part in loc:
        if isinstance(target, type) and issubclass(target, BaseModel):
            f = target.model_fields.get(part) if isinstance(part, str) else None
            if f is None:
                return None, []
            target, meta = f.annotation, list(f.metadata)
        else:  # an item of a list, a value of a dict
            args = get_args(target)
            target, meta = (args[-1] if args else None), []
            if get_origin(target) is Annotated:
                a = get_args(target)
                target = a[0]
                for m in a[1:]:
                    meta += list(getattr(m, "metadata", [m]))
    return target, meta


def _range(loc, lang: str, i18n) -> str:
    bounds = {}
    for m in _target(loc)[1]:
        for k in ("ge", "gt", "le", "lt"):
            if getattr(m, k, None) is not None:
                bounds[k] = getattr(m, k)
    word = i18n.t("settings.value", lang)
    low = f"{bounds['ge']} ≤ " if "ge" in bounds else f"{bounds['gt']} < " if "gt" in bounds else ""
    high = f" ≤ {bounds['le']}" if "le" in bounds else f" < {bounds['lt']}" if "lt" in bounds else ""
    if low and not high:  # "value ≥ 1" reads better than "1 ≤ value"
        return f"{word} ≥ {bounds['ge']}" if "ge" in bounds else f"{word} > {bounds['gt']}"
    return low + word + high


def _show(loc) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def _file_data() -> tuple[dict, Path | None]:
    """The settings file's mapping and path; ({}, None) when the file cannot be read."""
    try:
        data = read_config_file()
        path, _ = config_file()
    except SettingsFileError:
        return {}, None
    return data, path


def _origin(loc, data: dict, path: Path | None) -> tuple[str, str | None]:
    """Where the setting at ``loc`` came from, by the settings' own precedence: ("env", the
    variable as written), ("file", None) or ("code", None) for its default."""
    parts = [str(p) for p in loc if not isinstance(p, int)]
    var = _env_var(parts) if parts else None
    if var:
        return "env", var
    if path is not None and loc and _in_file(data, loc):
        return "file", None
    return "code", None


def setting_source(loc, lang: str | None = None) -> str:
    """Where the value of the setting at ``loc`` (e.g. ``("database_url",)``) came from, as a
    phrase for a sentence in the operator's language: the environment variable that set it
    (``环境变量 USEROPS_DATABASE_URL`` / ``USEROPS_DATABASE_URL``), else the settings file's key
    (``配置文件 /srv/userops.yaml 中的 database_url`` / ``database_url in the settings file …``),
    else the default. The same precedence as the settings themselves (see settings_problems)."""
    i18n = _texts()
    lang = lang or fallback_language()
    loc = tuple(loc)
    data, path = _file_data()
    src, var = _origin(loc, data, path)
    if src == "env":
        return i18n.t("settings.from_env", lang, var=var)
    if src == "file":
        return i18n.t("settings.source.file", lang, path=path, name=_show(loc))
    return i18n.t("settings.source.default", lang, name=_show(loc))


def settings_problems(exc: Exception, lang: str | None = None) -> list[str]:
    """A settings ValidationError as lines, in the operator's language, naming where each wrong
    value came from (the environment variable, or the settings file and its key) and what to give:
    the allowed range, the closest valid key of a typo."""
    import difflib

    i18n = _texts()
    lang = lang or fallback_language()
    data, path = _file_data()

    def origin(loc) -> tuple[str, str | None]:
        return _origin(loc, data, path)

    out = []
    for err in getattr(exc, "errors", lambda: [])():
        loc = tuple(err.get("loc", ()))
        kind, ctx = err.get("type"), err.get("ctx") or {}
        value = err.get("input")
        name = _show(loc).lower()
        if isinstance(value, str) and ("secret" in name or "webhook" in name or "smtp" in name or "token" in name):
            value = "***"  # never print a secret
        elif isinstance(value, str) and "url" in name:
            value = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", value)  # the password of a URL
            if kind == "userops_reports_url":
                value = re.sub(r"(://)[^/?#]*@", r"\1***@", value)  # a bare token as user name, too
        src, var = origin(loc)

        if kind == "extra_forbidden":
            model = _target(loc[:-1])[0]
            names = list(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
            close = difflib.get_close_matches(str(loc[-1]).lower(), names, n=1, cutoff=0.6)
            if src == "env":
                where = "USEROPS_" + "__".join(str(p) for p in loc).upper()
                var_of = lambda k: "USEROPS_" + "__".join([*map(str, loc[:-1]), k]).upper()  # noqa: E731
            else:
                where = i18n.t("settings.key_in_file", lang, path=path, name=_show(loc)) if src == "file" else _show(loc)
                var_of = lambda k: _show((*loc[:-1], k))  # noqa: E731
            problem = (i18n.t("settings.unknown", lang, suggestion=var_of(close[0])) if close
                       else i18n.t("settings.unknown_choices", lang, choices=i18n.join_list(names, lang)))
            out.append(i18n.t("settings.line", lang, where=where, problem=problem))
            continue

        if kind == "userops_order":
            values = []
            for f, v in zip(ctx.get("fields", []), ctx.get("values", [])):
                fsrc, fvar = origin((*loc, f))
                label = (i18n.t("settings.from_env", lang, var=fvar) if fsrc == "env"
                         else i18n.t("settings.from_file", lang, path=path) if fsrc == "file"
                         else i18n.t("settings.from_default", lang))
                values.append(f"{f}={v}" + ("" if lang == "zh-CN" else " ") + i18n.parens(label, lang))
            out.append(i18n.t("settings.order", lang, group=_show(loc) or "settings", rule=ctx.get("rule", ""),
                              values=i18n.join_list(values, lang)))
            continue

        if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            problem = i18n.t("settings.range", lang, range=_range(loc, lang, i18n))
        elif kind == "literal_error" and ctx.get("expected"):
            # pydantic words the choices in English ("'zh-CN' or 'en'"): the values, joined in the operator's language
            choices = re.findall(r"'([^']*)'", str(ctx["expected"]))
            expected = i18n.join_list([f"'{c}'" for c in choices], lang) if choices else ctx["expected"]
            problem = i18n.t("settings.one_of", lang, expected=expected)
        elif kind in ("int_parsing", "int_from_float", "int_type"):
            problem = i18n.t("settings.not_int", lang)
        elif kind in ("float_parsing", "float_type"):
            problem = i18n.t("settings.not_number", lang)
        elif kind in ("bool_parsing", "bool_type"):
            problem = i18n.t("settings.not_bool", lang)
        elif kind == "string_pattern_mismatch" and str(loc[-1]).startswith("quiet_"):
            problem = i18n.t("settings.not_hhmm", lang)
        elif kind == "userops_database":
            problem = i18n.t("settings.database", lang, scheme=ctx.get("scheme", "?"))
        elif kind == "userops_database_driver":
            problem = i18n.t("settings.database_driver", lang, scheme=ctx.get("scheme", "?"), instead=ctx.get("instead", "?"))
        elif kind == "userops_reports_url":
            problem = i18n.t(f"settings.reports_url.{ctx.get('problem', 'scheme')}", lang)
        elif kind == "userops_timezone":
            problem = i18n.t("settings.timezone", lang)
        else:
            problem = str(err.get("msg", "")).removeprefix("Value error, ")
        if src == "env":
            where = i18n.t("settings.at_env", lang, var=var, value=repr(value))
        elif src == "file":
            where = i18n.t("settings.at_file", lang, path=path, name=_show(loc), value=repr(value))
        else:
            where = f"{_show(loc) or 'settings'}={value!r}"
        out.append(i18n.t("settings.line", lang, where=where, problem=problem))
    return out or [str(exc)]
