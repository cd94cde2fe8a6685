"""Numba kernels: routing rows down flat trees and drawing states from leaf distributions.

Kernels work on plain contiguous arrays, take their random numbers as input (drawn by the caller
from an explicit ``numpy.random.Generator``) and keep no state, so results depend only on the
arguments.
"""

import numba
import numpy as np

_ROUTE_SIGNATURE = 'i4[:](i4[:, :], i4[:], i4[:], i4[:], i8[:], b1[:], i4[:])'


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


@numba.njit('i4[:](f8[:, :], i4[:], f8[:])', cache=True, nogil=True)
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


@numba.njit('f8[:](i4[:], i8, i8[:], f8[:])', cache=True, nogil=True)
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
