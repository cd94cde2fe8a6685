r"""Dirichlet-multinomial marginal likelihoods, the score shared by structure and trees.

For a Dirichlet(alpha) prior over ``r`` states and observed counts ``n``, the log marginal
likelihood of the counts (up to the multinomial coefficient, which cancels in every comparison
made here) is

.. math::

    \log \Gamma(A) - \log \Gamma(A + N)
    + \sum_k \left[\log \Gamma(\alpha_k + n_k) - \log \Gamma(\alpha_k)\right]

with :math:`A = \sum_k \alpha_k` and :math:`N = \sum_k n_k`.
"""

import numpy as np
from scipy.special import gammaln

_DENSE_CELL_LIMIT = 1 << 22


def log_marginal_likelihood(counts, alpha):
    """Log Dirichlet-multinomial marginal likelihood of count vectors.

    Parameters
    ----------
    counts : numpy.ndarray
        float64 or int array of shape ``(..., r)``: counts of each state.
    alpha : numpy.ndarray
        float64 array broadcastable to ``counts``: the Dirichlet concentration per state.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``counts.shape[:-1]``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=np.float64), counts.shape)
    prior_total = alpha.sum(axis=-1)
    count_total = counts.sum(axis=-1)
    per_state = gammaln(alpha + counts) - gammaln(alpha)
    return gammaln(prior_total) - gammaln(prior_total + count_total) + per_state.sum(axis=-1)


def bdeu_local_score(child_states, parent_codes, n_child_states, n_parent_configs, ess):
    """BDeu score of one column given one joint parent configuration per row.

    Parameters
    ----------
    child_states : numpy.ndarray
        int array of shape ``(n_rows,)``: the child's state per row.
    parent_codes : numpy.ndarray
        int64 array of shape ``(n_rows,)``: the index of the joint parent configuration per row.
    n_child_states : int
        Number of states of the child.
    n_parent_configs : int
        Number of possible joint parent configurations (the product of parent cardinalities).
    ess : float
        Equivalent sample size, spread uniformly over configurations and states.

    Returns
    -------
    float
        The log marginal likelihood of the child's column under the BDeu prior.
    """
    # Only observed (configuration, state) pairs contribute; dense counting when it fits.
    joint = parent_codes.astype(np.int64) * n_child_states + child_states
    n_cells = n_parent_configs * n_child_states
    if n_cells <= _DENSE_CELL_LIMIT:
        cell_counts = np.bincount(joint, minlength=n_cells).reshape(-1, n_child_states)
        config_counts = cell_counts.sum(axis=1)
        pair_counts = cell_counts[cell_counts > 0]
        config_counts = config_counts[config_counts > 0]
    else:
        pairs, pair_counts = np.unique(joint, return_counts=True)
        _, config_index = np.unique(pairs // n_child_states, return_inverse=True)
        config_counts = np.bincount(config_index, weights=pair_counts)

    alpha_config = ess / n_parent_configs
    alpha_cell = alpha_config / n_child_states
    score = np.sum(gammaln(alpha_config) - gammaln(alpha_config + config_counts))
    score += np.sum(gammaln(alpha_cell + pair_counts) - gammaln(alpha_cell))
    return float(score)


def bdeu_table_score(cells, cell_counts, n_child_states, n_parent_configs, ess):
    """BDeu score of one column from the joint counts of its family.

    Parameters
    ----------
    cells : numpy.ndarray
        int64 ``(n_cells,)`` distinct codes ``config * n_child_states + child_state`` that occur.
    cell_counts : numpy.ndarray
        int ``(n_cells,)`` rows in each of those cells.
    n_child_states : int
        Number of states of the child.
    n_parent_configs : int
        Number of possible joint parent configurations (the product of parent cardinalities).
    ess : float
        Equivalent sample size, spread uniformly over configurations and states.

    Returns
    -------
    float
        The log marginal likelihood of the child's column under the BDeu prior.
    """
    configs = cells // n_child_states
    # Cells are sorted, so the cells of one configuration are consecutive.
    starts = np.flatnonzero(np.diff(configs, prepend=-1))
    config_counts = np.add.reduceat(cell_counts, starts) if len(cells) else cell_counts

    alpha_config = ess / n_parent_configs
    alpha_cell = alpha_config / n_child_states
    score = np.sum(gammaln(alpha_config) - gammaln(alpha_config + config_counts))
    score += np.sum(gammaln(alpha_cell + cell_counts) - gammaln(alpha_cell))
    return float(score)
