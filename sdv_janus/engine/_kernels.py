"""Numba kernels: routing rows down flat trees and drawing states from leaf distributions.

Kernels work on plain contiguous arrays, take their random numbers as input (drawn by the caller
from an explicit ``numpy.random.Generator``) and keep no state, so results depend only on the
arguments.
"""

import numba
import numpy as np

_ROUTE_SIGNATURE = "i4[:](i4[:, :], i4[:], i4[:], i4[:], i8[:], b1[:], i4[:])"


@numba.njit(_ROUTE_SIGNATURE, cache=True, nogil=True)
def route_rows(states, feature, left, right, mask_offset, go_left, leaf_of_node):
    """Send each row down a tree and return the leaf it lands in.

    Parameters
    ----------
    states : numpy.ndarray
        int32 array ``(n_rows, n_columns)``: the encoded state of every column of every row.
    feature : numpy.ndarray
        int32 array ``(n_nodes,)``: the column each internal node splits on, -1 at leaves.
    left, right : numpy.ndarray
        int32 arrays ``(n_nodes,)``: child node indices.
    mask_offset : numpy.ndarray
        int64 array ``(n_nodes,)``: where the node's split mask starts in ``go_left``.
    go_left : numpy.ndarray
        bool array: concatenated masks; ``go_left[mask_offset[v] + s]`` sends state ``s`` left.
    leaf_of_node : numpy.ndarray
        int32 array ``(n_nodes,)``: the leaf number of each leaf node, -1 elsewhere.

    Returns
    -------
    numpy.ndarray
        int32 array ``(n_rows,)`` of leaf numbers.
    """
    n_rows = states.shape[0]
    leaves = np.empty(n_rows, dtype=np.int32)
    for row in range(n_rows):
        node = 0
        while feature[node] >= 0:
            state = states[row, feature[node]]
            if go_left[mask_offset[node] + state]:
                node = left[node]
            else:
                node = right[node]

        leaves[row] = leaf_of_node[node]

    return leaves


@numba.njit("i4[:](f8[:, :], i4[:], f8[:])", cache=True, nogil=True)
def draw_states(cumulative, rows, uniforms):
    """Draw one state per row by inverting a cumulative distribution.

    Parameters
    ----------
    cumulative : numpy.ndarray
        float64 array ``(n_distributions, n_states)``: cumulative probabilities, each row ending
        at its total mass (which need not be 1).
    rows : numpy.ndarray
        int32 array ``(n,)``: which distribution each draw uses.
    uniforms : numpy.ndarray
        float64 array ``(n,)`` in ``[0, 1)``.

    Returns
    -------
    numpy.ndarray
        int32 array ``(n,)``: the smallest state whose cumulative mass exceeds ``u * total``.
    """
    n_states = cumulative.shape[1]
    drawn = np.empty(len(rows), dtype=np.int32)
    for i in range(len(rows)):
        distribution = cumulative[rows[i]]
        target = uniforms[i] * distribution[n_states - 1]
        low = 0
        high = n_states - 1
        while low < high:
            middle = (low + high) // 2
            if distribution[middle] > target:
                high = middle
            else:
                low = middle + 1

        drawn[i] = low

    return drawn


@numba.njit("f8[:](i4[:], i8, i8[:], f8[:])", cache=True, nogil=True)
def stratified_uniforms(groups, n_groups, visit_order, jitter):
    """Uniforms that are stratified within each group of rows.

    The ``k`` rows of a group get one draw in each of ``[0, 1/k), [1/k, 2/k), ...``, assigned in
    a random order. Each row's uniform is still exactly Uniform(0, 1), but the states drawn in
    a group then follow the group's distribution to within one row, so a rare state with an
    expected count near one is not lost to chance.

    Parameters
    ----------
    groups : numpy.ndarray
        int32 ``(n,)``: group of each row, in ``[0, n_groups)``.
    n_groups : int
        Number of groups.
    visit_order : numpy.ndarray
        int64 ``(n,)``: a random permutation of the rows, which sets who gets which stratum.
    jitter : numpy.ndarray
        float64 ``(n,)`` uniforms in ``[0, 1)``: the position inside each stratum.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)`` uniforms in ``[0, 1)``.
    """
    sizes = np.zeros(n_groups, dtype=np.int64)
    for row in range(len(groups)):
        sizes[groups[row]] += 1

    taken = np.zeros(n_groups, dtype=np.int64)
    uniforms = np.empty(len(groups), dtype=np.float64)
    for position in range(len(visit_order)):
        row = visit_order[position]
        group = groups[row]
        uniforms[row] = (taken[group] + jitter[row]) / sizes[group]
        taken[group] += 1

    return uniforms


