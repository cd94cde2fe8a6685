"""Sampling under constraints: back-filled truncation, weighted so the output stays faithful.

Each column is drawn from its leaf distribution truncated to the interval (numerical and
datetime columns) or the set of states (categorical ones) that the back-filling plan allows
given the columns drawn before it, so every row satisfies every rule by construction and none is
ever rejected. Truncation alone would bias the ancestors of a constrained column: a parent state
whose children can barely satisfy a rule would be drawn as often as one whose children always
can. So truncated forward sampling is used as an importance sampler: a candidate's weight is
the product over truncated columns of the mass ``Z_k`` their leaf distribution had inside the
feasible cut. ``K`` valid candidates are drawn per output row and ``n`` are picked in
proportion to their weights (sampling-importance-resampling, systematic). The picks follow the
weighted pool, which converges to the model's distribution restricted to the feasible set as
the pool grows; a candidate is picked twice only when its weight exceeds ``K`` times the mean.
Formulas with alternatives (``or``, ``if ... then``) are split
into disjoint cases, each back-filled on its own. A candidate is drawn under all of them at
once: it keeps the cases that its values so far are consistent with, each column is drawn
inside the union of those cases' cuts, and the weight gains the mass of that union. A case is
therefore never chosen blindly ahead of the values that decide it, and a rule that the model
rarely breaks leaves the weights nearly equal.

A rule that every training row satisfies adds no weight: the data hold it with certainty, so
conditioning on it leaves their distribution as it is, and the mass the model's leaf puts
outside its cut measures only the model's error. Its truncations still make every row valid,
and a column that its cases cut in several ways is still drawn from the union of the live
cuts, not from a mixture that would favour the values several cuts share. Conditions, and
rules the training data break, weigh as above. The total of an identity
(``total == a + b + c``) is drawn after its parts, so it is their sum.

Columns that no rule mentions and that are not ancestors of one are drawn afterwards, once per
output row, from their untruncated trees.
"""

import logging
import warnings
from itertools import combinations, product

import networkx as nx
import numpy as np

from sdv_janus.engine._kernels import (
    draw_from_weights,
    draw_inside_interval,
    draw_states,
    interval_mass,
)
from sdv_janus.engine.encoding import CATEGORICAL
from sdv_janus.engine.feasibility import (
    InfeasibleConstraintsError,
    LinearRule,
    TableRule,
    backfill,
)
from sdv_janus.engine.rules import AllowedTuples, InSet, Linear, disjoint_terms
from sdv_janus.engine.sampling import stratified_draws

LOGGER = logging.getLogger(__name__)

MAX_COMBINATIONS = 256

# Weights whose squared coefficient of variation is below this are treated as equal (one
# candidate per row, no resampling); otherwise K is this margin times the pilot's 99.9th
# percentile weight over the mean weight. The pilot has this many candidates.
_IGNORABLE_VARIATION = 0.01
_RATIO_MARGIN = 1.5
_PILOT_ROWS = 2000
_RELATIVE_NOISE = 1e-9

# A column that its rules' cases cut in more ways than this is weighted even when the
# training data confirm the rules (the union of its cuts would need 2^n intersections).
_MAX_UNION_CUTS = 6

# Candidates drawn at once; bounds the memory of the per-state masses of a large sample.
_CHUNK_CANDIDATES = 1 << 17


class ConstraintGuaranteeWarning(UserWarning):
    """A drawn value could not be rounded inside its feasible interval."""


