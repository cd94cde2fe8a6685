"""JanusSynthesizer: the JANUS engine behind SDV 2.0's single-table synthesizer API.

This module is glue only. It tells SDV to hand the engine raw columns (categories, booleans,
datetimes and nulls instead of SDV's float encodings), describes each column to the engine from
the metadata, and returns the engine's draws to SDV, which then generates keys and PII columns,
clips, rounds and restores dtypes exactly as it does for its own synthesizers.
"""

import contextlib
import datetime
import logging
import warnings

import pandas as pd
from sdv import version as sdv_version
from sdv.cag._utils import _validate_constraints_single_table
from sdv.cag.programmable_constraint import ProgrammableConstraint, ProgrammableConstraintHarness
from sdv.single_table.base import BaseSingleTableSynthesizer

from sdv_janus.constraints import Rule, increments_of, translate
from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine.feasibility import InfeasibleConstraintsError
from sdv_janus.errors import JanusInputError, JanusWarning
from sdv_janus.uncertainty_api import UncertaintyMixin

LOGGER = logging.getLogger(__name__)

_SDTYPE_TO_KIND = {
    "numerical": "numerical",
    "datetime": "datetime",
    "categorical": "categorical",
    "boolean": "categorical",
    "ordinal": "categorical",
}

# Parameter name -> (allowed types, check, description of the allowed values).
_PARAMETER_RULES = {
    "max_parents": (int, lambda v: v >= 0, "an int >= 0"),
    "structure_prior": ((int, float), lambda v: v > 0, "a number > 0"),
    "prior_strength": ((int, float), lambda v: v > 0, "a number > 0"),
    "split_prior_strength": ((int, float), lambda v: v > 0, "a number > 0"),
    "min_samples_leaf": (int, lambda v: v >= 1, "an int >= 1"),
    "max_depth": (int, lambda v: v >= 0, "an int >= 0"),
    "n_bins": (int, lambda v: v >= 2, "an int >= 2"),
    "candidates_per_row": (int, lambda v: v >= 1, "an int >= 1"),
    "constraint_candidates": (int, lambda v: v >= 1, "an int >= 1"),
}


