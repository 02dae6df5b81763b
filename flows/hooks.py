"""State hooks shared by every flow (alerts on failure/crash land with the alerts issue)."""
from __future__ import annotations

ALERT_HOOKS: dict = {}
