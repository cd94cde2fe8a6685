"""Metrics comparing synthetic rows with real rows.

All detection scores share SDMetrics' scale: ``1 - (max(0.5, AUC) * 2 - 1)`` averaged over
folds, so 1 means the classifier cannot tell real from synthetic and 0 means it always can.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

from benchmark import constraints as cons
from benchmark.datasets import discrete_columns

LOGGER = logging.getLogger(__name__)

MAX_TREE_CATEGORIES = 250


def _table_dict(metadata, table_name: str) -> dict:
    return metadata.to_dict()["tables"][table_name]


def _modeled_columns(metadata, table_name: str) -> list[str]:
    """Columns that are neither ids nor PII."""
    columns = metadata.tables[table_name].columns
    return [c for c, info in columns.items() if info["sdtype"] != "id" and not info.get("pii")]


def subsample(data: pd.DataFrame, rows: int | None, seed: int) -> pd.DataFrame:
    """Return at most ``rows`` rows of ``data``, drawn without replacement with ``seed``.

    Parameters
    ----------
    data : pandas.DataFrame
        Rows.
    rows : int
        Cap; 0 or None keeps every row.
    seed : int
        Seed.

    Returns
    -------
    pandas.DataFrame
        ``data`` itself if it is small enough, else a sample with a fresh index.
    """
    if not rows or len(data) <= rows:
        return data.reset_index(drop=True)
    return data.sample(n=rows, random_state=seed).reset_index(drop=True)


def sdmetrics_detection(name: str, real, synthetic, metadata, table_name: str) -> float:
    """Run SDMetrics' ``LogisticDetection`` or ``SVCDetection``.

    Parameters
    ----------
    name : {"LogisticDetection", "SVCDetection"}
        The metric.
    real, synthetic : pandas.DataFrame
        Rows to compare.
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.

    Returns
    -------
    float
        Score in [0, 1]; 1 = indistinguishable.
    """
    from sdmetrics import single_table

    metric = getattr(single_table, name)
    synthetic, _ = align_categories(real, synthetic, metadata, table_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(metric.compute(real, synthetic, _table_dict(metadata, table_name)))


def align_categories(real: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str):
    """Replace synthetic categories absent from ``real`` by the most frequent real category.

    SDMetrics' detection metrics fit their encoder on the real rows only and fail on a
    category they have not seen; a held-out sample can miss a rare category that the
    training rows (and so the synthesizer) had. The replaced cells are counted.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Rows to compare.
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.

    Returns
    -------
    (pandas.DataFrame, int)
        The synthetic rows (a copy if anything changed) and the number of cells replaced.
    """
    changed = 0
    out = synthetic
    for column in discrete_columns(metadata, table_name):
        known = real[column]
        unseen = ~synthetic[column].isin(known.dropna().unique()) & synthetic[column].notna()
        if known.notna().any() and unseen.any():
            if out is synthetic:
                out = synthetic.copy()
            out.loc[unseen, column] = known.mode(dropna=True).iloc[0]
            changed += int(unseen.sum())

    return out, changed


def _encode_for_trees(real: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str):
    """Encode both frames as float arrays; return them and the categorical-feature mask."""
    columns = metadata.tables[table_name].columns
    both = pd.concat([real, synthetic], ignore_index=True)
    encoded, is_categorical = [], []
    for name in _modeled_columns(metadata, table_name):
        values = both[name]
        sdtype = columns[name]["sdtype"]
        if sdtype == "datetime":
            stamps = pd.to_datetime(
                values, errors="coerce", format=columns[name].get("datetime_format")
            )
            encoded.append(stamps.astype("int64").where(stamps.notna()).astype(float))
            is_categorical.append(False)
        elif sdtype == "numerical":
            encoded.append(pd.to_numeric(values, errors="coerce").astype(float))
            is_categorical.append(False)
        else:
            encoded.append(_encode_categories(values))
            is_categorical.append(values.nunique(dropna=True) <= MAX_TREE_CATEGORIES)

    matrix = np.column_stack(encoded) if encoded else np.zeros((len(both), 0))
    return matrix[: len(real)], matrix[len(real) :], np.array(is_categorical, dtype=bool)


def _encode_categories(values: pd.Series) -> pd.Series:
    """Codes ordered by frequency (so high-cardinality columns stay meaningful as numbers)."""
    text = (
        values.astype(object)
        .where(values.notna(), None)
        .map(lambda v: None if v is None else repr(v))
    )
    order = text.value_counts(dropna=True).index
    codes = pd.Series(np.arange(len(order), dtype=float), index=order)
    return text.map(codes).astype(float)


def tree_detection(
    real: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str, seed: int = 0
) -> float:
    """Score detection by a gradient-boosted tree classifier, on SDMetrics' 0-1 scale.

    A ``HistGradientBoostingClassifier`` (native categorical splits, native missing values)
    is trained to separate real from synthetic rows in 3-fold stratified cross-validation.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Rows to compare (ids and PII columns are ignored).
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.
    seed : int, default 0
        Seed of the folds and of the classifier.

    Returns
    -------
    float
        ``mean over folds of 1 - (max(0.5, AUC) * 2 - 1)``; 1 = indistinguishable.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x_real, x_synth, categorical = _encode_for_trees(real, synthetic, metadata, table_name)
    features = np.vstack([x_real, x_synth])
    labels = np.r_[np.ones(len(x_real)), np.zeros(len(x_synth))]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=seed)
    scores = []
    for train_idx, test_idx in folds.split(features, labels):
        model = HistGradientBoostingClassifier(
            categorical_features=categorical if categorical.any() else None, random_state=seed
        )
        model.fit(features[train_idx], labels[train_idx])
        auc = roc_auc_score(labels[test_idx], model.predict_proba(features[test_idx])[:, 1])
        scores.append(1.0 - (max(0.5, auc) * 2.0 - 1.0))

    return float(np.mean(scores))


