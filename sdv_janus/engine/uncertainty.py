"""How uncertain the model is about each column of a row: closed form and Monte Carlo reference.

Every column's tree sends a row to one leaf, whose posterior over the column's states is
``Dirichlet(alpha)`` (``alpha = tree.prior + leaf counts``). With ``alpha_0 = sum_k alpha_k`` and
the posterior mean ``p = alpha / alpha_0``, the leaf has, in closed form and in nats:

- total uncertainty ``H(p) = -sum_k p_k log p_k``, the entropy of the state drawn next;
- aleatoric uncertainty ``E[H(theta)] = psi(alpha_0 + 1) - sum_k p_k psi(alpha_k + 1)`` for
  ``theta ~ Dirichlet(alpha)``, the entropy left if the leaf's probabilities were known;
- epistemic uncertainty ``total - aleatoric``, the mutual information between the next state
  and ``theta``: what more training rows in that leaf would remove. It is never negative.

The epistemic part is computed as ``sum_k p_k g(alpha_k) - g(alpha_0)`` with
``g(x) = psi(x + 1) - log x`` (an asymptotic series for large ``x``), which is the same quantity
without the cancellation between two nearly equal numbers when ``alpha_0`` is huge; aleatoric is
then ``total - epistemic``. Figures are computed once per leaf, vectorised over a tree's leaves,
and a row only gathers its leaf's figures, so scoring a million rows is routing plus a gather.

A row's figures are sums over columns (the chain rule: the entropy of a row is the sum of each
column's entropy given its parents); the per-column figures are kept too.

Within-bin part. A numerical or datetime state is a bin, inside which the value is drawn from a
piecewise-uniform density (``n_knots`` pieces of equal probability between the encoder's knots).
That part is fully known (no posterior over it), so it adds the same amount to total and
aleatoric and leaves epistemic unchanged. The amount is the expected within-bin entropy under
the leaf's predictive, ``sum_k p_k h_k``, where ``h_k`` is the entropy in nats of the value of
state ``k`` at the column's resolution ``delta`` (``10 ** -decimal_places`` for rounded numbers,
the learned unit for datetimes, else 1 in the column's own unit): each piece of width ``w``
contributes ``log(max(n_knots * w / delta, 1)) / n_knots``, i.e. the differential entropy
``h - log(delta)`` of the density, piece by piece, floored at zero. Point states, zero-width
pieces and pieces narrower than ``delta / n_knots`` contribute 0, the missing state too. The
figure is exact for the rounded value when every piece spans many resolution steps.

Truncation. Sampling under constraints draws each column from its leaf restricted to the
states its constraints allow. A boolean mask of allowed states per row restricts the figures
the same way: a Dirichlet restricted to a subset of states and renormalised is the Dirichlet of
the subset's ``alpha`` (aggregation property), so masked states simply get ``alpha_k = 0``.
The mask works on whole states; a bin cut part-way by a bound keeps its whole within-bin part.
A row whose mask allows no state gets NaN figures for that column (nothing can be drawn).

Unseen values. Scored rows may hold values the model never saw: a category absent from
training, a null in a column that had none, a value that does not parse as the column's type,
or a number outside the training range (by more than ``1e-9`` of that range). Such a value is
the state ``UNKNOWN_STATE`` and is flagged in ``UncertaintyScores.unseen``. A tree that would
have to test an unseen value to route the row answers with its prior alone, ``Dirichlet(prior)``
(the leaf of no training row, the most uncertain answer the tree can give); trees that never
consult it answer as usual. The unseen column's own figures describe its distribution given its
parents, which do not involve its value, so they are unchanged.
"""

import logging
from dataclasses import dataclass

import numpy as np
from scipy.special import digamma, entr, logsumexp

from sdv_janus.engine.encoding import CATEGORICAL, UNKNOWN_STATE

LOGGER = logging.getLogger(__name__)

# Above this, g(x) = psi(x + 1) - log(x) comes from its asymptotic series (error < 1e-18).
_SERIES_FROM = 100.0
# Dirichlet draws boost the gamma shape by one below this, so tiny shapes cannot underflow.
_BOOST_BELOW = 0.5
# Cells (draws x rows x states) held in memory at once by the Monte Carlo estimator.
_CHUNK_CELLS = 1 << 21
_MAX_BATCHES = 32
# A number is outside the training range if it passes a bound by more than this share of it.
_RANGE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Figures:
    """Total, aleatoric and epistemic uncertainty in nats, each float64 of one shape."""

    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray


