"""The engine's model file format: exact values, formulas, and refused files."""

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdv_janus.engine.errors import ModelFileError
from sdv_janus.engine.persistence import (
    decode_formula,
    decode_value,
    encode_formula,
    encode_value,
    read_model_file,
    write_model_file,
)
from sdv_janus.engine.rules import AllOf, AllowedTuples, AnyOf, InSet, Linear, Not

_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


def _same(left, right):
    if isinstance(left, float) and math.isnan(left):
        return isinstance(right, float) and math.isnan(right)

    return type(left) is type(right) and left == right and str(left) == str(right)


@settings(max_examples=200, deadline=None)
@given(_VALUES)
def test_values_round_trip_exactly(value):
    assert _same(decode_value(encode_value(value)), value)


def test_numpy_and_time_values_round_trip():
    assert decode_value(encode_value(np.int64(7))) == 7
    assert decode_value(encode_value(np.float32(0.5))) == 0.5
    stamp = pd.Timestamp("2021-03-04 05:06:07.000000008")
    assert decode_value(encode_value(stamp)) == stamp


def test_formulas_round_trip():
    formula = AllOf(
        (
            Linear((("a", 1.0), ("b", -0.1)), 3.25, True, "a - 0.1 b > -3.25"),
            AnyOf((InSet("plan", ("basic", 3, None), "plan"), Not(InSet("x", (True,), "x")))),
            AllowedTuples(("p", "q"), (("a", 1), ("b", 2)), "combos"),
        )
    )
    assert decode_formula(encode_formula(formula)) == formula


def test_arrays_round_trip_and_object_arrays_are_refused(tmp_path):
    arrays = {"counts": np.arange(5), "mask": np.array([True, False]), "x": np.eye(2)}
    write_model_file(tmp_path / "m", {"format": "test", "n": 1}, arrays)
    manifest, read = read_model_file(tmp_path / "m")
    assert manifest == {"format": "test", "n": 1}
    for name, array in arrays.items():
        np.testing.assert_array_equal(read[name], array)
        assert read[name].dtype == array.dtype

    with pytest.raises(ValueError):
        write_model_file(tmp_path / "o", {}, {"bad": np.array(["a", None], dtype=object)})


def test_unknown_tags_are_refused():
    with pytest.raises(ModelFileError, match="tag"):
        decode_value(["pickle", "..."])

    with pytest.raises(ModelFileError, match="cannot be written"):
        encode_value(object())


def test_model_state_keeps_the_confirmed_rules_and_samples_the_same():
    from sdv_janus.engine import ColumnSpec, JanusModel
    from sdv_janus.engine.persistence import model_from_state, model_to_state

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 50, 2000).astype(float), rng.integers(0, 50, 2000).astype(float)
    columns = {"a": a, "b": b, "total": a + b}
    specs = [ColumnSpec(name, "numerical") for name in columns]
    identity = AllOf(
        (
            Linear((("total", 1.0), ("a", -1.0), ("b", -1.0)), 0.0, False, "total == a + b"),
            Linear((("total", -1.0), ("a", 1.0), ("b", 1.0)), 0.0, False, "total == a + b"),
        )
    )
    model = JanusModel().fit(columns, specs, [identity])
    assert model.rules_true_in_training_ == {"total == a + b"}

    copy = model_from_state(*model_to_state(model))
    assert copy.rules_true_in_training_ == {"total == a + b"}
    model.set_random_state(3)
    copy.set_random_state(3)
    drawn, again = model.sample(500), copy.sample(500)
    for name in columns:
        np.testing.assert_array_equal(drawn[name], again[name])

    np.testing.assert_allclose(drawn["total"], drawn["a"] + drawn["b"])


def test_identity_the_data_break_is_not_confirmed():
    from sdv_janus.engine import ColumnSpec, JanusModel

    rng = np.random.default_rng(1)
    a, b = rng.random(500), rng.random(500)
    columns = {"a": a, "b": b, "total": a + b + (rng.random(500) < 0.01)}
    specs = [ColumnSpec(name, "numerical") for name in columns]
    rules = [
        Linear((("total", 1.0), ("a", -1.0), ("b", -1.0)), 0.0, False, "total == a + b"),
        Linear((("total", -1.0), ("a", 1.0), ("b", 1.0)), 0.0, False, "total == a + b"),
    ]
    assert JanusModel().fit(columns, specs, rules).rules_true_in_training_ == set()
