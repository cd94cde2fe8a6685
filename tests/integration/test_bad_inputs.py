"""One row per bad or odd input (issue 6): a clear error naming the culprit, or correct output.

Each case either raises an error of the stated type whose message names the column, parameter
or constraint at fault, or, for input that is legal but odd, produces the output the case
checks. Where SDV itself raises a clear error naming the culprit (metadata against data,
primary key duplicates, conditions on unknown columns, constraint columns, sampling before
fitting), the case checks that SDV's error gets through unchanged.
"""

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
import pytest
from sdv.cag import FixedCombinations, Inequality
from sdv.cag._errors import ConstraintNotMetError
from sdv.errors import InvalidDataError, InvalidDataTypeError, SamplingError, SynthesizerInputError
from sdv.metadata import Metadata
from sdv.sampling import Condition

from sdv_janus import JanusSynthesizer
from sdv_janus.constraints import Rule
from sdv_janus.errors import JanusDataError, JanusInputError, JanusNotFittedError

ROWS = 60
TABLE = "t"


def _base(rows=ROWS):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "num": rng.normal(size=rows).round(3),
            "cat": rng.choice(["a", "b", "c"], rows),
            "count": rng.integers(0, 100, rows),
        }
    )


def _metadata(frame, **sdtypes):
    """Metadata with explicit sdtypes: numbers numerical, the rest categorical, no keys."""
    columns = {}
    for name in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[name]) and frame[name].dtype != bool
        columns[str(name)] = {"sdtype": "numerical" if numeric else "categorical"}

    for name, sdtype in sdtypes.items():
        columns[name] = sdtype if isinstance(sdtype, dict) else {"sdtype": sdtype}

    return Metadata.load_from_dict({"tables": {TABLE: {"columns": columns}}})


def _with(**columns):
    frame = _base()
    for name, values in columns.items():
        frame[name] = values

    return frame


def _fit(frame, metadata=None, **parameters):
    synthesizer = JanusSynthesizer(metadata or _metadata(frame), **parameters)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthesizer.fit({TABLE: frame})

    return synthesizer


def _fit_and_sample(frame, metadata=None, rows=200):
    return _fit(frame, metadata).sample(rows)[TABLE]


@functools.cache
def _fitted():
    return _fit(_base())


def _unfitted():
    return JanusSynthesizer(_metadata(_base()))


@dataclass
class Case:
    """One input: ``act`` runs it; either ``error`` with ``names`` in its message, or ``check``."""

    name: str
    act: Callable
    error: type | None = None
    names: str | None = None
    check: Callable | None = None


# ------------------------------------------------------------------- legal but odd: checks


def _same_values(column, allowed):
    def check(out):
        assert set(out[column].tolist()) <= set(allowed), out[column].unique()

    return check


def _one_row(out):
    row = _base().iloc[0]
    assert len(out) == 200
    assert (out["num"] == row["num"]).all()
    assert (out["cat"] == row["cat"]).all()
    assert (out["count"] == row["count"]).all()


def _all_null(column):
    def check(out):
        assert len(out) == 200 and out[column].isna().all()

    return check


def _constant(column, value):
    def check(out):
        assert len(out) == 200 and (out[column] == value).all()

    return check


def _unicode_round_trip(categories):
    def check(out):
        assert set(out["u"]) == set(categories)

    return check


def _nan_kept(out):
    assert out["num"].dtype == np.float64
    assert 0 < out["num"].isna().mean() < 0.6
    assert np.isfinite(out["num"].dropna()).all()


def _negative_zero(out):
    assert set(out["z"].tolist()) <= {0.0, 1.5}
    assert out["z"].notna().all()


def _time_zone_kept(out):
    assert str(out["dt"].dtype) == "datetime64[ns, Europe/Paris]"
    assert out["dt"].min() >= pd.Timestamp("2020-01-01", tz="Europe/Paris")
    assert out["dt"].max() <= pd.Timestamp("2020-03-01", tz="Europe/Paris")


def _mixed_offsets_parsed(out):
    parsed = pd.to_datetime(out["dt"], utc=True)
    assert parsed.notna().all()
    assert parsed.min() >= pd.Timestamp("2019-12-31", tz="UTC")


def _int_labels(out):
    assert list(out.columns) == [0, 1, 2]