@numba.njit("f8(f8[:], f8, b1)", cache=True, nogil=True)
def _knot_cdf(knots, value, inclusive):
    """Piecewise-linear CDF through quantile knots (equal probability between knots).

    Repeated knots hold an atom: ``inclusive`` gives ``P(X <= value)``, which counts an atom at
    ``value``, and otherwise ``P(X < value)``, which leaves it out.
    """
    n_pieces = len(knots) - 1
    if value < knots[0] or (value == knots[0] and not inclusive):
        return 0.0

    if value > knots[n_pieces] or (value == knots[n_pieces] and inclusive):
        return 1.0

    piece = 0
    while piece < n_pieces - 1 and (
        knots[piece + 1] < value or (inclusive and knots[piece + 1] == value)
    ):
        piece += 1

    width = knots[piece + 1] - knots[piece]
    inside = 0.0 if width <= 0.0 else (value - knots[piece]) / width
    return (piece + inside) / n_pieces


@numba.njit("f8(f8[:], f8, f8, b1, b1)", cache=True, nogil=True)
def _knot_mass(knots, low, high, low_strict, high_strict):
    """Mass of the knots' distribution inside an interval whose ends may be excluded."""
    upper = _knot_cdf(knots, high, not high_strict)
    lower = _knot_cdf(knots, low, low_strict)
    return max(upper - lower, 0.0)


@numba.njit("f8[:, :](f8[:, :], f8[:], f8[:], b1[:], b1[:], i8)", cache=True, nogil=True)
def interval_mass(knots, low, high, low_strict, high_strict, n_states):
    """Mass that each value state puts inside each row's interval.

    Parameters
    ----------
    knots : numpy.ndarray
        float64 ``(n_value_states, n_knots + 1)``: quantile knots of each value state.
    low, high : numpy.ndarray
        float64 ``(n_rows,)``: the interval of each row (infinite ends allowed).
    low_strict, high_strict : numpy.ndarray
        bool ``(n_rows,)``: whether each end is excluded (matters for single-value states).
    n_states : int
        Number of states including a trailing missing state (which gets mass 1: a rule on a
        null value holds vacuously); equal to ``n_value_states`` when there is none.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_rows, n_states)`` masses in ``[0, 1]``.
    """
    n_rows = len(low)
    n_values = knots.shape[0]
    last = knots.shape[1] - 1
    mass = np.ones((n_rows, n_states))
    for row in range(n_rows):
        for state in range(n_values):
            first_knot = knots[state, 0]
            if first_knot == knots[state, last]:
                above = first_knot > low[row] or (first_knot == low[row] and not low_strict[row])
                below = first_knot < high[row] or (first_knot == high[row] and not high_strict[row])
                mass[row, state] = 1.0 if above and below else 0.0
            elif low[row] < first_knot and high[row] > knots[state, last]:
                continue  # the whole state lies inside the interval
            else:
                mass[row, state] = _knot_mass(
                    knots[state], low[row], high[row], low_strict[row], high_strict[row]
                )

    return mass


@numba.njit("f8[:](f8[:, :], i4[:], f8[:], f8[:], b1[:], b1[:], f8[:])", cache=True, nogil=True)
def draw_inside_interval(knots, states, low, high, low_strict, high_strict, uniforms):
    """Draw a value in each row's state, restricted to the row's interval.

    The state's piecewise-linear CDF is cut to the interval and inverted at ``uniforms``. An
    atom (repeated knots) at an included end keeps its mass; at an excluded end it gets none.
    Rows whose state is a single value get that value.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_rows,)`` values.
    """
    n_pieces = knots.shape[1] - 1
    values = np.empty(len(states))
    for row in range(len(states)):
        state_knots = knots[states[row]]
        lower = _knot_cdf(state_knots, low[row], low_strict[row])
        upper = _knot_cdf(state_knots, high[row], not high_strict[row])
        position = (lower + uniforms[row] * (upper - lower)) * n_pieces
        piece = min(int(position), n_pieces - 1)
        fraction = position - piece
        value = state_knots[piece] + fraction * (state_knots[piece + 1] - state_knots[piece])
        values[row] = min(max(value, low[row]), high[row])

    return values


@numba.njit("i4[:](f8[:, :], f8[:])", cache=True, nogil=True)
def draw_from_weights(weights, uniforms):
    """Draw one state per row in proportion to that row's non-negative weights.

    Parameters
    ----------
    weights : numpy.ndarray
        float64 ``(n_rows, n_states)``; each row must have a positive sum.
    uniforms : numpy.ndarray
        float64 ``(n_rows,)`` in ``[0, 1)``.

    Returns
    -------
    numpy.ndarray
        int32 ``(n_rows,)`` states.
    """
    n_rows, n_states = weights.shape
    drawn = np.empty(n_rows, dtype=np.int32)
    for row in range(n_rows):
        total = 0.0
        for state in range(n_states):
            total += weights[row, state]

        target = uniforms[row] * total
        running = 0.0
        chosen = n_states - 1
        for state in range(n_states):
            running += weights[row, state]
            if running > target and weights[row, state] > 0.0:
                chosen = state
                break

        while weights[row, chosen] <= 0.0 and chosen > 0:
            chosen -= 1

        drawn[row] = chosen

    return drawn