class JanusSynthesizer(UncertaintyMixin, BaseSingleTableSynthesizer):
    """Synthesizer built on JANUS: a DAG of Bayesian decision trees with Dirichlet leaves.

    Parameters
    ----------
    metadata : sdv.metadata.Metadata
        Single-table metadata.
    enforce_min_max_values : bool, default=True
        Clip numerical values to the range seen in training (the engine's draws already stay
        inside it).
    enforce_rounding : bool, default=True
        Round numerical values to the precision seen in training.
    locales : list of str, default=['en_US']
        Faker locales for PII columns.
    max_parents : int, default=3
        In-degree bound of the BDeu graph search that orders the columns. Each column's tree
        may then split on any column before it, and keeps only splits that pay for themselves.
    structure_prior : float, default=10.0
        Equivalent sample size of the BDeu score of that search.
    prior_strength : float, default=1.0
        Equivalent sample size of each leaf's Dirichlet prior, spread over the column's marginal.
    split_prior_strength : float, default=20.0
        Equivalent sample size of the prior under which tree splits are compared.
    min_samples_leaf : int, default=10
        Fewest training rows in a tree leaf.
    max_depth : int, default=16
        Deepest a tree leaf may sit.
    n_bins : int, default=32
        Target number of bins for numerical and datetime columns.
    candidates_per_row : int, default=32
        Importance-resampling pool per row when sampling under conditions.
    constraint_candidates : int, default=16
        Most valid candidates drawn per row under constraints (fewer when the rules rarely
        bind); one is kept in proportion to its weight, which keeps the output faithful.
    graph : networkx.DiGraph or None, default=None
        A DAG over column names to use instead of learning one.
    """

    _model_sdtype_transformers = {sdtype: None for sdtype in _SDTYPE_TO_KIND}

    def __init__(
        self,
        metadata,
        enforce_min_max_values=True,
        enforce_rounding=True,
        locales=("en_US",),
        max_parents=3,
        structure_prior=10.0,
        prior_strength=1.0,
        split_prior_strength=20.0,
        min_samples_leaf=10,
        max_depth=16,
        n_bins=32,
        candidates_per_row=32,
        constraint_candidates=16,
        graph=None,
    ):
        _check_parameters(locals())
        super().__init__(
            metadata,
            enforce_min_max_values=enforce_min_max_values,
            enforce_rounding=enforce_rounding,
            locales=list(locales),
        )
        self.max_parents = max_parents
        self.structure_prior = structure_prior
        self.prior_strength = prior_strength
        self.split_prior_strength = split_prior_strength
        self.min_samples_leaf = min_samples_leaf
        self.max_depth = max_depth
        self.n_bins = n_bins
        self.candidates_per_row = candidates_per_row
        self.constraint_candidates = constraint_candidates
        self.graph = graph
        self._engine_constraints = []
        self._extra_rules = []
        self._record_allowed = False
        self._last_allowed = {}
        self.engine_rows_drawn = 0

    def add_constraints(self, constraints):
        """Attach constraints; the engine guarantees every one it can translate.

        SDV's built-ins and this package's :class:`~sdv_janus.constraints.Rule` family are
        enforced by the engine: every sampled row satisfies them, with no row rejected.
        SDV still checks the training data against them. A ``ProgrammableConstraint`` is
        handled as SDV handles it, by rejection, outside the guarantee.

        Parameters
        ----------
        constraints : list
            Constraint objects.

        Raises
        ------
        InfeasibleConstraintsError
            When the linear rules cannot hold together for any values; names them.
        """
        constraints = _validate_constraints_single_table(constraints, self._fitted)
        translatable = [c for c in constraints if not isinstance(c, ProgrammableConstraint)]
        for constraint in translatable:
            constraint.get_updated_metadata(self._original_metadata)
            if translate(constraint) is None and not _is_increment(constraint):
                raise JanusInputError(f"The constraint {constraint!r} cannot be translated.")

        # Rules that no values at all could satisfy are refused before anything is attached.
        new_formulas = [translate(constraint) for constraint in translatable]
        JanusModel.check_feasible(self._engine_formulas() + [f for f in new_formulas if f])
        for constraint in constraints:
            self._attach(constraint)

    def _attach(self, constraint):
        """Keep a checked constraint for the engine, and with SDV as a safety net."""
        if isinstance(constraint, ProgrammableConstraint):
            warnings.warn(
                f"{type(constraint).__name__} cannot be translated for the JANUS engine; it is "
                "enforced by rejection, outside the no-rejection guarantee, and sample() may "
                "return fewer rows.",
                JanusWarning,
                stacklevel=3,
            )
            constraint = ProgrammableConstraintHarness(constraint)
        else:
            self._engine_constraints.append(constraint)

        # SDV keeps checking the training data against every constraint, and keeps its filter
        # on the output; the engine's rows always pass it.
        self._reject_sampling_constraints.append(constraint)

    def _engine_formulas(self):
        """The attached constraints in the engine's form."""
        formulas = [translate(constraint) for constraint in self._engine_constraints]
        return [formula for formula in formulas if formula is not None]

    def _column_specs(self, processed_data):
        """Describe every processed column to the engine from the (modified) metadata."""
        columns_metadata = self.metadata.tables[self._table_name].columns
        increments = increments_of(self._engine_constraints)
        specs = []
        for name in processed_data.columns:
            column = columns_metadata.get(name, {})
            sdtype = column.get("sdtype", "categorical")
            kind = _SDTYPE_TO_KIND.get(sdtype, "categorical")
            if sdtype == "ordinal" and pd.api.types.is_numeric_dtype(processed_data[name]):
                # Whole numbers that SDV's detection calls ordinal stay numbers, so that
                # arithmetic rules can use them; few distinct values keep exact states.
                kind = "numerical"

            specs.append(
                ColumnSpec(
                    name=name,
                    kind=kind,
                    ordered=sdtype == "ordinal",
                    round_values=self.enforce_rounding,
                    decimal_places=column.get("decimal_places"),
                    datetime_format=column.get("datetime_format"),
                    increment=increments.get(name),
                )
            )

        return specs

    def _new_model(self):
        """An unfitted engine model with this synthesizer's parameters."""
        return JanusModel(
            max_parents=self.max_parents,
            structure_prior=self.structure_prior,
            prior_strength=self.prior_strength,
            split_prior_strength=self.split_prior_strength,
            min_samples_leaf=self.min_samples_leaf,
            max_depth=self.max_depth,
            n_bins=self.n_bins,
            candidates_per_row=self.candidates_per_row,
            constraint_candidates=self.constraint_candidates,
            graph=self.graph,
        )

    def _fit(self, processed_data):
        """Fit the engine on the processed (raw-valued) columns."""
        self._model = self._new_model()
        columns = {name: processed_data[name].to_numpy() for name in processed_data.columns}
        specs = self._column_specs(processed_data)
        try:
            self._model.fit(columns, specs, self._engine_formulas())
        except InfeasibleConstraintsError:
            raise
        except ValueError as error:
            raise JanusInputError(str(error)) from error

    def fit_dask(self, data, bookkeeping_rows=10_000):
        """Fit on a Dask DataFrame: the model's counts come from every partition.

        The fitted model equals the one :meth:`fit` learns from the same rows; SDV's own
        bookkeeping (validation, data processor) runs on a sample. Needs ``sdv-janus[dask]``;
        see :func:`sdv_janus.dask.fit_dask`.

        Parameters
        ----------
        data : dask.dataframe.DataFrame
            The table.
        bookkeeping_rows : int, default=10_000
            First rows on which SDV validates the data and fits its data processor.

        Returns
        -------
        JanusSynthesizer
            This synthesizer, fitted.
        """
        from sdv_janus.dask import fit_dask

        return fit_dask(self, data, bookkeeping_rows)

    def _prepare_refit(self):
        """Forget a previous fit, as SDV's ``fit`` does before preprocessing."""
        self._check_input_metadata_updated()
        self._fitted = False
        self._data_processor.reset_sampling()
        self._random_state_set = False

    def _adopt_model(self, model):
        """Take a model fitted outside ``fit`` and mark the synthesizer fitted, as SDV does."""
        self._model = model
        self._fitted = True
        self._fitted_date = datetime.datetime.today().strftime("%Y-%m-%d")
        self._fitted_sdv_version = getattr(sdv_version, "community", None)
        self._fitted_sdv_enterprise_version = getattr(sdv_version, "enterprise", None)

    def _sample(self, num_rows, conditions=None):
        """Draw ``num_rows`` rows in the processed space, every condition met."""
        conditions = dict(conditions or {})
        unknown = sorted(set(conditions) - set(self._model.columns))
        if unknown:
            raise JanusInputError(f"Conditions name columns that are not modelled: {unknown}.")

        rules = [rule.formula for rule in self._extra_rules]
        try:
            record = getattr(self, "_record_allowed", False)
            drawn = self._model.sample(num_rows, conditions, rules, return_allowed=record)
            drawn, self._last_allowed = drawn if record else (drawn, {})
        except InfeasibleConstraintsError:
            raise
        except ValueError as error:
            raise JanusInputError(str(error)) from error

        self.engine_rows_drawn += num_rows
        return pd.DataFrame(drawn, columns=self._model.columns)

    def sample_from_conditions(self, conditions, *args, **kwargs):
        """Sample rows meeting ``conditions`` (see SDV); errors keep the engine's own message.

        SDV re-raises a sampling error as ``Error: Sampling terminated...``; the reason (a
        condition outside the training range, an unseen category, rules in conflict) is then
        only in the error's cause. This method raises that cause instead.
        """
        with _engine_errors_first():
            return super().sample_from_conditions(conditions, *args, **kwargs)

    def sample_remaining_columns(self, known_columns, *args, **kwargs):
        """Sample the other columns of each known row (see SDV); engine errors kept as such."""
        with _engine_errors_first():
            return super().sample_remaining_columns(known_columns, *args, **kwargs)

    def sample_with_rules(self, num_rows, rules, conditions=None):
        """Sample rows that also satisfy ``rules`` for this draw only.

        Useful for range conditions: ``sample_with_rules(100, [Rule('40000 <= salary <=
        60000')], conditions={'gender': 'F'})``.

        Parameters
        ----------
        num_rows : int
            Number of rows.
        rules : list of Rule
            Rules for this draw, combined with the attached constraints.
        conditions : dict, optional
            Fixed values per column.

        Returns
        -------
        dict
            ``{table_name: DataFrame}`` of exactly ``num_rows`` rows.
        """
        rules = [rule if isinstance(rule, Rule) else Rule(rule) for rule in rules]
        for rule in rules:
            rule.validate(metadata=self._original_metadata)

        self._extra_rules = rules
        try:
            if conditions:
                from sdv.sampling import Condition

                condition = Condition(dict(conditions), num_rows=num_rows)
                return self.sample_from_conditions([condition], max_tries_per_batch=1)

            return self.sample(num_rows)
        finally:
            self._extra_rules = []

    def get_graph(self):
        """Return the DAG over the modelled columns.

        Returns
        -------
        networkx.DiGraph
            An edge ``u -> v`` means the tree of ``v`` may split on ``u``.
        """
        if not self._fitted:
            raise JanusInputError("The synthesizer must be fitted before its graph exists.")

        return self._model.get_graph()


@contextlib.contextmanager
def _engine_errors_first():
    """Raise the engine's error rather than SDV's rewrapped copy of it."""
    try:
        yield
    except Exception as error:
        cause = error.__cause__
        if isinstance(cause, (JanusInputError, InfeasibleConstraintsError)) and cause is not error:
            raise cause from None

        raise


def _is_increment(constraint):
    """Whether a constraint is SDV's FixedIncrements (a rounding step, not a formula)."""
    return type(constraint).__name__ == "FixedIncrements"


def _check_parameters(arguments):
    """Check the engine parameters against ``_PARAMETER_RULES``; one message format for all."""
    for name, (types, check, allowed) in _PARAMETER_RULES.items():
        value = arguments[name]
        if isinstance(value, bool) or not isinstance(value, types) or not check(value):
            raise JanusInputError(
                f"Invalid value for parameter '{name}' of JanusSynthesizer: expected {allowed}, "
                f"got {value!r}."
            )
