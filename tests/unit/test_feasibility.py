"""Tests for sdv_janus.engine.feasibility (back-filling of linear and table constraints).

Run as a script (``PYTHONPATH=. python tests/unit/test_feasibility.py``) to print the timings
quoted in the module docstring.
"""

import itertools
import logging
import pickle
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from sdv_janus.engine.feasibility import (
    InfeasibleConstraintsError,
    LinearRule,
    TableRule,
    backfill,
)

INF = np.inf
# Reference programs: without presolve HiGHS tells unbounded from infeasible.
EXACT_LP = {
    "presolve": False,
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


# Helpers: rules, a slow reference, and a sequential sampler that follows the plan.


def rule(coefficients, constant=0.0, strict=False, name=None):
    names = frozenset() if name is None else frozenset([name])
    return LinearRule(dict(coefficients), float(constant), strict, names)


def le(left, right, name=None, strict=False):
    """Rule ``left <= right`` (``<`` if strict)."""
    return rule({right: 1.0, left: -1.0}, 0.0, strict, name or f"{left}<={right}")


def evaluate(linear_rule, values):
    total = np.full(len(next(iter(values.values()))), linear_rule.constant)
    for column, coefficient in linear_rule.coefficients.items():
        total = total + coefficient * values[column]

    return total


def assert_rules_hold(rules, values, tol=1e-7):
    for linear_rule in rules:
        total = evaluate(linear_rule, values)
        size = 1.0 + sum(abs(c) * np.abs(values[k]) for k, c in linear_rule.coefficients.items())
        if linear_rule.strict:
            assert np.all(total > tol * size), linear_rule
        else:
            assert np.all(total >= -tol * size), linear_rule


def pick_values(low, high, low_strict, high_strict, rng, integer):
    """Draw one value per row inside the bounds; endpoints are picked on purpose when closed."""
    # The plan's promise: never a dead end.
    assert np.all((low < high) | ((low == high) & ~low_strict & ~high_strict))
    if integer:
        for bound in (low, high):
            finite = bound[np.isfinite(bound)]
            np.testing.assert_array_equal(finite, np.round(finite))

        assert not low_strict.any() and not high_strict.any()

    lo = np.where(np.isfinite(low), low, np.where(np.isfinite(high), high - 10.0, -10.0))
    hi = np.where(np.isfinite(high), high, lo + 10.0)
    fraction = rng.uniform(0.1, 0.9, size=len(low))
    value = lo + fraction * (hi - lo)
    choice = rng.integers(0, 3, size=len(low))
    value = np.where((choice == 0) & ~low_strict, lo, value)
    value = np.where((choice == 1) & ~high_strict, hi, value)
    if integer:
        value = np.clip(np.round(value), lo, hi)

    return value


def draw(plan, n_rows, rng):
    values = {}
    for column in plan.order:
        low, high, low_strict, high_strict = plan.linear_bounds(column, values, n_rows)
        integer = column in plan.integer_columns
        values[column] = pick_values(low, high, low_strict, high_strict, rng, integer)

    return values


def mentioned_in_order(order, rules):
    """The columns that some rule mentions, in drawing order."""
    mentioned = {column for linear_rule in rules for column in linear_rule.coefficients}
    return [column for column in order if column in mentioned]


def reference_feasible(columns, rules, domains):
    """Whether the rules have a real solution: LP maximising the slack of the strict rows."""
    index = {column: j for j, column in enumerate(columns)}
    n = len(columns)
    a_ub, b_ub = [], []
    for linear_rule in rules:
        # sum a x + b >= t*strict  <=>  -sum a x + t*strict <= b
        row = np.zeros(n + 1)
        for column, coefficient in linear_rule.coefficients.items():
            row[index[column]] = -coefficient

        row[n] = 1.0 if linear_rule.strict else 0.0
        a_ub.append(row)
        b_ub.append(linear_rule.constant)

    bounds = [domains.get(c, (-INF, INF)) for c in columns] + [(0.0, 1.0)]
    bounds = [(None if lo == -INF else lo, None if hi == INF else hi) for lo, hi in bounds]
    objective = np.zeros(n + 1)
    objective[n] = -1.0
    result = linprog(
        objective,
        A_ub=np.array(a_ub).reshape(len(a_ub), n + 1),
        b_ub=np.array(b_ub),
        bounds=bounds,
        options=EXACT_LP,
    )
    if result.status == 2:
        return False

    assert result.status == 0
    has_strict = any(linear_rule.strict for linear_rule in rules)
    return (not has_strict) or -result.fun > 1e-9


def reference_range(columns, rules, domains, column, fixed):
    """Least and greatest value of ``column`` over the closure of the rules, others fixed."""
    index = {c: j for j, c in enumerate(columns)}
    a_ub = np.zeros((len(rules), len(columns)))
    b_ub = np.array([linear_rule.constant for linear_rule in rules])
    for i, linear_rule in enumerate(rules):
        for c, coefficient in linear_rule.coefficients.items():
            a_ub[i, index[c]] = -coefficient

    bounds = []
    for c in columns:
        lo, hi = (fixed[c], fixed[c]) if c in fixed else domains.get(c, (-INF, INF))
        bounds.append((None if lo == -INF else lo, None if hi == INF else hi))

    ends = []
    for sign in (1.0, -1.0):
        objective = np.zeros(len(columns))
        objective[index[column]] = sign
        result = linprog(objective, A_ub=a_ub, b_ub=b_ub, bounds=bounds, options=EXACT_LP)
        assert result.status in (0, 3), result.message
        ends.append(-sign * INF if result.status == 3 else sign * result.fun)

    return ends


# Linear rules: hand-made cases.


def test_backfill_chain_bounds():
    # Setup
    rules = [le("a", "b"), le("b", "c")]
    domains = {"a": (0.0, 10.0), "b": (0.0, 5.0), "c": (2.0, 8.0)}

    # Run
    plan = backfill(["a", "b", "c"], rules, [], domains)
    low_a, high_a, _, _ = plan.linear_bounds("a", {}, 1)
    low_b, high_b, _, _ = plan.linear_bounds("b", {"a": np.array([0.0, 4.0])}, 2)
    low_c, high_c, _, _ = plan.linear_bounds("c", {"a": np.zeros(2), "b": np.array([1.0, 4.5])}, 2)

    # Assert
    assert (low_a[0], high_a[0]) == (0.0, 5.0)  # a <= b <= 5
    np.testing.assert_array_equal(low_b, [0.0, 4.0])
    np.testing.assert_array_equal(high_b, [5.0, 5.0])
    np.testing.assert_array_equal(low_c, [2.0, 4.5])
    np.testing.assert_array_equal(high_c, [8.0, 8.0])
    assert plan.linear_by_column["a"][-1].names == frozenset({"a<=b"})


def test_backfill_chain_of_fifty_samples_valid():
    # Setup
    columns = [f"x{i}" for i in range(51)]
    rules = [le(columns[i], columns[i + 1]) for i in range(50)]
    domains = {column: (0.0, 1.0) for column in columns}

    # Run
    plan = backfill(columns, rules, [], domains)
    values = draw(plan, 200, np.random.default_rng(0))

    # Assert
    assert_rules_hold(rules, values)


def test_backfill_order_opposite_to_chain():
    # Setup: the chain goes against the drawing order.
    rules = [le("a", "b"), le("b", "c")]
    domains = {"a": (3.0, 9.0), "b": (0.0, 10.0), "c": (0.0, 6.0)}

    # Run
    plan = backfill(["c", "b", "a"], rules, [], domains)
    low_c, high_c, _, _ = plan.linear_bounds("c", {}, 1)
    values = draw(plan, 300, np.random.default_rng(1))

    # Assert
    assert (low_c[0], high_c[0]) == (3.0, 6.0)
    assert_rules_hold(rules, values)


def test_backfill_shared_ancestor_with_several_children():
    # Setup: every child is at least the parent, and the children share a budget.
    children = ["c1", "c2", "c3"]
    rules = [le("p", child) for child in children]
    rules.append(rule({"c1": -1.0, "c2": -1.0, "c3": -1.0}, 10.0, name="budget"))
    domains = {column: (0.0, 10.0) for column in ["p", *children]}

    # Run
    plan = backfill(["p", *children], rules, [], domains)
    low, high, _, _ = plan.linear_bounds("p", {}, 1)
    values = draw(plan, 500, np.random.default_rng(2))

    # Assert
    assert low[0] == 0.0
    assert high[0] == pytest.approx(10.0 / 3.0)
    assert_rules_hold(rules, values)


def test_backfill_equality_gives_a_single_point():
    # Setup: a == b as two rules.
    rules = [le("a", "b", "a==b"), le("b", "a", "a==b")]
    domains = {"a": (0.0, 10.0), "b": (2.0, 5.0)}

    # Run
    plan = backfill(["a", "b"], rules, [], domains)
    low_a, high_a, _, _ = plan.linear_bounds("a", {}, 1)
    values = draw(plan, 100, np.random.default_rng(3))

    # Assert
    assert (low_a[0], high_a[0]) == (2.0, 5.0)
    np.testing.assert_array_equal(values["a"], values["b"])


def test_backfill_strict_bounds_are_flagged():
    # Setup
    rules = [le("a", "b", strict=True)]
    domains = {"a": (0.0, 1.0), "b": (0.0, 1.0)}

    # Run
    plan = backfill(["a", "b"], rules, [], domains)
    low_a, high_a, low_a_strict, high_a_strict = plan.linear_bounds("a", {}, 1)
    prefix = {"a": np.array([0.25])}
    low_b, high_b, low_b_strict, high_b_strict = plan.linear_bounds("b", prefix, 1)

    # Assert
    assert (low_a[0], high_a[0], low_a_strict[0], high_a_strict[0]) == (0.0, 1.0, False, True)
    assert (low_b[0], high_b[0], low_b_strict[0], high_b_strict[0]) == (0.25, 1.0, True, False)


def test_backfill_strict_tie_keeps_strictness():
    # Setup: a <= b and a < b give the same bound on b; the strict one must win.
    rules = [le("a", "b", "weak"), le("a", "b", "strong", strict=True)]

    # Run
    plan = backfill(["a", "b"], rules, [], {})
    low, _, low_strict, _ = plan.linear_bounds("b", {"a": np.array([1.0])}, 1)

    # Assert
    assert low[0] == 1.0 and low_strict[0]


@pytest.mark.parametrize(
    ("first_strict", "second_strict", "feasible"),
    [(False, False, True), (True, False, False), (True, True, False)],
)
def test_backfill_zero_against_zero(first_strict, second_strict, feasible):
    # Setup: a <= b and b <= a derive 0 >= 0 (fine); any strictness derives 0 > 0.
    rules = [le("a", "b", "r1", first_strict), le("b", "a", "r2", second_strict)]

    # Run and assert
    if feasible:
        backfill(["a", "b"], rules, [], {})
    else:
        with pytest.raises(InfeasibleConstraintsError) as error:
            backfill(["a", "b"], rules, [], {})

        assert error.value.conflicting == {"r1", "r2"}


def test_backfill_cycle_names_all_three_constraints():
    # Setup: the cycle, plus a rule on other columns that takes no part in it.
    rules = [le("a", "b", "a<=b"), le("b", "c", "b<=c"), le("c", "a", "c<a", strict=True)]
    rules.append(le("d", "e", "d<=e"))

    # Run
    with pytest.raises(InfeasibleConstraintsError, match="'a<=b', 'b<=c', 'c<a'") as error:
        backfill(["d", "a", "b", "e", "c"], rules, [], {"a": (0.0, 1.0)})

    # Assert
    assert error.value.conflicting == {"a<=b", "b<=c", "c<a"}
    assert isinstance(error.value, ValueError)


def test_backfill_conflict_with_training_range_names_rule_and_range():
    # Setup
    rules = [rule({"a": 1.0}, -5.0, name="a>=5")]

    # Run
    with pytest.raises(InfeasibleConstraintsError, match="training range of 'a'") as error:
        backfill(["a"], rules, [], {"a": (0.0, 3.0)})

    # Assert
    assert error.value.conflicting == {"a>=5"}
    assert error.value.ranges == {"a"}


def test_backfill_empty_training_range():
    with pytest.raises(InfeasibleConstraintsError, match="training range of 'a'") as error:
        backfill(["a", "b"], [le("a", "b")], [], {"a": (3.0, 1.0)})

    assert error.value.conflicting == frozenset()


@pytest.mark.parametrize(
    "arguments", [({"x", "y"}, {"a"}, "detail"), ("a message only, as SDV re-raises it",)]
)
def test_infeasible_error_pickles(arguments):
    error = InfeasibleConstraintsError(*arguments)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.conflicting, copy.ranges, str(copy)) == (
        error.conflicting,
        error.ranges,
        str(error),
    )


