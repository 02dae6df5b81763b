"""Population stability index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.drift import drift_report, drift_summary, make_profile, psi


def test_identical_distributions_have_no_drift():
    rng = np.random.default_rng(0)
    ref = rng.exponential(30, 50_000)
    assert psi(ref, ref) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, rng.exponential(30, 50_000)) < 0.01  # same law, new sample


def test_shifted_distribution_breaches():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, 20_000)
    assert psi(ref, rng.normal(0.1, 1, 20_000)) < 0.1
    assert psi(ref, rng.normal(1.0, 1, 20_000)) > 0.2


def test_report_profile_and_missing_values():
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"a": rng.normal(size=10_000), "b": rng.integers(0, 3, 10_000).astype(float), "score": rng.uniform(size=10_000)})
    cur = ref.copy()
    cur["b"] = cur["b"] + 1  # discrete shift
    cur.loc[: 4_000, "score"] = np.nan  # 40 % missing is drift too
    report = drift_report(ref, cur)
    by = dict(zip(report["feature"], report["breach"]))
    assert by == {"a": False, "b": True, "score": True}
    # A stored JSON-friendly profile gives the same numbers as the raw sample.
    from_profile = drift_report(make_profile(ref), cur)
    pd.testing.assert_frame_equal(report, from_profile)
    summary = drift_summary(report)
    assert summary["breach"] and set(summary["breached"]) == {"b", "score"}
    assert "2 of 3" in summary["message"]
    assert not drift_summary(drift_report(ref, ref))["breach"]
