"""Reverse-topological back-filling of linear and table constraints.

The sampler draws the columns of a row one after another, in a topological order
``x_1, ..., x_n`` of the network. A rule that mentions a late column can turn an early draw into
a dead end: with ``a <= b`` and ``b`` at most 10, a draw ``a = 12`` leaves no valid ``b``.
Back-filling removes every dead end before the first row is drawn. It eliminates the columns
from the last to the first and, after each step, keeps the rules on the prefix ``x_1..x_k``
that any completion of the row implies. Each rule, given or derived, is attached to the last
column it mentions. When the sampler draws ``x_k`` inside the bounds that the rules attached to
``x_k`` give (:meth:`BackfillPlan.linear_bounds`, :meth:`BackfillPlan.allowed_states`), the
values drawn so far can always be completed into a row that satisfies every rule. No row is
ever rejected.

Two kinds of rule are handled, on disjoint sets of columns.

* :class:`LinearRule`, ``sum_i a_i x_i + b >= 0`` (or ``> 0``), over numerical columns. The
  elimination is Fourier-Motzkin: every lower bound on the eliminated column is paired with
  every upper bound. A pair that mixes a strict and a non-strict row gives a strict row. The
  training range of each numerical column that some rule mentions enters as two rows without
  a name, so that rules which no value inside the range can satisfy are found as well.
* :class:`TableRule`, a set of allowed tuples over categorical columns encoded as integer
  states. Tables that share columns are joined into one table (natural join), and the joined
  table is projected on each prefix of its columns by dropping the later columns.

A contradiction (a derived row ``0 >= c`` with ``c > 0``, or ``0 > 0``; an empty join) raises
:class:`InfeasibleConstraintsError` from :func:`backfill`, naming the user rules it came from.

Notes
-----
Numerical care. Every row is scaled so that its largest absolute coefficient is 1. Each row
carries the magnitude of the terms it was summed from, and a coefficient or constant below 1e-12
of that magnitude is rounding noise: it counts as zero (so a derived ``1e-17 > 0`` is the
contradiction ``0 > 0``, and ``-1e-17 >= 0`` is no contradiction). Bounds computed from drawn
values, and the implication tests that drop redundant rows, use a tolerance of 1e-9 relative to
the size of the values involved, so a drawn row may miss a rule by about that much;
:meth:`BackfillPlan.linear_bounds` collapses bounds that meet or cross by less than that into a
single closed point rather than leave the sampler an empty interval.

Redundant rows. Fourier-Motzkin can square the number of rows at each step. Parallel rows (one
a positive multiple of another, duplicates included) keep only the tightest, always. When
eliminating a column would more than double the system and take it past ``lp_threshold`` rows
(default :data:`LP_PRUNE_THRESHOLD`), the rows on that column are first tested: against
the bounding box of the single-column rows, then by a linear program each
(``scipy.optimize.linprog``, HiGHS) that starts from a small working set of rows and adds
the rows its solution violates. A row is dropped only when the rows kept imply it, and only
after the program's dual multipliers, checked by hand, certify it. The test runs on the closure
of the strict rows, which keeps it exact for the set of solutions (a strict row is dropped only
when the others imply it strictly).

Integer columns. Fourier-Motzkin is exact over the reals only. For the columns listed in
``integer_columns`` back-filling does two things. A row that sums integer columns with
coefficients +1 and -1 only takes integer values on the left, so its constant is rounded
(``x > 3`` becomes ``x >= 4``, ``2 x >= 7`` becomes ``x >= 4``, ``a < b`` becomes
``b - a >= 1``), in the given rules and in every derived one. And the bounds that
:meth:`BackfillPlan.linear_bounds` returns for an integer column are rounded inward. This is
exact for bounds on single integer columns and for differences ``x_i - x_j + c >= 0`` (or
``> 0``) between integer columns, chains of them included: every interval then has integer
ends. Beyond that (other coefficients, rules that mix integer and real columns) the guarantee
holds for the real relaxation only: a prefix that admits a real completion may admit no integer
one (``x = 2 y`` after drawing ``x = 1``), so ``linear_bounds`` can return ``low > high`` for an
integer column, and rules that have real solutions but no integer solution are not always
reported as infeasible.

Missing values. A rule is ignored, for the rows concerned, when one of the earlier columns it
mentions is NaN there (a missing value breaks no rule). The completion guarantee is stated for
prefixes without missing values.

Sizes that stay fast. CPU time of :func:`backfill` (best of up to 5 runs, Python 3.11, numpy
2.4, scipy 1.17, one core of a shared 2-core container), printed by
``PYTHONPATH=. python tests/unit/test_feasibility.py`` from the repository root:

=================================================================  ===========
constraint set (ranges [0, 1] unless said)                         CPU time
=================================================================  ===========
chain ``x_1 <= x_2 <= ... <= x_11`` (10 rules)                     3 ms
chain of 20 rules                                                  7 ms
chain of 50 rules                                                  30 ms
200 random rules ``x_a + c <= x_b`` over 30 columns, [0, 1000]     22 ms
400 such rules over 60 columns                                     0.14 s
5 dense random rules over 6 columns                                25 ms
10 dense random rules over 6 columns                               0.7 s
15 dense random rules over 6 columns                               5 s
20 dense random rules over 6 columns                               12 s
one table of 1,000 tuples over 6 columns                           4 ms
3 tables of 200 tuples chained over 7 columns (58,000 joined)      0.36 s
=================================================================  ===========

Bounds and rules that compare two columns (``x_a + c <= x_b``, ranges, equalities: what SDV's
constraints translate to) stay in the milliseconds into the hundreds of rules, since merging
parallel rows keeps at most two rows per pair of columns, whatever the elimination derives.
Dense rules over many columns are the hard case: the projection of a polytope can have far more
faces than the polytope itself, and each candidate row costs one linear program (about 1.5 ms),
so more than about 10 dense rules over 6 or more columns take seconds. Tables cost what their
join costs: chained tables that share columns multiply their sizes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

from sdv_janus.engine.errors import JanusError

LOGGER = logging.getLogger(__name__)

#: Rounding noise: a coefficient or constant below this fraction of the terms it was summed
#: from counts as zero during the elimination.
ZERO_TOLERANCE = 1e-12

#: Tolerance, relative to the size of the values involved, for comparing bounds and for
#: deciding that a row is implied by others.
RELATIVE_TOLERANCE = 1e-9

#: An elimination that would grow the system past this many rows first prunes redundant rows.
LP_PRUNE_THRESHOLD = 24

# Eliminations that would multiply the row count by more than this prune redundant rows first.
_GROWTH_FACTOR = 2

# Above this many rows, redundancy programs start from a small working set of rows.
_SMALL_SYSTEM = 200

_HIGHS_OPTIONS = {
    "primal_feasibility_tolerance": 1e-10,
    "dual_feasibility_tolerance": 1e-10,
}


@dataclass(frozen=True)
class LinearRule:
    """A linear rule ``sum_i coefficients[col_i] * x_i + constant >= 0`` (``> 0`` if strict).

    Attributes
    ----------
    coefficients : Mapping[str, float]
        Column name -> coefficient. Coefficients are finite and nonzero.
    constant : float
        The constant term.
    strict : bool, default=False
        Whether the inequality is strict.
    names : frozenset of str, default=frozenset()
        Names of the user constraints this rule derives from. Training ranges have no name.
    """

    coefficients: Mapping[str, float]
    constant: float
    strict: bool = False
    names: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TableRule:
    """A table rule: the tuple of values of ``columns`` must be one of the ``allowed`` rows.

    Attributes
    ----------
    columns : tuple of str
        The categorical columns the rule ties together, each named once.
    allowed : numpy.ndarray
        int64 array of shape ``(n_allowed, len(columns))``: the allowed tuples of states.
    names : frozenset of str, default=frozenset()
        Names of the user constraints this rule derives from.
    """

    columns: tuple[str, ...]
    allowed: np.ndarray
    names: frozenset[str] = frozenset()


class InfeasibleConstraintsError(JanusError, ValueError):
    """No row can satisfy the constraints together.

    Parameters
    ----------
    conflicting : Iterable[str]
        Names of the user constraints in conflict.
    ranges : Iterable[str], default=()
        Columns whose training range (or set of training states) takes part in the conflict.
    detail : str, default=""
        What the elimination derived, for the message.

    Attributes
    ----------
    conflicting : frozenset of str
        Names of the user constraints in conflict.
    ranges : frozenset of str
        Columns whose training range takes part in the conflict.
    """

    def __init__(self, conflicting: Iterable[str], ranges: Iterable[str] = (), detail: str = ""):
        if isinstance(conflicting, str):
            # Re-raised with a message only (SDV's sampling loop does this): keep the message.
            self.conflicting, self.ranges, self.detail = frozenset(), frozenset(), conflicting
            self._arguments = (conflicting,)
            super().__init__(conflicting)
            return

        self.conflicting = frozenset(conflicting)
        self.ranges = frozenset(ranges)
        self.detail = detail
        self._arguments = (self.conflicting, self.ranges, detail)
        super().__init__(_conflict_message(self.conflicting, self.ranges, detail))

    def __reduce__(self):
        return type(self), self._arguments


def _conflict_message(conflicting: frozenset[str], ranges: frozenset[str], detail: str) -> str:
    """Render the message of an :class:`InfeasibleConstraintsError`."""
    columns = ", ".join(repr(column) for column in sorted(ranges))
    quoted = ", ".join(repr(name) for name in sorted(conflicting))
    if not conflicting:
        message = f"The training range of {columns} admits no value"
    elif len(conflicting) == 1:
        message = f"The constraint {quoted} cannot hold"
    else:
        message = f"The constraints {quoted} cannot all hold"

    if conflicting and ranges:
        message += f" for values inside the training range of {columns}"

    if detail:
        message += f" ({detail})"

    return message + "."


@dataclass
class BackfillPlan:
    """The rules that each column must satisfy given the columns drawn before it.

    Attributes
    ----------
    order : tuple of str
        Topological order of the model columns; columns are drawn in this order.
    linear_by_column : dict of str to list of LinearRule
        The linear rules whose last column in ``order`` is the key.
    tables_by_column : dict of str to list of TableRule
        The table rules whose last column in ``order`` is the key.
    integer_columns : frozenset of str, default=frozenset()
        Numerical columns that take integer values only; their bounds are rounded inward.
    """

    order: tuple[str, ...]
    linear_by_column: dict[str, list[LinearRule]] = field(default_factory=dict)
    tables_by_column: dict[str, list[TableRule]] = field(default_factory=dict)
    integer_columns: frozenset[str] = frozenset()

    def linear_bounds(
        self, column: str, prefix_values: Mapping[str, np.ndarray], n_rows: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Compute the feasible interval of a numerical column for each row.

        Parameters
        ----------
        column : str
            The numerical column about to be drawn.
        prefix_values : Mapping[str, numpy.ndarray]
            The values already drawn for the earlier columns: float64 arrays of shape
            ``(n_rows,)``. Only the columns that the rules of ``column`` mention are read.
        n_rows : int
            Number of rows being drawn.

        Returns
        -------
        low, high : numpy.ndarray
            float64 arrays of shape ``(n_rows,)``; -inf and +inf where unbounded.
        low_strict, high_strict : numpy.ndarray
            bool arrays of shape ``(n_rows,)``: whether each bound is strict (excluded).

        Notes
        -----
        Bounds that meet or cross by rounding noise only (1e-9 of the size of the values
        involved) come back as one closed point, so that the interval is never empty after a
        prefix drawn inside its own bounds. For an integer column the bounds are integers and
        never strict; ``low > high`` there means that only a non-integer value would fit (see
        the module notes).
        """
        # Each bound carries the size of the terms it sums, which sets its rounding noise.
        low, low_size = np.full(n_rows, -np.inf), np.zeros(n_rows)
        high, high_size = np.full(n_rows, -np.inf), np.zeros(n_rows)  # negated
        low_strict = np.zeros(n_rows, dtype=bool)
        high_strict = np.zeros(n_rows, dtype=bool)
        for rule in self.linear_by_column.get(column, ()):
            bound, size = _solve_for(rule, column, prefix_values, n_rows)
            if rule.coefficients[column] > 0:
                low, low_size, low_strict = _tighter_bound(
                    (low, low_size, low_strict), (bound, size, rule.strict)
                )
            else:
                high, high_size, high_strict = _tighter_bound(
                    (high, high_size, high_strict), (-bound, size, rule.strict)
                )

        high = -high
        tol = RELATIVE_TOLERANCE * np.fmax(low_size, high_size)
        high, low_strict, high_strict = _collapse_crossing(
            (low, low_strict), (high, high_strict), tol
        )
        if column in self.integer_columns:
            low, high = _integer_bounds(low, high, low_strict, high_strict, tol)
            low_strict[:] = False
            high_strict[:] = False

        return low, high, low_strict, high_strict

    def allowed_states(
        self, column: str, prefix_states: Mapping[str, np.ndarray], n_states: int, n_rows: int
    ) -> np.ndarray | None:
        """Compute which states of a categorical column each row may take.

        Parameters
        ----------
        column : str
            The categorical column about to be drawn.
        prefix_states : Mapping[str, numpy.ndarray]
            The states already drawn for the earlier categorical columns: integer arrays of
            shape ``(n_rows,)``. Only the columns that the tables of ``column`` mention are read.
        n_states : int
            Number of states of ``column``.
        n_rows : int
            Number of rows being drawn.

        Returns
        -------
        numpy.ndarray or None
            bool array of shape ``(n_rows, n_states)``, True where the state is allowed, or None
            when no table rule involves ``column``. A row whose earlier states no allowed tuple
            extends (which a draw that follows the plan never produces) allows no state.
        """
        rules = self.tables_by_column.get(column)
        if not rules:
            return None

        mask = np.ones((n_rows, n_states), dtype=bool)
        for rule in rules:
            mask &= _table_mask(rule, column, prefix_states, n_states, n_rows)

        return mask


