"""Fitting over Dask partitions gives the in-memory model; partitioned sampling is reproducible."""

import warnings

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from distributed import Client, LocalCluster
from sdv.metadata import Metadata

from sdv_janus import JanusSynthesizer
from sdv_janus.dask import fit_model, sample_to_parquet
from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine.rules import AllowedTuples, Linear

TABLE = "accounts"


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        )
        with cluster, Client(cluster) as dask_client:
            yield dask_client


@pytest.fixture(scope="module")
def table():
    """Mixed columns: spiky and continuous numbers, categories, booleans, dates, nulls, a key."""
    rng = np.random.default_rng(7)
    n_rows = 3000
    plan = rng.choice(["basic", "pro", "team", "enterprise"], n_rows, p=[0.5, 0.3, 0.15, 0.05])
    seats = np.where(plan == "basic", 1, rng.integers(2, 60, n_rows)).astype(float)
    spend = np.round(seats * rng.gamma(2.0, 30.0, n_rows), 2)
    spend[rng.random(n_rows) < 0.2] = 0.0
    spend[rng.random(n_rows) < 0.05] = np.nan
    region = np.where(rng.random(n_rows) < 0.03, None, rng.choice(["eu", "us", "apac"], n_rows))
    opened = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n_rows), "D")
    return pd.DataFrame(
        {
            "account_id": np.arange(n_rows),
            "plan": plan,
            "seats": seats,
            "spend": spend,
            "region": pd.Series(region, dtype=object),
            "active": rng.random(n_rows) < 0.7 + 0.2 * (plan != "basic"),
            "opened": opened,
        }
    )


@pytest.fixture(scope="module")
def metadata(table):
    metadata = Metadata.detect_from_dataframes({TABLE: table})
    metadata.update_column("account_id", table_name=TABLE, sdtype="id")
    metadata.set_primary_key("account_id", table_name=TABLE)
    metadata.update_column("region", table_name=TABLE, sdtype="categorical")
    return metadata


