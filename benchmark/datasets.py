"""The dataset registry: how to read each benchmark table, its metadata and its constraints.

The fifteen shared datasets are described by :data:`REGISTRY`. Any other folder of CSV files
(``<dir>/<name>/data.csv`` or ``<dir>/<name>.csv``) also loads, with detected metadata and no
constraints. The data folder is chosen by :func:`resolve_data_dir`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import constraints as cons

LOGGER = logging.getLogger(__name__)

ENV_VAR = "JANUS_DATA_DIR"
REPO_ROOT = Path(__file__).resolve().parent.parent
RARE_SHARE = 0.01
MAX_RARE_LEVELS = 100  # columns with more categories (free text) are not mode-collapse probes
MODELED_SDTYPES = ("numerical", "categorical", "boolean", "datetime", "ordinal", "id")
_BN_READ = {"dtype": str, "keep_default_na": False}


class DataNotFoundError(FileNotFoundError):
    """The data folder or a dataset's CSV could not be found."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """How to read one dataset and what is known about it.

    Attributes
    ----------
    name : str
        The dataset's name (its folder under the data directory).
    target : str or None
        The column usually predicted.
    read_kwargs : dict
        Extra arguments for ``pandas.read_csv``.
    primary_key : str or None
        A column whose values are unique row ids, or None.
    sdtypes : dict
        sdtype corrections applied after detection, e.g. PII-looking names kept categorical.
    datetime_formats : dict
        Column name to ``strftime`` format.
    constraints : tuple of dict
        Natural constraints (see :mod:`benchmark.constraints`) that hold on every loaded row.
    row_filter : callable or None
        Keeps the rows for which it returns True (documented in ``notes``).
    notes : str
        What was corrected and why.
    """

    name: str
    target: str | None = None
    read_kwargs: dict = dataclasses.field(default_factory=dict)
    primary_key: str | None = None
    sdtypes: dict = dataclasses.field(default_factory=dict)
    datetime_formats: dict = dataclasses.field(default_factory=dict)
    constraints: tuple = ()
    row_filter: Callable[[pd.DataFrame], pd.Series] | None = None
    notes: str = ""


@dataclasses.dataclass
class Dataset:
    """A loaded table with everything the benchmark needs.

    Attributes
    ----------
    name : str
        Table name, used as the key of SDV's ``{name: DataFrame}`` dicts.
    data : pandas.DataFrame
        The rows.
    metadata : sdv.metadata.Metadata
        Corrected single-table metadata.
    spec : DatasetSpec
        The registry entry (a generic one for user CSVs).
    path : pathlib.Path
        The CSV file read.
    """

    name: str
    data: pd.DataFrame
    metadata: object
    spec: DatasetSpec
    path: Path

    @property
    def sdtypes(self) -> dict[str, str]:
        """Column name to sdtype."""
        columns = self.metadata.tables[self.name].columns
        return {name: info["sdtype"] for name, info in columns.items()}

    @property
    def constraints(self) -> list[dict]:
        """The natural constraints, fitted on the loaded rows."""
        return cons.fit_specs(self.data, self.spec.constraints)

    def rare_categories(self, share: float = RARE_SHARE) -> dict[str, dict]:
        """Return the categories rarer than ``share`` in each discrete column.

        Parameters
        ----------
        share : float, default 0.01
            Frequency threshold.

        Returns
        -------
        dict
            Column name to ``{category: frequency}``, only for columns having rare categories.
        """
        return rare_categories(self.data, discrete_columns(self.metadata, self.name), share)


def _ineq(low: str, high: str, strict: bool = False) -> dict:
    return {"kind": "inequality", "low": low, "high": high, "strict": strict}


def _bounds(column: str, low=None, high=None, strict: bool = False) -> dict:
    return {"kind": "bounds", "column": column, "low": low, "high": high, "strict": strict}


def _combos(*columns: str) -> dict:
    return {"kind": "fixed_combinations", "columns": list(columns)}


def _test(column: str, op: str, value=None, other: str | None = None) -> dict:
    test = {"column": column, "op": op}
    if other is not None:
        test["other"] = other
    elif op not in ("isnull", "notnull"):
        test["value"] = value
    return test


def _implies(premise: list[dict], conclusion: list[dict]) -> dict:
    return {"kind": "implication", "if": premise, "then": conclusion}


def _equality(total: str, parts: list[str], tolerance: float) -> list[dict]:
    """Two linear rules saying ``total == sum(parts)`` within ``tolerance``."""
    coefficients = {total: 1.0, **{p: -1.0 for p in parts}}
    negated = {c: -a for c, a in coefficients.items()}
    return [
        {"kind": "linear", "coefficients": coefficients, "constant": tolerance, "strict": False},
        {"kind": "linear", "coefficients": negated, "constant": tolerance, "strict": False},
    ]


_INTRUSION_RATES = [
    "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate", "same_srv_rate",
    "diff_srv_rate", "srv_diff_host_rate", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
]  # fmt: skip
_WINE_CHEMISTRY = [
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides",
    "free sulfur dioxide", "total sulfur dioxide", "sulphates", "alcohol",
]  # fmt: skip
_PERC = ["second_perc", "high_perc", "degree_perc", "employability_perc", "mba_perc"]
_PAY = ["PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6"]


def _cardio_clean(df: pd.DataFrame) -> pd.Series:
    """Keep the clean subset suggested by cardio's SOURCE.md (98.1% of rows)."""
    return (df.ap_hi >= df.ap_lo) & df.ap_hi.between(60, 250) & df.ap_lo.between(30, 200)