def _solve_for(
    rule: LinearRule, column: str, prefix_values: Mapping[str, np.ndarray], n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Solve a rule for ``column`` given the earlier columns, row by row.

    Returns the bound ``-(constant + sum of the other terms) / coefficient`` and the size of
    the terms it sums, ``(|constant| + sum |other terms|) / |coefficient|``: float64 arrays of
    shape ``(n_rows,)``. Both are NaN where an earlier value is missing.
    """
    rest = np.full(n_rows, float(rule.constant))
    size = np.full(n_rows, abs(float(rule.constant)))
    for other, coefficient in rule.coefficients.items():
        if other == column:
            continue

        if other not in prefix_values:
            raise ValueError(
                f"Cannot bound column {column!r}: its rule {sorted(rule.names)} needs the value "
                f"of {other!r}, which has not been drawn. Draw columns in `plan.order`."
            )

        term = coefficient * np.asarray(prefix_values[other], dtype=np.float64)
        rest += term
        size += np.abs(term)

    coefficient = rule.coefficients[column]
    return -rest / coefficient, size / abs(coefficient)


def _tighter_bound(
    current: tuple[np.ndarray, np.ndarray, np.ndarray], new: tuple[np.ndarray, np.ndarray, bool]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge one lower bound into the running lower bound (negate both for upper bounds).

    Each bound is ``(value, size, strict)``: float64 values and sizes of shape ``(n_rows,)``
    (the size of the terms the value sums) and strictness. Bounds closer than the rounding
    noise of their sizes (``ZERO_TOLERANCE`` times the size) are a tie: the greater value is
    kept, strict when either bound is. NaN bounds (missing inputs) change nothing.
    """
    value, size, strict = current
    new_value, new_size, new_strict = new
    replace = new_value > value
    with np.errstate(invalid="ignore"):
        noise = ZERO_TOLERANCE * np.fmax(size, new_size)
        tie = np.abs(new_value - value) <= noise

    merged_strict = np.where(tie, strict | new_strict, np.where(replace, new_strict, strict))
    merged_size = np.where(tie, np.fmax(size, new_size), np.where(replace, new_size, size))
    return np.where(replace, new_value, value), merged_size, merged_strict


def _collapse_crossing(
    low: tuple[np.ndarray, np.ndarray], high: tuple[np.ndarray, np.ndarray], tol: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse bounds that meet or cross by less than ``tol`` into the single point ``low``.

    ``low`` and ``high`` are ``(value, strict)`` pairs of arrays of shape ``(n_rows,)``. A plan
    never leaves an empty interval after a valid prefix, so such bounds are rounding noise;
    the point returned is closed on both sides, which keeps the sampler out of a dead end at
    the price of meeting a strict rule only up to that noise. Returns the new ``high`` and the
    two strictness arrays.
    """
    (low, low_strict), (high, high_strict) = low, high
    with np.errstate(invalid="ignore"):
        meet = (low - high <= tol) & ((low > high) | ((low == high) & (low_strict | high_strict)))

    return np.where(meet, low, high), low_strict & ~meet, high_strict & ~meet


def _integer_bounds(
    low: np.ndarray,
    high: np.ndarray,
    low_strict: np.ndarray,
    high_strict: np.ndarray,
    tol: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Round real bounds inward to the nearest integers inside them (infinite bounds stay).

    A bound within ``tol`` of an integer counts as that integer.
    """
    with np.errstate(invalid="ignore"):
        low = np.where(low_strict, np.floor(low + tol) + 1.0, np.ceil(low - tol))
        high = np.where(high_strict, np.ceil(high - tol) - 1.0, np.floor(high + tol))

    return low, high


def _table_mask(
    rule: TableRule,
    column: str,
    prefix_states: Mapping[str, np.ndarray],
    n_states: int,
    n_rows: int,
) -> np.ndarray:
    """Return the bool ``(n_rows, n_states)`` mask of states one table allows, row by row."""
    position = rule.columns.index(column)
    others = [index for index in range(len(rule.columns)) if index != position]
    states = rule.allowed[:, position]
    in_range = (states >= 0) & (states < n_states)
    if not others:
        allowed = np.zeros(n_states, dtype=bool)
        allowed[states[in_range]] = True
        return np.broadcast_to(allowed, (n_rows, n_states)).copy()

    # Which states each distinct earlier tuple allows.
    prefixes, prefix_ids = np.unique(rule.allowed[:, others], axis=0, return_inverse=True)
    by_prefix = np.zeros((len(prefixes), n_states), dtype=bool)
    by_prefix[prefix_ids.ravel()[in_range], states[in_range]] = True

    # Which distinct earlier tuple each row holds (-1 if none).
    drawn = np.column_stack(
        [_prefix_column(prefix_states, rule.columns[index], column) for index in others]
    )
    row_ids = _match_rows(prefixes, drawn.astype(np.int64, copy=False))
    mask = np.zeros((n_rows, n_states), dtype=bool)
    found = row_ids >= 0
    mask[found] = by_prefix[row_ids[found]]
    return mask


def _prefix_column(prefix_states: Mapping[str, np.ndarray], other: str, column: str) -> np.ndarray:
    """Fetch the drawn states of an earlier column, with a clear error when missing."""
    if other not in prefix_states:
        raise ValueError(
            f"Cannot restrict column {column!r}: its table rule needs the states of {other!r}, "
            "which have not been drawn. Draw columns in `plan.order`."
        )

    return np.asarray(prefix_states[other])


def _match_rows(keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Find each row of ``rows`` among the distinct rows of ``keys``.

    Parameters
    ----------
    keys : numpy.ndarray
        int64 array of shape ``(n_keys, width)`` with distinct rows.
    rows : numpy.ndarray
        int64 array of shape ``(n_rows, width)``.

    Returns
    -------
    numpy.ndarray
        int64 array of shape ``(n_rows,)``: the index in ``keys`` of each row, or -1.
    """
    if len(keys) == 0 or len(rows) == 0:
        return np.full(len(rows), -1, dtype=np.int64)

    key_codes, row_codes = _tuple_codes(keys, rows)
    sorter = np.argsort(key_codes)
    positions = np.searchsorted(key_codes, row_codes, sorter=sorter)
    positions = np.minimum(positions, len(keys) - 1)
    found = sorter[positions]
    return np.where(key_codes[found] == row_codes, found, -1)


def _tuple_codes(keys: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One integer per tuple of states (mixed radix), equal for equal tuples.

    When the radix would overflow, the ranks of the distinct tuples serve instead.
    """
    low = np.minimum(keys.min(axis=0), rows.min(axis=0))
    sizes = np.maximum(keys.max(axis=0), rows.max(axis=0)) - low + 1
    if np.prod(sizes.astype(float)) >= 2.0**62:
        _, ids = np.unique(np.concatenate([keys, rows]), axis=0, return_inverse=True)
        ids = ids.ravel()
        return ids[: len(keys)], ids[len(keys) :]

    radix = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]]).astype(np.int64)
    return (keys - low) @ radix, (rows - low) @ radix


