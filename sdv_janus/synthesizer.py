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

from sdv_janus import validation
from sdv_janus.constraints import Rule, increments_of, translate
from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.errors import (
    JanusError,
    JanusInputError,
    JanusNotFittedError,
    JanusWarning,
)
from sdv_janus.model_file import export_synthesizer, import_synthesizer
from sdv_janus.output import sample_to_folder
from sdv_janus.uncertainty_api import UncertaintyMixin

LOGGER = logging.getLogger(__name__)

_SDTYPE_TO_KIND = {
    "numerical": "numerical",
    "datetime": "datetime",
    "categorical": "categorical",
    "boolean": "categorical",
    "ordinal": "categorical",
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
        Most valid candidates drawn per row under conditions and rules given at sampling
        time (fewer when they rarely bind); one is kept in proportion to its weight, which
        keeps the output faithful. Rules attached before ``fit`` hold on every training row
        and need one candidate.
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
        validation.check_parameters(locals())
        super().__init__(
            metadata,
            enforce_min_max_values=enforce_min_max_values,
            enforce_rounding=enforce_rounding,
            locales=[locales] if isinstance(locales, str) else locales and list(locales),
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

    def fit(self, data):
        """Fit the model on ``{table_name: DataFrame}``, leaving the caller's frame untouched.

        Besides SDV's checks (metadata against data, keys, constraints), the table must have
        at least one row and unique string (or int) column names, and its numerical columns
        must hold finite numbers that float64 represents exactly (NaN is fine).

        Parameters
        ----------
        data : dict
            ``{table_name: pandas.DataFrame}``, as for every SDV 2.0 synthesizer.

        Raises
        ------
        JanusDataError
            When the table cannot be modelled as given; the message names the column.
        """
        if isinstance(data, dict) and len(data) == 1:
            ((table_name, table),) = data.items()
            validation.check_table_shape(table, table_name)
            if isinstance(table, pd.DataFrame):
                # SDV renames int column labels in place while fitting; it gets a shallow copy.
                data = {table_name: table.copy(deep=False)}
                self._remember_output_shape(table)

        super().fit(data)

    def _remember_output_shape(self, table):
        """Keep the columns and dtypes of the output, and the memory a row takes."""
        self._empty_output = table.iloc[:0].copy()
        head = table.head(10_000)
        self._bytes_per_row = float(head.memory_usage(deep=True).sum()) / max(len(head), 1)

    def _validate(self, table_data):
        """Checks of values that SDV accepts but the engine cannot model (hook of SDV)."""
        columns = self._original_metadata.tables[self._table_name].columns
        validation.check_modelled_values(table_data, columns)
        return []

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
        imported = self.__dict__.pop("_imported_model", None)
        if imported is not None:
            # import_model runs SDV's fit on a few placeholder rows to rebuild SDV's side;
            # the engine model is the imported one.
            self._model = imported
            return

        self._model = self._new_model()
        columns = {name: processed_data[name].to_numpy() for name in processed_data.columns}
        self._remember_timezones(processed_data)
        specs = self._column_specs(processed_data)
        try:
            self._model.fit(columns, specs, self._engine_formulas())
        except JanusError:
            raise
        except ValueError as error:
            raise JanusInputError(str(error)) from error

    def _remember_timezones(self, processed_data):
        """Note each timezone-aware datetime column's zone; the engine itself works in UTC."""
        self._timezones = {
            name: str(processed_data[name].dt.tz)
            for name in processed_data.columns
            if isinstance(processed_data[name].dtype, pd.DatetimeTZDtype)
        }

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
        except JanusError:
            raise
        except ValueError as error:
            raise JanusInputError(str(error)) from error

        self.engine_rows_drawn += num_rows
        frame = pd.DataFrame(drawn, columns=self._model.columns)
        for name, zone in getattr(self, "_timezones", {}).items():
            # The engine works in UTC; SDV restores the column's own time zone from there.
            frame[name] = pd.to_datetime(frame[name]).dt.tz_localize("UTC").dt.tz_convert(zone)

        return frame

    def sample(
        self,
        num_rows,
        main_table_name=None,
        max_tries_per_batch=100,
        batch_size=None,
        output_folder_path=None,
    ):
        """Sample rows, in memory or written to disk in batches.

        As SDV 2.0's ``sample``, with two differences that keep the promise of returning
        exactly what was asked: ``num_rows=0`` gives an empty frame with the training
        columns and dtypes, and ``output_folder_path`` streams the rows to disk.

        Parameters
        ----------
        num_rows : int
            Number of rows, >= 0.
        main_table_name : str, optional
            The table's name (there is one).
        max_tries_per_batch : int, default=100
            SDV's rejection tries per batch; only programmable constraints ever need them.
        batch_size : int, optional
            Rows per batch. With ``output_folder_path`` the default is 100,000.
        output_folder_path : path-like, optional
            Write the rows to ``<folder>/<table_name>.csv`` batch by batch, never holding more
            than one batch in memory, so millions of rows can be written. The file must not
            exist yet. The rows are then **not** returned: the dict maps the table name to the
            CSV file's path (a str) instead of a DataFrame.

        Returns
        -------
        dict
            ``{table_name: DataFrame}`` of exactly ``num_rows`` rows, or ``{table_name: path}``
            with ``output_folder_path``.

        Raises
        ------
        JanusInputError
            When ``num_rows``, ``batch_size`` or ``max_tries_per_batch`` is not a valid count,
            or the rows would not fit in memory (the message suggests ``output_folder_path``).
        """
        num_rows = validation.check_count(num_rows, "num_rows", 0)
        max_tries_per_batch = validation.check_count(max_tries_per_batch, "max_tries_per_batch", 1)
        if batch_size is not None:
            batch_size = validation.check_count(batch_size, "batch_size", 1)

        table_name = self._table_name if main_table_name is None else main_table_name
        self._validate_table_name(table_name)
        self._validate_fit_before_sample()
        if output_folder_path is not None:
            with _engine_errors_first():
                path = sample_to_folder(
                    self, num_rows, output_folder_path, batch_size, max_tries_per_batch
                )
            return {table_name: path}

        if num_rows == 0 and hasattr(self, "_empty_output"):
            return {table_name: self._empty_output.copy()}

        validation.check_fits_in_memory(num_rows, getattr(self, "_bytes_per_row", 0.0))
        with _engine_errors_first():
            sampled = super().sample(
                num_rows, main_table_name, max_tries_per_batch, batch_size, None
            )

        _warn_if_short(len(sampled[table_name]), num_rows, max_tries_per_batch)
        return sampled

    def _sample_batch_rows(self, num_rows, max_tries_per_batch):
        """One batch of output rows through SDV's pipeline, with the user's column labels."""
        rows = self._sample_with_progress_bar(
            num_rows, max_tries_per_batch, None, None, show_progress_bar=False
        )
        original_columns = getattr(self, "_original_columns", pd.Index([]))
        if not original_columns.empty:
            rows.columns = original_columns

        if len(rows) == 0:
            raise JanusInputError(
                "No row passed the programmable constraints in this batch; raise "
                f"'max_tries_per_batch' (currently {max_tries_per_batch})."
            )

        _warn_if_short(len(rows), num_rows, max_tries_per_batch)
        return rows

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

    def export_model(self, path):
        """Write the fitted synthesizer to a file that executes no code when imported.

        Unlike :meth:`save` (SDV's cloudpickle, which runs code on loading), the file holds
        only JSON and numpy arrays, with a format version and a SHA-256 digest; see
        :mod:`sdv_janus.model_file` for what it contains and its limits.

        Parameters
        ----------
        path : path-like
            The file to write (replaced if it exists).

        Raises
        ------
        JanusNotFittedError
            When the synthesizer is not fitted.
        JanusInputError
            When a ``ProgrammableConstraint`` is attached (it is code; use :meth:`save`).
        """
        export_synthesizer(self, path)

    @classmethod
    def import_model(cls, path):
        """Read a file written by :meth:`export_model`; nothing in it is executed.

        Parameters
        ----------
        path : path-like
            The file.

        Returns
        -------
        JanusSynthesizer
            Fitted, in the state right after ``fit``: with the same seed it samples exactly
            the rows the exported synthesizer sampled.

        Raises
        ------
        ModelFileError
            When the file is truncated, altered, of a newer format version or not a model.
        """
        return import_synthesizer(cls, path)

    def get_graph(self):
        """Return the DAG over the modelled columns.

        Returns
        -------
        networkx.DiGraph
            An edge ``u -> v`` means the tree of ``v`` may split on ``u``.
        """
        if not self._fitted:
            raise JanusNotFittedError(
                "The synthesizer must be fitted before its graph exists; call fit first."
            )

        return self._model.get_graph()


@contextlib.contextmanager
def _engine_errors_first():
    """Raise the engine's error rather than SDV's rewrapped copy of it."""
    try:
        yield
    except Exception as error:
        cause = error.__cause__
        if isinstance(cause, JanusError) and cause is not error:
            raise cause from None

        raise


def _warn_if_short(got, wanted, max_tries_per_batch):
    """Say so when SDV's rejection loop returned fewer rows than asked (never silently)."""
    if got < wanted:
        warnings.warn(
            f"Only {got} of the {wanted} rows asked for passed the programmable constraints; "
            f"raise 'max_tries_per_batch' (currently {max_tries_per_batch}) to get more.",
            JanusWarning,
            stacklevel=3,
        )


def _is_increment(constraint):
    """Whether a constraint is SDV's FixedIncrements (a rounding step, not a formula)."""
    return type(constraint).__name__ == "FixedIncrements"
