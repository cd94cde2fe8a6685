"""The JANUS model: encoding, structure, one Bayesian tree per column, and sampling.

This is the engine's entry point. It takes plain columns (arrays of raw values) with a
:class:`~sdv_janus.engine.encoding.ColumnSpec` each and knows nothing of SDV.
"""

import logging
import time

import networkx as nx
import numpy as np

from sdv_janus.engine._blocks import map_in_threads
from sdv_janus.engine.constrained import (
    ConstrainedSampler,
    ConstraintPlanner,
    atoms_of,
    check_linear_feasibility,
)
from sdv_janus.engine.counts import ArrayCounts, state_dtype
from sdv_janus.engine.encoding import CATEGORICAL, ColumnCodec
from sdv_janus.engine.rules import (
    AllOf,
    AllowedTuples,
    InSet,
    Linear,
    disjoint_terms,
)
from sdv_janus.engine.sampling import StateSampler, stratified_draws
from sdv_janus.engine.structure import coarsening_map, learn_structure
from sdv_janus.engine.trees import TreeSettings, grow_tree
from sdv_janus.engine.uncertainty import score_columns

LOGGER = logging.getLogger(__name__)

# Columns with more states are drawn from their marginal, outside the graph.
_MAX_STATES_IN_GRAPH = 1000

# Relative rounding noise forgiven when checking that training rows satisfy a linear rule.
_ROUNDING_NOISE = 1e-9


