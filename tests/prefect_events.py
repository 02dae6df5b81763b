"""Reading events back from the session's Prefect server (shared by the tests that emit)."""
from __future__ import annotations

import asyncio
import time


async def _events(name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    async with get_client() as client:
        page = await client.read_events(filter=EventFilter(event=EventNameFilter(name=[name])), limit=50)
        return list(page.events)


def wait_events(name: str, keep, n: int, timeout: float = 30) -> list:
    """The events named ``name`` that ``keep`` accepts, once there are ``n`` (or on timeout),
    plus a short grace period so a duplicate would show up too."""
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    deadline = time.time() + timeout
    while True:
        evs = [e for e in asyncio.run(_events(name)) if keep(e)]
        if len(evs) >= n or time.time() > deadline:
            time.sleep(1.0)
            return [e for e in asyncio.run(_events(name)) if keep(e)]
        time.sleep(0.5)
