"""Uncertainty figures of JanusSynthesizer through SDV 2.0's public API, on the adult data."""

import numpy as np
import pandas as pd
import pytest
from sdv.metadata import Metadata

from sdv_janus import JanusSynthesizer
from sdv_janus.errors import JanusInputError

FIGURES = ["total", "aleatoric", "epistemic"]
ROWS = 8000


@pytest.fixture(scope="module")
def adult_rows(adult):
    return adult.sample(n=ROWS, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def metadata(adult_rows):
    return Metadata.detect_from_dataframes({"adult": adult_rows})


@pytest.fixture(scope="module")
def fitted(adult_rows, metadata):
    synthesizer = JanusSynthesizer(metadata)
    synthesizer.fit({"adult": adult_rows})
    return synthesizer


@pytest.fixture(scope="module")
def scores(fitted, adult_rows):
    return fitted.get_uncertainty(adult_rows)


def test_rare_countries_score_higher_epistemic_than_united_states(scores, adult_rows):
    country = adult_rows["native-country"]
    share = country.map(country.value_counts(normalize=True))
    rare = scores.loc[share < 0.005, "epistemic"]
    common = scores.loc[country == "United-States", "epistemic"]
    assert len(rare) > 50
    # Across subsamples the rare rows' mean is 1.5x to 3x the United-States mean.
    assert rare.mean() > 1.3 * common.mean()
    assert rare.median() > 1.5 * common.median()


def test_figures_are_sums_of_finite_non_negative_parts(scores, fitted, adult_rows):
    assert list(scores.columns) == FIGURES + ["out_of_distribution", "unseen_columns"]
    assert np.isfinite(scores[FIGURES].to_numpy()).all()
    assert (scores["epistemic"] >= 0).all()
    assert (scores["total"] >= scores["aleatoric"]).all()
    assert not scores["out_of_distribution"].any()
    assert (scores["unseen_columns"] == "").all()

    detailed = fitted.get_uncertainty(adult_rows.head(50), by_column=True)
    for figure in FIGURES:
        parts = detailed[[f"{name}__{figure}" for name in adult_rows.columns]]
        np.testing.assert_allclose(parts.sum(axis=1), detailed[figure], rtol=1e-12)


def test_result_is_aligned_with_the_input_index(fitted, adult_rows, scores):
    shuffled = adult_rows.sample(n=300, random_state=1)
    shuffled.index = pd.Index([f"row{i}" for i in range(300)])
    result = fitted.get_uncertainty({"adult": shuffled})
    assert result.index.equals(shuffled.index)
    expected = scores.loc[adult_rows.sample(n=300, random_state=1).index, FIGURES].to_numpy()
    np.testing.assert_allclose(result[FIGURES].to_numpy(), expected, rtol=1e-12)


def test_unknown_and_out_of_range_values_are_flagged_not_fatal(fitted, adult_rows, scores):
    rows = adult_rows.head(4).copy()
    rows.loc[0, "native-country"] = "Atlantis"
    rows.loc[1, "age"] = 500
    rows.loc[2, "workclass"] = np.nan
    rows.loc[3, "sex"] = "Unknown"
    result = fitted.get_uncertainty(rows)
    assert result["out_of_distribution"].all()
    assert list(result["unseen_columns"]) == ["native-country", "age", "workclass", "sex"]
    assert np.isfinite(result[FIGURES].to_numpy()).all()
    # An unseen value never lowers a row's epistemic uncertainty.
    assert (result["epistemic"] >= scores.loc[rows.index, "epistemic"] - 1e-12).all()


def test_missing_columns_and_bad_input_raise_input_errors(fitted, adult_rows):
    with pytest.raises(JanusInputError, match="native-country"):
        fitted.get_uncertainty(adult_rows.drop(columns=["native-country"]))

    with pytest.raises(JanusInputError, match="one table"):
        fitted.get_uncertainty({"a": adult_rows, "b": adult_rows})

    with pytest.raises(JanusInputError, match="fitted"):
        JanusSynthesizer(Metadata.detect_from_dataframes({"adult": adult_rows})).get_uncertainty(
            adult_rows
        )


def test_sample_with_uncertainty_returns_rows_and_their_figures(fitted, adult_rows):
    sampled = fitted.sample_with_uncertainty(500, by_column=True)
    assert list(sampled) == ["adult"]
    table = sampled["adult"]
    assert len(table) == 500
    assert list(table.columns[: adult_rows.shape[1]]) == list(adult_rows.columns)
    assert {"total", "aleatoric", "epistemic", "age__epistemic"} <= set(table.columns)
    assert np.isfinite(table[FIGURES].to_numpy()).all()
    assert not table["out_of_distribution"].any()
    rescored = fitted.get_uncertainty(table[adult_rows.columns])
    np.testing.assert_allclose(rescored["epistemic"], table["epistemic"], rtol=1e-12)
