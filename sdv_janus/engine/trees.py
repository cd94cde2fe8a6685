"""Bayesian decision trees with Dirichlet leaves: one per column, splitting on its parents.

A tree partitions the rows by tests on the parents' states (thresholds on ordered states,
one-vs-rest and ordered subsets on categorical ones). Splits are chosen greedily by the gain in
Dirichlet-multinomial marginal likelihood of the child's states and growth stops when no split
gains more than the price of having searched ``m`` candidates (``log m``). Each leaf keeps the
child's state counts; its posterior is ``Dirichlet(prior + counts)``, where the prior spreads a
small equivalent sample size over the column's marginal so no state seen in training ever gets
probability zero.
"""

import logging
from dataclasses import dataclass

import numpy as np

from sdv_janus.engine._blocks import by_row_blocks
from sdv_janus.engine._kernels import best_splits, route_rows
from sdv_janus.engine.counts import ArrayCounts, SplitRequest, SplitSearch

LOGGER = logging.getLogger(__name__)
_PENALTY = 0.5


@dataclass
class TreeSettings:
    """How trees grow.

    Parameters
    ----------
    prior_strength : float
        Equivalent sample size of the leaf prior, spread over the column's marginal.
    split_prior_strength : float
        Equivalent sample size of the prior under which candidate splits are compared. A
        stronger prior than the leaves' lets trees resolve finer structure while the leaves
        keep close to their counts.
    min_samples_leaf : int
        Fewest training rows a leaf may hold.
    max_depth : int
        Deepest a leaf may sit.
    """

    prior_strength: float = 1.0
    split_prior_strength: float = 20.0
    min_samples_leaf: int = 10
    max_depth: int = 16


@dataclass
class BayesianTree:
    """A fitted tree stored as flat arrays (the layout the numba kernels read).

    Attributes
    ----------
    feature : numpy.ndarray
        int32 ``(n_nodes,)``: column index split on, -1 for leaves.
    left, right : numpy.ndarray
        int32 ``(n_nodes,)``: child node indices (-1 for leaves).
    mask_offset : numpy.ndarray
        int64 ``(n_nodes,)``: start of the node's mask in ``go_left``.
    go_left : numpy.ndarray
        bool: concatenated split masks over the split column's states.
    leaf_of_node : numpy.ndarray
        int32 ``(n_nodes,)``: leaf number of leaf nodes, -1 for internal nodes.
    leaf_counts : numpy.ndarray
        float64 ``(n_leaves, n_states)``: training counts of the child's states per leaf.
    prior : numpy.ndarray
        float64 ``(n_states,)``: the Dirichlet prior shared by every leaf.
    """

    feature: np.ndarray
    left: np.ndarray
    right: np.ndarray
    mask_offset: np.ndarray
    go_left: np.ndarray
    leaf_of_node: np.ndarray
    leaf_counts: np.ndarray
    prior: np.ndarray

    @property
    def n_leaves(self):
        """Number of leaves."""
        return self.leaf_counts.shape[0]

    @property
    def split_columns(self):
        """Sorted column indices the tree splits on (the column's parents in the graph)."""
        return sorted(set(self.feature[self.feature >= 0].tolist()))

    @property
    def posterior(self):
        """float64 ``(n_leaves, n_states)``: the Dirichlet posterior parameters of each leaf."""
        return self.prior[None, :] + self.leaf_counts

    def predictive(self):
        """float64 ``(n_leaves, n_states)``: the posterior mean distribution of each leaf."""
        posterior = self.posterior
        return posterior / posterior.sum(axis=1, keepdims=True)

    def leaves_of(self, states):
        """Leaf of each row of an int ``(n_rows, n_columns)`` state matrix."""
        if states.dtype not in (np.int8, np.int16, np.int32):
            states = states.astype(np.int32)

        def route(block):
            return route_rows(
                block,
                self.feature,
                self.left,
                self.right,
                self.mask_offset,
                self.go_left,
                self.leaf_of_node,
            )

        return by_row_blocks(route, np.ascontiguousarray(states))


@dataclass
class _Split:
    """The best split found at a node."""

    gain: float
    column: int
    go_left: np.ndarray
    left_counts: np.ndarray


def column_prior(child_states, n_states, prior_strength):
    """Spread ``prior_strength`` over the column's marginal (states seen in training > 0)."""
    counts = np.bincount(child_states, minlength=n_states).astype(np.float64)
    return prior_strength * counts / max(counts.sum(), 1.0)


