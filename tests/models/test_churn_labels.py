"""Labels: population and the half-open window [cutoff, cutoff + H)."""

from __future__ import annotations

import pandas as pd
import pytest

from models.labels import build_labels, labels_complete, latest_complete_cutoff
from tests.models.conftest import orders_frame

T = pd.Timestamp("2024-04-01")


def test_label_edges():
    orders = orders_frame(
        [
            (1, "2024-01-05", 10, "paid"),
            (1, "2024-04-01 00:00", 10, "paid"),  # exactly at T: inside the window -> not churned
            (2, "2024-02-05", 10, "paid"),
            (2, "2024-04-11 00:00", 10, "paid"),  # exactly at T + 10 days: outside -> churned
            (3, "2024-03-31 23:59", 10, "paid"),
            (3, "2024-04-10 23:59", 10, "paid"),  # last moment inside the window
            (4, "2024-03-01", 10, "refunded"),  # refund only: not in the population
            (4, "2024-04-02", 10, "paid"),
            (5, "2024-03-01", 10, "paid"),
            (5, "2024-04-03", 10, "refunded"),  # a refund in the window is not a purchase
            (6, "2024-04-01", 10, "paid"),  # first order at T: not in the population
            (7, "2024-03-01", 10, "paid"),
            (7, "2024-04-05", 10, "cancelled"),
        ]
    )
    y = build_labels(orders, T, 10)
    assert list(y.index) == [1, 2, 3, 5, 7]
    assert y.to_dict() == {1: 0, 2: 1, 3: 0, 5: 1, 7: 1}
    assert y.name == "churned"


def test_horizon_must_be_positive():
    orders = orders_frame([(1, "2024-01-05", 10, "paid")])
    with pytest.raises(ValueError):
        build_labels(orders, T, 0)


def test_latest_complete_cutoff():
    assert latest_complete_cutoff("2024-06-30 03:00", 90) == pd.Timestamp("2024-04-01")
    assert labels_complete("2024-06-30", "2024-04-01", 90)
    assert not labels_complete("2024-06-29", "2024-04-01", 90)