def test_backfill_scaled_duplicates_are_merged():
    # Setup: the same rule three times at different scales, one of them tighter.
    rules = [
        rule({"a": 1.0, "b": -1.0}, 0.0, name="r1"),
        rule({"a": 3.0, "b": -3.0}, 0.0, name="r2"),
        rule({"a": 2.0, "b": -2.0}, -2.0, name="r3"),  # a >= b + 1
    ]

    # Run
    plan = backfill(["b", "a"], rules, [], {})

    # Assert
    assert len(plan.linear_by_column["a"]) == 1
    assert plan.linear_by_column["a"][0].names == {"r3"}


def test_backfill_no_rules():
    plan = backfill(["a", "b"], [], [], {"a": (0.0, 1.0), "b": 3})
    low, high, low_strict, high_strict = plan.linear_bounds("a", {}, 2)
    assert np.all(low == -INF) and np.all(high == INF)
    assert not low_strict.any() and not high_strict.any()
    assert plan.allowed_states("b", {}, 3, 2) is None


def test_linear_bounds_ignores_rules_over_missing_values():
    plan = backfill(["a", "b"], [le("a", "b")], [], {"b": (0.0, 10.0)})
    low, high, _, _ = plan.linear_bounds("b", {"a": np.array([2.0, np.nan])}, 2)
    np.testing.assert_array_equal(low, [2.0, 0.0])
    np.testing.assert_array_equal(high, [10.0, 10.0])


