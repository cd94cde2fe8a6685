"""Constraint specifications in a neutral JSON form, their checker, and adapters.

A specification is a plain ``dict`` with a ``kind`` key, so that scenario files stay readable
and independent of any synthesizer's classes:

``{"kind": "inequality", "low": a, "high": b, "strict": False}``
    ``b >= a`` (``b > a`` if strict); numerical or datetime columns.
``{"kind": "range", "low": a, "middle": b, "high": c, "strict": False}``
    ``a <= b <= c``.
``{"kind": "fixed_combinations", "columns": [...]}``
    only the combinations of values seen in the training data.
``{"kind": "fixed_increments", "column": c, "increment": k}``
    values are multiples of ``k``.
``{"kind": "one_hot", "columns": [...]}``
    exactly one of the columns is 1 in each row.
``{"kind": "linear", "coefficients": {col: a}, "constant": b, "strict": False}``
    ``sum(a * col) + b >= 0`` (``> 0`` if strict).
``{"kind": "bounds", "column": c, "low": l, "high": h, "strict": False}``
    ``l <= c <= h``; either bound may be ``None``.
``{"kind": "implication", "if": [test, ...], "then": [test, ...]}``
    when every ``if`` test holds, every ``then`` test holds. A test is
    ``{"column": c, "op": op, "value": v}`` with ``op`` one of ``== != < <= > >= in notin``,
    ``{"column": c, "op": op, "other": d}`` comparing two columns, or
    ``{"column": c, "op": "isnull" | "notnull"}``.

Conditions (fixed values or ranges requested at sampling time) use the test form:
``{"column": c, "op": "==", "value": v}`` or ``{"column": c, "op": "between", "low": l,
"high": h}``.

A row with a missing value in a column that an inequality, range, linear rule or bound reads
counts as valid, as in SDV's own ``is_valid``. Fixed combinations are learned from the
training data with :func:`fit_specs`, which stores the allowed tuples in the spec.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterable

import numpy as np
import pandas as pd

LOGGER = logging.getLogger(__name__)

SDV_KINDS = ("inequality", "range", "fixed_combinations", "fixed_increments", "one_hot")
_OPS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NUMERIC_SDTYPES = ("numerical",)
_DISCRETE_SDTYPES = ("categorical", "boolean", "ordinal")


def spec_columns(spec: dict) -> list[str]:
    """Return the columns a constraint or condition specification reads.

    Parameters
    ----------
    spec : dict
        A constraint or condition specification.

    Returns
    -------
    list of str
        Column names, in the order they appear in the specification.
    """
    kind = spec.get("kind")
    if kind == "inequality":
        return [spec["low"], spec["high"]]
    if kind == "range":
        return [spec["low"], spec["middle"], spec["high"]]
    if kind in ("fixed_combinations", "one_hot"):
        return list(spec["columns"])
    if kind in ("fixed_increments", "bounds"):
        return [spec["column"]]
    if kind == "linear":
        return list(spec["coefficients"])
    if kind == "implication":
        tests = list(spec["if"]) + list(spec["then"])
        return list(dict.fromkeys(c for t in tests for c in spec_columns(t)))
    if "column" in spec:
        return [spec["column"]] + ([spec["other"]] if "other" in spec else [])
    raise ValueError(f"Unknown constraint kind {kind!r} in {spec!r}.")


def as_numbers(series: pd.Series) -> pd.Series:
    """Return a column as floats (datetimes as nanoseconds since the epoch).

    Parameters
    ----------
    series : pandas.Series
        Any column; values that are not numbers become NaN.

    Returns
    -------
    pandas.Series of float
        Same index.
    """
    if pd.api.types.is_datetime64_any_dtype(series):
        return series.astype("int64").where(series.notna()).astype(float)
    return pd.to_numeric(series, errors="coerce").astype(float)


def _scalar_like(value, series: pd.Series):
    """Convert a JSON scalar to the type of ``series`` (datetimes become Timestamps)."""
    if value is None or not pd.api.types.is_datetime64_any_dtype(series):
        return value
    return pd.Timestamp(value).value


def _test_holds(data: pd.DataFrame, test: dict) -> pd.Series:
    """Evaluate one test (``column op value``) row by row; missing values fail it."""
    column = data[test["column"]]
    op = test["op"]
    if op == "isnull":
        return column.isna()
    if op == "notnull":
        return column.notna()
    if op in ("in", "notin"):
        inside = column.isin(list(test["value"]))
        return inside if op == "in" else ~inside & column.notna()
    if op == "between":
        numbers = as_numbers(column)
        low = _scalar_like(test.get("low"), column)
        high = _scalar_like(test.get("high"), column)
        ok = numbers.notna()
        ok &= numbers >= low if low is not None else True
        ok &= numbers <= high if high is not None else True
        return ok
    compare = _OPS[op]
    if "other" in test:
        result = compare(as_numbers(column), as_numbers(data[test["other"]]))
        return result & column.notna() & data[test["other"]].notna()
    if op in ("==", "!=") and not pd.api.types.is_numeric_dtype(column):
        return compare(column.astype(object), test["value"]) & column.notna()
    return compare(as_numbers(column), _scalar_like(test["value"], column)) & column.notna()


def _inequality_valid(low: pd.Series, high: pd.Series, strict: bool) -> pd.Series:
    a, b = as_numbers(low), as_numbers(high)
    holds = b > a if strict else b >= a
    return holds | a.isna() | b.isna()


def _linear_valid(data: pd.DataFrame, spec: dict) -> pd.Series:
    total = pd.Series(float(spec.get("constant", 0.0)), index=data.index)
    missing = pd.Series(False, index=data.index)
    for column, coefficient in spec["coefficients"].items():
        values = as_numbers(data[column])
        missing |= values.isna()
        total = total + float(coefficient) * values.fillna(0.0)
    tolerance = float(spec.get("tolerance", 1e-9)) * max(1.0, float(total.abs().max() or 0.0))
    holds = total > 0 if spec.get("strict") else total >= -tolerance
    return holds | missing


def _bounds_valid(data: pd.DataFrame, spec: dict) -> pd.Series:
    column = data[spec["column"]]
    values = as_numbers(column)
    strict = bool(spec.get("strict"))
    ok = pd.Series(True, index=data.index)
    low = _scalar_like(spec.get("low"), column)
    high = _scalar_like(spec.get("high"), column)
    if low is not None:
        ok &= values > low if strict else values >= low
    if high is not None:
        ok &= values < high if strict else values <= high
    return ok | values.isna()


def _combination_keys(data: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Return one hashable key per row for the values of ``columns`` (missing -> None)."""
    frame = data[columns].astype(object).where(data[columns].notna(), None)
    return pd.Series(list(map(tuple, frame.to_numpy().tolist())), index=data.index)


