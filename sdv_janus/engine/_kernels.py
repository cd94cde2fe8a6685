"""Numba kernels: routing rows down flat trees and drawing states from leaf distributions.

Kernels work on plain contiguous arrays, take their random numbers as input (drawn by the caller
from an explicit ``numpy.random.Generator``) and keep no state, so results depend only on the
arguments.
"""

import math

import numba
import numpy as np

# The encoded table is stored in the narrowest signed integer type its state counts allow.
_STATE_TYPES = ("i1", "i2", "i4")


def _signatures(template):
    """One numba signature per state type, ``{s}`` standing for the state type."""
    return [template.format(s=state_type) for state_type in _STATE_TYPES]


_ROUTE_SIGNATURE = "i4[:]({s}[:, ::1], i4[:], i4[:], i4[:], i8[:], b1[:], i4[:])"


@numba.njit(_signatures(_ROUTE_SIGNATURE), cache=True, nogil=True)
def route_rows(states, feature, left, right, mask_offset, go_left, leaf_of_node):
    """Send each row down a tree and return the leaf it lands in.

    Parameters
    ----------
    states : numpy.ndarray
        int8, int16 or int32 ``(n_rows, n_columns)``: the encoded state of every column of
        every row.
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
    # All rows go down one level at a time: the rows of a level are independent, so the
    # processor overlaps their memory reads instead of waiting on one row's chain of nodes.
    n_rows = states.shape[0]
    node = np.zeros(n_rows, dtype=np.int32)
    moved = True
    while moved:
        moved = False
        for row in range(n_rows):
            current = node[row]
            column = feature[current]
            if column >= 0:
                goes_left = go_left[mask_offset[current] + states[row, column]]
                node[row] = right[current] + goes_left * (left[current] - right[current])
                moved = True

    leaves = np.empty(n_rows, dtype=np.int32)
    for row in range(n_rows):
        leaves[row] = leaf_of_node[node[row]]

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


@numba.njit("f8[:](f8[:, :], i4[:], f8[:], i4[:])", cache=True, nogil=True)
def positions_in_states(cumulative, rows, uniforms, drawn):
    """Where each uniform fell inside the slice of its distribution that chose its state.

    ``draw_states`` picks the state whose slice ``[C(s - 1), C(s))`` of the cumulative masses
    holds ``u * total``; the relative position inside that slice is again Uniform(0, 1) and
    independent of the state, so it can place the value inside the state's bin without
    drawing another uniform. Rows of one stratified group stay evenly spread within each state.

    Parameters
    ----------
    cumulative, rows, uniforms : numpy.ndarray
        As given to ``draw_states``.
    drawn : numpy.ndarray
        int32 ``(n,)``: the states ``draw_states`` returned.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)`` in ``[0, 1)``.
    """
    n_states = cumulative.shape[1]
    positions = np.empty(len(rows), dtype=np.float64)
    for i in range(len(rows)):
        distribution = cumulative[rows[i]]
        target = uniforms[i] * distribution[n_states - 1]
        state = drawn[i]
        below = distribution[state - 1] if state > 0 else 0.0
        width = distribution[state] - below
        position = (target - below) / width if width > 0.0 else 0.5
        positions[i] = min(max(position, 0.0), 1.0 - 1e-16)

    return positions


@numba.njit(_signatures("f8[:](f8[:, ::1], {s}[:], f8[:])"), cache=True, nogil=True)
def interpolate_knots(knots, states, uniforms):
    """Evaluate each state's piecewise-linear quantile function at ``uniforms``.

    Parameters
    ----------
    knots : numpy.ndarray
        float64 ``(n_states, n_knots + 1)`` C-contiguous quantile knots.
    states : numpy.ndarray
        int8, int16 or int32 ``(n,)`` value states.
    uniforms : numpy.ndarray
        float64 ``(n,)`` in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)``.
    """
    n_pieces = knots.shape[1] - 1
    values = np.empty(len(states))
    for row in range(len(states)):
        position = min(max(uniforms[row], 0.0), 1.0) * n_pieces
        piece = min(int(position), n_pieces - 1)
        fraction = position - piece
        low = knots[states[row], piece]
        values[row] = low + fraction * (knots[states[row], piece + 1] - low)

    return values


@numba.njit(_signatures("f8[:]({s}[:], i8, f8[:], f8[:])"), cache=True, nogil=True)
def stratified_uniforms(groups, n_groups, shuffle, jitter):
    """Uniforms that are stratified within each group of rows.

    The ``k`` rows of a group get one draw in each of ``[0, 1/k), [1/k, 2/k), ...``, assigned by
    a uniformly random permutation of the group's strata. Each row's uniform is still exactly
    Uniform(0, 1), but the states drawn in a group then follow the group's distribution to
    within one row, so a rare state with an expected count near one is not lost to chance.

    Each group's permutation is a Fisher-Yates shuffle over that group's own slots, so the
    random accesses stay inside one group instead of spanning every row.

    Parameters
    ----------
    groups : numpy.ndarray
        int8, int16 or int32 ``(n,)``: group of each row, in ``[0, n_groups)``.
    n_groups : int
        Number of groups.
    shuffle : numpy.ndarray
        float64 ``(n,)`` uniforms in ``[0, 1)`` that drive the shuffles.
    jitter : numpy.ndarray
        float64 ``(n,)`` uniforms in ``[0, 1)``: the position inside each stratum.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)`` uniforms in ``[0, 1)``.
    """
    n_rows = len(groups)
    sizes = np.zeros(n_groups, dtype=np.int64)
    for row in range(n_rows):
        sizes[groups[row]] += 1

    start = np.zeros(n_groups, dtype=np.int64)
    for group in range(1, n_groups):
        start[group] = start[group - 1] + sizes[group - 1]

    # Slot s of a group holds stratum s, then the group's slots are shuffled in place.
    strata = np.empty(n_rows, dtype=np.int64)
    for group in range(n_groups):
        first = start[group]
        for offset in range(sizes[group]):
            strata[first + offset] = offset

        for offset in range(sizes[group] - 1, 0, -1):
            other = min(int(shuffle[first + offset] * (offset + 1)), offset)
            swapped = strata[first + other]
            strata[first + other] = strata[first + offset]
            strata[first + offset] = swapped

    # Rows take their group's slots in row order.
    taken = np.zeros(n_groups, dtype=np.int64)
    uniforms = np.empty(n_rows, dtype=np.float64)
    for row in range(n_rows):
        group = groups[row]
        stratum = strata[start[group] + taken[group]]
        taken[group] += 1
        uniforms[row] = (stratum + jitter[row]) / sizes[group]

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


@numba.njit(
    _signatures("i8[:]({s}[:, ::1], i8[:], i8[:], i8[:], i8[:], i8)"), cache=True, nogil=True
)
def count_families(columns, family_columns, family_start, sizes, cell_offset, n_cells):
    """Joint counts of several families of columns.

    Family ``f`` is the columns ``family_columns[family_start[f]:family_start[f + 1]]`` (the
    child last); a row adds one to the cell whose mixed-radix code, with radices ``sizes``, is
    the row's states of those columns, offset by ``cell_offset[f]``.

    Parameters
    ----------
    columns : numpy.ndarray
        int8, int16 or int32 ``(n_columns, n_rows)`` C-contiguous encoded table, one column
        per row of the array, so that a family reads a few contiguous streams.
    family_columns : numpy.ndarray
        int64 ``(n_entries,)``: the columns of every family, concatenated.
    family_start : numpy.ndarray
        int64 ``(n_families + 1,)``: where each family starts in ``family_columns``.
    sizes : numpy.ndarray
        int64 ``(n_columns,)``: number of states of every column.
    cell_offset : numpy.ndarray
        int64 ``(n_families,)``: first cell of each family's table.
    n_cells : int
        Total number of cells.

    Returns
    -------
    numpy.ndarray
        int64 ``(n_cells,)`` counts.
    """
    counts = np.zeros(n_cells, dtype=np.int64)
    n_rows = columns.shape[1]
    for family in range(len(cell_offset)):
        first, last = family_start[family], family_start[family + 1]
        for row in range(n_rows):
            code = 0
            for entry in range(first, last):
                column = family_columns[entry]
                code = code * sizes[column] + columns[column, row]

            counts[cell_offset[family] + code] += 1

    return counts


@numba.njit(cache=True, nogil=True)
def _group_rows_by_slot(slot_of_row, n_slots):
    """Rows grouped by slot (a counting sort), in row order within a slot.

    Returns int64 ``starts`` ``(n_slots + 1,)`` and ``grouped`` rows: slot ``s`` owns
    ``grouped[starts[s]:starts[s + 1]]``. Rows with a negative slot are left out.
    """
    starts = np.zeros(n_slots + 1, dtype=np.int64)
    for row in range(len(slot_of_row)):
        if slot_of_row[row] >= 0:
            starts[slot_of_row[row] + 1] += 1

    for slot in range(n_slots):
        starts[slot + 1] += starts[slot]

    grouped = np.empty(starts[n_slots], dtype=np.int64)
    filled = starts[:n_slots].copy()
    for row in range(len(slot_of_row)):
        slot = slot_of_row[row]
        if slot >= 0:
            grouped[filled[slot]] = row
            filled[slot] += 1

    return starts, grouped


_SPLIT_TABLE_SIGNATURE = (
    "i4[:, :, :]({s}[:, ::1], i4[:], i4[:], i4[:], i8[:], b1[:], i4[:], i8, i8[:], i8[:], i8, i8)"
)


@numba.njit(_signatures(_SPLIT_TABLE_SIGNATURE), cache=True, nogil=True)
def count_split_tables(
    states, feature, left, right, mask_offset, go_left, slot_of_node, child, parents, offsets,
    n_slots, n_child,
):  # fmt: skip
    """Parent-state by child-state counts of the rows reaching each open node of a tree.

    Every row is routed down the partly grown tree (nodes whose ``feature`` is -1 are ends).
    Rows ending in a node with a slot ``slot_of_node[node] >= 0`` add one, for each candidate
    parent ``parents[j]``, to ``tables[slot, offsets[j] + state of parent j, child state]``.
    Rows are counted slot by slot, so the writes stay within one slot's table at a time.

    Parameters
    ----------
    states : numpy.ndarray
        int8, int16 or int32 ``(n_rows, n_columns)`` C-contiguous encoded table.
    feature, left, right, mask_offset, go_left : numpy.ndarray
        The tree so far, laid out as in :func:`route_rows`.
    slot_of_node : numpy.ndarray
        int32 ``(n_nodes,)``: the slot of each open node, -1 for the others.
    child : int
        The column the tree models.
    parents : numpy.ndarray
        int64 ``(n_parents,)``: candidate split columns.
    offsets : numpy.ndarray
        int64 ``(n_parents + 1,)``: first row of each parent's block; the last entry is the
        total number of parent states.
    n_slots, n_child : int
        Number of slots, and of the child's states.

    Returns
    -------
    numpy.ndarray
        int32 ``(n_slots, offsets[-1], n_child)`` counts.
    """
    slot_of_row = route_rows(states, feature, left, right, mask_offset, go_left, slot_of_node)

    starts, grouped = _group_rows_by_slot(slot_of_row, n_slots)
    tables = np.zeros((n_slots, offsets[len(offsets) - 1], n_child), dtype=np.int32)
    for slot in range(n_slots):
        for position in range(starts[slot], starts[slot + 1]):
            row = grouped[position]
            child_state = states[row, child]
            for j in range(len(parents)):
                tables[slot, offsets[j] + states[row, parents[j]], child_state] += 1

    return tables


# Likelihood terms of counts below this are computed once per search and looked up.
_TERM_CACHE = 4096


@numba.njit(cache=True, nogil=True)
def _term_tables(prior, size):
    """The prior's total, ``lgamma`` of each prior entry, and cached terms of counts < size."""
    n_child = len(prior)
    prior_total = 0.0
    log_gamma_prior = np.empty(n_child)
    state_terms = np.empty((n_child, size))
    for k in range(n_child):
        prior_total += prior[k]
        log_gamma_prior[k] = math.lgamma(prior[k])
        for count in range(size):
            state_terms[k, count] = math.lgamma(prior[k] + count) - log_gamma_prior[k]

    total_terms = np.empty(size)
    for count in range(size):
        total_terms[count] = math.lgamma(prior_total + count)

    return prior_total, log_gamma_prior, state_terms, total_terms


