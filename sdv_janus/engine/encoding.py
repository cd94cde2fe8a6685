"""Columns as integer states, and back.

Every modelled column becomes a discrete variable whose states the structure search and the trees
work on. Categorical and boolean columns keep one state per category seen in training; numerical
and datetime columns get adaptive bins, and a value is drawn back inside its bin from the
column's empirical distribution restricted to that bin (a piecewise-linear CDF through quantile
knots), so spikes and heavy tails survive. Missing values are a state of their own, the last one.
"""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sdv_janus.engine._kernels import interpolate_knots as _interpolate_knots

LOGGER = logging.getLogger(__name__)

CATEGORICAL = "categorical"
NUMERICAL = "numerical"
DATETIME = "datetime"
KINDS = (CATEGORICAL, NUMERICAL, DATETIME)

UNKNOWN_STATE = -1
_MAX_LEARNED_DIGITS = 10


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is encoded.

    Parameters
    ----------
    name : str
        Column name.
    kind : str
        One of ``'categorical'``, ``'numerical'`` or ``'datetime'``.
    ordered : bool, default=False
        For categorical columns: whether the sorted categories carry an order (ordinal columns),
        which lets trees split them by thresholds.
    round_values : bool, default=True
        For numerical columns: round drawn values to the precision seen in training (or to
        ``decimal_places`` when given).
    decimal_places : int or None, default=None
        Fixed number of decimals for drawn numerical values.
    datetime_format : str or None, default=None
        ``strftime`` format used to parse string datetimes.
    increment : float or None, default=None
        For numerical columns: drawn values are multiples of this number.
    """

    name: str
    kind: str
    ordered: bool = False
    round_values: bool = True
    decimal_places: int | None = None
    datetime_format: str | None = None
    increment: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(
                f"Column '{self.name}' has kind {self.kind!r}; expected one of {KINDS}."
            )


@dataclass
class ValueTally:
    """Distinct values of one column and how often each occurs: the column's sufficient statistic.

    Tallies of two chunks of a column add up (:meth:`merge`), so bins and categories learned from
    the tally of a whole table do not depend on how its rows were split.

    Attributes
    ----------
    values : numpy.ndarray
        ``(n_distinct,)`` distinct non-null values: sorted float64 for numeric kinds, object for
        categories.
    counts : numpy.ndarray
        int64 ``(n_distinct,)``: occurrences of each value.
    n_missing : int
        Number of null values.
    """

    values: np.ndarray
    counts: np.ndarray
    n_missing: int

    @classmethod
    def of_numbers(cls, numbers):
        """Tally a float64 array (NaN marks a missing value)."""
        numbers = np.asarray(numbers, dtype=np.float64)
        missing = np.isnan(numbers)
        values, counts = np.unique(numbers[~missing], return_counts=True)
        return cls(values, counts.astype(np.int64), int(missing.sum()))

    @classmethod
    def of_categories(cls, values):
        """Tally an array-like of categories of any dtype (nulls allowed)."""
        series = pd.Series(values, copy=False)
        frequencies = series.value_counts(dropna=True, sort=False)
        frequencies = frequencies[frequencies > 0]
        return cls(
            frequencies.index.to_numpy(dtype=object),
            frequencies.to_numpy(dtype=np.int64),
            int(series.isna().sum()),
        )

    def merge(self, other):
        """The tally of both chunks together."""
        n_missing = self.n_missing + other.n_missing
        if self.values.dtype == object or other.values.dtype == object:
            joined = pd.Series(
                np.concatenate([self.counts, other.counts]),
                index=pd.Index(np.concatenate([self.values, other.values]), dtype=object),
            )
            total = joined.groupby(level=0, sort=False).sum()
            return ValueTally(total.index.to_numpy(dtype=object), total.to_numpy(), n_missing)

        joined = np.concatenate([self.values, other.values])
        values, inverse = np.unique(joined, return_inverse=True)
        counts = np.bincount(inverse, weights=np.concatenate([self.counts, other.counts]))
        return ValueTally(values, counts.astype(np.int64), n_missing)


class CategoricalEncoder:
    """One state per category seen in training, plus a missing state if nulls were seen.

    Parameters
    ----------
    ordered : bool, default=False
        Whether the category order is meaningful (threshold splits are then allowed).
    """

    def __init__(self, ordered=False):
        self.ordered = ordered

    def fit(self, values):
        """Learn the categories of ``values`` (an array-like of any dtype, nulls allowed)."""
        return self.fit_tally(ValueTally.of_categories(values))

    def fit_tally(self, tally):
        """Learn the categories from a :class:`ValueTally` of the column."""
        self.categories_ = _stable_categories(tally.values)
        self.has_missing_ = tally.n_missing > 0
        self.counts_ = np.zeros(self.n_states, dtype=np.int64)
        codes = pd.Categorical(tally.values, categories=self.categories_).codes
        np.add.at(self.counts_, codes, tally.counts)
        if self.has_missing_:
            self.counts_[self.missing_state] = tally.n_missing

        return self

    @property
    def n_states(self):
        """Number of states, the missing state included."""
        return len(self.categories_) + int(self.has_missing_)

    @property
    def missing_state(self):
        """Index of the missing state, or ``UNKNOWN_STATE`` when nulls were never seen."""
        return len(self.categories_) if self.has_missing_ else UNKNOWN_STATE

    def encode(self, values):
        """Map values to int32 states; unseen categories map to ``UNKNOWN_STATE``."""
        series = pd.Series(values, copy=False)
        codes = pd.Categorical(series, categories=self.categories_).codes.astype(np.int32)
        codes[series.isna().to_numpy()] = self.missing_state
        return codes

    def decode(self, states, uniforms=None):
        """Map int states back to an object array of categories (``None``-free: NaN for nulls)."""
        lookup = np.append(self.categories_.astype(object), np.nan)
        states = np.where(states == self.missing_state, len(self.categories_), states)
        return lookup[states]


def _stable_categories(uniques):
    """Sort categories; when they are not mutually comparable, sort by type name then text."""
    uniques = list(uniques)
    try:
        ordered = sorted(uniques)
    except TypeError:
        ordered = sorted(uniques, key=lambda value: (type(value).__name__, repr(value)))

    categories = np.empty(len(ordered), dtype=object)
    categories[:] = ordered
    return categories


class NumericEncoder:
    """Adaptive bins over a numeric column, with a within-bin piecewise-linear CDF.

    Each value state is described by ``n_knots + 1`` quantile knots of the training values that
    fall in it: a state holding a single value (an exact value or a spike) has equal knots. A
    draw inside state ``s`` from a uniform ``u`` interpolates the knots of ``s`` linearly.

    Parameters
    ----------
    n_bins : int, default=32
        Target number of quantile bins for columns with many distinct values.
    max_exact_values : int, default=64
        Columns with at most this many distinct values keep every value as its own state.
    n_knots : int, default=16
        Number of linear pieces of the within-bin CDF.
    min_bin_count : int, default=5
        Bins with fewer training values are merged into a neighbour.
    """

    ordered = True

    def __init__(self, n_bins=32, max_exact_values=64, n_knots=16, min_bin_count=5):
        self.n_bins = n_bins
        self.max_exact_values = max_exact_values
        self.n_knots = n_knots
        self.min_bin_count = min_bin_count

    def fit(self, values):
        """Learn bins and knots from a float64 array (NaN marks a missing value)."""
        return self.fit_tally(ValueTally.of_numbers(values))

    def fit_tally(self, tally):
        """Learn bins and knots from a :class:`ValueTally` of float64 values."""
        uniques, counts = tally.values, tally.counts
        self.has_missing_ = tally.n_missing > 0
        self.min_, self.max_ = _range_of(uniques)
        if len(uniques) <= self.max_exact_values:
            self._fit_exact(uniques)
        else:
            self._fit_bins(uniques, counts)

        self.counts_ = np.zeros(self.n_states, dtype=np.int64)
        np.add.at(self.counts_, self.encode(uniques), counts)
        if self.has_missing_:
            self.counts_[self.missing_state] = tally.n_missing

        return self

    def _fit_exact(self, uniques):
        """Every distinct value is a state of its own."""
        self.knots_ = np.repeat(uniques[:, None], self.n_knots + 1, axis=1)
        self.point_values_ = uniques
        self.interval_starts_ = np.empty(0)
        self._point_states = np.arange(len(uniques), dtype=np.int32)
        self._interval_states = np.empty(0, dtype=np.int32)

    def _fit_bins(self, uniques, counts):
        """Spikes become point states; the rest is cut into merged quantile intervals."""
        # A value that would fill a whole quantile bin by itself is a spike (zeros, round values).
        is_spike = counts > counts.sum() / self.n_bins
        spikes = uniques[is_spike]
        rest, rest_counts = uniques[~is_spike], counts[~is_spike]
        intervals = _quantile_intervals(rest, rest_counts, self.n_bins, self.min_bin_count)

        probabilities = np.linspace(0.0, 1.0, self.n_knots + 1)
        interval_knots = [
            quantiles_of_counts(rest[part], rest_counts[part], probabilities) for part in intervals
        ]
        spike_knots = [np.full(self.n_knots + 1, value) for value in spikes]
        knots = np.array(spike_knots + interval_knots, dtype=np.float64).reshape(
            -1, self.n_knots + 1
        )

        # States are ordered by their position on the line, so thresholds on states make sense.
        order = np.lexsort((knots[:, -1], knots[:, 0]))
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.knots_ = knots[order]
        self.point_values_ = spikes
        self._point_states = rank[: len(spikes)].astype(np.int32)
        self.interval_starts_ = np.array([rest[part.start] for part in intervals], np.float64)
        self._interval_states = rank[len(spikes) :].astype(np.int32)

    @property
    def n_value_states(self):
        """Number of states that hold values (all states but the missing one)."""
        return self.knots_.shape[0]

    @property
    def n_states(self):
        """Number of states, the missing state included."""
        return self.n_value_states + int(self.has_missing_)

    @property
    def missing_state(self):
        """Index of the missing state, or ``UNKNOWN_STATE`` when nulls were never seen."""
        return self.n_value_states if self.has_missing_ else UNKNOWN_STATE

    @property
    def state_low(self):
        """float64 array ``(n_value_states,)``: the smallest value each state can produce."""
        return self.knots_[:, 0]

    @property
    def state_high(self):
        """float64 array ``(n_value_states,)``: the largest value each state can produce."""
        return self.knots_[:, -1]

    def encode(self, values):
        """Map float64 values to int32 states (NaN to the missing state, or ``UNKNOWN_STATE``).

        Values between or beyond the training values go to the nearest state, so any finite
        number has a state.
        """
        values = np.asarray(values, dtype=np.float64)
        states = np.full(values.shape, UNKNOWN_STATE, dtype=np.int32)
        finite = np.isfinite(values)
        states[np.isnan(values)] = self.missing_state
        if self.n_value_states == 0:
            return states

        if len(self._interval_states) == 0:
            states[finite] = self._point_states[_nearest(self.point_values_, values[finite])]
            return states

        states[finite] = self._interval_states[_interval_of(self.interval_starts_, values[finite])]
        if len(self.point_values_):
            nearest = _nearest(self.point_values_, values[finite])
            is_point = self.point_values_[nearest] == values[finite]
            states[np.flatnonzero(finite)[is_point]] = self._point_states[nearest[is_point]]

        infinite = np.isinf(values)
        states[infinite & (values > 0)] = int(np.argmax(self.state_high))
        states[infinite & (values < 0)] = int(np.argmin(self.state_low))
        return states

    def decode(self, states, uniforms):
        """Draw float64 values inside their states.

        Parameters
        ----------
        states : numpy.ndarray
            int array ``(n,)`` of states.
        uniforms : numpy.ndarray
            float64 array ``(n,)`` of draws in ``[0, 1)``: the position in the state's CDF.

        Returns
        -------
        numpy.ndarray
            float64 array ``(n,)``; NaN where the state is the missing state.
        """
        values = np.full(len(states), np.nan)
        present = states != self.missing_state
        values[present] = interpolate_knots(self.knots_, states[present], uniforms[present])
        return values


def interpolate_knots(knots, states, uniforms):
    """Evaluate each state's piecewise-linear quantile function at ``uniforms``.

    Parameters
    ----------
    knots : numpy.ndarray
        float64 array ``(n_states, n_knots + 1)`` of quantile knots.
    states : numpy.ndarray
        int array ``(n,)``.
    uniforms : numpy.ndarray
        float64 array ``(n,)`` in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        float64 array ``(n,)``.
    """
    states = np.asarray(states)
    if states.dtype not in (np.int8, np.int16, np.int32):
        states = states.astype(np.int32)

    return _interpolate_knots(
        np.ascontiguousarray(knots, dtype=np.float64),
        np.ascontiguousarray(states),
        np.ascontiguousarray(uniforms, dtype=np.float64),
    )


def _range_of(sorted_values):
    """Return (min, max) of a sorted array, or (nan, nan) when it is empty."""
    if len(sorted_values) == 0:
        return np.nan, np.nan

    return float(sorted_values[0]), float(sorted_values[-1])


def quantiles_of_counts(values, counts, probabilities):
    """Quantiles of the sample in which ``values[i]`` occurs ``counts[i]`` times.

    The same linear interpolation between order statistics as ``numpy.quantile``'s default, but
    computed from distinct values and their counts, which add up across chunks of a table.

    Parameters
    ----------
    values : numpy.ndarray
        float64 ``(n_distinct,)`` sorted distinct values.
    counts : numpy.ndarray
        int ``(n_distinct,)`` positive counts.
    probabilities : numpy.ndarray
        float64 ``(n_probabilities,)`` in ``[0, 1]``.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_probabilities,)``.
    """
    ends = np.cumsum(counts)
    last = ends[-1] - 1
    position = np.asarray(probabilities, dtype=np.float64) * last
    below = np.floor(position)
    fraction = position - below
    low = values[np.searchsorted(ends, below, side="right")]
    high = values[np.searchsorted(ends, np.minimum(below + 1, last), side="right")]
    return low + fraction * (high - low)


def _quantile_intervals(values, counts, n_bins, min_count):
    """Cut distinct sorted values at quantile edges, then merge bins thinner than ``min_count``.

    Returns a list of slices of ``values``, one per interval, together covering it.
    """
    if len(values) == 0:
        return []

    edges = np.unique(quantiles_of_counts(values, counts, np.linspace(0.0, 1.0, n_bins + 1))[:-1])
    starts = np.searchsorted(values, edges, side="left")
    bounds = np.append(starts, len(values))
    ends = np.concatenate([[0], np.cumsum(counts)])

    merged = [slice(int(bounds[0]), int(bounds[1]))]
    for start, stop in zip(bounds[1:-1], bounds[2:], strict=True):
        last = merged[-1]
        if ends[last.stop] - ends[last.start] < min_count or ends[stop] - ends[start] < min_count:
            merged[-1] = slice(last.start, int(stop))
        else:
            merged.append(slice(int(start), int(stop)))

    return merged


def _interval_of(starts, values):
    """Index of the interval (given by sorted start points) holding each value."""
    index = np.searchsorted(starts, values, side="right") - 1
    return np.clip(index, 0, len(starts) - 1)


def _nearest(sorted_points, values):
    """Index of the nearest of ``sorted_points`` for each value."""
    right = np.clip(np.searchsorted(sorted_points, values), 0, len(sorted_points) - 1)
    left = np.clip(right - 1, 0, len(sorted_points) - 1)
    take_left = np.abs(values - sorted_points[left]) <= np.abs(sorted_points[right] - values)
    return np.where(take_left, left, right)


def learn_decimal_places(values):
    """Smallest number of decimals (up to 10) that represents every finite value exactly.

    Returns ``None`` when no such number exists (the values are not decimal-rounded).
    """
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if len(finite) == 0:
        return 0

    for digits in range(_MAX_LEARNED_DIGITS + 1):
        if np.allclose(np.round(finite, digits), finite, rtol=1e-13, atol=0.0):
            return digits

    return None


_DATETIME_UNITS_NS = (86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9, 10**6, 10**3, 1)


def datetime_to_float(values, datetime_format=None):
    """Convert datetimes (strings, datetime64 or Timestamps) to float64 nanoseconds since 1970.

    Unparseable values and nulls become NaN. Time zones are converted to UTC (values without
    one are read as UTC), so a column mixing offsets such as ``+01:00`` and ``+05:00`` parses.
    """
    series = pd.Series(values, copy=False)
    parsed = pd.to_datetime(series, format=datetime_format, errors="coerce", utc=True)
    parsed = parsed.dt.tz_localize(None)

    nanoseconds = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
    nanoseconds[parsed.isna().to_numpy()] = np.nan
    return nanoseconds


def float_to_datetime(nanoseconds):
    """Convert float64 nanoseconds since 1970 (NaN for nulls) to a datetime64[ns] array."""
    result = np.full(len(nanoseconds), np.datetime64("NaT"), dtype="datetime64[ns]")
    present = ~np.isnan(nanoseconds)
    result[present] = np.round(nanoseconds[present]).astype(np.int64).view("datetime64[ns]")
    return result


def learn_datetime_unit(nanoseconds):
    """Largest of day, hour, minute, second, ms, us, ns that divides every value exactly."""
    finite = nanoseconds[np.isfinite(nanoseconds)].astype(np.int64)
    for unit in _DATETIME_UNITS_NS:
        if np.all(finite % unit == 0):
            return unit

    return 1


class ColumnCodec:
    """Encode one column of raw values to states and decode states to raw values.

    Parameters
    ----------
    spec : ColumnSpec
        What the column is.
    n_bins, max_exact_values : int
        Passed to :class:`NumericEncoder` for numerical and datetime columns.
    """

    def __init__(self, spec, n_bins=32, max_exact_values=64):
        self.spec = spec
        if spec.kind == CATEGORICAL:
            self.encoder = CategoricalEncoder(ordered=spec.ordered)
        else:
            self.encoder = NumericEncoder(n_bins=n_bins, max_exact_values=max_exact_values)

    def to_numbers(self, values):
        """Raw values to what the encoder sees: float64 for numeric kinds, values otherwise."""
        if self.spec.kind == DATETIME:
            return datetime_to_float(values, self.spec.datetime_format)

        if self.spec.kind == NUMERICAL:
            return pd.to_numeric(pd.Series(values, copy=False), errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )

        return values

    def tally(self, values):
        """The :class:`ValueTally` of raw values, in the space the encoder learns from."""
        if self.spec.kind == CATEGORICAL:
            return ValueTally.of_categories(values)

        numbers = self.to_numbers(values)
        if np.isinf(numbers).any():
            raise ValueError(
                f"Column '{self.spec.name}' holds infinite values; replace them with NaN or a "
                "finite bound before fitting."
            )

        return ValueTally.of_numbers(numbers)

    def fit(self, values):
        """Learn states (and the rounding step) from raw training values."""
        return self.fit_tally(self.tally(values))

    def fit_tally(self, tally):
        """Learn states (and the rounding step) from the column's :class:`ValueTally`."""
        self.encoder.fit_tally(tally)
        self.decimal_places_ = None
        self.datetime_unit_ = None
        if self.spec.kind == NUMERICAL and self.spec.round_values:
            self.decimal_places_ = self.spec.decimal_places
            if self.decimal_places_ is None:
                self.decimal_places_ = learn_decimal_places(tally.values)
        elif self.spec.kind == DATETIME:
            self.datetime_unit_ = learn_datetime_unit(tally.values)

        return self

    @property
    def n_states(self):
        """Number of states of the column."""
        return self.encoder.n_states

    def encode(self, values):
        """Raw values to int32 states."""
        return self.encoder.encode(self.to_numbers(values))

    @property
    def step(self):
        """The resolution drawn numbers are rounded to, or None when they are not rounded."""
        if self.spec.increment:
            return float(self.spec.increment)

        if self.decimal_places_ is not None:
            return 10.0**-self.decimal_places_

        return None if self.datetime_unit_ is None else float(self.datetime_unit_)

    def round(self, numbers):
        """Round float64 numbers to the column's resolution (increment, decimals or time unit)."""
        if self.spec.increment:
            multiples = np.round(numbers / self.spec.increment) * self.spec.increment
            digits = learn_decimal_places(np.array([self.spec.increment]))
            return multiples if digits is None else np.round(multiples, digits)

        if self.decimal_places_ is not None:
            return np.round(numbers, self.decimal_places_)

        if self.datetime_unit_ is not None:
            return np.round(numbers / self.datetime_unit_) * self.datetime_unit_

        return numbers

    def decode_numbers(self, states, uniforms):
        """States to rounded float64 numbers (numeric kinds only)."""
        return self.round(self.encoder.decode(states, uniforms))

    def from_numbers(self, numbers):
        """Float64 numbers (numeric kinds) to the column's raw representation."""
        if self.spec.kind == DATETIME:
            return float_to_datetime(numbers)

        return numbers

    def decode(self, states, uniforms):
        """States to raw values: categories, float64 numbers, or datetime64[ns]."""
        if self.spec.kind == CATEGORICAL:
            return self.encoder.decode(states)

        return self.from_numbers(self.decode_numbers(states, uniforms))
