"""Tests for sdv_janus.engine.uncertainty: closed form, Monte Carlo reference, row scoring."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import digamma

from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine.encoding import UNKNOWN_STATE, ColumnCodec
from sdv_janus.engine.trees import BayesianTree
from sdv_janus.engine.uncertainty import (
    dirichlet_uncertainty,
    encode_for_scoring,
    leaf_table,
    log_dirichlet_draws,
    monte_carlo_uncertainty,
    score_states,
    within_bin_entropy,
)

FIGURES = ("total", "aleatoric", "epistemic")
PROPERTY_SETTINGS = settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


# Slow, obviously correct references.


def direct_figures(alpha, within=None):
    """Entropy of the mean and the digamma formula, one Dirichlet at a time."""
    alpha = np.asarray(alpha, dtype=np.float64)
    present = alpha[alpha > 0]
    mean = present / present.sum()
    total = -np.sum(mean * np.log(mean))
    aleatoric = digamma(present.sum() + 1) - np.sum(mean * digamma(present + 1))
    if within is not None:
        extra = np.sum(alpha / alpha.sum() * within)
        total, aleatoric = total + extra, aleatoric + extra

    return total, aleatoric, total - aleatoric


def walk(tree, row):
    """Leaf of one row, following the flat arrays node by node; None if it meets an unknown."""
    node = 0
    while tree.feature[node] >= 0:
        state = row[tree.feature[node]]
        if state < 0:
            return None

        node = tree.left[node] if tree.go_left[tree.mask_offset[node] + state] else tree.right[node]

    return tree.leaf_of_node[node]


def small_tree():
    """Column 1's tree: splits on column 0 (states {0, 1} left), then on column 2 at the left."""
    return BayesianTree(
        feature=np.array([0, 2, -1, -1, -1], dtype=np.int32),
        left=np.array([1, 3, -1, -1, -1], dtype=np.int32),
        right=np.array([2, 4, -1, -1, -1], dtype=np.int32),
        mask_offset=np.array([0, 3, 0, 0, 0], dtype=np.int64),
        go_left=np.array([True, True, False, True, False]),
        leaf_of_node=np.array([-1, -1, 0, 1, 2], dtype=np.int32),
        leaf_counts=np.array([[50.0, 5.0, 1.0], [2.0, 2.0, 0.0], [0.0, 300.0, 300.0]]),
        prior=np.array([0.3, 0.5, 0.2]),
    )


def root_tree(counts):
    """A one-leaf tree (no parents) holding ``counts``."""
    return BayesianTree(
        feature=np.array([-1], dtype=np.int32),
        left=np.array([-1], dtype=np.int32),
        right=np.array([-1], dtype=np.int32),
        mask_offset=np.zeros(1, dtype=np.int64),
        go_left=np.zeros(1, dtype=bool),
        leaf_of_node=np.zeros(1, dtype=np.int32),
        leaf_counts=np.asarray([counts], dtype=np.float64),
        prior=np.full(len(counts), 1.0 / len(counts)),
    )


def random_alpha(rng, n_states, alpha_0):
    return alpha_0 * rng.dirichlet(np.ones(n_states))


# Closed form.