@numba.njit(cache=True, nogil=True)
def _state_term(terms, prior, state, count):
    """``lgamma(prior[state] + count) - lgamma(prior[state])``: one state's likelihood term."""
    _, log_gamma_prior, state_terms, _ = terms
    if count < state_terms.shape[1]:
        return state_terms[state, int(count)]

    return math.lgamma(prior[state] + count) - log_gamma_prior[state]


@numba.njit(cache=True, nogil=True)
def _total_term(terms, rows):
    """``lgamma(sum(prior) + rows)``."""
    prior_total, _, _, total_terms = terms
    if rows < len(total_terms):
        return total_terms[int(rows)]

    return math.lgamma(prior_total + rows)


@numba.njit(cache=True, nogil=True)
def _best_split_of_parent(
    table, row_sums, node, node_rows, node_terms, is_ordered, prior, terms, min_leaf
):  # fmt: skip
    """Best candidate split on one parent: (score, candidates, state order, states sent left).

    ``row_sums`` are the rows of the node in each parent state. The split sends
    ``order[:n_left]`` left. See :func:`best_splits`.
    """
    n_parent, n_child = table.shape
    prior_total = terms[0]
    present = np.flatnonzero(row_sums > 0)
    if is_ordered:
        order = np.arange(n_parent)
    else:
        # The parent's table sums, over its states, to the node's counts.
        mode = np.argmax(node)
        share = (table[present, mode] + prior[mode]) / (row_sums[present] + prior_total)
        order = present[np.argsort(share, kind="mergesort")]

    best_score, best_n_left, best_alone, n_found = -np.inf, 0, -1, 0

    # Thresholds: the first t + 1 states of ``order`` go left.
    left = np.zeros(n_child)
    left_rows, left_terms, right_terms = 0.0, 0.0, node_terms
    for t in range(len(order) - 1):
        state = order[t]
        for k in range(n_child if row_sums[state] > 0 else 0):
            count = table[state, k]
            if count > 0:
                left_terms += _state_term(terms, prior, k, left[k] + count)
                left_terms -= _state_term(terms, prior, k, left[k])
                right_terms += _state_term(terms, prior, k, node[k] - left[k] - count)
                right_terms -= _state_term(terms, prior, k, node[k] - left[k])
                left[k] += count

        left_rows += row_sums[state]
        if left_rows < min_leaf or node_rows - left_rows < min_leaf:
            continue

        n_found += 1
        score = _split_score(terms, left_rows, node_rows - left_rows)
        score += left_terms + right_terms
        if score > best_score:
            best_score, best_n_left = score, t + 1

    # Categorical parents: each present state against the rest, in state order.
    for state in present if not is_ordered else present[:0]:
        left_rows = row_sums[state]
        if left_rows < min_leaf or node_rows - left_rows < min_leaf:
            continue

        left_terms, right_terms = 0.0, node_terms
        for k in range(n_child):
            count = table[state, k]
            if count > 0:
                left_terms += _state_term(terms, prior, k, count)
                right_terms += _state_term(terms, prior, k, node[k] - count)
                right_terms -= _state_term(terms, prior, k, node[k])

        n_found += 1
        score = _split_score(terms, left_rows, node_rows - left_rows)
        score += left_terms + right_terms
        if score > best_score:
            best_score, best_alone = score, state

    if best_alone >= 0 and best_score > -np.inf:
        return best_score, n_found, np.array([best_alone]), 1

    return best_score, n_found, order, best_n_left