def quality_score(real: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str):
    """SDV's quality score (``sdv.evaluation.evaluate_quality``, SDMetrics' QualityReport).

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Rows to compare.
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.

    Returns
    -------
    float
        Overall score in [0, 1] (mean of Column Shapes and Column Pair Trends).
    """
    from sdv.evaluation import evaluate_quality

    return _report_score(evaluate_quality, real, synthetic, metadata, table_name)


def diagnostic_score(real: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str):
    """SDV's diagnostic score (``sdv.evaluation.run_diagnostic``: data validity and structure).

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Rows to compare (real: the training rows, whose ranges and categories are the reference).
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.

    Returns
    -------
    float
        Overall score in [0, 1]; 1 = every value valid and the columns as in the real data.
    """
    from sdv.evaluation import run_diagnostic

    return _report_score(run_diagnostic, real, synthetic, metadata, table_name)


def _report_score(evaluate, real, synthetic, metadata, table_name: str) -> float:
    """Overall score of an SDV evaluation report, its warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = evaluate({table_name: real}, {table_name: synthetic}, metadata, verbose=False)

    return float(report.get_score())


def category_coverage(real: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str):
    """SDMetrics ``CategoryCoverage`` for every categorical, boolean and ordinal column.

    Parameters
    ----------
    real, synthetic : pandas.DataFrame
        Rows to compare (real: the training rows, i.e. the categories the model saw).
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.

    Returns
    -------
    dict
        Column name to the share of its real categories present in the synthetic rows.
    """
    from sdmetrics.single_column import CategoryCoverage

    coverage = {}
    for column in discrete_columns(metadata, table_name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            coverage[column] = float(CategoryCoverage.compute(real[column], synthetic[column]))

    return coverage


def rare_category_frequencies(synthetic: pd.DataFrame, rare: dict) -> dict:
    """Return the synthetic frequency of each rare real category (mode-collapse probe).

    Parameters
    ----------
    synthetic : pandas.DataFrame
        Synthetic rows.
    rare : dict
        Column name to ``{category: real frequency}``.

    Returns
    -------
    dict
        Column name to ``{category: [real frequency, synthetic frequency]}``; categories are
        matched as text, so ``1`` and ``"1"`` agree.
    """
    out = {}
    for column, categories in rare.items():
        if column not in synthetic:
            continue
        freq = synthetic[column].astype(str).value_counts(normalize=True)
        out[column] = {
            str(cat): [real_freq, float(freq.get(str(cat), 0.0))]
            for cat, real_freq in categories.items()
        }

    return out


def summarize_rare(frequencies: dict) -> tuple[float | None, float | None]:
    """Return the share of rare categories generated and the mean synthetic/real ratio.

    Parameters
    ----------
    frequencies : dict
        Output of :func:`rare_category_frequencies`.

    Returns
    -------
    (float or None, float or None)
        Share of rare categories present at least once, and the mean of synthetic frequency
        divided by real frequency; None when the table has no rare category.
    """
    pairs = [pair for column in frequencies.values() for pair in column.values()]
    if not pairs:
        return None, None
    present = float(np.mean([synth > 0 for _, synth in pairs]))
    ratio = float(np.mean([synth / real for real, synth in pairs]))
    return present, ratio


def new_row_synthesis(
    train: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str, rows: int, seed: int
) -> float:
    """SDMetrics ``NewRowSynthesis`` on a seeded sample of synthetic rows.

    Parameters
    ----------
    train, synthetic : pandas.DataFrame
        Training rows and synthetic rows.
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.
    rows : int
        Synthetic rows checked (the metric runs one query per row).
    seed : int
        Seed of the sample.

    Returns
    -------
    float
        Share of checked synthetic rows that match no training row (1 = no copies).
    """
    from sdmetrics.single_table import NewRowSynthesis

    sample = subsample(synthetic, rows, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(NewRowSynthesis.compute(train, sample, _table_dict(metadata, table_name)))


def exact_copies(train: pd.DataFrame, synthetic: pd.DataFrame, metadata, table_name: str):
    """Share of synthetic rows equal to some training row in every modeled column.

    Parameters
    ----------
    train, synthetic : pandas.DataFrame
        Training rows and synthetic rows.
    metadata : sdv.metadata.Metadata
        Metadata of the table.
    table_name : str
        The table.

    Returns
    -------
    float
        Share in [0, 1], over all synthetic rows.
    """
    columns = _modeled_columns(metadata, table_name)
    if not len(synthetic) or not columns:
        return 0.0
    seen = set(map(tuple, train[columns].astype(str).to_numpy().tolist()))
    rows = map(tuple, synthetic[columns].astype(str).to_numpy().tolist())
    return float(np.mean([row in seen for row in rows]))


def dtype_mismatches(train: pd.DataFrame, synthetic: pd.DataFrame) -> dict:
    """Return the columns whose synthetic dtype differs from the training dtype.

    Parameters
    ----------
    train, synthetic : pandas.DataFrame
        Training rows and synthetic rows.

    Returns
    -------
    dict
        Column name to ``"train_dtype -> synthetic_dtype"`` (``"missing"`` if absent).
    """
    out = {}
    for column in train.columns:
        got = str(synthetic[column].dtype) if column in synthetic else "missing"
        if got != str(train[column].dtype):
            out[column] = f"{train[column].dtype} -> {got}"

    return out


def constraint_validity(synthetic: pd.DataFrame, specs: list[dict]) -> dict:
    """Check every specification on the synthetic rows with :mod:`benchmark.constraints`.

    Parameters
    ----------
    synthetic : pandas.DataFrame
        The rows returned by the synthesizer.
    specs : list of dict
        Fitted constraint and condition specifications.

    Returns
    -------
    dict
        ``valid_share`` (rows satisfying all), ``all_valid`` (bool) and ``per_constraint``
        (description to share of rows satisfying it). An empty frame counts as valid.
    """
    if not specs:
        return {"valid_share": None, "all_valid": None, "per_constraint": {}}

    per = {}
    every = pd.Series(True, index=synthetic.index)
    for spec in specs:
        ok = cons.is_valid(synthetic, spec).astype(bool)
        per[cons.describe(spec)] = float(ok.mean()) if len(ok) else 1.0
        every &= ok

    share = float(every.mean()) if len(every) else 1.0
    return {"valid_share": share, "all_valid": bool(every.all()), "per_constraint": per}
