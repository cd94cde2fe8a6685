import math

import numpy as np
import pandas as pd
import pytest

from sdv_janus.engine import trees
from sdv_janus.engine._dirichlet import log_marginal_likelihood
from sdv_janus.engine.trees import TreeSettings, column_prior, grow_tree


def direct_lml(counts, alpha):
    value = math.lgamma(sum(alpha)) - math.lgamma(sum(alpha) + sum(counts))
    return value + sum(math.lgamma(a + n) - math.lgamma(a) for n, a in zip(counts, alpha))


def brute_force_best_threshold(parent, child, n_child, alpha, min_leaf):
    """Try every threshold of an ordered parent with the direct formula."""
    whole = direct_lml(np.bincount(child, minlength=n_child), alpha)
    best = (-np.inf, None)
    for threshold in range(parent.max()):
        left = child[parent <= threshold]
        right = child[parent > threshold]
        if min(len(left), len(right)) < min_leaf:
            continue

        gain = direct_lml(np.bincount(left, minlength=n_child), alpha) + direct_lml(
            np.bincount(right, minlength=n_child), alpha
        )
        best = max(best, (gain - whole, threshold))

    return best


def test_best_split_gain_matches_direct_formula():
    rng = np.random.default_rng(0)
    parent = rng.integers(0, 8, size=400)
    child = np.where(parent >= 5, rng.integers(0, 2, size=400), rng.integers(1, 3, size=400))
    states = np.column_stack([parent, child]).astype(np.int32)
    prior = column_prior(child, 3, 20.0)

    split = trees._best_split(states, np.arange(400), child, [0], [8, 3], [True, True], prior, 10)
    gain, threshold = brute_force_best_threshold(parent, child, 3, prior, 10)
    assert split.gain == pytest.approx(gain, rel=1e-9)
    np.testing.assert_array_equal(split.go_left, np.arange(8) <= threshold)


def test_no_split_when_child_is_independent_of_parent():
    rng = np.random.default_rng(1)
    states = rng.integers(0, 4, size=(3000, 2)).astype(np.int32)
    tree = grow_tree(states, 1, [0], [4, 4], [False, False], TreeSettings())
    assert tree.n_leaves == 1
    np.testing.assert_array_equal(tree.leaf_counts[0], np.bincount(states[:, 1], minlength=4))


def test_leaf_distributions_match_pandas_group_counts():
    rng = np.random.default_rng(2)
    parent = rng.integers(0, 5, size=5000)
    child = (parent * 2 + (rng.random(5000) < 0.2)) % 6
    states = np.column_stack([parent, child]).astype(np.int32)
    tree = grow_tree(states, 1, [0], [5, 6], [False, False], TreeSettings())

    leaves = tree.leaves_of(states)
    expected = pd.crosstab(leaves, child).reindex(columns=range(6), fill_value=0)
    np.testing.assert_array_equal(tree.leaf_counts, expected.to_numpy())
    # Parents 0 and 3, and 1 and 4, give the child the same pair of states: three groups.
    groups = {tuple(np.unique(parent[leaves == leaf])) for leaf in range(tree.n_leaves)}
    assert groups == {(0, 3), (1, 4), (2,)}
    assert tree.split_columns == [0]


def test_no_state_seen_in_training_gets_probability_zero():
    rng = np.random.default_rng(3)
    parent = rng.integers(0, 2, size=2000)
    child = np.where(parent == 0, 0, 1 + rng.integers(0, 3, size=2000))
    child[0] = 3
    states = np.column_stack([parent, child]).astype(np.int32)
    tree = grow_tree(states, 1, [0], [2, 4], [True, False], TreeSettings())
    assert tree.n_leaves == 2
    assert np.all(tree.predictive() > 0)


def test_categorical_parent_subset_split():
    rng = np.random.default_rng(4)
    parent = rng.integers(0, 6, size=6000)
    child = np.isin(parent, [0, 3, 5]).astype(int) ^ (rng.random(6000) < 0.05)
    states = np.column_stack([parent, child]).astype(np.int32)
    tree = grow_tree(states, 1, [0], [6, 2], [False, False], TreeSettings())
    groups = {
        tuple(sorted(np.unique(parent[tree.leaves_of(states) == leaf])))
        for leaf in range(tree.n_leaves)
    }
    assert groups == {(0, 3, 5), (1, 2, 4)}


def test_log_marginal_likelihood_is_used_by_trees_consistently():
    counts = np.array([[3.0, 4.0], [0.0, 7.0]])
    alpha = np.array([0.5, 1.5])
    assert log_marginal_likelihood(counts, alpha)[1] == pytest.approx(direct_lml([0, 7], alpha))