# Linear rules: Fourier-Motzkin elimination over arrays of rows.


@dataclass
class _Rows:
    """A system of rows ``coef @ x + const >= 0`` (``> 0`` where ``strict``).

    Attributes
    ----------
    coef : numpy.ndarray
        float64, shape ``(m, n)``: one column per numerical column of the system.
    const : numpy.ndarray
        float64, shape ``(m,)``.
    strict : numpy.ndarray
        bool, shape ``(m,)``.
    scale : numpy.ndarray
        float64, shape ``(m,)``: sum of the magnitudes of the constants each row was summed
        from, which sets the tolerance on its constant.
    names : list of frozenset of str
        The user constraints each row derives from.
    ranges : list of frozenset of str
        The columns whose training range each row derives from.
    """

    coef: np.ndarray
    const: np.ndarray
    strict: np.ndarray
    scale: np.ndarray
    names: list[frozenset[str]]
    ranges: list[frozenset[str]]

    def __len__(self) -> int:
        return len(self.const)

    def take(self, index: np.ndarray) -> _Rows:
        """Return the rows at ``index`` (int array, or bool mask of shape ``(m,)``)."""
        index = np.flatnonzero(index) if index.dtype == bool else index
        return _Rows(
            self.coef[index],
            self.const[index],
            self.strict[index],
            self.scale[index],
            [self.names[i] for i in index],
            [self.ranges[i] for i in index],
        )

    @staticmethod
    def concat(first: _Rows, second: _Rows) -> _Rows:
        """Stack two systems over the same columns."""
        return _Rows(
            np.concatenate([first.coef, second.coef]),
            np.concatenate([first.const, second.const]),
            np.concatenate([first.strict, second.strict]),
            np.concatenate([first.scale, second.scale]),
            first.names + second.names,
            first.ranges + second.ranges,
        )


