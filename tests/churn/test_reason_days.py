"""The day counts in the churn reasons are the tags' day counts: shop-local calendar days
from the order's (or registration's) day to ``as_of`` (``tasks.tags.days_ago``), not the
features' count to the end-of-day cutoff (one more)."""
from __future__ import annotations

import json
import re

import pandas as pd

from models import scoring
from tasks import tags
from tests.churn.conftest import AS_OF
from userops.db import read_frame
from userops.settings import get_settings


def test_reason_days_are_the_tags_days(loaded):
    tags.refresh(AS_OF, "reason-days", engine=loaded)
    scoring.score_night(AS_OF, loaded, overlay=False)
    with loaded.connect() as conn:
        s = read_frame(conn, "SELECT customer_id, reasons FROM churn_scores ORDER BY customer_id")
        tg = read_frame(conn, "SELECT customer_id, first_paid_at, last_paid_at FROM tags")
        cu = read_frame(conn, "SELECT customer_id, registered_at FROM customers")
    tz = get_settings().timezone
    for col in ("first_paid_at", "last_paid_at"):
        tg[col] = pd.to_datetime(tg[col])
    cu["registered_at"] = pd.to_datetime(cu["registered_at"])
    tg = tg.set_index("customer_id")
    last = tags.days_ago(tg["last_paid_at"], AS_OF, tz)
    first = tags.days_ago(tg["first_paid_at"], AS_OF, tz)
    reg = tags.days_ago(cu.set_index("customer_id")["registered_at"], AS_OF, tz)
    parsed = {c: json.loads(r) for c, r in zip(s["customer_id"], s["reasons"])}
    seen = {"recency": 0, "tenure": 0, "no_orders": 0}
    for cid, r in parsed.items():
        if "recency_days" in r and r.get("recency_days") is not None:
            assert r["recency_days"] == last[cid], cid
            seen["recency"] += 1
        if r.get("tenure_days") is not None:
            assert r["tenure_days"] == first[cid], cid
            seen["tenure"] += 1
        if r.get("days_since_registration") is not None:
            assert r["days_since_registration"] == reg[cid], cid
            seen["no_orders"] += 1
    assert all(n > 0 for n in seen.values()), seen

    # the words next to the tags' own line, on the same customer (`userops tags show`)
    zh = scoring.reasons_text(s["reasons"], "zh-CN")
    cid, text = next((c, z) for c, z in zip(s["customer_id"], zh) if z.startswith("已 "))
    days = re.match(r"已 ([\d,]+) 天未下单", text).group(1)  # as written: 1,031
    lines = tags.explain(cid, AS_OF, loaded, lang="zh-CN")
    stage = next(line for line in lines if re.search(r"最近一笔已付款订单在 [\d,]+ 天前", line))
    assert f"最近一笔已付款订单在 {days} 天前" in stage, (text, stage)
