"""Forward (ancestral) sampling of encoded states, and conditioning on fixed values.

Columns are drawn in topological order: every row is routed down the column's tree using the
states already drawn for its parents, then a state is drawn from the leaf's posterior predictive
distribution. Conditions fix the states of some columns; the columns upstream of a conditioned
column are then drawn from the model's posterior given the condition by sampling-importance-
resampling: a pool of candidate prefixes is drawn forward, each weighted by the likelihood of the
conditioned states under its leaves, and the output rows are resampled from the pool in
proportion to those weights.
"""

import functools
import logging

import networkx as nx
import numpy as np

from sdv_janus.engine._blocks import by_row_blocks
from sdv_janus.engine._kernels import draw_states, positions_in_states, stratified_uniforms
from sdv_janus.engine.counts import state_dtype

LOGGER = logging.getLogger(__name__)

_POOL_ROWS_PER_CHUNK = 1 << 20
_COVERAGE_EXPECTED_COUNT = 0.5


class StateSampler:
    """Draws encoded rows from fitted trees.

    Parameters
    ----------
    trees : sequence of BayesianTree
        One tree per column, indexed by column.
    graph : networkx.DiGraph
        The DAG over column indices.
    candidates_per_row : int, default=32
        Size of the importance-resampling pool per output row when conditioning.
    order : sequence of int, optional
        The drawing order, a topological order of ``graph``; the lexicographic one by default.
    """

    def __init__(self, trees, graph, candidates_per_row=32, order=None):
        self.trees = list(trees)
        self.graph = graph
        self.order = (
            list(order) if order is not None else list(nx.lexicographical_topological_sort(graph))
        )
        self.candidates_per_row = candidates_per_row
        # Drawn states are stored in the narrowest integer type the state counts allow.
        self.dtype = state_dtype([len(tree.prior) for tree in self.trees])
        self.predictive = [tree.predictive() for tree in self.trees]
        self.cumulative = [np.cumsum(predictive, axis=1) for predictive in self.predictive]
        self._log_predictive = [np.log(predictive) for predictive in self.predictive]

    def sample(self, n_rows, rng, fixed=None, positions=None):
        """Draw ``n_rows`` encoded rows.

        Parameters
        ----------
        n_rows : int
            Number of rows.
        rng : numpy.random.Generator
            Source of randomness.
        fixed : dict of int to int, optional
            Column index to the state every row must take.
        positions : dict of int to None, optional
            Columns whose positions inside their drawn states to keep (see ``forward``);
            filled only when no condition needs resampling.

        Returns
        -------
        numpy.ndarray
            ``(n_rows, n_columns)`` states, int8, int16 or int32 (see ``state_dtype``).
        """
        fixed = fixed or {}
        upstream = self._upstream_of(fixed)
        if not upstream:
            states = np.empty((n_rows, len(self.trees)), self.dtype)
            return self.forward(states, rng, fixed, positions=positions)

        chunk = max(1, _POOL_ROWS_PER_CHUNK // self.candidates_per_row)
        if n_rows > chunk:
            parts = [
                self.sample(min(chunk, n_rows - start), rng, fixed)
                for start in range(0, n_rows, chunk)
            ]
            return np.concatenate(parts)

        pool_size = n_rows * self.candidates_per_row
        pool = np.empty((pool_size, len(self.trees)), dtype=self.dtype)
        pool = self.forward(pool, rng, fixed, columns=upstream | set(fixed))
        log_weights = self._condition_log_likelihood(pool, fixed)
        chosen = _resample(log_weights, n_rows, rng)
        LOGGER.debug(
            "Conditioned on %d columns: effective pool size %.0f of %d",
            len(fixed),
            _effective_size(log_weights),
            pool_size,
        )
        return self.forward(pool[chosen], rng, fixed, skip=upstream | set(fixed))

    def _upstream_of(self, fixed):
        """Unconditioned ancestors of the conditioned columns."""
        ancestors = set()
        for column in fixed:
            ancestors |= nx.ancestors(self.graph, column)

        return ancestors - set(fixed)

    def forward(self, states, rng, fixed=None, columns=None, skip=(), positions=None):
        """Fill ``states`` column by column in topological order.

        Parameters
        ----------
        states : numpy.ndarray
            int32 ``(n_rows, n_columns)``, filled in place (and returned).
        rng : numpy.random.Generator
            Source of randomness.
        fixed : dict of int to int, optional
            Columns set to one state.
        columns : collection of int, optional
            Only these columns are drawn (all by default).
        skip : collection of int, optional
            These columns are left as they are.
        positions : dict of int to None, optional
            For each column key drawn, the value is set to the float64 ``(n_rows,)`` position
            of every row's uniform inside the slice of its leaf distribution that chose its
            state: a Uniform(0, 1) independent of the state, which places a number inside its
            bin with no further draw.
        """
        fixed = fixed or {}
        for column in self.order:
            if column in skip or (columns is not None and column not in columns):
                continue

            if column in fixed:
                states[:, column] = fixed[column]
                continue

            leaves = self.trees[column].leaves_of(states)
            uniforms = stratified_draws(leaves, self.trees[column].n_leaves, rng)
            draw = functools.partial(draw_states, self.cumulative[column])
            drawn = by_row_blocks(draw, leaves, uniforms)
            states[:, column] = drawn
            if positions is not None and column in positions:
                place = functools.partial(positions_in_states, self.cumulative[column])
                positions[column] = by_row_blocks(place, leaves, uniforms, drawn)

            if not fixed:
                self._cover_rare_states(states, column, leaves)

        return states

    def _cover_rare_states(self, states, column, leaves):
        """Make every training state appear that the output's size calls for.

        Stratified draws already reproduce each leaf's distribution to within a row, but a
        state seen once in training is expected about once in an output of the same size and
        can still be missed, because leaf occupancy varies. A state whose training share,
        scaled to the output's size, reaches one half of a row and which is absent from the
        draw is given to the row where it is most probable (among rows whose own state occurs
        more than once). Columns downstream are drawn afterwards, given the new state.
        """
        drawn = states[:, column]
        training_counts = self.trees[column].leaf_counts.sum(axis=0)
        scaled = training_counts * len(drawn) / max(training_counts.sum(), 1.0)
        counts = np.bincount(drawn, minlength=len(training_counts))
        for state in np.flatnonzero((scaled >= _COVERAGE_EXPECTED_COUNT) & (counts == 0)):
            probability = self.predictive[column][leaves, state]

            replaceable = counts[drawn] > 1
            if not replaceable.any():
                break

            row = int(np.argmax(np.where(replaceable, probability, -1.0)))
            counts[drawn[row]] -= 1
            counts[state] += 1
            drawn[row] = state

    def _condition_log_likelihood(self, states, fixed):
        """Log probability of the conditioned states under each row's leaves."""
        log_weights = np.zeros(states.shape[0])
        for column, state in fixed.items():
            leaves = self.trees[column].leaves_of(states)
            log_weights += self._log_predictive[column][leaves, state]

        return log_weights


def stratified_draws(groups, n_groups, rng):
    """Uniforms stratified within each group of rows (see ``stratified_uniforms``)."""
    shuffle, jitter = rng.random((2, len(groups)))
    if groups.dtype not in (np.int8, np.int16, np.int32):
        groups = groups.astype(np.int32)

    return stratified_uniforms(np.ascontiguousarray(groups), n_groups, shuffle, jitter)


def _resample(log_weights, n_draws, rng):
    """Indices drawn with replacement in proportion to ``exp(log_weights)``."""
    weights = np.exp(log_weights - log_weights.max())
    cumulative = np.cumsum(weights)
    chosen = np.searchsorted(cumulative, rng.random(n_draws) * cumulative[-1], side="right")
    return np.minimum(chosen, len(cumulative) - 1)


def _effective_size(log_weights):
    """Kish's effective sample size of importance weights."""
    weights = np.exp(log_weights - log_weights.max())
    return weights.sum() ** 2 / np.sum(weights**2)
