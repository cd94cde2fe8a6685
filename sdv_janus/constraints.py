"""Constraints: SDV's constraint objects and the project's own, in the engine's form.

SDV 2.0's built-in constraints (``sdv.cag``: Inequality, Range, FixedCombinations,
FixedIncrements, OneHotEncoding) are attached with SDV's ``add_constraints`` unchanged and
enforced by the engine itself, without SDV's reparameterising transforms or reject loop.

The project adds what SDV 2.0 lacks, through the same ``add_constraints``:

``Rule(expression)``
    A rule written as a Python-like expression over column names::

        Rule('salary_offered >= salary_requested')
        Rule('18 <= age <= 90')                        # scalar bounds, chained
        Rule('2 * base + fee - 3 * discount > 100')    # linear, any number of columns
        Rule('total == base + fee')                    # equalities
        Rule("if country == 'US' then salary >= 30000")
        Rule("plan in ['basic', 'free'] or seats > 5")
        Rule('`education-num` >= 9')                   # backticks quote unusual names

    Arithmetic is linear: ``+``, ``-``, products and divisions by numbers. Comparisons
    (``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``) between linear expressions of numerical or
    datetime columns; ``==``, ``!=``, ``in``, ``not in`` between a categorical column and values.
    ``and``, ``or``, ``not`` and ``if A then B`` combine them. A rule on a null value holds
    vacuously, as SDV's own constraints do.
``ScalarRange(column, low, high)`` and ``ScalarInequality(column, relation, value)``
    Shorthands for the two commonest rules.

Anything else, a ``ProgrammableConstraint`` among them, cannot be translated: it is handled as
SDV handles it (reject sampling) with a warning that it lies outside the guarantee.
"""

import ast
import logging
import re

import pandas as pd
from sdv.cag._errors import ConstraintNotMetError
from sdv.cag.base import BaseConstraint

from sdv_janus.engine.rules import AllOf, AllowedTuples, AnyOf, InSet, Linear, Not
from sdv_janus.errors import JanusInputError

LOGGER = logging.getLogger(__name__)

_IMPLICATION = re.compile(r"^\s*if\s+(?P<condition>.+?)\s+then\s+(?P<rule>.+)$", re.S)
_QUOTED_NAME = re.compile(r"`([^`]+)`")
_RELATIVE_TOLERANCE = 1e-9


class Rule(BaseConstraint):
    """A constraint written as an expression (see the module documentation for the form).

    Parameters
    ----------
    expression : str
        The rule, e.g. ``'checkout >= checkin'`` or ``"if plan == 'basic' then seats <= 5"``.
    name : str, optional
        How errors refer to the rule; the expression itself by default.
    table_name : str, optional
        The table, for SDV's bookkeeping.
    """

    def __init__(self, expression, name=None, table_name=None):
        super().__init__()
        if not isinstance(expression, str) or not expression.strip():
            raise JanusInputError(f"A Rule needs a non-empty expression, got {expression!r}.")

        self.expression = expression
        self.name = name
        self.table_name = table_name
        self._formula = parse_rule(expression, name or expression)

    @property
    def formula(self):
        """The rule as an engine formula."""
        return self._formula

    @property
    def columns(self):
        """The columns the rule mentions."""
        return sorted(_columns_of(self._formula))

    def _validate_constraint_with_metadata(self, metadata):
        table_name = self._get_single_table_name(metadata)
        known = set(metadata.tables[table_name].columns)
        unknown = [column for column in self.columns if column not in known]
        if unknown:
            raise ConstraintNotMetError(
                f"The rule '{self.name or self.expression}' names unknown column(s) {unknown}. "
                "Quote column names with spaces, dashes or dots in backticks: `hours-per-week`."
            )

        columns = metadata.tables[table_name].columns
        not_numbers = [
            column
            for column in sorted(_arithmetic_columns(self._formula))
            if columns[column].get("sdtype") not in _ARITHMETIC_SDTYPES
        ]
        if not_numbers:
            raise ConstraintNotMetError(
                f"The rule '{self.name or self.expression}' does arithmetic or comparisons on "
                f"{not_numbers}, whose sdtype is not numerical, datetime or ordinal. Compare "
                "categories with == or in, e.g. \"plan in ['basic', 'pro']\"."
            )

    def _validate_constraint_with_data(self, data, metadata):
        table_name = self._get_single_table_name(metadata)
        valid = self._is_valid(data, metadata)[table_name]
        if not valid.all():
            invalid = data[table_name].loc[~valid, self.columns]
            raise ConstraintNotMetError(
                f"The rule '{self.name or self.expression}' is not met by {int((~valid).sum())} "
                f"training row(s), for example:\n{invalid.head(5)}"
            )

    def _fit(self, data, metadata):
        """Nothing to learn: the engine enforces the rule."""

    def _transform(self, data):
        return data

    def _reverse_transform(self, data):
        return data

    def _is_valid(self, data, metadata):
        table_name = self._get_single_table_name(metadata)
        return {table_name: holds(self._formula, data[table_name])}


