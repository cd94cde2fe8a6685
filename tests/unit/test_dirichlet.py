import math

import numpy as np
import pytest

from sdv_janus.engine import _dirichlet
from sdv_janus.engine._dirichlet import bdeu_local_score, log_marginal_likelihood


def direct_log_marginal_likelihood(counts, alpha):
    total_alpha, total_count = sum(alpha), sum(counts)
    value = math.lgamma(total_alpha) - math.lgamma(total_alpha + total_count)
    for n, a in zip(counts, alpha):
        value += math.lgamma(a + n) - math.lgamma(a)

    return value


def direct_bdeu(child, parents, n_child, n_configs, ess):
    """Sum over every configuration and state, observed or not, with plain Python loops."""
    alpha_config, alpha_cell = ess / n_configs, ess / (n_configs * n_child)
    score = 0.0
    for config in range(n_configs):
        counts = [int(np.sum((parents == config) & (child == k))) for k in range(n_child)]
        score += direct_log_marginal_likelihood(counts, [alpha_cell] * n_child)
        assert alpha_config == pytest.approx(alpha_cell * n_child)

    return score


def test_log_marginal_likelihood_matches_direct_formula():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 50, size=(20, 6)).astype(float)
    alpha = rng.uniform(0.01, 5.0, size=6)
    expected = [direct_log_marginal_likelihood(row, alpha) for row in counts]
    np.testing.assert_allclose(log_marginal_likelihood(counts, alpha), expected, rtol=1e-10)


@pytest.mark.parametrize("dense", [True, False])
def test_bdeu_matches_direct_sum(monkeypatch, dense):
    if not dense:
        monkeypatch.setattr(_dirichlet, "_DENSE_CELL_LIMIT", 0)

    rng = np.random.default_rng(1)
    parents = rng.integers(0, 6, size=500)
    child = (parents + rng.integers(0, 2, size=500)) % 4
    score = bdeu_local_score(child, parents, 4, 6, ess=10.0)
    assert score == pytest.approx(direct_bdeu(child, parents, 4, 6, 10.0), rel=1e-10)


def test_bdeu_prefers_the_true_parent():
    rng = np.random.default_rng(2)
    parent = rng.integers(0, 3, size=2000)
    noise = rng.integers(0, 3, size=2000)
    child = np.where(rng.random(2000) < 0.9, parent, rng.integers(0, 3, size=2000))
    with_parent = bdeu_local_score(child, parent, 3, 3, 10.0)
    without = bdeu_local_score(child, np.zeros_like(child), 3, 1, 10.0)
    with_noise = bdeu_local_score(child, noise, 3, 3, 10.0)
    assert with_parent > without > with_noise