@dataclass(frozen=True)
class MonteCarloFigures:
    """Monte Carlo estimates of :class:`Figures` and their standard errors.

    Attributes
    ----------
    figures : Figures
        The estimates, float64 ``(n,)`` each.
    standard_errors : Figures
        Batch-means standard errors of the estimates, float64 ``(n,)`` each.
    n_draws : int
        Number of Dirichlet draws per distribution.
    """

    figures: Figures
    standard_errors: Figures
    n_draws: int


@dataclass(frozen=True)
class UncertaintyScores:
    """Per-row, per-column figures of scored rows.

    Attributes
    ----------
    total, aleatoric, epistemic : numpy.ndarray
        float64 ``(n_rows, n_columns)``, nats; NaN where a mask allowed no state.
    unseen : numpy.ndarray
        bool ``(n_rows, n_columns)``: the row's value was never seen in training.
    """

    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    unseen: np.ndarray

    def row_figures(self):
        """Sum the figures over columns.

        Returns
        -------
        Figures
            float64 ``(n_rows,)`` each.
        """
        return Figures(
            total=self.total.sum(axis=1),
            aleatoric=self.aleatoric.sum(axis=1),
            epistemic=self.epistemic.sum(axis=1),
        )


def dirichlet_uncertainty(alpha, within=None):
    """Closed-form figures of Dirichlet posteriors.

    Parameters
    ----------
    alpha : numpy.ndarray
        float64 ``(n, n_states)``, every entry >= 0: one Dirichlet per row. States with
        ``alpha_k = 0`` are absent (probability zero).
    within : numpy.ndarray, optional
        float64 ``(n_states,)``: within-state entropy in nats, added to total and aleatoric in
        expectation under the posterior mean.

    Returns
    -------
    Figures
        float64 ``(n,)`` each, in nats; NaN for rows whose ``alpha`` sums to zero.
    """
    alpha = np.atleast_2d(np.asarray(alpha, dtype=np.float64))
    alpha_0 = alpha.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = alpha / alpha_0[:, None]
        # Present states only: 0 * g(0) is 0, not NaN.
        g_terms = np.where(alpha > 0, mean * _psi_minus_log(alpha), 0.0)
        epistemic = np.maximum(g_terms.sum(axis=1) - _psi_minus_log(alpha_0), 0.0)

    total = entr(mean).sum(axis=1)
    epistemic[alpha_0 <= 0] = np.nan
    aleatoric = total - epistemic
    if within is not None:
        known = mean @ np.asarray(within, dtype=np.float64)
        total, aleatoric = total + known, aleatoric + known

    return Figures(total=total, aleatoric=aleatoric, epistemic=epistemic)


def _psi_minus_log(x):
    """``psi(x + 1) - log(x)`` for float64 ``x > 0`` of any shape, without cancellation."""
    x = np.asarray(x, dtype=np.float64)
    large = x >= _SERIES_FROM
    safe = np.where(large, 1.0, x)
    direct = digamma(safe + 1.0) - np.log(safe)
    inverse = 1.0 / np.where(large, x, _SERIES_FROM)
    squared = inverse * inverse
    series = 0.5 * inverse - squared * (1 / 12 - squared * (1 / 120 - squared / 252))
    return np.where(large, series, direct)


