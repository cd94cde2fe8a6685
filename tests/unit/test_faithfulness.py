"""Constrained output follows the model restricted to the feasible set, not a clamped copy."""

import networkx as nx
import numpy as np

from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine._kernels import interval_mass
from sdv_janus.engine.rules import Linear


def test_parent_follows_exact_posterior_given_the_rule():
    rng = np.random.default_rng(0)
    parent = rng.choice(["roomy", "tight"], size=20000)
    # Under the rule value <= 50, 'roomy' rows keep half their mass, 'tight' rows a sixth.
    value = np.where(parent == "roomy", rng.uniform(0, 100, 20000), rng.uniform(40, 100, 20000))
    columns = {"parent": parent, "value": value}
    specs = [ColumnSpec("parent", "categorical"), ColumnSpec("value", "numerical")]
    rule = Linear((("value", -1.0),), 50.0, False, "value <= 50")
    model = JanusModel(graph=nx.DiGraph([("parent", "value")])).fit(columns, specs, [rule])

    # Exact: P(parent | rule) is proportional to P(parent) times the mass its leaf keeps.
    parent_tree, value_tree = model.trees_
    prior = parent_tree.predictive()[0]
    states = np.array([[0, 0], [1, 0]], dtype=np.int32)
    leaf_distribution = value_tree.predictive()[value_tree.leaves_of(states)]
    knots = model.codecs_[1].encoder.knots_
    inside = interval_mass(
        knots,
        np.full(2, -np.inf),
        np.full(2, 50.0),
        np.zeros(2, bool),
        np.zeros(2, bool),
        leaf_distribution.shape[1],
    )
    kept = (leaf_distribution * inside).sum(axis=1)
    exact = prior * kept / np.sum(prior * kept)
    assert abs(exact[0] - prior[0]) > 0.15  # truncation alone would be far off

    model.set_random_state(1)
    sampled = model.sample(20000)
    assert np.all(sampled["value"] <= 50)
    empirical = np.array(
        [np.mean(sampled["parent"] == "roomy"), np.mean(sampled["parent"] == "tight")]
    )
    assert 0.5 * np.abs(empirical - exact).sum() < 0.02
