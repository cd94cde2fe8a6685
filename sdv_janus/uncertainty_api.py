"""The uncertainty methods of :class:`~sdv_janus.synthesizer.JanusSynthesizer`.

Glue only: rows go through the same SDV data processor as the training data, the engine scores
them (:mod:`sdv_janus.engine.uncertainty` holds the figures, their units and how values never
seen in training are answered), and the figures come back as a DataFrame.
"""

import logging

import pandas as pd

from sdv_janus.errors import JanusInputError

LOGGER = logging.getLogger(__name__)

FIGURES = ("total", "aleatoric", "epistemic")
OUT_OF_DISTRIBUTION = "out_of_distribution"
UNSEEN_COLUMNS = "unseen_columns"
SAMPLE_PREFIX = "uncertainty_"


class UncertaintyMixin:
    """Per-row total, aleatoric and epistemic uncertainty for a fitted JANUS synthesizer.

    Expects the host class to be an SDV single-table synthesizer whose ``_model`` is a fitted
    :class:`~sdv_janus.engine.JanusModel`.
    """

    def get_uncertainty(self, data, by_column=False):
        """Score rows: how uncertain the model is about each of them.

        For each modelled column, the row lands in a leaf of the column's tree; the leaf's
        Dirichlet posterior gives, in closed form, total uncertainty (entropy of the posterior
        mean), aleatoric (expected entropy) and epistemic (their difference, what more training
        data would remove). Row figures are sums over the modelled columns, in nats; numerical
        and datetime columns add the entropy of the value inside its bin (at the column's
        rounding resolution) to total and aleatoric. Keys and PII columns are not modelled and
        do not count.

        Synthetic rows and real rows can both be scored: high epistemic uncertainty marks rows
        unlike the training data. A value never seen in training (an unknown category, a null in
        a column that had none, an unparseable value, a number outside the training range) does
        not raise: it is flagged in ``out_of_distribution`` and ``unseen_columns``, and every
        tree that would have to test it to place the row answers with its prior alone (the
        leaf that no training row reached, the most uncertain answer it has).

        Rows are scored against the untruncated leaves. :meth:`sample_with_uncertainty`
        describes constrained columns by their truncated distributions instead: each leaf's
        Dirichlet is restricted to the states the row's cut allowed.

        Parameters
        ----------
        data : pandas.DataFrame or dict
            The rows, or ``{table_name: DataFrame}`` as SDV passes tables. Every modelled column
            must be present; other columns are ignored.
        by_column : bool, default=False
            Also return each modelled column's figures as ``<column>__total``,
            ``<column>__aleatoric`` and ``<column>__epistemic``.

        Returns
        -------
        pandas.DataFrame
            Indexed like the input, with float64 columns ``total``, ``aleatoric`` and
            ``epistemic`` (nats), bool ``out_of_distribution``, str ``unseen_columns`` (the
            columns holding unseen values, comma-separated, ``''`` when none), then the
            per-column figures when ``by_column`` is True.
        """
        return self._score(self._table_to_score(data), by_column, allowed=None)

    def _score(self, frame, by_column, allowed):
        """Score a frame of rows, each truncated column restricted to its allowed states."""
        names = self._model.columns
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise JanusInputError(
                f"The rows to score lack the modelled columns {missing}; pass every column the "
                "synthesizer was fitted on."
            )

        processed = self._data_processor.transform(frame[names], is_condition=True)
        columns = {name: processed[name].to_numpy() for name in names}
        scores = self._model.uncertainty(columns, allowed or None)
        return _scores_frame(scores, names, frame.index, by_column)

    def sample_with_uncertainty(self, num_rows, by_column=False):
        """Sample rows and score them, the figures beside the sampled columns.

        Parameters
        ----------
        num_rows : int
            Number of rows to sample (as for ``sample``).
        by_column : bool, default=False
            Also add each modelled column's figures (see :meth:`get_uncertainty`).

        Returns
        -------
        dict of str to pandas.DataFrame
            ``{table_name: DataFrame}``: the sampled columns followed by the figure columns of
            :meth:`get_uncertainty`. If a figure column's name is already a column of the
            table, every figure column is prefixed with ``uncertainty_``.
        """
        # The engine reports the states its cuts allowed, so constrained columns are described
        # by the truncated distributions they were drawn from.
        self._record_allowed, self._last_allowed = True, {}
        try:
            sampled = self.sample(num_rows)
        finally:
            self._record_allowed = False

        table_name, rows = next(iter(sampled.items()))
        masks = self._last_allowed
        allowed = masks if all(len(mask) == len(rows) for mask in masks.values()) else {}
        figures = self._score(rows, by_column, allowed)
        if set(figures.columns) & set(rows.columns):
            figures = figures.add_prefix(SAMPLE_PREFIX)

        return {table_name: pd.concat([rows, figures], axis=1)}

    def _table_to_score(self, data):
        """Return the DataFrame to score, from a DataFrame or a one-table dict, once fitted."""
        if not getattr(self, "_fitted", False):
            raise JanusInputError("The synthesizer must be fitted before it can score rows.")

        if isinstance(data, dict):
            if len(data) != 1:
                raise JanusInputError(
                    "get_uncertainty takes one table: a DataFrame or {table_name: DataFrame}; "
                    f"got a dict with {len(data)} entries."
                )

            data = next(iter(data.values()))

        if not isinstance(data, pd.DataFrame):
            raise JanusInputError(
                "get_uncertainty takes a pandas DataFrame or {table_name: DataFrame}; got "
                f"{type(data).__name__}."
            )

        return data


def _scores_frame(scores, names, index, by_column):
    """Arrange engine scores as a DataFrame indexed like the scored rows."""
    rows = scores.row_figures()
    unseen = scores.unseen
    frame = pd.DataFrame(
        {
            "total": rows.total,
            "aleatoric": rows.aleatoric,
            "epistemic": rows.epistemic,
            OUT_OF_DISTRIBUTION: unseen.any(axis=1),
            UNSEEN_COLUMNS: "",
        },
        index=index,
    )
    flagged = frame[OUT_OF_DISTRIBUTION].to_numpy()
    if flagged.any():
        frame.loc[flagged, UNSEEN_COLUMNS] = [
            ", ".join(name for name, hit in zip(names, row, strict=True) if hit)
            for row in unseen[flagged]
        ]

    if not by_column:
        return frame

    per_column = {}
    for position, name in enumerate(names):
        for figure in FIGURES:
            per_column[f"{name}__{figure}"] = getattr(scores, figure)[:, position]

    return pd.concat([frame, pd.DataFrame(per_column, index=index)], axis=1)