def monte_carlo_uncertainty(alpha, n_draws, rng, within=None):
    """Monte Carlo figures of Dirichlet posteriors: the reference for the closed form.

    Draws ``theta ~ Dirichlet(alpha)`` ``n_draws`` times per row. Aleatoric is the mean of
    ``H(theta)``; total is the entropy of the mean draw; epistemic is their difference (the mean
    Kullback-Leibler divergence of the draws from their mean). Standard errors come from
    ``min(32, n_draws)`` batch means.

    Parameters
    ----------
    alpha : numpy.ndarray
        float64 ``(n, n_states)``, every entry >= 0.
    n_draws : int
        Draws per row, at least 2.
    rng : numpy.random.Generator
        Source of randomness.
    within : numpy.ndarray, optional
        float64 ``(n_states,)``: within-state entropy in nats (see :func:`dirichlet_uncertainty`).

    Returns
    -------
    MonteCarloFigures
        Estimates and standard errors, float64 ``(n,)`` each.
    """
    if n_draws < 2:
        raise ValueError(f"Monte Carlo needs at least 2 draws, got {n_draws}.")

    alpha = np.atleast_2d(np.asarray(alpha, dtype=np.float64))
    within = np.zeros(alpha.shape[1]) if within is None else np.asarray(within, np.float64)
    n_batches = min(_MAX_BATCHES, n_draws)
    sizes = np.diff(np.linspace(0, n_draws, n_batches + 1).astype(np.int64))
    batches = [_batch_figures(alpha, size, rng, within) for size in sizes]

    # Pooled estimates weight each batch by its draws; the spread of batch estimates gives SEs.
    weights = sizes / n_draws
    estimates, errors = [], []
    for figure in range(3):
        values = np.stack([batch[figure] for batch in batches])
        estimates.append(weights @ values)
        errors.append(values.std(axis=0, ddof=1) / np.sqrt(n_batches))

    mean_draw = sum(w * batch[3] for w, batch in zip(weights, batches, strict=True))
    total = entr(mean_draw).sum(axis=1) + mean_draw @ within
    estimates[0] = total
    estimates[2] = total - estimates[1]
    return MonteCarloFigures(Figures(*estimates), Figures(*errors), int(n_draws))