class JanusModel:
    """A DAG of Bayesian decision trees over encoded columns.

    Parameters
    ----------
    max_parents : int, default=3
        In-degree bound of the BDeu graph search that orders the columns.
    structure_prior : float, default=10.0
        Equivalent sample size of the BDeu score of that search.
    prior_strength : float, default=1.0
        Equivalent sample size of each leaf's Dirichlet prior.
    split_prior_strength : float, default=20.0
        Equivalent sample size of the prior under which tree splits are compared.
    min_samples_leaf : int, default=10
        Fewest training rows in a tree leaf.
    max_depth : int, default=16
        Deepest a tree leaf may sit.
    n_bins : int, default=32
        Target number of bins for numerical and datetime columns.
    max_exact_values : int, default=64
        Numerical columns with at most this many distinct values keep them exactly.
    structure_groups : int, default=8
        Ordered columns are coarsened to this many groups for structure learning only.
    candidates_per_row : int, default=32
        Importance-resampling pool per output row when sampling under conditions.
    constraint_candidates : int, default=16
        Most valid candidates drawn per output row under weighted constraints, one kept by
        weight (see :mod:`sdv_janus.engine.constrained`).
    graph : networkx.DiGraph or None, default=None
        A user-given DAG over column names; learned from the data when None.
    """

    def __init__(
        self,
        max_parents=3,
        structure_prior=10.0,
        prior_strength=1.0,
        split_prior_strength=20.0,
        min_samples_leaf=10,
        max_depth=16,
        n_bins=32,
        max_exact_values=64,
        structure_groups=8,
        candidates_per_row=32,
        constraint_candidates=16,
        graph=None,
    ):
        self.max_parents = max_parents
        self.structure_prior = structure_prior
        self.tree_settings = TreeSettings(
            prior_strength=prior_strength,
            split_prior_strength=split_prior_strength,
            min_samples_leaf=min_samples_leaf,
            max_depth=max_depth,
        )
        self.n_bins = n_bins
        self.max_exact_values = max_exact_values
        self.structure_groups = structure_groups
        self.candidates_per_row = candidates_per_row
        self.constraint_candidates = constraint_candidates
        self.user_graph = graph
        self._rng = np.random.default_rng()

    def set_random_state(self, seed):
        """Reset the random generator (an int, a ``numpy.random.Generator`` or None)."""
        self._rng = np.random.default_rng(seed)

    @property
    def columns(self):
        """Names of the modelled columns, in input order."""
        return [codec.spec.name for codec in self.codecs_]

    def fit(self, columns, specs, constraints=()):
        """Learn the model.

        Parameters
        ----------
        columns : mapping of str to array-like
            Raw values of every column (all of the same length).
        specs : sequence of ColumnSpec
            One spec per column to model.
        constraints : sequence, default=()
            Formulas of :mod:`sdv_janus.engine.rules` that every sampled row must satisfy. An
            :class:`AllowedTuples` whose ``rows`` is None allows the combinations seen here.

        Returns
        -------
        JanusModel
            The fitted model.
        """
        started = time.perf_counter()
        codecs = self.new_codecs(specs)
        self.fit_codecs(codecs, [codec.tally(columns[codec.spec.name]) for codec in codecs])
        states = self.encode(columns)
        LOGGER.info("Encoded %d columns in %.2fs", len(specs), time.perf_counter() - started)

        rules = fill_training_rows(constraints, lambda names: distinct_rows(columns, names))
        codecs_by_name = {codec.spec.name: codec for codec in self.codecs_}
        return self.fit_counts(
            ArrayCounts(states),
            rules,
            lambda formula: holds_on_every_row(formula, columns, codecs_by_name),
        )

    def new_codecs(self, specs):
        """Unfitted codecs for the columns described by ``specs``."""
        return [ColumnCodec(spec, self.n_bins, self.max_exact_values) for spec in specs]

    def fit_codecs(self, codecs, tallies):
        """Learn every column's states from its :class:`ValueTally` (first step of a fit)."""
        pairs = zip(codecs, tallies, strict=True)
        self.codecs_ = [codec.fit_tally(tally) for codec, tally in pairs]
        self.n_states_ = [codec.n_states for codec in self.codecs_]
        self.ordered_ = [codec.encoder.ordered for codec in self.codecs_]
        return self

    def fit_counts(self, source, constraints=(), holds_on_training_rows=None):
        """Learn the graph and the trees from counts (second step of a fit, after the codecs).

        Parameters
        ----------
        source : counts source
            The encoded training table, read only through its counts (see
            :mod:`sdv_janus.engine.counts`); in memory or spread over partitions.
        constraints : sequence, default=()
            Formulas every sampled row must satisfy, their allowed tuples already filled (see
            :func:`fill_training_rows`).
        holds_on_training_rows : callable, optional
            Whether a formula holds on every training row (see :func:`holds_on_every_row`).
            The truncations a confirmed formula causes are not reweighted (see
            :mod:`sdv_janus.engine.constrained`). None confirms no formula.

        Returns
        -------
        JanusModel
            The fitted model.
        """
        started = time.perf_counter()
        self.constraints_ = list(constraints)
        self.rules_true_in_training_ = self._rules_true_in_training(holds_on_training_rows)
        self.order_, candidates = self._order_and_candidates(source)
        LOGGER.info("Ordered the columns in %.2fs", time.perf_counter() - started)
        self.trees_ = self._grow_trees(source, candidates)

        self.graph_ = _graph_of_trees(self.trees_)
        LOGGER.info("Graph has %d edges", self.graph_.number_of_edges())
        self.sampler_ = StateSampler(
            self.trees_, self.graph_, self.candidates_per_row, order=self.order_
        )
        self._constrained_sampler = self._build_constrained_sampler(self.constraints_)
        LOGGER.info("Fitted trees in %.2fs", time.perf_counter() - started)
        return self

    def _grow_trees(self, source, candidates):
        """One tree per column; in parallel threads where the source allows it."""

        def grow(column):
            settings = self.tree_settings
            return grow_tree(
                source, column, candidates[column], self.n_states_, self.ordered_, settings
            )

        columns = range(len(self.codecs_))
        if getattr(source, "grows_trees_in_threads", False):
            return map_in_threads(grow, columns)

        return [grow(column) for column in columns]

    def encode(self, columns):
        """Encode raw columns into an ``(n_rows, n_columns)`` state matrix.

        The dtype is the narrowest of int8, int16 and int32 that holds every column's states.
        """
        dtype = state_dtype(self.n_states_)
        n_rows = len(columns[self.codecs_[0].spec.name]) if self.codecs_ else 0
        states = np.empty((n_rows, len(self.codecs_)), dtype=dtype)
        for index, codec in enumerate(self.codecs_):
            states[:, index] = codec.encode(columns[codec.spec.name])

        return states

    def _order_and_candidates(self, source):
        """Column order, and the columns each tree may split on.

        With a user graph, a tree splits only on the column's parents in that graph. Otherwise a
        graph learned by BDeu search fixes the order and each tree may split on every column
        before it, keeping only the splits that pay for themselves.
        """
        if self.user_graph is not None:
            graph = self._graph_from_names(self.user_graph)
            order = list(nx.lexicographical_topological_sort(graph))
            return order, {column: sorted(graph.predecessors(column)) for column in order}

        isolated = self._high_cardinality_columns(source.n_rows)
        graph = self._search_structure(source, isolated)
        order = self._totals_after_parts(list(nx.lexicographical_topological_sort(graph)))
        usable = [column for column in order if column not in isolated]
        return order, {
            column: [] if column in isolated else usable[: usable.index(column)] for column in order
        }

    def _totals_after_parts(self, order):
        """Move the total of each linear identity among the constraints after its parts.

        For ``total == a + b + c`` the column drawn last is fixed by the others. Drawing the
        total last gives it the sum of realistic parts; drawing a part last would give that
        part whatever difference is left, which can be far from anything in the data.
        """
        names = self.columns
        for total, parts in _identities(self.constraints_):
            if total not in names or not all(part in names for part in parts):
                continue

            position = {column: index for index, column in enumerate(order)}
            total_index = names.index(total)
            last_part = max(position[names.index(part)] for part in parts)
            if position[total_index] < last_part:
                # After the removal the last part sits one place earlier: insert right after it.
                order.remove(total_index)
                order.insert(last_part, total_index)

        return order

    def _rules_true_in_training(self, holds_on_training_rows):
        """Names of the constraints that every training row satisfies.

        A name shared with a constraint that some training row breaks is left out, so that a
        name stands only for rules the data confirm.
        """
        if holds_on_training_rows is None:
            return frozenset()

        confirmed, broken = set(), set()
        for formula in self.constraints_:
            names = rule_names(formula)
            (confirmed if holds_on_training_rows(formula) else broken).update(names)

        return frozenset(confirmed - broken)

    def _high_cardinality_columns(self, n_rows):
        """Columns with too many states for the graph; they are drawn from their marginal."""
        isolated = {
            index
            for index, size in enumerate(self.n_states_)
            if size > _MAX_STATES_IN_GRAPH or size > n_rows // 2
        }
        if isolated:
            LOGGER.info(
                "Columns drawn from their marginal (too many states for the graph): %s",
                [self.columns[index] for index in sorted(isolated)],
            )

        return isolated

    def _search_structure(self, source, isolated):
        """A DAG learned by BDeu search on coarsened states; it sets the column order."""
        maps, coarse_sizes = [], []
        for codec in self.codecs_:
            groups = self.structure_groups if codec.encoder.ordered else codec.n_states
            group_of_state, size = coarsening_map(codec.encoder.counts_, groups)
            maps.append(group_of_state)
            coarse_sizes.append(size)

        return learn_structure(
            source.mapped(maps),
            coarse_sizes,
            self.max_parents,
            self.structure_prior,
            isolated=isolated,
        )

    def _graph_from_names(self, named_graph):
        """Translate a DAG over column names into one over column indices."""
        index = {name: position for position, name in enumerate(self.columns)}
        unknown = sorted(set(named_graph.nodes) - set(index), key=str)
        if unknown:
            raise ValueError(f"The graph names columns that are not modelled: {unknown}.")

        if not nx.is_directed_acyclic_graph(named_graph):
            cycle = nx.find_cycle(named_graph)
            raise ValueError(f"The graph must be acyclic; it has the cycle {cycle}.")

        graph = nx.DiGraph()
        graph.add_nodes_from(range(len(index)))
        graph.add_edges_from((index[u], index[v]) for u, v in named_graph.edges)
        return graph

    def get_graph(self):
        """The DAG as a networkx DiGraph over column names."""
        return nx.relabel_nodes(self.graph_, dict(enumerate(self.columns)), copy=True)

    def condition_states(self, conditions):
        """Translate ``{column name: raw value}`` into ``{column index: state}``."""
        index = {name: position for position, name in enumerate(self.columns)}
        states = {}
        for name, value in conditions.items():
            codec = self.codecs_[index[name]]
            state = int(codec.encode(np.array([value], dtype=object))[0])
            if codec.spec.kind != CATEGORICAL:
                _check_in_range(name, codec, value)

            if state < 0:
                raise ValueError(
                    f"The condition {name}={value!r} names a value never seen in column '{name}'."
                )

            states[index[name]] = state

        return states

    @staticmethod
    def check_feasible(formulas):
        """Raise InfeasibleConstraintsError if the arithmetic rules can hold for no values.

        Only the linear atoms are checked, with unbounded columns; nothing needs to be fitted.
        """
        check_linear_feasibility(formulas)

    def _build_constrained_sampler(self, formulas):
        """Back-fill the formulas (raising if they cannot hold) into a sampler, or None."""
        if not formulas:
            return None

        plans = ConstraintPlanner(self, formulas).plans()
        added = [formula for formula in formulas if formula not in self.constraints_]
        unconfirmed = {name for formula in added for name in rule_names(formula)}
        confirmed = self.rules_true_in_training_ - unconfirmed
        return ConstrainedSampler(self, plans, self.constraint_candidates, confirmed)

    def sample(self, num_rows, conditions=None, constraints=(), return_allowed=False):
        """Draw rows of raw values.

        Parameters
        ----------
        num_rows : int
            Number of rows.
        conditions : mapping of str to value, optional
            Values that every row must take; the other columns are drawn from the model's
            posterior given them.
        constraints : sequence, default=()
            Formulas that hold for this draw only, on top of those given to ``fit``.
        return_allowed : bool, default=False
            Also return the states each truncated column could take in each row, as
            ``{column index: bool (num_rows, n_states)}`` (empty without constraints), which
            :meth:`uncertainty` takes to describe the distribution actually sampled.

        Returns
        -------
        dict of str to numpy.ndarray
            Raw values per column: categories, float64 numbers or datetime64[ns]; with
            ``return_allowed``, a tuple of that dict and the masks.
        """
        conditions = dict(conditions or {})
        numbers, allowed = {}, {}
        if self.constraints_ or constraints:
            sampler = self._constrained_sampler
            if conditions or constraints:
                formulas = self.constraints_ + list(constraints)
                formulas += self._condition_atoms(conditions)
                sampler = self._build_constrained_sampler(formulas)

            drawn = sampler.sample(num_rows, self._rng, record_allowed=return_allowed)
            states, numbers = drawn[:2]
            allowed = drawn[2] if return_allowed else {}
        else:
            fixed = self.condition_states(conditions)
            positions = dict.fromkeys(self._numeric_columns())
            states = self.sampler_.sample(num_rows, self._rng, fixed, positions)
            numbers = self._numbers_at(states, positions, conditions)

        output = self._decode(states, numbers, conditions)
        return (output, allowed) if return_allowed else output

    def _condition_atoms(self, conditions):
        """Fixed values as constraints: two bounds for numbers, a one-value set otherwise."""
        self.condition_states(conditions)
        atoms = []
        for name, value in conditions.items():
            label = f"condition {name}={value!r}"
            codec = self.codecs_[self.columns.index(name)]
            number = codec.to_numbers(np.array([value], dtype=object))[0]
            if codec.spec.kind == CATEGORICAL or np.isnan(number):
                atoms.append(InSet(name, (value,), label))
            else:
                atoms.append(Linear(((name, 1.0),), -number, False, label))
                atoms.append(Linear(((name, -1.0),), number, False, label))

        return atoms

    def _numeric_columns(self):
        return [i for i, codec in enumerate(self.codecs_) if codec.spec.kind != CATEGORICAL]

    def _numbers_at(self, states, positions, conditions):
        """Numbers of the columns whose positions inside their states the draw kept."""
        numbers = {}
        for index in list(positions):
            position = positions.pop(index)  # freed column by column
            codec = self.codecs_[index]
            if position is not None and codec.spec.name not in conditions:
                numbers[codec.spec.name] = codec.decode_numbers(states[:, index], position)

        return numbers

    def _decode(self, states, numbers, conditions):
        """States (and numbers already drawn under constraints) to raw values."""
        num_rows = len(states)
        output = {}
        for index, codec in enumerate(self.codecs_):
            name = codec.spec.name
            if name in conditions:
                output[name] = np.full(num_rows, conditions[name], dtype=object)
            elif name in numbers:
                output[name] = codec.from_numbers(numbers[name])
            elif codec.spec.kind == CATEGORICAL:
                output[name] = codec.decode(states[:, index], None)
            else:
                uniforms = stratified_draws(states[:, index], codec.n_states, self._rng)
                output[name] = codec.decode(states[:, index], uniforms)

        return output

    def uncertainty(self, columns, allowed=None):
        """Total, aleatoric and epistemic uncertainty of raw rows, per row and column.

        Parameters
        ----------
        columns : mapping of str to array-like
            Raw values of every modelled column, each of length ``n_rows``.
        allowed : mapping of int to numpy.ndarray, optional
            Column index to bool ``(n_rows, n_states)``: the states sampling may draw.

        Returns
        -------
        UncertaintyScores
            See :mod:`sdv_janus.engine.uncertainty` for the figures, units and unseen values.
        """
        return score_columns(self.codecs_, self.trees_, columns, allowed)


