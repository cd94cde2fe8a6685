"""Sufficient statistics of an encoded table: the counts that every fitting step reads.

After encoding, the fit reads the table only through a *counts source*, an object with

- ``n_rows``: the number of rows;
- ``family_tables(families, sizes)``: for each family of columns (parents then child), the
  :class:`FamilyTable` of joint counts, which the structure search scores;
- ``split_tables(request)``: for a partly grown tree (a :class:`SplitRequest`), the
  parent-state by child-state counts of the rows reaching each open node;
- ``best_splits(request, search)``: the best split of each open node, searched (by one numba
  function, whatever the source) in those tables; :func:`search_in_batches` does it from
  ``split_tables`` a bounded number of nodes at a time, and :class:`ArrayCounts` counts and
  searches node by node in one pass, without holding every table;
- ``mapped(state_maps)``: the same table with each column's states relabelled (coarsened);
- ``grows_trees_in_threads``: whether several trees may read the source at once, from threads.

All of these are sums over rows, so a table split into chunks gives the same answers as the whole
table when the chunks' answers are added: :func:`compute_family_tables` and
:func:`compute_split_tables` work on one chunk, :class:`ArrayCounts` is the source over one
in-memory array, and :mod:`sdv_janus.dask` is the source over the partitions of a Dask
DataFrame. The fitted model therefore does not depend on where the rows live.
"""

import dataclasses
import logging
from dataclasses import dataclass

import numpy as np

from sdv_janus.engine._kernels import (
    best_splits,
    count_and_split,
    count_families,
    count_split_tables,
)

LOGGER = logging.getLogger(__name__)

# Tables above this many cells are counted sparsely (distinct cells only).
_DENSE_CELL_LIMIT = 1 << 22
# Largest split-table answer asked of a source at once (cells).
_MAX_SPLIT_CELLS = 1 << 25


def state_dtype(n_states):
    """The narrowest signed integer dtype holding states ``-1 .. max(n_states) - 1``."""
    largest = max(n_states, default=1)
    for dtype in (np.int8, np.int16):
        if largest <= np.iinfo(dtype).max:
            return np.dtype(dtype)

    return np.dtype(np.int32)


@dataclass
class FamilyTable:
    """Joint counts of a family of columns, keeping only the cells that occur.

    Attributes
    ----------
    cells : numpy.ndarray
        int64 ``(n_cells,)`` sorted distinct mixed-radix codes ``config * n_child + child``.
    counts : numpy.ndarray
        int64 ``(n_cells,)`` rows in each cell.
    """

    cells: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_dense(cls, dense):
        """Keep the non-zero cells of a dense int64 count vector."""
        cells = np.flatnonzero(dense)
        return cls(cells.astype(np.int64), dense[cells].astype(np.int64))

    def merge(self, other):
        """The table of both chunks together."""
        cells, inverse = np.unique(np.concatenate([self.cells, other.cells]), return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([self.counts, other.counts]))
        return FamilyTable(cells, counts.astype(np.int64))


@dataclass
class SplitRequest:
    """A partly grown tree whose open nodes need their split tables.

    Attributes
    ----------
    feature, left, right, mask_offset, go_left : numpy.ndarray
        The tree so far, in the flat layout of :class:`~sdv_janus.engine.trees.BayesianTree`;
        undecided nodes are ends (``feature == -1``).
    slot_of_node : numpy.ndarray
        int32 ``(n_nodes,)``: the slot of each open node whose table is wanted, else -1.
    child : int
        The column the tree models.
    parents : numpy.ndarray
        int64 ``(n_parents,)``: the candidate split columns.
    offsets : numpy.ndarray
        int64 ``(n_parents + 1,)``: where each parent's states start in a table's rows.
    n_slots, n_child : int
        Number of open nodes asked for, and of the child's states.
    """

    feature: np.ndarray
    left: np.ndarray
    right: np.ndarray
    mask_offset: np.ndarray
    go_left: np.ndarray
    slot_of_node: np.ndarray
    child: int
    parents: np.ndarray
    offsets: np.ndarray
    n_slots: int
    n_child: int

    @property
    def n_cells(self):
        """Cells of the answer."""
        return self.n_slots * int(self.offsets[-1]) * self.n_child

    def kernel_arguments(self):
        """The fields, in the order the counting kernels take them after the states."""
        return tuple(getattr(self, field.name) for field in dataclasses.fields(self))


@dataclass
class SplitSearch:
    """What the split search of the open nodes needs besides their tables.

    Attributes
    ----------
    node_counts : numpy.ndarray
        float64 ``(n_slots, n_child)``: child counts of each open node.
    ordered : numpy.ndarray
        bool ``(n_parents,)``: whether each candidate parent's states are ordered.
    prior : numpy.ndarray
        float64 ``(n_child,)``: the Dirichlet prior under which splits are compared.
    min_leaf : int
        Fewest rows on each side of a split.
    """

    node_counts: np.ndarray
    ordered: np.ndarray
    prior: np.ndarray
    min_leaf: int