def _empty_frame(out):
    expected = _base()
    assert len(out) == 0
    assert list(out.columns) == list(expected.columns)
    assert out.dtypes.to_dict() == expected.dtypes.to_dict()


def _bools(out):
    assert out["flag"].dtype == bool and set(out["flag"]) == {True, False}


# ------------------------------------------------------------------- inputs

_BIG = 2**53 + 1
_UNICODE = ["é", "日本語", "🙂", "Ωmega"]
_BLANKS = [" ", "  ", "\t", "x y"]
_TEN_THOUSAND = [f"level{i}" for i in range(10_000)]
_ZONED = pd.date_range("2020-01-01", periods=ROWS, freq="D", tz="Europe/Paris")
_OFFSETS = [
    f"2020-01-{i % 28 + 1:02d}T00:00:00{'+01:00' if i % 2 else '+05:00'}" for i in range(ROWS)
]


def _ten_thousand_levels():
    frame = pd.DataFrame({"level": _TEN_THOUSAND, "x": np.arange(10_000) % 7})
    return _fit_and_sample(frame)


def _duplicate_names():
    frame = _base()
    frame.columns = ["a", "a", "b"]
    return _fit(frame, _metadata(_base()))


def _tuple_names():
    frame = _base()
    frame.columns = [("x", 1), "cat", "count"]
    return _fit(frame, _metadata(_base()))


def _none_name():
    frame = _base()
    frame.columns = ["num", None, "count"]
    return _fit(frame, _metadata(_base()))


def _clashing_names():
    frame = _base()
    frame.columns = ["1", 1, "count"]
    return _fit(frame, _metadata(_base()))


def _int_names():
    frame = _base()
    frame.columns = [0, 1, 2]
    return _fit_and_sample(frame)


def _primary_key_duplicates():
    frame = _with(id=np.arange(ROWS) % 50)
    metadata = _metadata(frame, id="id")
    metadata.set_primary_key("id", TABLE)
    return _fit(frame, metadata)


def _graph(*edges):
    graph = nx.DiGraph()
    graph.add_edges_from(edges)
    return graph


def _condition(values):
    return lambda: _fitted().sample_from_conditions([Condition(values, num_rows=3)])