def test_linear_bounds_names_the_missing_prefix_column():
    plan = backfill(["a", "b"], [le("a", "b")], [], {})
    with pytest.raises(ValueError, match="'a'"):
        plan.linear_bounds("b", {}, 1)


@pytest.mark.parametrize(
    ("rules", "tables", "domains", "match"),
    [
        ([le("a", "z")], [], {}, "'z'"),
        ([le("a", "k")], [], {"k": 3}, "categorical"),
        ([rule({"a": np.nan})], [], {}, "non-finite"),
        ([], [TableRule(("a", "k"), np.zeros((1, 2), np.int64))], {"a": (0, 1)}, "numerical"),
        ([], [TableRule(("k",), np.zeros((2, 3), np.int64))], {"k": 3}, "shape"),
        ([], [TableRule(("k", "k"), np.zeros((1, 2), np.int64))], {"k": 3}, "once"),
        ([le("a", "k")], [TableRule(("k",), np.zeros((1, 1), np.int64))], {}, "either"),
    ],
)
def test_backfill_rejects_bad_rules(rules, tables, domains, match):
    with pytest.raises(ValueError, match=match):
        backfill(["a", "b", "k"], rules, tables, domains)


# Integer columns.


def test_integer_strict_bound_moves_to_next_integer():
    # Setup: a > 3 and 2a <= 15, i.e. a in {4, ..., 7}.
    rules = [
        rule({"a": 1.0}, -3.0, strict=True, name="a>3"),
        rule({"a": -2.0}, 15.0, name="2a<=15"),
    ]

    # Run
    plan = backfill(["a"], rules, [], {"a": (0.0, 100.0)}, {"a"})
    low, high, low_strict, high_strict = plan.linear_bounds("a", {}, 1)

    # Assert
    assert (low[0], high[0], low_strict[0], high_strict[0]) == (4.0, 7.0, False, False)
    assert all(not r.strict for r in plan.linear_by_column["a"])


