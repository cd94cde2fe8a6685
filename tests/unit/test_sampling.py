import itertools

import networkx as nx
import numpy as np
import pytest

from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine.rules import AllowedTuples


def small_network_data(n_rows, seed):
    """A -> B -> C over three categories each, with C's evidence informative about A."""
    rng = np.random.default_rng(seed)
    a = rng.choice(["a0", "a1", "a2"], size=n_rows, p=[0.6, 0.3, 0.1])
    shift = {"a0": 0, "a1": 1, "a2": 2}
    b_index = (np.vectorize(shift.get)(a) + (rng.random(n_rows) < 0.3)) % 3
    c_index = np.where(rng.random(n_rows) < 0.8, b_index, rng.integers(0, 3, size=n_rows))
    return {
        "A": a,
        "B": np.array(["b0", "b1", "b2"], dtype=object)[b_index],
        "C": np.array(["c0", "c1", "c2"], dtype=object)[c_index],
    }


def fitted_network(seed=0):
    columns = small_network_data(20000, seed)
    graph = nx.DiGraph([("A", "B"), ("B", "C")])
    specs = [ColumnSpec(name, "categorical") for name in columns]
    return JanusModel(graph=graph).fit(columns, specs)


def exact_joint(model):
    """Probability of every joint state under the fitted trees, by enumeration."""
    configurations = np.array(list(itertools.product(*map(range, model.n_states_))), np.int32)
    probability = np.ones(len(configurations))
    for column, tree in enumerate(model.trees_):
        leaves = tree.leaves_of(configurations)
        probability *= tree.predictive()[leaves, configurations[:, column]]

    return configurations, probability


def total_variation(sampled_states, configurations, probability, column, n_states):
    empirical = np.bincount(sampled_states, minlength=n_states) / len(sampled_states)
    exact = np.bincount(configurations[:, column], weights=probability, minlength=n_states)
    return 0.5 * np.abs(empirical - exact / exact.sum()).sum()


def test_forward_sampling_follows_the_model():
    model = fitted_network()
    model.set_random_state(1)
    configurations, probability = exact_joint(model)
    drawn = model.encode(model.sample(20000))
    for column in range(3):
        distance = total_variation(drawn[:, column], configurations, probability, column, 3)
        assert distance < 0.02


@pytest.mark.parametrize("condition", ["c2", "c1"])
def test_upstream_column_follows_exact_posterior_given_downstream_condition(condition):
    model = fitted_network()
    model.set_random_state(2)
    configurations, probability = exact_joint(model)
    condition_state = model.condition_states({"C": condition})[2]
    given = configurations[:, 2] == condition_state

    drawn = model.encode(model.sample(20000, {"C": condition}))
    assert np.all(drawn[:, 2] == condition_state)
    distance = total_variation(drawn[:, 0], configurations[given], probability[given], 0, 3)
    assert distance < 0.02

    # The unconditional marginal of A is far from the posterior, so the test has power.
    prior_distance = total_variation(drawn[:, 0], configurations, probability, 0, 3)
    assert prior_distance > 0.1


def test_same_seed_same_rows():
    model = fitted_network()
    model.set_random_state(7)
    first = model.sample(500)
    model.set_random_state(7)
    second = model.sample(500)
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_rare_condition_under_constraints_follows_exact_posterior():
    """With rules attached, conditioning goes through the constrained sampler's weights."""
    rng = np.random.default_rng(5)
    n_rows = 40000
    a = rng.choice(["a0", "a1", "a2"], size=n_rows, p=[0.9, 0.07, 0.03])
    b_index = np.where(rng.random(n_rows) < 0.9, np.char.replace(a, "a", "").astype(int), 0)
    b_index = np.where(rng.random(n_rows) < 0.05, rng.integers(0, 3, n_rows), b_index)
    # 'rare' appears in about 2% of rows, mostly where B is b2.
    rare_share = np.array([0.0005, 0.02, 0.3])[b_index]
    columns = {
        "A": a,
        "B": np.array(["b0", "b1", "b2"], dtype=object)[b_index],
        "C": np.where(rng.random(n_rows) < rare_share, "rare", "common").astype(object),
    }
    graph = nx.DiGraph([("A", "B"), ("B", "C")])
    specs = [ColumnSpec(name, "categorical") for name in columns]
    rule = AllowedTuples(("A", "B"), None, "A and B as seen")
    model = JanusModel(graph=graph).fit(columns, specs, [rule])
    model.set_random_state(6)
    configurations, probability = exact_joint(model)
    allowed = np.isin(configurations[:, 0] * 3 + configurations[:, 1], _seen_pairs(model, columns))
    condition_state = model.condition_states({"C": "rare"})[2]
    given = allowed & (configurations[:, 2] == condition_state)

    drawn = model.encode(model.sample(20000, {"C": "rare"}))
    assert np.all(drawn[:, 2] == condition_state)
    distance = total_variation(drawn[:, 0], configurations[given], probability[given], 0, 3)
    assert distance < 0.02
    prior_distance = total_variation(drawn[:, 0], configurations, probability, 0, 3)
    assert prior_distance > 0.1


def _seen_pairs(model, columns):
    """Keys ``3 * state of A + state of B`` of the pairs seen in training."""
    states = model.encode(columns)
    return np.unique(states[:, 0].astype(int) * 3 + states[:, 1])