def _check_in_range(name, codec, value):
    """A numerical condition must lie inside the training range (nulls are allowed)."""
    number = codec.to_numbers(np.array([value], dtype=object))[0]
    low, high = codec.encoder.min_, codec.encoder.max_
    if not np.isnan(number) and not low <= number <= high:
        shown = (low, high)
        if codec.spec.kind != "numerical":
            shown = tuple(codec.from_numbers(np.array([low, high])))

        raise ValueError(
            f"The condition {name}={value!r} lies outside the training range of "
            f"'{name}' ({shown[0]} to {shown[1]}); the model cannot produce it."
        )


def _identities(formulas):
    """``(total, parts)`` of each linear identity: two rules with opposite coefficients.

    The total is the one column whose coefficient's sign differs from all the others'.
    """
    atoms = [atom for formula in formulas for atom in _linear_atoms(formula)]
    signatures = {tuple(sorted(atom.coefficients)) for atom in atoms}
    identities = []
    for signature in signatures:
        negated = tuple(sorted((column, -value) for column, value in signature))
        if negated not in signatures or len(signature) < 3 or signature > negated:
            continue

        positive = [column for column, value in signature if value > 0]
        negative = [column for column, value in signature if value < 0]
        for alone, others in ((positive, negative), (negative, positive)):
            if len(alone) == 1:
                identities.append((alone[0], others))

    return identities


