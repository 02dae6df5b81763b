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
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SourceSettings(BaseModel):
    """One HTTP source (CRM or order system)."""

    url: str | None = None  # base URL, e.g. http://127.0.0.1:8765/crm
    token: SecretStr | None = None  # bearer token
    api_key: SecretStr | None = None  # sent as X-API-Key
    pagination: Literal["page", "offset", "cursor", "link"] = "page"
    page_size: int = 5000
    timeout_seconds: float = 30.0
    max_retries: int = 5
    backoff_seconds: float = 0.5


class SqlSourceSettings(BaseModel):
    """Read a CRM's own database instead of its API."""

    url: str | None = None  # SQLAlchemy URL of the CRM database
    customers_query: str | None = None  # must expose the canonical columns


class ValidationSettings(BaseModel):
    max_bad_share: float = 0.05  # a batch with more bad rows than this fails the run
    min_year: int = 2000  # timestamps before this year are rejected
    future_tolerance_minutes: int = 10  # clock skew allowed for "timestamp in the future"
    chunk_rows: int = 500_000  # a night's table batch is extracted, validated and loaded by chunks of this many rows


class LifecycleSettings(BaseModel):
    new_days: int = 30  # first paid order <= 30 days ago
    active_days: int = 60  # last paid order <= 60 days ago
    silent_days: int = 180  # last paid order 61..180 days ago; beyond that churned
    loyal_orders: int = 4  # >= 4 paid orders in loyal_window_days
    loyal_window_days: int = 365
    loyal_segments: list[str] = ["champions"]  # "or top RFM segment": active + one of these is loyal


class HealthSettings(BaseModel):
    silent_share_max: float = 0.35
    complaint_rate_max: float = 0.05
    satisfaction_min: float = 0.85
    complaint_window_days: int = 7
    feedback_sla_hours: int = 24
    feedback_ack: bool = True  # acknowledge overdue feedback to the customer, once
    feedback_ack_channel: str = "sms"
    satisfaction_good: int = 4  # satisfaction = share of scored feedback with a score >= this
    feedback_window_days: int = 30  # satisfaction and NPS over feedback of the last N days
    retention_days: list[int] = [30, 90]  # N-day retention by monthly cohort of first order
    retention_cohorts: int = 12  # monthly cohorts shown
    conversion_days: int = 30  # registered -> first paid order within N days
    mau_days: int = 30
    trend_days: int = 90  # the report's trend plots


class TagSettings(BaseModel):
    value_high_share: float = 0.20  # value tier: top 20% of buyers by lifetime value are high
    value_mid_share: float = 0.30  # the next 30% mid; the rest (and prospects) low
    discount_min_rate: float = 0.10  # an order is "discounted" at >= 10% off its gross
    price_sensitive_share: float = 0.5  # price-sensitive: >= half of paid orders discounted
    price_sensitive_min_orders: int = 2  # ... and at least this many paid orders
    clusters: int = 6  # behaviour clusters (k-means)
    cluster_refresh_days: int = 7  # refit weekly; assign nightly with the stored centroids
    cluster_sample: int = 200_000  # fit on at most this many buyers
    full_recompute_days: int = 7  # safety net: recompute every aggregate from orders weekly
    # PostgreSQL: memory per hash / sort of the full recompute's transaction (SET LOCAL work_mem,
    # PostgreSQL may use twice this per hash); a night's refresh uses 256 MB
    full_work_mem_mb: int = Field(512, ge=1)


class ChurnSettings(BaseModel):
    horizon_days: int = 90
    retrain_every_days: int = 7
    high_risk: float = 0.6
    medium_risk: float = 0.3
    psi_threshold: float = 0.2
    promotion_tolerance: float = 0.005  # a candidate may trail the champion by this much (ROC AUC / Brier)
    model_kind: Literal["logistic", "hgb", "blend"] = "logistic"  # see models/train.py


