"""Checks at the public boundary: parameters, the training table and ``num_rows``.

Each check raises one of :mod:`sdv_janus.errors` with a message that names the parameter or
column at fault and says how to fix it. SDV's own checks (metadata against data, primary key
duplicates, conditions on unknown columns, constraint columns and sdtypes, sampling before
fitting) run as well and keep SDV's errors; these checks cover what SDV lets through to the
engine.
"""

import math
import os

import networkx as nx
import numpy as np
import pandas as pd
from sdv.metadata import Metadata

from sdv_janus.errors import JanusDataError, JanusInputError

# Integers beyond this lose precision in float64, the engine's number type.
_EXACT_INTEGER_LIMIT = 2**53

# Sampling in memory may use this many times the output's own size, at its peak.
_MEMORY_OVERHEAD = 4

_NUMBER = (int, float, np.integer, np.floating)

# Parameter name -> (allowed types, check, description of the allowed values).
_PARAMETER_RULES = {
    "max_parents": (int, lambda v: v >= 0, "an int >= 0"),
    "structure_prior": (_NUMBER, lambda v: 0 < v < math.inf, "a finite number > 0"),
    "prior_strength": (_NUMBER, lambda v: 0 < v < math.inf, "a finite number > 0"),
    "split_prior_strength": (_NUMBER, lambda v: 0 < v < math.inf, "a finite number > 0"),
    "min_samples_leaf": (int, lambda v: v >= 1, "an int >= 1"),
    "max_depth": (int, lambda v: v >= 0, "an int >= 0"),
    "n_bins": (int, lambda v: v >= 2, "an int >= 2"),
    "candidates_per_row": (int, lambda v: v >= 1, "an int >= 1"),
    "constraint_candidates": (int, lambda v: v >= 1, "an int >= 1"),
}


def _invalid_parameter(name, allowed, value):
    """The one message format for a bad parameter."""
    return JanusInputError(
        f"Invalid value for parameter '{name}' of JanusSynthesizer: expected {allowed}, "
        f"got {value!r}."
    )


def check_parameters(arguments):
    """Check the constructor's arguments; raise :class:`JanusInputError` on the first bad one.

    Parameters
    ----------
    arguments : dict
        The constructor's ``locals()``.
    """
    if not isinstance(arguments["metadata"], Metadata):
        raise _invalid_parameter(
            "metadata",
            "an sdv.metadata.Metadata (e.g. Metadata.detect_from_dataframes)",
            arguments["metadata"],
        )

    for name, (types, check, allowed) in _PARAMETER_RULES.items():
        value = arguments[name]
        if isinstance(value, bool) or not isinstance(value, types) or not check(value):
            raise _invalid_parameter(name, allowed, value)

    locales = arguments["locales"]
    if isinstance(locales, str) or locales is None:
        locales = [locales or "en_US"]
    if not isinstance(locales, (list, tuple)) or not all(isinstance(x, str) for x in locales):
        allowed = "a list of Faker locale names such as ['en_US']"
        raise _invalid_parameter("locales", allowed, locales)

    graph = arguments["graph"]
    if graph is not None and not isinstance(graph, nx.DiGraph):
        raise _invalid_parameter("graph", "a networkx.DiGraph over column names, or None", graph)


