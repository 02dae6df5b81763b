"""Hand-built members and orders for the tag tests.

Times are given in the shop's timezone (Asia/Shanghai, UTC+8) and stored as naive UTC, the
way the warehouse keeps them: ``local(AS_OF, -60)`` is noon local time 60 days before AS_OF.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta

import pandas as pd

from userops.db import bulk_upsert, get_engine, migrate

AS_OF = date(2026, 6, 30)
UTC_OFFSET = timedelta(hours=8)


def local(day: date, days: int = 0, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """Naive UTC of ``hour:minute`` local time on ``day + days``."""
    d = day + timedelta(days=days)
    return datetime(d.year, d.month, d.day, hour, minute, second) - UTC_OFFSET


class Shop:
    """Collects customers, orders, items and feedback, then loads them in one go."""

    def __init__(self) -> None:
        self.customers: list[dict] = []
        self.orders: list[dict] = []
        self.items: list[dict] = []
        self.feedback: list[dict] = []
        self.events: list[dict] = []
        self._n = 0

    def customer(self, cid: str, registered: datetime | None = None, **kw) -> str:
        self.customers.append(
            {
                "customer_id": cid,
                "name": f"张{cid}",
                "phone": "13800138000",
                "email": f"{cid.lower()}@example.com",
                "registered_at": registered or local(AS_OF, -400),
                "city": "上海",
                "member_level": "普通",
                "marketing_consent": True,
                "updated_at": registered or local(AS_OF, -400),
                **kw,
            }
        )
        return cid

    def order(
        self,
        cid: str,
        paid_at: datetime,
        amount: float = 100.0,
        status: str = "paid",
        discount: float = 0.0,
        channel: str = "app",
        category: str = "skincare",
        qty: int = 1,
        updated_at: datetime | None = None,
        order_id: str | None = None,
    ) -> str:
        self._n += 1
        oid = order_id or f"O{self._n:06d}"
        self.orders.append(
            {
                "order_id": oid,
                "customer_id": cid,
                "paid_at": paid_at,
                "status": status,
                "amount": amount,
                "discount_amount": discount,
                "store": "S001",
                "channel": channel,
                "updated_at": updated_at or paid_at,
            }
        )
        self.items.append({"order_id": oid, "sku": f"SKU-{category}", "quantity": qty, "unit_price": amount, "category": category, "updated_at": updated_at or paid_at})
        return oid

    def complaint(self, cid: str, created: datetime, kind: str = "complaint", satisfaction: int | None = None, nps: int | None = None) -> None:
        self._n += 1
        self.feedback.append(
            {
                "feedback_id": f"F{self._n:06d}",
                "customer_id": cid,
                "kind": kind,
                "sku": None,
                "created_at": created,
                "first_response_at": None,
                "resolved_at": None,
                "satisfaction": satisfaction,
                "nps": nps,
                "text": "",
                "updated_at": created,
            }
        )

    def event(self, cid: str, at: datetime) -> None:
        self._n += 1
        self.events.append({"event_id": f"E{self._n:06d}", "customer_id": cid, "kind": "visit", "occurred_at": at})

    def load(self, engine) -> None:
        frames = {
            "customers": (self.customers, ["customer_id"]),
            "orders": (self.orders, ["order_id"]),
            "order_items": (self.items, ["order_id", "sku"]),
            "feedback": (self.feedback, ["feedback_id"]),
            "events": (self.events, ["event_id"]),
        }
        with engine.begin() as conn:
            for table, (rows, key) in frames.items():
                if not rows:
                    continue
                df = pd.DataFrame(rows)
                for c in df.columns:
                    if c.endswith("_at"):
                        df[c] = pd.to_datetime(df[c]).astype("datetime64[us]")
                    elif c in ("satisfaction", "nps", "quantity"):
                        df[c] = df[c].astype("Int64")
                bulk_upsert(conn, table, df, key)
        self.customers, self.orders, self.items, self.feedback, self.events = [], [], [], [], []


def set_order(engine, order_id: str, **values) -> None:
    """Change an order at the source (e.g. a refund), stamping updated_at."""
    import sqlalchemy as sa

    from tasks.tags import _params

    sets = ", ".join(f"{k} = :{k}" for k in values)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE orders SET {sets} WHERE order_id = :oid"), _params(conn, {**values, "oid": order_id}))


SAMPLE_KEYS = {"customers": ["customer_id"], "orders": ["order_id"], "order_items": ["order_id", "sku"], "feedback": ["feedback_id"], "events": ["event_id"]}


def load_sample(url: str, data):
    """A migrated warehouse at ``url`` holding the sample generator's ``data``."""
    engine = get_engine(url)
    migrate(engine)
    with engine.begin() as conn:
        for table, key in SAMPLE_KEYS.items():
            bulk_upsert(conn, table, getattr(data, table), key)
    return engine