@pytest.mark.parametrize("alpha_0", [1e-3, 0.7, 40.0, 5e4])
@pytest.mark.parametrize("n_states", [2, 5, 30])
def test_closed_form_matches_the_digamma_formula(alpha_0, n_states):
    rng = np.random.default_rng(n_states)
    alpha = np.stack([random_alpha(rng, n_states, alpha_0) for _ in range(4)])
    within = rng.random(n_states) * 3
    figures = dirichlet_uncertainty(alpha, within)
    for row in range(len(alpha)):
        expected = direct_figures(alpha[row], within)
        for name, value in zip(FIGURES, expected, strict=True):
            assert getattr(figures, name)[row] == pytest.approx(value, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("alpha_0", [1e-3, 1.0, 50.0, 1e6])
@pytest.mark.parametrize("n_states", [2, 6, 25])
def test_closed_form_agrees_with_monte_carlo_within_its_standard_error(alpha_0, n_states):
    rng = np.random.default_rng([int(np.log10(alpha_0) + 10), n_states])
    alpha = np.stack([random_alpha(rng, n_states, alpha_0) for _ in range(3)])
    within = rng.random(n_states)
    exact = dirichlet_uncertainty(alpha, within)
    estimate = monte_carlo_uncertainty(alpha, 20_000, rng, within)
    for name in FIGURES:
        error = np.abs(getattr(estimate.figures, name) - getattr(exact, name))
        standard_error = getattr(estimate.standard_errors, name)
        assert np.all(error <= 4 * standard_error + 1e-12), (name, error, standard_error)


def test_epistemic_has_the_large_concentration_limit():
    # For alpha_0 -> infinity the mutual information tends to (K - 1) / (2 alpha_0).
    rng = np.random.default_rng(3)
    weights = rng.dirichlet(np.ones(8))
    for alpha_0 in [1e6, 1e9, 1e12]:
        epistemic = dirichlet_uncertainty(alpha_0 * weights[None, :]).epistemic[0]
        assert epistemic == pytest.approx(7 / (2 * alpha_0), rel=1e-4)


@PROPERTY_SETTINGS
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(1, 12)),
        elements=st.one_of(
            st.just(0.0), st.floats(1e-8, 1e8, allow_nan=False, allow_infinity=False)
        ),
    )
)
def test_figures_are_ordered_and_non_negative(alpha):
    alpha[:, 0] += 1e-3  # every row keeps a present state
    figures = dirichlet_uncertainty(alpha)
    n_present = (alpha > 0).sum(axis=1)
    assert np.all(figures.epistemic >= 0)
    assert np.all(figures.aleatoric >= -1e-12)
    assert np.all(figures.total <= np.log(n_present) + 1e-12)
    np.testing.assert_allclose(figures.total - figures.aleatoric, figures.epistemic, atol=1e-12)


def test_absent_states_drop_out():
    alpha = np.array([[2.0, 0.0, 3.0, 0.0]])
    reduced = dirichlet_uncertainty(np.array([[2.0, 3.0]]))
    full = dirichlet_uncertainty(alpha)
    for name in FIGURES:
        assert getattr(full, name)[0] == pytest.approx(getattr(reduced, name)[0], rel=1e-14)


def test_empty_dirichlet_gives_nan_without_warnings():
    with np.errstate(all="raise"):
        figures = dirichlet_uncertainty(np.zeros((1, 3)))

    assert np.isnan([figures.total, figures.aleatoric, figures.epistemic]).all()


def test_log_dirichlet_draws_survive_tiny_concentrations():
    rng = np.random.default_rng(4)
    alpha = np.array([[1e-6, 3e-6, 0.0, 6e-6], [2.0, 0.3, 0.0, 5.0]])
    log_theta = log_dirichlet_draws(alpha, 40_000, rng)
    theta = np.exp(log_theta)
    assert not np.isnan(log_theta).any()
    np.testing.assert_allclose(theta.sum(axis=2), 1.0)
    assert np.all(theta[:, :, 2] == 0.0)
    np.testing.assert_allclose(theta.mean(axis=0), alpha / alpha.sum(1, keepdims=True), atol=0.01)


def test_monte_carlo_needs_two_draws():
    with pytest.raises(ValueError, match="at least 2 draws"):
        monte_carlo_uncertainty(np.ones((1, 2)), 1, np.random.default_rng(0))


# Within-bin part.


def test_within_bin_entropy_in_resolution_steps():
    codec = ColumnCodec(ColumnSpec("x", "numerical", decimal_places=2), n_bins=4)
    values = np.concatenate([np.linspace(0.0, 100.0, 4001), np.zeros(3000), [np.nan]])
    codec.fit(values)
    entropy = within_bin_entropy(codec)
    knots = codec.encoder.knots_
    n_pieces = knots.shape[1] - 1
    assert codec.decimal_places_ == 2
    assert len(entropy) == codec.n_states
    assert entropy[codec.encoder.missing_state] == 0.0
    for state in range(codec.encoder.n_value_states):
        widths = np.diff(knots[state])
        expected = np.mean([np.log(max(n_pieces * w / 0.01, 1.0)) for w in widths])
        assert entropy[state] == pytest.approx(expected)
        if knots[state, 0] == knots[state, -1]:
            assert entropy[state] == 0.0  # the spike at zero
        else:
            # A uniform bin of width W holds about W / 0.01 values: entropy near log(W / 0.01).
            width = knots[state, -1] - knots[state, 0]
            assert entropy[state] == pytest.approx(np.log(width / 0.01), abs=0.05)


