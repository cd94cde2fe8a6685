"""JanusSynthesizer: the JANUS engine behind SDV 2.0's single-table synthesizer API.

This module is glue only. It tells SDV to hand the engine raw columns (categories, booleans,
datetimes and nulls instead of SDV's float encodings), describes each column to the engine from
the metadata, and returns the engine's draws to SDV, which then generates keys and PII columns,
clips, rounds and restores dtypes exactly as it does for its own synthesizers.
"""

import logging

import pandas as pd
from sdv.single_table.base import BaseSingleTableSynthesizer

from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.errors import JanusInputError
from sdv_janus.uncertainty_api import UncertaintyMixin

LOGGER = logging.getLogger(__name__)

_SDTYPE_TO_KIND = {
    'numerical': 'numerical',
    'datetime': 'datetime',
    'categorical': 'categorical',
    'boolean': 'categorical',
    'ordinal': 'categorical',
}

# Parameter name -> (allowed types, check, description of the allowed values).
_PARAMETER_RULES = {
    'max_parents': (int, lambda v: v >= 0, 'an int >= 0'),
    'structure_prior': ((int, float), lambda v: v > 0, 'a number > 0'),
    'prior_strength': ((int, float), lambda v: v > 0, 'a number > 0'),
    'split_prior_strength': ((int, float), lambda v: v > 0, 'a number > 0'),
    'min_samples_leaf': (int, lambda v: v >= 1, 'an int >= 1'),
    'max_depth': (int, lambda v: v >= 0, 'an int >= 0'),
    'n_bins': (int, lambda v: v >= 2, 'an int >= 2'),
    'candidates_per_row': (int, lambda v: v >= 1, 'an int >= 1'),
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
    graph : networkx.DiGraph or None, default=None
        A DAG over column names to use instead of learning one.
    """

    _model_sdtype_transformers = {sdtype: None for sdtype in _SDTYPE_TO_KIND}

    def __init__(
        self,
        metadata,
        enforce_min_max_values=True,
        enforce_rounding=True,
        locales=('en_US',),
        max_parents=3,
        structure_prior=10.0,
        prior_strength=1.0,
        split_prior_strength=20.0,
        min_samples_leaf=10,
        max_depth=16,
        n_bins=32,
        candidates_per_row=32,
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
        self.graph = graph

    def _column_specs(self, processed_data):
        """Describe every processed column to the engine from the (modified) metadata."""
        columns_metadata = self.metadata.tables[self._table_name].columns
        specs = []
        for name in processed_data.columns:
            column = columns_metadata.get(name, {})
            sdtype = column.get('sdtype', 'categorical')
            specs.append(
                ColumnSpec(
                    name=name,
                    kind=_SDTYPE_TO_KIND.get(sdtype, 'categorical'),
                    ordered=sdtype == 'ordinal',
                    round_values=self.enforce_rounding,
                    decimal_places=column.get('decimal_places'),
                    datetime_format=column.get('datetime_format'),
                )
            )

        return specs

    def _fit(self, processed_data):
        """Fit the engine on the processed (raw-valued) columns."""
        self._model = JanusModel(
            max_parents=self.max_parents,
            structure_prior=self.structure_prior,
            prior_strength=self.prior_strength,
            split_prior_strength=self.split_prior_strength,
            min_samples_leaf=self.min_samples_leaf,
            max_depth=self.max_depth,
            n_bins=self.n_bins,
            candidates_per_row=self.candidates_per_row,
            graph=self.graph,
        )
        columns = {name: processed_data[name].to_numpy() for name in processed_data.columns}
        self._model.fit(columns, self._column_specs(processed_data))

    def _sample(self, num_rows, conditions=None):
        """Draw ``num_rows`` rows in the processed space, every condition met."""
        conditions = dict(conditions or {})
        unknown = sorted(set(conditions) - set(self._model.columns))
        if unknown:
            raise JanusInputError(f'Conditions name columns that are not modelled: {unknown}.')

        try:
            drawn = self._model.sample(num_rows, conditions)
        except ValueError as error:
            raise JanusInputError(str(error)) from error

        return pd.DataFrame(drawn, columns=self._model.columns)

    def get_graph(self):
        """Return the DAG over the modelled columns.

        Returns
        -------
        networkx.DiGraph
            An edge ``u -> v`` means the tree of ``v`` may split on ``u``.
        """
        if not self._fitted:
            raise JanusInputError('The synthesizer must be fitted before its graph exists.')

        return self._model.get_graph()


def _check_parameters(arguments):
    """Check the engine parameters against ``_PARAMETER_RULES``; one message format for all."""
    for name, (types, check, allowed) in _PARAMETER_RULES.items():
        value = arguments[name]
        if isinstance(value, bool) or not isinstance(value, types) or not check(value):
            raise JanusInputError(
                f"Invalid value for parameter '{name}' of JanusSynthesizer: expected {allowed}, "
                f'got {value!r}.'
            )