class ScalarRange(Rule):
    """``low <= column <= high`` (strict ends with ``strict=True``).

    Parameters
    ----------
    column : str
        A numerical or datetime column.
    low, high : float
        The bounds.
    strict : bool, default=False
        Whether the bounds are excluded.
    """

    def __init__(self, column, low, high, strict=False, table_name=None):
        relation = "<" if strict else "<="
        super().__init__(
            f"{low!r} {relation} `{column}` {relation} {high!r}", table_name=table_name
        )
        self.column, self.low, self.high, self.strict = column, low, high, strict


class ScalarInequality(Rule):
    """``column <relation> value``, e.g. ``ScalarInequality('age', '>=', 18)``.

    Parameters
    ----------
    column : str
        A numerical or datetime column.
    relation : str
        One of ``'<'``, ``'<='``, ``'>'``, ``'>='``.
    value : float
        The bound.
    """

    def __init__(self, column, relation, value, table_name=None):
        if relation not in ("<", "<=", ">", ">="):
            raise JanusInputError(
                f"ScalarInequality relation must be one of '<', '<=', '>', '>=', got {relation!r}."
            )

        super().__init__(f"`{column}` {relation} {value!r}", table_name=table_name)
        self.column, self.relation, self.value = column, relation, value


def parse_rule(expression, name):
    """Parse a rule expression into an engine formula.

    Raises
    ------
    JanusInputError
        When the expression is not of the supported form; the message names the rule.
    """
    implication = _IMPLICATION.match(expression)
    if implication:
        text = f"(not ({implication['condition']})) or ({implication['rule']})"
    else:
        text = expression

    quoted = {}

    def placeholder(match):
        key = f"__column_{len(quoted)}__"
        quoted[key] = match.group(1)
        return key

    text = _QUOTED_NAME.sub(placeholder, text)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise JanusInputError(f"The rule '{name}' cannot be parsed: {error.msg}.") from error

    return _Translator(name, quoted).formula(tree.body)


