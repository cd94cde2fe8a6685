"""Learning the DAG over the columns by greedy search on a BDeu score.

The score of a column given a parent set is the Dirichlet-multinomial (BDeu) marginal likelihood
of its states given the joint parent configuration, the same family of score the trees use to
choose their splits. Columns with many ordered states are coarsened to a few quantile groups for
this search only, so a parent set is judged by the dependence it captures and not penalised for
the resolution of the bins.
"""

import logging

import networkx as nx
import numpy as np

from sdv_janus.engine._dirichlet import bdeu_table_score
from sdv_janus.engine.counts import ArrayCounts

LOGGER = logging.getLogger(__name__)


def coarsening_map(counts, n_groups):
    """Group of each ordered state when consecutive states are merged into ``n_groups``.

    Parameters
    ----------
    counts : numpy.ndarray
        int ``(n_states,)`` training count of each state.
    n_groups : int
        Largest number of groups.

    Returns
    -------
    tuple
        int64 ``(n_states,)`` group of each state, and the number of groups.
    """
    if len(counts) <= n_groups:
        return np.arange(len(counts), dtype=np.int64), len(counts)

    # Each state goes to the group holding the middle of its mass, so a spike (a state holding
    # most rows) forms a group of its own instead of swallowing its neighbours.
    middle = (np.cumsum(counts) - counts / 2) / max(counts.sum(), 1)
    group_of_state = np.minimum((middle * n_groups).astype(np.int64), n_groups - 1)
    group_of_state = np.unique(group_of_state, return_inverse=True)[1].astype(np.int64)
    return group_of_state, int(group_of_state.max()) + 1


def coarsen_states(states, counts, n_groups):
    """Merge consecutive ordered states into at most ``n_groups`` groups of similar mass.

    Parameters
    ----------
    states : numpy.ndarray
        int ``(n_rows,)`` states.
    counts : numpy.ndarray
        int ``(n_states,)`` training count of each state.
    n_groups : int
        Largest number of groups.

    Returns
    -------
    tuple
        ``(n_rows,)`` group per row (the dtype of ``states``), and the number of groups.
    """
    group_of_state, size = coarsening_map(counts, n_groups)
    return group_of_state[states].astype(states.dtype), size


class _LocalScores:
    """Cache of BDeu scores of (child, parent set) pairs, counted in batches from a source."""

    def __init__(self, source, n_states, ess):
        self.source, self.n_states, self.ess = source, list(n_states), ess
        self._cache = {}

    def prefetch(self, pairs):
        """Score every ``(child, parents)`` pair not cached yet with one pass of counting."""
        missing = {(child, tuple(sorted(parents))) for child, parents in pairs}
        missing = sorted(key for key in missing if key not in self._cache)
        if not missing:
            return

        families = [parents + (child,) for child, parents in missing]
        tables = self.source.family_tables(families, self.n_states)
        for (child, parents), table in zip(missing, tables, strict=True):
            n_configs = int(np.prod([self.n_states[parent] for parent in parents]))
            self._cache[child, parents] = bdeu_table_score(
                table.cells, table.counts, self.n_states[child], n_configs, self.ess
            )

    def __call__(self, child, parents):
        key = (child, tuple(sorted(parents)))
        self.prefetch([key])
        return self._cache[key]


def learn_structure(states, n_states, max_parents=3, ess=10.0, max_configs=None, isolated=()):
    """Greedy hill climbing over edge additions, keeping the graph acyclic.

    Parameters
    ----------
    states : numpy.ndarray or counts source
        int ``(n_rows, n_columns)`` encoded (possibly coarsened) table, or a counts source over
        one (see :mod:`sdv_janus.engine.counts`).
    n_states : sequence of int
        Number of states of each column.
    max_parents : int, default=3
        Bound on the in-degree.
    ess : float, default=10.0
        BDeu equivalent sample size.
    max_configs : int or None
        Largest number of joint parent configurations allowed for one column; by default a
        tenth of the number of rows, so that a configuration holds ten rows on average.
    isolated : collection of int, default=()
        Columns kept out of the search: they get no parents and no children.

    Returns
    -------
    networkx.DiGraph
        Nodes are column indices ``0..n_columns-1``.
    """
    source = ArrayCounts(states) if isinstance(states, np.ndarray) else states
    n_rows, n_columns = source.n_rows, len(n_states)
    max_configs = max_configs or max(n_rows // 10, 2)
    score = _LocalScores(source, n_states, ess)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n_columns))

    # gains[u, v]: score improvement of adding the edge u -> v to the current graph. All single
    # parent scores are counted in one pass.
    gains = np.full((n_columns, n_columns), -np.inf)
    score.prefetch(
        [(child, ()) for child in range(n_columns)]
        + [
            (child, (parent,))
            for child in range(n_columns)
            for parent in range(n_columns)
            if parent != child and n_states[parent] <= max_configs
        ]
    )
    for child in range(n_columns):
        gains[:, child] = _addition_gains(graph, score, child, n_states, max_parents, max_configs)

    isolated = list(isolated)
    gains[isolated, :] = -np.inf
    gains[:, isolated] = -np.inf

    while True:
        parent, child = np.unravel_index(np.argmax(gains), gains.shape)
        if not gains[parent, child] > 0:
            break

        if nx.has_path(graph, child, parent):
            gains[parent, child] = -np.inf
            continue

        graph.add_edge(int(parent), int(child))
        LOGGER.debug("Added edge %d -> %d (gain %.2f)", parent, child, gains[parent, child])
        gains[:, child] = _addition_gains(graph, score, child, n_states, max_parents, max_configs)
        gains[isolated, child] = -np.inf

    return graph


def _addition_gains(graph, score, child, n_states, max_parents, max_configs):
    """Gain of adding each possible parent to ``child`` (-inf where not allowed)."""
    n_columns = graph.number_of_nodes()
    gains = np.full(n_columns, -np.inf)
    parents = list(graph.predecessors(child))
    if len(parents) >= max_parents:
        return gains

    configs = int(np.prod([n_states[p] for p in parents])) if parents else 1
    candidates = [
        candidate
        for candidate in range(n_columns)
        if candidate != child
        and candidate not in parents
        and configs * n_states[candidate] <= max_configs
    ]
    score.prefetch([(child, parents)] + [(child, parents + [c]) for c in candidates])
    current = score(child, parents)
    for candidate in candidates:
        gains[candidate] = score(child, parents + [candidate]) - current

    return gains