def check_count(value, name, minimum):
    """Return ``value`` as an int if it is a whole number >= ``minimum``; raise otherwise.

    Parameters
    ----------
    value : object
        What the user passed.
    name : str
        The parameter's name, for the message.
    minimum : int
        Smallest allowed value.

    Returns
    -------
    int
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        hint = f" (int({value!r}) if you meant a whole number)" if isinstance(value, float) else ""
        raise JanusInputError(f"'{name}' must be an int >= {minimum}, got {value!r}{hint}.")

    if value < minimum:
        raise JanusInputError(f"'{name}' must be an int >= {minimum}, got {value!r}.")

    return int(value)


def check_fits_in_memory(num_rows, bytes_per_row):
    """Refuse an in-memory sample that could not fit in this machine's memory.

    Parameters
    ----------
    num_rows : int
        Rows asked for.
    bytes_per_row : float
        Memory one training row took (deep, strings included).
    """
    total = _physical_memory()
    needed = num_rows * bytes_per_row * _MEMORY_OVERHEAD
    if total is not None and needed > total:
        raise JanusInputError(
            f"num_rows={num_rows:,} would need about {needed / 2**30:,.1f} GiB in memory, more "
            f"than this machine's {total / 2**30:,.1f} GiB. Pass output_folder_path=... to write "
            "the rows to disk in batches, or ask for fewer rows."
        )


def _physical_memory():
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_table_shape(table, table_name):
    """Checks that need no metadata: rows present, column names unique and usable.

    Parameters
    ----------
    table : pandas.DataFrame
        The user's table (not modified).
    table_name : str
        Its name, for messages.
    """
    if not isinstance(table, pd.DataFrame):
        return  # SDV raises its own InvalidDataTypeError for anything but a DataFrame.

    if len(table) == 0:
        raise JanusDataError(
            f"The table '{table_name}' has no rows; fit needs at least one row of data."
        )

    scalar = (str, int, float, np.integer, np.floating)
    bad_names = [name for name in table.columns if not isinstance(name, scalar) or name != name]
    if bad_names:
        raise JanusDataError(
            f"Column names must be strings (or numbers); the table '{table_name}' has "
            f"{bad_names[:5]!r}. Rename them, e.g. table.columns = table.columns.map(str)."
        )

    as_text = pd.Index([str(name) for name in table.columns])
    duplicated = sorted(set(as_text[as_text.duplicated()]))
    if duplicated:
        raise JanusDataError(
            f"The table '{table_name}' has duplicate column names {duplicated}; give every "
            "column a unique name."
        )


def check_modelled_values(table, columns_metadata):
    """Checks of values SDV accepts but the engine cannot model faithfully.

    Parameters
    ----------
    table : pandas.DataFrame
        The user's table, already checked against the metadata by SDV.
    columns_metadata : dict
        Column name -> column metadata (``sdtype`` and the rest).
    """
    for name, column in columns_metadata.items():
        if column.get("sdtype") == "numerical" and name in table.columns:
            _check_numbers(name, table[name])


def _check_numbers(name, values):
    """A numerical column may hold NaN, but not +-inf or integers float64 cannot hold."""
    numbers = pd.to_numeric(values, errors="coerce")
    as_float = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(as_float)
    if infinite.any():
        row = values.index[np.flatnonzero(infinite)[0]]
        raise JanusDataError(
            f"Column '{name}' holds {int(infinite.sum())} infinite value(s) (first at row "
            f"{row!r}: {values[row]!r}). Replace them with NaN, e.g. "
            f"df['{name}'] = df['{name}'].replace([np.inf, -np.inf], np.nan), or with a finite "
            "bound."
        )

    too_big = values[_beyond_exact_integers(values)]
    if len(too_big):
        raise JanusDataError(
            f"Column '{name}' holds integers beyond 2**53 (e.g. {too_big.iloc[0]}), which the "
            "model's float64 numbers cannot represent exactly. Declare it sdtype 'id' if it is "
            "an identifier, 'categorical' if its values are labels, or rescale it."
        )


def _beyond_exact_integers(values):
    """Boolean mask of the integer values whose magnitude exceeds 2**53."""
    if pd.api.types.is_integer_dtype(values.dtype):
        return ((values > _EXACT_INTEGER_LIMIT) | (values < -_EXACT_INTEGER_LIMIT)).to_numpy()

    if values.dtype != object:
        return np.zeros(len(values), dtype=bool)

    return np.array(
        [
            isinstance(value, (int, np.integer))
            and not isinstance(value, bool)
            and abs(int(value)) > _EXACT_INTEGER_LIMIT
            for value in values
        ],
        dtype=bool,
    )