@pytest.fixture(scope="module")
def fitted_pair(client, table, metadata):
    """The same rows fitted in memory and over four Dask partitions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        in_memory = JanusSynthesizer(metadata, min_samples_leaf=5)
        in_memory.fit({TABLE: table})
        partitioned = JanusSynthesizer(metadata, min_samples_leaf=5)
        partitioned.fit_dask(dd.from_pandas(table, npartitions=4), bookkeeping_rows=500)

    return in_memory, partitioned


def _assert_same_codecs(expected, actual):
    assert [codec.spec for codec in expected] == [codec.spec for codec in actual]
    for mine, theirs in zip(expected, actual):
        left, right = mine.encoder, theirs.encoder
        np.testing.assert_array_equal(left.counts_, right.counts_)
        assert left.n_states == right.n_states
        if hasattr(left, "categories_"):
            assert list(left.categories_) == list(right.categories_)
        else:
            np.testing.assert_array_equal(left.knots_, right.knots_)
            np.testing.assert_array_equal(left.interval_starts_, right.interval_starts_)
            np.testing.assert_array_equal(left.point_values_, right.point_values_)
            assert mine.decimal_places_ == theirs.decimal_places_
            assert mine.datetime_unit_ == theirs.datetime_unit_


def _assert_same_tree(expected, actual):
    for field in ("feature", "left", "right", "mask_offset", "go_left", "leaf_of_node"):
        np.testing.assert_array_equal(getattr(expected, field), getattr(actual, field))

    np.testing.assert_array_equal(expected.leaf_counts, actual.leaf_counts)
    np.testing.assert_array_equal(expected.prior, actual.prior)


def test_dask_fit_gives_exactly_the_in_memory_model(fitted_pair):
    in_memory, partitioned = fitted_pair
    expected, actual = in_memory._model, partitioned._model
    _assert_same_codecs(expected.codecs_, actual.codecs_)
    assert expected.order_ == actual.order_
    assert sorted(expected.graph_.edges) == sorted(actual.graph_.edges)
    assert expected.graph_.number_of_edges() > 0
    assert sum(tree.n_leaves for tree in expected.trees_) > len(expected.trees_)
    for mine, theirs in zip(expected.trees_, actual.trees_):
        _assert_same_tree(mine, theirs)


def test_dask_fit_samples_like_the_in_memory_fit(fitted_pair):
    in_memory, partitioned = fitted_pair
    in_memory.reset_sampling()
    partitioned.reset_sampling()
    expected = in_memory.sample(400)[TABLE]
    actual = partitioned.sample(400)[TABLE]
    # Dask reads text as pyarrow strings, and SDV restores the dtypes it was fitted on.
    assert str(actual["plan"].dtype) in ("object", "string", "str")
    pd.testing.assert_frame_equal(expected, actual, check_dtype=False)


def test_partitioned_sampling_is_reproducible_and_partitions_differ(client, fitted_pair, tmp_path):
    _, synthesizer = fitted_pair
    first = sample_to_parquet(synthesizer, 1000, tmp_path / "a", n_partitions=3, seed=11)
    again = sample_to_parquet(synthesizer, 1000, tmp_path / "b", n_partitions=3, seed=11)
    other = sample_to_parquet(synthesizer, 1000, tmp_path / "c", n_partitions=3, seed=12)

    assert [path.name for path in first] == [f"part-0000{i}.parquet" for i in range(3)]
    parts = [pd.read_parquet(path) for path in first]
    for part, path in zip(parts, again):
        pd.testing.assert_frame_equal(part, pd.read_parquet(path))

    assert not parts[0].drop(columns="account_id").equals(parts[1].drop(columns="account_id"))
    assert not parts[0].equals(pd.read_parquet(other[0]))


def test_parquet_output_has_the_rows_columns_and_dtypes_of_sample(client, fitted_pair, tmp_path):
    _, synthesizer = fitted_pair
    files = sample_to_parquet(synthesizer, 1001, tmp_path, n_partitions=2, seed=3)
    rows = dd.read_parquet([str(path) for path in files]).compute()
    synthesizer.reset_sampling()
    reference = synthesizer.sample(10)[TABLE]

    assert len(rows) == 1001
    assert [len(pd.read_parquet(path)) for path in files] == [501, 500]
    assert list(rows.columns) == list(reference.columns)
    assert rows.dtypes.to_dict() == reference.dtypes.to_dict()
    assert rows["account_id"].is_unique
    assert set(rows["plan"]) == {"basic", "pro", "team", "enterprise"}
    assert rows["spend"].isna().any() and (rows["spend"] == 0).any()


@pytest.mark.parametrize("broken_rows", [0, 5])
def test_dask_fit_confirms_the_same_tuples_and_rules_as_the_in_memory_fit(client, broken_rows):
    """Allowed combinations and the rules the data confirm are decided over every partition."""
    rng = np.random.default_rng(3)
    n_rows = 1200
    columns = {
        "plan": rng.choice(["basic", "pro", "team"], n_rows),
        "region": rng.choice(["eu", "us"], n_rows),
        "fee": np.round(rng.uniform(0, 50, n_rows), 2),
        "spend": np.round(rng.gamma(2.0, 30.0, n_rows), 2),
    }
    columns["plan"][columns["region"] == "eu"] = "basic"
    columns["price"] = columns["fee"] + columns["spend"]
    # Only the last partition breaks the identity: no other partition may decide it alone.
    columns["price"][n_rows - broken_rows :] += 1.0
    specs = [
        ColumnSpec(name, "categorical" if name in ("plan", "region") else "numerical")
        for name in columns
    ]
    identity = [
        Linear((("price", sign), ("fee", -sign), ("spend", -sign)), 0.0, False, "price")
        for sign in (1.0, -1.0)
    ]
    rules = [AllowedTuples(("plan", "region"), None, "plan and region"), *identity]

    expected = JanusModel(min_samples_leaf=5).fit(columns, specs, rules)
    frame = dd.from_pandas(pd.DataFrame(columns), npartitions=3)
    actual = fit_model(JanusModel(min_samples_leaf=5), frame, specs, rules)

    confirmed = {"plan and region", "price"} if broken_rows == 0 else {"plan and region"}
    assert expected.rules_true_in_training_ == confirmed
    assert actual.rules_true_in_training_ == confirmed
    allowed = [set(rule.rows) for rule in expected.constraints_[:1]]
    assert allowed == [set(rule.rows) for rule in actual.constraints_[:1]]
    assert ("team", "eu") not in allowed[0] and ("team", "us") in allowed[0]
    assert expected.order_ == actual.order_