def test_integer_bounds_round_inward_given_prefix():
    # Setup: a + 0.5 <= b over integers means b >= a + 1.
    rules = [rule({"b": 1.0, "a": -1.0}, -0.5, name="a+0.5<=b")]

    # Run
    plan = backfill(["a", "b"], rules, [], {"a": (0.0, 9.0), "b": (0.0, 9.0)}, {"a", "b"})
    low_a, high_a, _, _ = plan.linear_bounds("a", {}, 1)
    low_b, high_b, _, _ = plan.linear_bounds("b", {"a": np.array([2.0, 8.0])}, 2)

    # Assert
    assert (low_a[0], high_a[0]) == (0.0, 8.0)
    np.testing.assert_array_equal(low_b, [3.0, 9.0])
    np.testing.assert_array_equal(high_b, [9.0, 9.0])


def test_integer_strict_chain_drawn_out_of_order():
    # Setup: x1 < x2 < x3 over integers in [0, 2], drawn x1, x3, x2; only 0 < 1 < 2 works.
    rules = [le("x1", "x2", strict=True), le("x2", "x3", strict=True)]
    domains = {column: (0.0, 2.0) for column in ["x1", "x2", "x3"]}

    # Run
    plan = backfill(["x1", "x3", "x2"], rules, [], domains, {"x1", "x2", "x3"})
    values = draw(plan, 50, np.random.default_rng(4))

    # Assert
    for column, expected in [("x1", 0.0), ("x2", 1.0), ("x3", 2.0)]:
        np.testing.assert_array_equal(values[column], expected)