class CampaignSettings(BaseModel):
    holdout_share: float = 0.10
    global_cap_messages: int = 2
    global_cap_days: int = 7
    quiet_start: str = "21:00"
    quiet_end: str = "09:00"
    attribution_days: int = 14
    # Definitions, templates and delivery (issue 6).
    definitions_dir: Path = PROJECT_ROOT / "campaigns"  # one YAML file per campaign
    shop_name: str | None = None  # {{ shop }} in templates; default: i18n "our shop"
    email_from: str = "members@shop.example.com"
    unsubscribe_url: str = "https://shop.example.com/unsubscribe?c={customer_id}&t={token}"
    unsubscribe_secret: SecretStr = SecretStr("change-me-unsubscribe-key")  # keys the link token
    send_workers: int = 8  # sender threads per worker process
    send_batch: int = 500  # touches marked in flight (and settled) together
    max_attempts: int = 5  # then the touch is failed with the last reason
    retry_backoff_seconds: float = 30.0  # doubled per attempt
    retry_wait_seconds: float = 60.0  # a run waits for retries due within this long; a message for a 429 pause too (longer: rescheduled)
    in_flight_lease_seconds: float = 600.0  # an in-flight touch of a vanished sender is resent after this
    request_timeout_seconds: float = 10.0
    sms_rate_per_second: float = 0.0  # provider's limit (0: none known; 429 + Retry-After honoured)
    push_rate_per_second: float = 0.0
    email_rate_per_second: float = 0.0
    staff_excel_max_rows: int = 50_000  # staff-outreach list also as .xlsx up to this size
    outreach_keep_days: int = 30  # staff-outreach files (they hold phones and emails, for staff) are deleted after this many days; 0 keeps them


class CrisisRemedy(BaseModel):
    """What one crisis-priority tier is offered."""

    coupon_value: float = 0.0  # apology coupon (0 = none)
    refund_offer: bool = True  # offer a refund of the affected items
    call_list: bool = False  # a person calls them (personal call list)


class CoreRemedy(CrisisRemedy):
    coupon_value: float = 50
    call_list: bool = True


class PotentialRemedy(CrisisRemedy):
    coupon_value: float = 30


class OrdinaryRemedy(CrisisRemedy):
    coupon_value: float = 20


class CrisisRemedies(BaseModel):
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


class CrisisSettings(BaseModel):
    control_hours: float = 2
    clarify_hours: float = 4
    compensate_hours: float = 24
    spike_complaints: int = 10  # >= this many complaints for one SKU within spike_window_hours
    spike_window_hours: float = 2
    spike_rate_factor: float = 5.0  # ... or this many times the SKU's usual rate
    spike_rate_min_complaints: int = 5  # (the rate rule needs at least this many complaints)
    spike_baseline_days: int = 28  # "usual" = complaints per window over these days
    spike_scan_hours: float = 26  # each check looks this far back (covers the nightly gap)
    spike_cooldown_hours: float = 24  # a burst this soon after the last one is the same spike
    lookback_days: int = 30  # affected = paid orders with the SKUs in this many days
    takedown_url: str | None = None  # HTTP POST {"skus": [...]}; unset = a task for a human
    takedown_token: SecretStr | None = None  # sent as Bearer token
    takedown_timeout_seconds: float = 10
    takedown_retries: int = 3
    reminder_fractions: list[float] = [0.5, 0.9]  # of each step's window
    escalation_channels: list[str] = []  # second contact list; empty = the operator channels
    escalation_mentions: list[str] = []  # who is @-mentioned on escalation (never logged)
    statement_channels: list[str] = []  # where the approved statement goes; empty = operator channels
    statement_wait_hours: float = 20  # from opening: how long the flow waits for approval
    core_review_wait_hours: float = 24  # from opening: how long core apologies wait for review
    pause_poll_seconds: int = 10
    remedies: CrisisRemedies = CrisisRemedies()
    apology_channel: str = "sms"
    brand: str = ""  # name used in statements and apologies; empty = "we"
    service_contact: str = ""  # e.g. a hotline, shown in the statement
    template_dir: Path | None = None  # override statement/apology templates
    quiet_days: float = 7  # an incident with every step done closes this long after opening


class AlertSettings(BaseModel):
    """Operator alerts (issue 5). Channels: the webhook settings below and/or Prefect blocks."""

    routes: dict[str, list[str]] = {}  # kind -> channel names; "*" = default; empty = every channel
    rate_per_minute: dict[str, int] = {"slack": 20, "dingtalk": 20, "wecom": 20}  # per channel type
    merge_over: int = 5  # more pending alerts than this for one channel in one pass -> one merged message
    backoff_seconds: float = 30  # first retry delay; doubles per attempt
    backoff_max_seconds: float = 1800
    config_error_backoff_seconds: float = 3600  # 403/404/410/310000: wait for the operator to fix it
    give_up_hours: float = 72  # an alert still undelivered after this is marked failed
    timeout_seconds: float = 10
    quarantine_share_max: float = 0.01  # quarantined share of a nightly batch above this alerts
    dingtalk_at_mobiles: list[SecretStr] = []  # @-mentioned on error/critical (never written in text)
    dingtalk_at_user_ids: list[str] = []
    mention_severities: list[str] = ["error", "critical"]
    wecom_msgtype: Literal["markdown", "text"] = "markdown"
    use_blocks: bool = True  # also read channels from Prefect blocks when a Prefect API is configured
    # the deliver-alerts deployment's interval (prefect.yaml's schedule is rendered with it):
    # retries held-back alerts
    deliver_every_minutes: int = Field(5, ge=1)