def _initial_rows(
    columns: tuple[str, ...], rules: Sequence[LinearRule], domains: Mapping[str, object]
) -> _Rows:
    """Build the system of the user rules followed by the training-range rows."""
    index = {column: j for j, column in enumerate(columns)}
    coef, const, strict, names, ranges = [], [], [], [], []
    for rule in rules:
        row = np.zeros(len(columns))
        for column, value in rule.coefficients.items():
            row[index[column]] = value

        coef.append(row)
        const.append(float(rule.constant))
        strict.append(bool(rule.strict))
        names.append(frozenset(rule.names))
        ranges.append(frozenset())

    # x - low >= 0 and high - x >= 0 for every finite end of a training range.
    for j, column in enumerate(columns):
        low, high = domains.get(column, (-np.inf, np.inf))
        for sign, end in ((1.0, low), (-1.0, high)):
            if np.isfinite(end):
                row = np.zeros(len(columns))
                row[j] = sign
                coef.append(row)
                const.append(-sign * float(end))
                strict.append(False)
                names.append(frozenset())
                ranges.append(frozenset([column]))

    const_array = np.asarray(const, dtype=np.float64)
    return _Rows(
        np.asarray(coef, dtype=np.float64).reshape(len(const), len(columns)),
        const_array,
        np.asarray(strict, dtype=bool),
        np.abs(const_array),
        names,
        ranges,
    )


def _normalise(rows: _Rows) -> _Rows:
    """Scale each row so that its largest absolute coefficient is 1; zero tiny coefficients."""
    peak = np.abs(rows.coef).max(axis=1, initial=0.0)
    factor = np.where(peak > 0, peak, 1.0)
    coef = rows.coef / factor[:, None]
    coef[np.abs(coef) < ZERO_TOLERANCE] = 0.0
    return _Rows(
        coef,
        rows.const / factor,
        rows.strict,
        rows.scale / factor,
        rows.names,
        rows.ranges,
    )