@numba.njit(cache=True, nogil=True)
def _split_score(terms, left_rows, right_rows):
    """The parts of a split's score that depend on the sides' sizes only."""
    return (
        2.0 * _total_term(terms, 0.0)
        - _total_term(terms, left_rows)
        - _total_term(terms, right_rows)
    )


@numba.njit(cache=True, nogil=True)
def _cache_size(node_counts):
    """Counts to cache terms for: up to the largest node's rows, at most ``_TERM_CACHE``."""
    largest = 0.0
    for slot in range(node_counts.shape[0]):
        largest = max(largest, node_counts[slot].sum())

    return min(int(largest) + 1, _TERM_CACHE)


@numba.njit(cache=True, nogil=True)
def _empty_splits(n_slots, offsets, n_child):
    """Output arrays of the split search: no split found yet."""
    widest = 1
    for j in range(len(offsets) - 1):
        widest = max(widest, offsets[j + 1] - offsets[j])

    return (
        np.full(n_slots, -np.inf),
        np.full(n_slots, -1, dtype=np.int64),
        np.zeros(n_slots, dtype=np.int64),
        np.zeros((n_slots, widest), dtype=np.bool_),
        np.zeros((n_slots, n_child)),
    )


@numba.njit(cache=True, nogil=True)
def _split_slot(table, row_sums, node, offsets, ordered, prior, terms, min_leaf, found, slot):
    """Search the best split of one node and write it into ``found[...][slot]``.

    ``row_sums`` (float64, one per table row) are the node's rows in each parent state;
    ``terms`` are the cached likelihood terms of :func:`_term_tables`.
    """
    gains, parents, n_candidates, go_left, left_counts = found
    n_child = table.shape[1]
    node_rows = 0.0
    node_terms = 0.0
    for k in range(n_child):
        node_rows += node[k]
        node_terms += _state_term(terms, prior, k, node[k])

    node_score = _total_term(terms, 0.0) - _total_term(terms, node_rows) + node_terms
    for j in range(len(offsets) - 1):
        block = table[offsets[j] : offsets[j + 1]]
        best = _best_split_of_parent(
            block,
            row_sums[offsets[j] : offsets[j + 1]],
            node,
            node_rows,
            node_terms,
            ordered[j],
            prior,
            terms,
            min_leaf,
        )
        score, n_found, order, n_left = best
        n_candidates[slot] += n_found
        if n_found == 0 or not score - node_score > gains[slot]:
            continue

        gains[slot] = score - node_score
        parents[slot] = j
        go_left[slot, :] = False
        left_counts[slot, :] = 0.0
        for position in range(n_left):
            state = order[position]
            go_left[slot, state] = True
            for k in range(n_child):
                left_counts[slot, k] += block[state, k]


