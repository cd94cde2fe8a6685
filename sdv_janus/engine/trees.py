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

from sdv_janus.engine._dirichlet import log_marginal_likelihood
from sdv_janus.engine._kernels import route_rows

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
        """Leaf of each row of an int32 ``(n_rows, n_columns)`` state matrix."""
        return route_rows(
            np.ascontiguousarray(states, dtype=np.int32),
            self.feature,
            self.left,
            self.right,
            self.mask_offset,
            self.go_left,
            self.leaf_of_node,
        )


@dataclass
class _Split:
    """The best split found at a node."""

    gain: float
    column: int
    go_left: np.ndarray


def column_prior(child_states, n_states, prior_strength):
    """Spread ``prior_strength`` over the column's marginal (states seen in training > 0)."""
    counts = np.bincount(child_states, minlength=n_states).astype(np.float64)
    return prior_strength * counts / max(counts.sum(), 1.0)


def grow_tree(states, child, parents, n_states, ordered, settings):
    """Grow the Bayesian decision tree of one column.

    Parameters
    ----------
    states : numpy.ndarray
        int32 ``(n_rows, n_columns)``: encoded training table.
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
    child_states = states[:, child]
    prior = column_prior(child_states, n_states[child], settings.prior_strength)
    split_prior = prior * (settings.split_prior_strength / settings.prior_strength)
    # Each pending node: (node id, row indices, depth).
    nodes = _GrowingNodes()
    pending = [(nodes.add(), np.arange(len(child_states)), 0)]
    while pending:
        node, rows, depth = pending.pop()
        split = None
        if depth < settings.max_depth and len(rows) >= 2 * settings.min_samples_leaf:
            split = _best_split(
                states,
                rows,
                child_states[rows],
                parents,
                n_states,
                ordered,
                split_prior,
                settings.min_samples_leaf,
            )

        if split is None:
            counts = np.bincount(child_states[rows], minlength=n_states[child])
            nodes.make_leaf(node, counts)
            continue

        sends_left = split.go_left[states[rows, split.column]]
        left, right = nodes.add(), nodes.add()
        nodes.make_split(node, split.column, split.go_left, left, right)
        pending.append((right, rows[~sends_left], depth + 1))
        pending.append((left, rows[sends_left], depth + 1))

    return nodes.to_tree(prior)


def _best_split(states, rows, child_states, parents, n_states, ordered, prior, min_leaf):
    """Best split of the rows over all parents, or None if no split pays for the search."""
    n_child = len(prior)
    node_counts = np.bincount(child_states, minlength=n_child).astype(np.float64)
    node_score = log_marginal_likelihood(node_counts, prior)

    best, n_candidates = None, 0
    for column in parents:
        table = _contingency(states[rows, column], child_states, n_states[column], n_child)
        left_counts, masks = _candidate_splits(table, ordered[column], prior)
        left_size = left_counts.sum(axis=1)
        allowed = (left_size >= min_leaf) & (len(rows) - left_size >= min_leaf)
        n_candidates += int(allowed.sum())
        if not allowed.any():
            continue

        left_counts, masks = left_counts[allowed], masks[allowed]
        right_counts = node_counts[None, :] - left_counts
        scores = log_marginal_likelihood(left_counts, prior)
        scores += log_marginal_likelihood(right_counts, prior)
        index = int(np.argmax(scores))
        gain = float(scores[index] - node_score)
        if best is None or gain > best.gain:
            best = _Split(gain, column, masks[index])

    # The best of m candidates must beat log(m): a uniform prior over the candidates.
    if best is None or best.gain <= _PENALTY * np.log(max(n_candidates, 1)):
        return None

    return best


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

    def to_tree(self, prior):
        """Freeze into a :class:`BayesianTree`."""
        sizes = [0 if mask is None else len(mask) for mask in self.masks]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        masks = [mask for mask in self.masks if mask is not None]
        go_left = np.concatenate(masks) if masks else np.zeros(1, dtype=bool)
        return BayesianTree(
            feature=np.array(self.feature, dtype=np.int32),
            left=np.array(self.left, dtype=np.int32),
            right=np.array(self.right, dtype=np.int32),
            mask_offset=offsets,
            go_left=go_left.astype(bool),
            leaf_of_node=np.array(self.leaf_of_node, dtype=np.int32),
            leaf_counts=np.array(self.leaf_counts, dtype=np.float64).reshape(-1, len(prior)),
            prior=prior,
        )