def grow_tree(states, child, parents, n_states, ordered, settings):
    """Grow the Bayesian decision tree of one column, level by level from counts.

    Each level asks the counts source for the split tables of the nodes still open, chooses
    their splits, and opens their children; the rows themselves are never gathered.

    Parameters
    ----------
    states : numpy.ndarray or counts source
        int ``(n_rows, n_columns)`` encoded training table, or a counts source over one (see
        :mod:`sdv_janus.engine.counts`).
    child : int
        Column index of the modelled column.
    parents : sequence of int
        Column indices the tree may split on.
    n_states : sequence of int
        Number of states of every column.
    ordered : sequence of bool
        Whether each column's states are ordered (threshold splits only).
    settings : TreeSettings
        Growth settings.

    Returns
    -------
    BayesianTree
    """
    source = ArrayCounts(states) if isinstance(states, np.ndarray) else states
    root_counts = _column_counts(source, child, n_states)
    prior = settings.prior_strength * root_counts / max(root_counts.sum(), 1.0)
    split_prior = prior * (settings.split_prior_strength / settings.prior_strength)
    parents = np.asarray(parents, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([n_states[p] for p in parents])]).astype(np.int64)
    growth = _Growth(source, child, parents, offsets, n_states, ordered, split_prior, settings)

    # Each open node: (node id, child-state counts of its rows, depth).
    opened = [(growth.nodes.add(), root_counts, 0)]
    while opened:
        opened = growth.split_level(opened)

    return growth.nodes.to_tree(prior)


def _column_counts(source, column, n_states):
    """float64 ``(n_states[column],)`` marginal counts of one column."""
    table = source.family_tables([(column,)], n_states)[0]
    counts = np.zeros(n_states[column])
    counts[table.cells] = table.counts
    return counts


class _Growth:
    """One tree's growth: the nodes so far and how to split a level of open nodes."""

    def __init__(self, source, child, parents, offsets, n_states, ordered, prior, settings):
        self.source, self.child, self.parents, self.offsets = source, child, parents, offsets
        self.n_states, self.ordered, self.prior, self.settings = n_states, ordered, prior, settings
        self.nodes = _GrowingNodes()

    def split_level(self, opened):
        """Split or close every open node; return the children opened, in order."""
        settings = self.settings
        splittable = []
        for node, counts, depth in opened:
            big_enough = counts.sum() >= 2 * settings.min_samples_leaf
            if len(self.parents) and depth < settings.max_depth and big_enough:
                splittable.append((node, counts, depth))
            else:
                self.nodes.make_leaf(node, counts)

        if not splittable:
            return []

        search = SplitSearch(
            np.array([counts for _, counts, _ in splittable], dtype=np.float64),
            np.array([bool(self.ordered[column]) for column in self.parents], dtype=bool),
            self.prior,
            int(settings.min_samples_leaf),
        )
        found = self.source.best_splits(self._request([n for n, _, _ in splittable]), search)
        splits = _paid_splits(found, self.offsets, self.parents)
        children = []
        for (node, counts, depth), split in zip(splittable, splits, strict=True):
            children += self._split_node(node, counts, depth, split)

        return children

    def _request(self, open_nodes):
        """The open nodes to split, over the tree as it stands."""
        feature, left, right, mask_offset, go_left = self.nodes.layout()
        slot_of_node = np.full(len(feature), -1, dtype=np.int32)
        slot_of_node[open_nodes] = np.arange(len(open_nodes), dtype=np.int32)
        return SplitRequest(
            feature,
            left,
            right,
            mask_offset,
            go_left,
            slot_of_node,
            int(self.child),
            self.parents,
            self.offsets,
            len(open_nodes),
            int(self.n_states[self.child]),
        )

    def _split_node(self, node, counts, depth, split):
        """Split one node by its best split, or make it a leaf; return the children opened."""
        if split is None:
            self.nodes.make_leaf(node, counts)
            return []

        left, right = self.nodes.add(), self.nodes.add()
        self.nodes.make_split(node, split.column, split.go_left, left, right)
        right_counts = counts - split.left_counts
        return [(left, split.left_counts, depth + 1), (right, right_counts, depth + 1)]


def _paid_splits(found, offsets, parents):
    """The best split of each node (a :class:`_Split`), or None where no split pays.

    ``found`` holds the arrays of :func:`~sdv_janus.engine._kernels.best_splits`. The best of
    ``m`` candidates must gain more than ``_PENALTY * log(m)``: a uniform prior over the
    candidates.
    """
    gains, positions, n_candidates, go_left, left_counts = found
    splits = []
    for slot in range(len(gains)):
        if not gains[slot] > _PENALTY * np.log(max(n_candidates[slot], 1)):
            splits.append(None)
            continue

        position = int(positions[slot])
        width = int(offsets[position + 1] - offsets[position])
        column = int(parents[position])
        splits.append(
            _Split(float(gains[slot]), column, go_left[slot, :width].copy(), left_counts[slot])
        )

    return splits