_BEST_SPLITS_SIGNATURE = (
    "Tuple((f8[:], i8[:], i8[:], b1[:, :], f8[:, :]))"
    "({t}[:, :, :], i8[:], f8[:, :], b1[:], f8[:], i8)"
)


@numba.njit(
    [_BEST_SPLITS_SIGNATURE.format(t=count_type) for count_type in ("i4", "i8")],
    cache=True,
    nogil=True,
)
def best_splits(tables, offsets, node_counts, ordered, prior, min_leaf):
    """Best split of each open node from its split tables, by Dirichlet-multinomial gain.

    Candidates per parent: thresholds on its states when ``ordered``; otherwise thresholds on
    its present states sorted by their share of the node's most common child state, then each
    present state against the rest. A candidate needs ``min_leaf`` rows on each side. The score
    of a side with counts ``c`` is ``lgamma(A) - lgamma(A + N) + sum_k [lgamma(a_k + c_k) -
    lgamma(a_k)]`` (``a = prior``, ``A = sum(a)``, ``N = sum(c)``); it is updated only where a
    state's counts change, so a candidate costs the non-zero cells it moves.

    Parameters
    ----------
    tables : numpy.ndarray
        int32 or int64 ``(n_slots, n_parent_states, n_child)``: parent ``j`` owns rows
        ``offsets[j]:offsets[j + 1]``.
    offsets : numpy.ndarray
        int64 ``(n_parents + 1,)``.
    node_counts : numpy.ndarray
        float64 ``(n_slots, n_child)``: child counts of each node.
    ordered : numpy.ndarray
        bool ``(n_parents,)``: whether each parent's states are ordered.
    prior : numpy.ndarray
        float64 ``(n_child,)``: Dirichlet prior under which splits are compared.
    min_leaf : int
        Fewest rows on each side.

    Returns
    -------
    tuple
        gain float64 ``(n_slots,)`` (-inf without a candidate), parent position int64
        ``(n_slots,)``, number of candidates int64 ``(n_slots,)``, ``go_left`` bool
        ``(n_slots, widest parent)`` and left counts float64 ``(n_slots, n_child)`` of the
        best split.
    """
    n_slots, width, n_child = tables.shape
    found = _empty_splits(n_slots, offsets, n_child)
    terms = _term_tables(prior, _cache_size(node_counts))
    row_sums = np.empty(width)
    for slot in range(n_slots):
        for state in range(width):
            row_sums[state] = 0.0
            for k in range(n_child):
                row_sums[state] += tables[slot, state, k]

        table = tables[slot]
        _split_slot(
            table,
            row_sums,
            node_counts[slot],
            offsets,
            ordered,
            prior,
            terms,
            min_leaf,
            found,
            slot,
        )

    return found