def holds_on_every_row(formula, columns, codecs):
    """Whether a formula holds on every row of ``columns``, as sampling reads it.

    A row satisfies the formula when it satisfies every atom of one of its disjoint terms (see
    :func:`~sdv_janus.engine.rules.disjoint_terms`). A linear atom holds vacuously where one of
    its columns is null, and rounding noise up to a relative ``1e-9`` is forgiven. Set and table
    atoms compare the states the codecs give, as the back-filling plans do.

    Parameters
    ----------
    formula : formula of :mod:`sdv_janus.engine.rules`
        Its tables of combinations already filled.
    columns : mapping of str to array-like
        Raw values of (at least) the columns the formula names.
    codecs : mapping of str to ColumnCodec
        The fitted codecs of those columns.

    Returns
    -------
    bool
    """
    n_rows = len(next(iter(columns.values())))
    rows_of_atom = {}
    satisfied = np.zeros(n_rows, dtype=bool)
    for term in disjoint_terms(formula):
        in_term = np.ones(n_rows, dtype=bool)
        for atom in term:
            if atom not in rows_of_atom:
                rows_of_atom[atom] = _rows_satisfying(atom, columns, codecs)

            in_term &= rows_of_atom[atom]

        satisfied |= in_term

    return bool(satisfied.all())