class _Translator:
    """Walks a parsed expression and builds the engine formula."""

    _FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
    _SYMBOLS = {
        ast.Lt: "<",
        ast.LtE: "<=",
        ast.Gt: ">",
        ast.GtE: ">=",
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.In: "in",
        ast.NotIn: "not in",
    }

    def __init__(self, name, quoted):
        self.name, self.quoted = name, quoted

    def fail(self, what):
        raise JanusInputError(f"The rule '{self.name}' is not supported: {what}.")

    def formula(self, node):
        if isinstance(node, ast.BoolOp):
            items = tuple(self.formula(value) for value in node.values)
            return AllOf(items) if isinstance(node.op, ast.And) else AnyOf(items)

        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return Not(self.formula(node.operand))

        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            parts = tuple(
                self.comparison(sides[i], self._SYMBOLS.get(type(op)), sides[i + 1])
                for i, op in enumerate(node.ops)
            )
            return parts[0] if len(parts) == 1 else AllOf(parts)

        return self.fail(f"{ast.unparse(node)!r} is not a comparison")

    def comparison(self, left, relation, right):
        if relation is None:
            self.fail("unknown comparison operator")

        if relation in ("in", "not in") or self.is_value(left) or self.is_value(right):
            return self.category_test(left, relation, right)

        difference = self.linear(left, 1.0)
        for column, coefficient in self.linear(right, -1.0).items():
            difference[column] = difference.get(column, 0.0) + coefficient

        return self.linear_atoms(difference, relation)

    def linear_atoms(self, difference, relation):
        """``difference <relation> 0`` as atoms (the constant is under the key None)."""
        constant = difference.pop(None, 0.0)
        terms = tuple((column, value) for column, value in difference.items() if value != 0.0)
        if not terms:
            self.fail("it compares numbers only")

        negated = tuple((column, -value) for column, value in terms)
        greater = Linear(terms, constant, False, self.name)
        if relation in (">=", ">"):
            return Linear(terms, constant, relation == ">", self.name)

        if relation in ("<=", "<"):
            return Linear(negated, -constant, relation == "<", self.name)

        lower = Linear(negated, -constant, False, self.name)
        if relation == "==":
            return AllOf((greater, lower))

        return AnyOf(
            (Linear(terms, constant, True, self.name), Linear(negated, -constant, True, self.name))
        )

    def is_value(self, node):
        """A string, boolean, None or collection of constants: the side of a category test."""
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return True

        if not isinstance(node, ast.Constant):
            return False

        is_number = isinstance(node.value, (int, float)) and not isinstance(node.value, bool)
        return not is_number

    def category_test(self, left, relation, right):
        column_node, values_node = (left, right) if self.is_column(left) else (right, left)
        if not self.is_column(column_node):
            self.fail(f"{ast.unparse(left)!r} {relation} {ast.unparse(right)!r} names no column")

        column = self.column(column_node)
        values = self.values(values_node)
        if relation in ("==", "in"):
            return InSet(column, values, self.name)

        if relation in ("!=", "not in"):
            return InSet(column, values, self.name, negated=True)

        return self.fail(f"'{relation}' cannot compare the category column '{column}'")

    def values(self, node):
        try:
            value = ast.literal_eval(node)
        except ValueError:
            self.fail(f"{ast.unparse(node)!r} is not a constant")

        return tuple(value) if isinstance(value, (list, tuple, set)) else (value,)

    def is_column(self, node):
        return isinstance(node, ast.Name)

    def column(self, node):
        return self.quoted.get(node.id, node.id)

    def linear(self, node, scale):
        """A linear expression as {column: coefficient, None: constant}, times ``scale``."""
        if isinstance(node, ast.Name):
            return {self.column(node): scale}

        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return {None: scale * float(node.value)}

        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1.0 if isinstance(node.op, ast.USub) else 1.0
            return self.linear(node.operand, sign * scale)

        if isinstance(node, ast.BinOp):
            return self.binary(node, scale)

        return self.fail(f"{ast.unparse(node)!r} is not a linear expression")

    def binary(self, node, scale):
        if isinstance(node.op, (ast.Add, ast.Sub)):
            result = self.linear(node.left, scale)
            sign = 1.0 if isinstance(node.op, ast.Add) else -1.0
            for key, value in self.linear(node.right, sign * scale).items():
                result[key] = result.get(key, 0.0) + value

            return result

        if isinstance(node.op, ast.Mult):
            for factor, other in ((node.left, node.right), (node.right, node.left)):
                number = self.linear(factor, 1.0)
                if list(number) == [None]:
                    return self.linear(other, scale * number[None])

        if isinstance(node.op, ast.Div):
            number = self.linear(node.right, 1.0)
            if list(number) == [None] and number[None] != 0:
                return self.linear(node.left, scale / number[None])

        return self.fail(f"{ast.unparse(node)!r} is not linear")


_ARITHMETIC_SDTYPES = ("numerical", "datetime", "ordinal")