@numba.njit(cache=True, nogil=True)
def _count_rows(states, rows, child, parents, offsets, table, row_sums, add):
    """Add one per row to its cells of ``table`` and ``row_sums`` (or, ``add == 0``, zero them)."""
    for row in rows:
        child_state = states[row, child]
        for j in range(len(parents)):
            cell = offsets[j] + states[row, parents[j]]
            if add:
                table[cell, child_state] += 1
                row_sums[cell] += 1.0
            else:
                table[cell, child_state] = 0
                row_sums[cell] = 0.0


_FUSED_SIGNATURE = (
    "Tuple((f8[:], i8[:], i8[:], b1[:, :], f8[:, :]))({s}[:, ::1], i4[:], i4[:], i4[:], i8[:], "
    "b1[:], i4[:], i8, i8[:], i8[:], i8, i8, f8[:, :], b1[:], f8[:], i8)"
)


@numba.njit(_signatures(_FUSED_SIGNATURE), cache=True, nogil=True)
def count_and_split(
    states, feature, left, right, mask_offset, go_left, slot_of_node, child, parents, offsets,
    n_slots, n_child, node_counts, ordered, prior, min_leaf,
):  # fmt: skip
    """:func:`best_splits` of the tables :func:`count_split_tables` would count, fused.

    Each open node's table is counted into one reused buffer and searched at once, so memory
    stays at one table however many nodes are open. The search is the same function as in
    :func:`best_splits`, on the same counts, hence the same splits.
    """
    slot_of_row = route_rows(states, feature, left, right, mask_offset, go_left, slot_of_node)
    starts, grouped = _group_rows_by_slot(slot_of_row, n_slots)
    found = _empty_splits(n_slots, offsets, n_child)
    terms = _term_tables(prior, _cache_size(node_counts))
    width = offsets[len(offsets) - 1]
    table = np.zeros((width, n_child), dtype=np.int32)
    row_sums = np.zeros(width)
    for slot in range(n_slots):
        rows = grouped[starts[slot] : starts[slot + 1]]
        _count_rows(states, rows, child, parents, offsets, table, row_sums, 1)
        _split_slot(
            table,
            row_sums,
            node_counts[slot],
            offsets,
            ordered,
            prior,
            terms,
            min_leaf,
            found,
            slot,
        )
        # Only the cells these rows touched are non-zero: clearing them is cheaper than all.
        _count_rows(states, rows, child, parents, offsets, table, row_sums, 0)

    return found
