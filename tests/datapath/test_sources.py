"""REST source against the real sample service over loopback: paging, auth, retries."""
from __future__ import annotations

import pandas as pd
import pytest

from tasks.extract import RestSource, SourceError
from userops.sample.generator import generate
from userops.sample.server import SampleServer


@pytest.fixture(scope="module")
def data():
    return generate(400, seed=5, as_of="2026-11-20")


@pytest.fixture
def server(data):
    with SampleServer(data) as s:
        yield s


def _src(server, **kw):
    kw.setdefault("page_size", 97)
    kw.setdefault("backoff", 0.01)
    return RestSource(server.url, **kw)


@pytest.mark.parametrize("style", ["page", "offset", "cursor", "link"])
def test_every_pagination_style_returns_every_row_once(server, data, style):
    df = _src(server, pagination=style).fetch("/orders/orders")
    assert len(df) == len(data.orders)
    assert df["order_id"].is_unique
    assert set(df["order_id"]) == set(data.orders["order_id"])
    # more than one page was actually requested
    assert len(server.requests) >= len(data.orders) // 97


def test_updated_since_returns_only_rows_changed_since(server, data):
    cut = data.customers["updated_at"].sort_values().iloc[len(data.customers) // 2]
    df = _src(server).fetch("/crm/customers", updated_since=cut.to_pydatetime())
    expected = data.customers[data.customers["updated_at"] >= cut]
    assert set(df["customer_id"]) == set(expected["customer_id"])
    # the naive UTC watermark is sent with its offset
    assert all(f"updated_since={cut.isoformat()}+00:00".replace(":", "%3A").replace("+", "%2B") in r for r in server.requests)


def test_bearer_token_and_api_key(data):
    with SampleServer(data, token="s3cret") as s:
        with pytest.raises(SourceError, match="401.*令牌或 API 密钥") as err:
            _src(s).fetch("/crm/customers")
        assert "token or API key" in err.value.localized("en")
        assert len(_src(s, token="s3cret").fetch("/crm/customers")) == len(data.customers)
    with SampleServer(data, api_key="k-123") as s:
        assert len(_src(s, api_key="k-123").fetch("/crm/customers")) == len(data.customers)


def test_500_and_429_then_recovery(server, data):
    server.faults.update({"fail_next": 2, "rate_limit_next": 2, "retry_after": 0})
    waits = []
    src = _src(server)
    src.sleep = waits.append
    df = src.fetch("/crm/customers")
    assert len(df) == len(data.customers)
    assert src.retries_made == 4
    assert len(waits) == 4


def test_retry_after_is_honoured(server):
    server.faults.update({"rate_limit_next": 1, "retry_after": 7})
    waits = []
    src = _src(server)
    src.sleep = waits.append
    src.fetch("/crm/feedback")
    assert waits == [7.0]


def test_source_that_keeps_failing_raises_a_clear_error(server):
    server.faults.update({"always_fail": True})
    src = _src(server, max_retries=3)
    src.sleep = lambda s: None
    with pytest.raises(SourceError) as err:
        src.fetch("/orders/orders")
    msg = err.value.localized("en")
    assert "HTTP 500 after 4 attempts" in msg and "/orders/orders" in msg
    assert "尝试 4 次后仍返回 HTTP 500" in str(err.value)


def test_timeouts_are_retried_then_reported(server):
    server.faults.update({"slow_seconds": 0.5})
    src = _src(server, timeout=0.1, max_retries=1)
    src.sleep = lambda s: None
    with pytest.raises(SourceError, match="尝试 2 次仍无应答") as err:
        src.fetch("/crm/customers")
    assert "no answer after 2 attempts" in err.value.localized("en")


def test_secret_never_in_error_message(data):
    with SampleServer(data, token="tok-xyz") as s:
        src = _src(s, token="wrong-token")
        with pytest.raises(SourceError) as err:
            src.fetch("/crm/customers")
        assert "wrong-token" not in str(err.value)


@pytest.mark.parametrize("table, key", [("customers", ["customer_id"]), ("order_items", ["order_id", "sku"])])
def test_cursor_paging_loses_no_row_when_a_read_row_is_edited_meanwhile(server, data, table, key):
    """The sample's cursor is a keyset (the last row's updated_at and id): a row of page 1
    edited after page 1 was served moves to the end, and the row that moves up into page 1's
    range is still read (with an offset cursor it was skipped for good)."""
    import dataclasses

    frame = getattr(data, table)
    ordered = frame.sort_values(["updated_at", *key], kind="stable").reset_index(drop=True)
    edited = ordered.iloc[[3]].assign(updated_at=frame["updated_at"].max() + pd.Timedelta(seconds=1))

    def edit_after_first_page(resp, *args, **kwargs):
        if len(server.requests) == 1:
            rest = frame.merge(edited[key], on=key, how="left", indicator=True)
            rest = frame[(rest["_merge"] == "left_only").to_numpy()]
            server.set_data(dataclasses.replace(data, **{table: pd.concat([rest, edited], ignore_index=True)}))

    src = _src(server, pagination="cursor")
    src.session.hooks["response"].append(edit_after_first_page)
    df = src.fetch("/crm/customers" if table == "customers" else "/orders/order_items")
    got = set(map(tuple, df[key].astype(str).to_numpy()))
    assert got == set(map(tuple, frame[key].astype(str).to_numpy()))
    assert len(df) == len(frame) + 1  # the edited row twice: as read first, and its new version at the end