def test_categorical_columns_have_no_within_bin_part():
    codec = ColumnCodec(ColumnSpec("c", "categorical")).fit(np.array(["a", "b", None], object))
    np.testing.assert_array_equal(within_bin_entropy(codec), np.zeros(3))


# Routing rows, unseen values, truncation.


def test_row_scores_gather_the_leaf_figures_like_a_slow_walk():
    rng = np.random.default_rng(5)
    tree = small_tree()
    states = np.column_stack(
        [rng.integers(-1, 3, 200), rng.integers(0, 3, 200), rng.integers(-1, 2, 200)]
    ).astype(np.int32)
    trees = [root_tree([5.0, 3.0, 1.0]), tree, root_tree([4.0, 4.0])]
    within = [None, np.array([0.0, 1.5, 2.0]), None]
    scores = score_states([leaf_table(t, w) for t, w in zip(trees, within, strict=True)], states)

    for row in range(len(states)):
        leaf = walk(tree, states[row])
        alpha = tree.prior if leaf is None else tree.prior + tree.leaf_counts[leaf]
        expected = direct_figures(alpha, within[1])
        for name, value in zip(FIGURES, expected, strict=True):
            assert getattr(scores, name)[row, 1] == pytest.approx(value, rel=1e-10)

    np.testing.assert_array_equal(scores.unseen, states < 0)
    root = direct_figures(np.array([5.0, 3.0, 1.0]) + 1 / 3)
    np.testing.assert_allclose(scores.epistemic[:, 0], root[2])
    np.testing.assert_allclose(scores.row_figures().total, scores.total.sum(axis=1))


def test_unseen_parent_gets_the_prior_only_where_its_test_is_reached():
    tree = small_tree()
    table = leaf_table(tree)
    # Row 0: column 0 unseen, tested at the root. Row 1: column 2 unseen but column 0 = 2 sends
    # the row right before column 2 is tested. Row 2: column 2 unseen and tested.
    states = np.array([[-1, 0, 0], [2, 0, -1], [0, 0, -1]], dtype=np.int32)
    scores = score_states(
        [leaf_table(root_tree([1.0, 1.0, 1.0])), table, leaf_table(root_tree([1.0, 1.0]))], states
    )
    prior = dirichlet_uncertainty(tree.prior[None, :])
    assert scores.epistemic[0, 1] == pytest.approx(prior.epistemic[0])
    assert scores.epistemic[1, 1] == pytest.approx(table.leaf_figures[2, 0])
    assert scores.epistemic[2, 1] == pytest.approx(prior.epistemic[0])
    # The prior-only answer is the most uncertain the tree gives.
    assert prior.epistemic[0] > table.leaf_figures[2].max()


def test_truncation_mask_restricts_the_leaf_dirichlet():
    tree = small_tree()
    states = np.array([[2, 0, 0], [2, 0, 0], [0, 0, 1], [-1, 0, 0]], dtype=np.int32)
    mask = np.array(
        [[True, True, True], [False, True, True], [True, False, True], [True, True, False]]
    )
    within = np.array([0.0, 1.0, 3.0])
    tables = [
        leaf_table(root_tree([1.0, 1.0, 1.0])),
        leaf_table(tree, within),
        leaf_table(root_tree([1.0, 1.0])),
    ]
    masked = score_states(tables, states, allowed={1: mask})
    plain = score_states(tables, states)

    np.testing.assert_allclose(masked.total[0], plain.total[0])
    for row in range(1, 4):
        leaf = walk(tree, states[row])
        alpha = tree.prior if leaf is None else tree.prior + tree.leaf_counts[leaf]
        expected = direct_figures(alpha * mask[row], within)
        for name, value in zip(FIGURES, expected, strict=True):
            assert getattr(masked, name)[row, 1] == pytest.approx(value, rel=1e-10)


def test_truncated_monte_carlo_of_the_full_dirichlet_matches_the_restricted_closed_form():
    # Draw theta from the whole leaf Dirichlet, keep the allowed states, renormalise: that is
    # what truncated sampling does; its figures must be those of the restricted Dirichlet.
    rng = np.random.default_rng(6)
    alpha = np.array([0.4, 2.0, 0.05, 7.0, 1.5])
    allowed = np.array([True, False, True, True, False])
    theta = np.exp(log_dirichlet_draws(alpha[None, :], 60_000, rng))[:, 0, allowed]
    theta /= theta.sum(axis=1, keepdims=True)
    entropy = -np.sum(theta * np.log(theta), axis=1)
    exact = dirichlet_uncertainty((alpha * allowed)[None, :])
    assert entropy.mean() == pytest.approx(exact.aleatoric[0], abs=4 * entropy.std() / 245)


