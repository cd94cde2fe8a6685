"""Constrained output follows the model restricted to the feasible set, not a clamped copy."""

import networkx as nx
import numpy as np

from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine._kernels import draw_inside_interval, interval_mass
from sdv_janus.engine.rules import AllOf, AnyOf, Linear, Not


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


def test_atom_at_an_included_bound_keeps_its_mass():
    # Knots of one value state: a quarter of its mass below 17, half on the atom 17 itself.
    knots = np.array([[16.0, 17.0, 17.0, 17.0, 18.0]])
    ends = [(17.0, np.inf, False), (17.0, np.inf, True), (17.0, 17.0, False), (-np.inf, 17.0, True)]
    masses = [
        interval_mass(
            knots,
            np.array([low]),
            np.array([high]),
            np.array([strict]),
            np.array([strict]),
            1,
        )[0, 0]
        for low, high, strict in ends
    ]
    np.testing.assert_allclose(masses, [0.75, 0.25, 0.5, 0.25])

    uniforms = np.random.default_rng(0).random(30000)
    n = len(uniforms)
    values = draw_inside_interval(
        knots,
        np.zeros(n, np.int32),
        np.full(n, 17.0),
        np.full(n, np.inf),
        np.zeros(n, bool),
        np.zeros(n, bool),
        uniforms,
    )
    assert np.all(values >= 17.0)
    assert abs(np.mean(values == 17.0) - 2 / 3) < 0.01


def test_lower_bound_at_the_training_minimum_changes_nothing():
    rng = np.random.default_rng(3)
    # An integer column binned with several values per bin, each value an atom, like ages.
    age = rng.integers(17, 91, 20000).astype(float)
    group = np.where(age < 25, "young", "older")
    group = np.where(rng.random(20000) < 0.1, "older", group)
    columns = {"group": group, "age": age}
    specs = [ColumnSpec("group", "categorical"), ColumnSpec("age", "numerical")]
    graph = nx.DiGraph([("group", "age")])
    rule = Linear((("age", 1.0),), -17.0, False, "age >= 17")
    bare = JanusModel(graph=graph).fit(columns, specs)
    bounded = JanusModel(graph=graph).fit(columns, specs, [rule])

    bare.set_random_state(4)
    bounded.set_random_state(5)
    free, kept = bare.sample(40000), bounded.sample(40000)
    assert np.mean(free["age"] == 17) > 0.01
    assert abs(np.mean(kept["age"] == 17) - np.mean(free["age"] == 17)) < 0.004
    assert abs(np.mean(kept["group"] == "young") - np.mean(free["group"] == "young")) < 0.01


def test_alternatives_follow_the_model_restricted_to_their_union():
    rng = np.random.default_rng(7)
    n = 20000
    parent = rng.choice(["low", "high"], size=n, p=[0.7, 0.3])
    x = np.where(parent == "high", rng.uniform(30, 100, n), rng.uniform(0, 70, n))
    y = np.where(x > 50, rng.uniform(0, 60, n), rng.uniform(10, 100, n))
    columns = {"parent": parent, "x": x, "y": y}
    specs = [
        ColumnSpec("parent", "categorical"),
        ColumnSpec("x", "numerical"),
        ColumnSpec("y", "numerical"),
    ]
    graph = nx.DiGraph([("parent", "x"), ("x", "y")])
    # if x > 50 then y <= 20: the two cases hold very different shares of the model's mass.
    big_x = Linear((("x", 1.0),), -50.0, True, "x > 50")
    small_y = Linear((("y", -1.0),), 20.0, False, "y <= 20")
    rule = AnyOf((Not(big_x), small_y))
    bare = JanusModel(graph=graph).fit(columns, specs)
    ruled = JanusModel(graph=graph).fit(columns, specs, [rule])

    bare.set_random_state(8)
    free = bare.sample(400000)
    holds = (free["x"] <= 50) | (free["y"] <= 20)
    reference = {name: values[holds] for name, values in free.items()}
    assert 0.3 < holds.mean() < 0.9

    ruled.set_random_state(9)
    kept = ruled.sample(20000)
    assert np.all((kept["x"] <= 50) | (kept["y"] <= 20))
    share = lambda sample: np.mean(sample["parent"] == "high")  # noqa: E731
    assert abs(share(kept) - share(reference)) < 0.02
    bins = np.linspace(0, 100, 11)
    for name in ("x", "y"):
        expected = np.histogram(reference[name], bins)[0] / len(reference[name])
        observed = np.histogram(kept[name], bins)[0] / len(kept[name])
        assert 0.5 * np.abs(observed - expected).sum() < 0.02


def test_bounds_that_admit_every_training_value_leave_the_column_uncut():
    rng = np.random.default_rng(4)
    parent = rng.choice(["a", "b"], size=5000)
    value = np.where(parent == "a", rng.uniform(10, 20, 5000), rng.uniform(15, 30, 5000))
    columns = {"parent": parent, "value": value}
    specs = [ColumnSpec("parent", "categorical"), ColumnSpec("value", "numerical")]
    graph = nx.DiGraph([("parent", "value")])
    loose = Linear((("value", 1.0),), -5.0, False, "value >= 5")
    binding = Linear((("value", 1.0),), -18.0, False, "value >= 18")

    loose_model = JanusModel(graph=graph).fit(columns, specs, [loose])
    binding_model = JanusModel(graph=graph).fit(columns, specs, [binding])

    assert loose_model._constrained_sampler.constrained == set()
    assert loose_model._constrained_sampler.needed == set()
    assert binding_model._constrained_sampler.constrained == {1}
    binding_model.set_random_state(0)
    assert np.all(binding_model.sample(5000)["value"] >= 18)