def _tighten_integers(rows: _Rows, integer: np.ndarray) -> _Rows:
    """Round the rows that sum integer columns with coefficients +1 and -1 only.

    Such a row reads ``s + const >= 0`` (``> 0`` if strict) where ``s`` takes integer values
    only, so it holds exactly when ``s >= ceil(-const)`` (``s >= floor(-const) + 1`` if strict):
    a row that is tighter over the reals, never strict and has an integer constant.

    Parameters
    ----------
    rows : _Rows
        A normalised system with ``n`` columns.
    integer : numpy.ndarray
        bool array of shape ``(n,)`` marking the integer columns.
    """
    nonzero = rows.coef != 0
    unit = np.abs(np.abs(rows.coef) - 1.0) <= ZERO_TOLERANCE
    target = nonzero.any(axis=1) & ~(nonzero & ~(unit & integer[None, :])).any(axis=1)
    if not target.any():
        return rows

    threshold = -rows.const[target]
    magnitude = np.maximum(1.0, np.maximum(np.abs(threshold), rows.scale[target]))
    tol = ZERO_TOLERANCE * magnitude
    rounded = np.where(
        rows.strict[target], np.floor(threshold + tol) + 1.0, np.ceil(threshold - tol)
    )
    coef = rows.coef.copy()
    coef[target] = np.sign(coef[target])
    const = rows.const.copy()
    const[target] = -rounded
    strict = rows.strict.copy()
    strict[target] = False
    return _Rows(
        coef,
        const,
        strict,
        np.maximum(rows.scale, np.abs(const)),
        rows.names,
        rows.ranges,
    )


def _drop_constant_rows(rows: _Rows) -> _Rows:
    """Drop the rows without coefficients, raising if one of them is false."""
    constant = ~(rows.coef != 0).any(axis=1)
    tol = ZERO_TOLERANCE * rows.scale
    false = constant & ((rows.const < -tol) | (rows.strict & (rows.const <= tol)))
    if false.any():
        # Report the contradiction that involves the fewest user constraints.
        culprit = min(np.flatnonzero(false), key=lambda i: (len(rows.names[i]), i))
        value = 0.0 if abs(rows.const[culprit]) <= tol[culprit] else rows.const[culprit]
        relation = ">" if rows.strict[culprit] else ">="
        raise InfeasibleConstraintsError(
            rows.names[culprit],
            rows.ranges[culprit],
            f"eliminating the columns gives {value:.6g} {relation} 0",
        )

    return rows.take(~constant)


def _drop_parallel(rows: _Rows) -> _Rows:
    """Keep only the tightest of each group of rows with the same (normalised) coefficients."""
    if len(rows) < 2:
        return rows

    keys = np.round(rows.coef, 12) + 0.0  # + 0.0 turns -0.0 into 0.0
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()

    # Within a group the smallest constant is the tightest. Constants within rounding noise of
    # the smallest count as equal, and among those a strict row wins.
    smallest = np.full(group.max() + 1, np.inf)
    np.minimum.at(smallest, group, rows.const)
    tol = ZERO_TOLERANCE * np.maximum(rows.scale, np.abs(rows.const))
    near = rows.const <= smallest[group] + tol
    ranking = np.lexsort((rows.const, ~rows.strict, ~near, group))
    first = np.ones(len(rows), dtype=bool)
    first[1:] = group[ranking[1:]] != group[ranking[:-1]]
    return rows.take(np.sort(ranking[first]))


def _drop_implied(rows: _Rows, candidates: np.ndarray) -> _Rows:
    """Drop, one at a time, each candidate row that the rows still kept imply.

    A row ``c @ x + d >= 0`` is implied when the least value of ``c @ x`` over the closure of
    other rows is at least ``-d`` (more than ``-d`` when the row is strict). A cheap test
    against the bounding box of the single-column rows goes first, then one linear program
    per remaining candidate (see :func:`_implied_by_lp`). Each row is dropped only when the
    rows kept at that moment imply it, so the rows left at the end imply all dropped ones.

    Parameters
    ----------
    rows : _Rows
        A normalised system of ``m`` rows.
    candidates : numpy.ndarray
        int array of row indices that may be dropped.
    """
    keep = np.ones(len(rows), dtype=bool)
    keep[candidates[_implied_by_box(rows, candidates)]] = False
    needed = np.zeros(len(rows), dtype=bool)
    single = (rows.coef != 0).sum(axis=1) == 1

    # Rows from fewer user constraints go first: they are the likelier to be needed, and the
    # needed rows form the small working set that the later programs start from.
    ranked = sorted(
        candidates[keep[candidates]],
        key=lambda i: (len(rows.names[i]), np.count_nonzero(rows.coef[i]), i),
    )
    for i in ranked:
        verdict = _implied_by_lp(rows, i, keep, needed | single)
        if verdict is None:
            # The kept rows have no solution: leave the contradiction to the elimination.
            break

        keep[i] = not verdict
        needed[i] = not verdict

    LOGGER.debug(
        "Pruning kept %d of %d rows (%d candidates)", keep.sum(), len(rows), len(candidates)
    )
    return rows.take(keep)


def _implied_by_box(rows: _Rows, candidates: np.ndarray) -> np.ndarray:
    """Test multi-column candidates against the box that the single-column rows define.

    Returns a bool array shaped like ``candidates``: True where the least value of the row
    over the box satisfies it. Candidates on a single column are never tested (each such
    row is part of the box).
    """
    nonzero = rows.coef != 0
    single = nonzero.sum(axis=1) == 1
    column = np.argmax(nonzero, axis=1)
    low = np.full(rows.coef.shape[1], -np.inf)
    high = np.full(rows.coef.shape[1], np.inf)
    for i in np.flatnonzero(single):
        # Normalised single-column rows are +x + const >= 0 or -x + const >= 0.
        if rows.coef[i, column[i]] > 0:
            low[column[i]] = max(low[column[i]], -rows.const[i])
        else:
            high[column[i]] = min(high[column[i]], rows.const[i])

    coef = rows.coef[candidates]
    with np.errstate(invalid="ignore"):
        ends = np.where(coef > 0, coef * low, np.where(coef < 0, coef * high, 0.0))

    minimum = ends.sum(axis=1)
    implied = np.array(
        [
            np.isfinite(minimum[k]) and _is_implied(rows, i, minimum[k])
            for k, i in enumerate(candidates)
        ],
        dtype=bool,
    )
    return implied & ~single[candidates]