def test_integer_gap_is_infeasible():
    # Setup: 3 < a < 4 has real solutions and no integer one.
    rules = [rule({"a": 1.0}, -3.0, True, "a>3"), rule({"a": -1.0}, 4.0, True, "a<4")]

    # Run and assert
    backfill(["a"], rules, [], {})
    with pytest.raises(InfeasibleConstraintsError, match="'a<4', 'a>3'"):
        backfill(["a"], rules, [], {}, integer_columns={"a"})


@st.composite
def difference_systems(draw_from):
    n_columns = draw_from(st.integers(2, 4))
    columns = [f"x{i}" for i in range(n_columns)]
    order = draw_from(st.permutations(columns))
    n_rules = draw_from(st.integers(1, 5))
    rules = []
    for i in range(n_rules):
        left, right = draw_from(st.lists(st.sampled_from(columns), min_size=2, max_size=2))
        constant = draw_from(st.sampled_from([-2.0, -1.5, -1.0, 0.0, 0.5, 1.0, 2.0]))
        coefficients = {left: 1.0} if left == right else {left: 1.0, right: -1.0}
        rules.append(rule(coefficients, constant, draw_from(st.booleans()), f"d{i}"))

    return tuple(order), rules


@PROPERTY_SETTINGS
@given(system=difference_systems(), seed=st.integers(0, 2**16))
def test_integer_differences_match_enumeration(system, seed):
    """Integer difference rules: feasibility and every bound agree with brute force."""
    # Setup
    order, rules = system
    columns = sorted(order)
    domains = {column: (0.0, 3.0) for column in columns}
    grid = np.array(list(itertools.product(range(4), repeat=len(columns))), dtype=float)
    values = {column: grid[:, j] for j, column in enumerate(columns)}
    ok = np.ones(len(grid), dtype=bool)
    for linear_rule in rules:
        total = evaluate(linear_rule, values)
        ok &= total > 0 if linear_rule.strict else total >= 0

    solutions = grid[ok]

    # Run
    try:
        plan = backfill(order, rules, [], domains, integer_columns=set(columns))
    except InfeasibleConstraintsError:
        assert len(solutions) == 0
        return

    # Assert: every drawn row is a solution, and each bound is the exact range given the prefix.
    assert len(solutions) > 0
    drawn = draw(plan, 20, np.random.default_rng(seed))
    assert_rules_hold(rules, drawn)
    prefix = {}
    for column in mentioned_in_order(order, rules):
        low, high, _, _ = plan.linear_bounds(column, prefix, 20)
        for row in range(20):
            match = np.ones(len(solutions), dtype=bool)
            for earlier, value in prefix.items():
                match &= solutions[:, columns.index(earlier)] == value[row]

            reachable = solutions[match, columns.index(column)]
            assert (low[row], high[row]) == (reachable.min(), reachable.max())

        prefix[column] = drawn[column]


