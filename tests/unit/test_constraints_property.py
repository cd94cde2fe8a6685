"""Property tests: random feasible rule sets over random tables; every sampled row is checked."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sdv_janus.constraints import holds
from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine.feasibility import InfeasibleConstraintsError
from sdv_janus.engine.model import rule_names
from sdv_janus.engine.rules import AllOf, AllowedTuples, AnyOf, InSet, Linear

ROWS_PER_EXAMPLE = 2500
ROWS_CHECKED = []


def random_table(rng, n_columns, n_rows=600):
    """Numeric columns with shared ancestors, some integer, plus two categorical columns."""
    base = rng.normal(size=n_rows)
    columns = {}
    for index in range(n_columns):
        values = base * rng.uniform(-2, 2) + rng.gamma(2.0, size=n_rows) * rng.uniform(0.5, 3)
        if rng.random() < 0.5:
            values = np.round(values * 10)
        columns[f"x{index}"] = values

    columns["group"] = rng.choice(["a", "b", "c"], size=n_rows, p=[0.5, 0.3, 0.2])
    columns["kind"] = np.where(columns["group"] == "a", rng.choice(["k1", "k2"], n_rows), "k3")
    return pd.DataFrame(columns)


def is_integer(frame, name):
    return bool(np.all(frame[name] == np.round(frame[name])))


def rule_that_holds(rng, frame, names, label, strict):
    """A random linear rule over ``names`` that every training row satisfies.

    Rules over integer columns get coefficients of +1 and -1, where back-filling is exact on
    the integers (see the feasibility module); rules over real columns get any coefficients.
    """
    if any(is_integer(frame, name) for name in names):
        coefficients = rng.choice([-1.0, 1.0], size=len(names))
    else:
        coefficients = rng.choice([-2.0, -1.0, -0.5, 0.5, 1.0, 3.0], size=len(names))

    total = sum(c * frame[n] for c, n in zip(coefficients, names))
    slack = 1e-6 if strict else 0.0
    constant = -float(total.min()) + slack
    return Linear(tuple(zip(names, coefficients)), constant, strict, label)


@st.composite
def scenarios(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_columns = draw(st.integers(2, 6))
    frame = random_table(rng, n_columns)
    numeric = [f"x{i}" for i in range(n_columns)]
    rules = []

    # A chain x0 <= x1 <= ... over sorted values, so that it holds on every row.
    chain_length = draw(st.integers(0, n_columns))
    if chain_length >= 2:
        chain = numeric[:chain_length]
        frame[chain] = np.sort(frame[chain].to_numpy(), axis=1)
        for low, high in zip(chain, chain[1:]):
            rules.append(Linear(((high, 1.0), (low, -1.0)), 0.0, False, f"{low} <= {high}"))

    if draw(st.booleans()):
        # An equality: a total column is the sum of two others of the same kind (integers are
        # only exact when every column of an equality is an integer).
        first, second = numeric[0], numeric[1]
        if is_integer(frame, first) != is_integer(frame, second):
            frame[second] = (
                np.round(frame[second])
                if is_integer(frame, first)
                else frame[second] + 0.5 * rng.random(len(frame))
            )

        frame["total"] = frame[first] + frame[second]
        numeric.append("total")
        terms = (("total", 1.0), (first, -1.0), (second, -1.0))
        rules.append(
            AllOf(
                (
                    Linear(terms, 0.0, False, "total == sum"),
                    Linear(
                        tuple((name, -value) for name, value in terms), 0.0, False, "total == sum"
                    ),
                )
            )
        )

    for index in range(draw(st.integers(0, 3))):
        size = draw(st.integers(1, min(3, n_columns)))
        names = list(rng.choice(numeric, size=size, replace=False))
        rules.append(rule_that_holds(rng, frame, names, f"linear {index}", draw(st.booleans())))

    if draw(st.booleans()):
        rules.append(AllowedTuples(("group", "kind"), None, "group and kind"))

    if draw(st.booleans()):
        column = numeric[-1]
        threshold = float(frame.loc[frame["group"] == "c", column].min())
        rules.append(
            AnyOf(
                (
                    InSet("group", ("c",), "implication", negated=True),
                    Linear(((column, 1.0),), -threshold, False, "implication"),
                )
            )
        )

    conditions = {}
    if draw(st.booleans()):
        conditions["group"] = draw(st.sampled_from(["a", "b", "c"]))

    return frame, rules, conditions, seed


def fit(frame, rules, seed):
    specs = [
        ColumnSpec(name, "categorical" if frame[name].dtype == object else "numerical")
        for name in frame.columns
    ]
    model = JanusModel(min_samples_leaf=5).fit(
        {c: frame[c].to_numpy() for c in frame}, specs, rules
    )
    model.set_random_state(seed)
    return model


def assert_every_row_holds(frame, rules, sampled):
    for rule in rules:
        training = frame if not isinstance(rule, AllowedTuples) else None
        resolved = rule
        if isinstance(rule, AllowedTuples):
            seen = set(map(tuple, frame[list(rule.columns)].itertuples(index=False, name=None)))
            resolved = AllowedTuples(rule.columns, tuple(seen), rule.name)

        assert training is None or holds(resolved, frame).all()
        valid = holds(resolved, sampled)
        assert valid.all(), (rule, sampled[~valid].head())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_every_sampled_row_satisfies_every_rule(scenario):
    frame, rules, conditions, seed = scenario
    model = fit(frame, rules, seed)
    # Every rule holds on the training rows, and the engine reads them the same way.
    assert model.rules_true_in_training_ == {name for rule in rules for name in rule_names(rule)}
    sampled = pd.DataFrame(model.sample(ROWS_PER_EXAMPLE, conditions))

    assert len(sampled) == ROWS_PER_EXAMPLE
    assert_every_row_holds(frame, rules, sampled)
    for name in frame.columns:
        if frame[name].dtype != object and is_integer(frame, name):
            assert is_integer(sampled, name), name

    for name, value in conditions.items():
        assert (sampled[name] == value).all()

    ROWS_CHECKED.append(len(sampled))


def test_property_run_checked_enough_rows():
    """Runs after the property test (file order): at least 10^5 rows were checked."""
    assert sum(ROWS_CHECKED) >= 100_000


def test_cycle_of_rules_is_infeasible_and_named():
    rules = [
        Linear((("b", 1.0), ("a", -1.0)), 0.0, False, "a <= b"),
        Linear((("c", 1.0), ("b", -1.0)), 0.0, False, "b <= c"),
        Linear((("a", 1.0), ("c", -1.0)), 0.0, True, "c < a"),
    ]
    with pytest.raises(InfeasibleConstraintsError) as raised:
        JanusModel.check_feasible(rules)

    assert raised.value.conflicting == {"a <= b", "b <= c", "c < a"}


def test_condition_outside_the_rules_is_infeasible_before_sampling():
    rng = np.random.default_rng(0)
    frame = random_table(rng, 2)
    frame[["x0", "x1"]] = np.sort(frame[["x0", "x1"]].to_numpy(), axis=1)
    rule = Linear((("x1", 1.0), ("x0", -1.0)), 0.0, False, "x0 <= x1")
    model = fit(frame, [rule], 0)
    high_x0, low_x1 = float(frame["x0"].max()), float(frame["x1"].min())
    assert high_x0 > low_x1
    with pytest.raises(InfeasibleConstraintsError, match="x0 <= x1") as raised:
        model.sample(10, {"x1": low_x1, "x0": high_x0})

    assert "condition" in str(raised.value)


def test_constrained_rows_are_drawn_once_each():
    """The engine returns exactly what it is asked for: no reject loop above it."""
    rng = np.random.default_rng(1)
    frame = random_table(rng, 3)
    rule = rule_that_holds(rng, frame, ["x0", "x2"], "rule", False)
    model = fit(frame, [rule], 1)
    assert len(pd.DataFrame(model.sample(777))) == 777


def test_bound_and_condition_on_a_column_inside_a_table_of_combinations():
    """A count column in fixed combinations can also carry a bound and a condition."""
    rng = np.random.default_rng(3)
    quality = rng.integers(3, 10, 3000).astype(float)
    kind = np.where(quality > 7, "white", "red")
    columns = {"kind": kind, "quality": quality}
    specs = [ColumnSpec("kind", "categorical"), ColumnSpec("quality", "numerical")]
    rules = [
        AllowedTuples(("kind", "quality"), None, "combinations"),
        Linear((("quality", 1.0),), -4.0, False, "quality >= 4"),
    ]
    model = JanusModel().fit(columns, specs, rules)
    model.set_random_state(0)

    sampled = pd.DataFrame(model.sample(2000))
    assert sampled["quality"].min() >= 4
    assert set(zip(sampled["kind"], sampled["quality"])) <= set(zip(kind, quality))
    conditioned = pd.DataFrame(model.sample(500, {"quality": 8.0}))
    assert (conditioned["quality"] == 8.0).all() and (conditioned["kind"] == "white").all()


def test_identity_total_is_drawn_after_its_parts():
    """``total == fee + base`` draws the total last, so every part keeps its own distribution."""
    rng = np.random.default_rng(4)
    base = np.round(rng.gamma(2.0, 100.0, 3000), 2)
    fee = np.where(rng.random(3000) < 0.7, 0.0, np.round(rng.gamma(1.0, 5.0, 3000), 2))
    frame = pd.DataFrame({"a_total": base + fee, "base": base, "fee": fee})
    terms = (("a_total", 1.0), ("base", -1.0), ("fee", -1.0))
    rule = AllOf(
        (
            Linear(terms, 0.0, False, "identity"),
            Linear(tuple((name, -value) for name, value in terms), 0.0, False, "identity"),
        )
    )
    model = fit(frame, [rule], 4)
    order = [model.columns[index] for index in model.sampler_.order]
    assert order.index("a_total") > max(order.index("base"), order.index("fee"))

    sampled = pd.DataFrame(model.sample(5000))
    assert holds(rule, sampled).all()
    # The fee keeps its spike at zero instead of absorbing rounding noise.
    assert abs((sampled["fee"] == 0).mean() - (frame["fee"] == 0).mean()) < 0.05