_SPECS = [
    DatasetSpec(
        "adult",
        target="income",
        # education-num is a code of education: categorical, so FixedCombinations applies.
        sdtypes={"education-num": "categorical"},
        constraints=(
            _combos("education", "education-num"),
            _implies([_test("capital-gain", ">", 0)], [_test("capital-loss", "<=", 0)]),
            _implies(
                [_test("relationship", "in", ["Husband", "Wife"])],
                [_test("marital-status", "in", ["Married-civ-spouse", "Married-AF-spouse"])],
            ),
            _bounds("age", 17, 90),
            _bounds("hours-per-week", 1, 99),
        ),
        notes="education-num set categorical (a code of education).",
    ),
    DatasetSpec(
        "alarm",
        target="BP",
        read_kwargs=_BN_READ,
        constraints=(_combos("FIO2", "VENTALV", "PVSAT"),),
    ),
    DatasetSpec(
        "asia", target="dysp", read_kwargs=_BN_READ, constraints=(_combos("lung", "tub", "either"),)
    ),
    DatasetSpec(
        "child",
        target="Disease",
        read_kwargs=_BN_READ,
        constraints=(
            _combos("Disease", "DuctFlow"),
            _implies([_test("Disease", "==", "PAIVS")], [_test("DuctFlow", "==", "Lt_to_Rt")]),
        ),
    ),
    DatasetSpec(
        "insurance",
        target="PropCost",
        read_kwargs=_BN_READ,
        constraints=(
            _combos("MakeModel", "VehicleYear", "Airbag"),
            _implies([_test("VehicleYear", "==", "Current")], [_test("Airbag", "==", "True")]),
        ),
    ),
    DatasetSpec(
        "intrusion",
        target="label",
        constraints=(
            _implies([_test("protocol_type", "in", ["icmp", "udp"])], [_test("flag", "==", "SF")]),
            _combos("service", "protocol_type"),
            *[_bounds(c, 0, 1) for c in _INTRUSION_RATES],
            _bounds("count", 0, 511),
            _bounds("srv_count", 0, 511),
            _bounds("dst_host_count", 0, 255),
            _bounds("dst_host_srv_count", 0, 255),
        ),
        notes="difficulty (NSL-KDD metadata) kept; drop it to match the 41-feature schema.",
    ),
    DatasetSpec(
        "student_placements",
        target="placed",
        read_kwargs={"parse_dates": ["start_date", "end_date"]},
        primary_key="student_id",
        datetime_formats={"start_date": "%Y-%m-%d", "end_date": "%Y-%m-%d"},
        constraints=(
            _ineq("start_date", "end_date"),
            _implies([_test("work_experience", "==", True)], [_test("experience_years", ">", 0)]),
            _implies([_test("work_experience", "==", False)], [_test("experience_years", "==", 0)]),
            _implies([_test("placed", "==", False)], [_test("salary", "isnull")]),
            _implies([_test("placed", "==", True)], [_test("salary", "notnull")]),
            *[_bounds(c, 0, 100) for c in _PERC],
        ),
    ),
    DatasetSpec("abalone", target="rings", constraints=(_ineq("viscera_weight", "whole_weight"),)),
    DatasetSpec(
        "bank_marketing",
        target="y",
        constraints=(
            _implies([_test("poutcome", "==", "nonexistent")], [_test("previous", "==", 0)]),
            _implies([_test("previous", "==", 0)], [_test("poutcome", "==", "nonexistent")]),
            _implies([_test("pdays", "!=", 999)], [_test("previous", ">=", 1)]),
            _implies([_test("poutcome", "==", "success")], [_test("pdays", "!=", 999)]),
            _combos("cons.price.idx", "month", "emp.var.rate", "cons.conf.idx", "nr.employed"),
            _bounds("age", 17, 98),
            _bounds("campaign", 1, None),
            _bounds("duration", 0, None),
        ),
    ),
    DatasetSpec(
        "wine_quality",
        target="quality",
        constraints=(
            _ineq("free sulfur dioxide", "total sulfur dioxide"),
            _bounds("quality", 3, 9),
            _bounds("density", 0.98, 1.04),
            _bounds("pH", 2.7, 4.1),
            *[_bounds(c, 0, None) for c in _WINE_CHEMISTRY],
        ),
    ),
    DatasetSpec(
        "cardio",
        target="cardio",
        primary_key="id",
        row_filter=_cardio_clean,
        constraints=(
            _ineq("ap_lo", "ap_hi"),
            _bounds("ap_hi", 60, 250),
            _bounds("ap_lo", 30, 200),
        ),
        notes="Rows filtered to SOURCE.md's clean subset (ap_hi >= ap_lo, plausible ranges).",
    ),
    DatasetSpec(
        "house_sales",
        target="price",
        read_kwargs={"parse_dates": ["date"]},
        # zipcode is detected as PII (postcode) and would not be modeled.
        sdtypes={"zipcode": "categorical"},
        datetime_formats={"date": "%Y-%m-%d"},
        constraints=(
            *_equality("sqft_living", ["sqft_above", "sqft_basement"], 0.0),
            _ineq("sqft_above", "sqft_living"),
            _implies(
                [_test("yr_renovated", "!=", 0)],
                [_test("yr_renovated", ">=", other="yr_built")],
            ),
            _bounds("date", "2014-05-02", "2015-05-27"),
        ),
        notes="id is a parcel id and repeats (177 parcels sold twice): kept as an id column, "
        "not a primary key. zipcode kept categorical.",
    ),
    DatasetSpec(
        "loans",
        target="loan_status",
        # state is detected as PII (administrative_unit) and would not be modeled.
        sdtypes={"state": "categorical", "emp_title": "categorical"},
        constraints=(
            *_equality("paid_total", ["paid_principal", "paid_interest", "paid_late_fees"], 0.01),
            _ineq("balance", "loan_amount"),
            _ineq("paid_principal", "loan_amount"),
            _ineq("open_credit_lines", "total_credit_lines"),
            _ineq("num_open_cc_accounts", "num_total_cc_accounts"),
            _ineq("num_satisfactory_accounts", "total_credit_lines"),
            _combos("grade", "sub_grade"),
            _implies(
                [_test("application_type", "==", "joint")],
                [_test("annual_income_joint", "notnull")],
            ),
            _implies(
                [_test("application_type", "==", "individual")],
                [_test("annual_income_joint", "isnull")],
            ),
        ),
        notes="state kept categorical; emp_title is free text with thousands of values.",
    ),
    DatasetSpec(
        "diabetes",
        target="Outcome",
        constraints=(
            _bounds("Age", 21, None),
            *[
                _bounds(c, 0, None)
                for c in ["Pregnancies", "Glucose", "BloodPressure", "SkinThickness", "Insulin"]
            ],
            _bounds("BMI", 0, None),
            _implies([_test("Insulin", "!=", 0)], [_test("SkinThickness", ">", 0)]),
        ),
    ),
    DatasetSpec(
        "credit_default",
        target="default_payment_next_month",
        primary_key="ID",
        constraints=(
            *[_bounds(f"PAY_AMT{i}", 0, None) for i in range(1, 7)],
            _bounds("LIMIT_BAL", 0, None, strict=True),
            _bounds("AGE", 21, 79),
            *[_bounds(c, -2, 8) for c in _PAY],
        ),
    ),
]
REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}
DATASET_NAMES: tuple[str, ...] = tuple(REGISTRY)