# Linear rules: random systems against the LP reference.


DOMAIN_CHOICES = [(-5.0, 5.0), (0.0, 3.0), (-INF, INF), (-INF, 2.0), (-1.0, INF)]


@st.composite
def linear_systems(draw_from):
    n_columns = draw_from(st.integers(1, 4))
    columns = [f"x{i}" for i in range(n_columns)]
    order = draw_from(st.permutations(columns))
    rules = []
    for i in range(draw_from(st.integers(1, 6))):
        support = draw_from(st.lists(st.sampled_from(columns), min_size=1, unique=True))
        coefficients = {
            c: float(draw_from(st.sampled_from([-3, -2, -1, 1, 2, 3]))) for c in support
        }
        constant = draw_from(st.integers(-4, 4))
        rules.append(rule(coefficients, constant, draw_from(st.booleans()), f"r{i}"))

    domains = {c: draw_from(st.sampled_from(DOMAIN_CHOICES)) for c in columns}
    return tuple(order), rules, domains


@PROPERTY_SETTINGS
@given(
    system=linear_systems(),
    lp_threshold=st.sampled_from([0, 24]),
    seed=st.integers(0, 2**16),
)
def test_backfill_random_systems_agree_with_lp_reference(system, lp_threshold, seed):
    """Back-filling raises exactly when the LP says infeasible; otherwise every draw is valid
    and each interval is exactly the range of the column given the earlier draws."""
    # Setup
    order, rules, domains = system
    columns = sorted(order)
    feasible = reference_feasible(columns, rules, domains)

    # Run
    try:
        plan = backfill(order, rules, [], domains, lp_threshold=lp_threshold)
    except InfeasibleConstraintsError as error:
        # Assert: the named rules with the named ranges are infeasible on their own.
        assert not feasible
        named = [r for r in rules if r.names <= error.conflicting]
        kept_domains = {c: domains[c] for c in error.ranges}
        assert not reference_feasible(columns, named, kept_domains)
        return

    # Assert
    assert feasible
    n_rows = 30
    values = draw(plan, n_rows, np.random.default_rng(seed))
    assert_rules_hold(rules, values)
    prefix = {}
    for column in mentioned_in_order(order, rules):
        low, high, _, _ = plan.linear_bounds(column, prefix, n_rows)
        for row in range(3):
            fixed = {c: v[row] for c, v in prefix.items()}
            least, greatest = reference_range(columns, rules, domains, column, fixed)
            np.testing.assert_allclose([low[row], high[row]], [least, greatest], atol=1e-6)

        prefix[column] = values[column]


def test_lp_pruning_on_dense_rules_keeps_samples_valid(caplog):
    # Setup: dense random rules over 5 columns, all satisfied by the centre of the box.
    rng = np.random.default_rng(5)
    columns = [f"x{i}" for i in range(5)]
    rules = []
    for i in range(10):
        coefficients = dict(zip(columns, rng.normal(size=5), strict=True))
        centre_value = sum(coefficients.values()) * 0.5
        rules.append(rule(coefficients, 0.3 - centre_value, name=f"dense{i}"))

    domains = {column: (0.0, 1.0) for column in columns}

    # Run
    with caplog.at_level(logging.DEBUG, logger="sdv_janus.engine.feasibility"):
        plan = backfill(columns, rules, [], domains, lp_threshold=8)

    values = draw(plan, 300, np.random.default_rng(6))

    # Assert
    assert "Pruning kept" in caplog.text
    assert_rules_hold(rules, values)
    for column in columns[1:]:
        prefix = {c: values[c][:3] for c in columns[: columns.index(column)]}
        low, high, _, _ = plan.linear_bounds(column, prefix, 3)
        for row in range(3):
            fixed = {c: v[row] for c, v in prefix.items()}
            expected = reference_range(columns, rules, domains, column, fixed)
            np.testing.assert_allclose([low[row], high[row]], expected, atol=1e-7)