def _implied_by_lp(
    rows: _Rows, i: int, keep: np.ndarray, start: np.ndarray, max_added: int = 16
) -> bool | None:
    """Decide by linear programming whether the other kept rows imply row ``i``.

    Up to ``_SMALL_SYSTEM`` rows, one program over all the other kept rows decides. Beyond,
    the program starts from the working set ``start & keep`` and adds the kept rows that its
    solution violates (at most ``max_added`` per round) until either the solution satisfies
    row ``i`` (implied, even by a subset) or it satisfies every other kept row while violating
    row ``i`` (needed). Returns None when the working set has no solution.
    """
    others = keep.copy()
    others[i] = False
    working = others.copy() if others.sum() <= _SMALL_SYSTEM else start & others
    while True:
        result = _minimise(rows.coef[i], rows.coef[working], rows.const[working])
        if result.status == 2:
            return None

        if result.status == 0 and _is_implied(rows, i, result.fun):
            return _certified(rows, i, working, result.ineqlin.marginals)

        if result.status == 0:
            value = rows.coef @ result.x + rows.const
            tol = RELATIVE_TOLERANCE * np.maximum(rows.scale, 1.0)
            violated = np.flatnonzero(others & ~working & (value < -tol))
        else:
            # Unbounded, or numerical trouble: fall back to every other kept row.
            violated = np.flatnonzero(others & ~working)

        if len(violated) == 0:
            return False

        worst = (
            violated[np.argsort(value[violated])[:max_added]] if result.status == 0 else violated
        )
        working[worst] = True


def _minimise(objective: np.ndarray, coef: np.ndarray, const: np.ndarray):
    """Minimise ``objective @ x`` subject to ``coef @ x + const >= 0``.

    ``objective`` has shape ``(n,)``, ``coef`` shape ``(k, n)`` and ``const`` shape ``(k,)``.
    HiGHS's presolve can report an unbounded program as infeasible, so an infeasible verdict
    is confirmed without presolve. Returns the ``scipy.optimize.OptimizeResult``.
    """
    for presolve in (True, False):
        result = linprog(
            objective,
            A_ub=-coef,
            b_ub=const,
            bounds=(None, None),
            method="highs",
            options={**_HIGHS_OPTIONS, "presolve": presolve},
        )
        if result.status != 2:
            break

    return result


def _certified(rows: _Rows, i: int, working: np.ndarray, marginals: np.ndarray) -> bool:
    """Check the dual certificate that the working rows imply row ``i``.

    With multipliers ``y >= 0`` (the negated ``marginals`` of the program, float64 of shape
    ``(working.sum(),)``) such that ``coef_i = y @ coef_W``, every solution has
    ``coef_i @ x >= -(y @ const_W)``. Checking this by hand guards against a solver that
    reports an optimum it has not reached (which HiGHS can do on badly scaled rows).
    """
    y = -np.asarray(marginals, dtype=np.float64)
    weight = max(1.0, float(np.abs(y).sum()))
    if y.min(initial=0.0) < -ZERO_TOLERANCE * weight:
        return False

    y = np.maximum(y, 0.0)
    residual = rows.coef[i] - y @ rows.coef[working]
    if np.abs(residual).max(initial=0.0) > 100 * ZERO_TOLERANCE * weight:
        return False

    return _is_implied(rows, i, -float(y @ rows.const[working]))


def _is_implied(rows: _Rows, i: int, minimum: float) -> bool:
    """Whether row ``i`` holds given ``minimum``, the least value of its linear part."""
    slack = minimum + rows.const[i]
    tol = RELATIVE_TOLERANCE * max(rows.scale[i], abs(minimum), abs(rows.const[i]), 1e-3)
    return bool(slack > tol) if rows.strict[i] else bool(slack >= -tol)


def _prune_before_eliminating(rows: _Rows, j: int, lp_threshold: int) -> _Rows:
    """Prune the rows on column ``j`` when eliminating it would grow the system too much.

    Eliminating ``x_j`` replaces the ``p`` lower and ``n`` upper bounds on it by ``p * n``
    rows. Only when the result would exceed both ``_GROWTH_FACTOR`` times the current size
    and ``lp_threshold`` are those ``p + n`` rows tested for redundancy, since they are the
    ones that multiply. Slower growth is left to the merging of parallel rows, which alone
    keeps rules over two columns (at most one row per direction) from exploding.
    """
    lower = int((rows.coef[:, j] > 0).sum())
    upper = int((rows.coef[:, j] < 0).sum())
    grown = len(rows) - lower - upper + lower * upper
    if grown <= max(_GROWTH_FACTOR * len(rows), lp_threshold):
        return rows

    return _drop_implied(rows, np.flatnonzero(rows.coef[:, j] != 0))


def _combine(rows: _Rows, j: int) -> _Rows:
    """Pair every lower bound on column ``j`` with every upper bound, eliminating ``x_j``.

    For a lower bound ``p`` (coefficient ``a_p > 0``) and an upper bound ``q`` (``a_q < 0``)
    the new row is ``p / a_p + q / |a_q|``, strict if either is strict.
    """
    a = rows.coef[:, j]
    lower = np.flatnonzero(a > 0)
    upper = np.flatnonzero(a < 0)
    left = np.repeat(lower, len(upper))
    right = np.tile(upper, len(lower))
    left_weight = 1.0 / a[left]
    right_weight = -1.0 / a[right]

    left_coef = rows.coef[left] * left_weight[:, None]
    right_coef = rows.coef[right] * right_weight[:, None]
    coef = left_coef + right_coef
    coef[np.abs(coef) <= ZERO_TOLERANCE * (np.abs(left_coef) + np.abs(right_coef))] = 0.0
    coef[:, j] = 0.0

    return _Rows(
        coef,
        rows.const[left] * left_weight + rows.const[right] * right_weight,
        rows.strict[left] | rows.strict[right],
        rows.scale[left] * left_weight + rows.scale[right] * right_weight,
        [rows.names[p] | rows.names[q] for p, q in zip(left, right, strict=True)],
        [rows.ranges[p] | rows.ranges[q] for p, q in zip(left, right, strict=True)],
    )