def search_in_batches(count_tables, request, search, max_cells=_MAX_SPLIT_CELLS):
    """Best splits of the open nodes, counting their tables a bounded batch at a time.

    Parameters
    ----------
    count_tables : callable
        Takes a :class:`SplitRequest` and returns its split tables.
    request : SplitRequest
        The open nodes.
    search : SplitSearch
        The rest of the search's inputs.
    max_cells : int
        Most table cells held at once.

    Returns
    -------
    tuple
        The arrays of :func:`~sdv_janus.engine._kernels.best_splits`, over all open nodes.
    """
    cells_per_slot = max(int(request.offsets[-1]) * request.n_child, 1)
    batch = max(1, max_cells // cells_per_slot)
    found = []
    for start in range(0, request.n_slots, batch):
        stop = min(start + batch, request.n_slots)
        slots = request.slot_of_node
        in_batch = (slots >= start) & (slots < stop)
        part = dataclasses.replace(
            request,
            slot_of_node=np.where(in_batch, slots - start, -1).astype(np.int32),
            n_slots=stop - start,
        )
        tables = count_tables(part)
        found.append(
            best_splits(
                np.ascontiguousarray(tables),
                request.offsets,
                search.node_counts[start:stop],
                search.ordered,
                search.prior,
                search.min_leaf,
            )
        )

    return tuple(np.concatenate(arrays) for arrays in zip(*found, strict=True))


def compute_family_tables(states, families, sizes):
    """:class:`FamilyTable` of each family over one chunk of the encoded table.

    Parameters
    ----------
    states : numpy.ndarray
        int8, int16 or int32 ``(n_rows, n_columns)`` encoded chunk.
    families : sequence of tuple of int
        Columns of each family, parents first and the child last.
    sizes : sequence of int
        Number of states of every column.

    Returns
    -------
    list of FamilyTable
    """
    states = np.ascontiguousarray(states)
    sizes = np.asarray(sizes, dtype=np.int64)
    n_cells = [int(np.prod(sizes[list(family)])) for family in families]
    dense = [index for index, cells in enumerate(n_cells) if cells <= _DENSE_CELL_LIMIT]
    tables = [None] * len(families)
    if dense:
        columns = [families[index] for index in dense]
        starts = np.cumsum([0] + [len(family) for family in columns]).astype(np.int64)
        offsets = np.cumsum([0] + [n_cells[index] for index in dense]).astype(np.int64)
        counts = count_families(
            np.ascontiguousarray(states.T),
            np.concatenate([np.asarray(family, dtype=np.int64) for family in columns]),
            starts,
            sizes,
            offsets[:-1].copy(),
            int(offsets[-1]),
        )
        for position, index in enumerate(dense):
            dense_counts = counts[offsets[position] : offsets[position + 1]]
            tables[index] = FamilyTable.from_dense(dense_counts)

    for index, family in enumerate(families):
        if tables[index] is None:
            tables[index] = _sparse_family_table(states, family, sizes)

    return tables


def _sparse_family_table(states, family, sizes):
    """A family table counted through its distinct cells (for tables too big to hold)."""
    codes = np.zeros(states.shape[0], dtype=np.int64)
    for column in family:
        codes = codes * sizes[column] + states[:, column]

    cells, counts = np.unique(codes, return_counts=True)
    return FamilyTable(cells.astype(np.int64), counts.astype(np.int64))


def compute_split_tables(states, request):
    """int32 ``(n_slots, n_parent_states, n_child)`` split tables over one chunk."""
    return count_split_tables(np.ascontiguousarray(states), *request.kernel_arguments())


def map_states(states, state_maps):
    """Relabel each column's states: ``state_maps[j][s]`` is the new state of state ``s``."""
    mapped = np.empty_like(states)
    for column, state_map in enumerate(state_maps):
        mapped[:, column] = state_map[states[:, column]]

    return mapped


class ArrayCounts:
    """The counts source over one in-memory encoded table.

    Parameters
    ----------
    states : numpy.ndarray
        int8, int16 or int32 ``(n_rows, n_columns)`` encoded table.
    """

    # The kernels release the GIL and only read the table: trees grow in parallel threads.
    grows_trees_in_threads = True

    def __init__(self, states):
        self.states = np.ascontiguousarray(states)

    @property
    def n_rows(self):
        """Number of rows."""
        return self.states.shape[0]

    def family_tables(self, families, sizes):
        """See :func:`compute_family_tables`."""
        return compute_family_tables(self.states, families, sizes)

    def split_tables(self, request):
        """See :func:`compute_split_tables`."""
        return compute_split_tables(self.states, request)

    def best_splits(self, request, search):
        """Best split of every open node, counted and searched node by node in one pass."""
        return count_and_split(
            self.states,
            *request.kernel_arguments(),
            search.node_counts,
            search.ordered,
            search.prior,
            search.min_leaf,
        )

    def mapped(self, state_maps):
        """The source over the table with relabelled states (see :func:`map_states`)."""
        return ArrayCounts(map_states(self.states, state_maps))
