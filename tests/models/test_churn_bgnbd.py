"""BG/NBD: parameter recovery on simulated data and agreement with lifetimes."""

from __future__ import annotations

import numpy as np
import pytest

from models.bgnbd import BGNBD, fit_bgnbd


def simulate(r, alpha, a, b, n=20_000, seed=0):
    """(x, t_x, T) from the BG/NBD story, vectorized over customers (loop over purchases)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(100, 400, n)
    t = np.zeros(n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    for _ in range(400):
        if not alive.any():
            break
        nxt = t + rng.exponential(1.0 / lam)
        buys = alive & (nxt <= T)
        x[buys] += 1
        t_x[buys] = nxt[buys]
        t = np.where(buys, nxt, t)
        alive = buys & (rng.uniform(size=n) >= p)
    return x, t_x, T


def test_recovers_parameters():
    true = dict(r=0.6, alpha=25.0, a=0.9, b=3.0)
    x, t_x, T = simulate(**true)
    fit = fit_bgnbd(x, t_x, T)
    assert fit.converged
    assert fit.r == pytest.approx(true["r"], rel=0.15)
    assert fit.alpha == pytest.approx(true["alpha"], rel=0.2)
    assert fit.a == pytest.approx(true["a"], rel=0.35)
    assert fit.b == pytest.approx(true["b"], rel=0.35)


def test_probabilities_behave():
    m = BGNBD(r=0.5, alpha=20.0, a=0.8, b=2.5)
    # A one-time buyer is alive by assumption; a repeat buyer silent for long is not.
    assert m.prob_alive(0, 0, 100) == 1.0
    assert m.prob_alive(5, 20, 300) < m.prob_alive(5, 290, 300)
    p0 = m.prob_no_purchase(np.array([0, 5, 5]), np.array([0, 290, 20]), np.array([300, 300, 300]), 90)
    assert ((p0 > 0) & (p0 < 1)).all()
    assert p0[1] < p0[2]  # the recently active repeat buyer is less likely to stay silent
    # Longer horizon, more chance of a purchase.
    assert m.prob_no_purchase(5, 290, 300, 180) < m.prob_no_purchase(5, 290, 300, 30)
    e = m.expected_purchases(np.array([0, 5, 5]), np.array([0, 290, 20]), np.array([300, 300, 300]), 90)
    assert (e >= 0).all() and e[1] > e[2]


def test_agrees_with_lifetimes():
    import lifetimes  # a test dependency (pyproject's `test` extra)
    x, t_x, T = simulate(0.4, 30.0, 0.8, 2.5, n=5_000, seed=3)
    ours = fit_bgnbd(x, t_x, T)
    theirs = lifetimes.BetaGeoFitter().fit(x, t_x, T).params_
    for key in ("r", "alpha", "a", "b"):
        assert getattr(ours, key) == pytest.approx(theirs[key], rel=0.02)
    lt = lifetimes.BetaGeoFitter()
    lt.params_ = theirs
    np.testing.assert_allclose(
        ours.expected_purchases(x, t_x, T, 60),
        lt.conditional_expected_number_of_purchases_up_to_time(60, x, t_x, T),
        rtol=0.05, atol=1e-3,
    )