def candidate_data_dirs(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Return every place searched for the data folder, in order, with where it came from.

    Parameters
    ----------
    data_dir : path-like, optional
        A folder given by the user (``--data-dir``).

    Returns
    -------
    list of (str, pathlib.Path)
        Origin label and folder.
    """
    places = []
    if data_dir is not None:
        places.append(("--data-dir", Path(data_dir)))
    if os.environ.get(ENV_VAR):
        places.append((f"${ENV_VAR}", Path(os.environ[ENV_VAR])))
    places.append(
        ("../shared/datasets from the current directory", Path.cwd().parent / "shared" / "datasets")
    )
    places.append(
        ("../shared/datasets from the repository root", REPO_ROOT.parent / "shared" / "datasets")
    )
    return places


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Find the data folder.

    The order is: ``data_dir`` (the ``--data-dir`` flag), the ``JANUS_DATA_DIR`` environment
    variable, then ``../shared/datasets`` relative to the current directory and to the
    repository root. A folder given explicitly must exist; it is not skipped silently.

    Parameters
    ----------
    data_dir : path-like, optional
        A folder given by the user.

    Returns
    -------
    pathlib.Path
        The first existing folder.

    Raises
    ------
    DataNotFoundError
        If no folder exists; the message lists every place looked at and how to supply one.
    """
    places = candidate_data_dirs(data_dir)
    if data_dir is not None:
        places = places[:1]  # a folder named explicitly is the only place to look
    for _, folder in places:
        if folder.is_dir():
            return folder.resolve()

    looked = "\n".join(f"  - {folder} ({origin})" for origin, folder in places)
    raise DataNotFoundError(
        "Could not find the benchmark data folder. Looked in:\n"
        f"{looked}\n"
        f"Pass --data-dir /path/to/datasets or set {ENV_VAR}=/path/to/datasets. The folder "
        "must hold <name>/data.csv or <name>.csv for each dataset."
    )


def find_csv(name: str, data_dir: Path) -> Path:
    """Return the CSV file of dataset ``name`` inside ``data_dir``.

    Parameters
    ----------
    name : str
        Dataset name.
    data_dir : pathlib.Path
        The data folder.

    Returns
    -------
    pathlib.Path
        ``<data_dir>/<name>/data.csv`` or ``<data_dir>/<name>.csv``.

    Raises
    ------
    DataNotFoundError
        If neither exists.
    """
    options = [data_dir / name / "data.csv", data_dir / f"{name}.csv"]
    for path in options:
        if path.is_file():
            return path

    available = ", ".join(list_datasets(data_dir)) or "none"
    raise DataNotFoundError(
        f"Dataset {name!r} not found: looked for {options[0]} and {options[1]}. "
        f"Datasets in {data_dir}: {available}."
    )


def list_datasets(data_dir: Path) -> list[str]:
    """Return the names of the datasets present in ``data_dir``.

    Parameters
    ----------
    data_dir : pathlib.Path
        The data folder.

    Returns
    -------
    list of str
        Registered datasets first (in registry order), then other CSVs by name.
    """
    found = {p.parent.name for p in data_dir.glob("*/data.csv")}
    found |= {p.stem for p in data_dir.glob("*.csv")}
    registered = [name for name in DATASET_NAMES if name in found]
    return registered + sorted(found - set(REGISTRY))


def read_table(spec: DatasetSpec, path: Path) -> pd.DataFrame:
    """Read a dataset's CSV with its registry options and row filter.

    Parameters
    ----------
    spec : DatasetSpec
        The registry entry.
    path : pathlib.Path
        CSV path.

    Returns
    -------
    pandas.DataFrame
        The rows, with a fresh ``RangeIndex``.
    """
    data = pd.read_csv(path, **spec.read_kwargs)
    if spec.row_filter is not None:
        keep = spec.row_filter(data)
        LOGGER.info("%s: row filter keeps %d of %d rows", spec.name, int(keep.sum()), len(data))
        data = data[keep]

    return data.reset_index(drop=True)


def build_metadata(data: pd.DataFrame, spec: DatasetSpec):
    """Detect a table's SDV metadata, then correct it.

    Corrections: columns detected as PII or as a non-modeled sdtype become categorical (SDV
    would otherwise replace e.g. ``state`` or ``zipcode`` with fake values); the registry's
    sdtype overrides and datetime formats apply; the primary key is the registry's, and a key
    detected on a column that is not a true id is removed.

    Parameters
    ----------
    data : pandas.DataFrame
        The table.
    spec : DatasetSpec
        The registry entry.

    Returns
    -------
    sdv.metadata.Metadata
        Single-table metadata named ``spec.name``.
    """
    from sdv.metadata import Metadata

    name = spec.name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metadata = Metadata.detect_from_dataframes({name: data})

    table = metadata.tables[name]
    if table.primary_key and table.primary_key != spec.primary_key:
        metadata.remove_primary_key(table_name=name)

    for column, info in table.columns.items():
        if info.get("pii") or info["sdtype"] not in MODELED_SDTYPES:
            LOGGER.debug("%s: %s detected as %s, kept categorical", name, column, info["sdtype"])
            metadata.update_column(column, table_name=name, sdtype="categorical")

    for column, sdtype in spec.sdtypes.items():
        metadata.update_column(column, table_name=name, sdtype=sdtype)

    for column, fmt in spec.datetime_formats.items():
        metadata.update_column(column, table_name=name, sdtype="datetime", datetime_format=fmt)

    if spec.primary_key and table.primary_key != spec.primary_key:
        metadata.update_column(spec.primary_key, table_name=name, sdtype="id")
        metadata.set_primary_key(spec.primary_key, table_name=name)

    metadata.validate()
    return metadata


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, rows: int | None = None
) -> Dataset:
    """Load a registered dataset, or any ``<name>.csv`` in the data folder.

    Parameters
    ----------
    name : str
        Dataset name.
    data_dir : path-like, optional
        The data folder (see :func:`resolve_data_dir`).
    rows : int, optional
        Keep only a random sample of this many rows (seed 0), for quick runs.

    Returns
    -------
    Dataset
        Rows, corrected metadata and registry entry.
    """
    folder = resolve_data_dir(data_dir)
    path = find_csv(name, folder)
    spec = REGISTRY.get(name, DatasetSpec(name))
    data = read_table(spec, path)
    if rows is not None and rows < len(data):
        data = data.sample(n=rows, random_state=0).sort_index().reset_index(drop=True)

    metadata = build_metadata(data, spec)
    data = parse_datetimes(data, metadata, name)
    LOGGER.info("Loaded %s from %s: %d rows x %d columns", name, path, *data.shape)
    return Dataset(name, data, metadata, spec, path)


