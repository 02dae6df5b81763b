"""Alert channels as Prefect blocks (secret fields, editable in the Prefect UI).

``register_blocks()`` registers the three block types and, for each channel configured in
the settings (``USEROPS_SLACK_WEBHOOK_URL`` ...), saves a block document of that name
("slack", "dingtalk", "wecom") unless one exists. ``userops alert register-blocks`` runs it;
``userops serve`` should too. At delivery time every block document of these types is a
channel named after the document; a document overrides a settings channel of the same name.
"""
from __future__ import annotations

import logging

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

log = logging.getLogger("userops.alerts")


class SlackAlertChannel(Block):
    """A Slack incoming webhook for userops operator alerts."""

    _block_type_name = "userops Slack alert channel"
    _block_type_slug = "userops-slack-alert-channel"
    _description = "Slack incoming webhook that receives userops operator alerts (text + Block Kit)."

    webhook_url: SecretStr = Field(description="Incoming webhook URL (https://hooks.slack.com/services/...)")
    rate_per_minute: int = Field(default=20, description="Never post more than this many messages a minute; bursts are merged.")


class DingTalkAlertChannel(Block):
    """A DingTalk custom robot (signed) for userops operator alerts."""

    _block_type_name = "userops DingTalk alert channel"
    _block_type_slug = "userops-dingtalk-alert-channel"
    _description = "DingTalk custom robot with signing (加签) that receives userops operator alerts."

    webhook_url: SecretStr = Field(description="Robot webhook URL with access_token (https://oapi.dingtalk.com/robot/send?access_token=...)")
    secret: SecretStr | None = Field(default=None, description="Signing secret (SEC...) of the robot's 加签 security setting")
    at_mobiles: SecretStr | None = Field(default=None, description="Comma-separated mobiles to @ on error alerts (sent in the API's at field only)")
    at_user_ids: list[str] = Field(default_factory=list, description="DingTalk user ids to @ on error alerts")
    rate_per_minute: int = Field(default=20, description="The robot allows 20 messages a minute; bursts are merged.")


class WeComAlertChannel(Block):
    """A WeCom (企业微信) group robot for userops operator alerts."""

    _block_type_name = "userops WeCom alert channel"
    _block_type_slug = "userops-wecom-alert-channel"
    _description = "WeCom group robot that receives userops operator alerts (markdown, split at the size limit)."

    webhook_url: SecretStr = Field(description="Robot webhook URL with key (https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...)")
    msgtype: str = Field(default="markdown", description="markdown (4096 bytes a message) or text (2048 bytes)")
    rate_per_minute: int = Field(default=20, description="The robot allows 20 messages a minute; bursts are merged.")


BLOCK_TYPES: dict[str, type[Block]] = {"slack": SlackAlertChannel, "dingtalk": DingTalkAlertChannel, "wecom": WeComAlertChannel}


def channel_from_block(name: str, block: Block, timeout: float = 10.0):
    """The channel client for one block document."""
    from tasks.alerts.channels import DingTalkChannel, SlackChannel, WeComChannel

    if isinstance(block, SlackAlertChannel):
        return SlackChannel(name, block.webhook_url.get_secret_value(), rate_per_minute=block.rate_per_minute, timeout=timeout, source="block")
    if isinstance(block, DingTalkAlertChannel):
        mobiles = [m.strip() for m in (block.at_mobiles.get_secret_value() if block.at_mobiles else "").split(",") if m.strip()]
        return DingTalkChannel(
            name,
            block.webhook_url.get_secret_value(),
            secret=block.secret.get_secret_value() if block.secret else None,
            at_mobiles=mobiles,
            at_user_ids=block.at_user_ids,
            rate_per_minute=block.rate_per_minute,
            timeout=timeout,
            source="block",
        )
    if isinstance(block, WeComAlertChannel):
        return WeComChannel(name, block.webhook_url.get_secret_value(), msgtype=block.msgtype, rate_per_minute=block.rate_per_minute, timeout=timeout, source="block")
    raise TypeError(f"not an alert channel block: {type(block).__name__}")


def read_block_channels(timeout: float = 10.0) -> dict:
    """Every alert-channel block document on the Prefect server, as channel clients."""
    from prefect.client.orchestration import get_client

    out = {}
    with get_client(sync_client=True) as client:
        for cls in BLOCK_TYPES.values():
            try:
                docs = client.read_block_documents_by_type(cls.get_block_type_slug(), include_secrets=True)
            except Exception as exc:  # the type is not registered yet
                if "404" in str(exc) or "not found" in str(exc).lower():
                    continue
                raise
            for doc in docs:
                if not doc.name or doc.is_anonymous:
                    continue
                block = cls._from_block_document(doc)
                out[doc.name] = channel_from_block(doc.name, block, timeout)
    return out


def register_blocks(save_from_settings: bool = True, overwrite: bool = False) -> list[str]:
    """Register the block types; save documents for the channels configured in settings.
    Returns one human-readable line per thing done (no secrets)."""
    from userops.settings import get_settings

    done = []
    for cls in BLOCK_TYPES.values():
        cls.register_type_and_schema()
        done.append(f"registered block type {cls.get_block_type_slug()}")
    if not save_from_settings:
        return done
    s = get_settings()
    a = s.alerts
    docs: dict[str, Block] = {}
    if s.slack_webhook_url:
        docs["slack"] = SlackAlertChannel(webhook_url=s.slack_webhook_url, rate_per_minute=a.rate_per_minute.get("slack", 20))
    if s.dingtalk_webhook_url:
        mobiles = ",".join(m.get_secret_value() for m in a.dingtalk_at_mobiles)
        docs["dingtalk"] = DingTalkAlertChannel(
            webhook_url=s.dingtalk_webhook_url,
            secret=s.dingtalk_secret,
            at_mobiles=SecretStr(mobiles) if mobiles else None,
            at_user_ids=a.dingtalk_at_user_ids,
            rate_per_minute=a.rate_per_minute.get("dingtalk", 20),
        )
    if s.wecom_webhook_url:
        docs["wecom"] = WeComAlertChannel(webhook_url=s.wecom_webhook_url, msgtype=a.wecom_msgtype, rate_per_minute=a.rate_per_minute.get("wecom", 20))
    for name, block in docs.items():
        try:
            type(block).load(name)
            exists = True
        except ValueError:
            exists = False
        if exists and not overwrite:
            done.append(f"kept existing block {type(block).get_block_type_slug()}/{name}")
            continue
        block.save(name, overwrite=True)
        done.append(f"saved block {type(block).get_block_type_slug()}/{name} from settings")
    return done
