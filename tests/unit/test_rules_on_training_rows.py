"""Which rules the training rows satisfy, read as sampling reads them."""

import numpy as np
import pytest

from sdv_janus.engine import ColumnSpec, JanusModel
from sdv_janus.engine.model import holds_on_every_row
from sdv_janus.engine.rules import AllowedTuples, AnyOf, InSet, Linear, Not

COLUMNS = {
    "plan": np.array(["basic", "pro", "pro", None, "team"], dtype=object),
    "seats": np.array([1.0, 5.0, 3.0, 2.0, np.nan]),
    "price": np.array([10.0, 50.0, 30.0, np.nan, 90.0]),
}


@pytest.fixture(scope="module")
def codecs():
    specs = [
        ColumnSpec("plan", "categorical"),
        ColumnSpec("seats", "numerical"),
        ColumnSpec("price", "numerical"),
    ]
    model = JanusModel(min_samples_leaf=1).fit(COLUMNS, specs)
    return {codec.spec.name: codec for codec in model.codecs_}


def _linear(coefficients, constant, strict=False):
    return Linear(tuple(coefficients.items()), constant, strict, "rule")


@pytest.mark.parametrize(
    ("formula", "expected"),
    [
        # price >= 10 * seats; a null on either side holds vacuously.
        (_linear({"price": 1.0, "seats": -10.0}, 0.0), True),
        (_linear({"price": 1.0, "seats": -10.0}, 0.0, strict=True), False),
        (_linear({"seats": -1.0}, 4.0), False),
        (InSet("plan", ("basic", "pro", "team", None), "rule"), True),
        (InSet("plan", ("basic", "pro", "team"), "rule"), False),
        (InSet("plan", ("enterprise",), "rule", negated=True), True),
        (AllowedTuples(("plan",), (("basic",), ("pro",), ("team",), (None,)), "rule"), True),
        (AllowedTuples(("plan",), (("basic",), ("pro",)), "rule"), False),
        # if plan == 'pro' then seats >= 3, written as (not pro) or seats >= 3.
        (AnyOf((Not(InSet("plan", ("pro",), "rule")), _linear({"seats": 1.0}, -3.0))), True),
        (AnyOf((Not(InSet("plan", ("pro",), "rule")), _linear({"seats": 1.0}, -4.0))), False),
    ],
)
def test_formula_is_checked_on_every_training_row(codecs, formula, expected):
    assert holds_on_every_row(formula, COLUMNS, codecs) is expected