# Table rules.


def test_tables_sharing_a_column_are_joined():
    # Setup: (a, b) in {(0,0), (1,1)} and (b, c) in {(1, 0)}: only a = 1 can be completed.
    first = TableRule(("a", "b"), np.array([[0, 0], [1, 1]]), frozenset({"ab"}))
    second = TableRule(("b", "c"), np.array([[1, 0]]), frozenset({"bc"}))

    # Run
    plan = backfill(["a", "b", "c"], [], [first, second], {"a": 2, "b": 2, "c": 2})
    allowed_a = plan.allowed_states("a", {}, 2, 1)
    allowed_c = plan.allowed_states("c", {"a": np.array([1]), "b": np.array([1])}, 2, 1)

    # Assert
    np.testing.assert_array_equal(allowed_a, [[False, True]])
    np.testing.assert_array_equal(allowed_c, [[True, False]])


def test_tables_with_no_common_tuple_raise_naming_them():
    first = TableRule(("a", "b"), np.array([[0, 0]]), frozenset({"ab"}))
    second = TableRule(("b", "c"), np.array([[1, 0]]), frozenset({"bc"}))
    other = TableRule(("d",), np.array([[0]]), frozenset({"d"}))
    with pytest.raises(InfeasibleConstraintsError, match="'ab', 'bc'") as error:
        backfill(["a", "b", "c", "d"], [], [first, second, other], {})

    assert error.value.conflicting == {"ab", "bc"}


def test_table_states_outside_training_range_are_dropped():
    table = TableRule(("a",), np.array([[5]]), frozenset({"a=5"}))
    with pytest.raises(InfeasibleConstraintsError, match="training range of 'a'"):
        backfill(["a"], [], [table], {"a": 3})


def test_allowed_states_unknown_prefix_allows_nothing():
    table = TableRule(("a", "b"), np.array([[0, 1]]), frozenset({"ab"}))
    plan = backfill(["a", "b"], [], [table], {"a": 2, "b": 2})
    allowed = plan.allowed_states("b", {"a": np.array([0, 1])}, 2, 2)
    np.testing.assert_array_equal(allowed, [[False, True], [False, False]])


@st.composite
def table_systems(draw_from):
    n_columns = draw_from(st.integers(1, 5))
    columns = [f"k{i}" for i in range(n_columns)]
    n_states = {c: draw_from(st.integers(1, 3)) for c in columns}
    order = draw_from(st.permutations(columns))
    tables = []
    for i in range(draw_from(st.integers(1, 3))):
        table_columns = draw_from(
            st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True)
        )
        product = list(itertools.product(*(range(n_states[c] + 1) for c in table_columns)))
        chosen = draw_from(st.lists(st.sampled_from(product), max_size=len(product)))
        allowed = np.array(chosen, dtype=np.int64).reshape(len(chosen), len(table_columns))
        tables.append(TableRule(tuple(table_columns), allowed, frozenset({f"t{i}"})))

    return tuple(order), tables, n_states


def enumerate_solutions(columns, tables, n_states):
    grid = np.array(list(itertools.product(*(range(n_states[c]) for c in columns))))
    ok = np.ones(len(grid), dtype=bool)
    for table in tables:
        picked = grid[:, [columns.index(c) for c in table.columns]]
        ok &= (picked[:, None, :] == table.allowed[None, :, :]).all(axis=2).any(axis=1)

    return grid[ok]