def parse_datetimes(data: pd.DataFrame, metadata, table_name: str) -> pd.DataFrame:
    """Parse text columns that the metadata calls datetimes, with their detected format.

    Parameters
    ----------
    data : pandas.DataFrame
        The table as read.
    metadata : sdv.metadata.Metadata
        Its metadata.
    table_name : str
        The table.

    Returns
    -------
    pandas.DataFrame
        A copy with ``datetime64`` columns where the metadata says datetime (the input if
        nothing needed parsing).
    """
    columns = metadata.tables[table_name].columns
    todo = [
        c
        for c, info in columns.items()
        if info["sdtype"] == "datetime" and not pd.api.types.is_datetime64_any_dtype(data[c])
    ]
    if not todo:
        return data
    data = data.copy()
    for column in todo:
        fmt = columns[column].get("datetime_format")
        data[column] = pd.to_datetime(data[column], format=fmt, errors="coerce")

    return data


def discrete_columns(metadata, table_name: str) -> list[str]:
    """Return the categorical, boolean and ordinal columns of a table.

    Parameters
    ----------
    metadata : sdv.metadata.Metadata
        The metadata.
    table_name : str
        The table.

    Returns
    -------
    list of str
        Column names in table order.
    """
    columns = metadata.tables[table_name].columns
    return [c for c, info in columns.items() if info["sdtype"] in cons._DISCRETE_SDTYPES]


