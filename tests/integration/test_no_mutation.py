"""Random mixed-type tables with nulls (issue 6): clean output or a project error; input intact.

For every generated table, fitting and sampling either succeed, returning exactly the rows asked
for with the input's columns, column order and dtypes, or raise one of the project's errors.
Either way the caller's DataFrame is left exactly as it was, compared with a deep copy.
"""

import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sdv.metadata import Metadata

from sdv_janus import JanusSynthesizer
from sdv_janus.errors import JanusError

_TEXT = st.sampled_from(["a", "b", "é", "日本", " ", "x y", "True", "1.5"])
_NUMBER = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.just(np.nan),
    st.just(-0.0),
    st.sampled_from([np.inf, -np.inf]),
)
_STAMP = st.one_of(
    st.datetimes(min_value=pd.Timestamp("1990-01-01"), max_value=pd.Timestamp("2030-01-01")),
    st.none(),
)


@st.composite
def _column(draw, rows):
    """One column: (sdtype, values) of a random kind, nulls included where the kind has them."""
    kind = draw(st.sampled_from(["float", "int", "bool", "category", "datetime"]))
    if kind == "float":
        return "numerical", pd.Series(draw(st.lists(_NUMBER, min_size=rows, max_size=rows)))

    if kind == "int":
        values = draw(st.lists(st.integers(-(2**40), 2**40), min_size=rows, max_size=rows))
        return "numerical", pd.Series(values, dtype=np.int64)

    if kind == "bool":
        return "boolean", pd.Series(draw(st.lists(st.booleans(), min_size=rows, max_size=rows)))

    if kind == "category":
        values = draw(st.lists(st.one_of(_TEXT, st.none()), min_size=rows, max_size=rows))
        return "categorical", pd.Series(values, dtype=object)

    values = draw(st.lists(_STAMP, min_size=rows, max_size=rows))
    return "datetime", pd.Series(pd.to_datetime(values))


@st.composite
def _tables(draw):
    """A frame of 1 to 25 rows and 1 to 5 columns, with metadata matching its kinds."""
    rows = draw(st.integers(1, 25))
    width = draw(st.integers(1, 5))
    columns = [draw(_column(rows)) for _ in range(width)]
    frame = pd.DataFrame({f"c{i}": values for i, (_, values) in enumerate(columns)})
    metadata = {f"c{i}": {"sdtype": sdtype} for i, (sdtype, _) in enumerate(columns)}
    return frame, Metadata.load_from_dict({"tables": {"t": {"columns": metadata}}})


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(table=_tables(), num_rows=st.integers(0, 40))
def test_fit_and_sample_keep_the_input_and_its_shape(table, num_rows):
    frame, metadata = table
    original = frame.copy(deep=True)
    try:
        synthesizer = JanusSynthesizer(metadata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            synthesizer.fit({"t": frame})
            sampled = synthesizer.sample(num_rows)["t"]
    except JanusError:
        sampled = None

    pd.testing.assert_frame_equal(frame, original, check_exact=True)
    assert list(frame.columns) == list(original.columns)
    if sampled is not None:
        assert len(sampled) == num_rows
        assert list(sampled.columns) == list(frame.columns)
        assert sampled.dtypes.to_dict() == frame.dtypes.to_dict()
