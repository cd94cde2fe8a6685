"""JanusSynthesizer through SDV 2.0's public API, on real data."""

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from sdmetrics.single_column import CategoryCoverage
from sdv.evaluation import evaluate_quality, run_diagnostic
from sdv.metadata import Metadata
from sdv.sampling import Condition
from sdv.utils import load_synthesizer

from sdv_janus import JanusSynthesizer
from sdv_janus.errors import JanusInputError


@pytest.fixture(scope="module")
def placements(data_dir):
    path = data_dir / "student_placements" / "data.csv"
    return pd.read_csv(path, parse_dates=["start_date", "end_date"])


@pytest.fixture(scope="module")
def placements_metadata(placements):
    return Metadata.detect_from_dataframes({"placements": placements})


@pytest.fixture(scope="module")
def fitted(placements, placements_metadata):
    synthesizer = JanusSynthesizer(placements_metadata)
    synthesizer.fit({"placements": placements})
    return synthesizer


def test_plugin_is_registered_in_sdv():
    from sdv.single_table import JanusSynthesizer as Registered

    assert Registered is JanusSynthesizer


def test_sample_keeps_dtypes_keys_nulls_and_ranges(fitted, placements):
    synthetic = fitted.sample(1000)["placements"]
    assert len(synthetic) == 1000
    assert list(synthetic.columns) == list(placements.columns)
    assert synthetic.dtypes.to_dict() == placements.dtypes.to_dict()
    assert synthetic["student_id"].is_unique
    # Salary is null exactly for students not placed; the model learns how nulls depend on it
    # (up to the leaves' prior, which keeps every state possible).
    assert synthetic["salary"].isna().mean() == pytest.approx(
        placements["salary"].isna().mean(), abs=0.06
    )
    assert (synthetic["salary"].isna() == ~synthetic["placed"]).mean() > 0.98
    for column in ["salary", "degree_perc", "start_date"]:
        assert synthetic[column].min() >= placements[column].min()
        assert synthetic[column].max() <= placements[column].max()


def test_category_coverage_is_complete(fitted, placements, placements_metadata):
    synthetic = fitted.sample(len(placements))["placements"]
    for column in placements_metadata.get_column_names(sdtype="categorical"):
        assert CategoryCoverage.compute(placements[column], synthetic[column]) == 1.0, column


def test_reset_sampling_repeats_rows(fitted):
    fitted.reset_sampling()
    first = fitted.sample(200)["placements"]
    fitted.reset_sampling()
    second = fitted.sample(200)["placements"]
    pd.testing.assert_frame_equal(first, second)


def test_save_then_load_samples_the_same_rows(fitted, tmp_path):
    path = tmp_path / "janus.pkl"
    fitted.save(path)
    loaded = load_synthesizer(str(path))
    fitted.reset_sampling()
    loaded.reset_sampling()
    pd.testing.assert_frame_equal(
        fitted.sample(300)["placements"], loaded.sample(300)["placements"]
    )


def test_sample_from_conditions_returns_every_row_requested(fitted):
    conditions = [
        Condition({"gender": "F", "placed": True}, num_rows=120),
        Condition({"high_spec": "Arts"}, num_rows=80),
    ]
    synthetic = fitted.sample_from_conditions(conditions, max_tries_per_batch=1)["placements"]
    assert len(synthetic) == 200
    first, second = synthetic.iloc[:120], synthetic.iloc[120:]
    assert (first["gender"] == "F").all() and first["placed"].all()
    assert first["salary"].notna().mean() > 0.97
    assert (second["high_spec"] == "Arts").all()


def test_numeric_condition_is_exact(fitted):
    synthetic = fitted.sample_from_conditions(
        [Condition({"experience_years": 2}, num_rows=50)], max_tries_per_batch=1
    )["placements"]
    assert len(synthetic) == 50
    assert (synthetic["experience_years"] == 2).all()
    # Upstream columns follow the posterior given the condition. In training every row with
    # experience has work_experience True; the leaves' Dirichlet prior leaves False a few
    # percent of posterior mass, so most rows, not all, must be True.
    assert synthetic["work_experience"].mean() >= 0.85