class DeploySettings(BaseModel):
    """How ``userops serve`` deploys prefect.yaml (issue 8). Empty = the value in prefect.yaml."""

    work_pool: str | None = None  # default userops-pool
    nightly_cron: str | None = None  # default "0 2 * * *" (02:00 shop time)
    retrain_cron: str | None = None  # default "0 5 * * 0" (Sunday 05:00)
    monitor_cron: str | None = None  # default "0 * * * *" (hourly)
    schedule_timezone: str | None = None  # default: the shop's timezone (``timezone``)
    host: str = "127.0.0.1"  # where `userops serve` binds the Prefect server
    port: int = 4200


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="USEROPS_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str = Field(
        default_factory=lambda: f"sqlite:///{PROJECT_ROOT / 'output' / 'userops.db'}",
        description="SQLAlchemy URL of the warehouse",
    )
    output_dir: Path = PROJECT_ROOT / "output"
    timezone: str = "Asia/Shanghai"  # the shop's timezone: "tonight", quiet hours, cron
    language: Literal["zh-CN", "en"] = "zh-CN"

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
            raise ValueError(f"the warehouse needs the installed driver: write postgresql+psycopg2:// instead of {driver}://")
        if driver.startswith("sqlite+"):
            raise ValueError(f"write sqlite:/// instead of {driver}://")
        return v

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"no time zone {v!r}: give an IANA name such as Asia/Shanghai, Europe/Berlin or UTC") from None
        return v

    @field_validator("language", mode="before")
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
    alerts: AlertSettings = AlertSettings()
    deploy: DeploySettings = DeploySettings()
    # Heavy per-partition work (scoring, audience planning): "default" = threads in the
    # flow's process; "dask" = prefect-dask's DaskTaskRunner on USEROPS_DASK_ADDRESS, or a
    # local Dask cluster of ``dask_workers`` processes when no address is given.
    task_runner: Literal["default", "dask"] = "default"
    dask_address: str | None = None  # e.g. tcp://10.0.0.5:8786 (a running dask scheduler)
    dask_workers: int = 2
    dask_processes: bool = True  # local cluster only: worker processes (True) or threads
    dask_partitions: int = 0  # partitions of customers for scoring/audience planning on Dask (0 = 2 per worker)

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


class _YamlFileSource(PydanticBaseSettingsSource):
    """Optional YAML file: USEROPS_CONFIG_FILE or ./userops.yaml."""

    def _data(self) -> dict[str, Any]:
        path = os.environ.get("USEROPS_CONFIG_FILE")
        p = Path(path) if path else PROJECT_ROOT / "userops.yaml"
        if not p.exists():
            if path:
                raise FileNotFoundError(f"USEROPS_CONFIG_FILE points to {p}, which does not exist")
            return {}
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: the settings file must be a mapping of setting names to values")
        return data

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


def settings_problems(exc: Exception) -> list[str]:
    """A settings ValidationError as lines naming the environment variable and the fix."""
    out = []
    for err in getattr(exc, "errors", lambda: [])():
        loc = [str(p) for p in err.get("loc", ()) if not str(p).isdigit()]
        var = "USEROPS_" + "__".join(loc).upper() if loc else "USEROPS_*"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        if err.get("type") == "literal_error" and err.get("ctx", {}).get("expected"):
            msg = f"must be one of {err['ctx']['expected']}"
        value = err.get("input")
        name = var.lower()
        if isinstance(value, str) and ("secret" in name or "webhook" in name or "smtp" in name):
            value = "***"  # never print a secret
        elif isinstance(value, str) and "url" in name:
            value = re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", value)  # the password of a URL
        out.append(f"{var}={value!r}: {msg}")
    return out or [str(exc)]