def test_mask_with_no_allowed_state_gives_nan():
    table = leaf_table(root_tree([3.0, 1.0]))
    states = np.zeros((2, 1), dtype=np.int32)
    scores = score_states([table], states, allowed={0: np.array([[True, False], [False, False]])})
    assert np.isfinite(scores.total[0, 0])
    assert np.isnan(scores.total[1, 0])


def test_encode_for_scoring_flags_values_never_seen():
    codecs = [
        ColumnCodec(ColumnSpec("c", "categorical")).fit(np.array(["a", "b", "a"], object)),
        ColumnCodec(ColumnSpec("n", "categorical")).fit(np.array(["a", None, "b"], object)),
        ColumnCodec(ColumnSpec("x", "numerical")).fit(np.array([1.0, 2.0, 2.5, 4.0])),
        ColumnCodec(ColumnSpec("d", "datetime")).fit(
            np.array(["2020-01-01", "2020-02-01", "2020-03-01"], object)
        ),
    ]
    columns = {
        "c": np.array(["a", "zzz", None, "b", "a", "b"], object),
        "n": np.array([None, "a", "b", "q", "a", None], object),
        "x": np.array([1.0, 4.0, np.nan, 4.5, np.inf, 0.0], object),
        "d": np.array(["2020-01-15", "2020-03-01", "2019-12-31", "garbage", None, "2020-02-02"]),
    }
    states, unseen = encode_for_scoring(codecs, columns)
    expected = np.array(
        [
            [False, False, False, False],
            [True, False, False, False],
            [True, False, True, True],
            [False, True, True, True],
            [False, False, True, True],
            [False, False, True, False],
        ]
    )
    np.testing.assert_array_equal(unseen, expected)
    np.testing.assert_array_equal(states[unseen], UNKNOWN_STATE)
    assert states[0, 1] == codecs[1].encoder.missing_state


# The fitted model: scoring raw rows, and epistemic uncertainty against the amount of data.


def toy_table(n_rows, seed):
    """Three dependent columns: a category, a number depending on it, a flag on both."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b", "c", "rare"], size=n_rows, p=[0.5, 0.3, 0.19, 0.01])
    shift = pd.Series(group).map({"a": 0.0, "b": 5.0, "c": 10.0, "rare": 20.0}).to_numpy()
    amount = np.round(shift + rng.normal(size=n_rows), 2)
    flag = np.where(amount > 4.0, rng.random(n_rows) < 0.8, rng.random(n_rows) < 0.2)
    return {"group": group.astype(object), "amount": amount, "flag": flag.astype(object)}


TOY_SPECS = [
    ColumnSpec("group", "categorical"),
    ColumnSpec("amount", "numerical"),
    ColumnSpec("flag", "categorical"),
]


def fit_toy(n_rows, seed=0):
    return JanusModel(min_samples_leaf=5).fit(toy_table(n_rows, seed), TOY_SPECS)


def test_epistemic_shrinks_as_training_rows_grow():
    scored = toy_table(2000, seed=99)
    means = [
        fit_toy(n_rows).uncertainty(scored).row_figures().epistemic.mean()
        for n_rows in [200, 2000, 20_000]
    ]
    assert means[0] > means[1] > means[2] > 0
    assert means[2] < means[0] / 10


def test_model_scores_raw_rows_and_flags_unseen_values():
    model = fit_toy(3000)
    rows = {
        "group": np.array(["a", "atlantis", "rare", "a"], object),
        "amount": np.array([0.5, 0.5, 20.0, 1e9]),
        "flag": np.array([True, False, True, None], object),
    }
    scores = model.uncertainty(rows)
    np.testing.assert_array_equal(
        scores.unseen,
        [[False] * 3, [True, False, False], [False] * 3, [False, True, True]],
    )
    assert np.isfinite(scores.total).all()
    assert scores.total.shape == (4, 3)
    assert scores.row_figures().epistemic[2] > scores.row_figures().epistemic[0]
