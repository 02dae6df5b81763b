"""A failed warehouse statement never prints its bound values.

SQLAlchemy appends ``[parameters: ...]`` to every DBAPI error by default. Those texts end
up in the Prefect flow-run log (the traceback), the run's state message and the CLI's
error line, so a write that carries free text (an incident's reason quoting a customer's
phone and email, an audit detail) would put that personal data into the logs. The
warehouse engine is made with ``hide_parameters=True``: the statement is still named,
its values are not.
"""
from __future__ import annotations

import json
import traceback

import pytest
import sqlalchemy as sa

from tasks.crisis.incidents import get_incident, open_or_join
from userops.db import insert_rows

PHONE = "13912345678"
EMAIL = "wang.fang@example.net"
REASON = f"顾客王芳({PHONE},{EMAIL})投诉杯盖漏水"


def _text(exc: BaseException) -> str:
    return str(exc) + "".join(traceback.format_exception(exc))


def test_a_failed_write_does_not_print_the_reason_it_carried(warehouse):
    inc = open_or_join(["SKU-LEAK"], REASON, "high", "manual", "ops", engine=warehouse)
    row = get_incident(warehouse, inc["incident_id"])
    # the same opening written a second time (a run replaying its write): the key exists
    with pytest.raises(sa.exc.IntegrityError) as err:
        with warehouse.begin() as conn:
            insert_rows(conn, "incidents", [{
                "incident_id": inc["incident_id"], "skus": json.dumps(["SKU-LEAK"]), "reason": row["reason"],
                "severity": "high", "source": "manual", "status": "open", "opened_at": row["opened_at"],
            }])
    text = _text(err.value)
    assert "INSERT INTO" in text and "incidents" in text  # the statement is still named
    assert PHONE not in text and EMAIL not in text and "王芳" not in text


@pytest.mark.postgres
def test_an_opener_name_too_long_does_not_print_the_reason(pg_warehouse):
    # `userops incident open --by NAME`: opened_by is VARCHAR(100); PostgreSQL refuses more
    with pytest.raises(sa.exc.DataError) as err:
        open_or_join(["SKU-LEAK"], REASON, "high", "manual", "运营" * 60, engine=pg_warehouse)
    text = _text(err.value)
    assert "INSERT INTO incidents" in text
    assert PHONE not in text and EMAIL not in text and "王芳" not in text


def test_a_copy_postgresql_refuses_does_not_print_the_rows(pg_warehouse):
    """PostgreSQL's own text for a refused COPY / insert carries the row ("DETAIL: Failing
    row contains (..., phone, email, ...)"), which hide_parameters does not cover: the write
    is reported by table, the server's first line and SQLSTATE, nothing of the rows."""
    import pandas as pd

    from userops.db import WarehouseWriteError, bulk_upsert

    rows = pd.DataFrame({"customer_id": [None], "name": ["王芳"], "phone": [PHONE], "email": [EMAIL]})
    with pytest.raises(WarehouseWriteError) as err:
        with pg_warehouse.begin() as conn:
            bulk_upsert(conn, "customers", rows, ["customer_id"])
    text = _text(err.value)
    assert "customers" in text and "23502" in text and "not-null" in text  # what to fix: the column's constraint
    assert PHONE not in text and EMAIL not in text and "王芳" not in text, text
    with pytest.raises(WarehouseWriteError) as err:  # the plain COPY of a first load too
        with pg_warehouse.begin() as conn:
            bulk_upsert(conn, "customers", rows, ["customer_id"], on_conflict="error")
    assert PHONE not in _text(err.value) and "王芳" not in _text(err.value)