def rare_categories(data: pd.DataFrame, columns: list[str], share: float = RARE_SHARE) -> dict:
    """Return the categories rarer than ``share`` in each of ``columns``.

    Parameters
    ----------
    data : pandas.DataFrame
        The table.
    columns : list of str
        Discrete columns to inspect.
    share : float, default 0.01
        Frequency threshold.

    Returns
    -------
    dict
        Column name to ``{category: frequency}`` (missing values are not categories); columns
        with more than ``MAX_RARE_LEVELS`` categories are left out.
    """
    rare = {}
    for column in columns:
        freq = data[column].value_counts(normalize=True, dropna=True)
        small = freq[freq < share]
        if len(small) and 1 < len(freq) <= MAX_RARE_LEVELS:
            rare[column] = {_jsonable(k): float(v) for k, v in small.items()}

    return rare


def _jsonable(value):
    """Return a JSON-friendly scalar for a category value."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def split(data: pd.DataFrame, seed: int, holdout: float = 0.2, rows: int | None = None):
    """Split rows into a training set and a held-out set, per seed.

    Parameters
    ----------
    data : pandas.DataFrame
        The table.
    seed : int
        Seed of the shuffle.
    holdout : float, default 0.2
        Share of rows held out (at least one row each side).
    rows : int, optional
        Cap on the training rows (the held-out set keeps its share).

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Training and held-out rows, each with a fresh index.
    """
    order = np.random.default_rng(seed).permutation(len(data))
    n_holdout = min(max(1, int(round(holdout * len(data)))), len(data) - 1)
    test_idx, train_idx = order[:n_holdout], order[n_holdout:]
    if rows is not None:
        train_idx = train_idx[:rows]
        test_idx = test_idx[: max(1, int(round(rows * holdout / (1 - holdout))))]

    train = data.iloc[np.sort(train_idx)].reset_index(drop=True)
    test = data.iloc[np.sort(test_idx)].reset_index(drop=True)
    return train, test