def _fixed_combinations_valid(data: pd.DataFrame, spec: dict) -> pd.Series:
    if "allowed" not in spec:
        raise ValueError(
            f"Fixed combinations over {spec['columns']} were not fitted: call fit_specs on the "
            "training data first."
        )
    allowed = {tuple(_normalise(v) for v in combo) for combo in spec["allowed"]}
    keys = _combination_keys(data, list(spec["columns"]))
    return keys.map(lambda key: tuple(_normalise(v) for v in key) in allowed).astype(bool)


def _normalise(value):
    """Make numbers, numpy scalars and strings compare the same after a JSON round trip."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def is_valid(data: pd.DataFrame, spec: dict) -> pd.Series:
    """Return, for each row, whether it satisfies one constraint or condition.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows to check; must hold every column the specification reads.
    spec : dict
        A constraint or condition specification (see the module docstring).

    Returns
    -------
    pandas.Series of bool
        One value per row of ``data``.
    """
    kind = spec.get("kind")
    if kind == "inequality":
        return _inequality_valid(data[spec["low"]], data[spec["high"]], bool(spec.get("strict")))
    if kind == "range":
        strict = bool(spec.get("strict"))
        first = _inequality_valid(data[spec["low"]], data[spec["middle"]], strict)
        return first & _inequality_valid(data[spec["middle"]], data[spec["high"]], strict)
    if kind == "fixed_combinations":
        return _fixed_combinations_valid(data, spec)
    if kind == "fixed_increments":
        values = as_numbers(data[spec["column"]])
        ratio = values / float(spec["increment"])
        return np.isclose(ratio, np.round(ratio)) | values.isna()
    if kind == "one_hot":
        block = data[list(spec["columns"])].apply(pd.to_numeric, errors="coerce")
        return (block.isin([0, 1]).all(axis=1)) & (block.sum(axis=1) == 1)
    if kind == "linear":
        return _linear_valid(data, spec)
    if kind == "bounds":
        return _bounds_valid(data, spec)
    if kind == "implication":
        premise = _all_tests(data, spec["if"])
        return ~premise | _all_tests(data, spec["then"])
    if "op" in spec:
        return _test_holds(data, spec)
    raise ValueError(f"Unknown constraint kind {kind!r} in {spec!r}.")


def _all_tests(data: pd.DataFrame, tests: Iterable[dict]) -> pd.Series:
    result = pd.Series(True, index=data.index)
    for test in tests:
        result &= _test_holds(data, test).astype(bool)
    return result


def all_valid(data: pd.DataFrame, specs: Iterable[dict]) -> pd.Series:
    """Return, for each row, whether it satisfies every specification.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows to check.
    specs : iterable of dict
        Constraint and condition specifications.

    Returns
    -------
    pandas.Series of bool
        One value per row of ``data``.
    """
    result = pd.Series(True, index=data.index)
    for spec in specs:
        result &= is_valid(data, spec).astype(bool)
    return result


def fit_specs(data: pd.DataFrame, specs: Iterable[dict]) -> list[dict]:
    """Return copies of ``specs`` with fixed combinations learned from ``data``.

    Parameters
    ----------
    data : pandas.DataFrame
        The training rows.
    specs : iterable of dict
        Constraint specifications.

    Returns
    -------
    list of dict
        The specifications; each ``fixed_combinations`` one gains an ``allowed`` list of tuples.
    """
    fitted = []
    for spec in specs:
        spec = dict(spec)
        if spec.get("kind") == "fixed_combinations" and "allowed" not in spec:
            keys = _combination_keys(data, list(spec["columns"])).drop_duplicates()
            spec["allowed"] = [[_normalise(v) for v in key] for key in keys]
        fitted.append(spec)
    return fitted


def describe(spec: dict) -> str:
    """Return a short human-readable text for a specification.

    Parameters
    ----------
    spec : dict
        A constraint or condition specification.

    Returns
    -------
    str
        For example ``"start_date <= end_date"``.
    """
    kind = spec.get("kind")
    if kind == "inequality":
        return f"{spec['low']} {'<' if spec.get('strict') else '<='} {spec['high']}"
    if kind == "range":
        sign = "<" if spec.get("strict") else "<="
        return f"{spec['low']} {sign} {spec['middle']} {sign} {spec['high']}"
    if kind == "linear":
        terms = " + ".join(f"{a:g}*{c}" for c, a in spec["coefficients"].items())
        return f"{terms} + {spec.get('constant', 0):g} {'>' if spec.get('strict') else '>='} 0"
    if kind == "bounds":
        return f"{spec.get('low')} <= {spec['column']} <= {spec.get('high')}"
    if kind == "implication":
        premise = " and ".join(describe(t) for t in spec["if"])
        return f"if {premise} then " + " and ".join(describe(t) for t in spec["then"])
    if kind in ("fixed_combinations", "one_hot"):
        return f"{kind}({', '.join(spec['columns'])})"
    if kind == "fixed_increments":
        return f"{spec['column']} in multiples of {spec['increment']}"
    if "other" in spec:
        return f"{spec['column']} {spec['op']} {spec['other']}"
    if spec.get("op") == "between":
        return f"{spec.get('low')} <= {spec['column']} <= {spec.get('high')}"
    return f"{spec['column']} {spec['op']} {spec.get('value', '')}".strip()


def sdv_compatible(spec: dict, sdtypes: dict[str, str]) -> bool:
    """Return whether SDV 2.0 has a built-in constraint for ``spec`` on these columns.

    Parameters
    ----------
    spec : dict
        A constraint specification.
    sdtypes : dict
        Column name to sdtype, as in the table's metadata.

    Returns
    -------
    bool
        True if :func:`to_sdv` gives an ``sdv.cag`` object rather than a programmable one.
    """
    kind = spec.get("kind")
    types = {sdtypes.get(c) for c in spec_columns(spec)}
    if kind in ("inequality", "range"):
        return types <= {"numerical"} or types == {"datetime"}
    if kind == "fixed_combinations":
        return types <= set(_DISCRETE_SDTYPES) and len(spec["columns"]) >= 2
    if kind == "fixed_increments":
        increment = float(spec["increment"])
        return types <= set(_NUMERIC_SDTYPES) and increment.is_integer() and increment > 0
    return kind == "one_hot"


def to_sdv(spec: dict, table_name: str, sdtypes: dict[str, str]):
    """Build the SDV constraint object for one specification.

    Kinds that SDV 2.0 has as built-ins become ``sdv.cag`` objects when the columns' sdtypes
    allow; every other specification becomes a reject-only
    ``SingleTableProgrammableConstraint`` whose ``is_valid`` is :func:`is_valid`.

    Parameters
    ----------
    spec : dict
        A constraint specification (fixed combinations need not be fitted).
    table_name : str
        The table's name in the metadata.
    sdtypes : dict
        Column name to sdtype.

    Returns
    -------
    object
        An ``sdv.cag`` constraint or a ``RejectConstraint``.
    """
    from sdv import cag

    if not sdv_compatible(spec, sdtypes):
        return RejectConstraint(spec, table_name=table_name)

    kind = spec["kind"]
    if kind == "inequality":
        return cag.Inequality(
            spec["low"], spec["high"], bool(spec.get("strict")), table_name=table_name
        )
    if kind == "range":
        return cag.Range(
            spec["low"],
            spec["middle"],
            spec["high"],
            strict_boundaries=bool(spec.get("strict")),
            table_name=table_name,
        )
    if kind == "fixed_combinations":
        return cag.FixedCombinations(list(spec["columns"]), table_name=table_name)
    if kind == "fixed_increments":
        return cag.FixedIncrements(spec["column"], int(spec["increment"]), table_name=table_name)
    return cag.OneHotEncoding(list(spec["columns"]), table_name=table_name)


def _quote(column: str) -> str:
    return f"`{column}`"


def _number(value, sdtype: str | None) -> str:
    """Write a rule literal: numbers as they are, datetimes as nanoseconds since 1970."""
    if sdtype == "datetime" or isinstance(value, str):
        return repr(float(pd.Timestamp(value).value))
    return repr(float(value))


def _test_expression(test: dict, sdtypes: dict[str, str]) -> str | None:
    """One test as a rule expression, or None if the rule language lacks it."""
    column, op = _quote(test["column"]), test["op"]
    if op in ("isnull", "notnull", "between"):
        return None
    if "other" in test:
        return f"{column} {op} {_quote(test['other'])}"
    value = test["value"]
    if op in ("in", "notin"):
        return f"{column} {'in' if op == 'in' else 'not in'} {list(value)!r}"
    if sdtypes.get(test["column"]) in ("numerical", "datetime"):
        return f"{column} {op} {_number(value, sdtypes.get(test['column']))}"
    if op in ("==", "!="):
        # A category test, also for numeric codes (an ordinal 'previous == 0').
        return f"{column} {'in' if op == '==' else 'not in'} {[value]!r}"
    return None


def rule_expression(spec: dict, sdtypes: dict[str, str]) -> str | None:
    """Write a specification in JANUS's rule language (``sdv_janus.constraints.Rule``).

    Parameters
    ----------
    spec : dict
        A constraint specification.
    sdtypes : dict
        Column name to sdtype (datetime bounds become nanoseconds).

    Returns
    -------
    str or None
        For example ``"`a` <= `b`"`` or ``"if `k` in ['x'] then `c` > 0.0"``; None when the
        rule language cannot express it (missing-value tests, fixed combinations, order
        comparisons on categorical or ordinal columns).
    """
    kind = spec.get("kind")
    strict = bool(spec.get("strict"))
    if kind == "inequality":
        return f"{_quote(spec['high'])} {'>' if strict else '>='} {_quote(spec['low'])}"
    if kind == "range":
        sign = "<" if strict else "<="
        names = [_quote(spec[k]) for k in ("low", "middle", "high")]
        return f" {sign} ".join(names)
    if kind == "linear":
        terms = " + ".join(f"{float(a)!r} * {_quote(c)}" for c, a in spec["coefficients"].items())
        constant = float(spec.get("constant", 0.0))
        return f"{terms} + {constant!r} {'>' if strict else '>='} 0"
    if kind == "bounds" and sdtypes.get(spec["column"]) in ("numerical", "datetime"):
        return _bounds_expression(spec, sdtypes.get(spec["column"]))
    if kind == "implication":
        premise = [_test_expression(t, sdtypes) for t in spec["if"]]
        conclusion = [_test_expression(t, sdtypes) for t in spec["then"]]
        if None in premise + conclusion:
            return None
        return f"if {' and '.join(premise)} then {' and '.join(conclusion)}"
    return None


def _bounds_expression(spec: dict, sdtype: str | None) -> str | None:
    sign = "<" if spec.get("strict") else "<="
    column = _quote(spec["column"])
    low, high = spec.get("low"), spec.get("high")
    if low is not None and high is not None:
        return f"{_number(low, sdtype)} {sign} {column} {sign} {_number(high, sdtype)}"
    if low is not None:
        return f"{column} {'>' if sign == '<' else '>='} {_number(low, sdtype)}"
    if high is not None:
        return f"{column} {sign} {_number(high, sdtype)}"
    return None


def _programmable_base():
    from sdv.cag import SingleTableProgrammableConstraint

    return SingleTableProgrammableConstraint


class RejectConstraint(_programmable_base()):
    """A reject-only SDV programmable constraint that checks one specification.

    SDV keeps only the sampled rows for which :meth:`is_valid` is true, so this is SDV's own
    rejection sampling applied to a rule it cannot express natively.

    Parameters
    ----------
    spec : dict
        The constraint specification; fixed combinations are learned in :meth:`fit`.
    table_name : str, optional
        The table's name in the metadata.
    """

    def __init__(self, spec: dict, table_name: str | None = None):
        self.spec = dict(spec)
        self.table_name = table_name

    def fit(self, data, metadata):
        """Learn the allowed tuples of a fixed-combinations specification."""
        self.spec = fit_specs(data, [self.spec])[0]

    def transform(self, data):
        """Return the data unchanged (the rule is enforced by rejection)."""
        return data

    def get_updated_metadata(self, metadata):
        """Return the metadata unchanged, or refuse if an earlier constraint took a column.

        Refusing (``ConstraintNotMetError``) makes SDV enforce this constraint on the final
        rows, after every column-rewriting constraint has been reversed.
        """
        from sdv.cag._errors import ConstraintNotMetError

        table_name = self.table_name or next(iter(metadata.tables))
        present = metadata.tables[table_name].columns
        missing = [c for c in spec_columns(self.spec) if c not in present]
        if missing:
            raise ConstraintNotMetError(f"Columns {missing} are rewritten by other constraints.")
        return metadata

    def reverse_transform(self, transformed_data):
        """Return the data unchanged."""
        return transformed_data

    def is_valid(self, synthetic_data):
        """Return whether each row satisfies the specification."""
        return is_valid(synthetic_data, self.spec)
