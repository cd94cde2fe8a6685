import numpy as np
import pandas as pd
import pytest

from sdv_janus.engine.encoding import (
    UNKNOWN_STATE,
    CategoricalEncoder,
    ColumnCodec,
    ColumnSpec,
    NumericEncoder,
    learn_decimal_places,
)


def test_categorical_round_trip_keeps_rare_categories_and_nulls():
    values = np.array(["b", "a", None, "a", "rare", "b", np.nan], dtype=object)
    encoder = CategoricalEncoder().fit(values)
    states = encoder.encode(values)
    assert list(encoder.categories_) == ["a", "b", "rare"]
    assert encoder.n_states == 4
    assert list(states) == [1, 0, 3, 0, 2, 1, 3]
    decoded = encoder.decode(states)
    assert list(decoded[[0, 1, 3, 4]]) == ["b", "a", "a", "rare"]
    assert pd.isna(decoded[2]) and pd.isna(decoded[6])
    assert list(encoder.counts_) == [2, 2, 1, 2]


def test_categorical_unseen_value_is_unknown():
    encoder = CategoricalEncoder().fit(np.array(["x", "y"], dtype=object))
    assert list(encoder.encode(np.array(["y", "z"], dtype=object))) == [1, UNKNOWN_STATE]


def test_booleans_are_categories():
    encoder = CategoricalEncoder().fit(np.array([True, False, True]))
    assert list(encoder.decode(encoder.encode(np.array([False, True])))) == [False, True]


def test_few_distinct_values_stay_exact():
    values = np.array([1.0, 2.0, 2.0, 5.0, np.nan])
    encoder = NumericEncoder(max_exact_values=10).fit(values)
    states = encoder.encode(values)
    decoded = encoder.decode(states, np.random.default_rng(0).random(len(values)))
    np.testing.assert_array_equal(decoded[:4], values[:4])
    assert np.isnan(decoded[4])
    assert states[4] == encoder.missing_state == 3


def test_bins_cover_values_and_draws_stay_inside_their_bin():
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=5000)
    encoder = NumericEncoder(n_bins=16).fit(values)
    states = encoder.encode(values)
    assert np.all(values >= encoder.state_low[states])
    assert np.all(values <= encoder.state_high[states])
    draws = encoder.decode(states, rng.random(len(states)))
    assert np.all(draws >= encoder.state_low[states])
    assert np.all(draws <= encoder.state_high[states])


def test_spike_and_heavy_tail_survive_the_within_bin_draw():
    rng = np.random.default_rng(1)
    values = np.where(rng.random(20000) < 0.6, 0.0, rng.pareto(1.5, 20000) * 1000)
    encoder = NumericEncoder().fit(values)
    draws = encoder.decode(encoder.encode(values), rng.random(len(values)))
    assert np.mean(draws == 0.0) == pytest.approx(np.mean(values == 0.0))
    for q in (0.7, 0.9, 0.99, 0.999):
        assert np.quantile(draws, q) == pytest.approx(np.quantile(values, q), rel=0.05)

    assert draws.max() <= values.max()


def test_out_of_range_values_get_the_nearest_state():
    encoder = NumericEncoder(n_bins=4, max_exact_values=2).fit(np.arange(100.0))
    states = encoder.encode(np.array([-1e9, 1e9, np.inf, -np.inf]))
    assert states[0] == states[3] == np.argmin(encoder.state_low)
    assert states[1] == states[2] == np.argmax(encoder.state_high)


def test_datetime_codec_round_trips_dates():
    values = np.array(["2020-01-01", "2020-03-15", None, "2021-12-31"], dtype=object)
    codec = ColumnCodec(ColumnSpec("d", "datetime", datetime_format="%Y-%m-%d")).fit(values)
    decoded = codec.decode(codec.encode(values), np.zeros(4))
    expected = pd.to_datetime(pd.Series(values), format="%Y-%m-%d").to_numpy()
    np.testing.assert_array_equal(decoded[[0, 1, 3]], expected[[0, 1, 3]])
    assert np.isnat(decoded[2])
    assert codec.datetime_unit_ == 86_400 * 10**9


def test_numeric_draws_are_rounded_to_the_training_precision():
    rng = np.random.default_rng(2)
    values = np.round(rng.normal(size=3000), 2)
    codec = ColumnCodec(ColumnSpec("x", "numerical")).fit(values)
    draws = codec.decode(codec.encode(values), rng.random(len(values)))
    assert codec.decimal_places_ == 2
    np.testing.assert_allclose(draws, np.round(draws, 2), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([1.0, 2.0, 3.0], 0), ([0.5, 1.25], 2), ([0.627, 33.6], 3), ([np.pi], None)],
)
def test_learn_decimal_places(values, expected):
    assert learn_decimal_places(np.array(values)) == expected