def _batch_figures(alpha, n_draws, rng, within):
    """One batch of draws: (total, aleatoric, epistemic, mean draw), each per row."""
    n_rows, n_states = alpha.shape
    entropy_sum = np.zeros(n_rows)
    draw_sum = np.zeros((n_rows, n_states))
    rows_per_chunk = max(1, _CHUNK_CELLS // max(n_states, 1))
    for start in range(0, n_rows, rows_per_chunk):
        block = alpha[start : start + rows_per_chunk]
        draws_per_chunk = max(1, _CHUNK_CELLS // block.size)
        for done in range(0, n_draws, draws_per_chunk):
            count = min(draws_per_chunk, n_draws - done)
            log_theta = log_dirichlet_draws(block, count, rng)
            theta = np.exp(log_theta)
            entropy = -np.where(theta > 0, theta * log_theta, 0.0).sum(axis=2)
            entropy_sum[start : start + len(block)] += (entropy + theta @ within).sum(axis=0)
            draw_sum[start : start + len(block)] += theta.sum(axis=0)

    mean_draw = draw_sum / n_draws
    total = entr(mean_draw).sum(axis=1) + mean_draw @ within
    aleatoric = entropy_sum / n_draws
    return total, aleatoric, total - aleatoric, mean_draw


def log_dirichlet_draws(alpha, n_draws, rng):
    """Logarithms of Dirichlet draws, exact even for tiny concentrations.

    A gamma variate of shape ``a < 0.5`` is drawn as ``G * U ** (1 / a)`` with
    ``G ~ Gamma(a + 1)`` and ``U ~ Uniform(0, 1)``, in log space, so it cannot underflow to 0.

    Parameters
    ----------
    alpha : numpy.ndarray
        float64 ``(n, n_states)``, every entry >= 0 (0: the state is absent).
    n_draws : int
        Draws per row.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_draws, n, n_states)``: ``log theta``, ``-inf`` for absent states, NaN rows
        where ``alpha`` sums to zero.
    """
    present = alpha > 0
    boosted = present & (alpha < _BOOST_BELOW)
    shape = np.where(present, alpha + boosted, 1.0)
    with np.errstate(divide="ignore"):
        log_gamma = np.log(rng.standard_gamma(shape, size=(n_draws,) + alpha.shape))

    if boosted.any():
        uniforms = rng.random((n_draws, int(boosted.sum())))
        log_gamma[:, boosted] += np.log1p(-uniforms) / alpha[boosted]

    log_gamma[:, ~present] = -np.inf
    with np.errstate(invalid="ignore"):
        return log_gamma - logsumexp(log_gamma, axis=2, keepdims=True)


def within_bin_entropy(codec):
    """Entropy in nats of a value inside each state, at the column's resolution.

    Parameters
    ----------
    codec : ColumnCodec
        A fitted column codec.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_states,)``: zeros for categorical columns and the missing state; for value
        states, ``mean_j log(max(n_knots * w_j / delta, 1))`` over the knot pieces of widths
        ``w_j`` (see the module docstring).
    """
    entropy = np.zeros(codec.n_states)
    if codec.spec.kind == CATEGORICAL:
        return entropy

    knots = codec.encoder.knots_
    n_pieces = knots.shape[1] - 1
    steps = n_pieces * np.diff(knots, axis=1) / _resolution(codec)
    entropy[: knots.shape[0]] = np.log(np.maximum(steps, 1.0)).mean(axis=1)
    return entropy


def _resolution(codec):
    """Smallest difference the column's values resolve, in the encoder's units (float)."""
    if getattr(codec, "decimal_places_", None) is not None:
        return 10.0**-codec.decimal_places_

    if getattr(codec, "datetime_unit_", None) is not None:
        return float(codec.datetime_unit_)

    return 1.0


@dataclass(frozen=True)
class LeafTable:
    """One tree's figures, computed once per leaf.

    Attributes
    ----------
    tree : BayesianTree
        The tree.
    within : numpy.ndarray
        float64 ``(n_states,)``: within-state entropy of the tree's column.
    leaf_figures : numpy.ndarray
        float64 ``(3, n_leaves)``: total, aleatoric and epistemic of each leaf.
    prior_figures : numpy.ndarray
        float64 ``(3,)``: the figures of ``Dirichlet(prior)``, for rows that cannot be routed.
    """

    tree: object
    within: np.ndarray
    leaf_figures: np.ndarray
    prior_figures: np.ndarray


def leaf_table(tree, within=None, estimator=dirichlet_uncertainty):
    """Figures of every leaf of a tree, and of its prior.

    Parameters
    ----------
    tree : BayesianTree
        A fitted tree.
    within : numpy.ndarray, optional
        float64 ``(n_states,)`` within-state entropy (zeros when None).
    estimator : callable, default=dirichlet_uncertainty
        ``estimator(alpha, within) -> Figures`` for float64 ``alpha`` of shape
        ``(n, n_states)``; the Monte Carlo reference can be plugged in here.

    Returns
    -------
    LeafTable
    """
    within = np.zeros(len(tree.prior)) if within is None else within
    alphas = np.vstack([tree.posterior, tree.prior[None, :]])
    figures = estimator(alphas, within)
    stacked = np.stack([figures.total, figures.aleatoric, figures.epistemic])
    return LeafTable(tree, within, stacked[:, :-1], stacked[:, -1])


def leaf_paths(tree, n_columns):
    """Which columns are tested on the way from the root to each leaf.

    Parameters
    ----------
    tree : BayesianTree
        A fitted tree.
    n_columns : int
        Number of columns of the state matrix.

    Returns
    -------
    numpy.ndarray
        bool ``(n_leaves, n_columns)``.
    """
    paths = np.zeros((tree.n_leaves, n_columns), dtype=bool)
    pending = [(0, np.zeros(n_columns, dtype=bool))]
    while pending:
        node, tested = pending.pop()
        column = tree.feature[node]
        if column < 0:
            paths[tree.leaf_of_node[node]] = tested
            continue

        below = tested.copy()
        below[column] = True
        pending.extend([(tree.left[node], below), (tree.right[node], below)])

    return paths


def encode_for_scoring(codecs, columns):
    """Encode raw columns, turning values never seen in training into ``UNKNOWN_STATE``.

    Parameters
    ----------
    codecs : sequence of ColumnCodec
        The fitted codecs, one per modelled column.
    columns : mapping of str to array-like
        Raw values of each modelled column, all of one length ``n_rows``.

    Returns
    -------
    tuple of numpy.ndarray
        int32 ``(n_rows, n_columns)`` states and bool ``(n_rows, n_columns)`` unseen flags.
    """
    encoded = []
    for codec in codecs:
        values = columns[codec.spec.name]
        if codec.spec.kind == CATEGORICAL:
            encoded.append(codec.encode(values))
            continue

        numbers = codec.to_numbers(values)
        states = codec.encoder.encode(numbers)
        states[_outside_range(numbers, codec.encoder.min_, codec.encoder.max_)] = UNKNOWN_STATE
        encoded.append(states)

    n_rows = len(encoded[0]) if encoded else 0
    states = np.empty((n_rows, len(encoded)), dtype=np.int32)
    for index, column in enumerate(encoded):
        states[:, index] = column

    return states, states < 0


def _outside_range(numbers, low, high):
    """Flag float64 numbers beyond ``[low, high]``, infinities included (bool, NaN: False)."""
    if np.isnan(low):
        return np.isinf(numbers)

    slack = _RANGE_TOLERANCE * max(high - low, abs(high), abs(low), 1.0)
    with np.errstate(invalid="ignore"):
        return (numbers < low - slack) | (numbers > high + slack)


def score_states(tables, states, allowed=None, estimator=dirichlet_uncertainty):
    """Figures of encoded rows under fitted trees.

    Parameters
    ----------
    tables : sequence of LeafTable
        One table per column (see :func:`leaf_table`), indexed like the state matrix.
    states : numpy.ndarray
        int32 ``(n_rows, n_columns)``; negative entries (``UNKNOWN_STATE``) are unseen values.
    allowed : mapping of int to numpy.ndarray, optional
        Column index to bool ``(n_rows, n_states)`` (or ``(n_states,)`` for every row): the
        states the sampler may draw for that column. Figures are those of the restricted leaf.
    estimator : callable, default=dirichlet_uncertainty
        Used for masked columns, as in :func:`leaf_table`.

    Returns
    -------
    UncertaintyScores
    """
    states = np.asarray(states, dtype=np.int32)
    unseen = states < 0
    # Any valid state stands in for an unseen one; rows whose path tests it are fixed below.
    routable = np.ascontiguousarray(np.where(unseen, 0, states), dtype=np.int32)
    # Filled one contiguous column at a time; the scores are transposed views of it.
    figures = np.empty((3, states.shape[1], states.shape[0]))
    allowed = allowed or {}
    for column, table in enumerate(tables):
        leaves = table.tree.leaves_of(routable)
        blocked = _blocked_rows(table.tree, leaves, unseen)
        if column in allowed:
            figures[:, column] = _masked_figures(table, leaves, blocked, allowed[column], estimator)
            continue

        figures[:, column] = table.leaf_figures[:, leaves]
        figures[:, column, blocked] = table.prior_figures[:, None]

    return UncertaintyScores(figures[0].T, figures[1].T, figures[2].T, unseen)


def _blocked_rows(tree, leaves, unseen):
    """Flag the rows whose path to ``leaves`` tests a column holding an unseen value (bool).

    Paths with a stand-in state agree with the true path up to the first test of the unseen
    column, so the row is blocked exactly when its stand-in path tests that column.
    """
    split_columns = tree.split_columns
    if not split_columns or not unseen[:, split_columns].any():
        return np.zeros(len(leaves), dtype=bool)

    paths = leaf_paths(tree, unseen.shape[1])
    return (paths[leaves] & unseen).any(axis=1)


def _masked_figures(table, leaves, blocked, mask, estimator):
    """float64 ``(3, n_rows)`` figures of each row's leaf restricted to its allowed states."""
    tree = table.tree
    alpha = tree.posterior[leaves]
    alpha[blocked] = tree.prior
    alpha *= np.broadcast_to(np.asarray(mask, dtype=bool), alpha.shape)
    figures = estimator(alpha, table.within)
    return np.stack([figures.total, figures.aleatoric, figures.epistemic])


def score_columns(codecs, trees, columns, allowed=None, within_bin=True):
    """Per-row, per-column uncertainty of raw rows.

    Parameters
    ----------
    codecs : sequence of ColumnCodec
        Fitted codecs, one per modelled column.
    trees : sequence of BayesianTree
        Fitted trees, indexed like ``codecs``.
    columns : mapping of str to array-like
        Raw values of every modelled column, each of length ``n_rows``.
    allowed : mapping of int to numpy.ndarray, optional
        Allowed-state masks per column index (see :func:`score_states`).
    within_bin : bool, default=True
        Add the within-bin entropy of numerical and datetime columns to total and aleatoric.

    Returns
    -------
    UncertaintyScores
    """
    states, _ = encode_for_scoring(codecs, columns)
    tables = [
        leaf_table(tree, within_bin_entropy(codec) if within_bin else None)
        for codec, tree in zip(codecs, trees, strict=True)
    ]
    scores = score_states(tables, states, allowed)
    LOGGER.debug(
        "Scored %d rows; %d hold unseen values", len(states), int(scores.unseen.any(axis=1).sum())
    )
    return scores