def _tidy(rows: _Rows, integer: np.ndarray) -> _Rows:
    """Normalise, tighten integer bounds, check constant rows and drop parallel duplicates."""
    rows = _normalise(rows)
    rows = _tighten_integers(rows, integer)
    rows = _drop_constant_rows(rows)
    return _drop_parallel(rows)


def _to_rules(rows: _Rows, columns: tuple[str, ...]) -> list[LinearRule]:
    """Turn a system into :class:`LinearRule` objects over the named columns."""
    rules = []
    for i in range(len(rows)):
        nonzero = np.flatnonzero(rows.coef[i])
        rules.append(
            LinearRule(
                coefficients={columns[j]: float(rows.coef[i, j]) for j in nonzero},
                constant=float(rows.const[i]) + 0.0,
                strict=bool(rows.strict[i]),
                names=rows.names[i],
            )
        )

    return rules


def _backfill_linear(
    columns: tuple[str, ...],
    rules: Sequence[LinearRule],
    domains: Mapping[str, object],
    integer_columns: frozenset[str],
    lp_threshold: int,
) -> dict[str, list[LinearRule]]:
    """Eliminate the linear columns from last to first; attach each row to its last column."""
    integer = np.array([column in integer_columns for column in columns], dtype=bool)
    rows = _tidy(_initial_rows(columns, rules, domains), integer)
    attached = {}
    for j in range(len(columns) - 1, -1, -1):
        rows = _prune_before_eliminating(rows, j, lp_threshold)
        involved = rows.coef[:, j] != 0
        if involved.any():
            attached[columns[j]] = _to_rules(rows.take(involved), columns)

        derived = _combine(rows, j)
        LOGGER.debug(
            "Eliminated %r: %d rows attached, %d derived", columns[j], involved.sum(), len(derived)
        )
        rows = _tidy(_Rows.concat(rows.take(~involved), derived), integer)

    return attached


# Table rules: natural joins and projections.


def _table_groups(rules: Sequence[TableRule]) -> list[list[TableRule]]:
    """Group the table rules into sets connected through shared columns."""
    parent: dict[str, str] = {}

    def root(column: str) -> str:
        while parent.setdefault(column, column) != column:
            column = parent[column]

        return column

    for rule in rules:
        for column in rule.columns[1:]:
            parent[root(column)] = root(rule.columns[0])

    groups: dict[str, list[TableRule]] = {}
    for rule in rules:
        groups.setdefault(root(rule.columns[0]), []).append(rule)

    return list(groups.values())


def _restrict_to_states(
    rule: TableRule, domains: Mapping[str, object]
) -> tuple[np.ndarray, frozenset[str]]:
    """Drop the tuples with states outside ``[0, n_states)``; report the columns that cut any.

    Returns the distinct remaining tuples, int64 of shape ``(k, len(rule.columns))``.
    """
    allowed = rule.allowed
    keep = np.ones(len(allowed), dtype=bool)
    cutting = set()
    for index, column in enumerate(rule.columns):
        n_states = domains.get(column)
        if n_states is None:
            continue

        inside = (allowed[:, index] >= 0) & (allowed[:, index] < n_states)
        if not inside.all():
            cutting.add(column)

        keep &= inside

    return np.unique(allowed[keep], axis=0), frozenset(cutting)


def _natural_join(
    columns: tuple[str, ...], table: np.ndarray, other_columns: tuple[str, ...], other: np.ndarray
) -> tuple[tuple[str, ...], np.ndarray]:
    """Join two tables of int64 states on their shared columns.

    Returns the joined columns (``columns`` then the new ones of ``other_columns``) and the
    int64 table of shape ``(k, n_joined_columns)``.
    """
    shared = [column for column in columns if column in other_columns]
    new = [index for index, column in enumerate(other_columns) if column not in columns]
    joined_columns = columns + tuple(other_columns[index] for index in new)
    left_keys = table[:, [columns.index(column) for column in shared]]
    right_keys = other[:, [other_columns.index(column) for column in shared]]

    # Give equal keys equal ids, then match each left row with the run of equal right rows.
    _, ids = np.unique(np.concatenate([left_keys, right_keys]), axis=0, return_inverse=True)
    ids = ids.ravel()
    left_ids, right_ids = ids[: len(table)], ids[len(table) :]
    right_order = np.argsort(right_ids, kind="stable")
    sorted_ids = right_ids[right_order]
    start = np.searchsorted(sorted_ids, left_ids, side="left")
    count = np.searchsorted(sorted_ids, left_ids, side="right") - start

    left_index = np.repeat(np.arange(len(table)), count)
    run_offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    right_index = right_order[np.repeat(start, count) + run_offset]
    joined = np.hstack([table[left_index], other[right_index][:, new]])
    return joined_columns, joined.astype(np.int64, copy=False)


def _join_group(
    group: list[TableRule], domains: Mapping[str, object]
) -> tuple[tuple[str, ...], np.ndarray, frozenset[str]]:
    """Join a connected group of tables into one, raising as soon as the join is empty.

    Returns the joined columns, the int64 table of allowed tuples and the union of names.
    """
    pending = list(group)
    first = pending.pop(0)
    table, ranges = _restrict_to_states(first, domains)
    columns, names = first.columns, frozenset(first.names)
    while True:
        if len(table) == 0:
            raise InfeasibleConstraintsError(
                names, ranges, "no combination of categories is allowed by all of them"
            )

        if not pending:
            return columns, table, names

        # Join next a table that shares a column, so the join never becomes a plain product.
        rule = pending.pop(
            next(index for index, rule in enumerate(pending) if set(rule.columns) & set(columns))
        )
        other, cutting = _restrict_to_states(rule, domains)
        columns, table = _natural_join(columns, table, rule.columns, other)
        names, ranges = names | rule.names, ranges | cutting