class ConstraintPlanner:
    """Turns formulas into back-filling plans for a fitted model.

    Parameters
    ----------
    model : JanusModel
        The fitted model (its codecs give states, ranges and rounding; its sampler the order).
    formulas : sequence
        Formulas of :mod:`sdv_janus.engine.rules`, all of which must hold.
    """

    def __init__(self, model, formulas):
        self.model = model
        self.formulas = list(formulas)
        self._codec = {codec.spec.name: codec for codec in model.codecs_}
        self.order = [model.columns[index] for index in model.sampler_.order]
        for formula in self.formulas:
            self._check_columns(formula)

    def plans(self):
        """One plan per feasible combination of disjoint terms.

        Raises
        ------
        InfeasibleConstraintsError
            When no combination can hold, naming the constraints in conflict.
        """
        term_lists = [disjoint_terms(formula) for formula in self.formulas]
        n_combinations = int(np.prod([len(terms) for terms in term_lists]))
        if n_combinations > MAX_COMBINATIONS:
            raise ValueError(
                f"The constraints split into {n_combinations} cases (alternatives multiply); "
                f"at most {MAX_COMBINATIONS} are supported. Combine alternatives into fewer rules."
            )

        plans, errors = [], []
        for combination in product(*term_lists):
            atoms = [atom for term in combination for atom in term]
            try:
                plans.append(self._plan(atoms))
            except InfeasibleConstraintsError as error:
                errors.append(error)

        if not plans:
            conflicting = frozenset().union(*(error.conflicting for error in errors))
            ranges = frozenset().union(*(error.ranges for error in errors))
            if len(errors) == 1:
                raise errors[0]

            raise InfeasibleConstraintsError(conflicting, ranges, "in every case of alternatives")

        return plans

    def _plan(self, atoms):
        """Back-fill one conjunction of atoms."""
        atoms = self._bounds_as_sets(atoms)
        linear = [self._linear_rule(atom) for atom in atoms if isinstance(atom, Linear)]
        tables = [self._table_rule(atom) for atom in atoms if not isinstance(atom, Linear)]
        linear_columns = {column for rule in linear for column in rule.coefficients}
        table_columns = {column for rule in tables for column in rule.columns}
        both = sorted(linear_columns & table_columns)
        if both:
            raise ValueError(
                f"The column(s) {both} appear both in arithmetic rules and in sets or tables of "
                "values; a column can be constrained one way only."
            )

        domains = self._domains(linear_columns)
        return backfill(self.order, linear, tables, domains, self._integer_columns())

    def _bounds_as_sets(self, atoms):
        """Single-column bounds on a column that a table also constrains, as sets of states.

        A column is constrained either by arithmetic or by sets of states. When a column with
        few exact values (say a count) is in a table of combinations, a bound or a condition on
        it alone is the set of its values that satisfy it.
        """
        table_columns = {
            column for atom in atoms if not isinstance(atom, Linear) for column in atom.columns
        }
        converted = []
        for atom in atoms:
            column = atom.columns[0] if isinstance(atom, Linear) else None
            if column in table_columns and len(atom.columns) == 1 and self._is_exact(column):
                atom = self._as_set(atom)

            converted.append(atom)

        return converted

    def _is_exact(self, column):
        """Whether every value state of a numerical column holds a single value."""
        knots = self._codec[column].encoder.knots_
        return bool(np.all(knots[:, 0] == knots[:, -1]))

    def _as_set(self, atom):
        """The values of the atom's one column that satisfy it, as an :class:`InSet`."""
        ((column, coefficient),) = atom.coefficients
        values = self._codec[column].encoder.knots_[:, 0]
        total = coefficient * values + atom.constant
        keep = total > 0 if atom.strict else total >= 0
        codec = self._codec[column]
        return InSet(column, tuple(codec.from_numbers(values[keep]).tolist()), atom.name)

    def _linear_rule(self, atom):
        names = frozenset([atom.name])
        return LinearRule(dict(atom.coefficients), atom.constant, atom.strict, names)

    def _table_rule(self, atom):
        if isinstance(atom, InSet):
            codec = self._codec[atom.column]
            states = codec.encode(np.array(atom.values, dtype=object))
            allowed = np.isin(np.arange(codec.n_states), states[states >= 0])
            if atom.negated:
                allowed = ~allowed

            rows = np.flatnonzero(allowed)[:, None]
            return TableRule((atom.column,), rows.astype(np.int64), frozenset([atom.name]))

        columns = np.array(atom.rows, dtype=object).reshape(-1, len(atom.columns))
        states = np.column_stack(
            [self._codec[name].encode(columns[:, i]) for i, name in enumerate(atom.columns)]
        )
        states = np.unique(states[(states >= 0).all(axis=1)], axis=0)
        return TableRule(tuple(atom.columns), states.astype(np.int64), frozenset([atom.name]))

    def _domains(self, linear_columns):
        """Training ranges of the columns in arithmetic rules, numbers of states of the rest."""
        domains = {}
        for name, codec in self._codec.items():
            if name not in linear_columns:
                domains[name] = codec.n_states
            else:
                low, high = codec.encoder.min_, codec.encoder.max_
                domains[name] = (-np.inf, np.inf) if np.isnan(low) else (low, high)

        return domains

    def _integer_columns(self):
        return {name for name, codec in self._codec.items() if codec.decimal_places_ == 0}

    def _check_columns(self, formula):
        """Every column is modelled and of the kind the atom needs."""
        for atom in atoms_of(formula):
            for column in getattr(atom, "columns", ()):
                if column not in self._codec:
                    raise ValueError(
                        f"The constraint '{atom.name}' names the column '{column}', which is not "
                        "modelled."
                    )

                is_categorical = self._codec[column].spec.kind == CATEGORICAL
                if isinstance(atom, Linear) and is_categorical:
                    raise ValueError(
                        f"The constraint '{atom.name}' uses the categorical column '{column}' in "
                        "arithmetic; only numerical and datetime columns can be."
                    )


def atoms_of(formula):
    """The atoms of a formula, in order (once per occurrence)."""
    if isinstance(formula, (Linear, InSet, AllowedTuples)):
        yield formula
    elif hasattr(formula, "items"):
        for item in formula.items:
            yield from atoms_of(item)
    else:
        yield from atoms_of(formula.item)