def _best_split(states, rows, child_states, parents, n_states, ordered, prior, min_leaf):
    """Best split of the rows over all parents, or None if no split pays for the search."""
    n_child = len(prior)
    tables = [
        _contingency(states[rows, column], child_states, n_states[column], n_child)
        for column in parents
    ]
    offsets = np.concatenate([[0], np.cumsum([n_states[p] for p in parents])]).astype(np.int64)
    node_counts = np.bincount(child_states, minlength=n_child).astype(np.float64)
    parent_ordered = np.array([bool(ordered[column]) for column in parents], dtype=bool)
    found = best_splits(
        np.concatenate(tables)[None], offsets, node_counts[None], parent_ordered, prior, min_leaf
    )
    return _paid_splits(found, offsets, parents)[0]


def _contingency(parent_states, child_states, n_parent, n_child):
    """float64 ``(n_parent, n_child)`` table of joint counts."""
    joint = parent_states.astype(np.int64) * n_child + child_states
    return np.bincount(joint, minlength=n_parent * n_child).reshape(n_parent, n_child)


def _candidate_splits(table, is_ordered, prior):
    """Left-side counts and masks of every candidate split of one parent.

    Returns
    -------
    tuple of numpy.ndarray
        float64 ``(n_candidates, n_child)`` left counts and bool ``(n_candidates, n_parent)``
        masks (True sends the parent state left).
    """
    n_parent = table.shape[0]
    if is_ordered:
        order = np.arange(n_parent)
        thresholds = _threshold_splits(table, order)
        return thresholds

    # Categorical parents: ordered subsets (states sorted by the share of the node's most
    # common child state, which is exact for a binary child) and one-vs-rest.
    present = np.flatnonzero(table.sum(axis=1) > 0)
    mode = int(np.argmax(table.sum(axis=0)))
    share = (table[present, mode] + prior[mode]) / (table[present].sum(axis=1) + prior.sum())
    order = present[np.argsort(share, kind="stable")]
    subset_counts, subset_masks = _threshold_splits(table, order)

    one_masks = np.zeros((len(present), n_parent), dtype=bool)
    one_masks[np.arange(len(present)), present] = True
    one_counts = table[present].astype(np.float64)
    return (
        np.concatenate([subset_counts, one_counts]),
        np.concatenate([subset_masks, one_masks]),
    )


def _threshold_splits(table, order):
    """Splits sending the first ``t + 1`` states of ``order`` left, for each ``t``."""
    n_parent = table.shape[0]
    cumulative = np.cumsum(table[order], axis=0, dtype=np.float64)[:-1]
    masks = np.zeros((len(order) - 1, n_parent), dtype=bool) if len(order) > 1 else None
    if masks is None:
        return np.empty((0, table.shape[1])), np.empty((0, n_parent), dtype=bool)

    positions = np.empty(n_parent, dtype=np.int64)
    positions[:] = len(order)
    positions[order] = np.arange(len(order))
    masks[:] = positions[None, :] <= np.arange(len(order) - 1)[:, None]
    return cumulative, masks


class _GrowingNodes:
    """Node arrays of a tree under construction."""

    def __init__(self):
        self.feature, self.left, self.right, self.masks, self.leaf_counts = [], [], [], [], []
        self.leaf_of_node = []

    def add(self):
        """Append an undecided node and return its id."""
        for array in (self.feature, self.left, self.right, self.leaf_of_node):
            array.append(-1)

        self.masks.append(None)
        return len(self.feature) - 1

    def make_leaf(self, node, counts):
        """Turn a node into a leaf holding ``counts``."""
        self.leaf_of_node[node] = len(self.leaf_counts)
        self.leaf_counts.append(counts)

    def make_split(self, node, column, go_left, left, right):
        """Turn a node into a split on ``column``."""
        self.feature[node], self.left[node], self.right[node] = column, left, right
        self.masks[node] = go_left

    def layout(self):
        """The flat arrays ``feature, left, right, mask_offset, go_left`` of the tree so far."""
        sizes = [0 if mask is None else len(mask) for mask in self.masks]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        masks = [mask for mask in self.masks if mask is not None]
        go_left = np.concatenate(masks) if masks else np.zeros(1, dtype=bool)
        return (
            np.array(self.feature, dtype=np.int32),
            np.array(self.left, dtype=np.int32),
            np.array(self.right, dtype=np.int32),
            offsets,
            go_left.astype(bool),
        )

    def to_tree(self, prior):
        """Freeze into a :class:`BayesianTree`."""
        feature, left, right, mask_offset, go_left = self.layout()
        return BayesianTree(
            feature=feature,
            left=left,
            right=right,
            mask_offset=mask_offset,
            go_left=go_left,
            leaf_of_node=np.array(self.leaf_of_node, dtype=np.int32),
            leaf_counts=np.array(self.leaf_counts, dtype=np.float64).reshape(-1, len(prior)),
            prior=prior,
        )