def _rows_satisfying(atom, columns, codecs):
    """Boolean array: the rows that satisfy one atom."""
    if isinstance(atom, Linear):
        return _rows_satisfying_linear(atom, columns, codecs)

    if isinstance(atom, InSet):
        codec = codecs[atom.column]
        states = codec.encode(columns[atom.column])
        allowed = codec.encode(np.array(atom.values, dtype=object))
        inside = np.isin(states, allowed[allowed >= 0])
        return ~inside if atom.negated else inside

    return _rows_in_table(atom, columns, codecs)


def _rows_satisfying_linear(atom, columns, codecs):
    """Rows where a linear atom holds, vacuously where one of its columns is null."""
    total = np.full(len(next(iter(columns.values()))), atom.constant, dtype=np.float64)
    scale = np.abs(total)
    for name, coefficient in atom.coefficients:
        term = coefficient * codecs[name].to_numbers(columns[name])
        total += term
        scale += np.abs(term)

    # Sums of floats carry rounding noise: a non-strict rule holds within it.
    with np.errstate(invalid="ignore"):
        if atom.strict:
            holds = total > 0
        else:
            holds = total + _ROUNDING_NOISE * np.maximum(1.0, scale) >= 0

    return holds | np.isnan(total)


def _rows_in_table(atom, columns, codecs):
    """Rows whose states of the table's columns form one of its allowed combinations."""
    sizes = [codecs[name].n_states for name in atom.columns]
    rows = np.array(atom.rows, dtype=object).reshape(-1, len(atom.columns))
    allowed = np.column_stack(
        [codecs[name].encode(rows[:, i]) for i, name in enumerate(atom.columns)]
    )
    allowed = allowed[(allowed >= 0).all(axis=1)]
    seen = np.column_stack([codecs[name].encode(columns[name]) for name in atom.columns])
    known = (seen >= 0).all(axis=1)
    keys = np.ravel_multi_index(tuple(np.maximum(seen, 0).T), sizes)
    allowed_keys = np.ravel_multi_index(tuple(allowed.T), sizes)
    return known & np.isin(keys, allowed_keys)