def _backfill_tables(
    order: tuple[str, ...], rules: Sequence[TableRule], domains: Mapping[str, object]
) -> dict[str, list[TableRule]]:
    """Join connected tables and attach to each column the projection on its prefix."""
    position = {column: index for index, column in enumerate(order)}
    attached: dict[str, list[TableRule]] = {}
    for group in _table_groups(rules):
        columns, table, names = _join_group(group, domains)
        by_position = np.argsort([position[column] for column in columns], kind="stable")
        columns = tuple(columns[index] for index in by_position)
        table = table[:, by_position]
        LOGGER.debug("Joined %d table rule(s) over %s: %d tuples", len(group), columns, len(table))

        # Projection on x_1..x_k: the prefixes that some allowed tuple extends.
        for k, column in enumerate(columns):
            projected = np.unique(table[:, : k + 1], axis=0)
            attached.setdefault(column, []).append(TableRule(columns[: k + 1], projected, names))

    return attached


# Validation and the entry point.


def _validate(
    order: tuple[str, ...],
    linear_rules: Sequence[LinearRule],
    table_rules: Sequence[TableRule],
    domains: Mapping[str, object],
) -> None:
    """Check that every rule names known columns of the right kind, with sane values."""
    known = set(order)
    if len(known) != len(order):
        raise ValueError(f"`order` names a column twice: {list(order)}.")

    for rule in linear_rules:
        for column, value in rule.coefficients.items():
            if column not in known:
                raise ValueError(
                    f"Linear rule {sorted(rule.names)} mentions column {column!r}, which is not "
                    "in `order`."
                )

            if _is_state_count(domains.get(column)):
                raise ValueError(
                    f"Linear rule {sorted(rule.names)} mentions column {column!r}, which is "
                    "categorical in `domains`; linear rules apply to numerical columns only."
                )

            if not np.isfinite(value):
                raise ValueError(
                    f"Linear rule {sorted(rule.names)} has a non-finite coefficient {value!r} "
                    f"for column {column!r}."
                )

        if not np.isfinite(rule.constant):
            raise ValueError(
                f"Linear rule {sorted(rule.names)} has a non-finite constant {rule.constant!r}."
            )

    linear_columns = {column for rule in linear_rules for column in rule.coefficients}
    for rule in table_rules:
        _validate_table(rule, known, domains)
        both = linear_columns.intersection(rule.columns)
        if both:
            raise ValueError(
                f"Column(s) {sorted(both)} appear in linear rules and in table rule "
                f"{sorted(rule.names)}; a column is either numerical or categorical."
            )


def _validate_table(rule: TableRule, known: set[str], domains: Mapping[str, object]) -> None:
    """Check one table rule: distinct known categorical columns, an integer 2-D table."""
    label = sorted(rule.names)
    if not rule.columns or len(set(rule.columns)) != len(rule.columns):
        raise ValueError(
            f"Table rule {label} must name at least one column, each once; got {rule.columns}."
        )

    for column in rule.columns:
        if column not in known:
            raise ValueError(
                f"Table rule {label} mentions column {column!r}, which is not in `order`."
            )

        if domains.get(column) is not None and not _is_state_count(domains[column]):
            raise ValueError(
                f"Table rule {label} mentions column {column!r}, which is numerical in "
                "`domains`; table rules apply to categorical columns only."
            )

    allowed = np.asarray(rule.allowed)
    if allowed.ndim != 2 or allowed.shape[1] != len(rule.columns):
        raise ValueError(
            f"Table rule {label} needs `allowed` of shape (n_allowed, {len(rule.columns)}); "
            f"got shape {allowed.shape}."
        )

    if allowed.size and not np.issubdtype(allowed.dtype, np.integer):
        raise ValueError(f"Table rule {label} needs integer states; got dtype {allowed.dtype}.")


def _is_state_count(domain: object) -> bool:
    """Whether a domain entry is a number of states (a categorical column)."""
    return isinstance(domain, int | np.integer) and not isinstance(domain, bool)


def backfill(
    order: Sequence[str],
    linear_rules: Iterable[LinearRule],
    table_rules: Iterable[TableRule],
    domains: Mapping[str, tuple[float, float] | int],
    integer_columns: Iterable[str] | None = None,
    *,
    lp_threshold: int = LP_PRUNE_THRESHOLD,
) -> BackfillPlan:
    """Project the rules backwards through ``order`` so that forward sampling never fails.

    Parameters
    ----------
    order : Sequence[str]
        Topological order of the model columns.
    linear_rules : Iterable[LinearRule]
        Linear rules over numerical columns.
    table_rules : Iterable[TableRule]
        Table rules over categorical columns.
    domains : Mapping[str, tuple of float or int]
        For a numerical column, its ``(low, high)`` training range (either end may be
        infinite); for a categorical column, its number of states. A column missing here is
        unbounded (numerical) or unchecked (categorical). The range of a numerical column takes
        part only when some linear rule mentions the column; the other columns get no bounds.
    integer_columns : Iterable[str], optional
        Numerical columns that hold integers only.
    lp_threshold : int, default=LP_PRUNE_THRESHOLD
        Number of rows above which redundant rows are searched for by linear programming.

    Returns
    -------
    BackfillPlan
        For each column, the rules it must satisfy given the columns before it. Values that
        satisfy the rules of the columns ``1..k`` can always be extended to a full solution.

    Raises
    ------
    InfeasibleConstraintsError
        When the rules cannot all hold (within the training ranges); the error names the user
        constraints involved.
    ValueError
        When a rule mentions an unknown column, a column of the wrong kind, or bad values.
    """
    order = tuple(order)
    linear_rules = list(linear_rules)
    table_rules = [
        TableRule(rule.columns, np.asarray(rule.allowed, dtype=np.int64), frozenset(rule.names))
        for rule in table_rules
    ]
    integer_columns = frozenset(integer_columns or ())
    _validate(order, linear_rules, table_rules, domains)

    mentioned = {column for rule in linear_rules for column in rule.coefficients}
    linear_columns = tuple(column for column in order if column in mentioned)
    plan = BackfillPlan(
        order=order,
        linear_by_column=_backfill_linear(
            linear_columns, linear_rules, domains, integer_columns, lp_threshold
        ),
        tables_by_column=_backfill_tables(order, table_rules, domains),
        integer_columns=integer_columns,
    )
    LOGGER.info(
        "Back-filled %d linear and %d table rule(s) over %d column(s)",
        len(linear_rules),
        len(table_rules),
        len(order),
    )
    return plan