CASES = [
    # Table shape.
    Case("empty table", lambda: _fit(_base().iloc[:0]), JanusDataError, "'t' has no rows"),
    Case("one row", lambda: _fit_and_sample(_base().iloc[:1], _metadata(_base())), check=_one_row),
    Case("duplicate column names", _duplicate_names, JanusDataError, "['a']"),
    Case("non-string column names", _tuple_names, JanusDataError, "('x', 1)"),
    Case("a column named None", _none_name, JanusDataError, "[None]"),
    Case("names equal once made strings", _clashing_names, JanusDataError, "['1']"),
    Case("int column names keep their labels", _int_names, check=_int_labels),
    Case("data not a dict", lambda: _unfitted().fit(_base()), InvalidDataTypeError, "`data`"),
    # Nulls and constants.
    Case(
        "all-null float column",
        lambda: _fit_and_sample(_with(empty=np.nan)),
        check=_all_null("empty"),
    ),
    Case(
        "all-null object column",
        lambda: _fit_and_sample(_with(empty=pd.Series([None] * ROWS, dtype=object))),
        check=_all_null("empty"),
    ),
    Case(
        "constant numerical column",
        lambda: _fit_and_sample(_with(k=7.25)),
        check=_constant("k", 7.25),
    ),
    Case(
        "categorical column with one level",
        lambda: _fit_and_sample(_with(k="only")),
        check=_constant("k", "only"),
    ),
    # Categories.
    Case("10,000 categories", _ten_thousand_levels, check=_same_values("level", _TEN_THOUSAND)),
    Case(
        "unicode categories",
        lambda: _fit_and_sample(_with(u=np.resize(_UNICODE, ROWS))),
        check=_unicode_round_trip(_UNICODE),
    ),
    Case(
        "whitespace-only categories",
        lambda: _fit_and_sample(_with(u=np.resize(_BLANKS, ROWS))),
        check=_unicode_round_trip(_BLANKS),
    ),
    # Numbers and booleans stored as strings.
    Case(
        "numbers as strings, declared numerical",
        lambda: _fit(_with(s=_base()["num"].astype(str)), _metadata(_with(s=""), s="numerical")),
        InvalidDataError,
        "'s'",
    ),
    Case(
        "numbers as strings, categorical",
        lambda: _fit_and_sample(_with(s=np.resize(["1.5", "2", "10"], ROWS))),
        check=_same_values("s", ["1.5", "2", "10"]),
    ),
    Case(
        "booleans as strings, declared boolean",
        lambda: _fit(_with(b=np.resize(["True", "False"], ROWS)), _metadata(_base(), b="boolean")),
        InvalidDataError,
        "'b'",
    ),
    Case(
        "booleans as strings, categorical",
        lambda: _fit_and_sample(_with(b=np.resize(["True", "False"], ROWS))),
        check=_same_values("b", ["True", "False"]),
    ),
    Case(
        "real booleans",
        lambda: _fit_and_sample(
            _with(flag=np.resize([True, False], ROWS)), _metadata(_base(), flag="boolean")
        ),
        check=_bools,
    ),
    # Special numbers.
    Case(
        "NaN in a numerical column",
        lambda: _fit_and_sample(_with(num=np.where(np.arange(ROWS) % 4 == 0, np.nan, 1.0))),
        check=_nan_kept,
    ),
    Case("+inf in a numerical column", lambda: _fit(_with(num=np.inf)), JanusDataError, "'num'"),
    Case(
        "-inf in a numerical column",
        lambda: _fit(_with(num=np.r_[-np.inf, np.zeros(ROWS - 1)])),
        JanusDataError,
        "'num'",
    ),
    Case(
        "integers beyond 2**53, numerical",
        lambda: _fit(_with(big=np.arange(ROWS) + _BIG)),
        JanusDataError,
        "'big'",
    ),
    Case(
        "integers beyond 2**53, categorical, exact",
        lambda: _fit_and_sample(
            _with(big=np.arange(3).repeat(ROWS // 3) + _BIG), _metadata(_base(), big="categorical")
        ),
        check=_same_values("big", [_BIG, _BIG + 1, _BIG + 2]),
    ),
    Case(
        "-0.0",
        lambda: _fit_and_sample(_with(z=np.where(np.arange(ROWS) % 2 == 0, -0.0, 1.5))),
        check=_negative_zero,
    ),
    # Datetimes.
    Case(
        "datetimes in mixed formats",
        lambda: _fit(
            _with(dt=np.resize(["2020-01-01", "01/02/2021"], ROWS)),
            _metadata(_base(), dt={"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}),
        ),
        InvalidDataError,
        "'dt'",
    ),
    Case(
        "unparseable datetimes",
        lambda: _fit(
            _with(dt=np.resize(["2020-01-01", "not a date"], ROWS)),
            _metadata(_base(), dt={"sdtype": "datetime", "datetime_format": "%Y-%m-%d"}),
        ),
        InvalidDataError,
        "'dt'",
    ),
    Case(
        "time-zone-aware datetimes",
        lambda: _fit_and_sample(_with(dt=_ZONED), _metadata(_base(), dt="datetime")),
        check=_time_zone_kept,
    ),
    Case(
        "datetimes with mixed UTC offsets",
        lambda: _fit_and_sample(_with(dt=_OFFSETS), _metadata(_base(), dt="datetime")),
        check=_mixed_offsets_parsed,
    ),
    # Metadata against data (SDV's checks).
    Case(
        "metadata column missing from data",
        lambda: _fit(_base().drop(columns="count"), _metadata(_base())),
        InvalidDataError,
        "'count'",
    ),
    Case(
        "data column missing from metadata",
        lambda: _fit(_with(extra=1.0), _metadata(_base())),
        InvalidDataError,
        "'extra'",
    ),
    Case(
        "wrong sdtype",
        lambda: _fit(_base(), _metadata(_base(), cat="numerical")),
        InvalidDataError,
        "'cat'",
    ),
    Case("primary key with duplicates", _primary_key_duplicates, InvalidDataError, "'id'"),
    # num_rows and batches.
    Case("num_rows=0", lambda: _fitted().sample(0)[TABLE], check=_empty_frame),
    Case("num_rows negative", lambda: _fitted().sample(-1), JanusInputError, "'num_rows'"),
    Case("num_rows float", lambda: _fitted().sample(2.5), JanusInputError, "'num_rows'"),
    Case("num_rows string", lambda: _fitted().sample("5"), JanusInputError, "'num_rows'"),
    Case("num_rows None", lambda: _fitted().sample(None), JanusInputError, "'num_rows'"),
    Case("num_rows huge", lambda: _fitted().sample(10**13), JanusInputError, "output_folder_path"),
    Case("batch_size zero", lambda: _fitted().sample(5, batch_size=0), JanusInputError, "batch"),
    Case(
        "max_tries_per_batch zero",
        lambda: _fitted().sample(5, max_tries_per_batch=0),
        JanusInputError,
        "'max_tries_per_batch'",
    ),
    # Conditions.
    Case("condition on an unknown column", _condition({"zzz": 1}), ValueError, "'zzz'"),
    Case("condition with an unseen category", _condition({"cat": "zz"}), JanusInputError, "'cat'"),
    Case("condition outside the range", _condition({"num": 99.0}), JanusInputError, "'num'"),
    # Before fitting.
    Case("sample before fit", lambda: _unfitted().sample(5), SamplingError, "fit"),
    Case(
        "conditions before fit",
        lambda: _unfitted().sample_from_conditions([Condition({"cat": "a"})]),
        SamplingError,
        "fit",
    ),
    Case("graph before fit", lambda: _unfitted().get_graph(), JanusNotFittedError, "fit"),
    # Constraints.
    Case(
        "constraint on an unknown column",
        lambda: _unfitted().add_constraints([Inequality("num", "zzz")]),
        ConstraintNotMetError,
        "'zzz'",
    ),
    Case(
        "Inequality on a categorical column",
        lambda: _unfitted().add_constraints([Inequality("num", "cat")]),
        ConstraintNotMetError,
        "'cat'",
    ),
    Case(
        "FixedCombinations on a numerical column",
        lambda: _unfitted().add_constraints([FixedCombinations(["num", "cat"])]),
        ConstraintNotMetError,
        "'num'",
    ),
    Case(
        "Rule on an unknown column",
        lambda: _unfitted().add_constraints([Rule("zzz >= 0")]),
        ConstraintNotMetError,
        "zzz",
    ),
    Case(
        "Rule comparing a category with a number",
        lambda: _unfitted().add_constraints([Rule("cat >= 3")]),
        ConstraintNotMetError,
        "['cat']",
    ),
    # Parameters.
    Case(
        "metadata not a Metadata",
        lambda: JanusSynthesizer({"columns": {}}),
        JanusInputError,
        "'metadata'",
    ),
    Case(
        "int parameter given as str",
        lambda: JanusSynthesizer(_metadata(_base()), max_parents="3"),
        JanusInputError,
        "'max_parents'",
    ),
    Case(
        "parameter below its range",
        lambda: JanusSynthesizer(_metadata(_base()), n_bins=1),
        JanusInputError,
        "'n_bins'",
    ),
    Case(
        "NaN parameter",
        lambda: JanusSynthesizer(_metadata(_base()), prior_strength=float("nan")),
        JanusInputError,
        "'prior_strength'",
    ),
    Case(
        "infinite parameter",
        lambda: JanusSynthesizer(_metadata(_base()), structure_prior=float("inf")),
        JanusInputError,
        "'structure_prior'",
    ),
    Case(
        "locales not a list",
        lambda: JanusSynthesizer(_metadata(_base()), locales=5),
        JanusInputError,
        "'locales'",
    ),
    Case(
        "enforce_rounding not a bool",
        lambda: JanusSynthesizer(_metadata(_base()), enforce_rounding="yes"),
        SynthesizerInputError,
        "'enforce_rounding'",
    ),
    Case(
        "graph not a DiGraph",
        lambda: JanusSynthesizer(_metadata(_base()), graph="abc"),
        JanusInputError,
        "'graph'",
    ),
    Case(
        "graph naming an unknown column",
        lambda: _fit(_base(), graph=_graph(("num", "zzz"))),
        JanusInputError,
        "'zzz'",
    ),
    Case(
        "graph with a cycle",
        lambda: _fit(_base(), graph=_graph(("num", "cat"), ("cat", "num"))),
        JanusInputError,
        "cycle",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case):
    if case.error is not None:
        with pytest.raises(case.error) as raised:
            case.act()

        assert case.names in str(raised.value), str(raised.value)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = case.act()

        case.check(out)


def test_table_has_one_row_per_listed_input():
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)