@PROPERTY_SETTINGS
@given(system=table_systems(), seed=st.integers(0, 2**16))
def test_tables_allow_exactly_the_extendable_states(system, seed):
    """Every drawn tuple is allowed by all tables, and each step allows exactly the states
    that some full solution extends (checked against brute-force enumeration)."""
    # Setup
    order, tables, n_states = system
    columns = sorted(order)
    solutions = enumerate_solutions(columns, tables, n_states)

    # Run
    try:
        plan = backfill(order, [], tables, n_states)
    except InfeasibleConstraintsError as error:
        named = [t for t in tables if t.names <= error.conflicting]
        assert len(solutions) == 0
        assert len(enumerate_solutions(columns, named, n_states)) == 0
        return

    # Assert
    assert len(solutions) > 0
    rng = np.random.default_rng(seed)
    n_rows = 40
    states = {}
    for column in order:
        mask = plan.allowed_states(column, states, n_states[column], n_rows)
        if mask is None:
            assert all(column not in table.columns for table in tables)
            states[column] = rng.integers(0, n_states[column], size=n_rows)
            continue

        for row in range(n_rows):
            match = np.ones(len(solutions), dtype=bool)
            for earlier, value in states.items():
                match &= solutions[:, columns.index(earlier)] == value[row]

            extendable = np.zeros(n_states[column], dtype=bool)
            extendable[solutions[match, columns.index(column)]] = True
            np.testing.assert_array_equal(mask[row], extendable)

        states[column] = np.array([rng.choice(np.flatnonzero(m)) for m in mask])

    drawn = np.column_stack([states[c] for c in columns])
    assert len(enumerate_solutions(columns, tables, n_states)) > 0
    for row in drawn:
        assert (solutions == row).all(axis=1).any()


# Timings quoted in the module docstring.


def _time(function, repeat=5, budget=2.0):
    """Best CPU time of up to ``repeat`` runs, stopping once ``budget`` seconds are spent.

    CPU time rather than wall time, so that other work on the machine does not count.
    """
    best, spent = INF, 0.0
    for _ in range(repeat):
        start = time.process_time()
        function()
        elapsed = time.process_time() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget:
            break

    return best


def _timing_cases():
    cases = {}
    for length in (10, 20, 50):
        columns = [f"x{i}" for i in range(length + 1)]
        rules = [le(columns[i], columns[i + 1]) for i in range(length)]
        domains = {column: (0.0, 1.0) for column in columns}
        cases[f"chain of {length} rules"] = (columns, rules, [], domains)

    rng = np.random.default_rng(0)
    columns = [f"x{i}" for i in range(6)]
    domains = {column: (0.0, 1.0) for column in columns}
    for count in (5, 10, 15, 20):
        rules = []
        for i in range(count):
            coefficients = dict(zip(columns, rng.normal(size=6), strict=True))
            rules.append(rule(coefficients, 0.3 - 0.5 * sum(coefficients.values()), name=str(i)))

        cases[f"{count} dense random rules over 6 columns"] = (columns, rules, [], domains)

    for n_columns, count in ((30, 200), (60, 400)):
        columns = [f"x{i}" for i in range(n_columns)]
        rules = []
        for i in range(count):
            # x_a + c <= x_b with a < b: always feasible, drawn in a shuffled order.
            a, b = sorted(rng.choice(n_columns, size=2, replace=False))
            gap = float(rng.integers(0, 3))
            rules.append(rule({columns[b]: 1.0, columns[a]: -1.0}, -gap, name=str(i)))

        order = list(rng.permutation(columns))
        domains = {column: (0.0, 1000.0) for column in columns}
        label = f"{count} two-column rules over {n_columns} columns"
        cases[label] = (order, rules, [], domains)

    columns = [f"x{i}" for i in range(6)]
    allowed = rng.integers(0, 5, size=(1000, 6))
    table = TableRule(tuple(columns), allowed, frozenset({"table"}))
    cases["one table of 1,000 tuples over 6 columns"] = (columns, [], [table], {})
    columns = [f"k{i}" for i in range(7)]
    tables = [
        TableRule(tuple(columns[2 * i : 2 * i + 3]), rng.integers(0, 6, size=(200, 3)))
        for i in range(3)
    ]
    cases["3 chained tables of 200 tuples over 7 columns"] = (columns, [], tables, {})
    return cases


if __name__ == "__main__":
    for label, (order, linear_rules, table_rules, domains) in _timing_cases().items():
        seconds = _time(lambda: backfill(order, linear_rules, table_rules, domains))  # noqa: B023
        print(f"{label:<45} {seconds * 1000:9.1f} ms")
