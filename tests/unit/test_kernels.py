import numpy as np

from sdv_janus.engine._kernels import draw_states, route_rows, stratified_uniforms
from sdv_janus.engine.trees import TreeSettings, grow_tree


def route_slowly(tree, row):
    node = 0
    while tree.feature[node] >= 0:
        state = row[tree.feature[node]]
        goes_left = tree.go_left[tree.mask_offset[node] + state]
        node = tree.left[node] if goes_left else tree.right[node]

    return tree.leaf_of_node[node]


def test_route_rows_matches_a_python_walk():
    rng = np.random.default_rng(0)
    states = rng.integers(0, 5, size=(3000, 3)).astype(np.int32)
    states[:, 2] = (states[:, 0] + states[:, 1] * (rng.random(3000) < 0.7)) % 5
    tree = grow_tree(states, 2, [0, 1], [5, 5, 5], [True, False, False], TreeSettings())
    assert tree.n_leaves > 2
    fast = route_rows(
        states,
        tree.feature,
        tree.left,
        tree.right,
        tree.mask_offset,
        tree.go_left,
        tree.leaf_of_node,
    )
    np.testing.assert_array_equal(fast, [route_slowly(tree, row) for row in states])


def test_draw_states_inverts_the_cumulative_distribution():
    rng = np.random.default_rng(1)
    probabilities = rng.dirichlet(np.ones(7), size=4)
    probabilities[1, 3] = 0.0
    cumulative = np.cumsum(probabilities, axis=1)
    rows = rng.integers(0, 4, size=5000).astype(np.int32)
    uniforms = rng.random(5000)
    expected = [
        np.searchsorted(cumulative[r], u * cumulative[r, -1], side="right")
        for r, u in zip(rows, uniforms)
    ]
    drawn = draw_states(cumulative, rows, uniforms)
    np.testing.assert_array_equal(drawn, expected)
    assert not np.any((rows == 1) & (drawn == 3))


def test_stratified_uniforms_put_one_draw_in_each_stratum():
    rng = np.random.default_rng(2)
    groups = rng.integers(0, 5, size=1000).astype(np.int32)
    uniforms = stratified_uniforms(groups, 5, rng.random(1000), rng.random(1000))
    for group in range(5):
        members = uniforms[groups == group]
        strata = np.floor(members * len(members)).astype(int)
        np.testing.assert_array_equal(np.sort(strata), np.arange(len(members)))


def test_stratified_uniforms_assign_strata_by_a_uniform_permutation():
    """Every order of a group's strata over its rows is equally likely (Fisher-Yates)."""
    rng = np.random.default_rng(3)
    groups = np.array([1, 0, 1, 1, 0], dtype=np.int8)
    orders = []
    for _ in range(6000):
        uniforms = stratified_uniforms(groups, 2, rng.random(5), rng.random(5))
        orders.append(tuple(np.floor(uniforms[groups == 1] * 3).astype(int)))

    _, counts = np.unique(orders, axis=0, return_counts=True)
    assert len(counts) == 6
    np.testing.assert_allclose(counts / 6000, 1 / 6, atol=0.02)