def test_sample_remaining_columns(fitted, placements):
    known = pd.DataFrame({"gender": ["M", "F", "F"], "mba_spec": ["Mkt&HR", "Mkt&Fin", "Mkt&HR"]})
    synthetic = fitted.sample_remaining_columns(known, max_tries_per_batch=1)["placements"]
    assert len(synthetic) == 3
    pd.testing.assert_frame_equal(
        synthetic[["gender", "mba_spec"]].reset_index(drop=True), known, check_dtype=False
    )


def test_unseen_condition_value_is_a_clear_error(fitted):
    with pytest.raises(Exception) as raised:
        fitted.sample_from_conditions([Condition({"high_spec": "Music"}, num_rows=5)])

    error = raised.value.__cause__ or raised.value
    assert isinstance(error, JanusInputError)
    assert "high_spec" in str(error)


def test_parameters_and_graph(fitted):
    parameters = fitted.get_parameters()
    assert parameters["max_parents"] == 3
    assert parameters["enforce_rounding"] is True
    assert parameters["locales"] == ["en_US"]
    graph = fitted.get_graph()
    assert isinstance(graph, nx.DiGraph) and nx.is_directed_acyclic_graph(graph)
    assert "student_id" not in graph
    assert set(graph.nodes) == set(fitted.get_metadata().get_column_names()) - {"student_id"}


def test_invalid_parameter_names_the_parameter(placements_metadata):
    with pytest.raises(JanusInputError, match="min_samples_leaf"):
        JanusSynthesizer(placements_metadata, min_samples_leaf=0)


def test_user_graph_is_respected(placements, placements_metadata):
    columns = [c for c in placements.columns if c != "student_id"]
    graph = nx.DiGraph()
    graph.add_nodes_from(columns)
    graph.add_edge("placed", "salary")
    synthesizer = JanusSynthesizer(placements_metadata, graph=graph)
    synthesizer.fit({"placements": placements})
    assert set(synthesizer.get_graph().edges) <= {("placed", "salary")}


def test_sdv_quality_and_diagnostic_reports_run(fitted, placements, placements_metadata):
    synthetic = fitted.sample(len(placements))
    quality = evaluate_quality(
        {"placements": placements}, synthetic, placements_metadata, verbose=False
    )
    diagnostic = run_diagnostic(
        {"placements": placements}, synthetic, placements_metadata, verbose=False
    )
    assert 0.75 < quality.get_score() <= 1.0
    assert diagnostic.get_score() == pytest.approx(1.0)


def test_pii_columns_are_generated_by_faker(placements):
    frame = placements.assign(email=[f"student{i}@school.edu" for i in range(len(placements))])
    metadata = Metadata.detect_from_dataframes({"placements": frame})
    assert metadata.tables["placements"].columns["email"]["sdtype"] == "email"
    synthesizer = JanusSynthesizer(metadata, locales=["fr_FR"])
    synthesizer.fit({"placements": frame})
    synthetic = synthesizer.sample(50)["placements"]
    assert synthetic["email"].str.contains("@").all()
    assert "email" not in synthesizer.get_graph()


def test_adult_dtypes_and_coverage(adult):
    sample = adult.sample(8000, random_state=0)
    metadata = Metadata.detect_from_dataframes({"adult": sample})
    synthesizer = JanusSynthesizer(metadata)
    synthesizer.fit({"adult": sample})
    synthetic = synthesizer.sample(len(sample))["adult"]
    assert synthetic.dtypes.to_dict() == sample.dtypes.to_dict()
    for column in metadata.get_column_names(sdtype="categorical"):
        assert CategoryCoverage.compute(sample[column], synthetic[column]) == 1.0, column

    # education-num is a function of education in the data; the model keeps that, up to the
    # leaves' prior (a FixedCombinations constraint makes it exact).
    mapping = sample.groupby("education")["education-num"].first()
    assert (synthetic["education"].map(mapping) == synthetic["education-num"]).mean() > 0.98
    assert np.isclose(
        synthetic["capital-gain"].eq(0).mean(), sample["capital-gain"].eq(0).mean(), atol=0.02
    )


def test_numeric_condition_outside_training_range_is_a_clear_error(fitted, placements):
    with pytest.raises(Exception) as raised:
        fitted.sample_from_conditions([Condition({"degree_perc": 150.0}, num_rows=5)])

    error = raised.value.__cause__ or raised.value
    assert isinstance(error, JanusInputError)
    assert "degree_perc" in str(error) and "training range" in str(error)