def _tight_and_roomy_rows(rng, n_rows):
    """x <= y on every row: 'tight' rows put y just above x, 'roomy' rows far above it."""
    parent = rng.choice(["tight", "roomy"], size=n_rows)
    x = np.where(parent == "tight", rng.uniform(0, 100, n_rows), rng.uniform(0, 40, n_rows))
    gap = np.where(parent == "tight", rng.uniform(0, 0.5, n_rows), rng.uniform(60, 80, n_rows))
    return {"parent": parent, "x": x, "y": x + gap}


def test_rule_every_training_row_meets_does_not_reweight_the_parent():
    columns = _tight_and_roomy_rows(np.random.default_rng(11), 20000)
    specs = [
        ColumnSpec("parent", "categorical"),
        ColumnSpec("x", "numerical"),
        ColumnSpec("y", "numerical"),
    ]
    graph = nx.DiGraph([("parent", "x"), ("parent", "y"), ("x", "y")])
    rule = Linear((("y", 1.0), ("x", -1.0)), 0.0, False, "x <= y")
    bare = JanusModel(graph=graph).fit(columns, specs)
    confirmed = JanusModel(graph=graph).fit(columns, specs, [rule])
    assert confirmed.rules_true_in_training_ == {"x <= y"}

    bare.set_random_state(12)
    free = bare.sample(40000)
    tight = free["parent"] == "tight"
    assert np.mean(free["x"][tight] > free["y"][tight]) > 0.1  # the model's own error

    share = lambda sample: np.mean(sample["parent"] == "tight")  # noqa: E731
    confirmed.set_random_state(13)
    kept = confirmed.sample(20000)
    assert np.all(kept["x"] <= kept["y"])
    assert abs(share(kept) - share(free)) < 0.02

    # Given only at sampling time, the rule is not known to hold on the training rows: the
    # parent is weighted by the mass its child keeps, and 'tight' loses share.
    weighted = bare.sample(20000, constraints=[rule])
    assert np.all(weighted["x"] <= weighted["y"])
    assert share(free) - share(weighted) > 0.05


def test_confirmed_alternatives_keep_the_share_of_each_case():
    rng = np.random.default_rng(21)
    n = 20000
    # Zeros mean 'not measured', as in diabetes: y is measured only where x is.
    x = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(1, 50, n))
    y = np.where((x == 0) | (rng.random(n) < 0.3), 0.0, rng.uniform(1, 100, n))
    columns = {"x": x, "y": y}
    specs = [ColumnSpec("x", "numerical"), ColumnSpec("y", "numerical")]
    graph = nx.DiGraph([("x", "y")])
    # if y > 0 then x > 0: the cases 'y <= 0' (any x) and 'x > 0' overlap on x.
    measured = Linear((("y", -1.0),), 0.0, False, "y measured means x measured")
    rule = AnyOf((measured, Linear((("x", 1.0),), 0.0, True, "y measured means x measured")))
    bare = JanusModel(graph=graph).fit(columns, specs)
    confirmed = JanusModel(graph=graph).fit(columns, specs, [rule])
    assert confirmed.rules_true_in_training_ == {"y measured means x measured"}

    bare.set_random_state(22)
    confirmed.set_random_state(23)
    free, kept = bare.sample(20000), confirmed.sample(20000)
    assert np.all((kept["y"] <= 0) | (kept["x"] > 0))
    for name in ("x", "y"):
        assert abs(np.mean(kept[name] == 0) - np.mean(free[name] == 0)) < 0.01


def test_confirmed_cases_that_overlap_on_a_column_draw_it_once():
    rng = np.random.default_rng(31)
    n = 20000
    x = rng.uniform(0, 100, n)
    y = np.where(x < 40, rng.uniform(50, 100, n), rng.uniform(0, 100, n))
    y = np.where(x > 60, rng.uniform(0, 50, n), y)
    columns = {"x": x, "y": y}
    specs = [ColumnSpec("x", "numerical"), ColumnSpec("y", "numerical")]
    graph = nx.DiGraph([("x", "y")])
    name = "high y keeps x low, low y keeps x high"
    high_y = Linear((("y", 1.0),), -50.0, False, name)
    rule = AnyOf(
        (
            AllOf((high_y, Linear((("x", -1.0),), 60.0, False, name))),
            AllOf((high_y.negate(), Linear((("x", 1.0),), -40.0, False, name))),
        )
    )
    bare = JanusModel(graph=graph).fit(columns, specs)
    confirmed = JanusModel(graph=graph).fit(columns, specs, [rule])
    assert confirmed.rules_true_in_training_ == {name}

    bare.set_random_state(32)
    confirmed.set_random_state(33)
    free, kept = bare.sample(40000), confirmed.sample(20000)
    assert np.all(np.where(kept["y"] >= 50, kept["x"] <= 60, kept["x"] >= 40))
    # x in [40, 60] lies in both cases' cuts; it must not be drawn twice as often.
    bins = np.linspace(0, 100, 11)
    expected = np.histogram(free["x"], bins)[0] / len(free["x"])
    observed = np.histogram(kept["x"], bins)[0] / len(kept["x"])
    assert 0.5 * np.abs(observed - expected).sum() < 0.02