class ConstrainedSampler:
    """Draws rows that satisfy back-filled plans, by weighted truncated forward sampling.

    Parameters
    ----------
    model : JanusModel
        The fitted model.
    plans : list of BackfillPlan
        Disjoint cases; a candidate may end in any one of them.
    candidates_per_row : int
        Largest number ``K`` of valid candidates drawn per output row.
    confirmed_rules : set of str, default=frozenset()
        Names of the rules that every training row satisfies; the cuts they alone make carry
        no weight.
    """

    def __init__(self, model, plans, candidates_per_row, confirmed_rules=frozenset()):
        self.model = model
        self.plans = plans
        self.candidates_per_row = candidates_per_row
        self.constrained = self._constrained_columns() - self._columns_never_cut()
        self.weighted = self._columns_weighted(confirmed_rules) & self.constrained
        self.interval_columns = {
            self.model.columns.index(column)
            for plan in self.plans
            for rules in plan.linear_by_column.values()
            for rule in rules
            for column in rule.coefficients
        }
        graph = model.sampler_.graph
        needed = set(self.constrained)
        for column in self.constrained:
            needed |= nx.ancestors(graph, column)

        self.needed = needed
        self.carry_weight = self.weighted | self._columns_with_several_cuts()
        self.weighing, self.after_weighing = self._split_at_last_weight()

    def _columns_with_several_cuts(self):
        """Indices of the numerical columns the cases cut in different ways.

        Such a column can carry a weight even under confirmed rules (see
        :meth:`_interval_log_weights`).
        """
        names = self.model.columns
        return {
            column
            for column in self.constrained & self.interval_columns
            if len(self._case_groups(names[column])) > 1
        }

    def _split_at_last_weight(self):
        """The needed columns up to the last that can carry a weight, and those after it.

        Candidates are picked once the first part is drawn; the rest is drawn for the picked
        rows only, so a candidate picked twice repeats its first part, never the columns after.
        """
        order = [column for column in self.model.sampler_.order if column in self.needed]
        carrying = [index for index, column in enumerate(order) if column in self.carry_weight]
        split = carrying[-1] + 1 if carrying else 0
        return order[:split], order[split:]

    def _constrained_columns(self):
        """Indices of the columns some plan restricts."""
        names = set()
        for plan in self.plans:
            for by_column in (plan.linear_by_column, plan.tables_by_column):
                for rules in by_column.values():
                    for rule in rules:
                        names.update(getattr(rule, "coefficients", None) or rule.columns)

        return {self.model.columns.index(name) for name in names}

    def _columns_weighted(self, confirmed_rules):
        """Indices of the columns cut, in some case, by a rule the training data do not confirm.

        A rule that every training row satisfies holds with certainty in the distribution the
        model estimates, so conditioning on it changes nothing there: where the model's leaf
        puts mass outside such a rule's cut, that is the model's error, and weighting the
        ancestors by the mass inside would spread the error upstream. Rules derived by the
        back-filling carry the names of the rules they come from; training ranges have none.
        """
        names = set()
        for plan in self.plans:
            for by_column in (plan.linear_by_column, plan.tables_by_column):
                for name, rules in by_column.items():
                    if any(not rule.names <= confirmed_rules for rule in rules):
                        names.add(name)

        return {self.model.columns.index(name) for name in names}

    def _columns_never_cut(self):
        """Indices of the columns whose rules, in every case, admit every value they can take.

        Such a column is bound only by constant bounds on itself (``Age >= 21`` where no
        training value is below 21), is read by no other column's rule and sits in no table:
        it is drawn as sampling without rules draws it, with no weight and no case tracking.
        """
        shared = set()
        for plan in self.plans:
            for rules in plan.linear_by_column.values():
                shared.update(
                    name
                    for rule in rules
                    if len(rule.coefficients) > 1
                    for name in rule.coefficients
                )
            for rules in plan.tables_by_column.values():
                shared.update(name for rule in rules for name in rule.columns)

        never_cut = set()
        for name in {name for plan in self.plans for name in plan.linear_by_column} - shared:
            knots = self.model.codecs_[self.model.columns.index(name)].encoder.knots_
            if all(_holds_every_value(_bounds(plan, name, {}, 1), knots) for plan in self.plans):
                never_cut.add(self.model.columns.index(name))

        return never_cut

    def candidates_needed(self, rng):
        """Number ``K`` of candidates per row: enough that candidates are rarely picked twice.

        A candidate is picked ``n * w / sum(w) = w / (K * mean(w))`` times on average, more than
        once only where its weight exceeds ``K`` times the mean. A pilot
        draw estimates the weights: when they are nearly equal (the rules rarely bind) a single
        candidate per row is kept as drawn; otherwise ``K`` covers the pilot's largest
        weight relative to the mean, up to ``candidates_per_row``. Without weighted
        columns, and with one cut per numerical column, every candidate weighs the same and no
        pilot is drawn.
        """
        if not self.carry_weight:
            return 1

        log_weights = self._draw_columns(
            self._new_draw(_PILOT_ROWS, rng, False), self.weighing
        ).log_weights
        finite = log_weights[np.isfinite(log_weights)]
        if len(finite) == 0:
            return self.candidates_per_row

        weights = np.exp(finite - finite.max())
        squared_variation = weights.var() / max(weights.mean() ** 2, 1e-300)
        if squared_variation < _IGNORABLE_VARIATION:
            return 1

        top_ratio = weights.max() / weights.mean()
        needed = int(np.ceil(_RATIO_MARGIN * top_ratio))
        LOGGER.debug(
            "Weight CV^2 %.4f, top ratio %.2f: K = %d", squared_variation, top_ratio, needed
        )
        return int(np.clip(needed, 2, self.candidates_per_row))

    def sample(self, n_rows, rng, record_allowed=False):
        """Draw ``n_rows`` valid rows.

        Parameters
        ----------
        n_rows : int
            Number of rows.
        rng : numpy.random.Generator
            Source of randomness.
        record_allowed : bool, default=False
            Also return, for each truncated column, the states each row's cut allowed.

        Returns
        -------
        tuple
            int32 ``(n_rows, n_columns)`` states; a dict of float64 numbers for the
            constrained numerical columns (already rounded inside their intervals); and, with
            ``record_allowed``, a dict of column index to bool ``(n_rows, n_states)`` masks.
        """
        per_row = self.candidates_needed(rng)
        rows_per_chunk = max(1, _CHUNK_CANDIDATES // per_row)
        chunks = [
            self._sample_chunk(min(rows_per_chunk, n_rows - start), per_row, rng, record_allowed)
            for start in range(0, n_rows, rows_per_chunk)
        ] or [self._sample_chunk(0, per_row, rng, record_allowed)]
        states = np.ascontiguousarray(np.concatenate([chunk[0] for chunk in chunks]))
        numbers = _concatenate_dicts([chunk[1] for chunk in chunks])
        self.model.sampler_.forward(states, rng, skip=self.needed)
        if record_allowed:
            return states, numbers, _concatenate_dicts([chunk[2] for chunk in chunks])

        return states, numbers

    def _sample_chunk(self, n_rows, per_row, rng, record_allowed):
        """Draw ``per_row`` candidates for each of ``n_rows`` rows, pick ``n_rows``, finish them."""
        draw = self._draw_columns(
            self._new_draw(n_rows * per_row, rng, record_allowed), self.weighing
        )
        draw = draw.rows(_choose_in_proportion(draw.log_weights, n_rows, rng), self.model.columns)
        draw = self._draw_columns(draw, self.after_weighing)
        return draw.states, draw.numbers, draw.allowed

    def _new_draw(self, n_candidates, rng, record_allowed):
        """An empty draw of ``n_candidates`` candidates, every case live."""
        states = np.zeros((n_candidates, len(self.model.codecs_)), dtype=np.int32)
        live = np.ones((n_candidates, len(self.plans)), dtype=bool)
        return _CandidateDraw(states, live, rng, record_allowed)

    def _draw_columns(self, draw, columns):
        """Draw ``columns`` (in the model's order) for every candidate, under every case at once.

        Each candidate keeps the cases its values so far are consistent with (its live cases).
        A column is drawn inside the union of the cuts of its live cases, so the candidate can
        always be completed in one of them, and the weight gains the mass of that union.
        """
        model = self.model
        states = draw.states
        for column in columns:
            tree = model.trees_[column]
            leaves = tree.leaves_of(states)
            uniforms = _stratified(leaves, tree, draw.rng)
            if column not in self.constrained:
                states[:, column] = draw_states(model.sampler_.cumulative[column], leaves, uniforms)
            elif column not in self.interval_columns:
                self._draw_set_column(draw, column, leaves, uniforms)
            else:
                self._draw_interval_column(draw, column, leaves, uniforms)

            draw.named_states[model.codecs_[column].spec.name] = states[:, column]

        return draw

    def _case_groups(self, name):
        """The cases grouped by the rules they put on one column (equal rules, equal cuts)."""
        groups = {}
        for index, plan in enumerate(self.plans):
            key = _rules_key(
                plan.linear_by_column.get(name, ()), plan.tables_by_column.get(name, ())
            )
            groups.setdefault(key, []).append(index)

        return [(self.plans[indices[0]], indices) for indices in groups.values()]

    def _draw_set_column(self, draw, column, leaves, uniforms):
        """Draw a categorical column inside the union of its live cases' allowed sets."""
        codec = self.model.codecs_[column]
        name = codec.spec.name
        n_rows = len(leaves)
        union = np.zeros((n_rows, codec.n_states), dtype=bool)
        masks = []
        for plan, cases in self._case_groups(name):
            mask = plan.allowed_states(name, draw.named_states, codec.n_states, n_rows)
            rows = draw.live[:, cases].any(axis=1)
            union[rows] |= True if mask is None else mask[rows]
            masks.append((mask, cases))

        probabilities = self.model.sampler_.predictive[column][leaves]
        tree = self.model.trees_[column]
        drawn, log_mass = _draw_from_set(probabilities, tree.prior, union, uniforms)
        draw.states[:, column] = drawn
        if column in self.weighted:
            draw.log_weights += log_mass
        for mask, cases in masks:
            if mask is not None:
                draw.live[:, cases] &= mask[np.arange(n_rows), drawn][:, None]

        if draw.record_allowed:
            draw.allowed[column] = union

    def _draw_interval_column(self, draw, column, leaves, uniforms):
        """Draw a numerical column inside one of its live cases' intervals.

        A live case is picked in proportion to the mass its interval holds, and the value is
        drawn inside that interval. The weight gains the summed mass over the live cases,
        divided by the number of live cases whose interval holds the value (intervals may
        overlap), which keeps the weights exact for the union of the cases. For a column only
        confirmed rules cut, a live cut that holds every other is the union itself: it is
        picked, and nothing needs undoing.
        """
        codec = self.model.codecs_[column]
        name = codec.spec.name
        n_rows = len(leaves)
        predictive = self.model.sampler_.predictive[column]
        cuts = [
            _IntervalCut.of(plan, cases, codec, predictive, leaves, draw)
            for plan, cases in self._case_groups(name)
        ]
        if all(cut.mass_in is None for cut in cuts):
            self._draw_uncut_column(draw, column, leaves, uniforms)
            return

        totals = np.column_stack([cut.n_live * cut.mass for cut in cuts])
        chosen = _pick_cut(totals, np.column_stack([cut.n_live for cut in cuts]), draw.rng)
        # Beyond a few cuts inclusion-exclusion costs too much: the column is weighted instead.
        weighted = column in self.weighted or len(cuts) > _MAX_UNION_CUTS
        covering = None
        if not weighted:
            covering = _covering_cut(cuts, codec.encoder.knots_)
            chosen = np.where(covering >= 0, covering, chosen)

        drawn, values, inside = self._draw_inside_chosen_cuts(
            column, cuts, chosen, leaves, uniforms, draw
        )
        holding = np.zeros(n_rows)
        for index, cut in enumerate(cuts):
            holds = cut.holds(values) | (chosen == index)
            holding += cut.n_live * holds
            draw.live[:, cut.cases] &= holds[:, None]

        draw.log_weights += self._interval_log_weights(
            column, cuts, leaves, totals, holding, covering
        )

        draw.states[:, column] = drawn
        draw.numbers[name] = values
        if draw.record_allowed:
            draw.allowed[column] = inside

    def _interval_log_weights(self, column, cuts, leaves, totals, holding, covering):
        """Log weights of a numerical column drawn by :meth:`_draw_interval_column`.

        A cut is picked in proportion to its mass and the value drawn inside it, so a value
        that several live cuts hold is drawn that much more often: ``total / holding`` undoes
        it and weighs the row by the mass of the union of its cuts. A column only confirmed
        rules cut keeps the first part (dividing by the union's mass), and needs none in the
        rows whose ``covering`` cut was picked. ``covering`` is None for a weighted column.
        """
        total = totals.sum(axis=1)
        holding = np.maximum(holding, 1.0)
        if covering is None:
            with np.errstate(divide="ignore"):
                return np.log(total) - np.log(holding)

        mixed = covering < 0
        if len(cuts) == 1 or not mixed.any():
            return 0.0

        codec = self.model.codecs_[column]
        union = _union_mass(cuts, codec, self.model.sampler_.predictive[column], leaves)
        reweigh = mixed & (total > 0) & (union > 0)
        ratio = np.ones_like(total)
        ratio[reweigh] = total[reweigh] / (holding[reweigh] * union[reweigh])
        return np.log(ratio)

    def _draw_inside_chosen_cuts(self, column, cuts, chosen, leaves, uniforms, draw):
        """Draw each row's state and value inside the interval of the cut chosen for it.

        Also returns, when ``draw`` records them, the states each row's cut allowed (else None).
        """
        codec = self.model.codecs_[column]
        predictive = self.model.sampler_.predictive[column]
        prior = self.model.trees_[column].prior
        n_rows = len(leaves)
        drawn = np.zeros(n_rows, dtype=np.int32)
        values = np.zeros(n_rows)
        inside = np.zeros((n_rows, codec.n_states), dtype=bool) if draw.record_allowed else None
        for index, cut in enumerate(cuts):
            rows = np.flatnonzero(chosen == index)
            if len(rows) == 0:
                continue

            mass_in = cut.mass_in_of(rows, codec.n_states)
            bounds = [end[rows] for end in cut.bounds]
            drawn[rows], values[rows], fixed = _draw_from_interval(
                codec,
                predictive[leaves[rows]],
                prior,
                bounds,
                mass_in,
                cut.mass[rows],
                uniforms[rows],
                draw.rng,
            )
            if inside is not None:
                inside[rows] = _allowed_states(mass_in, drawn[rows], fixed)

        return drawn, values, inside

    def _draw_uncut_column(self, draw, column, leaves, uniforms):
        """Draw a numerical column that no live case cuts, as sampling without rules does."""
        codec = self.model.codecs_[column]
        encoder = codec.encoder
        drawn = draw_states(self.model.sampler_.cumulative[column], leaves, uniforms)
        value_states = np.minimum(drawn, encoder.n_value_states - 1).astype(np.int32)
        positions = stratified_draws(value_states, encoder.n_value_states, draw.rng)
        n_rows = len(drawn)
        everywhere = (np.full(n_rows, -np.inf), np.full(n_rows, np.inf))
        no_end = np.zeros(n_rows, dtype=bool)
        values = draw_inside_interval(
            encoder.knots_, value_states, *everywhere, no_end, no_end, positions
        )
        values[drawn == encoder.missing_state] = np.nan
        draw.states[:, column] = drawn
        draw.numbers[codec.spec.name] = values if codec.step is None else codec.round(values)
        if draw.record_allowed:
            draw.allowed[column] = np.ones((n_rows, codec.n_states), dtype=bool)


class _CandidateDraw:
    """What the column-by-column draw of candidates has produced so far."""

    def __init__(self, states, live, rng, record_allowed):
        self.states = states
        self.live = live
        self.rng = rng
        self.record_allowed = record_allowed
        self.numbers, self.named_states, self.allowed = {}, {}, {}
        self.log_weights = np.zeros(len(states))

    def rows(self, chosen, names):
        """The draw restricted to the ``chosen`` candidates (repeats allowed), weights reset."""
        picked = _CandidateDraw(
            self.states[chosen], self.live[chosen], self.rng, self.record_allowed
        )
        picked.numbers = {name: values[chosen] for name, values in self.numbers.items()}
        picked.allowed = {column: mask[chosen] for column, mask in self.allowed.items()}
        picked.named_states = {
            name: picked.states[:, names.index(name)] for name in self.named_states
        }
        return picked


class _IntervalCut:
    """One group of cases' interval for a numerical column, and the mass inside it."""

    def __init__(self, cases, bounds, mass_in, mass, n_live):
        self.cases = cases
        self.bounds = bounds
        self.mass_in = mass_in  # (n_rows, n_states), (1, n_states) if shared, or None: uncut
        self.mass = mass
        self.n_live = n_live

    def mass_in_of(self, rows, n_states):
        """Per-state masses inside the interval for ``rows``, broadcastable to their shape."""
        if self.mass_in is None:
            return np.ones((1, n_states))

        return self.mass_in if len(self.mass_in) == 1 else self.mass_in[rows]

    @classmethod
    def of(cls, plan, cases, codec, predictive, leaves, draw):
        """The cut that ``plan`` puts on the codec's column, for every candidate."""
        bounds = _bounds(plan, codec.spec.name, draw.numbers, len(leaves))
        n_live = draw.live[:, cases].sum(axis=1).astype(float)
        return cls.from_bounds(cases, bounds, codec, predictive, leaves, n_live)

    @classmethod
    def from_bounds(cls, cases, bounds, codec, predictive, leaves, n_live):
        """The cut of the given per-row intervals; rows without live cases get no mass."""
        n_rows = len(leaves)
        encoder = codec.encoder
        live = n_live > 0
        whole = live & _holds_every_value(bounds, encoder.knots_)
        partial = np.flatnonzero(live & ~whole)
        if len(partial) == 0:
            # No live row is cut: its masses are those of the untruncated leaf.
            return cls(cases, bounds, None, live.astype(float), n_live)

        if _same_on_every_row(bounds):
            # Constant bounds (a scalar rule): one row of masses serves every candidate.
            mass_in = interval_mass(encoder.knots_, *(end[:1] for end in bounds), encoder.n_states)
            mass = (predictive @ mass_in[0])[leaves]
        elif len(partial) == n_rows:
            mass_in = interval_mass(encoder.knots_, *bounds, encoder.n_states)
            mass = np.einsum("ij,ij->i", predictive[leaves], mass_in)
        else:
            mass_in = np.zeros((n_rows, codec.n_states))
            mass_in[whole] = 1.0
            mass_in[partial] = interval_mass(
                encoder.knots_, *(end[partial] for end in bounds), encoder.n_states
            )
            mass = np.where(whole, 1.0, 0.0)
            mass[partial] = np.einsum("ij,ij->i", predictive[leaves[partial]], mass_in[partial])

        # A single feasible value (an equality, or a condition) weighs the probability of the
        # state that holds it.
        single = _single_values(bounds)
        if single.any():
            state = encoder.encode(bounds[0][single])
            mass[single] = predictive[leaves[single], state]

        return cls(cases, bounds, mass_in, mass, n_live)

    def holds(self, values):
        """Whether each value lies in its row's interval (a null value holds vacuously)."""
        low, high, low_strict, high_strict = self.bounds
        above = np.where(low_strict, values > low, values >= low)
        below = np.where(high_strict, values < high, values <= high)
        return (above & below) | np.isnan(values)


def _covering_cut(cuts, knots):
    """Per row, the index of a live cut whose interval holds every other live cut's (else -1).

    Intervals are compared over the values the column's states can produce.
    """
    live = np.column_stack([cut.n_live > 0 for cut in cuts])
    bounds = [_within_values(cut.bounds, knots) for cut in cuts]
    covering = np.full(len(live), -1)
    for index in reversed(range(len(cuts))):
        holds_others = live[:, index].copy()
        for other in range(len(cuts)):
            if other != index:
                holds_others &= ~live[:, other] | _contains(bounds[index], bounds[other])

        covering[holds_others] = index

    return covering


def _within_values(bounds, knots):
    """Intervals clipped to the range of the values the column's states can produce."""
    low, high, low_strict, high_strict = bounds
    smallest, largest = knots[:, 0].min(), knots[:, -1].max()
    below, above = low < smallest, high > largest
    return (
        np.where(below, smallest, low),
        np.where(above, largest, high),
        low_strict & ~below,
        high_strict & ~above,
    )


def _contains(outer, inner):
    """Rows where the interval ``outer`` holds the interval ``inner``."""
    outer_low, outer_high, outer_low_strict, outer_high_strict = outer
    inner_low, inner_high, inner_low_strict, inner_high_strict = inner
    low_inside = (outer_low < inner_low) | (
        (outer_low == inner_low) & (~outer_low_strict | inner_low_strict)
    )
    high_inside = (outer_high > inner_high) | (
        (outer_high == inner_high) & (~outer_high_strict | inner_high_strict)
    )
    return low_inside & high_inside


def _single_values(bounds):
    """Rows whose interval is a single value (an equality, or a condition)."""
    low, high, low_strict, high_strict = bounds
    width = high - low
    point = (width >= 0) & (width <= 1e-12 * np.maximum(1.0, np.abs(low)))
    return np.isfinite(low) & point & ~low_strict & ~high_strict


def _union_mass(cuts, codec, predictive, leaves):
    """Mass of the union of each row's live cuts, by inclusion-exclusion over the cuts.

    The single cuts' masses are their own, so the union of disjoint cuts has exactly their
    summed mass; intersections of intervals are intervals.
    """
    live = [cut.n_live > 0 for cut in cuts]
    union = np.zeros(len(leaves))
    for size in range(1, len(cuts) + 1):
        sign = 1.0 if size % 2 else -1.0
        for subset in combinations(range(len(cuts)), size):
            rows = np.logical_and.reduce([live[index] for index in subset])
            if not rows.any():
                continue

            if size == 1:
                mass = cuts[subset[0]].mass
            else:
                bounds = _intersection([cuts[index].bounds for index in subset])
                mass = _IntervalCut.from_bounds(
                    None, bounds, codec, predictive, leaves, rows.astype(float)
                ).mass

            union[rows] += sign * mass[rows]

    return union


def _intersection(bounds_list):
    """Per-row intersection of intervals: the highest low end and the lowest high end.

    An end shared by several intervals is excluded when any of them excludes it.
    """
    low = np.max([bounds[0] for bounds in bounds_list], axis=0)
    high = np.min([bounds[1] for bounds in bounds_list], axis=0)
    low_strict = np.any([(bounds[0] == low) & bounds[2] for bounds in bounds_list], axis=0)
    high_strict = np.any([(bounds[1] == high) & bounds[3] for bounds in bounds_list], axis=0)
    return low, high, low_strict, high_strict


def _same_on_every_row(bounds):
    """Whether every row has the same interval (both ends and their strictness)."""
    return all(len(end) > 0 and (end == end[0]).all() for end in bounds)


def _holds_every_value(bounds, knots):
    """Rows whose interval holds every value the column's states can produce."""
    low, high, low_strict, high_strict = bounds
    smallest, largest = knots[:, 0].min(), knots[:, -1].max()
    above = (low < smallest) | ((low == smallest) & ~low_strict)
    below = (high > largest) | ((high == largest) & ~high_strict)
    return above & below


def _rules_key(linear, tables):
    """A hashable description of the rules one case puts on a column."""
    return (
        tuple(
            (tuple(sorted(rule.coefficients.items())), rule.constant, rule.strict)
            for rule in linear
        ),
        tuple((rule.columns, rule.allowed.tobytes()) for rule in tables),
    )


def _pick_cut(totals, n_live, rng):
    """For each row, a group of cases in proportion to its total mass (uniform if none)."""
    weights = totals.copy()
    empty = weights.sum(axis=1) <= 0
    weights[empty] = (n_live[empty] > 0).astype(float)
    cumulative = np.cumsum(weights, axis=1)
    points = rng.random(len(weights)) * cumulative[:, -1]
    chosen = (cumulative <= points[:, None]).sum(axis=1)
    return np.minimum(chosen, weights.shape[1] - 1)


def _concatenate_dicts(parts):
    """Concatenate, key by key, dicts of arrays that share their keys."""
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def _stratified(leaves, tree, rng):
    """Uniforms stratified within the rows of each leaf, as in unconstrained sampling."""
    return stratified_draws(leaves, tree.n_leaves, rng)


def _draw_from_set(probabilities, prior, mask, uniforms):
    """Draw states restricted to a per-row allowed set; returns states and log masses."""
    if mask is None:
        mask = np.ones_like(probabilities, dtype=bool)

    weights = probabilities * mask
    mass = weights.sum(axis=1)
    empty = mass <= 0
    if empty.any():
        # The model puts no mass on the allowed states: fall back to the prior, then uniform.
        weights[empty] = prior[None, :] * mask[empty]
        still_empty = weights.sum(axis=1) <= 0
        weights[still_empty] = mask[still_empty].astype(float)

    drawn = draw_from_weights(np.ascontiguousarray(weights), uniforms)
    with np.errstate(divide="ignore"):
        return drawn, np.log(mass)


def _draw_from_interval(codec, probabilities, prior, bounds, mass_in, mass, uniforms, rng):
    """Draw states and values of a numerical column inside each row's feasible interval.

    Returns the states, the values, and which rows' values were fixed or drawn by the fallback
    (uniformly inside the interval) rather than from the leaf.
    """
    encoder = codec.encoder
    low, high, low_strict, high_strict = bounds
    weights = probabilities * mass_in
    mass_in = np.broadcast_to(mass_in, weights.shape)  # a shared row serves every row

    # A single feasible value (an equality, or a condition): the value is fixed.
    single = _single_values(bounds)
    empty = (mass <= 0) & ~single
    if empty.any():
        weights[empty] = prior[None, :] * mass_in[empty]

    uniform = (weights.sum(axis=1) <= 0) | single
    weights[uniform] = 1.0
    drawn = draw_from_weights(np.ascontiguousarray(weights), uniforms)
    value_states = np.minimum(drawn, encoder.n_value_states - 1).astype(np.int32)
    positions = stratified_draws(value_states, encoder.n_value_states, rng)
    values = draw_inside_interval(
        encoder.knots_, value_states, low, high, low_strict, high_strict, positions
    )

    # Fallbacks draw the value inside the interval itself and take the state that holds it.
    values[uniform] = _uniform_inside(low[uniform], high[uniform], rng)
    drawn[uniform] = encoder.encode(values[uniform])
    values[drawn == encoder.missing_state] = np.nan
    values = _round_inward(codec, values, low, high, low_strict, high_strict)

    return drawn, values, uniform


def _allowed_states(mass_in, drawn, fixed):
    """The states each row's cut allowed; a fixed or fallback value allows only its own state."""
    inside = np.broadcast_to(mass_in > 0, (len(drawn), mass_in.shape[1])).copy()
    inside[fixed] = False
    inside[fixed, drawn[fixed]] = True
    return inside


def _bounds(plan, name, numbers, n_rows):
    """The plan's interval for a column; rules on null values hold vacuously."""
    low, high, low_strict, high_strict = plan.linear_bounds(name, numbers, n_rows)
    low = np.where(np.isnan(low), -np.inf, low)
    high = np.where(np.isnan(high), np.inf, high)
    return low, high, low_strict.astype(bool), high_strict.astype(bool)


def _uniform_inside(low, high, rng):
    """Uniform draws in ``[low, high]`` (finite ends, as the training range bounds them)."""
    return low + rng.random(len(low)) * (high - low)


def _round_inward(codec, values, low, high, low_strict, high_strict):
    """Round values to the column's resolution without leaving the feasible interval."""
    step = codec.step
    if step is None:
        return values

    rounded = codec.round(values)
    too_low = (rounded < low) | (low_strict & (rounded <= low))
    rounded[too_low] = codec.round(_grid_above(low[too_low], step, low_strict[too_low]))
    too_high = (rounded > high) | (high_strict & (rounded >= high))
    rounded[too_high] = codec.round(_grid_below(high[too_high], step, high_strict[too_high]))

    outside = (rounded < low) | (rounded > high)
    # A grid point missing the interval by float noise only (an equality whose parts sum to
    # 0.30000000000000004) is no real miss: the value is kept as is, without a warning.
    noise = np.abs(rounded - values) <= _RELATIVE_NOISE * np.maximum(1.0, np.abs(values))
    missed = outside & ~noise
    if missed.any():
        warnings.warn(
            f"{int(missed.sum())} value(s) of '{codec.spec.name}' have no point of its "
            f"resolution ({step:g}) inside their feasible interval; they are left unrounded.",
            ConstraintGuaranteeWarning,
            stacklevel=3,
        )
        rounded[outside] = values[outside]

    return rounded


def _grid_above(bound, step, strict):
    grid = np.ceil(np.round(bound / step, 9)) * step
    return np.where(strict & (grid <= bound), grid + step, grid)


def _grid_below(bound, step, strict):
    grid = np.floor(np.round(bound / step, 9)) * step
    return np.where(strict & (grid >= bound), grid - step, grid)


def _choose_in_proportion(log_weights, n_rows, rng):
    """Pick ``n_rows`` candidates in proportion to their weights, by systematic resampling.

    Candidate ``i`` is picked ``floor`` or ``ceil`` of ``n_rows * w_i / sum(w)`` times, so the
    picks follow the weighted pool. A candidate is picked at most once unless its weight
    exceeds ``sum(w) / n_rows``: that happens only when the pool holds too few of the rows the
    weights favour (a rare condition), and repeating them keeps the output faithful where
    keeping distinct rows would fill it with rows the weights reject.
    """
    if len(log_weights) == n_rows:
        return np.arange(n_rows)

    finite = np.isfinite(log_weights)
    if not finite.any():
        return rng.choice(len(log_weights), size=n_rows, replace=False)

    weights = np.where(finite, np.exp(log_weights - log_weights[finite].max()), 0.0)
    expected_picks = np.cumsum(weights) * (n_rows / weights.sum())
    points = rng.random() + np.arange(n_rows)
    chosen = np.minimum(np.searchsorted(expected_picks, points, side="right"), len(weights) - 1)
    LOGGER.debug(
        "Kept %d candidates of %d; %d distinct", n_rows, len(weights), len(np.unique(chosen))
    )
    return chosen


def check_linear_feasibility(formulas):
    """Raise InfeasibleConstraintsError when the linear atoms cannot hold for any values.

    Each combination of alternatives is tried with unbounded columns; category tests and
    tables are left out (they need the fitted states).
    """
    term_lists = [disjoint_terms(formula) for formula in formulas]
    if not term_lists or int(np.prod([len(terms) for terms in term_lists])) > MAX_COMBINATIONS:
        return

    errors = []
    for combination in product(*term_lists):
        rules = [
            LinearRule(dict(atom.coefficients), atom.constant, atom.strict, frozenset([atom.name]))
            for term in combination
            for atom in term
            if isinstance(atom, Linear)
        ]
        columns = sorted({column for rule in rules for column in rule.coefficients})
        try:
            backfill(columns, rules, [], {column: (-np.inf, np.inf) for column in columns})
            return
        except InfeasibleConstraintsError as error:
            errors.append(error)

    if len(errors) == 1:
        raise errors[0]

    conflicting = frozenset().union(*(error.conflicting for error in errors))
    raise InfeasibleConstraintsError(conflicting, (), "in every case of alternatives")
