"""Which channels exist, and which channels an alert kind goes to.

Channels come from the settings (``slack``, ``dingtalk``, ``wecom`` when their webhook is
set) and from Prefect blocks (one channel per block document, named after it; a block
overrides a settings channel of the same name). ``log`` always exists.

Routes: ``settings.alerts.routes`` maps an alert kind to channel names, ``"*"`` being the
default, e.g. ``{"digest": ["slack"], "flow_failed": ["slack", "dingtalk"], "*": ["dingtalk"]}``
(env: ``USEROPS_ALERTS__ROUTES='{"digest": ["slack"]}'``). Without routes every kind goes
to every configured channel, or to ``log`` when none is configured. A route may name a
channel that is not configured (yet): its alerts wait in the outbox until it is.
"""
from __future__ import annotations

import logging
import time

from userops.settings import get_settings

log = logging.getLogger("userops.alerts")

# The kinds queued today (anyone may queue another kind: it follows the "*" route).
KNOWN_KINDS = {
    "flow_failed": "a flow run failed or crashed (state hooks, crash automation)",
    "validation": "a source batch was rejected by validation",
    "quarantine_spike": "a nightly batch quarantined more than alerts.quarantine_share_max",
    "health_breach": "a health metric crossed its threshold (silent share, complaint rate, satisfaction)",
    "model_drift": "the churn model's inputs or scores drifted",
    "crisis_opened": "a 3C crisis incident was opened or joined",
    "crisis_task": "a crisis step needs someone (e.g. take the product down)",
    "crisis_deadline": "a 3C crisis step is due soon",
    "crisis_escalation": "a 3C crisis deadline was missed (escalation, with mentions)",
    "crisis_statement": "the approved crisis statement",
    "feedback_sla": "feedback without a first response beyond the SLA",
    "quality_trace": "complaint rate over the threshold: quality trace + service upgrade",
    "digest": "the nightly digest",
    "test": "userops alert test",
}

_CACHE: dict = {"at": 0.0, "key": None, "channels": None}
CACHE_SECONDS = 60.0


def _prefect_api_configured() -> bool:
    try:
        from prefect.settings import get_current_settings

        return bool(get_current_settings().api.url)
    except Exception:  # pragma: no cover - prefect settings unreadable
        return False


WEBHOOK_TYPES = ("slack", "dingtalk", "wecom")  # the channels a USEROPS_<TYPE>_WEBHOOK_URL sets up


def settings_channels() -> dict:
    from tasks.alerts.channels import DingTalkChannel, SlackChannel, WeComChannel

    s = get_settings()
    a = s.alerts
    chans = {}
    if s.slack_webhook_url:
        chans["slack"] = SlackChannel("slack", s.slack_webhook_url.get_secret_value(), rate_per_minute=a.rate_per_minute.get("slack"), timeout=a.timeout_seconds)
    if s.dingtalk_webhook_url:
        chans["dingtalk"] = DingTalkChannel(
            "dingtalk",
            s.dingtalk_webhook_url.get_secret_value(),
            secret=s.dingtalk_secret.get_secret_value() if s.dingtalk_secret else None,
            at_mobiles=[m.get_secret_value() for m in a.dingtalk_at_mobiles],
            at_user_ids=a.dingtalk_at_user_ids,
            rate_per_minute=a.rate_per_minute.get("dingtalk"),
            timeout=a.timeout_seconds,
        )
    if s.wecom_webhook_url:
        chans["wecom"] = WeComChannel("wecom", s.wecom_webhook_url.get_secret_value(), msgtype=a.wecom_msgtype, rate_per_minute=a.rate_per_minute.get("wecom"), timeout=a.timeout_seconds)
    return chans


def load_channels(use_blocks: bool | None = None, refresh: bool = False) -> dict:
    """Name -> channel client, ``log`` included. Blocks are read only when a Prefect API is
    configured; a server that cannot be reached leaves the settings channels."""
    from tasks.alerts.channels import LogChannel

    s = get_settings()
    use_blocks = s.alerts.use_blocks if use_blocks is None else use_blocks
    use_blocks = use_blocks and _prefect_api_configured()
    key = (id(s), use_blocks)
    now = time.monotonic()
    if not refresh and _CACHE["key"] == key and _CACHE["channels"] is not None and now - _CACHE["at"] < CACHE_SECONDS:
        return dict(_CACHE["channels"])
    chans = {"log": LogChannel("log")}
    chans.update(settings_channels())
    if use_blocks:
        try:
            from tasks.alerts.blocks import read_block_channels

            chans.update(read_block_channels(timeout=s.alerts.timeout_seconds))
        except Exception as exc:
            from userops.i18n import t

            log.warning("%s", t("alert.log.blocks_unreadable", error=type(exc).__name__))
    _CACHE.update(at=now, key=key, channels=chans)
    return dict(chans)


def clear_channel_cache() -> None:
    _CACHE.update(at=0.0, key=None, channels=None)


def configured_channels() -> list[str]:
    """Names of the configured chat channels (not ``log``)."""
    return [n for n in load_channels() if n != "log"]


def channels_for(kind: str) -> list[str]:
    """The channels ``kind`` is routed to; ``log`` (kept in the outbox, shown in the
    digest) when nothing is configured."""
    routes = get_settings().alerts.routes
    if kind in routes:
        chans = list(routes[kind])
    elif "*" in routes:
        chans = list(routes["*"])
    else:
        chans = configured_channels()
    return list(dict.fromkeys(chans)) or ["log"]