def rule_names(formula):
    """Names of the atoms of a formula."""
    return {atom.name for atom in atoms_of(formula)}


def rule_columns(formula):
    """Names of the columns a formula reads, sorted."""
    return sorted({column for atom in atoms_of(formula) for column in atom.columns})


def _linear_atoms(formula):
    """The linear atoms a formula requires on every row (those not inside alternatives)."""
    if isinstance(formula, Linear):
        return [formula]

    if isinstance(formula, AllOf):
        return [atom for item in formula.items for atom in _linear_atoms(item)]

    return []


def fill_training_rows(formulas, distinct_rows):
    """Fill every :class:`AllowedTuples` without rows with the combinations seen in training.

    Parameters
    ----------
    formulas : sequence
        Formulas of :mod:`sdv_janus.engine.rules`.
    distinct_rows : callable
        Takes a list of column names and returns the set of value tuples seen in training.

    Returns
    -------
    list
        The formulas, filled.
    """
    return [_with_training_rows(formula, distinct_rows) for formula in formulas]


def distinct_rows(columns, names):
    """Set of value tuples of the named raw columns (a mapping of name to array)."""
    table = np.column_stack([np.asarray(columns[name], dtype=object) for name in names])
    return {tuple(row) for row in table.tolist()}


def _with_training_rows(formula, distinct_rows):
    """Fill an :class:`AllowedTuples` without rows with the combinations seen in training."""
    if isinstance(formula, AllowedTuples) and formula.rows is None:
        return AllowedTuples(formula.columns, tuple(distinct_rows(formula.columns)), formula.name)

    if isinstance(formula, AllOf):
        return AllOf(tuple(_with_training_rows(item, distinct_rows) for item in formula.items))

    return formula


def _graph_of_trees(trees):
    """The DAG whose edges go from each column a tree splits on to the tree's column."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(len(trees)))
    for column, tree in enumerate(trees):
        graph.add_edges_from((parent, column) for parent in tree.split_columns)

    return graph
