"""Constraint scenarios: sets of constraints and sampling conditions, feasible or not.

A scenario is a JSON object::

    {"id": "adult-f003", "dataset": "adult", "feasible": true, "family": "linear",
     "constraints": [...], "conditions": [...], "support_rows": 1234,
     "sdv_builtin": false, "description": "..."}

Constraints and conditions use the neutral form of :mod:`benchmark.constraints`. Feasible
scenarios are built from each dataset's natural constraints and from random rules that hold
on every row of the data (inequalities between numeric or datetime columns, ranges, fixed
combinations, linear rules over three or four columns), with range or category conditions;
``support_rows`` counts the real rows meeting all of it. Infeasible scenarios pair rules that
hold on the data with conditions that no row can meet under those rules (fixed values on both
sides of an inequality in the wrong order, a combination never seen, a value outside a bound,
fixed values breaking a linear rule or an implication), so their feasible set is empty by
construction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import constraints as cons
from benchmark import datasets

LOGGER = logging.getLogger(__name__)

MIN_SUPPORT = 5
MAX_COMBINATIONS = 400
_COEFFICIENTS = (-2.0, -1.0, -0.5, 0.5, 1.0, 2.0)


class _Pools:
    """Candidate rules found on one dataset."""

    def __init__(self, dataset: datasets.Dataset, rng: np.random.Generator):
        self.data = dataset.data
        self.rng = rng
        sdtypes = dataset.sdtypes
        self.numeric = [c for c, t in sdtypes.items() if t == "numerical"]
        self.datetimes = [c for c, t in sdtypes.items() if t == "datetime"]
        self.discrete = [
            c for c, t in sdtypes.items() if t in ("categorical", "boolean", "ordinal")
        ]
        self.natural = list(dataset.spec.constraints)
        self.pairs = _ordered_pairs(self.data, self.numeric) + _ordered_pairs(
            self.data, self.datetimes
        )
        self.combos = _combination_candidates(self.data, self.discrete)

    def pick(self, items: list, k: int = 1) -> list:
        """Return ``k`` distinct random items (fewer if there are not enough)."""
        if not items:
            return []
        index = self.rng.choice(len(items), size=min(k, len(items)), replace=False)
        return [items[i] for i in index]


def _ordered_pairs(data: pd.DataFrame, columns: list[str]) -> list[tuple[str, str]]:
    """Return pairs (a, b) of distinct columns with a <= b on every row where both exist."""
    if len(columns) < 2:
        return []
    values = np.column_stack([cons.as_numbers(data[c]).to_numpy() for c in columns])
    pairs = []
    for i, low in enumerate(columns):
        for j, high in enumerate(columns):
            if i == j:
                continue
            a, b = values[:, i], values[:, j]
            both = ~np.isnan(a) & ~np.isnan(b)
            if (
                both.sum() >= MIN_SUPPORT
                and np.all(a[both] <= b[both])
                and np.any(a[both] < b[both])
            ):
                pairs.append((low, high))

    return pairs


def _combination_candidates(data: pd.DataFrame, columns: list[str]) -> list[list[str]]:
    """Return column pairs whose seen combinations are few, preferring ones that miss some."""
    strict, loose = [], []
    for i, first in enumerate(columns):
        for second in columns[i + 1 :]:
            seen = len(data[[first, second]].drop_duplicates())
            product = data[first].nunique(dropna=False) * data[second].nunique(dropna=False)
            if seen > MAX_COMBINATIONS:
                continue
            (strict if seen < product else loose).append([first, second])

    return strict or loose


def _signature(scenario: dict) -> str:
    """Return a text equal for scenarios with the same rules and conditions, in any order."""
    parts = [
        sorted(json.dumps(item, sort_keys=True, default=str) for item in scenario[key])
        for key in ("constraints", "conditions")
    ]
    return json.dumps(parts)


def _json_value(value):
    """Return a JSON-friendly scalar (numpy scalars unwrapped, timestamps as ISO text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


# -- feasible families -----------------------------------------------------------------------


def _inequalities(pools: _Pools) -> dict | None:
    chosen = pools.pick(pools.pairs, int(pools.rng.integers(1, 4)))
    if not chosen:
        return None
    strict = bool(pools.rng.random() < 0.3)
    specs = []
    for low, high in chosen:
        holds_strict = cons.is_valid(pools.data, cons_ineq(low, high, True)).all()
        specs.append(cons_ineq(low, high, strict and bool(holds_strict)))
    return {"family": "inequality", "constraints": specs, "conditions": []}


def cons_ineq(low: str, high: str, strict: bool) -> dict:
    """Return an inequality specification ``low <= high`` (``<`` if strict)."""
    return {"kind": "inequality", "low": low, "high": high, "strict": strict}


def _range(pools: _Pools) -> dict | None:
    chains = [(a, b, c) for a, b in pools.pairs for b2, c in pools.pairs if b == b2 and a != c]
    chosen = pools.pick(chains)
    if not chosen:
        return None
    low, middle, high = chosen[0]
    spec = {"kind": "range", "low": low, "middle": middle, "high": high, "strict": False}
    return {"family": "range", "constraints": [spec], "conditions": []}


def _linear_rule(pools: _Pools) -> dict | None:
    """Draw a random linear rule over 3-4 numeric columns, tight at the data's minimum."""
    columns = pools.pick(pools.numeric, int(pools.rng.integers(3, 5)))
    if len(columns) < 3:
        return None
    block = pools.data[columns].astype(float)
    scale = block.std().replace(0, 1.0).fillna(1.0)
    signs = pools.rng.choice(_COEFFICIENTS, size=len(columns))
    coefficients = {c: float(f"{s / scale[c]:.3g}") for c, s in zip(columns, signs, strict=True)}
    total = sum(a * block[c] for c, a in coefficients.items())
    if total.notna().sum() < MIN_SUPPORT:
        return None
    constant = -float(total.min()) + 1e-6 * max(1.0, abs(float(total.min())))
    return {"kind": "linear", "coefficients": coefficients, "constant": constant, "strict": False}


def _linear(pools: _Pools) -> dict | None:
    rules = [r for r in (_linear_rule(pools) for _ in range(int(pools.rng.integers(1, 3)))) if r]
    return {"family": "linear", "constraints": rules, "conditions": []} if rules else None


def _combinations(pools: _Pools) -> dict | None:
    chosen = pools.pick(pools.combos, int(pools.rng.integers(1, 3)))
    if not chosen:
        return None
    specs = [{"kind": "fixed_combinations", "columns": list(c)} for c in chosen]
    return {"family": "fixed_combinations", "constraints": specs, "conditions": []}


def _range_condition(pools: _Pools) -> dict | None:
    column = pools.pick(pools.numeric + pools.datetimes)
    if not column:
        return None
    values = pools.data[column[0]].dropna()
    low_q = float(pools.rng.uniform(0.05, 0.5))
    high_q = float(min(0.99, low_q + pools.rng.uniform(0.2, 0.5)))
    low, high = values.quantile(low_q), values.quantile(high_q)
    return {
        "column": column[0],
        "op": "between",
        "low": _json_value(low),
        "high": _json_value(high),
    }


def _category_condition(pools: _Pools) -> dict | None:
    column = pools.pick(pools.discrete)
    if not column:
        return None
    counts = pools.data[column[0]].value_counts()
    counts = counts[counts >= MIN_SUPPORT * 4]
    if counts.empty:
        return None
    value = pools.pick(list(counts.index))[0]
    return {"column": column[0], "op": "==", "value": _json_value(value)}


def _base_rules(pools: _Pools) -> list[dict]:
    """Pick rules to combine with conditions: the natural ones or random ones."""
    options = [pools.natural] if pools.natural else []
    options += [f["constraints"] for f in (_inequalities(pools), _combinations(pools)) if f]
    return options[int(pools.rng.integers(len(options)))] if options else []


def _with_range_condition(pools: _Pools) -> dict | None:
    condition = _range_condition(pools)
    if condition is None:
        return None
    return {
        "family": "range_condition",
        "constraints": _base_rules(pools),
        "conditions": [condition],
    }


def _with_category_condition(pools: _Pools) -> dict | None:
    conditions = [c for c in (_category_condition(pools) for _ in range(2)) if c]
    conditions = list({c["column"]: c for c in conditions}.values())
    if not conditions:
        return None
    count = int(pools.rng.integers(1, len(conditions) + 1))
    return {
        "family": "category_condition",
        "constraints": _base_rules(pools),
        "conditions": conditions[:count],
    }


def _mixed(pools: _Pools) -> dict | None:
    parts = [f for f in (_inequalities(pools), _linear(pools), _combinations(pools)) if f]
    if len(parts) < 2:
        return None
    specs = [spec for part in parts for spec in part["constraints"]]
    condition = _range_condition(pools)
    return {"family": "mixed", "constraints": specs, "conditions": [condition] if condition else []}


def _natural_single(pools: _Pools) -> dict | None:
    chosen = pools.pick(pools.natural)
    return {"family": "natural", "constraints": chosen, "conditions": []} if chosen else None


FEASIBLE_FAMILIES: list[Callable[[_Pools], dict | None]] = [
    _natural_single,
    _inequalities,
    _linear,
    _combinations,
    _range,
    _with_range_condition,
    _with_category_condition,
    _mixed,
]


def feasible_scenarios(dataset: datasets.Dataset, count: int, rng) -> list[dict]:
    """Generate ``count`` distinct feasible scenarios for one dataset.

    The first is all natural constraints together (when the dataset has some). Every scenario
    is checked on the data: at least ``MIN_SUPPORT`` rows meet all its rules and conditions.

    Parameters
    ----------
    dataset : benchmark.datasets.Dataset
        The dataset.
    count : int
        Number wanted.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    list of dict
        Scenarios without ids (fewer than ``count`` if the data does not allow more).
    """
    pools = _Pools(dataset, rng)
    found, seen = [], set()
    if pools.natural:
        candidates = [{"family": "natural_all", "constraints": pools.natural, "conditions": []}]
    else:
        candidates = []
    attempts = 0
    while len(found) < count and attempts < count * 60:
        attempts += 1
        if not candidates:
            family = FEASIBLE_FAMILIES[attempts % len(FEASIBLE_FAMILIES)]
            candidates.append(family(pools))
        scenario = candidates.pop()
        if scenario is None or not scenario["constraints"] + scenario["conditions"]:
            continue
        signature = _signature(scenario)
        support = _support(dataset.data, scenario)
        if signature in seen or support < MIN_SUPPORT:
            continue
        seen.add(signature)
        found.append({**scenario, "support_rows": support})

    if len(found) < count:
        LOGGER.warning("%s: only %d feasible scenarios found", dataset.name, len(found))
    return found


def _support(data: pd.DataFrame, scenario: dict) -> int:
    specs = cons.fit_specs(data, scenario["constraints"]) + list(scenario["conditions"])
    return int(cons.all_valid(data, specs).sum())


# -- infeasible families ---------------------------------------------------------------------


def _unseen_combination(pools: _Pools) -> dict | None:
    """Fix values forming a combination never seen, under fixed combinations."""
    natural = [s["columns"] for s in pools.natural if s.get("kind") == "fixed_combinations"]
    options = [cols for cols in natural + pools.combos if len(cols) >= 2]
    for columns in pools.pick(options, len(options)):
        size = int(pools.rng.integers(2, len(columns) + 1))
        subset = pools.pick(list(columns), size)
        unseen = _unseen_tuples(pools.data, subset)
        if unseen:
            values = pools.pick(unseen)[0]
            conditions = [
                {"column": c, "op": "==", "value": _json_value(v)}
                for c, v in zip(subset, values, strict=True)
            ]
            return {
                "family": "unseen_combination",
                "constraints": [{"kind": "fixed_combinations", "columns": list(columns)}],
                "conditions": conditions,
            }
    return None


def _unseen_tuples(data: pd.DataFrame, columns: list[str], limit: int = 5000) -> list[tuple]:
    """Return value tuples of ``columns`` (each value seen alone) never seen together."""
    seen = set(map(tuple, data[columns].dropna().drop_duplicates().astype(object).values.tolist()))
    levels = [data[c].dropna().unique() for c in columns]
    if np.prod([len(v) for v in levels], dtype=float) > limit:
        return []
    grid = pd.MultiIndex.from_product(levels).tolist()
    return [values for values in grid if values not in seen]


def _reversed_inequality(pools: _Pools) -> dict | None:
    """Require ``a <= b`` with fixed values ``a = v1 > v2 = b``."""
    chosen = pools.pick(pools.pairs)
    if not chosen:
        return None
    low, high = chosen[0]
    a_values, b_values = pools.data[low].dropna(), pools.data[high].dropna()
    big, small = a_values.quantile(0.9), b_values.quantile(0.1)
    if not big > small:
        big, small = a_values.max(), b_values.min()
        if not big > small:
            return None
    return {
        "family": "reversed_inequality",
        "constraints": [cons_ineq(low, high, False)],
        "conditions": [
            {"column": low, "op": "==", "value": _json_value(big)},
            {"column": high, "op": "==", "value": _json_value(small)},
        ],
    }


def _out_of_bounds(pools: _Pools) -> dict | None:
    """Add a bound that holds on the data and a fixed value beyond it."""
    natural = [s for s in pools.natural if s.get("kind") == "bounds"]
    if natural:
        bound = pools.pick(natural)[0]
    else:
        column = pools.pick(pools.numeric)
        if not column:
            return None
        values = pools.data[column[0]].dropna()
        bound = datasets._bounds(column[0], _json_value(values.min()), _json_value(values.max()))

    limit = bound["high"] if bound.get("high") is not None else bound["low"]
    width = abs(float(limit)) if not isinstance(limit, str) else 0
    if isinstance(limit, str):
        outside = (pd.Timestamp(limit) + pd.Timedelta(days=400)).isoformat()
    elif bound.get("high") is not None:
        outside = limit + max(1, width)
    else:
        outside = limit - max(1, width)
    return {
        "family": "out_of_bounds",
        "constraints": [bound],
        "conditions": [{"column": bound["column"], "op": "==", "value": _json_value(outside)}],
    }


def _broken_linear(pools: _Pools) -> dict | None:
    """Fix every column of a linear rule that holds on the data to values breaking it."""
    rule = _linear_rule(pools)
    if rule is None:
        return None
    # Push each column to the end of its range that lowers the rule's value.
    values = {}
    for column, coefficient in rule["coefficients"].items():
        series = pools.data[column].dropna()
        values[column] = series.min() if coefficient > 0 else series.max()
    total = sum(a * values[c] for c, a in rule["coefficients"].items()) + rule["constant"]
    if total >= 0:
        return None
    conditions = [{"column": c, "op": "==", "value": _json_value(v)} for c, v in values.items()]
    return {"family": "broken_linear", "constraints": [rule], "conditions": conditions}


def _broken_implication(pools: _Pools) -> dict | None:
    """Fix values meeting a natural implication's premise and failing its conclusion."""
    rules = [s for s in pools.natural if s.get("kind") == "implication"]
    for rule in pools.pick(rules, len(rules)):
        tests = rule["if"] + rule["then"]
        if any(t["op"] not in ("==", "in") for t in rule["if"]) or any("other" in t for t in tests):
            continue
        conditions = [
            {"column": t["column"], "op": "==", "value": _first_value(t["value"])}
            for t in rule["if"]
        ]
        failing = _failing_value(pools, rule["then"][0])
        if failing is None:
            continue
        conditions.append({"column": rule["then"][0]["column"], "op": "==", "value": failing})
        return {"family": "broken_implication", "constraints": [rule], "conditions": conditions}
    return None


def _first_value(value):
    return value[0] if isinstance(value, list) else value


def _failing_value(pools: _Pools, test: dict):
    """Return a value of the test's column, seen in the data, for which the test fails."""
    column = pools.data[test["column"]].dropna()
    frame = pd.DataFrame({test["column"]: column.unique()})
    failing = frame[~cons.is_valid(frame, test)][test["column"]]
    return _json_value(pools.pick(list(failing))[0]) if len(failing) else None


INFEASIBLE_FAMILIES = [
    _unseen_combination,
    _reversed_inequality,
    _out_of_bounds,
    _broken_linear,
    _broken_implication,
]


def infeasible_scenarios(dataset: datasets.Dataset, count: int, rng) -> list[dict]:
    """Generate ``count`` distinct infeasible scenarios for one dataset.

    Parameters
    ----------
    dataset : benchmark.datasets.Dataset
        The dataset.
    count : int
        Number wanted.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    list of dict
        Scenarios without ids; every one has ``support_rows == 0`` on the data.
    """
    pools = _Pools(dataset, rng)
    found, seen = [], set()
    for attempt in range(count * 40):
        if len(found) >= count:
            break
        scenario = INFEASIBLE_FAMILIES[attempt % len(INFEASIBLE_FAMILIES)](pools)
        if scenario is None or _signature(scenario) in seen:
            continue
        if _support(dataset.data, scenario) != 0:
            continue
        seen.add(_signature(scenario))
        found.append({**scenario, "support_rows": 0})

    if len(found) < count:
        LOGGER.warning("%s: only %d infeasible scenarios found", dataset.name, len(found))
    return found


def _finish(scenario: dict, dataset: datasets.Dataset, ident: str, feasible: bool) -> dict:
    sdtypes = dataset.sdtypes
    builtin = all(cons.sdv_compatible(s, sdtypes) for s in scenario["constraints"])
    text = "; ".join(cons.describe(s) for s in scenario["constraints"] + scenario["conditions"])
    return {
        "id": ident,
        "dataset": dataset.name,
        "feasible": feasible,
        "family": scenario["family"],
        "constraints": scenario["constraints"],
        "conditions": scenario["conditions"],
        "support_rows": scenario["support_rows"],
        "sdv_builtin": builtin,
        "description": text,
    }


def _dataset_seed(name: str, seed: int) -> int:
    digest = hashlib.sha256(f"{name}:{seed}".encode()).hexdigest()
    return int(digest[:8], 16)


def generate(
    names: list[str], data_dir=None, feasible: int = 36, infeasible: int = 4, seed: int = 0
) -> list[dict]:
    """Generate the scenarios of several datasets.

    Parameters
    ----------
    names : list of str
        Dataset names.
    data_dir : path-like, optional
        The data folder.
    feasible, infeasible : int
        Scenarios wanted per dataset.
    seed : int, default 0
        Seed (each dataset derives its own).

    Returns
    -------
    list of dict
        Scenarios with ids ``<dataset>-f<k>`` (feasible) and ``<dataset>-x<k>`` (infeasible).
    """
    out = []
    for name in names:
        dataset = datasets.load_dataset(name, data_dir)
        rng = np.random.default_rng(_dataset_seed(name, seed))
        for k, scenario in enumerate(feasible_scenarios(dataset, feasible, rng)):
            out.append(_finish(scenario, dataset, f"{name}-f{k:03d}", True))
        for k, scenario in enumerate(infeasible_scenarios(dataset, infeasible, rng)):
            out.append(_finish(scenario, dataset, f"{name}-x{k:03d}", False))
        LOGGER.info("%s: scenarios generated", name)

    return out


def write_scenarios(names, path, data_dir=None, feasible=36, infeasible=4, seed=0) -> Path:
    """Generate scenarios and write them as JSON.

    Parameters
    ----------
    names : list of str
        Dataset names.
    path : path-like
        Output file.
    data_dir : path-like, optional
        The data folder.
    feasible, infeasible : int
        Scenarios wanted per dataset.
    seed : int, default 0
        Seed.

    Returns
    -------
    pathlib.Path
        The file written.
    """
    scenarios = generate(names, data_dir, feasible, infeasible, seed)
    counts = {
        "feasible": sum(s["feasible"] for s in scenarios),
        "infeasible": sum(not s["feasible"] for s in scenarios),
    }
    payload = {"seed": seed, "counts": counts, "scenarios": scenarios}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=_json_value))
    LOGGER.info("Wrote %d feasible and %d infeasible scenarios to %s", *counts.values(), path)
    return path