def _arithmetic_columns(formula):
    """Columns a formula uses in linear (arithmetic) atoms."""
    if isinstance(formula, Linear):
        return {column for column, _ in formula.coefficients}

    if isinstance(formula, (InSet, AllowedTuples)):
        return set()

    if isinstance(formula, Not):
        return _arithmetic_columns(formula.item)

    return set().union(*(_arithmetic_columns(item) for item in formula.items))


def _columns_of(formula):
    """Columns a formula mentions."""
    if isinstance(formula, (Linear, InSet, AllowedTuples)):
        return set(formula.columns)

    if isinstance(formula, Not):
        return _columns_of(formula.item)

    return set().union(*(_columns_of(item) for item in formula.items))


def holds(formula, frame):
    """Boolean Series: whether each row of ``frame`` satisfies ``formula`` (nulls pass)."""
    if isinstance(formula, Linear):
        total = pd.Series(formula.constant, index=frame.index, dtype=float)
        scale = pd.Series(abs(formula.constant), index=frame.index, dtype=float)
        missing = pd.Series(False, index=frame.index)
        for column, coefficient in formula.coefficients:
            values = _as_numbers(frame[column])
            missing |= values.isna()
            total = total + coefficient * values
            scale = scale + (coefficient * values).abs()

        # Sums of floats carry rounding noise: a non-strict rule (an equality is two of them)
        # holds within 1e-9 of the size of its terms.
        satisfied = total > 0 if formula.strict else total >= -_RELATIVE_TOLERANCE * scale
        return satisfied | missing

    if isinstance(formula, InSet):
        inside = frame[formula.column].isin(list(formula.values))
        return ~inside if formula.negated else inside

    if isinstance(formula, AllowedTuples):
        rows = set(map(tuple, formula.rows or ()))
        keys = frame[list(formula.columns)].itertuples(index=False, name=None)
        return pd.Series([key in rows for key in keys], index=frame.index)

    if isinstance(formula, Not):
        return ~holds(formula.item, frame)

    results = [holds(item, frame) for item in formula.items]
    combined = results[0]
    for result in results[1:]:
        combined = combined & result if isinstance(formula, AllOf) else combined | result

    return combined


def _as_numbers(series):
    """Numbers for arithmetic: datetimes as nanoseconds since 1970, the rest as floats."""
    if pd.api.types.is_datetime64_any_dtype(series):
        numbers = series.astype("int64").astype(float)
        return numbers.where(series.notna())

    return pd.to_numeric(series, errors="coerce").astype(float)


def translate(constraint):
    """Translate one attached constraint into an engine formula.

    Parameters
    ----------
    constraint : sdv.cag.base.BaseConstraint
        An SDV built-in or one of this module's constraints.

    Returns
    -------
    formula or None
        None when the constraint cannot be translated (it stays with SDV's reject sampling).
    """
    if isinstance(constraint, Rule):
        return constraint.formula

    kind = type(constraint).__name__
    parameters = constraint.get_constraint_dict()["parameters"]
    name = repr(constraint)
    if kind == "Inequality":
        low, high = parameters["low_column_name"], parameters["high_column_name"]
        strict = parameters.get("strict_boundaries", False)
        return Linear(((high, 1.0), (low, -1.0)), 0.0, strict, name)

    if kind == "Range":
        low = parameters["low_column_name"]
        middle, high = parameters["middle_column_name"], parameters["high_column_name"]
        strict = parameters.get("strict_boundaries", True)
        return AllOf(
            (
                Linear(((middle, 1.0), (low, -1.0)), 0.0, strict, name),
                Linear(((high, 1.0), (middle, -1.0)), 0.0, strict, name),
            )
        )

    if kind in ("FixedCombinations", "OneHotEncoding"):
        return AllowedTuples(tuple(parameters["column_names"]), None, name)

    return None


def increments_of(constraints):
    """``{column: increment}`` for the FixedIncrements constraints among ``constraints``."""
    increments = {}
    for constraint in constraints:
        if type(constraint).__name__ == "FixedIncrements":
            parameters = constraint.get_constraint_dict()["parameters"]
            increments[parameters["column_name"]] = float(parameters["increment_value"])

    return increments
